//! The shop monitor core driven like the Durable Object drives it, with a fake clock: restore
//! from stored parts, ingest, alarm ticks at `next_due_ms`, deliveries, the status document,
//! AI pause/resume and cost jobs, and which stored parts each call changes.

use chrono::DateTime;
use serde_json::json;

use super::*;
use crate::cron::CronCheckIn;
use crate::monitor::Channel;
use crate::record::{CostMicros, RequestRecord};

/// 2026-05-09T12:00:00Z
const T0: i64 = 1_778_328_000_000;
/// 2026-05-10T07:00:00Z, the first slot of the daily cron after T0.
const SLOT: i64 = 1_778_396_400_000;
/// The slot plus the default 30 min grace: when `cron_missed` fires.
const MISSED_AT: i64 = SLOT + 1_800_000;
const DAILY: &str = r#"[{"cron":"daily_reconciliation","schedule":"0 7 * * *"}]"#;

fn config(cron_watch: Option<&str>, ai_cap: Option<&str>) -> ShopMonitorConfig {
    let vars = ShopVars { cron_watch, ai_monthly_cap_micros: ai_cap, ..ShopVars::default() };
    ShopMonitorConfig::from_vars(vars, vec![Channel::Webhook])
}

/// A freshly loaded core (nothing stored) with everything marked stored.
fn loaded(config: ShopMonitorConfig, now_ms: i64) -> ShopMonitorCore {
    let (mut core, outcome) = ShopMonitorCore::restore(config, "swicked", StoredParts::default(), now_ms);
    assert_eq!(outcome, RestoreOutcome::default());
    store(&mut core, now_ms);
    core
}

/// What the Durable Object's store step does: write what changed, mark it written. Returns
/// which parts were written: (buckets, snapshot, cron).
fn store(core: &mut ShopMonitorCore, now_ms: i64) -> (usize, bool, bool) {
    let plan = core.persist_plan(now_ms);
    let done = Persisted {
        rows: plan.rows.iter().map(|(k, _)| *k).collect(),
        deleted_before_ms: plan.delete_before_ms,
        strings: plan.strings.is_some(),
        snapshot: plan.snapshot.is_some(),
        cron: plan.cron.is_some(),
        settings: plan.settings.is_some(),
        alerting: plan.alerting.is_some(),
    };
    core.persisted(&done);
    let history: Vec<_> = core.history_chunks().iter().map(|c| (c.kind, c.idx)).collect();
    core.mark_history_persisted(&history);
    (done.rows.len(), done.snapshot, done.cron)
}

fn record(id: &str, ts_ms: i64, claude_micros: u64) -> RequestRecord {
    let mut r = RequestRecord::start(DateTime::from_timestamp_millis(ts_ms).unwrap(), id.into(), "GET", "/", "0.1.0");
    r.shop = Some("swicked".into());
    r.status = 200;
    r.ms = 12.0;
    r.cost_micros = CostMicros { twilio: 0, claude: claude_micros };
    r
}

fn batch(records: Vec<RequestRecord>, check_ins: Vec<CronCheckIn>) -> Parsed {
    Parsed { records, partials: Vec::new(), check_ins, rejected: Vec::new() }
}

fn start(at_ms: i64) -> CronCheckIn {
    CronCheckIn {
        cron: "daily_reconciliation".into(),
        run_id: "cron_d_2026_05_10".into(),
        scheduled_ms: SLOT,
        kind: CheckInKind::Start,
        at_ms,
    }
}

fn kinds(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(|l| serde_json::to_value(l).unwrap()["kind"].as_str().unwrap().to_string()).collect()
}

#[test]
fn restore_logs_bad_vars_and_unreadable_parts_and_starts_fresh() {
    let vars = ShopVars {
        alert_rules: Some("{"),
        cron_watch: Some("[{"),
        twilio_weekly_budget_micros: Some("$12"),
        ai_monthly_cap_micros: None,
        ..ShopVars::default()
    };
    let cfg = ShopMonitorConfig::from_vars(vars, vec![Channel::Webhook]);
    assert_eq!(cfg.monitor.rules, RuleSet::default(), "the default rules are in force");
    let buckets = vec!["not a bucket".to_string()];
    let rows = vec![(T0, vec![2u8, 0xff])];
    let stored = StoredParts {
        snapshot: Some("not json"),
        rows: &rows,
        strings: None,
        buckets: &buckets,
        cron: Some(r#"{"watchdog":5}"#),
        handed_over: None,
        ..StoredParts::default()
    };
    let (mut core, outcome) = ShopMonitorCore::restore(cfg, "swicked", stored, T0);
    assert_eq!(
        kinds(&outcome.lines),
        ["config_error", "monitor_restore_error", "config_error", "config_error", "monitor_restore_error"]
    );
    let lines: Vec<serde_json::Value> =
        outcome.lines.iter().map(|l| serde_json::from_str(&l.to_line()).unwrap()).collect();
    assert_eq!(
        lines[0],
        json!({"kind": "config_error", "shop": "swicked", "var": "ALERT_RULES",
               "error": "ALERT_RULES rejected, defaults in force: ALERT_RULES is not valid JSON: EOF while parsing an object at line 1 column 1"})
    );
    assert_eq!(lines[1]["shop"], "swicked");
    assert!(lines[1].get("part").is_none() && lines[1].get("at_ms").is_none(), "{}", lines[1]);
    assert!(lines[2]["error"].as_str().unwrap().starts_with("CRON_WATCH is not valid JSON"), "{}", lines[2]);
    assert!(lines[2].get("var").is_none());
    assert_eq!((&lines[4]["part"], &lines[4]["at_ms"]), (&json!("cron"), &json!(T0)));
    assert!(outcome.delete_buckets.is_empty(), "unreadable rows are ignored, not deleted");
    assert_eq!(core.alert_rules_error(), Some(lines[0]["error"].as_str().unwrap()));
    assert_eq!(core.status(T0).cron_config_errors.len(), 2);
    // Everything is written at load, then nothing until something changes.
    assert_eq!(store(&mut core, T0), (0, true, true));
    assert_eq!(store(&mut core, T0), (0, false, false));
}

#[test]
fn restore_round_trips_the_stored_parts_and_lists_buckets_to_delete() {
    let mut core = loaded(config(Some(DAILY), Some("5000000")), T0);
    let records: Vec<_> = (0..5).map(|i| record(&format!("req_{i}"), T0 + i * 1000, 1_000)).collect();
    core.ingest(batch(records, vec![]), T0 + 5_000);
    core.tick(T0 + 20_000);
    let plan = core.persist_plan(T0 + 20_000);
    assert_eq!(plan.rows.len(), 1);
    let mut rows: Vec<(i64, Vec<u8>)> = plan.rows.iter().map(|(k, row)| (k.start_ms, row.clone())).collect();
    // A row of another width (the configuration changed) is listed for deletion.
    let mut other_width = core.dirty_closed_buckets(T0 + 20_000).remove(0);
    other_width.bucket_s = 5;
    other_width.start_ms = T0 + 5_000;
    rows.push((T0 + 5_000, other_width.encode(&mut StringTable::default())));
    let snapshot = plan.snapshot.expect("a closed bucket brings the snapshot");
    let cron = plan.cron.expect("spend was counted");
    let strings = plan.strings;

    let stored = StoredParts {
        snapshot: Some(&snapshot),
        rows: &rows,
        strings: strings.as_deref(),
        buckets: &[],
        cron: Some(&cron),
        handed_over: None,
        ..StoredParts::default()
    };
    let cfg = config(Some(DAILY), Some("5000000"));
    let (back, outcome) = ShopMonitorCore::restore(cfg, "swicked", stored, T0 + 20_000);
    assert!(outcome.lines.is_empty(), "{:?}", outcome.lines);
    assert_eq!(outcome.delete_buckets, vec![T0 + 5_000], "the bucket of another width goes");
    assert_eq!(back.monitor().counters(), core.monitor().counters());
    assert_eq!(back.cron_state().spend, core.cron_state().spend);
    let (a, b) = (
        serde_json::to_value(back.status(T0 + 20_000)).unwrap(),
        serde_json::to_value(core.status(T0 + 20_000)).unwrap(),
    );
    assert_eq!(a["windows"], b["windows"]);
    assert_eq!(a["costs"], b["costs"]);
}

#[test]
fn ingest_takes_records_and_check_ins_and_changes_the_cron_state_only_when_it_must() {
    let mut core = loaded(config(Some(DAILY), None), T0);
    // Request traffic alone writes nothing while its bucket is open (the snapshot is written
    // only when something was decided, or beside the bucket row when the bucket closes).
    let o = core.ingest(batch(vec![record("req_a", T0, 0), record("req_b", T0, 0)], vec![]), T0 + 1);
    assert_eq!((o.report.accepted, o.cron_changed), (2, false));
    assert!(o.lines.is_empty());
    assert_eq!(store(&mut core, T0 + 1), (0, false, false));
    // Spend to count: the cron state changes; the same batch again (a retry) does not.
    let costly = || batch(vec![record("req_c", T0, 4_000)], vec![]);
    assert!(core.ingest(costly(), T0 + 2).cron_changed);
    assert_eq!(store(&mut core, T0 + 2), (0, false, true));
    assert!(!core.ingest(costly(), T0 + 3).cron_changed);
    assert_eq!(store(&mut core, T0 + 3), (0, false, false));
    // The bucket closes: its row, with the snapshot (the counters it moved).
    assert_eq!(store(&mut core, T0 + 10_000), (1, true, false));
    assert_eq!(store(&mut core, T0 + 10_000), (0, false, false));
    // A check-in: the watchdog's effect is answered and logged.
    let o = core.ingest(batch(vec![], vec![start(SLOT + 1_000)]), SLOT + 1_000);
    assert!(o.cron_changed);
    assert_eq!(o.check_ins, vec![CheckInEffect::Recorded { slot_ms: Some(SLOT) }]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&o.lines[0].to_line()).unwrap(),
        json!({"kind": "cron_check_in", "shop": "swicked", "cron": "daily_reconciliation",
               "run_id": "cron_d_2026_05_10", "type": "start", "effect": {"effect": "recorded", "slot_ms": SLOT}})
    );
    assert_eq!(store(&mut core, SLOT + 1_000), (0, false, true));
}

#[test]
fn rejected_items_are_logged_and_answered() {
    let mut core = loaded(config(None, None), T0);
    let rejected: Vec<Rejection> =
        (0..4).map(|index| Rejection { list: "records", index, reason: "not a request record".into() }).collect();
    let o = core
        .ingest(Parsed { records: vec![record("req_a", T0, 0)], partials: vec![], check_ins: vec![], rejected }, T0);
    let line = serde_json::to_value(&o.lines[0]).unwrap();
    assert_eq!(
        (&line["kind"], &line["rejected"], &line["accepted"]),
        (&json!("monitor_ingest_rejected"), &json!(4), &json!(1))
    );
    assert_eq!(line["first"].as_array().unwrap().len(), 3);
    // The route's answer: report, check-in effects and the rejected items, nothing else.
    let answer = serde_json::to_value(&o).unwrap();
    let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["check_ins", "rejected", "report"]);
    assert_eq!(answer["report"]["accepted"], 1);
    assert_eq!(answer["rejected"][3]["index"], 3);
}

#[test]
fn the_alarm_is_the_earliest_due_time_of_the_monitor_and_the_watchdog() {
    let mut core = loaded(config(Some(DAILY), None), T0);
    core.enable_fleet();
    let watchdog_due = core.cron_state().next_due_ms(core.cron_config()).expect("a watched cron");
    assert_eq!(watchdog_due, MISSED_AT);
    // Idle monitor: the watchdog's due time alone.
    assert_eq!(core.monitor().next_due_ms(T0), None);
    assert_eq!(core.next_due_ms(T0), Some(watchdog_due));
    // New records: the monitor wants an evaluation now.
    core.ingest(batch(vec![record("req_a", T0, 0)], vec![]), T0);
    assert_eq!(core.next_due_ms(T0), Some(T0));
    core.tick(T0);
    // After its tick the Durable Object pushes the shop's summary to the fleet board.
    assert!(core.board_summary(T0).is_some());
    core.summary_sent(true);
    let monitor_due = core.monitor().next_due_ms(T0).expect("the open bucket must close and be stored");
    assert!(monitor_due < watchdog_due);
    assert_eq!(core.next_due_ms(T0), Some(monitor_due));
    // A watchdog due time already past means now.
    let late = MISSED_AT + 3_600_000;
    let mut idle = loaded(config(Some(DAILY), None), T0);
    assert_eq!(idle.next_due_ms(late), Some(late));
    // Nothing watched, nothing ingested: no alarm.
    idle = loaded(config(None, None), T0);
    assert_eq!(idle.next_due_ms(T0), None);
}

#[test]
fn ticks_at_next_due_run_the_watchdog_only_when_due_and_deliver_its_alerts() {
    let mut core = loaded(config(Some(DAILY), None), T0);
    // An alarm for the monitor alone (before the watchdog's due time) leaves the cron state,
    // and, deciding nothing, the snapshot.
    let early = core.tick(T0 + 3_600_000);
    assert!(!early.watchdog_ran);
    assert!(early.lines.is_empty());
    assert_eq!(store(&mut core, T0 + 3_600_000), (0, false, false));
    // Step the fake clock from alarm to alarm: the missed slot fires exactly at its deadline.
    let now = core.next_due_ms(T0 + 3_600_000).unwrap();
    assert_eq!(now, MISSED_AT);
    let t = core.tick(now);
    assert!(t.watchdog_ran);
    assert_eq!(t.watchdog_lag_s, 0);
    assert_eq!(kinds(&t.lines), ["cron_alert"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&t.lines[0].to_line()).unwrap(),
        json!({"kind": "cron_alert", "shop": "swicked", "rule": "cron_missed", "state": "firing",
               "cron": "daily_reconciliation", "run_id": "cron_d_2026_05_10", "severity": "critical",
               "dedup_key": format!("swicked:cron_missed:daily_reconciliation:{MISSED_AT}"),
               "summary": serde_json::to_value(&t.lines[0]).unwrap()["summary"], "queued": 1})
    );
    assert_eq!(store(&mut core, now), (0, true, true));
    // The event went to the monitor's outbox: claim, fail once, retry later.
    let due = core.claim_due_deliveries(now);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].notification.rule, "cron_missed");
    let lines = core.record_deliveries(&[(due[0].id, Err("webhook answered 503".into()))], now + 100);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&lines[0].to_line()).unwrap(),
        json!({"kind": "alert_delivery_failed", "shop": "swicked", "delivery": due[0].id, "error": "webhook answered 503"})
    );
    let retry = core.next_due_ms(now + 100).unwrap();
    assert!(retry > now + 100 && retry < now + 60_000, "the outbox's backoff, not the next slot: {retry}");
    let again = core.claim_due_deliveries(retry);
    assert_eq!(again.len(), 1);
    assert!(core.record_deliveries(&[(again[0].id, Ok(()))], retry).is_empty());
    assert_eq!(core.monitor().outbox().sent_total, 1);
    // The next day's alarm wakes five minutes late: the lag is logged (and nothing pages).
    let next = core.next_due_ms(retry).unwrap();
    assert_eq!(next, MISSED_AT + 86_400_000);
    let t = core.tick(next + 300_000);
    assert_eq!((t.watchdog_ran, t.watchdog_lag_s), (true, 300));
    assert_eq!(
        serde_json::to_value(&t.lines).unwrap(),
        json!([{"kind": "cron_watchdog_lag", "shop": "swicked", "lag_s": 300}])
    );
}

#[test]
fn rule_state_changes_are_logged_by_the_tick() {
    let alert_rules = r#"{"bucket_s":1,"http_5xx_rate":{"window_s":5,"for_s":0,"min_requests":1}}"#;
    let vars = ShopVars { alert_rules: Some(alert_rules), ..ShopVars::default() };
    let mut core = loaded(ShopMonitorConfig::from_vars(vars, vec![Channel::Webhook]), T0);
    let mut r = record("req_err", T0, 0);
    r.status = 503;
    core.ingest(batch(vec![r], vec![]), T0);
    let t = core.tick(T0 + 1);
    assert!(!t.watchdog_ran);
    assert_eq!(t.evaluation.changes.len(), 1);
    let line = serde_json::to_value(&t.lines[0]).unwrap();
    assert_eq!((&line["kind"], &line["shop"]), (&json!("alert_state_change"), &json!("swicked")));
    assert_eq!((&line["change"]["rule"], &line["change"]["to"]), (&json!("http_5xx_rate"), &json!("firing")));
    assert_eq!(core.claim_due_deliveries(T0 + 1).len(), 1);
}

#[test]
fn status_is_the_monitor_and_cron_documents_merged() {
    let mut core = loaded(config(Some(DAILY), None), T0);
    core.ingest(batch(vec![record("req_a", T0, 0)], vec![]), T0);
    let now = T0 + 5_000;
    let v = serde_json::to_value(core.status(now)).unwrap();
    // What the Durable Object merged by hand before: the monitor's object, extended by the
    // cron side's, plus the cron config errors.
    let mut expected = serde_json::to_value(core.monitor().status(now)).unwrap();
    let cron = serde_json::to_value(core.cron_state().status(core.cron_config(), now)).unwrap();
    let obj = expected.as_object_mut().unwrap();
    obj.extend(cron.as_object().unwrap().clone());
    obj.insert("cron_config_errors".into(), json!([]));
    // Plus the alerting parts (settings in force, silences, acks, held notifications, the
    // fleet link), under keys of their own.
    for key in ["config", "silences", "acks", "notifications_held", "fleet", "stalled_since"] {
        assert!(obj.get(key).is_none(), "{key} would hide a monitor or cron field");
        obj.insert(key.into(), v[key].clone());
    }
    assert_eq!(v, expected);
    for key in ["shop", "rules", "outbox", "counters", "watchdog", "crons", "audit_chain", "costs"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    for edge_only in ["config_error", "alarm_armed_at_ms", "last_alarm_lag_ms", "storage_bytes"] {
        assert!(v.get(edge_only).is_none(), "{edge_only} is the Durable Object's");
    }
    assert_eq!(v["crons"][0]["cron"], "daily_reconciliation");
}

#[test]
fn ai_pause_resume_and_cost_jobs() {
    // 2026-05-20 06:30: $4 spent this month projects over a $5 cap.
    let t = 1_779_258_600_000;
    let mut core = loaded(config(None, Some("5000000")), t);
    assert!(core.ingest(batch(vec![record("req_a", t - 86_400_000, 4_000_000)], vec![]), t).cron_changed);
    store(&mut core, t);
    let not_paused = json!({"paused": false, "since_ms": null, "reason": null});
    assert_eq!(serde_json::to_value(core.ai_pause(t)).unwrap(), not_paused);
    assert_eq!(core.ai_resume(t), Err(ResumeError::NotPaused));
    assert_eq!(store(&mut core, t), (0, false, false), "a refused resume changes nothing");

    let job = core.cost_job(CostJob::AiCheck, t);
    assert_eq!(job.results.get_bool("ai_paused"), Some(true));
    assert_eq!(kinds(&job.lines), ["cron_alert"]);
    let answer = serde_json::to_value(&job).unwrap();
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["results"]["ai_spent_month_micros"], 4_000_000);
    assert_eq!(store(&mut core, t), (0, true, true));
    assert_eq!(
        serde_json::to_value(core.ai_pause(t + 1)).unwrap(),
        json!({"paused": true, "since_ms": t, "reason": "projected_over_cap"})
    );

    let lines = core.ai_resume(t + 86_400_000).unwrap();
    assert_eq!(kinds(&lines), ["cron_alert", "ai_resumed"]);
    assert_eq!(serde_json::to_value(&lines[0]).unwrap()["state"], "resolved");
    assert_eq!(lines[1].to_line(), r#"{"kind":"ai_resumed","shop":"swicked"}"#);
    assert_eq!(store(&mut core, t + 86_400_000), (0, true, true));
    assert_eq!(serde_json::to_value(core.ai_pause(t + 86_400_001)).unwrap(), not_paused);
    // Both alerts went to the outbox.
    assert_eq!(core.claim_due_deliveries(t + 86_400_001).len(), 2);

    let twilio = core.cost_job(CostJob::TwilioSummary, t);
    assert!(twilio.lines.is_empty());
    assert_eq!(twilio.results.get_i64("twilio_spent_week_micros"), Some(0));
    assert!(store(&mut core, t).2, "a cost job always updates its watch");
}

/// `records` folded by an isolate into partial buckets, as parse_batch hands them over.
fn partials(records: &[RequestRecord], isolate: &str) -> Vec<crate::partial::Partial> {
    let mut acc = crate::partial::PartialAccumulator::default();
    records.iter().for_each(|r| acc.fold(r));
    let mut n = 0;
    acc.take("swicked", || {
        n += 1;
        format!("{isolate}-{n}")
    })
    .into_iter()
    .map(|p| p.check("swicked").expect("valid"))
    .collect()
}

#[test]
fn partial_spend_is_counted_once_by_its_record_time_even_after_an_eviction() {
    let mut core = loaded(config(Some(DAILY), Some("5000000")), T0);
    let records: Vec<RequestRecord> =
        (0..4).map(|i| record(&format!("req_00000000000{i}"), T0 + i * 400, 250_000)).collect();
    let batch =
        || Parsed { records: vec![], partials: partials(&records, "isoa"), check_ins: vec![], rejected: vec![] };
    let o = core.ingest(batch(), T0 + 2_000);
    assert_eq!((o.report.accepted, o.report.partials, o.cron_changed), (4, 2, true));
    assert_eq!(core.cron_state().spend.claude_month_micros(T0), 1_000_000);
    // Sent again (the answer was lost): nothing counted twice.
    let o = core.ingest(batch(), T0 + 2_100);
    assert_eq!((o.report.accepted, o.report.duplicate_partials, o.cron_changed), (0, 2, false));
    // Evicted and loaded from storage, then the retry arrives: the spend ledger (stored)
    // still knows the partials.
    let plan = core.persist_plan(T0 + 2_200);
    let cron = plan.cron.expect("spend changed the cron state");
    let stored = StoredParts { cron: Some(&cron), ..StoredParts::default() };
    let (mut back, _) = ShopMonitorCore::restore(config(Some(DAILY), Some("5000000")), "swicked", stored, T0 + 3_000);
    assert!(!back.ingest(batch(), T0 + 3_000).cron_changed);
    assert_eq!(back.cron_state().spend.claude_month_micros(T0), 1_000_000);
}

#[test]
fn a_tick_writes_the_snapshot_only_when_it_decided_something() {
    let rules = r#"{"bucket_s":1,"http_5xx_rate":{"window_s":5,"for_s":0,"min_requests":5,"keep_firing_for_s":3}}"#;
    let cfg = || ShopMonitorConfig::from_vars(ShopVars { alert_rules: Some(rules), ..ShopVars::default() }, vec![]);
    let mut core = loaded(cfg(), T0);
    let mut failing: Vec<RequestRecord> = (0..10).map(|i| record(&format!("req_a{i:011}"), T0 + i, 0)).collect();
    failing.iter_mut().for_each(|r| r.status = 503);
    core.ingest(batch(failing, vec![]), T0 + 100);
    core.tick(T0 + 100);
    assert_eq!(store(&mut core, T0 + 100), (0, true, false), "it fired: written");
    core.tick(T0 + 200);
    assert_eq!(store(&mut core, T0 + 200), (0, false, false), "nothing new: nothing written");
    // Calm traffic: the alert starts its resolve hold (a timer, no state change yet): written,
    // so an eviction cannot restart the hold.
    let calm: Vec<RequestRecord> = (0..200).map(|i| record(&format!("req_b{i:011}"), T0 + 6_000 + i, 0)).collect();
    core.ingest(batch(calm, vec![]), T0 + 6_500);
    let t = core.tick(T0 + 6_500);
    assert!(t.evaluation.changes.is_empty());
    assert!(store(&mut core, T0 + 6_500).1);
    core.tick(T0 + 6_600);
    assert!(!store(&mut core, T0 + 6_600).1);
}

#[test]
fn a_hand_over_after_a_panic_keeps_the_open_bucket_and_the_counters() {
    let mut core = loaded(config(Some(DAILY), Some("5000000")), T0);
    // A closed, stored bucket; then records in the open one, nothing stored since.
    core.ingest(batch(vec![record("req_000000000001", T0, 0)], vec![]), T0 + 100);
    store(&mut core, T0 + 10_000);
    let open: Vec<RequestRecord> =
        (0..5).map(|i| record(&format!("req_00000000010{i}"), T0 + 10_000 + i, 100_000)).collect();
    let o = core.ingest(Parsed { partials: partials(&open, "isob"), ..Parsed::default() }, T0 + 10_500);
    assert_eq!(o.report.accepted, 5);
    let stored_rows: Vec<(i64, Vec<u8>)> = vec![];
    let handed = core.hand_over();
    // The next wasm instance loads from storage (here: nothing but the first row's absence
    // does not matter) plus the hand-over.
    let stored = StoredParts { rows: &stored_rows, handed_over: Some(&handed), ..StoredParts::default() };
    let (mut back, outcome) =
        ShopMonitorCore::restore(config(Some(DAILY), Some("5000000")), "swicked", stored, T0 + 10_600);
    assert!(outcome.lines.is_empty(), "{:?}", outcome.lines);
    assert_eq!(back.monitor().counters().accepted_records, 6);
    assert_eq!(back.status(T0 + 10_600).monitor.windows.last().unwrap().requests, 5, "the open bucket survived");
    assert_eq!(back.cron_state().spend.claude_month_micros(T0), 500_000);
    // What came back is written at the next store (the open bucket when it closes).
    assert_eq!(store(&mut back, T0 + 10_600), (0, true, true));
    assert_eq!(store(&mut back, T0 + 20_000).0, 1);
    // A hand-over for another shop, or unreadable, is not used.
    let other = handed.replace("\"shop\":\"swicked\"", "\"shop\":\"demo\"");
    let stored = StoredParts { handed_over: Some(&other), ..StoredParts::default() };
    let (fresh, _) = ShopMonitorCore::restore(config(None, None), "swicked", stored, T0 + 10_600);
    assert_eq!(fresh.monitor().counters().accepted_records, 0);
    let stored = StoredParts { handed_over: Some("{"), ..StoredParts::default() };
    let (_, outcome) = ShopMonitorCore::restore(config(None, None), "swicked", stored, T0 + 10_600);
    assert_eq!(kinds(&outcome.lines), ["monitor_restore_error"]);
}

// ---- Dashboards (issue 13): history rollups and the fleet board summary ----

#[test]
fn records_feed_the_history_and_the_alarm_finalizes_minutes() {
    use crate::history::{series::Range, MINUTE_MS, SETTLE_MS};
    let mut core = loaded(config(None, None), T0);
    let mut failing = record("r1", T0 + 1_000, 0);
    failing.status = 503;
    failing.error_class = Some("D1Error".into());
    core.ingest(batch(vec![record("r0", T0 + 500, 2_000), failing], vec![]), T0 + 1_100);
    // The minute is open: the series shows it as of now, the alarm is due to finalize it.
    let now = T0 + 2_000;
    let day = core.history_series(Range::Day, now);
    assert_eq!(day.last_hour.requests, 2);
    assert_eq!(day.last_hour.errors_5xx, 1);
    assert_eq!(day.totals.claude_micros, 2_000);
    assert!(core.next_due_ms(now).unwrap() <= T0 + MINUTE_MS + SETTLE_MS);
    store(&mut core, now);
    core.ingest(batch(vec![record("r2", T0 + 1_500, 0)], vec![]), T0 + 1_600);
    assert!(core.history_chunks().is_empty(), "traffic alone writes no history");
    // The alarm at the settle time finalizes it: a minute chunk and the open chunk to write.
    let at = T0 + MINUTE_MS + SETTLE_MS;
    core.tick(at);
    let chunks = core.history_chunks();
    assert!(chunks.iter().any(|c| c.kind == ChunkKind::Minutes));
    assert!(chunks.iter().any(|c| c.kind == ChunkKind::Open));
    let keys: Vec<_> = chunks.iter().map(|c| (c.kind, c.idx)).collect();
    core.mark_history_persisted(&keys);
    assert!(core.history_chunks().is_empty());
    // A restore from the stored history has the same history.
    let stored = StoredParts { history: &chunks, ..StoredParts::default() };
    let (back, outcome) = ShopMonitorCore::restore(config(None, None), "swicked", stored, at);
    assert!(outcome.lines.is_empty(), "{:?}", outcome.lines);
    assert_eq!(back.history_series(Range::Day, at), core.history_series(Range::Day, at));
    let top = &back.history_series(Range::Day, at).top_error_classes;
    assert_eq!(top[0].class, "D1Error");
}

#[test]
fn without_a_fleet_object_no_summary_is_built() {
    // The board lives in the fleet object: a Worker without one gets no pushes (and no
    // wake-ups for them), whatever its traffic; with one, the first tick's summary goes out.
    let (mut core, mut with_fleet) = (loaded(config(None, None), T0), loaded(config(None, None), T0));
    with_fleet.enable_fleet();
    let mut pushed = 0;
    for i in 0..90 {
        let now = T0 + i * 1_000;
        for c in [&mut core, &mut with_fleet] {
            c.ingest(batch(vec![record(&format!("r{i}"), now, 0)], vec![]), now);
            c.tick(now);
        }
        assert!(core.board_summary(now).is_none());
        if with_fleet.board_summary(now).is_some() {
            with_fleet.summary_sent(true);
            pushed += 1;
        }
    }
    assert!((3..=4).contains(&pushed), "with a fleet object: at once, then every 30 s ({pushed})");
}

#[test]
fn the_board_summary_is_pushed_on_a_firing_change_and_every_30_s() {
    let mut core = loaded(config(None, None), T0);
    core.enable_fleet();
    let s = core.board_summary(T0).expect("the first summary goes at once");
    assert_eq!(s.shop, "swicked");
    assert!(s.firing.is_empty());
    core.summary_sent(true);
    assert!(core.board_summary(T0 + 1_000).is_none());
    let s = core.board_summary(T0 + 30_000).expect("then every 30 s");
    core.summary_sent(true);
    assert_eq!(s.requests_1h, 0);
    // No traffic: nothing to wake for.
    assert_eq!(core.next_due_ms(T0 + 30_000), None);
    // 5xx over the default rule's floor: firing after the sustain time, pushed at once.
    let mut fired = None;
    for i in 0..400 {
        let now = T0 + 31_000 + i * 1_000;
        let mut r = record(&format!("f{i}"), now, 0);
        r.status = 500;
        core.ingest(batch(vec![r], vec![]), now);
        core.tick(now);
        if let Some(s) = core.board_summary(now) {
            core.summary_sent(true);
            if !s.firing.is_empty() {
                fired = Some((now, s));
                break;
            }
        }
    }
    let (at, s) = fired.expect("the 5xx rule fired and its summary went out");
    assert_eq!(s.firing[0].rule, "http_5xx_rate");
    assert!(s.requests_1h > 0 && s.errors_5xx_1h == s.requests_1h);
    // Pushed in the very tick that fired it (not at the next 30 s).
    let status = core.status(at);
    let rule = status.monitor.rules.iter().find(|r| r.rule.name() == "http_5xx_rate").unwrap();
    assert_eq!(rule.fired_at.as_deref(), Some(crate::monitor::time::rfc3339_ms(at).as_str()));
    assert_eq!(s.firing[0].since, rule.fired_at);
}

#[test]
fn partial_buckets_feed_the_history_once_even_when_sent_again() {
    use crate::history::series::Range;
    let mut core = loaded(config(None, None), T0);
    let mut recs: Vec<RequestRecord> =
        (0..6).map(|i| record(&format!("req_00000000020{i}"), T0 + 200 * i, 1_000)).collect();
    recs[0].status = 502;
    recs[0].error_class = Some("UpstreamTimeout".into());
    recs[1].status = 500;
    let p = partials(&recs, "isoc");
    core.ingest(Parsed { partials: p.clone(), ..Parsed::default() }, T0 + 1_500);
    // The same batch again (a retried call): the monitor skips it, so does the history.
    let again = core.ingest(Parsed { partials: p, ..Parsed::default() }, T0 + 1_600);
    assert!(again.report.duplicate_partials > 0);
    let h = core.history_series(Range::Day, T0 + 2_000);
    assert_eq!((h.last_hour.requests, h.last_hour.errors_5xx), (6, 2));
    assert_eq!(h.totals.claude_micros, 6_000);
    let mut classes: Vec<(&str, u64)> = h.top_error_classes.iter().map(|c| (c.class.as_str(), c.count)).collect();
    classes.sort();
    assert_eq!(classes, [("HTTP 500", 1), ("UpstreamTimeout", 1)], "the monitor's error labels");
    assert!(h.series.request_p95_ms[1439].is_some(), "the partials' digests were merged");
}
