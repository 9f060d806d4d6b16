//! The rule table: the four alert rules and the global timing settings, all defaults in one
//! place with units in the names, the `ALERT_RULES` JSON override with one error per broken
//! rule, and what each rule measures over a window. Alert states live in `alert.rs`.
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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::digest::quantile;
use super::window::{Series, Window};
use crate::alerting::{Severity, Unit};

/// Default bucket width of the window ring.
pub const DEFAULT_BUCKET_S: u32 = 10;
/// Default minimum spacing of evaluations triggered by new records.
pub const DEFAULT_EVAL_INTERVAL_S: u32 = 1;
/// Default re-notification interval while an alert keeps firing (Alertmanager's 4 h).
pub const DEFAULT_REPEAT_INTERVAL_S: u32 = 4 * 3600;
/// Longest window, in buckets, that a rule may ask the ring to hold.
pub const MAX_WINDOW_BUCKETS: u32 = 8640;
/// Largest bucket width and evaluation interval accepted.
pub const MAX_BUCKET_S: u32 = 3600;
/// Largest latency threshold accepted (one hour).
pub const MAX_THRESHOLD_MS: f64 = 3_600_000.0;
/// `error_class` of a request whose Stripe webhook signature did not verify.
pub const STRIPE_SIGNATURE_ERROR_CLASS: &str = "StripeSignatureInvalid";

/// The rules the monitor knows. Names are the `ALERT_RULES` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RuleId {
    #[serde(rename = "http_5xx_rate")]
    Http5xxRate,
    #[serde(rename = "request_p95")]
    RequestP95,
    #[serde(rename = "d1_p95")]
    D1P95,
    #[serde(rename = "stripe_signature_failures")]
    StripeSignatureFailures,
}

impl RuleId {
    /// Every rule, in table order.
    pub const ALL: [RuleId; 4] =
        [RuleId::Http5xxRate, RuleId::RequestP95, RuleId::D1P95, RuleId::StripeSignatureFailures];

    pub fn name(self) -> &'static str {
        match self {
            RuleId::Http5xxRate => "http_5xx_rate",
            RuleId::RequestP95 => "request_p95",
            RuleId::D1P95 => "d1_p95",
            RuleId::StripeSignatureFailures => "stripe_signature_failures",
        }
    }

    pub fn from_name(name: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn unit(self) -> Unit {
        match self {
            RuleId::Http5xxRate => Unit::Ratio,
            RuleId::RequestP95 | RuleId::D1P95 => Unit::Ms,
            RuleId::StripeSignatureFailures => Unit::Count,
        }
    }

    /// `ALERT_RULES` field of the fire threshold.
    pub fn threshold_field(self) -> &'static str {
        match self {
            RuleId::Http5xxRate => "threshold_ratio",
            RuleId::RequestP95 | RuleId::D1P95 => "threshold_ms",
            RuleId::StripeSignatureFailures => "threshold_count",
        }
    }

    /// `ALERT_RULES` field of the clear threshold.
    pub fn clear_field(self) -> &'static str {
        match self {
            RuleId::Http5xxRate => "clear_ratio",
            RuleId::RequestP95 | RuleId::D1P95 => "clear_ms",
            RuleId::StripeSignatureFailures => "clear_count",
        }
    }

    /// `ALERT_RULES` field of the minimum-sample floor, if the rule has one.
    pub fn floor_field(self) -> Option<&'static str> {
        match self {
            RuleId::Http5xxRate => Some("min_requests"),
            RuleId::RequestP95 | RuleId::D1P95 => Some("min_samples"),
            RuleId::StripeSignatureFailures => None,
        }
    }

    /// Counts fire at `>= threshold` ("3 or more"); ratios and latencies at `> threshold`.
    pub fn fires_at_equal(self) -> bool {
        self.unit() == Unit::Count
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule with its effective parameters.
///
/// * fires when the value breaches `threshold` continuously for `for_s` (pending meanwhile);
/// * once firing, resolves when the value stays below `clear_threshold` (or there is no
///   data) for `keep_firing_for_s`; values between the two thresholds keep it firing;
/// * `min_samples` is the floor: with fewer samples in the window the rule has no data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub id: RuleId,
    pub enabled: bool,
    pub window_s: u32,
    pub for_s: u32,
    pub keep_firing_for_s: u32,
    pub threshold: f64,
    pub clear_threshold: f64,
    pub min_samples: u64,
    pub severity: Severity,
    pub description: &'static str,
    /// What the operator does (the design's alert table).
    pub action: &'static str,
}

/// The default rule table (design: "What we alert on").
///
/// | rule | fires | window | for | clear | hold | floor | severity |
/// |---|---|---|---|---|---|---|---|
/// | `http_5xx_rate` | 5xx/requests > 1% | 300 s | 300 s | < 0.5% | 60 s | 20 requests | critical |
/// | `request_p95` | p95 > 200 ms | 600 s | 600 s | < 180 ms | 120 s | 50 samples | warning |
/// | `d1_p95` | p95 of slowest D1 query > 200 ms | 600 s | 600 s | < 180 ms | 120 s | 50 samples | warning |
/// | `stripe_signature_failures` | >= 3 in the window | 3600 s | 0 s | < 3 | 0 s | none | warning |
pub const DEFAULT_RULES: [Rule; 4] = [
    Rule {
        id: RuleId::Http5xxRate,
        enabled: true,
        window_s: 300,
        for_s: 300,
        keep_firing_for_s: 60,
        threshold: 0.01,
        clear_threshold: 0.005,
        min_samples: 20,
        severity: Severity::Critical,
        description: "More than 1% of requests answered 5xx, sustained",
        action: "Worker logs, identify error class, deploy fix",
    },
    Rule {
        id: RuleId::RequestP95,
        enabled: true,
        window_s: 600,
        for_s: 600,
        keep_firing_for_s: 120,
        threshold: 200.0,
        clear_threshold: 180.0,
        min_samples: 50,
        severity: Severity::Warning,
        description: "Request latency p95 above 200 ms, sustained",
        action: "Worker logs: find the slow paths (D1 queries, external calls); D1 status page",
    },
    Rule {
        id: RuleId::D1P95,
        enabled: true,
        window_s: 600,
        for_s: 600,
        keep_firing_for_s: 120,
        threshold: 200.0,
        clear_threshold: 180.0,
        min_samples: 50,
        severity: Severity::Warning,
        description: "D1 latency p95 (slowest query per request) above 200 ms, sustained",
        action: "D1 status page, possibly index missing",
    },
    Rule {
        id: RuleId::StripeSignatureFailures,
        enabled: true,
        window_s: 3600,
        for_s: 0,
        keep_firing_for_s: 0,
        threshold: 3.0,
        clear_threshold: 3.0,
        min_samples: 0,
        severity: Severity::Warning,
        description: "3 or more Stripe webhook signature failures in an hour",
        action: "Possible secret rotation needed; check shop's Stripe config",
    },
];

/// The whole alerting configuration: global timing plus every rule (disabled ones included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleSet {
    /// Width of one window bucket.
    pub bucket_s: u32,
    /// Minimum spacing of evaluations that new records trigger.
    pub eval_interval_s: u32,
    /// Re-notify a still-firing alert after this long.
    pub repeat_interval_s: u32,
    /// One entry per [`RuleId`], in [`RuleId::ALL`] order.
    pub rules: Vec<Rule>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            bucket_s: DEFAULT_BUCKET_S,
            eval_interval_s: DEFAULT_EVAL_INTERVAL_S,
            repeat_interval_s: DEFAULT_REPEAT_INTERVAL_S,
            rules: DEFAULT_RULES.to_vec(),
        }
    }
}

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
}

impl std::fmt::Display for RulesConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use RulesConfigError as E;
        match self {
            E::InvalidJson { detail } => write!(f, "ALERT_RULES is not valid JSON: {detail}"),
            E::NotAnObject { field } => write!(f, "ALERT_RULES {field} must be a JSON object"),
            E::UnknownRule { name } => write!(
                f,
                "ALERT_RULES has unknown rule {name:?} (rules: http_5xx_rate, request_p95, d1_p95, \
                 stripe_signature_failures; globals: bucket_s, eval_interval_s, repeat_interval_s)"
            ),
            E::UnknownField { field } => write!(f, "ALERT_RULES {field} is not a known field"),
            E::WrongType { field, expected } => write!(f, "ALERT_RULES {field} must be {expected}"),
            E::Negative { field, value } => write!(f, "ALERT_RULES {field} must not be negative (got {value})"),
            E::Zero { field } => write!(f, "ALERT_RULES {field} must be greater than 0"),
            E::OutOfRange { field, value, allowed } => {
                write!(f, "ALERT_RULES {field} = {value} is out of range ({allowed})")
            }
            E::NotMultipleOfBucket { field, window_s, bucket_s } => {
                write!(f, "ALERT_RULES {field} = {window_s} is not a multiple of bucket_s = {bucket_s}")
            }
            E::TooManyBuckets { field, window_s, bucket_s, max_buckets } => write!(
                f,
                "ALERT_RULES {field} = {window_s} needs {} buckets of {bucket_s} s, more than {max_buckets}",
                window_s / bucket_s.max(&1)
            ),
            E::ClearAboveThreshold { field, clear, threshold_field, threshold } => {
                write!(f, "ALERT_RULES {field} = {clear} is above {threshold_field} = {threshold}")
            }
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
        for (key, v) in top {
            match key.as_str() {
                "bucket_s" => set.bucket_s = read_u32(v, key)?,
                "eval_interval_s" => set.eval_interval_s = read_u32(v, key)?,
                "repeat_interval_s" => set.repeat_interval_s = read_u32(v, key)?,
                name => {
                    let id = RuleId::from_name(name).ok_or(RulesConfigError::UnknownRule { name: name.into() })?;
                    let obj = v.as_object().ok_or(RulesConfigError::NotAnObject { field: name.into() })?;
                    set.rule_index(id).map(|i| apply_overrides(&mut set.rules[i], obj)).transpose()?;
                }
            }
        }
        set.validate()?;
        Ok(set)
    }

    fn rule_index(&self, id: RuleId) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// The rule `id` (every set built here holds all four).
    pub fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Buckets the ring must hold: the longest window of any rule.
    pub fn ring_buckets(&self) -> u32 {
        let bucket_s = self.bucket_s.max(1);
        self.rules.iter().map(|r| r.window_s / bucket_s).max().unwrap_or(1).max(1)
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

/// The default of rule `id`.
pub fn default_rule(id: RuleId) -> &'static Rule {
    match id {
        RuleId::Http5xxRate => &DEFAULT_RULES[0],
        RuleId::RequestP95 => &DEFAULT_RULES[1],
        RuleId::D1P95 => &DEFAULT_RULES[2],
        RuleId::StripeSignatureFailures => &DEFAULT_RULES[3],
    }
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

/// What a rule measured over its window at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The measured value; `None` when the window holds no sample at all.
    pub value: Option<f64>,
    /// Samples behind the value (requests, latency samples, or events).
    pub samples: u64,
}

/// How an observation compares with the rule's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Above the fire threshold (at or above for counts).
    Breach,
    /// Between the clear and fire thresholds: keeps a firing alert firing.
    Band,
    /// Below the clear threshold.
    Clear,
    /// Fewer samples than the floor (or none): not enough to judge.
    NoData,
}

impl Rule {
    /// Measure this rule over its window as of `now_ms`.
    pub fn observe(&self, window: &Window, now_ms: i64) -> Observation {
        let totals = window.totals(self.window_s, now_ms);
        match self.id {
            RuleId::Http5xxRate => Observation {
                value: (totals.requests > 0).then(|| totals.errors_5xx as f64 / totals.requests as f64),
                samples: totals.requests,
            },
            RuleId::RequestP95 => self.p95(window, Series::Request, now_ms),
            RuleId::D1P95 => self.p95(window, Series::D1, now_ms),
            RuleId::StripeSignatureFailures => Observation {
                value: Some(totals.stripe_signature_failures as f64),
                samples: totals.stripe_signature_failures,
            },
        }
    }

    fn p95(&self, window: &Window, series: Series, now_ms: i64) -> Observation {
        let merged = window.merged(series, self.window_s, now_ms);
        Observation { value: quantile(&merged, 0.95), samples: merged.count() as u64 }
    }

    /// Compare an observation with the thresholds (the floor first).
    pub fn verdict(&self, obs: &Observation) -> Verdict {
        let value = match obs.value {
            Some(v) if obs.samples >= self.min_samples => v,
            _ => return Verdict::NoData,
        };
        let breach = if self.id.fires_at_equal() { value >= self.threshold } else { value > self.threshold };
        if breach {
            Verdict::Breach
        } else if value < self.clear_threshold {
            Verdict::Clear
        } else {
            Verdict::Band
        }
    }

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
    fn verdicts_use_floor_fire_and_clear_thresholds() {
        let r = &DEFAULT_RULES[0];
        let obs = |errors: u64, requests: u64| Observation {
            value: (requests > 0).then(|| errors as f64 / requests as f64),
            samples: requests,
        };
        assert_eq!(r.verdict(&obs(1, 3)), Verdict::NoData, "3 requests is below the floor of 20");
        assert_eq!(r.verdict(&obs(0, 0)), Verdict::NoData);
        assert_eq!(r.verdict(&obs(2, 100)), Verdict::Breach);
        assert_eq!(r.verdict(&obs(1, 100)), Verdict::Band, "exactly 1% does not exceed 1%");
        assert_eq!(r.verdict(&obs(1, 150)), Verdict::Band);
        assert_eq!(r.verdict(&obs(1, 250)), Verdict::Clear);
        let s = &DEFAULT_RULES[3];
        let count = |n: u64| Observation { value: Some(n as f64), samples: n };
        assert_eq!(s.verdict(&count(3)), Verdict::Breach, "3 or more fires");
        assert_eq!(s.verdict(&count(2)), Verdict::Clear);
        assert_eq!(s.verdict(&count(0)), Verdict::Clear);
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
