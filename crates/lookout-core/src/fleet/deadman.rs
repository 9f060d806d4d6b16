//! The dead-man's switch, pure: when the fleet object's alarm pings `DEADMAN_URL`
//! (Healthchecks.io-style: an outside service pages when the pings stop, so it catches
//! lookout itself stopping), what the ping says (the number of shop monitors that evaluated
//! in the interval), and what the last pings did. The HTTP call is the edge's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::monitor::time::rfc3339_ms;

/// The schedule and the record of pings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadman {
    /// When the next ping is due (`None`: at the first alarm).
    pub next_ping_ms: Option<i64>,
    pub last_ping_ms: Option<i64>,
    /// Monitors that evaluated in the interval before the last ping.
    pub last_count: Option<u32>,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    pub pings_total: u64,
    pub failures_total: u64,
}

/// One ping to send: the count and the JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Ping {
    pub monitors_evaluated: u32,
    pub body: Value,
}

impl Deadman {
    /// Whether a ping is due at `now_ms`.
    pub fn due(&self, now_ms: i64) -> bool {
        self.next_ping_ms.is_none_or(|t| t <= now_ms)
    }

    /// Record a ping sent at `now_ms` (`Err`: why it failed, scrubbed by the caller) and
    /// schedule the next one interval after the one that was due, or after now when the
    /// alarm ran more than an interval late (the cadence never bunches up).
    pub fn record(&mut self, count: u32, result: Result<(), String>, interval_s: u32, now_ms: i64) {
        let interval_ms = i64::from(interval_s.max(1)) * 1000;
        let next = self.next_ping_ms.map_or(now_ms, |t| t.saturating_add(interval_ms));
        self.next_ping_ms = Some(if next <= now_ms { now_ms.saturating_add(interval_ms) } else { next });
        self.last_ping_ms = Some(now_ms);
        self.last_count = Some(count);
        self.pings_total += 1;
        match result {
            Ok(()) => {
                self.last_ok = Some(true);
                self.last_error = None;
            }
            Err(e) => {
                self.last_ok = Some(false);
                self.last_error = Some(e.chars().take(200).collect());
                self.failures_total += 1;
            }
        }
    }

    /// The status view.
    pub fn view(&self, enabled: bool, interval_s: u32) -> Value {
        serde_json::json!({
            "enabled": enabled,
            "interval_s": interval_s,
            "next_ping_at": self.next_ping_ms.filter(|_| enabled).map(rfc3339_ms),
            "last_ping_at": self.last_ping_ms.map(rfc3339_ms),
            "last_monitors_evaluated": self.last_count,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
            "pings_total": self.pings_total,
            "failures_total": self.failures_total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_keep_their_cadence_and_a_late_alarm_does_not_bunch_them() {
        let mut d = Deadman::default();
        assert!(d.due(0), "the first alarm pings");
        d.record(3, Ok(()), 60, 1_000);
        assert_eq!(d.next_ping_ms, Some(61_000));
        assert!(!d.due(60_999) && d.due(61_000));
        // The alarm ran 2 s late: the next stays on the cadence.
        d.record(2, Err("HTTP 500".into()), 60, 63_000);
        assert_eq!(d.next_ping_ms, Some(121_000));
        assert_eq!((d.failures_total, d.last_ok, d.last_count), (1, Some(false), Some(2)));
        // Five minutes late: one ping, then an interval from now.
        d.record(0, Ok(()), 60, 421_000);
        assert_eq!(d.next_ping_ms, Some(481_000));
        assert_eq!((d.pings_total, d.last_error.as_deref()), (3, None));
    }
}
