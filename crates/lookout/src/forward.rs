//! Sending request records to the shop's monitor (Durable Object) through `wait_until`,
//! coalesced per isolate and shop: the first record of a batch schedules one flush after
//! `MONITOR_FLUSH_MS` (default 100, at most 250); a full batch (`MONITOR_BATCH_MAX`, default
//! 64) flushes at once. `MONITOR_FLUSH_MS=0` sends each record on its own. A failure here is
//! logged with the number of records it concerns and never touches the shop's response.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use worker::{console_log, Context, Env, Method, Request, RequestInit};

use lookout_core::ingest::batch_body;

use crate::settings::Settings;
const DEFAULT_FLUSH_MS: u64 = 100;
const MAX_FLUSH_MS: u64 = 250;
const DEFAULT_BATCH_MAX: usize = 64;

#[derive(Default)]
struct Buffer {
    lines: Vec<String>,
    flush_scheduled: bool,
}

thread_local! {
    static BUFFERS: RefCell<HashMap<String, Buffer>> = RefCell::new(HashMap::new());
}

/// Forwarding settings read from vars.
#[derive(Clone, Copy)]
struct ForwardConfig {
    flush_ms: u64,
    batch_max: usize,
    binding: &'static str,
}

impl ForwardConfig {
    fn from_settings(s: &Settings) -> ForwardConfig {
        let flush_ms = s.monitor_flush_ms.unwrap_or(DEFAULT_FLUSH_MS);
        let batch_max = s.monitor_batch_max.unwrap_or(DEFAULT_BATCH_MAX);
        ForwardConfig {
            flush_ms: flush_ms.min(MAX_FLUSH_MS),
            batch_max: batch_max.clamp(1, 1000),
            binding: s.options.monitor_binding,
        }
    }
}

/// Queue one serialized record for `shop`'s monitor.
pub(crate) fn enqueue(ctx: &Context, env: &Env, settings: &Settings, shop: &str, line: String) {
    let cfg = ForwardConfig::from_settings(settings);
    if cfg.flush_ms == 0 {
        let (env, shop) = (env.clone(), shop.to_string());
        ctx.wait_until(async move { send(&env, cfg.binding, &shop, vec![line]).await });
        return;
    }
    let (full, schedule) = BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        let buf = b.entry(shop.to_string()).or_default();
        buf.lines.push(line);
        if buf.lines.len() >= cfg.batch_max {
            (Some(std::mem::take(&mut buf.lines)), false)
        } else if !buf.flush_scheduled {
            buf.flush_scheduled = true;
            (None, true)
        } else {
            (None, false)
        }
    });
    if let Some(lines) = full {
        let (env, shop) = (env.clone(), shop.to_string());
        ctx.wait_until(async move { send(&env, cfg.binding, &shop, lines).await });
    }
    if schedule {
        let (env, shop) = (env.clone(), shop.to_string());
        ctx.wait_until(async move {
            worker::Delay::from(Duration::from_millis(cfg.flush_ms)).await;
            let lines = BUFFERS.with(|b| {
                let mut b = b.borrow_mut();
                let buf = b.entry(shop.clone()).or_default();
                buf.flush_scheduled = false;
                std::mem::take(&mut buf.lines)
            });
            if !lines.is_empty() {
                send(&env, cfg.binding, &shop, lines).await;
            }
        });
    }
}

/// One call to the monitor with a batch; on failure one retry, then a logged loss.
async fn send(env: &Env, binding: &str, shop: &str, lines: Vec<String>) {
    let body = batch_body(lines.iter().map(String::as_str));
    if let Err(e) = ingest_with_retry(env, binding, shop, &body).await {
        console_log!(
            "{}",
            serde_json::json!({
                "kind": "monitor_forward_failed", "shop": shop, "records": lines.len(),
                "error": lookout_core::redact::scrub_text(&e),
            })
        );
    }
}

/// POST an ingest batch to `shop`'s monitor, with one retry after 200 ms; the last error.
pub(crate) async fn ingest_with_retry(env: &Env, binding: &str, shop: &str, body: &str) -> Result<(), String> {
    let mut last_error = String::new();
    for attempt in 0..2 {
        if attempt > 0 {
            worker::Delay::from(Duration::from_millis(200)).await;
        }
        match monitor_request(env, binding, shop, Method::Post, "/ingest", Some(body)).await {
            Ok((200, _)) => return Ok(()),
            Ok((status, _)) => last_error = format!("monitor answered {status}"),
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(last_error)
}

/// Call `path` on `shop`'s monitor through the binding (its only way in): status and body.
pub(crate) async fn monitor_request(
    env: &Env,
    binding: &str,
    shop: &str,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> worker::Result<(u16, String)> {
    let stub = env.durable_object(binding)?.get_by_name(shop)?;
    let mut init = RequestInit::new();
    init.with_method(method);
    if let Some(b) = body {
        init.with_body(Some(b.into()));
    }
    let req = Request::new_with_init(&format!("https://monitor{path}?shop={shop}"), &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    Ok((resp.status_code(), resp.text().await?))
}
