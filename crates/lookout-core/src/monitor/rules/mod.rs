//! The monitor's rules: the rule table and its types (table.rs), the `ALERT_RULES` JSON
//! override and its validation (config.rs), and what each rule measures over a window and how
//! that compares with its thresholds (eval.rs). Alert states live in `alert.rs`.

mod config;
mod eval;
mod table;

pub use config::RulesConfigError;
pub use eval::{Observation, Verdict};
pub use table::{
    default_rule, Rule, RuleId, RuleSet, DEFAULT_BUCKET_S, DEFAULT_EVAL_INTERVAL_S, DEFAULT_REPEAT_INTERVAL_S,
    DEFAULT_RULES, MAX_BUCKET_S, MAX_THRESHOLD_MS, MAX_WINDOW_BUCKETS, STRIPE_SIGNATURE_ERROR_CLASS,
};
