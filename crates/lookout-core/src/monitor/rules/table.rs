//! The rule table: the four alert rules and the global timing settings, all defaults in one
//! place with units in the names. Parsing `ALERT_RULES` is config.rs; measuring is eval.rs.

use serde::{Deserialize, Serialize};

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

impl RuleSet {
    /// The rule `id` (every set built here holds all four).
    pub fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Buckets that keep latency digests and diagnosis (the detail window): the longest
    /// window of an enabled rule that reads them (`http_5xx_rate` reads the diagnosis,
    /// the p95 rules the digests); at least the open bucket.
    pub fn detail_buckets(&self) -> u32 {
        let bucket_s = self.bucket_s.max(1);
        let reads_detail = |r: &&Rule| r.enabled && r.id != RuleId::StripeSignatureFailures;
        self.rules.iter().filter(reads_detail).map(|r| r.window_s / bucket_s).max().unwrap_or(1).max(1)
    }

    /// Buckets the ring must hold: the longest window of any rule.
    pub fn ring_buckets(&self) -> u32 {
        let bucket_s = self.bucket_s.max(1);
        self.rules.iter().map(|r| r.window_s / bucket_s).max().unwrap_or(1).max(1)
    }
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
