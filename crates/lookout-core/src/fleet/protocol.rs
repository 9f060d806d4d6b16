//! What a shop monitor and the fleet object say to each other (JSON over the fleet binding):
//! the shop's [`FleetReport`] (state, never records) and the fleet's [`FleetAnswer`] (the
//! silences that can match the shop and the open fleet incidents). Parsing checks what it
//! takes: the fleet object is reachable only through its binding, but a bad report must
//! still be refused with its reason, not trusted.

use serde::{Deserialize, Serialize};

use super::is_rule_name;
use crate::alerting::Severity;
use crate::mute::FleetMute;
use crate::shop::is_slug;
use crate::silence::Silence;

/// Firing entries a report may carry (every rule and cron of a shop, with room to spare).
pub const MAX_FIRING_ENTRIES: usize = 64;
/// Largest report body accepted.
pub const MAX_REPORT_BYTES: usize = 64 * 1024;

/// One open incident of a shop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiringEntry {
    pub rule: String,
    /// When the incident began firing.
    pub since_ms: i64,
    pub severity: Severity,
    pub dedup_key: String,
}

/// A shop monitor's state, as the fleet needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetReport {
    pub shop: String,
    pub at_ms: i64,
    /// Every incident of the shop open now (the whole set, so a lost report heals itself).
    pub firing: Vec<FiringEntry>,
    /// When the monitor last evaluated its rules.
    pub last_evaluated_ms: Option<i64>,
    /// Set when the monitor has traffic but has not evaluated for too long: since when.
    pub stalled_since_ms: Option<i64>,
}

/// The fleet's answer: what the shop needs to decide its notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetAnswer {
    /// The fleet's silence version.
    pub version: u64,
    /// Silences not yet expired whose shop matcher is this shop or `*`.
    pub silences: Vec<Silence>,
    pub fleet_incidents: Vec<FleetMute>,
    pub now_ms: i64,
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportError {
    TooLarge { bytes: usize },
    Invalid(String),
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::TooLarge { bytes } => write!(f, "report of {bytes} bytes is over {MAX_REPORT_BYTES}"),
            ReportError::Invalid(why) => write!(f, "invalid report: {why}"),
        }
    }
}

impl FleetReport {
    /// Parse and check a report body.
    pub fn parse(body: &[u8]) -> Result<FleetReport, ReportError> {
        if body.len() > MAX_REPORT_BYTES {
            return Err(ReportError::TooLarge { bytes: body.len() });
        }
        let r: FleetReport = serde_json::from_slice(body).map_err(|e| ReportError::Invalid(e.to_string()))?;
        if !is_slug(&r.shop) {
            return Err(ReportError::Invalid("shop is not a shop slug".into()));
        }
        if r.firing.len() > MAX_FIRING_ENTRIES {
            return Err(ReportError::Invalid(format!("more than {MAX_FIRING_ENTRIES} firing entries")));
        }
        if let Some(e) = r.firing.iter().find(|e| !is_rule_name(&e.rule) || e.rule.starts_with("fleet:")) {
            return Err(ReportError::Invalid(format!("unknown rule {:?}", crate::redact::scrub_text(&e.rule))));
        }
        if r.firing.iter().any(|e| e.dedup_key.len() > 200) {
            return Err(ReportError::Invalid("dedup key longer than 200 bytes".into()));
        }
        Ok(r)
    }
}
