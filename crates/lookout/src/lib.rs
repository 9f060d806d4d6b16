//! lookout: observability and edge alerting for a Cloudflare Worker (workers-rs 0.8).
//!
//! ```text
//!  request ─► lookout::wrap(route) ─► your route (Db, Files, external::send are counted)
//!               │ one JSON line per request (console.log), X-Request-Id
//!               └─ctx.wait_until─► ShopMonitor Durable Object (one per shop)
//!                                    └─ lookout_core: windows, digests, rules, alerts,
//!                                       cron watchdog, outbox ─► webhook / PagerDuty / email
//!                                       │ state changes (never records)
//!                                       └─► FleetMonitor Durable Object (one): fleet incidents,
//!                                           silences, dead-man's switch ─► heartbeat URL
//!  cron ─► lookout::cron::run(Jobs) ─► summary line + check-ins ─► ShopMonitor watchdog
//!  /ops/* ─► lookout::ops::serve ─► the shop's monitor (status, AI resume, config, ack, history),
//!            │                      the fleet object (silences, fleet status)
//!            └─ dashboards (pages.rs): sign-in cookie, fleet and shop pages, assets
//! ```
//!
//! An adopting Worker (see README "Use lookout in your Worker" and `examples/minimal`):
//!
//! * declares one `const` [`Options`] (binding names, its error-context keys);
//! * wraps its route function with [`wrap`] and mounts [`ops::serve`] under `/ops/`;
//! * runs its crons with [`cron::run`] and a [`cron::Jobs`] registry;
//! * re-exports [`ShopMonitor`] and [`FleetMonitor`] (the Durable Object classes) and serves `js/entry.mjs`'s
//!   `withLookout` as its module entry, which answers 500 with the request id when a panic
//!   kills the wasm instance.
//!
//! Decisions live in `lookout_core` (pure, tested natively); this crate only talks to the
//! Workers runtime. It compiles natively too (so adopters can `cargo test` their pure code), but only runs
//! in a Worker.

pub mod ai_guard;
pub mod body;
pub mod clock;
pub mod cron;
pub mod db;
mod deliver;
pub mod external;
mod fleet_board;
mod fleet_monitor;
mod forward;
mod http;
mod inflight;
mod instrument;
mod object_meta;
pub mod ops;
mod options;
pub mod pages;
pub mod r2;
pub mod route;
pub mod settings;
mod shop_monitor;

pub use fleet_monitor::FleetMonitor;
#[cfg(feature = "bench-baseline")]
pub use instrument::bare;
pub use instrument::{wrap, AppResult, Failure, RequestCtx};
pub use options::Options;
pub use route::Route;
pub use shop_monitor::ShopMonitor;

/// External services and what a call cost (for [`external::send`]).
pub use lookout_core::deps::{Cost, Service};
/// The error type a route returns on purpose, and the values its context may hold.
pub use lookout_core::error::AppError;
pub use lookout_core::redact::ContextValue;
