//! The pure core: records, ids, redaction, errors (and later windows, digests, rules and the
//! alert state machine). Nothing here imports `worker` or reads a clock: callers pass `now`.

pub mod error;
pub mod record;
pub mod redact;
pub mod request_id;
pub mod shop;
pub mod cron;
pub mod deps;
pub mod monitor;
