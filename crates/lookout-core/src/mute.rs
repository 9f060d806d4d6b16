//! Why a notification is held back, pure: a shop monitor's [`FleetView`] (its copy of the
//! silences that can match it and the rules under an open fleet incident) and its [`Ack`]s
//! make a [`ShopGate`] that answers, per notification, "send, or hold and until when".
//!
//! | notification | held by |
//! |---|---|
//! | first firing (trigger) | an active silence; an open fleet incident of the rule |
//! | repeat | an ack of the incident; an active silence; an open fleet incident |
//! | resolve | nothing: a resolve goes out whenever its trigger went out |
//!
//! A held trigger is not lost: it is decided again when the hold ends (the silence's end, the
//! fleet incident's end), and goes out then if the incident is still firing (Alertmanager's
//! behaviour when a silence expires). The owner's emails are facts about their shop and are
//! never held.

use serde::{Deserialize, Serialize};

use crate::monitor::NotifyReason;
use crate::silence::Silence;

/// An open fleet incident, as a shop sees it: its rule's per-shop pages are held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetMute {
    /// The shop-level rule (`http_5xx_rate`), not the fleet alert's `fleet:` name.
    pub rule: String,
    /// The fleet alert's dedup key (`fleet:http_5xx_rate:3`).
    pub dedup_key: String,
    pub since_ms: i64,
}

/// What a shop monitor knows from the fleet object, refreshed by each exchange with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetView {
    /// The fleet's silence version this copy is of.
    pub version: u64,
    /// Silences not yet expired that can match this shop (its slug or `*`).
    pub silences: Vec<Silence>,
    /// Open fleet incidents.
    pub fleet_incidents: Vec<FleetMute>,
    /// When the fleet object last answered.
    pub fetched_at_ms: Option<i64>,
}

/// An operator's acknowledgement of one incident (by its dedup key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub rule: String,
    pub dedup_key: String,
    pub at_ms: i64,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Why a notification is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Hold {
    /// An active silence (the one ending last when several match).
    Silence { silence_id: String, until_ms: i64 },
    /// An open fleet incident of the rule.
    Fleet { dedup_key: String },
    /// The incident was acknowledged (repeats only).
    Ack { at_ms: i64 },
    /// A new incident not yet reported to the fleet object: its trigger waits for the answer
    /// (a fleet incident may hold it). Lifted by the answer, or at once if the fleet object
    /// cannot be reached (a monitoring failure never silences an alert).
    AwaitingFleet,
}

impl Hold {
    /// When the hold ends by itself (`None`: when something else changes it).
    pub fn until_ms(&self) -> Option<i64> {
        match self {
            Hold::Silence { until_ms, .. } => Some(*until_ms),
            _ => None,
        }
    }
}

/// Decides holds. `rule` is the alert's rule name, `dedup_key` its incident.
pub trait Gate {
    fn hold(&self, rule: &str, dedup_key: &str, reason: NotifyReason, now_ms: i64) -> Option<Hold>;
}

/// Holds nothing (no fleet object, tests).
pub struct Open;

impl Gate for Open {
    fn hold(&self, _: &str, _: &str, _: NotifyReason, _: i64) -> Option<Hold> {
        None
    }
}

/// One shop's gate: its fleet view and acks.
pub struct ShopGate<'a> {
    pub shop: &'a str,
    pub view: &'a FleetView,
    pub acks: &'a [Ack],
    /// The incidents the fleet object has been told about, when it is in use and reachable
    /// (`None`: no fleet object, or it could not be reached: nothing awaits it).
    pub reported: Option<&'a [String]>,
    /// Whether the view's fleet incidents count: not while the fleet object cannot be
    /// reached (an open-ended hold must not outlive the object that would end it; silences
    /// end by themselves and still count).
    pub fleet_incidents: bool,
}

impl Gate for ShopGate<'_> {
    fn hold(&self, rule: &str, dedup_key: &str, reason: NotifyReason, now_ms: i64) -> Option<Hold> {
        if reason == NotifyReason::Resolved {
            return None;
        }
        if reason == NotifyReason::RepeatInterval {
            if let Some(a) = self.acks.iter().find(|a| a.dedup_key == dedup_key) {
                return Some(Hold::Ack { at_ms: a.at_ms });
            }
        }
        let silence = self
            .view
            .silences
            .iter()
            .filter(|s| s.silences(Some(self.shop), rule, now_ms))
            .max_by_key(|s| s.ends_at_ms);
        if let Some(s) = silence {
            return Some(Hold::Silence { silence_id: s.id.clone(), until_ms: s.ends_at_ms });
        }
        if reason == NotifyReason::FirstFiring && self.reported.is_some_and(|r| !r.iter().any(|k| k == dedup_key)) {
            return Some(Hold::AwaitingFleet);
        }
        if !self.fleet_incidents {
            return None;
        }
        self.view
            .fleet_incidents
            .iter()
            .find(|f| f.rule == rule)
            .map(|f| Hold::Fleet { dedup_key: f.dedup_key.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::silence::Matchers;

    const T0: i64 = 1_778_400_000_000;

    fn silence(id: &str, shop: &str, rule: &str, end: i64) -> Silence {
        Silence {
            id: id.into(),
            matchers: Matchers { shop: shop.into(), rule: rule.into() },
            starts_at_ms: T0,
            ends_at_ms: end,
            comment: "x".into(),
            created_by: None,
            created_at_ms: T0,
            expired_early_at_ms: None,
        }
    }

    #[test]
    fn triggers_are_held_by_silences_and_fleet_incidents_repeats_also_by_acks_resolves_never() {
        let view = FleetView {
            version: 1,
            silences: vec![
                silence("sil_1", "swicked", "http_5xx_rate", T0 + 60_000),
                silence("sil_2", "*", "*", T0 + 90_000),
            ],
            fleet_incidents: vec![FleetMute {
                rule: "d1_p95".into(),
                dedup_key: "fleet:d1_p95:1".into(),
                since_ms: T0,
            }],
            fetched_at_ms: Some(T0),
        };
        let acks = vec![Ack {
            rule: "cron_missed".into(),
            dedup_key: "swicked:cron_missed:1".into(),
            at_ms: T0,
            comment: None,
        }];
        let gate = ShopGate { shop: "swicked", view: &view, acks: &acks, reported: None, fleet_incidents: true };
        let hold = gate.hold("http_5xx_rate", "swicked:http_5xx_rate:1", NotifyReason::FirstFiring, T0 + 1);
        assert_eq!(hold, Some(Hold::Silence { silence_id: "sil_2".into(), until_ms: T0 + 90_000 }), "the last to end");
        assert_eq!(gate.hold("http_5xx_rate", "k", NotifyReason::Resolved, T0 + 1), None);
        // After both silences: the fleet incident still holds d1_p95, nothing holds the rest.
        let later = T0 + 90_000;
        assert_eq!(gate.hold("http_5xx_rate", "k", NotifyReason::FirstFiring, later), None);
        assert_eq!(
            gate.hold("d1_p95", "k", NotifyReason::RepeatInterval, later),
            Some(Hold::Fleet { dedup_key: "fleet:d1_p95:1".into() })
        );
        assert_eq!(
            gate.hold("cron_missed", "swicked:cron_missed:1", NotifyReason::RepeatInterval, later),
            Some(Hold::Ack { at_ms: T0 })
        );
        assert_eq!(gate.hold("cron_missed", "swicked:cron_missed:1", NotifyReason::FirstFiring, later), None);
        assert_eq!(gate.hold("cron_missed", "swicked:cron_missed:2", NotifyReason::RepeatInterval, later), None);
        let other = ShopGate { shop: "demo", view: &view, acks: &[], reported: None, fleet_incidents: true };
        assert_eq!(
            other.hold("http_5xx_rate", "k", NotifyReason::FirstFiring, T0 + 70_000).and_then(|h| h.until_ms()),
            Some(T0 + 90_000)
        );
    }

    #[test]
    fn a_new_trigger_awaits_the_fleet_answer_only_while_the_fleet_is_in_use() {
        let view = FleetView::default();
        let reported = vec!["swicked:http_5xx_rate:1".to_string()];
        let gate =
            ShopGate { shop: "swicked", view: &view, acks: &[], reported: Some(&reported), fleet_incidents: true };
        assert_eq!(
            gate.hold("http_5xx_rate", "swicked:http_5xx_rate:2", NotifyReason::FirstFiring, T0),
            Some(Hold::AwaitingFleet)
        );
        assert_eq!(
            gate.hold("http_5xx_rate", "swicked:http_5xx_rate:1", NotifyReason::FirstFiring, T0),
            None,
            "reported"
        );
        assert_eq!(gate.hold("http_5xx_rate", "swicked:http_5xx_rate:2", NotifyReason::Resolved, T0), None);
        let no_fleet = ShopGate { reported: None, ..gate };
        assert_eq!(no_fleet.hold("http_5xx_rate", "swicked:http_5xx_rate:2", NotifyReason::FirstFiring, T0), None);
    }
}
