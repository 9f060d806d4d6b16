//! Cron watch maths, pure: schedules with Cloudflare's semantics, the summary record and
//! check-ins, the watch list, expected-slot attribution, the watchdog state machine, cost
//! projections, and the alert events they raise. The audit chain (verifier and its
//! `audit_chain_broken` watch) is `core::audit`; the cron state persists its watch.
//! No `worker` import and no clock: every function takes `now_ms` (Unix epoch ms).
//!
//! ```text
//!  scheduled handler (edge)            ShopMonitorCore (for the DO)       this module (pure)
//!  ------------------------            ----------------------------       ------------------
//!  CronRun::start ──CronCheckIn──────▶ Watchdog::ingest ─────────────────▶ slot attribution
//!  job runs                            tick ▶ Watchdog::evaluate (if due) ▶ missed / stuck / unknown
//!  CronRun::finish ─CronRecord line    alarm min(next_due_ms, monitor due)
//!                  ─CronCheckIn──────▶ Watchdog::ingest (End resolves alerts)
//!  reconciliation results ───────────▶ audit::AuditChainWatch ──────────▶ audit_chain_broken
//!  cost figures ─────────────────────▶ TwilioCostWatch / AiGuard ───────▶ *_cost_projection
//! ```
//!
//! Every alert leaves as a [`CronAlertEvent`]; the monitor's notification layer delivers it
//! (`Monitor::notify_event`). shop.rs bundles these for one shop; `core::shop_monitor`
//! composes that with the request monitor for the Durable Object. The jobs themselves and
//! their names belong to the app (a registry in the `lookout` crate).

pub mod alert;
pub mod cost;
pub mod record;
pub mod schedule;
pub mod shop;
pub mod spend;
pub mod watch;
pub mod watchdog;

pub use alert::{rule, CronAlertEvent, CronRule, CRON_RULES};
pub use cost::{
    month_bounds_ms, project_month, project_week, week_bounds_ms, AiGuard, AiPause, AiResume, AiStatus, PauseReason,
    PeriodProjection, TwilioCostWatch, TwilioStatus,
};
pub use record::{
    run_id_for_slot, run_id_unscheduled, CheckInKind, CronCheckIn, CronErrorEntry, CronRecord, CronRun, Figure, Results,
};
pub use schedule::{normalize_expression, Field, Schedule, ScheduleError, SlotMatch};
pub use shop::{CheckInOutcome, CronConfig, CronShopStatus, ResumeError};
pub use spend::{PeriodSpend, SpendEffect, SpendLedger};
pub use watch::{
    is_cron_name, watch_list_from_var, InvalidTrigger, MissingTrigger, TriggerCheck, WatchEntry, WatchError, WatchList,
};
pub use watchdog::{
    CheckInEffect, CronStatus, CronTrack, Outcome, RunRecord, RunState, SlotRecord, SlotState, Watchdog, WatchdogStatus,
};

use serde::{Deserialize, Serialize};

use crate::audit::AuditChainWatch;

// ---- One place for every default and threshold (units in the names). ----

/// Grace after an expected slot before the run counts as missed (design: "expected start +
/// 30 min, no end log").
pub const DEFAULT_GRACE_S: u32 = 1800;
/// How long a started run may go without its end before it counts as stuck.
pub const DEFAULT_MAX_RUNTIME_S: u32 = 3600;
/// Bounds accepted in `CRON_WATCH` for `grace_s` and `max_runtime_s`.
pub const MIN_GRACE_S: u32 = 1;
pub const MAX_GRACE_S: u32 = 7 * 86_400;
pub const MIN_RUNTIME_S: u32 = 1;
pub const MAX_RUNTIME_S: u32 = 7 * 86_400;
/// An evaluation later than this after its due time is "lagging": its conclusions about
/// slots and runs without check-ins are `unknown`, not missed/stuck.
pub const LAG_TOLERANCE_MS: i64 = 60_000;
/// A run left `unknown` by a lagging evaluation is checked again this long after.
pub const LAG_RECHECK_MS: i64 = 60_000;
/// At most this many slots are concluded by one evaluation; the rest are due at once.
pub const MAX_SLOTS_PER_EVAL: usize = 1000;
/// Twilio: fire when the projected week exceeds this percentage of the weekly budget.
pub const TWILIO_FIRE_PERCENT: u64 = 150;
/// Twilio: once firing, resolve only when the projection is back at or below this
/// percentage of the budget (or a new week starts below the fire threshold).
pub const TWILIO_CLEAR_PERCENT: u64 = 100;
/// Projections divide by `max(elapsed, this)`, so one early SMS at Monday 00:01 projects to
/// 7x its cost for the week, not to infinity.
pub const MIN_PROJECTION_ELAPSED_MS: i64 = 86_400_000;

/// Everything this module keeps between calls, as one JSON document for the object's storage.
/// The calls made on it (by `core::shop_monitor`, for the Durable Object) are in shop.rs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CronPersisted {
    pub watchdog: Watchdog,
    /// The `audit_chain_broken` alert (`core::audit`), fed by reconciliation check-ins.
    pub audit: AuditChainWatch,
    pub twilio: TwilioCostWatch,
    pub ai: AiGuard,
    /// Spend per period from the request records' `cost_micros`.
    #[serde(default)]
    pub spend: SpendLedger,
}

#[cfg(test)]
mod tests;
