//! The operator API under `/ops/`: bearer `OPS_TOKEN` (constant-time compare), then the shop's
//! monitor answers: `GET /ops/shops/{shop}/status`, `POST /ops/shops/{shop}/ai/resume`.
//! Operator requests are logged like any other but never count as shop traffic in a monitor.

use std::rc::Rc;

use worker::{Method, Request, Response};

use crate::core::auth::{check_bearer, AuthError};
use crate::core::error::AppError;
use crate::core::shop::is_slug;
use crate::edge::config;
use crate::edge::forward::monitor_request;
use crate::edge::instrument::{AppResult, RequestCtx};

/// Whether `shop` is one this Worker serves.
fn is_known_shop(ctx: &RequestCtx, shop: &str) -> bool {
    if !is_slug(shop) {
        return false;
    }
    let settings = config::settings(&ctx.env);
    match &settings.shop_slug {
        Some(slug) => slug == shop,
        None => settings.shops.as_deref().unwrap_or_default().split(',').any(|s| s.trim() == shop),
    }
}

pub async fn route(req: Request, ctx: Rc<RequestCtx>) -> AppResult {
    let auth = req.headers().get("authorization")?;
    match check_bearer(auth.as_deref(), config::var(&ctx.env, "OPS_TOKEN").as_deref()) {
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
            if !is_known_shop(&ctx, shop) {
                return Err(AppError::new(404, "UnknownShop", "this Worker serves no such shop").into());
            }
            monitor_call(&ctx, shop, Method::Get, "/status", None).await
        }
        (Method::Post, ["ops", "shops", shop, "ai", "resume"]) => {
            if !is_known_shop(&ctx, shop) {
                return Err(AppError::new(404, "UnknownShop", "this Worker serves no such shop").into());
            }
            monitor_call(&ctx, shop, Method::Post, "/ai/resume", None).await
        }
        _ => Err(AppError::not_found("no such operator route").into()),
    }
}

/// Call the shop's monitor and pass its answer through.
pub async fn monitor_call(ctx: &RequestCtx, shop: &str, method: Method, path: &str, body: Option<String>) -> AppResult {
    let (status, text) = monitor_request(&ctx.env, shop, method, path, body.as_deref()).await?;
    let headers = worker::Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(Response::ok(text)?.with_status(status).with_headers(headers))
}
