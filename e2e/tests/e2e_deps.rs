//! End-to-end: dependency instrumentation in real workerd. D1 counts and signatures, the N+1
//! flag, external calls to local stand-ins for Stripe, Twilio and the AI API (retries,
//! idempotency keys, redacted error bodies, costs), and real local R2 operations.

use lookout_e2e as support;

use serde_json::{json, Value};
use support::{Opts, Server, Sink};

const STRIPE_KEY: &str = "sk_test_51Hx4Qk2eZvKYlo2CxYzAbCdEfGh";
const TWILIO_TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const ANTHROPIC_KEY: &str = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv";

fn server(stripe: &Sink, twilio: &Sink, ai: &Sink) -> Server {
    Server::start_with(
        Opts::default()
            .var("STRIPE_API_BASE", &stripe.url(""))
            .var("STRIPE_SECRET_KEY", STRIPE_KEY)
            .var("TWILIO_API_BASE", &twilio.url(""))
            .var("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef")
            .var("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
            .var("TWILIO_FROM", "+15550001111")
            .var("ANTHROPIC_API_BASE", &ai.url(""))
            .var("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
    )
}

fn request_line(s: &Server, r: &support::Resp) -> Value {
    let lines = s.lines_for(r.request_id.as_deref().expect("X-Request-Id"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines.into_iter().next().unwrap()
}

fn call_lines(s: &Server, request_id: &str) -> Vec<Value> {
    s.json_lines().into_iter().filter(|v| v["kind"] == "external_call" && v["request_id"] == request_id).collect()
}

#[test]
fn d1_counts_signatures_and_flags_n_plus_one() {
    let (a, b, c) = (Sink::start(), Sink::start(), Sink::start());
    let s = server(&a, &b, &c);
    let r = s.shop_req("swicked", "GET", "/api/tickets/2506").send();
    assert_eq!(r.status, 200);
    let l = request_line(&s, &r);
    assert_eq!(l["d1_queries"], 3);
    let sig = l["d1_slowest"]["sql"].as_str().unwrap();
    assert!(sig.contains("WHERE") && sig.contains('?'), "{sig}");
    assert!(!sig.contains("sess_robbie") && !sig.contains("2506"), "a bound value leaked: {sig}");
    assert_eq!(l["d1_n_plus_one"], Value::Null);

    let r = s.shop_req("swicked", "GET", "/api/reports/open-lines").send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tickets"].as_array().unwrap().len(), 11);
    let l = request_line(&s, &r);
    assert_eq!(l["d1_queries"], 1 + 1 + 11, "session + tickets + one per ticket");
    assert_eq!(l["d1_n_plus_one"]["count"], 11, "{l}");
    assert_eq!(
        l["d1_n_plus_one"]["signature"],
        "SELECT SUM(qty * unit_cents) AS total_cents FROM ticket_lines WHERE ticket_id = ?"
    );
}

#[test]
fn stripe_retry_keeps_the_idempotency_key_and_logs_retries() {
    let stripe = Sink::start_with(|n| {
        if n == 0 {
            (500, r#"{"error":{"type":"api_error"}}"#.into())
        } else {
            (200, r#"{"id":"pi_3Nx","status":"succeeded"}"#.into())
        }
    });
    let (b, c) = (Sink::start(), Sink::start());
    let s = server(&stripe, &b, &c);
    let r = s.shop_req("swicked", "POST", "/api/tickets/2507/charge").json(&json!({"amount_cents": 4500})).send();
    assert_eq!(r.status, 201, "{}", r.body);
    let got = stripe.received();
    assert_eq!(got.len(), 2, "one failure, one retry");
    let key = |i: usize| got[i].headers.iter().find(|(k, _)| k == "idempotency-key").map(|(_, v)| v.clone());
    let rid = r.request_id.clone().unwrap();
    assert_eq!(key(0), key(1), "same Idempotency-Key on both attempts");
    assert!(key(0).unwrap().starts_with(&rid), "derived from the request id: {:?}", key(0));
    assert_eq!(got[0].path, "/v1/payment_intents");
    let calls = call_lines(&s, &rid);
    assert_eq!(calls.len(), 1, "one line per call, not per attempt: {calls:?}");
    assert_eq!(calls[0]["target"], "stripe");
    assert_eq!(calls[0]["endpoint"], "/v1/payment_intents");
    assert_eq!(calls[0]["retries"], 1);
    assert_eq!(calls[0]["status"], 200);
    assert!(calls[0]["ms"].as_f64().is_some());
    let l = request_line(&s, &r);
    assert_eq!(l["external_calls"], json!(["stripe:1", "twilio:0", "claude:0", "gbp:0"]));
    assert_eq!(l["d1_queries"], 3, "session + ticket check + transaction insert");
}

#[test]
fn failed_call_logs_its_body_without_card_key_or_name() {
    let body = r#"{"error":{"type":"card_error","message":"Your card 4242 4242 4242 4242 was declined for Marguerite Vanderholt","api_key":"sk_live_51Hx4Qk2eZvKYlo2CzZZZZ","customer_name":"Marguerite Vanderholt","decline_code":"insufficient_funds"}}"#;
    let stripe = Sink::start_with(move |_| (402, body.to_string()));
    let (b, c) = (Sink::start(), Sink::start());
    let s = server(&stripe, &b, &c);
    let r = s.shop_req("swicked", "POST", "/api/tickets/2507/charge").json(&json!({"amount_cents": 4500})).send();
    assert_eq!(r.status, 502);
    assert_eq!(stripe.received().len(), 1, "a 402 is not retried");
    let calls = call_lines(&s, r.request_id.as_deref().unwrap());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["status"], 402);
    assert_eq!(calls[0]["retries"], 0);
    let logged = calls[0]["error_body"].as_str().expect("failed calls log their body");
    assert!(logged.contains("insufficient_funds"), "the useful part stays: {logged}");
    let out = s.log_text();
    for secret in ["4242", "sk_live_", "Marguerite", "Vanderholt", STRIPE_KEY, "sk_test_"] {
        assert!(!out.contains(secret), "{secret:?} in the server output:\n{logged}");
    }
    assert_eq!(request_line(&s, &r)["error_class"], "UpstreamError");
}

#[test]
fn twilio_and_ai_calls_report_their_costs() {
    let twilio =
        Sink::start_with(|_| (201, r#"{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}"#.into()));
    let ai = Sink::start_with(|_| {
        (200, r#"{"content":[{"type":"text","text":"Screen and labour."}],"usage":{"input_tokens":1000,"output_tokens":500}}"#.into())
    });
    let a = Sink::start();
    let s = server(&a, &twilio, &ai);
    let msg = "Hi, your repair is ready for pickup.";
    let r = s.shop_req("swicked", "POST", "/api/tickets/2506/sms").json(&json!({"message": msg})).send();
    assert_eq!(r.status, 201, "{}", r.body);
    let sent = &twilio.received()[0];
    assert!(sent.path.ends_with("/Messages.json"));
    assert!(sent.body.contains("Body=Hi%2C"), "the SMS went out: {}", sent.body);
    let l = request_line(&s, &r);
    assert_eq!(l["external_calls"], json!(["stripe:0", "twilio:1", "claude:0", "gbp:0"]));
    assert_eq!(l["cost_micros"]["twilio"], 7900, "one GSM-7 segment at 7900 micros");
    let call = &call_lines(&s, r.request_id.as_deref().unwrap())[0];
    assert_eq!(call["endpoint"], "/2010-04-01/Accounts/{id}/Messages.json");
    assert_eq!(call["cost_micros"], 7900);

    let r = s.shop_req("swicked", "POST", "/api/ai/summarize").json(&json!({"ticket_id": 2506})).send();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["summary"], "Screen and labour.");
    let l = request_line(&s, &r);
    assert_eq!(l["external_calls"], json!(["stripe:0", "twilio:0", "claude:1", "gbp:0"]));
    assert_eq!(l["cost_micros"]["claude"], 1000 * 3 + 500 * 15, "1000 in x $3/M + 500 out x $15/M");
    assert!(!ai.received()[0].body.contains("Marguerite"), "no customer data sent to the AI");

    let out = s.log_text();
    for secret in [TWILIO_TOKEN, ANTHROPIC_KEY, msg, "415 555 0142", "+14155550142"] {
        assert!(!out.contains(secret), "{secret:?} in the server output");
    }
}

#[test]
fn r2_operations_are_counted() {
    let (a, b, c) = (Sink::start(), Sink::start(), Sink::start());
    let s = server(&a, &b, &c);
    let photo = vec![0x89u8, b'P', b'N', b'G', 1, 2, 3, 4];
    let r = s.shop_req("swicked", "PUT", "/api/tickets/2506/photos/front.png").body(photo.clone()).send();
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(request_line(&s, &r)["r2_ops"], 1);
    let r = s.shop_req("swicked", "GET", "/api/tickets/2506/photos/front.png").send();
    assert_eq!(r.status, 200);
    assert_eq!(request_line(&s, &r)["r2_ops"], 1);
    let r = s.shop_req("swicked", "GET", "/api/tickets/2506/photos").send();
    assert_eq!(r.json()["photos"], json!(["front.png"]));
    assert_eq!(request_line(&s, &r)["r2_ops"], 1);
    let r = s.shop_req("swicked", "GET", "/api/tickets/2506/photos/missing.png").send();
    assert_eq!(r.status, 404);
    assert_eq!(request_line(&s, &r)["r2_ops"], 1);
    let r = s.shop_req("swicked", "GET", "/health").send();
    assert_eq!(request_line(&s, &r)["r2_ops"], 0);
}
