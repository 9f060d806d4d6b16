//! Cost projections, pure, in integer micro-dollars: the week's Twilio spend (ISO week,
//! Monday 00:00 UTC) against 150% of the weekly budget, and the month's AI spend against the
//! monthly cap, which also pauses AI. Spend totals come from the caller (the dependency
//! instrumentation's per-call costs); this file only projects and decides.
//!
//! Projection: `projected = spent * period / max(elapsed, 1 day)` (integer, rounded down),
//! with `elapsed` clamped to the period. So the projection is never below the spend, equals
//! it at the period's end, and an early SMS at Monday 00:01 projects to 7x its cost, not to
//! infinity.

use chrono::{DateTime, Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use super::alert::{CronAlertEvent, OpenAlert, AI_COST_PROJECTION, TWILIO_COST_PROJECTION};
use super::{MIN_PROJECTION_ELAPSED_MS, TWILIO_CLEAR_PERCENT, TWILIO_FIRE_PERCENT};
use crate::alerting::{AlertState, Unit};

const DAY_MS: i64 = 86_400_000;

/// A period's spend so far and its linear projection to the period's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodProjection {
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub elapsed_ms: i64,
    pub spent_micros: u64,
    pub projected_micros: u64,
}

fn day_start_ms(d: NaiveDate) -> Option<i64> {
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

/// The ISO week containing `now_ms`: `[Monday 00:00 UTC, next Monday 00:00 UTC)`.
pub fn week_bounds_ms(now_ms: i64) -> Option<(i64, i64)> {
    let date = DateTime::from_timestamp_millis(now_ms)?.date_naive();
    let monday = date.checked_sub_signed(Duration::days(i64::from(date.weekday().num_days_from_monday())))?;
    let start = day_start_ms(monday)?;
    Some((start, start + 7 * DAY_MS))
}

/// The calendar month (UTC) containing `now_ms`: `[1st 00:00, next 1st 00:00)`.
pub fn month_bounds_ms(now_ms: i64) -> Option<(i64, i64)> {
    let date = DateTime::from_timestamp_millis(now_ms)?.date_naive();
    let first = NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?;
    let next = if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)?
    };
    Some((day_start_ms(first)?, day_start_ms(next)?))
}

fn project(spent_micros: u64, (start, end): (i64, i64), now_ms: i64) -> PeriodProjection {
    let period = (end - start).max(1);
    let elapsed = now_ms.saturating_sub(start).clamp(0, period);
    let effective = elapsed.max(MIN_PROJECTION_ELAPSED_MS).min(period);
    let projected = u128::from(spent_micros) * period as u128 / effective as u128;
    PeriodProjection {
        period_start_ms: start,
        period_end_ms: end,
        elapsed_ms: elapsed,
        spent_micros,
        projected_micros: u64::try_from(projected).unwrap_or(u64::MAX),
    }
}

/// Project this ISO week's spend to Monday 00:00 UTC.
pub fn project_week(spent_micros: u64, now_ms: i64) -> Option<PeriodProjection> {
    Some(project(spent_micros, week_bounds_ms(now_ms)?, now_ms))
}

/// Project this calendar month's spend to the 1st of next month 00:00 UTC.
pub fn project_month(spent_micros: u64, now_ms: i64) -> Option<PeriodProjection> {
    Some(project(spent_micros, month_bounds_ms(now_ms)?, now_ms))
}

fn pct(amount: u64, percent: u64) -> u64 {
    u64::try_from(u128::from(amount) * u128::from(percent) / 100).unwrap_or(u64::MAX)
}

fn usd(micros: u64) -> String {
    format!("${}.{:02}", micros / 1_000_000, (micros % 1_000_000) / 10_000)
}

fn fmt_day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// The Twilio figures of the last evaluation, for the status view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwilioStatus {
    pub projection: PeriodProjection,
    pub weekly_budget_micros: Option<u64>,
    /// 150% of the budget.
    pub fire_threshold_micros: Option<u64>,
    pub firing: bool,
    pub evaluated_at_ms: i64,
}

/// The `twilio_cost_projection` alert: fires when the week's projection exceeds 150% of the
/// weekly budget; once firing it resolves when the projection is back at or below 100% of the
/// budget, or when a new week starts whose projection is not above 150%. No budget (or 0):
/// never fires.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwilioCostWatch {
    /// `key_ms` is the week's start.
    pub firing: Option<OpenAlert>,
    pub last: Option<TwilioStatus>,
}

impl TwilioCostWatch {
    pub fn evaluate(
        &mut self,
        spent_week_micros: u64,
        weekly_budget_micros: Option<u64>,
        now_ms: i64,
    ) -> Vec<CronAlertEvent> {
        let mut events = Vec::new();
        let Some(p) = project_week(spent_week_micros, now_ms) else {
            return events;
        };
        let budget = weekly_budget_micros.filter(|b| *b > 0);
        let fire_at = budget.map(|b| pct(b, TWILIO_FIRE_PERCENT));
        let over = fire_at.is_some_and(|f| p.projected_micros > f);
        let summary = |b: u64| {
            format!(
                "Twilio spend this week {} projects to {} by {}: {}% of the {} weekly budget",
                usd(p.spent_micros),
                usd(p.projected_micros),
                fmt_day(p.period_end_ms),
                u128::from(p.projected_micros) * 100 / u128::from(b.max(1)),
                usd(b)
            )
        };
        match (&mut self.firing, budget) {
            (Some(a), Some(b)) => {
                let new_week = a.key_ms != p.period_start_ms;
                if (new_week && !over) || p.projected_micros <= pct(b, TWILIO_CLEAR_PERCENT) {
                    let a = a.clone();
                    self.firing = None;
                    events.push(CronAlertEvent::new(
                        TWILIO_COST_PROJECTION,
                        None,
                        AlertState::Resolved,
                        p.projected_micros as f64,
                        a.threshold,
                        Unit::MicroUsd,
                        summary(b),
                        a.since_ms,
                        now_ms,
                        None,
                    ));
                } else {
                    a.key_ms = p.period_start_ms;
                    a.value = p.projected_micros as f64;
                }
            }
            (Some(_), None) => {
                if let Some(a) = self.firing.take() {
                    events.push(CronAlertEvent::new(
                        TWILIO_COST_PROJECTION,
                        None,
                        AlertState::Resolved,
                        p.projected_micros as f64,
                        a.threshold,
                        Unit::MicroUsd,
                        "Twilio weekly budget removed".to_string(),
                        a.since_ms,
                        now_ms,
                        None,
                    ));
                }
            }
            (None, Some(b)) if over => {
                let threshold = fire_at.unwrap_or(0) as f64;
                let a = OpenAlert {
                    since_ms: now_ms,
                    key_ms: p.period_start_ms,
                    run_id: None,
                    value: p.projected_micros as f64,
                    threshold,
                };
                events.push(CronAlertEvent::new(
                    TWILIO_COST_PROJECTION,
                    None,
                    AlertState::Firing,
                    a.value,
                    threshold,
                    Unit::MicroUsd,
                    summary(b),
                    now_ms,
                    now_ms,
                    None,
                ));
                self.firing = Some(a);
            }
            (None, _) => {}
        }
        self.last = Some(TwilioStatus {
            projection: p,
            weekly_budget_micros: budget,
            fire_threshold_micros: fire_at,
            firing: self.firing.is_some(),
            evaluated_at_ms: now_ms,
        });
        events
    }
}

/// The summary of the `ai_cost_projection` resolve when an operator resumes AI.
pub const RESUMED_BY_OPERATOR: &str = "AI resumed by an operator";
/// ... when a new month starts.
pub const RESUMED_NEW_MONTH: &str = "AI resumed: a new month started";
/// ... when the monthly cap is removed.
pub const RESUMED_CAP_REMOVED: &str = "AI resumed: the monthly cap was removed";

/// Why AI was paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The month's projection exceeds the cap.
    ProjectedOverCap,
    /// The month's spend already exceeds the cap.
    SpentOverCap,
}

/// An active AI pause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiPause {
    pub since_ms: i64,
    /// The month it applies to; it ends by itself when the month does.
    pub period_start_ms: i64,
    pub reason: PauseReason,
    pub spent_micros: u64,
    pub projected_micros: u64,
    pub cap_micros: u64,
}

/// An operator's resume within a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AiResume {
    pub at_ms: i64,
    pub period_start_ms: i64,
    /// True when the operator resumed with spend already over the cap: nothing pauses AI
    /// again this month. False: only an actual overspend pauses it again this month.
    pub overspend_accepted: bool,
}

/// The AI figures of the last evaluation, for the status view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiStatus {
    pub projection: PeriodProjection,
    pub monthly_cap_micros: Option<u64>,
    pub paused: bool,
    pub evaluated_at_ms: i64,
}

/// The AI guard: `ai_cost_projection` fires and AI pauses when the month's projection (or its
/// spend) exceeds the monthly cap. The pause lasts until an operator resumes or the month
/// ends. After a resume, projections no longer pause AI that month; spend above the cap does
/// (once), unless it was already above the cap when the operator resumed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AiGuard {
    pub pause: Option<AiPause>,
    pub resumed: Option<AiResume>,
    pub last: Option<AiStatus>,
}

impl AiGuard {
    /// What the app checks before any AI call.
    pub fn is_paused(&self, now_ms: i64) -> bool {
        let month = month_bounds_ms(now_ms).map(|b| b.0);
        self.pause.as_ref().is_some_and(|p| Some(p.period_start_ms) == month)
    }

    fn resolved(&self, p: &AiPause, summary: String, now_ms: i64) -> CronAlertEvent {
        CronAlertEvent::new(
            AI_COST_PROJECTION,
            None,
            AlertState::Resolved,
            p.projected_micros as f64,
            p.cap_micros as f64,
            Unit::MicroUsd,
            summary,
            p.since_ms,
            now_ms,
            None,
        )
    }

    /// The daily check. `spent_month_micros` is this calendar month's AI spend.
    pub fn evaluate(
        &mut self,
        spent_month_micros: u64,
        monthly_cap_micros: Option<u64>,
        now_ms: i64,
    ) -> Vec<CronAlertEvent> {
        let mut events = Vec::new();
        let Some(p) = project_month(spent_month_micros, now_ms) else {
            return events;
        };
        if let Some(pause) = self.pause.clone().filter(|x| x.period_start_ms != p.period_start_ms) {
            self.pause = None;
            events.push(self.resolved(&pause, RESUMED_NEW_MONTH.to_string(), now_ms));
        }
        if self.resumed.as_ref().is_some_and(|r| r.period_start_ms != p.period_start_ms) {
            self.resumed = None;
        }
        let cap = monthly_cap_micros.filter(|c| *c > 0);
        match cap {
            None => {
                if let Some(pause) = self.pause.take() {
                    events.push(self.resolved(&pause, RESUMED_CAP_REMOVED.to_string(), now_ms));
                }
            }
            Some(cap) => {
                let reason = if p.spent_micros > cap {
                    Some(PauseReason::SpentOverCap)
                } else if p.projected_micros > cap {
                    Some(PauseReason::ProjectedOverCap)
                } else {
                    None
                };
                let suppressed = match (&self.resumed, reason) {
                    (Some(r), _) if r.overspend_accepted => true,
                    (Some(_), Some(PauseReason::ProjectedOverCap)) => true,
                    _ => false,
                };
                match (&mut self.pause, reason) {
                    (Some(existing), Some(PauseReason::SpentOverCap)) => {
                        existing.reason = PauseReason::SpentOverCap;
                        existing.spent_micros = p.spent_micros;
                        existing.projected_micros = p.projected_micros;
                    }
                    (None, Some(reason)) if !suppressed => {
                        let pause = AiPause {
                            since_ms: now_ms,
                            period_start_ms: p.period_start_ms,
                            reason,
                            spent_micros: p.spent_micros,
                            projected_micros: p.projected_micros,
                            cap_micros: cap,
                        };
                        let why = match reason {
                            PauseReason::SpentOverCap => "already exceeds",
                            PauseReason::ProjectedOverCap => "projects over",
                        };
                        let summary = format!(
                            "AI paused: spend this month {} (projected {} by {}) {why} the {} monthly cap",
                            usd(p.spent_micros),
                            usd(p.projected_micros),
                            fmt_day(p.period_end_ms),
                            usd(cap)
                        );
                        events.push(CronAlertEvent::new(
                            AI_COST_PROJECTION,
                            None,
                            AlertState::Firing,
                            p.projected_micros as f64,
                            cap as f64,
                            Unit::MicroUsd,
                            summary,
                            now_ms,
                            now_ms,
                            None,
                        ));
                        self.pause = Some(pause);
                        // A fresh pause supersedes an earlier resume's allowance.
                        self.resumed = None;
                    }
                    _ => {}
                }
            }
        }
        self.last = Some(AiStatus {
            projection: p,
            monthly_cap_micros: cap,
            paused: self.is_paused(now_ms),
            evaluated_at_ms: now_ms,
        });
        events
    }

    /// Spend checked as it happens (after each batch of records): spend above the cap pauses
    /// AI at once (`SpentOverCap`), as the daily check would, so nothing more is spent on a
    /// paused shop; projections stay the daily check's. Nothing happens when AI is already
    /// paused, without a cap, or when an operator resumed with the overspend accepted this
    /// month. A pause of an earlier month is resolved first.
    pub fn check_spend(
        &mut self,
        spent_month_micros: u64,
        monthly_cap_micros: Option<u64>,
        now_ms: i64,
    ) -> Vec<CronAlertEvent> {
        let mut events = Vec::new();
        let (Some(cap), Some((month_start, month_end))) =
            (monthly_cap_micros.filter(|c| *c > 0), month_bounds_ms(now_ms))
        else {
            return events;
        };
        if spent_month_micros <= cap || self.is_paused(now_ms) {
            return events;
        }
        if let Some(old) = self.pause.take() {
            events.push(self.resolved(&old, RESUMED_NEW_MONTH.to_string(), now_ms));
        }
        if self.resumed.as_ref().is_some_and(|r| r.period_start_ms != month_start) {
            self.resumed = None;
        }
        if self.resumed.as_ref().is_some_and(|r| r.overspend_accepted) {
            return events;
        }
        let projected = project_month(spent_month_micros, now_ms).map_or(spent_month_micros, |p| p.projected_micros);
        let summary = format!(
            "AI paused: spend this month {} already exceeds the {} monthly cap (paused as the spend happened; \
             projected {} by {})",
            usd(spent_month_micros),
            usd(cap),
            usd(projected),
            fmt_day(month_end)
        );
        events.push(CronAlertEvent::new(
            AI_COST_PROJECTION,
            None,
            AlertState::Firing,
            spent_month_micros as f64,
            cap as f64,
            Unit::MicroUsd,
            summary,
            now_ms,
            now_ms,
            None,
        ));
        self.pause = Some(AiPause {
            since_ms: now_ms,
            period_start_ms: month_start,
            reason: PauseReason::SpentOverCap,
            spent_micros: spent_month_micros,
            projected_micros: projected,
            cap_micros: cap,
        });
        self.resumed = None;
        events
    }

    /// The operator's resume (authenticated endpoint). Pass the current month's spend and
    /// cap: resuming above the cap accepts the overspend for the rest of the month.
    pub fn resume(
        &mut self,
        spent_month_micros: u64,
        monthly_cap_micros: Option<u64>,
        now_ms: i64,
    ) -> Vec<CronAlertEvent> {
        let Some(month) = month_bounds_ms(now_ms).map(|b| b.0) else {
            return Vec::new();
        };
        let Some(pause) = self.pause.take() else {
            return Vec::new();
        };
        self.resumed = Some(AiResume {
            at_ms: now_ms,
            period_start_ms: month,
            overspend_accepted: monthly_cap_micros.is_some_and(|c| spent_month_micros > c),
        });
        if let Some(last) = &mut self.last {
            last.paused = false;
        }
        vec![self.resolved(&pause, RESUMED_BY_OPERATOR.to_string(), now_ms)]
    }
}
