//! Reading vars and secrets from the Worker's `Env`. The settings every request needs are
//! read once per isolate (vars are fixed for a deployment) instead of crossing into
//! JavaScript several times per request. Parsing rules live in `lookout_core`.

use std::rc::Rc;

use lookout_core::monitor::RuleSet;
use lookout_core::partial::SampleThresholds;
use lookout_core::shop::{ShopConfigError, ShopSet};
use worker::Env;

use crate::options::Options;

/// Vars the request path reads, read once per isolate (and again after a wasm reset), with
/// the Worker's [`Options`].
#[derive(Debug)]
pub struct Settings {
    pub options: Options,
    /// The shops this Worker serves (`SHOP_SLUG` / `SHOPS`).
    pub shops: ShopSet,
    /// What was wrong with `SHOP_SLUG` / `SHOPS` (logged once per isolate as `config_error`).
    pub shops_error: Option<ShopConfigError>,
    pub build_version: String,
    /// `ENVIRONMENT=test`: the app's test-only routes and jobs.
    pub test_env: bool,
    pub monitor_flush_ms: Option<u64>,
    pub monitor_batch_max: Option<usize>,
    /// Which request ids travel in partial buckets as slow (the thresholds of the p95 rules of
    /// `ALERT_RULES`, which the monitor reads too; the monitor logs a bad value).
    pub sample_thresholds: SampleThresholds,
    /// Bench only (`bench-baseline` feature, `LOOKOUT_INSTRUMENT=log`): the wrapper and its
    /// log line, no record to the monitor (the bench's log-line-only arm). Never deploy it.
    pub log_only: bool,
}

thread_local! {
    static SETTINGS: std::cell::OnceCell<Rc<Settings>> = const { std::cell::OnceCell::new() };
}

/// The isolate's settings (read on first use).
pub fn settings(env: &Env, options: &Options) -> Rc<Settings> {
    SETTINGS.with(|s| {
        Rc::clone(s.get_or_init(|| {
            let (shops, shops_error) =
                ShopSet::from_vars(var(env, "SHOP_SLUG").as_deref(), var(env, "SHOPS").as_deref());
            if let Some(e) = &shops_error {
                worker::console_log!(
                    "{}",
                    serde_json::json!({"kind": "config_error", "var": "SHOP_SLUG/SHOPS", "error": e.to_string()})
                );
            }
            Rc::new(Settings {
                options: *options,
                shops,
                shops_error,
                build_version: build_version(env),
                test_env: var(env, "ENVIRONMENT").as_deref() == Some("test"),
                monitor_flush_ms: var(env, "MONITOR_FLUSH_MS").and_then(|v| v.parse().ok()),
                monitor_batch_max: var(env, "MONITOR_BATCH_MAX").and_then(|v| v.parse().ok()),
                sample_thresholds: SampleThresholds::from_rules(
                    &RuleSet::from_alert_rules_json(var(env, "ALERT_RULES").as_deref().unwrap_or(""))
                        .unwrap_or_default(),
                ),
                log_only: cfg!(feature = "bench-baseline") && var(env, "LOOKOUT_INSTRUMENT").as_deref() == Some("log"),
            })
        }))
    })
}

/// A var or secret as a string, `None` when unset or empty.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// `BUILD_VERSION` var when set, else the crate version plus the git commit baked in at build.
pub fn build_version(env: &Env) -> String {
    var(env, "BUILD_VERSION").unwrap_or_else(|| {
        let commit = option_env!("LOOKOUT_GIT_COMMIT").unwrap_or("unknown");
        format!("{}+{}", env!("CARGO_PKG_VERSION"), commit)
    })
}
