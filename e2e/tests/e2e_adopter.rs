//! End-to-end: the minimal adopter (examples/minimal), a Worker of its own built against the
//! lookout library, in real workerd. Its requests get the line and `X-Request-Id`, its error
//! context keeps the key it allow-listed, a 5xx burst fires an alert at a local sink, the
//! operator status answers through its own monitor binding (`MONITOR`), and its one cron job
//! gets a summary line and the watchdog.

use std::time::{Duration, SystemTime};

use lookout_e2e::{epoch_s, system_s, wait_for, App, Opts, Server, Sink, OPS_TOKEN};
use serde_json::Value;

const SHOP: &str = "corner-cafe";
const FAST_RULES: &str = r#"{"bucket_s": 1, "eval_interval_s": 1,
  "http_5xx_rate": {"window_s": 5, "for_s": 3, "keep_firing_for_s": 2, "min_requests": 5}}"#;

fn minimal(sink: &Sink, extra: &[(&str, &str)]) -> Server {
    let mut opts =
        Opts::default().app(App::Minimal).var("ALERT_WEBHOOK_URL", &sink.url("/hook")).var("ALERT_RULES", FAST_RULES);
    for (k, v) in extra {
        opts = opts.var(k, v);
    }
    Server::start_with(opts)
}

fn status(s: &Server) -> Value {
    let r = s
        .req("GET", &format!("/ops/shops/{SHOP}/status"))
        .header("authorization", &format!("Bearer {OPS_TOKEN}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn the_minimal_adopter_logs_every_request_alerts_on_a_5xx_burst_and_answers_its_status() {
    let sink = Sink::start();
    let s = minimal(&sink, &[]);

    // One line per request, with the id the client got.
    let r = s.req("GET", "/").send();
    assert_eq!(r.status, 200);
    let id = r.request_id.clone().expect("X-Request-Id");
    let lines = s.lines_for(&id);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!((l["shop"].as_str(), l["path"].as_str(), l["method"].as_str()), (Some(SHOP), Some("/"), Some("GET")));
    assert_eq!(l["status"], 200);
    assert!(l["build_version"].as_str().unwrap().starts_with("0.1.0+"), "{l}");
    assert_eq!(l["external_calls"], serde_json::json!(["stripe:0", "twilio:0", "claude:0", "gbp:0"]));

    // An app error keeps the context key the adopter allow-listed (`order_id`).
    let r = s.req("GET", "/orders/42").send();
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["request_id"].as_str(), r.request_id.as_deref());
    let l = &s.lines_for(r.request_id.as_deref().unwrap())[0];
    assert_eq!(l["error_class"], "OrderLocked");
    assert_eq!(l["error_context"], serde_json::json!({"order_id": 42}));

    // The operator API is mounted and guarded.
    assert_eq!(s.req("GET", &format!("/ops/shops/{SHOP}/status")).send().status, 401);
    let r = s.req("GET", "/ops/shops/elsewhere/status").header("authorization", &format!("Bearer {OPS_TOKEN}")).send();
    assert_eq!(r.status, 404, "{}", r.body);

    // A 5xx burst longer than the sustain time fires http_5xx_rate at the sink.
    let first = system_s(SystemTime::now());
    for _ in 0..36 {
        assert_eq!(s.req("GET", "/pay").send().status, 503);
        std::thread::sleep(Duration::from_millis(125));
    }
    let fired = sink
        .wait_for(Duration::from_secs(15), |r| r.json()["rule"] == "http_5xx_rate" && r.json()["event"] == "trigger")
        .unwrap_or_else(|| panic!("no http_5xx_rate trigger:\n{}", s.log_text()));
    let p = fired.json();
    assert_eq!(p["shop"], SHOP);
    assert_eq!(p["dedup_key"], format!("{SHOP}:http_5xx_rate:1"));
    assert!(epoch_s(&p["active_at"]) >= first - 1.0, "{p}");

    // The status route answers from the adopter's own monitor binding.
    let st = status(&s);
    let rule = st["rules"].as_array().unwrap().iter().find(|r| r["rule"] == "http_5xx_rate").unwrap();
    assert_eq!(rule["state"], "firing", "{rule}");
    assert!(st["counters"]["accepted_records"].as_u64().unwrap() >= 38, "{}", st["counters"]);
}

#[test]
fn the_minimal_adopters_cron_job_gets_its_summary_line_and_the_watchdog() {
    let sink = Sink::start();
    // Every minute with a 2 s grace, so the watchdog's miss comes within a minute.
    let watch = r#"[{"cron": "expire_carts", "schedule": "* * * * *", "grace_s": 2, "max_runtime_s": 60}]"#;
    let s = minimal(&sink, &[("CRON_WATCH", watch)]);
    let st = status(&s);
    let c = &st["crons"][0];
    assert_eq!((c["cron"].as_str(), c["state"].as_str()), (Some("expire_carts"), Some("expected")), "{c}");

    // A run through the platform's scheduled entry: one summary line with the job's figures.
    let r = s.req("GET", "/__scheduled?cron=*+*+*+*+*").send();
    assert_eq!(r.status, 200, "{}", r.body);
    let line = wait_for(Duration::from_secs(20), || {
        s.json_lines().into_iter().find(|v| v["cron"] == "expire_carts" && v.get("results").is_some())
    })
    .unwrap_or_else(|| panic!("no summary line:\n{}", s.log_text()));
    assert_eq!(line["shop"], SHOP);
    assert_eq!(line["results"], serde_json::json!({"carts_expired": 3}));
    assert_eq!(line["errors"], serde_json::json!([]));
    assert!(line["run_id"].as_str().unwrap().starts_with("cron_e_"), "{line}");
    let ended = wait_for(Duration::from_secs(10), || {
        let st = status(&s);
        (st["crons"][0]["last_run"]["run_id"] == line["run_id"]).then_some(st)
    })
    .expect("the monitor saw the run's end");
    assert_eq!(ended["crons"][0]["last_run"]["results"]["carts_expired"], 3);

    // The next minute passes with no run: the watchdog reports it missed.
    let missed = sink
        .wait_for(Duration::from_secs(100), |r| r.json()["rule"] == "cron_missed" && r.json()["event"] == "trigger")
        .unwrap_or_else(|| panic!("cron_missed never fired:\n{}", s.log_text()));
    let p = missed.json();
    assert_eq!((p["shop"].as_str(), p["cron"].as_str()), (Some(SHOP), Some("expire_carts")));
    assert_eq!(epoch_s(&p["since"]) % 60.0, 2.0, "slot (a whole minute) + 2 s grace: {p}");
}
