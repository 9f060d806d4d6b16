//! The dashboards, served under `/ops/` by the operator API's router ([`crate::ops`]): the
//! sign-in form and its session cookie, the two pages (fleet and shop), their static assets,
//! and the JSON routes the pages read (the fleet, a shop's history, the app's panels). The
//! decisions (routes, HTML, CSP, cookie signing) are in `lookout_core::{dash, session}`; this
//! module reads the request, the clock and `OPS_TOKEN`, and answers.
//!
//! Assets: `assets/dash.js` and `assets/dash.css` (uPlot plus the pages' own code, bundled
//! by `scripts/bundle` from `web/`) are embedded in the wasm with `include_bytes!`: they ship
//! with the crate, always match the build that serves them, and need no `[assets]` config in
//! an adopter's `wrangler.toml` nor a second deployment. They are public (no data in them)
//! and cached for a year under a content-hash version.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use lookout_core::board::{DEFAULT_LIMIT, MAX_LIMIT};
use lookout_core::dash::{self, Frame, LoginForm, PageRoute, Panel, CSP, MAX_LOGIN_BODY, PAGE_HEADERS};
use lookout_core::error::AppError;
use lookout_core::history::series::Range;
use lookout_core::session::{self, Refusal};
use worker::{Env, Headers, Method, Request, Response};

use crate::clock::{random_u64, wall_ms};
use crate::db::Db;
use crate::instrument::{AppResult, Failure, RequestCtx};
use crate::ops::{fleet_call, known_shop, monitor_call};
use crate::settings;

const DASH_JS: &[u8] = include_bytes!("../assets/dash.js");
const DASH_CSS: &[u8] = include_bytes!("../assets/dash.css");

/// FNV-1a, at compile time: the assets' cache-busting version.
const fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

const ASSET_HASH: u64 = fnv1a(DASH_CSS, fnv1a(DASH_JS, 0xcbf2_9ce4_8422_2325));

fn asset_version() -> String {
    format!("{ASSET_HASH:016x}")
}

/// What an app's panels hook returns (see [`PanelsHook`]).
pub type PanelsFuture = Pin<Box<dyn Future<Output = Result<Vec<Panel>, Failure>>>>;

/// The app-defined panels of a shop's page (`Options::panels`): figures only the app can
/// compute (today's revenue, open tickets...), shown beside lookout's own. Called by
/// `GET /ops/shops/{shop}/panels` for a signed-in operator.
pub type PanelsHook = fn(PanelCtx) -> PanelsFuture;

/// What a panels hook gets: the shop, the time, and counted access to the app's D1.
pub struct PanelCtx {
    /// The shop whose page asks.
    pub shop: String,
    /// Now, Unix epoch ms (the edge's clock).
    pub now_ms: i64,
    ctx: Rc<RequestCtx>,
}

impl PanelCtx {
    pub fn env(&self) -> &Env {
        &self.ctx.env
    }

    /// The app's D1 (`Options::d1_binding`), counted into the operator request's line.
    pub fn db(&self) -> Result<Db, Failure> {
        Db::new(&self.ctx)
    }
}

fn frame_parts(ctx: &RequestCtx) -> (String, String) {
    (asset_version(), ctx.build_version().to_string())
}

fn html(status: u16, body: String) -> AppResult {
    let headers = Headers::new();
    for (k, v) in PAGE_HEADERS {
        headers.set(k, v)?;
    }
    headers.set("content-security-policy", CSP)?;
    Ok(Response::ok(body)?.with_status(status).with_headers(headers))
}

fn redirect(to: &str, set_cookie: Option<&str>) -> AppResult {
    let headers = Headers::new();
    headers.set("location", to)?;
    headers.set("cache-control", "no-store")?;
    if let Some(c) = set_cookie {
        headers.set("set-cookie", c)?;
    }
    Ok(Response::empty()?.with_status(303).with_headers(headers))
}

/// The sign-in page as a 401, the request's line marked `Unauthorized`.
fn sign_in_401(ctx: &RequestCtx, next: &str, message: Option<&str>, why: &str) -> AppResult {
    ctx.note_error("Unauthorized", why);
    let (v, b) = frame_parts(ctx);
    html(401, dash::login_page(next, message, Frame { asset_version: &v, build_version: &b }))
}

/// The session check of every non-public `/ops/` request. A refusal is the response to
/// send: the sign-in form (401) for a page, the API's JSON 401 otherwise.
pub(crate) fn authorize(req: &Request, ctx: &RequestCtx, page: Option<&PageRoute>) -> Result<(), AppResult> {
    let header = |n: &str| req.headers().get(n).ok().flatten();
    let token = settings::var(&ctx.env, "OPS_TOKEN");
    let refusal = match session::authorize(
        header("authorization").as_deref(),
        header("cookie").as_deref(),
        token.as_deref(),
        wall_ms(),
    ) {
        Ok(_) => return Ok(()),
        Err(r) => r,
    };
    if page.is_some_and(PageRoute::is_page) {
        let (message, why) = match refusal {
            r if r.not_configured() => {
                (Some("Operator sign-in is closed: OPS_TOKEN is not configured."), "operator API closed")
            }
            Refusal::Cookie(session::SessionError::Expired) => {
                (Some("Your session ended. Sign in again."), "session expired")
            }
            _ => (None, "operator session required"),
        };
        return Err(sign_in_401(ctx, &req.path(), message, why));
    }
    let message = if refusal.not_configured() {
        "operator API closed: OPS_TOKEN is not configured"
    } else {
        "operator token required (Authorization: Bearer)"
    };
    Err(Err(AppError::new(401, "Unauthorized", message).into()))
}

/// Serve a public route: the sign-in form, sign-in, sign-out, an asset.
pub(crate) async fn serve_public(page: &PageRoute, req: &mut Request, ctx: &RequestCtx) -> AppResult {
    match page {
        PageRoute::LoginForm => {
            let next = req.url()?.query_pairs().find(|(k, _)| k == "next").map(|(_, v)| v.to_string());
            let (v, b) = frame_parts(ctx);
            html(
                200,
                dash::login_page(
                    &dash::safe_next(next.as_deref()),
                    None,
                    Frame { asset_version: &v, build_version: &b },
                ),
            )
        }
        PageRoute::SignIn => sign_in(req, ctx).await,
        PageRoute::SignOut => redirect("/ops/login", Some(&session::clear_cookie())),
        PageRoute::Asset(name) => asset(req, name),
        PageRoute::Fleet | PageRoute::Shop(_) => Err(AppError::not_found("not a public route").into()),
    }
}

async fn sign_in(req: &mut Request, ctx: &RequestCtx) -> AppResult {
    let declared: Option<usize> = req.headers().get("content-length")?.and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > MAX_LOGIN_BODY) {
        return Err(AppError::new(413, "PayloadTooLarge", "the sign-in form is larger than 4 KiB").into());
    }
    let body = req.bytes().await?;
    if body.len() > MAX_LOGIN_BODY {
        return Err(AppError::new(413, "PayloadTooLarge", "the sign-in form is larger than 4 KiB").into());
    }
    let form = LoginForm::parse(&body);
    let token = settings::var(&ctx.env, "OPS_TOKEN");
    if token.is_none() {
        return sign_in_401(
            ctx,
            &form.next,
            Some("Operator sign-in is closed: OPS_TOKEN is not configured."),
            "operator API closed",
        );
    }
    if !session::token_matches(&form.token, token.as_deref()) {
        return sign_in_401(ctx, &form.next, Some("That token was not accepted."), "sign-in refused");
    }
    let now = wall_ms();
    let s = session::issue(token.as_deref().unwrap_or_default(), now, random_u64());
    redirect(&form.next, Some(&s.set_cookie(now)))
}

fn asset(req: &Request, name: &str) -> AppResult {
    let (bytes, content_type) = match name {
        "dash.js" => (DASH_JS, "text/javascript; charset=utf-8"),
        "dash.css" => (DASH_CSS, "text/css; charset=utf-8"),
        _ => return Err(AppError::not_found("no such asset").into()),
    };
    let version = asset_version();
    let etag = format!("\"{version}\"");
    let headers = Headers::new();
    headers.set("content-type", content_type)?;
    headers.set("x-content-type-options", "nosniff")?;
    headers.set("etag", &etag)?;
    let versioned = req.url()?.query_pairs().any(|(k, v)| k == "v" && v == version.as_str());
    headers.set("cache-control", if versioned { "public, max-age=31536000, immutable" } else { "no-cache" })?;
    if req.headers().get("if-none-match")?.is_some_and(|v| v == etag) {
        return Ok(Response::empty()?.with_status(304).with_headers(headers));
    }
    Ok(Response::from_bytes(bytes.to_vec())?.with_headers(headers))
}

/// A page for a signed-in operator.
pub(crate) fn serve_page(page: &PageRoute, ctx: &RequestCtx) -> AppResult {
    let (v, b) = frame_parts(ctx);
    let frame = Frame { asset_version: &v, build_version: &b };
    match page {
        PageRoute::Fleet => html(200, dash::fleet_page(frame)),
        PageRoute::Shop(shop) => match known_shop(ctx, shop) {
            Ok(()) => html(200, dash::shop_page(shop, frame)),
            Err(_) => {
                ctx.note_error("UnknownShop", "this Worker serves no such shop");
                html(404, dash::not_found_page("This Worker serves no shop of that name.", frame))
            }
        },
        _ => Err(AppError::not_found("not a page").into()),
    }
}

/// The JSON routes the pages read (signed in): `None` when `req` is none of them.
///
/// - `GET /ops/shops/{shop}/history?range=24h|30d`: the shop monitor's rollups.
/// - `GET /ops/shops/{shop}/panels`: the app's panels (`Options::panels`).
/// - `GET /ops/fleet?limit=N`: every shop by trouble and the fleet totals, from the fleet
///   board (one object call, whatever the number of shops).
pub(crate) async fn api(req: &Request, ctx: &Rc<RequestCtx>) -> Option<AppResult> {
    let path = req.path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segs.as_slice()) {
        (Method::Get, ["ops", "fleet"]) => Some(fleet(req, ctx).await),
        (Method::Get, ["ops", "shops", shop, "history"]) => Some(history(req, ctx, shop).await),
        (Method::Get, ["ops", "shops", shop, "panels"]) => Some(panels(ctx, shop).await),
        // Test environment only: fill a shop's history with 30 made-up days (screenshots,
        // the fleet bench). Absent elsewhere.
        (Method::Post, ["ops", "shops", shop, "history", "synthesize"]) if ctx.is_test_env() => {
            Some(synthesize(req, ctx, shop).await)
        }
        _ => None,
    }
}

async fn fleet(req: &Request, ctx: &RequestCtx) -> AppResult {
    let url = req.url()?;
    let limit = match url.query_pairs().find(|(k, _)| k == "limit").map(|(_, v)| v.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return Err(AppError::new(400, "BadLimit", "limit must be 1 to 10000").into()),
    };
    fleet_call(ctx, Method::Get, &format!("/board/view/{limit}"), None).await
}

async fn history(req: &Request, ctx: &RequestCtx, shop: &str) -> AppResult {
    known_shop(ctx, shop)?;
    let url = req.url()?;
    let range = url.query_pairs().find(|(k, _)| k == "range").map(|(_, v)| v.to_string());
    let range =
        Range::parse(range.as_deref()).map_err(|_| AppError::new(400, "BadRange", "range must be 24h or 30d"))?;
    monitor_call(ctx, shop, Method::Get, &format!("/history/{}", range.as_str()), None).await
}

async fn synthesize(req: &Request, ctx: &RequestCtx, shop: &str) -> AppResult {
    known_shop(ctx, shop)?;
    let rps = req.url()?.query_pairs().find(|(k, _)| k == "rps").and_then(|(_, v)| v.parse::<f64>().ok());
    let rps = rps.filter(|r| r.is_finite()).unwrap_or(10.0);
    monitor_call(ctx, shop, Method::Post, &format!("/history/synthesize/{rps}"), None).await
}

async fn panels(ctx: &Rc<RequestCtx>, shop: &str) -> AppResult {
    known_shop(ctx, shop)?;
    let list = match ctx.options().panels {
        Some(hook) => hook(PanelCtx { shop: shop.to_string(), now_ms: wall_ms(), ctx: Rc::clone(ctx) }).await?,
        None => Vec::new(),
    };
    let body = serde_json::json!({"shop": shop, "panels": list});
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "no-store")?;
    Ok(Response::ok(body.to_string())?.with_headers(headers))
}
