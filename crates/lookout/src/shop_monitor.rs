//! `ShopMonitor`, the per-shop Durable Object (SQLite-backed, one per shop by name). It only
//! stores and forwards: the pure `core::monitor::Monitor` decides. Reachable only through the
//! `SHOP_MONITOR` binding (the public router never forwards to it).
//!
//! Storage: `buckets(start_ms, data)` holds each closed bucket once it closes; `meta` holds
//! the monitor snapshot (alerts, outbox, recent changes) and the cron state (`cron`: the
//! watchdog, audit watch, cost watches, spend ledger). What an eviction or a restart can
//! lose: records of the bucket still open (at most `bucket_s` seconds of traffic).
//!
//! Routes (the binding's only; `?shop=` on each): `POST /ingest` (records and cron
//! check-ins), `GET /status`, `GET /ai/pause`, `POST /ai/resume`, `POST /cron/twilio-summary`,
//! `POST /cron/ai-check`. Cron and business alerts go through the monitor's outbox. The one
//! alarm wakes at the earlier of the monitor's and the watchdog's next due time.

use std::cell::{Cell, RefCell};

use worker::{console_log, durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::{deliver, settings};
use lookout_core::cron::{CronAlertEvent, CronConfig, CronPersisted, ResumeError};
use lookout_core::ingest::{parse_batch, BatchError, MAX_INGEST_BYTES};
use lookout_core::monitor::{cron_dedup_key, BucketSnapshot, Channel, Monitor, MonitorConfig, MonitorSnapshot};
use lookout_core::shop::is_slug;

fn now_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}

fn log(value: serde_json::Value) {
    console_log!("{value}");
}

#[durable_object]
pub struct ShopMonitor {
    state: State,
    env: Env,
    monitor: RefCell<Option<Monitor>>,
    /// `ALERT_RULES` problems found at load (the defaults are used instead).
    config_error: RefCell<Option<String>>,
    /// The alarm time this object armed, as far as it knows.
    armed_at: Cell<Option<i64>>,
    /// The alarm time `alarm()` was scheduled for, to report lateness.
    last_alarm_lag_ms: Cell<Option<i64>>,
    /// The cron side (watchdog, audit, costs), loaded with the monitor.
    cron: RefCell<Option<CronPersisted>>,
    cron_config: RefCell<CronConfig>,
    /// `CRON_WATCH` / budget var problems found at load (defaults in force).
    cron_config_errors: RefCell<Vec<String>>,
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
            monitor: RefCell::new(None),
            config_error: RefCell::new(None),
            armed_at: Cell::new(None),
            last_alarm_lag_ms: Cell::new(None),
            cron: RefCell::new(None),
            cron_config: RefCell::new(CronConfig::default()),
            cron_config_errors: RefCell::new(Vec::new()),
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
        match (req.method(), url.path()) {
            (worker::Method::Post, "/ingest") => {
                let body = req.bytes().await?;
                self.ingest(&shop, &body, now).await
            }
            (worker::Method::Get, "/status") => self.status(now),
            (worker::Method::Get, "/ai/pause") => self.ai_pause(now),
            (worker::Method::Post, "/ai/resume") => self.ai_resume(now).await,
            (worker::Method::Post, "/cron/twilio-summary") => self.cost_job(now, CostJob::Twilio).await,
            (worker::Method::Post, "/cron/ai-check") => self.cost_job(now, CostJob::Ai).await,
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
        self.tick(now).await;
        Response::ok("ok")
    }
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
        self.monitor.borrow().as_ref().map(|m| m.shop().to_string()).or_else(|| self.meta_get("shop"))
    }

    fn channels(&self) -> Vec<Channel> {
        deliver::configured_channels(&self.env)
    }

    /// Build the monitor from storage on first use (and after an eviction).
    async fn ensure_loaded(&self, shop: &str, now: i64) -> Result<()> {
        if self.monitor.borrow().as_ref().is_some_and(|m| m.shop() == shop) {
            return Ok(());
        }
        let rules_json = settings::var(&self.env, "ALERT_RULES").unwrap_or_default();
        let config = match MonitorConfig::from_alert_rules_json(&rules_json, self.channels()) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("ALERT_RULES rejected, defaults in force: {e}");
                log(serde_json::json!({"kind": "config_error", "shop": shop, "var": "ALERT_RULES", "error": msg}));
                *self.config_error.borrow_mut() = Some(msg);
                MonitorConfig::from_alert_rules_json("", self.channels())
                    .map_err(|e| worker::Error::RustError(e.to_string()))?
            }
        };
        let snapshot: Option<MonitorSnapshot> =
            self.meta_get("snapshot").and_then(|s| match serde_json::from_str(&s) {
                Ok(v) => Some(v),
                Err(e) => {
                    log(serde_json::json!({"kind": "monitor_restore_error", "shop": shop, "error": e.to_string()}));
                    None
                }
            });
        #[derive(serde::Deserialize)]
        struct Row {
            data: String,
        }
        let rows: Vec<Row> = self.sql().exec("SELECT data FROM buckets ORDER BY start_ms", None)?.to_array()?;
        let buckets: Vec<BucketSnapshot> = rows.iter().filter_map(|r| serde_json::from_str(&r.data).ok()).collect();
        let monitor = match Monitor::restore(config.clone(), shop, snapshot, &buckets, now) {
            Ok((m, report)) => {
                for (start_ms, _) in &report.skipped_buckets {
                    let _ = self.sql().exec("DELETE FROM buckets WHERE start_ms = ?", vec![(*start_ms).into()]);
                }
                m
            }
            Err(e) => {
                log(serde_json::json!({"kind": "monitor_restore_error", "shop": shop, "error": e.to_string()}));
                Monitor::new(config, shop)
            }
        };
        self.meta_put("shop", shop)?;
        self.armed_at.set(self.state.storage().get_alarm().await.ok().flatten());
        *self.monitor.borrow_mut() = Some(monitor);
        self.load_cron(shop, now);
        // Start (or resume) watching: align the watchdog with the watch list, conclude what is
        // due, and make sure the alarm covers its next due time.
        self.cron_evaluate(now);
        self.persist_all(now);
        self.arm(now).await;
        Ok(())
    }

    /// The cron state and its configuration (vars), from storage.
    fn load_cron(&self, shop: &str, now: i64) {
        let var = |n: &str| settings::var(&self.env, n);
        let (cfg, errors) = CronConfig::from_vars(
            var("CRON_WATCH").as_deref(),
            var("TWILIO_WEEKLY_BUDGET_MICROS").as_deref(),
            var("AI_MONTHLY_CAP_MICROS").as_deref(),
        );
        for e in &errors {
            log(serde_json::json!({"kind": "config_error", "shop": shop, "error": e}));
        }
        let cron = match self.meta_get("cron").map(|s| serde_json::from_str::<CronPersisted>(&s)) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                log(
                    serde_json::json!({"kind": "monitor_restore_error", "shop": shop, "part": "cron", "error": e.to_string(), "at_ms": now}),
                );
                CronPersisted::default()
            }
            None => CronPersisted::default(),
        };
        *self.cron_config.borrow_mut() = cfg;
        *self.cron_config_errors.borrow_mut() = errors;
        *self.cron.borrow_mut() = Some(cron);
    }

    /// The watchdog's evaluation at `now`: its alerts are queued in the monitor's outbox.
    fn cron_evaluate(&self, now: i64) {
        let outcome = {
            let mut guard = self.cron.borrow_mut();
            let Some(c) = guard.as_mut() else { return };
            c.evaluate(&self.cron_config.borrow(), now)
        };
        if outcome.lag_s > 60 {
            log(serde_json::json!({"kind": "cron_watchdog_lag", "shop": self.stored_shop(), "lag_s": outcome.lag_s}));
        }
        self.notify(&outcome.events, now);
    }

    /// Queue cron/business alert events for delivery and log each one.
    fn notify(&self, events: &[CronAlertEvent], now: i64) {
        let mut guard = self.monitor.borrow_mut();
        let Some(m) = guard.as_mut() else { return };
        for e in events {
            let queued = m.notify_event(e, now);
            log(serde_json::json!({
                "kind": "cron_alert", "shop": m.shop(), "rule": e.rule, "state": e.state, "cron": e.cron,
                "run_id": e.run_id, "severity": e.severity, "dedup_key": cron_dedup_key(m.shop(), e),
                "summary": e.summary, "queued": queued.len(),
            }));
        }
    }

    /// Persist the monitor (buckets, snapshot) and the cron state.
    fn persist_all(&self, now: i64) {
        if let Some(m) = self.monitor.borrow_mut().as_mut() {
            self.persist(m, now);
        }
        self.persist_cron();
    }

    fn persist_cron(&self) {
        let Some(json) = self.cron.borrow().as_ref().and_then(|c| serde_json::to_string(c).ok()) else { return };
        if let Err(e) = self.meta_put("cron", &json) {
            log(serde_json::json!({"kind": "monitor_storage_error", "part": "cron", "error": e.to_string()}));
        }
    }

    fn ai_pause(&self, now: i64) -> Result<Response> {
        let guard = self.cron.borrow();
        let Some(c) = guard.as_ref() else { return Response::error("monitor not loaded", 500) };
        let pause = c.ai.pause.as_ref().filter(|_| c.ai_paused(now));
        Response::from_json(&serde_json::json!({
            "paused": pause.is_some(),
            "since_ms": pause.map(|p| p.since_ms),
            "reason": pause.map(|p| p.reason),
        }))
    }

    async fn ai_resume(&self, now: i64) -> Result<Response> {
        let result = {
            let mut guard = self.cron.borrow_mut();
            let Some(c) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            c.ai_resume(&self.cron_config.borrow(), now)
        };
        match result {
            Err(ResumeError::NotPaused) => Response::from_json(
                &serde_json::json!({"error": "NotPaused", "message": ResumeError::NotPaused.to_string()}),
            )
            .map(|r| r.with_status(409)),
            Ok(events) => {
                self.notify(&events, now);
                self.persist_all(now);
                self.arm(now).await;
                log(serde_json::json!({"kind": "ai_resumed", "shop": self.stored_shop()}));
                Response::from_json(&serde_json::json!({"resumed": true, "paused": false}))
            }
        }
    }

    /// A cost job of the scheduled handler: evaluate the projection, queue its alert, answer
    /// the figures for the job's summary line.
    async fn cost_job(&self, now: i64, job: CostJob) -> Result<Response> {
        let (results, events) = {
            let mut guard = self.cron.borrow_mut();
            let Some(c) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            let cfg = self.cron_config.borrow();
            match job {
                CostJob::Twilio => c.twilio_summary(&cfg, now),
                CostJob::Ai => c.ai_check(&cfg, now),
            }
        };
        self.notify(&events, now);
        self.persist_all(now);
        self.arm(now).await;
        Response::from_json(&serde_json::json!({"results": results}))
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
        if !parsed.rejected.is_empty() {
            log(serde_json::json!({
                "kind": "monitor_ingest_rejected", "shop": shop, "rejected": parsed.rejected.len(),
                "accepted": parsed.records.len(), "first": parsed.rejected.iter().take(3).collect::<Vec<_>>(),
            }));
        }
        let report = {
            let mut guard = self.monitor.borrow_mut();
            let Some(m) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            m.ingest(&parsed.records, now)
        };
        let mut effects = Vec::with_capacity(parsed.check_ins.len());
        let mut events = Vec::new();
        let cron_changed = {
            let mut guard = self.cron.borrow_mut();
            let Some(c) = guard.as_mut() else { return Response::error("monitor not loaded", 500) };
            let counted = c.record_spend(&parsed.records);
            let cfg = self.cron_config.borrow();
            for ci in &parsed.check_ins {
                let o = c.check_in(&cfg, ci, now);
                log(serde_json::json!({
                    "kind": "cron_check_in", "shop": shop, "cron": ci.cron, "run_id": ci.run_id,
                    "type": if matches!(ci.kind, lookout_core::cron::CheckInKind::Start) { "start" } else { "end" },
                    "effect": o.effect,
                }));
                effects.push(o.effect);
                events.extend(o.events);
            }
            counted > 0 || !parsed.check_ins.is_empty()
        };
        self.notify(&events, now);
        // The cron state is written only when this batch changed it (spend or check-ins):
        // request traffic alone costs no extra storage write.
        if let Some(m) = self.monitor.borrow_mut().as_mut() {
            self.persist(m, now);
        }
        if cron_changed {
            self.persist_cron();
        }
        self.arm(now).await;
        Response::from_json(&serde_json::json!({"report": report, "check_ins": effects, "rejected": parsed.rejected}))
    }

    fn status(&self, now: i64) -> Result<Response> {
        let guard = self.monitor.borrow();
        let Some(m) = guard.as_ref() else { return Response::error("monitor not loaded", 500) };
        let mut v = serde_json::to_value(m.status(now))?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("config_error".into(), serde_json::json!(*self.config_error.borrow()));
            obj.insert("alarm_armed_at_ms".into(), serde_json::json!(self.armed_at.get()));
            obj.insert("last_alarm_lag_ms".into(), serde_json::json!(self.last_alarm_lag_ms.get()));
            obj.insert("storage_bytes".into(), serde_json::json!(self.sql().database_size()));
            if let Some(c) = self.cron.borrow().as_ref() {
                if let Ok(serde_json::Value::Object(cron)) =
                    serde_json::to_value(c.status(&self.cron_config.borrow(), now))
                {
                    obj.extend(cron);
                }
            }
            obj.insert("cron_config_errors".into(), serde_json::json!(*self.cron_config_errors.borrow()));
        }
        Response::from_json(&v)
    }

    /// Evaluate, deliver what is due, persist, re-arm.
    async fn tick(&self, now: i64) {
        {
            let mut guard = self.monitor.borrow_mut();
            let Some(m) = guard.as_mut() else { return };
            let eval = m.evaluate(now);
            for c in &eval.changes {
                log(serde_json::json!({"kind": "alert_state_change", "shop": m.shop(), "change": c}));
            }
        }
        // The watchdog only when its due time has come (the alarm also wakes for the monitor).
        let cron_due = self.cron.borrow().as_ref().and_then(|c| c.next_due_ms(&self.cron_config.borrow()));
        if cron_due.is_some_and(|d| d <= now) {
            self.cron_evaluate(now);
            self.persist_cron();
        }
        // Persist what was decided before sending, so a crash mid-send cannot forget it.
        if let Some(m) = self.monitor.borrow_mut().as_mut() {
            self.persist(m, now);
        }
        let due = {
            let mut guard = self.monitor.borrow_mut();
            let Some(m) = guard.as_mut() else { return };
            m.claim_due_deliveries(now)
        };
        let results = deliver::send_all(&self.env, due).await;
        {
            let now = now_ms();
            let mut guard = self.monitor.borrow_mut();
            let Some(m) = guard.as_mut() else { return };
            for (id, outcome) in results {
                match outcome {
                    Ok(()) => {
                        let _ = m.mark_delivery_sent(id);
                    }
                    Err(e) => {
                        log(
                            serde_json::json!({"kind": "alert_delivery_failed", "shop": m.shop(), "delivery": id, "error": e}),
                        );
                        let _ = m.mark_delivery_failed(id, now, &e);
                    }
                }
            }
            self.persist(m, now);
        }
        self.arm(now_ms()).await;
    }

    /// Write closed buckets and the snapshot; storage errors are logged, not thrown.
    fn persist(&self, m: &mut Monitor, now: i64) {
        let sql = self.sql();
        let mut written = Vec::new();
        for b in m.dirty_closed_buckets(now) {
            let Ok(data) = serde_json::to_string(&b) else { continue };
            match sql.exec(
                "INSERT OR REPLACE INTO buckets (start_ms, data) VALUES (?, ?)",
                vec![b.start_ms.into(), data.into()],
            ) {
                Ok(_) => written.push(b.key()),
                Err(e) => {
                    log(serde_json::json!({"kind": "monitor_storage_error", "shop": m.shop(), "error": e.to_string()}))
                }
            }
        }
        m.mark_buckets_persisted(&written);
        let _ = sql.exec("DELETE FROM buckets WHERE start_ms < ?", vec![m.bucket_retention_start_ms(now).into()]);
        if let Ok(snap) = serde_json::to_string(&m.snapshot()) {
            if let Err(e) = self.meta_put("snapshot", &snap) {
                log(serde_json::json!({"kind": "monitor_storage_error", "shop": m.shop(), "error": e.to_string()}));
            }
        }
    }

    /// Arm the single alarm at the earlier of the monitor's and the watchdog's next due time
    /// when that is earlier than what is armed (an alarm already armed earlier will re-arm
    /// when it runs).
    async fn arm(&self, now: i64) {
        let monitor_due = self.monitor.borrow().as_ref().and_then(|m| m.next_due_ms(now));
        let cron_due =
            self.cron.borrow().as_ref().and_then(|c| c.next_due_ms(&self.cron_config.borrow())).map(|t| t.max(now));
        let next = match (monitor_due, cron_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
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

/// The cost jobs the scheduled handler asks the monitor to run.
#[derive(Debug, Clone, Copy)]
enum CostJob {
    Twilio,
    Ai,
}
