//! The fleet-alerting side of one shop's monitor, pure: its settings (applied over the vars),
//! the gate its notifications pass (silences and fleet incidents from its [`FleetView`], its
//! acks, and new incidents awaiting the fleet's answer), the cron and business incidents it
//! holds back, the exchange with the fleet object (what to report, what the answer changes),
//! stall detection, the owner's emails, and the status parts. `ShopMonitorCore` calls in here;
//! the Durable Object performs the exchange and the storage.
//!
//! Stored as `meta` key `config` ([`ShopSettings`], written when an operator changes it) and
//! `meta` key `alerting` ([`AlertingState`]).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{LogLine, ShopMonitorCore};
use crate::alerting::AlertState;
use crate::cron::alert::{AI_COST_PROJECTION, TWILIO_COST_PROJECTION};
use crate::cron::{month_bounds_ms, week_bounds_ms, CronAlertEvent, CRON_RULES};
use crate::fleet::{heartbeat_every_ms, stall_after_ms, FiringEntry, FleetAnswer, FleetReport};
use crate::monitor::rules::RuleId;
use crate::monitor::time::{rfc3339_ms, rfc3339_opt};
use crate::monitor::{cron_dedup_key, Channel, MonitorConfig, Notification, NotifyReason};
use crate::mute::{Ack, FleetView, Gate, Hold, ShopGate};
use crate::owner::{owner_email, OwnerNews, ResumeWhy};
use crate::shop_config::{check_rules, SettingsContext, ShopSettings};
use crate::silence::MAX_COMMENT_CHARS;
use crate::validate::{plain_text, FieldError};

/// After a failed exchange, the fleet object is not asked again for this long (and nothing
/// waits for it meanwhile).
pub const FLEET_RETRY_MS: i64 = 10_000;

/// A cron or business incident the shop has open, and whether its trigger went out (a held
/// one goes out when its hold ends, if it is still open).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenEvent {
    pub event: CronAlertEvent,
    pub dedup_key: String,
    pub notified: bool,
}

/// What the fleet object was last told (successfully).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    pub firing_keys: Vec<String>,
    pub stalled_since_ms: Option<i64>,
    pub last_evaluated_ms: Option<i64>,
    pub at_ms: i64,
}

/// The stored alerting state (`meta` key `alerting`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertingState {
    pub open_events: Vec<OpenEvent>,
    pub acks: Vec<Ack>,
    pub view: FleetView,
    pub reported: Option<Reported>,
}

/// The link to the fleet object (in memory: it starts afresh with the object).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetLink {
    /// The Worker binds a fleet object.
    pub enabled: bool,
    /// After a failed exchange: not before this instant, and nothing awaits it meanwhile.
    pub down_until_ms: Option<i64>,
    pub last_error: Option<String>,
    /// An operator changed a silence that matches a firing alert of this shop.
    pub refresh_requested: bool,
}

impl FleetLink {
    fn up(&self, now_ms: i64) -> bool {
        self.enabled && self.down_until_ms.is_none_or(|t| now_ms >= t)
    }
}

/// Why an ack was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// Not a rule of this shop's monitor.
    UnknownRule,
    /// The rule has no open incident.
    NotFiring,
    /// The body was not `{"comment": text}` (or empty).
    Invalid(FieldError),
}

/// The gate over the parts it reads (disjoint from the monitor, which it is passed to).
pub(super) fn gate<'a>(shop: &'a str, state: &'a AlertingState, link: &FleetLink, now_ms: i64) -> ShopGate<'a> {
    let up = link.up(now_ms);
    let reported = up.then(|| state.reported.as_ref().map_or(&[][..], |r| r.firing_keys.as_slice()));
    ShopGate { shop, view: &state.view, acks: &state.acks, reported, fleet_incidents: up || !link.enabled }
}

/// Rules whose news the owner gets, and in which state.
fn concerns_owner(e: &CronAlertEvent) -> bool {
    matches!(
        (e.rule.as_str(), e.state),
        (AI_COST_PROJECTION, AlertState::Firing | AlertState::Resolved) | (TWILIO_COST_PROJECTION, AlertState::Firing)
    )
}

impl ShopMonitorCore {
    // ---- Settings ----

    /// Apply the settings over the vars: rules, routing, budget and cap.
    pub(super) fn apply_settings(&mut self) {
        self.settings_error = None;
        let base = &self.base_monitor;
        let rules = match &self.settings.rules {
            Some(o) => match check_rules(o, &base.rules) {
                Ok(r) => r,
                Err(e) => {
                    self.settings_error = Some(format!("stored rules rejected, ALERT_RULES in force: {e}"));
                    base.rules.clone()
                }
            },
            None => base.rules.clone(),
        };
        let routing = self.settings.channels.as_ref().map_or_else(|| base.routing.clone(), |c| c.over(&base.routing));
        self.monitor.set_config(MonitorConfig { rules, channels: base.channels.clone(), routing });
        self.cron_config.twilio_weekly_budget_micros =
            self.settings.twilio_weekly_budget_micros.or(self.base_twilio_budget);
        self.cron_config.ai_monthly_cap_micros = self.settings.ai_monthly_cap_micros.or(self.base_ai_cap);
    }

    /// The shop's settings as the operator set them.
    pub fn settings(&self) -> &ShopSettings {
        &self.settings
    }

    /// `PUT /config`: replace the settings (checked whole; a bad document changes nothing and
    /// names its field), apply them at once (the AI cap is checked against this month's spend
    /// now), one `shop_config_changed` line naming the changed fields.
    pub fn put_settings(&mut self, body: &str, now_ms: i64) -> Result<(Vec<&'static str>, Vec<LogLine>), FieldError> {
        let ctx = SettingsContext { fleet_rules: &self.base_monitor.rules, configured: &self.base_monitor.channels };
        let new = ShopSettings::parse(body, ctx)?;
        let changed = new.changed_fields(&self.settings);
        let mut lines = Vec::new();
        if !changed.is_empty() {
            self.settings = new;
            self.settings_dirty = true;
            self.snapshot_dirty = true;
            self.apply_settings();
            lines.push(LogLine::ShopConfigChanged { shop: self.shop.clone(), changed: changed.clone() });
            let events = self.cron.ai_spend_check(&self.cron_config, now_ms);
            self.cron_dirty |= !events.is_empty();
            lines.extend(self.notify(&events, now_ms));
            lines.extend(self.release(now_ms));
        }
        Ok((changed, lines))
    }

    /// `GET /config`: the settings as set (the owner's email included: the operator set it),
    /// what is in force, and the vars' defaults.
    pub fn config_view(&self) -> Value {
        let configured = &self.base_monitor.channels;
        let rules: Map<String, Value> = self
            .monitor
            .config()
            .rules
            .rules
            .iter()
            .map(|r| (r.id.name().to_string(), Value::Object(r.params())))
            .collect();
        json!({
            "shop": self.shop,
            "settings": self.settings,
            "effective": {
                "twilio_weekly_budget_micros": self.cron_config.twilio_weekly_budget_micros,
                "ai_monthly_cap_micros": self.cron_config.ai_monthly_cap_micros,
                "owner": self.settings.owner,
                "owner_notifications": self.owner_notifications(),
                "rules": rules,
                "repeat_interval_s": self.monitor.config().rules.repeat_interval_s,
                "routing": self.monitor.config().routing.effective(configured),
            },
            "defaults": {
                "twilio_weekly_budget_micros": self.base_twilio_budget,
                "ai_monthly_cap_micros": self.base_ai_cap,
                "routing": self.base_monitor.routing.effective(configured),
                "channels_configured": configured,
            },
            "settings_error": self.settings_error,
        })
    }

    /// Whether the owner is told (an owner contact and the owner channel on the Worker).
    pub fn owner_notifications(&self) -> bool {
        self.owner_channel && self.settings.owner.is_some()
    }

    /// The settings (`meta` key `config`) when they changed; then `mark_settings_persisted`.
    pub fn settings_snapshot(&self) -> Option<&ShopSettings> {
        self.settings_dirty.then_some(&self.settings)
    }

    pub fn mark_settings_persisted(&mut self) {
        self.settings_dirty = false;
    }

    /// The alerting state (`meta` key `alerting`) when it changed.
    pub fn alerting_snapshot(&self) -> Option<&AlertingState> {
        self.alerting_dirty.then_some(&self.alerting)
    }

    pub fn mark_alerting_persisted(&mut self) {
        self.alerting_dirty = false;
    }

    // ---- Notifications of cron and business events ----

    /// Decide each event now: a trigger goes to its channels unless the gate holds it (it is
    /// then kept, and goes when the hold ends if still open); a resolve goes when its trigger
    /// went. The owner's email goes whatever holds the operator's.
    pub(super) fn notify(&mut self, events: &[CronAlertEvent], now_ms: i64) -> Vec<LogLine> {
        self.alerts_changed |= !events.is_empty();
        let mut lines = Vec::with_capacity(events.len());
        for e in events {
            let key = cron_dedup_key(&self.shop, e);
            self.notify_owner(e, now_ms);
            let (queued, held_by) = match e.state {
                AlertState::Resolved => {
                    let notified =
                        self.alerting.open_events.iter().find(|o| o.dedup_key == key).is_none_or(|o| o.notified);
                    self.alerting.open_events.retain(|o| o.dedup_key != key);
                    self.alerting.acks.retain(|a| a.dedup_key != key);
                    let q = if notified { self.monitor.notify_event(e, now_ms) } else { Vec::new() };
                    (q, None)
                }
                _ => {
                    let hold = gate(&self.shop, &self.alerting, &self.link, now_ms).hold(
                        &e.rule,
                        &key,
                        NotifyReason::FirstFiring,
                        now_ms,
                    );
                    let q = if hold.is_none() { self.monitor.notify_event(e, now_ms) } else { Vec::new() };
                    self.alerting.open_events.retain(|o| o.dedup_key != key);
                    self.alerting.open_events.push(OpenEvent {
                        event: e.clone(),
                        dedup_key: key.clone(),
                        notified: hold.is_none(),
                    });
                    (q, hold)
                }
            };
            self.snapshot_dirty = true;
            self.alerting_dirty = true;
            lines.push(LogLine::CronAlert {
                shop: self.shop.clone(),
                rule: e.rule.clone(),
                state: e.state,
                cron: e.cron.clone(),
                run_id: e.run_id.clone(),
                severity: e.severity,
                dedup_key: key,
                summary: e.summary.clone(),
                queued: queued.len(),
                held_by,
            });
        }
        lines
    }

    /// The owner's email for an event that concerns them (rendered from this shop's figures).
    fn notify_owner(&mut self, e: &CronAlertEvent, now_ms: i64) {
        if !concerns_owner(e) || !self.owner_notifications() {
            return;
        }
        let Some(owner) = self.settings.owner.clone() else { return };
        let news = match (e.rule.as_str(), e.state) {
            (AI_COST_PROJECTION, AlertState::Firing) => {
                let Some(p) = self.cron.ai.pause.clone() else { return };
                OwnerNews::AiPaused {
                    at_ms: e.at_ms,
                    reason: p.reason,
                    spent_micros: p.spent_micros,
                    projected_micros: p.projected_micros,
                    cap_micros: p.cap_micros,
                    month_end_ms: month_bounds_ms(now_ms).map_or(now_ms, |b| b.1),
                }
            }
            (AI_COST_PROJECTION, _) => {
                OwnerNews::AiResumed { at_ms: e.at_ms, why: ResumeWhy::from_summary(&e.summary) }
            }
            _ => OwnerNews::TwilioOverBudget {
                at_ms: e.at_ms,
                spent_micros: self.cron.spend.twilio_week_micros(now_ms),
                projected_micros: e.value.max(0.0) as u64,
                budget_micros: self.cron_config.twilio_weekly_budget_micros.unwrap_or(0),
                week_end_ms: week_bounds_ms(now_ms).map_or(now_ms, |b| b.1),
            },
        };
        let mut n = Notification::from_cron_event(&self.shop, self.monitor.build_version(), e, now_ms);
        n.owner_email = Some(owner_email(&self.shop, &owner.name, &news));
        self.monitor.enqueue_to(&n, &[Channel::Owner], now_ms);
    }

    /// Decide what the gate no longer holds at `now_ms`: rule notifications (first firings,
    /// repeats) and held cron/business triggers; forget acks of incidents that ended.
    pub fn release(&mut self, now_ms: i64) -> Vec<LogLine> {
        let g = gate(&self.shop, &self.alerting, &self.link, now_ms);
        let (rule_notifications, _) = self.monitor.notify_due(now_ms, &g);
        let mut lines = Vec::new();
        let mut released = Vec::new();
        for (i, o) in self.alerting.open_events.iter().enumerate() {
            if !o.notified && g.hold(&o.event.rule, &o.dedup_key, NotifyReason::FirstFiring, now_ms).is_none() {
                released.push(i);
            }
        }
        for i in released {
            let event = self.alerting.open_events[i].event.clone();
            let queued = self.monitor.notify_event(&event, now_ms);
            let o = &mut self.alerting.open_events[i];
            o.notified = true;
            lines.push(LogLine::NotificationReleased {
                shop: self.shop.clone(),
                rule: o.event.rule.clone(),
                dedup_key: o.dedup_key.clone(),
                queued: queued.len(),
            });
            self.alerting_dirty = true;
        }
        let firing = self.firing_keys();
        let before = self.alerting.acks.len();
        self.alerting.acks.retain(|a| firing.contains(&a.dedup_key));
        self.alerting_dirty |= before != self.alerting.acks.len();
        if !rule_notifications.is_empty() || !lines.is_empty() {
            self.snapshot_dirty = true;
        }
        lines
    }

    /// When a held notification is next due by itself (a silence ending).
    pub(super) fn held_due_ms(&self, now_ms: i64) -> Option<i64> {
        let g = gate(&self.shop, &self.alerting, &self.link, now_ms);
        let events = self
            .alerting
            .open_events
            .iter()
            .filter(|o| !o.notified)
            .filter_map(|o| g.hold(&o.event.rule, &o.dedup_key, NotifyReason::FirstFiring, now_ms)?.until_ms());
        let retry = self.fleet_report_wanted(now_ms).then_some(self.link.down_until_ms).flatten();
        events.chain(retry).min().map(|t| t.max(now_ms))
    }

    // ---- Acks ----

    /// `POST /alerts/{rule}/ack` (body: nothing, or `{"comment": text}`): stop repeats of the
    /// rule's open incident(s) until they resolve.
    pub fn ack(&mut self, rule: &str, body: &str, now_ms: i64) -> Result<(Vec<Ack>, Vec<LogLine>), AckError> {
        let comment = parse_ack_body(body).map_err(AckError::Invalid)?;
        let keys: Vec<String> = if let Some(id) = RuleId::from_name(rule) {
            let alert = self.monitor.alert(id).ok_or(AckError::UnknownRule)?;
            if alert.state != AlertState::Firing {
                return Err(AckError::NotFiring);
            }
            vec![alert.dedup_key(&self.shop)]
        } else if CRON_RULES.iter().any(|r| r.name == rule) {
            let keys: Vec<String> = self
                .alerting
                .open_events
                .iter()
                .filter(|o| o.event.rule == rule)
                .map(|o| o.dedup_key.clone())
                .collect();
            if keys.is_empty() {
                return Err(AckError::NotFiring);
            }
            keys
        } else {
            return Err(AckError::UnknownRule);
        };
        let mut acks = Vec::new();
        let mut lines = Vec::new();
        for key in keys {
            self.alerting.acks.retain(|a| a.dedup_key != key);
            let a = Ack { rule: rule.to_string(), dedup_key: key.clone(), at_ms: now_ms, comment: comment.clone() };
            self.alerting.acks.push(a.clone());
            lines.push(LogLine::AlertAcked { shop: self.shop.clone(), rule: rule.to_string(), dedup_key: key });
            acks.push(a);
        }
        self.alerting_dirty = true;
        Ok((acks, lines))
    }

    // ---- The fleet object ----

    /// Use the fleet object (the Worker binds one).
    pub fn enable_fleet(&mut self) {
        self.link.enabled = true;
    }

    /// An operator changed a silence that matches one of this shop's firing alerts: ask the
    /// fleet object for the new copy now.
    pub fn request_fleet_refresh(&mut self) {
        self.link.refresh_requested = true;
    }

    /// Every open incident of the shop: firing rule alerts and open cron/business incidents.
    pub fn firing_entries(&self) -> Vec<FiringEntry> {
        let rules = self.monitor.config().rules.rules.iter().zip(self.monitor.alerts());
        let mut out: Vec<FiringEntry> = rules
            .filter(|(_, a)| a.state == AlertState::Firing)
            .map(|(r, a)| FiringEntry {
                rule: r.id.name().to_string(),
                since_ms: a.fired_at_ms.unwrap_or(0),
                severity: r.severity,
                dedup_key: a.dedup_key(&self.shop),
            })
            .collect();
        out.extend(self.alerting.open_events.iter().map(|o| FiringEntry {
            rule: o.event.rule.clone(),
            since_ms: o.event.since_ms,
            severity: o.event.severity,
            dedup_key: o.dedup_key.clone(),
        }));
        out
    }

    fn firing_keys(&self) -> Vec<String> {
        self.firing_entries().into_iter().map(|e| e.dedup_key).collect()
    }

    /// Since when this monitor is stalled: records arrived and it has not evaluated for
    /// `STALL_INTERVALS` dead-man intervals.
    pub fn stalled_since_ms(&self, now_ms: i64) -> Option<i64> {
        self.pending_since_ms.filter(|p| now_ms.saturating_sub(*p) >= stall_after_ms(self.deadman_interval_s))
    }

    /// Whether a report is due, whether or not the fleet object is reachable now.
    fn fleet_report_wanted(&self, now_ms: i64) -> bool {
        if !self.link.enabled {
            return false;
        }
        let Some(r) = &self.alerting.reported else { return true };
        let last_eval = self.monitor.last_evaluated_ms();
        let heartbeat = last_eval > r.last_evaluated_ms
            && now_ms.saturating_sub(r.at_ms) >= heartbeat_every_ms(self.deadman_interval_s);
        self.link.refresh_requested
            || self.alerting.view.fetched_at_ms.is_none()
            || r.firing_keys != self.firing_keys()
            || r.stalled_since_ms != self.stalled_since_ms(now_ms)
            || heartbeat
    }

    /// The report to send the fleet object now, if one is due (state changed, a heartbeat
    /// while evaluating, a refresh asked for) and the object is not backing off.
    pub fn fleet_report(&self, now_ms: i64) -> Option<FleetReport> {
        if !self.fleet_report_wanted(now_ms) || !self.link.up(now_ms) {
            return None;
        }
        Some(FleetReport {
            shop: self.shop.clone(),
            at_ms: now_ms,
            firing: self.firing_entries(),
            last_evaluated_ms: self.monitor.last_evaluated_ms(),
            stalled_since_ms: self.stalled_since_ms(now_ms),
        })
    }

    /// The fleet object answered `report`: take its view, then decide what it released.
    pub fn fleet_answered(&mut self, report: &FleetReport, answer: FleetAnswer, now_ms: i64) -> Vec<LogLine> {
        let was_stalled = self.alerting.reported.as_ref().and_then(|r| r.stalled_since_ms);
        self.alerting.view = FleetView {
            version: answer.version,
            silences: answer.silences,
            fleet_incidents: answer.fleet_incidents,
            fetched_at_ms: Some(now_ms),
        };
        self.alerting.reported = Some(Reported {
            firing_keys: report.firing.iter().map(|e| e.dedup_key.clone()).collect(),
            stalled_since_ms: report.stalled_since_ms,
            last_evaluated_ms: report.last_evaluated_ms,
            at_ms: now_ms,
        });
        self.link.down_until_ms = None;
        self.link.last_error = None;
        self.link.refresh_requested = false;
        self.alerting_dirty = true;
        let mut lines = Vec::new();
        if report.stalled_since_ms.is_some() && was_stalled.is_none() {
            lines.push(LogLine::MonitorStalled {
                shop: self.shop.clone(),
                stalled_since_ms: report.stalled_since_ms,
                last_evaluated_ms: report.last_evaluated_ms,
            });
        }
        lines.extend(self.release(now_ms));
        lines
    }

    /// The exchange failed: back off, and stop waiting for the fleet (what awaited it is
    /// decided now: a monitoring failure never silences an alert).
    pub fn fleet_failed(&mut self, error: &str, now_ms: i64) -> Vec<LogLine> {
        self.link.down_until_ms = Some(now_ms.saturating_add(FLEET_RETRY_MS));
        self.link.last_error = Some(crate::redact::scrub_text(error).chars().take(200).collect());
        let mut lines = vec![LogLine::FleetExchangeFailed {
            shop: self.shop.clone(),
            error: self.link.last_error.clone().unwrap_or_default(),
        }];
        lines.extend(self.release(now_ms));
        lines
    }

    // ---- Status ----

    /// The alerting parts of the status: settings in force (no email), silences that can
    /// match this shop, acks, held notifications, the fleet link, stall.
    pub(super) fn alerting_status(&self, now_ms: i64) -> Map<String, Value> {
        let g = gate(&self.shop, &self.alerting, &self.link, now_ms);
        let mut held = Vec::new();
        for (rule, a) in self.monitor.config().rules.rules.iter().zip(self.monitor.alerts()) {
            if a.state != AlertState::Firing {
                continue;
            }
            let (what, reason) = if a.notified_firing_seq != a.incident_seq {
                ("trigger", NotifyReason::FirstFiring)
            } else {
                ("repeat", NotifyReason::RepeatInterval)
            };
            if let Some(h) = g.hold(rule.id.name(), &a.dedup_key(&self.shop), reason, now_ms) {
                held.push(held_view(rule.id.name(), &a.dedup_key(&self.shop), what, &h));
            }
        }
        for o in self.alerting.open_events.iter().filter(|o| !o.notified) {
            if let Some(h) = g.hold(&o.event.rule, &o.dedup_key, NotifyReason::FirstFiring, now_ms) {
                held.push(held_view(&o.event.rule, &o.dedup_key, "trigger", &h));
            }
        }
        let configured = &self.base_monitor.channels;
        let mut m = Map::new();
        m.insert(
            "config".into(),
            json!({
                "settings": self.settings.public_view(),
                "effective": {
                    "twilio_weekly_budget_micros": self.cron_config.twilio_weekly_budget_micros,
                    "ai_monthly_cap_micros": self.cron_config.ai_monthly_cap_micros,
                    "owner_notifications": self.owner_notifications(),
                    "routing": self.monitor.config().routing.effective(configured),
                    "repeat_interval_s": self.monitor.config().rules.repeat_interval_s,
                },
                "settings_error": self.settings_error,
            }),
        );
        m.insert("silences".into(), Value::Array(self.alerting.view.silences.iter().map(|s| s.view(now_ms)).collect()));
        m.insert(
            "acks".into(),
            Value::Array(
                self.alerting
                    .acks
                    .iter()
                    .map(|a| json!({"rule": a.rule, "dedup_key": a.dedup_key, "at": rfc3339_ms(a.at_ms), "comment": a.comment}))
                    .collect(),
            ),
        );
        m.insert("notifications_held".into(), Value::Array(held));
        m.insert(
            "fleet".into(),
            json!({
                "enabled": self.link.enabled,
                "reachable": self.link.enabled && self.link.down_until_ms.is_none(),
                "last_error": self.link.last_error,
                "fetched_at": rfc3339_opt(self.alerting.view.fetched_at_ms),
                "silences_version": self.alerting.view.version,
                "fleet_incidents": self.alerting.view.fleet_incidents.iter().map(|f| json!({"rule": f.rule,
                    "dedup_key": f.dedup_key, "since": rfc3339_ms(f.since_ms)})).collect::<Vec<_>>(),
                "last_report_at": rfc3339_opt(self.alerting.reported.as_ref().map(|r| r.at_ms)),
            }),
        );
        m.insert("stalled_since".into(), json!(rfc3339_opt(self.stalled_since_ms(now_ms))));
        m
    }
}

fn held_view(rule: &str, dedup_key: &str, what: &str, h: &Hold) -> Value {
    let mut v = json!({"rule": rule, "dedup_key": dedup_key, "notification": what, "held_by": h});
    if let Some(u) = h.until_ms() {
        v["until"] = json!(rfc3339_ms(u));
    }
    v
}

/// An ack's body: empty, or `{"comment": text}`.
pub fn parse_ack_body(body: &str) -> Result<Option<String>, FieldError> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_str(body).map_err(|e| FieldError::new("body", format!("is not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| *k != "comment") {
        return Err(FieldError::new(k.as_str(), "is not an ack field (comment)"));
    }
    match obj.get("comment") {
        None | Some(Value::Null) => Ok(None),
        Some(c) => plain_text(c, "comment", MAX_COMMENT_CHARS).map(Some),
    }
}

#[cfg(test)]
mod tests;
