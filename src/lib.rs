//! lookout: observability and edge alerting for a shop-management app on Cloudflare Workers.
//!
//! ```text
//!  request ──► edge::instrument (wrapper) ──► edge::app (sample shop app, D1)
//!                 │  one JSON line per request (console.log)
//!                 └─ctx.wait_until──► ShopMonitor Durable Object (per shop)
//!                                       └─ core::* (windows, digests, rules, alerts)
//! ```
//!
//! * [`core`]: pure logic, no `worker` import, `now` passed in, tested natively.
//! * `edge`: the thin layer that talks to the Workers runtime (wasm only).

pub mod core;

#[cfg(target_arch = "wasm32")]
pub mod edge;
