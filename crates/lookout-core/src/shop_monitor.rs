//! [`ShopMonitorCore`]: one shop's request monitor and cron watchdog composed, pure. It owns
//! the [`Monitor`] (windows, rules, alerts, outbox) and the cron state ([`CronPersisted`]:
//! watchdog, audit watch, cost watches, spend ledger) with their configuration, and makes
//! every decision the `ShopMonitor` Durable Object needs: what a batch does to both, when the
//! watchdog runs, where cron and business alerts go (the monitor's outbox), which stored
//! parts changed, the one alarm time, the merged status, and the log lines to print (as
//! [`LogLine`] data). The Durable Object only loads, stores, forwards and arms its alarm;
//! storage, HTTP and the clock are its.
//!
//! ```text
//!  DO load ──── ShopMonitorConfig::from_vars ─► ShopMonitorCore::restore(stored parts, now)
//!  POST /ingest  parse_batch ─► ingest ─► partials / records: Monitor + spend ledger
//!                                         check-ins: watchdog / audit watch ─► events ─► outbox
//!  alarm ─────── tick ─► Monitor::evaluate; the watchdog when due ─► events ─► outbox
//!                claim_due_deliveries ─► (DO sends) ─► record_deliveries
//!  cost jobs ─── cost_job;  GET /ai/pause ─ ai_pause;  POST /ai/resume ─ ai_resume
//!  operator ──── put_settings / config_view;  ack
//!  after each ── fleet_report ─► (DO asks the fleet object) ─► fleet_answered | fleet_failed
//!                persist_plan ─► storage (changed parts only) ─► persisted
//!                next_due_ms ─► the one alarm;  status ─► GET /status (+ the DO's own fields)
//! ```
//!
//! Notifications pass a gate (alerting.rs): silences and open fleet incidents from the fleet
//! object's last answer, the operator's acks, and, while the fleet object is in use, a new
//! incident's trigger waits for the answer to its report (a fleet incident may hold it);
//! what a gate holds is decided again when the hold ends.
//!
//! Dashboards (issue 13): the shop's [`History`] (minute and hour rollups, fed by the same
//! records and partial buckets, finalized by the same alarm; its binary chunks go to the
//! `history` table, see [`history_chunks`](ShopMonitorCore::history_chunks)) and the
//! fleet board summary it pushes ([`board_summary`](ShopMonitorCore::board_summary)).
//!
//! Stored parts (the DO's schema): each closed bucket (`ring` table, a binary row keyed by
//! `start_ms`; rows of the legacy JSON `buckets` table are read once and written again), the
//! strings their diagnoses use (`meta` key `strings`), the monitor snapshot (`meta` key
//! `snapshot`), the cron state (`meta` key `cron`), the shop's settings (`meta` key `config`,
//! written when an operator changes them) and the alerting state (`meta` key `alerting`: held
//! incidents, acks, the fleet's last answer). Request traffic alone writes a bucket
//! row when its bucket closes (and once more, smaller, when it leaves the detail window),
//! with the snapshot beside it (its counters); the snapshot is otherwise written only when
//! something was decided (an alert state or timer, the outbox, a state change); the cron
//! state only when spend was counted, a check-in arrived, the watchdog ran, a cost job ran or
//! AI was resumed.

mod alerting;

use serde::Serialize;

pub use alerting::{parse_ack_body, AckError, AlertingState, FleetLink, OpenEvent, Reported, FLEET_RETRY_MS};

use crate::alerting::{AlertState, Severity};
use crate::board::{ShopSummary, SummaryGate};
use crate::cron::{
    CheckInEffect, CheckInKind, CronConfig, CronPersisted, CronShopStatus, PauseReason, Results, ResumeError,
};
use crate::fleet::deadman_interval_from_var;
use crate::history::series::{HistorySeries, Range};
use crate::history::{Chunk, ChunkKind, History, R2Sample};
use crate::ingest::{Parsed, Rejection};
use crate::monitor::rules::RuleSet;
use crate::monitor::window::{LegacyBucketSnapshot, StringTable};
use crate::monitor::{
    BucketKey, BucketSnapshot, Channel, Evaluation, FailOutcome, IngestReport, MarkError, Monitor, MonitorConfig,
    MonitorSnapshot, OutboxEntry, StateChange, Status,
};
use crate::mute::Hold;
use crate::partial::Partial;
use crate::routing::RoutingSpec;
use crate::shop_config::ShopSettings;

/// A watchdog evaluation later than this after its due time is logged (`cron_watchdog_lag`).
pub const LOG_WATCHDOG_LAG_ABOVE_S: u64 = 60;
/// Rejected batch items quoted in the `monitor_ingest_rejected` line.
const REJECTIONS_QUOTED: usize = 3;

/// The Worker's vars a shop monitor reads (`None`: unset or blank).
#[derive(Debug, Clone, Copy, Default)]
pub struct ShopVars<'a> {
    pub alert_rules: Option<&'a str>,
    pub cron_watch: Option<&'a str>,
    pub twilio_weekly_budget_micros: Option<&'a str>,
    pub ai_monthly_cap_micros: Option<&'a str>,
    /// `ALERT_ROUTING`: channels per severity.
    pub alert_routing: Option<&'a str>,
    /// `DEADMAN_INTERVAL_S`: the heartbeat and stall intervals follow it.
    pub deadman_interval_s: Option<&'a str>,
}

/// What one shop's monitor runs with. Bad vars never stop it: defaults are used instead and
/// the problem is kept (logged at load, shown in the status).
#[derive(Debug, Clone, PartialEq)]
pub struct ShopMonitorConfig {
    pub monitor: MonitorConfig,
    pub cron: CronConfig,
    /// Why `ALERT_RULES` was rejected (the default rules are in force).
    pub alert_rules_error: Option<String>,
    /// `CRON_WATCH` / budget var problems (defaults or "unset" in force), and
    /// `ALERT_ROUTING` / `DEADMAN_INTERVAL_S` problems.
    pub cron_errors: Vec<String>,
    pub deadman_interval_s: u32,
    /// The Worker can send the owner's email (`ALERT_EMAIL_FROM` and the mailer binding).
    pub owner_channel: bool,
}

impl ShopMonitorConfig {
    /// From the vars and the channels whose settings are present.
    pub fn from_vars(vars: ShopVars, channels: Vec<Channel>) -> ShopMonitorConfig {
        let (monitor, alert_rules_error) =
            match MonitorConfig::from_alert_rules_json(vars.alert_rules.unwrap_or(""), channels.clone()) {
                Ok(c) => (c, None),
                Err(e) => (
                    MonitorConfig { rules: RuleSet::default(), channels, routing: Default::default() },
                    Some(format!("ALERT_RULES rejected, defaults in force: {e}")),
                ),
            };
        let (cron, mut cron_errors) =
            CronConfig::from_vars(vars.cron_watch, vars.twilio_weekly_budget_micros, vars.ai_monthly_cap_micros);
        let mut monitor = monitor;
        match RoutingSpec::from_var(vars.alert_routing) {
            Ok(r) => monitor.routing = r,
            Err(e) => cron_errors.push(format!("{e}; every severity goes to every channel")),
        }
        let (deadman_interval_s, err) = deadman_interval_from_var(vars.deadman_interval_s);
        cron_errors.extend(err);
        ShopMonitorConfig { monitor, cron, alert_rules_error, cron_errors, deadman_interval_s, owner_channel: false }
    }
}

/// The stored parts, as the Durable Object read them.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredParts<'a> {
    /// `meta` key `snapshot`.
    pub snapshot: Option<&'a str>,
    /// `ring` rows `(start_ms, data)`, in `start_ms` order.
    pub rows: &'a [(i64, Vec<u8>)],
    /// `meta` key `strings`: the diagnoses' string table.
    pub strings: Option<&'a str>,
    /// Legacy `buckets.data` (JSON), in `start_ms` order: restored and written again as rows.
    pub buckets: &'a [String],
    /// `meta` key `cron`.
    pub cron: Option<&'a str>,
    /// `meta` key `config`: the shop's settings.
    pub settings: Option<&'a str>,
    /// `meta` key `alerting`: held incidents, acks, the fleet view.
    pub alerting: Option<&'a str>,
    /// A [`HandOver`] (JSON) the previous wasm instance of this isolate left for this shop
    /// when a panic reset it: newer than storage, put back over it.
    pub handed_over: Option<&'a str>,
    /// The `history` table's rows (the dashboards' rollups).
    pub history: &'a [Chunk],
}

/// What a monitor had not yet stored when a panic elsewhere in its isolate reset the wasm
/// instance it lives in (a Worker and its Durable Objects may share one): handed to the
/// JavaScript entry by the panic hook and put back by the next load of the object, so a
/// panic costs no record (not even the open bucket's).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct HandOver {
    pub shop: String,
    /// Every bucket not stored as it was (the open one included): `(start_ms, base64 row)`.
    pub rows: Vec<(i64, String)>,
    /// The whole string table the rows refer to.
    pub strings: String,
    /// The monitor snapshot as it was.
    pub snapshot: String,
    /// The cron state as it was.
    pub cron: String,
    /// The alerting state as it was.
    #[serde(default)]
    pub alerting: Option<String>,
}

/// What to write after a call (only what changed), from [`ShopMonitorCore::persist_plan`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistPlan {
    /// `ring` rows to upsert: the key to report back and the binary row.
    pub rows: Vec<(BucketKey, Vec<u8>)>,
    /// Delete `ring` rows starting before this (outside the ring), when it moved.
    pub delete_before_ms: Option<i64>,
    /// `meta` key `strings`, when it changed.
    pub strings: Option<String>,
    /// `meta` key `snapshot`, when it changed.
    pub snapshot: Option<String>,
    /// `meta` key `cron`, when it changed.
    pub cron: Option<String>,
    /// `meta` key `config`, when the settings changed.
    pub settings: Option<String>,
    /// `meta` key `alerting`, when it changed.
    pub alerting: Option<String>,
}

/// What the edge wrote of a [`PersistPlan`] (a part that failed stays to write next time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persisted {
    pub rows: Vec<BucketKey>,
    /// The delete of the plan ran.
    pub deleted_before_ms: Option<i64>,
    pub strings: bool,
    pub snapshot: bool,
    pub cron: bool,
    pub settings: bool,
    pub alerting: bool,
}

/// One log line for the Durable Object to print, as data. [`LogLine::to_line`] gives the JSON
/// (`{"kind": ..., ...}`) the object has always printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogLine {
    /// A var was rejected; defaults are in force. `var` names `ALERT_RULES`; the cron vars'
    /// messages name their var themselves.
    ConfigError {
        shop: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        var: Option<&'static str>,
        error: String,
    },
    /// A stored part could not be restored (the monitor starts fresh, or the cron state
    /// starts empty when `part` is `cron`).
    MonitorRestoreError {
        shop: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        part: Option<&'static str>,
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// Items of a batch were refused (the others were taken).
    MonitorIngestRejected { shop: String, rejected: usize, accepted: usize, first: Vec<Rejection> },
    /// What a cron check-in did.
    CronCheckIn {
        shop: String,
        cron: String,
        run_id: String,
        /// `start` or `end`.
        #[serde(rename = "type")]
        check_in_type: &'static str,
        effect: CheckInEffect,
    },
    /// A cron or business alert event, queued for `queued` channels (none when `held_by`).
    CronAlert {
        shop: String,
        rule: String,
        state: AlertState,
        cron: Option<String>,
        run_id: Option<String>,
        severity: Severity,
        dedup_key: String,
        summary: String,
        queued: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        held_by: Option<Hold>,
    },
    /// A held trigger went out (its hold ended while the incident was still open).
    NotificationReleased { shop: String, rule: String, dedup_key: String, queued: usize },
    /// An operator changed the shop's settings: which fields (never their values: the owner's
    /// email is personal data).
    ShopConfigChanged { shop: String, changed: Vec<&'static str> },
    /// An operator acknowledged an incident.
    AlertAcked { shop: String, rule: String, dedup_key: String },
    /// The monitor has traffic but has not evaluated for several dead-man intervals.
    MonitorStalled { shop: String, stalled_since_ms: Option<i64>, last_evaluated_ms: Option<i64> },
    /// The fleet object could not be reached (nothing waits for it meanwhile).
    FleetExchangeFailed { shop: String, error: String },
    /// The watchdog ran more than [`LOG_WATCHDOG_LAG_ABOVE_S`] after its due time.
    CronWatchdogLag { shop: String, lag_s: u64 },
    /// A rule's alert changed state.
    AlertStateChange { shop: String, change: StateChange },
    /// A delivery attempt failed (it is retried or dead-lettered by the outbox).
    AlertDeliveryFailed { shop: String, delivery: u64, error: String },
    /// An operator resumed AI.
    AiResumed { shop: String },
}

impl LogLine {
    /// The line to print: compact JSON with `kind` first.
    pub fn to_line(&self) -> String {
        serde_json::to_value(self).map(|v| v.to_string()).unwrap_or_default()
    }
}

/// What a restore found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreOutcome {
    /// Config problems, unreadable parts, then the watchdog's first evaluation.
    pub lines: Vec<LogLine>,
    /// `start_ms` of stored buckets that do not fit the ring (other width, outside it,
    /// corrupt): delete them.
    pub delete_buckets: Vec<i64>,
}

/// What one ingest did. Serializes as the ingest route's answer:
/// `{"report": ..., "check_ins": [...], "rejected": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestOutcome {
    pub report: IngestReport,
    /// One effect per check-in, in batch order.
    pub check_ins: Vec<CheckInEffect>,
    /// The batch items refused by the parser.
    pub rejected: Vec<Rejection>,
    /// Whether the cron state changed (spend counted or check-ins taken).
    #[serde(skip)]
    pub cron_changed: bool,
    #[serde(skip)]
    pub lines: Vec<LogLine>,
}

/// What one alarm tick decided.
#[derive(Debug, Clone, PartialEq)]
pub struct TickOutcome {
    /// The monitor's evaluation (its notifications are already queued).
    pub evaluation: Evaluation,
    /// Whether the watchdog's due time had come, so it evaluated.
    pub watchdog_ran: bool,
    /// How late the watchdog ran after its due time (0 when it did not run).
    pub watchdog_lag_s: u64,
    pub lines: Vec<LogLine>,
}

/// The cost jobs the scheduled handler asks the monitor to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostJob {
    /// The weekly Twilio summary (`POST /cron/twilio-summary`).
    TwilioSummary,
    /// The daily AI check (`POST /cron/ai-check`).
    AiCheck,
}

/// What a cost job did. Serializes as the job route's answer: `{"results": {...}}`, the
/// figures for the job's summary line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostJobOutcome {
    pub results: Results,
    #[serde(skip)]
    pub lines: Vec<LogLine>,
}

/// `GET /ai/pause`'s answer: what the app's AI routes obey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AiPauseAnswer {
    pub paused: bool,
    pub since_ms: Option<i64>,
    pub reason: Option<PauseReason>,
}

/// The status document: the monitor's and the cron side's, merged into one object. The
/// Durable Object adds its own fields (`config_error`, `alarm_armed_at_ms`,
/// `last_alarm_lag_ms`, `storage_bytes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShopStatus {
    #[serde(flatten)]
    pub monitor: Status,
    #[serde(flatten)]
    pub cron: CronShopStatus,
    pub cron_config_errors: Vec<String>,
    /// `config`, `silences`, `acks`, `notifications_held`, `fleet`, `stalled_since`.
    #[serde(flatten)]
    pub alerting: serde_json::Map<String, serde_json::Value>,
}

/// One shop's monitor and cron watchdog (see the module doc).
#[derive(Debug, Clone)]
pub struct ShopMonitorCore {
    shop: String,
    monitor: Monitor,
    cron: CronPersisted,
    cron_config: CronConfig,
    alert_rules_error: Option<String>,
    cron_config_errors: Vec<String>,
    /// Something decided changed since the snapshot was last stored.
    snapshot_dirty: bool,
    /// The decisions' fingerprint as last stored (a tick that decides nothing writes nothing).
    stored_fingerprint: Option<u64>,
    /// The fingerprint of the snapshot in the last plan.
    planned_fingerprint: Option<u64>,
    /// The cron state changed since it was last stored.
    cron_dirty: bool,
    /// Rows before this were deleted (the delete runs again only when it moves).
    deleted_before_ms: Option<i64>,
    /// The vars' configuration, which the shop's settings override.
    base_monitor: MonitorConfig,
    base_twilio_budget: Option<u64>,
    base_ai_cap: Option<u64>,
    settings: ShopSettings,
    /// Stored settings the vars no longer accept (the vars' values are in force for them).
    settings_error: Option<String>,
    settings_dirty: bool,
    alerting: AlertingState,
    alerting_dirty: bool,
    link: FleetLink,
    owner_channel: bool,
    deadman_interval_s: u32,
    /// The first record taken since the last evaluation (stall detection; memory only).
    pending_since_ms: Option<i64>,
    /// The dashboards' rollups (stored as chunks, see `history_chunks`).
    history: History,
    /// When the fleet board summary is pushed next (not stored).
    summary_gate: SummaryGate,
    /// An alert changed state since the last summary (so one may be due before the interval).
    alerts_changed: bool,
}

impl ShopMonitorCore {
    /// Rebuild from the stored parts as of `now_ms`. Never fails: an unreadable snapshot or
    /// cron state is logged and started fresh, buckets that do not fit are skipped (and
    /// listed for deletion), unreadable bucket rows are ignored. Then the watchdog evaluates
    /// once (align it with the watch list, conclude what is due). Everything counts as
    /// changed, so the first store writes all of it.
    pub fn restore(
        config: ShopMonitorConfig,
        shop: &str,
        stored: StoredParts,
        now_ms: i64,
    ) -> (ShopMonitorCore, RestoreOutcome) {
        let mut lines = Vec::new();
        let restore_error = |part: Option<&'static str>, error: String, at_ms: Option<i64>| {
            LogLine::MonitorRestoreError { shop: shop.to_string(), part, error, at_ms }
        };
        if let Some(e) = &config.alert_rules_error {
            lines.push(LogLine::ConfigError { shop: shop.to_string(), var: Some("ALERT_RULES"), error: e.clone() });
        }
        let handed_over = match stored.handed_over.map(serde_json::from_str::<HandOver>) {
            Some(Ok(h)) if h.shop == shop => Some(h),
            Some(Ok(_)) => None,
            Some(Err(e)) => {
                lines.push(restore_error(Some("handed_over"), e.to_string(), Some(now_ms)));
                None
            }
            None => None,
        };
        let handed_rows: Vec<(i64, Vec<u8>)> = handed_over
            .as_ref()
            .map(|h| {
                use base64::Engine;
                let b64 = base64::engine::general_purpose::STANDARD;
                h.rows.iter().filter_map(|(start, row)| Some((*start, b64.decode(row).ok()?))).collect()
            })
            .unwrap_or_default();
        let stored = match &handed_over {
            Some(h) => StoredParts {
                snapshot: Some(&h.snapshot),
                strings: Some(&h.strings),
                cron: Some(&h.cron),
                alerting: h.alerting.as_deref().or(stored.alerting),
                ..stored
            },
            None => stored,
        };
        let snapshot = stored.snapshot.and_then(|s| match serde_json::from_str::<MonitorSnapshot>(s) {
            Ok(v) => Some(v),
            Err(e) => {
                lines.push(restore_error(None, e.to_string(), None));
                None
            }
        });
        let mut delete_buckets = Vec::new();
        let mut monitor = match Monitor::restore(config.monitor.clone(), shop, snapshot, &[], now_ms) {
            Ok((m, _)) => m,
            Err(e) => {
                lines.push(restore_error(None, e.to_string(), None));
                Monitor::new(config.monitor.clone(), shop)
            }
        };
        match stored.strings.map(StringTable::from_stored) {
            Some(Ok(t)) => monitor.set_strings(t),
            Some(Err(e)) => lines.push(restore_error(Some("strings"), e.to_string(), Some(now_ms))),
            None => {}
        }
        // Unreadable rows are ignored (retention deletes them); rows that do not fit the ring
        // (another width, outside it, inconsistent) are listed for deletion.
        let decode =
            |(start_ms, data): &(i64, Vec<u8>)| BucketSnapshot::decode(*start_ms, data, monitor.strings()).ok();
        let handed: Vec<BucketSnapshot> = handed_rows.iter().filter_map(decode).collect();
        let decoded: Vec<BucketSnapshot> = stored
            .rows
            .iter()
            .filter(|(start_ms, _)| !handed.iter().any(|h| h.start_ms == *start_ms))
            .filter_map(decode)
            .collect();
        for b in &decoded {
            if monitor.restore_bucket(b, now_ms, false).is_err() {
                delete_buckets.push(b.start_ms);
            }
        }
        // Handed-over buckets are newer than their rows: put back, to be written.
        for b in &handed {
            let _ = monitor.restore_bucket(b, now_ms, true);
        }
        for legacy in stored.buckets.iter().filter_map(|b| serde_json::from_str::<LegacyBucketSnapshot>(b).ok()) {
            if let Ok(b) = legacy.upgrade() {
                let _ = monitor.restore_bucket(&b, now_ms, true);
            }
        }
        for e in &config.cron_errors {
            lines.push(LogLine::ConfigError { shop: shop.to_string(), var: None, error: e.clone() });
        }
        let cron = match stored.cron.map(serde_json::from_str::<CronPersisted>) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                lines.push(restore_error(Some("cron"), e.to_string(), Some(now_ms)));
                CronPersisted::default()
            }
            None => CronPersisted::default(),
        };
        let settings = match stored.settings.map(serde_json::from_str::<ShopSettings>) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                lines.push(restore_error(Some("config"), e.to_string(), Some(now_ms)));
                ShopSettings::default()
            }
            None => ShopSettings::default(),
        };
        let alerting = match stored.alerting.map(serde_json::from_str::<AlertingState>) {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                lines.push(restore_error(Some("alerting"), e.to_string(), Some(now_ms)));
                AlertingState::default()
            }
            None => AlertingState::default(),
        };
        let (history, history_errors) = History::restore(stored.history, now_ms);
        for (kind, idx, e) in history_errors {
            lines.push(restore_error(Some("history"), format!("{kind:?} chunk {idx}: {e}"), Some(now_ms)));
        }
        let mut core = ShopMonitorCore {
            shop: shop.to_string(),
            monitor,
            base_twilio_budget: config.cron.twilio_weekly_budget_micros,
            base_ai_cap: config.cron.ai_monthly_cap_micros,
            cron,
            cron_config: config.cron,
            alert_rules_error: config.alert_rules_error,
            cron_config_errors: config.cron_errors,
            snapshot_dirty: true,
            stored_fingerprint: None,
            planned_fingerprint: None,
            cron_dirty: true,
            deleted_before_ms: None,
            base_monitor: config.monitor,
            settings,
            settings_error: None,
            settings_dirty: false,
            alerting,
            alerting_dirty: true,
            link: FleetLink::default(),
            owner_channel: config.owner_channel,
            deadman_interval_s: config.deadman_interval_s,
            pending_since_ms: None,
            history,
            summary_gate: SummaryGate::default(),
            alerts_changed: true,
        };
        core.apply_settings();
        if let Some(e) = &core.settings_error {
            lines.push(LogLine::ConfigError { shop: shop.to_string(), var: Some("shop config"), error: e.clone() });
        }
        // Start (or resume) watching: align the watchdog with the watch list and conclude
        // what is due, whether or not its due time has come.
        core.run_watchdog(now_ms, &mut lines);
        (core, RestoreOutcome { lines, delete_buckets })
    }

    pub fn shop(&self) -> &str {
        &self.shop
    }

    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    pub fn cron_state(&self) -> &CronPersisted {
        &self.cron
    }

    pub fn cron_config(&self) -> &CronConfig {
        &self.cron_config
    }

    /// Why `ALERT_RULES` was rejected at load (the defaults are in force).
    pub fn alert_rules_error(&self) -> Option<&str> {
        self.alert_rules_error.as_deref()
    }

    /// A parsed batch as of `now_ms`: records go to the monitor's window and the spend
    /// ledger, check-ins to the watchdog (and an End's results to the audit watch); alert
    /// events they raise are queued in the outbox.
    pub fn ingest(&mut self, batch: Parsed, now_ms: i64) -> IngestOutcome {
        let Parsed { records, mut partials, check_ins, rejected } = batch;
        let mut lines = Vec::new();
        let mut events = Vec::new();
        if !rejected.is_empty() {
            lines.push(LogLine::MonitorIngestRejected {
                shop: self.shop().to_string(),
                rejected: rejected.len(),
                accepted: records.len() + partials.len() + check_ins.len(),
                first: rejected.iter().take(REJECTIONS_QUOTED).cloned().collect(),
            });
        }
        // The dashboards' history: the records, and the partials the monitor had not seen
        // (a batch sent again is counted once, as the monitor counts it).
        let mut fresh = std::collections::HashSet::new();
        let new_partials: Vec<&Partial> =
            partials.iter().filter(|p| !self.monitor.seen_partial(&p.id) && fresh.insert(p.id.as_str())).collect();
        for r in &records {
            self.history.add_record(r, now_ms);
        }
        for p in &new_partials {
            self.history.add_partial(p, now_ms);
        }
        if !records.is_empty() || !new_partials.is_empty() {
            self.summary_gate.touch();
        }
        let counted = self.cron.record_spend(&records) + self.cron.record_partial_spend(&partials);
        let mut report = self.monitor.ingest(&records, now_ms);
        let folded = self.monitor.ingest_partials(&mut partials, now_ms);
        report.accepted += folded.accepted;
        report.rejected_too_old += folded.rejected_too_old;
        report.rejected_future += folded.rejected_future;
        report.rejected_other_shop += folded.rejected_other_shop;
        report.partials += folded.partials;
        report.duplicate_partials += folded.duplicate_partials;
        if report.accepted > 0 && self.pending_since_ms.is_none() {
            self.pending_since_ms = Some(now_ms);
        }
        if counted > 0 {
            // The AI cap as spend happens: the record that crossed it pauses AI now.
            events.extend(self.cron.ai_spend_check(&self.cron_config, now_ms));
        }
        let mut effects = Vec::with_capacity(check_ins.len());
        for ci in &check_ins {
            let o = self.cron.check_in(&self.cron_config, ci, now_ms);
            lines.push(LogLine::CronCheckIn {
                shop: self.shop().to_string(),
                cron: ci.cron.clone(),
                run_id: ci.run_id.clone(),
                check_in_type: if matches!(ci.kind, CheckInKind::Start) { "start" } else { "end" },
                effect: o.effect,
            });
            effects.push(o.effect);
            events.extend(o.events);
        }
        let cron_changed = counted > 0 || !check_ins.is_empty();
        self.cron_dirty |= cron_changed;
        lines.extend(self.notify(&events, now_ms));
        IngestOutcome { report, check_ins: effects, rejected, cron_changed, lines }
    }

    /// The alarm's decisions at `now_ms`: evaluate the monitor's rules, and run the watchdog
    /// when its due time has come (the alarm also wakes for the monitor alone). Deliveries are
    /// separate: [`claim_due_deliveries`](Self::claim_due_deliveries) after storing.
    pub fn tick(&mut self, now_ms: i64) -> TickOutcome {
        let g = alerting::gate(&self.shop, &self.alerting, &self.link, now_ms);
        let evaluation = self.monitor.evaluate_gated(now_ms, &g);
        self.pending_since_ms = None;
        if !evaluation.changes.is_empty() || !evaluation.notifications.is_empty() {
            self.snapshot_dirty = true;
        } else if Some(self.monitor.decisions_fingerprint()) != self.stored_fingerprint {
            // An alert timer moved without a state change (a resolve hold began, say).
            self.snapshot_dirty = true;
        }
        self.history.advance(now_ms);
        self.alerts_changed |= !evaluation.changes.is_empty();
        let mut lines: Vec<LogLine> = evaluation
            .changes
            .iter()
            .map(|c| LogLine::AlertStateChange { shop: self.shop().to_string(), change: c.clone() })
            .collect();
        let watchdog_due = self.cron.next_due_ms(&self.cron_config);
        let watchdog_ran = watchdog_due.is_some_and(|d| d <= now_ms);
        let watchdog_lag_s = if watchdog_ran { self.run_watchdog(now_ms, &mut lines) } else { 0 };
        // Held cron/business triggers whose hold ended (a silence's end wakes the alarm).
        lines.extend(self.release(now_ms));
        TickOutcome { evaluation, watchdog_ran, watchdog_lag_s, lines }
    }

    /// The watchdog's evaluation: its events go to the outbox. Returns its lag.
    fn run_watchdog(&mut self, now_ms: i64, lines: &mut Vec<LogLine>) -> u64 {
        let outcome = self.cron.evaluate(&self.cron_config, now_ms);
        self.cron_dirty = true;
        if outcome.lag_s > LOG_WATCHDOG_LAG_ABOVE_S {
            lines.push(LogLine::CronWatchdogLag { shop: self.shop().to_string(), lag_s: outcome.lag_s });
        }
        lines.extend(self.notify(&outcome.events, now_ms));
        outcome.lag_s
    }

    /// The one alarm time: the earlier of the monitor's and the watchdog's next due time,
    /// never before `now_ms` (a past due time means "now"); `None`: nothing to wake for.
    pub fn next_due_ms(&self, now_ms: i64) -> Option<i64> {
        let g = alerting::gate(&self.shop, &self.alerting, &self.link, now_ms);
        let monitor_due = self.monitor.next_due_ms_gated(now_ms, &g);
        let watchdog_due = self.cron.next_due_ms(&self.cron_config).map(|t| t.max(now_ms));
        // The dashboards: a minute or hour to finalize, a board summary to push.
        let history_due = self.history.next_due_ms().map(|t| t.max(now_ms));
        // (The board lives in the fleet object: no fleet object, no pushes.)
        let summary_due = self.summary_gate.next_due_ms().filter(|_| self.link.enabled).map(|t| t.max(now_ms));
        monitor_due
            .into_iter()
            .chain(watchdog_due)
            .chain(history_due)
            .chain(summary_due)
            .chain(self.held_due_ms(now_ms))
            .min()
    }

    /// Outbox entries due at `now_ms`, leased to the caller (store first, then send).
    pub fn claim_due_deliveries(&mut self, now_ms: i64) -> Vec<OutboxEntry> {
        let due = self.monitor.claim_due_deliveries(now_ms);
        self.snapshot_dirty |= !due.is_empty();
        due
    }

    /// The delivery `id` was sent.
    pub fn mark_delivery_sent(&mut self, id: u64) -> Result<(), MarkError> {
        self.snapshot_dirty = true;
        self.monitor.mark_delivery_sent(id)
    }

    /// The delivery `id` failed at `now_ms`.
    pub fn mark_delivery_failed(&mut self, id: u64, now_ms: i64, error: &str) -> Result<FailOutcome, MarkError> {
        self.snapshot_dirty = true;
        self.monitor.mark_delivery_failed(id, now_ms, error)
    }

    /// Report what sending the claimed deliveries did (failures as of `now_ms`); one
    /// `alert_delivery_failed` line per failure.
    pub fn record_deliveries(&mut self, results: &[(u64, Result<(), String>)], now_ms: i64) -> Vec<LogLine> {
        let mut lines = Vec::new();
        for (id, result) in results {
            match result {
                Ok(()) => {
                    let _ = self.mark_delivery_sent(*id);
                }
                Err(e) => {
                    lines.push(LogLine::AlertDeliveryFailed {
                        shop: self.shop().to_string(),
                        delivery: *id,
                        error: e.clone(),
                    });
                    let _ = self.mark_delivery_failed(*id, now_ms, e);
                }
            }
        }
        lines
    }

    /// `GET /ai/pause` as of `now_ms`.
    pub fn ai_pause(&self, now_ms: i64) -> AiPauseAnswer {
        let pause = self.cron.ai.pause.as_ref().filter(|_| self.cron.ai_paused(now_ms));
        AiPauseAnswer { paused: pause.is_some(), since_ms: pause.map(|p| p.since_ms), reason: pause.map(|p| p.reason) }
    }

    /// The operator's resume: the resolve event is queued, the cron state changes.
    pub fn ai_resume(&mut self, now_ms: i64) -> Result<Vec<LogLine>, ResumeError> {
        let events = self.cron.ai_resume(&self.cron_config, now_ms)?;
        self.cron_dirty = true;
        let mut lines = self.notify(&events, now_ms);
        lines.push(LogLine::AiResumed { shop: self.shop().to_string() });
        Ok(lines)
    }

    /// Run a cost job: evaluate its projection, queue its alert, give the figures.
    pub fn cost_job(&mut self, job: CostJob, now_ms: i64) -> CostJobOutcome {
        let (results, events) = match job {
            CostJob::TwilioSummary => self.cron.twilio_summary(&self.cron_config, now_ms),
            CostJob::AiCheck => self.cron.ai_check(&self.cron_config, now_ms),
        };
        self.cron_dirty = true;
        let lines = self.notify(&events, now_ms);
        CostJobOutcome { results, lines }
    }

    /// The status document as of `now_ms` (without the Durable Object's own fields).
    pub fn status(&self, now_ms: i64) -> ShopStatus {
        ShopStatus {
            monitor: self.monitor.status(now_ms),
            cron: self.cron.status(&self.cron_config, now_ms),
            cron_config_errors: self.cron_config_errors.clone(),
            alerting: self.alerting_status(now_ms),
        }
    }

    // ---- Dashboards (issue 13): history, the fleet board summary, R2 samples. ----

    /// The history route's answer (`GET /history/{24h|30d}`) as of `now_ms`.
    pub fn history_series(&self, range: Range, now_ms: i64) -> HistorySeries {
        self.history.series(self.shop(), range, now_ms)
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// The shop's summary for the fleet board when a push is due (a firing change, or the
    /// regular interval); then [`summary_sent`](Self::summary_sent) with the outcome.
    pub fn board_summary(&mut self, now_ms: i64) -> Option<ShopSummary> {
        if !self.link.enabled {
            return None;
        }
        // Building the status is the cost: skip it while nothing can be due.
        if !self.alerts_changed && self.summary_gate.quiet_until_ms().is_some_and(|t| now_ms < t) {
            return None;
        }
        self.alerts_changed = false;
        let s = ShopSummary::from_status(&self.status(now_ms), &self.history.last_hour(now_ms), now_ms);
        if !self.summary_gate.due(&s) {
            return None;
        }
        self.summary_gate.sending(&s);
        Some(s)
    }

    pub fn summary_sent(&mut self, ok: bool) {
        self.summary_gate.sent(ok);
    }

    /// The daily job's R2 storage sample.
    pub fn add_r2_sample(&mut self, sample: R2Sample) {
        self.history.add_r2_sample(sample);
    }

    /// Test environment and bench only: replace the history with a made-up full one (30
    /// days at `rps`), to see what full retention costs and looks like.
    pub fn synthesize_history(&mut self, now_ms: i64, rps: f64, seed: u64) {
        let mut h = History::new();
        crate::history::synthetic::fill(&mut h, now_ms, rps, seed);
        self.history = h;
    }

    /// History chunks to write (upsert by kind and idx), then
    /// [`mark_history_persisted`](Self::mark_history_persisted).
    pub fn history_chunks(&self) -> Vec<Chunk> {
        self.history.dirty_chunks()
    }

    pub fn mark_history_persisted(&mut self, keys: &[(ChunkKind, i64)]) {
        self.history.mark_persisted(keys);
    }

    /// Stored history chunks of `kind` with an index below this can go.
    pub fn history_retention_idx(&self, kind: ChunkKind, now_ms: i64) -> i64 {
        self.history.retention_start_idx(kind, now_ms)
    }

    // ---- Persistence: what to store, and what was stored. ----

    /// What to write now (only what changed): closed bucket rows, the string table, the
    /// snapshot (when something was decided, or beside bucket rows so the counters they moved
    /// are stored with them), the cron state. Then write it and report with
    /// [`persisted`](Self::persisted).
    pub fn persist_plan(&mut self, now_ms: i64) -> PersistPlan {
        let buckets = self.monitor.dirty_closed_buckets(now_ms);
        let rows: Vec<(BucketKey, Vec<u8>)> =
            buckets.iter().map(|b| (b.key(), self.monitor.encode_bucket_row(b))).collect();
        // Strings are added and dropped only when rows are written (a bucket closes or leaves
        // the detail window; one out of the ring left it long before).
        let strings = if rows.is_empty() { None } else { self.monitor.strings_to_store() };
        let snapshot = (self.snapshot_dirty || !rows.is_empty()).then(|| {
            self.planned_fingerprint = Some(self.monitor.decisions_fingerprint());
            serde_json::to_string(&self.monitor.snapshot()).unwrap_or_default()
        });
        let cron = self.cron_dirty.then(|| serde_json::to_string(&self.cron).unwrap_or_default());
        let settings = self.settings_dirty.then(|| serde_json::to_string(&self.settings).unwrap_or_default());
        let alerting = self.alerting_dirty.then(|| serde_json::to_string(&self.alerting).unwrap_or_default());
        let retention = self.monitor.bucket_retention_start_ms(now_ms);
        let delete_before_ms = (self.deleted_before_ms != Some(retention)).then_some(retention);
        PersistPlan { rows, delete_before_ms, strings, snapshot, cron, settings, alerting }
    }

    /// Record what the edge wrote of the last plan.
    pub fn persisted(&mut self, done: &Persisted) {
        self.monitor.mark_buckets_persisted(&done.rows);
        if done.deleted_before_ms.is_some() {
            self.deleted_before_ms = done.deleted_before_ms;
        }
        if done.strings {
            self.monitor.mark_strings_stored();
        }
        if done.snapshot {
            self.snapshot_dirty = false;
            self.stored_fingerprint = self.planned_fingerprint.take();
        }
        if done.cron {
            self.cron_dirty = false;
        }
        if done.settings {
            self.settings_dirty = false;
        }
        if done.alerting {
            self.alerting_dirty = false;
        }
    }

    /// Everything not yet stored, for the next wasm instance of this isolate (see
    /// [`HandOver`]); as JSON.
    pub fn hand_over(&mut self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let buckets = self.monitor.unpersisted_buckets();
        let rows = buckets.iter().map(|b| (b.start_ms, b64.encode(self.monitor.encode_bucket_row(b)))).collect();
        let h = HandOver {
            shop: self.shop().to_string(),
            rows,
            strings: self.monitor.strings_stored_form(),
            snapshot: serde_json::to_string(&self.monitor.snapshot()).unwrap_or_default(),
            cron: serde_json::to_string(&self.cron).unwrap_or_default(),
            alerting: Some(serde_json::to_string(&self.alerting).unwrap_or_default()),
        };
        serde_json::to_string(&h).unwrap_or_default()
    }

    /// Closed buckets not yet written (what [`persist_plan`](Self::persist_plan) encodes).
    pub fn dirty_closed_buckets(&self, now_ms: i64) -> Vec<BucketSnapshot> {
        self.monitor.dirty_closed_buckets(now_ms)
    }

    /// Stored buckets starting before this instant are outside the ring: delete them.
    pub fn bucket_retention_start_ms(&self, now_ms: i64) -> i64 {
        self.monitor.bucket_retention_start_ms(now_ms)
    }

    /// The monitor snapshot as it would be stored.
    pub fn snapshot(&self) -> MonitorSnapshot {
        self.monitor.snapshot()
    }

    /// The cron state as it would be stored.
    pub fn cron_snapshot(&self) -> &CronPersisted {
        &self.cron
    }
}

#[cfg(test)]
mod tests;
