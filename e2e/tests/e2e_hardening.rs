//! End-to-end: the hardening findings of issue 10, each as an outside tester found it,
//! against the sample app in real workerd: no PII through the URL (the line's `path` is the
//! route template or a redacted shape), bodiless statuses and unknown methods that no longer
//! break the instance or act as GET, the Stripe signature's caps, the operator's 409 in the
//! error format, the sample app's exact amounts and per-shop photos, whole-answer deadlines
//! and size caps on external calls and request bodies, and an invalid `SHOP_SLUG`.

use lookout_e2e as support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use support::{Opts, Resp, Server, Sink, OPS_TOKEN};

/// The one line of a response (by its `X-Request-Id`).
fn the_line(s: &Server, r: &Resp) -> Value {
    let id = r.request_id.as_deref().unwrap_or_else(|| panic!("no X-Request-Id: {r:?}"));
    let lines = s.lines_for(id);
    assert_eq!(lines.len(), 1, "one line for {id}: {lines:?}");
    let line = lines.into_iter().next().unwrap();
    assert_eq!(line["status"], r.status, "the line says what was sent: {line}");
    line
}

#[test]
fn the_line_has_the_route_template_or_a_redacted_shape_never_the_raw_url() {
    let s = Server::start();
    let cases = [
        // (method, path, status, logged path)
        ("GET", "/api/tickets/2506".to_string(), 200, "/api/tickets/{id}"),
        ("GET", "/api/tickets/2506/photos/4155550142.png".into(), 404, "/api/tickets/{id}/photos/{name}"),
        ("GET", "/api/tickets/2506/photos/+14155550142.png".into(), 400, "/api/tickets/{id}/photos/{name}"),
        ("GET", "/api/tickets/2506/photos/alice%40example.com".into(), 400, "/api/tickets/{id}/photos/{name}"),
        ("GET", "/api/tickets/sess_robbie".into(), 400, "/api/tickets/{id}"),
        ("GET", "/x/alice@example.com".into(), 404, "/x/{email}"),
        ("GET", "/x/bartholomew.quince%40example.org/profile".into(), 404, "/x/{email}/profile"),
        ("GET", "/call/+1-415-555-0142".into(), 404, "/call/{phone}"),
        ("GET", "/x/sess_robbie".into(), 404, "/x/{token}"),
        ("GET", "/keys/sk_live_51HxYzAbCdEfGhIjKlMnOpQr".into(), 404, "/keys/{token}"),
        ("GET", "/customers/Marguerite/Vanderholt".into(), 404, "/customers/{seg}/{seg}"),
        (
            "GET",
            format!("/long/{}", "segment/".repeat(8_000)),
            404,
            "/long/segment/segment/segment/segment/segment/segment/segment/…",
        ),
    ];
    for (method, path, status, logged) in &cases {
        let r = s.shop_req("swicked", method, path).send();
        assert_eq!(r.status, *status, "{method} {}: {}", &path[..path.len().min(80)], r.body);
        let l = the_line(&s, &r);
        assert_eq!(l["path"], *logged, "{}", &path[..path.len().min(80)]);
        assert_eq!(l["shop"], "swicked");
    }
    // An unknown host is logged the same way (before, `/x/alice@example.com` was verbatim).
    let r = s.req("GET", "/x/alice@example.com?email=alice@example.com").header("host", "elsewhere.localhost").send();
    assert_eq!(r.status, 404);
    assert_eq!(the_line(&s, &r)["path"], "/x/{email}");
    // What the Worker printed (wrangler's own `[wrangler:info] GET <url>` dev log is not ours).
    let out: String = s.json_lines().iter().map(|v| v.to_string() + "\n").collect();
    for leaked in [
        "alice",
        "example.com",
        "example.org",
        "4155550142",
        "415-555-0142",
        "sess_robbie",
        "sk_live_",
        "Marguerite",
        "Vanderholt",
        "segment/segment/segment/segment/segment/segment/segment/segment/segment",
    ] {
        assert!(!out.contains(leaked), "{leaked:?} appears in the server output");
    }
}

#[test]
fn bodiless_statuses_and_unknown_methods_keep_the_instance_and_the_format() {
    let s = Server::start();
    // 204/205/304 with a body (the fault route answers "fault {status}"): the status is kept,
    // the body dropped, the request id sent, and the instance lives on.
    for status in [204, 205, 304] {
        let r = s.shop_req("swicked", "GET", &format!("/__test/fault?status={status}")).send();
        assert_eq!(r.status, status, "{}", r.body);
        assert!(r.body.is_empty(), "no body with {status}: {:?}", r.body);
        let l = the_line(&s, &r);
        assert_eq!(l["error_class"], Value::Null, "{l}");
        assert_eq!(l["path"], "/__test/fault");
    }
    let health = s.shop_req("swicked", "GET", "/health").send();
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let lines = s.request_lines();
    assert!(lines.iter().all(|l| l["error_class"] != "Panic" && l["error_class"] != "AbortedByPanic"), "{lines:?}");

    // Uptime checks use HEAD.
    let head = s.shop_req("swicked", "HEAD", "/health").send();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let l = the_line(&s, &head);
    assert_eq!((l["method"].as_str(), l["path"].as_str()), (Some("HEAD"), Some("/health")));

    // Methods the Worker does not serve never act as GET: 405, logged with the real method.
    for method in ["PROPFIND", "PURGE", "MKCOL", "SEARCH", "LOCK"] {
        for path in ["/health", "/api/tickets/2506"] {
            let r = s.raw_req(method, path, &[("host", "swicked.localhost"), ("cookie", "session=sess_robbie")]);
            assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
            assert_eq!(r.json()["error"], "MethodNotAllowed");
            assert_eq!(r.json()["request_id"].as_str(), r.request_id.as_deref());
            assert!(r.header("allow").is_some_and(|a| a.contains("GET")), "{:?}", r.headers);
            let l = the_line(&s, &r);
            assert_eq!(l["method"], method, "{l}");
            assert_eq!(l["error_class"], "MethodNotAllowed");
            assert!(!r.body.contains("\"ticket\""), "served as GET: {}", r.body);
        }
    }
    // A served method on a route that does not take it: 405 with the route's methods.
    let r = s.shop_req("swicked", "POST", "/health").send();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(the_line(&s, &r)["path"], "/health");
}

#[test]
fn stripe_signatures_cap_their_candidates_and_refuse_extreme_timestamps() {
    let s = Server::start();
    let body = r#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let sign = |t: i64| lookout_core::stripe::sign(support::STRIPE_SECRET, t, body.as_bytes());
    let post = |header: &str| {
        s.shop_req("swicked", "POST", "/webhooks/stripe").header("stripe-signature", header).body(body).send()
    };
    let bad = "ab".repeat(32);
    // A rotation's two signatures: accepted.
    let r = post(&format!("t={now},v1={bad},v1={}", sign(now)));
    assert_eq!(r.status, 200, "{}", r.body);
    // Nine candidates, the right one last: refused before any HMAC, with a clear reason.
    let r = post(&format!("t={now},{}v1={}", format!("v1={bad},").repeat(8), sign(now)));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "StripeSignatureInvalid");
    assert_eq!(r.json()["message"], "Stripe-Signature has more than 8 v1 signatures");
    // i64::MIN + now wrapped into the tolerance window.
    let t = i64::MIN + now;
    let r = post(&format!("t={t},v1={}", sign(t)));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "Stripe-Signature timestamp outside tolerance");
    assert_eq!(the_line(&s, &r)["error_class"], "StripeSignatureInvalid");
}

#[test]
fn the_operators_not_paused_is_in_the_error_format() {
    let s = Server::start();
    let r =
        s.req("POST", "/ops/shops/swicked/ai/resume").header("authorization", &format!("Bearer {OPS_TOKEN}")).send();
    assert_eq!(r.status, 409, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"], "NotPaused");
    assert_eq!(body["message"], "AI is not paused for this shop");
    assert_eq!(body["request_id"].as_str(), r.request_id.as_deref(), "{body}");
    let l = the_line(&s, &r);
    assert_eq!(l["error_class"], "NotPaused");
    assert_eq!(l["error_msg"], "AI is not paused for this shop");
}

#[test]
fn amounts_beyond_exact_integers_are_refused_and_the_ticket_stays_readable() {
    let ai = Sink::start_with(|_| {
        (200, r#"{"content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":1,"output_tokens":1}}"#.into())
    });
    let s = Server::start_with(
        Opts::default().var("ANTHROPIC_API_BASE", &ai.url("")).var("ANTHROPIC_API_KEY", "sk-ant-test-key-0000000000"),
    );
    let add = |qty: Value, unit: Value| {
        s.shop_req("swicked", "POST", "/api/tickets/2507/lines")
            .json(&json!({"description": "Screen", "qty": qty, "unit_cents": unit}))
            .send()
    };
    let two_53_plus_1 = json!(9_007_199_254_740_993_i64);
    for (qty, unit, field) in [
        (two_53_plus_1.clone(), json!(1), "qty"),
        (json!(1), two_53_plus_1, "unit_cents"),
        (json!(4_000_000_000_000_000_i64), json!(4_000_000_000_000_000_i64), "line_total_cents"),
    ] {
        let r = add(qty, unit);
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.json()["error"], "InvalidLine");
        assert_eq!(the_line(&s, &r)["error_context"]["field"], field);
    }
    // The largest exact total is accepted; one more cent on the ticket is not.
    let r = add(json!(9_007_199_254_740_991_i64 - 100_000), json!(1));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = add(json!(1), json!(200_000));
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(the_line(&s, &r)["error_context"]["field"], "ticket_total_cents");
    // Everything that reads the lines keeps answering.
    let t = s.shop_req("swicked", "GET", "/api/tickets/2507").send();
    assert_eq!(t.status, 200, "{}", t.body);
    assert!(t.json()["lines"].as_array().unwrap().iter().any(|l| l["qty"] == 9_007_199_254_740_991_i64 - 100_000));
    let report = s.shop_req("swicked", "GET", "/api/reports/open-lines").send();
    assert_eq!(report.status, 200, "{}", report.body);
    let summary = s.shop_req("swicked", "POST", "/api/ai/summarize").json(&json!({"ticket_id": 2507})).send();
    assert_eq!(summary.status, 200, "{}", summary.body);
}

#[test]
fn photos_are_scoped_to_their_shop() {
    let s = Server::start();
    let put =
        s.shop_req("swicked", "PUT", "/api/tickets/2506/photos/front.png").body(vec![0x89, b'P', b'N', b'G']).send();
    assert_eq!(put.status, 201, "{}", put.body);
    assert_eq!(s.shop_req("swicked", "GET", "/api/tickets/2506/photos").send().json()["photos"], json!(["front.png"]));
    assert_eq!(s.shop_req("swicked", "GET", "/api/tickets/2506/photos/front.png").send().status, 200);
    // demo's host (signed in, another shop) can neither list nor download swicked's photos.
    let list = s.shop_req("demo", "GET", "/api/tickets/2506/photos").send();
    assert_eq!(list.status, 404, "{}", list.body);
    assert!(!list.body.contains("front.png"));
    let get = s.shop_req("demo", "GET", "/api/tickets/2506/photos/front.png").send();
    assert_eq!(get.status, 404, "{}", get.body);
    let put = s.shop_req("demo", "PUT", "/api/tickets/2506/photos/evil.png").body(vec![1, 2, 3]).send();
    assert_eq!(put.status, 404, "{}", put.body);
}

#[test]
fn external_answers_have_one_deadline_and_a_size_cap() {
    // Twilio's stand-in sends its headers and part of the body, then stalls for 25 s.
    let twilio = Sink::start_raw(|_, stream| {
        let _ = write!(
            stream,
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"sid\":"
        );
        let _ = stream.flush();
        std::thread::sleep(Duration::from_secs(25));
    });
    // The AI's stand-in answers 2 MiB: declared the first time, undeclared (read to the close) the second.
    let ai = Sink::start_raw(|n, stream| {
        let big = "x".repeat(2 * 1024 * 1024);
        let len = if n == 0 { format!("content-length: {}\r\n", big.len()) } else { String::new() };
        let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{len}connection: close\r\n\r\n");
        let _ = stream.write_all(big.as_bytes());
    });
    let s = Server::start_with(
        Opts::default()
            .var("TWILIO_API_BASE", &twilio.url(""))
            .var("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
            .var("TWILIO_AUTH_TOKEN", "0f1e2d3c4b5a69788796a5b4c3d2e1f0")
            .var("TWILIO_FROM", "+15550001111")
            .var("ANTHROPIC_API_BASE", &ai.url(""))
            .var("ANTHROPIC_API_KEY", "sk-ant-test-key-0000000000"),
    );
    let t0 = Instant::now();
    let r = s.shop_req("swicked", "POST", "/api/tickets/2506/sms").json(&json!({"message": "Ready"})).send();
    let took = t0.elapsed();
    assert_eq!(r.status, 502, "a trickling body times out: {}", r.body);
    assert_eq!(r.json()["error"], "UpstreamUnavailable");
    // The deadline is 10 s for the whole answer; the stand-in would have held it for 25 s.
    assert!(took < Duration::from_secs(20), "answered after {took:?}");
    let call = s
        .json_lines()
        .into_iter()
        .find(|v| v["kind"] == "external_call" && v["request_id"] == r.request_id.as_deref().unwrap())
        .expect("external_call line");
    assert_eq!(call["status"], Value::Null, "{call}");

    for _ in 0..2 {
        let r = s.shop_req("swicked", "POST", "/api/ai/summarize").json(&json!({"ticket_id": 2506})).send();
        assert_eq!(r.status, 502, "{}", r.body);
        assert_eq!(r.json()["error"], "UpstreamAnswerTooLarge");
        assert_eq!(the_line(&s, &r)["error_context"], json!({"service": "claude", "limit": 1_048_576}));
    }
    assert_eq!(ai.received().len(), 2, "an oversize answer is not retried");
}

/// Send a raw HTTP request head, then `body` from another thread (the server may answer and
/// close before taking all of it), and wait up to `wait` for the answer's status.
fn raw_status(s: &Server, head: &str, body: Vec<u8>, wait: Duration) -> Option<u16> {
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).ok()?;
    c.set_read_timeout(Some(wait)).ok()?;
    c.write_all(head.as_bytes()).ok()?;
    let mut w = c.try_clone().ok()?;
    std::thread::spawn(move || {
        let _ = w.write_all(&body);
    });
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n]).split_whitespace().nth(1)?.parse().ok()
}

/// The `error_context` of the last 413 line.
fn last_413_context(s: &Server) -> Value {
    support::wait_for(Duration::from_secs(5), || s.request_lines().into_iter().rev().find(|l| l["status"] == 413))
        .expect("a 413 line")["error_context"]
        .clone()
}

#[test]
fn request_bodies_are_capped_while_reading_not_read_whole_first() {
    // (wrangler dev's proxy holds a request until its whole body has arrived, so a prompt
    // answer to an announced oversize body cannot be observed here; what the Worker read can.)
    let s = Server::start();
    // A chunked body (no Content-Length) of 1.5 MiB to a 1 MiB route: refused as soon as the
    // bytes read pass the limit (before, the whole body was read, then measured).
    let sent = 6 * 256 * 1024;
    let head = "PUT /api/tickets/2506/photos/big.png HTTP/1.1\r\nHost: swicked.localhost\r\n\
                Cookie: session=sess_robbie\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = vec![b'a'; 256 * 1024];
    let mut body = Vec::new();
    for _ in 0..6 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(raw_status(&s, head, body, Duration::from_secs(20)), Some(413));
    let ctx = last_413_context(&s);
    let read = ctx["bytes"].as_i64().unwrap();
    assert!(read > 1_048_576 && read < sent, "stopped reading at {read} of {sent} bytes: {ctx}");
    // A declared length over the limit is refused by its Content-Length.
    let r = s.shop_req("swicked", "PUT", "/api/tickets/2506/photos/big.png").body(vec![0u8; 2_000_000]).send();
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(last_413_context(&s), json!({"bytes": 2_000_000, "limit": 1_048_576}));
    // Within the limit: stored.
    let r = s.shop_req("swicked", "PUT", "/api/tickets/2506/photos/ok.png").body(vec![7u8; 1000]).send();
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn an_invalid_shop_slug_is_a_config_error_on_every_request_not_silence() {
    let s = Server::start_with(Opts::default().var("SHOP_SLUG", "My Shop"));
    let r = s.req("GET", "/health").header("host", "swicked.localhost").send();
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["error"], "ConfigError");
    assert_eq!(the_line(&s, &r)["error_class"], "ConfigError");
    let config = support::wait_for(Duration::from_secs(5), || {
        s.json_lines().into_iter().find(|v| v["kind"] == "config_error" && v["var"] == "SHOP_SLUG/SHOPS")
    })
    .expect("a config_error line");
    assert!(config["error"].as_str().unwrap().starts_with("SHOP_SLUG is not a shop slug"), "{config}");
}
