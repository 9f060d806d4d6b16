//! The cron and business alert rules (one table) and the uniform event they raise, which the
//! monitor's notification layer delivers. No delivery, no dedup timing here.

use serde::{Deserialize, Serialize};

use crate::alerting::{AlertState, Severity, Unit};

/// One rule: its name (the `rule` of its events), severity and the action from the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronRule {
    pub name: &'static str,
    pub severity: Severity,
    /// What fires it, in one sentence (notifications carry it).
    pub description: &'static str,
    pub action: &'static str,
}

pub const CRON_MISSED: &str = "cron_missed";
pub const CRON_STUCK: &str = "cron_stuck";
pub const AUDIT_CHAIN_BROKEN: &str = "audit_chain_broken";
pub const TWILIO_COST_PROJECTION: &str = "twilio_cost_projection";
pub const AI_COST_PROJECTION: &str = "ai_cost_projection";

/// Every rule this module raises, with the design's actions.
pub const CRON_RULES: [CronRule; 5] = [
    CronRule {
        name: CRON_MISSED,
        description: "A watched cron had no start and no end within its grace period after an expected run",
        severity: Severity::Critical,
        action: "Check Cloudflare cron status; run it by hand if needed",
    },
    CronRule {
        name: CRON_STUCK,
        description: "A watched cron run started and did not end within its maximum runtime",
        severity: Severity::High,
        action: "Check the Worker's logs for the run; run it by hand once it is safe",
    },
    CronRule {
        name: AUDIT_CHAIN_BROKEN,
        description: "The daily reconciliation could not verify the hash-chained audit log",
        severity: Severity::High,
        action: "Investigate immediately; don't deploy until resolved",
    },
    CronRule {
        name: TWILIO_COST_PROJECTION,
        description: "The week's projected Twilio spend exceeds 150% of the weekly budget",
        severity: Severity::Warning,
        action: "Contact the owner about SMS volume",
    },
    CronRule {
        name: AI_COST_PROJECTION,
        description: "The month's projected AI spend exceeds the monthly cap; AI is paused",
        severity: Severity::High,
        action: "Pause AI; notify the shop owner",
    },
];

/// The rule named `name`. Names are the constants above; an unknown name gets a generic
/// warning rule rather than a panic.
pub fn rule(name: &str) -> CronRule {
    CRON_RULES.iter().copied().find(|r| r.name == name).unwrap_or(CronRule {
        name: "unknown_rule",
        severity: Severity::Warning,
        description: "An alert this build does not know",
        action: "Check the monitor",
    })
}

/// One alert transition, ready for the notification layer: serializable, no secrets, no PII.
/// `value` and `threshold` are in the unit `unit` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronAlertEvent {
    pub rule: String,
    /// The watched cron the event is about (`None` for shop-wide rules such as costs).
    pub cron: Option<String>,
    /// `Firing` or `Resolved` only: an event is a transition (see `core::alerting`).
    pub state: AlertState,
    pub value: f64,
    pub threshold: f64,
    /// Seconds, micro-dollars or bool (cron, cost and audit rules).
    pub unit: Unit,
    pub summary: String,
    pub action: String,
    pub severity: Severity,
    /// When the incident began (unchanged on its resolve event).
    pub since_ms: i64,
    /// When this transition happened.
    pub at_ms: i64,
    pub run_id: Option<String>,
}

impl CronAlertEvent {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        rule_name: &str,
        cron: Option<&str>,
        state: AlertState,
        value: f64,
        threshold: f64,
        unit: Unit,
        summary: String,
        since_ms: i64,
        at_ms: i64,
        run_id: Option<&str>,
    ) -> Self {
        debug_assert!(matches!(state, AlertState::Firing | AlertState::Resolved), "an event is a transition");
        let r = rule(rule_name);
        CronAlertEvent {
            rule: r.name.to_string(),
            cron: cron.map(str::to_string),
            state,
            value,
            threshold,
            unit,
            summary,
            action: r.action.to_string(),
            severity: r.severity,
            since_ms,
            at_ms,
            run_id: run_id.map(str::to_string),
        }
    }

    /// Stable dedup key of the incident within one shop: `rule` or `rule/cron`.
    pub fn key(&self) -> String {
        match &self.cron {
            Some(c) => format!("{}/{}", self.rule, c),
            None => self.rule.clone(),
        }
    }
}

/// An incident currently firing, kept in state so its resolve event can be produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAlert {
    pub since_ms: i64,
    /// The slot (or run start) the incident is about; later runs resolve it.
    pub key_ms: i64,
    pub run_id: Option<String>,
    pub value: f64,
    pub threshold: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_an_action_and_a_unique_name() {
        for (i, r) in CRON_RULES.iter().enumerate() {
            assert!(!r.action.is_empty());
            assert!(CRON_RULES[i + 1..].iter().all(|o| o.name != r.name));
            assert_eq!(rule(r.name), *r);
        }
        assert_eq!(rule(CRON_MISSED).severity, Severity::Critical);
        assert_eq!(rule("nope").name, "unknown_rule");
    }

    #[test]
    fn event_serializes_with_snake_case_states_and_key() {
        let e = CronAlertEvent::new(
            CRON_MISSED,
            Some("daily_reconciliation"),
            AlertState::Firing,
            1800.0,
            1800.0,
            Unit::Seconds,
            "x".into(),
            1,
            2,
            Some("cron_d_2026_05_10"),
        );
        assert_eq!(e.key(), "cron_missed/daily_reconciliation");
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["state"], "firing");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["action"], "Check Cloudflare cron status; run it by hand if needed");
        let back: CronAlertEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
