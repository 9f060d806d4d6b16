//! The `audit_chain_broken` alert, pure: [`AuditChainWatch`] takes what each reconciliation
//! run reports about the chain (its end check-in's `results`) and fires or resolves. It does
//! not verify anything itself (chain.rs; the app's reconciliation job runs the verifier).

use serde::{Deserialize, Serialize};

use crate::alerting::{AlertState, Unit};
use crate::cron::alert::{CronAlertEvent, OpenAlert, AUDIT_CHAIN_BROKEN};
use crate::cron::Results;

/// The `audit_chain_broken` alert: fires at once when a reconciliation reports the chain
/// unverified (or shorter than the last verified length: truncation), resolves when a later
/// run verifies it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditChainWatch {
    pub firing: Option<OpenAlert>,
    pub last_checked_ms: Option<i64>,
    pub last_verified_ms: Option<i64>,
    /// Length at the last successful verification.
    pub last_verified_length: Option<u64>,
}

impl AuditChainWatch {
    /// Take a reconciliation's figures. `first_broken_id` only goes into the summary.
    pub fn observe(
        &mut self,
        verified: bool,
        length: u64,
        first_broken_id: Option<i64>,
        run_id: Option<&str>,
        now_ms: i64,
    ) -> Vec<CronAlertEvent> {
        self.last_checked_ms = Some(now_ms);
        let shrank = self.last_verified_length.filter(|l| verified && length < *l);
        let mut events = Vec::new();
        if verified && shrank.is_none() {
            self.last_verified_ms = Some(now_ms);
            self.last_verified_length = Some(length);
            if let Some(a) = self.firing.take() {
                let summary = format!("audit chain verified again: {length} rows intact");
                events.push(CronAlertEvent::new(
                    AUDIT_CHAIN_BROKEN,
                    None,
                    AlertState::Resolved,
                    1.0,
                    a.threshold,
                    Unit::Bool,
                    summary,
                    a.since_ms,
                    now_ms,
                    run_id,
                ));
            }
            return events;
        }
        if self.firing.is_none() {
            let summary = match (shrank, first_broken_id) {
                (Some(before), _) => {
                    format!("audit chain shrank from {before} to {length} rows: rows were deleted")
                }
                (None, Some(id)) => {
                    format!("audit chain verification failed at row {id} of {length}")
                }
                (None, None) => format!("audit chain verification failed ({length} rows)"),
            };
            let a = OpenAlert {
                since_ms: now_ms,
                key_ms: now_ms,
                run_id: run_id.map(str::to_string),
                value: 0.0,
                threshold: 1.0,
            };
            events.push(CronAlertEvent::new(
                AUDIT_CHAIN_BROKEN,
                None,
                AlertState::Firing,
                0.0,
                1.0,
                Unit::Bool,
                summary,
                now_ms,
                now_ms,
                run_id,
            ));
            self.firing = Some(a);
        }
        events
    }

    /// Take a reconciliation's `results`: `audit_chain_verified` (required, else nothing
    /// happens), `audit_chain_length`, `audit_chain_first_broken_id`.
    pub fn observe_results(&mut self, results: &Results, run_id: Option<&str>, now_ms: i64) -> Vec<CronAlertEvent> {
        let Some(verified) = results.get_bool("audit_chain_verified") else {
            return Vec::new();
        };
        let length = results.get_i64("audit_chain_length").and_then(|l| u64::try_from(l).ok()).unwrap_or(0);
        self.observe(verified, length, results.get_i64("audit_chain_first_broken_id"), run_id, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_alert_fires_at_once_and_resolves_on_a_verified_run() {
        let mut w = AuditChainWatch::default();
        assert!(w.observe(true, 10, None, Some("cron_d_2026_05_09"), 1).is_empty());
        let e = w.observe(false, 10, Some(4), Some("cron_d_2026_05_10"), 100);
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].rule.as_str(), e[0].state), ("audit_chain_broken", AlertState::Firing));
        assert_eq!(e[0].action, "Investigate immediately; don't deploy until resolved");
        assert_eq!(e[0].severity, crate::alerting::Severity::High);
        assert!(e[0].summary.contains("row 4"));
        // Still broken the next day: no second notification.
        assert!(w.observe(false, 10, Some(4), None, 200).is_empty());
        let e = w.observe(true, 11, None, Some("cron_d_2026_05_12"), 300);
        assert_eq!((e.len(), e[0].state, e[0].since_ms), (1, AlertState::Resolved, 100));
        // A verified but shorter chain is truncation.
        let e = w.observe(true, 9, None, None, 400);
        assert_eq!(e.len(), 1);
        assert!(e[0].summary.contains("shrank from 11 to 9"));
        let mut r = Results::new();
        r.flag("audit_chain_verified", true).int("audit_chain_length", 12);
        assert_eq!(w.observe_results(&r, None, 500)[0].state, AlertState::Resolved);
        assert!(w.observe_results(&Results::new(), None, 600).is_empty());
    }
}
