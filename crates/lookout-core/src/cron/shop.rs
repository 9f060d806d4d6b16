//! The cron side of one shop's monitor, pure: [`CronPersisted`] (watchdog, audit watch, cost
//! watches, spend ledger) with the configuration from vars ([`CronConfig`]) and the status
//! view. `core::shop_monitor::ShopMonitorCore` drives it for the Durable Object, beside the
//! request monitor. Every call takes `now_ms`; every alert leaves as a [`CronAlertEvent`] for
//! the monitor's outbox.
//!
//! ```text
//!  ingest       records ──► record_spend          (cost_micros per week / month)
//!               check-ins ─► check_in             (watchdog; End results ─► audit watch)
//!  alarm        ─────────► evaluate               (missed / stuck / lag)
//!  weekly job   ─────────► twilio_summary         (TwilioCostWatch, figures for the line)
//!  daily job    ─────────► ai_check               (AiGuard, pauses AI)
//!  app          ─────────► ai_paused              operator ─► ai_resume
//! ```

use serde::Serialize;

use super::alert::CronAlertEvent;
use super::cost::{project_month, project_week, AiPause, AiResume, PeriodProjection};
use super::record::{CheckInKind, CronCheckIn, Results};
use super::watch::watch_list_from_var;
use super::watch::WatchList;
use super::watchdog::{CheckInEffect, CronStatus, Outcome};
use super::CronPersisted;
use crate::audit::AuditChainWatch;
use crate::monitor::time::{rfc3339_ms, rfc3339_opt};
use crate::partial::Partial;
use crate::record::RequestRecord;

/// What the cron side runs with, from vars.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CronConfig {
    pub watch: WatchList,
    /// `TWILIO_WEEKLY_BUDGET_MICROS`; `None`: no Twilio alert.
    pub twilio_weekly_budget_micros: Option<u64>,
    /// `AI_MONTHLY_CAP_MICROS`; `None`: AI is never paused.
    pub ai_monthly_cap_micros: Option<u64>,
}

fn micros_var(name: &str, v: Option<&str>, errors: &mut Vec<String>) -> Option<u64> {
    let v = v.map(str::trim).filter(|v| !v.is_empty())?;
    match v.parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(format!("{name} must be a whole number of micro-dollars (1 USD = 1000000); it is ignored"));
            None
        }
    }
}

impl CronConfig {
    /// From the `CRON_WATCH`, `TWILIO_WEEKLY_BUDGET_MICROS` and `AI_MONTHLY_CAP_MICROS` vars.
    /// Problems are returned as messages (and the default or "unset" is used instead).
    pub fn from_vars(
        cron_watch: Option<&str>,
        twilio_weekly_budget: Option<&str>,
        ai_monthly_cap: Option<&str>,
    ) -> (CronConfig, Vec<String>) {
        let mut errors = Vec::new();
        let (watch, err) = watch_list_from_var(cron_watch);
        if let Some(e) = err {
            errors.push(format!("{e}; nothing is watched until it is fixed"));
        }
        let cfg = CronConfig {
            watch,
            twilio_weekly_budget_micros: micros_var("TWILIO_WEEKLY_BUDGET_MICROS", twilio_weekly_budget, &mut errors),
            ai_monthly_cap_micros: micros_var("AI_MONTHLY_CAP_MICROS", ai_monthly_cap, &mut errors),
        };
        (cfg, errors)
    }
}

/// What a check-in did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckInOutcome {
    pub effect: CheckInEffect,
    pub events: Vec<CronAlertEvent>,
}

/// Why an operator's resume was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeError {
    /// AI is not paused for this shop.
    NotPaused,
}

impl std::fmt::Display for ResumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeError::NotPaused => write!(f, "AI is not paused for this shop"),
        }
    }
}

impl CronPersisted {
    /// Count the spend of accepted request records.
    pub fn record_spend(&mut self, records: &[RequestRecord]) -> u32 {
        let mut counted = 0;
        for r in records {
            let effect = self.spend.add(&r.request_id, r.ts.timestamp_millis(), r.cost_micros);
            counted += u32::from(effect == super::spend::SpendEffect::Counted);
        }
        counted
    }

    /// Count the spend of partial buckets (each at its slot's time, once per partial id: a
    /// slot never straddles a week or a month).
    pub fn record_partial_spend(&mut self, partials: &[Partial]) -> u32 {
        let mut counted = 0;
        for p in partials {
            let effect = self.spend.add(&p.id, p.start_ms, p.cost_micros);
            counted += u32::from(effect == super::spend::SpendEffect::Counted);
        }
        counted
    }

    /// Take one check-in: the watchdog's attribution and resolves; an End's `results` also
    /// feed the audit watch (`audit_chain_verified` fires `audit_chain_broken` at once).
    pub fn check_in(&mut self, cfg: &CronConfig, ci: &CronCheckIn, now_ms: i64) -> CheckInOutcome {
        let outcome = self.watchdog.ingest(&cfg.watch, ci, now_ms);
        let mut events = outcome.events;
        let effect = outcome.check_in.unwrap_or(CheckInEffect::Unwatched);
        if let (CheckInKind::End { results, .. }, false) = (&ci.kind, effect == CheckInEffect::Duplicate) {
            events.extend(self.audit.observe_results(results, Some(&ci.run_id), now_ms));
        }
        CheckInOutcome { effect, events }
    }

    /// The watchdog's alarm work (missed, stuck, lag).
    pub fn evaluate(&mut self, cfg: &CronConfig, now_ms: i64) -> Outcome {
        self.watchdog.evaluate(&cfg.watch, now_ms)
    }

    /// When the watchdog next needs an evaluation (may be in the past: evaluate now).
    pub fn next_due_ms(&self, cfg: &CronConfig) -> Option<i64> {
        self.watchdog.next_due_ms(&cfg.watch)
    }

    /// The weekly Twilio summary: project the week, fire or resolve
    /// `twilio_cost_projection`; the figures go into the job's summary line.
    pub fn twilio_summary(&mut self, cfg: &CronConfig, now_ms: i64) -> (Results, Vec<CronAlertEvent>) {
        let spent = self.spend.twilio_week_micros(now_ms);
        let events = self.twilio.evaluate(spent, cfg.twilio_weekly_budget_micros, now_ms);
        let mut r = Results::new();
        r.int("twilio_spent_week_micros", clamp_i64(spent));
        if let Some(p) = project_week(spent, now_ms) {
            r.int("twilio_projected_week_micros", clamp_i64(p.projected_micros));
        }
        if let Some(b) = cfg.twilio_weekly_budget_micros {
            r.int("twilio_weekly_budget_micros", clamp_i64(b));
        }
        r.flag("twilio_projection_firing", self.twilio.firing.is_some());
        (r, events)
    }

    /// The daily AI check: project the month, pause AI (and fire `ai_cost_projection`) above
    /// the cap; the figures go into the job's summary line.
    pub fn ai_check(&mut self, cfg: &CronConfig, now_ms: i64) -> (Results, Vec<CronAlertEvent>) {
        let spent = self.spend.claude_month_micros(now_ms);
        let events = self.ai.evaluate(spent, cfg.ai_monthly_cap_micros, now_ms);
        let mut r = Results::new();
        r.int("ai_spent_month_micros", clamp_i64(spent));
        if let Some(p) = project_month(spent, now_ms) {
            r.int("ai_projected_month_micros", clamp_i64(p.projected_micros));
        }
        if let Some(c) = cfg.ai_monthly_cap_micros {
            r.int("ai_monthly_cap_micros", clamp_i64(c));
        }
        r.flag("ai_paused", self.ai.is_paused(now_ms));
        (r, events)
    }

    /// What the app checks before any AI call.
    pub fn ai_paused(&self, now_ms: i64) -> bool {
        self.ai.is_paused(now_ms)
    }

    /// The operator's resume.
    pub fn ai_resume(&mut self, cfg: &CronConfig, now_ms: i64) -> Result<Vec<CronAlertEvent>, ResumeError> {
        if !self.ai.is_paused(now_ms) {
            return Err(ResumeError::NotPaused);
        }
        let spent = self.spend.claude_month_micros(now_ms);
        Ok(self.ai.resume(spent, cfg.ai_monthly_cap_micros, now_ms))
    }

    /// The status view as of `now_ms`; cost projections are computed now from the ledger.
    pub fn status(&self, cfg: &CronConfig, now_ms: i64) -> CronShopStatus {
        let wd = self.watchdog.status(&cfg.watch, now_ms);
        let twilio_spent = self.spend.twilio_week_micros(now_ms);
        let ai_spent = self.spend.claude_month_micros(now_ms);
        let budget = cfg.twilio_weekly_budget_micros;
        CronShopStatus {
            watchdog: WatchdogView {
                last_evaluated_at: rfc3339_opt(wd.last_eval_ms),
                lag_s: wd.lag_s,
                lagging: wd.lagging,
                next_due_at: rfc3339_opt(wd.next_due_ms),
            },
            crons: wd.crons.into_iter().map(CronView::from).collect(),
            audit_chain: AuditView::from(&self.audit),
            costs: CostsView {
                twilio: TwilioView {
                    week: project_week(twilio_spent, now_ms),
                    weekly_budget_micros: budget,
                    fire_threshold_micros: budget.map(|b| {
                        u64::try_from(u128::from(b) * u128::from(super::TWILIO_FIRE_PERCENT) / 100).unwrap_or(u64::MAX)
                    }),
                    firing: self.twilio.firing.is_some(),
                    last_evaluated_at: self.twilio.last.as_ref().map(|l| rfc3339_ms(l.evaluated_at_ms)),
                },
                ai: AiView {
                    month: project_month(ai_spent, now_ms),
                    monthly_cap_micros: cfg.ai_monthly_cap_micros,
                    paused: self.ai.is_paused(now_ms),
                    pause: self.ai.pause.clone().filter(|_| self.ai.is_paused(now_ms)),
                    resumed: self.ai.resumed.clone(),
                    last_evaluated_at: self.ai.last.as_ref().map(|l| rfc3339_ms(l.evaluated_at_ms)),
                },
            },
        }
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The cron and business part of `GET /ops/shops/{shop}/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CronShopStatus {
    pub watchdog: WatchdogView,
    /// One per watched cron, in watch-list order.
    pub crons: Vec<CronView>,
    pub audit_chain: AuditView,
    pub costs: CostsView,
}

/// The watchdog's own health: when it last evaluated and how late (lag).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchdogView {
    pub last_evaluated_at: Option<String>,
    /// How late the last evaluation ran after its due time.
    pub lag_s: u64,
    /// `lag_s` above the tolerance: slots concluded then are `unknown`, not missed.
    pub lagging: bool,
    pub next_due_at: Option<String>,
}

/// One watched cron: the core's status plus readable times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CronView {
    #[serde(flatten)]
    pub status: CronStatus,
    pub last_start_at: Option<String>,
    pub last_end_at: Option<String>,
    pub next_expected_at: Option<String>,
}

impl From<CronStatus> for CronView {
    fn from(status: CronStatus) -> Self {
        CronView {
            last_start_at: rfc3339_opt(status.last_start_ms),
            last_end_at: rfc3339_opt(status.last_end_ms),
            next_expected_at: rfc3339_opt(status.next_expected_ms),
            status,
        }
    }
}

/// The audit chain as the last reconciliations reported it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditView {
    pub broken: bool,
    pub broken_since: Option<String>,
    pub last_checked_at: Option<String>,
    pub last_verified_at: Option<String>,
    pub last_verified_length: Option<u64>,
}

impl From<&AuditChainWatch> for AuditView {
    fn from(a: &AuditChainWatch) -> Self {
        AuditView {
            broken: a.firing.is_some(),
            broken_since: a.firing.as_ref().map(|f| rfc3339_ms(f.since_ms)),
            last_checked_at: rfc3339_opt(a.last_checked_ms),
            last_verified_at: rfc3339_opt(a.last_verified_ms),
            last_verified_length: a.last_verified_length,
        }
    }
}

/// Spend so far and projections, per service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostsView {
    pub twilio: TwilioView,
    pub ai: AiView,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TwilioView {
    /// This ISO week's spend and its projection to the week's end.
    pub week: Option<PeriodProjection>,
    pub weekly_budget_micros: Option<u64>,
    /// 150% of the budget: the weekly summary fires above it.
    pub fire_threshold_micros: Option<u64>,
    pub firing: bool,
    pub last_evaluated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AiView {
    /// This month's spend and its projection to the month's end.
    pub month: Option<PeriodProjection>,
    pub monthly_cap_micros: Option<u64>,
    /// What the app's AI routes obey.
    pub paused: bool,
    pub pause: Option<AiPause>,
    pub resumed: Option<AiResume>,
    pub last_evaluated_at: Option<String>,
}
