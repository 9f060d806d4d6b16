//! Scenario tests of the whole monitor with a fake clock: tables of expected states per step
//! (Prometheus `TestKeepFiringFor` style), alarm retries, repeats, persistence and the alarm
//! schedule. Unit tests of each part live next to it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::*;
use crate::alerting::AlertState;
use crate::record::{RequestRecord, SlowQuery};
use crate::testdata::XorShift;
use AlertState::{Firing, Inactive, Pending, Resolved};
use NotifyReason::{FirstFiring, RepeatInterval};

/// A 10 s bucket boundary (2026-05-10T08:00:00Z).
const T0: i64 = 1_778_400_000_000;
const SHOP: &str = "swicked";

fn at(t_ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(T0 + t_ms).expect("in range")
}

/// One request at `t_ms` after T0.
fn request(t_ms: i64, status: u16, ms: f64) -> RequestRecord {
    let mut r = RequestRecord::start(at(t_ms), format!("req_{t_ms}"), "GET", "/api/tickets", "0.4.11+abc1234");
    r.shop = Some(SHOP.into());
    r.status = status;
    r.ms = ms;
    r
}

/// `n` requests spread over the second starting at `t_s`, the first `errors` of them 5xx.
fn second(t_s: i64, n: i64, errors: i64, ms: f64) -> Vec<RequestRecord> {
    (0..n).map(|i| request(t_s * 1000 + i, if i < errors { 500 } else { 200 }, ms)).collect()
}

fn monitor(alert_rules: &str) -> Monitor {
    let config = MonitorConfig::from_alert_rules_json(alert_rules, vec![Channel::Webhook, Channel::PagerDuty])
        .expect("valid ALERT_RULES");
    Monitor::new(config, SHOP)
}

fn reasons(e: &Evaluation) -> Vec<NotifyReason> {
    e.notifications.iter().map(|n| n.reason).collect()
}

/// A row of a scenario: at `t_ms`, ingest `records`, evaluate, expect `state` and exactly
/// these notifications.
struct Row {
    t_ms: i64,
    records: Vec<RequestRecord>,
    state: AlertState,
    notify: Vec<NotifyReason>,
}

fn row(t_s: i64, records: Vec<RequestRecord>, state: AlertState, notify: &[NotifyReason]) -> Row {
    Row { t_ms: t_s * 1000, records, state, notify: notify.to_vec() }
}

/// Step the monitor through `rows`, checking `rule`'s state and the notifications at each.
fn run(m: &mut Monitor, rule: RuleId, rows: Vec<Row>) -> Vec<Notification> {
    let mut all = Vec::new();
    for r in rows {
        m.ingest(&r.records, T0 + r.t_ms);
        let e = m.evaluate(T0 + r.t_ms);
        let state = m.alert(rule).map(|a| a.state);
        assert_eq!(state, Some(r.state), "{rule} at t = {} ms", r.t_ms);
        assert_eq!(reasons(&e), r.notify, "{rule} notifications at t = {} ms", r.t_ms);
        assert!(e.notifications.iter().all(|n| n.rule == rule.name()), "only {rule} may notify");
        all.extend(e.notifications);
    }
    all
}

const HTTP_FAST: &str =
    r#"{"bucket_s":1,"http_5xx_rate":{"window_s":5,"for_s":3,"min_requests":5,"keep_firing_for_s":2}}"#;

#[test]
fn http_5xx_rate_fires_exactly_at_the_sustain_time_and_resolves_after_the_hold() {
    let mut m = monitor(HTTP_FAST);
    let quiet = |t| second(t, 10, 0, 20.0);
    let burst = |t| second(t, 10, 2, 20.0);
    let sent = run(
        &mut m,
        RuleId::Http5xxRate,
        vec![
            row(0, quiet(0), Inactive, &[]),
            row(2, quiet(2), Inactive, &[]),
            row(3, burst(3), Pending, &[]), // 2 of 40 in the window: 5% > 1%
            row(4, burst(4), Pending, &[]),
            row(5, burst(5), Pending, &[]),
            Row { t_ms: 5_999, records: vec![], state: Pending, notify: vec![] }, // 1 ms early
            row(6, burst(6), Firing, &[FirstFiring]),                             // 3 s sustained
            row(7, quiet(7), Firing, &[]),
            row(10, quiet(10), Firing, &[]), // 2 of 50 = 4%
            row(11, quiet(11), Firing, &[]), // 0%: clearing starts, hold 2 s
            row(12, quiet(12), Firing, &[]),
            row(13, quiet(13), Resolved, &[NotifyReason::Resolved]),
            row(14, quiet(14), Resolved, &[]),
        ],
    );
    let fire = &sent[0];
    assert_eq!(fire.value, Some(8.0 / 50.0));
    assert_eq!(fire.since, "2026-05-10T08:00:06.000Z");
    assert_eq!(fire.active_at.as_deref(), Some("2026-05-10T08:00:03.000Z"));
    assert_eq!(fire.dedup_key, "swicked:http_5xx_rate:1");
    assert_eq!(fire.action, "Worker logs, identify error class, deploy fix");
    assert_eq!(fire.build_version.as_deref(), Some("0.4.11+abc1234"));
    assert_eq!(fire.recent_request_ids, ["req_4001", "req_5000", "req_5001", "req_6000", "req_6001"]);
    assert_eq!(sent[1].dedup_key, fire.dedup_key, "the resolve closes the same incident");
    // Two channels: each notification queued once per channel.
    assert_eq!(m.outbox().backlog().len(), 4);
}

#[test]
fn request_p95_fires_at_the_sustain_time_and_resolves() {
    let mut m =
        monitor(r#"{"bucket_s":1,"request_p95":{"window_s":5,"for_s":4,"min_samples":5,"keep_firing_for_s":1}}"#);
    let fast = |t| second(t, 10, 0, 50.0);
    let slow = |t| second(t, 10, 0, 300.0);
    let sent = run(
        &mut m,
        RuleId::RequestP95,
        vec![
            row(0, fast(0), Inactive, &[]),
            row(2, fast(2), Inactive, &[]),
            row(3, slow(3), Pending, &[]), // 10 of 40 samples at 300 ms: p95 = 300
            row(6, slow(6), Pending, &[]),
            row(7, slow(7), Firing, &[FirstFiring]),
            row(9, slow(9), Firing, &[]),
            row(10, fast(10), Firing, &[]),
            row(13, fast(13), Firing, &[]), // still 10 of 50 slow
            row(14, fast(14), Firing, &[]), // all fast: clearing
            row(15, fast(15), Resolved, &[NotifyReason::Resolved]),
        ],
    );
    assert!(sent[0].value.is_some_and(|v| (v - 300.0).abs() < 1.0), "{:?}", sent[0].value);
    assert_eq!(sent[0].recent_request_ids.len(), 5, "slow request ids travel with the firing");
}

#[test]
fn d1_p95_fires_on_slow_queries_and_ignores_requests_without_d1() {
    let mut m = monitor(r#"{"bucket_s":1,"d1_p95":{"window_s":5,"for_s":2,"min_samples":5,"keep_firing_for_s":0}}"#);
    let with_d1 = |t: i64, d1_ms: f64| {
        let mut recs = second(t, 10, 0, 20.0);
        for r in recs.iter_mut().take(4) {
            r.d1_slowest = Some(SlowQuery { sql: "SELECT * FROM tickets WHERE id = ?".into(), ms: d1_ms });
        }
        recs
    };
    run(
        &mut m,
        RuleId::D1P95,
        vec![
            row(0, with_d1(0, 260.0), Inactive, &[]), // 4 samples: below the floor of 5
            row(1, with_d1(1, 260.0), Pending, &[]),
            row(2, with_d1(2, 260.0), Pending, &[]),
            row(3, with_d1(3, 260.0), Firing, &[FirstFiring]),
            row(5, with_d1(5, 10.0), Firing, &[]),
            row(8, with_d1(8, 10.0), Resolved, &[NotifyReason::Resolved]), // slow buckets gone
        ],
    );
}

#[test]
fn stripe_signature_failures_fire_on_the_third_and_resolve_when_one_leaves() {
    let mut m = monitor(r#"{"bucket_s":1,"stripe_signature_failures":{"window_s":10}}"#);
    let bad_signature = |t: i64| {
        let mut r = request(t * 1000, 400, 3.0);
        r.path = "/webhooks/stripe".into();
        r.error_class = Some("StripeSignatureInvalid".into());
        vec![r]
    };
    run(
        &mut m,
        RuleId::StripeSignatureFailures,
        vec![
            row(0, bad_signature(0), Inactive, &[]),
            row(2, bad_signature(2), Inactive, &[]),
            row(3, vec![], Inactive, &[]),
            row(4, bad_signature(4), Firing, &[FirstFiring]), // no pending: for_s = 0
            row(9, vec![], Firing, &[]),
            row(10, vec![], Resolved, &[NotifyReason::Resolved]), // the t = 0 failure left
        ],
    );
}

#[test]
fn the_floor_holds_on_low_volume_with_the_default_rules() {
    let mut m = monitor("");
    // One request every 100 s, every third a 5xx and very slow: ~3 requests and 1 failure
    // per 5 min window (33% errors, p95 in seconds), never enough to judge.
    for t in (0..1800).step_by(10) {
        let recs = if t % 100 == 0 {
            let failing = (t / 100) % 3 == 0;
            vec![request(t * 1000, if failing { 500 } else { 200 }, if failing { 2_500.0 } else { 40.0 })]
        } else {
            vec![]
        };
        m.ingest(&recs, T0 + t * 1000);
        let e = m.evaluate(T0 + t * 1000);
        assert!(e.notifications.is_empty() && e.changes.is_empty(), "at {t} s: {e:?}");
    }
    let status = m.status(T0 + 1_800_000);
    let http = &status.rules[0];
    assert_eq!((http.state, http.above_floor), (Inactive, false));
    assert!(http.value.is_some_and(|v| v > 0.3), "the ratio is visible, just not judged: {:?}", http.value);
}

#[test]
fn no_flap_on_a_5xx_rate_oscillating_around_the_thresholds() {
    let mut m = monitor(HTTP_FAST);
    // Window rate alternating 1.2% / 0.8% (errors 2, 0, 2, 0, ... at 100 requests a second):
    // never above 1% for 3 s in a row, so it never fires.
    for t in 0..40 {
        let recs = second(t, 100, if t % 2 == 0 { 2 } else { 0 }, 20.0);
        m.ingest(&recs, T0 + t * 1000);
        let e = m.evaluate(T0 + t * 1000);
        assert!(e.notifications.is_empty(), "at {t} s");
        assert_ne!(m.alert(RuleId::Http5xxRate).map(|a| a.state), Some(Firing));
    }
    // Make it fire, then oscillate between 0.6% and 1.4%: above the 0.5% clear threshold, so
    // it stays firing; a dip below it shorter than the 2 s hold does not resolve either.
    let mut sent = Vec::new();
    for t in 40..100 {
        let errors = match t {
            40..=45 => 5,
            _ if t % 20 == 0 => 0,
            _ => [1, 1, 2][(t % 3) as usize],
        };
        m.ingest(&second(t, 100, errors, 20.0), T0 + t * 1000);
        sent.extend(reasons(&m.evaluate(T0 + t * 1000)));
    }
    assert_eq!(sent, vec![FirstFiring], "one notification, no resolve/re-fire cycle");
    assert_eq!(m.alert(RuleId::Http5xxRate).map(|a| (a.state, a.incident_seq)), Some((Firing, 1)));
}

#[test]
fn a_retried_alarm_does_not_duplicate_notifications() {
    let mut m = monitor(r#"{"bucket_s":1,"stripe_signature_failures":{"window_s":60}}"#);
    let mut recs = second(0, 3, 0, 5.0);
    for r in &mut recs {
        r.error_class = Some("StripeSignatureInvalid".into());
    }
    m.ingest(&recs, T0 + 500);
    let first = m.evaluate(T0 + 1_000);
    assert_eq!(reasons(&first), vec![FirstFiring]);
    assert_eq!(first.enqueued.len(), 2);
    let backlog = m.outbox().backlog().to_vec();

    // The alarm is retried at the same instant, and late (an earlier `now` is clamped).
    for now in [T0 + 1_000, T0 + 900, T0 + 1_000] {
        let again = m.evaluate(now);
        assert!(again.notifications.is_empty() && again.enqueued.is_empty(), "retry at {now}");
    }
    assert_eq!(m.outbox().backlog(), &backlog[..]);

    // The isolate died after storing the snapshot: the restored monitor does not re-decide.
    let config = m.config().clone();
    let buckets = m.dirty_closed_buckets(T0 + 1_000);
    let (mut restored, _) = Monitor::restore(config, SHOP, Some(m.snapshot()), &buckets, T0 + 1_000).expect("restores");
    assert!(restored.evaluate(T0 + 1_000).notifications.is_empty());
    assert!(restored.evaluate(T0 + 2_000).notifications.is_empty());
}

#[test]
fn the_repeat_interval_re_notifies_while_firing() {
    let mut m = monitor(r#"{"bucket_s":1,"repeat_interval_s":10,"stripe_signature_failures":{"window_s":60}}"#);
    let mut recs = second(0, 3, 0, 5.0);
    for r in &mut recs {
        r.error_class = Some("StripeSignatureInvalid".into());
    }
    m.ingest(&recs, T0);
    let mut at_s = Vec::new();
    for t in 0..=25 {
        let e = m.evaluate(T0 + t * 1000);
        for n in e.notifications {
            at_s.push((t, n.reason, n.event));
        }
    }
    assert_eq!(
        at_s,
        vec![
            (0, FirstFiring, EventKind::Trigger),
            (10, RepeatInterval, EventKind::Repeat(1)),
            (20, RepeatInterval, EventKind::Repeat(2)),
        ]
    );
    assert_eq!(m.outbox().backlog().len(), 6, "3 events x 2 channels, all distinct");
    assert_eq!(m.next_due_ms(T0 + 25_000), Some(T0 + 25_000), "queued deliveries are due now");
}

/// A scenario with every rule, where alerts are pending or firing when traffic stops (so they
/// must move on data ageing out alone). `rng` makes latencies and errors varied.
fn traffic(t: i64, rng: &mut XorShift) -> Vec<RequestRecord> {
    let (n, error_p, median_ms) = match t {
        0..60 => (5, 0.002, 40.0),
        60..100 => (5, 0.15, 40.0), // http_5xx_rate fires (and repeats), resolves in traffic
        100..130 => (5, 0.0, 40.0),
        130..170 => (5, 0.0, 400.0), // both p95 rules fire; traffic stops while firing
        200..240 => (5, 0.15, 40.0), // fires again; traffic stops while firing
        260..263 => (5, 0.3, 40.0),  // a 3 s burst: pending when traffic stops, fires in silence
        280..300 => (1, 0.0, 40.0),  // Stripe failures; the window empties in silence
        _ => (0, 0.0, 0.0),
    };
    let mut recs = Vec::new();
    for i in 0..n {
        let status = if rng.next_f64() < error_p { 503 } else { 200 };
        let mut r = request(t * 1000 + i * 150, status, rng.lognormal_ms(median_ms, 0.5));
        r.request_id = format!("req_{t}_{i}");
        if i % 2 == 0 {
            let sql = "SELECT * FROM lines WHERE ticket_id = ?".to_string();
            r.d1_slowest = Some(SlowQuery { sql, ms: rng.lognormal_ms(median_ms * 0.6, 0.5) });
        }
        if [281, 285, 290].contains(&t) {
            r.status = 400;
            r.error_class = Some("StripeSignatureInvalid".into());
        }
        recs.push(r);
    }
    recs
}

const EVERY_RULE_FAST: &str = r#"{"bucket_s":1,"repeat_interval_s":20,
    "http_5xx_rate":{"window_s":10,"for_s":5,"min_requests":10,"keep_firing_for_s":3},
    "request_p95":{"window_s":10,"for_s":5,"min_samples":10,"keep_firing_for_s":3},
    "d1_p95":{"window_s":10,"for_s":5,"min_samples":5,"keep_firing_for_s":3},
    "stripe_signature_failures":{"window_s":30}}"#;

/// Everything a user would compare between two runs: what changed and what was said.
fn said(e: &Evaluation) -> Vec<(i64, RuleId, AlertState, Option<String>)> {
    let changes = e.changes.iter().map(|c| (c.at_ms, c.rule, c.to, None));
    let notes = e
        .notifications
        .iter()
        .map(|n| (e.now_ms, RuleId::from_name(&n.rule).expect("a table rule"), n.state, Some(n.event_id())));
    changes.chain(notes).collect()
}

fn drain_outbox(m: &mut Monitor, now_ms: i64) {
    for entry in m.claim_due_deliveries(now_ms) {
        m.mark_delivery_sent(entry.id).expect("claimed entry exists");
    }
}

#[test]
fn next_due_ms_alone_drives_the_same_alerts_as_a_one_second_tick() {
    let (mut ticked, mut driven) = (monitor(EVERY_RULE_FAST), monitor(EVERY_RULE_FAST));
    let (mut rng_a, mut rng_b) = (XorShift(11), XorShift(11));
    let (mut said_ticked, mut said_driven) = (Vec::new(), Vec::new());
    let mut driven_evaluations = 0;
    for t in 0..600 {
        let now = T0 + t * 1000;
        ticked.ingest(&traffic(t, &mut rng_a), now);
        said_ticked.extend(said(&ticked.evaluate(now)));
        drain_outbox(&mut ticked, now);

        // The edge: wake only when due; then evaluate, deliver, persist closed buckets.
        driven.ingest(&traffic(t, &mut rng_b), now);
        if driven.next_due_ms(now).is_some_and(|due| due <= now) {
            said_driven.extend(said(&driven.evaluate(now)));
            driven_evaluations += 1;
            drain_outbox(&mut driven, now);
            let keys: Vec<BucketKey> = driven.dirty_closed_buckets(now).iter().map(BucketSnapshot::key).collect();
            driven.mark_buckets_persisted(&keys);
        }
    }
    assert_eq!(said_driven, said_ticked);
    let fired: std::collections::BTreeSet<RuleId> = said_ticked.iter().filter(|s| s.2 == Firing).map(|s| s.1).collect();
    assert_eq!(fired.len(), 4, "the scenario exercises every rule: {fired:?}");
    // Changes while no record arrives: resolves after traffic stops, a fire in silence.
    let silent = |from: i64, to: i64| {
        said_ticked.iter().filter(|s| s.3.is_none() && (from..to).contains(&((s.0 - T0) / 1000))).count()
    };
    assert!(silent(170, 200) >= 2 && silent(240, 260) >= 1 && silent(263, 280) >= 2 && silent(300, 600) >= 1);
    assert!(said_ticked.iter().any(|s| s.3.as_deref().is_some_and(|id| id.ends_with(":repeat-1"))));
    assert!(driven_evaluations < 400, "silence needs few wake-ups ({driven_evaluations})");
    assert_eq!(driven.next_due_ms(T0 + 600_000), None, "idle: no alarm");
}

#[test]
fn a_restored_monitor_evaluates_identically() {
    let mut original = monitor(EVERY_RULE_FAST);
    let mut rng = XorShift(5);
    let mut storage: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    let mut strings = String::new();
    let mut persist = |m: &mut Monitor, storage: &mut BTreeMap<i64, Vec<u8>>, now: i64| {
        let dirty = m.dirty_closed_buckets(now);
        for b in &dirty {
            let row = m.encode_bucket_row(b);
            storage.insert(b.start_ms, row);
        }
        m.mark_buckets_persisted(&dirty.iter().map(BucketSnapshot::key).collect::<Vec<_>>());
        if let Some(s) = m.strings_to_store() {
            strings = s;
            m.mark_strings_stored();
        }
        let keep_from = m.bucket_retention_start_ms(now);
        storage.retain(|&start, _| start >= keep_from);
    };
    // Run into the error burst, so an alert is mid-incident when the isolate is evicted.
    let cut = 72;
    for t in 0..cut {
        let now = T0 + t * 1000;
        original.ingest(&traffic(t, &mut rng), now);
        original.evaluate(now);
        persist(&mut original, &mut storage, now);
    }
    let now = T0 + cut * 1000; // nothing ingested yet in the bucket open at `now`
    original.evaluate(now);
    persist(&mut original, &mut storage, now);
    assert!(original.alerts.iter().any(|a| a.state != Inactive), "mid-incident");
    let snapshot_json = serde_json::to_string(&original.snapshot()).expect("serialize");

    let snapshot: MonitorSnapshot = serde_json::from_str(&snapshot_json).expect("parse");
    let table = crate::monitor::window::StringTable::from_stored(&strings).unwrap_or_default();
    let buckets: Vec<BucketSnapshot> = storage
        .iter()
        .map(|(start, row)| BucketSnapshot::decode(*start, row, &table).expect("decode bucket"))
        .collect();
    let config = original.config().clone();
    let (mut restored, report) = Monitor::restore(config, SHOP, Some(snapshot), &buckets, now).expect("restores");
    assert!(report.skipped_buckets.is_empty(), "{report:?}");
    assert_eq!(report.restored_buckets, buckets.len());

    let (mut rng_a, mut rng_b) = (XorShift(77), XorShift(77));
    for t in cut..cut + 200 {
        let now = T0 + t * 1000;
        original.ingest(&traffic(t, &mut rng_a), now);
        restored.ingest(&traffic(t, &mut rng_b), now);
        assert_eq!(restored.evaluate(now), original.evaluate(now), "at {t} s");
        let (a, b) = (serde_json::to_value(restored.status(now)), serde_json::to_value(original.status(now)));
        assert_eq!(a.expect("status"), b.expect("status"), "status at {t} s");
    }
}

#[test]
fn restore_refuses_another_shops_snapshot_and_skips_foreign_buckets() {
    let mut m = monitor(HTTP_FAST);
    m.ingest(&second(0, 10, 0, 5.0), T0);
    let buckets = m.dirty_closed_buckets(T0 + 1_000);
    let config = m.config().clone();
    let err = Monitor::restore(config.clone(), "other", Some(m.snapshot()), &buckets, T0 + 1_000).err();
    assert_eq!(err, Some(RestoreError::ShopMismatch { expected: "other".into(), found: SHOP.into() }));
    let old = MonitorSnapshot { format: 99, ..m.snapshot() };
    let err = Monitor::restore(config, SHOP, Some(old), &buckets, T0 + 1_000).err();
    assert_eq!(err, Some(RestoreError::UnsupportedFormat { found: 99, supported: 1 }));

    // The configuration moved to 10 s buckets: the stored 1 s bucket is skipped, not misread.
    let ten = MonitorConfig::from_alert_rules_json("", vec![Channel::Email]).expect("defaults");
    let (fresh, report) = Monitor::restore(ten, SHOP, Some(m.snapshot()), &buckets, T0 + 1_000).expect("restores");
    assert_eq!(report.skipped_buckets, vec![(T0, BucketRestoreError::WrongWidth { bucket_s: 1, expected_s: 10 })]);
    assert_eq!(fresh.status(T0 + 1_000).windows[0].requests, 0);
}

#[test]
fn restore_dead_letters_deliveries_for_a_removed_channel() {
    let mut m = monitor(r#"{"bucket_s":1,"stripe_signature_failures":{"window_s":60}}"#);
    let mut recs = second(0, 3, 0, 5.0);
    recs.iter_mut().for_each(|r| r.error_class = Some("StripeSignatureInvalid".into()));
    m.ingest(&recs, T0);
    m.evaluate(T0);
    let mut config = m.config().clone();
    config.channels = vec![Channel::Webhook];
    let (r, report) = Monitor::restore(config, SHOP, Some(m.snapshot()), &[], T0).expect("restores");
    assert_eq!(report.dropped_deliveries, 1);
    assert_eq!(r.outbox().backlog().len(), 1);
    assert_eq!(r.outbox().backlog()[0].key.channel, Channel::Webhook);
    assert_eq!(r.outbox().dead_lettered_total, 1);
}

#[test]
fn closed_buckets_are_handed_out_once_and_the_alarm_covers_the_close() {
    let mut m = monitor("");
    assert_eq!(m.next_due_ms(T0), None, "a new monitor is idle");
    m.ingest(&second(3, 5, 0, 10.0), T0 + 3_500);
    assert!(m.dirty_closed_buckets(T0 + 3_500).is_empty(), "the open bucket stays in memory");
    assert_eq!(m.next_due_ms(T0 + 3_500), Some(T0 + 3_500), "new records: evaluate now");
    m.evaluate(T0 + 3_500);
    assert_eq!(m.next_due_ms(T0 + 3_500), Some(T0 + 10_000), "wake when the bucket closes");
    let closed = m.dirty_closed_buckets(T0 + 10_000);
    assert_eq!((closed.len(), closed[0].start_ms, closed[0].counts.requests), (1, T0, 5));
    m.mark_buckets_persisted(&[closed[0].key()]);
    assert!(m.dirty_closed_buckets(T0 + 10_000).is_empty());
    // Then only the moment the data leaves the shortest window (300 s) is due.
    assert_eq!(m.next_due_ms(T0 + 10_000), Some(T0 + 300_000));
    assert_eq!(m.bucket_retention_start_ms(T0 + 10_000), T0 + 10_000 - 3_600_000 + 10_000);
}

#[test]
fn records_of_other_shops_or_far_outside_the_ring_are_counted_not_dropped() {
    let mut m = monitor(HTTP_FAST);
    let now = T0 + 4_000_000;
    let mut other = request(4_000_000, 500, 1.0);
    other.shop = Some("otherShop".into());
    let recs = vec![
        request(4_000_000, 200, 1.0),
        other,
        request(4_000_000 - 3_600_000, 200, 1.0), // just out of the 3600 s ring
        request(4_000_000 + 61_000, 200, 1.0),
    ];
    let report = m.ingest(&recs, now);
    assert_eq!(
        report,
        IngestReport {
            accepted: 1,
            rejected_too_old: 1,
            rejected_future: 1,
            rejected_other_shop: 1,
            partials: 0,
            duplicate_partials: 0
        }
    );
    let status = m.status(now);
    assert_eq!(status.rejected_records, 3);
    assert_eq!(status.windows[0].errors_5xx, 0, "another shop's 5xx never counts here");
}

#[test]
fn status_shows_windows_rules_changes_and_the_outbox() {
    let mut m = monitor(HTTP_FAST);
    for t in 0..8 {
        m.ingest(&second(t, 10, if t >= 2 { 1 } else { 0 }, 30.0 + t as f64), T0 + t * 1000);
        m.evaluate(T0 + t * 1000);
    }
    let id = m.claim_due_deliveries(T0 + 8_000)[0].id;
    m.mark_delivery_failed(id, T0 + 8_000, "HTTP 500").expect("claimed");
    let s = m.status(T0 + 8_000);
    let v = serde_json::to_value(&s).expect("serialize");
    assert_eq!(v["shop"], SHOP);
    assert_eq!(v["last_evaluated_at"], "2026-05-10T08:00:07.000Z");
    assert_eq!(s.windows.iter().map(|w| w.window_s).collect::<Vec<_>>(), vec![5, 600, 3600]);
    let w5 = &s.windows[0];
    assert_eq!((w5.requests, w5.errors_5xx), (40, 4), "buckets 4..=8 as of 8 s; 8 is still empty");
    assert!(w5.request_p50_ms.is_some_and(|p| (35.0..=38.0).contains(&p)), "{:?}", w5.request_p50_ms);
    let http = &v["rules"][0];
    assert_eq!(http["rule"], "http_5xx_rate");
    assert_eq!(http["state"], "firing");
    assert_eq!(http["params"]["window_s"], 5);
    assert_eq!(http["params"]["threshold_ratio"], 0.01);
    assert_eq!(http["dedup_key"], "swicked:http_5xx_rate:1");
    assert_eq!(v["rules"][3]["params"]["threshold_count"], 3);
    let changes: Vec<(&str, &str)> =
        s.recent_changes.iter().map(|c| (c.rule.name(), if c.to == Firing { "firing" } else { "other" })).collect();
    assert_eq!(changes, vec![("http_5xx_rate", "other"), ("http_5xx_rate", "firing")]);
    assert_eq!(s.outbox.backlog, 2);
    let failed = s.outbox.entries.iter().find(|e| e.last_error.is_some()).expect("failed entry");
    assert_eq!((failed.attempts, failed.at.as_str()), (1, "2026-05-10T08:00:10.000Z"));
}

#[test]
fn alert_rules_errors_reach_the_monitor_config_precisely() {
    let err = MonitorConfig::from_alert_rules_json(r#"{"http_5xx_rate":{"for_s":-1}}"#, vec![]).err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("ALERT_RULES http_5xx_rate.for_s must not be negative (got -1)")
    );
}

/// `records` folded by an isolate into partial buckets, as the monitor receives them.
fn folded(records: &[RequestRecord], isolate: &str) -> Vec<crate::partial::Partial> {
    let mut acc = crate::partial::PartialAccumulator::default();
    records.iter().for_each(|r| acc.fold(r));
    let mut n = 0;
    acc.take(SHOP, || {
        n += 1;
        format!("{isolate}-{n}")
    })
    .into_iter()
    .map(|p| p.check(SHOP).expect("valid"))
    .collect()
}

#[test]
fn partial_buckets_fire_like_records_count_once_and_carry_their_diagnosis() {
    let (mut by_partial, mut by_record) = (monitor(HTTP_FAST), monitor(HTTP_FAST));
    for t in 0..5 {
        let mut recs = second(t, 10, 4, 5.0);
        for (i, r) in recs.iter_mut().enumerate() {
            r.request_id = format!("req_{:012}", r.ts.timestamp_millis() - T0);
            if i < 4 {
                r.error_class = Some("D1Error".into());
            }
        }
        let now = T0 + t * 1000 + 999;
        let parts = folded(&recs, &format!("iso{t}"));
        let report = by_partial.ingest_partials(&parts, now);
        assert_eq!((report.accepted, report.partials), (10, 1));
        // The same batch again (a retry after a lost answer) is not counted twice.
        let again = by_partial.ingest_partials(&parts, now);
        assert_eq!((again.accepted, again.duplicate_partials), (0, 1));
        by_record.ingest(&recs, now);
        let (a, b) = (by_partial.evaluate(now), by_record.evaluate(now));
        assert_eq!(a.changes, b.changes, "at {t} s");
    }
    let now = T0 + 4_999;
    assert_eq!(by_partial.alert(RuleId::Http5xxRate).unwrap().state, Firing);
    assert_eq!(by_partial.counters().accepted_records, 50);
    assert_eq!((by_partial.counters().partials, by_partial.counters().duplicate_partials), (5, 5));
    // Evidence for the notification: the 5xx request ids the isolates kept.
    let ids = by_partial.recent.for_rule(RuleId::Http5xxRate, T0);
    assert_eq!(
        ids,
        ["req_000000003003", "req_000000004000", "req_000000004001", "req_000000004002", "req_000000004003"]
    );
    assert_eq!(ids, by_record.recent.for_rule(RuleId::Http5xxRate, T0));
    // The diagnosis of the rule's window: one class, its route and first build.
    let d = by_partial.diagnosis(5, now);
    assert_eq!(d, by_record.diagnosis(5, now));
    assert_eq!(
        (
            d.errors[0].class.as_str(),
            d.errors[0].count_5xx,
            d.errors[0].route.as_str(),
            d.errors[0].first_build.as_str()
        ),
        ("D1Error", 20, "/api/tickets", "0.4.11+abc1234")
    );
    assert_eq!(d.slow_routes[0].key, "/api/tickets");
    assert_eq!(by_partial.status(now).build_version.as_deref(), Some("0.4.11+abc1234"));
}
