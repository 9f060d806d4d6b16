//! The fleet object's incidents, pure: the threshold maths of a fleet incident
//! ([`FleetRules`], from `FLEET_ALERTING`), and [`Incident`], one open or resolved incident
//! the fleet object notifies itself (`fleet:{rule}`, and `monitor_stalled` for a shop), with
//! the same notify-and-why decisions as a shop's alerts (first firing, repeat, resolve once).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::alerting::{AlertState, Severity, Unit};
use crate::monitor::rules::DEFAULT_REPEAT_INTERVAL_S;
use crate::monitor::time::{rfc3339_ms, rfc3339_opt, s_to_ms};
use crate::monitor::{EventKind, Notification, NotifyReason};
use crate::validate::{whole_number, FieldError};

/// A fleet incident needs at least this many shops whatever the share says.
pub const FLOOR_SHOPS: u32 = 2;

/// When the same rule firing in many shops is one fleet incident (`FLEET_ALERTING`):
///
/// ```json
/// {"enabled": true, "min_shops": 5, "min_share": 0.2, "window_s": 120, "repeat_interval_s": 14400}
/// ```
///
/// Threshold: `max(2, min(min_shops, ceil(min_share x known shops)))` shops whose incidents
/// of the rule began within `window_s` of now ("5 shops or 20% within 2 minutes").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetRules {
    pub enabled: bool,
    pub min_shops: u32,
    pub min_share: f64,
    pub window_s: u32,
    pub repeat_interval_s: u32,
}

impl Default for FleetRules {
    fn default() -> Self {
        FleetRules {
            enabled: true,
            min_shops: 5,
            min_share: 0.2,
            window_s: 120,
            repeat_interval_s: DEFAULT_REPEAT_INTERVAL_S,
        }
    }
}

/// Why `FLEET_ALERTING` was refused (the defaults are in force).
pub type RulesError = FieldError;

impl FleetRules {
    /// From the `FLEET_ALERTING` var (blank: the defaults).
    pub fn from_var(var: Option<&str>) -> Result<FleetRules, RulesError> {
        let mut r = FleetRules::default();
        let Some(text) = var.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(r);
        };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| FieldError::new("FLEET_ALERTING", format!("is not valid JSON: {e}")))?;
        let obj: &Map<String, Value> =
            v.as_object().ok_or_else(|| FieldError::new("FLEET_ALERTING", "must be a JSON object"))?;
        for (k, v) in obj {
            let field = format!("FLEET_ALERTING.{k}");
            match k.as_str() {
                "enabled" => r.enabled = v.as_bool().ok_or_else(|| FieldError::new(&field, "must be true or false"))?,
                "min_shops" => {
                    r.min_shops = whole_number(v, &field, 100_000)? as u32;
                    if r.min_shops < FLOOR_SHOPS {
                        return Err(FieldError::new(field, format!("must be at least {FLOOR_SHOPS}")));
                    }
                }
                "min_share" => {
                    r.min_share = v
                        .as_f64()
                        .filter(|f| *f > 0.0 && *f <= 1.0)
                        .ok_or_else(|| FieldError::new(&field, "must be a number greater than 0 and at most 1"))?
                }
                "window_s" => {
                    r.window_s = whole_number(v, &field, 86_400)? as u32;
                    if r.window_s == 0 {
                        return Err(FieldError::new(field, "must be greater than 0"));
                    }
                }
                "repeat_interval_s" => {
                    r.repeat_interval_s = whole_number(v, &field, u64::from(u32::MAX))? as u32;
                    if r.repeat_interval_s == 0 {
                        return Err(FieldError::new(field, "must be greater than 0"));
                    }
                }
                _ => {
                    return Err(FieldError::new(
                        field,
                        "is not a known field (enabled, min_shops, min_share, window_s, repeat_interval_s)",
                    ))
                }
            }
        }
        Ok(r)
    }

    /// Shops needed for a fleet incident when `known` shops are known.
    pub fn threshold(&self, known: usize) -> u32 {
        let by_share = (self.min_share * known as f64).ceil().max(0.0) as u32;
        self.min_shops.min(by_share).max(FLOOR_SHOPS)
    }
}

/// One incident the fleet object notifies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub dedup_key: String,
    /// `fleet:{rule}` or `monitor_stalled`.
    pub rule: String,
    /// The shop of a `monitor_stalled`; `None` for a fleet incident.
    pub shop: Option<String>,
    pub seq: u64,
    pub severity: Severity,
    /// `Firing` or `Resolved`.
    pub state: AlertState,
    pub since_ms: i64,
    pub resolved_at_ms: Option<i64>,
    /// Shops firing (fleet incident) or seconds without evaluation (stalled).
    pub value: f64,
    pub threshold: f64,
    pub unit: Unit,
    pub window_s: u32,
    /// A fleet incident's shops: every shop that fired the rule while it was open.
    pub shops: Vec<String>,
    pub description: String,
    pub action: String,
    pub summary: String,
    pub notified_firing: bool,
    pub notified_resolved: bool,
    pub last_sent_ms: Option<i64>,
    pub repeats: u32,
}

impl Incident {
    /// Does it need a notification at `now_ms`? (Alertmanager's `needsUpdate`, like a rule's.)
    pub fn needs_update(&self, repeat_interval_s: u32, now_ms: i64) -> Option<NotifyReason> {
        match self.state {
            AlertState::Firing if !self.notified_firing => Some(NotifyReason::FirstFiring),
            AlertState::Firing => self
                .last_sent_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= s_to_ms(repeat_interval_s))
                .then_some(NotifyReason::RepeatInterval),
            AlertState::Resolved if self.notified_firing && !self.notified_resolved => Some(NotifyReason::Resolved),
            _ => None,
        }
    }

    /// When it next needs an update by itself (`None`: nothing pending).
    pub fn next_update_ms(&self, repeat_interval_s: u32, now_ms: i64) -> Option<i64> {
        match self.state {
            AlertState::Firing if !self.notified_firing => Some(now_ms),
            AlertState::Firing => {
                Some(self.last_sent_ms.map_or(now_ms, |t| t.saturating_add(s_to_ms(repeat_interval_s))))
            }
            AlertState::Resolved if self.notified_firing && !self.notified_resolved => Some(now_ms),
            _ => None,
        }
    }

    /// Record the decision and build its notification.
    pub fn decide(&mut self, reason: NotifyReason, now_ms: i64) -> Notification {
        let event = match reason {
            NotifyReason::FirstFiring => {
                self.notified_firing = true;
                self.last_sent_ms = Some(now_ms);
                EventKind::Trigger
            }
            NotifyReason::RepeatInterval => {
                self.repeats += 1;
                self.last_sent_ms = Some(now_ms);
                EventKind::Repeat(self.repeats)
            }
            NotifyReason::Resolved => {
                self.notified_resolved = true;
                EventKind::Resolve
            }
        };
        let resolved = self.state == AlertState::Resolved;
        let who = self.shop.as_deref().unwrap_or("fleet");
        Notification {
            reason,
            event,
            shop: self.shop.clone().unwrap_or_else(|| "*".into()),
            rule: self.rule.clone(),
            severity: self.severity,
            state: self.state,
            value: Some(self.value),
            threshold: self.threshold,
            clear_threshold: self.threshold,
            unit: self.unit,
            window_s: self.window_s,
            since: rfc3339_ms(self.since_ms),
            active_at: Some(rfc3339_ms(self.since_ms)),
            resolved_at: if resolved { rfc3339_opt(self.resolved_at_ms) } else { None },
            notified_at: rfc3339_ms(now_ms),
            description: self.description.clone(),
            action: self.action.clone(),
            recent_request_ids: Vec::new(),
            build_version: None,
            dedup_key: self.dedup_key.clone(),
            incident_seq: self.seq,
            summary: format!(
                "[{who}] {} {}: {}",
                if resolved { "RESOLVED" } else { "FIRING" },
                self.rule,
                self.summary
            ),
            cron: None,
            run_id: None,
            shops: self.shops.clone(),
            owner_email: None,
            diagnosis: None,
        }
    }
}
