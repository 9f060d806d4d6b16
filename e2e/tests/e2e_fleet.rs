//! End-to-end: fleet alerting in real workerd (`wrangler dev --env test`): per-shop settings
//! and their validation, the owner's email, acks, silences, fleet incidents across shops, the
//! dead-man's switch and a stalled monitor. Alerts go to a local webhook sink, emails through
//! the local `send_email` binding (read back from wrangler's log and files).

use lookout_e2e as support;

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use support::{epoch_s, system_s, wait_for, Opts, Received, Server, Sink};

fn event(r: &Received, shop: &str, rule: &str, event: &str) -> bool {
    let v = r.json();
    v["shop"] == shop && v["rule"] == rule && v["event"] == event
}

fn events(sink: &Sink, shop: &str, rule: &str) -> Vec<Value> {
    sink.received().iter().map(|r| r.json()).filter(|v| v["shop"] == shop && v["rule"] == rule).collect()
}

fn rule<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["rules"].as_array().unwrap().iter().find(|r| r["rule"] == name).unwrap_or_else(|| panic!("no rule {name}"))
}

fn now_s() -> f64 {
    system_s(SystemTime::now())
}

fn rfc3339(epoch_s: f64) -> String {
    chrono::DateTime::from_timestamp_millis((epoch_s * 1000.0) as i64).unwrap().to_rfc3339()
}

/// 5xx requests to `shop` at about `per_s` a second for `secs` seconds.
fn burst(s: &Server, shop: &str, per_s: u32, secs: f64) {
    let t0 = now_s();
    while now_s() - t0 < secs {
        assert_eq!(s.shop_req(shop, "GET", "/__test/fault?status=503").send().status, 503);
        std::thread::sleep(Duration::from_millis(1000 / u64::from(per_s)));
    }
}

fn put_config(s: &Server, shop: &str, body: &Value) -> support::Resp {
    s.ops("PUT", &format!("/ops/shops/{shop}/config")).json(body).send()
}

#[test]
fn shop_settings_reject_every_bad_field_and_two_caps_pause_one_shop_whose_owner_alone_is_told() {
    let sink = Sink::start();
    let claude = Sink::start_with(|_| {
        (200, r#"{"content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":0,"output_tokens":500000}}"#.into())
    });
    let s = Server::start_with(
        Opts::default()
            .var("ALERT_WEBHOOK_URL", &sink.url("/hook"))
            .var("ALERT_EMAIL_FROM", "alerts@lookout.test")
            // 1 micro-dollar per output token: each AI call costs $0.50.
            .var("AI_INPUT_PER_MTOK_MICROS", "0")
            .var("AI_OUTPUT_PER_MTOK_MICROS", "1000000")
            .var("ANTHROPIC_API_BASE", &claude.url(""))
            .var("ANTHROPIC_API_KEY", "sk-ant-test-key-0000000000"),
    );
    // Every field's bad value: 400 naming the field, and nothing changes.
    let before = s.ops("GET", "/ops/shops/swicked/config").send();
    assert_eq!(before.status, 200, "{}", before.body);
    let bad = [
        (json!({"twilio_weekly_budget_micros": -1}), "twilio_weekly_budget_micros"),
        (json!({"twilio_weekly_budget_micros": "5"}), "twilio_weekly_budget_micros"),
        (json!({"ai_monthly_cap_micros": 1.5}), "ai_monthly_cap_micros"),
        (json!({"owner": "robbie"}), "owner"),
        (json!({"owner": {"name": "Robbie"}}), "owner.email"),
        (json!({"owner": {"name": "Robbie", "email": "robbie-at-swicked"}}), "owner.email"),
        (json!({"owner": {"name": "", "email": "robbie@swicked.example"}}), "owner.name"),
        (json!({"rules": {"http_5xx_rate": {"window_s": 0}}}), "rules.http_5xx_rate.window_s"),
        (json!({"rules": {"d1_p95": {"window_s": 3600}}}), "rules.d1_p95.window_s"),
        (json!({"rules": {"bucket_s": 2}}), "rules.bucket_s"),
        (json!({"rules": {"nope": {}}}), "rules.nope"),
        (json!({"channels": {"critical": ["pagerduty"]}}), "channels.critical[0]"),
        (json!({"channels": ["sms"]}), "channels[0]"),
        (json!({"colour": "blue"}), "colour"),
    ];
    for (body, field) in bad {
        // A valid cap beside the bad field: refused whole.
        let mut body = body;
        if body.get("ai_monthly_cap_micros").is_none() {
            body["ai_monthly_cap_micros"] = json!(123);
        }
        let r = put_config(&s, "swicked", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        let v = r.json();
        assert_eq!((v["error"].as_str(), v["field"].as_str()), (Some("InvalidConfig"), Some(field)), "{body}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with(field), "{v}");
        assert_eq!(v["request_id"].as_str(), r.request_id.as_deref());
        assert!(!v["message"].as_str().unwrap().contains("robbie-at-swicked"), "the value is not echoed: {v}");
    }
    let r = s.ops("PUT", "/ops/shops/swicked/config").body("{").send();
    assert_eq!((r.status, r.json()["field"].as_str()), (400, Some("body")));
    assert_eq!(s.ops("GET", "/ops/shops/swicked/config").send().body, before.body, "nothing changed");
    assert_eq!(s.req("PUT", "/ops/shops/swicked/config").body("{}").send().status, 401);
    assert_eq!(put_config(&s, "nowhere", &json!({})).status, 404);

    // Two shops, two caps, two owners.
    let owner = |cap: u64, name: &str, email: &str| json!({"ai_monthly_cap_micros": cap, "owner": {"name": name, "email": email}});
    let r = put_config(&s, "swicked", &owner(1_000_000, "Robbie", "robbie@swicked.example"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["changed"], json!(["ai_monthly_cap_micros", "owner"]));
    assert_eq!(r.json()["config"]["effective"]["ai_monthly_cap_micros"], 1_000_000);
    assert_eq!(put_config(&s, "demo", &owner(10_000_000, "Sam", "sam@demo.example")).status, 200);
    let changes: Vec<Value> = s.json_lines().into_iter().filter(|v| v["kind"] == "shop_config_changed").collect();
    assert_eq!(changes.len(), 2, "one line per change: {changes:?}");
    let st = s.status("swicked");
    assert_eq!(st["config"]["effective"]["ai_monthly_cap_micros"], 1_000_000, "{}", st["config"]);
    assert_eq!(st["config"]["settings"]["owner"], json!({"name": "Robbie", "email_set": true}));
    assert_eq!(st["costs"]["ai"]["monthly_cap_micros"], 1_000_000);

    // $1.50 of AI in each shop, no daily check: the crossing record pauses swicked within
    // seconds; demo stays under its $10.
    let ticket = |shop: &str| if shop == "demo" { 3001 } else { 2506 };
    let ai =
        |shop: &str| s.shop_req(shop, "POST", "/api/ai/summarize").json(&json!({"ticket_id": ticket(shop)})).send();
    for shop in ["swicked", "demo"] {
        for _ in 0..3 {
            let r = ai(shop);
            assert_eq!(r.status, 200, "{shop}: {}", r.body);
        }
    }
    let crossed = now_s();
    let paused =
        wait_for(Duration::from_secs(10), || (s.status("swicked")["costs"]["ai"]["paused"] == true).then(now_s));
    let paused = paused.expect("swicked was not paused as the spend happened");
    assert!(paused - crossed < 5.0, "paused {:.1} s after the crossing request", paused - crossed);
    let st = s.status("swicked");
    assert_eq!(st["costs"]["ai"]["pause"]["reason"], "spent_over_cap");
    assert!(st["costs"]["ai"]["last_evaluated_at"].is_null(), "no daily check ran: {}", st["costs"]["ai"]);
    let r = ai("swicked");
    assert_eq!((r.status, r.json()["error"].as_str()), (503, Some("AiPaused")), "{}", r.body);
    assert_eq!(ai("demo").status, 200);
    let demo = wait_for(Duration::from_secs(10), || {
        let st = s.status("demo");
        (st["costs"]["ai"]["month"]["spent_micros"] == 2_000_000).then_some(st)
    })
    .expect("demo's fourth call reached its monitor");
    assert_eq!(demo["costs"]["ai"]["paused"], false, "$2 is under demo's $10 cap");

    // The operator gets the alert; the paused shop's owner gets one plain-language email.
    let fired = sink
        .wait_for(Duration::from_secs(10), |r| event(r, "swicked", "ai_cost_projection", "trigger"))
        .expect("the operator got no alert");
    assert_eq!(fired.json()["action"], "Pause AI; notify the shop owner");
    let sent = wait_for(Duration::from_secs(10), || {
        (s.status("swicked")["outbox"]["sent_total"].as_u64() >= Some(2)).then_some(())
    });
    assert!(sent.is_some(), "the webhook and the owner's email were not both sent");
    let emails = s.sent_emails();
    let to_robbie: Vec<_> = emails.iter().filter(|e| e.to.contains("robbie@swicked.example")).collect();
    assert_eq!(to_robbie.len(), 1, "{emails:?}");
    let m = to_robbie[0];
    assert_eq!(m.subject, "AI features are paused for your shop swicked");
    assert!(m.from.contains("alerts@lookout.test"), "{m:?}");
    for words in ["Hello Robbie", "What happened:", "What this means for you:", "What happens next:", "$1.50", "$1.00"]
    {
        assert!(m.text.contains(words), "{words:?} not in the owner's email:\n{}", m.text);
    }
    for other in ["demo", "sam@", "ai_cost_projection", "dedup"] {
        assert!(!m.text.contains(other), "{other:?} in swicked's owner email:\n{}", m.text);
    }
    assert!(!emails.iter().any(|e| e.to.contains("sam@demo.example")), "demo's owner was told something: {emails:?}");
    assert!(events(&sink, "demo", "ai_cost_projection").is_empty());
    // No owner email in any line the Worker printed.
    for l in s.json_lines() {
        let t = l.to_string();
        assert!(!t.contains("robbie@swicked") && !t.contains("sam@demo"), "an owner's email in a line: {t}");
    }
}

#[test]
fn an_acked_incident_sends_no_repeat_but_its_resolve() {
    let sink = Sink::start();
    // Two shops failing at once would be a fleet incident (2 of 2 shops): off here, so each
    // shop pages on its own.
    let s = Server::start_with(
        Opts::default().var("ALERT_WEBHOOK_URL", &sink.url("/hook")).var("FLEET_ALERTING", r#"{"enabled": false}"#),
    );
    // Both shops repeat every 3 s; demo is the control that shows repeats do happen.
    for shop in ["swicked", "demo"] {
        let r = put_config(&s, shop, &json!({"rules": {"repeat_interval_s": 3}}));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    std::thread::scope(|scope| {
        scope.spawn(|| burst(&s, "demo", 6, 4.5));
        burst(&s, "swicked", 6, 4.5);
    });
    let fired = sink
        .wait_for(Duration::from_secs(10), |r| event(r, "swicked", "http_5xx_rate", "trigger"))
        .expect("no trigger");
    let key = fired.json()["dedup_key"].as_str().unwrap().to_string();
    assert_eq!(s.ops("POST", "/ops/shops/swicked/alerts/d1_p95/ack").send().status, 409);
    let r = s.ops("POST", "/ops/shops/swicked/alerts/http_5xx/ack").send();
    assert_eq!((r.status, r.json()["error"].as_str()), (404, Some("UnknownRule")), "{}", r.body);
    assert_eq!(s.req("POST", "/ops/shops/swicked/alerts/http_5xx_rate/ack").send().status, 401);
    let r = s
        .ops("POST", "/ops/shops/swicked/alerts/http_5xx_rate/ack")
        .json(&json!({"comment": "deploying a fix"}))
        .send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["acked"][0]["dedup_key"], key.as_str());
    let st = s.status("swicked");
    assert_eq!(st["acks"][0]["dedup_key"], key.as_str(), "{}", st["acks"]);
    // Both keep failing: demo repeats twice, swicked never.
    std::thread::scope(|scope| {
        scope.spawn(|| burst(&s, "demo", 6, 8.0));
        burst(&s, "swicked", 6, 8.0);
    });
    let repeated = sink.wait_for(Duration::from_secs(10), |r| event(r, "demo", "http_5xx_rate", "repeat-2"));
    assert!(repeated.is_some(), "the control shop never repeated: {:?}", events(&sink, "demo", "http_5xx_rate"));
    assert_eq!(rule(&s.status("swicked"), "http_5xx_rate")["state"], "firing");
    let held = s.status("swicked")["notifications_held"].clone();
    assert_eq!(held[0]["held_by"]["by"], "ack", "{held}");
    // Recovery: the resolve goes out.
    let resolved = sink
        .wait_for(Duration::from_secs(15), |r| event(r, "swicked", "http_5xx_rate", "resolve"))
        .expect("no resolve");
    assert_eq!(resolved.json()["dedup_key"], key.as_str());
    let sent: Vec<String> =
        events(&sink, "swicked", "http_5xx_rate").iter().map(|v| v["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(sent, ["trigger", "resolve"], "no repeat while acked");
}

#[test]
fn a_silence_holds_an_incident_back_until_it_ends_and_an_expired_one_no_longer_matches() {
    let sink = Sink::start();
    let s = Server::start_with(Opts::default().var("ALERT_WEBHOOK_URL", &sink.url("/hook")));
    // Bad silences name their field.
    let ok = json!({"matchers": {"shop": "swicked", "rule": "http_5xx_rate"}, "ends_at": rfc3339(now_s() + 3600.0),
        "comment": "deploying"});
    let with = |k: &str, v: Value| {
        let mut o = ok.clone();
        o[k] = v;
        o
    };
    for (body, field) in [
        (with("matchers", json!({"shop": "nowhere", "rule": "*"})), "matchers.shop"),
        (with("matchers", json!({"shop": "*", "rule": "http_5xx"})), "matchers.rule"),
        (with("ends_at", json!("tomorrow")), "ends_at"),
        (with("ends_at", json!(rfc3339(now_s() - 60.0))), "ends_at"),
        (with("comment", json!("")), "comment"),
    ] {
        let r = s.ops("POST", "/ops/silences").json(&body).send();
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["field"], field, "{}", r.body);
    }
    assert_eq!(s.req("GET", "/ops/silences").send().status, 401);
    // Expire early: 200 once, then 409; unknown: 404.
    let r = s.ops("POST", "/ops/silences").json(&with("matchers", json!({"shop": "demo", "rule": "*"}))).send();
    assert_eq!(r.status, 201, "{}", r.body);
    let early = r.json()["silence"]["id"].as_str().unwrap().to_string();
    let r = s.ops("DELETE", &format!("/ops/silences/{early}")).send();
    assert_eq!((r.status, r.json()["silence"]["state"].as_str()), (200, Some("expired")), "{}", r.body);
    assert_eq!(s.ops("DELETE", &format!("/ops/silences/{early}")).send().status, 409);
    assert_eq!(s.ops("DELETE", "/ops/silences/sil_999").send().status, 404);

    // A silence on (swicked, http_5xx_rate) for the next 9 s.
    let ends = now_s() + 9.0;
    let r = s.ops("POST", "/ops/silences").json(&with("ends_at", json!(rfc3339(ends)))).send();
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["silence"]["id"].as_str().unwrap().to_string();
    // Failing for 12 s: it fires (recorded, shown) but is held until the silence ends.
    let t0 = now_s();
    std::thread::scope(|scope| {
        scope.spawn(|| burst(&s, "swicked", 6, 12.0));
        let firing = wait_for(Duration::from_secs(8), || {
            let st = s.status("swicked");
            (rule(&st, "http_5xx_rate")["state"] == "firing").then_some(st)
        })
        .expect("the silenced incident did not fire");
        assert!(now_s() < ends, "fired only after the silence ended: the test proves nothing");
        let held = &firing["notifications_held"][0];
        assert_eq!(
            (held["held_by"]["by"].as_str(), held["held_by"]["silence_id"].as_str()),
            (Some("silence"), Some(id.as_str())),
            "{held}"
        );
        assert_eq!(firing["silences"][0]["state"], "active", "{}", firing["silences"]);
        assert!(events(&sink, "swicked", "http_5xx_rate").is_empty(), "notified while silenced");
    });
    let fired = sink
        .wait_for(Duration::from_secs(10), |r| event(r, "swicked", "http_5xx_rate", "trigger"))
        .expect("no trigger at the silence's end");
    let notified = epoch_s(&fired.json()["notified_at"]);
    assert!(notified >= ends - 0.01, "notified at {notified} before the silence ended at {ends}");
    assert!(notified - ends < 3.0, "notified {:.1} s after the silence ended", notified - ends);
    assert!(epoch_s(&fired.json()["since"]) < ends, "it was firing during the silence");
    eprintln!(
        "silenced trigger: {:.0} ms after the silence ended (traffic began {:.1} s before)",
        (notified - ends) * 1000.0,
        ends - t0
    );
    let listed = s.ops("GET", "/ops/silences").send().json();
    let mine = listed["silences"].as_array().unwrap().iter().find(|x| x["id"] == id.as_str()).unwrap().clone();
    assert_eq!(mine["state"], "expired", "{mine}");
    assert_eq!(s.status("swicked")["silences"][0]["state"], "expired");
    // The incident resolves; a new one after the expired silence notifies at once.
    sink.wait_for(Duration::from_secs(15), |r| event(r, "swicked", "http_5xx_rate", "resolve")).expect("no resolve");
    burst(&s, "swicked", 6, 4.5);
    let second = sink
        .wait_for(Duration::from_secs(10), |r| {
            event(r, "swicked", "http_5xx_rate", "trigger") && r.json()["dedup_key"] != fired.json()["dedup_key"]
        })
        .expect("the expired silence still held the next incident");
    let p = second.json();
    assert!(epoch_s(&p["notified_at"]) - epoch_s(&p["since"]) < 2.0, "{p}");
}

#[test]
fn six_shops_firing_the_same_rule_make_one_fleet_alert_instead_of_their_pages_and_it_resolves_once() {
    let sink = Sink::start();
    let shops: Vec<String> = (1..=30).map(|i| format!("shop{i:02}")).collect();
    let s =
        Server::start_with(Opts::default().var("ALERT_WEBHOOK_URL", &sink.url("/hook")).var("SHOPS", &shops.join(",")));
    let firing = &shops[..6];
    let server = &s;
    std::thread::scope(|scope| {
        for shop in firing {
            scope.spawn(move || burst(server, shop, 4, 6.0));
        }
    });
    let fleet = sink
        .wait_for(Duration::from_secs(15), |r| event(r, "*", "fleet:http_5xx_rate", "trigger"))
        .expect("no fleet alert");
    let p = fleet.json();
    // The operator's fleet board shows it beside the shops (it stays open until every shop
    // resolves, seconds after the bursts).
    let board = s.ops("GET", "/ops/fleet").send().json();
    let on_board = board["fleet_incidents"].as_array().cloned().unwrap_or_default();
    assert!(
        on_board.iter().any(|i| i["rule"] == "fleet:http_5xx_rate" && i["dedup_key"] == "fleet:http_5xx_rate:1"),
        "GET /ops/fleet: {}",
        board["fleet_incidents"]
    );
    let fleet_status = s.ops("GET", "/ops/fleet/status").send().json();
    let threshold = fleet_status["config"]["threshold_shops"].as_u64().unwrap();
    assert_eq!(threshold, 5, "5 shops, before 20% of 30: {}", fleet_status["config"]);
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["dedup_key"], "fleet:http_5xx_rate:1");
    assert!(p["shops"].as_array().unwrap().len() >= threshold as usize, "{p}");
    // Every shop records its incident and shows it...
    let all_firing = wait_for(Duration::from_secs(10), || {
        firing.iter().all(|shop| rule(&s.status(shop), "http_5xx_rate")["fired_at"].is_string()).then_some(())
    });
    assert!(all_firing.is_some(), "not every shop recorded its incident");
    // ...but only those that fired before the threshold paged, before the fleet alert opened.
    let since = epoch_s(&p["since"]);
    let pages: Vec<Value> = sink
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|v| v["rule"] == "http_5xx_rate" && v["event"] == "trigger")
        .collect();
    assert_eq!(pages.len() as u64, threshold - 1, "pages: {pages:?}");
    assert!(pages.iter().all(|v| v["dedup_key"].as_str().unwrap().ends_with(":http_5xx_rate:1")));
    let _ = since;
    let paged: Vec<&str> = pages.iter().map(|v| v["shop"].as_str().unwrap()).collect();
    let held: Vec<&String> = firing.iter().filter(|sh| !paged.contains(&sh.as_str())).collect();
    assert_eq!(held.len(), 2);
    for shop in &held {
        let st = s.status(shop);
        assert_eq!(st["notifications_held"][0]["held_by"]["by"], "fleet", "{shop}: {}", st["notifications_held"]);
    }
    // Traffic stopped: every shop resolves, and the fleet alert resolves once.
    let resolved = sink
        .wait_for(Duration::from_secs(20), |r| event(r, "*", "fleet:http_5xx_rate", "resolve"))
        .expect("the fleet alert did not resolve");
    assert_eq!(resolved.json()["dedup_key"], "fleet:http_5xx_rate:1");
    let done = wait_for(Duration::from_secs(10), || {
        let st = s.ops("GET", "/ops/fleet/status").send().json();
        (st["outbox"]["sent_total"].as_u64() == Some(2) && st["outbox"]["backlog"] == 0).then_some(st)
    });
    assert!(done.is_some(), "the fleet sent more or less than its trigger and resolve");
    // Shops that paged close their own incidents; held shops send nothing at all.
    for shop in &paged {
        sink.wait_for(Duration::from_secs(10), |r| event(r, shop, "http_5xx_rate", "resolve"))
            .unwrap_or_else(|| panic!("{shop} paged but never resolved"));
    }
    for shop in &held {
        assert!(
            events(&sink, shop, "http_5xx_rate").is_empty(),
            "{shop} was held but sent {:?}",
            events(&sink, shop, "http_5xx_rate")
        );
    }
    let fleet_events: Vec<String> =
        events(&sink, "*", "fleet:http_5xx_rate").iter().map(|v| v["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(fleet_events, ["trigger", "resolve"]);
}

#[test]
fn the_heartbeat_reaches_its_sink_at_its_interval_and_a_stopped_monitor_raises_monitor_stalled() {
    let sink = Sink::start();
    let beat = Sink::start();
    let s = Server::start_with(
        Opts::default()
            .var("ALERT_WEBHOOK_URL", &sink.url("/hook"))
            .var("DEADMAN_URL", &beat.url("/ping/abc"))
            .var("DEADMAN_INTERVAL_S", "2"),
    );
    // Traffic: swicked's monitor evaluates, and the pings count it.
    let t_end = now_s() + 7.0;
    while now_s() < t_end {
        assert_eq!(s.shop_req("swicked", "GET", "/health").send().status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let pings = wait_for(Duration::from_secs(10), || {
        let p: Vec<Value> = beat.received().iter().map(|r| r.json()).collect();
        (p.len() >= 4).then_some(p)
    })
    .expect("fewer than 4 heartbeats");
    assert!(beat.received().iter().all(|r| r.path == "/ping/abc"));
    // On the fleet object's own clock, the k-th ping is k intervals after the first (late
    // alarms may delay one, never bunch them up).
    let at: Vec<f64> = pings.iter().map(|p| epoch_s(&p["at"])).collect();
    for (k, t) in at.iter().enumerate().skip(1) {
        let off = t - at[0] - 2.0 * k as f64;
        assert!((-0.05..1.5).contains(&off), "ping {k} at +{:.2} s, expected +{} s", t - at[0], 2 * k);
    }
    assert!(pings.iter().any(|p| p["monitors_evaluated"] == 1), "{pings:?}");
    assert_eq!(pings[0]["interval_s"], 2);

    // Stop swicked's evaluation (test hook); its traffic goes on: after 3 intervals (6 s)
    // the fleet object raises monitor_stalled for it.
    let r = s.ops("POST", "/ops/shops/swicked/test/evaluation").json(&json!({"stopped": true})).send();
    assert_eq!(r.status, 200, "{}", r.body);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stalled = std::thread::scope(|scope| {
        let traffic = scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                s.shop_req("swicked", "GET", "/health").send();
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let fired = sink.wait_for(Duration::from_secs(20), |r| event(r, "swicked", "monitor_stalled", "trigger"));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        traffic.join().unwrap();
        fired
    });
    let p = stalled.expect("monitor_stalled did not fire").json();
    assert_eq!(p["severity"], "critical");
    assert!(p["value"].as_f64().unwrap() >= 6.0, "{p}");
    let quiet = wait_for(Duration::from_secs(10), || {
        let p = beat.received().last()?.json();
        (p["stalled"] == json!(["swicked"]) && p["monitors_evaluated"] == 0).then_some(p)
    });
    assert!(
        quiet.is_some(),
        "the heartbeat did not report the stalled monitor: {:?}",
        beat.received().last().map(|r| r.json())
    );
    // Evaluation again: it resolves.
    let r = s.ops("POST", "/ops/shops/swicked/test/evaluation").json(&json!({"stopped": false})).send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.shop_req("swicked", "GET", "/health").send().status, 200);
    sink.wait_for(Duration::from_secs(15), |r| event(r, "swicked", "monitor_stalled", "resolve"))
        .expect("monitor_stalled did not resolve");
}
