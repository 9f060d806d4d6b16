//! Worker entry points: `fetch` goes through the instrumentation wrapper to the app.

use worker::{event, Context, Env, Request, Response, Result};

use crate::edge::{app, instrument};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    instrument::handle(req, env, &ctx, app::route).await
}
