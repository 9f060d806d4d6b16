//! The operator API, a route an adopting Worker mounts ([`serve`] for paths under `/ops/`,
//! see [`is_ops_path`]): bearer `OPS_TOKEN` (constant-time compare), then the shop's monitor
//! answers: `GET /ops/shops/{shop}/status`, `POST /ops/shops/{shop}/ai/resume`. Operator
//! requests are logged like any other but never count as shop traffic in a monitor.

use std::rc::Rc;

use lookout_core::auth::{check_bearer, AuthError};
use lookout_core::cron::ResumeError;
use lookout_core::error::AppError;
use worker::{Context, Env, Method, Request, Response};

use crate::forward::monitor_request;
use crate::instrument::{self, AppResult, RequestCtx, Scope};
use crate::options::Options;
use crate::settings;

/// Whether `path` belongs to the operator API.
pub fn is_ops_path(path: &str) -> bool {
    path == "/ops" || path.starts_with("/ops/")
}

/// Serve an operator request, instrumented like any other (one line, `X-Request-Id`).
pub async fn serve(options: &Options, req: Request, env: Env, ctx: &Context) -> worker::Result<Response> {
    instrument::handle(options, req, env, ctx, Scope::Operator, route).await
}

async fn route(req: Request, ctx: Rc<RequestCtx>) -> AppResult {
    let auth = req.headers().get("authorization")?;
    match check_bearer(auth.as_deref(), settings::var(&ctx.env, "OPS_TOKEN").as_deref()) {
        Ok(()) => {}
        Err(AuthError::NotConfigured) => {
            return Err(AppError::new(401, "Unauthorized", "operator API closed: OPS_TOKEN is not configured").into())
        }
        Err(_) => {
            return Err(AppError::new(401, "Unauthorized", "operator token required (Authorization: Bearer)").into())
        }
    }
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
        _ => Err(AppError::not_found("no such operator route").into()),
    }
}

/// `Err(404 UnknownShop)` unless this Worker serves `shop`.
fn known_shop(ctx: &RequestCtx, shop: &str) -> Result<(), AppError> {
    if ctx.settings.shops.contains(shop) {
        Ok(())
    } else {
        Err(AppError::new(404, "UnknownShop", "this Worker serves no such shop"))
    }
}

/// Call the shop's monitor and pass its answer through.
async fn monitor_call(ctx: &RequestCtx, shop: &str, method: Method, path: &str, body: Option<String>) -> AppResult {
    let (status, text) =
        monitor_request(&ctx.env, ctx.options().monitor_binding, shop, method, path, body.as_deref()).await?;
    let headers = worker::Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(text)?.with_status(status).with_headers(headers))
}
