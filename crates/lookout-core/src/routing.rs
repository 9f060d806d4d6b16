//! Routing by severity, pure: which channels get `critical`, `high` and `warning` alerts.
//! A [`RoutingSpec`] names channels per severity; a severity it leaves out inherits the layer
//! below (a shop's `channels` setting over the `ALERT_ROUTING` var over "every configured
//! channel", which is the behaviour before routing existed). Channels whose settings are
//! absent on the Worker are never routed to. Parsing names the broken field; no delivery here.
//!
//! ```json
//! {"critical": ["pagerduty", "email"], "high": ["pagerduty", "email"], "warning": ["email", "webhook"]}
//! ```
//!
//! A plain list (`["webhook"]`) is shorthand for the same channels at every severity; `[]`
//! routes a severity nowhere (recorded and shown, never sent).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alerting::Severity;
use crate::monitor::Channel;
use crate::validate::FieldError;

/// The channels an operator may route to, with their wire names.
pub const ROUTABLE: [(Channel, &str); 3] =
    [(Channel::Webhook, "webhook"), (Channel::PagerDuty, "pagerduty"), (Channel::Email, "email")];

/// Channels per severity; `None` inherits the layer below.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<Vec<Channel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Vec<Channel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Vec<Channel>>,
}

/// The channels each severity goes to, resolved (what the status shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveRouting {
    pub critical: Vec<Channel>,
    pub high: Vec<Channel>,
    pub warning: Vec<Channel>,
}

impl RoutingSpec {
    /// Parse a routing value (an object by severity, or a list for all severities) found at
    /// `field` (the name errors carry, e.g. `channels` or `ALERT_ROUTING`).
    pub fn from_value(v: &Value, field: &str) -> Result<RoutingSpec, FieldError> {
        match v {
            Value::Array(_) => {
                let list = channel_list(v, field)?;
                Ok(RoutingSpec { critical: Some(list.clone()), high: Some(list.clone()), warning: Some(list) })
            }
            Value::Object(obj) => {
                let mut spec = RoutingSpec::default();
                for (key, list) in obj {
                    let path = format!("{field}.{key}");
                    let slot = match key.as_str() {
                        "critical" => &mut spec.critical,
                        "high" => &mut spec.high,
                        "warning" => &mut spec.warning,
                        _ => return Err(FieldError::new(path, "is not a severity (critical, high, warning)")),
                    };
                    *slot = if list.is_null() { None } else { Some(channel_list(list, &path)?) };
                }
                Ok(spec)
            }
            _ => Err(FieldError::new(
                field,
                "must be a list of channels or an object of lists by severity (critical, high, warning)",
            )),
        }
    }

    /// Parse the `ALERT_ROUTING` var (blank: nothing routed specially).
    pub fn from_var(var: Option<&str>) -> Result<RoutingSpec, FieldError> {
        let Some(text) = var.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(RoutingSpec::default());
        };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| FieldError::new("ALERT_ROUTING", format!("is not valid JSON: {e}")))?;
        RoutingSpec::from_value(&v, "ALERT_ROUTING")
    }

    fn slot(&self, severity: Severity) -> Option<&Vec<Channel>> {
        match severity {
            Severity::Critical => self.critical.as_ref(),
            Severity::High => self.high.as_ref(),
            Severity::Warning => self.warning.as_ref(),
        }
    }

    /// This spec over `base`: each severity this one leaves out comes from `base`.
    pub fn over(&self, base: &RoutingSpec) -> RoutingSpec {
        RoutingSpec {
            critical: self.critical.clone().or_else(|| base.critical.clone()),
            high: self.high.clone().or_else(|| base.high.clone()),
            warning: self.warning.clone().or_else(|| base.warning.clone()),
        }
    }

    /// The channels a `severity` alert goes to, among those `configured` (in configured
    /// order); a severity the spec leaves out goes to every configured channel.
    pub fn channels_for(&self, severity: Severity, configured: &[Channel]) -> Vec<Channel> {
        match self.slot(severity) {
            Some(list) => configured.iter().copied().filter(|c| list.contains(c)).collect(),
            None => configured.to_vec(),
        }
    }

    /// Every severity resolved against `configured`.
    pub fn effective(&self, configured: &[Channel]) -> EffectiveRouting {
        EffectiveRouting {
            critical: self.channels_for(Severity::Critical, configured),
            high: self.channels_for(Severity::High, configured),
            warning: self.channels_for(Severity::Warning, configured),
        }
    }

    /// The first channel named here that is not `configured`, with the field naming it.
    pub fn unconfigured(&self, field: &str, configured: &[Channel]) -> Option<(String, Channel)> {
        [("critical", &self.critical), ("high", &self.high), ("warning", &self.warning)].into_iter().find_map(
            |(sev, list)| {
                let list = list.as_ref()?;
                list.iter().position(|c| !configured.contains(c)).map(|i| (format!("{field}.{sev}[{i}]"), list[i]))
            },
        )
    }
}

/// The wire name of a routable channel.
pub fn channel_name(c: Channel) -> &'static str {
    ROUTABLE.iter().find(|(ch, _)| *ch == c).map_or("owner", |(_, n)| n)
}

fn channel_list(v: &Value, field: &str) -> Result<Vec<Channel>, FieldError> {
    let items = v.as_array().ok_or_else(|| FieldError::new(field, "must be a list of channels"))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let name = item.as_str().ok_or_else(|| FieldError::new(&path, "must be a channel name (a string)"))?;
        let (channel, _) = ROUTABLE
            .iter()
            .find(|(_, n)| *n == name)
            .ok_or_else(|| FieldError::new(&path, format!("{name:?} is not a channel (webhook, pagerduty, email)")))?;
        if !out.contains(channel) {
            out.push(*channel);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: [Channel; 3] = [Channel::Webhook, Channel::PagerDuty, Channel::Email];

    #[test]
    fn the_default_routes_every_severity_to_every_configured_channel() {
        let spec = RoutingSpec::from_var(None).unwrap();
        for sev in [Severity::Critical, Severity::High, Severity::Warning] {
            assert_eq!(spec.channels_for(sev, &ALL), ALL);
            assert_eq!(spec.channels_for(sev, &[Channel::Email]), [Channel::Email]);
        }
    }

    #[test]
    fn severities_route_to_their_channels_and_layers_inherit() {
        let var =
            RoutingSpec::from_var(Some(r#"{"critical":["pagerduty","email"],"warning":["email","webhook"]}"#)).unwrap();
        assert_eq!(var.channels_for(Severity::Critical, &ALL), [Channel::PagerDuty, Channel::Email]);
        assert_eq!(var.channels_for(Severity::Warning, &ALL), [Channel::Webhook, Channel::Email]);
        assert_eq!(var.channels_for(Severity::High, &ALL), ALL, "left out: every channel");
        // PagerDuty not configured on this Worker: never routed to.
        assert_eq!(var.channels_for(Severity::Critical, &[Channel::Email]), [Channel::Email]);
        let shop = RoutingSpec::from_value(&json!({"warning": []}), "channels").unwrap();
        let eff = shop.over(&var).effective(&ALL);
        assert_eq!(eff.warning, Vec::<Channel>::new(), "the shop's empty list wins");
        assert_eq!(eff.critical, [Channel::PagerDuty, Channel::Email], "inherited from the var");
        let list = RoutingSpec::from_value(&json!(["webhook", "webhook"]), "channels").unwrap();
        assert_eq!(list.effective(&ALL).high, [Channel::Webhook]);
    }

    #[test]
    fn bad_routing_names_the_field() {
        let cases = [
            (json!({"critical": ["sms"]}), "channels.critical[0]", "\"sms\" is not a channel"),
            (json!({"urgent": ["email"]}), "channels.urgent", "is not a severity"),
            (json!({"high": "email"}), "channels.high", "must be a list of channels"),
            (json!([1]), "channels[0]", "must be a channel name"),
            (json!("email"), "channels", "must be a list of channels or an object"),
        ];
        for (v, field, reason) in cases {
            let e = RoutingSpec::from_value(&v, "channels").unwrap_err();
            assert_eq!(e.field, field, "{v}");
            assert!(e.reason.starts_with(reason), "{v}: {}", e.reason);
        }
        let e = RoutingSpec::from_var(Some("{")).unwrap_err();
        assert_eq!(e.field, "ALERT_ROUTING");
        let spec = RoutingSpec::from_value(&json!({"high": ["email", "pagerduty"]}), "channels").unwrap();
        assert_eq!(
            spec.unconfigured("channels", &[Channel::Email]),
            Some(("channels.high[1]".into(), Channel::PagerDuty))
        );
    }
}
