//! The watch list (`CRON_WATCH`): which crons the monitor expects, on what schedule, with
//! what grace and maximum runtime; its validation; and its agreement with `wrangler.toml`'s
//! `[triggers] crons`. No watch state here.
//!
//! ```json
//! [{"cron": "daily_reconciliation", "schedule": "0 7 * * *", "grace_s": 1800,
//!   "max_runtime_s": 3600, "code": "d"}]
//! ```
//! `cron` and `schedule` are required. `grace_s` defaults to 1800, `max_runtime_s` to 3600,
//! `code` (the run id's short code) to the first letter of `cron`. Unknown fields are errors.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::schedule::{normalize_expression, Schedule, ScheduleError};
use super::{DEFAULT_GRACE_S, DEFAULT_MAX_RUNTIME_S, MAX_GRACE_S, MAX_RUNTIME_S, MIN_GRACE_S, MIN_RUNTIME_S};

/// One watched cron.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEntry {
    /// Job name: 1-64 of `a-z0-9_`, starting with a letter.
    pub cron: String,
    /// Short code in run ids (`cron_{code}_...`): 1-8 of `a-z0-9`, unique in the list.
    pub code: String,
    pub schedule: Schedule,
    pub grace_s: u32,
    pub max_runtime_s: u32,
}

impl WatchEntry {
    /// An entry with the default grace, maximum runtime and code.
    pub fn new(cron: &str, schedule: &str) -> Result<WatchEntry, WatchError> {
        WatchList::parse(&serde_json::json!([{ "cron": cron, "schedule": schedule }]).to_string())
            .map(|mut l| l.entries.remove(0))
    }

    pub fn grace_ms(&self) -> i64 {
        i64::from(self.grace_s) * 1000
    }

    pub fn max_runtime_ms(&self) -> i64 {
        i64::from(self.max_runtime_s) * 1000
    }
}

/// Why `CRON_WATCH` was rejected. `index` is the entry's position (0-based).
#[derive(Debug, Clone, PartialEq)]
pub enum WatchError {
    /// Not valid JSON.
    NotJson { detail: String },
    /// The top level is not a JSON array.
    NotAList,
    /// An entry is not a JSON object.
    EntryNotObject { index: usize },
    /// A required field (`cron`, `schedule`) is absent.
    MissingField { index: usize, field: &'static str },
    /// A field has the wrong JSON type (e.g. `"grace_s": "30m"`).
    WrongType { index: usize, field: &'static str, expected: &'static str },
    /// A field this list does not know (a typo such as `grace`).
    UnknownField { index: usize, field: String },
    /// `cron` is not 1-64 of `a-z0-9_` starting with a letter.
    BadName { index: usize, value: String },
    /// `code` is not 1-8 of `a-z0-9`.
    BadCode { index: usize, cron: String, value: String },
    /// `schedule` is not a valid Workers cron expression.
    BadSchedule { index: usize, cron: String, error: ScheduleError },
    /// A number field is outside its bounds.
    OutOfRange { index: usize, cron: String, field: &'static str, value: String, min: u32, max: u32 },
    /// Two entries share a job name.
    DuplicateCron { cron: String, first_index: usize, index: usize },
    /// Two entries share a run-id code (set `code` on one of them).
    DuplicateCode { code: String, first_cron: String, cron: String },
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WatchError::*;
        match self {
            NotJson { detail } => write!(f, "CRON_WATCH is not valid JSON: {detail}"),
            NotAList => write!(f, "CRON_WATCH must be a JSON array of entries"),
            EntryNotObject { index } => write!(f, "CRON_WATCH entry {index} is not an object"),
            MissingField { index, field } => write!(f, "CRON_WATCH entry {index}: field `{field}` is required"),
            WrongType { index, field, expected } => {
                write!(f, "CRON_WATCH entry {index}: field `{field}` must be {expected}")
            }
            UnknownField { index, field } => write!(
                f,
                "CRON_WATCH entry {index}: unknown field `{field}` (known: cron, schedule, grace_s, max_runtime_s, code)"
            ),
            BadName { index, value } => write!(
                f,
                "CRON_WATCH entry {index}: field `cron` = {value:?} must be 1-64 of a-z, 0-9, _ starting with a letter"
            ),
            BadCode { index, cron, value } => {
                write!(f, "CRON_WATCH entry {index} ({cron}): field `code` = {value:?} must be 1-8 of a-z, 0-9")
            }
            BadSchedule { index, cron, error } => {
                write!(f, "CRON_WATCH entry {index} ({cron}): field `schedule`: {error}")
            }
            OutOfRange { index, cron, field, value, min, max } => write!(
                f,
                "CRON_WATCH entry {index} ({cron}): field `{field}` = {value} is outside {min}..={max}"
            ),
            DuplicateCron { cron, first_index, index } => {
                write!(f, "CRON_WATCH entries {first_index} and {index} both watch `{cron}`")
            }
            DuplicateCode { code, first_cron, cron } => write!(
                f,
                "CRON_WATCH: `{first_cron}` and `{cron}` both use run-id code `{code}`; set `code` on one of them"
            ),
        }
    }
}

impl std::error::Error for WatchError {}

/// The validated watch list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchList {
    entries: Vec<WatchEntry>,
}

/// A `wrangler.toml` trigger that no watch entry uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvalidTrigger {
    pub expr: String,
    pub error: String,
}

/// A watched cron whose schedule is not among `wrangler.toml`'s triggers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingTrigger {
    pub cron: String,
    pub schedule: String,
}

/// How the watch list and `[triggers] crons` disagree (both ways).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TriggerCheck {
    /// Triggers in `wrangler.toml` that no watched cron runs on (nobody notices if they stop).
    pub unwatched_triggers: Vec<String>,
    /// Watched crons whose schedule has no trigger (they will be reported missed forever).
    pub missing_triggers: Vec<MissingTrigger>,
    /// Triggers that are not valid Workers cron expressions.
    pub invalid_triggers: Vec<InvalidTrigger>,
}

impl TriggerCheck {
    pub fn agrees(&self) -> bool {
        self.unwatched_triggers.is_empty() && self.missing_triggers.is_empty() && self.invalid_triggers.is_empty()
    }
}

const KNOWN_FIELDS: [&str; 5] = ["cron", "schedule", "grace_s", "max_runtime_s", "code"];

/// A job name as the watch list accepts it: 1-64 of `a-z0-9_`, starting with a letter.
pub fn is_cron_name(s: &str) -> bool {
    valid_name(s)
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn valid_code(s: &str) -> bool {
    (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn seconds_field(
    obj: &serde_json::Map<String, Value>,
    index: usize,
    cron: &str,
    field: &'static str,
    default: u32,
    (min, max): (u32, u32),
) -> Result<u32, WatchError> {
    let Some(v) = obj.get(field) else {
        return Ok(default);
    };
    let Some(n) = v.as_number() else {
        return Err(WatchError::WrongType { index, field, expected: "a whole number of seconds" });
    };
    let out_of_range =
        || WatchError::OutOfRange { index, cron: cron.to_string(), field, value: n.to_string(), min, max };
    if let Some(i) = n.as_i64() {
        return u32::try_from(i).ok().filter(|s| (min..=max).contains(s)).ok_or_else(out_of_range);
    }
    if n.as_u64().is_some() {
        return Err(out_of_range());
    }
    Err(WatchError::WrongType { index, field, expected: "a whole number of seconds" })
}

impl WatchList {
    /// Parse and validate `CRON_WATCH`. An empty or blank string is an empty list.
    pub fn parse(json: &str) -> Result<WatchList, WatchError> {
        if json.trim().is_empty() {
            return Ok(WatchList::default());
        }
        let v: Value = serde_json::from_str(json).map_err(|e| WatchError::NotJson { detail: e.to_string() })?;
        let items = v.as_array().ok_or(WatchError::NotAList)?;
        let mut entries: Vec<WatchEntry> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let obj = item.as_object().ok_or(WatchError::EntryNotObject { index })?;
            if let Some(k) = obj.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
                return Err(WatchError::UnknownField { index, field: k.clone() });
            }
            let cron = match obj.get("cron") {
                None => return Err(WatchError::MissingField { index, field: "cron" }),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(WatchError::WrongType { index, field: "cron", expected: "a string" }),
            };
            if !valid_name(&cron) {
                return Err(WatchError::BadName { index, value: cron });
            }
            let expr = match obj.get("schedule") {
                None => return Err(WatchError::MissingField { index, field: "schedule" }),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(WatchError::WrongType { index, field: "schedule", expected: "a string" }),
            };
            let schedule =
                Schedule::parse(&expr).map_err(|error| WatchError::BadSchedule { index, cron: cron.clone(), error })?;
            let grace_s = seconds_field(obj, index, &cron, "grace_s", DEFAULT_GRACE_S, (MIN_GRACE_S, MAX_GRACE_S))?;
            let max_runtime_s = seconds_field(
                obj,
                index,
                &cron,
                "max_runtime_s",
                DEFAULT_MAX_RUNTIME_S,
                (MIN_RUNTIME_S, MAX_RUNTIME_S),
            )?;
            let code = match obj.get("code") {
                None => cron[..1].to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(WatchError::WrongType { index, field: "code", expected: "a string" }),
            };
            if !valid_code(&code) {
                return Err(WatchError::BadCode { index, cron, value: code });
            }
            if let Some(first_index) = entries.iter().position(|e| e.cron == cron) {
                return Err(WatchError::DuplicateCron { cron, first_index, index });
            }
            if let Some(first) = entries.iter().find(|e| e.code == code) {
                return Err(WatchError::DuplicateCode { code, first_cron: first.cron.clone(), cron });
            }
            entries.push(WatchEntry { cron, code, schedule, grace_s, max_runtime_s });
        }
        Ok(WatchList { entries })
    }

    pub fn from_entries(entries: Vec<WatchEntry>) -> WatchList {
        WatchList { entries }
    }

    pub fn entries(&self) -> &[WatchEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, cron: &str) -> Option<&WatchEntry> {
        self.entries.iter().find(|e| e.cron == cron)
    }

    /// The watched jobs a trigger runs (`controller.cron` from the scheduled handler),
    /// compared after [`normalize_expression`].
    pub fn for_trigger(&self, expr: &str) -> Vec<&WatchEntry> {
        let n = normalize_expression(expr);
        self.entries.iter().filter(|e| e.schedule.normalized() == n).collect()
    }

    /// Compare with `wrangler.toml`'s `[triggers] crons` (for one environment), both ways,
    /// on normalized expressions (`0 7 * * mon` equals `0  7 * * MON`, not `0 7 * * 2`:
    /// the scheduled handler dispatches on the trigger's text).
    pub fn check_triggers(&self, wrangler_crons: &[String]) -> TriggerCheck {
        let mut out = TriggerCheck::default();
        // (as written, normalized) for every valid trigger.
        let mut valid: Vec<(&String, String)> = Vec::new();
        for t in wrangler_crons {
            match Schedule::parse(t) {
                Ok(s) => valid.push((t, s.normalized().to_string())),
                Err(e) => out.invalid_triggers.push(InvalidTrigger { expr: t.clone(), error: e.to_string() }),
            }
        }
        for (t, n) in &valid {
            if !self.entries.iter().any(|e| e.schedule.normalized() == n) && !out.unwatched_triggers.contains(t) {
                out.unwatched_triggers.push((*t).clone());
            }
        }
        for e in &self.entries {
            if !valid.iter().any(|(_, n)| n == e.schedule.normalized()) {
                out.missing_triggers
                    .push(MissingTrigger { cron: e.cron.clone(), schedule: e.schedule.expression().to_string() });
            }
        }
        out
    }
}

/// The watch list for a `CRON_WATCH` value: blank watches nothing; an invalid value also
/// watches nothing, with the error to report (logged and shown in the monitor's status).
pub fn watch_list_from_var(cron_watch: Option<&str>) -> (WatchList, Option<WatchError>) {
    match cron_watch.map(str::trim).filter(|v| !v.is_empty()) {
        None => (WatchList::default(), None),
        Some(json) => match WatchList::parse(json) {
            Ok(l) => (l, None),
            Err(e) => (WatchList::default(), Some(e)),
        },
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn cron_watch_var_blank_or_invalid_watches_nothing_and_says_why() {
        assert!(watch_list_from_var(None).0.is_empty());
        assert!(watch_list_from_var(Some("  ")).0.is_empty());
        assert!(watch_list_from_var(Some("[]")).0.is_empty());
        let (l, e) = watch_list_from_var(Some(r#"[{"cron":"x","schedule":"0 25 * * *"}]"#));
        assert!(l.is_empty());
        assert!(e.unwrap().to_string().contains("hour field"));
        let (l, e) = watch_list_from_var(Some(r#"[{"cron":"x","schedule":"0 5 * * *"}]"#));
        assert_eq!((l.entries().len(), e), (1, None));
    }

    use super::*;

    const SAMPLE: &str = r#"[
        {"cron":"daily_reconciliation","schedule":"0 7 * * *","grace_s":1800,"max_runtime_s":3600},
        {"cron":"weekly_summary","schedule":"0 8 * * 2","grace_s":3600},
        {"cron":"ai_cost_check","schedule":"30 6 * * *","code":"ai"},
        {"cron":"queue_sweep","schedule":"*/5 * * * *","grace_s":240,"max_runtime_s":600}
    ]"#;

    #[test]
    fn parses_with_defaults() {
        let l = WatchList::parse(SAMPLE).unwrap();
        assert_eq!(l.entries().len(), 4);
        let w = l.get("weekly_summary").unwrap();
        assert_eq!((w.grace_s, w.max_runtime_s, w.code.as_str()), (3600, DEFAULT_MAX_RUNTIME_S, "w"));
        let a = l.get("ai_cost_check").unwrap();
        assert_eq!((a.grace_s, a.code.as_str()), (DEFAULT_GRACE_S, "ai"));
        assert_eq!(l.for_trigger("*/5  * * * *").len(), 1);
        assert!(WatchList::parse("").unwrap().is_empty());
        assert!(WatchList::parse("[]").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_entry_and_field() {
        use WatchError::*;
        let e = |s: &str| WatchList::parse(s).unwrap_err();
        assert!(matches!(e("{"), NotJson { .. }));
        assert_eq!(e("{}"), NotAList);
        assert_eq!(e("[1]"), EntryNotObject { index: 0 });
        assert_eq!(e(r#"[{"schedule":"0 7 * * *"}]"#), MissingField { index: 0, field: "cron" });
        assert_eq!(e(r#"[{"cron":"a"}]"#), MissingField { index: 0, field: "schedule" });
        assert_eq!(
            e(r#"[{"cron":"a","schedule":"0 7 * * *","grace":60}]"#),
            UnknownField { index: 0, field: "grace".into() }
        );
        assert_eq!(e(r#"[{"cron":"Daily","schedule":"0 7 * * *"}]"#), BadName { index: 0, value: "Daily".into() });
        assert!(matches!(
            e(r#"[{"cron":"a","schedule":"0 7 * * *"},{"cron":"b","schedule":"0 25 * * *"}]"#),
            BadSchedule { index: 1, .. }
        ));
        assert_eq!(
            e(r#"[{"cron":"a","schedule":"0 7 * * *","grace_s":"30m"}]"#),
            WrongType { index: 0, field: "grace_s", expected: "a whole number of seconds" }
        );
        assert_eq!(
            e(r#"[{"cron":"a","schedule":"0 7 * * *","grace_s":1.5}]"#),
            WrongType { index: 0, field: "grace_s", expected: "a whole number of seconds" }
        );
        assert!(matches!(
            e(r#"[{"cron":"a","schedule":"0 7 * * *","grace_s":0}]"#),
            OutOfRange { index: 0, field: "grace_s", min: 1, .. }
        ));
        assert!(matches!(
            e(r#"[{"cron":"a","schedule":"0 7 * * *","max_runtime_s":-5}]"#),
            OutOfRange { field: "max_runtime_s", .. }
        ));
        assert!(matches!(
            e(r#"[{"cron":"a","schedule":"0 7 * * *","max_runtime_s":18446744073709551615}]"#),
            OutOfRange { field: "max_runtime_s", .. }
        ));
        assert!(matches!(e(r#"[{"cron":"a","schedule":"0 7 * * *","code":"A-1"}]"#), BadCode { .. }));
        assert!(matches!(
            e(r#"[{"cron":"a","schedule":"0 7 * * *"},{"cron":"a","schedule":"0 8 * * *"}]"#),
            DuplicateCron { first_index: 0, index: 1, .. }
        ));
        let dup = e(
            r#"[{"cron":"daily_reconciliation","schedule":"0 7 * * *"},{"cron":"daily_digest","schedule":"0 8 * * *"}]"#,
        );
        assert!(matches!(dup, DuplicateCode { ref code, .. } if code == "d"));
        let msg = e(r#"[{"cron":"x","schedule":"0 7 * * *"},{"cron":"b","schedule":"0 25 * * *"}]"#).to_string();
        assert!(msg.contains("entry 1 (b): field `schedule`") && msg.contains("hour field `25`"), "{msg}");
    }

    #[test]
    fn watch_list_and_wrangler_triggers_agree() {
        let l = WatchList::parse(SAMPLE).unwrap();
        let crons: Vec<String> =
            ["0 7 * * *", "0 8 * * 2", "30 6 * * *", "*/5  * * * *"].iter().map(|s| s.to_string()).collect();
        let c = l.check_triggers(&crons);
        assert!(c.agrees(), "{c:?}");
    }

    #[test]
    fn trigger_mismatches_are_reported_both_ways() {
        let l = WatchList::parse(SAMPLE).unwrap();
        let crons: Vec<String> = ["0 7 * * *", "0 8 * * MON", "30 6 * * *", "0 3 * * *", "0 0 * * * *"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let c = l.check_triggers(&crons);
        assert!(!c.agrees());
        // `0 8 * * MON` is the same day as `0 8 * * 2` but not the same trigger text.
        assert_eq!(c.unwatched_triggers, vec!["0 8 * * MON".to_string(), "0 3 * * *".to_string()]);
        assert_eq!(
            c.missing_triggers.iter().map(|m| m.cron.as_str()).collect::<Vec<_>>(),
            vec!["weekly_summary", "queue_sweep"]
        );
        assert_eq!(c.invalid_triggers.len(), 1);
        assert_eq!(c.invalid_triggers[0].expr, "0 0 * * * *");
    }
}
