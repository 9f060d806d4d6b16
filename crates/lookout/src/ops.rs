//! The operator API, a route an adopting Worker mounts ([`serve`] for paths under `/ops/`,
//! see [`is_ops_path`]): bearer `OPS_TOKEN` (constant-time compare) or the dashboards'
//! session cookie, then the shop's monitor answers: `GET /ops/shops/{shop}/status`,
//! `POST /ops/shops/{shop}/ai/resume`. The dashboards (sign-in, pages, assets, the routes
//! only they read) are `pages.rs`, routed first. Operator requests are logged like any other
//! but never count as shop traffic in a monitor.

use std::rc::Rc;

use lookout_core::dash::PageRoute;
use lookout_core::error::AppError;
use worker::{Context, Env, Method, Request, Response};

use crate::forward::monitor_request;
use crate::instrument::{self, AppResult, RequestCtx, Scope};
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
            monitor_call(&ctx, shop, Method::Post, "/ai/resume", None).await
        }
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
    let headers = worker::Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(text)?.with_status(status).with_headers(headers))
}
