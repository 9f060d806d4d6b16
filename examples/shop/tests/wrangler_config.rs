//! wrangler.toml (the file that serves this app): in every environment the watch list
//! (`CRON_WATCH`) and `[triggers] crons` agree both ways, and every watched cron names a job
//! the app registers.

use lookout_core::cron::watch_list_from_var;

const WRANGLER_TOML: &str = include_str!("../../../wrangler.toml");

/// `(environment, [triggers] crons, CRON_WATCH)` for the top level and every `[env.*]`.
/// `triggers` is inherited by environments unless overridden; `vars` are not inherited.
fn wrangler_environments() -> Vec<(String, Vec<String>, Option<String>)> {
    let doc: toml::Table = WRANGLER_TOML.parse().expect("wrangler.toml parses");
    let crons = |t: &toml::Table| -> Option<Vec<String>> {
        let list = t.get("triggers")?.get("crons")?.as_array()?;
        Some(list.iter().map(|v| v.as_str().expect("a cron is a string").to_string()).collect())
    };
    let watch_var =
        |t: &toml::Table| -> Option<String> { t.get("vars")?.get("CRON_WATCH")?.as_str().map(str::to_string) };
    let top = crons(&doc).expect("wrangler.toml has [triggers] crons");
    let mut out = vec![("(top level)".to_string(), top.clone(), watch_var(&doc))];
    if let Some(envs) = doc.get("env").and_then(|e| e.as_table()) {
        for (name, env) in envs {
            let env = env.as_table().expect("[env.*] is a table");
            out.push((name.clone(), crons(env).unwrap_or_else(|| top.clone()), watch_var(env)));
        }
    }
    out
}

#[test]
fn wrangler_triggers_and_the_watch_list_agree_in_every_environment() {
    let envs = wrangler_environments();
    assert!(envs.len() >= 2, "top level and env.test: {envs:?}");
    for (env, crons, watch_var) in envs {
        let (watch, err) = watch_list_from_var(watch_var.as_deref());
        assert!(err.is_none(), "{env}: CRON_WATCH invalid: {err:?}");
        assert!(!watch.is_empty(), "{env}: nothing watched");
        let check = watch.check_triggers(&crons);
        assert!(check.agrees(), "{env}: {check:?}");
        for e in watch.entries() {
            assert!(shop_app::JOBS.contains(&e.cron.as_str()), "{env}: watched cron {} has no job", e.cron);
        }
    }
    // The check is not vacuous: one trigger more or less is caught.
    let (watch, _) = watch_list_from_var(wrangler_environments()[0].2.as_deref());
    let mut crons = wrangler_environments()[0].1.clone();
    crons.push("15 3 * * *".into());
    assert_eq!(watch.check_triggers(&crons).unwatched_triggers, vec!["15 3 * * *".to_string()]);
    crons.retain(|c| c != "0 7 * * *" && c != "15 3 * * *");
    let missing = watch.check_triggers(&crons).missing_triggers;
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].cron, "daily_reconciliation");
}
