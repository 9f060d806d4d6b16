//! The sample shop app, lookout's example adopter: tickets with lines on D1, payments
//! (Stripe), SMS (Twilio), AI summaries (Claude), ticket photos (R2), a hash-chained audit log
//! and its daily reconciliation. It is a stand-in for the real app, not part of lookout: it
//! shows how a Worker adopts the `lookout` library (this file) and how app code reaches D1,
//! R2 and external APIs through lookout's counted handles (`app.rs`, `services.rs`).
//!
//! With `ENVIRONMENT=test` it also serves fault routes and test cron jobs for the
//! end-to-end tests.

/// The cron jobs this Worker registers (the `cron` names of its `CRON_WATCH` entries; a
/// native test checks wrangler.toml against them).
pub const JOBS: [&str; 3] = [DAILY_RECONCILIATION, WEEKLY_TWILIO_SUMMARY, DAILY_AI_CHECK];
/// Reconcile the day's sales, count low-stock items, verify the audit chain.
pub const DAILY_RECONCILIATION: &str = "daily_reconciliation";
/// Project the week's Twilio spend against the weekly budget (lookout's built-in job).
pub const WEEKLY_TWILIO_SUMMARY: &str = "weekly_twilio_summary";
/// Project the month's AI spend against the monthly cap; pause AI above it (built-in).
pub const DAILY_AI_CHECK: &str = "daily_ai_check";
/// Test environment only: jobs that return an error, panic, or take 6 seconds.
pub const TEST_JOBS: [&str; 3] = ["test_error", "test_panic", "test_slow"];

mod app;
mod audit;
mod panels;
mod reconcile;
mod services;
mod worker_entry;

pub use worker_entry::{FleetMonitor, ShopMonitor};
