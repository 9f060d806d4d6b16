//! The per-shop monitor, pure: windows of buckets, latency digests, the rule table, the alert
//! state machine and notification decisions. Driven by `ingest(records, now)` and
//! `evaluate(now)`; the Durable Object in `edge` only stores and forwards.
