//! The operator API, a route an adopting Worker mounts ([`serve`] for paths under `/ops/`,
//! see [`is_ops_path`]): bearer `OPS_TOKEN` (constant-time compare) or the dashboards'
//! session cookie, then the shop's monitor or the fleet object answers. The dashboards
//! (sign-in, pages, assets, and the routes only they read: `GET /ops/fleet`, a shop's
//! `history` and `panels`) are `pages.rs`, routed first.
//!
//! | route | answered by |
//! |---|---|
//! | `GET /ops/shops/{shop}/status` | the shop's monitor |
//! | `POST /ops/shops/{shop}/ai/resume` | the shop's monitor |
//! | `GET`, `PUT /ops/shops/{shop}/config` | the shop's monitor (its settings) |
//! | `POST /ops/shops/{shop}/alerts/{rule}/ack` | the shop's monitor |
//! | `GET`, `POST /ops/silences`, `DELETE /ops/silences/{id}` | the fleet object; then the shops with a firing alert the silence matches refresh their copy |
//! | `GET /ops/fleet/status` | the fleet object |
//! | `POST /ops/shops/{shop}/test/evaluation` | the shop's monitor, `ENVIRONMENT=test` only |
//!
//! A refusal from a monitor (`{"error", "message", "field"?}`, 4xx) is answered with the
//! request id added and marks the request's line with its class. Operator requests are logged
//! like any other but never count as shop traffic in a monitor.

use std::rc::Rc;

use lookout_core::cron::ResumeError;
use lookout_core::dash::PageRoute;
use lookout_core::error::AppError;
use worker::{Context, Env, Method, Request, Response};

use crate::fleet_monitor::fleet_request;
use crate::forward::monitor_request;
use crate::instrument::{self, json_response, AppResult, RequestCtx, Scope};
use crate::options::Options;
use crate::pages;

/// Whether `path` belongs to the operator API.
pub fn is_ops_path(path: &str) -> bool {
    path == "/ops" || path.starts_with("/ops/")
}

/// Serve an operator request, instrumented like any other (one line, `X-Request-Id`).
pub async fn serve(options: &Options, req: Request, env: Env, ctx: &Context) -> worker::Result<Response> {
    instrument::handle(options, req, env, ctx, Scope::Operator, route).await
}

/// Largest operator request body read.
const MAX_BODY_BYTES: usize = 64 * 1024;

async fn route(mut req: Request, ctx: Rc<RequestCtx>) -> AppResult {
    // ---- Dashboards (pages.rs): public routes (sign-in, assets), then the session check
    // (bearer or cookie) for everything, then the pages and the routes only they read. ----
    let page = PageRoute::of(req.method().as_ref(), &req.path());
    if let Some(p) = page.as_ref().filter(|p| p.is_public()) {
        return pages::serve_public(p, &mut req, &ctx).await;
    }
    if let Err(refused) = pages::authorize(&req, &ctx, page.as_ref()) {
        return refused;
    }
    if let Some(p) = &page {
        return pages::serve_page(p, &ctx);
    }
    if let Some(answer) = pages::api(&req, &ctx).await {
        return answer;
    }
    // ---- The operator API ----
    let path = req.path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segs.as_slice()) {
        (Method::Get, ["ops", "shops", shop, "status"]) => {
            known_shop(&ctx, shop)?;
            monitor_call(&ctx, shop, Method::Get, "/status", None).await
        }
        (Method::Post, ["ops", "shops", shop, "ai", "resume"]) => {
            known_shop(&ctx, shop)?;
            let resp = monitor_call(&ctx, shop, Method::Post, "/ai/resume", None).await?;
            if resp.status_code() == 409 {
                // The monitor's refusal, in the API's error format: `request_id` in the body,
                // `error_class` on the line.
                let e = ResumeError::NotPaused;
                return Err(AppError::new(409, e.class(), e.message()).into());
            }
            Ok(resp)
        }
        (Method::Get, ["ops", "shops", shop, "config"]) => {
            known_shop(&ctx, shop)?;
            monitor_call(&ctx, shop, Method::Get, "/config", None).await
        }
        (Method::Put, ["ops", "shops", shop, "config"]) => {
            known_shop(&ctx, shop)?;
            let body = read_body(&mut req).await?;
            monitor_call(&ctx, shop, Method::Put, "/config", Some(body)).await
        }
        (Method::Post, ["ops", "shops", shop, "alerts", rule, "ack"]) => {
            known_shop(&ctx, shop)?;
            if !lookout_core::fleet::is_rule_name(rule) {
                return refusal(&ctx, 404, "UnknownRule", "no such rule", None);
            }
            let body = read_body(&mut req).await?;
            monitor_call(&ctx, shop, Method::Post, &format!("/alerts/{rule}/ack"), Some(body)).await
        }
        (Method::Post, ["ops", "shops", shop, "test", "evaluation"]) if ctx.is_test_env() => {
            known_shop(&ctx, shop)?;
            let body = read_body(&mut req).await?;
            monitor_call(&ctx, shop, Method::Post, "/test/evaluation", Some(body)).await
        }
        (Method::Get, ["ops", "silences"]) => fleet_call(&ctx, Method::Get, "/silences", None).await,
        (Method::Post, ["ops", "silences"]) => {
            let body = read_body(&mut req).await?;
            let resp = fleet_call(&ctx, Method::Post, "/silences", Some(body)).await?;
            refresh_affected(&ctx, resp).await
        }
        (Method::Delete, ["ops", "silences", id]) => {
            let resp = fleet_call(&ctx, Method::Delete, &format!("/silences/{id}"), None).await?;
            refresh_affected(&ctx, resp).await
        }
        (Method::Get, ["ops", "fleet", "status"]) => fleet_call(&ctx, Method::Get, "/status", None).await,
        _ => Err(AppError::not_found("no such operator route").into()),
    }
}

/// `Err(404 UnknownShop)` unless this Worker serves `shop`.
pub(crate) fn known_shop(ctx: &RequestCtx, shop: &str) -> Result<(), AppError> {
    if ctx.settings.shops.contains(shop) {
        Ok(())
    } else {
        Err(AppError::new(404, "UnknownShop", "this Worker serves no such shop"))
    }
}

async fn read_body(req: &mut Request) -> Result<String, AppError> {
    let bytes = req.bytes().await.map_err(|_| AppError::bad_request("the request body could not be read"))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(AppError::new(413, "BodyTooLarge", "operator request bodies are at most 64 KiB"));
    }
    String::from_utf8(bytes).map_err(|_| AppError::bad_request("the request body is not UTF-8"))
}

/// The classes a monitor's refusal may carry (the line's `error_class` is a fixed label).
const REFUSALS: [&str; 10] = [
    "InvalidConfig",
    "InvalidAck",
    "UnknownRule",
    "NotFiring",
    "NotPaused",
    "InvalidSilence",
    "UnknownSilence",
    "AlreadyExpired",
    "TooManySilences",
    "InvalidReport",
];

/// A Durable Object's refusal, `{"error": class, "message", "field"?}` with its status: the
/// shape [`pass_through`] reads back (adding the request id) when it answers the operator.
pub(crate) fn object_refusal(class: &str, message: &str, status: u16, field: Option<&str>) -> worker::Result<Response> {
    let mut v = serde_json::json!({"error": class, "message": message});
    if let Some(f) = field {
        v["field"] = f.into();
    }
    Ok(Response::from_json(&v)?.with_status(status))
}

/// A 4xx answered with the request id, its class on the request's line.
fn refusal(ctx: &RequestCtx, status: u16, class: &str, message: &str, field: Option<&str>) -> AppResult {
    let class: &'static str = REFUSALS.iter().find(|c| **c == class).copied().unwrap_or("MonitorRefused");
    ctx.note_error(class, message);
    let mut body = serde_json::json!({"error": class, "message": message, "request_id": &*ctx.request_id});
    if let Some(f) = field {
        body["field"] = f.into();
    }
    Ok(json_response(&body, status))
}

/// Pass a monitor's answer through: success as is, a refusal with the request id added.
fn pass_through(ctx: &RequestCtx, status: u16, text: String) -> AppResult {
    if (400..500).contains(&status) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let class = v["error"].as_str().unwrap_or("MonitorRefused");
            let message = v["message"].as_str().unwrap_or("refused");
            return refusal(ctx, status, class, message, v["field"].as_str());
        }
    }
    let headers = worker::Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(text)?.with_status(status).with_headers(headers))
}

/// Call the shop's monitor and pass its answer through.
pub(crate) async fn monitor_call(
    ctx: &RequestCtx,
    shop: &str,
    method: Method,
    path: &str,
    body: Option<String>,
) -> AppResult {
    let (status, text) =
        monitor_request(&ctx.env, ctx.options().monitor_binding, shop, method, path, body.as_deref()).await?;
    if status == 409 && path == "/ai/resume" {
        // Unchanged answer of the AI resume route.
        let headers = worker::Headers::new();
        headers.set("content-type", "application/json")?;
        return Ok(Response::ok(text)?.with_status(status).with_headers(headers));
    }
    pass_through(ctx, status, text)
}

/// Call the fleet object; not bound or unreachable: 503.
pub(crate) async fn fleet_call(ctx: &RequestCtx, method: Method, path: &str, body: Option<String>) -> AppResult {
    match fleet_request(&ctx.env, ctx.options().fleet_binding, method, path, body.as_deref()).await {
        Ok((status, text)) => pass_through(ctx, status, text),
        Err(e) => {
            worker::console_log!(
                "{}",
                serde_json::json!({"kind": "fleet_call_failed", "request_id": &*ctx.request_id, "error": e})
            );
            Err(AppError::new(503, "FleetUnavailable", "the fleet object cannot be reached (is it bound?)").into())
        }
    }
}

/// After a silence changed: each shop with a firing alert it matches refreshes its copy from
/// the fleet object now (the others get it with their next report). Failures are logged;
/// the shop would refresh at its next report anyway.
async fn refresh_affected(ctx: &RequestCtx, resp: Response) -> AppResult {
    let mut resp = resp;
    let status = resp.status_code();
    let text = resp.text().await?;
    if (200..300).contains(&status) {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let shops: Vec<String> = v["affected_shops"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        for shop in shops.iter().filter(|s| ctx.settings.shops.contains(s)) {
            if let Err(e) =
                monitor_request(&ctx.env, ctx.options().monitor_binding, shop, Method::Post, "/fleet/refresh", None)
                    .await
            {
                worker::console_log!(
                    "{}",
                    serde_json::json!({"kind": "silence_refresh_failed", "shop": shop, "error": e.to_string()})
                );
            }
        }
    }
    let headers = worker::Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(text)?.with_status(status).with_headers(headers))
}
