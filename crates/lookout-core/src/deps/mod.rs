//! Dependency instrumentation, pure: SQL signatures and the per-request D1 tally (N+1
//! detection), external-call log lines (endpoint templates, retry policy, idempotency keys),
//! redaction of upstream bodies and headers, and call costs. The edge times calls, performs
//! HTTP and sleeps; nothing here reads a clock, draws randomness or imports `worker`.
//!
//! How the edge uses it, per request:
//!
//! * D1: one [`D1Tally`]; every `run`/`all`/`first` is timed and fed with
//!   [`D1Tally::record_query`], every `batch` with [`D1Tally::record_batch`]. At the end,
//!   [`D1Tally::apply_to`] fills `d1_queries`, `d1_slowest` and `d1_n_plus_one`. The
//!   monitor's D1 digest is fed from the line's `d1_slowest.ms` (one sample per request that
//!   made a query: the slowest round trip), not from every query.
//! * External calls: [`is_idempotent`] and [`RetryPolicy::should_retry`] drive the retry
//!   loop; Stripe calls send `Idempotency-Key: idempotency_key(request_id, label)`. After the
//!   last attempt, [`ExternalCallLine::new`] (+ [`ExternalCallLine::with_error_body`] for a
//!   failure, [`ExternalCallLine::with_cost`]) gives the line to `console.log`, and the
//!   request's `ExternalCounts::add(target.as_str())` counts it.
//! * Costs: [`sms_segments`] + [`twilio_sms_cost`], or [`ai_cost`], become a [`CallCost`] for
//!   the shop's monitor.

mod body;
mod cost;
mod d1;
mod external;
mod sql;

#[cfg(test)]
pub(crate) mod pii_props;

pub use body::{
    is_sensitive_key, redact_body, redact_headers, ALLOWED_HEADERS, ALLOWED_HEADER_PREFIXES, MAX_BODY_INPUT_BYTES,
};
pub use cost::{
    ai_cost, segments_for_units, sms_segments, twilio_sms_cost, AiPrice, CallCost, Cost, CostError, SmsEncoding,
    SmsSegments,
};
pub use d1::{D1Tally, NPlusOne, DEFAULT_N_PLUS_ONE_THRESHOLD};
pub use external::{
    endpoint_template, idempotency_key, is_idempotent, CallFacts, CallOutcome, ExternalCallLine, RetryPolicy, Service,
    ID_PLACEHOLDER, MAX_ENDPOINT_CHARS, MAX_ERROR_BODY_CHARS, MAX_IDEMPOTENCY_KEY_LEN,
};
pub use sql::{sql_signature, MAX_SIGNATURE_CHARS};
