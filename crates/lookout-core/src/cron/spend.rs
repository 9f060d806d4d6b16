//! The per-shop spend ledger, pure: each request record's `cost_micros` (Twilio, Claude)
//! summed per ISO week (Twilio) and per calendar month (Claude), keyed by the record's own
//! time, so the cost projections in cost.rs get "spent so far this period". A record counted
//! once is never counted again (a retried batch carries the same request ids).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::cost::{month_bounds_ms, week_bounds_ms};
use crate::record::CostMicros;

/// Periods kept per service (the current one and a few before it, for late records).
const MAX_PERIODS: usize = 4;
/// Request ids remembered to refuse counting a record twice.
const MAX_REMEMBERED_IDS: usize = 512;

/// Spend in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodSpend {
    pub period_start_ms: i64,
    pub micros: u64,
}

/// What [`SpendLedger::add`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendEffect {
    Counted,
    /// No cost on the record: nothing to count.
    Free,
    /// This request id was counted before.
    Duplicate,
}

/// Running spend per period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpendLedger {
    /// Twilio spend per ISO week (Monday 00:00 UTC), oldest first.
    pub twilio_weeks: Vec<PeriodSpend>,
    /// Claude (AI) spend per calendar month (UTC), oldest first.
    pub claude_months: Vec<PeriodSpend>,
    pub records_counted: u64,
    pub duplicates_ignored: u64,
    #[serde(default)]
    recent_ids: VecDeque<String>,
}

fn add_to(periods: &mut Vec<PeriodSpend>, period_start_ms: i64, micros: u64) {
    if micros == 0 {
        return;
    }
    match periods.iter_mut().find(|p| p.period_start_ms == period_start_ms) {
        Some(p) => p.micros = p.micros.saturating_add(micros),
        None => {
            let at = periods.partition_point(|p| p.period_start_ms < period_start_ms);
            periods.insert(at, PeriodSpend { period_start_ms, micros });
            while periods.len() > MAX_PERIODS {
                periods.remove(0);
            }
        }
    }
}

fn spent_in(periods: &[PeriodSpend], period_start_ms: Option<i64>) -> u64 {
    period_start_ms.and_then(|s| periods.iter().find(|p| p.period_start_ms == s)).map_or(0, |p| p.micros)
}

impl SpendLedger {
    /// Count one request's cost at its own time `ts_ms`.
    pub fn add(&mut self, request_id: &str, ts_ms: i64, cost: CostMicros) -> SpendEffect {
        if cost.twilio == 0 && cost.claude == 0 {
            return SpendEffect::Free;
        }
        if self.recent_ids.iter().any(|id| id == request_id) {
            self.duplicates_ignored += 1;
            return SpendEffect::Duplicate;
        }
        if self.recent_ids.len() >= MAX_REMEMBERED_IDS {
            self.recent_ids.pop_front();
        }
        self.recent_ids.push_back(request_id.to_string());
        if let Some((week, _)) = week_bounds_ms(ts_ms) {
            add_to(&mut self.twilio_weeks, week, cost.twilio);
        }
        if let Some((month, _)) = month_bounds_ms(ts_ms) {
            add_to(&mut self.claude_months, month, cost.claude);
        }
        self.records_counted += 1;
        SpendEffect::Counted
    }

    /// Twilio spend in the ISO week containing `now_ms`.
    pub fn twilio_week_micros(&self, now_ms: i64) -> u64 {
        spent_in(&self.twilio_weeks, week_bounds_ms(now_ms).map(|b| b.0))
    }

    /// Claude spend in the calendar month containing `now_ms`.
    pub fn claude_month_micros(&self, now_ms: i64) -> u64 {
        spent_in(&self.claude_months, month_bounds_ms(now_ms).map(|b| b.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ms(y: i32, mo: u32, d: u32, h: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap().timestamp_millis()
    }

    fn cost(twilio: u64, claude: u64) -> CostMicros {
        CostMicros { twilio, claude }
    }

    #[test]
    fn spend_lands_in_the_period_of_the_record() {
        let mut l = SpendLedger::default();
        // Sunday 2026-05-10 is the last day of ISO week 19; Monday 05-11 starts week 20.
        assert_eq!(l.add("r1", ms(2026, 5, 10, 23), cost(7_900, 30_000)), SpendEffect::Counted);
        assert_eq!(l.add("r2", ms(2026, 5, 11, 1), cost(15_800, 0)), SpendEffect::Counted);
        assert_eq!(l.add("r3", ms(2026, 5, 11, 2), cost(0, 0)), SpendEffect::Free);
        assert_eq!(l.twilio_week_micros(ms(2026, 5, 10, 12)), 7_900);
        assert_eq!(l.twilio_week_micros(ms(2026, 5, 13, 12)), 15_800);
        // Both in May for Claude.
        l.add("r4", ms(2026, 5, 31, 23), cost(0, 20_000));
        assert_eq!(l.claude_month_micros(ms(2026, 5, 20, 0)), 50_000);
        // June starts at zero; May's total is not carried over.
        assert_eq!(l.claude_month_micros(ms(2026, 6, 1, 0)), 0);
        l.add("r5", ms(2026, 6, 1, 0), cost(0, 1));
        assert_eq!(l.claude_month_micros(ms(2026, 6, 2, 0)), 1);
        assert_eq!(l.records_counted, 4);
    }

    #[test]
    fn a_record_is_counted_once() {
        let mut l = SpendLedger::default();
        let t = ms(2026, 5, 12, 9);
        l.add("req_a", t, cost(7_900, 0));
        assert_eq!(l.add("req_a", t, cost(7_900, 0)), SpendEffect::Duplicate);
        assert_eq!(l.twilio_week_micros(t), 7_900);
        assert_eq!(l.duplicates_ignored, 1);
        let back: SpendLedger = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l, "persisted with its memory of ids");
    }

    #[test]
    fn old_periods_are_dropped_and_sums_saturate() {
        let mut l = SpendLedger::default();
        for w in 0..10 {
            l.add(&format!("r{w}"), ms(2026, 1, 5, 0) + w * 7 * 86_400_000, cost(1, 1));
        }
        assert_eq!(l.twilio_weeks.len(), MAX_PERIODS);
        assert_eq!(l.claude_months.len(), 3, "Jan, Feb, Mar 2026");
        let t = ms(2026, 5, 12, 9);
        l.add("big1", t, cost(u64::MAX, 0));
        l.add("big2", t, cost(5, 0));
        assert_eq!(l.twilio_week_micros(t), u64::MAX);
    }
}
