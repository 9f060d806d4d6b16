//! lookout's pure core: records, ids, redaction, route templates and path shapes, HTTP body
//! rules, errors, shop resolution, operator auth (the bearer token and the browser session
//! cookie), Stripe signatures, the monitor's ingest protocol, the alerting vocabulary
//! (severity, alert state, unit), the monitor itself (windows, digests, rules, alerts,
//! outbox), history rollups and the dashboards' pages, fleet alerting, dependency
//! instrumentation maths, cron watch maths, the hash-chained audit log, and the shop monitor
//! that composes the monitor with the cron watchdog for the Durable Object. Nothing here
//! imports `worker` or reads a clock: callers pass `now`.

pub mod alerting;
pub mod audit;
pub mod auth;
pub mod board;
pub mod codec;
pub mod cron;
pub mod dash;
pub mod deps;
pub mod error;
pub mod fleet;
pub mod history;
pub mod http;
pub mod ingest;
pub mod monitor;
pub mod mute;
pub mod owner;
pub mod partial;
pub mod record;
pub mod redact;
pub mod request_id;
pub mod route;
pub mod routing;
pub mod session;
pub mod shop;
pub mod shop_config;
pub mod shop_monitor;
pub mod silence;
pub mod stripe;
#[cfg(any(test, feature = "testdata"))]
pub mod testdata;
pub mod validate;
