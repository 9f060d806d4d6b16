//! `ShopMonitor`, the per-shop Durable Object (SQLite-backed, one per shop by name). It only
//! stores and forwards: the pure `core::monitor::Monitor` decides. Reachable only through the
//! `SHOP_MONITOR` binding (the public router never forwards to it).
//!
//! Storage: `buckets(start_ms, data)` holds each closed bucket once it closes; `meta` holds
//! the monitor snapshot (alerts, outbox, recent changes). What an eviction or a restart can
//! lose: records of the bucket still open (at most `bucket_s` seconds of traffic).

use std::cell::{Cell, RefCell};

use worker::{console_log, durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::core::ingest::{parse_batch, BatchError, MAX_INGEST_BYTES};
use crate::core::monitor::{BucketSnapshot, Channel, Monitor, MonitorConfig, MonitorSnapshot};
use crate::core::shop::is_slug;
use crate::edge::{config, deliver};

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
        let rows: Vec<Row> = self.sql().exec("SELECT value FROM meta WHERE key = ?", vec![key.into()]).ok()?.to_array().ok()?;
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
        let rules_json = config::var(&self.env, "ALERT_RULES").unwrap_or_default();
        let config = match MonitorConfig::from_alert_rules_json(&rules_json, self.channels()) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("ALERT_RULES rejected, defaults in force: {e}");
                log(serde_json::json!({"kind": "config_error", "shop": shop, "var": "ALERT_RULES", "error": msg}));
                *self.config_error.borrow_mut() = Some(msg);
                MonitorConfig::from_alert_rules_json("", self.channels()).map_err(|e| worker::Error::RustError(e.to_string()))?
            }
        };
        let snapshot: Option<MonitorSnapshot> = self.meta_get("snapshot").and_then(|s| match serde_json::from_str(&s) {
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
        Ok(())
    }

    async fn ingest(&self, shop: &str, body: &[u8], now: i64) -> Result<Response> {
        let parsed = match parse_batch(body, shop, now) {
            Ok(p) => p,
            Err(e) => {
                let status = if matches!(e, BatchError::TooLarge { .. }) { 413 } else { 400 };
                log(serde_json::json!({"kind": "monitor_ingest_refused", "shop": shop, "error": e.to_string(), "limit_bytes": MAX_INGEST_BYTES}));
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
            let report = m.ingest(&parsed.records, now);
            self.persist(m, now);
            report
        };
        self.arm(now).await;
        Response::from_json(&serde_json::json!({"report": report, "rejected": parsed.rejected}))
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
        }
        Response::from_json(&v)
    }

    /// Evaluate, deliver what is due, persist, re-arm.
    async fn tick(&self, now: i64) {
        let due = {
            let mut guard = self.monitor.borrow_mut();
            let Some(m) = guard.as_mut() else { return };
            let eval = m.evaluate(now);
            for c in &eval.changes {
                log(serde_json::json!({"kind": "alert_state_change", "shop": m.shop(), "change": c}));
            }
            // Persist what was decided before sending, so a crash mid-send cannot forget it.
            self.persist(m, now);
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
                        log(serde_json::json!({"kind": "alert_delivery_failed", "shop": m.shop(), "delivery": id, "error": e}));
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
            match sql.exec("INSERT OR REPLACE INTO buckets (start_ms, data) VALUES (?, ?)", vec![b.start_ms.into(), data.into()]) {
                Ok(_) => written.push(b.key()),
                Err(e) => log(serde_json::json!({"kind": "monitor_storage_error", "shop": m.shop(), "error": e.to_string()})),
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

    /// Arm the single alarm at the monitor's next due time when that is earlier than what is
    /// armed (an alarm already armed earlier will re-arm when it runs).
    async fn arm(&self, now: i64) {
        let next = self.monitor.borrow().as_ref().and_then(|m| m.next_due_ms(now));
        let Some(next) = next else { return };
        if self.armed_at.get().is_some_and(|a| a <= next && a >= now - 1000) {
            return;
        }
        match self.state.storage().set_alarm(worker::ScheduledTime::new(worker::js_sys::Date::new(&(next as f64).into()))).await {
            Ok(()) => self.armed_at.set(Some(next)),
            Err(e) => log(serde_json::json!({"kind": "monitor_alarm_error", "error": e.to_string()})),
        }
    }
}
