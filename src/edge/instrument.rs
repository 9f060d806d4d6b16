//! The instrumentation wrapper around the top-level fetch handler: request id, shop and
//! staff identity, counters filled as the request goes, exactly one JSON line at the end,
//! `X-Request-Id` on every response. The record's shape and redaction live in `crate::core`.

use std::future::Future;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use worker::wasm_bindgen::prelude::*;
use worker::wasm_bindgen::JsValue;
use worker::{console_log, Context, Env, Headers, Request, Response};

use crate::core::deps::Service;
use crate::core::error::{AppError, HandlerError, UnexpectedError};
use crate::core::record::RequestRecord;
use crate::core::request_id::make_request_id;
use crate::core::shop::{resolve_shop, staff_label, ShopResolution};
use crate::edge::panic::{self, InFlight, Tracked};
use crate::edge::{config, forward};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Monotonic milliseconds (advances only on I/O in deployed Workers).
pub fn now_ms() -> f64 {
    performance_now()
}

/// Wall-clock time from the runtime.
pub fn wall_now() -> DateTime<Utc> {
    let ms = worker::js_sys::Date::now() as i64;
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn random_u64() -> u64 {
    let hi = (worker::js_sys::Math::random() * (1u64 << 32) as f64) as u64;
    let lo = (worker::js_sys::Math::random() * (1u64 << 32) as f64) as u64;
    (hi << 32) | lo
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

/// What a handler sees of the instrumentation: identity and the counters it must feed.
pub struct RequestCtx {
    pub env: Env,
    pub request_id: Rc<str>,
    pub shop: String,
    state: Rc<InFlight>,
}

impl RequestCtx {
    /// Record the signed-in staff member; only the first name reaches the line.
    pub fn set_staff(&self, staff_id: u32, first_name: &str) {
        let mut r = self.state.record.borrow_mut();
        r.staff_id = Some(staff_id);
        r.staff_label = staff_label(first_name);
    }

    /// One D1 statement (or a batch of them) took `ms`; the tally keeps signatures only.
    pub fn record_d1(&self, sql: &[&str], ms: f64) {
        let mut d1 = self.state.d1.borrow_mut();
        match sql {
            [one] => d1.record_query(one, ms),
            many => d1.record_batch(many, ms),
        }
    }

    pub fn record_r2(&self) {
        self.state.record.borrow_mut().r2_ops += 1;
    }

    /// One external call (after its retries), and what it cost.
    pub fn record_external(&self, service: Service, cost_micros: u64) {
        self.state.external.borrow_mut().add(service.as_str());
        let mut r = self.state.record.borrow_mut();
        match service {
            Service::Twilio => r.cost_micros.twilio = r.cost_micros.twilio.saturating_add(cost_micros),
            Service::Claude => r.cost_micros.claude = r.cost_micros.claude.saturating_add(cost_micros),
            Service::Stripe | Service::Gbp => {}
        }
    }

    pub fn staff_id(&self) -> Option<u32> {
        self.state.record.borrow().staff_id
    }

    pub fn is_test_env(&self) -> bool {
        config::settings(&self.env).test_env
    }
}

/// Whose request this is: a shop's (resolved from the host, forwarded to its monitor) or the
/// operator's (no shop, not forwarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Shop,
    Operator,
}

/// Run `handler` for `req` with full instrumentation. Never fails: every outcome becomes a
/// response with `X-Request-Id` and one log line.
pub async fn handle<F, Fut>(req: Request, env: Env, ctx: &Context, scope: Scope, handler: F) -> worker::Result<Response>
where
    F: FnOnce(Request, Rc<RequestCtx>) -> Fut,
    Fut: Future<Output = AppResult>,
{
    panic::ensure_hook(now_ms);
    let t0 = now_ms();
    let cf_ray = req.headers().get("cf-ray").ok().flatten();
    let request_id: Rc<str> = make_request_id(cf_ray.as_deref(), random_u64()).into();
    let settings = config::settings(&env);
    let record = RequestRecord::start(
        wall_now(),
        request_id.to_string(),
        req.method().as_ref(),
        &req.path(),
        &settings.build_version,
    );
    let state = Rc::new(InFlight::new(record, t0, AsRef::<JsValue>::as_ref(req.inner()).clone()));
    panic::register(Rc::clone(&state));

    let host = req.headers().get("host").ok().flatten().unwrap_or_default();
    let resolution = match scope {
        Scope::Operator => ShopResolution::Known(String::new()),
        Scope::Shop => resolve_shop(settings.shop_slug.as_deref(), settings.shops.as_deref(), &host),
    };
    let monitor_env = env.clone();
    let outcome: AppResult = match resolution {
        ShopResolution::Known(shop) => {
            if scope == Scope::Shop {
                state.record.borrow_mut().shop = Some(shop.clone());
            }
            let rctx = Rc::new(RequestCtx { env, request_id: Rc::clone(&request_id), shop, state: Rc::clone(&state) });
            Tracked { request_id: Rc::clone(&request_id), inner: Box::pin(handler(req, rctx)) }.await
        }
        ShopResolution::Unknown(_) => {
            Err(AppError::new(404, "UnknownShop", "this host does not name a configured shop")
                .with("shop_known", crate::core::redact::ContextValue::Bool(false))
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
                r.error_context = (!app.context.is_empty()).then(|| app.context.clone());
            }
            json_response(&e.client_body(&request_id), e.status())
        }
    };
    let response = with_request_id(response, &request_id);
    panic::unregister(&request_id);
    let line = state.finish(response.status_code(), now_ms());
    console_log!("{line}");
    let shop = state.record.borrow().shop.clone();
    if let Some(shop) = shop {
        forward::enqueue(ctx, &monitor_env, &shop, line);
    }
    Ok(response)
}

fn json_response(body: &serde_json::Value, status: u16) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    Response::builder().with_status(status).with_headers(headers).fixed(body.to_string().into_bytes())
}

/// Set `X-Request-Id`, rebuilding the response when its headers are immutable.
fn with_request_id(mut resp: Response, request_id: &str) -> Response {
    if resp.headers_mut().set("x-request-id", request_id).is_ok() {
        return resp;
    }
    let headers = Headers::new();
    for (k, v) in resp.headers().entries() {
        let _ = headers.set(&k, &v);
    }
    let _ = headers.set("x-request-id", request_id);
    let status = resp.status_code();
    let (_, body) = resp.into_parts();
    Response::builder().with_status(status).with_headers(headers).body(body)
}

/// Whether `LOOKOUT_INSTRUMENT=off`: the bench harness's baseline (bench/README.md), never
/// set in a deployed Worker.
pub fn bypassed(env: &Env) -> bool {
    config::settings(env).instrument_off
}

/// The shop app without the wrapper, for the bench baseline (`LOOKOUT_INSTRUMENT=off`): no
/// request id, record, panic registry, log line or monitor call. Shop resolution stays (the
/// app needs the shop); the handler's own counters go to a record nobody reads.
pub async fn bare<F, Fut>(req: Request, env: Env, handler: F) -> worker::Result<Response>
where
    F: FnOnce(Request, Rc<RequestCtx>) -> Fut,
    Fut: Future<Output = AppResult>,
{
    let host = req.headers().get("host").ok().flatten().unwrap_or_default();
    let settings = config::settings(&env);
    let shop = match resolve_shop(settings.shop_slug.as_deref(), settings.shops.as_deref(), &host) {
        ShopResolution::Known(shop) => shop,
        _ => return Ok(json_response(&serde_json::json!({"error": "UnknownShop"}), 404)),
    };
    let record = RequestRecord::start(DateTime::<Utc>::UNIX_EPOCH, String::new(), "", "", "");
    let state = Rc::new(InFlight::new(record, 0.0, JsValue::UNDEFINED));
    let rctx = Rc::new(RequestCtx { env, request_id: Rc::from(""), shop, state });
    match handler(req, rctx).await {
        Ok(resp) => Ok(resp),
        Err(f) => {
            let e = f.into_handler_error();
            Ok(json_response(&e.client_body(""), e.status()))
        }
    }
}
