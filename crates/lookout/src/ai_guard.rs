//! The AI pause, as the app sees it: before any AI call, ask the shop's monitor whether AI is
//! paused (the daily AI check pauses it when the month's spend projects over
//! `AI_MONTHLY_CAP_MICROS`; an operator resumes it). Paused: the call is refused with 503
//! `AiPaused`. The monitor unreachable or slow: the call goes ahead and the failure is
//! logged, because a monitoring failure never fails a shop request.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{console_log, Method};

use crate::forward::monitor_request;
use crate::instrument::{Failure, RequestCtx};
use lookout_core::error::AppError;

/// Longest wait for the monitor's answer.
const PAUSE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `Err(503 AiPaused)` when AI is paused for the request's shop.
pub async fn ensure_ai_allowed(ctx: &RequestCtx) -> Result<(), Failure> {
    let check = Box::pin(paused(ctx));
    let timeout = Box::pin(worker::Delay::from(PAUSE_CHECK_TIMEOUT));
    let outcome = match select(check, timeout).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(format!("no answer within {} s", PAUSE_CHECK_TIMEOUT.as_secs())),
    };
    match outcome {
        Ok(false) => Ok(()),
        Ok(true) => Err(AppError::new(
            503,
            "AiPaused",
            "AI is paused for this shop: this month's AI spend is over its cap; an operator can resume it",
        )
        .into()),
        Err(e) => {
            console_log!(
                "{}",
                serde_json::json!({"kind": "ai_pause_check_failed", "shop": ctx.shop, "request_id": &*ctx.request_id,
                    "error": lookout_core::redact::scrub_text(&e), "outcome": "allowed"})
            );
            Ok(())
        }
    }
}

async fn paused(ctx: &RequestCtx) -> Result<bool, String> {
    let (status, body) =
        monitor_request(&ctx.env, ctx.options().monitor_binding, &ctx.shop, Method::Get, "/ai/pause", None)
            .await
            .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("monitor answered {status}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    v["paused"].as_bool().ok_or_else(|| "monitor answer has no `paused`".to_string())
}
