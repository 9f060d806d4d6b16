//! `ALERT_RULES`: the JSON override of the rule table's defaults, with one precise error per
//! broken rule or field, the validation of a [`RuleSet`], and each rule's effective parameters
//! under their `ALERT_RULES` names (for the status endpoint).
//!
//! `ALERT_RULES` is a JSON object; every key is optional and overrides one default:
//!
//! ```json
//! {"bucket_s": 1, "eval_interval_s": 1, "repeat_interval_s": 600,
//!  "http_5xx_rate": {"window_s": 5, "for_s": 3, "min_requests": 5},
//!  "request_p95": {"threshold_ms": 100, "clear_ms": 90},
//!  "d1_p95": {"enabled": false},
//!  "stripe_signature_failures": {"window_s": 60, "severity": "critical"}}
//! ```
//!
//! Per-rule fields: `enabled`, `window_s`, `for_s`, `keep_firing_for_s`, `severity`, and the
//! rule's unit-named thresholds (`threshold_ratio`/`clear_ratio`/`min_requests` for
//! `http_5xx_rate`, `threshold_ms`/`clear_ms`/`min_samples` for the p95 rules,
//! `threshold_count`/`clear_count` for `stripe_signature_failures`). An empty string means
//! "all defaults". Overriding a threshold without its clear threshold keeps the default
//! hysteresis: the clear threshold becomes the same fraction of the new threshold (50% for
//! the 5xx rate, 90% for latencies, 100% for counts).

use serde_json::{Map, Value};

use super::table::{default_rule, Rule, RuleId, RuleSet, MAX_BUCKET_S, MAX_THRESHOLD_MS, MAX_WINDOW_BUCKETS};
use crate::alerting::{Severity, Unit};

/// Why `ALERT_RULES` (or a hand-built [`RuleSet`]) was refused. `field` is the dotted path,
/// e.g. `http_5xx_rate.window_s` or `bucket_s`.
#[derive(Debug, Clone, PartialEq)]
pub enum RulesConfigError {
    /// Not valid JSON (the parser's message, which names line and column).
    InvalidJson { detail: String },
    /// The top level, or a rule's entry, is not a JSON object.
    NotAnObject { field: String },
    /// A top-level key that is neither a global setting nor a rule name.
    UnknownRule { name: String },
    /// A field this rule does not have (e.g. `threshold_ms` on `http_5xx_rate`).
    UnknownField { field: String },
    /// A field of the wrong JSON type.
    WrongType { field: String, expected: &'static str },
    /// A value below zero where only zero or more makes sense.
    Negative { field: String, value: String },
    /// Zero where only a positive value makes sense (windows, bucket width, intervals).
    Zero { field: String },
    /// A value outside its allowed range.
    OutOfRange { field: String, value: String, allowed: &'static str },
    /// A window that is not a whole number of buckets.
    NotMultipleOfBucket { field: String, window_s: u32, bucket_s: u32 },
    /// A window longer than the ring may hold.
    TooManyBuckets { field: String, window_s: u32, bucket_s: u32, max_buckets: u32 },
    /// The clear threshold is above the fire threshold, so the alert could never hold.
    ClearAboveThreshold { field: String, clear: f64, threshold_field: String, threshold: f64 },
    /// A global setting a shop cannot override (`bucket_s`, `eval_interval_s`: they shape the
    /// window every shop's monitor keeps).
    FleetWide { field: String },
    /// A shop's window longer than the ring the monitor keeps (the longest `ALERT_RULES` window).
    BeyondRing { field: String, window_s: u32, ring_s: u32 },
}

impl RulesConfigError {
    /// The dotted path of the broken field (`http_5xx_rate.window_s`, `bucket_s`), when the
    /// error is about one.
    pub fn field(&self) -> Option<&str> {
        use RulesConfigError as E;
        match self {
            E::InvalidJson { .. } => None,
            E::UnknownRule { name } => Some(name),
            E::NotAnObject { field }
            | E::UnknownField { field }
            | E::WrongType { field, .. }
            | E::Negative { field, .. }
            | E::Zero { field }
            | E::OutOfRange { field, .. }
            | E::NotMultipleOfBucket { field, .. }
            | E::TooManyBuckets { field, .. }
            | E::ClearAboveThreshold { field, .. }
            | E::FleetWide { field }
            | E::BeyondRing { field, .. } => Some(field),
        }
    }

    /// What is wrong, after the field's name (`= 305 is not a multiple of bucket_s = 10`).
    pub fn reason(&self) -> String {
        use RulesConfigError as E;
        match self {
            E::InvalidJson { detail } => format!("is not valid JSON: {detail}"),
            E::NotAnObject { .. } => "must be a JSON object".into(),
            E::UnknownRule { .. } => "is not a rule (rules: http_5xx_rate, request_p95, d1_p95, \
                 stripe_signature_failures; globals: bucket_s, eval_interval_s, repeat_interval_s)"
                .into(),
            E::UnknownField { .. } => "is not a known field".into(),
            E::WrongType { expected, .. } => format!("must be {expected}"),
            E::Negative { value, .. } => format!("must not be negative (got {value})"),
            E::Zero { .. } => "must be greater than 0".into(),
            E::OutOfRange { value, allowed, .. } => format!("= {value} is out of range ({allowed})"),
            E::NotMultipleOfBucket { window_s, bucket_s, .. } => {
                format!("= {window_s} is not a multiple of bucket_s = {bucket_s}")
            }
            E::TooManyBuckets { window_s, bucket_s, max_buckets, .. } => format!(
                "= {window_s} needs {} buckets of {bucket_s} s, more than {max_buckets}",
                window_s / bucket_s.max(&1)
            ),
            E::ClearAboveThreshold { clear, threshold_field, threshold, .. } => {
                format!("= {clear} is above {threshold_field} = {threshold}")
            }
            E::FleetWide { .. } => "is the same for every shop: set it in ALERT_RULES".into(),
            E::BeyondRing { window_s, ring_s, .. } => format!(
                "= {window_s} is longer than the {ring_s} s the monitor keeps (the longest window of ALERT_RULES)"
            ),
        }
    }
}

impl std::fmt::Display for RulesConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field() {
            Some(field) => write!(f, "ALERT_RULES {field} {}", self.reason()),
            None => write!(f, "ALERT_RULES {}", self.reason()),
        }
    }
}

impl std::error::Error for RulesConfigError {}

impl RuleSet {
    /// Defaults overridden by an `ALERT_RULES` JSON string; blank means defaults.
    pub fn from_alert_rules_json(json: &str) -> Result<RuleSet, RulesConfigError> {
        let mut set = RuleSet::default();
        if json.trim().is_empty() {
            return Ok(set);
        }
        let value: Value =
            serde_json::from_str(json).map_err(|e| RulesConfigError::InvalidJson { detail: e.to_string() })?;
        let top = value.as_object().ok_or(RulesConfigError::NotAnObject { field: "(top level)".into() })?;
        set.apply(top, true)?;
        set.validate()?;
        Ok(set)
    }

    /// A shop's overrides (same keys as `ALERT_RULES`, except the fleet-wide `bucket_s` and
    /// `eval_interval_s`) over this set. A window may not be longer than this set's ring.
    pub fn with_shop_overrides(&self, top: &Map<String, Value>) -> Result<RuleSet, RulesConfigError> {
        let mut set = self.clone();
        set.apply(top, false)?;
        set.validate()?;
        let ring_s = self.ring_buckets().saturating_mul(self.bucket_s.max(1));
        if let Some(r) = set.rules.iter().find(|r| r.window_s > ring_s) {
            return Err(RulesConfigError::BeyondRing {
                field: format!("{}.window_s", r.id),
                window_s: r.window_s,
                ring_s,
            });
        }
        Ok(set)
    }

    fn apply(&mut self, top: &Map<String, Value>, globals: bool) -> Result<(), RulesConfigError> {
        for (key, v) in top {
            match key.as_str() {
                "bucket_s" | "eval_interval_s" if !globals => {
                    return Err(RulesConfigError::FleetWide { field: key.clone() })
                }
                "bucket_s" => self.bucket_s = read_u32(v, key)?,
                "eval_interval_s" => self.eval_interval_s = read_u32(v, key)?,
                "repeat_interval_s" => self.repeat_interval_s = read_u32(v, key)?,
                name => {
                    let id = RuleId::from_name(name).ok_or(RulesConfigError::UnknownRule { name: name.into() })?;
                    let obj = v.as_object().ok_or(RulesConfigError::NotAnObject { field: name.into() })?;
                    self.rule_index(id).map(|i| apply_overrides(&mut self.rules[i], obj)).transpose()?;
                }
            }
        }
        Ok(())
    }

    fn rule_index(&self, id: RuleId) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// Check a set (the parser calls this; call it on a hand-built set too).
    pub fn validate(&self) -> Result<(), RulesConfigError> {
        positive_at_most(self.bucket_s, "bucket_s", MAX_BUCKET_S)?;
        positive_at_most(self.eval_interval_s, "eval_interval_s", MAX_BUCKET_S)?;
        if self.repeat_interval_s == 0 {
            return Err(RulesConfigError::Zero { field: "repeat_interval_s".into() });
        }
        self.rules.iter().try_for_each(|r| validate_rule(r, self.bucket_s))
    }
}

fn positive_at_most(value: u32, field: &str, max: u32) -> Result<(), RulesConfigError> {
    if value == 0 {
        return Err(RulesConfigError::Zero { field: field.into() });
    }
    if value > max {
        return Err(RulesConfigError::OutOfRange {
            field: field.into(),
            value: value.to_string(),
            allowed: "at most 3600",
        });
    }
    Ok(())
}

fn validate_rule(r: &Rule, bucket_s: u32) -> Result<(), RulesConfigError> {
    use RulesConfigError as E;
    let path = |f: &str| format!("{}.{f}", r.id.name());
    if r.window_s == 0 {
        return Err(E::Zero { field: path("window_s") });
    }
    if !r.window_s.is_multiple_of(bucket_s) {
        return Err(E::NotMultipleOfBucket { field: path("window_s"), window_s: r.window_s, bucket_s });
    }
    if r.window_s / bucket_s > MAX_WINDOW_BUCKETS {
        return Err(E::TooManyBuckets {
            field: path("window_s"),
            window_s: r.window_s,
            bucket_s,
            max_buckets: MAX_WINDOW_BUCKETS,
        });
    }
    validate_thresholds(r)
}

fn validate_thresholds(r: &Rule) -> Result<(), RulesConfigError> {
    use RulesConfigError as E;
    let (t_field, c_field) =
        (format!("{}.{}", r.id, r.id.threshold_field()), format!("{}.{}", r.id, r.id.clear_field()));
    let (max, allowed) = match r.id {
        RuleId::Http5xxRate => (1.0, "greater than 0 and at most 1"),
        RuleId::RequestP95 | RuleId::D1P95 => (MAX_THRESHOLD_MS, "greater than 0 and at most 3600000"),
        RuleId::StripeSignatureFailures => (f64::from(u32::MAX), "a whole number of at least 1"),
    };
    if !r.threshold.is_finite() || r.threshold <= 0.0 || r.threshold > max {
        return Err(E::OutOfRange { field: t_field, value: r.threshold.to_string(), allowed });
    }
    if !r.clear_threshold.is_finite() || r.clear_threshold < 0.0 {
        return Err(E::Negative { field: c_field, value: r.clear_threshold.to_string() });
    }
    if r.clear_threshold > r.threshold {
        return Err(E::ClearAboveThreshold {
            field: c_field,
            clear: r.clear_threshold,
            threshold_field: t_field,
            threshold: r.threshold,
        });
    }
    Ok(())
}

fn apply_overrides(rule: &mut Rule, obj: &Map<String, Value>) -> Result<(), RulesConfigError> {
    let id = rule.id;
    if obj.contains_key(id.threshold_field()) && !obj.contains_key(id.clear_field()) {
        // Keep the default hysteresis: clear at the same fraction of the new threshold.
        let d = default_rule(id);
        let threshold = obj.get(id.threshold_field()).and_then(Value::as_f64).unwrap_or(d.threshold);
        rule.clear_threshold = threshold * (d.clear_threshold / d.threshold);
        if id.unit() == Unit::Count {
            rule.clear_threshold = rule.clear_threshold.round();
        }
    }
    for (field, v) in obj {
        let path = format!("{id}.{field}");
        match field.as_str() {
            "enabled" => rule.enabled = v.as_bool().ok_or(wrong_type(&path, "true or false"))?,
            "window_s" => rule.window_s = read_u32(v, &path)?,
            "for_s" => rule.for_s = read_u32(v, &path)?,
            "keep_firing_for_s" => rule.keep_firing_for_s = read_u32(v, &path)?,
            "severity" => rule.severity = read_severity(v, &path)?,
            f if f == id.threshold_field() => rule.threshold = read_threshold(id, v, &path)?,
            f if f == id.clear_field() => rule.clear_threshold = read_threshold(id, v, &path)?,
            f if Some(f) == id.floor_field() => rule.min_samples = u64::from(read_u32(v, &path)?),
            _ => return Err(RulesConfigError::UnknownField { field: path }),
        }
    }
    Ok(())
}

fn wrong_type(path: &str, expected: &'static str) -> RulesConfigError {
    RulesConfigError::WrongType { field: path.into(), expected }
}

/// A whole number in `0..=u32::MAX`, with the precise error for anything else.
fn read_u32(v: &Value, path: &str) -> Result<u32, RulesConfigError> {
    let n = match v {
        Value::Number(n) => n,
        _ => return Err(wrong_type(path, "a whole number")),
    };
    if let Some(u) = n.as_u64() {
        return u32::try_from(u).map_err(|_| RulesConfigError::OutOfRange {
            field: path.into(),
            value: n.to_string(),
            allowed: "at most 4294967295",
        });
    }
    match n.as_f64() {
        Some(f) if f < 0.0 => Err(RulesConfigError::Negative { field: path.into(), value: n.to_string() }),
        _ => Err(wrong_type(path, "a whole number")),
    }
}

/// A threshold: any number for ratios and milliseconds, a whole number for counts.
fn read_threshold(id: RuleId, v: &Value, path: &str) -> Result<f64, RulesConfigError> {
    if id.unit() == Unit::Count {
        return read_u32(v, path).map(f64::from);
    }
    let f = v.as_f64().ok_or(wrong_type(path, "a number"))?;
    if f < 0.0 {
        return Err(RulesConfigError::Negative { field: path.into(), value: f.to_string() });
    }
    Ok(f)
}

fn read_severity(v: &Value, path: &str) -> Result<Severity, RulesConfigError> {
    match v.as_str() {
        Some("critical") => Ok(Severity::Critical),
        Some("high") => Ok(Severity::High),
        Some("warning") => Ok(Severity::Warning),
        Some(other) => Err(RulesConfigError::OutOfRange {
            field: path.into(),
            value: format!("{other:?}"),
            allowed: "\"critical\", \"high\" or \"warning\"",
        }),
        None => Err(wrong_type(path, "a string")),
    }
}

impl Rule {
    /// The effective parameters under their `ALERT_RULES` names (for the status endpoint).
    pub fn params(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("enabled".into(), self.enabled.into());
        m.insert("window_s".into(), self.window_s.into());
        m.insert("for_s".into(), self.for_s.into());
        m.insert("keep_firing_for_s".into(), self.keep_firing_for_s.into());
        m.insert(self.id.threshold_field().into(), number(self.id, self.threshold));
        m.insert(self.id.clear_field().into(), number(self.id, self.clear_threshold));
        if let Some(f) = self.id.floor_field() {
            m.insert(f.into(), self.min_samples.into());
        }
        m.insert("severity".into(), serde_json::to_value(self.severity).unwrap_or(Value::Null));
        m
    }
}

fn number(id: RuleId, v: f64) -> Value {
    if id.unit() == Unit::Count {
        Value::from(v as u64)
    } else {
        Value::from(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::rules::DEFAULT_RULES;
    use RulesConfigError as E;

    fn parse(json: &str) -> Result<RuleSet, RulesConfigError> {
        RuleSet::from_alert_rules_json(json)
    }

    #[test]
    fn defaults_follow_the_design_table() {
        let set = RuleSet::default();
        assert_eq!(set.validate(), Ok(()));
        assert_eq!((set.bucket_s, set.eval_interval_s, set.repeat_interval_s), (10, 1, 14_400));
        let r = set.rule(RuleId::Http5xxRate).expect("rule");
        assert_eq!((r.threshold, r.window_s, r.for_s), (0.01, 300, 300));
        assert_eq!(r.action, "Worker logs, identify error class, deploy fix");
        let d1 = set.rule(RuleId::D1P95).expect("rule");
        assert_eq!((d1.threshold, d1.window_s, d1.for_s), (200.0, 600, 600));
        let s = set.rule(RuleId::StripeSignatureFailures).expect("rule");
        assert_eq!((s.threshold, s.window_s, s.for_s), (3.0, 3600, 0));
        assert_eq!(set.ring_buckets(), 360);
        assert_eq!(parse("  ").expect("blank"), set);
    }

    #[test]
    fn partial_overrides_keep_the_other_defaults() {
        let set = parse(
            r#"{"bucket_s":1,"http_5xx_rate":{"window_s":5,"for_s":3,"min_requests":5},
                "request_p95":{"threshold_ms":100},"d1_p95":{"enabled":false},
                "stripe_signature_failures":{"window_s":60,"severity":"critical"}}"#,
        )
        .expect("valid");
        assert_eq!(set.bucket_s, 1);
        let r = set.rule(RuleId::Http5xxRate).expect("rule");
        assert_eq!((r.window_s, r.for_s, r.min_samples, r.threshold), (5, 3, 5, 0.01));
        let p = set.rule(RuleId::RequestP95).expect("rule");
        assert_eq!((p.threshold, p.window_s), (100.0, 600));
        assert_eq!(p.clear_threshold, 90.0, "clear keeps the default 90% of the threshold");
        assert!(!set.rule(RuleId::D1P95).expect("rule").enabled);
        assert_eq!(set.rule(RuleId::StripeSignatureFailures).expect("rule").severity, Severity::Critical);
    }

    #[test]
    fn bad_alert_rules_name_the_broken_field() {
        let cases: Vec<(&str, RulesConfigError)> = vec![
            ("{", E::InvalidJson { detail: "EOF while parsing an object at line 1 column 1".into() }),
            ("[1]", E::NotAnObject { field: "(top level)".into() }),
            (r#"{"http_5xx":{}}"#, E::UnknownRule { name: "http_5xx".into() }),
            (r#"{"request_p95":5}"#, E::NotAnObject { field: "request_p95".into() }),
            (r#"{"http_5xx_rate":{"threshold_ms":5}}"#, E::UnknownField { field: "http_5xx_rate.threshold_ms".into() }),
            (
                r#"{"stripe_signature_failures":{"min_samples":5}}"#,
                E::UnknownField { field: "stripe_signature_failures.min_samples".into() },
            ),
            (
                r#"{"d1_p95":{"window_s":"600"}}"#,
                E::WrongType { field: "d1_p95.window_s".into(), expected: "a whole number" },
            ),
            (
                r#"{"d1_p95":{"enabled":"no"}}"#,
                E::WrongType { field: "d1_p95.enabled".into(), expected: "true or false" },
            ),
            (
                r#"{"http_5xx_rate":{"window_s":-300}}"#,
                E::Negative { field: "http_5xx_rate.window_s".into(), value: "-300".into() },
            ),
            (r#"{"http_5xx_rate":{"window_s":0}}"#, E::Zero { field: "http_5xx_rate.window_s".into() }),
            (r#"{"bucket_s":0}"#, E::Zero { field: "bucket_s".into() }),
            (
                r#"{"http_5xx_rate":{"window_s":305}}"#,
                E::NotMultipleOfBucket { field: "http_5xx_rate.window_s".into(), window_s: 305, bucket_s: 10 },
            ),
            (
                // A default window breaks when only the bucket width changes: named precisely.
                r#"{"bucket_s":7}"#,
                E::NotMultipleOfBucket { field: "http_5xx_rate.window_s".into(), window_s: 300, bucket_s: 7 },
            ),
            (
                r#"{"request_p95":{"clear_ms":250}}"#,
                E::ClearAboveThreshold {
                    field: "request_p95.clear_ms".into(),
                    clear: 250.0,
                    threshold_field: "request_p95.threshold_ms".into(),
                    threshold: 200.0,
                },
            ),
            (
                r#"{"http_5xx_rate":{"threshold_ratio":1.5}}"#,
                E::OutOfRange {
                    field: "http_5xx_rate.threshold_ratio".into(),
                    value: "1.5".into(),
                    allowed: "greater than 0 and at most 1",
                },
            ),
            (
                r#"{"stripe_signature_failures":{"threshold_count":2.5}}"#,
                E::WrongType { field: "stripe_signature_failures.threshold_count".into(), expected: "a whole number" },
            ),
            (
                r#"{"bucket_s":1,"stripe_signature_failures":{"window_s":86400}}"#,
                E::TooManyBuckets {
                    field: "stripe_signature_failures.window_s".into(),
                    window_s: 86_400,
                    bucket_s: 1,
                    max_buckets: MAX_WINDOW_BUCKETS,
                },
            ),
            (
                r#"{"request_p95":{"severity":"page"}}"#,
                E::OutOfRange {
                    field: "request_p95.severity".into(),
                    value: "\"page\"".into(),
                    allowed: "\"critical\", \"high\" or \"warning\"",
                },
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(parse(json), Err(expected), "for {json}");
        }
    }

    #[test]
    fn errors_display_the_rule_and_field() {
        let e = parse(r#"{"http_5xx_rate":{"window_s":305}}"#).expect_err("invalid");
        assert_eq!(e.to_string(), "ALERT_RULES http_5xx_rate.window_s = 305 is not a multiple of bucket_s = 10");
        let e = parse(r#"{"request_p95":{"clear_ms":250}}"#).expect_err("invalid");
        assert_eq!(e.to_string(), "ALERT_RULES request_p95.clear_ms = 250 is above request_p95.threshold_ms = 200");
    }

    #[test]
    fn shop_overrides_apply_over_the_fleet_set_within_its_ring() {
        let fleet = parse(r#"{"http_5xx_rate":{"window_s":60}}"#).expect("valid");
        let obj = |s: &str| serde_json::from_str::<Map<String, Value>>(s).expect("object");
        let shop = fleet.with_shop_overrides(&obj(r#"{"http_5xx_rate":{"for_s":30},"repeat_interval_s":600}"#));
        let shop = shop.expect("valid");
        let r = shop.rule(RuleId::Http5xxRate).expect("rule");
        assert_eq!((r.window_s, r.for_s, shop.repeat_interval_s), (60, 30, 600), "fleet window kept");
        assert_eq!(
            fleet.with_shop_overrides(&obj(r#"{"bucket_s":1}"#)),
            Err(E::FleetWide { field: "bucket_s".into() })
        );
        let e = fleet.with_shop_overrides(&obj(r#"{"d1_p95":{"window_s":7200}}"#)).expect_err("beyond the ring");
        assert_eq!(e, E::BeyondRing { field: "d1_p95.window_s".into(), window_s: 7200, ring_s: 3600 });
        assert_eq!(e.field(), Some("d1_p95.window_s"));
        assert!(e.reason().starts_with("= 7200 is longer than the 3600 s"), "{}", e.reason());
        let e = fleet.with_shop_overrides(&obj(r#"{"request_p95":{"threshold_ms":-1}}"#)).expect_err("negative");
        assert_eq!(e.field(), Some("request_p95.threshold_ms"));
    }

    #[test]
    fn params_use_the_alert_rules_names() {
        let p = DEFAULT_RULES[3].params();
        assert_eq!(p["threshold_count"], 3);
        assert_eq!(p["window_s"], 3600);
        assert!(!p.contains_key("min_samples"));
        assert_eq!(DEFAULT_RULES[0].params()["min_requests"], 20);
    }
}
