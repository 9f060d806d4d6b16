//! Reading vars and secrets from the Worker's `Env`: shop identity, build version, the test
//! switch. Parsing rules that need no runtime live in `crate::core`.

use worker::Env;

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
