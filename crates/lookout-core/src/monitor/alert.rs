//! The alert state machine, pure and driven by timestamps (never timers):
//! inactive -> pending -> firing -> resolved, with a fire threshold, a lower clear threshold
//! and a hold before resolving. What to notify is decided in notify.rs.
//!
//! Transitions at an evaluation at `now` (verdicts from [`Rule::verdict`]):
//!
//! | state | breach | band (between thresholds) | clear | no data (below the floor) |
//! |---|---|---|---|---|
//! | inactive / resolved | pending (`active_at = now`), or firing at once when `for_s = 0` | stay | stay | stay |
//! | pending | firing when `now - active_at >= for_s` | inactive | inactive | inactive |
//! | firing | stay, hold reset | stay, hold reset | resolved once clear or no data for `keep_firing_for_s` | like clear |
//!
//! * Pending needs the breach *sustained*: anything else (even the band, or too few samples
//!   to judge) abandons it, so a series oscillating around the fire threshold never fires.
//! * Firing needs the value below the *clear* threshold for the whole hold before it
//!   resolves, so a series oscillating around either threshold does not flap.
//! * No data while firing counts towards resolving, after the same hold: a shop whose
//!   traffic stops resolves instead of paging forever, but one quiet bucket does not.
//! * A rule that is disabled while pending goes inactive; while firing it resolves at once.
//! * A resolved alert stays `resolved` (showing when) until the next breach starts a new
//!   incident; an abandoned pending alert goes back to `inactive`.

use serde::{Deserialize, Serialize};

use super::rules::{Observation, Rule, RuleId, Verdict};
use super::time::s_to_ms;
use crate::alerting::AlertState;

/// One rule's alert: its state and the timestamps the decisions are made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: RuleId,
    pub state: AlertState,
    /// Numbers the incidents of this rule; bumped when an alert starts firing.
    pub incident_seq: u64,
    /// When the current breach was first seen (pending or firing).
    pub active_at_ms: Option<i64>,
    /// When the current (or last) incident started firing.
    pub fired_at_ms: Option<i64>,
    /// When the last incident resolved.
    pub resolved_at_ms: Option<i64>,
    /// While firing: since when the value has been below the clear threshold (or no data).
    pub clearing_since_ms: Option<i64>,
    /// When the last firing notification (first or repeat) was decided.
    pub last_sent_at_ms: Option<i64>,
    /// The incident whose first firing notification was decided (dedup).
    pub notified_firing_seq: u64,
    /// Repeat notifications decided for the current incident.
    pub repeats_sent: u32,
    /// The incident whose resolve notification was decided (dedup).
    pub notified_resolved_seq: u64,
    /// The last observation.
    pub value: Option<f64>,
    pub samples: u64,
    /// When the state last changed.
    pub since_ms: Option<i64>,
}

/// One state change, for the bounded log and the status endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    pub at_ms: i64,
    pub rule: RuleId,
    pub from: AlertState,
    pub to: AlertState,
    pub value: Option<f64>,
    pub incident_seq: u64,
}

impl Alert {
    /// A fresh, inactive alert for `rule`.
    pub fn new(rule: RuleId) -> Self {
        Alert {
            rule,
            state: AlertState::Inactive,
            incident_seq: 0,
            active_at_ms: None,
            fired_at_ms: None,
            resolved_at_ms: None,
            clearing_since_ms: None,
            last_sent_at_ms: None,
            notified_firing_seq: 0,
            repeats_sent: 0,
            notified_resolved_seq: 0,
            value: None,
            samples: 0,
            since_ms: None,
        }
    }

    /// The stable dedup key of the current (or last) incident: `"{shop}:{rule}:{seq}"`.
    pub fn dedup_key(&self, shop: &str) -> String {
        format!("{shop}:{}:{}", self.rule, self.incident_seq)
    }

    /// Apply one evaluation at `now_ms`; returns the state change, if any.
    pub fn step(&mut self, rule: &Rule, obs: Observation, now_ms: i64) -> Option<StateChange> {
        self.value = obs.value;
        self.samples = obs.samples;
        let verdict = if rule.enabled { rule.verdict(&obs) } else { Verdict::NoData };
        let from = self.state;
        let to = self.next_state(rule, verdict, now_ms);
        if to == from {
            return None;
        }
        self.enter(to, now_ms);
        Some(StateChange {
            at_ms: now_ms,
            rule: self.rule,
            from,
            to,
            value: obs.value,
            incident_seq: self.incident_seq,
        })
    }

    fn next_state(&mut self, rule: &Rule, verdict: Verdict, now_ms: i64) -> AlertState {
        use AlertState as S;
        match (self.state, verdict) {
            (S::Inactive | S::Resolved, Verdict::Breach) => {
                self.active_at_ms = Some(now_ms);
                if rule.for_s == 0 {
                    S::Firing
                } else {
                    S::Pending
                }
            }
            (S::Pending, Verdict::Breach) => {
                let active_at = *self.active_at_ms.get_or_insert(now_ms);
                if now_ms.saturating_sub(active_at) >= s_to_ms(rule.for_s) {
                    S::Firing
                } else {
                    S::Pending
                }
            }
            (S::Pending, _) => S::Inactive,
            (S::Firing, Verdict::Breach | Verdict::Band) if rule.enabled => {
                self.clearing_since_ms = None;
                S::Firing
            }
            (S::Firing, _) => {
                let since = *self.clearing_since_ms.get_or_insert(now_ms);
                let hold_ms = if rule.enabled { s_to_ms(rule.keep_firing_for_s) } else { 0 };
                if now_ms.saturating_sub(since) >= hold_ms {
                    S::Resolved
                } else {
                    S::Firing
                }
            }
            (state, _) => state,
        }
    }

    fn enter(&mut self, to: AlertState, now_ms: i64) {
        self.state = to;
        self.since_ms = Some(now_ms);
        match to {
            AlertState::Firing => {
                self.incident_seq += 1;
                self.fired_at_ms = Some(now_ms);
                self.clearing_since_ms = None;
                self.repeats_sent = 0;
            }
            AlertState::Resolved => {
                self.resolved_at_ms = Some(now_ms);
                self.clearing_since_ms = None;
            }
            AlertState::Inactive => self.active_at_ms = None,
            AlertState::Pending => {}
        }
    }

    /// When this alert next changes state by itself, with no new data: the end of the pending
    /// sustain time or of the resolve hold.
    pub fn next_deadline_ms(&self, rule: &Rule) -> Option<i64> {
        match self.state {
            AlertState::Pending => self.active_at_ms.map(|t| t.saturating_add(s_to_ms(rule.for_s))),
            AlertState::Firing => self.clearing_since_ms.map(|t| t.saturating_add(s_to_ms(rule.keep_firing_for_s))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::rules::DEFAULT_RULES;
    use AlertState::*;

    fn rule(for_s: u32, keep_s: u32) -> Rule {
        Rule { for_s, keep_firing_for_s: keep_s, min_samples: 10, ..DEFAULT_RULES[0].clone() }
    }

    /// An observation of `pct` percent 5xx over `n` requests.
    fn pct(p: f64, n: u64) -> Observation {
        Observation { value: Some(p / 100.0), samples: n }
    }

    /// Step through `(t_s, observation, expected state)` rows, like Prometheus'
    /// TestKeepFiringFor.
    fn run(rule: &Rule, rows: &[(i64, Observation, AlertState)]) -> Alert {
        let mut a = Alert::new(rule.id);
        for (t, obs, want) in rows {
            a.step(rule, *obs, t * 1000);
            assert_eq!(a.state, *want, "at t = {t} s with {obs:?}");
        }
        a
    }

    #[test]
    fn fires_exactly_when_the_sustain_time_is_reached() {
        let r = rule(5, 0);
        let a = run(
            &r,
            &[
                (0, pct(0.0, 100), Inactive),
                (1, pct(2.0, 100), Pending),
                (2, pct(2.0, 100), Pending),
                (5, pct(2.0, 100), Pending),
                (6, pct(2.0, 100), Firing),
                (7, pct(2.0, 100), Firing),
            ],
        );
        assert_eq!((a.active_at_ms, a.fired_at_ms, a.incident_seq), (Some(1000), Some(6000), 1));
    }

    #[test]
    fn pending_is_abandoned_unless_the_breach_is_sustained() {
        let r = rule(3, 0);
        run(
            &r,
            &[
                (0, pct(2.0, 100), Pending),
                (1, pct(0.8, 100), Inactive), // band: not a breach
                (2, pct(2.0, 100), Pending),
                (3, pct(2.0, 5), Inactive), // below the floor: cannot judge
                (4, pct(2.0, 100), Pending),
                (6, pct(2.0, 100), Pending),
                (7, pct(2.0, 100), Firing),
            ],
        );
    }

    #[test]
    fn resolves_after_the_hold_below_the_clear_threshold() {
        let r = rule(0, 3);
        let a = run(
            &r,
            &[
                (0, pct(2.0, 100), Firing),
                (1, pct(0.2, 100), Firing), // clearing since 1
                (3, pct(0.2, 100), Firing),
                (4, pct(0.2, 100), Resolved),
                (5, pct(0.2, 100), Resolved),
            ],
        );
        assert_eq!(a.resolved_at_ms, Some(4000));
        assert_eq!(a.next_deadline_ms(&r), None);
    }

    #[test]
    fn no_flap_on_a_series_oscillating_around_the_thresholds() {
        let r = rule(0, 3);
        let mut rows = vec![(0, pct(2.0, 100), Firing)];
        // Around the fire threshold (0.9% .. 1.1%): stays firing, never re-fires.
        for t in 1..20 {
            rows.push((t, pct(if t % 2 == 0 { 1.1 } else { 0.9 }, 100), Firing));
        }
        // Dipping below the clear threshold for less than the hold: still firing.
        for t in 20..40 {
            rows.push((t, pct(if t % 3 == 0 { 0.6 } else { 0.3 }, 100), Firing));
        }
        let a = run(&r, &rows);
        assert_eq!(a.incident_seq, 1, "one incident, no flapping");
    }

    #[test]
    fn no_data_while_firing_resolves_only_after_the_hold() {
        let r = rule(0, 3);
        let none = Observation { value: None, samples: 0 };
        run(
            &r,
            &[
                (0, pct(5.0, 100), Firing),
                (1, pct(5.0, 3), Firing), // 3 requests: below the floor
                (2, pct(5.0, 100), Firing),
                (3, none, Firing),
                (5, none, Firing),
                (6, none, Resolved),
            ],
        );
    }

    #[test]
    fn a_new_breach_after_resolve_is_a_new_incident() {
        let r = rule(0, 0);
        let mut a = run(&r, &[(0, pct(5.0, 100), Firing), (1, pct(0.0, 100), Resolved)]);
        assert_eq!(a.dedup_key("swicked"), "swicked:http_5xx_rate:1");
        a.step(&r, pct(5.0, 100), 2000);
        assert_eq!((a.state, a.dedup_key("swicked").as_str()), (Firing, "swicked:http_5xx_rate:2"));
    }

    #[test]
    fn disabling_a_rule_resolves_a_firing_alert_at_once() {
        let r = rule(0, 600);
        let mut a = run(&r, &[(0, pct(5.0, 100), Firing)]);
        let disabled = Rule { enabled: false, ..r };
        let change = a.step(&disabled, pct(5.0, 100), 1000).expect("changes");
        assert_eq!((change.from, change.to), (Firing, Resolved));
    }

    #[test]
    fn the_same_step_twice_changes_nothing() {
        let r = rule(2, 0);
        let mut a = Alert::new(r.id);
        assert!(a.step(&r, pct(5.0, 100), 0).is_some());
        let before = a.clone();
        assert!(a.step(&r, pct(5.0, 100), 0).is_none());
        assert_eq!(a, before);
        assert_eq!(a.next_deadline_ms(&r), Some(2000));
    }
}
