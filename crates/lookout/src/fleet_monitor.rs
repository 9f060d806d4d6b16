//! `FleetMonitor`, the one fleet-level Durable Object (SQLite-backed, by name `fleet`). It
//! only loads, stores, forwards and arms its alarm: the pure `core::fleet::FleetCore` decides
//! fleet incidents (`fleet:{rule}`), `monitor_stalled`, silences and the dead-man's switch.
//! Reachable only through its binding (`FLEET_MONITOR` by default: `Options::fleet_binding`
//! on the Worker's side, the `FLEET_MONITOR_BINDING` var on the shop monitors' side).
//!
//! Storage: `shops(shop, data)` holds each shop's last report; `meta` holds the silences
//! (`silences`) and the rest (`fleet`: incidents, outbox, dead-man's switch), each written
//! when the core says it changed.
//!
//! Routes (the binding's only): `POST /report` (a shop monitor's state, answered with its
//! silences and the open fleet incidents), `GET /status`, `GET /silences`, `POST /silences`,
//! `DELETE /silences/{id}`, `POST /touch` (load and arm the alarm). The alarm pings
//! `DEADMAN_URL` every `DEADMAN_INTERVAL_S` and delivers the fleet's alerts.
//!
//! It also holds the dashboards' fleet board (fleet_board.rs): `POST /board/summary` (a shop
//! monitor's summary push) and `GET /board/view/{limit}` (what `GET /ops/fleet` answers, with
//! the fleet's open incidents added), stored in its own `board` table and served from memory.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{console_log, durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, State};

use lookout_core::fleet::{
    deadman_interval_from_var, FleetConfig, FleetCore, FleetLine, FleetParts, FleetReport, FleetRules,
};
use lookout_core::routing::RoutingSpec;
use lookout_core::shop::ShopSet;
use lookout_core::silence::SilenceError;

use crate::fleet_board::BoardHost;
use crate::ops::object_refusal;
use crate::{deliver, object_meta, settings};

/// The fleet object's binding name unless configured otherwise.
pub const DEFAULT_FLEET_BINDING: &str = "FLEET_MONITOR";
/// The one object's name.
pub const FLEET_OBJECT_NAME: &str = "fleet";
/// Longest wait for the fleet object's answer.
pub const FLEET_CALL_TIMEOUT: Duration = Duration::from_secs(3);

fn now_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}

fn print(lines: &[FleetLine]) {
    for l in lines {
        console_log!("{}", l.to_line());
    }
}

/// Call `path` on the fleet object through `binding`, at most [`FLEET_CALL_TIMEOUT`]: status
/// and body, or why there was none.
pub(crate) async fn fleet_request(
    env: &Env,
    binding: &str,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> std::result::Result<(u16, String), String> {
    let ns = env.durable_object(binding).map_err(|_| format!("no {binding} Durable Object binding"))?;
    let stub = ns.get_by_name(FLEET_OBJECT_NAME).map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(b) = body {
        init.with_body(Some(b.into()));
    }
    let req = Request::new_with_init(&format!("https://fleet{path}"), &init).map_err(|e| e.to_string())?;
    let call = Box::pin(async move {
        let mut resp = stub.fetch_with_request(req).await?;
        Ok::<_, worker::Error>((resp.status_code(), resp.text().await?))
    });
    let timer = Box::pin(worker::Delay::from(FLEET_CALL_TIMEOUT));
    match select(call, timer).await {
        Either::Left((Ok(r), _)) => Ok(r),
        Either::Left((Err(e), _)) => Err(lookout_core::redact::scrub_text(&e.to_string())),
        Either::Right(_) => Err(format!("no answer within {} s", FLEET_CALL_TIMEOUT.as_secs())),
    }
}

/// The fleet binding the shop monitors use (a var: the runtime builds the objects).
pub(crate) fn binding_for_objects(env: &Env) -> String {
    settings::var(env, "FLEET_MONITOR_BINDING").unwrap_or_else(|| DEFAULT_FLEET_BINDING.into())
}

fn json(v: &serde_json::Value, status: u16) -> Result<Response> {
    Ok(Response::from_json(v)?.with_status(status))
}

#[durable_object]
pub struct FleetMonitor {
    state: State,
    env: Env,
    core: RefCell<Option<FleetCore>>,
    armed_at: Cell<Option<i64>>,
    /// The dashboards' fleet board (loaded on its first route).
    board: BoardHost,
}

impl DurableObject for FleetMonitor {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for ddl in ["CREATE TABLE IF NOT EXISTS shops (shop TEXT PRIMARY KEY, data TEXT NOT NULL)", object_meta::CREATE]
        {
            if let Err(e) = sql.exec(ddl, None) {
                console_log!("{}", serde_json::json!({"kind": "fleet_storage_error", "error": e.to_string()}));
            }
        }
        FleetMonitor { state, env, core: RefCell::new(None), armed_at: Cell::new(None), board: BoardHost::default() }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let now = now_ms();
        let path = req.path();
        if req.method() == Method::Post && path == "/board/summary" {
            // A summary push needs nothing of the fleet's alerting state.
            let body = req.bytes().await?;
            return self.board.accept(&self.state, &body);
        }
        self.ensure_loaded(now).await?;
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let resp = match (req.method(), segs.as_slice()) {
            (Method::Post, ["report"]) => {
                let body = req.bytes().await?;
                self.report(&body, now)
            }
            (Method::Get, ["status"]) => self.with_core(|c| json(&c.status(now), 200)),
            (Method::Get, ["silences"]) => self.with_core(|c| json(&c.list_silences(now), 200)),
            (Method::Post, ["silences"]) => {
                let body = req.text().await?;
                self.create_silence(&body, now)
            }
            (Method::Delete, ["silences", id]) => self.expire_silence(id, now),
            (Method::Post, ["touch"]) => json(&serde_json::json!({"ok": true}), 200),
            // The fleet answer, with the fleet's own open incidents beside the shops'.
            (Method::Get, ["board", "view", limit]) => self.with_core(|c| {
                let mut view = self.board.view(&self.state, c.configured_shops(), limit, now)?;
                view["fleet_incidents"] = c.open_incidents(now).into();
                json(&view, 200)
            }),
            _ => object_refusal("NotFound", "fleet: no such route", 404, None),
        };
        self.persist();
        self.arm(now).await;
        resp
    }

    async fn alarm(&self) -> Result<Response> {
        let now = now_ms();
        self.armed_at.set(None);
        self.ensure_loaded(now).await?;
        let ping = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return Response::ok("idle") };
            let (ping, lines) = core.tick(now);
            print(&lines);
            ping
        };
        self.persist();
        if let (Some(p), Some(url)) = (ping, settings::var(&self.env, "DEADMAN_URL")) {
            let result = deliver::ping(&url, &p.body).await;
            let line = {
                let mut guard = self.core.borrow_mut();
                let Some(core) = guard.as_mut() else { return Response::ok("idle") };
                core.record_ping(&p, result, now_ms())
            };
            print(std::slice::from_ref(&line));
        }
        self.deliver().await;
        self.persist();
        self.arm(now_ms()).await;
        Response::ok("ok")
    }
}

impl FleetMonitor {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn meta_get(&self, key: &str) -> Option<String> {
        object_meta::get(&self.sql(), key).ok()?.0
    }

    fn meta_put(&self, key: &str, value: &str) -> Result<()> {
        self.sql().exec(object_meta::PUT, vec![key.into(), value.into()])?;
        Ok(())
    }

    fn config(&self) -> FleetConfig {
        let var = |n: &str| settings::var(&self.env, n);
        let mut errors = Vec::new();
        let (shops, shops_error) = ShopSet::from_vars(var("SHOP_SLUG").as_deref(), var("SHOPS").as_deref());
        errors.extend(shops_error.map(|e| e.to_string()));
        let rules = FleetRules::from_var(var("FLEET_ALERTING").as_deref()).unwrap_or_else(|e| {
            errors.push(format!("{e}; the defaults are in force"));
            FleetRules::default()
        });
        let routing = RoutingSpec::from_var(var("ALERT_ROUTING").as_deref()).unwrap_or_else(|e| {
            errors.push(format!("{e}; every severity goes to every channel"));
            RoutingSpec::default()
        });
        let (deadman_interval_s, err) = deadman_interval_from_var(var("DEADMAN_INTERVAL_S").as_deref());
        errors.extend(err);
        FleetConfig {
            rules,
            deadman_interval_s,
            deadman_enabled: var("DEADMAN_URL").is_some(),
            known_shops: shops.all().to_vec(),
            channels: deliver::configured_channels(&self.env),
            routing,
            errors,
        }
    }

    async fn ensure_loaded(&self, now: i64) -> Result<()> {
        if self.core.borrow().is_some() {
            return Ok(());
        }
        #[derive(serde::Deserialize)]
        struct Row {
            data: String,
        }
        let rows: Vec<Row> = self.sql().exec("SELECT data FROM shops ORDER BY shop", None)?.to_array()?;
        let shops: Vec<String> = rows.into_iter().map(|r| r.data).collect();
        let (silences, meta) = (self.meta_get("silences"), self.meta_get("fleet"));
        let parts = FleetParts { shops: &shops, silences: silences.as_deref(), meta: meta.as_deref() };
        let (core, lines) = FleetCore::restore(self.config(), parts, now);
        print(&lines);
        self.armed_at.set(self.state.storage().get_alarm().await.ok().flatten());
        *self.core.borrow_mut() = Some(core);
        self.persist();
        self.arm(now).await;
        Ok(())
    }

    fn with_core(&self, f: impl FnOnce(&FleetCore) -> Result<Response>) -> Result<Response> {
        let guard = self.core.borrow();
        match guard.as_ref() {
            Some(c) => f(c),
            None => object_refusal("NotLoaded", "fleet object not loaded", 500, None),
        }
    }

    fn report(&self, body: &[u8], now: i64) -> Result<Response> {
        let report = match FleetReport::parse(body) {
            Ok(r) => r,
            Err(e) => {
                print(&[FleetLine::FleetReportRefused { error: e.to_string() }]);
                return object_refusal("InvalidReport", &e.to_string(), 400, None);
            }
        };
        let answer = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else {
                return object_refusal("NotLoaded", "fleet object not loaded", 500, None);
            };
            let (answer, lines) = core.report(report, now);
            print(&lines);
            answer
        };
        Response::from_json(&answer)
    }

    fn create_silence(&self, body: &str, now: i64) -> Result<Response> {
        let mut guard = self.core.borrow_mut();
        let Some(core) = guard.as_mut() else {
            return object_refusal("NotLoaded", "fleet object not loaded", 500, None);
        };
        match core.create_silence(body, now) {
            Ok(o) => {
                print(&o.lines);
                json(&serde_json::json!({"silence": o.silence, "affected_shops": o.affected_shops}), 201)
            }
            Err(Ok(e)) => object_refusal("InvalidSilence", &e.to_string(), 400, Some(&e.field)),
            Err(Err(e @ SilenceError::TooMany)) => object_refusal("TooManySilences", &e.to_string(), 409, None),
            Err(Err(e)) => object_refusal("InvalidSilence", &e.to_string(), 400, None),
        }
    }

    fn expire_silence(&self, id: &str, now: i64) -> Result<Response> {
        let mut guard = self.core.borrow_mut();
        let Some(core) = guard.as_mut() else {
            return object_refusal("NotLoaded", "fleet object not loaded", 500, None);
        };
        match core.expire_silence(id, now) {
            Ok(o) => {
                print(&o.lines);
                json(&serde_json::json!({"silence": o.silence, "affected_shops": o.affected_shops}), 200)
            }
            Err(e @ SilenceError::Unknown) => object_refusal("UnknownSilence", &e.to_string(), 404, None),
            Err(e @ SilenceError::AlreadyExpired) => object_refusal("AlreadyExpired", &e.to_string(), 409, None),
            Err(e) => object_refusal("InvalidSilence", &e.to_string(), 400, None),
        }
    }

    async fn deliver(&self) {
        let due = {
            let mut guard = self.core.borrow_mut();
            let Some(core) = guard.as_mut() else { return };
            core.claim_due_deliveries(now_ms())
        };
        if due.is_empty() {
            return;
        }
        self.persist();
        let results = deliver::send_all(&self.env, due, None).await;
        let mut guard = self.core.borrow_mut();
        let Some(core) = guard.as_mut() else { return };
        print(&core.record_deliveries(&results, now_ms()));
    }

    /// Write what changed; storage errors are logged and the part stays changed.
    fn persist(&self) {
        let mut guard = self.core.borrow_mut();
        let Some(core) = guard.as_mut() else { return };
        let sql = self.sql();
        let mut ok = true;
        for e in core.dirty_shops() {
            let Ok(data) = serde_json::to_string(e) else { continue };
            if let Err(err) = sql.exec(
                "INSERT OR REPLACE INTO shops (shop, data) VALUES (?, ?)",
                vec![e.shop.clone().into(), data.into()],
            ) {
                ok = false;
                console_log!("{}", serde_json::json!({"kind": "fleet_storage_error", "error": err.to_string()}));
            }
        }
        if ok {
            core.mark_shops_persisted();
        }
        if let Some(s) = core.silences_snapshot().and_then(|s| serde_json::to_string(s).ok()) {
            match self.meta_put("silences", &s) {
                Ok(()) => core.mark_silences_persisted(),
                Err(e) => {
                    console_log!("{}", serde_json::json!({"kind": "fleet_storage_error", "error": e.to_string()}))
                }
            }
        }
        if let Some(m) = core.meta_snapshot().and_then(|m| serde_json::to_string(m).ok()) {
            match self.meta_put("fleet", &m) {
                Ok(()) => core.mark_meta_persisted(),
                Err(e) => {
                    console_log!("{}", serde_json::json!({"kind": "fleet_storage_error", "error": e.to_string()}))
                }
            }
        }
    }

    /// Arm the one alarm at the core's next due time when that is earlier than what is armed.
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
            Err(e) => console_log!("{}", serde_json::json!({"kind": "fleet_alarm_error", "error": e.to_string()})),
        }
    }
}
