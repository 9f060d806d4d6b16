//! Fake-clock scenarios across the cron module: the watchdog driven by its own alarm times
//! and by check-ins, for every schedule shape; cost projections over a period; persistence.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::alerting::{AlertState, Severity};

fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap().timestamp_millis()
}

const MIN: i64 = 60_000;

fn watch(json: &str) -> WatchList {
    WatchList::parse(json).unwrap()
}

fn daily() -> WatchList {
    watch(r#"[{"cron":"daily_reconciliation","schedule":"0 7 * * *","grace_s":1800,"max_runtime_s":3600}]"#)
}

fn start(cron: &str, run_id: &str, scheduled_ms: i64, at_ms: i64) -> CronCheckIn {
    CronCheckIn { cron: cron.into(), run_id: run_id.into(), scheduled_ms, kind: CheckInKind::Start, at_ms }
}

fn end(cron: &str, run_id: &str, scheduled_ms: i64, at_ms: i64, ms: u64, ok: bool) -> CronCheckIn {
    let mut r = Results::new();
    r.int("sales_reconciled", 47);
    CronCheckIn {
        cron: cron.into(),
        run_id: run_id.into(),
        scheduled_ms,
        kind: CheckInKind::End { ok, ms, results: r, errors_count: u32::from(!ok) },
        at_ms,
    }
}

fn rules(events: &[CronAlertEvent]) -> Vec<(String, AlertState)> {
    events.iter().map(|e| (e.rule.clone(), e.state)).collect()
}

fn firing(rule: &str) -> (String, AlertState) {
    (rule.to_string(), AlertState::Firing)
}

fn resolved(rule: &str) -> (String, AlertState) {
    (rule.to_string(), AlertState::Resolved)
}

// ---------------------------------------------------------------------------------------
// A simulator: the edge's loop, with a fake clock. Check-ins happen at their times; the
// alarm fires exactly at the due time the watchdog asked for (or `alarm_delay_ms` later).
// ---------------------------------------------------------------------------------------

/// What the cron platform does for one slot: `None` skips it; `Some((start_offset_ms,
/// duration_ms))` runs it (a `duration_ms` of `None` never ends).
type Plan = dyn Fn(i64) -> Option<(i64, Option<i64>)>;

struct Sim {
    watch: WatchList,
    wd: Watchdog,
    events: Vec<(i64, CronAlertEvent)>,
    due: Option<i64>,
    alarm_delay_ms: i64,
}

impl Sim {
    fn new(watch: WatchList, now: i64) -> Sim {
        let mut wd = Watchdog::new();
        let o = wd.evaluate(&watch, now);
        Sim { watch, wd, events: Vec::new(), due: o.next_due_ms, alarm_delay_ms: 0 }
    }

    fn ingest(&mut self, ci: &CronCheckIn, now: i64) -> Outcome {
        self.run_alarms_until(now);
        let o = self.wd.ingest(&self.watch, ci, now);
        self.events.extend(o.events.iter().cloned().map(|e| (now, e)));
        self.due = o.next_due_ms;
        o
    }

    /// Fire every alarm due up to `now` (exclusive), each at its (delayed) time.
    fn run_alarms_until(&mut self, now: i64) {
        while let Some(d) = self.due {
            let at = d + self.alarm_delay_ms;
            if at >= now {
                break;
            }
            let o = self.wd.evaluate(&self.watch, at);
            self.events.extend(o.events.iter().cloned().map(|e| (at, e)));
            self.due = o.next_due_ms;
        }
    }

    /// Run the platform for one cron from `from` to `to` following `plan`.
    fn run(&mut self, cron: &str, from: i64, to: i64, plan: &Plan) {
        let entry = self.watch.get(cron).unwrap().clone();
        let mut actions: Vec<(i64, CronCheckIn)> = Vec::new();
        let mut slot = entry.schedule.next_at_or_after_ms(from);
        while let Some(s) = slot.filter(|s| *s < to) {
            if let Some((off, dur)) = plan(s) {
                let id = CronRun::run_id(&entry.code, &entry.schedule, entry.grace_ms(), s, s + off);
                actions.push((s + off, start(cron, &id, s, s + off)));
                if let Some(d) = dur {
                    actions.push((s + off + d, end(cron, &id, s, s + off + d, d as u64, true)));
                }
            }
            slot = entry.schedule.next_after_ms(s);
        }
        actions.sort_by_key(|a| a.0);
        for (t, ci) in actions {
            self.ingest(&ci, t);
        }
        self.run_alarms_until(to);
    }

    fn fired(&self) -> Vec<(i64, String, AlertState, Option<String>)> {
        self.events.iter().map(|(t, e)| (*t, e.rule.clone(), e.state, e.run_id.clone())).collect()
    }
}

fn on_time(_: i64) -> Option<(i64, Option<i64>)> {
    Some((1_500, Some(8_420)))
}

/// Every schedule we use, with windows across month ends, year end and a leap February.
fn schedules() -> Vec<(&'static str, &'static str, i64, i64)> {
    vec![
        (
            r#"[{"cron":"daily_reconciliation","schedule":"0 7 * * *"}]"#,
            "daily_reconciliation",
            ms(2026, 12, 20, 0, 0, 0),
            ms(2027, 1, 10, 0, 0, 0),
        ),
        (
            r#"[{"cron":"daily_reconciliation","schedule":"0 7 * * *"}]"#,
            "daily_reconciliation",
            ms(2028, 2, 20, 0, 0, 0),
            ms(2028, 3, 5, 0, 0, 0),
        ),
        (
            r#"[{"cron":"queue_sweep","schedule":"*/5 * * * *","grace_s":240,"max_runtime_s":600}]"#,
            "queue_sweep",
            ms(2026, 12, 31, 20, 0, 0),
            ms(2027, 1, 1, 4, 0, 0),
        ),
        (
            r#"[{"cron":"weekly_summary","schedule":"0 8 * * 1","grace_s":3600}]"#,
            "weekly_summary",
            ms(2026, 11, 20, 0, 0, 0),
            ms(2027, 2, 1, 0, 0, 0),
        ),
        (
            r#"[{"cron":"monthly_close","schedule":"0 0 1 * *"}]"#,
            "monthly_close",
            ms(2026, 10, 15, 0, 0, 0),
            ms(2027, 4, 2, 0, 0, 0),
        ),
        (
            r#"[{"cron":"month_end","schedule":"59 23 L * *"}]"#,
            "month_end",
            ms(2027, 10, 15, 0, 0, 0),
            ms(2028, 4, 2, 0, 0, 0),
        ),
    ]
}

#[test]
fn on_time_runs_raise_nothing_for_every_schedule() {
    for (json, cron, from, to) in schedules() {
        let mut sim = Sim::new(watch(json), from);
        sim.run(cron, from, to, &on_time);
        assert!(sim.events.is_empty(), "{cron}: {:?}", sim.fired());
        let t = &sim.wd.crons[0];
        assert_eq!(t.missed_count, 0, "{cron}");
        assert!(t.slots.iter().all(|s| s.state == SlotState::EndedOk), "{cron}: {:?}", t.slots);
        assert!(t.runs.iter().all(|r| r.slot_ms.is_some() && r.offset_ms == Some(1_500)), "{cron}");
    }
}

#[test]
fn a_skipped_slot_fires_once_at_slot_plus_grace_and_the_next_run_resolves_it() {
    let cases: Vec<(usize, i64, &str)> = vec![
        (0, ms(2027, 1, 1, 7, 0, 0), "cron_d_2027_01_01"),
        (1, ms(2028, 2, 29, 7, 0, 0), "cron_d_2028_02_29"),
        (2, ms(2027, 1, 1, 0, 0, 0), "cron_q_2027_01_01_0000"),
        (3, ms(2027, 1, 3, 8, 0, 0), "cron_w_2027_01_03"),
        (4, ms(2027, 1, 1, 0, 0, 0), "cron_m_2027_01_01"),
        (5, ms(2028, 2, 29, 23, 59, 0), "cron_m_2028_02_29"),
    ];
    let all = schedules();
    for (i, skipped, run_id) in cases {
        let (json, cron, from, to) = all[i];
        let w = watch(json);
        let entry = w.get(cron).unwrap().clone();
        let mut sim = Sim::new(w, from);
        sim.run(cron, from, to, &move |s| {
            if s == skipped {
                None
            } else {
                on_time(s)
            }
        });
        let f = sim.fired();
        assert_eq!(f.len(), 2, "{cron}: {f:?}");
        let deadline = skipped + entry.grace_ms();
        assert_eq!(f[0], (deadline, "cron_missed".into(), AlertState::Firing, Some(run_id.into())), "{cron}");
        let next = entry.schedule.next_after_ms(skipped).unwrap();
        assert_eq!(
            f[1],
            (next + 1_500 + 8_420, "cron_missed".into(), AlertState::Resolved, Some(run_id.into())),
            "{cron}"
        );
        let slot = sim.wd.crons[0].slots.iter().find(|s| s.slot_ms == skipped).unwrap();
        assert_eq!(slot.state, SlotState::Missed);
    }
}

#[test]
fn missed_fires_exactly_at_grace_not_before_and_is_not_repeated() {
    let w = daily();
    let mut wd = Watchdog::new();
    let t0 = ms(2026, 5, 9, 12, 0, 0);
    let o = wd.evaluate(&w, t0);
    assert_eq!(o.next_due_ms, Some(ms(2026, 5, 10, 7, 30, 0)));
    assert!(wd.evaluate(&w, ms(2026, 5, 10, 7, 29, 59)).events.is_empty());
    let o = wd.evaluate(&w, ms(2026, 5, 10, 7, 30, 0));
    assert_eq!(rules(&o.events), vec![firing("cron_missed")]);
    let e = &o.events[0];
    assert_eq!(e.severity, Severity::Critical);
    assert_eq!(e.action, "Check Cloudflare cron status; run it by hand if needed");
    assert_eq!(e.run_id.as_deref(), Some("cron_d_2026_05_10"));
    assert_eq!((e.value, e.threshold, e.since_ms), (1800.0, 1800.0, ms(2026, 5, 10, 7, 30, 0)));
    assert_eq!(e.summary, "daily_reconciliation did not run: expected at 2026-05-10T07:00:00Z, no start or end by 2026-05-10T07:30:00Z (grace 1800 s)");
    // The alarm retried (at-least-once) and a later tick: no second notification.
    assert!(wd.evaluate(&w, ms(2026, 5, 10, 7, 30, 0)).events.is_empty());
    assert!(wd.evaluate(&w, ms(2026, 5, 10, 7, 30, 40)).events.is_empty());
    let s = wd.status(&w, ms(2026, 5, 10, 8, 0, 0));
    assert_eq!(s.crons[0].state, SlotState::Missed);
    assert!(s.crons[0].missed_firing);
    assert_eq!(s.crons[0].next_expected_ms, Some(ms(2026, 5, 11, 7, 0, 0)));
}

#[test]
fn a_run_by_hand_resolves_missed() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    wd.evaluate(&w, ms(2026, 5, 10, 7, 30, 0));
    // The operator triggers it at 08:15 (scheduledTime is not a slot).
    let at = ms(2026, 5, 10, 8, 15, 3) + 120;
    let entry = w.get("daily_reconciliation").unwrap();
    let id = CronRun::run_id(&entry.code, &entry.schedule, entry.grace_ms(), at, at);
    assert_eq!(id, "cron_d_2026_05_10_m081503");
    let o = wd.ingest(&w, &start("daily_reconciliation", &id, at, at), at);
    assert_eq!(o.check_in, Some(CheckInEffect::Recorded { slot_ms: None }));
    assert!(o.events.is_empty(), "a start alone does not resolve");
    let o = wd.ingest(&w, &end("daily_reconciliation", &id, at, at + 9_000, 9_000, true), at + 9_000);
    assert_eq!(rules(&o.events), vec![resolved("cron_missed")]);
    assert_eq!(o.events[0].since_ms, ms(2026, 5, 10, 7, 30, 0));
    assert_eq!(o.events[0].run_id.as_deref(), Some("cron_d_2026_05_10"));
    let s = wd.status(&w, at + 10_000);
    assert_eq!(s.crons[0].state, SlotState::EndedOk);
    assert_eq!(s.crons[0].last_run.as_ref().unwrap().run_id, id);
    // The missed slot stays missed in history.
    assert_eq!(s.crons[0].recent_slots.last().unwrap().state, SlotState::Missed);
}

#[test]
fn late_platform_run_after_grace_recovers_its_slot() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    let slot = ms(2026, 5, 10, 7, 0, 0);
    assert_eq!(rules(&wd.evaluate(&w, slot + 30 * MIN).events), vec![firing("cron_missed")]);
    // Cloudflare runs it 45 min late, with scheduledTime = the slot.
    let o = wd.ingest(&w, &start("daily_reconciliation", "cron_d_2026_05_10", slot, slot + 45 * MIN), slot + 45 * MIN);
    assert_eq!(o.check_in, Some(CheckInEffect::Recorded { slot_ms: Some(slot) }));
    let o = wd.ingest(
        &w,
        &end("daily_reconciliation", "cron_d_2026_05_10", slot, slot + 46 * MIN, 60_000, true),
        slot + 46 * MIN,
    );
    assert_eq!(rules(&o.events), vec![resolved("cron_missed")]);
    let t = &wd.crons[0];
    assert_eq!(t.slots.iter().find(|s| s.slot_ms == slot).unwrap().state, SlotState::EndedOk);
    assert_eq!(t.runs[0].offset_ms, Some(45 * MIN));
}

#[test]
fn late_within_grace_is_not_missed() {
    let w = daily();
    let mut sim = Sim::new(w, ms(2026, 5, 9, 12, 0, 0));
    sim.run("daily_reconciliation", ms(2026, 5, 9, 12, 0, 0), ms(2026, 5, 14, 0, 0, 0), &|_| {
        Some((29 * MIN, Some(5_000)))
    });
    assert!(sim.events.is_empty(), "{:?}", sim.fired());
    assert!(sim.wd.crons[0].runs.iter().all(|r| r.offset_ms == Some(29 * MIN)));
}

#[test]
fn early_runs_take_the_coming_slot_never_a_satisfied_one() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    let slot = ms(2026, 5, 10, 7, 0, 0);
    // Two minutes early, and the platform time is not a slot (clock skew, manual trigger).
    let early = slot - 2 * MIN;
    let o = wd.ingest(&w, &start("daily_reconciliation", "cron_d_2026_05_10", early, early), early);
    assert_eq!(o.check_in, Some(CheckInEffect::Recorded { slot_ms: Some(slot) }));
    // The slot now waits for its end (max runtime), not for a start.
    assert_eq!(o.next_due_ms, Some(early + 3_600_000));
    wd.ingest(
        &w,
        &end("daily_reconciliation", "cron_d_2026_05_10", early, early + 60_000, 60_000, true),
        early + 60_000,
    );
    // Then the platform's own 07:00 run: its slot is satisfied, so it is an extra run,
    // not attributed to yesterday's slot nor to the 07:00 slot twice.
    let o = wd.ingest(&w, &start("daily_reconciliation", "cron_d_2026_05_10_m070000", slot, slot), slot);
    assert_eq!(o.check_in, Some(CheckInEffect::Recorded { slot_ms: None }));
    wd.ingest(
        &w,
        &end("daily_reconciliation", "cron_d_2026_05_10_m070000", slot, slot + 5_000, 5_000, true),
        slot + 5_000,
    );
    assert!(wd.evaluate(&w, slot + 30 * MIN).events.is_empty());
    assert_eq!(wd.crons[0].slots.len(), 1);
    assert_eq!(wd.crons[0].missed_count, 0);

    // */5: a run at 12:04:50 belongs to 12:05, and 12:05's own run at 12:05:01 is extra.
    let w = watch(r#"[{"cron":"queue_sweep","schedule":"*/5 * * * *","grace_s":240}]"#);
    let mut wd = Watchdog::new();
    let s0 = ms(2026, 5, 10, 12, 0, 0);
    wd.evaluate(&w, s0 - 1);
    wd.ingest(&w, &start("queue_sweep", "a", s0, s0 + 1_000), s0 + 1_000);
    wd.ingest(&w, &end("queue_sweep", "a", s0, s0 + 2_000, 1_000, true), s0 + 2_000);
    let o = wd.ingest(&w, &start("queue_sweep", "b", s0 + 290_000, s0 + 290_000), s0 + 290_000);
    assert_eq!(o.check_in, Some(CheckInEffect::Recorded { slot_ms: Some(s0 + 5 * MIN) }));
}

#[test]
fn stuck_fires_after_max_runtime_and_resolves_when_it_ends() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    let slot = ms(2026, 5, 10, 7, 0, 0);
    let o = wd.ingest(&w, &start("daily_reconciliation", "cron_d_2026_05_10", slot, slot + 1_000), slot + 1_000);
    assert_eq!(o.next_due_ms, Some(slot + 1_000 + 3_600_000));
    // Started, so not missed at slot + grace.
    assert!(wd.evaluate(&w, slot + 30 * MIN).events.is_empty());
    assert!(wd.evaluate(&w, slot + 1_000 + 3_599_999).events.is_empty());
    let o = wd.evaluate(&w, slot + 1_000 + 3_600_000);
    assert_eq!(rules(&o.events), vec![firing("cron_stuck")]);
    assert_eq!(o.events[0].run_id.as_deref(), Some("cron_d_2026_05_10"));
    assert_eq!(o.events[0].threshold, 3600.0);
    assert_eq!(wd.status(&w, slot + 2 * 3_600_000).crons[0].state, SlotState::Stuck);
    assert!(wd.evaluate(&w, slot + 2 * 3_600_000).events.is_empty());
    let o = wd.ingest(
        &w,
        &end("daily_reconciliation", "cron_d_2026_05_10", slot, slot + 80 * MIN, 79 * 60_000, false),
        slot + 80 * MIN,
    );
    assert_eq!(rules(&o.events), vec![resolved("cron_stuck")]);
    assert_eq!(wd.crons[0].slots[0].state, SlotState::EndedError);
}

#[test]
fn a_stuck_run_that_never_ends_is_resolved_by_the_next_run() {
    let w = daily();
    let mut sim = Sim::new(w, ms(2026, 5, 9, 12, 0, 0));
    let stuck_slot = ms(2026, 5, 10, 7, 0, 0);
    sim.run("daily_reconciliation", ms(2026, 5, 9, 12, 0, 0), ms(2026, 5, 13, 0, 0, 0), &move |s| {
        if s == stuck_slot {
            Some((1_000, None))
        } else {
            on_time(s)
        }
    });
    let f = sim.fired();
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(
        f[0],
        (stuck_slot + 1_000 + 3_600_000, "cron_stuck".into(), AlertState::Firing, Some("cron_d_2026_05_10".into()))
    );
    assert_eq!(f[1].1, "cron_stuck");
    assert_eq!(f[1].2, AlertState::Resolved);
    assert_eq!(f[1].0, ms(2026, 5, 11, 7, 0, 0) + 1_500 + 8_420);
}

#[test]
fn a_late_alarm_concludes_unknown_not_missed() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    assert_eq!(wd.armed_due_ms, Some(ms(2026, 5, 10, 7, 30, 0)));
    // The alarm was due at 07:30 and ran at 07:36: 6 minutes of lag.
    let o = wd.evaluate(&w, ms(2026, 5, 10, 7, 36, 0));
    assert!(o.events.is_empty(), "no page on what the monitor could not see");
    assert_eq!(o.lag_s, 360);
    let s = wd.status(&w, ms(2026, 5, 10, 7, 36, 0));
    assert!(s.lagging);
    assert_eq!(s.lag_s, 360);
    assert_eq!(s.crons[0].lag_s, 360);
    assert_eq!(s.crons[0].state, SlotState::Unknown);
    assert_eq!(s.crons[0].unknown_count, 1);
    assert_eq!(s.crons[0].missed_count, 0);
    // A lag within tolerance (60 s) still concludes missed.
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    let o = wd.evaluate(&w, ms(2026, 5, 10, 7, 31, 0));
    assert_eq!(o.lag_s, 60);
    assert_eq!(rules(&o.events), vec![firing("cron_missed")]);
    // The next day, on time again: a miss is a miss.
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    wd.evaluate(&w, ms(2026, 5, 10, 7, 36, 0));
    let o = wd.evaluate(&w, ms(2026, 5, 11, 7, 30, 5));
    assert_eq!(o.lag_s, 5);
    assert_eq!(rules(&o.events), vec![firing("cron_missed")]);
    assert_eq!(o.events[0].run_id.as_deref(), Some("cron_d_2026_05_11"));
}

#[test]
fn a_long_outage_marks_every_unseen_slot_unknown() {
    let w = watch(r#"[{"cron":"queue_sweep","schedule":"*/5 * * * *","grace_s":240}]"#);
    let mut wd = Watchdog::new();
    let t0 = ms(2026, 12, 31, 22, 0, 1);
    wd.evaluate(&w, t0);
    // The object was down for three hours, across the new year.
    let o = wd.evaluate(&w, ms(2027, 1, 1, 1, 0, 0));
    assert!(o.events.is_empty());
    assert!(o.lag_s > 3 * 3600 - 600);
    let t = &wd.crons[0];
    assert_eq!(t.unknown_count, 35);
    assert!(t.slots.iter().all(|s| s.state == SlotState::Unknown));
    assert_eq!(t.next_slot_ms, Some(ms(2027, 1, 1, 1, 0, 0)));
    assert_eq!(o.next_due_ms, Some(ms(2027, 1, 1, 1, 4, 0)));
    // A check-in that arrives late but names its slot claims it back.
    let s = ms(2027, 1, 1, 0, 50, 0);
    let o = wd.ingest(
        &w,
        &start("queue_sweep", "cron_q_2027_01_01_0050", s, ms(2027, 1, 1, 1, 0, 1)),
        ms(2027, 1, 1, 1, 0, 1),
    );
    assert_eq!(o.check_in, Some(CheckInEffect::Recorded { slot_ms: Some(s) }));
}

#[test]
fn a_late_alarm_makes_an_overrunning_run_unknown_then_rechecks_it() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    let slot = ms(2026, 5, 10, 7, 0, 0);
    let o = wd.ingest(&w, &start("daily_reconciliation", "cron_d_2026_05_10", slot, slot), slot);
    let due = o.next_due_ms.unwrap();
    assert_eq!(due, slot + 3_600_000);
    let o = wd.evaluate(&w, due + 5 * MIN);
    assert!(o.events.is_empty());
    assert_eq!(wd.crons[0].runs[0].state, RunState::Unknown);
    assert_eq!(o.next_due_ms, Some(due + 5 * MIN + LAG_RECHECK_MS));
    // Rechecked on time a minute later: still no end, so stuck.
    let o = wd.evaluate(&w, due + 6 * MIN);
    assert_eq!(o.lag_s, 0);
    assert_eq!(rules(&o.events), vec![firing("cron_stuck")]);
    // Had the end arrived meanwhile, nothing would fire.
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    wd.ingest(&w, &start("daily_reconciliation", "cron_d_2026_05_10", slot, slot), slot);
    wd.evaluate(&w, due + 5 * MIN);
    let o = wd.ingest(
        &w,
        &end("daily_reconciliation", "cron_d_2026_05_10", slot, due + 5 * MIN + 1, 3_900_001, true),
        due + 5 * MIN + 1,
    );
    assert!(o.events.is_empty());
    assert!(wd.evaluate(&w, due + 6 * MIN).events.is_empty());
    assert_eq!(wd.crons[0].runs[0].state, RunState::EndedOk);
}

#[test]
fn a_slowly_late_alarm_in_the_simulator_never_pages() {
    // Every alarm runs 2 minutes late and the cron never runs: all unknown, no alerts.
    let w = daily();
    let mut sim = Sim::new(w, ms(2026, 5, 9, 12, 0, 0));
    sim.alarm_delay_ms = 2 * MIN;
    sim.run("daily_reconciliation", ms(2026, 5, 9, 12, 0, 0), ms(2026, 5, 13, 0, 0, 0), &|_| None);
    assert!(sim.events.is_empty());
    assert_eq!(sim.wd.crons[0].unknown_count, 3);
    // 30 seconds late is within tolerance: each day is missed, one alert stays open.
    let mut sim = Sim::new(daily(), ms(2026, 5, 9, 12, 0, 0));
    sim.alarm_delay_ms = 30_000;
    sim.run("daily_reconciliation", ms(2026, 5, 9, 12, 0, 0), ms(2026, 5, 13, 0, 0, 0), &|_| None);
    assert_eq!(rules(&sim.events.iter().map(|e| e.1.clone()).collect::<Vec<_>>()), vec![firing("cron_missed")]);
    assert_eq!(sim.wd.crons[0].missed_count, 3);
}

#[test]
fn duplicates_and_lost_starts() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    let slot = ms(2026, 5, 10, 7, 0, 0);
    let s = start("daily_reconciliation", "cron_d_2026_05_10", slot, slot);
    wd.ingest(&w, &s, slot);
    assert_eq!(wd.ingest(&w, &s, slot + 5).check_in, Some(CheckInEffect::Duplicate));
    let e = end("daily_reconciliation", "cron_d_2026_05_10", slot, slot + 9_000, 9_000, true);
    assert_eq!(wd.ingest(&w, &e, slot + 9_000).check_in, Some(CheckInEffect::Recorded { slot_ms: Some(slot) }));
    assert_eq!(wd.ingest(&w, &e, slot + 9_500).check_in, Some(CheckInEffect::Duplicate));
    assert_eq!(wd.crons[0].runs.len(), 1);
    // The next day's start was lost; its end alone is enough.
    let slot2 = ms(2026, 5, 11, 7, 0, 0);
    let o = wd.ingest(
        &w,
        &end("daily_reconciliation", "cron_d_2026_05_11", slot2, slot2 + 9_000, 8_000, true),
        slot2 + 9_000,
    );
    assert_eq!(o.check_in, Some(CheckInEffect::Recorded { slot_ms: Some(slot2) }));
    let r = &wd.crons[0].runs[1];
    assert_eq!((r.started_at_ms, r.start_seen), (slot2 + 1_000, false));
    assert!(wd.evaluate(&w, slot2 + 30 * MIN).events.is_empty());
    // Unwatched crons are ignored.
    let o = wd.ingest(&w, &start("other", "x", slot, slot), slot2 + 30 * MIN);
    assert_eq!(o.check_in, Some(CheckInEffect::Unwatched));
}

#[test]
fn watch_list_changes_restart_or_drop_tracking() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    assert_eq!(rules(&wd.evaluate(&w, ms(2026, 5, 10, 7, 30, 0)).events), vec![firing("cron_missed")]);
    // New schedule: slots are tracked from now on the new expression.
    let w2 = watch(r#"[{"cron":"daily_reconciliation","schedule":"0 9 * * *"}]"#);
    let o = wd.evaluate(&w2, ms(2026, 5, 10, 8, 0, 0));
    assert!(o.events.is_empty());
    assert_eq!(o.next_due_ms, Some(ms(2026, 5, 10, 9, 30, 0)));
    // Removed from the list: its open alert resolves.
    let o = wd.evaluate(&WatchList::default(), ms(2026, 5, 10, 8, 1, 0));
    assert_eq!(rules(&o.events), vec![resolved("cron_missed")]);
    assert!(o.events[0].summary.contains("no longer on the watch list"));
    assert!(wd.crons.is_empty());
    assert_eq!(o.next_due_ms, None);
}

#[test]
fn status_reports_last_run_next_slot_and_lag() {
    let w = daily();
    let mut sim = Sim::new(w.clone(), ms(2026, 5, 9, 12, 0, 0));
    sim.run("daily_reconciliation", ms(2026, 5, 9, 12, 0, 0), ms(2026, 5, 10, 12, 0, 0), &on_time);
    let s = sim.wd.status(&w, ms(2026, 5, 10, 12, 0, 0));
    let c = &s.crons[0];
    assert_eq!(c.state, SlotState::EndedOk);
    assert_eq!(c.last_start_ms, Some(ms(2026, 5, 10, 7, 0, 1) + 500));
    assert_eq!(c.last_end_ms, Some(ms(2026, 5, 10, 7, 0, 9) + 920));
    let last = c.last_run.as_ref().unwrap();
    assert_eq!((last.run_id.as_str(), last.ms), ("cron_d_2026_05_10", Some(8_420)));
    assert_eq!(last.results.as_ref().unwrap().get_i64("sales_reconciled"), Some(47));
    assert_eq!(c.next_expected_ms, Some(ms(2026, 5, 11, 7, 0, 0)));
    assert_eq!(c.next_expected_run_id.as_deref(), Some("cron_d_2026_05_11"));
    assert_eq!(c.next_expected_state, SlotState::Expected);
    assert_eq!((c.grace_s, c.max_runtime_s), (1800, 3600));
    assert_eq!(s.next_due_ms, Some(ms(2026, 5, 11, 7, 30, 0)));
    assert!(!s.lagging);
    // Within grace, the awaited slot is still the next expected one.
    let s = sim.wd.status(&w, ms(2026, 5, 11, 7, 10, 0));
    assert_eq!(s.crons[0].next_expected_ms, Some(ms(2026, 5, 11, 7, 0, 0)));
    // A cron never evaluated yet has a status too.
    let s = Watchdog::new().status(&w, ms(2026, 5, 9, 12, 0, 0));
    assert_eq!(s.crons[0].state, SlotState::Expected);
}

#[test]
fn persisted_state_round_trips() {
    let w = daily();
    let mut p = CronPersisted::default();
    p.watchdog.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    p.watchdog.evaluate(&w, ms(2026, 5, 10, 7, 30, 0));
    let slot = ms(2026, 5, 11, 7, 0, 0);
    p.watchdog.ingest(
        &w,
        &end("daily_reconciliation", "cron_d_2026_05_11", slot, slot + 9_000, 8_000, false),
        slot + 9_000,
    );
    p.audit.observe(false, 3, Some(2), None, 5);
    p.ai.evaluate(500_000_000, Some(100_000_000), ms(2026, 5, 20, 0, 0, 0));
    p.twilio.evaluate(1, Some(10), ms(2026, 5, 20, 0, 0, 0));
    let json = serde_json::to_string(&p).unwrap();
    let back: CronPersisted = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    // And it keeps working after the reload.
    let mut wd = back.watchdog;
    assert!(wd.evaluate(&w, slot + 30 * MIN).events.is_empty());
}

#[test]
fn extreme_times_do_not_panic() {
    let w = daily();
    let mut wd = Watchdog::new();
    for t in [i64::MIN, -1, 0, ms(4999, 12, 31, 23, 0, 0), i64::MAX] {
        wd.evaluate(&w, t);
        wd.ingest(&w, &start("daily_reconciliation", "x", t, t), t);
        wd.ingest(&w, &end("daily_reconciliation", "x", t, t, u64::MAX, true), t);
        let _ = wd.status(&w, t);
        let _ = project_week(u64::MAX, t);
        let _ = project_month(1, t);
        let mut g = AiGuard::default();
        let _ = g.evaluate(u64::MAX, Some(1), t);
        let _ = g.resume(u64::MAX, Some(1), t);
        let _ = TwilioCostWatch::default().evaluate(u64::MAX, Some(u64::MAX), t);
        let _ = run_id_for_slot("d", t, true);
    }
}

// ---------------------------------------------------------------------------------------
// Cost projections.
// ---------------------------------------------------------------------------------------

const USD: u64 = 1_000_000;

#[test]
fn iso_week_and_month_bounds() {
    // Thursday 2026-12-31: the ISO week starts Monday 2026-12-28, ends Monday 2027-01-04.
    assert_eq!(week_bounds_ms(ms(2026, 12, 31, 15, 0, 0)), Some((ms(2026, 12, 28, 0, 0, 0), ms(2027, 1, 4, 0, 0, 0))));
    // Monday 00:00 starts its own week; Sunday 23:59 belongs to the previous one.
    assert_eq!(week_bounds_ms(ms(2026, 5, 11, 0, 0, 0)).map(|b| b.0), Some(ms(2026, 5, 11, 0, 0, 0)));
    assert_eq!(week_bounds_ms(ms(2026, 5, 10, 23, 59, 59)).map(|b| b.0), Some(ms(2026, 5, 4, 0, 0, 0)));
    assert_eq!(month_bounds_ms(ms(2028, 2, 29, 12, 0, 0)), Some((ms(2028, 2, 1, 0, 0, 0), ms(2028, 3, 1, 0, 0, 0))));
    assert_eq!(
        month_bounds_ms(ms(2026, 12, 31, 23, 59, 59)),
        Some((ms(2026, 12, 1, 0, 0, 0), ms(2027, 1, 1, 0, 0, 0)))
    );
}

#[test]
fn week_projection_at_start_middle_and_end() {
    let mon = ms(2026, 5, 11, 0, 0, 0);
    // One minute in: divided by one day, not one minute.
    let p = project_week(10_000, mon + MIN).unwrap();
    assert_eq!((p.elapsed_ms, p.projected_micros), (MIN, 70_000));
    // At the very start: still finite.
    assert_eq!(project_week(10_000, mon).unwrap().projected_micros, 70_000);
    assert_eq!(project_week(0, mon).unwrap().projected_micros, 0);
    // Middle: Thursday 12:00 is 3.5 days in -> x2.
    assert_eq!(project_week(21 * USD, mon + 84 * 3_600_000).unwrap().projected_micros, 42 * USD);
    // End: the last millisecond projects (almost) exactly the spend.
    let p = project_week(30 * USD, mon + 7 * 86_400_000 - 1).unwrap();
    assert!(p.projected_micros >= 30 * USD && p.projected_micros <= 30 * USD + 1, "{p:?}");
    // Huge spends do not overflow.
    assert_eq!(project_week(u64::MAX, mon + MIN).unwrap().projected_micros, u64::MAX);
}

#[test]
fn month_projection_at_start_middle_and_end() {
    // February 2028 has 29 days.
    let feb = ms(2028, 2, 1, 0, 0, 0);
    assert_eq!(project_month(USD, feb + 5 * MIN).unwrap().projected_micros, 29 * USD);
    assert_eq!(project_month(10 * USD, feb + 86_400_000).unwrap().period_end_ms, ms(2028, 3, 1, 0, 0, 0));
    // 14.5 days of 29 -> x2.
    assert_eq!(project_month(10 * USD, feb + 348 * 3_600_000).unwrap().projected_micros, 20 * USD);
    // The last day of a 31-day month: x31/30.
    let may30 = ms(2026, 5, 31, 0, 0, 0);
    assert_eq!(project_month(30 * USD, may30).unwrap().projected_micros, 31 * USD);
}

#[test]
fn twilio_fires_over_150_percent_and_resolves() {
    let mut w = TwilioCostWatch::default();
    let budget = Some(20 * USD);
    let mon = ms(2026, 5, 11, 0, 0, 0);
    // One $1 SMS burst at Monday 00:05 projects $7: fine.
    assert!(w.evaluate(USD, budget, mon + 5 * MIN).is_empty());
    // Wednesday 00:00 (2 days in), $9 spent -> $31.50 projected > $30 (150% of $20).
    let e = w.evaluate(9 * USD, budget, mon + 2 * 86_400_000);
    assert_eq!(rules(&e), vec![firing("twilio_cost_projection")]);
    assert_eq!(e[0].action, "Contact the owner about SMS volume");
    assert_eq!((e[0].value, e[0].threshold, e[0].unit.as_str()), (31_500_000.0, 30_000_000.0, "micro_usd"));
    assert!(e[0].summary.contains("$9.00 projects to $31.50"), "{}", e[0].summary);
    // Exactly 150% does not fire (strictly above).
    let mut w2 = TwilioCostWatch::default();
    assert!(w2.evaluate(30 * USD, budget, mon + 7 * 86_400_000 - 1).is_empty());
    // Still over later in the week: no repeat.
    assert!(w.evaluate(14 * USD, budget, mon + 3 * 86_400_000).is_empty());
    // Back under 150% but above 100% ($25.20): holds (no flap).
    assert!(w.evaluate(18 * USD, budget, mon + 5 * 86_400_000).is_empty());
    assert!(w.last.as_ref().unwrap().firing);
    // A new week with a calm start resolves it.
    let e = w.evaluate(USD, budget, mon + 7 * 86_400_000 + 86_400_000);
    assert_eq!(rules(&e), vec![resolved("twilio_cost_projection")]);
    // No budget configured: never fires.
    let mut w3 = TwilioCostWatch::default();
    assert!(w3.evaluate(1_000 * USD, None, mon + 86_400_000).is_empty());
    assert!(w3.evaluate(1_000 * USD, Some(0), mon + 86_400_000).is_empty());
}

#[test]
fn ai_pauses_over_the_cap_until_resumed_or_next_month() {
    let cap = Some(50 * USD);
    let mut g = AiGuard::default();
    let may = ms(2026, 5, 1, 0, 0, 0);
    // Day 10 of 31, $10 spent -> $31 projected: fine.
    assert!(g.evaluate(10 * USD, cap, may + 10 * 86_400_000).is_empty());
    assert!(!g.is_paused(may + 10 * 86_400_000));
    // Day 15.5, $26 spent -> $52 projected > $50: pause.
    let t = may + 31 * 43_200_000;
    let e = g.evaluate(26 * USD, cap, t);
    assert_eq!(rules(&e), vec![firing("ai_cost_projection")]);
    assert_eq!(e[0].action, "Pause AI; notify the shop owner");
    assert_eq!(e[0].value, 52_000_000.0);
    assert!(g.is_paused(t));
    assert_eq!(g.pause.as_ref().unwrap().reason, PauseReason::ProjectedOverCap);
    // The next daily check: still paused, no repeat.
    assert!(g.evaluate(27 * USD, cap, t + 86_400_000).is_empty());
    // Operator resumes: resolved; projections no longer pause it this month...
    let e = g.resume(27 * USD, cap, t + 86_400_000 + 1);
    assert_eq!(rules(&e), vec![resolved("ai_cost_projection")]);
    assert!(!g.is_paused(t + 86_400_000 + 2));
    assert!(g.evaluate(30 * USD, cap, t + 2 * 86_400_000).is_empty());
    assert!(!g.is_paused(t + 2 * 86_400_000));
    // ...but spend actually above the cap pauses again.
    let e = g.evaluate(51 * USD, cap, t + 3 * 86_400_000);
    assert_eq!(rules(&e), vec![firing("ai_cost_projection")]);
    assert_eq!(g.pause.as_ref().unwrap().reason, PauseReason::SpentOverCap);
    // Resumed above the cap: the overspend is accepted for the rest of the month.
    g.resume(51 * USD, cap, t + 3 * 86_400_000 + 1);
    assert!(g.evaluate(60 * USD, cap, t + 4 * 86_400_000).is_empty());
    assert!(!g.is_paused(t + 4 * 86_400_000));
    // Resume when not paused: nothing.
    assert!(g.resume(60 * USD, cap, t + 4 * 86_400_000).is_empty());
}

#[test]
fn ai_pause_ends_with_the_month() {
    let cap = Some(50 * USD);
    let mut g = AiGuard::default();
    // Spend over the cap on the first day: paused outright.
    let dec = ms(2026, 12, 1, 6, 0, 0);
    let e = g.evaluate(55 * USD, cap, dec);
    assert_eq!(rules(&e), vec![firing("ai_cost_projection")]);
    assert_eq!(g.pause.as_ref().unwrap().reason, PauseReason::SpentOverCap);
    assert!(g.is_paused(ms(2026, 12, 31, 23, 59, 59)));
    // The app's check is pure: the new month is unpaused before any evaluation.
    let jan = ms(2027, 1, 1, 0, 0, 0);
    assert!(!g.is_paused(jan));
    // The first check of January resolves the alert; modest spend does not pause again.
    let e = g.evaluate(USD, cap, jan + 6 * 3_600_000);
    assert_eq!(rules(&e), vec![resolved("ai_cost_projection")]);
    assert!(e[0].summary.contains("new month"));
    assert!(!g.is_paused(jan + 6 * 3_600_000));
    // One day in, $2 projects to $62 > $50: the projection pauses again.
    let e = g.evaluate(2 * USD, cap, jan + 86_400_000);
    assert_eq!(rules(&e), vec![firing("ai_cost_projection")]);
    // No cap: never pauses, and removing the cap resumes.
    let e = g.evaluate(2 * USD, None, jan + 86_400_000 + 1);
    assert_eq!(rules(&e), vec![resolved("ai_cost_projection")]);
    assert!(!g.is_paused(jan + 86_400_000 + 1));
}

// ---------------------------------------------------------------------------------------
// Invariants.
// ---------------------------------------------------------------------------------------

const EXPRS: [&str; 6] = ["0 7 * * *", "*/5 * * * *", "0 8 * * 1", "0 0 1 * *", "59 23 L * *", "10 7 * * mon-fri"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// prev <= t < next, both are slots, and nothing matches strictly between them.
    #[test]
    fn neighbours_bracket_any_time(i in 0usize..EXPRS.len(), t in ms(2025, 1, 1, 0, 0, 0)..ms(2030, 12, 31, 0, 0, 0)) {
        let s = Schedule::parse(EXPRS[i]).unwrap();
        let p = s.prev_at_or_before_ms(t).unwrap();
        let n = s.next_after_ms(t).unwrap();
        prop_assert!(p <= t && t < n);
        prop_assert!(s.is_slot(p) && s.is_slot(n));
        prop_assert_eq!(s.next_after_ms(p), Some(n));
        prop_assert_eq!(s.prev_before_ms(n), Some(p));
    }

    /// A start within the tolerances of a slot is attributed to a slot within them, never
    /// to a taken one, and never more than grace late or early tolerance early.
    #[test]
    fn attribution_stays_within_tolerances(i in 0usize..EXPRS.len(), t in ms(2025, 1, 1, 0, 0, 0)..ms(2030, 12, 31, 0, 0, 0), grace_s in 1i64..7200, taken_prev in any::<bool>()) {
        let s = Schedule::parse(EXPRS[i]).unwrap();
        let g = grace_s * 1000;
        let p = s.prev_at_or_before_ms(t).unwrap();
        let taken = |x: i64| taken_prev && x == p;
        match s.attribute(None, t, g, taken) {
            Some(m) => {
                prop_assert!(s.is_slot(m.slot_ms));
                prop_assert!(!taken(m.slot_ms));
                prop_assert_eq!(m.offset_ms, t - m.slot_ms);
                if m.offset_ms >= 0 {
                    prop_assert!(m.offset_ms <= g);
                } else {
                    prop_assert!(-m.offset_ms <= s.early_tolerance_ms(m.slot_ms, g));
                }
            }
            None => {
                let n = s.next_after_ms(t).unwrap();
                prop_assert!(taken(p) || t - p > g);
                prop_assert!(n - t > s.early_tolerance_ms(n, g));
            }
        }
    }

    /// Projections are never below the spend nor above 7x (week) / days-in-month x (month).
    #[test]
    fn projections_are_bounded(spent in 0u64..1_000_000_000_000, t in ms(2025, 1, 1, 0, 0, 0)..ms(2030, 12, 31, 0, 0, 0)) {
        let w = project_week(spent, t).unwrap();
        prop_assert!(w.projected_micros >= spent && w.projected_micros <= spent * 7);
        let m = project_month(spent, t).unwrap();
        prop_assert!(m.projected_micros >= spent && m.projected_micros <= spent * 31);
        prop_assert!(m.period_start_ms <= t && t < m.period_end_ms);
        prop_assert!(w.period_start_ms <= t && t < w.period_end_ms);
    }
}

// ---------------------------------------------------------------------------------------
// Real schedules (the sample app's, see examples/shop/wrangler.toml): the watchdog handles
// each across month and year ends.
// ---------------------------------------------------------------------------------------

const REAL_SCHEDULES: &str = r#"[
  {"cron": "daily_reconciliation", "schedule": "0 7 * * *", "grace_s": 1800, "max_runtime_s": 3600},
  {"cron": "weekly_twilio_summary", "schedule": "0 9 * * THU", "grace_s": 1800, "max_runtime_s": 900},
  {"cron": "daily_ai_check", "schedule": "30 6 * * *", "grace_s": 1800, "max_runtime_s": 900, "code": "ai"}
]"#;

#[test]
fn every_configured_schedule_runs_clean_and_a_skipped_slot_fires_once() {
    // Windows across a month end, a year end and a leap February.
    let windows =
        [(ms(2026, 12, 20, 0, 0, 0), ms(2027, 1, 20, 0, 0, 0)), (ms(2028, 2, 10, 0, 0, 0), ms(2028, 3, 10, 0, 0, 0))];
    let watch = WatchList::parse(REAL_SCHEDULES).expect("parses");
    for e in watch.entries() {
        let single = WatchList::from_entries(vec![e.clone()]);
        for (from, to) in windows {
            let mut sim = Sim::new(single.clone(), from);
            sim.run(&e.cron, from, to, &on_time);
            assert!(sim.events.is_empty(), "{}: {:?}", e.cron, sim.fired());
            assert!(sim.wd.crons[0].slots.len() >= 4, "{}: too few slots", e.cron);
            assert!(sim.wd.crons[0].slots.iter().all(|s| s.state == SlotState::EndedOk));

            // Skip the first slot after the 28th of the first month: fires at slot + grace,
            // the next run resolves it.
            let skipped = e.schedule.next_at_or_after_ms(from + 8 * 86_400_000).unwrap();
            let mut sim = Sim::new(single.clone(), from);
            sim.run(&e.cron, from, to, &move |s| {
                if s == skipped {
                    None
                } else {
                    on_time(s)
                }
            });
            let f = sim.fired();
            assert_eq!(f.len(), 2, "{}: {f:?}", e.cron);
            assert_eq!(
                (f[0].0, f[0].1.as_str(), f[0].2),
                (skipped + e.grace_ms(), "cron_missed", AlertState::Firing),
                "{}",
                e.cron
            );
            let next = e.schedule.next_after_ms(skipped).unwrap();
            assert_eq!((f[1].0, f[1].2), (next + 1_500 + 8_420, AlertState::Resolved), "{}", e.cron);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The shop driver (shop.rs): what ShopMonitorCore calls, with a fake clock.
// ---------------------------------------------------------------------------------------

fn cfg(json: &str, twilio: Option<u64>, ai: Option<u64>) -> CronConfig {
    CronConfig { watch: watch(json), twilio_weekly_budget_micros: twilio, ai_monthly_cap_micros: ai }
}

fn reconciliation_end(run_id: &str, at: i64, verified: bool, length: i64) -> CronCheckIn {
    let mut r = Results::new();
    r.int("sales_reconciled", 47)
        .int("low_stock_alerts", 3)
        .flag("audit_chain_verified", verified)
        .int("audit_chain_length", length);
    if !verified {
        r.int("audit_chain_first_broken_id", 12);
    }
    CronCheckIn {
        cron: "daily_reconciliation".into(),
        run_id: run_id.into(),
        scheduled_ms: at,
        kind: CheckInKind::End { ok: true, ms: 8_420, results: r, errors_count: 0 },
        at_ms: at + 8_420,
    }
}

fn record(id: &str, ts_ms: i64, twilio: u64, claude: u64) -> crate::record::RequestRecord {
    let mut r = crate::record::RequestRecord::start(
        chrono::DateTime::from_timestamp_millis(ts_ms).unwrap(),
        id.into(),
        "POST",
        "/api/ai/summarize",
        "v",
    );
    r.shop = Some("swicked".into());
    r.cost_micros = crate::record::CostMicros { twilio, claude };
    r
}

#[test]
fn a_broken_chain_in_an_end_check_in_fires_at_once_and_a_verified_one_resolves() {
    let c = cfg(r#"[{"cron":"daily_reconciliation","schedule":"0 7 * * *"}]"#, None, None);
    let mut p = CronPersisted::default();
    let d1 = ms(2026, 5, 10, 7, 0, 0);
    p.evaluate(&c, d1 - 3_600_000);
    let o = p.check_in(&c, &reconciliation_end("cron_d_2026_05_10", d1, true, 18_437), d1 + 8_420);
    assert!(o.events.is_empty(), "{:?}", o.events);
    assert_eq!(o.effect, CheckInEffect::Recorded { slot_ms: Some(d1) });
    let d2 = d1 + 86_400_000;
    let end = reconciliation_end("cron_d_2026_05_11", d2, false, 18_440);
    let o = p.check_in(&c, &end, d2 + 8_420);
    assert_eq!(rules(&o.events), vec![firing("audit_chain_broken")]);
    let e = &o.events[0];
    assert_eq!(e.severity, Severity::High);
    assert_eq!(e.action, "Investigate immediately; don't deploy until resolved");
    assert_eq!(e.run_id.as_deref(), Some("cron_d_2026_05_11"));
    assert!(e.summary.contains("row 12"), "{}", e.summary);
    // The same End delivered twice (at-least-once) decides nothing new.
    let again = p.check_in(&c, &end, d2 + 9_000);
    assert_eq!(again.effect, CheckInEffect::Duplicate);
    assert!(again.events.is_empty());
    let s = p.status(&c, d2 + 10_000);
    assert!(s.audit_chain.broken);
    assert_eq!(s.audit_chain.last_verified_length, Some(18_437));
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["crons"][0]["last_run"]["results"]["audit_chain_verified"], false);
    assert_eq!(v["crons"][0]["last_end_at"], "2026-05-11T07:00:08.420Z");
    // The next day verifies again: resolved.
    let d3 = d2 + 86_400_000;
    let o = p.check_in(&c, &reconciliation_end("cron_d_2026_05_12", d3, true, 18_441), d3 + 8_420);
    assert_eq!(rules(&o.events), vec![resolved("audit_chain_broken")]);
    assert_eq!(o.events[0].since_ms, d2 + 8_420);
}

#[test]
fn ai_spend_over_the_cap_pauses_until_the_operator_resumes() {
    let c = cfg("[]", None, Some(5_000_000));
    let mut p = CronPersisted::default();
    let t = ms(2026, 5, 20, 6, 30, 0);
    // $4 spent by May 20 06:30 (19.27 of 31 days) projects to $6.43 for May: over the $5 cap.
    assert_eq!(p.record_spend(&[record("req_a", t - 86_400_000, 0, 4_000_000)]), 1);
    assert_eq!(p.record_spend(&[record("req_a", t - 86_400_000, 0, 4_000_000)]), 0, "retried batch");
    assert!(!p.ai_paused(t));
    assert_eq!(p.ai_resume(&c, t), Err(ResumeError::NotPaused));
    let (r, events) = p.ai_check(&c, t);
    assert_eq!(rules(&events), vec![firing("ai_cost_projection")]);
    assert_eq!(events[0].severity, Severity::High);
    assert_eq!(r.get_i64("ai_spent_month_micros"), Some(4_000_000));
    assert_eq!(r.get_i64("ai_projected_month_micros"), Some(6_434_594));
    assert_eq!(r.get_i64("ai_monthly_cap_micros"), Some(5_000_000));
    assert_eq!(r.get_bool("ai_paused"), Some(true));
    assert!(p.ai_paused(t + 1));
    let s = serde_json::to_value(p.status(&c, t + 1)).unwrap();
    assert_eq!(s["costs"]["ai"]["paused"], true);
    assert_eq!(s["costs"]["ai"]["month"]["spent_micros"], 4_000_000);
    assert_eq!(s["costs"]["ai"]["pause"]["reason"], "projected_over_cap");
    // The next daily check does not fire again while paused.
    assert!(p.ai_check(&c, t + 86_400_000).1.is_empty());
    let events = p.ai_resume(&c, t + 86_400_001).unwrap();
    assert_eq!(rules(&events), vec![resolved("ai_cost_projection")]);
    assert!(!p.ai_paused(t + 86_400_002));
    // Next month starts unpaused and at zero spend.
    assert_eq!(
        serde_json::to_value(p.status(&c, ms(2026, 6, 1, 0, 0, 1))).unwrap()["costs"]["ai"]["month"]["spent_micros"],
        0
    );
}

#[test]
fn spend_past_the_cap_pauses_ai_as_it_happens_and_the_daily_check_does_not_fire_again() {
    let c = cfg("[]", None, Some(1_000_000));
    let mut p = CronPersisted::default();
    let t = ms(2026, 5, 20, 12, 0, 0);
    // $0.50 then $1.00: at the cap, not past it.
    p.record_spend(&[record("req_a", t, 0, 500_000)]);
    assert!(p.ai_spend_check(&c, t).is_empty());
    p.record_spend(&[record("req_b", t + 1_000, 0, 500_000)]);
    assert!(p.ai_spend_check(&c, t + 1_000).is_empty(), "exactly the cap is not past it");
    assert!(!p.ai_paused(t + 1_000));
    // The record that crosses it pauses AI in the same call, with the spend as the value.
    p.record_spend(&[record("req_c", t + 2_000, 0, 500_000)]);
    let e = p.ai_spend_check(&c, t + 2_000);
    assert_eq!(rules(&e), vec![firing("ai_cost_projection")]);
    assert_eq!((e[0].value, e[0].threshold, e[0].since_ms), (1_500_000.0, 1_000_000.0, t + 2_000));
    assert!(e[0].summary.starts_with("AI paused: spend this month $1.50 already exceeds the $1.00 monthly cap"));
    assert!(p.ai_paused(t + 2_000));
    assert_eq!(p.ai.pause.as_ref().unwrap().reason, PauseReason::SpentOverCap);
    // More spend and the daily check: already paused, nothing fires twice.
    assert!(p.ai_spend_check(&c, t + 3_000).is_empty());
    let (r, events) = p.ai_check(&c, t + 4_000);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(r.get_bool("ai_paused"), Some(true));
    // Resumed above the cap: the overspend is accepted; more spend does not pause again.
    p.ai_resume(&c, t + 5_000).unwrap();
    p.record_spend(&[record("req_d", t + 6_000, 0, 500_000)]);
    assert!(p.ai_spend_check(&c, t + 6_000).is_empty());
    // No cap: never.
    let mut q = CronPersisted::default();
    q.record_spend(&[record("req_e", t, 0, 9_000_000)]);
    assert!(q.ai_spend_check(&cfg("[]", None, None), t).is_empty());
    // A pause of last month is resolved before this month's.
    let mut m = CronPersisted::default();
    m.record_spend(&[record("req_f", ms(2026, 4, 30, 12, 0, 0), 0, 2_000_000)]);
    assert_eq!(rules(&m.ai_spend_check(&c, ms(2026, 4, 30, 12, 0, 0))), vec![firing("ai_cost_projection")]);
    m.record_spend(&[record("req_g", ms(2026, 5, 2, 12, 0, 0), 0, 2_000_000)]);
    let e = m.ai_spend_check(&c, ms(2026, 5, 2, 12, 0, 0));
    assert_eq!(rules(&e), vec![resolved("ai_cost_projection"), firing("ai_cost_projection")]);
}

#[test]
fn weekly_twilio_summary_fires_over_150_percent_of_the_budget() {
    let c = cfg("[]", Some(10_000_000), None);
    let mut p = CronPersisted::default();
    // Thursday 2026-05-14 09:00: 3.375 days into the ISO week.
    let thu = ms(2026, 5, 14, 9, 0, 0);
    p.record_spend(&[record("req_s1", thu - 3_600_000, 7_000_000, 0)]);
    // $7 in 3.375 days projects to $14.51: 145%, under the 150% threshold.
    let (r, events) = p.twilio_summary(&c, thu);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(r.get_i64("twilio_projected_week_micros"), Some(14_518_518));
    assert_eq!(r.get_bool("twilio_projection_firing"), Some(false));
    p.record_spend(&[record("req_s2", thu - 60_000, 500_000, 0)]);
    let (r, events) = p.twilio_summary(&c, thu);
    assert_eq!(rules(&events), vec![firing("twilio_cost_projection")]);
    assert_eq!(events[0].severity, Severity::Warning);
    assert_eq!(events[0].action, "Contact the owner about SMS volume");
    assert_eq!(r.get_bool("twilio_projection_firing"), Some(true));
    let s = serde_json::to_value(p.status(&c, thu)).unwrap();
    assert_eq!(s["costs"]["twilio"]["firing"], true);
    assert_eq!(s["costs"]["twilio"]["fire_threshold_micros"], 15_000_000);
    assert_eq!(s["costs"]["twilio"]["week"]["spent_micros"], 7_500_000);
}

#[test]
fn cron_config_from_vars_reports_each_problem() {
    let (c, errors) = CronConfig::from_vars(None, Some("12000000"), Some(""));
    assert!(errors.is_empty());
    assert_eq!(c.twilio_weekly_budget_micros, Some(12_000_000));
    assert_eq!(c.ai_monthly_cap_micros, None);
    assert!(c.watch.is_empty(), "no CRON_WATCH watches nothing");
    let (c, errors) = CronConfig::from_vars(Some("[{"), Some("$12"), Some("-1"));
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].starts_with("CRON_WATCH is not valid JSON"), "{}", errors[0]);
    assert!(errors[1].starts_with("TWILIO_WEEKLY_BUDGET_MICROS must be a whole number"));
    assert!(errors[2].starts_with("AI_MONTHLY_CAP_MICROS must be a whole number"));
    assert!(c.watch.is_empty(), "an invalid CRON_WATCH watches nothing (and says so)");
    assert!(errors[0].ends_with("nothing is watched until it is fixed"), "{}", errors[0]);
    assert_eq!((c.twilio_weekly_budget_micros, c.ai_monthly_cap_micros), (None, None));
}

#[test]
fn persisted_state_with_spend_round_trips_and_old_documents_still_load() {
    let c = cfg(r#"[{"cron":"daily_reconciliation","schedule":"0 7 * * *"}]"#, None, Some(1));
    let mut p = CronPersisted::default();
    let t = ms(2026, 5, 10, 6, 0, 0);
    p.evaluate(&c, t);
    p.record_spend(&[record("req_x", t, 7_900, 12_000)]);
    p.ai_check(&c, t);
    let json = serde_json::to_string(&p).unwrap();
    let back: CronPersisted = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
    // A document written before the spend ledger existed.
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v.as_object_mut().unwrap().remove("spend");
    let old: CronPersisted = serde_json::from_value(v).unwrap();
    assert_eq!(old.spend, SpendLedger::default());
}

#[test]
fn an_early_evaluation_keeps_the_lag_of_the_last_due_one() {
    let w = daily();
    let mut wd = Watchdog::new();
    wd.evaluate(&w, ms(2026, 5, 9, 12, 0, 0));
    // Due at 07:30; the alarm wakes 5 minutes late.
    let o = wd.evaluate(&w, ms(2026, 5, 10, 7, 35, 0));
    assert_eq!(o.lag_s, 300);
    assert!(wd.status(&w, ms(2026, 5, 10, 7, 35, 0)).lagging);
    // The object evaluates again at once (loaded for a request): the lag stays reported.
    let o = wd.evaluate(&w, ms(2026, 5, 10, 7, 35, 0));
    assert_eq!(o.lag_s, 0);
    let s = wd.status(&w, ms(2026, 5, 10, 7, 35, 1));
    assert_eq!((s.lag_s, s.lagging), (300, true));
    // The next due evaluation on time clears it.
    let next = wd.next_due_ms(&w).unwrap();
    wd.evaluate(&w, next);
    let s = wd.status(&w, next);
    assert_eq!((s.lag_s, s.lagging), (0, false));
}
