//! The soak with faults (`scripts/soak`, bench/README.md): the sample app in `wrangler dev`
//! (workerd, local D1 and Durable Objects) serving 50 shops with mixed traffic for several
//! minutes, while one shop has a 5xx incident, the alert webhook fails for a while, and the
//! server is stopped and started again (same state) in the middle. Then it waits for every
//! monitor's outbox to drain and writes its figures to bench/RESULTS.md (its own section):
//! records sent vs accepted per shop (loss allowed only for the bucket open at the restart),
//! notifications delivered exactly once per (dedup key, event, channel), 5xx answers not
//! caused by the incident, and workerd's memory before and after. Loopback only; bounded in
//! time (`--minutes`, default 5, plus at most 5 minutes of draining).
//!
//! `soak [--minutes M] [--shops N] [--results PATH] [--no-write]`; exit status 1 when a
//! figure misses its target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout_e2e::{root, rss_kib_of, Opts, Server, Sink, OPS_TOKEN};
use serde_json::Value;

/// The shop in a 5xx incident.
const INCIDENT_SHOP: &str = "shop-07";
/// Bucket width and coalescing delay of the test environment (wrangler.toml `[env.test]`):
/// what a restart may lose is the bucket still open plus records not yet flushed to it.
const BUCKET_S: f64 = 1.0;
const FLUSH_S: f64 = 0.1;
/// Allowance for the forwarding call itself (from the response to the object) on a busy machine.
const SEND_S: f64 = 0.5;

struct Args {
    minutes: f64,
    shops: usize,
    results: PathBuf,
    write: bool,
}

fn args() -> Args {
    let mut a = Args { minutes: 5.0, shops: 50, results: root().join("bench/RESULTS.md"), write: true };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--minutes" => a.minutes = it.next().and_then(|v| v.parse().ok()).expect("--minutes M"),
            "--shops" => a.shops = it.next().and_then(|v| v.parse().ok()).expect("--shops N"),
            "--results" => a.results = it.next().map(PathBuf::from).expect("--results PATH"),
            "--no-write" => a.write = false,
            other => panic!("soak: unknown argument {other}"),
        }
    }
    assert!(a.minutes >= 1.0 && a.shops >= 10, "at least 1 minute and 10 shops");
    a
}

/// One response the driver got (or a connection that failed: `status` None).
#[derive(Debug, Clone)]
struct Sent {
    /// Seconds since the soak started, when the answer came.
    at: f64,
    shop: String,
    kind: &'static str,
    status: Option<u16>,
    request_id: Option<String>,
}

/// A deterministic generator (xorshift64*), so two runs send the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One request of the mix for `shop`: (kind, method, path, extra headers, body).
fn pick(rng: &mut Rng) -> Request {
    match rng.below(100) {
        0..=44 => ("health", "GET", "/health".into(), vec![], vec![]),
        45..=49 => ("head", "HEAD", "/health".into(), vec![], vec![]),
        50..=64 => ("ticket", "GET", "/api/tickets/2506".into(), vec![], vec![]),
        65..=74 => ("missing", "GET", format!("/x/{}", rng.below(1000)), vec![], vec![]),
        75..=89 => ("slow", "GET", "/__test/fault?status=200&delay_ms=20".into(), vec![], vec![]),
        90..=94 => ("report", "GET", "/api/reports/open-lines".into(), vec![], vec![]),
        _ => (
            "bad_signature",
            "POST",
            "/webhooks/stripe".into(),
            vec![("stripe-signature", format!("t=1,v1={}", "ab".repeat(32)))],
            b"{}".to_vec(),
        ),
    }
}

type Request = (&'static str, &'static str, String, Vec<(&'static str, String)>, Vec<u8>);

/// Send one request to the server on `port` (the port survives the restart).
fn send(port: u16, t0: Instant, shop: &str, req: Request) -> Sent {
    let (kind, method, path, headers, body) = req;
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut b = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("host", format!("{shop}.localhost"))
        .header("cookie", "session=sess_robbie");
    for (k, v) in &headers {
        b = b.header(*k, v.as_str());
    }
    let req = b.body(body).expect("request");
    let (status, request_id) = match lookout_e2e::agent().run(req) {
        Ok(mut r) => {
            let id = r.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
            let _ = r.body_mut().read_to_vec();
            (Some(r.status().as_u16()), id)
        }
        Err(_) => (None, None),
    };
    Sent { at: t0.elapsed().as_secs_f64(), shop: shop.to_string(), kind, status, request_id }
}

fn status_of(s: &Server, shop: &str) -> Option<Value> {
    let r = s
        .req("GET", &format!("/ops/shops/{shop}/status"))
        .header("authorization", &format!("Bearer {OPS_TOKEN}"))
        .send();
    (r.status == 200).then(|| r.json())
}

fn log(msg: &str) {
    eprintln!("[soak] {msg}");
}

fn main() {
    let a = args();
    let t_traffic = a.minutes * 60.0;
    // Phases, as fractions of the traffic time.
    let incident = (0.15 * t_traffic, 0.40 * t_traffic);
    let sink_down = (0.20 * t_traffic, 0.45 * t_traffic);
    let restart_at = 0.55 * t_traffic;

    let mut shops: Vec<String> = vec!["swicked".into(), "demo".into()];
    shops.extend((1..).map(|i| format!("shop-{i:02}")).take(a.shops - 2));
    // The alert webhook: answers 500 while `failing`; what it answered is kept per request.
    let failing = Arc::new(AtomicBool::new(false));
    let answered: Arc<Mutex<Vec<u16>>> = Arc::default();
    let sink = {
        let (failing, answered) = (Arc::clone(&failing), Arc::clone(&answered));
        Sink::start_with(move |_| {
            let status = if failing.load(Ordering::SeqCst) { 500 } else { 200 };
            answered.lock().unwrap().push(status);
            (status, "{}".into())
        })
    };
    log(&format!("starting wrangler dev with {} shops", shops.len()));
    let mut server = Server::start_with(
        Opts::default()
            .var("SHOPS", &shops.join(","))
            .var("ALERT_WEBHOOK_URL", &sink.url("/hook"))
            .var("CRON_WATCH", "[]")
            // The fleet object is bound and every monitor reports to it (a trigger waits for
            // its answer), but fleet incidents are off: the bad Stripe signatures sent to random
            // shops would (rightly) open `fleet:stripe_signature_failures` and hold the later
            // shops' own pages, which the exactly-once count below, built from each monitor's
            // state changes, cannot tell from a lost page. e2e_fleet.rs tests that grouping.
            .var("FLEET_ALERTING", r#"{"enabled": false}"#),
    );
    let t0 = Instant::now();
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut memory: Vec<(&'static str, f64, (u64, u64))> = Vec::new();
    // workerd's memory every 15 s: (seconds, run 1 or 2, workerd KiB).
    let series: Arc<Mutex<Vec<(f64, u32, u64)>>> = Arc::default();
    let pgid = Arc::new(AtomicU32::new(server.pgid()));
    let run = Arc::new(AtomicU32::new(1));
    let mut t_kill = 0.0;

    // The clients only need the port (the restart keeps it), so the main thread can restart
    // the server while they run: their requests meanwhile fail to connect and are counted so.
    let port = server.port;
    std::thread::scope(|scope| {
        let drivers: Vec<_> = (0..4u64)
            .map(|w| {
                let (sent, stop, shops) = (Arc::clone(&sent), Arc::clone(&stop), shops.clone());
                scope.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        let shop = &shops[rng.below(shops.len() as u64) as usize];
                        let one = send(port, t0, shop, pick(&mut rng));
                        sent.lock().unwrap().push(one);
                        let pace = Duration::from_millis(250);
                        if let Some(rest) = pace.checked_sub(started.elapsed()) {
                            std::thread::sleep(rest);
                        }
                    }
                })
            })
            .collect();
        let sampler = {
            let (series, stop, pgid, run) =
                (Arc::clone(&series), Arc::clone(&stop), Arc::clone(&pgid), Arc::clone(&run));
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (w, _) = rss_kib_of(pgid.load(Ordering::SeqCst));
                    if w > 0 {
                        series.lock().unwrap().push((t0.elapsed().as_secs_f64(), run.load(Ordering::SeqCst), w));
                    }
                    for _ in 0..15 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            })
        };
        let incident_driver = {
            let (sent, stop) = (Arc::clone(&sent), Arc::clone(&stop));
            scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let now = t0.elapsed().as_secs_f64();
                    if now >= incident.0 && now < incident.1 {
                        let req = ("incident", "GET", "/__test/fault?status=503".to_string(), vec![], vec![]);
                        let one = send(port, t0, INCIDENT_SHOP, req);
                        sent.lock().unwrap().push(one);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };

        // The conductor: memory samples, the webhook outage, the restart.
        let at = |secs: f64| {
            let wait = secs - t0.elapsed().as_secs_f64();
            if wait > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(wait));
            }
        };
        at(10.0);
        memory.push(("first run, warm (10 s)", t0.elapsed().as_secs_f64(), server.rss_kib()));
        at(sink_down.0);
        failing.store(true, Ordering::SeqCst);
        log("alert webhook failing");
        at(sink_down.1);
        failing.store(false, Ordering::SeqCst);
        log("alert webhook back");
        at(restart_at);
        memory.push(("first run, before the restart", t0.elapsed().as_secs_f64(), server.rss_kib()));
        t_kill = t0.elapsed().as_secs_f64();
        log("restarting wrangler dev (SIGTERM, same state)");
        run.store(0, Ordering::SeqCst);
        server.restart();
        pgid.store(server.pgid(), Ordering::SeqCst);
        run.store(2, Ordering::SeqCst);
        log(&format!("restarted in {:.1} s", t0.elapsed().as_secs_f64() - t_kill));
        at(t0.elapsed().as_secs_f64() + 10.0);
        memory.push(("second run, warm (10 s)", t0.elapsed().as_secs_f64(), server.rss_kib()));
        at(t_traffic);
        stop.store(true, Ordering::SeqCst);
        for d in drivers {
            d.join().expect("driver");
        }
        incident_driver.join().expect("incident driver");
        sampler.join().expect("sampler");
    });
    log("traffic over; waiting for every outbox to drain (at most 5 minutes)");

    // Drain: every monitor's outbox empty and the incident resolved, the accepted counts stable.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut statuses: BTreeMap<String, Value> = BTreeMap::new();
    let mut last_accepted: Option<u64> = None;
    loop {
        statuses.clear();
        for shop in &shops {
            if let Some(st) = status_of(&server, shop) {
                statuses.insert(shop.clone(), st);
            }
        }
        let backlog: u64 = statuses.values().map(|s| s["outbox"]["backlog"].as_u64().unwrap_or(1)).sum();
        let accepted: u64 = statuses.values().map(|s| s["counters"]["accepted_records"].as_u64().unwrap_or(0)).sum();
        let incident_over = statuses.get(INCIDENT_SHOP).is_some_and(|s| {
            s["rules"].as_array().is_some_and(|r| r.iter().all(|r| r["state"] != "firing" && r["state"] != "pending"))
        });
        let stable = last_accepted == Some(accepted);
        if (backlog == 0 && incident_over && stable && statuses.len() == shops.len()) || Instant::now() > deadline {
            break;
        }
        last_accepted = Some(accepted);
        std::thread::sleep(Duration::from_secs(5));
    }
    let t_end = t0.elapsed().as_secs_f64();
    memory.push(("second run, at the end", t_end, server.rss_kib()));

    let series = series.lock().unwrap().clone();
    let report = figures(
        &a,
        &shops,
        &server,
        &sink,
        &answered.lock().unwrap(),
        &sent.lock().unwrap(),
        &statuses,
        t_kill,
        (&memory, &series),
        t_end,
    );
    println!("{}", report.markdown);
    if a.write {
        write_section(&a.results, &report.markdown);
        log(&format!("wrote the soak section of {}", a.results.display()));
    }
    drop(server);
    if !report.met {
        log("a target was missed");
        std::process::exit(1);
    }
}

/// Memory marks: (what, seconds, (workerd KiB, all KiB)).
type Marks = [(&'static str, f64, (u64, u64))];
/// workerd's memory over time: (seconds, run, KiB).
type Series = [(f64, u32, u64)];

struct Report {
    markdown: String,
    met: bool,
}

#[allow(clippy::too_many_arguments)]
fn figures(
    a: &Args,
    shops: &[String],
    server: &Server,
    sink: &Sink,
    answered: &[u16],
    sent: &[Sent],
    statuses: &BTreeMap<String, Value>,
    t_kill: f64,
    (memory, series): (&Marks, &Series),
    t_end: f64,
) -> Report {
    let lines = server.json_lines();
    let request_lines: Vec<&Value> =
        lines.iter().filter(|v| v.get("path").is_some() && v.get("request_id").is_some()).collect();
    // Records: per shop, answers with a request id (each has a line and a record), lines the
    // Worker printed, records the shop's monitor accepted.
    let mut rows = Vec::new();
    let (mut total_sent, mut total_accepted, mut total_lost, mut outside) = (0u64, 0u64, 0u64, 0u64);
    let window = BUCKET_S + FLUSH_S + SEND_S;
    for shop in shops {
        let answered_ok: Vec<&Sent> = sent.iter().filter(|x| &x.shop == shop && x.request_id.is_some()).collect();
        let n_sent = answered_ok.len() as u64;
        let logged = request_lines.iter().filter(|l| l["shop"] == shop.as_str()).count() as u64;
        let accepted = statuses.get(shop).and_then(|s| s["counters"]["accepted_records"].as_u64()).unwrap_or(0);
        let allowed = answered_ok.iter().filter(|x| x.at <= t_kill && x.at > t_kill - window).count() as u64;
        let lost = n_sent.saturating_sub(accepted);
        let beyond = lost.saturating_sub(allowed);
        total_sent += n_sent;
        total_accepted += accepted;
        total_lost += lost;
        outside += beyond;
        rows.push(format!("| {shop} | {n_sent} | {logged} | {accepted} | {lost} | {allowed} |"));
    }
    let failed_connections = sent.iter().filter(|x| x.status.is_none()).count();
    let forward_failed: u64 = lines
        .iter()
        .filter(|v| v["kind"] == "monitor_forward_failed")
        .map(|v| v["records"].as_u64().unwrap_or(0))
        .sum();

    // Notifications: what the webhook accepted (answered 200), by (dedup key, event); what the
    // monitors decided (their state changes to firing and to resolved).
    let received = sink.received();
    let mut delivered: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut refused_attempts = 0;
    for (i, r) in received.iter().enumerate() {
        let v = r.json();
        let key = (v["dedup_key"].as_str().unwrap_or("?").to_string(), v["event"].as_str().unwrap_or("?").to_string());
        if answered.get(i) == Some(&200) {
            *delivered.entry(key).or_default() += 1;
        } else {
            refused_attempts += 1;
        }
    }
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    let mut truncated_history = false;
    for (shop, st) in statuses {
        let changes = st["recent_changes"].as_array().cloned().unwrap_or_default();
        truncated_history |= changes.len() >= 50;
        for c in changes {
            let event = match c["to"].as_str() {
                Some("firing") => "trigger",
                Some("resolved") => "resolve",
                _ => continue,
            };
            let key = format!("{shop}:{}:{}", c["rule"].as_str().unwrap_or("?"), c["incident_seq"]);
            expected.insert((key, event.to_string()));
        }
    }
    let duplicated: Vec<_> =
        delivered.iter().filter(|(_, n)| **n > 1).map(|(k, n)| format!("{}/{} x{n}", k.0, k.1)).collect();
    let missing: Vec<_> =
        expected.iter().filter(|k| !delivered.contains_key(*k)).map(|k| format!("{}/{}", k.0, k.1)).collect();
    let unexpected: Vec<_> =
        delivered.keys().filter(|k| !expected.contains(*k)).map(|k| format!("{}/{}", k.0, k.1)).collect();
    let dead: u64 = statuses.values().map(|s| s["outbox"]["dead_lettered_total"].as_u64().unwrap_or(0)).sum();
    let backlog: u64 = statuses.values().map(|s| s["outbox"]["backlog"].as_u64().unwrap_or(0)).sum();
    let incident_keys: Vec<_> =
        expected.iter().filter(|k| k.0.starts_with(&format!("{INCIDENT_SHOP}:http_5xx_rate:"))).collect();

    // 5xx: every one must be the incident's own fault route.
    let five: Vec<&Sent> = sent.iter().filter(|x| x.status.is_some_and(|s| s >= 500)).collect();
    let stray: Vec<String> = five
        .iter()
        .filter(|x| !(x.shop == INCIDENT_SHOP && x.kind == "incident"))
        .map(|x| format!("{} {} {:?} {:?}", x.shop, x.kind, x.status, x.request_id))
        .collect();
    let panics =
        request_lines.iter().filter(|l| l["error_class"] == "Panic" || l["error_class"] == "AbortedByPanic").count();

    let records_ok = outside == 0 && statuses.len() == shops.len();
    let notify_ok = duplicated.is_empty()
        && missing.is_empty()
        && unexpected.is_empty()
        && dead == 0
        && backlog == 0
        && incident_keys.len() >= 2;
    let fivexx_ok = stray.is_empty() && panics == 0;
    let verdict = |ok: bool| if ok { "**met**" } else { "**missed**" };
    let mib = |k: u64| format!("{:.0} MiB", k as f64 / 1024.0);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();

    let mut md = String::new();
    md.push_str(&format!(
        "## Soak with faults (`scripts/soak`)\n\n\
         Written by `scripts/soak` ({} min of traffic, {} shops) at {} on commit {commit}, load average at the end {}. \
         The sample app in `wrangler dev --env test` (bucket 1 s, windows 5 s): 4 clients at up to 4 requests/s each to \
         random shops (health, HEAD, a D1 ticket, 404s, a 20 ms route, the N+1 report, bad Stripe signatures); \
         `{INCIDENT_SHOP}` also gets 4 requests/s of 503 from {:.0} s to {:.0} s; the alert webhook answers 500 from \
         {:.0} s to {:.0} s; wrangler dev is stopped (SIGTERM) and started again on the same state at {t_kill:.0} s. Every \
         monitor reports to the fleet object, with fleet incidents off (`FLEET_ALERTING={{\"enabled\": false}}`: the bad \
         signatures in random shops would group into one fleet page). Then the \
         soak waits for every monitor's outbox to drain (done at {t_end:.0} s).\n\n",
        a.minutes,
        shops.len(),
        chrono::DateTime::from_timestamp(lookout_e2e::system_s(std::time::SystemTime::now()) as i64, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%MZ"),
        load.join(" "),
        0.15 * a.minutes * 60.0,
        0.40 * a.minutes * 60.0,
        0.20 * a.minutes * 60.0,
        0.45 * a.minutes * 60.0,
    ));
    md.push_str("| target | measured | verdict |\n|---|---|---|\n");
    md.push_str(&format!(
        "| records lost only from the bucket open at the restart (answers in the last {window:.1} s before it: bucket {BUCKET_S} s + flush {FLUSH_S} s + {SEND_S} s for the send) | {total_sent} answered, {total_accepted} accepted, {total_lost} lost, {outside} of them outside that window; `monitor_forward_failed` lines: {forward_failed} records; {failed_connections} connections refused while restarting (no answer, not counted) | {} |\n",
        verdict(records_ok)
    ));
    md.push_str(&format!(
        "| notifications delivered exactly once per (dedup key, event, channel) | {} decided, {} delivered, {} duplicated, {} missing, {} not decided by a monitor; {refused_attempts} attempts refused by the failing webhook and retried; dead letters {dead}, backlog at the end {backlog}; the incident: {} | {} |\n",
        expected.len(),
        delivered.len(),
        duplicated.len(),
        missing.len(),
        unexpected.len(),
        incident_keys.iter().map(|k| format!("{}/{}", k.0, k.1)).collect::<Vec<_>>().join(", "),
        verdict(notify_ok)
    ));
    md.push_str(&format!(
        "| no 5xx caused by monitoring | {} 5xx answers, all the incident's own 503s: {}; panics {panics} | {} |\n",
        five.len(),
        if stray.is_empty() {
            "yes".to_string()
        } else {
            format!("no, {} others: {}", stray.len(), stray.iter().take(5).cloned().collect::<Vec<_>>().join("; "))
        },
        verdict(fivexx_ok)
    ));
    let mem: Vec<String> = memory
        .iter()
        .map(|(what, at, (w, total))| format!("{what} ({at:.0} s): workerd {}, all {}", mib(*w), mib(*total)))
        .collect();
    md.push_str(&format!("| memory (resident) | {} | (figure) |\n", mem.join("; ")));
    let curve: Vec<String> = series
        .iter()
        .filter(|(_, run, _)| *run > 0)
        .map(|(t, run, w)| format!("{t:.0} s: {} (run {run})", mib(*w)))
        .collect();
    md.push_str(&format!("\nworkerd's resident memory every 15 s: {}.\n", curve.join(", ")));
    if truncated_history {
        md.push_str("\nA monitor kept its last 50 state changes only; older ones were not checked.\n");
    }
    if !duplicated.is_empty() || !missing.is_empty() || !unexpected.is_empty() {
        md.push_str(&format!(
            "\nDuplicated: {}. Missing: {}. Not decided: {}.\n",
            duplicated.join(", "),
            missing.join(", "),
            unexpected.join(", ")
        ));
    }
    md.push_str("\nRecords per shop (answered: responses with a request id; logged: request lines; accepted: the monitor's `accepted_records`; allowed: answered in the window before the restart):\n\n");
    md.push_str("| shop | answered | logged | accepted | lost | allowed |\n|---|---|---|---|---|---|\n");
    md.push_str(&rows.join("\n"));
    md.push('\n');
    Report { markdown: md, met: records_ok && notify_ok && fivexx_ok }
}

const BEGIN: &str = "<!-- soak:begin (written by scripts/soak; bench/run keeps it) -->";
const END: &str = "<!-- soak:end -->";

/// Replace (or append) the soak's section of RESULTS.md.
fn write_section(path: &PathBuf, md: &str) {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{BEGIN}\n{md}{END}\n");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{section}{}", &old[..b], &old[e + END.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{section}", old.trim_end()),
    };
    std::fs::write(path, new).expect("write RESULTS.md");
}
