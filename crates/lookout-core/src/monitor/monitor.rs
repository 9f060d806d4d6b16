//! The per-shop [`Monitor`]: ingest records, evaluate every rule at `now_ms`, decide and queue
//! notifications, say when the edge should wake next, and snapshot/restore. The status view is
//! in status.rs; storage and HTTP are the edge's (the Durable Object only stores and forwards).
//!
//! What is persisted and what can be lost: closed buckets (one row each, from
//! [`Monitor::dirty_closed_buckets`], binary, digests and diagnosis only within the detail
//! window), the strings their diagnoses use, and the [`MonitorSnapshot`] (alerts, outbox,
//! recent changes, counters). The open bucket lives in memory only, so eviction loses at most
//! the records of the current bucket (and of a closed one not yet written), with the counters
//! and recent request ids they moved.
//!
//! Records arrive one by one ([`Monitor::ingest`]) or folded by an isolate into partial
//! buckets ([`Monitor::ingest_partials`]); a partial seen before (a batch sent again) is
//! counted once.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::alert::{Alert, StateChange};
use super::alert_diagnosis::AlertDiagnosis;
use super::diagnosis::Diagnosis;
use super::notify::{needs_update, record_decision, Notification, NotifyContext, NotifyReason};
use super::outbox::{Channel, FailOutcome, MarkError, Outbox, OutboxEntry};
use super::recent::RecentIds;
use super::rules::{Observation, RuleId, RuleSet, RulesConfigError};
use super::time::s_to_ms;
use super::window::{BucketKey, BucketRestoreError, BucketSnapshot, RejectReason, StringTable, Window};
use crate::alerting::AlertState;
use crate::cron::CronAlertEvent;
use crate::mute::{self, Gate};
use crate::partial::Partial;
use crate::record::RequestRecord;
use crate::routing::RoutingSpec;

/// Version of [`MonitorSnapshot`]'s layout.
pub const SNAPSHOT_FORMAT: u32 = 1;
/// State changes kept for the status endpoint.
pub const MAX_CHANGES: usize = 50;
/// Build versions longer than this are cut.
const MAX_BUILD_VERSION_CHARS: usize = 64;
/// Partial ids remembered to count a partial sent twice once (in memory: a batch is sent
/// again within a second or so).
const REMEMBERED_PARTIALS: usize = 512;

/// What a monitor runs with: the rules (from `ALERT_RULES`, and the shop's overrides), the
/// configured channels and the routing by severity among them.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    pub rules: RuleSet,
    /// Channels whose settings are present (the operator's; the owner's is separate).
    pub channels: Vec<Channel>,
    /// Which of them get each severity (default: all of them).
    pub routing: RoutingSpec,
}

impl MonitorConfig {
    /// Rules from an `ALERT_RULES` string (blank: defaults) and the channels to deliver to,
    /// every severity to every channel.
    pub fn from_alert_rules_json(json: &str, channels: Vec<Channel>) -> Result<Self, RulesConfigError> {
        Ok(MonitorConfig { rules: RuleSet::from_alert_rules_json(json)?, channels, routing: RoutingSpec::default() })
    }

    /// The channels a notification of `severity` is queued for.
    pub fn route(&self, severity: crate::alerting::Severity) -> Vec<Channel> {
        self.routing.channels_for(severity, &self.channels)
    }
}

/// Running totals, persisted with the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub accepted_records: u64,
    pub rejected_too_old: u64,
    pub rejected_future: u64,
    pub rejected_other_shop: u64,
    /// Latency samples that were NaN, infinite or negative (the request still counted).
    pub unusable_latency_samples: u64,
    pub evaluations: u64,
    pub notifications_decided: u64,
    /// `ingest` calls (one per batch the edge delivered): records per call shows how well
    /// the edge coalesces. Absent from snapshots written before it existed.
    #[serde(default)]
    pub ingest_calls: u64,
    /// Partial buckets taken (their records are in `accepted_records`).
    #[serde(default)]
    pub partials: u64,
    /// Partial buckets received again (a retried batch) and not counted twice.
    #[serde(default)]
    pub duplicate_partials: u64,
}

impl Counters {
    /// All rejected records.
    pub fn rejected(&self) -> u64 {
        self.rejected_too_old + self.rejected_future + self.rejected_other_shop
    }
}

/// What one `ingest` call did (records, whether sent alone or folded into partials).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub accepted: u64,
    pub rejected_too_old: u64,
    pub rejected_future: u64,
    pub rejected_other_shop: u64,
    /// Partial buckets taken.
    pub partials: u64,
    /// Partial buckets seen before, skipped.
    pub duplicate_partials: u64,
}

impl IngestReport {
    fn count(&mut self, outcome: Result<(), RejectReason>, records: u64) {
        let slot = match outcome {
            Ok(()) => &mut self.accepted,
            Err(RejectReason::TooOld) => &mut self.rejected_too_old,
            Err(RejectReason::TooFarInFuture) => &mut self.rejected_future,
            Err(RejectReason::OtherShop) => &mut self.rejected_other_shop,
        };
        *slot += records;
    }
}

/// What one `evaluate` call did. The notifications are already queued in the outbox (once
/// per configured channel); they are returned for logging.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The instant evaluated (never earlier than the previous evaluation).
    pub now_ms: i64,
    pub changes: Vec<StateChange>,
    pub notifications: Vec<Notification>,
    /// Outbox ids queued by this evaluation.
    pub enqueued: Vec<u64>,
}

/// Everything but the buckets, as one serializable value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorSnapshot {
    pub format: u32,
    pub shop: String,
    pub alerts: Vec<Alert>,
    pub outbox: Outbox,
    pub changes: Vec<StateChange>,
    pub recent: RecentIds,
    pub build_version: Option<String>,
    pub build_version_ts_ms: Option<i64>,
    pub last_eval_ms: Option<i64>,
    pub ingested_since_eval: bool,
    pub counters: Counters,
}

/// Why a snapshot cannot be restored (the edge then starts fresh with the buckets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// Written by a layout this code does not read.
    UnsupportedFormat { found: u32, supported: u32 },
    /// The snapshot belongs to another shop.
    ShopMismatch { expected: String, found: String },
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnsupportedFormat { found, supported } => {
                write!(f, "monitor snapshot format {found} is not supported (this build reads {supported})")
            }
            Self::ShopMismatch { expected, found } => {
                write!(f, "monitor snapshot is for shop {found:?}, not {expected:?}")
            }
        }
    }
}

impl std::error::Error for RestoreError {}

/// What a successful restore skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreReport {
    pub restored_buckets: usize,
    /// `(start_ms, why)` of each stored bucket not restored; the edge may delete them.
    pub skipped_buckets: Vec<(i64, BucketRestoreError)>,
    /// Outbox entries dead-lettered because their channel is no longer configured.
    pub dropped_deliveries: usize,
}

/// The per-shop monitor. See the module docs of `core::monitor` for the call sequence.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub(super) config: MonitorConfig,
    pub(super) shop: String,
    pub(super) window: Window,
    /// One per rule, in `config.rules.rules` order.
    pub(super) alerts: Vec<Alert>,
    pub(super) outbox: Outbox,
    pub(super) changes: VecDeque<StateChange>,
    pub(super) recent: RecentIds,
    pub(super) build_version: Option<(i64, String)>,
    pub(super) last_eval_ms: Option<i64>,
    pub(super) ingested_since_eval: bool,
    pub(super) counters: Counters,
    /// Ids of the partials taken lately (order, and a set to look them up).
    pub(super) recent_partials: VecDeque<String>,
    pub(super) recent_partial_ids: std::collections::HashSet<String>,
}

impl Monitor {
    /// A fresh monitor for `shop`.
    pub fn new(config: MonitorConfig, shop: &str) -> Monitor {
        let rules = &config.rules;
        Monitor {
            window: Window::with_detail(rules.bucket_s, rules.ring_buckets(), rules.detail_buckets()),
            alerts: rules.rules.iter().map(|r| Alert::new(r.id)).collect(),
            config,
            shop: shop.to_string(),
            outbox: Outbox::default(),
            changes: VecDeque::new(),
            recent: RecentIds::default(),
            build_version: None,
            last_eval_ms: None,
            ingested_since_eval: false,
            counters: Counters::default(),
            recent_partials: VecDeque::new(),
            recent_partial_ids: std::collections::HashSet::new(),
        }
    }

    pub fn shop(&self) -> &str {
        &self.shop
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Run with another configuration from now on (a shop's settings changed). The bucket
    /// width must be the same (it is fleet-wide); alerts keep their state and follow their
    /// rule's new parameters at the next evaluation (a disabled firing rule resolves then).
    pub fn set_config(&mut self, config: MonitorConfig) {
        debug_assert_eq!(config.rules.bucket_s, self.config.rules.bucket_s, "bucket_s is fleet-wide");
        self.config = config;
    }

    /// The last build version seen in a record.
    pub fn build_version(&self) -> Option<&str> {
        self.build_version.as_ref().map(|(_, v)| v.as_str())
    }

    /// When the rules were last evaluated.
    pub fn last_evaluated_ms(&self) -> Option<i64> {
        self.last_eval_ms
    }

    /// Every alert, in rule-table order.
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }

    /// The alert of `rule`.
    pub fn alert(&self, rule: RuleId) -> Option<&Alert> {
        self.alerts.iter().find(|a| a.rule == rule)
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The window ring (counts, digests, diagnoses).
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// Error classes, slowest routes and D1 signatures over the last `window_s` as of
    /// `now_ms` (a rule's window: see [`Window::diagnosis`]).
    pub fn diagnosis(&self, window_s: u32, now_ms: i64) -> Diagnosis {
        self.window.diagnosis(window_s, now_ms)
    }

    /// Count a batch of records as of `now_ms`. Records of another shop, older than the ring
    /// or more than 60 s ahead are rejected and counted; the rest are in the window at once.
    /// A record without a shop is taken as this shop's (the edge routed it here).
    pub fn ingest(&mut self, records: &[RequestRecord], now_ms: i64) -> IngestReport {
        // Prune only what the last evaluation saw leave: a bucket leaving a window later must
        // still be there for `next_due_ms` to notice.
        self.window.prune(self.last_eval_ms.map_or(now_ms, |t| t.min(now_ms)));
        let slow = |id| self.config.rules.rule(id).map_or(f64::INFINITY, |r| r.threshold);
        let (slow_request_ms, slow_d1_ms) = (slow(RuleId::RequestP95), slow(RuleId::D1P95));
        let mut report = IngestReport::default();
        for r in records {
            let outcome = self.ingest_one(r, now_ms, slow_request_ms, slow_d1_ms);
            report.count(outcome, 1);
        }
        self.counters.ingest_calls += 1;
        self.count_report(&report);
        report
    }

    /// Whether a partial of this id was taken lately (another batch carrying it again).
    pub fn seen_partial(&self, id: &str) -> bool {
        self.recent_partial_ids.contains(id)
    }

    /// Count partial buckets as of `now_ms`, like their records would have been; a partial
    /// whose id was taken lately is skipped (counted in `duplicate_partials`). Not an ingest
    /// call of its own: call [`ingest`](Self::ingest) for the same batch's records (an empty
    /// slice when there are none) so the call is counted once.
    /// Their digests are moved into the window (left empty in `partials`).
    pub fn ingest_partials(&mut self, partials: &mut [Partial], now_ms: i64) -> IngestReport {
        self.window.prune(self.last_eval_ms.map_or(now_ms, |t| t.min(now_ms)));
        let slow = |id| self.config.rules.rule(id).map_or(f64::INFINITY, |r| r.threshold);
        let (slow_request_ms, slow_d1_ms) = (slow(RuleId::RequestP95), slow(RuleId::D1P95));
        let mut report = IngestReport::default();
        for p in partials.iter_mut() {
            if self.recent_partial_ids.contains(&p.id) {
                report.duplicate_partials += 1;
                continue;
            }
            if self.recent_partials.len() >= REMEMBERED_PARTIALS {
                if let Some(old) = self.recent_partials.pop_front() {
                    self.recent_partial_ids.remove(&old);
                }
            }
            self.recent_partials.push_back(p.id.clone());
            self.recent_partial_ids.insert(p.id.clone());
            report.partials += 1;
            let outcome = self.window.add_partial(p, now_ms);
            report.count(outcome, p.requests);
            if outcome.is_ok() {
                self.counters.unusable_latency_samples += p.unusable;
                for sample in &p.samples {
                    self.recent.note_sample(sample, slow_request_ms, slow_d1_ms);
                }
                self.note_build(p.last_ts_ms, &p.build_version);
            }
        }
        self.counters.partials += report.partials;
        self.counters.duplicate_partials += report.duplicate_partials;
        self.count_report(&report);
        report
    }

    fn count_report(&mut self, report: &IngestReport) {
        let c = &mut self.counters;
        c.accepted_records += report.accepted;
        c.rejected_too_old += report.rejected_too_old;
        c.rejected_future += report.rejected_future;
        c.rejected_other_shop += report.rejected_other_shop;
        if report.accepted > 0 {
            self.ingested_since_eval = true;
        }
    }

    fn note_build(&mut self, ts_ms: i64, build: &str) {
        if self.build_version.as_ref().is_none_or(|(t, _)| ts_ms >= *t) && !build.is_empty() {
            let same = self.build_version.as_ref().is_some_and(|(_, v)| v == build);
            if same {
                if let Some((t, _)) = &mut self.build_version {
                    *t = ts_ms;
                }
            } else {
                self.build_version = Some((ts_ms, build.chars().take(MAX_BUILD_VERSION_CHARS).collect()));
            }
        }
    }

    fn ingest_one(
        &mut self,
        r: &RequestRecord,
        now_ms: i64,
        slow_request_ms: f64,
        slow_d1_ms: f64,
    ) -> Result<(), RejectReason> {
        if r.shop.as_deref().is_some_and(|s| s != self.shop) {
            return Err(RejectReason::OtherShop);
        }
        let unusable = self.window.add(r, now_ms)?;
        self.counters.unusable_latency_samples += u64::from(unusable);
        self.recent.note(r, slow_request_ms, slow_d1_ms);
        self.note_build(r.ts.timestamp_millis(), &r.build_version);
        Ok(())
    }

    /// Evaluate every rule as of `now_ms`, step the alerts, decide notifications and queue them.
    /// Idempotent: evaluating again at the same (or an earlier) instant changes nothing and
    /// decides nothing twice; an earlier `now_ms` is treated as the last evaluated instant.
    pub fn evaluate(&mut self, now_ms: i64) -> Evaluation {
        self.evaluate_gated(now_ms, &mute::Open)
    }

    /// [`evaluate`](Self::evaluate), with notifications the `gate` holds left undecided (so
    /// they are decided again when the hold ends).
    pub fn evaluate_gated(&mut self, now_ms: i64, gate: &dyn Gate) -> Evaluation {
        let (now_ms, changes) = self.step(now_ms);
        let (notifications, enqueued) = self.notify_due(now_ms, gate);
        Evaluation { now_ms, changes, notifications, enqueued }
    }

    /// The first half of an evaluation: every rule observed and every alert stepped as of
    /// `now_ms` (never earlier than the last evaluation, which it returns), no decisions.
    pub fn step(&mut self, now_ms: i64) -> (i64, Vec<StateChange>) {
        let now_ms = self.last_eval_ms.map_or(now_ms, |t| now_ms.max(t));
        self.window.prune(now_ms);
        self.window.compress();
        let mut changes = Vec::new();
        for (rule, alert) in self.config.rules.rules.iter().zip(self.alerts.iter_mut()) {
            let obs =
                if rule.enabled { rule.observe(&self.window, now_ms) } else { Observation { value: None, samples: 0 } };
            changes.extend(alert.step(rule, obs, now_ms));
        }
        for c in &changes {
            if self.changes.len() >= MAX_CHANGES {
                self.changes.pop_front();
            }
            self.changes.push_back(c.clone());
        }
        self.counters.evaluations += 1;
        self.last_eval_ms = Some(now_ms);
        self.ingested_since_eval = false;
        (now_ms, changes)
    }

    /// The second half: decide the notifications the alerts need at `now_ms` (those the
    /// `gate` does not hold) and queue each for the channels its severity routes to. Returns
    /// them and the outbox ids queued. Idempotent like `evaluate`.
    pub fn notify_due(&mut self, now_ms: i64, gate: &dyn Gate) -> (Vec<Notification>, Vec<u64>) {
        let notifications = self.decide(now_ms, gate);
        let mut enqueued = Vec::new();
        for n in &notifications {
            for channel in self.config.route(n.severity) {
                // A duplicate here means it was queued before: exactly what must not repeat.
                enqueued.extend(self.outbox.enqueue(n.clone(), channel, now_ms).ok());
            }
        }
        self.counters.notifications_decided += notifications.len() as u64;
        (notifications, enqueued)
    }

    /// Queue a notification for exactly these channels (the owner's email), outside routing.
    pub fn enqueue_to(&mut self, n: &Notification, channels: &[Channel], now_ms: i64) -> Vec<u64> {
        channels.iter().filter_map(|&c| self.outbox.enqueue(n.clone(), c, now_ms).ok()).collect()
    }

    /// Queue a cron/business alert event (decided by `core::cron`) for every configured
    /// channel, like a rule's notification. Returns the outbox ids queued; an event already
    /// queued or sent (same dedup key and event) is not queued again.
    pub fn notify_event(&mut self, event: &CronAlertEvent, now_ms: i64) -> Vec<u64> {
        let n = Notification::from_cron_event(
            &self.shop,
            self.build_version.as_ref().map(|(_, v)| v.as_str()),
            event,
            now_ms,
        );
        let mut enqueued = Vec::new();
        for channel in self.config.route(n.severity) {
            enqueued.extend(self.outbox.enqueue(n.clone(), channel, now_ms).ok());
        }
        self.counters.notifications_decided += 1;
        enqueued
    }

    fn decide(&mut self, now_ms: i64, gate: &dyn Gate) -> Vec<Notification> {
        let repeat_s = self.config.rules.repeat_interval_s;
        let mut out = Vec::new();
        for (rule, alert) in self.config.rules.rules.iter().zip(self.alerts.iter_mut()) {
            let Some(reason) = needs_update(alert, repeat_s, now_ms) else {
                continue;
            };
            if gate.hold(rule.id.name(), &alert.dedup_key(&self.shop), reason, now_ms).is_some() {
                continue;
            }
            let event = record_decision(alert, reason, now_ms);
            let ids = self.recent.for_rule(rule.id, now_ms.saturating_sub(s_to_ms(rule.window_s)));
            // Why, from the window the rule was evaluated over (triggers and repeats).
            let diagnosis = (reason != NotifyReason::Resolved)
                .then(|| {
                    let errors_5xx = self.window.totals(rule.window_s, now_ms).errors_5xx;
                    let d = self.window.diagnosis(rule.window_s, now_ms);
                    AlertDiagnosis::from_window(rule.id, rule.window_s, errors_5xx, &d)
                })
                .flatten();
            let ctx = NotifyContext {
                shop: &self.shop,
                build_version: self.build_version.as_ref().map(|(_, v)| v.as_str()),
                recent_request_ids: &ids,
                now_ms,
                diagnosis: diagnosis.as_ref(),
            };
            out.push(Notification::build(alert, rule, reason, event, ctx));
        }
        out
    }

    /// When the edge should arm the alarm, or `None` when nothing can change by itself:
    /// the earliest of an evaluation after new records (spaced by `eval_interval_s`), the end
    /// of a pending sustain time or a resolve hold, a repeat notification, data leaving or
    /// entering a rule window since the last evaluation, a bucket closing or closed and not yet
    /// persisted, and the next outbox attempt. Never earlier than `now_ms`: a past due time
    /// comes back as `now_ms` (act now).
    pub fn next_due_ms(&self, now_ms: i64) -> Option<i64> {
        self.next_due_ms_gated(now_ms, &mute::Open)
    }

    /// [`next_due_ms`](Self::next_due_ms) when the `gate` holds some notifications: a held
    /// one is due when its hold ends (if it ends by itself), not before.
    pub fn next_due_ms_gated(&self, now_ms: i64, gate: &dyn Gate) -> Option<i64> {
        let rules = &self.config.rules;
        let mut due: Vec<i64> = Vec::new();
        if self.ingested_since_eval {
            due.push(self.last_eval_ms.map_or(now_ms, |t| t.saturating_add(s_to_ms(rules.eval_interval_s))));
        }
        for (rule, alert) in rules.rules.iter().zip(&self.alerts) {
            due.extend(alert.next_deadline_ms(rule));
            if alert.state == AlertState::Firing {
                let (at, reason) = if alert.notified_firing_seq != alert.incident_seq {
                    (now_ms, NotifyReason::FirstFiring)
                } else {
                    let t =
                        alert.last_sent_at_ms.map_or(now_ms, |t| t.saturating_add(s_to_ms(rules.repeat_interval_s)));
                    (t, NotifyReason::RepeatInterval)
                };
                match gate.hold(rule.id.name(), &alert.dedup_key(&self.shop), reason, at.max(now_ms)) {
                    None => due.push(at),
                    Some(h) => due.extend(h.until_ms().map(|u| u.max(at))),
                }
            }
        }
        // Window changes since the last evaluation count, not only those still ahead.
        let windows: Vec<u32> = rules.rules.iter().filter(|r| r.enabled).map(|r| r.window_s).collect();
        due.extend(self.window.next_change_ms(self.last_eval_ms.unwrap_or(now_ms), &windows));
        if self.window.has_dirty_closed(now_ms) {
            due.push(now_ms);
        }
        due.extend(self.window.next_unpersisted_close_ms(now_ms));
        due.extend(self.outbox.next_attempt_at_ms());
        due.into_iter().min().map(|t| t.max(now_ms))
    }

    /// Closed buckets not yet persisted (or changed by a late record since): write each one,
    /// keyed by `start_ms` (upsert), then call [`mark_buckets_persisted`](Self::mark_buckets_persisted).
    pub fn dirty_closed_buckets(&self, now_ms: i64) -> Vec<BucketSnapshot> {
        self.window.dirty_closed(now_ms)
    }

    /// Compress the digests changed since the last evaluation (what `evaluate` does first;
    /// for benches that time the whole cost of an ingest).
    pub fn compress(&mut self) {
        self.window.compress();
    }

    /// Every bucket not stored as it is now, the open one included (for a hand-over).
    pub fn unpersisted_buckets(&self) -> Vec<BucketSnapshot> {
        self.window.unpersisted()
    }

    /// The whole string table, stored form.
    pub fn strings_stored_form(&self) -> String {
        self.window.strings_stored_form()
    }

    /// Every closed bucket as it is stored (for figures and inspection).
    pub fn closed_buckets(&self, now_ms: i64) -> Vec<BucketSnapshot> {
        self.window.closed(now_ms)
    }

    /// Record what the edge wrote (keys from [`BucketSnapshot::key`]).
    pub fn mark_buckets_persisted(&mut self, keys: &[BucketKey]) {
        self.window.mark_persisted(keys);
    }

    /// The binary row of a closed bucket (its diagnosis strings go to the string table).
    pub fn encode_bucket_row(&mut self, b: &BucketSnapshot) -> Vec<u8> {
        self.window.encode_row(b)
    }

    /// After writing bucket rows: the string table to store when it changed (`meta` key
    /// `strings`), then [`mark_strings_stored`](Self::mark_strings_stored).
    pub fn strings_to_store(&mut self) -> Option<String> {
        self.window.collect_strings()
    }

    pub fn mark_strings_stored(&mut self) {
        self.window.mark_strings_stored();
    }

    /// Put back the stored string table; call before decoding bucket rows with
    /// [`strings`](Self::strings).
    pub fn set_strings(&mut self, strings: StringTable) {
        self.window.set_strings(strings);
    }

    pub fn strings(&self) -> &StringTable {
        self.window.strings()
    }

    /// Put back one stored bucket after a restore (see [`Monitor::restore`]); `legacy` rows
    /// (an older layout) are marked to be written again in the current one.
    pub fn restore_bucket(&mut self, b: &BucketSnapshot, now_ms: i64, legacy: bool) -> Result<(), BucketRestoreError> {
        self.window.restore(b, now_ms)?;
        if legacy {
            self.window.mark_unpersisted(b.start_ms);
        }
        Ok(())
    }

    /// A fingerprint of what was *decided* (alert states and timers, the outbox, state
    /// changes), leaving out what moves with every record or evaluation (counters, values,
    /// recent ids): the snapshot needs writing when this changes.
    pub fn decisions_fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let alerts: Vec<Alert> = self.alerts.iter().map(|a| Alert { value: None, samples: 0, ..a.clone() }).collect();
        let json = serde_json::to_string(&(&alerts, &self.outbox, &self.changes)).unwrap_or_default();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        json.hash(&mut h);
        h.finish()
    }

    /// Stored buckets starting before this instant are outside the ring: delete them.
    pub fn bucket_retention_start_ms(&self, now_ms: i64) -> i64 {
        self.window.retention_start_ms(now_ms)
    }

    /// Outbox entries due at `now_ms`, leased to the caller (see outbox.rs).
    pub fn claim_due_deliveries(&mut self, now_ms: i64) -> Vec<OutboxEntry> {
        self.outbox.claim_due(now_ms)
    }

    /// The delivery `id` was sent.
    pub fn mark_delivery_sent(&mut self, id: u64) -> Result<(), MarkError> {
        self.outbox.mark_sent(id)
    }

    /// The delivery `id` failed at `now_ms` (the summary is scrubbed before it is kept).
    pub fn mark_delivery_failed(
        &mut self,
        id: u64,
        now_ms: i64,
        error_summary: &str,
    ) -> Result<FailOutcome, MarkError> {
        self.outbox.mark_failed(id, now_ms, error_summary)
    }

    /// The non-bucket state, for storage.
    pub fn snapshot(&self) -> MonitorSnapshot {
        MonitorSnapshot {
            format: SNAPSHOT_FORMAT,
            shop: self.shop.clone(),
            alerts: self.alerts.clone(),
            outbox: self.outbox.clone(),
            changes: self.changes.iter().cloned().collect(),
            recent: self.recent.clone(),
            build_version: self.build_version.as_ref().map(|(_, v)| v.clone()),
            build_version_ts_ms: self.build_version.as_ref().map(|(t, _)| *t),
            last_eval_ms: self.last_eval_ms,
            ingested_since_eval: self.ingested_since_eval,
            counters: self.counters.clone(),
        }
    }

    /// Rebuild a monitor from its stored snapshot (if any) and closed buckets as of `now_ms`.
    /// Buckets that do not fit (other width, outside the ring, corrupt) are skipped and
    /// reported; alerts are matched to rules by name, rules new to the snapshot start inactive.
    pub fn restore(
        config: MonitorConfig,
        shop: &str,
        snapshot: Option<MonitorSnapshot>,
        buckets: &[BucketSnapshot],
        now_ms: i64,
    ) -> Result<(Monitor, RestoreReport), RestoreError> {
        let mut m = Monitor::new(config, shop);
        let mut report = RestoreReport::default();
        if let Some(s) = snapshot {
            report.dropped_deliveries = m.apply_snapshot(s, now_ms)?;
        }
        for b in buckets {
            match m.window.restore(b, now_ms) {
                Ok(()) => report.restored_buckets += 1,
                Err(e) => report.skipped_buckets.push((b.start_ms, e)),
            }
        }
        Ok((m, report))
    }

    fn apply_snapshot(&mut self, s: MonitorSnapshot, now_ms: i64) -> Result<usize, RestoreError> {
        if s.format != SNAPSHOT_FORMAT {
            return Err(RestoreError::UnsupportedFormat { found: s.format, supported: SNAPSHOT_FORMAT });
        }
        if s.shop != self.shop {
            return Err(RestoreError::ShopMismatch { expected: self.shop.clone(), found: s.shop });
        }
        for alert in &mut self.alerts {
            if let Some(saved) = s.alerts.iter().find(|a| a.rule == alert.rule) {
                *alert = saved.clone();
            }
        }
        self.outbox = s.outbox;
        let mut keep = self.config.channels.clone();
        keep.push(Channel::Owner);
        let dropped = self.outbox.drop_channels_except(&keep, now_ms);
        self.changes = s.changes.into_iter().rev().take(MAX_CHANGES).rev().collect();
        self.recent = s.recent;
        self.build_version = s.build_version.map(|v| (s.build_version_ts_ms.unwrap_or(i64::MIN), v));
        self.last_eval_ms = s.last_eval_ms;
        self.ingested_since_eval = s.ingested_since_eval;
        self.counters = s.counters;
        Ok(dropped)
    }
}
