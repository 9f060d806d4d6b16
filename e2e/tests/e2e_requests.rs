//! End-to-end: the instrumentation wrapper in real workerd. One JSON line per request, the
//! line's id equals `X-Request-Id`, unique ids, no customer data in any output.

use lookout_e2e as support;

use std::collections::HashSet;

use lookout_core::record::FIELDS;
use serde_json::{json, Value};
use support::{Resp, Server};

/// Exactly one line for the response's id, with every field present and matching status.
fn the_line(s: &Server, r: &Resp) -> Value {
    let id = r.request_id.as_deref().expect("X-Request-Id on every response");
    let lines = s.lines_for(id);
    assert_eq!(lines.len(), 1, "expected one line for {id}, got {lines:?}");
    let line = lines.into_iter().next().unwrap();
    for f in FIELDS {
        assert!(line.get(f).is_some(), "field {f} missing in {line}");
    }
    assert_eq!(line["status"], r.status, "line status vs response: {line}");
    assert!(line["build_version"].as_str().is_some_and(|v| v.starts_with("0.1.0+")), "{line}");
    assert!(chrono::DateTime::parse_from_rfc3339(line["ts"].as_str().unwrap()).is_ok(), "{line}");
    line
}

#[test]
fn every_outcome_gets_one_line_and_the_response_id() {
    let s = Server::start();

    let ok = s.shop_req("swicked", "GET", "/api/tickets/2506").send();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["ticket"]["id"], 2506);
    let l = the_line(&s, &ok);
    assert_eq!(l["shop"], "swicked");
    assert_eq!(l["staff_id"], 3);
    assert_eq!(l["staff_label"], "Robbie");
    assert_eq!(l["path"], "/api/tickets/{id}", "the route template, not the raw path");
    assert_eq!(l["method"], "GET");
    assert_eq!(l["d1_queries"], 3, "session + ticket + lines: {l}");
    assert_eq!(l["external_calls"], json!(["stripe:0", "twilio:0", "claude:0", "gbp:0"]));
    assert_eq!(l["error_class"], Value::Null);

    let missing = s.shop_req("swicked", "GET", "/no/such/route").send();
    assert_eq!(missing.status, 404);
    assert_eq!(the_line(&s, &missing)["error_class"], "NotFound");

    let blocked = s.shop_req("swicked", "DELETE", "/api/tickets/2506").send();
    assert_eq!(blocked.status, 409, "{}", blocked.body);
    let l = the_line(&s, &blocked);
    assert_eq!(l["error_class"], "BlockedByDependents");
    assert_eq!(l["error_msg"], "Cannot delete ticket with attached transactions");
    assert_eq!(l["error_context"], json!({"ticket_id": 2506, "blocker": "transactions"}));

    let err = s.shop_req("swicked", "GET", "/__test/error").send();
    assert_eq!(err.status, 500);
    let body = err.json();
    assert_eq!(body["request_id"], err.request_id.as_deref().unwrap());
    assert_eq!(body["error"], "InternalError");
    assert!(!err.body.contains("lookup failed"), "internals leaked to the client: {}", err.body);
    let l = the_line(&s, &err);
    assert_eq!(l["error_class"], "RustError");
    assert!(l["error_msg"].as_str().unwrap().starts_with("lookup failed for customer"), "{l}");

    let boom = s.shop_req("swicked", "GET", "/__test/panic").send();
    assert_eq!(boom.status, 500);
    assert_eq!(boom.json()["request_id"], boom.request_id.as_deref().unwrap());
    let l = the_line(&s, &boom);
    assert_eq!(l["error_class"], "Panic");
    assert!(l["error_msg"].as_str().unwrap().contains("examples/shop/src/app.rs"), "{l}");

    // The instance recovers after the panic.
    let after = s.shop_req("swicked", "GET", "/health").send();
    assert_eq!(after.status, 200);
    the_line(&s, &after);

    let unknown = s.req("GET", "/health").header("host", "elsewhere.localhost").send();
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "UnknownShop");
    let l = the_line(&s, &unknown);
    assert_eq!(l["shop"], Value::Null);
    assert_eq!(l["error_class"], "UnknownShop");

    let unauth = s.req("GET", "/api/tickets/2506").header("host", "demo.localhost").send();
    assert_eq!(unauth.status, 401);
    assert_eq!(the_line(&s, &unauth)["shop"], "demo");
}

#[test]
fn fixed_shop_slug_serves_any_host() {
    let s = Server::start_with(support::Opts::default().var("SHOP_SLUG", "swicked"));
    let r = s.req("GET", "/health").header("host", "127.0.0.1").send();
    assert_eq!(r.status, 200);
    assert_eq!(the_line(&s, &r)["shop"], "swicked");
}

#[test]
fn ids_are_unique_over_1000_requests_each_with_one_line() {
    let s = Server::start();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..250)
                        .map(|_| {
                            let r = s.shop_req("swicked", "GET", "/health").send();
                            assert_eq!(r.status, 200);
                            r.request_id.expect("X-Request-Id")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 1000, "duplicate request ids");
    let last = ids.last().unwrap();
    assert_eq!(s.lines_for(last).len(), 1);
    let lines = s.request_lines();
    let mut per_id = std::collections::HashMap::<String, usize>::new();
    for l in &lines {
        *per_id.entry(l["request_id"].as_str().unwrap().to_string()).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(per_id.get(id), Some(&1), "request {id} has {:?} lines", per_id.get(id));
    }
}

#[test]
fn no_customer_data_in_any_output() {
    let s = Server::start();
    // Customer names, phones and emails from the database reach responses, never logs.
    let r = s.shop_req("swicked", "GET", "/api/tickets/2506").send();
    assert!(r.body.contains("Marguerite Vanderholt"), "the app does return the name: {}", r.body);
    // Customer text in a request body.
    let r = s
        .shop_req("swicked", "POST", "/api/tickets/2507/lines")
        .json(&json!({"description": "Call Bartholomew Quince on +44 20 7946 0958 or bquince@example.org", "qty": 1, "unit_cents": 100}))
        .send();
    assert_eq!(r.status, 201, "{}", r.body);
    // Bad input with customer text: rejected, not echoed.
    let r = s
        .shop_req("swicked", "POST", "/api/tickets/2507/lines")
        .json(&json!({"description": "Marguerite Vanderholt", "qty": -1, "unit_cents": 1}))
        .send();
    assert_eq!(r.status, 422);
    let r = s.shop_req("swicked", "POST", "/api/tickets/2507/lines").body("{not json Marguerite").send();
    assert_eq!(r.status, 400);
    // Runtime errors and panics whose messages carry a customer's name and email.
    assert_eq!(s.shop_req("swicked", "GET", "/__test/error").send().status, 500);
    let last = s.shop_req("swicked", "GET", "/__test/panic").send();
    assert_eq!(last.status, 500);
    s.lines_for(last.request_id.as_deref().unwrap());

    let out = s.log_text();
    for pii in [
        "Marguerite",
        "Vanderholt",
        "Bartholomew",
        "Quince",
        "415 555 0142",
        "7946 0958",
        "example.org",
        "example.com",
        "Alice",
        "Smith",
        "Fairweather",
        "Okonkwo",
        "sess_robbie",
    ] {
        assert!(!out.contains(pii), "{pii:?} appears in the server output:\n{out}");
    }
}
