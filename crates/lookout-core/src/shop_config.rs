//! A shop's own alerting settings, pure: what `PUT /ops/shops/{shop}/config` sets and the
//! shop's monitor holds (the source of truth for its alerting). Every field is optional; a
//! field left out (or `null`) falls back to the Worker's var:
//!
//! | field | type | default (var) |
//! |---|---|---|
//! | `twilio_weekly_budget_micros` | whole micro-dollars | `TWILIO_WEEKLY_BUDGET_MICROS` |
//! | `ai_monthly_cap_micros` | whole micro-dollars | `AI_MONTHLY_CAP_MICROS` |
//! | `owner` | `{"name": label, "email": address}` | nobody is told |
//! | `rules` | the `ALERT_RULES` keys, over `ALERT_RULES` | `ALERT_RULES` |
//! | `channels` | routing by severity (`core::routing`) | `ALERT_ROUTING` |
//!
//! Parsing validates everything and names the field and the reason ([`FieldError`]); a bad
//! document changes nothing. The owner's email is personal data: it is stored and used to send
//! the owner's email, shown to the operator by `GET .../config`, and never logged or put in an
//! alert ([`ShopSettings::change_line`] names changed fields, not their values).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::monitor::rules::RuleSet;
use crate::monitor::Channel;
use crate::routing::{channel_name, RoutingSpec};
use crate::validate::{email_address, plain_text, whole_number, FieldError};

/// Largest budget or cap accepted: one million dollars.
pub const MAX_MICROS: u64 = 1_000_000_000_000;
/// Longest owner name label.
pub const MAX_OWNER_NAME_CHARS: usize = 60;

/// Who owns the shop: a name label for the greeting and the address owner emails go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerContact {
    pub name: String,
    pub email: String,
}

/// The shop's settings as the operator set them (`None`: the var's default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShopSettings {
    #[serde(default)]
    pub twilio_weekly_budget_micros: Option<u64>,
    #[serde(default)]
    pub ai_monthly_cap_micros: Option<u64>,
    #[serde(default)]
    pub owner: Option<OwnerContact>,
    /// Rule overrides, as given (checked against the fleet's rules when set and at load).
    #[serde(default)]
    pub rules: Option<Map<String, Value>>,
    #[serde(default)]
    pub channels: Option<RoutingSpec>,
}

/// What a settings document is checked against.
#[derive(Debug, Clone, Copy)]
pub struct SettingsContext<'a> {
    /// The fleet's rules (`ALERT_RULES` over the defaults): the overrides apply over them.
    pub fleet_rules: &'a RuleSet,
    /// Channels whose settings are present on the Worker.
    pub configured: &'a [Channel],
}

const FIELDS: [&str; 5] = ["twilio_weekly_budget_micros", "ai_monthly_cap_micros", "owner", "rules", "channels"];

fn micros(v: &Value, field: &str) -> Result<Option<u64>, FieldError> {
    if v.is_null() {
        return Ok(None);
    }
    whole_number(v, field, MAX_MICROS)
        .map(Some)
        .map_err(|e| FieldError::new(e.field, format!("{} (micro-dollars, 1 USD = 1000000)", e.reason)))
}

fn owner(v: &Value) -> Result<Option<OwnerContact>, FieldError> {
    if v.is_null() {
        return Ok(None);
    }
    let obj = v.as_object().ok_or_else(|| FieldError::new("owner", "must be an object {\"name\", \"email\"}"))?;
    if let Some(k) = obj.keys().find(|k| *k != "name" && *k != "email") {
        return Err(FieldError::new(format!("owner.{k}"), "is not an owner field (name, email)"));
    }
    let name = obj.get("name").ok_or_else(|| FieldError::new("owner.name", "is required"))?;
    let email = obj.get("email").ok_or_else(|| FieldError::new("owner.email", "is required"))?;
    Ok(Some(OwnerContact {
        name: plain_text(name, "owner.name", MAX_OWNER_NAME_CHARS)?,
        email: email_address(email, "owner.email")?,
    }))
}

/// Check rule overrides against the fleet's rules; the error names `rules.<field>`.
pub fn check_rules(overrides: &Map<String, Value>, fleet: &RuleSet) -> Result<RuleSet, FieldError> {
    fleet.with_shop_overrides(overrides).map_err(|e| match e.field() {
        Some(f) => FieldError::new(format!("rules.{f}"), e.reason()),
        None => FieldError::new("rules", e.reason()),
    })
}

impl ShopSettings {
    /// Parse and check a `PUT` body (the whole settings document).
    pub fn parse(body: &str, ctx: SettingsContext) -> Result<ShopSettings, FieldError> {
        let v: Value =
            serde_json::from_str(body).map_err(|e| FieldError::new("body", format!("is not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                k.as_str(),
                "is not a shop setting (twilio_weekly_budget_micros, ai_monthly_cap_micros, owner, rules, channels)",
            ));
        }
        let get = |k: &str| obj.get(k).unwrap_or(&Value::Null);
        let rules = match get("rules") {
            Value::Null => None,
            Value::Object(m) => {
                check_rules(m, ctx.fleet_rules)?;
                Some(m.clone())
            }
            _ => return Err(FieldError::new("rules", "must be an object (the ALERT_RULES keys)")),
        };
        let channels = match get("channels") {
            Value::Null => None,
            v => {
                let spec = RoutingSpec::from_value(v, "channels")?;
                if let Some((field, c)) = spec.unconfigured("channels", ctx.configured) {
                    return Err(FieldError::new(
                        field,
                        format!("{:?} is not configured on this Worker ({})", channel_name(c), channel_vars(c)),
                    ));
                }
                Some(spec)
            }
        };
        Ok(ShopSettings {
            twilio_weekly_budget_micros: micros(get("twilio_weekly_budget_micros"), "twilio_weekly_budget_micros")?,
            ai_monthly_cap_micros: micros(get("ai_monthly_cap_micros"), "ai_monthly_cap_micros")?,
            owner: owner(get("owner"))?,
            rules,
            channels,
        })
    }

    /// The fields that differ from `before`, in document order.
    pub fn changed_fields(&self, before: &ShopSettings) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.twilio_weekly_budget_micros != before.twilio_weekly_budget_micros {
            out.push(FIELDS[0]);
        }
        if self.ai_monthly_cap_micros != before.ai_monthly_cap_micros {
            out.push(FIELDS[1]);
        }
        if self.owner != before.owner {
            out.push(FIELDS[2]);
        }
        if self.rules != before.rules {
            out.push(FIELDS[3]);
        }
        if self.channels != before.channels {
            out.push(FIELDS[4]);
        }
        out
    }

    /// The settings without personal data, for the status: the owner's name and whether an
    /// email is set, never the address.
    pub fn public_view(&self) -> Value {
        serde_json::json!({
            "twilio_weekly_budget_micros": self.twilio_weekly_budget_micros,
            "ai_monthly_cap_micros": self.ai_monthly_cap_micros,
            "owner": self.owner.as_ref().map(|o| serde_json::json!({"name": o.name, "email_set": true})),
            "rules": self.rules,
            "channels": self.channels,
        })
    }
}

/// The vars that configure a channel (for error messages).
pub fn channel_vars(c: Channel) -> &'static str {
    match c {
        Channel::Webhook => "ALERT_WEBHOOK_URL is unset",
        Channel::PagerDuty => "PAGERDUTY_ROUTING_KEY is unset",
        Channel::Email => "ALERT_EMAIL_FROM or ALERT_EMAIL_TO is unset",
        Channel::Owner => "ALERT_EMAIL_FROM is unset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ShopSettings, FieldError> {
        let rules = RuleSet::default();
        ShopSettings::parse(
            &v.to_string(),
            SettingsContext { fleet_rules: &rules, configured: &[Channel::Webhook, Channel::Email] },
        )
    }

    #[test]
    fn a_full_document_parses_and_blank_fields_mean_the_default() {
        let s = parse(json!({
            "twilio_weekly_budget_micros": 5_000_000, "ai_monthly_cap_micros": null,
            "owner": {"name": "Robbie", "email": "robbie@swicked.example"},
            "rules": {"http_5xx_rate": {"threshold_ratio": 0.05}},
            "channels": {"critical": ["webhook", "email"], "warning": ["email"]}}))
        .unwrap();
        assert_eq!(s.twilio_weekly_budget_micros, Some(5_000_000));
        assert_eq!(s.ai_monthly_cap_micros, None);
        assert_eq!(s.owner.as_ref().unwrap().email, "robbie@swicked.example");
        assert_eq!(s.channels.as_ref().unwrap().warning, Some(vec![Channel::Email]));
        assert_eq!(parse(json!({})).unwrap(), ShopSettings::default());
        assert_eq!(
            s.changed_fields(&ShopSettings::default()),
            ["twilio_weekly_budget_micros", "owner", "rules", "channels"]
        );
        let view = s.public_view().to_string();
        assert!(!view.contains("robbie@"), "no address in the status view: {view}");
        let back: ShopSettings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn every_field_s_bad_value_is_named() {
        let cases = [
            (json!([]), "body"),
            (json!({"budget": 1}), "budget"),
            (json!({"twilio_weekly_budget_micros": -5}), "twilio_weekly_budget_micros"),
            (json!({"twilio_weekly_budget_micros": "5"}), "twilio_weekly_budget_micros"),
            (json!({"ai_monthly_cap_micros": 1.5}), "ai_monthly_cap_micros"),
            (json!({"ai_monthly_cap_micros": MAX_MICROS + 1}), "ai_monthly_cap_micros"),
            (json!({"owner": "robbie"}), "owner"),
            (json!({"owner": {"name": "Robbie"}}), "owner.email"),
            (json!({"owner": {"email": "a@b.io"}}), "owner.name"),
            (json!({"owner": {"name": "Robbie", "email": "not-an-email"}}), "owner.email"),
            (json!({"owner": {"name": "R\nBcc: x", "email": "a@b.io"}}), "owner.name"),
            (json!({"owner": {"name": "R", "email": "a@b.io", "phone": "1"}}), "owner.phone"),
            (json!({"rules": []}), "rules"),
            (json!({"rules": {"http_5xx_rate": {"window_s": 305}}}), "rules.http_5xx_rate.window_s"),
            (json!({"rules": {"nope": {}}}), "rules.nope"),
            (json!({"rules": {"bucket_s": 1}}), "rules.bucket_s"),
            (json!({"channels": {"critical": ["pagerduty"]}}), "channels.critical[0]"),
            (json!({"channels": ["sms"]}), "channels[0]"),
            (json!({"channels": 5}), "channels"),
        ];
        for (body, field) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
            assert!(!e.reason.contains("not-an-email"), "the email is never quoted: {e}");
        }
        let e = parse(json!({"channels": {"critical": ["pagerduty"]}})).unwrap_err();
        assert_eq!(e.reason, "\"pagerduty\" is not configured on this Worker (PAGERDUTY_ROUTING_KEY is unset)");
    }
}
