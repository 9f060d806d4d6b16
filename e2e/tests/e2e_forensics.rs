//! End-to-end: forensics on one's own dev traffic. A charge fails against the Stripe stand-in
//! in real workerd; the server's output goes through the same Logpush writer `scripts/dev` uses
//! (forensics/logpush.py) into a local archive; `scripts/forensics why <request id>` names the
//! error class, the failing Stripe call with its status and redacted body, and the build, with no
//! PII in its output. `customer-builds` answers from a real `wrangler d1 export` of the server's
//! database (the seed's audit rows plus the one this test's change wrote).

use std::path::Path;
use std::process::Command;

use lookout_e2e as support;

use serde_json::{json, Value};
use support::{root, Opts, Server, Sink};

const STRIPE_KEY: &str = "sk_test_51Hx4Qk2eZvKYlo2CxYzAbCdEfGh";
/// A decline as Stripe words it, with a card number, a live key and a customer's name in it.
const DECLINE: &str = r#"{"error":{"type":"card_error","message":"Your card 4242 4242 4242 4242 was declined for Marguerite Vanderholt","api_key":"sk_live_51Hx4Qk2eZvKYlo2CzZZZZ","customer_name":"Marguerite Vanderholt","decline_code":"insufficient_funds"}}"#;
/// What must never be printed: the body's PII and secrets, and the seed's customers.
const PII: &[&str] = &[
    "4242",
    "sk_live_",
    "sk_test_",
    "Marguerite",
    "Vanderholt",
    "Bartholomew",
    "Quince",
    "marguerite@example.com",
    "bquince@example.org",
    "415 555 0142",
    "7946 0958",
    "Fairweather",
];

fn forensics(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(root().join("scripts/forensics"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run scripts/forensics");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The server's output so far, through the dev writer, into a Logpush-shaped archive.
fn archive(s: &Server, dir: &Path) {
    let out = Command::new("python3")
        .arg(root().join("forensics/logpush.py"))
        .args(["--from-file", s.log_path().to_str().unwrap(), "--out", dir.to_str().unwrap()])
        .output()
        .expect("run forensics/logpush.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn why_names_the_class_the_failing_stripe_call_and_the_build_without_pii() {
    let stripe = Sink::start_with(|_| (402, DECLINE.to_string()));
    let s = Server::start_with(
        Opts::default().var("STRIPE_API_BASE", &stripe.url("")).var("STRIPE_SECRET_KEY", STRIPE_KEY),
    );
    // A change for customer 1 (ticket 2506): an audit row in this build, for customer-builds.
    let added = s
        .shop_req("swicked", "POST", "/api/tickets/2506/lines")
        .json(&json!({"description": "Screen protector", "qty": 1, "unit_cents": 1500}))
        .send();
    assert_eq!(added.status, 201, "{}", added.body);
    let r = s.shop_req("swicked", "POST", "/api/tickets/2507/charge").json(&json!({"amount_cents": 4500})).send();
    assert_eq!(r.status, 502, "{}", r.body);
    let rid = r.request_id.clone().expect("X-Request-Id");
    let line = s.lines_for(&rid).pop().expect("the request line");
    let build = line["build_version"].as_str().expect("build_version").to_string();
    // The call's line is printed before the request line, so it is in the log by now.

    let dir = root().join("target").join("e2e").join(format!("archive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    archive(&s, &dir);
    let arch = dir.to_str().unwrap();

    let (code, out, err) = forensics(&["--archive", arch, "--json", "why", &rid]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["found"], true);
    assert_eq!(v["shop"], "swicked");
    assert_eq!(v["request"]["error_class"], "UpstreamError");
    assert_eq!(v["request"]["status"], 502);
    assert_eq!(v["request"]["route"], "/api/tickets/{id}/charge");
    assert_eq!(v["request"]["build_version"], build.as_str());
    assert_eq!(v["build"]["build_version"], build.as_str());
    let calls = v["external_calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["target"], "stripe");
    assert_eq!(calls[0]["endpoint"], "/v1/payment_intents");
    assert_eq!(calls[0]["status"], 402);
    assert_eq!(calls[0]["retries"], 0);
    let body = calls[0]["error_body"].as_str().expect("the failed call's body");
    assert!(body.contains("insufficient_funds") && body.contains("[redacted]"), "{body}");
    let hist = &v["error_class_history"];
    assert_eq!(hist["error_class"], "UpstreamError");
    assert_eq!(hist["first_seen"]["build_version"], build.as_str(), "{hist}");

    // The same for a person: the class, the call with its status and body, the build.
    let (code, text, err) = forensics(&["--archive", arch, "why", &rid]);
    assert_eq!(code, 0, "{text}\n{err}");
    for want in ["UpstreamError", "stripe POST /v1/payment_intents -> 402", "insufficient_funds", build.as_str()] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    for secret in PII.iter().chain([&STRIPE_KEY]) {
        assert!(!text.contains(secret) && !out.contains(secret), "{secret:?} in the output:\n{text}");
    }

    // An unknown id says so (and fails), rather than printing nothing.
    let (code, text, _) = forensics(&["--archive", arch, "why", "req_000000000000"]);
    assert_eq!(code, 1);
    assert!(text.contains("not in the archive"), "{text}");

    // customer-builds from a real `wrangler d1 export` of this server's database.
    let (code, out, err) = forensics(&["--json", "customer-builds", "1", "--d1-local", s.state_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let builds: Vec<&str> =
        v["builds"].as_array().unwrap().iter().map(|b| b["build_version"].as_str().unwrap()).collect();
    assert_eq!(builds, ["0.0.9+seed", "0.1.0+seed", build.as_str()], "{out}");
    let rows: Vec<i64> = v["builds"].as_array().unwrap().iter().map(|b| b["rows"].as_i64().unwrap()).collect();
    assert_eq!(rows, [4, 1, 1], "seed ids 1-4 and 8, then this test's line: {out}");
    for secret in PII {
        assert!(!out.contains(secret), "{secret:?} in the output:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
