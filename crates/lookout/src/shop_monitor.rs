//! `ShopMonitor`, the per-shop Durable Object (SQLite-backed, one per shop by name). It only
//! loads, stores, forwards and arms its alarm: the pure `core::shop_monitor::ShopMonitorCore`
//! (the request monitor and the cron watchdog composed) decides everything, including what
//! changed and the log lines this object prints. Reachable only through the `SHOP_MONITOR`
//! binding (the public router never forwards to it).
//!
//! Storage: `buckets(start_ms, data)` holds each closed bucket once it closes; `meta` holds
//! the shop (`shop`), the monitor snapshot (`snapshot`: alerts, outbox, recent changes) and
//! the cron state (`cron`: the watchdog, audit watch, cost watches, spend ledger), each
//! written when the core says it changed. What an eviction or a restart can lose: records of
//! the bucket still open (at most `bucket_s` seconds of traffic).
//!
//! Routes (the binding's only; `?shop=` on each): `POST /ingest` (records and cron
//! check-ins), `GET /status`, `GET /ai/pause`, `POST /ai/resume`, `POST /cron/twilio-summary`,
//! `POST /cron/ai-check`; for the dashboards `GET /history/{24h|30d}`, `POST /r2/sample`,
//! and (`ENVIRONMENT=test` only) `POST /history/synthesize/{rps}`. Cron and business alerts
//! go through the monitor's outbox. The one alarm wakes at the core's `next_due_ms` (the
//! earliest of the monitor's, the watchdog's and the history's); after it, the shop's
//! summary goes to the fleet board when the core says it is due. One instance, named
//! `fleet_board::BOARD_OBJECT`, holds the fleet board instead (interim, see fleet_board.rs).
//!
//! History (issue 13): `history(kind, idx, data BLOB)` holds the rollups' binary chunks,
//! written when a minute or an hour is finalized (at most once a minute).

use std::cell::{Cell, RefCell};

use worker::{console_log, durable_object, DurableObject, Env, Request, Response, Result, State};

use lookout_core::cron::ResumeError;
use lookout_core::ingest::{parse_batch, BatchError, MAX_INGEST_BYTES};
use lookout_core::shop::is_slug;
use lookout_core::shop_monitor::{CostJob, LogLine, ShopMonitorConfig, ShopMonitorCore, ShopVars, StoredParts};

use lookout_core::history::series::Range;
use lookout_core::history::{Chunk, ChunkKind, R2Sample};

use crate::fleet_board::{self, BoardHost};
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
    /// The fleet board, in the one instance that holds it (interim, see fleet_board.rs).
    board: BoardHost,
}

impl DurableObject for ShopMonitor {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS buckets (start_ms INTEGER PRIMARY KEY, data TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS history (kind INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, \
             PRIMARY KEY (kind, idx))",
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
            board: BoardHost::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let url = req.url()?;
        if fleet_board::is_board_path(url.path()) {
            return self.board.fetch(&self.state, &self.env, req, now_ms()).await;
        }
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
            (worker::Method::Post, "/cron/twilio-summary") => self.cost_job(now, CostJob::TwilioSummary).await,
            (worker::Method::Post, "/cron/ai-check") => self.cost_job(now, CostJob::AiCheck).await,
            (worker::Method::Get, "/history/24h") => self.history(Range::Day, now),
            (worker::Method::Get, "/history/30d") => self.history(Range::Month, now),
            (worker::Method::Post, "/r2/sample") => {
                let body = req.bytes().await?;
                self.r2_sample(&body, now).await
            }
            (worker::Method::Post, p)
                if p.starts_with("/history/synthesize/")
                    && settings::var(&self.env, "ENVIRONMENT").as_deref() == Some("test") =>
            {
                let rps = p.trim_start_matches("/history/synthesize/").parse::<f64>().unwrap_or(10.0);
                self.synthesize(rps.clamp(0.1, 1000.0), now).await
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
        let vars = ShopVars {
            alert_rules: alert_rules.as_deref(),
            cron_watch: cron_watch.as_deref(),
            twilio_weekly_budget_micros: twilio_budget.as_deref(),
            ai_monthly_cap_micros: ai_cap.as_deref(),
        };
        let config = ShopMonitorConfig::from_vars(vars, deliver::configured_channels(&self.env));
        #[derive(serde::Deserialize)]
        struct Row {
            data: String,
        }
        let rows: Vec<Row> = self.sql().exec("SELECT data FROM buckets ORDER BY start_ms", None)?.to_array()?;
        let buckets: Vec<String> = rows.into_iter().map(|r| r.data).collect();
        let (snapshot, cron) = (self.meta_get("snapshot"), self.meta_get("cron"));
        let history = self.history_rows();
        let stored =
            StoredParts { snapshot: snapshot.as_deref(), buckets: &buckets, cron: cron.as_deref(), history: &history };
        let (core, outcome) = ShopMonitorCore::restore(config, shop, stored, now);
        print(&outcome.lines);
        for start_ms in outcome.delete_buckets {
            let _ = self.sql().exec("DELETE FROM buckets WHERE start_ms = ?", vec![start_ms.into()]);
        }
        self.meta_put("shop", shop)?;
        self.armed_at.set(self.state.storage().get_alarm().await.ok().flatten());
        *self.core.borrow_mut() = Some(core);
        self.persist(now);
        self.arm(now).await;
        Ok(())
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
            Err(ResumeError::NotPaused) => Response::from_json(
                &serde_json::json!({"error": "NotPaused", "message": ResumeError::NotPaused.to_string()}),
            )
            .map(|r| r.with_status(409)),
            Ok(lines) => {
                print(&lines);
                self.persist(now);
                self.arm(now).await;
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
        self.persist(now);
        self.arm(now).await;
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
        self.persist(now);
        self.arm(now).await;
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
        // Store what was decided before sending, so a crash mid-send cannot forget it.
        self.persist(now);
        let due = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return };
            core.claim_due_deliveries(now)
        };
        let results = deliver::send_all(&self.env, due).await;
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
        let mut history_written = Vec::new();
        for c in core.history_chunks() {
            match sql.exec(
                "INSERT OR REPLACE INTO history (kind, idx, data) VALUES (?, ?, ?)",
                vec![c.kind.code().into(), c.idx.into(), c.data.into()],
            ) {
                Ok(_) => history_written.push((c.kind, c.idx)),
                Err(e) => log(
                    serde_json::json!({"kind": "monitor_storage_error", "part": "history", "shop": core.shop(), "error": e.to_string()}),
                ),
            }
        }
        if !history_written.is_empty() {
            core.mark_history_persisted(&history_written);
            for kind in [ChunkKind::Minutes, ChunkKind::Hours] {
                let _ = sql.exec(
                    "DELETE FROM history WHERE kind = ? AND idx < ?",
                    vec![kind.code().into(), core.history_retention_idx(kind, now).into()],
                );
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
