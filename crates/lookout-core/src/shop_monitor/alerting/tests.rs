//! A shop monitor's fleet-alerting side driven with a fake clock: settings applied at once
//! and refused whole, the owner's email, acks, silences holding and releasing, new triggers
//! awaiting the fleet's answer (and not when it cannot answer), stall detection, heartbeats.

use chrono::DateTime;
use serde_json::json;

use super::super::*;
use crate::fleet::{FleetAnswer, FleetReport};
use crate::monitor::rules::RuleId;
use crate::monitor::{Channel, EventKind};
use crate::mute::FleetMute;
use crate::record::{CostMicros, RequestRecord};
use crate::silence::{Matchers, Silence};

/// 2026-05-20T12:00:00Z
const T0: i64 = 1_779_278_400_000;
const FAST: &str = r#"{"bucket_s":1,"repeat_interval_s":60,
  "http_5xx_rate":{"window_s":5,"for_s":0,"keep_firing_for_s":0,"min_requests":1}}"#;

fn core_with(vars: ShopVars, channels: Vec<Channel>, owner_channel: bool) -> ShopMonitorCore {
    let mut cfg = ShopMonitorConfig::from_vars(vars, channels);
    cfg.owner_channel = owner_channel;
    let (mut core, _) = ShopMonitorCore::restore(cfg, "swicked", StoredParts::default(), T0);
    core.claim_due_deliveries(T0);
    core
}

fn fast_core() -> ShopMonitorCore {
    core_with(ShopVars { alert_rules: Some(FAST), ..ShopVars::default() }, vec![Channel::Webhook], true)
}

fn record(id: &str, ts_ms: i64, status: u16, claude: u64) -> RequestRecord {
    let mut r = RequestRecord::start(DateTime::from_timestamp_millis(ts_ms).unwrap(), id.into(), "GET", "/", "0.1.0");
    r.shop = Some("swicked".into());
    r.status = status;
    r.ms = 12.0;
    r.cost_micros = CostMicros { twilio: 0, claude };
    r
}

fn ingest(core: &mut ShopMonitorCore, records: Vec<RequestRecord>, now: i64) -> IngestOutcome {
    core.ingest(Parsed { records, partials: vec![], check_ins: vec![], rejected: vec![] }, now)
}

/// Deliveries queued now: (rule, event, channel).
fn queued(core: &mut ShopMonitorCore, now: i64) -> Vec<(String, EventKind, Channel)> {
    let due = core.claim_due_deliveries(now);
    let out = due.iter().map(|e| (e.notification.rule.clone(), e.notification.event, e.key.channel)).collect();
    core.record_deliveries(&due.iter().map(|e| (e.id, Ok(()))).collect::<Vec<_>>(), now);
    out
}

fn silence(shop: &str, rule: &str, start: i64, end: i64) -> Silence {
    Silence {
        id: "sil_1".into(),
        matchers: Matchers { shop: shop.into(), rule: rule.into() },
        starts_at_ms: start,
        ends_at_ms: end,
        comment: "deploying".into(),
        created_by: None,
        created_at_ms: start,
        expired_early_at_ms: None,
    }
}

fn answer(silences: Vec<Silence>, fleet: Vec<FleetMute>, now: i64) -> FleetAnswer {
    FleetAnswer { version: 1, silences, fleet_incidents: fleet, now_ms: now }
}

/// Fire http_5xx_rate at `t` (one 503, for_s 0).
fn fire(core: &mut ShopMonitorCore, t: i64) {
    ingest(core, vec![record(&format!("req_{t}"), t, 503, 0)], t);
    core.tick(t + 1);
}

#[test]
fn bad_settings_change_nothing_and_good_ones_apply_at_once_with_one_line_naming_fields() {
    let mut core = fast_core();
    let before = core.config_view();
    let e = core.put_settings(r#"{"ai_monthly_cap_micros": -1, "owner": {"name": "Robbie"}}"#, T0).unwrap_err();
    assert_eq!(e.field, "ai_monthly_cap_micros");
    let e = core.put_settings(r#"{"owner": {"name": "Robbie", "email": "nope"}}"#, T0).unwrap_err();
    assert_eq!(e.field, "owner.email");
    assert_eq!(core.config_view(), before, "nothing changed");
    assert!(core.settings_snapshot().is_none(), "nothing to store");

    let body = json!({"ai_monthly_cap_micros": 1_000_000, "owner": {"name": "Robbie", "email": "robbie@swicked.example"},
        "rules": {"http_5xx_rate": {"threshold_ratio": 0.5}}, "channels": {"warning": []}});
    let (changed, lines) = core.put_settings(&body.to_string(), T0).unwrap();
    assert_eq!(changed, ["ai_monthly_cap_micros", "owner", "rules", "channels"]);
    assert_eq!(
        line(&lines[0]),
        json!({"kind": "shop_config_changed", "shop": "swicked", "changed": ["ai_monthly_cap_micros", "owner", "rules", "channels"]})
    );
    assert!(!lines.iter().any(|l| l.to_line().contains("robbie@")), "no email in any line");
    assert!(core.settings_snapshot().is_some());
    let view = core.config_view();
    assert_eq!(view["effective"]["ai_monthly_cap_micros"], 1_000_000);
    assert_eq!(view["effective"]["rules"]["http_5xx_rate"]["threshold_ratio"], 0.5);
    assert_eq!(view["effective"]["routing"]["warning"], json!([]));
    assert_eq!(view["effective"]["owner"]["email"], "robbie@swicked.example", "the operator reads what they set");
    let status = serde_json::to_value(core.status(T0)).unwrap();
    assert_eq!(status["config"]["effective"]["ai_monthly_cap_micros"], 1_000_000);
    assert_eq!(status["costs"]["ai"]["monthly_cap_micros"], 1_000_000, "the cap in force is the shop's");
    assert!(!status.to_string().contains("robbie@"), "the status shows no email");
    // The same document again changes nothing and logs nothing.
    let (changed, lines) = core.put_settings(&body.to_string(), T0 + 1).unwrap();
    assert!(changed.is_empty() && lines.is_empty());
    // A threshold of 50%: one 503 among three requests does not fire any more.
    let rs = vec![record("a", T0, 503, 0), record("b", T0, 200, 0), record("c", T0, 200, 0)];
    ingest(&mut core, rs, T0 + 10);
    core.tick(T0 + 11);
    assert_eq!(core.monitor().alert(RuleId::Http5xxRate).unwrap().state, AlertState::Inactive);
}

#[test]
fn two_caps_one_paused_shop_whose_owner_alone_gets_one_plain_email() {
    let mut paused = fast_core();
    let mut other = fast_core();
    let owner =
        |cap: u64| json!({"ai_monthly_cap_micros": cap, "owner": {"name": "Robbie", "email": "o@swicked.example"}});
    paused.put_settings(&owner(1_000_000).to_string(), T0).unwrap();
    other.put_settings(&owner(10_000_000).to_string(), T0).unwrap();
    for core in [&mut paused, &mut other] {
        ingest(core, vec![record("r1", T0, 200, 500_000), record("r2", T0, 200, 500_000)], T0 + 100);
        assert!(!core.ai_pause(T0 + 100).paused, "exactly the cap");
        // The record that crosses the cap pauses AI in the same call, not at the daily check.
        let o = ingest(core, vec![record("r3", T0 + 200, 200, 500_000)], T0 + 300);
        assert_eq!(o.lines.iter().any(|l| l.to_line().contains("ai_cost_projection")), core.ai_pause(T0 + 300).paused);
    }
    assert!(paused.ai_pause(T0 + 300).paused);
    assert!(!other.ai_pause(T0 + 300).paused);
    let due = paused.claim_due_deliveries(T0 + 300);
    let channels: Vec<Channel> = due.iter().map(|e| e.key.channel).collect();
    assert_eq!(channels, [Channel::Owner, Channel::Webhook], "the owner's email and the operator's alert");
    let email = due[0].notification.owner_email.clone().expect("rendered");
    assert_eq!(email.subject, "AI features are paused for your shop swicked");
    assert!(email.text.contains("Hello Robbie") && email.text.contains("over your monthly limit of $1.00"));
    assert_eq!(due[1].notification.rule, "ai_cost_projection", "the operator's payload is the usual one");
    assert!(due[1].notification.owner_email.is_none());
    assert!(other.claim_due_deliveries(T0 + 300).is_empty(), "the other owner gets nothing");
    // The operator resumes: the owner is told AI is back.
    paused.ai_resume(T0 + 400).unwrap();
    let q = queued(&mut paused, T0 + 400);
    assert!(q.contains(&("ai_cost_projection".into(), EventKind::Resolve, Channel::Owner)), "{q:?}");
}

#[test]
fn an_acked_incident_sends_no_repeat_but_sends_its_resolve() {
    let mut core = fast_core();
    fire(&mut core, T0);
    assert_eq!(queued(&mut core, T0 + 1), [("http_5xx_rate".into(), EventKind::Trigger, Channel::Webhook)]);
    assert_eq!(core.ack("d1_p95", "", T0 + 2).unwrap_err(), AckError::NotFiring);
    assert_eq!(core.ack("nope", "", T0 + 2).unwrap_err(), AckError::UnknownRule);
    assert!(matches!(core.ack("http_5xx_rate", "{\"who\": 1}", T0 + 2), Err(AckError::Invalid(_))));
    let (acks, lines) = core.ack("http_5xx_rate", r#"{"comment": "on it"}"#, T0 + 2).unwrap();
    assert_eq!(acks[0].dedup_key, "swicked:http_5xx_rate:1");
    assert_eq!(
        line(&lines[0]),
        json!({"kind": "alert_acked", "shop": "swicked", "rule": "http_5xx_rate", "dedup_key": "swicked:http_5xx_rate:1"})
    );
    // Still failing past the repeat interval (60 s): no repeat, and no alarm for it.
    for s in 1..=9 {
        let t = T0 + s * 10_000;
        ingest(&mut core, vec![record(&format!("f{s}"), t, 503, 0)], t);
        core.tick(t + 1);
    }
    assert!(queued(&mut core, T0 + 100_000).is_empty(), "no repeat while acked");
    let st = serde_json::to_value(core.status(T0 + 100_000)).unwrap();
    assert_eq!(st["acks"][0]["comment"], "on it");
    assert_eq!(st["notifications_held"][0]["held_by"]["by"], "ack");
    // Traffic recovers: the resolve goes out, and the ack is gone with the incident.
    ingest(&mut core, vec![record("ok", T0 + 110_000, 200, 0)], T0 + 110_000);
    core.tick(T0 + 110_001);
    assert_eq!(queued(&mut core, T0 + 110_001), [("http_5xx_rate".into(), EventKind::Resolve, Channel::Webhook)]);
    assert_eq!(serde_json::to_value(core.status(T0 + 110_001)).unwrap()["acks"], json!([]));
    // A new incident is not acked.
    fire(&mut core, T0 + 120_000);
    assert_eq!(queued(&mut core, T0 + 120_001), [("http_5xx_rate".into(), EventKind::Trigger, Channel::Webhook)]);
}

#[test]
fn a_silence_holds_the_trigger_which_goes_out_when_it_ends_if_still_firing() {
    let mut core = fast_core();
    core.enable_fleet();
    let end = T0 + 30_000;
    let r = core.fleet_report(T0).expect("first contact");
    core.fleet_answered(&r, answer(vec![silence("swicked", "http_5xx_rate", T0, end)], vec![], T0), T0);
    fire(&mut core, T0 + 1_000);
    let r = core.fleet_report(T0 + 1_001).expect("the firing set changed");
    assert_eq!(r.firing[0].rule, "http_5xx_rate");
    let lines =
        core.fleet_answered(&r, answer(vec![silence("swicked", "http_5xx_rate", T0, end)], vec![], T0), T0 + 1_001);
    assert!(lines.is_empty(), "{lines:?}");
    assert!(queued(&mut core, T0 + 1_001).is_empty(), "held by the silence");
    let st = serde_json::to_value(core.status(T0 + 1_001)).unwrap();
    assert_eq!(rule_state(&st, "http_5xx_rate"), "firing", "recorded and shown");
    assert_eq!(
        st["notifications_held"][0]["held_by"],
        json!({"by": "silence", "silence_id": "sil_1", "until_ms": end})
    );
    assert_eq!(st["silences"][0]["state"], "active");
    // Keep failing; the alarm wakes at the silence's end and the trigger goes out then.
    for s in 1..=5 {
        let t = T0 + 1_000 + s * 5_000;
        ingest(&mut core, vec![record(&format!("f{s}"), t, 503, 0)], t);
        core.tick(t + 1);
    }
    assert!(queued(&mut core, T0 + 26_002).is_empty());
    assert!(core.next_due_ms(T0 + 26_002).unwrap() <= end);
    ingest(&mut core, vec![record("f_end", end - 500, 503, 0)], end - 500);
    core.tick(end);
    let q = queued(&mut core, end);
    assert_eq!(q, [("http_5xx_rate".into(), EventKind::Trigger, Channel::Webhook)]);
    // The expired silence no longer matches: nothing is held.
    let st = serde_json::to_value(core.status(end + 1)).unwrap();
    assert_eq!(st["silences"][0]["state"], "expired");
    assert_eq!(st["notifications_held"], json!([]));
}

fn line(l: &LogLine) -> serde_json::Value {
    serde_json::from_str(&l.to_line()).unwrap()
}

fn rule_state(st: &serde_json::Value, rule: &str) -> String {
    st["rules"].as_array().unwrap().iter().find(|r| r["rule"] == rule).unwrap()["state"].as_str().unwrap().into()
}

#[test]
fn a_held_cron_alert_is_released_when_its_silence_is_lifted_and_dropped_if_it_resolves_first() {
    let mut core = core_with(
        ShopVars { ai_monthly_cap_micros: Some("1000000"), ..ShopVars::default() },
        vec![Channel::Webhook],
        false,
    );
    core.enable_fleet();
    let r = core.fleet_report(T0).unwrap();
    core.fleet_answered(&r, answer(vec![silence("*", "ai_cost_projection", T0, T0 + 60_000)], vec![], T0), T0);
    let o = ingest(&mut core, vec![record("r1", T0, 200, 2_000_000)], T0 + 10);
    let l = line(o.lines.iter().find(|l| l.to_line().contains("cron_alert")).expect("logged"));
    assert_eq!((&l["queued"], &l["held_by"]["by"]), (&json!(0), &json!("silence")), "{l}");
    assert!(core.ai_pause(T0 + 10).paused, "the pause itself is not held: only its page");
    let silenced = vec![silence("*", "ai_cost_projection", T0, T0 + 60_000)];
    let r = core.fleet_report(T0 + 10).expect("the firing set changed");
    assert!(core.fleet_answered(&r, answer(silenced, vec![], T0 + 10), T0 + 10).is_empty());
    assert!(queued(&mut core, T0 + 10).is_empty());
    // The operator expires the silence early: the shop is asked to refresh, the answer drops
    // it and the page goes out.
    assert!(core.fleet_report(T0 + 20).is_none());
    core.request_fleet_refresh();
    let r = core.fleet_report(T0 + 20).expect("refresh");
    let lines = core.fleet_answered(&r, answer(vec![], vec![], T0 + 20), T0 + 20);
    let l = line(&lines[0]);
    assert_eq!(
        (&l["kind"], &l["rule"], &l["queued"]),
        (&json!("notification_released"), &json!("ai_cost_projection"), &json!(1))
    );
    assert_eq!(queued(&mut core, T0 + 20), [("ai_cost_projection".into(), EventKind::Trigger, Channel::Webhook)]);
    // A second incident held then resolved before its hold ends: neither is sent.
    let mut other = core_with(
        ShopVars { ai_monthly_cap_micros: Some("1000000"), ..ShopVars::default() },
        vec![Channel::Webhook],
        false,
    );
    other.enable_fleet();
    let r = other.fleet_report(T0).unwrap();
    other.fleet_answered(&r, answer(vec![silence("*", "*", T0, T0 + 60_000)], vec![], T0), T0);
    ingest(&mut other, vec![record("r1", T0, 200, 2_000_000)], T0 + 10);
    other.ai_resume(T0 + 20).unwrap();
    assert!(queued(&mut other, T0 + 70_000).is_empty(), "never triggered, never resolved");
}

#[test]
fn a_new_trigger_awaits_the_fleet_answer_a_fleet_incident_holds_it_and_a_dead_fleet_does_not() {
    let mut core = fast_core();
    core.enable_fleet();
    let r = core.fleet_report(T0).unwrap();
    core.fleet_answered(&r, answer(vec![], vec![], T0), T0);
    assert!(core.fleet_report(T0 + 1).is_none(), "nothing new to say");
    fire(&mut core, T0 + 1_000);
    assert!(queued(&mut core, T0 + 1_001).is_empty(), "awaits the fleet's answer");
    let st = serde_json::to_value(core.status(T0 + 1_001)).unwrap();
    assert_eq!(st["notifications_held"][0]["held_by"]["by"], "awaiting_fleet");
    // The fleet says a fleet incident of the rule is open: held (recorded, shown).
    let r = core.fleet_report(T0 + 1_001).unwrap();
    let mute = FleetMute { rule: "http_5xx_rate".into(), dedup_key: "fleet:http_5xx_rate:1".into(), since_ms: T0 };
    core.fleet_answered(&r, answer(vec![], vec![mute], T0 + 1_001), T0 + 1_001);
    assert!(queued(&mut core, T0 + 1_002).is_empty());
    let st = serde_json::to_value(core.status(T0 + 1_002)).unwrap();
    assert_eq!(st["notifications_held"][0]["held_by"], json!({"by": "fleet", "dedup_key": "fleet:http_5xx_rate:1"}));
    // A second incident while the fleet cannot be reached: it pages (the fleet incident the
    // shop last heard of holds nothing while nobody can end it).
    ingest(&mut core, vec![record("ok", T0 + 2_000, 200, 0)], T0 + 2_000);
    core.tick(T0 + 8_000);
    assert!(queued(&mut core, T0 + 8_000).is_empty(), "no resolve for a trigger never sent");
    fire(&mut core, T0 + 9_000);
    assert!(core.fleet_report(T0 + 9_001).is_some());
    let lines = core.fleet_failed("fleet object unreachable", T0 + 9_001);
    assert_eq!(
        line(&lines[0]),
        json!({"kind": "fleet_exchange_failed", "shop": "swicked", "error": "fleet object unreachable"})
    );
    assert_eq!(queued(&mut core, T0 + 9_001), [("http_5xx_rate".into(), EventKind::Trigger, Channel::Webhook)]);
    assert!(core.fleet_report(T0 + 9_002).is_none(), "backing off");
    assert!(core.fleet_report(T0 + 9_001 + FLEET_RETRY_MS).is_some());
}

#[test]
fn a_monitor_with_traffic_that_does_not_evaluate_reports_itself_stalled() {
    let vars = ShopVars { alert_rules: Some(FAST), deadman_interval_s: Some("2"), ..ShopVars::default() };
    let mut core = core_with(vars, vec![Channel::Webhook], false);
    core.enable_fleet();
    let r = core.fleet_report(T0).unwrap();
    core.fleet_answered(&r, answer(vec![], vec![], T0), T0);
    // Records keep coming, no tick runs (a stuck alarm): stalled after 3 intervals (6 s).
    for s in 0..=6 {
        let t = T0 + s * 1_000;
        ingest(&mut core, vec![record(&format!("r{s}"), t, 200, 0)], t);
        assert_eq!(core.stalled_since_ms(t).is_some(), s >= 6, "after {s} s");
    }
    let r: FleetReport = core.fleet_report(T0 + 6_000).expect("the stall is news");
    assert_eq!(r.stalled_since_ms, Some(T0));
    let lines = core.fleet_answered(&r, answer(vec![], vec![], T0 + 6_000), T0 + 6_000);
    assert_eq!(
        line(&lines[0]),
        json!({"kind": "monitor_stalled", "shop": "swicked", "stalled_since_ms": T0, "last_evaluated_ms": null})
    );
    // It evaluates again: no longer stalled, and the fleet hears it.
    core.tick(T0 + 7_000);
    let r = core.fleet_report(T0 + 7_000).expect("recovered");
    assert_eq!(r.stalled_since_ms, None);
    assert_eq!(r.last_evaluated_ms, Some(T0 + 7_000));
}

#[test]
fn an_evaluating_monitor_heartbeats_twice_per_deadman_interval() {
    let vars = ShopVars { alert_rules: Some(FAST), deadman_interval_s: Some("10"), ..ShopVars::default() };
    let mut core = core_with(vars, vec![Channel::Webhook], false);
    core.enable_fleet();
    let mut reports = Vec::new();
    for s in 0..20 {
        let t = T0 + s * 1_000;
        ingest(&mut core, vec![record(&format!("r{s}"), t, 200, 0)], t);
        core.tick(t);
        if let Some(r) = core.fleet_report(t) {
            core.fleet_answered(&r, answer(vec![], vec![], t), t);
            reports.push(s);
        }
    }
    assert_eq!(reports, [0, 5, 10, 15], "one every interval / 2 while evaluating");
}

#[test]
fn severities_go_to_their_channels_and_a_shop_can_route_its_own() {
    let vars = ShopVars {
        alert_rules: Some(FAST),
        alert_routing: Some(r#"{"critical": ["webhook"], "warning": ["email"]}"#),
        ..ShopVars::default()
    };
    let mut core = core_with(vars, vec![Channel::Webhook, Channel::Email], false);
    fire(&mut core, T0);
    assert_eq!(queued(&mut core, T0 + 1), [("http_5xx_rate".into(), EventKind::Trigger, Channel::Webhook)]);
    // The shop sends its critical alerts to email as well; high is left to every channel.
    let (changed, _) = core.put_settings(r#"{"channels": {"critical": ["email", "webhook"]}}"#, T0 + 2).unwrap();
    assert_eq!(changed, ["channels"]);
    ingest(&mut core, vec![record("ok", T0 + 10_000, 200, 0)], T0 + 10_000);
    core.tick(T0 + 10_001);
    let q = queued(&mut core, T0 + 10_001);
    assert_eq!(
        q,
        [
            ("http_5xx_rate".into(), EventKind::Resolve, Channel::Webhook),
            ("http_5xx_rate".into(), EventKind::Resolve, Channel::Email)
        ]
    );
    let view = core.config_view();
    assert_eq!(
        view["effective"]["routing"],
        json!({"critical": ["webhook", "email"], "high": ["webhook", "email"], "warning": ["email"]})
    );
    assert_eq!(view["defaults"]["routing"]["critical"], json!(["webhook"]));
    // A bad ALERT_ROUTING is a config error and every severity goes everywhere.
    let bad = ShopVars { alert_routing: Some(r#"{"urgent": []}"#), ..ShopVars::default() };
    let cfg = ShopMonitorConfig::from_vars(bad, vec![Channel::Webhook]);
    assert!(cfg.cron_errors[0].starts_with("ALERT_ROUTING.urgent: is not a severity"), "{:?}", cfg.cron_errors);
}
