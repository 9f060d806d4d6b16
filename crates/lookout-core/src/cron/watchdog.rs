//! The watchdog, a pure state machine over timestamps: per watched cron, expected slots and
//! runs (expected -> started -> ended ok/error | missed | stuck | unknown), the `cron_missed`
//! and `cron_stuck` alerts, the next time the alarm must wake, and the status view. The
//! Durable Object stores [`Watchdog`] as JSON and passes the watch list and `now_ms` in.
//!
//! Rules, exactly:
//! - **Attribution** of a run to a slot: [`Schedule::attribute`] with "taken" = the slot
//!   already has a run. A run matching no slot is unscheduled (manual); it still counts.
//! - **Missed**: at `slot + grace` the slot has no run (no start and no end) -> `missed`.
//!   `cron_missed` fires for the earliest missed slot unless a run of the cron with key
//!   (its slot, or its start if unscheduled) >= that slot has already ended.
//! - **Stuck**: a run started, not ended by `start + max_runtime` -> `stuck`; `cron_stuck`
//!   fires likewise unless a later run has ended.
//! - **Resolve**: both resolve when a run ends (ok or not) whose key is >= the incident's
//!   slot (for stuck: the stuck run's key, so the stuck run finishing resolves it too).
//! - **Lag**: `due` is the time this watchdog last asked to be woken ([`Outcome::next_due_ms`],
//!   kept as `armed_due_ms`). An evaluation at `now` has `lag = max(0, now - due)`. When
//!   `lag > 60 s` the object was not evaluating when it should have been, and check-ins may
//!   have been lost in that time, so that evaluation concludes every slot without a run as
//!   `unknown` (not missed) and every over-runtime run as `unknown` (not stuck); no alert
//!   fires for them. An `unknown` run is checked again 60 s later by an evaluation that is
//!   not lagging, and becomes `stuck` if its end still has not arrived. `unknown` slots stay
//!   unknown unless a check-in later claims them. The status reports the lag of the last
//!   evaluation that was due; an earlier evaluation (the object woke for another reason)
//!   leaves it as it was.

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

use super::alert::{CronAlertEvent, OpenAlert, CRON_MISSED, CRON_STUCK};
use super::record::{run_id_for_slot, CheckInKind, CronCheckIn, Results};
use super::watch::{WatchEntry, WatchList};
use super::{LAG_RECHECK_MS, LAG_TOLERANCE_MS, MAX_SLOTS_PER_EVAL};
use crate::alerting::{AlertState, Unit};

/// Slots kept per cron (history for the status view).
const MAX_SLOT_HISTORY: usize = 64;
/// Runs kept per cron (open runs are dropped last).
const MAX_RUN_HISTORY: usize = 32;

/// The state of one expected slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// Not yet due (or within grace) and no run has claimed it.
    Expected,
    /// A run started for it and has not ended.
    Started,
    EndedOk,
    EndedError,
    /// Grace passed with no start and no end.
    Missed,
    /// Its run started but did not end within the maximum runtime.
    Stuck,
    /// Concluded while the watchdog was lagging: it cannot tell missed from lost check-ins.
    Unknown,
}

/// The state of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    EndedOk,
    EndedError,
    Stuck,
    Unknown,
}

impl RunState {
    fn slot_state(self) -> SlotState {
        match self {
            RunState::Running => SlotState::Started,
            RunState::EndedOk => SlotState::EndedOk,
            RunState::EndedError => SlotState::EndedError,
            RunState::Stuck => SlotState::Stuck,
            RunState::Unknown => SlotState::Unknown,
        }
    }

    fn is_ended(self) -> bool {
        matches!(self, RunState::EndedOk | RunState::EndedError)
    }
}

/// One concluded or claimed slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub slot_ms: i64,
    pub state: SlotState,
    /// The run attributed to this slot, if any.
    pub run_id: Option<String>,
}

/// One run, as its check-ins reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// The slot it was attributed to (`None`: unscheduled).
    pub slot_ms: Option<i64>,
    /// Start minus slot: negative when early.
    pub offset_ms: Option<i64>,
    pub started_at_ms: i64,
    /// False when the start check-in never arrived and the start was inferred from the end.
    pub start_seen: bool,
    pub state: RunState,
    pub ended_at_ms: Option<i64>,
    pub ms: Option<u64>,
    pub results: Option<Results>,
    pub errors_count: u32,
    /// When a lagging evaluation marked it unknown.
    pub unknown_since_ms: Option<i64>,
}

impl RunRecord {
    /// What "later" means for resolving: its slot, or its start when unscheduled.
    fn key_ms(&self) -> i64 {
        self.slot_ms.unwrap_or(self.started_at_ms)
    }
}

/// Everything the watchdog keeps about one watched cron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronTrack {
    pub cron: String,
    /// The normalized schedule these slots belong to; a change restarts slot tracking.
    pub schedule: String,
    pub watch_since_ms: i64,
    /// The earliest slot not yet concluded.
    pub next_slot_ms: Option<i64>,
    /// Concluded or claimed slots, ascending.
    pub slots: Vec<SlotRecord>,
    /// Recent runs, ascending by start.
    pub runs: Vec<RunRecord>,
    pub missed: Option<OpenAlert>,
    pub stuck: Option<OpenAlert>,
    pub missed_count: u64,
    pub unknown_count: u64,
}

/// What a check-in did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum CheckInEffect {
    /// Recorded; `slot_ms` is the slot it was attributed to (`None`: unscheduled).
    Recorded { slot_ms: Option<i64> },
    /// Already recorded (at-least-once delivery): nothing changed.
    Duplicate,
    /// The cron is not on the watch list: ignored.
    Unwatched,
}

/// The result of [`Watchdog::ingest`] or [`Watchdog::evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub events: Vec<CronAlertEvent>,
    /// Arm the alarm for this time (or earlier); `None`: nothing to watch.
    pub next_due_ms: Option<i64>,
    /// How late this evaluation ran after its due time (0 for ingest).
    pub lag_s: u64,
    pub check_in: Option<CheckInEffect>,
}

/// Status of one watched cron for the operator's view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CronStatus {
    pub cron: String,
    pub schedule: String,
    pub grace_s: u32,
    pub max_runtime_s: u32,
    /// Now: stuck / missed while those alerts fire, else started while a run is open, else
    /// the latest slot's or run's state, else expected.
    pub state: SlotState,
    pub last_start_ms: Option<i64>,
    pub last_end_ms: Option<i64>,
    /// The most recently ended run: its results, ms, errors count.
    pub last_run: Option<RunRecord>,
    /// The earliest slot whose grace has not passed, and its state.
    pub next_expected_ms: Option<i64>,
    pub next_expected_run_id: Option<String>,
    pub next_expected_state: SlotState,
    pub missed_firing: bool,
    pub stuck_firing: bool,
    pub missed_count: u64,
    pub unknown_count: u64,
    /// The watchdog's lag at its last evaluation.
    pub lag_s: u64,
    pub recent_slots: Vec<SlotRecord>,
}

/// The watchdog's view for the status endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchdogStatus {
    pub last_eval_ms: Option<i64>,
    pub lag_s: u64,
    pub lagging: bool,
    pub next_due_ms: Option<i64>,
    pub crons: Vec<CronStatus>,
}

/// The persisted watchdog of one shop.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Watchdog {
    pub crons: Vec<CronTrack>,
    /// The due time last handed to the edge; lag is measured against it.
    pub armed_due_ms: Option<i64>,
    pub last_eval_ms: Option<i64>,
    pub last_lag_ms: i64,
}

fn fmt_ts(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

impl CronTrack {
    fn new(entry: &WatchEntry, now_ms: i64) -> CronTrack {
        CronTrack {
            cron: entry.cron.clone(),
            schedule: entry.schedule.normalized().to_string(),
            watch_since_ms: now_ms,
            next_slot_ms: entry.schedule.next_at_or_after_ms(now_ms),
            slots: Vec::new(),
            runs: Vec::new(),
            missed: None,
            stuck: None,
            missed_count: 0,
            unknown_count: 0,
        }
    }

    fn slot_taken(&self, slot_ms: i64) -> bool {
        self.slots.iter().any(|s| s.slot_ms == slot_ms && s.run_id.is_some())
    }

    fn set_slot(&mut self, slot_ms: i64, state: SlotState, run_id: Option<String>) {
        match self.slots.iter_mut().find(|s| s.slot_ms == slot_ms) {
            Some(s) => {
                s.state = state;
                if run_id.is_some() {
                    s.run_id = run_id;
                }
            }
            None => {
                let at = self.slots.partition_point(|s| s.slot_ms < slot_ms);
                self.slots.insert(at, SlotRecord { slot_ms, state, run_id });
                if self.slots.len() > MAX_SLOT_HISTORY {
                    self.slots.remove(0);
                }
            }
        }
    }

    fn set_run_state(&mut self, idx: usize, state: RunState) {
        let Some(run) = self.runs.get_mut(idx) else {
            return;
        };
        run.state = state;
        if let Some(slot) = run.slot_ms {
            let id = run.run_id.clone();
            self.set_slot(slot, state.slot_state(), Some(id));
        }
    }

    fn ended_at_or_after(&self, key_ms: i64) -> bool {
        self.runs.iter().any(|r| r.state.is_ended() && r.key_ms() >= key_ms)
    }

    fn add_run(&mut self, run: RunRecord) -> usize {
        let at = self.runs.partition_point(|r| r.started_at_ms <= run.started_at_ms);
        self.runs.insert(at, run);
        let mut idx = at;
        while self.runs.len() > MAX_RUN_HISTORY {
            let drop = self
                .runs
                .iter()
                .enumerate()
                .position(|(i, r)| i != idx && r.state.is_ended())
                .unwrap_or(if idx == 0 { 1 } else { 0 });
            self.runs.remove(drop);
            if drop < idx {
                idx -= 1;
            }
        }
        idx
    }

    /// Record a run's start (or infer it from its end), attributing it to a slot.
    fn start_run(
        &mut self,
        entry: &WatchEntry,
        run_id: &str,
        scheduled_ms: i64,
        started_at_ms: i64,
        start_seen: bool,
    ) -> usize {
        let m = entry.schedule.attribute(Some(scheduled_ms), started_at_ms, entry.grace_ms(), |s| self.slot_taken(s));
        let run = RunRecord {
            run_id: run_id.to_string(),
            slot_ms: m.map(|m| m.slot_ms),
            offset_ms: m.map(|m| m.offset_ms),
            started_at_ms,
            start_seen,
            state: RunState::Running,
            ended_at_ms: None,
            ms: None,
            results: None,
            errors_count: 0,
            unknown_since_ms: None,
        };
        if let Some(m) = m {
            self.set_slot(m.slot_ms, SlotState::Started, Some(run_id.to_string()));
        }
        // A claimed slot is settled: move the "earliest slot not yet concluded" past it, so
        // history trimming can never forget a claim the pointer still needs.
        for _ in 0..MAX_SLOT_HISTORY {
            match self.next_slot_ms {
                Some(s) if self.slot_taken(s) => self.next_slot_ms = entry.schedule.next_after_ms(s),
                _ => break,
            }
        }
        self.add_run(run)
    }

    fn resolve_all(&mut self, now_ms: i64, why: &str, events: &mut Vec<CronAlertEvent>) {
        for (rule, alert) in [(CRON_MISSED, self.missed.take()), (CRON_STUCK, self.stuck.take())] {
            if let Some(a) = alert {
                events.push(self.event(rule, AlertState::Resolved, &a, format!("{}: {why}", self.cron), now_ms));
            }
        }
    }

    fn event(&self, rule: &str, state: AlertState, a: &OpenAlert, summary: String, now_ms: i64) -> CronAlertEvent {
        CronAlertEvent::new(
            rule,
            Some(&self.cron),
            state,
            a.value,
            a.threshold,
            Unit::Seconds,
            summary,
            a.since_ms,
            now_ms,
            a.run_id.as_deref(),
        )
    }

    /// Conclude every slot whose grace has passed.
    fn conclude_slots(&mut self, entry: &WatchEntry, now_ms: i64, lagging: bool) {
        let grace = entry.grace_ms();
        let mut n = 0;
        while let Some(slot) = self.next_slot_ms {
            if slot.saturating_add(grace) > now_ms || n >= MAX_SLOTS_PER_EVAL {
                break;
            }
            n += 1;
            if !self.slot_taken(slot) {
                if lagging {
                    self.unknown_count += 1;
                    self.set_slot(slot, SlotState::Unknown, None);
                } else {
                    self.missed_count += 1;
                    self.set_slot(slot, SlotState::Missed, None);
                }
            }
            self.next_slot_ms = entry.schedule.next_after_ms(slot);
        }
    }

    /// Mark over-runtime runs stuck (or unknown when lagging).
    fn check_runs(&mut self, entry: &WatchEntry, now_ms: i64, lagging: bool) {
        let max = entry.max_runtime_ms();
        for i in 0..self.runs.len() {
            let r = &self.runs[i];
            let over = r.started_at_ms.saturating_add(max) <= now_ms;
            match r.state {
                RunState::Running if over && lagging => {
                    self.runs[i].unknown_since_ms = Some(now_ms);
                    self.set_run_state(i, RunState::Unknown);
                }
                RunState::Running if over => self.set_run_state(i, RunState::Stuck),
                RunState::Unknown
                    if !lagging && r.unknown_since_ms.is_some_and(|u| u.saturating_add(LAG_RECHECK_MS) <= now_ms) =>
                {
                    self.set_run_state(i, RunState::Stuck)
                }
                _ => {}
            }
        }
    }

    /// Fire `cron_missed` / `cron_stuck` for the earliest unresolved incident, if not firing.
    fn fire(&mut self, entry: &WatchEntry, now_ms: i64, events: &mut Vec<CronAlertEvent>) {
        if self.missed.is_none() {
            let slot = self
                .slots
                .iter()
                .find(|s| s.state == SlotState::Missed && !self.ended_at_or_after(s.slot_ms))
                .map(|s| s.slot_ms);
            if let Some(slot) = slot {
                let run_id = run_id_for_slot(&entry.code, slot, entry.schedule.is_sub_daily());
                let a = OpenAlert {
                    since_ms: slot.saturating_add(entry.grace_ms()),
                    key_ms: slot,
                    run_id: Some(run_id),
                    value: (now_ms.saturating_sub(slot) / 1000) as f64,
                    threshold: f64::from(entry.grace_s),
                };
                let summary = format!(
                    "{} did not run: expected at {}, no start or end by {} (grace {} s)",
                    self.cron,
                    fmt_ts(slot),
                    fmt_ts(a.since_ms),
                    entry.grace_s
                );
                events.push(self.event(CRON_MISSED, AlertState::Firing, &a, summary, now_ms));
                self.missed = Some(a);
            }
        }
        if self.stuck.is_none() {
            let run =
                self.runs.iter().find(|r| r.state == RunState::Stuck && !self.ended_at_or_after(r.key_ms())).cloned();
            if let Some(r) = run {
                let a = OpenAlert {
                    since_ms: r.started_at_ms.saturating_add(entry.max_runtime_ms()),
                    key_ms: r.key_ms(),
                    run_id: Some(r.run_id.clone()),
                    value: (now_ms.saturating_sub(r.started_at_ms) / 1000) as f64,
                    threshold: f64::from(entry.max_runtime_s),
                };
                let summary = format!(
                    "{} run {} started at {} and has not ended after {} s (max runtime {} s)",
                    self.cron,
                    r.run_id,
                    fmt_ts(r.started_at_ms),
                    now_ms.saturating_sub(r.started_at_ms) / 1000,
                    entry.max_runtime_s
                );
                events.push(self.event(CRON_STUCK, AlertState::Firing, &a, summary, now_ms));
                self.stuck = Some(a);
            }
        }
    }

    /// When this cron next needs an evaluation.
    fn next_due_ms(&self, entry: &WatchEntry) -> Option<i64> {
        let mut due: Option<i64> = None;
        let mut take = |t: i64| due = Some(due.map_or(t, |d: i64| d.min(t)));
        let mut s = self.next_slot_ms;
        for _ in 0..=MAX_RUN_HISTORY + MAX_SLOT_HISTORY {
            let Some(slot) = s else { break };
            if !self.slot_taken(slot) {
                take(slot.saturating_add(entry.grace_ms()));
                break;
            }
            s = entry.schedule.next_after_ms(slot);
        }
        for r in &self.runs {
            match r.state {
                RunState::Running => take(r.started_at_ms.saturating_add(entry.max_runtime_ms())),
                RunState::Unknown => {
                    if let Some(u) = r.unknown_since_ms {
                        take(u.saturating_add(LAG_RECHECK_MS));
                    }
                }
                _ => {}
            }
        }
        due
    }
}

impl Watchdog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Align tracks with the watch list: new crons are watched from `now_ms`, a changed
    /// schedule restarts slot tracking, crons no longer watched resolve their alerts and go.
    fn sync(&mut self, watch: &WatchList, now_ms: i64, events: &mut Vec<CronAlertEvent>) {
        let mut kept = Vec::with_capacity(self.crons.len());
        for mut t in std::mem::take(&mut self.crons) {
            if watch.get(&t.cron).is_some() {
                kept.push(t);
            } else {
                t.resolve_all(now_ms, "no longer on the watch list", events);
            }
        }
        self.crons = kept;
        for e in watch.entries() {
            match self.crons.iter_mut().find(|t| t.cron == e.cron) {
                Some(t) if t.schedule == e.schedule.normalized() => {}
                Some(t) => {
                    t.schedule = e.schedule.normalized().to_string();
                    t.watch_since_ms = now_ms;
                    t.next_slot_ms = e.schedule.next_at_or_after_ms(now_ms);
                }
                None => self.crons.push(CronTrack::new(e, now_ms)),
            }
        }
    }

    /// Take one check-in. An End resolves `cron_missed` / `cron_stuck` (see the module doc).
    /// Duplicates (same run id, same end time) change nothing.
    pub fn ingest(&mut self, watch: &WatchList, ci: &CronCheckIn, now_ms: i64) -> Outcome {
        let mut events = Vec::new();
        self.sync(watch, now_ms, &mut events);
        let effect = match (watch.get(&ci.cron), self.crons.iter_mut().find(|t| t.cron == ci.cron)) {
            (Some(entry), Some(track)) => Self::apply(entry, track, ci, now_ms, &mut events),
            _ => CheckInEffect::Unwatched,
        };
        let next = self.next_due_ms(watch);
        self.armed_due_ms = next;
        Outcome { events, next_due_ms: next, lag_s: 0, check_in: Some(effect) }
    }

    fn apply(
        entry: &WatchEntry,
        t: &mut CronTrack,
        ci: &CronCheckIn,
        now_ms: i64,
        events: &mut Vec<CronAlertEvent>,
    ) -> CheckInEffect {
        let existing = t.runs.iter().position(|r| r.run_id == ci.run_id);
        match &ci.kind {
            CheckInKind::Start => {
                if existing.is_some() {
                    return CheckInEffect::Duplicate;
                }
                let idx = t.start_run(entry, &ci.run_id, ci.scheduled_ms, ci.at_ms, true);
                CheckInEffect::Recorded { slot_ms: t.runs[idx].slot_ms }
            }
            CheckInKind::End { ok, ms, results, errors_count } => {
                let idx = match existing {
                    Some(i) if t.runs[i].state.is_ended() && t.runs[i].ended_at_ms == Some(ci.at_ms) => {
                        return CheckInEffect::Duplicate;
                    }
                    Some(i) => i,
                    None => {
                        let started = ci.at_ms.saturating_sub(i64::try_from(*ms).unwrap_or(i64::MAX));
                        t.start_run(entry, &ci.run_id, ci.scheduled_ms, started, false)
                    }
                };
                {
                    let r = &mut t.runs[idx];
                    r.ended_at_ms = Some(ci.at_ms);
                    r.ms = Some(*ms);
                    r.results = Some(results.clone());
                    r.errors_count = *errors_count;
                    r.unknown_since_ms = None;
                }
                t.set_run_state(idx, if *ok { RunState::EndedOk } else { RunState::EndedError });
                let (key, run_id, slot_ms) = (t.runs[idx].key_ms(), t.runs[idx].run_id.clone(), t.runs[idx].slot_ms);
                let outcome = if *ok { "ok" } else { "with errors" };
                for (rule, slot) in [(CRON_MISSED, &mut t.missed), (CRON_STUCK, &mut t.stuck)] {
                    if slot.as_ref().is_some_and(|a| key >= a.key_ms) {
                        if let Some(a) = slot.take() {
                            let summary = format!("{}: run {run_id} ended {outcome} at {}", t.cron, fmt_ts(ci.at_ms));
                            events.push(CronAlertEvent::new(
                                rule,
                                Some(&t.cron),
                                AlertState::Resolved,
                                a.value,
                                a.threshold,
                                Unit::Seconds,
                                summary,
                                a.since_ms,
                                now_ms,
                                a.run_id.as_deref(),
                            ));
                        }
                    }
                }
                CheckInEffect::Recorded { slot_ms }
            }
        }
    }

    /// The alarm's work: conclude slots past grace and runs past max runtime, fire alerts,
    /// and say when to wake next. Idempotent for a repeated (retried) call at the same `now`.
    pub fn evaluate(&mut self, watch: &WatchList, now_ms: i64) -> Outcome {
        let mut events = Vec::new();
        self.sync(watch, now_ms, &mut events);
        let lag_ms = self.armed_due_ms.map_or(0, |d| now_ms.saturating_sub(d).max(0));
        let lagging = lag_ms > LAG_TOLERANCE_MS;
        for t in &mut self.crons {
            let Some(entry) = watch.get(&t.cron) else {
                continue;
            };
            t.conclude_slots(entry, now_ms, lagging);
            t.check_runs(entry, now_ms, lagging);
            t.fire(entry, now_ms, &mut events);
        }
        self.last_eval_ms = Some(now_ms);
        // An evaluation before its due time (the object woke for another reason) says nothing
        // about lateness: the lag of the last due evaluation stays reported.
        if self.armed_due_ms.is_none_or(|d| now_ms >= d) {
            self.last_lag_ms = lag_ms;
        }
        let next = self.next_due_ms(watch);
        self.armed_due_ms = next;
        Outcome { events, next_due_ms: next, lag_s: u64::try_from(lag_ms / 1000).unwrap_or(0), check_in: None }
    }

    /// The earliest time an evaluation is needed: the first unclaimed slot's `slot + grace`,
    /// a running run's `start + max_runtime`, an unknown run's recheck. May be in the past
    /// (evaluate at once).
    pub fn next_due_ms(&self, watch: &WatchList) -> Option<i64> {
        self.crons.iter().filter_map(|t| watch.get(&t.cron).and_then(|e| t.next_due_ms(e))).min()
    }

    /// Status per watched cron, in watch-list order.
    pub fn status(&self, watch: &WatchList, now_ms: i64) -> WatchdogStatus {
        let lag_s = u64::try_from(self.last_lag_ms / 1000).unwrap_or(0);
        let crons = watch
            .entries()
            .iter()
            .map(|e| {
                let fresh;
                let t = match self.crons.iter().find(|t| t.cron == e.cron && t.schedule == e.schedule.normalized()) {
                    Some(t) => t,
                    None => {
                        fresh = CronTrack::new(e, now_ms);
                        &fresh
                    }
                };
                Self::cron_status(e, t, now_ms, lag_s)
            })
            .collect();
        WatchdogStatus {
            last_eval_ms: self.last_eval_ms,
            lag_s,
            lagging: self.last_lag_ms > LAG_TOLERANCE_MS,
            next_due_ms: self.next_due_ms(watch),
            crons,
        }
    }

    fn cron_status(e: &WatchEntry, t: &CronTrack, now_ms: i64, lag_s: u64) -> CronStatus {
        let last_run = t.runs.iter().filter(|r| r.state.is_ended()).max_by_key(|r| r.ended_at_ms).cloned();
        let from = now_ms.saturating_sub(e.grace_ms()).saturating_add(1).max(t.watch_since_ms);
        let next_expected_ms = e.schedule.next_at_or_after_ms(from);
        let next_expected_state = next_expected_ms
            .and_then(|n| t.slots.iter().find(|s| s.slot_ms == n))
            .map_or(SlotState::Expected, |s| s.state);
        let latest_slot = t.slots.iter().rev().find(|s| s.slot_ms <= now_ms);
        let latest_run = t.runs.last();
        let state = if t.stuck.is_some() {
            SlotState::Stuck
        } else if t.missed.is_some() {
            SlotState::Missed
        } else if t.runs.iter().any(|r| r.state == RunState::Running) {
            SlotState::Started
        } else {
            match (latest_slot, latest_run) {
                (Some(s), Some(r)) if r.started_at_ms > s.slot_ms => r.state.slot_state(),
                (Some(s), _) => s.state,
                (None, Some(r)) => r.state.slot_state(),
                (None, None) => SlotState::Expected,
            }
        };
        CronStatus {
            cron: e.cron.clone(),
            schedule: e.schedule.expression().to_string(),
            grace_s: e.grace_s,
            max_runtime_s: e.max_runtime_s,
            state,
            last_start_ms: t.runs.iter().map(|r| r.started_at_ms).max(),
            last_end_ms: t.runs.iter().filter_map(|r| r.ended_at_ms).max(),
            last_run,
            next_expected_ms,
            next_expected_run_id: next_expected_ms.map(|n| run_id_for_slot(&e.code, n, e.schedule.is_sub_daily())),
            next_expected_state,
            missed_firing: t.missed.is_some(),
            stuck_firing: t.stuck.is_some(),
            missed_count: t.missed_count,
            unknown_count: t.unknown_count,
            lag_s,
            recent_slots: t.slots.iter().rev().take(10).rev().cloned().collect(),
        }
    }
}
