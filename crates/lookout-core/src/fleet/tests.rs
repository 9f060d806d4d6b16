//! The fleet object's decisions with a fake clock: fleet incidents opening at the threshold
//! and resolving once, silences holding and releasing fleet alerts, `monitor_stalled`, the
//! dead-man's switch count, and the stored parts round trip.

use serde_json::json;

use super::*;
use crate::alerting::{AlertState, Severity};
use crate::monitor::{Channel, EventKind};

const T0: i64 = 1_778_400_000_000; // 2026-05-10T08:00:00Z

fn shops(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("shop{i}")).collect()
}

fn config(known: usize) -> FleetConfig {
    FleetConfig {
        rules: FleetRules::default(),
        deadman_interval_s: 60,
        deadman_enabled: true,
        known_shops: shops(known),
        channels: vec![Channel::Webhook],
        routing: Default::default(),
        errors: Vec::new(),
    }
}

fn fleet(known: usize) -> FleetCore {
    FleetCore::restore(config(known), FleetParts::default(), T0).0
}

fn firing(rule: &str, shop: &str, since: i64) -> FiringEntry {
    FiringEntry {
        rule: rule.into(),
        since_ms: since,
        severity: Severity::Critical,
        dedup_key: format!("{shop}:{rule}:1"),
    }
}

fn report(shop: &str, firing: Vec<FiringEntry>, at: i64) -> FleetReport {
    FleetReport { shop: shop.into(), at_ms: at, firing, last_evaluated_ms: Some(at), stalled_since_ms: None }
}

fn events(f: &FleetCore) -> Vec<(String, EventKind)> {
    f.queued().iter().map(|n| (n.rule.clone(), n.event)).collect()
}

#[test]
fn the_threshold_is_5_shops_or_20_percent_never_fewer_than_2() {
    let r = FleetRules::default();
    assert_eq!(r.threshold(50), 5, "5 shops before 20% of 50");
    assert_eq!(r.threshold(5000), 5);
    assert_eq!(r.threshold(30), 5, "20% of 30 is 6");
    assert_eq!(r.threshold(10), 2, "20% of 10");
    assert_eq!(r.threshold(2), 2, "never a fleet incident of one shop");
    let custom = FleetRules::from_var(Some(r#"{"min_shops": 3, "min_share": 1, "window_s": 30}"#)).unwrap();
    assert_eq!((custom.threshold(100), custom.window_s), (3, 30));
    for (bad, field) in [
        (r#"{"min_shops": 1}"#, "FLEET_ALERTING.min_shops"),
        (r#"{"min_share": 0}"#, "FLEET_ALERTING.min_share"),
        (r#"{"window_s": -5}"#, "FLEET_ALERTING.window_s"),
        (r#"{"shops": 5}"#, "FLEET_ALERTING.shops"),
        ("[", "FLEET_ALERTING"),
    ] {
        assert_eq!(FleetRules::from_var(Some(bad)).unwrap_err().field, field, "{bad}");
    }
}

#[test]
fn six_shops_firing_within_the_window_open_one_fleet_alert_that_resolves_once() {
    let mut f = fleet(30);
    let rule = "http_5xx_rate";
    // Shops 1-4 fire within a minute: each answer says no fleet incident (they page).
    for i in 1..=4 {
        let t = T0 + i * 10_000;
        let (answer, _) = f.report(report(&format!("shop{i}"), vec![firing(rule, &format!("shop{i}"), t)], t), t);
        assert!(answer.fleet_incidents.is_empty(), "shop{i} pages itself");
    }
    assert!(f.queued().is_empty());
    // The 5th crosses the threshold: its own answer already holds its page.
    let t5 = T0 + 50_000;
    let (answer, lines) = f.report(report("shop5", vec![firing(rule, "shop5", t5)], t5), t5);
    assert_eq!(answer.fleet_incidents.len(), 1);
    assert_eq!(answer.fleet_incidents[0].rule, rule);
    assert_eq!(answer.fleet_incidents[0].dedup_key, "fleet:http_5xx_rate:1");
    assert!(matches!(&lines[0], FleetLine::FleetIncident { state: AlertState::Firing, .. }), "{lines:?}");
    assert_eq!(events(&f), vec![("fleet:http_5xx_rate".to_string(), EventKind::Trigger)]);
    let n = f.queued()[0];
    assert_eq!(n.shop, "*");
    assert_eq!(n.shops, ["shop1", "shop2", "shop3", "shop4", "shop5"]);
    assert_eq!((n.value, n.threshold, n.severity), (Some(5.0), 5.0, Severity::Critical));
    assert!(
        n.summary.starts_with("[fleet] FIRING fleet:http_5xx_rate: http_5xx_rate in 5 of 30 shops"),
        "{}",
        n.summary
    );
    // The 6th joins the open incident, held, no second fleet alert.
    let t6 = T0 + 55_000;
    let (answer, _) = f.report(report("shop6", vec![firing(rule, "shop6", t6)], t6), t6);
    assert_eq!(answer.fleet_incidents.len(), 1);
    assert_eq!(f.queued().len(), 1);
    assert_eq!(f.incident("fleet:http_5xx_rate").unwrap().shops.len(), 6);
    // The fleet board lists it while it is open.
    let open = f.open_incidents(t6);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["dedup_key"], "fleet:http_5xx_rate:1");
    assert_eq!(open[0]["shops"].as_array().map(Vec::len), Some(6));
    // They resolve one by one: the fleet alert resolves once, when the last one does.
    for i in 1..=6 {
        let t = T0 + 120_000 + i * 1_000;
        f.report(report(&format!("shop{i}"), vec![], t), t);
        let resolved = f.incident("fleet:http_5xx_rate").unwrap().state == AlertState::Resolved;
        assert_eq!(resolved, i == 6, "after shop{i}");
    }
    assert_eq!(
        events(&f),
        vec![
            ("fleet:http_5xx_rate".to_string(), EventKind::Trigger),
            ("fleet:http_5xx_rate".to_string(), EventKind::Resolve)
        ]
    );
    let t = T0 + 200_000;
    let (answer, _) = f.report(report("shop1", vec![], t), t);
    assert!(answer.fleet_incidents.is_empty());
    assert!(f.open_incidents(t).is_empty(), "a resolved incident leaves the board");
    assert_eq!(f.queued().len(), 2, "nothing more");
}

#[test]
fn shops_spread_over_more_than_the_window_are_separate_incidents() {
    let mut f = fleet(30);
    for i in 1..=6 {
        // One shop every 40 s: never 5 within 120 s.
        let t = T0 + i * 40_000;
        let (answer, _) = f.report(report(&format!("shop{i}"), vec![firing("d1_p95", "x", t)], t), t);
        assert!(answer.fleet_incidents.is_empty(), "shop{i}");
    }
    assert!(f.queued().is_empty());
}

#[test]
fn a_fleet_silence_holds_the_fleet_alert_until_it_ends_then_it_notifies_if_still_firing() {
    let mut f = fleet(10);
    let body = json!({"matchers": {"shop": "*", "rule": "http_5xx_rate"}, "ends_at": "2026-05-10T08:05:00Z",
        "comment": "provider incident"})
    .to_string();
    let created = f.create_silence(&body, T0).unwrap();
    assert_eq!(created.silence["id"], "sil_1");
    assert!(created.affected_shops.is_empty(), "nothing firing yet");
    for i in 1..=2 {
        let t = T0 + i * 1_000;
        f.report(report(&format!("shop{i}"), vec![firing("http_5xx_rate", "x", t)], t), t);
    }
    let inc = f.incident("fleet:http_5xx_rate").unwrap();
    assert_eq!(inc.state, AlertState::Firing, "recorded");
    assert!(f.queued().is_empty(), "held by the silence");
    let end = T0 + 300_000;
    // At the silence's end, still firing: it notifies then.
    f.tick(end);
    assert_eq!(events(&f), vec![("fleet:http_5xx_rate".to_string(), EventKind::Trigger)]);
    assert_eq!(f.queued()[0].notified_at, "2026-05-10T08:05:00.000Z");
}

#[test]
fn the_held_fleet_alert_wakes_the_alarm_at_the_silence_end() {
    let cfg = FleetConfig { deadman_enabled: false, ..config(10) };
    let mut f = FleetCore::restore(cfg, FleetParts::default(), T0).0;
    let body = json!({"matchers": {"shop": "*", "rule": "*"}, "ends_at": "2026-05-10T08:05:00Z", "comment": "x"});
    f.create_silence(&body.to_string(), T0).unwrap();
    for i in 1..=2 {
        f.report(report(&format!("shop{i}"), vec![firing("d1_p95", "x", T0)], T0), T0);
    }
    assert_eq!(f.next_due_ms(T0 + 1), Some(T0 + 300_000));
    // Expired early: released at once.
    let out = f.expire_silence("sil_1", T0 + 10_000).unwrap();
    assert_eq!(out.affected_shops, ["shop1", "shop2"]);
    assert_eq!(events(&f), vec![("fleet:d1_p95".to_string(), EventKind::Trigger)]);
}

#[test]
fn a_stalled_monitor_raises_monitor_stalled_for_its_shop_and_resolves_when_it_evaluates() {
    let mut f = fleet(2);
    f.report(report("shop1", vec![], T0), T0);
    let t = T0 + 200_000;
    let r = FleetReport {
        shop: "shop1".into(),
        at_ms: t,
        firing: vec![],
        last_evaluated_ms: Some(T0),
        stalled_since_ms: Some(T0 + 10_000),
    };
    f.report(r, t);
    let n = f.queued()[0].clone();
    assert_eq!((n.shop.as_str(), n.rule.as_str(), n.event), ("shop1", "monitor_stalled", EventKind::Trigger));
    assert_eq!(n.dedup_key, format!("shop1:monitor_stalled:{}", T0 + 10_000));
    assert_eq!((n.value, n.threshold, n.severity), (Some(200.0), 180.0, Severity::Critical));
    f.report(report("shop1", vec![], t + 1_000), t + 1_000);
    assert_eq!(events(&f)[1], ("monitor_stalled".to_string(), EventKind::Resolve));
}

#[test]
fn the_deadman_counts_monitors_that_evaluated_in_the_interval() {
    let mut f = fleet(3);
    f.report(report("shop1", vec![], T0), T0);
    f.report(report("shop2", vec![], T0 + 30_000), T0 + 30_000);
    let (ping, _) = f.tick(T0 + 70_000);
    let ping = ping.expect("due at the first alarm");
    assert_eq!(ping.monitors_evaluated, 1, "shop1 last evaluated 70 s ago");
    assert_eq!(ping.body["monitors_known"], 3);
    f.record_ping(&ping, Ok(()), T0 + 70_000);
    assert_eq!(f.next_due_ms(T0 + 70_001), Some(T0 + 130_000));
    assert!(f.tick(T0 + 100_000).0.is_none(), "not before the interval");
}

#[test]
fn the_stored_parts_round_trip() {
    let mut f = fleet(10);
    f.create_silence(
        &json!({"matchers": {"shop": "shop1", "rule": "*"}, "ends_at": "2026-05-11T00:00:00Z", "comment": "c"})
            .to_string(),
        T0,
    )
    .unwrap();
    for i in 1..=2 {
        f.report(report(&format!("shop{i}"), vec![firing("d1_p95", "x", T0)], T0), T0);
    }
    let rows: Vec<String> = f.dirty_shops().iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    let sil = serde_json::to_string(f.silences_snapshot().unwrap()).unwrap();
    let meta = serde_json::to_string(f.meta_snapshot().unwrap()).unwrap();
    let (back, lines) =
        FleetCore::restore(config(10), FleetParts { shops: &rows, silences: Some(&sil), meta: Some(&meta) }, T0);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(back.status(T0 + 1), f.status(T0 + 1));
    assert_eq!(back.answer("shop1", T0).silences.len(), 1);
}
