//! End-to-end: every record reaches the shop's monitor whatever else happens in the isolate
//! (issue 10: a panic, an oversize neighbour, a slow or refusing monitor), in real workerd.
//! Records travel folded into partial buckets; a loss that cannot be avoided is logged with
//! its count. The monitor's faults are injected through test-only vars of the Durable Object
//! (`MONITOR_TEST_STALL_MS`, `MONITOR_TEST_INGEST_STATUS`, honoured with `ENVIRONMENT=test`).

use lookout_e2e as support;

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::{epoch_s, system_s, wait_for, Opts, Server, Sink, OPS_TOKEN};

fn accepted(s: &Server, shop: &str) -> u64 {
    s.status(shop)["counters"]["accepted_records"].as_u64().expect("accepted_records")
}

/// Wait until the monitor has accepted exactly `n` records (it may never exceed it).
fn wait_accepted(s: &Server, shop: &str, n: u64) -> u64 {
    let got = wait_for(Duration::from_secs(15), || {
        let a = accepted(s, shop);
        assert!(a <= n, "more records than requests: {a} > {n}");
        (a == n).then_some(a)
    });
    got.unwrap_or_else(|| accepted(s, shop))
}

fn rule<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["rules"].as_array().unwrap().iter().find(|r| r["rule"] == name).unwrap()
}

fn lines_of_kind(s: &Server, kind: &str) -> Vec<Value> {
    s.json_lines().into_iter().filter(|v| v["kind"] == kind).collect()
}

/// Eight 500s, then a panic, as fast as one client sends them.
fn eight_500s_then_a_panic(s: &Server) -> Duration {
    let t = Instant::now();
    for _ in 0..8 {
        assert_eq!(s.shop_req("swicked", "GET", "/__test/fault?status=500").send().status, 500);
    }
    let boom = s.shop_req("swicked", "GET", "/__test/panic").send();
    assert_eq!(boom.status, 500);
    assert!(boom.request_id.is_some());
    t.elapsed()
}

#[test]
fn a_panic_loses_no_other_requests_record_and_the_5xx_alert_holds_while_the_shop_fails() {
    let sink = Sink::start();
    let s = Server::start_with(Opts::default().var("ALERT_WEBHOOK_URL", &sink.url("/hook")));
    let took = eight_500s_then_a_panic(&s);
    eprintln!("eight 500s and a panic in {} ms", took.as_millis());
    // All nine records arrive: the eight folded before the panic (handed over by the panic
    // hook) and the panicked request's own.
    assert_eq!(wait_accepted(&s, "swicked", 9), 9, "records lost to the panic");
    let st = s.status("swicked");
    let longest = st["windows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(longest["errors_5xx"], 9, "{longest}");
    assert!(lines_of_kind(&s, "monitor_forward_failed").is_empty(), "{}", s.log_text());

    // The shop keeps failing this way, one burst every 1.5 s: the 5xx alert fires and does
    // not resolve while it fails.
    let mut sent = 9;
    let fired = loop {
        eight_500s_then_a_panic(&s);
        sent += 9;
        if let Some(f) = sink.received().into_iter().find(|r| r.json()["event"] == "trigger") {
            break f;
        }
        assert!(sent < 9 * 20, "http_5xx_rate never fired");
        std::thread::sleep(Duration::from_millis(1500));
    };
    assert_eq!(fired.json()["rule"], "http_5xx_rate");
    // Keep failing for longer than the window (5 s) plus the resolve hold (2 s).
    let until = Instant::now() + Duration::from_secs(9);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1500));
        eight_500s_then_a_panic(&s);
        sent += 9;
    }
    let failing_ended = system_s(SystemTime::now());
    assert_eq!(wait_accepted(&s, "swicked", sent), sent);
    // The monitor has evaluated past the end of the failures: its verdict is in.
    let st = wait_for(Duration::from_secs(10), || {
        let st = s.status("swicked");
        let evaluated = st["last_evaluated_at"].as_str().map(|t| epoch_s(&Value::from(t)));
        evaluated.is_some_and(|t| t >= failing_ended).then_some(st)
    })
    .expect("the monitor evaluated after the failures");
    assert_eq!(rule(&st, "http_5xx_rate")["state"], "firing", "{}", rule(&st, "http_5xx_rate"));
    let resolved = st["recent_changes"].as_array().unwrap().iter().any(|c| c["to"] == "resolved");
    assert!(!resolved, "resolved while the shop was failing: {}", st["recent_changes"]);
    assert!(sink.received().iter().all(|r| r.json()["event"] != "resolve"));
}

#[test]
fn records_with_60_kib_paths_all_reach_the_monitor() {
    let s = Server::start();
    let long = "x".repeat(60 * 1024);
    let before = accepted(&s, "swicked");
    // 144 requests from 24 clients at once: 128 404s and 16 real 5xx, each path 60 KiB.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..24)
            .map(|w| {
                let (s, long) = (&s, &long);
                scope.spawn(move || {
                    (0..6)
                        .map(|i| {
                            let n = w * 6 + i;
                            let path = if n % 9 == 0 {
                                format!("/__test/fault/{long}{n}?status=503")
                            } else {
                                format!("/nowhere/{long}{n}")
                            };
                            s.shop_req("swicked", "GET", &path).send().status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.len(), 144);
    assert_eq!(statuses.iter().filter(|&&c| c == 503).count(), 16);
    assert_eq!(wait_accepted(&s, "swicked", before + 144), before + 144, "records lost");
    let st = s.status("swicked");
    let longest = st["windows"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(longest["errors_5xx"], 16, "every real 5xx counted: {longest}");
    for kind in ["monitor_forward_failed", "monitor_ingest_refused", "monitor_ingest_rejected"] {
        assert!(lines_of_kind(&s, kind).is_empty(), "{kind}:\n{}", s.log_text());
    }
}

#[test]
fn a_refused_batch_is_logged_with_its_records_and_not_sent_again() {
    let s = Server::start_with(Opts::default().var("MONITOR_TEST_INGEST_STATUS", "413"));
    for _ in 0..3 {
        assert_eq!(s.shop_req("swicked", "GET", "/health").send().status, 200);
    }
    let failed = wait_for(Duration::from_secs(10), || {
        let f = lines_of_kind(&s, "monitor_forward_failed");
        (f.iter().map(|l| l["records"].as_u64().unwrap_or(0)).sum::<u64>() >= 3).then_some(f)
    })
    .unwrap_or_else(|| panic!("no monitor_forward_failed for the 3 records:\n{}", s.log_text()));
    for f in &failed {
        assert_eq!((f["status"].as_u64(), f["attempts"].as_u64()), (Some(413), Some(1)), "{f}");
    }
    // The monitor saw one attempt per failed send, not two.
    let attempts = lines_of_kind(&s, "monitor_test_fault").into_iter().filter(|l| l["path"] == "/ingest").count();
    assert_eq!(attempts, failed.len(), "a 413 was sent again:\n{}", s.log_text());
}

#[test]
fn a_slow_monitor_holds_neither_the_operator_nor_the_forwarding() {
    let s = Server::start_with(Opts::default().var("MONITOR_TEST_STALL_MS", "12000"));
    // A shop request never waits for the monitor.
    let t = Instant::now();
    assert_eq!(s.shop_req("swicked", "GET", "/health").send().status, 200);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The operator's status call gives up after 5 s instead of waiting 12 s.
    let t = Instant::now();
    let r = s.req("GET", "/ops/shops/swicked/status").header("authorization", &format!("Bearer {OPS_TOKEN}")).send();
    let took = t.elapsed();
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(10), "answered after {took:?}");
    let line = s.lines_for(r.request_id.as_deref().unwrap()).remove(0);
    assert!(line["error_msg"].as_str().unwrap().contains("did not answer within 5 s"), "{line}");
    // The record's send timed out twice (tried again once) and was logged with its count.
    let failed = wait_for(Duration::from_secs(20), || lines_of_kind(&s, "monitor_forward_failed").into_iter().next())
        .unwrap_or_else(|| panic!("no monitor_forward_failed:\n{}", s.log_text()));
    assert_eq!((failed["records"].as_u64(), failed["attempts"].as_u64()), (Some(1), Some(2)), "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("did not answer within 5 s"), "{failed}");
}
