//! What reaches the shop's monitor (Durable Object) from this isolate, and every call to it.
//!
//! Each finished request's record is folded into its shop's partial bucket in this isolate
//! (`lookout_core::partial::PartialAccumulator`: counts, digests, diagnosis, a few request
//! ids, costs; no copy of the line). The first record after a flush schedules one flush after
//! `MONITOR_FLUSH_MS` (default 100, at most 250) through `wait_until`; `MONITOR_BATCH_MAX`
//! records (default 1000) flush at once; `MONITOR_FLUSH_MS=0` sends each record's partial on
//! its own. A flush sends the partials in bodies of at most 256 KiB (`ingest::partials_bodies`:
//! a partial is a few KiB whatever its records carry), so a body is never refused for its size.
//!
//! Every call to the monitor ([`monitor_request`]) gives up after 5 s. An ingest
//! ([`ingest_with_retry`]) is tried again once, 200 ms later, after a network error, a
//! timeout or a 5xx/408/429, never after another 4xx (it would fail again); a partial sent
//! twice is counted once (its id). What cannot be delivered is logged as
//! `monitor_forward_failed` with its number of records, and never touches the shop's
//! response. A panic hands the pending partials to the JavaScript entry
//! ([`hand_over_on_panic`]), which sends them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::wasm_bindgen::prelude::*;
use worker::{console_log, Context, Env, Method, Request, RequestInit};

use lookout_core::ingest::partials_bodies;
use lookout_core::partial::{PartialAccumulator, PartialBucket};
use lookout_core::record::RequestRecord;

use crate::clock::random_u64;
use crate::settings::Settings;

const DEFAULT_FLUSH_MS: u64 = 100;
const MAX_FLUSH_MS: u64 = 250;
const DEFAULT_BATCH_MAX: usize = 1000;
const MAX_BATCH: usize = 100_000;
/// Pending slots (seconds of record time) that flush at once: long requests finishing
/// together can spread records over many seconds.
const MAX_SLOTS: usize = 16;
/// Longest wait for any answer of the monitor.
pub(crate) const MONITOR_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_DELAY: Duration = Duration::from_millis(200);

#[wasm_bindgen]
extern "C" {
    /// Defined by `js/entry.mjs`: keep a body to send to `shop`'s monitor after a panic.
    #[wasm_bindgen(js_namespace = globalThis, js_name = __lookout_on_panic_partials, catch)]
    fn on_panic_partials(binding: &str, shop: &str, body: &str, records: f64) -> Result<(), JsValue>;
}

/// One shop's records not yet sent.
struct Pending {
    acc: PartialAccumulator,
    binding: &'static str,
    flush_scheduled: bool,
}

thread_local! {
    static PENDING: RefCell<HashMap<String, Pending>> = RefCell::new(HashMap::new());
    /// Records folded and not yet taken, all shops (what a panic would lose if the buffers
    /// could not be read).
    static PENDING_RECORDS: Cell<u64> = const { Cell::new(0) };
    /// This instance's id (partial ids are `<isolate>-<sequence>`).
    static ISOLATE: std::cell::OnceCell<String> = const { std::cell::OnceCell::new() };
    static SEQ: Cell<u64> = const { Cell::new(0) };
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
            batch_max: batch_max.clamp(1, MAX_BATCH),
            binding: s.options.monitor_binding,
        }
    }
}

/// The next partial id of this instance.
fn next_id() -> String {
    let isolate = ISOLATE.with(|i| {
        i.get_or_init(|| {
            let mut n = random_u64();
            let mut s = String::with_capacity(13);
            for _ in 0..13 {
                s.push(char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]));
                n /= 36;
            }
            s
        })
        .clone()
    });
    let seq = SEQ.with(|s| {
        let n = s.get() + 1;
        s.set(n);
        n
    });
    format!("{isolate}-{seq}")
}

/// Everything pending for `shop`, as partials (the accumulator is left empty).
fn take(shop: &str, acc: &mut PartialAccumulator) -> Vec<PartialBucket> {
    let records = acc.records();
    PENDING_RECORDS.with(|n| n.set(n.get().saturating_sub(records)));
    acc.take(shop, next_id)
}

/// Fold one finished request's record into `shop`'s partial bucket.
pub(crate) fn enqueue(ctx: &Context, env: &Env, settings: &Settings, shop: &str, record: &RequestRecord) {
    let cfg = ForwardConfig::from_settings(settings);
    enum Next {
        Send(Vec<PartialBucket>),
        Schedule,
        Nothing,
    }
    let next = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let pending = match p.get_mut(shop) {
            Some(pending) => pending,
            None => p.entry(shop.to_string()).or_insert(Pending {
                acc: PartialAccumulator::default(),
                binding: cfg.binding,
                flush_scheduled: false,
            }),
        };
        pending.acc.fold(record);
        PENDING_RECORDS.with(|n| n.set(n.get() + 1));
        if cfg.flush_ms == 0 || pending.acc.records() >= cfg.batch_max as u64 || pending.acc.slots() >= MAX_SLOTS {
            Next::Send(take(shop, &mut pending.acc))
        } else if !pending.flush_scheduled {
            pending.flush_scheduled = true;
            Next::Schedule
        } else {
            Next::Nothing
        }
    });
    match next {
        Next::Send(partials) => {
            let (env, shop) = (env.clone(), shop.to_string());
            ctx.wait_until(async move { send(&env, cfg.binding, &shop, partials).await });
        }
        Next::Schedule => {
            let (env, shop) = (env.clone(), shop.to_string());
            ctx.wait_until(async move {
                worker::Delay::from(Duration::from_millis(cfg.flush_ms)).await;
                let partials = PENDING.with(|p| {
                    let mut p = p.borrow_mut();
                    let Some(pending) = p.get_mut(&shop) else { return Vec::new() };
                    pending.flush_scheduled = false;
                    take(&shop, &mut pending.acc)
                });
                if !partials.is_empty() {
                    send(&env, cfg.binding, &shop, partials).await;
                }
            });
        }
        Next::Nothing => {}
    }
}

/// Send partials (in bodies under the byte bound); what fails is logged with its count.
async fn send(env: &Env, binding: &str, shop: &str, partials: Vec<PartialBucket>) {
    for (body, records) in partials_bodies(&partials) {
        if let Err(f) = ingest_with_retry(env, binding, shop, &body).await {
            forward_failed(shop, records, &f);
        }
    }
}

fn forward_failed(shop: &str, records: u64, f: &IngestFailure) {
    console_log!(
        "{}",
        serde_json::json!({
            "kind": "monitor_forward_failed", "shop": shop, "records": records, "status": f.status,
            "attempts": f.attempts, "error": lookout_core::redact::scrub_text(&f.error),
        })
    );
}

/// The pending partials of every shop, handed to the JavaScript entry when a panic is about
/// to reset the wasm instance (it sends them after answering). Buffers that cannot be read
/// (the panic hit while they were being changed) are logged as lost, with their count.
pub(crate) fn hand_over_on_panic() {
    let taken = PENDING.with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else { return None };
        let shops: Vec<(String, &'static str, Vec<PartialBucket>)> = p
            .iter_mut()
            .filter(|(_, pending)| !pending.acc.is_empty())
            .map(|(shop, pending)| (shop.clone(), pending.binding, take(shop, &mut pending.acc)))
            .collect();
        Some(shops)
    });
    let Some(shops) = taken else {
        let records = PENDING_RECORDS.with(Cell::get);
        let f = IngestFailure { status: None, attempts: 0, error: "panic while the buffers were in use".into() };
        forward_failed("*", records, &f);
        return;
    };
    for (shop, binding, partials) in shops {
        for (body, records) in partials_bodies(&partials) {
            if on_panic_partials(binding, &shop, &body, records as f64).is_err() {
                let f =
                    IngestFailure { status: None, attempts: 0, error: "no JavaScript entry to hand over to".into() };
                forward_failed(&shop, records, &f);
            }
        }
    }
}

/// Why an ingest did not go through.
#[derive(Debug, Clone)]
pub(crate) struct IngestFailure {
    /// The monitor's last answer, when it answered.
    pub status: Option<u16>,
    pub attempts: u32,
    pub error: String,
}

impl std::fmt::Display for IngestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

/// Whether an ingest answered `status` may succeed when sent again: a server error, a
/// timeout or "too many requests" may; any other 4xx (a malformed or oversize batch) will not.
pub(crate) fn worth_retrying(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// POST an ingest batch to `shop`'s monitor; tried again once, 200 ms later, when that may
/// help ([`worth_retrying`], network errors, timeouts).
pub(crate) async fn ingest_with_retry(env: &Env, binding: &str, shop: &str, body: &str) -> Result<(), IngestFailure> {
    let mut failure = IngestFailure { status: None, attempts: 0, error: String::new() };
    for attempt in 0..2 {
        if attempt > 0 {
            worker::Delay::from(RETRY_DELAY).await;
        }
        failure.attempts += 1;
        match monitor_request(env, binding, shop, Method::Post, "/ingest", Some(body)).await {
            Ok((200, _)) => return Ok(()),
            Ok((status, _)) => {
                failure.status = Some(status);
                failure.error = format!("monitor answered {status}");
                if !worth_retrying(status) {
                    break;
                }
            }
            Err(e) => failure.error = e.to_string(),
        }
    }
    Err(failure)
}

/// `fut`, or `Err` once `limit` has passed.
pub(crate) async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Result<T, String> {
    let fut = Box::pin(fut);
    let timeout = Box::pin(worker::Delay::from(limit));
    match select(fut, timeout).await {
        Either::Left((v, _)) => Ok(v),
        Either::Right(_) => Err(format!("monitor did not answer within {} s", limit.as_secs_f64())),
    }
}

/// Call `path` on `shop`'s monitor through the binding (its only way in): status and body,
/// or an error after [`MONITOR_TIMEOUT`].
pub(crate) async fn monitor_request(
    env: &Env,
    binding: &str,
    shop: &str,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> worker::Result<(u16, String)> {
    let call = async {
        let stub = env.durable_object(binding)?.get_by_name(shop)?;
        let mut init = RequestInit::new();
        init.with_method(method);
        if let Some(b) = body {
            init.with_body(Some(b.into()));
        }
        let req = Request::new_with_init(&format!("https://monitor{path}?shop={shop}"), &init)?;
        let mut resp = stub.fetch_with_request(req).await?;
        Ok((resp.status_code(), resp.text().await?))
    };
    within(MONITOR_TIMEOUT, call).await.map_err(worker::Error::RustError)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_that_may_change_are_retried() {
        for s in [500, 502, 503, 408, 429] {
            assert!(worth_retrying(s), "{s}");
        }
        for s in [400, 401, 404, 413, 422] {
            assert!(!worth_retrying(s), "{s}");
        }
    }
}
