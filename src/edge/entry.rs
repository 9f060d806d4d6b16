//! Worker entry points: `fetch` goes through the instrumentation wrapper to the app (shop
//! scope) or the operator API (`/ops/`).

pub use crate::edge::shop_monitor::ShopMonitor;

use worker::{event, Context, Env, Request, Response, Result};

use crate::edge::instrument::{self, Scope};
use crate::edge::{app, ops};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    if req.path().starts_with("/ops/") {
        instrument::handle(req, env, &ctx, Scope::Operator, ops::route).await
    } else if instrument::bypassed(&env) {
        // Bench baseline only (LOOKOUT_INSTRUMENT=off): the app without any instrumentation.
        instrument::bare(req, env, app::route).await
    } else {
        instrument::handle(req, env, &ctx, Scope::Shop, app::route).await
    }
}
