//! The smallest Worker that adopts lookout: one line per request, alerts from its shop's
//! monitor, the operator API, and one watched cron job. Its own code, nothing from the shop app.
use std::rc::Rc;

use lookout::cron::{JobCtx, JobResult, Jobs};
use lookout::{AppError, AppResult, ContextValue, Options, RequestCtx};
use worker::{event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

/// The Durable Object classes wrangler.toml binds (here as `MONITOR` and `FLEET_MONITOR`).
pub use lookout::{FleetMonitor, ShopMonitor};

const LOOKOUT: Options = Options::new().monitor_binding("MONITOR").context_keys(&["order_id"]);
/// The line's `path` is the template a request matched (`/orders/{id}`), never the raw path.
const ROUTES: &[&str] = &["GET /", "GET /orders/{id}", "GET /pay"];

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    if lookout::ops::is_ops_path(&req.path()) {
        return lookout::ops::serve(&LOOKOUT, req, env, &ctx).await;
    }
    lookout::wrap(&LOOKOUT, req, env, &ctx, route).await
}

async fn route(req: Request, ctx: Rc<RequestCtx>) -> AppResult {
    let r = ctx.route(&req, ROUTES)?;
    match r.entry {
        "GET /" => Ok(Response::ok("hello from the corner cafe")?),
        "GET /orders/{id}" => Err(AppError::new(409, "OrderLocked", "the order is being paid")
            .with("order_id", ContextValue::Int(r.id("id")?))
            .into()),
        "GET /pay" => Ok(Response::error("the payment provider is down", 503)?),
        _ => Err(AppError::not_found("no such page").into()),
    }
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let jobs = Jobs::new().add("expire_carts", expire_carts);
    lookout::cron::run(&LOOKOUT, event, env, &jobs).await;
}

async fn expire_carts(job: JobCtx) -> JobResult {
    job.int("carts_expired", 3);
    Ok(())
}
