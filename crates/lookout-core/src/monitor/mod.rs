//! The per-shop monitor, pure: windows of buckets, latency digests, the rule table, the alert
//! state machine and notification decisions. Driven by `ingest(records, now)` and
//! `evaluate(now)`. `core::shop_monitor::ShopMonitorCore` drives it (with the cron watchdog)
//! for the Durable Object, which only stores and forwards.
//!
//! ```text
//!  records ─► Monitor::ingest ─► window (buckets: counts + t-digests) ─┐
//!  alarm ───► Monitor::evaluate ─► rules::observe ─► alert::step ─► notify::needs_update
//!                                                                      └─► outbox (per channel)
//!  edge: dirty_closed_buckets / snapshot ─► storage;  claim_due_deliveries ─► HTTP / email
//! ```
//!
//! Call sequence (`ShopMonitorCore` makes the calls, the Durable Object does the storage and
//! HTTP; every `now_ms` is read once, at the edge):
//!
//! 1. `MonitorConfig::from_alert_rules_json(env ALERT_RULES, channels)`, then
//!    `Monitor::restore(config, shop, stored_snapshot, &stored_buckets, now_ms)` (or
//!    `Monitor::new` when nothing is stored).
//! 2. Ingest route: `monitor.ingest(&records, now_ms)`.
//! 3. Alarm: `monitor.evaluate(now_ms)`; then `claim_due_deliveries(now_ms)`, send each
//!    entry with `webhook_payload` / `pagerduty_payload` / `email_message`, and report back
//!    with `mark_delivery_sent(id)` or `mark_delivery_failed(id, now_ms, error)`.
//! 4. After either: write `dirty_closed_buckets(now_ms)` (upsert by `start_ms`), call
//!    `mark_buckets_persisted`, delete rows older than `bucket_retention_start_ms(now_ms)`,
//!    write `snapshot()` (every call above changes it), and arm the alarm at
//!    `next_due_ms(now_ms)` (none: idle).
//! 5. Status route: `serde_json::to_value(monitor.status(now_ms))`.
//! 6. Cron and business alerts (decided by `core::cron`): `monitor.notify_event(&event,
//!    now_ms)` queues each event for every channel like a rule's notification (external.rs).

pub mod alert;
pub mod diagnosis;
pub mod digest;
pub mod external;
#[allow(clippy::module_inception)]
pub mod monitor;
pub mod notify;
pub mod outbox;
pub mod recent;
pub mod rules;
pub mod status;
pub mod time;
pub mod window;

#[cfg(test)]
mod tests;

pub use alert::{Alert, StateChange};
pub use digest::{DigestSnapshot, DigestSnapshotError};
pub use external::cron_dedup_key;
pub use monitor::{
    Counters, Evaluation, IngestReport, Monitor, MonitorConfig, MonitorSnapshot, RestoreError, RestoreReport,
};
pub use notify::{
    email_message, pagerduty_payload, webhook_payload, EmailMessage, EventKind, Notification, NotifyReason,
};
pub use outbox::{Channel, DeliveryKey, EnqueueError, FailOutcome, MarkError, OutboxEntry, RetryPolicy};
pub use recent::RecentIds;
pub use rules::{Rule, RuleId, RuleSet, RulesConfigError, DEFAULT_RULES};
pub use status::Status;
pub use window::{BucketKey, BucketRestoreError, BucketSnapshot, RejectReason};
