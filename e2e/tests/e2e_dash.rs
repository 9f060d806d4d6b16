//! End-to-end: the dashboards. The sign-in and the 401s over plain HTTP, the history and
//! fleet APIs, then the pages in a real browser: `e2e/browser/dash.mjs` (Debian's Chromium
//! driven by playwright-core) against a Worker this test starts in `wrangler dev`. Needs
//! `/usr/bin/chromium` (scripts/test installs it) and node on PATH.

use lookout_e2e as support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::{root, wait_for, Opts, Server, Sink, OPS_TOKEN};

const SHOP: &str = "swicked";

fn bearer() -> String {
    format!("Bearer {OPS_TOKEN}")
}

/// An agent that does not follow redirects (the sign-in answers 303).
fn no_redirects() -> ureq::Agent {
    ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build())
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn raw(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(body.unwrap_or("").as_bytes().to_vec()).expect("request");
    let mut res = no_redirects().run(req).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let headers =
        res.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    Answer { status: res.status().as_u16(), headers, body: res.body_mut().read_to_string().unwrap_or_default() }
}

fn sign_in(s: &Server, token: &str, next: &str) -> Answer {
    let form = format!("token={token}&next={next}");
    raw(
        "POST",
        &format!("{}/ops/login", s.base()),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(&form),
    )
}

#[test]
fn sign_in_sets_a_signed_cookie_and_every_ops_path_needs_it_or_the_bearer() {
    let s = Server::start();
    let base = s.base();
    // Without a session: pages answer 401 with the sign-in form, the API a JSON 401.
    for page in ["/ops/", "/ops", &format!("/ops/shop/{SHOP}")] {
        let a = raw("GET", &format!("{base}{page}"), &[], None);
        assert_eq!(a.status, 401, "{page}");
        assert!(a.header("content-type").unwrap().starts_with("text/html"), "{page}");
        assert!(a.body.contains("action=\"/ops/login\"") && a.body.contains("name=\"token\""), "{page}: {}", a.body);
        let csp = a.header("content-security-policy").expect("a CSP");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        assert!(!a.body.contains("<script>"), "no inline script");
    }
    for api in ["/ops/fleet", &format!("/ops/shops/{SHOP}/status"), &format!("/ops/shops/{SHOP}/history?range=24h")] {
        let a = raw("GET", &format!("{base}{api}"), &[], None);
        assert_eq!(a.status, 401, "{api}");
        let v: Value = serde_json::from_str(&a.body).unwrap_or_else(|_| panic!("{api}: not JSON: {}", a.body));
        assert_eq!(v["error"], "Unauthorized", "{api}");
    }
    // A forged or expired cookie is no session.
    let forged = raw(
        "GET",
        &format!("{base}/ops/fleet"),
        &[("cookie", "lookout_ops=v1.99999999999999.0000000000000001.00")],
        None,
    );
    assert_eq!(forged.status, 401);
    // A wrong token: 401 and nothing else (no cookie).
    let wrong = sign_in(&s, "not-the-token", "%2Fops%2F");
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none(), "no cookie for a wrong token");
    // The right one: 303 to where it was going, a cookie with every attribute.
    let ok = sign_in(&s, OPS_TOKEN, &format!("%2Fops%2Fshop%2F{SHOP}"));
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), Some(format!("/ops/shop/{SHOP}").as_str()));
    let cookie = ok.header("set-cookie").expect("a session cookie").to_string();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ops", "Max-Age=43200"] {
        assert!(cookie.split("; ").any(|a| a == attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains(OPS_TOKEN));
    // An open redirect is not possible.
    let away = sign_in(&s, OPS_TOKEN, "https%3A%2F%2Fevil.example%2F");
    assert_eq!(away.header("location"), Some("/ops/"));
    // The cookie opens pages and the API; the bearer keeps working; a wrong bearer beside a
    // good cookie is refused.
    let session = cookie.split(';').next().unwrap().to_string();
    let page = raw("GET", &format!("{base}/ops/shop/{SHOP}"), &[("cookie", &session)], None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<script src=\"/ops/assets/dash.js?v="));
    assert_eq!(raw("GET", &format!("{base}/ops/shops/{SHOP}/status"), &[("cookie", &session)], None).status, 200);
    assert_eq!(
        raw("GET", &format!("{base}/ops/shops/{SHOP}/status"), &[("authorization", &bearer())], None).status,
        200
    );
    let both = [("cookie", session.as_str()), ("authorization", "Bearer wrong")];
    assert_eq!(raw("GET", &format!("{base}/ops/shops/{SHOP}/status"), &both, None).status, 401);
    // An unknown shop's page is a 404 page, signed in.
    assert_eq!(raw("GET", &format!("{base}/ops/shop/nope"), &[("cookie", &session)], None).status, 404);
    // Assets are public static files, cached under their version.
    let js = raw("GET", &format!("{base}/ops/assets/dash.js"), &[], None);
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").unwrap().starts_with("text/javascript"));
    assert!(js.body.contains("uPlot"), "uPlot is bundled, not loaded from a CDN");
    assert!(!js.body.contains("https://cdn"), "no CDN at run time");
    assert_eq!(raw("GET", &format!("{base}/ops/assets/../wrangler.toml"), &[], None).status, 401);
    // Sign-out clears the cookie.
    let out = raw("POST", &format!("{base}/ops/logout"), &[("cookie", &session)], None);
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // Every one of these requests was logged with one line; the refused ones as Unauthorized.
    let refused = s.request_lines().into_iter().filter(|l| l["path"] == "/ops/login" && l["status"] == 401).count();
    assert!(refused >= 1);
    assert!(s.log_text().find(OPS_TOKEN).is_none(), "the token never reaches a log line");
}

#[test]
fn history_and_fleet_apis_answer_from_the_monitors() {
    let s = Server::start();
    let get = |p: &str| s.req("GET", p).header("authorization", &bearer()).send();
    for _ in 0..12 {
        assert_eq!(s.shop_req(SHOP, "GET", "/health").send().status, 200);
    }
    assert_eq!(s.shop_req(SHOP, "GET", "/__test/fault?status=503").send().status, 503);
    let h = wait_for(Duration::from_secs(10), || {
        let v = get(&format!("/ops/shops/{SHOP}/history?range=24h")).json();
        (v["last_hour"]["requests"] == 13).then_some(v)
    })
    .expect("the history counts the shop's 13 requests");
    assert_eq!(h["last_hour"]["errors_5xx"], 1);
    assert_eq!(h["series"]["t"].as_array().unwrap().len(), 1440);
    assert_eq!(h["step_s"], 60);
    let m = get(&format!("/ops/shops/{SHOP}/history?range=30d")).json();
    assert_eq!(m["series"]["requests"].as_array().unwrap().len(), 720);
    assert_eq!(m["totals"]["requests"], 13);
    let bad = get(&format!("/ops/shops/{SHOP}/history?range=7d"));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "BadRange");
    assert_eq!(get("/ops/shops/nope/history").status, 404);
    // The monitor pushed its summary to the fleet board; the fleet answer lists every shop.
    // Pushes are throttled (at once on a firing change, else every 30 s), so the count the
    // board has may be that of an earlier push for up to 30 s.
    let mut last = Value::Null;
    let f = wait_for(Duration::from_secs(45), || {
        let v = get("/ops/fleet").json();
        last = v.clone();
        let row = v["shops"].as_array()?.iter().find(|x| x["shop"] == SHOP)?.clone();
        (row["requests_1h"] == 13).then_some(v)
    })
    .unwrap_or_else(|| panic!("the fleet shows the shop's 13 requests: {last}\n{}", s.log_text()));
    assert_eq!(f["totals"]["shops"], 2, "swicked and demo (SHOPS)");
    let demo = f["shops"].as_array().unwrap().iter().find(|x| x["shop"] == "demo").unwrap();
    assert_eq!(demo["summary_at"], Value::Null, "demo never reported");
    assert_eq!(get("/ops/fleet?limit=0").status, 400);
    // The panels hook: the sample app's figures from D1.
    let p = get(&format!("/ops/shops/{SHOP}/panels")).json();
    let keys: Vec<&str> = p["panels"].as_array().unwrap().iter().map(|x| x["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["revenue_today", "open_tickets"]);
    // The daily reconciliation samples R2 for the history.
    assert_eq!(s.shop_req(SHOP, "PUT", "/api/tickets/2506/photos/front.jpg").body(vec![7u8; 1234]).send().status, 201);
    let r = s.req("GET", "/__scheduled?cron=0+7+*+*+*").send();
    assert_eq!(r.status, 200, "{}", r.body);
    let h = wait_for(Duration::from_secs(15), || {
        let v = get(&format!("/ops/shops/{SHOP}/history?range=24h")).json();
        (!v["r2"].as_array()?.is_empty()).then_some(v)
    })
    .expect("an R2 sample");
    assert_eq!(h["r2"][0]["bytes"], 1234);
    assert_eq!(h["r2"][0]["objects"], 1);
}

/// Where the browser test writes its screenshots (and, with `LOOKOUT_DOCS_SCREENSHOTS=1`,
/// the two README shows are copied to docs/).
fn out_dir() -> PathBuf {
    root().join("target").join("e2e").join("dash")
}

#[test]
fn the_dashboards_in_a_real_browser() {
    let chromium = std::env::var("LOOKOUT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(PathBuf::from(&chromium).exists(), "{chromium} missing: scripts/test installs Debian's chromium");
    let stripe = Sink::start_with(|_| (200, r#"{"id":"pi_3Nx","status":"succeeded"}"#.into()));
    let s = Server::start_with(
        Opts::default().var("STRIPE_API_BASE", &stripe.url("")).var("STRIPE_SECRET_KEY", "sk_test_dash"),
    );
    let post = |p: &str| s.req("POST", p).header("authorization", &bearer()).send();
    // A month of history for both shops (the test environment's made-up fill), then real
    // traffic on top: requests, a 5xx, a payment today.
    assert_eq!(post(&format!("/ops/shops/{SHOP}/history/synthesize?rps=10")).status, 200);
    assert_eq!(post("/ops/shops/demo/history/synthesize?rps=3").status, 200);
    for i in 0..20 {
        assert_eq!(s.shop_req(SHOP, "GET", "/health").send().status, 200);
        if i % 4 == 0 {
            assert_eq!(s.shop_req("demo", "GET", "/health").send().status, 200);
        }
    }
    let paid = s.shop_req(SHOP, "POST", "/api/tickets/2507/charge").json(&json!({"amount_cents": 4500})).send();
    assert_eq!(paid.status, 201, "{}", paid.body);
    // Both shops have reported to the fleet board before the browser looks.
    wait_for(Duration::from_secs(15), || {
        let v = s.req("GET", "/ops/fleet").header("authorization", &bearer()).send().json();
        (v["totals"]["shops_reporting"] == 2).then_some(())
    })
    .expect("both shops report to the fleet");
    let out = out_dir();
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new("node")
        .current_dir(root())
        .arg("e2e/browser/dash.mjs")
        .env("LOOKOUT_BASE", s.base())
        .env("LOOKOUT_OPS_TOKEN", OPS_TOKEN)
        .env("LOOKOUT_SHOP", SHOP)
        .env("LOOKOUT_OUT", &out)
        .env("LOOKOUT_CHROMIUM", &chromium)
        .output()
        .expect("run node e2e/browser/dash.mjs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the browser test failed:\n{stderr}\n{stdout}\nscreenshots in {}", out.display());
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}\n{stderr}"));
    eprintln!("{stderr}");
    let live = result["fired_to_shown_ms"].as_i64().unwrap();
    assert!(live <= 5000, "{result}");
    assert!(result["resolved_to_shown_ms"].as_i64().unwrap() <= 5000, "{result}");
    for shot in ["signin.png", "fleet.png", "shop.png", "fleet-firing.png", "shop-30d.png"] {
        let len = std::fs::metadata(out.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{shot}: {len} bytes");
    }
    if std::env::var("LOOKOUT_DOCS_SCREENSHOTS").as_deref() == Ok("1") {
        std::fs::copy(out.join("fleet-firing.png"), root().join("docs/dashboard-fleet.png")).expect("copy");
        std::fs::copy(out.join("shop.png"), root().join("docs/dashboard-shop.png")).expect("copy");
    }
}
