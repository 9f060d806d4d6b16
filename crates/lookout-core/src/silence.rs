//! Silences with Alertmanager's semantics, pure: matchers (a shop or `*`, a rule or `*`), a
//! start and an end, a comment. A silence is `pending` before its start, `active` until its
//! end, `expired` after (an operator may expire it early); only an active silence matches. A
//! silenced incident is still recorded and shown, only its notifications are held (decided in
//! `core::mute`). The fleet object keeps the [`SilenceStore`]; each shop monitor keeps a copy
//! of the silences that can match it. Parsing names the broken field.
//!
//! A fleet alert (`fleet:{rule}`, no single shop) is matched only by a silence whose shop is
//! `*`, with rule `*`, `fleet:{rule}` or `{rule}` (silencing a rule fleet-wide silences its
//! fleet alert too).

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::monitor::time::rfc3339_ms;
use crate::validate::{plain_text, FieldError};

/// Longest comment kept.
pub const MAX_COMMENT_CHARS: usize = 500;
/// Longest `created_by` kept.
pub const MAX_CREATED_BY_CHARS: usize = 100;
/// Longest silence accepted.
pub const MAX_SILENCE_MS: i64 = 366 * 86_400_000;
/// Silences not yet expired that the store holds at most.
pub const MAX_LIVE_SILENCES: usize = 200;
/// Expired silences are kept this long for the listing (Alertmanager's retention: 120 h).
pub const EXPIRED_RETENTION_MS: i64 = 120 * 3_600_000;
/// Prefix of a fleet alert's rule.
pub const FLEET_RULE_PREFIX: &str = "fleet:";

/// What a silence matches: a shop slug or `*`, a rule name or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matchers {
    pub shop: String,
    pub rule: String,
}

/// Where a silence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

/// One silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Matchers,
    pub starts_at_ms: i64,
    /// When it ends (set to the expiry time when an operator expires it early).
    pub ends_at_ms: i64,
    pub comment: String,
    #[serde(default)]
    pub created_by: Option<String>,
    pub created_at_ms: i64,
    /// When an operator expired it (`DELETE /ops/silences/{id}`).
    #[serde(default)]
    pub expired_early_at_ms: Option<i64>,
}

impl Silence {
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms >= self.ends_at_ms {
            SilenceState::Expired
        } else if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Whether the matchers match an alert of `shop` (`None`: a fleet alert) and `rule`,
    /// whatever the time.
    pub fn matches_labels(&self, shop: Option<&str>, rule: &str) -> bool {
        let m = &self.matchers;
        match shop {
            Some(s) => (m.shop == "*" || m.shop == s) && (m.rule == "*" || m.rule == rule),
            None => {
                let bare = rule.strip_prefix(FLEET_RULE_PREFIX).unwrap_or(rule);
                m.shop == "*" && (m.rule == "*" || m.rule == rule || m.rule == bare)
            }
        }
    }

    /// Whether it silences that alert at `now_ms` (active and matching).
    pub fn silences(&self, shop: Option<&str>, rule: &str, now_ms: i64) -> bool {
        self.state(now_ms) == SilenceState::Active && self.matches_labels(shop, rule)
    }

    /// Whether it can ever match an alert of `shop` (its shop matcher is `shop` or `*`).
    pub fn concerns_shop(&self, shop: &str) -> bool {
        self.matchers.shop == "*" || self.matchers.shop == shop
    }

    /// The JSON the operator API shows: the stored fields, times in RFC 3339 and the state.
    pub fn view(&self, now_ms: i64) -> Value {
        serde_json::json!({
            "id": self.id,
            "matchers": self.matchers,
            "starts_at": rfc3339_ms(self.starts_at_ms),
            "ends_at": rfc3339_ms(self.ends_at_ms),
            "comment": self.comment,
            "created_by": self.created_by,
            "created_at": rfc3339_ms(self.created_at_ms),
            "expired_early_at": self.expired_early_at_ms.map(rfc3339_ms),
            "state": self.state(now_ms),
        })
    }
}

/// A silence as the operator posts it, validated (the store gives it its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSilence {
    pub matchers: Matchers,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub comment: String,
    pub created_by: Option<String>,
}

fn timestamp(v: &Value, field: &str) -> Result<i64, FieldError> {
    let s = v.as_str().ok_or_else(|| FieldError::new(field, "must be an RFC 3339 time (2026-05-10T14:00:00Z)"))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| FieldError::new(field, "must be an RFC 3339 time (2026-05-10T14:00:00Z)"))
}

impl NewSilence {
    /// Parse `POST /ops/silences`:
    /// `{"matchers": {"shop": "swicked" | "*", "rule": "http_5xx_rate" | "*"}, "starts_at":
    /// RFC 3339 (default now), "ends_at": RFC 3339, "comment": text, "created_by": text?}`.
    /// `known_shop` and `known_rule` say which names exist.
    pub fn parse(
        body: &str,
        now_ms: i64,
        known_shop: impl Fn(&str) -> bool,
        known_rule: impl Fn(&str) -> bool,
    ) -> Result<NewSilence, FieldError> {
        let v: Value =
            serde_json::from_str(body).map_err(|e| FieldError::new("body", format!("is not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        for key in obj.keys() {
            if !["matchers", "starts_at", "ends_at", "comment", "created_by"].contains(&key.as_str()) {
                return Err(FieldError::new(
                    key.as_str(),
                    "is not a silence field (matchers, starts_at, ends_at, comment, created_by)",
                ));
            }
        }
        let m = obj.get("matchers").ok_or_else(|| FieldError::new("matchers", "is required"))?;
        let m = m.as_object().ok_or_else(|| FieldError::new("matchers", "must be an object {\"shop\", \"rule\"}"))?;
        if let Some(k) = m.keys().find(|k| *k != "shop" && *k != "rule") {
            return Err(FieldError::new(format!("matchers.{k}"), "is not a matcher (shop, rule)"));
        }
        let shop = m
            .get("shop")
            .ok_or_else(|| FieldError::new("matchers.shop", "is required (a shop slug or \"*\")"))?
            .as_str()
            .ok_or_else(|| FieldError::new("matchers.shop", "must be a string (a shop slug or \"*\")"))?;
        if shop != "*" && !known_shop(shop) {
            return Err(FieldError::new("matchers.shop", "is not a shop this Worker serves (or \"*\")"));
        }
        let rule = m
            .get("rule")
            .ok_or_else(|| FieldError::new("matchers.rule", "is required (a rule name or \"*\")"))?
            .as_str()
            .ok_or_else(|| FieldError::new("matchers.rule", "must be a string (a rule name or \"*\")"))?;
        if rule != "*" && !known_rule(rule) {
            return Err(FieldError::new("matchers.rule", format!("{rule:?} is not a known rule (or \"*\")")));
        }
        let starts_at_ms = match obj.get("starts_at") {
            None | Some(Value::Null) => now_ms,
            Some(v) => timestamp(v, "starts_at")?,
        };
        let ends_at_ms = timestamp(obj.get("ends_at").unwrap_or(&Value::Null), "ends_at")?;
        if ends_at_ms <= starts_at_ms {
            return Err(FieldError::new("ends_at", "must be after starts_at"));
        }
        if ends_at_ms <= now_ms {
            return Err(FieldError::new("ends_at", "must be in the future"));
        }
        if ends_at_ms - starts_at_ms.max(now_ms) > MAX_SILENCE_MS {
            return Err(FieldError::new("ends_at", "must be at most 366 days after starts_at"));
        }
        let comment = plain_text(obj.get("comment").unwrap_or(&Value::Null), "comment", MAX_COMMENT_CHARS)
            .map_err(|e| if obj.contains_key("comment") { e } else { FieldError::new("comment", "is required") })?;
        let created_by = match obj.get("created_by") {
            None | Some(Value::Null) => None,
            Some(v) => Some(plain_text(v, "created_by", MAX_CREATED_BY_CHARS)?),
        };
        Ok(NewSilence {
            matchers: Matchers { shop: shop.to_string(), rule: rule.to_string() },
            starts_at_ms,
            ends_at_ms,
            comment,
            created_by,
        })
    }
}

/// Why the store refused an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SilenceError {
    /// [`MAX_LIVE_SILENCES`] pending or active silences already.
    TooMany,
    /// No silence has this id.
    Unknown,
    /// It has already expired.
    AlreadyExpired,
}

impl std::fmt::Display for SilenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SilenceError::TooMany => write!(f, "{MAX_LIVE_SILENCES} silences are pending or active already"),
            SilenceError::Unknown => write!(f, "no silence has this id"),
            SilenceError::AlreadyExpired => write!(f, "this silence has already expired"),
        }
    }
}

/// Every silence, with a version that changes whenever one is added or expired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceStore {
    pub silences: Vec<Silence>,
    pub next_id: u64,
    pub version: u64,
}

impl SilenceStore {
    /// Add a silence at `now_ms`; its id is `sil_{n}`.
    pub fn create(&mut self, new: NewSilence, now_ms: i64) -> Result<&Silence, SilenceError> {
        self.gc(now_ms);
        if self.silences.iter().filter(|s| s.state(now_ms) != SilenceState::Expired).count() >= MAX_LIVE_SILENCES {
            return Err(SilenceError::TooMany);
        }
        self.next_id += 1;
        self.version += 1;
        self.silences.push(Silence {
            id: format!("sil_{}", self.next_id),
            matchers: new.matchers,
            starts_at_ms: new.starts_at_ms,
            ends_at_ms: new.ends_at_ms,
            comment: new.comment,
            created_by: new.created_by,
            created_at_ms: now_ms,
            expired_early_at_ms: None,
        });
        Ok(self.silences.last().expect("just pushed"))
    }

    /// Expire a silence now (Alertmanager's expire: its end becomes `now_ms`).
    pub fn expire(&mut self, id: &str, now_ms: i64) -> Result<&Silence, SilenceError> {
        let i = self.silences.iter().position(|s| s.id == id).ok_or(SilenceError::Unknown)?;
        if self.silences[i].state(now_ms) == SilenceState::Expired {
            return Err(SilenceError::AlreadyExpired);
        }
        let s = &mut self.silences[i];
        s.ends_at_ms = now_ms;
        s.starts_at_ms = s.starts_at_ms.min(now_ms);
        s.expired_early_at_ms = Some(now_ms);
        self.version += 1;
        Ok(&self.silences[i])
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.silences.iter().find(|s| s.id == id)
    }

    /// Drop silences expired longer than [`EXPIRED_RETENTION_MS`] ago; whether any went.
    pub fn gc(&mut self, now_ms: i64) -> bool {
        let before = self.silences.len();
        self.silences.retain(|s| now_ms.saturating_sub(s.ends_at_ms) < EXPIRED_RETENTION_MS);
        before != self.silences.len()
    }

    /// The silences not yet expired that can match an alert of `shop`, for its monitor.
    pub fn for_shop(&self, shop: &str, now_ms: i64) -> Vec<Silence> {
        self.silences
            .iter()
            .filter(|s| s.state(now_ms) != SilenceState::Expired && s.concerns_shop(shop))
            .cloned()
            .collect()
    }

    /// The first active silence of an alert.
    pub fn silencing(&self, shop: Option<&str>, rule: &str, now_ms: i64) -> Option<&Silence> {
        self.silences.iter().find(|s| s.silences(shop, rule, now_ms))
    }

    /// When the next silence starts or ends after `now_ms` (a held alert may be released).
    pub fn next_change_ms(&self, now_ms: i64) -> Option<i64> {
        self.silences.iter().flat_map(|s| [s.starts_at_ms, s.ends_at_ms]).filter(|t| *t > now_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_778_400_000_000; // 2026-05-10T08:00:00Z

    fn parse(v: Value) -> Result<NewSilence, FieldError> {
        NewSilence::parse(&v.to_string(), T0, |s| s == "swicked" || s == "demo", |r| r == "http_5xx_rate")
    }

    fn silence(shop: &str, rule: &str, start: i64, end: i64) -> Silence {
        let new = NewSilence {
            matchers: Matchers { shop: shop.into(), rule: rule.into() },
            starts_at_ms: start,
            ends_at_ms: end,
            comment: "deploying".into(),
            created_by: None,
        };
        let mut store = SilenceStore::default();
        store.create(new, T0).unwrap().clone()
    }

    #[test]
    fn a_silence_matches_only_while_active() {
        let s = silence("swicked", "http_5xx_rate", T0 + 1_000, T0 + 60_000);
        assert_eq!(s.state(T0), SilenceState::Pending);
        assert!(!s.silences(Some("swicked"), "http_5xx_rate", T0), "pending: no match");
        assert!(s.silences(Some("swicked"), "http_5xx_rate", T0 + 1_000));
        assert!(s.silences(Some("swicked"), "http_5xx_rate", T0 + 59_999));
        assert!(!s.silences(Some("swicked"), "http_5xx_rate", T0 + 60_000), "expired: no match");
        assert_eq!(s.state(T0 + 60_000), SilenceState::Expired);
        assert!(!s.silences(Some("demo"), "http_5xx_rate", T0 + 2_000), "other shop");
        assert!(!s.silences(Some("swicked"), "d1_p95", T0 + 2_000), "other rule");
        assert!(!s.silences(None, "fleet:http_5xx_rate", T0 + 2_000), "a shop's silence never holds a fleet alert");
    }

    #[test]
    fn wildcards_match_every_shop_or_rule_and_fleet_alerts_need_shop_star() {
        let any_rule = silence("swicked", "*", T0, T0 + 60_000);
        assert!(any_rule.silences(Some("swicked"), "cron_missed", T0));
        assert!(!any_rule.silences(Some("demo"), "cron_missed", T0));
        let fleetwide = silence("*", "http_5xx_rate", T0, T0 + 60_000);
        assert!(fleetwide.silences(Some("demo"), "http_5xx_rate", T0));
        assert!(fleetwide.silences(None, "fleet:http_5xx_rate", T0));
        assert!(!fleetwide.silences(None, "fleet:d1_p95", T0));
        assert!(silence("*", "*", T0, T0 + 1).silences(None, "fleet:d1_p95", T0));
    }

    #[test]
    fn the_store_expires_early_lists_per_shop_and_forgets_old_silences() {
        let mut store = SilenceStore::default();
        let new = parse(json!({"matchers": {"shop": "swicked", "rule": "*"},
            "ends_at": "2026-05-10T09:00:00Z", "comment": "maintenance"}))
        .unwrap();
        assert_eq!((new.starts_at_ms, new.ends_at_ms), (T0, T0 + 3_600_000), "starts now by default");
        let id = store.create(new.clone(), T0).unwrap().id.clone();
        assert_eq!(id, "sil_1");
        let v0 = store.version;
        assert_eq!(store.for_shop("swicked", T0).len(), 1);
        assert!(store.for_shop("demo", T0).is_empty());
        assert_eq!(store.next_change_ms(T0), Some(T0 + 3_600_000));
        let s = store.expire(&id, T0 + 10).unwrap();
        assert_eq!((s.state(T0 + 10), s.expired_early_at_ms), (SilenceState::Expired, Some(T0 + 10)));
        assert!(store.version > v0);
        assert_eq!(store.expire(&id, T0 + 20), Err(SilenceError::AlreadyExpired));
        assert_eq!(store.expire("sil_9", T0 + 20), Err(SilenceError::Unknown));
        assert!(store.for_shop("swicked", T0 + 20).is_empty(), "expired: not sent to shops");
        assert!(store.get(&id).is_some(), "kept for the listing");
        assert!(store.gc(T0 + 10 + EXPIRED_RETENTION_MS));
        assert!(store.get(&id).is_none());
        for _ in 0..MAX_LIVE_SILENCES {
            store.create(new.clone(), T0).unwrap();
        }
        assert_eq!(store.create(new, T0).unwrap_err(), SilenceError::TooMany);
    }

    #[test]
    fn bad_silences_name_the_field() {
        let ok = json!({"matchers": {"shop": "swicked", "rule": "http_5xx_rate"},
            "starts_at": "2026-05-10T08:00:00Z", "ends_at": "2026-05-10T09:00:00Z", "comment": "deploy"});
        assert!(parse(ok.clone()).is_ok());
        let with = |k: &str, v: Value| {
            let mut o = ok.clone();
            o[k] = v;
            o
        };
        let cases = [
            (json!([]), "body"),
            (with("silly", json!(1)), "silly"),
            (json!({"ends_at": "2026-05-10T09:00:00Z", "comment": "x"}), "matchers"),
            (with("matchers", json!({"shop": "nowhere", "rule": "*"})), "matchers.shop"),
            (with("matchers", json!({"shop": "*", "rule": "http_5xx"})), "matchers.rule"),
            (with("matchers", json!({"shop": "*"})), "matchers.rule"),
            (with("matchers", json!({"shop": "*", "rule": "*", "env": "x"})), "matchers.env"),
            (with("starts_at", json!("yesterday")), "starts_at"),
            (with("ends_at", json!("2026-05-10T07:59:00Z")), "ends_at"),
            (with("ends_at", json!(12)), "ends_at"),
            (with("comment", json!("")), "comment"),
            (with("comment", json!("x".repeat(501))), "comment"),
            (with("created_by", json!(5)), "created_by"),
        ];
        for (body, field) in cases {
            assert_eq!(parse(body.clone()).unwrap_err().field, field, "{body}");
        }
        let mut no_comment = ok.clone();
        no_comment.as_object_mut().unwrap().remove("comment");
        assert_eq!(parse(no_comment).unwrap_err(), FieldError::new("comment", "is required"));
    }
}
