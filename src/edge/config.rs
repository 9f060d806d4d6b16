//! Reading vars and secrets from the Worker's `Env`: shop identity, build version, the test
//! switch. The settings every request needs are read once per isolate (vars are fixed for a
//! deployment) instead of crossing into JavaScript several times per request. Parsing rules
//! that need no runtime live in `crate::core`.

use std::rc::Rc;

use worker::Env;

/// Vars the request path reads, read once per isolate (and again after a wasm reset).
#[derive(Debug)]
pub struct Settings {
    pub shop_slug: Option<String>,
    pub shops: Option<String>,
    pub build_version: String,
    pub test_env: bool,
    /// `LOOKOUT_INSTRUMENT=off`: the bench baseline without any instrumentation.
    pub instrument_off: bool,
    pub monitor_flush_ms: Option<u64>,
    pub monitor_batch_max: Option<usize>,
}

thread_local! {
    static SETTINGS: std::cell::OnceCell<Rc<Settings>> = const { std::cell::OnceCell::new() };
}

/// The isolate's settings.
pub fn settings(env: &Env) -> Rc<Settings> {
    SETTINGS.with(|s| {
        Rc::clone(s.get_or_init(|| {
            Rc::new(Settings {
                shop_slug: var(env, "SHOP_SLUG"),
                shops: var(env, "SHOPS"),
                build_version: build_version(env),
                test_env: is_test_env(env),
                instrument_off: var(env, "LOOKOUT_INSTRUMENT").as_deref() == Some("off"),
                monitor_flush_ms: var(env, "MONITOR_FLUSH_MS").and_then(|v| v.parse().ok()),
                monitor_batch_max: var(env, "MONITOR_BATCH_MAX").and_then(|v| v.parse().ok()),
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

/// The test environment (`wrangler dev --env test`) enables the fault routes.
pub fn is_test_env(env: &Env) -> bool {
    var(env, "ENVIRONMENT").as_deref() == Some("test")
}
