//! The cron summary line (`CronRecord`, one JSON object per run), run ids, the job's
//! `results` figures, and the start/end check-ins the scheduled handler sends to the monitor.
//! No clock: callers pass `at_ms`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::{ts_rfc3339, SlowQuery};
use crate::redact::scrub_text;

use super::schedule::Schedule;
use super::watch::WatchEntry;

/// One figure of a job's `results`: numbers and flags only, so no customer text can travel
/// in a summary line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Figure {
    Bool(bool),
    Int(i64),
    Float(f64),
}

/// The job's own figures (`sales_reconciled`, `audit_chain_verified`, ...), keys sorted.
/// Reading one back drops anything that is not a figure under a plain `snake_case` key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Results(BTreeMap<String, Figure>);

fn is_plain_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 64 && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl<'de> Deserialize<'de> for Results {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let map = raw
            .into_iter()
            .filter(|(k, _)| is_plain_key(k))
            .filter_map(|(k, v)| {
                let f = match v {
                    serde_json::Value::Bool(b) => Figure::Bool(b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => Figure::Int(i),
                        None => Figure::Float(n.as_f64()?),
                    },
                    _ => return None,
                };
                Some((k, f))
            })
            .collect();
        Ok(Results(map))
    }
}

impl Results {
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a figure; keys that are not plain `snake_case` (1-64 of `a-z0-9_`) are ignored,
    /// as are non-finite floats.
    pub fn set(&mut self, key: &str, value: Figure) -> &mut Self {
        let finite = !matches!(value, Figure::Float(f) if !f.is_finite());
        if is_plain_key(key) && finite {
            self.0.insert(key.to_string(), value);
        }
        self
    }

    pub fn int(&mut self, key: &str, v: i64) -> &mut Self {
        self.set(key, Figure::Int(v))
    }

    pub fn flag(&mut self, key: &str, v: bool) -> &mut Self {
        self.set(key, Figure::Bool(v))
    }

    pub fn get(&self, key: &str) -> Option<Figure> {
        self.0.get(key).copied()
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Figure::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn get_i64(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Figure::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One error of a run: the runtime's class and its message, scrubbed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronErrorEntry {
    pub class: String,
    pub message: String,
}

impl CronErrorEntry {
    /// `class` keeps only `[A-Za-z0-9_.:]` (64 chars, `"Error"` if nothing is left);
    /// `raw_message` goes through [`scrub_text`].
    pub fn new(class: &str, raw_message: &str) -> Self {
        let class: String =
            class.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':')).take(64).collect();
        CronErrorEntry {
            class: if class.is_empty() { "Error".to_string() } else { class },
            message: scrub_text(raw_message),
        }
    }
}

/// The summary line every cron run emits once, at its end. Field order is the line's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronRecord {
    /// When the run started (RFC 3339 UTC).
    #[serde(serialize_with = "ts_rfc3339")]
    pub ts: DateTime<Utc>,
    pub cron: String,
    pub run_id: String,
    pub shop: String,
    /// Wall time of the run in whole milliseconds.
    pub ms: u64,
    pub results: Results,
    pub errors: Vec<CronErrorEntry>,
    /// D1 statements the job made through the counted `Db`, and the slowest one's signature.
    #[serde(default)]
    pub d1_queries: u32,
    #[serde(default)]
    pub d1_slowest: Option<SlowQuery>,
    pub build_version: String,
}

impl CronRecord {
    /// The single JSON line for this record.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"run_id\":{:?},\"log_error\":{:?}}}", self.run_id, e.to_string()))
    }
}

/// What a check-in reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CheckInKind {
    Start,
    End { ok: bool, ms: u64, results: Results, errors_count: u32 },
}

/// A run's start or end, as sent to the shop's monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronCheckIn {
    pub cron: String,
    pub run_id: String,
    /// The platform's `controller.scheduledTime` (ms).
    pub scheduled_ms: i64,
    pub kind: CheckInKind,
    /// When the run started (Start) or ended (End).
    pub at_ms: i64,
}

/// Run id of a scheduled slot: `cron_{code}_{YYYY_MM_DD}`, plus `_{HHMM}` when the schedule
/// fires more than once a day. Always from the slot time, never from the start time.
pub fn run_id_for_slot(code: &str, slot_ms: i64, sub_daily: bool) -> String {
    let t = DateTime::from_timestamp_millis(slot_ms).unwrap_or_default();
    if sub_daily {
        format!("cron_{code}_{}", t.format("%Y_%m_%d_%H%M"))
    } else {
        format!("cron_{code}_{}", t.format("%Y_%m_%d"))
    }
}

/// Run id of a run that belongs to no slot (started by hand, `/__scheduled`, far off
/// schedule): `cron_{code}_{YYYY_MM_DD}_m{HHMMSS}` from its start time.
pub fn run_id_unscheduled(code: &str, at_ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    format!("cron_{code}_{}", t.format("%Y_%m_%d_m%H%M%S"))
}

/// A run in progress in the scheduled handler: `start` gives the Start check-in, `finish`
/// the summary line and the End check-in.
#[derive(Debug, Clone, PartialEq)]
pub struct CronRun {
    pub cron: String,
    pub run_id: String,
    pub shop: String,
    pub build_version: String,
    pub scheduled_ms: i64,
    pub started_at_ms: i64,
}

impl CronRun {
    /// Start a watched job. The run id comes from [`Schedule::attribute`] with no knowledge
    /// of earlier runs: the platform's slot when `scheduled_ms` is one, else the nearest
    /// plausible slot of `at_ms`, else an unscheduled id.
    pub fn start(
        entry: &WatchEntry,
        shop: &str,
        build_version: &str,
        scheduled_ms: i64,
        at_ms: i64,
    ) -> (CronRun, CronCheckIn) {
        let run_id = Self::run_id(&entry.code, &entry.schedule, entry.grace_ms(), scheduled_ms, at_ms);
        Self::start_with_run_id(&entry.cron, run_id, shop, build_version, scheduled_ms, at_ms)
    }

    /// The run id [`CronRun::start`] would use.
    pub fn run_id(code: &str, schedule: &Schedule, grace_ms: i64, scheduled_ms: i64, at_ms: i64) -> String {
        match schedule.attribute(Some(scheduled_ms), at_ms, grace_ms, |_| false) {
            Some(m) => run_id_for_slot(code, m.slot_ms, schedule.is_sub_daily()),
            None => run_id_unscheduled(code, at_ms),
        }
    }

    /// Start a job with a run id of the caller's choosing (e.g. a job not on the watch list).
    pub fn start_with_run_id(
        cron: &str,
        run_id: String,
        shop: &str,
        build_version: &str,
        scheduled_ms: i64,
        at_ms: i64,
    ) -> (CronRun, CronCheckIn) {
        let run = CronRun {
            cron: cron.to_string(),
            run_id,
            shop: shop.to_string(),
            build_version: build_version.to_string(),
            scheduled_ms,
            started_at_ms: at_ms,
        };
        let check_in = CronCheckIn {
            cron: run.cron.clone(),
            run_id: run.run_id.clone(),
            scheduled_ms,
            kind: CheckInKind::Start,
            at_ms,
        };
        (run, check_in)
    }

    /// End the run: its one summary line and the End check-in. `ok` is "no errors".
    pub fn finish(self, at_ms: i64, results: Results, errors: Vec<CronErrorEntry>) -> (CronRecord, CronCheckIn) {
        let ms = u64::try_from(at_ms.saturating_sub(self.started_at_ms)).unwrap_or(0);
        let check_in = CronCheckIn {
            cron: self.cron.clone(),
            run_id: self.run_id.clone(),
            scheduled_ms: self.scheduled_ms,
            kind: CheckInKind::End {
                ok: errors.is_empty(),
                ms,
                results: results.clone(),
                errors_count: u32::try_from(errors.len()).unwrap_or(u32::MAX),
            },
            at_ms,
        };
        let record = CronRecord {
            ts: DateTime::from_timestamp_millis(self.started_at_ms).unwrap_or_default(),
            cron: self.cron,
            run_id: self.run_id,
            shop: self.shop,
            ms,
            results,
            errors,
            d1_queries: 0,
            d1_slowest: None,
            build_version: self.build_version,
        };
        (record, check_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap().timestamp_millis()
    }

    fn entry(expr: &str) -> WatchEntry {
        WatchEntry::new("daily_reconciliation", expr).unwrap()
    }

    #[test]
    fn golden_summary_line() {
        let slot = ms(2026, 5, 10, 7, 0, 0);
        let (run, start) = CronRun::start(&entry("0 7 * * *"), "swicked", "0.1.0+abc1234", slot, slot);
        assert_eq!(start.run_id, "cron_d_2026_05_10");
        assert_eq!(start.kind, CheckInKind::Start);
        let mut r = Results::new();
        r.int("sales_reconciled", 47)
            .int("low_stock_alerts", 3)
            .flag("audit_chain_verified", true)
            .int("audit_chain_length", 18437);
        let (rec, end) = run.finish(slot + 8420, r, vec![]);
        assert_eq!(
            rec.to_line(),
            r#"{"ts":"2026-05-10T07:00:00.000Z","cron":"daily_reconciliation","run_id":"cron_d_2026_05_10","shop":"swicked","ms":8420,"results":{"audit_chain_length":18437,"audit_chain_verified":true,"low_stock_alerts":3,"sales_reconciled":47},"errors":[],"d1_queries":0,"d1_slowest":null,"build_version":"0.1.0+abc1234"}"#
        );
        assert!(matches!(end.kind, CheckInKind::End { ok: true, ms: 8420, errors_count: 0, .. }));
        assert_eq!(end.at_ms, slot + 8420);
    }

    #[test]
    fn errors_are_scrubbed_and_make_the_run_not_ok() {
        let slot = ms(2026, 5, 10, 7, 0, 0);
        let (run, _) = CronRun::start(&entry("0 7 * * *"), "swicked", "v", slot, slot + 5);
        let errs = vec![
            CronErrorEntry::new("D1_ERROR", r#"UNIQUE constraint failed: customers.email "bob@example.com""#),
            CronErrorEntry::new("<panic>\n", "sms to +1 415 555 0100 failed"),
        ];
        let (rec, end) = run.finish(slot + 1005, Results::new(), errs);
        assert_eq!(rec.errors[0].message, "UNIQUE constraint failed: customers.email [redacted]");
        assert_eq!(rec.errors[1].class, "panic");
        assert_eq!(rec.errors[1].message, "sms to [redacted] failed");
        assert!(!rec.to_line().contains("example.com"));
        assert!(matches!(end.kind, CheckInKind::End { ok: false, errors_count: 2, ms: 1000, .. }));
    }

    #[test]
    fn run_ids_come_from_the_slot() {
        let d = entry("0 7 * * *");
        let slot = ms(2026, 5, 10, 7, 0, 0);
        // Early by 2 min, platform time not a slot: still the slot's day.
        let (_, c) = CronRun::start(&d, "s", "v", slot - 120_000, slot - 120_000);
        assert_eq!(c.run_id, "cron_d_2026_05_10");
        // Midnight job started early the evening before: the slot's date.
        let m = entry("0 0 * * *");
        let s11 = ms(2026, 5, 11, 0, 0, 0);
        assert_eq!(CronRun::start(&m, "s", "v", s11 - 60_000, s11 - 60_000).1.run_id, "cron_d_2026_05_11");
        // Sub-daily adds HHMM.
        let f = entry("*/5 * * * *");
        let s = ms(2026, 5, 10, 14, 25, 0);
        assert_eq!(CronRun::start(&f, "s", "v", s, s + 2_000).1.run_id, "cron_d_2026_05_10_1425");
        // Far from any slot (a manual run through /__scheduled): unscheduled id.
        let at = ms(2026, 5, 10, 14, 23, 11) + 250;
        assert_eq!(CronRun::start(&d, "s", "v", at, at).1.run_id, "cron_d_2026_05_10_m142311");
    }

    #[test]
    fn results_keep_figures_only() {
        let v = serde_json::json!({"a": 1, "b": true, "c": 1.5, "name": "Alice", "Bad Key": 3, "o": {"x": 1}});
        let r: Results = serde_json::from_value(v).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"a":1,"b":true,"c":1.5}"#);
        let mut r = Results::new();
        r.set("x", Figure::Float(f64::NAN)).set("Y", Figure::Int(1)).int("ok_key", 2);
        assert_eq!(r.len(), 1);
        assert_eq!(r.get_i64("ok_key"), Some(2));
    }

    #[test]
    fn check_in_round_trips() {
        let mut r = Results::new();
        r.flag("audit_chain_verified", false);
        let c = CronCheckIn {
            cron: "daily_reconciliation".into(),
            run_id: "cron_d_2026_05_10".into(),
            scheduled_ms: 1,
            kind: CheckInKind::End { ok: true, ms: 5, results: r, errors_count: 0 },
            at_ms: 6,
        };
        let line = serde_json::to_string(&c).unwrap();
        assert!(line.contains(r#""kind":{"type":"end","ok":true,"ms":5"#), "{line}");
        assert_eq!(serde_json::from_str::<CronCheckIn>(&line).unwrap(), c);
        let rec: CronRecord = serde_json::from_str(
            r#"{"ts":"2026-05-10T07:00:00.000Z","cron":"c","run_id":"r","shop":"s","ms":1,"results":{},"errors":[],"build_version":"v"}"#,
        )
        .unwrap();
        assert_eq!(rec.ms, 1);
    }
}
