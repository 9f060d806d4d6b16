//! `ShopMonitor`, the per-shop Durable Object (SQLite-backed, one per shop by name). It only
//! loads, stores, forwards and arms its alarm: the pure `core::shop_monitor::ShopMonitorCore`
//! (the request monitor and the cron watchdog composed) decides everything, including what
//! changed and the log lines this object prints. Reachable only through the `SHOP_MONITOR`
//! binding (the public router never forwards to it).
//!
//! Storage: `buckets(start_ms, data)` holds each closed bucket once it closes; `meta` holds
//! the shop (`shop`), the monitor snapshot (`snapshot`: alerts, outbox, recent changes), the
//! cron state (`cron`: the watchdog, audit watch, cost watches, spend ledger), the shop's
//! settings (`config`) and the alerting state (`alerting`: held incidents, acks, the fleet's
//! last answer), each written when the core says it changed. What an eviction or a restart
//! can lose: records of the bucket still open (at most `bucket_s` seconds of traffic).
//!
//! Routes (the binding's only; `?shop=` on each): `POST /ingest` (records and cron
//! check-ins), `GET /status`, `GET /ai/pause`, `POST /ai/resume`, `POST /cron/twilio-summary`,
//! `POST /cron/ai-check`, `GET|PUT /config`, `POST /alerts/{rule}/ack`, `POST /fleet/refresh`,
//! and with `ENVIRONMENT=test` `POST /test/evaluation` (`{"stopped": bool}`: the alarm stops
//! evaluating, as a stuck one would). Cron and business alerts go through the monitor's
//! outbox. After each call the object tells the fleet object what changed when the core says
//! so (`fleet_report`), then stores and arms its one alarm at the core's `next_due_ms`.

use std::cell::{Cell, RefCell};

use worker::{console_log, durable_object, DurableObject, Env, Request, Response, Result, State};

use lookout_core::cron::ResumeError;
use lookout_core::fleet::FleetAnswer;
use lookout_core::ingest::{parse_batch, BatchError, MAX_INGEST_BYTES};
use lookout_core::shop::is_slug;
use lookout_core::shop_monitor::{
    AckError, CostJob, LogLine, ShopMonitorConfig, ShopMonitorCore, ShopVars, StoredParts,
};
use worker::Method;

use crate::fleet_monitor::{binding_for_objects, fleet_request};
use crate::{deliver, settings};

fn now_ms() -> i64 {
    worker::js_sys::Date::now() as i64
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
    /// The monitor and the cron side, loaded from storage on first use.
    core: RefCell<Option<ShopMonitorCore>>,
    /// The alarm time this object armed, as far as it knows.
    armed_at: Cell<Option<i64>>,
    /// The alarm time `alarm()` was scheduled for, to report lateness.
    last_alarm_lag_ms: Cell<Option<i64>>,
    /// Test environment only: the alarm does not evaluate (a stuck monitor).
    evaluation_stopped: Cell<bool>,
}

impl DurableObject for ShopMonitor {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS buckets (start_ms INTEGER PRIMARY KEY, data TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ] {
            if let Err(e) = sql.exec(ddl, None) {
                log(serde_json::json!({"kind": "monitor_storage_error", "error": e.to_string()}));
            }
        }
        ShopMonitor {
            state,
            env,
            core: RefCell::new(None),
            armed_at: Cell::new(None),
            last_alarm_lag_ms: Cell::new(None),
            evaluation_stopped: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        let shop = url.query_pairs().find(|(k, _)| k == "shop").map(|(_, v)| v.to_string()).unwrap_or_default();
        if !is_slug(&shop) {
            return Response::error("monitor: missing or invalid shop", 400);
        }
        let now = now_ms();
        self.ensure_loaded(&shop, now).await?;
        let path = url.path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method(), segs.as_slice()) {
            (Method::Post, ["ingest"]) => {
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

fn error_json(class: &str, message: &str, status: u16, field: Option<&str>) -> Result<Response> {
    let mut v = serde_json::json!({"error": class, "message": message});
    if let Some(f) = field {
        v["field"] = f.into();
    }
    Ok(Response::from_json(&v)?.with_status(status))
}

impl ShopMonitor {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn meta_get(&self, key: &str) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Row {
            value: String,
        }
        let rows: Vec<Row> =
            self.sql().exec("SELECT value FROM meta WHERE key = ?", vec![key.into()]).ok()?.to_array().ok()?;
        rows.into_iter().next().map(|r| r.value)
    }

    fn meta_put(&self, key: &str, value: &str) -> Result<()> {
        self.sql().exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", vec![key.into(), value.into()])?;
        Ok(())
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
        #[derive(serde::Deserialize)]
        struct Row {
            data: String,
        }
        let rows: Vec<Row> = self.sql().exec("SELECT data FROM buckets ORDER BY start_ms", None)?.to_array()?;
        let buckets: Vec<String> = rows.into_iter().map(|r| r.data).collect();
        let (snapshot, cron) = (self.meta_get("snapshot"), self.meta_get("cron"));
        let (shop_config, alerting) = (self.meta_get("config"), self.meta_get("alerting"));
        let stored = StoredParts {
            snapshot: snapshot.as_deref(),
            buckets: &buckets,
            cron: cron.as_deref(),
            settings: shop_config.as_deref(),
            alerting: alerting.as_deref(),
        };
        let (mut core, outcome) = ShopMonitorCore::restore(config, shop, stored, now);
        if self.env.durable_object(&binding_for_objects(&self.env)).is_ok() {
            core.enable_fleet();
        }
        print(&outcome.lines);
        for start_ms in outcome.delete_buckets {
            let _ = self.sql().exec("DELETE FROM buckets WHERE start_ms = ?", vec![start_ms.into()]);
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
            Err(e) => error_json("InvalidConfig", &e.to_string(), 400, Some(&e.field)),
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
            Err(AckError::UnknownRule) => error_json("UnknownRule", "this shop's monitor has no such rule", 404, None),
            Err(AckError::NotFiring) => {
                error_json("NotFiring", "the rule has no open incident to acknowledge", 409, None)
            }
            Err(AckError::Invalid(e)) => error_json("InvalidAck", &e.to_string(), 400, Some(&e.field)),
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
            Err(ResumeError::NotPaused) => Response::from_json(
                &serde_json::json!({"error": "NotPaused", "message": ResumeError::NotPaused.to_string()}),
            )
            .map(|r| r.with_status(409)),
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
        // Tell the fleet object about new incidents before their triggers are decided.
        self.fleet_exchange(now).await;
        // Store what was decided before sending, so a crash mid-send cannot forget it.
        self.persist(now);
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
    }

    /// Write what the core says changed: closed buckets (and drop those out of the ring), the
    /// snapshot, the cron state. Storage errors are logged, not thrown; a part that failed
    /// stays changed and is written next time.
    fn persist(&self, now: i64) {
        let mut guard = self.core.borrow_mut();
        let Some(core) = guard.as_mut() else { return };
        let sql = self.sql();
        let mut written = Vec::new();
        for b in core.dirty_closed_buckets(now) {
            let Ok(data) = serde_json::to_string(&b) else { continue };
            match sql.exec(
                "INSERT OR REPLACE INTO buckets (start_ms, data) VALUES (?, ?)",
                vec![b.start_ms.into(), data.into()],
            ) {
                Ok(_) => written.push(b.key()),
                Err(e) => log(
                    serde_json::json!({"kind": "monitor_storage_error", "shop": core.shop(), "error": e.to_string()}),
                ),
            }
        }
        core.mark_buckets_persisted(&written);
        let _ = sql.exec("DELETE FROM buckets WHERE start_ms < ?", vec![core.bucket_retention_start_ms(now).into()]);
        if let Some(snap) = core.snapshot().and_then(|s| serde_json::to_string(&s).ok()) {
            match self.meta_put("snapshot", &snap) {
                Ok(()) => core.mark_snapshot_persisted(),
                Err(e) => log(
                    serde_json::json!({"kind": "monitor_storage_error", "shop": core.shop(), "error": e.to_string()}),
                ),
            }
        }
        if let Some(cron) = core.cron_snapshot().and_then(|c| serde_json::to_string(c).ok()) {
            match self.meta_put("cron", &cron) {
                Ok(()) => core.mark_cron_persisted(),
                Err(e) => {
                    log(serde_json::json!({"kind": "monitor_storage_error", "part": "cron", "error": e.to_string()}))
                }
            }
        }
        if let Some(settings) = core.settings_snapshot().and_then(|c| serde_json::to_string(c).ok()) {
            match self.meta_put("config", &settings) {
                Ok(()) => core.mark_settings_persisted(),
                Err(e) => {
                    log(serde_json::json!({"kind": "monitor_storage_error", "part": "config", "error": e.to_string()}))
                }
            }
        }
        if let Some(a) = core.alerting_snapshot().and_then(|c| serde_json::to_string(c).ok()) {
            match self.meta_put("alerting", &a) {
                Ok(()) => core.mark_alerting_persisted(),
                Err(e) => log(
                    serde_json::json!({"kind": "monitor_storage_error", "part": "alerting", "error": e.to_string()}),
                ),
            }
        }
    }

    /// Arm the single alarm at the core's next due time when that is earlier than what is
    /// armed (an alarm already armed earlier will re-arm when it runs).
    async fn arm(&self, now: i64) {
        let next = self.core.borrow().as_ref().and_then(|c| c.next_due_ms(now));
        let Some(next) = next else { return };
        if self.armed_at.get().is_some_and(|a| a <= next && a >= now - 1000) {
            return;
        }
        match self
            .state
            .storage()
            .set_alarm(worker::ScheduledTime::new(worker::js_sys::Date::new(&(next as f64).into())))
            .await
        {
            Ok(()) => self.armed_at.set(Some(next)),
            Err(e) => log(serde_json::json!({"kind": "monitor_alarm_error", "error": e.to_string()})),
        }
    }
}
