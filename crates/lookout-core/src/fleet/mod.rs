//! The fleet, pure: what the one `FleetMonitor` Durable Object decides for all the shops of a
//! Worker. Shop monitors tell it about state changes (their firing set, when they last
//! evaluated, whether they are stalled), never about records; it answers with what they need
//! to decide their own notifications (their silences, the open fleet incidents).
//!
//! ```text
//!  shop monitor ── FleetReport (firing set, last evaluated, stalled) ──► FleetCore::report
//!               ◄── FleetAnswer (silences of this shop, open fleet incidents) ──┘
//!                     │ same rule firing in >= threshold shops within window_s ─► fleet:{rule}
//!                     │ a shop reporting itself stalled ─► monitor_stalled
//!  operator ───────── silences (create / list / expire) ─► SilenceStore ─► shops with firing alerts
//!  alarm ──────────── dead-man's switch ping (monitors evaluated in the interval), outbox
//! ```
//!
//! * **Fleet incidents** (incident.rs): a rule firing in at least
//!   `max(2, min(min_shops, ceil(min_share x known shops)))` shops whose incidents began within
//!   `window_s` opens `fleet:{rule}`: one alert instead of the per-shop pages that follow
//!   (shops hold them while it is open; they are still recorded and shown). It resolves when
//!   no shop fires the rule any more.
//! * **Silences** live here (they match across shops); each shop gets the ones that can match
//!   it with every answer, so a shop needs no call per notification.
//! * **Dead-man's switch** (deadman.rs): every `DEADMAN_INTERVAL_S` the alarm pings
//!   `DEADMAN_URL` with the number of shop monitors that evaluated in the interval.
//! * **`monitor_stalled`**: a shop monitor whose records keep arriving but which has not
//!   evaluated for [`STALL_INTERVALS`] intervals says so (from its ingest path, which still
//!   runs); the fleet object raises the alert through its own outbox and alarm, since the
//!   stalled monitor's cannot be trusted to deliver it.

mod core;
mod deadman;
mod incident;
mod protocol;
#[cfg(test)]
mod tests;

pub use self::core::{FleetCore, FleetLine, FleetMeta, FleetParts, FleetStatus, SilenceOutcome};
pub use deadman::{Deadman, Ping};
pub use incident::{FleetRules, Incident, RulesError};
pub use protocol::{FiringEntry, FleetAnswer, FleetReport, ReportError};

use crate::alerting::Severity;
use crate::monitor::rules::RuleId;
use crate::monitor::Channel;
use crate::routing::RoutingSpec;
use crate::silence::FLEET_RULE_PREFIX;

/// The alert a stalled shop monitor raises (through the fleet object).
pub const MONITOR_STALLED: &str = "monitor_stalled";
/// A monitor with traffic that has not evaluated for this many dead-man intervals is stalled.
pub const STALL_INTERVALS: u32 = 3;
/// Default `DEADMAN_INTERVAL_S`.
pub const DEFAULT_DEADMAN_INTERVAL_S: u32 = 60;
/// Bounds of `DEADMAN_INTERVAL_S`.
pub const MIN_DEADMAN_INTERVAL_S: u32 = 1;
pub const MAX_DEADMAN_INTERVAL_S: u32 = 86_400;
/// A shop monitor that keeps evaluating reports to the fleet at least this often (in
/// dead-man intervals), so each interval's count sees it.
pub const HEARTBEATS_PER_INTERVAL: i64 = 2;

/// What the fleet object runs with (from vars).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    pub rules: FleetRules,
    pub deadman_interval_s: u32,
    /// `DEADMAN_URL` is set: ping it.
    pub deadman_enabled: bool,
    /// The shops the Worker serves (`SHOP_SLUG` / `SHOPS`); shops that report count too.
    pub known_shops: Vec<String>,
    /// Channels whose settings are present, and the routing by severity (`ALERT_ROUTING`).
    pub channels: Vec<Channel>,
    pub routing: RoutingSpec,
    /// Var problems (defaults in force), logged at load and shown in the status.
    pub errors: Vec<String>,
}

/// `DEADMAN_INTERVAL_S` (blank: the default); a bad value gives the default and a message.
pub fn deadman_interval_from_var(v: Option<&str>) -> (u32, Option<String>) {
    let Some(text) = v.map(str::trim).filter(|t| !t.is_empty()) else {
        return (DEFAULT_DEADMAN_INTERVAL_S, None);
    };
    match text.parse::<u32>() {
        Ok(n) if (MIN_DEADMAN_INTERVAL_S..=MAX_DEADMAN_INTERVAL_S).contains(&n) => (n, None),
        _ => (
            DEFAULT_DEADMAN_INTERVAL_S,
            Some(format!(
                "DEADMAN_INTERVAL_S must be a whole number of seconds from {MIN_DEADMAN_INTERVAL_S} to \
                 {MAX_DEADMAN_INTERVAL_S}; {DEFAULT_DEADMAN_INTERVAL_S} is in force"
            )),
        ),
    }
}

/// How often an evaluating shop monitor reports to the fleet (its heartbeat).
pub fn heartbeat_every_ms(deadman_interval_s: u32) -> i64 {
    (i64::from(deadman_interval_s) * 1000 / HEARTBEATS_PER_INTERVAL).max(1000)
}

/// How long a monitor with traffic may go without evaluating before it is stalled.
pub fn stall_after_ms(deadman_interval_s: u32) -> i64 {
    i64::from(deadman_interval_s) * 1000 * i64::from(STALL_INTERVALS)
}

/// Whether `name` is a rule an alert can carry: a rule of the table, a cron or business rule,
/// `monitor_stalled`, or `fleet:` and one of those.
pub fn is_rule_name(name: &str) -> bool {
    let bare = name.strip_prefix(FLEET_RULE_PREFIX).unwrap_or(name);
    RuleId::from_name(bare).is_some()
        || crate::cron::CRON_RULES.iter().any(|r| r.name == bare)
        || (bare == MONITOR_STALLED && bare.len() == name.len())
}

/// Severities in order of urgency (the highest wins when shops disagree).
pub fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 3,
        Severity::High => 2,
        Severity::Warning => 1,
    }
}
