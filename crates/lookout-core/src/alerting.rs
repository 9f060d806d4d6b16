//! The alerting vocabulary shared by the rule alerts (`monitor`) and the cron and business
//! alerts (`cron`, `audit`): one [`Severity`], one [`AlertState`], one [`Unit`], with their
//! wire names (what the webhook, PagerDuty, the status endpoint and the log lines carry).
//! Types only: no thresholds, no state machine, no notification decisions.
//!
//! **One state vocabulary.** A rule's alert (`monitor::alert`) lives through all four
//! states: inactive -> pending -> firing -> resolved. A cron or business alert keeps its own
//! open incident in `core::cron` / `core::audit` and only its transitions leave it, as a
//! `CronAlertEvent` whose `state` is [`AlertState::Firing`] (an incident opened) or
//! [`AlertState::Resolved`] (it closed), never inactive or pending. Which notification an
//! event becomes (`monitor::EventKind`: trigger, repeat-n, resolve) is derived from the state
//! and the notify reason; it is not a second state type.

use serde::{Deserialize, Serialize};

/// How urgently a human must act. Wire names: `critical`, `high`, `warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Page now (a 5xx storm; the job the business depends on did not run).
    Critical,
    /// Act today: integrity or money at stake (audit chain, AI spend, a stuck cron).
    High,
    /// Act this week.
    Warning,
}

impl Severity {
    /// The PagerDuty Events API v2 severity (`critical`, `error`, `warning`, `info`).
    pub fn pagerduty(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "error",
            Severity::Warning => "warning",
        }
    }
}

/// Where an alert is in its life cycle (see the module doc for which alerts use which
/// states). Wire names: `inactive`, `pending`, `firing`, `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// No breach (or a pending breach that was not sustained).
    Inactive,
    /// Breaching, not yet for the rule's sustain time.
    Pending,
    /// An open incident.
    Firing,
    /// The incident closed (kept until the next breach so its resolve goes out).
    Resolved,
}

/// What an alert's value and thresholds measure. Wire names (the notification's `unit`):
/// `ratio`, `ms`, `count`, `s`, `micro_usd`, `bool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A fraction in 0..=1 (5xx / requests).
    Ratio,
    /// Milliseconds.
    Ms,
    /// A number of events.
    Count,
    /// Seconds (cron alerts: time since the slot, grace, runtime).
    #[serde(rename = "s")]
    Seconds,
    /// Micro-dollars (cost alerts).
    MicroUsd,
    /// 1 = true, 0 = false (audit chain verified).
    Bool,
}

impl Unit {
    /// The wire name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ratio => "ratio",
            Unit::Ms => "ms",
            Unit::Count => "count",
            Unit::Seconds => "s",
            Unit::MicroUsd => "micro_usd",
            Unit::Bool => "bool",
        }
    }

    /// A value for humans: `3.20%`, `212.4 ms`, `3`, `1800 s`, `$1.00`, `true`.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Ratio => format!("{:.2}%", value * 100.0),
            Unit::Ms => format!("{value:.1} ms"),
            Unit::Count => format!("{value:.0}"),
            Unit::Seconds => format!("{value:.0} s"),
            Unit::MicroUsd => {
                let cents = (value.max(0.0) / 10_000.0).round() as u64;
                format!("${}.{:02}", cents / 100, cents % 100)
            }
            Unit::Bool => (if value != 0.0 { "true" } else { "false" }).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_the_ones_payloads_always_carried() {
        let units = [
            (Unit::Ratio, "ratio"),
            (Unit::Ms, "ms"),
            (Unit::Count, "count"),
            (Unit::Seconds, "s"),
            (Unit::MicroUsd, "micro_usd"),
            (Unit::Bool, "bool"),
        ];
        for (u, name) in units {
            assert_eq!(serde_json::to_value(u).unwrap(), name);
            assert_eq!(u.as_str(), name);
            assert_eq!(serde_json::from_value::<Unit>(name.into()).unwrap(), u);
        }
        let severities = [(Severity::Critical, "critical"), (Severity::High, "high"), (Severity::Warning, "warning")];
        for (s, name) in severities {
            assert_eq!(serde_json::to_value(s).unwrap(), name);
        }
        assert_eq!(Severity::High.pagerduty(), "error");
        for (s, name) in [
            (AlertState::Inactive, "inactive"),
            (AlertState::Pending, "pending"),
            (AlertState::Firing, "firing"),
            (AlertState::Resolved, "resolved"),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), name);
        }
    }

    #[test]
    fn units_format_for_humans() {
        assert_eq!(Unit::Ratio.format(0.032), "3.20%");
        assert_eq!(Unit::Ms.format(212.44), "212.4 ms");
        assert_eq!(Unit::Seconds.format(1800.0), "1800 s");
        assert_eq!(Unit::MicroUsd.format(1_000_000.0), "$1.00");
        assert_eq!(Unit::Bool.format(0.0), "false");
    }
}
