//! The instrumentation wrapper around a Worker's fetch handler ([`wrap`]): request id, shop
//! and staff identity, counters filled as the request goes, exactly one JSON line at the end,
//! `X-Request-Id` on every response, and the record forwarded to the shop's monitor through
//! `ctx.wait_until`. The line's `path` is the route template the app reports (`route.rs`) or
//! the path's redacted shape; methods the wrapper does not serve never reach the app; a
//! response that must have no body (`HEAD`, 204, 205, 304) leaves without one. The record's
//! shape, redaction and those HTTP rules live in `lookout_core`.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use lookout_core::deps::{D1Tally, Service};
use lookout_core::error::{AppError, HandlerError, UnexpectedError};
use lookout_core::http::{body_rule, BodyRule};
use lookout_core::record::{round_ms, ExternalCounts, RequestRecord};
use lookout_core::redact::ContextValue;
use lookout_core::request_id::make_request_id;
use lookout_core::route::{is_served_method, method_label, path_shape, SERVED_METHODS};
use lookout_core::shop::{staff_label, ShopConfigError, ShopResolution};
use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen::JsValue;
use worker::{console_log, Context, Env, Headers, Request, Response};

use crate::clock::{mono_ms, random_u64, wall_now};
use crate::forward;
use crate::inflight::{self, InFlight};
use crate::options::Options;
use crate::settings::{self, Settings};

#[wasm_bindgen]
extern "C" {
    /// Defined by `js/entry.mjs`; absent when the module runs without it.
    #[wasm_bindgen(js_namespace = globalThis, js_name = __lookout_on_panic, catch)]
    fn on_panic(request: &JsValue, request_id: &str, line: &str, monitor_binding: &str) -> Result<(), JsValue>;
}

/// A failure a handler returns: an [`AppError`] on purpose, or a runtime error.
#[derive(Debug)]
pub enum Failure {
    App(AppError),
    Runtime(worker::Error),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure::App(e)
    }
}

impl From<worker::Error> for Failure {
    fn from(e: worker::Error) -> Self {
        Failure::Runtime(e)
    }
}

/// What a route function returns.
pub type AppResult = std::result::Result<Response, Failure>;

/// The error class of a runtime error: the variant name, or the JS error's name.
pub(crate) fn runtime_class(e: &worker::Error) -> &'static str {
    use worker::Error as E;
    match e {
        E::JsError(_) => "JsError",
        E::Internal(_) => "InternalError",
        E::RustError(_) => "RustError",
        E::SerdeJsonError(_) => "SerdeJsonError",
        E::BadEncoding => "BadEncoding",
        E::BodyUsed => "BodyUsed",
        E::D1(_) => "D1Error",
        _ => "WorkerError",
    }
}

impl Failure {
    fn into_handler_error(self) -> HandlerError {
        match self {
            Failure::App(e) => HandlerError::App(e),
            Failure::Runtime(e) => HandlerError::Unexpected(UnexpectedError::new(runtime_class(&e), &e.to_string())),
        }
    }
}

/// A request between the start and the end of the wrapper: its record and counters.
pub(crate) struct RequestState {
    pub(crate) record: RefCell<RequestRecord>,
    pub(crate) external: RefCell<ExternalCounts>,
    pub(crate) d1: Rc<RefCell<D1Tally>>,
    /// The `Allow` header of a 405 the route matcher answered.
    pub(crate) allow: RefCell<Option<String>>,
    t0_ms: f64,
    js_request: JsValue,
    monitor_binding: &'static str,
}

impl RequestState {
    /// Fill the end-of-request fields and return the line.
    fn finish(&self, status: u16, now_mono_ms: f64) -> String {
        let mut r = self.record.borrow_mut();
        r.status = status;
        r.ms = round_ms(now_mono_ms - self.t0_ms);
        if let Ok(ext) = self.external.try_borrow() {
            r.external_calls = ext.to_field();
        }
        if let Ok(d1) = self.d1.try_borrow() {
            d1.apply_to(&mut r);
        }
        r.to_line()
    }
}

impl InFlight for RequestState {
    fn report_panic(&self, panicked: bool, location: &str) {
        let request_id = {
            let Ok(mut r) = self.record.try_borrow_mut() else { return };
            if panicked {
                r.error_class = Some("Panic".into());
                r.error_msg = Some(format!("handler panicked at {location}"));
            } else {
                r.error_class = Some("AbortedByPanic".into());
                r.error_msg = Some("the wasm instance was reset by another request's panic".into());
            }
            r.request_id.clone()
        };
        let line = self.finish(500, mono_ms());
        console_log!("{line}");
        let _ = on_panic(&self.js_request, &request_id, &line, self.monitor_binding);
    }
}

/// What a route function sees of the instrumentation: identity, the env, and the counters
/// the wrappers ([`crate::db::Db`], [`crate::r2::Files`], [`crate::external::send`]) feed.
pub struct RequestCtx {
    pub env: Env,
    pub request_id: Rc<str>,
    /// The resolved shop slug (empty for operator requests).
    pub shop: String,
    pub(crate) settings: Rc<Settings>,
    pub(crate) state: Rc<RequestState>,
}

impl RequestCtx {
    /// Record the signed-in staff member; only the first name reaches the line.
    pub fn set_staff(&self, staff_id: u32, first_name: &str) {
        let mut r = self.state.record.borrow_mut();
        r.staff_id = Some(staff_id);
        r.staff_label = staff_label(first_name);
    }

    pub fn staff_id(&self) -> Option<u32> {
        self.state.record.borrow().staff_id
    }

    /// `ENVIRONMENT=test` (for an app's test-only routes).
    pub fn is_test_env(&self) -> bool {
        self.settings.test_env
    }

    /// The build that serves this request (what its line and audit rows carry).
    pub fn build_version(&self) -> &str {
        &self.settings.build_version
    }

    pub fn options(&self) -> &Options {
        &self.settings.options
    }

    /// Mark the request's line as failed with `class` and a scrubbed `message`, for a route
    /// that answers a 4xx itself (a refusal with details an `AppError`'s fixed message cannot
    /// carry, a page's 401 or 404 in HTML).
    pub(crate) fn note_error(&self, class: &str, message: &str) {
        let mut r = self.state.record.borrow_mut();
        r.error_class = Some(class.to_string());
        r.error_msg = Some(lookout_core::redact::scrub_text(message));
    }

    pub(crate) fn record_r2(&self) {
        self.state.record.borrow_mut().r2_ops += 1;
    }

    /// One external call (after its retries), and what it cost.
    pub(crate) fn record_external(&self, service: Service, cost_micros: u64) {
        self.state.external.borrow_mut().add(service.as_str());
        let mut r = self.state.record.borrow_mut();
        match service {
            Service::Twilio => r.cost_micros.twilio = r.cost_micros.twilio.saturating_add(cost_micros),
            Service::Claude => r.cost_micros.claude = r.cost_micros.claude.saturating_add(cost_micros),
            Service::Stripe | Service::Gbp => {}
        }
    }
}

/// Whose request this is: a shop's (resolved from the host, forwarded to its monitor) or the
/// operator's (no shop, not forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Shop,
    Operator,
}

/// Run `route` for `req` with full instrumentation: the shop comes from the host (or
/// `SHOP_SLUG`), the request gets one log line and `X-Request-Id`, and its record goes to
/// the shop's monitor. Never fails: every outcome, a panic included, becomes a response.
pub async fn wrap<F, Fut>(
    options: &Options,
    req: Request,
    env: Env,
    ctx: &Context,
    route: F,
) -> worker::Result<Response>
where
    F: FnOnce(Request, Rc<RequestCtx>) -> Fut,
    Fut: Future<Output = AppResult>,
{
    handle(options, req, env, ctx, Scope::Shop, route).await
}

pub(crate) async fn handle<F, Fut>(
    options: &Options,
    req: Request,
    env: Env,
    ctx: &Context,
    scope: Scope,
    handler: F,
) -> worker::Result<Response>
where
    F: FnOnce(Request, Rc<RequestCtx>) -> Fut,
    Fut: Future<Output = AppResult>,
{
    let t0 = mono_ms();
    let settings = settings::settings(&env, options);
    let cf_ray = req.headers().get("cf-ray").ok().flatten();
    let request_id: Rc<str> = make_request_id(cf_ray.as_deref(), random_u64()).into();
    // The real method: `worker::Method` turns any method it does not know into GET.
    let method = req.inner().method();
    let record = RequestRecord::start(
        wall_now(),
        request_id.to_string(),
        &method_label(&method),
        &path_shape(&req.path()),
        &settings.build_version,
    );
    let state = Rc::new(RequestState {
        record: RefCell::new(record),
        external: RefCell::default(),
        d1: Rc::default(),
        allow: RefCell::default(),
        t0_ms: t0,
        js_request: AsRef::<JsValue>::as_ref(req.inner()).clone(),
        monitor_binding: settings.options.monitor_binding,
    });
    let registration = inflight::register(Rc::clone(&state) as Rc<dyn InFlight>);

    let host = req.headers().get("host").ok().flatten().unwrap_or_default();
    let resolution = match scope {
        Scope::Operator => ShopResolution::Known(String::new()),
        Scope::Shop => settings.shops.resolve(&host),
    };
    let monitor_env = env.clone();
    let outcome: AppResult = match resolution {
        _ if scope == Scope::Shop && settings.shops_error == Some(ShopConfigError::InvalidShopSlug) => {
            Err(AppError::new(500, "ConfigError", "SHOP_SLUG is not a valid shop slug; see the config_error line")
                .into())
        }
        ShopResolution::Known(shop) if !is_served_method(&method) => {
            if scope == Scope::Shop {
                state.record.borrow_mut().shop = Some(shop);
            }
            // A 4xx, not 501: a scanner's PROPFINDs must not raise the shop's 5xx rate.
            *state.allow.borrow_mut() = Some(SERVED_METHODS.join(", "));
            Err(AppError::new(405, "MethodNotAllowed", "this method is not served").into())
        }
        ShopResolution::Known(shop) => {
            if scope == Scope::Shop {
                state.record.borrow_mut().shop = Some(shop.clone());
            }
            let rctx = Rc::new(RequestCtx {
                env,
                request_id: Rc::clone(&request_id),
                shop,
                settings: Rc::clone(&settings),
                state: Rc::clone(&state),
            });
            registration.track(handler(req, rctx)).await
        }
        ShopResolution::Unknown(_) => {
            Err(AppError::new(404, "UnknownShop", "this host does not name a configured shop")
                .with("shop_known", ContextValue::Bool(false))
                .into())
        }
        ShopResolution::Missing => Err(AppError::new(404, "UnknownShop", "the request names no shop").into()),
    };

    let response = match outcome {
        Ok(resp) => resp,
        Err(f) => {
            let e = f.into_handler_error();
            let mut r = state.record.borrow_mut();
            r.error_class = Some(e.class().to_string());
            r.error_msg = Some(e.message().to_string());
            if let HandlerError::App(app) = &e {
                r.error_context =
                    (!app.context.is_empty()).then(|| app.context.allowed(&settings.options.context_keys));
            }
            json_response(&e.client_body(&request_id), e.status())
        }
    };
    let response = finish_response(response, &method, &request_id, &state);
    drop(registration);
    let line = state.finish(response.status_code(), mono_ms());
    console_log!("{line}");
    let record = state.record.borrow();
    if let Some(shop) = &record.shop {
        forward::enqueue(ctx, &monitor_env, &settings, shop, &record);
    }
    Ok(response)
}

pub(crate) fn json_response(body: &serde_json::Value, status: u16) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    Response::builder().with_status(status).with_headers(headers).fixed(body.to_string().into_bytes())
}

/// What leaves: `X-Request-Id` (and `Allow` on a 405) set, and a body only where the
/// method and status allow one (`lookout_core::http::body_rule`); a status the runtime cannot
/// send becomes a 500 `InvalidStatus` on the line. Never fails: the runtime would otherwise
/// throw after the line was written and answer without the request id.
fn finish_response(resp: Response, method: &str, request_id: &str, state: &RequestState) -> Response {
    let status = resp.status_code();
    let allow = if status == 405 { state.allow.borrow().clone() } else { None };
    match body_rule(method, status) {
        BodyRule::Send => with_headers(resp, request_id, allow.as_deref()),
        BodyRule::DropBody => {
            let headers = copy_headers(&resp, request_id, allow.as_deref());
            Response::builder().with_status(status).with_headers(headers).empty()
        }
        BodyRule::InvalidStatus => {
            {
                let mut r = state.record.borrow_mut();
                r.error_class = Some("InvalidStatus".into());
                r.error_msg = Some(format!("the app answered status {status}, which cannot be sent"));
            }
            let body = HandlerError::Unexpected(UnexpectedError::new("InvalidStatus", "")).client_body(request_id);
            let headers = Headers::new();
            let _ = headers.set("content-type", "application/json");
            let _ = headers.set("x-request-id", request_id);
            let body = if method == "HEAD" { Vec::new() } else { body.to_string().into_bytes() };
            Response::builder().with_status(500).with_headers(headers).fixed(body)
        }
    }
}

/// Set `X-Request-Id` (and `Allow`), rebuilding the response when its headers are immutable.
fn with_headers(mut resp: Response, request_id: &str, allow: Option<&str>) -> Response {
    let set =
        |h: &mut Headers| h.set("x-request-id", request_id).is_ok() && allow.is_none_or(|a| h.set("allow", a).is_ok());
    if set(resp.headers_mut()) {
        return resp;
    }
    let headers = copy_headers(&resp, request_id, allow);
    let status = resp.status_code();
    let (_, body) = resp.into_parts();
    Response::builder().with_status(status).with_headers(headers).body(body)
}

fn copy_headers(resp: &Response, request_id: &str, allow: Option<&str>) -> Headers {
    let headers = Headers::new();
    for (k, v) in resp.headers().entries() {
        let _ = headers.append(&k, &v);
    }
    let _ = headers.set("x-request-id", request_id);
    if let Some(a) = allow {
        let _ = headers.set("allow", a);
    }
    headers
}

/// The bench baseline (`bench/README.md`): the app without any instrumentation (no request
/// id, record, panic registry, log line or monitor call). Shop resolution stays (the app
/// needs the shop); the handler's counters go to a record nobody reads. Never deploy it.
#[cfg(feature = "bench-baseline")]
pub async fn bare<F, Fut>(options: &Options, req: Request, env: Env, handler: F) -> worker::Result<Response>
where
    F: FnOnce(Request, Rc<RequestCtx>) -> Fut,
    Fut: Future<Output = AppResult>,
{
    let host = req.headers().get("host").ok().flatten().unwrap_or_default();
    let settings = settings::settings(&env, options);
    let shop = match settings.shops.resolve(&host) {
        ShopResolution::Known(shop) => shop,
        _ => return Ok(json_response(&serde_json::json!({"error": "UnknownShop"}), 404)),
    };
    let record = RequestRecord::start(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, String::new(), "", "", "");
    let state = Rc::new(RequestState {
        record: RefCell::new(record),
        external: RefCell::default(),
        d1: Rc::default(),
        allow: RefCell::default(),
        t0_ms: 0.0,
        js_request: JsValue::UNDEFINED,
        monitor_binding: settings.options.monitor_binding,
    });
    let rctx = Rc::new(RequestCtx { env, request_id: Rc::from(""), shop, settings, state });
    match handler(req, rctx).await {
        Ok(resp) => Ok(resp),
        Err(f) => {
            let e = f.into_handler_error();
            Ok(json_response(&e.client_body(""), e.status()))
        }
    }
}
