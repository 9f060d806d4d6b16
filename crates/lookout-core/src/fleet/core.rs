//! [`FleetCore`]: everything the `FleetMonitor` Durable Object decides, pure. It keeps each
//! shop's last report, the silences, the fleet's own incidents (`fleet:{rule}`,
//! `monitor_stalled`) with their outbox, and the dead-man's switch; it answers reports, opens
//! and resolves incidents, decides their notifications (held by the fleet's silences like a
//! shop's), schedules pings, and says which stored parts changed and when to wake. Storage,
//! HTTP and the clock are the Durable Object's.
//!
//! Stored parts: one row per shop (`shops` table, [`ShopEntry`] JSON), the silences (`meta`
//! key `silences`) and the rest ([`FleetMeta`], `meta` key `fleet`), each written only when it
//! changed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::deadman::{Deadman, Ping};
use super::incident::Incident;
use super::protocol::{FiringEntry, FleetAnswer, FleetReport};
use super::{heartbeat_every_ms, severity_rank, stall_after_ms, FleetConfig, MONITOR_STALLED};
use crate::alerting::{AlertState, Severity, Unit};
use crate::monitor::outbox::Outbox;
use crate::monitor::time::{rfc3339_ms, rfc3339_opt, s_to_ms};
use crate::monitor::{FailOutcome, MarkError, Notification, NotifyReason, OutboxEntry};
use crate::mute::FleetMute;
use crate::silence::{NewSilence, Silence, SilenceError, SilenceState, SilenceStore, FLEET_RULE_PREFIX};
use crate::validate::FieldError;

/// Fleet state changes kept for the status.
const MAX_CHANGES: usize = 50;
/// Resolved incidents are forgotten this long after their resolve went out.
const RESOLVED_RETENTION_MS: i64 = 24 * 3_600_000;

/// What the fleet keeps about one shop: its last report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopEntry {
    pub shop: String,
    pub firing: Vec<FiringEntry>,
    pub last_report_ms: i64,
    pub last_evaluated_ms: Option<i64>,
    pub stalled_since_ms: Option<i64>,
    pub reports: u64,
}

/// One state change of a fleet incident, for the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetChange {
    pub at_ms: i64,
    pub rule: String,
    pub shop: Option<String>,
    pub to: AlertState,
    pub dedup_key: String,
}

/// Everything but the shops and silences, stored as one part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetMeta {
    /// By key: `fleet:{rule}` or `{shop}:monitor_stalled`.
    pub incidents: BTreeMap<String, Incident>,
    /// The last incident number per key.
    pub seqs: BTreeMap<String, u64>,
    pub outbox: Outbox,
    pub deadman: Deadman,
    pub changes: VecDeque<FleetChange>,
}

/// The stored parts, as the Durable Object read them (JSON text).
#[derive(Debug, Clone, Copy, Default)]
pub struct FleetParts<'a> {
    pub shops: &'a [String],
    pub silences: Option<&'a str>,
    pub meta: Option<&'a str>,
}

/// A log line the fleet object prints, as data (`{"kind": ..., ...}`). No comment of a
/// silence is logged (it is free text).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetLine {
    ConfigError {
        error: String,
    },
    FleetRestoreError {
        part: &'static str,
        error: String,
    },
    FleetIncident {
        rule: String,
        shop: Option<String>,
        state: AlertState,
        dedup_key: String,
        shops: Vec<String>,
        held_by: Option<String>,
    },
    SilenceCreated {
        id: String,
        shop: String,
        rule: String,
        starts_at: String,
        ends_at: String,
    },
    SilenceExpired {
        id: String,
    },
    DeadmanPing {
        monitors_evaluated: u32,
        ok: bool,
        error: Option<String>,
    },
    FleetReportRefused {
        error: String,
    },
    AlertDeliveryFailed {
        scope: &'static str,
        delivery: u64,
        error: String,
    },
}

impl FleetLine {
    pub fn to_line(&self) -> String {
        serde_json::to_value(self).map(|v| v.to_string()).unwrap_or_default()
    }
}

/// A silence created or expired: its view and the shops that have a firing alert it
/// matches (their monitors should refresh their copy now).
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceOutcome {
    pub silence: Value,
    pub affected_shops: Vec<String>,
    pub lines: Vec<FleetLine>,
}

/// The fleet status document (`GET /ops/fleet/status`).
pub type FleetStatus = Value;

/// The fleet (see the module doc).
#[derive(Debug, Clone)]
pub struct FleetCore {
    config: FleetConfig,
    shops: BTreeMap<String, ShopEntry>,
    silences: SilenceStore,
    meta: FleetMeta,
    dirty_shops: BTreeSet<String>,
    silences_dirty: bool,
    meta_dirty: bool,
}

impl FleetCore {
    /// Rebuild from the stored parts; never fails (an unreadable part is logged and started
    /// fresh). Everything counts as changed.
    pub fn restore(config: FleetConfig, parts: FleetParts, now_ms: i64) -> (FleetCore, Vec<FleetLine>) {
        let mut lines: Vec<FleetLine> =
            config.errors.iter().map(|e| FleetLine::ConfigError { error: e.clone() }).collect();
        let mut shops = BTreeMap::new();
        for row in parts.shops {
            match serde_json::from_str::<ShopEntry>(row) {
                Ok(e) => {
                    shops.insert(e.shop.clone(), e);
                }
                Err(e) => lines.push(FleetLine::FleetRestoreError { part: "shops", error: e.to_string() }),
            }
        }
        let mut read = |part: &'static str, text: Option<&str>| -> Option<Value> {
            let t = text?;
            serde_json::from_str(t)
                .map_err(|e| lines.push(FleetLine::FleetRestoreError { part, error: e.to_string() }))
                .ok()
        };
        let silences =
            read("silences", parts.silences).and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        let meta = read("fleet", parts.meta).and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        let dirty_shops = shops.keys().cloned().collect();
        let mut core = FleetCore { config, shops, silences, meta, dirty_shops, silences_dirty: true, meta_dirty: true };
        core.silences.gc(now_ms);
        (core, lines)
    }

    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// Shops known: the Worker's and those that reported.
    /// The shops the Worker serves (`SHOP_SLUG` / `SHOPS`), before any that reported.
    pub fn configured_shops(&self) -> &[String] {
        &self.config.known_shops
    }

    pub fn known_shops(&self) -> BTreeSet<&str> {
        self.config.known_shops.iter().map(String::as_str).chain(self.shops.keys().map(String::as_str)).collect()
    }

    fn threshold(&self) -> u32 {
        self.config.rules.threshold(self.known_shops().len())
    }

    // ---- Reports ----

    /// A shop monitor's report at `now_ms`: store it, open or resolve what it changes, decide
    /// notifications; the answer for the shop and the lines to print.
    pub fn report(&mut self, r: FleetReport, now_ms: i64) -> (FleetAnswer, Vec<FleetLine>) {
        let shop = r.shop.clone();
        let entry =
            self.shops.entry(shop.clone()).or_insert_with(|| ShopEntry { shop: shop.clone(), ..Default::default() });
        let mut rules: BTreeSet<String> = entry.firing.iter().map(|e| e.rule.clone()).collect();
        rules.extend(r.firing.iter().map(|e| e.rule.clone()));
        entry.firing = r.firing;
        entry.last_report_ms = now_ms;
        entry.last_evaluated_ms = entry.last_evaluated_ms.max(r.last_evaluated_ms);
        entry.stalled_since_ms = r.stalled_since_ms;
        entry.reports += 1;
        self.dirty_shops.insert(shop.clone());
        let mut lines = Vec::new();
        for rule in &rules {
            self.update_fleet_incident(rule, now_ms, &mut lines);
        }
        self.update_stall(&shop, now_ms, &mut lines);
        self.release(now_ms, &mut lines);
        (self.answer(&shop, now_ms), lines)
    }

    /// What a shop needs now: its silences and the open fleet incidents.
    pub fn answer(&self, shop: &str, now_ms: i64) -> FleetAnswer {
        FleetAnswer {
            version: self.silences.version,
            silences: self.silences.for_shop(shop, now_ms),
            fleet_incidents: self
                .meta
                .incidents
                .values()
                .filter(|i| i.shop.is_none() && i.state == AlertState::Firing)
                .map(|i| FleetMute {
                    rule: i.rule.strip_prefix(FLEET_RULE_PREFIX).unwrap_or(&i.rule).to_string(),
                    dedup_key: i.dedup_key.clone(),
                    since_ms: i.since_ms,
                })
                .collect(),
            now_ms,
        }
    }

    fn firing_shops(&self, rule: &str) -> Vec<(&str, &FiringEntry)> {
        let mut out: Vec<(&str, &FiringEntry)> = self
            .shops
            .values()
            .filter_map(|s| {
                s.firing.iter().filter(|e| e.rule == rule).min_by_key(|e| e.since_ms).map(|e| (s.shop.as_str(), e))
            })
            .collect();
        out.sort_by_key(|(shop, e)| (e.since_ms, *shop));
        out
    }

    fn change(&mut self, inc: &Incident, now_ms: i64, held_by: Option<String>, lines: &mut Vec<FleetLine>) {
        if self.meta.changes.len() >= MAX_CHANGES {
            self.meta.changes.pop_front();
        }
        self.meta.changes.push_back(FleetChange {
            at_ms: now_ms,
            rule: inc.rule.clone(),
            shop: inc.shop.clone(),
            to: inc.state,
            dedup_key: inc.dedup_key.clone(),
        });
        lines.push(FleetLine::FleetIncident {
            rule: inc.rule.clone(),
            shop: inc.shop.clone(),
            state: inc.state,
            dedup_key: inc.dedup_key.clone(),
            shops: inc.shops.clone(),
            held_by,
        });
    }

    fn next_seq(&mut self, key: &str) -> u64 {
        let seq = self.meta.seqs.entry(key.to_string()).or_insert(0);
        *seq += 1;
        *seq
    }

    /// Open, grow or resolve the fleet incident of `rule` after a report.
    fn update_fleet_incident(&mut self, rule: &str, now_ms: i64, lines: &mut Vec<FleetLine>) {
        let key = format!("{FLEET_RULE_PREFIX}{rule}");
        let firing = self.firing_shops(rule);
        let names: Vec<String> = firing.iter().map(|(s, _)| s.to_string()).collect();
        let severity =
            firing.iter().map(|(_, e)| e.severity).max_by_key(|s| severity_rank(*s)).unwrap_or(Severity::Warning);
        let window_ms = s_to_ms(self.config.rules.window_s);
        let recent = firing.iter().filter(|(_, e)| e.since_ms >= now_ms.saturating_sub(window_ms)).count();
        let threshold = self.threshold();
        let known = self.known_shops().len();
        let open = self.meta.incidents.get(&key).is_some_and(|i| i.state == AlertState::Firing);
        if open {
            let inc = self.meta.incidents.get_mut(&key).expect("open");
            if names.is_empty() {
                inc.state = AlertState::Resolved;
                inc.resolved_at_ms = Some(now_ms);
                inc.value = 0.0;
                inc.summary = format!("no shop fires {rule} any more ({} shops were in it)", inc.shops.len());
                let inc = inc.clone();
                self.meta_dirty = true;
                self.change(&inc, now_ms, None, lines);
            } else {
                let mut grew = false;
                for n in &names {
                    if !inc.shops.contains(n) {
                        inc.shops.push(n.clone());
                        grew = true;
                    }
                }
                inc.value = names.len() as f64;
                if severity_rank(severity) > severity_rank(inc.severity) {
                    inc.severity = severity;
                }
                self.meta_dirty |= grew;
            }
            return;
        }
        if !self.config.rules.enabled || recent < threshold as usize {
            return;
        }
        let seq = self.next_seq(&key);
        let window_s = self.config.rules.window_s;
        let inc = Incident {
            dedup_key: format!("{key}:{seq}"),
            rule: key.clone(),
            shop: None,
            seq,
            severity,
            state: AlertState::Firing,
            since_ms: now_ms,
            resolved_at_ms: None,
            value: names.len() as f64,
            threshold: f64::from(threshold),
            unit: Unit::Count,
            window_s,
            shops: names.clone(),
            description: format!(
                "{rule} fired in {recent} of {known} shops within {window_s} s: one incident across the fleet"
            ),
            action: "Likely a shared cause (platform, D1, a dependency, the last deploy): check those before any \
                     single shop; the shops' own pages of this rule are held until it resolves"
                .into(),
            summary: format!(
                "{rule} in {} of {known} shops (threshold {threshold} within {window_s} s): {}",
                names.len(),
                names.join(", ")
            ),
            notified_firing: false,
            notified_resolved: false,
            last_sent_ms: None,
            repeats: 0,
        };
        self.open_incident(key, inc, now_ms, lines);
    }

    /// Keep a new incident under `key` and notify it (unless a silence holds it).
    fn open_incident(&mut self, key: String, inc: Incident, now_ms: i64, lines: &mut Vec<FleetLine>) {
        self.meta.incidents.insert(key, inc.clone());
        self.meta_dirty = true;
        let held = self.hold(&inc, NotifyReason::FirstFiring, now_ms).map(|s| s.id.clone());
        self.change(&inc, now_ms, held, lines);
    }

    /// Open or resolve `monitor_stalled` of `shop` after its report.
    fn update_stall(&mut self, shop: &str, now_ms: i64, lines: &mut Vec<FleetLine>) {
        let key = format!("{shop}:{MONITOR_STALLED}");
        let Some(entry) = self.shops.get(shop) else { return };
        let stalled = entry.stalled_since_ms;
        let last_eval = entry.last_evaluated_ms;
        let open = self.meta.incidents.get(&key).is_some_and(|i| i.state == AlertState::Firing);
        let interval_s = self.config.deadman_interval_s;
        match (open, stalled) {
            (false, Some(since)) => {
                let seq = self.next_seq(&key);
                let stall_s = stall_after_ms(interval_s) / 1000;
                let quiet_s = (now_ms - last_eval.unwrap_or(since)).max(0) / 1000;
                let inc = Incident {
                    dedup_key: format!("{shop}:{MONITOR_STALLED}:{since}"),
                    rule: MONITOR_STALLED.into(),
                    shop: Some(shop.to_string()),
                    seq,
                    severity: Severity::Critical,
                    state: AlertState::Firing,
                    since_ms: now_ms,
                    resolved_at_ms: None,
                    value: quiet_s as f64,
                    threshold: stall_s as f64,
                    unit: Unit::Seconds,
                    window_s: 0,
                    shops: Vec::new(),
                    description: "The shop's monitor receives traffic but has not evaluated its rules for several \
                                  dead-man intervals: its alerts are not being decided"
                        .into(),
                    action: "Check the shop monitor (GET /ops/shops/{shop}/status: last_evaluated_at, \
                             alarm_armed_at_ms) and the Worker's logs; redeploy if its alarm is stuck"
                        .into(),
                    summary: format!(
                        "the monitor has traffic but last evaluated {}; stalled after {stall_s} s",
                        last_eval.map_or_else(|| "never".to_string(), rfc3339_ms)
                    ),
                    notified_firing: false,
                    notified_resolved: false,
                    last_sent_ms: None,
                    repeats: 0,
                };
                self.open_incident(key, inc, now_ms, lines);
            }
            (true, None) => {
                let inc = self.meta.incidents.get_mut(&key).expect("open");
                inc.state = AlertState::Resolved;
                inc.resolved_at_ms = Some(now_ms);
                inc.summary = format!(
                    "the monitor evaluates again (last at {})",
                    last_eval.map_or_else(|| "never".to_string(), rfc3339_ms)
                );
                let inc = inc.clone();
                self.meta_dirty = true;
                self.change(&inc, now_ms, None, lines);
            }
            _ => {}
        }
    }

    /// The silence holding this incident's `reason` notification at `now_ms`, if any.
    fn hold(&self, inc: &Incident, reason: NotifyReason, now_ms: i64) -> Option<&Silence> {
        if reason == NotifyReason::Resolved {
            return None;
        }
        self.silences
            .silences
            .iter()
            .filter(|s| s.silences(inc.shop.as_deref(), &inc.rule, now_ms))
            .max_by_key(|s| s.ends_at_ms)
    }

    /// Decide the notifications due at `now_ms` (those no silence holds) and queue them;
    /// forget resolved incidents long done.
    fn release(&mut self, now_ms: i64, lines: &mut Vec<FleetLine>) {
        let _ = lines;
        let repeat_s = self.config.rules.repeat_interval_s;
        let keys: Vec<String> = self.meta.incidents.keys().cloned().collect();
        for key in keys {
            let inc = &self.meta.incidents[&key];
            let Some(reason) = inc.needs_update(repeat_s, now_ms) else { continue };
            if self.hold(inc, reason, now_ms).is_some() {
                continue;
            }
            let inc = self.meta.incidents.get_mut(&key).expect("listed");
            let n = inc.decide(reason, now_ms);
            for channel in self.config.routing.channels_for(n.severity, &self.config.channels) {
                let _ = self.meta.outbox.enqueue(n.clone(), channel, now_ms);
            }
            self.meta_dirty = true;
        }
        let before = self.meta.incidents.len();
        self.meta.incidents.retain(|_, i| {
            !(i.state == AlertState::Resolved
                && (i.notified_resolved || !i.notified_firing)
                && i.resolved_at_ms.is_some_and(|t| now_ms.saturating_sub(t) > RESOLVED_RETENTION_MS))
        });
        self.meta_dirty |= before != self.meta.incidents.len();
    }

    // ---- Silences ----

    /// `POST /silences`: parse, store, release nothing (it can only hold more); the shops with
    /// a firing alert it matches.
    pub fn create_silence(
        &mut self,
        body: &str,
        now_ms: i64,
    ) -> Result<SilenceOutcome, Result<FieldError, SilenceError>> {
        let known = self.known_shops().into_iter().map(str::to_string).collect::<BTreeSet<String>>();
        let new = NewSilence::parse(body, now_ms, |s| known.contains(s), super::is_rule_name).map_err(Ok)?;
        let s = self.silences.create(new, now_ms).map_err(Err)?.clone();
        self.silences_dirty = true;
        let lines = vec![FleetLine::SilenceCreated {
            id: s.id.clone(),
            shop: s.matchers.shop.clone(),
            rule: s.matchers.rule.clone(),
            starts_at: rfc3339_ms(s.starts_at_ms),
            ends_at: rfc3339_ms(s.ends_at_ms),
        }];
        Ok(SilenceOutcome { silence: s.view(now_ms), affected_shops: self.affected(&s), lines })
    }

    /// `DELETE /silences/{id}`: expire it now; what it held is released.
    pub fn expire_silence(&mut self, id: &str, now_ms: i64) -> Result<SilenceOutcome, SilenceError> {
        let s = self.silences.expire(id, now_ms)?.clone();
        self.silences_dirty = true;
        let mut lines = vec![FleetLine::SilenceExpired { id: s.id.clone() }];
        self.release(now_ms, &mut lines);
        Ok(SilenceOutcome { silence: s.view(now_ms), affected_shops: self.affected(&s), lines })
    }

    fn affected(&self, s: &Silence) -> Vec<String> {
        self.shops
            .values()
            .filter(|e| e.firing.iter().any(|f| s.matches_labels(Some(&e.shop), &f.rule)))
            .map(|e| e.shop.clone())
            .collect()
    }

    /// `GET /silences`: every silence kept (newest first), with its state.
    pub fn list_silences(&self, now_ms: i64) -> Value {
        let mut all: Vec<&Silence> = self.silences.silences.iter().collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.created_at_ms));
        json!({"silences": all.iter().map(|s| s.view(now_ms)).collect::<Vec<_>>(), "version": self.silences.version})
    }

    // ---- The alarm ----

    /// The alarm's decisions at `now_ms`: notifications due (silences ended, repeats), and the
    /// ping when one is due (the edge sends it, then [`record_ping`](Self::record_ping)).
    pub fn tick(&mut self, now_ms: i64) -> (Option<Ping>, Vec<FleetLine>) {
        let mut lines = Vec::new();
        if self.silences.gc(now_ms) {
            self.silences_dirty = true;
        }
        self.release(now_ms, &mut lines);
        let ping = (self.config.deadman_enabled && self.meta.deadman.due(now_ms)).then(|| self.ping(now_ms));
        (ping, lines)
    }

    /// Monitors that evaluated in the interval ending at `now_ms`.
    pub fn monitors_evaluated(&self, now_ms: i64) -> u32 {
        let from = now_ms.saturating_sub(s_to_ms(self.config.deadman_interval_s));
        self.shops.values().filter(|s| s.last_evaluated_ms.is_some_and(|t| t > from)).count() as u32
    }

    fn ping(&self, now_ms: i64) -> Ping {
        let count = self.monitors_evaluated(now_ms);
        let stalled: Vec<&str> =
            self.shops.values().filter(|s| s.stalled_since_ms.is_some()).map(|s| s.shop.as_str()).collect();
        Ping {
            monitors_evaluated: count,
            body: json!({
                "monitors_evaluated": count,
                "monitors_known": self.known_shops().len(),
                "interval_s": self.config.deadman_interval_s,
                "stalled": stalled,
                "at": rfc3339_ms(now_ms),
            }),
        }
    }

    /// What the ping did.
    pub fn record_ping(&mut self, ping: &Ping, result: Result<(), String>, now_ms: i64) -> FleetLine {
        let line = FleetLine::DeadmanPing {
            monitors_evaluated: ping.monitors_evaluated,
            ok: result.is_ok(),
            error: result.as_ref().err().cloned(),
        };
        self.meta.deadman.record(ping.monitors_evaluated, result, self.config.deadman_interval_s, now_ms);
        self.meta_dirty = true;
        line
    }

    /// When the alarm should run next: the next ping, an incident's next notification (or the
    /// end of the silence holding it), the next outbox attempt. Never before `now_ms`.
    pub fn next_due_ms(&self, now_ms: i64) -> Option<i64> {
        let mut due: Vec<i64> = Vec::new();
        if self.config.deadman_enabled {
            due.push(self.meta.deadman.next_ping_ms.unwrap_or(now_ms));
        }
        let repeat_s = self.config.rules.repeat_interval_s;
        for inc in self.meta.incidents.values() {
            let Some(at) = inc.next_update_ms(repeat_s, now_ms) else { continue };
            let reason = if inc.state == AlertState::Resolved {
                NotifyReason::Resolved
            } else if inc.notified_firing {
                NotifyReason::RepeatInterval
            } else {
                NotifyReason::FirstFiring
            };
            match self.hold(inc, reason, at.max(now_ms)) {
                None => due.push(at),
                Some(s) => due.push(s.ends_at_ms.max(at)),
            }
        }
        due.extend(self.meta.outbox.next_attempt_at_ms());
        due.into_iter().min().map(|t| t.max(now_ms))
    }

    // ---- Deliveries ----

    pub fn claim_due_deliveries(&mut self, now_ms: i64) -> Vec<OutboxEntry> {
        self.meta_dirty = true;
        self.meta.outbox.claim_due(now_ms)
    }

    /// Report what sending did; one line per failure.
    pub fn record_deliveries(&mut self, results: &[(u64, Result<(), String>)], now_ms: i64) -> Vec<FleetLine> {
        self.meta_dirty = true;
        let mut lines = Vec::new();
        for (id, r) in results {
            let outcome: Result<Option<FailOutcome>, MarkError> = match r {
                Ok(()) => self.meta.outbox.mark_sent(*id).map(|_| None),
                Err(e) => {
                    lines.push(FleetLine::AlertDeliveryFailed { scope: "fleet", delivery: *id, error: e.clone() });
                    self.meta.outbox.mark_failed(*id, now_ms, e).map(Some)
                }
            };
            let _ = outcome;
        }
        lines
    }

    // ---- Status ----

    /// The fleet's open incidents (`fleet:{rule}` and `monitor_stalled`), as the status shows
    /// them: what the fleet board adds to its answer.
    pub fn open_incidents(&self, now_ms: i64) -> Vec<Value> {
        self.meta
            .incidents
            .values()
            .filter(|i| i.state == AlertState::Firing)
            .map(|i| self.incident_view(i, now_ms))
            .collect()
    }

    fn incident_view(&self, i: &Incident, now_ms: i64) -> Value {
        let reason = if i.notified_firing { NotifyReason::RepeatInterval } else { NotifyReason::FirstFiring };
        let held = (i.state == AlertState::Firing).then(|| self.hold(i, reason, now_ms)).flatten();
        json!({
            "rule": i.rule, "shop": i.shop, "state": i.state, "dedup_key": i.dedup_key,
            "severity": i.severity, "since": rfc3339_ms(i.since_ms), "resolved_at": rfc3339_opt(i.resolved_at_ms),
            "value": i.value, "threshold": i.threshold, "unit": i.unit, "shops": i.shops,
            "summary": i.summary, "notified": i.notified_firing, "resolve_notified": i.notified_resolved,
            "last_sent_at": rfc3339_opt(i.last_sent_ms), "silenced_by": held.map(|s| s.id.clone()),
        })
    }

    /// The fleet status as of `now_ms`.
    pub fn status(&self, now_ms: i64) -> FleetStatus {
        let interval_ms = s_to_ms(self.config.deadman_interval_s);
        let heartbeat_ms = heartbeat_every_ms(self.config.deadman_interval_s);
        let r = &self.config.rules;
        let shops: Vec<Value> = self
            .known_shops()
            .into_iter()
            .map(|name| {
                let e = self.shops.get(name);
                json!({
                    "shop": name,
                    "last_report_at": e.map(|e| rfc3339_ms(e.last_report_ms)),
                    "last_evaluated_at": rfc3339_opt(e.and_then(|e| e.last_evaluated_ms)),
                    "evaluated_in_interval": e.and_then(|e| e.last_evaluated_ms).is_some_and(|t| t > now_ms - interval_ms),
                    "firing": e.map(|e| e.firing.iter().map(|f| json!({"rule": f.rule, "since": rfc3339_ms(f.since_ms),
                        "severity": f.severity, "dedup_key": f.dedup_key})).collect::<Vec<_>>()).unwrap_or_default(),
                    "stalled_since": rfc3339_opt(e.and_then(|e| e.stalled_since_ms)),
                })
            })
            .collect();
        let incidents: Vec<Value> = self.meta.incidents.values().map(|i| self.incident_view(i, now_ms)).collect();
        let silences = &self.silences.silences;
        let count = |st: SilenceState| silences.iter().filter(|s| s.state(now_ms) == st).count();
        let o = &self.meta.outbox;
        json!({
            "now": rfc3339_ms(now_ms),
            "config": {
                "enabled": r.enabled, "min_shops": r.min_shops, "min_share": r.min_share, "window_s": r.window_s,
                "repeat_interval_s": r.repeat_interval_s, "threshold_shops": self.threshold(),
                "known_shops": self.known_shops().len(), "heartbeat_every_ms": heartbeat_ms,
                "stall_after_s": stall_after_ms(self.config.deadman_interval_s) / 1000,
                "errors": self.config.errors,
            },
            "deadman": self.meta.deadman.view(self.config.deadman_enabled, self.config.deadman_interval_s),
            "monitors_evaluated_in_interval": self.monitors_evaluated(now_ms),
            "shops": shops,
            "incidents": incidents,
            "recent_changes": self.meta.changes.iter().map(|c| json!({"at": rfc3339_ms(c.at_ms), "rule": c.rule,
                "shop": c.shop, "to": c.to, "dedup_key": c.dedup_key})).collect::<Vec<_>>(),
            "silences": {"active": count(SilenceState::Active), "pending": count(SilenceState::Pending),
                "expired": count(SilenceState::Expired), "version": self.silences.version},
            "outbox": {"backlog": o.backlog().len(), "sent_total": o.sent_total,
                "dead_lettered_total": o.dead_lettered_total},
            "next_due_at": rfc3339_opt(self.next_due_ms(now_ms)),
        })
    }

    // ---- Persistence ----

    /// Shop rows changed since they were stored.
    pub fn dirty_shops(&self) -> Vec<&ShopEntry> {
        self.dirty_shops.iter().filter_map(|s| self.shops.get(s)).collect()
    }

    pub fn mark_shops_persisted(&mut self) {
        self.dirty_shops.clear();
    }

    pub fn silences_snapshot(&self) -> Option<&SilenceStore> {
        self.silences_dirty.then_some(&self.silences)
    }

    pub fn mark_silences_persisted(&mut self) {
        self.silences_dirty = false;
    }

    pub fn meta_snapshot(&self) -> Option<&FleetMeta> {
        self.meta_dirty.then_some(&self.meta)
    }

    pub fn mark_meta_persisted(&mut self) {
        self.meta_dirty = false;
    }

    /// The outbox entries (for tests and the status).
    pub fn outbox(&self) -> &Outbox {
        &self.meta.outbox
    }

    pub fn incident(&self, key: &str) -> Option<&Incident> {
        self.meta.incidents.get(key)
    }

    /// Notifications queued so far (for tests).
    pub fn queued(&self) -> Vec<&Notification> {
        self.meta.outbox.backlog().iter().map(|e| &e.notification).collect()
    }
}
