//! End-to-end harness: runs the built Worker in real workerd through `wrangler dev`, each
//! server on its own free port with its own local state (D1, Durable Objects), and talks
//! plain HTTP to it. Requires `scripts/build` to have run (scripts/test does that).
#![allow(dead_code)]

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

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
        s.args(["wrangler", "d1", "execute", "DB", "--local", "--env", "test", "--persist-to", &d, "--file", "scripts/seed.sql"]);
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

/// A running `wrangler dev --env test`; killed (whole process group) on drop.
pub struct Server {
    pub port: u16,
    pub state_dir: PathBuf,
    log_path: PathBuf,
    child: Child,
}

/// Options for a server: extra `--var KEY:VALUE` pairs.
#[derive(Default, Clone)]
pub struct Opts {
    pub vars: Vec<(String, String)>,
}

impl Opts {
    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.push((k.to_string(), v.to_string()));
        self
    }
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> Server {
        assert!(root().join("build/index.js").exists(), "build/index.js missing: run scripts/build (scripts/test does)");
        let port = free_port();
        let state_dir = root().join("target").join("e2e").join(format!("state-{}-{port}", std::process::id()));
        let _ = fs::remove_dir_all(&state_dir);
        copy_dir(d1_template(), &state_dir);
        let log_path = state_dir.with_extension("log");
        let log = fs::File::create(&log_path).expect("log file");
        let mut c = npx();
        c.args(["wrangler", "dev", "--local", "--env", "test", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .args(["--test-scheduled", "--show-interactive-dev-session=false", "--persist-to"])
            .arg(&state_dir)
            .args(["--var", &format!("OPS_TOKEN:{OPS_TOKEN}"), "--var", &format!("STRIPE_WEBHOOK_SECRET:{STRIPE_SECRET}")]);
        for (k, v) in &opts.vars {
            c.args(["--var", &format!("{k}:{v}")]);
        }
        c.stdin(Stdio::null()).stdout(log.try_clone().expect("dup")).stderr(log).process_group(0);
        let child = c.spawn().expect("spawn wrangler dev");
        let mut s = Server { port, state_dir, log_path, child };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("wrangler dev exited ({status}):\n{}", self.log_text());
            }
            if raw_get(self.port, "/__lookout_ready").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("wrangler dev not ready after 60 s:\n{}", self.log_text());
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
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
        let headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
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
