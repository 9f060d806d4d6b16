//! `ShopMonitor`, the per-shop Durable Object (SQLite-backed, one per shop by name). It only
//! loads, stores, forwards and arms its alarm: the pure `core::shop_monitor::ShopMonitorCore`
//! (the request monitor and the cron watchdog composed) decides everything, including what
//! changed and the log lines this object prints. Reachable only through the `SHOP_MONITOR`
//! binding (the public router never forwards to it).
//!
//! Storage: `ring(start_ms, data)` holds each closed bucket as a binary row once it closes
//! (digests and diagnosis only within the detail window; rewritten smaller when it leaves
//! it); `meta` holds the shop (`shop`), the strings the rows' diagnoses refer to (`strings`),
//! the monitor snapshot (`snapshot`: alerts, outbox, recent changes, counters) and the cron
//! state (`cron`: the watchdog, audit watch, cost watches, spend ledger), each written when
//! the core says it changed, and the shop's settings (`config`) and alerting state
//! (`alerting`: held incidents, acks, the fleet's last answer). Rows of the former JSON table
//! `buckets` are read once, written as `ring` rows and the table dropped. What an eviction or
//! a restart can lose: records of the bucket still open (at most `bucket_s` seconds of
//! traffic) and the counters they moved.
//!
//! Routes (the binding's only; `?shop=` on each): `POST /ingest` (partial buckets, records
//! and cron check-ins), `GET /status`, `GET /ai/pause`, `POST /ai/resume`,
//! `POST /cron/twilio-summary`, `POST /cron/ai-check`, `GET|PUT /config`,
//! `POST /alerts/{rule}/ack`, `POST /fleet/refresh`; for the dashboards
//! `GET /history/{24h|30d}`, `POST /r2/sample` and (`ENVIRONMENT=test` only)
//! `POST /history/synthesize/{rps}`. Cron and business alerts go through the monitor's
//! outbox. After each call the object stores and arms its one alarm at the core's
//! `next_due_ms` (the earliest of the monitor's, the watchdog's and the history's), then
//! tells the fleet object what changed when the core says so (`fleet_report`) and stores and
//! arms again for what its answer released. After an alarm, the shop's summary goes to the
//! fleet board (in the fleet object, see fleet_board.rs) when the core says it is due.
//!
//! History (issue 13): `history(kind, idx, data BLOB)` holds the rollups' binary chunks,
//! written when a minute or an hour is finalized (at most once a minute).
//!
//! With `ENVIRONMENT=test` two vars inject faults for the end-to-end tests (ignored
//! elsewhere): `MONITOR_TEST_INGEST_STATUS` (ingest answers that status without reading the
//! batch) and `MONITOR_TEST_STALL_MS` (every route waits that long first). Each injection is
//! logged as `monitor_test_fault`. And `POST /test/evaluation` (`{"stopped": bool}`) stops the
//! alarm's evaluation, as a stuck one would.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use worker::wasm_bindgen::prelude::*;
use worker::{console_log, durable_object, DurableObject, Env, Request, Response, Result, State};

use lookout_core::cron::ResumeError;
use lookout_core::fleet::FleetAnswer;
use lookout_core::ingest::{parse_batch, BatchError, MAX_INGEST_BYTES};
use lookout_core::shop::is_slug;
use lookout_core::shop_monitor::{
    AckError, CostJob, LogLine, Persisted, ShopMonitorConfig, ShopMonitorCore, ShopVars, StoredParts,
};
use worker::Method;

use crate::fleet_monitor::{binding_for_objects, fleet_request};
use lookout_core::history::series::Range;
use lookout_core::history::{Chunk, ChunkKind, R2Sample};

use crate::fleet_board;
use crate::ops::object_refusal;
use crate::{deliver, object_meta, settings};

fn now_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}

#[wasm_bindgen]
extern "C" {
    /// Defined by `js/entry.mjs`: keep what a monitor had not stored when a panic resets the
    /// wasm instance (its Worker and Durable Objects may share one).
    #[wasm_bindgen(js_namespace = globalThis, js_name = __lookout_on_panic_monitor, catch)]
    fn on_panic_monitor(shop: &str, state: &str) -> std::result::Result<(), JsValue>;
    /// Defined by `js/entry.mjs`: what a previous instance handed over for `shop`, once.
    #[wasm_bindgen(js_namespace = globalThis, js_name = __lookout_take_monitor_handover, catch)]
    fn take_monitor_handover(shop: &str) -> std::result::Result<JsValue, JsValue>;
}

type SharedCore = Rc<RefCell<Option<ShopMonitorCore>>>;

thread_local! {
    /// The monitors loaded in this wasm instance, for the panic hook.
    static LIVE: RefCell<Vec<Weak<RefCell<Option<ShopMonitorCore>>>>> = const { RefCell::new(Vec::new()) };
}

/// Called by the panic hook (inflight.rs): every loaded monitor hands what it has not stored
/// (the open bucket, counters, cron state) to the JavaScript entry, which keeps it for the
/// object's next load in the fresh instance. A monitor whose state is being changed right now
/// (the panic hit inside it) cannot; its unstored part is lost, as on an eviction.
pub(crate) fn hand_over_on_panic() {
    let live: Vec<SharedCore> =
        LIVE.with(|l| l.try_borrow().map(|l| l.iter().filter_map(Weak::upgrade).collect())).unwrap_or_default();
    for core in live {
        let Ok(mut guard) = core.try_borrow_mut() else { continue };
        if let Some(core) = guard.as_mut() {
            let state = core.hand_over();
            let _ = on_panic_monitor(core.shop(), &state);
        }
    }
}

fn log(value: serde_json::Value) {
    console_log!("{value}");
}

/// Print the lines the core decided on.
fn print(lines: &[LogLine]) {
    for l in lines {
        console_log!("{}", l.to_line());
    }
}

#[durable_object]
pub struct ShopMonitor {
    state: State,
    env: Env,
    /// The monitor and the cron side, loaded from storage on first use (shared with the panic
    /// hook's registry).
    core: SharedCore,
    /// The alarm time this object armed, as far as it knows.
    armed_at: Cell<Option<i64>>,
    /// The alarm time `alarm()` was scheduled for, to report lateness.
    last_alarm_lag_ms: Cell<Option<i64>>,
    /// SQLite rows this instance wrote and read since it started (what storage is billed by).
    rows_written: Cell<u64>,
    rows_read: Cell<u64>,
    /// Alarms this instance ran and set (each `setAlarm` is billed as a row written).
    alarms_run: Cell<u64>,
    alarms_set: Cell<u64>,
    /// The legacy `buckets` table still exists (drop it once its rows are written as rows).
    legacy_table: Cell<bool>,
    /// Test-only faults (`ENVIRONMENT=test`): ingest status, stall.
    faults: Faults,
    /// Test environment only: the alarm does not evaluate (a stuck monitor).
    evaluation_stopped: Cell<bool>,
}

/// Faults the end-to-end tests inject (only with `ENVIRONMENT=test`).
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    ingest_status: Option<u16>,
    stall_ms: Option<u64>,
}

impl Faults {
    fn from_env(env: &Env) -> Faults {
        if settings::var(env, "ENVIRONMENT").as_deref() != Some("test") {
            return Faults::default();
        }
        let num = |n: &str| settings::var(env, n).and_then(|v| v.trim().parse::<u64>().ok());
        Faults {
            ingest_status: num("MONITOR_TEST_INGEST_STATUS").and_then(|s| u16::try_from(s).ok()),
            stall_ms: num("MONITOR_TEST_STALL_MS"),
        }
    }
}

impl DurableObject for ShopMonitor {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS ring (start_ms INTEGER PRIMARY KEY, data BLOB NOT NULL)",
            object_meta::CREATE,
            "CREATE TABLE IF NOT EXISTS history (kind INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, \
             PRIMARY KEY (kind, idx))",
        ] {
            if let Err(e) = sql.exec(ddl, None) {
                log(serde_json::json!({"kind": "monitor_storage_error", "error": e.to_string()}));
            }
        }
        let core: SharedCore = Rc::new(RefCell::new(None));
        LIVE.with(|l| {
            let mut l = l.borrow_mut();
            l.retain(|w| w.strong_count() > 0);
            l.push(Rc::downgrade(&core));
        });
        ShopMonitor {
            state,
            core,
            armed_at: Cell::new(None),
            last_alarm_lag_ms: Cell::new(None),
            rows_written: Cell::new(0),
            rows_read: Cell::new(0),
            alarms_run: Cell::new(0),
            alarms_set: Cell::new(0),
            legacy_table: Cell::new(false),
            faults: Faults::from_env(&env),
            evaluation_stopped: Cell::new(false),
            env,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let shop = url.query_pairs().find(|(k, _)| k == "shop").map(|(_, v)| v.to_string()).unwrap_or_default();
        if !is_slug(&shop) {
            return Response::error("monitor: missing or invalid shop", 400);
        }
        if let Some(ms) = self.faults.stall_ms {
            log(serde_json::json!({"kind": "monitor_test_fault", "shop": shop, "path": url.path(), "stall_ms": ms}));
            worker::Delay::from(std::time::Duration::from_millis(ms)).await;
        }
        let now = now_ms();
        self.ensure_loaded(&shop, now).await?;
        let path = url.path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method(), segs.as_slice()) {
            (Method::Post, ["ingest"]) => {
                if let Some(status) = self.faults.ingest_status {
                    log(
                        serde_json::json!({"kind": "monitor_test_fault", "shop": shop, "path": "/ingest", "status": status}),
                    );
                    return Response::error("monitor: test fault", status);
                }
                let body = req.bytes().await?;
                self.ingest(&shop, &body, now).await
            }
            (Method::Get, ["status"]) => self.status(now),
            (Method::Get, ["ai", "pause"]) => self.ai_pause(now),
            (Method::Post, ["ai", "resume"]) => self.ai_resume(now).await,
            (Method::Post, ["cron", "twilio-summary"]) => self.cost_job(now, CostJob::TwilioSummary).await,
            (Method::Post, ["cron", "ai-check"]) => self.cost_job(now, CostJob::AiCheck).await,
            (Method::Get, ["config"]) => self.with_core(|c| Response::from_json(&c.config_view())),
            (Method::Put, ["config"]) => {
                let body = req.text().await?;
                self.put_config(&body, now).await
            }
            (Method::Post, ["alerts", rule, "ack"]) => {
                let body = req.text().await?;
                self.ack(rule, &body, now).await
            }
            (Method::Post, ["fleet", "refresh"]) => {
                if let Some(c) = self.core.borrow_mut().as_mut() {
                    c.request_fleet_refresh();
                }
                self.after_call(now).await;
                Response::from_json(&serde_json::json!({"refreshed": true}))
            }
            (Method::Get, ["history", "24h"]) => self.history(Range::Day, now),
            (Method::Get, ["history", "30d"]) => self.history(Range::Month, now),
            (Method::Post, ["r2", "sample"]) => {
                let body = req.bytes().await?;
                self.r2_sample(&body, now).await
            }
            (Method::Post, ["history", "synthesize", rps])
                if settings::var(&self.env, "ENVIRONMENT").as_deref() == Some("test") =>
            {
                let rps = rps.parse::<f64>().unwrap_or(10.0);
                self.synthesize(rps.clamp(0.1, 1000.0), now).await
            }
            (Method::Post, ["test", "evaluation"])
                if settings::var(&self.env, "ENVIRONMENT").as_deref() == Some("test") =>
            {
                let body: serde_json::Value = req.json().await.unwrap_or_default();
                let stopped = body["stopped"].as_bool().unwrap_or(true);
                self.evaluation_stopped.set(stopped);
                log(serde_json::json!({"kind": "monitor_test_evaluation", "shop": shop, "stopped": stopped}));
                if !stopped {
                    self.after_call(now).await;
                }
                Response::from_json(&serde_json::json!({"stopped": stopped}))
            }
            _ => Response::error("monitor: no such route", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarms_run.set(self.alarms_run.get() + 1);
        let now = now_ms();
        let scheduled = self.armed_at.take();
        self.last_alarm_lag_ms.set(scheduled.map(|s| now - s));
        let shop = self.stored_shop();
        let Some(shop) = shop else {
            return Response::ok("idle");
        };
        self.ensure_loaded(&shop, now).await?;
        if self.evaluation_stopped.get() {
            // The test hook: a stuck alarm evaluates nothing and arms nothing.
            return Response::ok("stopped");
        }
        self.tick(now).await;
        Response::ok("ok")
    }
}

/// Bytes of the wasm instance's memory (shared by the Worker and the objects of this isolate).
fn wasm_memory_bytes() -> Option<f64> {
    use worker::js_sys::Reflect;
    let buffer = Reflect::get(&worker::wasm_bindgen::memory(), &JsValue::from_str("buffer")).ok()?;
    Reflect::get(&buffer, &JsValue::from_str("byteLength")).ok()?.as_f64()
}

/// `ring` rows `(start_ms, data)` and legacy JSON rows.
type StoredRows = (Vec<(i64, Vec<u8>)>, Vec<String>);

/// Whether closed buckets wait to be written (legacy rows among them): keep the legacy table
/// until they are.
fn core_has_unwritten_legacy(core: &ShopMonitorCore, now: i64) -> bool {
    !core.dirty_closed_buckets(now).is_empty()
}

impl ShopMonitor {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn meta_get(&self, key: &str) -> Option<String> {
        let (value, cursor) = object_meta::get(&self.sql(), key).ok()?;
        self.count(&cursor);
        value
    }

    fn meta_put(&self, key: &str, value: &str) -> Result<()> {
        self.exec(object_meta::PUT, vec![key.into(), value.into()])
    }

    /// Run a statement, counting the rows it wrote.
    fn exec(&self, query: &str, bindings: Vec<worker::SqlStorageValue>) -> Result<()> {
        let cursor = self.sql().exec(query, bindings)?;
        // Drain the cursor so the counts are final.
        for _ in cursor.raw() {}
        self.count(&cursor);
        Ok(())
    }

    fn count(&self, cursor: &worker::SqlCursor) {
        self.rows_written.set(self.rows_written.get() + cursor.rows_written() as u64);
        self.rows_read.set(self.rows_read.get() + cursor.rows_read() as u64);
    }

    /// The stored bucket rows (`ring`), and the legacy JSON rows (`buckets`) when that table
    /// still exists.
    fn stored_rows(&self) -> Result<StoredRows> {
        use worker::SqlStorageValue as V;
        let cursor = self.sql().exec("SELECT start_ms, data FROM ring ORDER BY start_ms", None)?;
        let mut rows = Vec::new();
        for row in cursor.raw() {
            if let [V::Integer(start_ms), V::Blob(data)] = row?.as_slice() {
                rows.push((*start_ms, data.clone()));
            }
        }
        self.count(&cursor);
        let mut legacy = Vec::new();
        if let Ok(cursor) = self.sql().exec("SELECT data FROM buckets ORDER BY start_ms", None) {
            self.legacy_table.set(true);
            for row in cursor.raw().flatten() {
                if let [V::String(data)] = row.as_slice() {
                    legacy.push(data.clone());
                }
            }
            self.count(&cursor);
        }
        Ok((rows, legacy))
    }

    fn stored_shop(&self) -> Option<String> {
        self.core.borrow().as_ref().map(|c| c.shop().to_string()).or_else(|| self.meta_get("shop"))
    }

    /// Build the core from the vars and storage on first use (and after an eviction), store
    /// what loading changed, arm the alarm.
    async fn ensure_loaded(&self, shop: &str, now: i64) -> Result<()> {
        if self.core.borrow().as_ref().is_some_and(|c| c.shop() == shop) {
            return Ok(());
        }
        let var = |n: &str| settings::var(&self.env, n);
        let (alert_rules, cron_watch) = (var("ALERT_RULES"), var("CRON_WATCH"));
        let (twilio_budget, ai_cap) = (var("TWILIO_WEEKLY_BUDGET_MICROS"), var("AI_MONTHLY_CAP_MICROS"));
        let (routing, deadman) = (var("ALERT_ROUTING"), var("DEADMAN_INTERVAL_S"));
        let vars = ShopVars {
            alert_rules: alert_rules.as_deref(),
            cron_watch: cron_watch.as_deref(),
            twilio_weekly_budget_micros: twilio_budget.as_deref(),
            ai_monthly_cap_micros: ai_cap.as_deref(),
            alert_routing: routing.as_deref(),
            deadman_interval_s: deadman.as_deref(),
        };
        let mut config = ShopMonitorConfig::from_vars(vars, deliver::configured_channels(&self.env));
        config.owner_channel = deliver::owner_channel_available(&self.env);
        let (rows, legacy) = self.stored_rows()?;
        let (snapshot, cron, strings) = (self.meta_get("snapshot"), self.meta_get("cron"), self.meta_get("strings"));
        let (shop_config, alerting) = (self.meta_get("config"), self.meta_get("alerting"));
        let history = self.history_rows();
        let handed_over = take_monitor_handover(shop).ok().and_then(|v| v.as_string());
        let stored = StoredParts {
            snapshot: snapshot.as_deref(),
            rows: &rows,
            strings: strings.as_deref(),
            buckets: &legacy,
            cron: cron.as_deref(),
            settings: shop_config.as_deref(),
            alerting: alerting.as_deref(),
            handed_over: handed_over.as_deref(),
            history: &history,
        };
        let (mut core, outcome) = ShopMonitorCore::restore(config, shop, stored, now);
        if self.env.durable_object(&binding_for_objects(&self.env)).is_ok() {
            core.enable_fleet();
        }
        print(&outcome.lines);
        if let Some(h) = &handed_over {
            log(serde_json::json!({"kind": "monitor_resumed_after_panic", "shop": shop, "bytes": h.len()}));
        }
        for start_ms in outcome.delete_buckets {
            let _ = self.exec("DELETE FROM ring WHERE start_ms = ?", vec![start_ms.into()]);
        }
        self.meta_put("shop", shop)?;
        self.armed_at.set(self.state.storage().get_alarm().await.ok().flatten());
        *self.core.borrow_mut() = Some(core);
        // No exchange with the fleet object here: the call that loaded the object makes it
        // after its own work, so a cold fleet object never delays it.
        self.persist(now);
        self.arm(now).await;
        Ok(())
    }

    fn with_core(&self, f: impl FnOnce(&ShopMonitorCore) -> Result<Response>) -> Result<Response> {
        let guard = self.core.borrow();
        match guard.as_ref() {
            Some(c) => f(c),
            None => Response::error("monitor not loaded", 500),
        }
    }

    /// After any call: store and arm first (the alarm never waits for the fleet object),
    /// then tell the fleet object what changed when the core says so, and store and arm
    /// again for what its answer released. Deliveries are the alarm's.
    async fn after_call(&self, now: i64) {
        self.persist(now);
        self.arm(now).await;
        if self.fleet_exchange(now).await {
            let now = now_ms();
            self.persist(now);
            self.arm(now).await;
        }
    }

    /// One exchange with the fleet object, if a report is due: its answer (or its failure)
    /// goes to the core, which decides what that releases. Whether one took place.
    async fn fleet_exchange(&self, now: i64) -> bool {
        let report = self.core.borrow().as_ref().and_then(|c| c.fleet_report(now));
        let Some(report) = report else { return false };
        let Ok(body) = serde_json::to_string(&report) else { return false };
        let binding = binding_for_objects(&self.env);
        let result = fleet_request(&self.env, &binding, Method::Post, "/report", Some(&body)).await;
        let answer = match result {
            Ok((200, text)) => serde_json::from_str::<FleetAnswer>(&text).map_err(|e| format!("bad answer: {e}")),
            Ok((status, _)) => Err(format!("fleet object answered {status}")),
            Err(e) => Err(e),
        };
        let now = now_ms();
        let mut guard = self.core.borrow_mut();
        let Some(core) = guard.as_mut() else { return false };
        let lines = match answer {
            Ok(a) => core.fleet_answered(&report, a, now),
            Err(e) => core.fleet_failed(&e, now),
        };
        print(&lines);
        true
    }

    async fn put_config(&self, body: &str, now: i64) -> Result<Response> {
        let result = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            core.put_settings(body, now)
        };
        match result {
            Err(e) => object_refusal("InvalidConfig", &e.to_string(), 400, Some(&e.field)),
            Ok((changed, lines)) => {
                print(&lines);
                self.after_call(now).await;
                let view = self.core.borrow().as_ref().map(|c| c.config_view());
                Response::from_json(&serde_json::json!({"changed": changed, "config": view}))
            }
        }
    }

    async fn ack(&self, rule: &str, body: &str, now: i64) -> Result<Response> {
        let result = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            core.ack(rule, body, now)
        };
        match result {
            Err(AckError::UnknownRule) => {
                object_refusal("UnknownRule", "this shop's monitor has no such rule", 404, None)
            }
            Err(AckError::NotFiring) => {
                object_refusal("NotFiring", "the rule has no open incident to acknowledge", 409, None)
            }
            Err(AckError::Invalid(e)) => object_refusal("InvalidAck", &e.to_string(), 400, Some(&e.field)),
            Ok((acks, lines)) => {
                print(&lines);
                self.after_call(now).await;
                let acked: Vec<serde_json::Value> = acks
                    .iter()
                    .map(|a| serde_json::json!({"rule": a.rule, "dedup_key": a.dedup_key, "at_ms": a.at_ms}))
                    .collect();
                Response::from_json(&serde_json::json!({"acked": acked}))
            }
        }
    }

    /// The history table's rows (unreadable rows are skipped; the core names bad chunks).
    fn history_rows(&self) -> Vec<Chunk> {
        use worker::SqlStorageValue as V;
        let Ok(cursor) = self.sql().exec("SELECT kind, idx, data FROM history", None) else { return Vec::new() };
        cursor
            .raw()
            .filter_map(|row| match row.ok()?.as_slice() {
                [V::Integer(kind), V::Integer(idx), V::Blob(data)] => {
                    Some(Chunk { kind: ChunkKind::from_code(*kind)?, idx: *idx, data: data.clone() })
                }
                _ => None,
            })
            .collect()
    }

    fn history(&self, range: Range, now: i64) -> Result<Response> {
        let guard = self.core.borrow();
        let Some(core) = guard.as_ref() else { return Response::error("monitor not loaded", 500) };
        Response::from_json(&core.history_series(range, now))
    }

    /// The daily job's R2 storage sample: `{"bytes": n, "objects": n}`.
    async fn r2_sample(&self, body: &[u8], now: i64) -> Result<Response> {
        #[derive(serde::Deserialize)]
        struct Sample {
            bytes: u64,
            objects: u64,
        }
        let Ok(s) = serde_json::from_slice::<Sample>(body) else {
            return Response::error("r2 sample: expected {\"bytes\": n, \"objects\": n}", 400);
        };
        if let Some(core) = self.core.borrow_mut().as_mut() {
            core.add_r2_sample(R2Sample { at_ms: now, bytes: s.bytes, objects: s.objects });
        }
        self.persist(now);
        Response::from_json(&serde_json::json!({"sampled": true}))
    }

    /// Test environment only: a made-up full history (see `history::synthetic`).
    async fn synthesize(&self, rps: f64, now: i64) -> Result<Response> {
        if let Some(core) = self.core.borrow_mut().as_mut() {
            core.synthesize_history(now, rps, now as u64);
        }
        let _ = self.sql().exec("DELETE FROM history", None);
        self.persist(now);
        self.arm(now).await;
        self.push_summary(now).await;
        Response::from_json(&serde_json::json!({"synthesized": true, "rps": rps}))
    }

    fn ai_pause(&self, now: i64) -> Result<Response> {
        let guard = self.core.borrow();
        let Some(core) = guard.as_ref() else { return Response::error("monitor not loaded", 500) };
        Response::from_json(&core.ai_pause(now))
    }

    async fn ai_resume(&self, now: i64) -> Result<Response> {
        let result = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            core.ai_resume(now)
        };
        match result {
            Err(e @ ResumeError::NotPaused) => object_refusal("NotPaused", &e.to_string(), 409, None),
            Ok(lines) => {
                print(&lines);
                self.after_call(now).await;
                Response::from_json(&serde_json::json!({"resumed": true, "paused": false}))
            }
        }
    }

    /// A cost job of the scheduled handler: the core evaluates the projection and queues its
    /// alert; the answer is `{"results": ...}`, the figures for the job's summary line.
    async fn cost_job(&self, now: i64, job: CostJob) -> Result<Response> {
        let outcome = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            core.cost_job(job, now)
        };
        print(&outcome.lines);
        self.after_call(now).await;
        Response::from_json(&outcome)
    }

    async fn ingest(&self, shop: &str, body: &[u8], now: i64) -> Result<Response> {
        let parsed = match parse_batch(body, shop, now) {
            Ok(p) => p,
            Err(e) => {
                let status = if matches!(e, BatchError::TooLarge { .. }) { 413 } else { 400 };
                log(
                    serde_json::json!({"kind": "monitor_ingest_refused", "shop": shop, "error": e.to_string(), "limit_bytes": MAX_INGEST_BYTES}),
                );
                return Response::error(e.to_string(), status);
            }
        };
        let outcome = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            core.ingest(parsed, now)
        };
        print(&outcome.lines);
        self.after_call(now).await;
        // `{"report": ..., "check_ins": [...], "rejected": [...]}`
        Response::from_json(&outcome)
    }

    fn status(&self, now: i64) -> Result<Response> {
        let guard = self.core.borrow();
        let Some(core) = guard.as_ref() else { return Response::error("monitor not loaded", 500) };
        let mut v = serde_json::to_value(core.status(now))?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("config_error".into(), serde_json::json!(core.alert_rules_error()));
            obj.insert("alarm_armed_at_ms".into(), serde_json::json!(self.armed_at.get()));
            obj.insert("last_alarm_lag_ms".into(), serde_json::json!(self.last_alarm_lag_ms.get()));
            obj.insert("storage_bytes".into(), serde_json::json!(self.sql().database_size()));
            obj.insert("storage_rows_written".into(), serde_json::json!(self.rows_written.get()));
            obj.insert("storage_rows_read".into(), serde_json::json!(self.rows_read.get()));
            obj.insert("alarms_run".into(), serde_json::json!(self.alarms_run.get()));
            obj.insert("wasm_memory_bytes".into(), serde_json::json!(wasm_memory_bytes()));
            obj.insert("alarms_set".into(), serde_json::json!(self.alarms_set.get()));
        }
        Response::from_json(&v)
    }

    /// Evaluate, store, deliver what is due, store, re-arm.
    async fn tick(&self, now: i64) {
        {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return };
            print(&core.tick(now).lines);
        }
        // Store what was decided before anything waits on I/O (a crash mid-send cannot forget
        // it) and arm the next evaluation, which never waits for the fleet object.
        self.persist(now);
        self.arm(now).await;
        // Tell the fleet object about new incidents before their triggers are decided.
        if self.fleet_exchange(now).await {
            self.persist(now_ms());
        }
        let due = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return };
            core.claim_due_deliveries(now)
        };
        let owner = self.core.borrow().as_ref().and_then(|c| c.settings().owner.clone());
        let results = deliver::send_all(&self.env, due, owner.as_ref()).await;
        let now = now_ms();
        {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return };
            print(&core.record_deliveries(&results, now));
        }
        self.persist(now);
        self.arm(now_ms()).await;
        self.push_summary(now_ms()).await;
    }

    /// The shop's summary to the fleet board, when the core says it is due.
    async fn push_summary(&self, now: i64) {
        let summary = self.core.borrow_mut().as_mut().and_then(|c| c.board_summary(now));
        let Some(summary) = summary else { return };
        let ok = fleet_board::push(&self.env, &summary).await;
        if let Some(core) = self.core.borrow_mut().as_mut() {
            core.summary_sent(ok);
        }
    }

    /// Write what the core says changed: closed bucket rows (and drop those out of the ring),
    /// the string table, the snapshot, the cron state. Storage errors are logged, not thrown;
    /// a part that failed stays changed and is written next time.
    fn persist(&self, now: i64) {
        let mut guard = self.core.borrow_mut();
        let Some(core) = guard.as_mut() else { return };
        let plan = core.persist_plan(now);
        let mut done = Persisted::default();
        let failed = |part: &str, e: worker::Error| {
            log(
                serde_json::json!({"kind": "monitor_storage_error", "shop": core.shop(), "part": part, "error": e.to_string()}),
            )
        };
        for (key, row) in plan.rows {
            let bindings = vec![key.start_ms.into(), worker::SqlStorageValue::Blob(row)];
            match self.exec("INSERT OR REPLACE INTO ring (start_ms, data) VALUES (?, ?)", bindings) {
                Ok(()) => done.rows.push(key),
                Err(e) => failed("ring", e),
            }
        }
        if let Some(before) = plan.delete_before_ms {
            match self.exec("DELETE FROM ring WHERE start_ms < ?", vec![before.into()]) {
                Ok(()) => done.deleted_before_ms = Some(before),
                Err(e) => failed("ring", e),
            }
        }
        for (key, value, flag) in [
            ("strings", plan.strings, &mut done.strings),
            ("snapshot", plan.snapshot, &mut done.snapshot),
            ("cron", plan.cron, &mut done.cron),
            ("config", plan.settings, &mut done.settings),
            ("alerting", plan.alerting, &mut done.alerting),
        ] {
            if let Some(value) = value {
                match self.meta_put(key, &value) {
                    Ok(()) => *flag = true,
                    Err(e) => failed(key, e),
                }
            }
        }
        // The dashboards' history chunks (issue 13).
        let mut history_written = Vec::new();
        for c in core.history_chunks() {
            let bindings = vec![c.kind.code().into(), c.idx.into(), worker::SqlStorageValue::Blob(c.data)];
            match self.exec("INSERT OR REPLACE INTO history (kind, idx, data) VALUES (?, ?, ?)", bindings) {
                Ok(()) => history_written.push((c.kind, c.idx)),
                Err(e) => failed("history", e),
            }
        }
        if !history_written.is_empty() {
            for kind in [ChunkKind::Minutes, ChunkKind::Hours] {
                let bindings = vec![kind.code().into(), core.history_retention_idx(kind, now).into()];
                if let Err(e) = self.exec("DELETE FROM history WHERE kind = ? AND idx < ?", bindings) {
                    failed("history", e);
                }
            }
        }
        core.persisted(&done);
        core.mark_history_persisted(&history_written);
        // The legacy table's rows are rows of `ring` now.
        if self.legacy_table.get()
            && !core_has_unwritten_legacy(core, now)
            && self.exec("DROP TABLE IF EXISTS buckets", vec![]).is_ok()
        {
            self.legacy_table.set(false);
        }
    }

    /// Arm the single alarm at the core's next due time when that is earlier than what is
    /// armed (an alarm already armed earlier will re-arm when it runs). The armed time is
    /// noted before the write is awaited, so calls handled meanwhile do not arm it again (each
    /// `setAlarm` is a storage write, billed as a row).
    async fn arm(&self, now: i64) {
        let next = self.core.borrow().as_ref().and_then(|c| c.next_due_ms(now));
        let Some(next) = next else { return };
        if self.armed_at.get().is_some_and(|a| a <= next && a >= now - 1000) {
            return;
        }
        let before = self.armed_at.replace(Some(next));
        match self
            .state
            .storage()
            .set_alarm(worker::ScheduledTime::new(worker::js_sys::Date::new(&(next as f64).into())))
            .await
        {
            Ok(()) => self.alarms_set.set(self.alarms_set.get() + 1),
            Err(e) => {
                self.armed_at.set(before);
                log(serde_json::json!({"kind": "monitor_alarm_error", "error": e.to_string()}))
            }
        }
    }
}
