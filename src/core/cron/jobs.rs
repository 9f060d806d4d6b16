//! The crons this Worker runs: the job names the scheduled handler dispatches on, and the
//! default watch list, which mirrors `wrangler.toml`'s `[triggers] crons` (a test below reads
//! wrangler.toml and proves they agree). The jobs themselves run at the edge.

use super::watch::{WatchError, WatchList};

/// Reconcile the day's sales, count low-stock items, verify the audit chain.
pub const DAILY_RECONCILIATION: &str = "daily_reconciliation";
/// Project the week's Twilio spend against the weekly budget.
pub const WEEKLY_TWILIO_SUMMARY: &str = "weekly_twilio_summary";
/// Project the month's AI spend against the monthly cap; pause AI above it.
pub const DAILY_AI_CHECK: &str = "daily_ai_check";
/// Test environment only: a job that returns an error.
pub const TEST_ERROR: &str = "test_error";
/// Test environment only: a job that panics.
pub const TEST_PANIC: &str = "test_panic";
/// Test environment only: a job that takes 6 seconds (for `cron_stuck` with a short runtime).
pub const TEST_SLOW: &str = "test_slow";

/// The watch list used when `CRON_WATCH` is empty: one entry per `[triggers] crons` entry of
/// wrangler.toml (UTC; weekday names avoid Cloudflare's 1 = Sunday numbering).
pub const DEFAULT_CRON_WATCH: &str = r#"[
  {"cron": "daily_reconciliation", "schedule": "0 7 * * *", "grace_s": 1800, "max_runtime_s": 3600},
  {"cron": "weekly_twilio_summary", "schedule": "0 9 * * THU", "grace_s": 1800, "max_runtime_s": 900},
  {"cron": "daily_ai_check", "schedule": "30 6 * * *", "grace_s": 1800, "max_runtime_s": 900, "code": "ai"}
]"#;

/// A job the scheduled handler knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    DailyReconciliation,
    WeeklyTwilioSummary,
    DailyAiCheck,
    TestError,
    TestPanic,
    TestSlow,
}

impl Job {
    /// The job for a watched cron's name; the test jobs only when `test_env`.
    pub fn from_name(name: &str, test_env: bool) -> Option<Job> {
        match name {
            DAILY_RECONCILIATION => Some(Job::DailyReconciliation),
            WEEKLY_TWILIO_SUMMARY => Some(Job::WeeklyTwilioSummary),
            DAILY_AI_CHECK => Some(Job::DailyAiCheck),
            TEST_ERROR if test_env => Some(Job::TestError),
            TEST_PANIC if test_env => Some(Job::TestPanic),
            TEST_SLOW if test_env => Some(Job::TestSlow),
            _ => None,
        }
    }
}

/// The default watch list, parsed.
pub fn default_watch_list() -> WatchList {
    WatchList::parse(DEFAULT_CRON_WATCH).unwrap_or_default()
}

/// The effective watch list for a `CRON_WATCH` value: blank means the default; an invalid
/// value also falls back to the default, with the error to report.
pub fn watch_list_from_var(cron_watch: Option<&str>) -> (WatchList, Option<WatchError>) {
    match cron_watch.map(str::trim).filter(|v| !v.is_empty()) {
        None => (default_watch_list(), None),
        Some(json) => match WatchList::parse(json) {
            Ok(l) => (l, None),
            Err(e) => (default_watch_list(), Some(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_parses_and_every_entry_has_a_job() {
        let l = WatchList::parse(DEFAULT_CRON_WATCH).expect("default CRON_WATCH parses");
        assert_eq!(l.entries().len(), 3);
        for e in l.entries() {
            assert!(Job::from_name(&e.cron, false).is_some(), "{} has no job", e.cron);
        }
        assert_eq!(l.get(DAILY_AI_CHECK).map(|e| e.code.as_str()), Some("ai"));
        assert_eq!(Job::from_name(TEST_PANIC, false), None);
        assert_eq!(Job::from_name(TEST_PANIC, true), Some(Job::TestPanic));
    }

    #[test]
    fn cron_watch_var_falls_back_to_the_default_with_the_error() {
        assert_eq!(watch_list_from_var(None).0, default_watch_list());
        assert_eq!(watch_list_from_var(Some("  ")).0, default_watch_list());
        assert!(watch_list_from_var(Some("[]")).0.is_empty());
        let (l, e) = watch_list_from_var(Some(r#"[{"cron":"x","schedule":"0 25 * * *"}]"#));
        assert_eq!(l, default_watch_list());
        assert!(e.unwrap().to_string().contains("hour field"));
    }
}
