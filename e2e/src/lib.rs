//! End-to-end harness: runs a built Worker (the sample shop app, or the minimal adopter) in
//! real workerd through `wrangler dev`, each server on its own free port with its own local
//! state (D1, Durable Objects), and talks plain HTTP to it. Requires `scripts/build` to have
//! run (scripts/test does that).

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const OPS_TOKEN: &str = "test-ops-token-7f3c9a";
pub const STRIPE_SECRET: &str = "whsec_test_e2e_secret";

/// The repository's root (the workspace).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ is in the workspace").to_path_buf()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn npx() -> Command {
    let mut c = Command::new("npx");
    c.current_dir(root())
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0");
    c
}

fn run_ok(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: cannot run npx: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A migrated and seeded local D1 state, made once per test binary and copied per server.
fn d1_template() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let dir = root().join("target").join("e2e").join(format!("d1-template-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("mkdir");
        let d = dir.to_str().expect("utf8 path").to_string();
        let mut m = npx();
        m.args(["wrangler", "d1", "migrations", "apply", "DB", "--local", "--env", "test", "--persist-to", &d]);
        run_ok(m, "d1 migrations apply");
        let mut s = npx();
        s.args([
            "wrangler",
            "d1",
            "execute",
            "DB",
            "--local",
            "--env",
            "test",
            "--persist-to",
            &d,
            "--file",
            "examples/shop/seed.sql",
        ]);
        run_ok(s, "d1 seed");
        dir
    })
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let p = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &p);
        } else {
            fs::copy(e.path(), p).expect("copy");
        }
    }
}

/// Which Worker a server runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// The sample shop app (top-level wrangler.toml, `--env test`, seeded local D1).
    #[default]
    Shop,
    /// The minimal adopter (examples/minimal/wrangler.toml, no D1).
    Minimal,
}

impl App {
    fn build_dir(self) -> PathBuf {
        match self {
            App::Shop => root().join("examples/shop/build"),
            App::Minimal => root().join("examples/minimal/build"),
        }
    }
}

/// A running `wrangler dev`; killed (whole process group) on drop.
pub struct Server {
    pub port: u16,
    pub state_dir: PathBuf,
    log_path: PathBuf,
    child: Child,
}

/// Options for a server: which Worker, extra `--var KEY:VALUE` pairs.
#[derive(Default, Clone)]
pub struct Opts {
    pub app: App,
    pub vars: Vec<(String, String)>,
}

impl Opts {
    pub fn app(mut self, app: App) -> Self {
        self.app = app;
        self
    }

    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.push((k.to_string(), v.to_string()));
        self
    }
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Opts::default())
    }

    /// Start a server; a start that loses a race for its free ports (another process took
    /// one between our probe and wrangler's bind) is retried on new ports, twice at most.
    pub fn start_with(opts: Opts) -> Server {
        let build = opts.app.build_dir().join("index.js");
        assert!(build.exists(), "{} missing: run scripts/build (scripts/test does)", build.display());
        for _ in 0..2 {
            let mut s = Self::spawn(&opts);
            match s.wait_ready() {
                Ok(()) => return s,
                Err(log) if log.contains("Address already in use") => eprintln!("port race, retrying:\n{log}"),
                Err(log) => panic!("wrangler dev did not start:\n{log}"),
            }
        }
        let mut s = Self::spawn(&opts);
        if let Err(log) = s.wait_ready() {
            panic!("wrangler dev did not start:\n{log}");
        }
        s
    }

    fn spawn(opts: &Opts) -> Server {
        let port = free_port();
        let state_dir = root().join("target").join("e2e").join(format!("state-{}-{port}", std::process::id()));
        let _ = fs::remove_dir_all(&state_dir);
        fs::create_dir_all(root().join("target").join("e2e")).expect("mkdir target/e2e");
        let log_path = state_dir.with_extension("log");
        let log = fs::File::create(&log_path).expect("log file");
        let mut c = npx();
        c.args(["wrangler", "dev", "--local", "--ip", "127.0.0.1", "--port", &port.to_string()]);
        match opts.app {
            App::Shop => {
                copy_dir(d1_template(), &state_dir);
                c.args(["--env", "test", "--var", &format!("STRIPE_WEBHOOK_SECRET:{STRIPE_SECRET}")]);
            }
            App::Minimal => {
                fs::create_dir_all(&state_dir).expect("mkdir");
                c.args(["--config", "examples/minimal/wrangler.toml"]);
            }
        }
        c.args(["--inspector-port", &free_port().to_string()])
            .args(["--test-scheduled", "--show-interactive-dev-session=false", "--persist-to"])
            .arg(&state_dir)
            .args(["--var", &format!("OPS_TOKEN:{OPS_TOKEN}")]);
        for (k, v) in &opts.vars {
            c.args(["--var", &format!("{k}:{v}")]);
        }
        c.stdin(Stdio::null()).stdout(log.try_clone().expect("dup")).stderr(log).process_group(0);
        let child = c.spawn().expect("spawn wrangler dev");
        Server { port, state_dir, log_path, child }
    }

    /// Wait until the server answers; on failure, what it printed.
    fn wait_ready(&mut self) -> Result<(), String> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}):\n{}", self.log_text()));
            }
            if raw_get(self.port, "/__lookout_ready").is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("not ready after 60 s:\n{}", self.log_text()))
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The file the server's stdout and stderr go to (what `wrangler dev` prints).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Every JSON object line the Worker printed so far.
    pub fn json_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// Request log lines (those with a `request_id` and a `path`).
    pub fn request_lines(&self) -> Vec<Value> {
        self.json_lines().into_iter().filter(|v| v.get("path").is_some() && v.get("request_id").is_some()).collect()
    }

    /// The request lines for one request id, waiting briefly for the line to be flushed.
    pub fn lines_for(&self, request_id: &str) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let found: Vec<Value> =
                self.request_lines().into_iter().filter(|v| v["request_id"] == request_id).collect();
            if !found.is_empty() || t0.elapsed() > Duration::from_secs(5) {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The operator status of `shop`'s monitor (asserts 200).
    pub fn status(&self, shop: &str) -> Value {
        let r = self
            .req("GET", &format!("/ops/shops/{shop}/status"))
            .header("authorization", &format!("Bearer {OPS_TOKEN}"))
            .send();
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        Req { url: format!("{}{}", self.base(), path), method: method.to_string(), headers: vec![], body: None }
    }

    /// A request to `shop`'s host, signed in as Robbie.
    pub fn shop_req(&self, shop: &str, method: &str, path: &str) -> Req {
        self.req(method, path).header("host", &format!("{shop}.localhost")).header("cookie", "session=sess_robbie")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{pgid}")]).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.state_dir);
        }
    }
}

fn raw_get(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

pub fn agent() -> ureq::Agent {
    static A: OnceLock<ureq::Agent> = OnceLock::new();
    A.get_or_init(|| {
        ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build(),
        )
    })
    .clone()
}

/// A response as a test sees it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub request_id: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Req {
    url: String,
    method: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = Some(b.into());
        self
    }
    pub fn json(self, v: &Value) -> Self {
        self.header("content-type", "application/json").body(v.to_string())
    }
    pub fn send(self) -> Resp {
        let mut b = ureq::http::Request::builder().method(self.method.as_str()).uri(&self.url);
        for (k, v) in &self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let req = b.body(self.body.unwrap_or_default()).expect("request");
        let mut res = agent().run(req).unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.url));
        let status = res.status().as_u16();
        let headers: Vec<(String, String)> =
            res.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
        let request_id = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = res.body_mut().read_to_string().unwrap_or_default();
        Resp { status, request_id, headers, body }
    }
}

/// Poll `f` until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t0.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One request a [`Sink`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::SystemTime,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A local HTTP server on 127.0.0.1 standing in for a third-party endpoint (a webhook
/// receiver, PagerDuty, Stripe...). It records every request and answers `status_for(n)`.
pub struct Sink {
    pub port: u16,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Sink {
    pub fn start() -> Sink {
        Self::start_with(|_| (200, "ok".to_string()))
    }

    /// `respond(n)` gives the status and body for the n-th request (0-based).
    pub fn start_with(respond: impl Fn(usize) -> (u16, String) + Send + 'static) -> Sink {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, st) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0usize;
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(r) = read_request(stream, |_| respond(n)) {
                            rec.lock().unwrap().push(r);
                            n += 1;
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Sink { port, received, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Wait until a received request satisfies `pred`; returns it.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Received) -> bool) -> Option<Received> {
        wait_for(timeout, || self.received().into_iter().find(|r| pred(r)))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn read_request(mut stream: TcpStream, respond: impl Fn(&str) -> (u16, String)) -> Option<Received> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split_whitespace().nth(1)?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[header_end..]).to_string();
    let (status, reply) = respond(&path);
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
    Some(Received { at: std::time::SystemTime::now(), path, headers, body })
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp in a JSON value.
pub fn epoch_s(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).timestamp_millis() as f64 / 1000.0
}

pub fn system_s(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}
