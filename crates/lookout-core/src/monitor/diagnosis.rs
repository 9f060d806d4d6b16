//! What a bucket (and a window of buckets) knows about *why* a rule fires, bounded: error
//! classes with counts, the route and the first `build_version` seen per class; the slowest
//! routes; the slowest D1 query signatures. An isolate folds its records into one per partial
//! bucket (`core::partial`), the monitor merges those into its buckets and
//! [`Window::diagnosis`](super::window::Window::diagnosis) merges a rule window's. Request ids
//! are kept by recent.rs, counts and digests by window.rs.
//!
//! Every list is a top-k: error classes ranked by 5xx count then count, slow entries by their
//! slowest request. A key that drops out of a full list loses what it had counted, so counts
//! are exact for keys that stayed in the list and a lower bound otherwise; what ranks first is
//! what an operator needs. Strings are cut to fixed lengths, so a diagnosis is bounded in
//! bytes whatever the traffic (a 60 KiB URL path becomes its first 200 characters).

use serde::{Deserialize, Serialize};

use crate::codec::cap;
use crate::record::RequestRecord;

/// Error classes kept per bucket and per window.
pub const ERROR_CLASSES_KEPT: usize = 8;
/// Slowest routes / D1 signatures kept per bucket and per window.
pub const SLOW_KEPT: usize = 5;
/// Longest error class kept (characters).
pub const MAX_CLASS_CHARS: usize = 64;
/// Longest route kept (characters); the log line's `path`.
pub const MAX_ROUTE_CHARS: usize = 200;
/// Longest D1 signature kept (characters).
pub const MAX_SQL_CHARS: usize = 300;
/// Longest build version kept (characters).
pub const MAX_BUILD_CHARS: usize = 64;

/// One error class: how often, how many of those were 5xx, and where and in which build it was
/// first seen (the earliest record by its own time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorClassStat {
    /// The record's `error_class`; a 5xx without one is `HTTP <status>`.
    pub class: String,
    pub count: u64,
    pub count_5xx: u64,
    /// The `path` of the first record of this class.
    pub route: String,
    /// The `build_version` of the first record of this class.
    pub first_build: String,
    pub first_ts_ms: i64,
}

/// One route or D1 signature: its slowest request, and count and total time while tracked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowStat {
    /// The route (`path`) or the parameterized SQL.
    pub key: String,
    pub max_ms: f64,
    pub count: u64,
    pub sum_ms: f64,
}

/// Error classes and slowest routes / D1 signatures of a bucket or a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Most 5xx first, then most errors.
    pub errors: Vec<ErrorClassStat>,
    /// Slowest request first.
    pub slow_routes: Vec<SlowStat>,
    /// Slowest query first.
    pub slow_d1: Vec<SlowStat>,
}

fn rank(e: &ErrorClassStat) -> (u64, u64) {
    (e.count_5xx, e.count)
}

/// The label of a record's error, if it is one: its class, or `HTTP <status>` for a 5xx
/// without a class. A 4xx without a class is not an error here.
pub fn error_label(r: &RequestRecord) -> Option<std::borrow::Cow<'_, str>> {
    match &r.error_class {
        Some(c) => Some(std::borrow::Cow::Borrowed(c.as_str())),
        None if r.status >= 500 => Some(std::borrow::Cow::Owned(format!("HTTP {}", r.status))),
        None => None,
    }
}

impl Diagnosis {
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty() && self.slow_routes.is_empty() && self.slow_d1.is_empty()
    }

    /// Fold one record in.
    pub fn note(&mut self, r: &RequestRecord) {
        let ts_ms = r.ts.timestamp_millis();
        if let Some(class) = error_label(r) {
            let is_5xx = u64::from(r.status >= 500);
            self.note_error(&class, 1, is_5xx, &r.path, &r.build_version, ts_ms);
        }
        if r.ms.is_finite() && r.ms >= 0.0 {
            note_slow(&mut self.slow_routes, &r.path, MAX_ROUTE_CHARS, r.ms, 1, r.ms);
        }
        if let Some(q) = r.d1_slowest.as_ref().filter(|q| q.ms.is_finite() && q.ms >= 0.0) {
            note_slow(&mut self.slow_d1, &q.sql, MAX_SQL_CHARS, q.ms, 1, q.ms);
        }
    }

    fn note_error(&mut self, class: &str, count: u64, count_5xx: u64, route: &str, build: &str, ts_ms: i64) {
        let class = capped(class, MAX_CLASS_CHARS);
        if let Some(e) = self.errors.iter_mut().find(|e| e.class == *class) {
            e.count = e.count.saturating_add(count);
            e.count_5xx = e.count_5xx.saturating_add(count_5xx);
            if ts_ms < e.first_ts_ms {
                e.first_ts_ms = ts_ms;
                e.route = cap(route, MAX_ROUTE_CHARS);
                e.first_build = cap(build, MAX_BUILD_CHARS);
            }
        } else {
            let entry = ErrorClassStat {
                class: class.to_string(),
                count,
                count_5xx,
                route: cap(route, MAX_ROUTE_CHARS),
                first_build: cap(build, MAX_BUILD_CHARS),
                first_ts_ms: ts_ms,
            };
            if self.errors.len() < ERROR_CLASSES_KEPT {
                self.errors.push(entry);
            } else if let Some(weakest) = self.errors.iter_mut().min_by_key(|e| rank(e)) {
                if rank(&entry) > rank(weakest) {
                    *weakest = entry;
                }
            }
        }
    }

    /// Merge another bucket's (or partial's) diagnosis in.
    pub fn merge(&mut self, other: &Diagnosis) {
        for e in &other.errors {
            self.note_error(&e.class, e.count, e.count_5xx, &e.route, &e.first_build, e.first_ts_ms);
        }
        for s in &other.slow_routes {
            note_slow(&mut self.slow_routes, &s.key, MAX_ROUTE_CHARS, s.max_ms, s.count, s.sum_ms);
        }
        for s in &other.slow_d1 {
            note_slow(&mut self.slow_d1, &s.key, MAX_SQL_CHARS, s.max_ms, s.count, s.sum_ms);
        }
    }

    /// Put every list in its reading order (most 5xx / slowest first).
    pub fn sort(&mut self) {
        self.errors.sort_by(|a, b| rank(b).cmp(&rank(a)).then_with(|| a.first_ts_ms.cmp(&b.first_ts_ms)));
        self.slow_routes.sort_by(|a, b| b.max_ms.total_cmp(&a.max_ms));
        self.slow_d1.sort_by(|a, b| b.max_ms.total_cmp(&a.max_ms));
    }

    /// Every string it holds (for the persisted form's string table).
    pub fn strings(&self) -> impl Iterator<Item = &str> {
        let errors = self.errors.iter().flat_map(|e| [e.class.as_str(), e.route.as_str(), e.first_build.as_str()]);
        errors.chain(self.slow_routes.iter().chain(&self.slow_d1).map(|s| s.key.as_str()))
    }

    /// Whether the lists respect their bounds (what a received diagnosis must).
    pub fn check_bounds(&self) -> Result<(), String> {
        if self.errors.len() > ERROR_CLASSES_KEPT {
            return Err(format!("more than {ERROR_CLASSES_KEPT} error classes"));
        }
        if self.slow_routes.len() > SLOW_KEPT || self.slow_d1.len() > SLOW_KEPT {
            return Err(format!("more than {SLOW_KEPT} slow routes or D1 signatures"));
        }
        let long = |s: &str, n: usize| s.chars().count() > n;
        for e in &self.errors {
            if long(&e.class, MAX_CLASS_CHARS)
                || long(&e.route, MAX_ROUTE_CHARS)
                || long(&e.first_build, MAX_BUILD_CHARS)
            {
                return Err(format!("error class {:?}: a string is longer than allowed", cap(&e.class, 40)));
            }
            if e.count == 0 || e.count_5xx > e.count {
                return Err(format!("error class {:?}: count must be >= 1 and >= count_5xx", cap(&e.class, 40)));
            }
        }
        for (list, max) in [(&self.slow_routes, MAX_ROUTE_CHARS), (&self.slow_d1, MAX_SQL_CHARS)] {
            for s in list {
                if long(&s.key, max) {
                    return Err("a slow route or D1 signature is longer than allowed".into());
                }
                let ok = |x: f64| x.is_finite() && x >= 0.0;
                if s.count == 0 || !ok(s.max_ms) || !ok(s.sum_ms) {
                    return Err("a slow entry needs count >= 1 and finite non-negative ms".into());
                }
            }
        }
        Ok(())
    }
}

/// `s` as it is kept: cut to `max_chars` (a copy only when it is cut).
fn capped(s: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max_chars {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(cap(s, max_chars))
    }
}

/// Fold `(key, max_ms, count, sum_ms)` into a top-k by slowest request.
fn note_slow(list: &mut Vec<SlowStat>, key: &str, max_chars: usize, max_ms: f64, count: u64, sum_ms: f64) {
    let key = capped(key, max_chars);
    if let Some(s) = list.iter_mut().find(|s| s.key == *key) {
        s.max_ms = s.max_ms.max(max_ms);
        s.count = s.count.saturating_add(count);
        s.sum_ms += sum_ms;
        return;
    }
    let entry = || SlowStat { key: key.to_string(), max_ms, count, sum_ms };
    if list.len() < SLOW_KEPT {
        list.push(entry());
    } else if let Some(fastest) = list.iter_mut().min_by(|a, b| a.max_ms.total_cmp(&b.max_ms)) {
        if max_ms > fastest.max_ms {
            *fastest = entry();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SlowQuery;
    use chrono::{DateTime, Utc};

    const T0: i64 = 1_778_400_000_000;

    fn rec(ts_ms: i64, status: u16, class: Option<&str>, path: &str, ms: f64, build: &str) -> RequestRecord {
        let ts = DateTime::<Utc>::from_timestamp_millis(ts_ms).expect("in range");
        let mut r = RequestRecord::start(ts, format!("req_{ts_ms}"), "GET", path, build);
        r.status = status;
        r.error_class = class.map(str::to_string);
        r.ms = ms;
        r
    }

    #[test]
    fn error_classes_keep_counts_route_and_first_build() {
        let mut d = Diagnosis::default();
        d.note(&rec(T0 + 5, 500, Some("D1Error"), "/api/tickets/{id}", 3.0, "v2"));
        d.note(&rec(T0 + 1, 500, Some("D1Error"), "/api/customers/{id}", 3.0, "v1"));
        d.note(&rec(T0 + 2, 404, Some("NotFound"), "/x", 1.0, "v1"));
        d.note(&rec(T0 + 3, 503, None, "/pay", 1.0, "v1"));
        d.note(&rec(T0 + 4, 200, None, "/ok", 1.0, "v1"));
        d.sort();
        let got: Vec<(&str, u64, u64, &str, &str)> = d
            .errors
            .iter()
            .map(|e| (e.class.as_str(), e.count, e.count_5xx, e.route.as_str(), e.first_build.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("D1Error", 2, 2, "/api/customers/{id}", "v1"),
                ("HTTP 503", 1, 1, "/pay", "v1"),
                ("NotFound", 1, 0, "/x", "v1")
            ]
        );
    }

    #[test]
    fn lists_stay_bounded_and_keep_what_ranks_first() {
        let mut d = Diagnosis::default();
        for i in 0..50 {
            d.note(&rec(T0 + i, 404, Some(&format!("Class{i}")), &format!("/r/{i}"), i as f64, "v"));
        }
        d.note(&rec(T0 + 99, 500, Some("Boom"), "/b", 1.0, "v"));
        let mut q = rec(T0 + 100, 200, None, &"x".repeat(60 * 1024), 9_000.0, &"b".repeat(500));
        q.d1_slowest = Some(SlowQuery { sql: "SELECT 1".repeat(100), ms: 700.0 });
        d.note(&q);
        d.sort();
        assert_eq!(d.errors.len(), ERROR_CLASSES_KEPT);
        assert_eq!(d.errors[0].class, "Boom", "a 5xx class displaces a 4xx one");
        assert_eq!(d.slow_routes.len(), SLOW_KEPT);
        assert_eq!(d.slow_routes[0].max_ms, 9_000.0);
        assert_eq!(d.slow_routes[0].key.len(), MAX_ROUTE_CHARS, "a 60 KiB path is cut");
        assert_eq!(d.slow_routes[1].max_ms, 49.0);
        assert_eq!(d.slow_d1[0].key.chars().count(), MAX_SQL_CHARS);
        assert!(d.check_bounds().is_ok());
        // The same long path again lands on its cut entry.
        d.note(&rec(T0 + 101, 200, None, &"x".repeat(60 * 1024), 1.0, "v"));
        assert_eq!(d.slow_routes.iter().find(|s| s.max_ms == 9_000.0).unwrap().count, 2);
    }

    #[test]
    fn merging_equals_noting_everything_in_one() {
        let records: Vec<RequestRecord> = (0..40)
            .map(|i| {
                let class = [None, Some("A"), Some("B")][i % 3];
                rec(T0 + i as i64, if i % 4 == 0 { 500 } else { 200 }, class, &format!("/p{}", i % 3), i as f64, "v")
            })
            .collect();
        let mut all = Diagnosis::default();
        records.iter().for_each(|r| all.note(r));
        let (mut a, mut b) = (Diagnosis::default(), Diagnosis::default());
        records[..17].iter().for_each(|r| a.note(r));
        records[17..].iter().for_each(|r| b.note(r));
        a.merge(&b);
        a.sort();
        all.sort();
        assert_eq!(a, all);
    }
}
