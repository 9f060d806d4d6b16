//! End-to-end: crons in real workerd (`wrangler dev --env test`). Crons never fire by
//! themselves there, which makes the missed case natural; runs are triggered through
//! `/__scheduled`. The watchdog runs on the ShopMonitor's alarm, alerts go to a local
//! webhook sink, the reconciliation reads the local D1, and the summary lines are read back
//! from the server's output.

use lookout_e2e as support;

use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::{epoch_s, root, system_s, wait_for, Opts, Received, Server, Sink, OPS_TOKEN};

fn cron_status<'a>(status: &'a Value, cron: &str) -> &'a Value {
    status["crons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cron"] == cron)
        .unwrap_or_else(|| panic!("no cron {cron}: {status}"))
}

/// Run the scheduled handler for `expr` as the platform would (`/__scheduled`).
fn trigger(s: &Server, expr: &str) {
    let r = s.req("GET", &format!("/__scheduled?cron={}", expr.replace(' ', "+"))).send();
    assert!(r.status == 200 || r.status == 500, "/__scheduled answered {}: {}", r.status, r.body);
}

/// Summary lines printed so far for `cron` and `shop`.
fn summary_lines(s: &Server, cron: &str, shop: &str) -> Vec<Value> {
    s.json_lines()
        .into_iter()
        .filter(|v| v["cron"] == cron && v["shop"] == shop && v.get("run_id").is_some() && v.get("results").is_some())
        .collect()
}

/// Wait until there are `n` summary lines for `cron` and `shop`; returns the last.
fn nth_summary_line(s: &Server, cron: &str, shop: &str, n: usize) -> Value {
    wait_for(Duration::from_secs(20), || {
        let lines = summary_lines(s, cron, shop);
        (lines.len() >= n).then(|| lines[n - 1].clone())
    })
    .unwrap_or_else(|| panic!("no summary line #{n} for {cron}/{shop}:\n{}", s.log_text()))
}

fn is_event(r: &Received, shop: &str, rule: &str, event: &str) -> bool {
    let v = r.json();
    v["shop"] == shop && v["rule"] == rule && v["event"] == event
}

fn events_of(sink: &Sink, shop: &str, rule: &str) -> Vec<Value> {
    sink.received().iter().map(|r| r.json()).filter(|v| v["shop"] == shop && v["rule"] == rule).collect()
}

/// `npx wrangler d1 execute DB --local` against the running server's state.
fn d1_execute(s: &Server, sql: &str) {
    let out = Command::new("npx")
        .current_dir(root())
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1")
        .args(["wrangler", "d1", "execute", "DB", "--local", "--env", "test", "--persist-to"])
        .arg(&s.state_dir)
        .args(["--command", sql])
        .output()
        .expect("run npx wrangler d1 execute");
    assert!(
        out.status.success(),
        "d1 execute failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_no_pii(s: &Server) {
    let out = s.log_text();
    for pii in ["Marguerite", "Vanderholt", "Bartholomew", "Quince", "Alice", "Smith", "example.com", "sess_robbie"] {
        assert!(!out.contains(pii), "{pii:?} appears in the server output");
    }
}

#[test]
fn a_missed_cron_fires_at_the_webhook_and_a_run_through_scheduled_records_its_line_and_resolves_it() {
    let sink = Sink::start();
    let s = Server::start_with(Opts::default().var("ALERT_WEBHOOK_URL", &sink.url("/hook")).var(
        "CRON_WATCH",
        r#"[{"cron":"daily_reconciliation","schedule":"* * * * *","grace_s":3,"max_runtime_s":60}]"#,
    ));
    // Loading the shop's monitor starts the watch: the next minute is expected.
    let st = s.status("swicked");
    let c = cron_status(&st, "daily_reconciliation");
    assert_eq!(c["state"], "expected", "{c}");
    assert_eq!(c["grace_s"], 3);
    let next = epoch_s(&c["next_expected_at"]);
    let now = system_s(SystemTime::now());
    assert!(next > now - 1.0 && next <= now + 61.0, "next expected {next} vs now {now}");

    // Nothing runs: at that minute + 3 s grace, cron_missed reaches the webhook.
    let fired = sink
        .wait_for(Duration::from_secs(100), |r| is_event(r, "swicked", "cron_missed", "trigger"))
        .unwrap_or_else(|| panic!("cron_missed never fired:\n{}", s.log_text()));
    let p = fired.json();
    let slot = epoch_s(&p["since"]) - 3.0;
    assert_eq!(slot % 60.0, 0.0, "the missed slot is a whole minute: {p}");
    assert!(slot >= next - 0.001, "a slot after the watch started: {p}");
    let delay = system_s(fired.at) - epoch_s(&p["since"]);
    assert!((-0.05..10.0).contains(&delay), "webhook {delay:.3} s after slot + grace");
    eprintln!("cron_missed: webhook {:.0} ms after slot + grace", delay * 1000.0);
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["cron"], "daily_reconciliation");
    assert_eq!(p["action"], "Check Cloudflare cron status; run it by hand if needed");
    let slot_id = chrono::DateTime::from_timestamp(slot as i64, 0).unwrap().format("cron_d_%Y_%m_%d_%H%M").to_string();
    assert_eq!(p["run_id"], slot_id.as_str());
    let key = p["dedup_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("swicked:cron_missed:daily_reconciliation:"), "{key}");
    let st = s.status("swicked");
    let c = cron_status(&st, "daily_reconciliation");
    assert_eq!(c["missed_firing"], true, "{c}");
    assert!(c["recent_slots"].as_array().unwrap().iter().any(|x| x["state"] == "missed"), "{c}");

    // The operator runs it by hand through the platform's scheduled entry.
    trigger(&s, "* * * * *");
    let line = nth_summary_line(&s, "daily_reconciliation", "swicked", 1);
    let run_id = line["run_id"].as_str().unwrap().to_string();
    assert!(run_id.starts_with("cron_d_"), "{line}");
    assert_eq!(line["errors"], serde_json::json!([]));
    assert!(line["ms"].as_u64().is_some() && line["ts"].as_str().is_some(), "{line}");
    assert!(line["build_version"].as_str().unwrap().starts_with("0.1.0+"), "{line}");
    let r = &line["results"];
    assert_eq!(r["sales_reconciled"], 2, "{line}");
    assert_eq!(r["sales_total_cents"], 27_800);
    assert_eq!(r["sales_mismatched"], 0);
    assert_eq!(r["low_stock_alerts"], 2);
    assert_eq!(r["audit_chain_verified"], true);
    assert_eq!(r["audit_chain_length"], 6);
    // The other shop ran too, with its own figures.
    let demo = nth_summary_line(&s, "daily_reconciliation", "demo", 1);
    assert_eq!(
        (demo["results"]["low_stock_alerts"].as_i64(), demo["results"]["audit_chain_length"].as_i64()),
        (Some(1), Some(3)),
        "{demo}"
    );

    let resolved = sink
        .wait_for(Duration::from_secs(10), |r| {
            is_event(r, "swicked", "cron_missed", "resolve") && r.json()["dedup_key"] == key.as_str()
        })
        .expect("cron_missed did not resolve");
    assert_eq!(resolved.json()["state"], "resolved");
    let fired_at = system_s(fired.at);
    assert_eq!(
        events_of(&sink, "swicked", "cron_missed").iter().filter(|e| e["dedup_key"] == key.as_str()).count(),
        2,
        "one trigger, one resolve"
    );
    assert!(system_s(resolved.at) > fired_at);

    // The status shows the run: start, end, its results and ms.
    let st = s.status("swicked");
    let c = cron_status(&st, "daily_reconciliation");
    assert_eq!(c["last_run"]["run_id"], run_id.as_str(), "{c}");
    assert_eq!(c["last_run"]["results"], line["results"]);
    assert_eq!(c["last_run"]["ms"], line["ms"]);
    assert_eq!(c["last_run"]["state"], "ended_ok");
    assert!(epoch_s(&c["last_end_at"]) >= epoch_s(&c["last_start_at"]));
    assert!(c["next_expected_at"].is_string());
    assert!(st["watchdog"]["lag_s"].as_u64().is_some(), "{}", st["watchdog"]);
    assert_eq!(summary_lines(&s, "daily_reconciliation", "swicked").len(), 1, "exactly one line per run");
}

#[test]
fn tampering_one_audit_row_fires_audit_chain_broken_on_the_next_reconciliation() {
    let sink = Sink::start();
    let s = Server::start_with(Opts::default().var("ALERT_WEBHOOK_URL", &sink.url("/hook")));
    // The app's mutations append to swicked's chain.
    let r = s
        .shop_req("swicked", "POST", "/api/tickets/2508/lines")
        .json(&serde_json::json!({"description": "Diagnostics", "qty": 1, "unit_cents": 2500}))
        .send();
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(s.shop_req("swicked", "DELETE", "/api/tickets/2508").send().status, 204);
    trigger(&s, "0 7 * * *");
    let ok = nth_summary_line(&s, "daily_reconciliation", "swicked", 1);
    assert_eq!(ok["results"]["audit_chain_verified"], true, "{ok}");
    assert_eq!(ok["results"]["audit_chain_length"], 8, "6 seeded + line added + ticket deleted: {ok}");
    assert_eq!(ok["run_id"].as_str().map(|r| r.starts_with("cron_d_")), Some(true));

    // Someone edits a payment line's amount in place.
    d1_execute(
        &s,
        r#"UPDATE audit_events SET content = replace(content, '"unit_cents":12900', '"unit_cents":1290') WHERE id = 2"#,
    );
    let t0 = system_s(SystemTime::now());
    trigger(&s, "0 7 * * *");
    let broken = nth_summary_line(&s, "daily_reconciliation", "swicked", 2);
    assert_eq!(broken["results"]["audit_chain_verified"], false, "{broken}");
    assert_eq!(broken["results"]["audit_chain_first_broken_id"], 2);
    assert_eq!(broken["errors"], serde_json::json!([]), "a broken chain is a finding, not a job error");
    let fired = sink
        .wait_for(Duration::from_secs(10), |r| is_event(r, "swicked", "audit_chain_broken", "trigger"))
        .expect("audit_chain_broken did not fire");
    assert!(system_s(fired.at) - t0 < 10.0, "at once");
    let p = fired.json();
    assert_eq!(p["severity"], "high");
    assert_eq!(p["action"], "Investigate immediately; don't deploy until resolved");
    assert_eq!(p["run_id"], broken["run_id"]);
    assert!(p["summary"].as_str().unwrap().contains("row 2"), "{p}");
    let key = p["dedup_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("swicked:audit_chain_broken:"), "{key}");
    assert_eq!(s.status("swicked")["audit_chain"]["broken"], true);
    // demo's chain is intact and raises nothing.
    let demo = nth_summary_line(&s, "daily_reconciliation", "demo", 2);
    assert_eq!(demo["results"]["audit_chain_verified"], true, "{demo}");
    // demo's monitor has taken that run's end (where a broken chain would fire at once) and
    // has no notification queued or sent.
    let demo_st = wait_for(Duration::from_secs(10), || {
        let st = s.status("demo");
        (cron_status(&st, "daily_reconciliation")["last_run"]["run_id"] == demo["run_id"]).then_some(st)
    })
    .unwrap_or_else(|| panic!("demo's monitor did not record the run: {}", s.status("demo")["crons"]));
    assert_eq!(demo_st["audit_chain"]["broken"], false, "{}", demo_st["audit_chain"]);
    assert_eq!((demo_st["outbox"]["backlog"].as_u64(), demo_st["outbox"]["sent_total"].as_u64()), (Some(0), Some(0)));
    assert!(events_of(&sink, "demo", "audit_chain_broken").is_empty());

    // Put the row back: the next reconciliation verifies and resolves the incident.
    d1_execute(
        &s,
        r#"UPDATE audit_events SET content = replace(content, '"unit_cents":1290}', '"unit_cents":12900}') WHERE id = 2"#,
    );
    trigger(&s, "0 7 * * *");
    assert_eq!(nth_summary_line(&s, "daily_reconciliation", "swicked", 3)["results"]["audit_chain_verified"], true);
    let resolved = sink
        .wait_for(Duration::from_secs(10), |r| is_event(r, "swicked", "audit_chain_broken", "resolve"))
        .expect("no resolve");
    assert_eq!(resolved.json()["dedup_key"], key.as_str());
    assert_eq!(events_of(&sink, "swicked", "audit_chain_broken").len(), 2, "one trigger, one resolve");
    assert_no_pii(&s);
}

#[test]
fn ai_spend_past_the_cap_pauses_the_ai_route_until_an_operator_resumes() {
    let sink = Sink::start();
    // Stand-ins for the AI API (each answer reports 500,000 output tokens) and Twilio.
    let claude = Sink::start_with(|_| {
        (200, r#"{"content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":0,"output_tokens":500000}}"#.into())
    });
    let twilio = Sink::start_with(|_| (201, r#"{"sid":"SM0123456789abcdef0123456789abcdef"}"#.into()));
    let s = Server::start_with(
        Opts::default()
            .var("ALERT_WEBHOOK_URL", &sink.url("/hook"))
            .var("AI_MONTHLY_CAP_MICROS", "1000000")
            .var("TWILIO_WEEKLY_BUDGET_MICROS", "1000000")
            // 1 micro-dollar per output token: each AI call costs $0.50.
            .var("AI_INPUT_PER_MTOK_MICROS", "0")
            .var("AI_OUTPUT_PER_MTOK_MICROS", "1000000")
            .var("ANTHROPIC_API_BASE", &claude.url(""))
            .var("ANTHROPIC_API_KEY", "sk-ant-test-key-0000000000")
            // $2 per SMS segment.
            .var("TWILIO_PRICE_PER_SEGMENT_MICROS", "2000000")
            .var("TWILIO_API_BASE", &twilio.url(""))
            .var("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
            .var("TWILIO_AUTH_TOKEN", "0f1e2d3c4b5a69788796a5b4c3d2e1f0")
            .var("TWILIO_FROM", "+15550001111"),
    );
    let ticket = |shop: &str| if shop == "demo" { 3001 } else { 2506 };
    let ai = |shop: &str| {
        s.shop_req(shop, "POST", "/api/ai/summarize").json(&serde_json::json!({"ticket_id": ticket(shop)})).send()
    };
    // Under the cap nothing pauses.
    assert_eq!(ai("swicked").status, 200);
    trigger(&s, "30 6 * * *");
    let first = nth_summary_line(&s, "daily_ai_check", "swicked", 1);
    assert_eq!(first["results"]["ai_paused"], false, "{first}");
    assert_eq!(first["run_id"].as_str().map(|r| r.starts_with("cron_ai_")), Some(true), "{first}");
    // $1.50 spent this month against a $1.00 cap.
    for _ in 0..2 {
        let r = ai("swicked");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(ai("demo").status, 200);
    let spent = wait_for(Duration::from_secs(10), || {
        let v = s.status("swicked")["costs"]["ai"]["month"]["spent_micros"].as_u64()?;
        (v == 1_500_000).then_some(v)
    });
    assert_eq!(spent, Some(1_500_000), "the AI spend reached the monitor through the request records");
    trigger(&s, "30 6 * * *");
    let line = nth_summary_line(&s, "daily_ai_check", "swicked", 2);
    let r = &line["results"];
    assert_eq!(r["ai_paused"], true, "{line}");
    assert_eq!(r["ai_spent_month_micros"], 1_500_000);
    assert_eq!(r["ai_monthly_cap_micros"], 1_000_000);
    assert!(r["ai_projected_month_micros"].as_i64().unwrap() >= 1_500_000);
    let fired = sink
        .wait_for(Duration::from_secs(10), |r| is_event(r, "swicked", "ai_cost_projection", "trigger"))
        .expect("ai_cost_projection did not fire");
    let p = fired.json();
    assert_eq!(p["severity"], "high");
    assert_eq!(p["action"], "Pause AI; notify the shop owner");
    assert_eq!(p["unit"], "micro_usd");
    assert_eq!(p["threshold"], 1_000_000.0);
    let key = p["dedup_key"].as_str().unwrap().to_string();

    // The app's AI route refuses clearly, without calling the AI; the other shop is not affected.
    let calls_before = claude.received().len();
    let paused = ai("swicked");
    assert_eq!(paused.status, 503, "{}", paused.body);
    assert_eq!(paused.json()["error"], "AiPaused");
    assert!(paused.json()["message"].as_str().unwrap().contains("paused"), "{}", paused.body);
    assert_eq!(claude.received().len(), calls_before, "no AI call while paused");
    assert_eq!(ai("demo").status, 200);
    assert_eq!(nth_summary_line(&s, "daily_ai_check", "demo", 2)["results"]["ai_paused"], false);
    let st = s.status("swicked");
    assert_eq!(st["costs"]["ai"]["paused"], true, "{}", st["costs"]);
    assert_eq!(st["costs"]["ai"]["pause"]["reason"], "spent_over_cap");
    assert_eq!(st["costs"]["ai"]["month"]["spent_micros"], 1_500_000, "the refused call cost nothing");

    // Resuming is an authenticated operator action.
    let resume = "/ops/shops/swicked/ai/resume";
    assert_eq!(s.req("POST", resume).send().status, 401);
    assert_eq!(s.req("POST", resume).header("authorization", "Bearer wrong").send().status, 401);
    assert_eq!(
        s.req("POST", "/ops/shops/nowhere/ai/resume")
            .header("authorization", &format!("Bearer {OPS_TOKEN}"))
            .send()
            .status,
        404
    );
    let ok = s.req("POST", resume).header("authorization", &format!("Bearer {OPS_TOKEN}")).send();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["resumed"], true);
    let again = s.req("POST", resume).header("authorization", &format!("Bearer {OPS_TOKEN}")).send();
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["error"], "NotPaused");
    let resolved = sink
        .wait_for(Duration::from_secs(10), |r| is_event(r, "swicked", "ai_cost_projection", "resolve"))
        .expect("no resolve");
    assert_eq!(resolved.json()["dedup_key"], key.as_str());
    assert_eq!(ai("swicked").status, 200);
    assert_eq!(s.status("swicked")["costs"]["ai"]["paused"], false);

    // Twilio: one $2 SMS this week against a $1 weekly budget projects over 150%.
    let sms =
        s.shop_req("swicked", "POST", "/api/tickets/2506/sms").json(&serde_json::json!({"message": "Ready"})).send();
    assert_eq!(sms.status, 201, "{}", sms.body);
    wait_for(Duration::from_secs(10), || {
        (s.status("swicked")["costs"]["twilio"]["week"]["spent_micros"] == 2_000_000).then_some(())
    })
    .expect("the SMS spend reached the monitor");
    trigger(&s, "0 9 * * THU");
    let tw = nth_summary_line(&s, "weekly_twilio_summary", "swicked", 1);
    assert_eq!(tw["results"]["twilio_projection_firing"], true, "{tw}");
    assert_eq!(tw["results"]["twilio_spent_week_micros"], 2_000_000);
    let t = sink
        .wait_for(Duration::from_secs(10), |r| is_event(r, "swicked", "twilio_cost_projection", "trigger"))
        .expect("twilio_cost_projection did not fire");
    assert_eq!(t.json()["severity"], "warning");
    assert_eq!(t.json()["action"], "Contact the owner about SMS volume");
    // demo's monitor judged its week (the summary's figures are its answer) and did not fire.
    let demo_tw = nth_summary_line(&s, "weekly_twilio_summary", "demo", 1);
    assert_eq!(demo_tw["results"]["twilio_projection_firing"], false, "{demo_tw}");
    assert!(events_of(&sink, "demo", "twilio_cost_projection").is_empty());
}

#[test]
fn a_job_that_errors_or_panics_still_gets_its_summary_line_and_its_end() {
    let s = Server::start_with(
        Opts::default()
            .var("SHOP_SLUG", "swicked")
            .var("CRON_WATCH", r#"[{"cron":"test_error","schedule":"0 0 1 1 *","code":"e"},{"cron":"test_panic","schedule":"0 0 1 1 *","code":"p"}]"#),
    );
    trigger(&s, "0 0 1 1 *");
    let err = nth_summary_line(&s, "test_error", "swicked", 1);
    assert_eq!(err["errors"].as_array().unwrap().len(), 1, "{err}");
    assert_eq!(err["errors"][0]["class"], "JobError");
    assert_eq!(err["errors"][0]["message"], "export failed for customer [redacted] <[redacted]>");
    assert_eq!(err["results"]["steps_done"], 1, "partial figures are kept");
    let pan = nth_summary_line(&s, "test_panic", "swicked", 1);
    assert_eq!(pan["errors"][0]["class"], "Panic", "{pan}");
    assert!(
        pan["errors"][0]["message"].as_str().unwrap().starts_with("job panicked at examples/shop/src/worker_entry.rs:"),
        "{pan}"
    );
    // Both ends reached the monitor (the panicked one through the JS entry).
    let st = wait_for(Duration::from_secs(10), || {
        let st = s.status("swicked");
        let done =
            ["test_error", "test_panic"].iter().all(|c| cron_status(&st, c)["last_run"]["state"] == "ended_error");
        done.then_some(st)
    })
    .unwrap_or_else(|| panic!("ends not recorded: {}", s.status("swicked")["crons"]));
    assert_eq!(cron_status(&st, "test_panic")["last_run"]["errors_count"], 1);
    assert_eq!(cron_status(&st, "test_panic")["last_run"]["run_id"], pan["run_id"]);
    // The instance came back; a trigger no cron watches is logged, runs nothing.
    assert_eq!(s.shop_req("swicked", "GET", "/health").send().status, 200);
    trigger(&s, "5 4 3 2 *");
    let unwatched =
        wait_for(Duration::from_secs(10), || s.json_lines().into_iter().find(|v| v["kind"] == "cron_unwatched"));
    assert_eq!(unwatched.expect("cron_unwatched line")["trigger"], "5 4 3 2 *");
    assert_eq!(summary_lines(&s, "test_error", "swicked").len(), 1);
    assert_no_pii(&s);
}

#[test]
fn a_run_past_its_max_runtime_fires_cron_stuck_and_its_end_resolves_it() {
    let sink = Sink::start();
    let s = Server::start_with(
        Opts::default()
            .var("SHOP_SLUG", "swicked")
            .var("ALERT_WEBHOOK_URL", &sink.url("/hook"))
            .var("CRON_WATCH", r#"[{"cron":"test_slow","schedule":"0 0 1 1 *","max_runtime_s":2}]"#),
    );
    s.status("swicked");
    // The job takes 6 s; /__scheduled answers when it is done.
    let t0 = system_s(SystemTime::now());
    std::thread::scope(|scope| {
        scope.spawn(|| trigger(&s, "0 0 1 1 *"));
        let fired = sink
            .wait_for(Duration::from_secs(15), |r| is_event(r, "swicked", "cron_stuck", "trigger"))
            .expect("cron_stuck did not fire");
        let p = fired.json();
        assert_eq!(p["severity"], "high");
        assert_eq!(p["cron"], "test_slow");
        let since = epoch_s(&p["since"]);
        assert!(since >= t0 + 1.9 && since < t0 + 5.0, "stuck at start + 2 s: since {since} vs trigger {t0}");
        assert!(system_s(fired.at) - since < 3.0, "webhook {} s after", system_s(fired.at) - since);
        let st = s.status("swicked");
        let c = cron_status(&st, "test_slow");
        assert_eq!((c["state"].as_str(), c["stuck_firing"].as_bool()), (Some("stuck"), Some(true)), "{c}");
    });
    let line = nth_summary_line(&s, "test_slow", "swicked", 1);
    assert_eq!(line["results"]["slept_s"], 6, "{line}");
    assert!(line["ms"].as_u64().unwrap() >= 5_900, "{line}");
    let resolved = sink
        .wait_for(Duration::from_secs(10), |r| is_event(r, "swicked", "cron_stuck", "resolve"))
        .expect("cron_stuck did not resolve");
    assert_eq!(resolved.json()["run_id"], line["run_id"]);
    let c = s.status("swicked");
    assert_eq!(cron_status(&c, "test_slow")["stuck_firing"], false);
}
