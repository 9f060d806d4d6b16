//! The operator status view (`GET /ops/shops/{shop}/status`), built from a [`Monitor`] as of
//! `now_ms`: window figures, every rule with its effective parameters and state, recent state
//! changes, the outbox, counters. Building and serializing only; auth and HTTP are the edge's.

use serde::Serialize;
use serde_json::{Map, Value};

use super::digest::quantile;
use super::monitor::{Counters, Monitor};
use super::notify::EventKind;
use super::outbox::Channel;
use super::rules::RuleId;
use super::time::{rfc3339_ms, rfc3339_opt};
use super::window::Series;
use crate::alerting::{AlertState, Severity};

/// The whole status document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub shop: String,
    /// The instant the figures are computed for.
    pub now: String,
    pub last_evaluated_at: Option<String>,
    /// When the monitor wants to be evaluated next (`None`: idle).
    pub next_due_at: Option<String>,
    pub bucket_s: u32,
    /// Windows up to this long have latency figures (the buckets of the detail window keep
    /// digests; older ones only counts).
    pub detail_window_s: u32,
    pub eval_interval_s: u32,
    pub repeat_interval_s: u32,
    /// Figures over each distinct rule window, shortest first.
    pub windows: Vec<WindowFigures>,
    pub rules: Vec<RuleStatus>,
    /// Newest last, at most 50.
    pub recent_changes: Vec<ChangeStatus>,
    pub outbox: OutboxStatus,
    pub rejected_records: u64,
    pub counters: Counters,
    /// The last build version seen in a record.
    pub build_version: Option<String>,
}

/// Totals and latency quantiles over the last `window_s` seconds (quantiles `None` for a window
/// longer than the detail window, whose older buckets keep no digest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowFigures {
    pub window_s: u32,
    pub requests: u64,
    pub errors_5xx: u64,
    /// `errors_5xx / requests`; `None` without requests.
    pub error_rate: Option<f64>,
    pub stripe_signature_failures: u64,
    pub request_p50_ms: Option<f64>,
    pub request_p95_ms: Option<f64>,
    pub d1_samples: u64,
    pub d1_p50_ms: Option<f64>,
    pub d1_p95_ms: Option<f64>,
}

/// One rule: effective parameters (under their `ALERT_RULES` names) and its alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatus {
    pub rule: RuleId,
    pub params: Map<String, Value>,
    pub severity: Severity,
    pub description: String,
    pub action: String,
    pub state: AlertState,
    /// The value at the last evaluation (`None`: no sample in the window).
    pub value: Option<f64>,
    pub samples: u64,
    /// Whether `samples` reached the rule's floor at the last evaluation.
    pub above_floor: bool,
    /// When the state last changed.
    pub since: Option<String>,
    pub active_at: Option<String>,
    pub fired_at: Option<String>,
    pub resolved_at: Option<String>,
    pub last_sent_at: Option<String>,
    pub incident_seq: u64,
    /// Dedup key of the current or last incident.
    pub dedup_key: Option<String>,
}

/// One state change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeStatus {
    pub at: String,
    pub rule: RuleId,
    pub from: AlertState,
    pub to: AlertState,
    pub value: Option<f64>,
    pub incident_seq: u64,
}

/// The outbox in short.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxStatus {
    pub backlog: usize,
    pub entries: Vec<BacklogItem>,
    pub sent_total: u64,
    pub dead_lettered_total: u64,
    pub dropped_full_total: u64,
    /// The most recent dead letters, oldest first.
    pub dead_letters: Vec<BacklogItem>,
}

/// One queued or dead delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacklogItem {
    pub dedup_key: String,
    pub event: EventKind,
    pub channel: Channel,
    pub attempts: u32,
    /// Next attempt (queued) or when it was given up (dead letters).
    pub at: String,
    pub last_error: Option<String>,
}

impl Monitor {
    /// The status document as of `now_ms` (window figures are computed now; rule values are
    /// those of the last evaluation).
    pub fn status(&self, now_ms: i64) -> Status {
        let rules = &self.config.rules;
        Status {
            shop: self.shop.clone(),
            now: rfc3339_ms(now_ms),
            last_evaluated_at: rfc3339_opt(self.last_eval_ms),
            next_due_at: rfc3339_opt(self.next_due_ms(now_ms)),
            bucket_s: rules.bucket_s,
            detail_window_s: self.window.detail_window_s(),
            eval_interval_s: rules.eval_interval_s,
            repeat_interval_s: rules.repeat_interval_s,
            windows: self.window_figures(now_ms),
            rules: self.rule_statuses(),
            recent_changes: self.changes.iter().map(change_status).collect(),
            outbox: self.outbox_status(),
            rejected_records: self.counters.rejected(),
            counters: self.counters.clone(),
            build_version: self.build_version.as_ref().map(|(_, v)| v.clone()),
        }
    }

    fn window_figures(&self, now_ms: i64) -> Vec<WindowFigures> {
        let mut widths: Vec<u32> = self.config.rules.rules.iter().map(|r| r.window_s).collect();
        widths.sort_unstable();
        widths.dedup();
        widths.into_iter().map(|w| self.figures(w, now_ms)).collect()
    }

    fn figures(&self, window_s: u32, now_ms: i64) -> WindowFigures {
        let t = self.window.totals(window_s, now_ms);
        let within = window_s <= self.window.detail_window_s();
        let merged = |s: Series| within.then(|| self.window.merged(s, window_s, now_ms));
        let (req, d1) = (merged(Series::Request), merged(Series::D1));
        let q = |d: &Option<tdigest::TDigest>, q: f64| d.as_ref().and_then(|d| quantile(d, q));
        WindowFigures {
            window_s,
            requests: t.requests,
            errors_5xx: t.errors_5xx,
            error_rate: (t.requests > 0).then(|| t.errors_5xx as f64 / t.requests as f64),
            stripe_signature_failures: t.stripe_signature_failures,
            request_p50_ms: q(&req, 0.5),
            request_p95_ms: q(&req, 0.95),
            d1_samples: t.d1_samples,
            d1_p50_ms: q(&d1, 0.5),
            d1_p95_ms: q(&d1, 0.95),
        }
    }

    fn rule_statuses(&self) -> Vec<RuleStatus> {
        let rules = self.config.rules.rules.iter().zip(&self.alerts);
        rules
            .map(|(rule, a)| RuleStatus {
                rule: rule.id,
                params: rule.params(),
                severity: rule.severity,
                description: rule.description.to_string(),
                action: rule.action.to_string(),
                state: a.state,
                value: a.value,
                samples: a.samples,
                above_floor: a.samples >= rule.min_samples,
                since: rfc3339_opt(a.since_ms),
                active_at: rfc3339_opt(a.active_at_ms),
                fired_at: rfc3339_opt(a.fired_at_ms),
                resolved_at: rfc3339_opt(a.resolved_at_ms),
                last_sent_at: rfc3339_opt(a.last_sent_at_ms),
                incident_seq: a.incident_seq,
                dedup_key: (a.incident_seq > 0).then(|| a.dedup_key(&self.shop)),
            })
            .collect()
    }

    fn outbox_status(&self) -> OutboxStatus {
        let o = &self.outbox;
        let entries = o
            .backlog()
            .iter()
            .map(|e| BacklogItem {
                dedup_key: e.key.dedup_key.clone(),
                event: e.key.event,
                channel: e.key.channel,
                attempts: e.attempts,
                at: rfc3339_ms(e.next_attempt_at_ms),
                last_error: e.last_error.clone(),
            })
            .collect();
        let dead_letters = o
            .dead_letters()
            .map(|d| BacklogItem {
                dedup_key: d.key.dedup_key.clone(),
                event: d.key.event,
                channel: d.key.channel,
                attempts: d.attempts,
                at: rfc3339_ms(d.dead_at_ms),
                last_error: d.last_error.clone(),
            })
            .collect();
        OutboxStatus {
            backlog: o.backlog().len(),
            entries,
            sent_total: o.sent_total,
            dead_lettered_total: o.dead_lettered_total,
            dropped_full_total: o.dropped_full_total,
            dead_letters,
        }
    }
}

fn change_status(c: &super::alert::StateChange) -> ChangeStatus {
    ChangeStatus {
        at: rfc3339_ms(c.at_ms),
        rule: c.rule,
        from: c.from,
        to: c.to,
        value: c.value,
        incident_seq: c.incident_seq,
    }
}
