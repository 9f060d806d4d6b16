//! The Worker's entry points: how the shop app adopts lookout. Operator routes go to
//! lookout's operator API, everything else through lookout's wrapper to the app; crons run
//! the app's registry of jobs.

use std::time::Duration;

use lookout::cron::{JobCtx, JobFailure, JobResult, Jobs};
use lookout::Options;
use worker::{event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

/// The Durable Object classes `wrangler.toml` binds as `SHOP_MONITOR` and `FLEET_MONITOR`.
pub use lookout::{FleetMonitor, ShopMonitor};

use crate::{app, panels, reconcile, DAILY_AI_CHECK, DAILY_RECONCILIATION, WEEKLY_TWILIO_SUMMARY};

/// lookout's settings in code: default binding names (`SHOP_MONITOR`, `DB`, `FILES`), the
/// error-context keys this app uses, and its panels on the shop dashboards.
pub const LOOKOUT: Options =
    Options::new().context_keys(&["ticket_id", "line_id", "customer_id", "blocker"]).panels(panels::shop_panels);

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    if lookout::ops::is_ops_path(&req.path()) {
        return lookout::ops::serve(&LOOKOUT, req, env, &ctx).await;
    }
    if bench_baseline(&env) {
        // Bench baseline only (LOOKOUT_INSTRUMENT=off): the app without any instrumentation.
        return lookout::bare(&LOOKOUT, req, env, app::route).await;
    }
    lookout::wrap(&LOOKOUT, req, env, &ctx, app::route).await
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let test_env = lookout::settings::var(&env, "ENVIRONMENT").as_deref() == Some("test");
    lookout::cron::run(&LOOKOUT, event, env, &jobs(test_env)).await
}

fn jobs(test_env: bool) -> Jobs {
    let jobs = Jobs::new()
        .add(DAILY_RECONCILIATION, reconcile::run)
        .add(WEEKLY_TWILIO_SUMMARY, lookout::cron::twilio_summary)
        .add(DAILY_AI_CHECK, lookout::cron::ai_check);
    if !test_env {
        return jobs;
    }
    jobs.add("test_error", test_error).add("test_panic", test_panic).add("test_slow", test_slow)
}

/// `LOOKOUT_INSTRUMENT=off` (read once per isolate): the bench harness's baseline.
fn bench_baseline(env: &Env) -> bool {
    thread_local! {
        static OFF: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
    }
    OFF.with(|o| *o.get_or_init(|| lookout::settings::var(env, "LOOKOUT_INSTRUMENT").as_deref() == Some("off")))
}

/// A job that fails with a message carrying a customer's data, as real ones do.
async fn test_error(job: JobCtx) -> JobResult {
    job.int("steps_done", 1);
    Err(JobFailure::new("JobError", "export failed for customer 'Alice Smith' <alice@example.com>"))
}

async fn test_panic(_job: JobCtx) -> JobResult {
    let name = "Alice Smith";
    panic!("job state broken for customer {name}");
}

async fn test_slow(job: JobCtx) -> JobResult {
    worker::Delay::from(Duration::from_secs(6)).await;
    job.int("slept_s", 6);
    Ok(())
}
