//! The edge's clocks, named for what they are. The core never reads a clock: these values are
//! passed in as `now_ms`.

use chrono::{DateTime, Utc};
use worker::wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Monotonic milliseconds since the isolate started (`performance.now()`), for durations.
/// Deployed Workers advance it only on I/O.
pub fn mono_ms() -> f64 {
    performance_now()
}

/// Wall-clock milliseconds since the Unix epoch (`Date.now()`), for timestamps and every
/// `now_ms` the core takes.
pub fn wall_ms() -> i64 {
    worker::js_sys::Date::now() as i64
}

/// Wall-clock time as a chrono value.
pub fn wall_now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(wall_ms()).unwrap_or_default()
}

/// 64 random bits from the runtime (request id suffixes).
pub fn random_u64() -> u64 {
    let hi = (worker::js_sys::Math::random() * (1u64 << 32) as f64) as u64;
    let lo = (worker::js_sys::Math::random() * (1u64 << 32) as f64) as u64;
    (hi << 32) | lo
}
