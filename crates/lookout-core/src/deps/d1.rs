//! The per-request D1 tally: query count, the slowest round trip (its signature and ms: the
//! request line's `d1_slowest`, which also feeds the monitor's D1 digest), and N+1
//! detection. The edge times queries and feeds them here; no clock, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sql::{sql_signature, MAX_SIGNATURE_CHARS};
use crate::record::{round_ms, RequestRecord, SlowQuery};
use crate::redact::cap_chars;

/// Round trips with the same signature in one request at which the line is flagged N+1.
pub const DEFAULT_N_PLUS_ONE_THRESHOLD: u32 = 10;

/// A likely N+1: one statement shape sent again and again in one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NPlusOne {
    pub signature: String,
    pub count: u32,
}

/// Accumulates one request's D1 activity. Feed every query with [`D1Tally::record_query`] and
/// every batch with [`D1Tally::record_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct D1Tally {
    n_plus_one_threshold: u32,
    queries: u32,
    slowest: Option<SlowQuery>,
    round_trips_by_signature: BTreeMap<String, u32>,
}

impl Default for D1Tally {
    fn default() -> Self {
        Self::new()
    }
}

/// Durations from the outside: negative or non-finite values count as 0 ms.
fn clean_ms(ms: f64) -> f64 {
    if ms.is_finite() && ms > 0.0 {
        round_ms(ms)
    } else {
        0.0
    }
}

impl D1Tally {
    /// A tally with the default N+1 threshold ([`DEFAULT_N_PLUS_ONE_THRESHOLD`]).
    pub fn new() -> Self {
        Self::with_n_plus_one_threshold(DEFAULT_N_PLUS_ONE_THRESHOLD)
    }

    /// A tally flagging N+1 at `threshold` round trips of one signature (at least 2: one
    /// query is not a repetition).
    pub fn with_n_plus_one_threshold(threshold: u32) -> Self {
        D1Tally {
            n_plus_one_threshold: threshold.max(2),
            queries: 0,
            slowest: None,
            round_trips_by_signature: BTreeMap::new(),
        }
    }

    /// One statement sent on its own (`run`, `all`, `first`), which took `ms`.
    pub fn record_query(&mut self, sql: &str, ms: f64) {
        self.record_round_trip(sql_signature(sql), 1, ms);
    }

    /// One `batch` of statements sent in a single round trip taking `ms` in all. Each
    /// statement counts towards `d1_queries`; for slowest and N+1 the batch is one
    /// round trip whose signature is `BATCH n: ` followed by its distinct statement
    /// signatures (a batch of identical statements is the cure for N+1, not an instance).
    /// An empty batch records nothing.
    pub fn record_batch<S: AsRef<str>>(&mut self, statements: &[S], ms: f64) {
        if statements.is_empty() {
            return;
        }
        let mut distinct: Vec<String> = Vec::new();
        for s in statements {
            let sig = sql_signature(s.as_ref());
            if !distinct.contains(&sig) {
                distinct.push(sig);
            }
        }
        let signature = cap_chars(format!("BATCH {}: {}", statements.len(), distinct.join("; ")), MAX_SIGNATURE_CHARS);
        let n = u32::try_from(statements.len()).unwrap_or(u32::MAX);
        self.record_round_trip(signature, n, ms);
    }

    fn record_round_trip(&mut self, signature: String, statements: u32, ms: f64) {
        let ms = clean_ms(ms);
        self.queries = self.queries.saturating_add(statements);
        if self.slowest.as_ref().is_none_or(|s| ms > s.ms) {
            self.slowest = Some(SlowQuery { sql: signature.clone(), ms });
        }
        let n = self.round_trips_by_signature.entry(signature).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// Statements executed so far (the line's `d1_queries`).
    pub fn queries(&self) -> u32 {
        self.queries
    }

    /// The slowest round trip so far (the first one on ties).
    pub fn slowest(&self) -> Option<&SlowQuery> {
        self.slowest.as_ref()
    }

    /// The most repeated signature when it reached the threshold (ties: the smallest
    /// signature, so the answer is stable).
    pub fn n_plus_one(&self) -> Option<NPlusOne> {
        let (signature, &count) =
            self.round_trips_by_signature.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
        (count >= self.n_plus_one_threshold).then(|| NPlusOne { signature: signature.clone(), count })
    }

    /// Fill the request line's `d1_queries` and `d1_slowest`.
    pub fn apply_to(&self, record: &mut RequestRecord) {
        record.d1_queries = self.queries;
        record.d1_slowest = self.slowest.clone();
        record.d1_n_plus_one = self.n_plus_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    const LINES_BY_TICKET: &str = "SELECT * FROM lines WHERE ticket_id = ?";

    #[test]
    fn counts_queries_and_keeps_the_slowest_signature() {
        let mut t = D1Tally::new();
        t.record_query("SELECT * FROM tickets WHERE id = 2506", 3.0);
        t.record_query("SELECT * FROM customers WHERE name = 'Alice Smith'", 41.25);
        t.record_query("UPDATE tickets SET status = 'open' WHERE id = 2506", 7.5);
        assert_eq!(t.queries(), 3);
        assert_eq!(t.slowest(), Some(&SlowQuery { sql: "SELECT * FROM customers WHERE name = ?".into(), ms: 41.25 }));
        assert_eq!(t.n_plus_one(), None);
    }

    #[test]
    fn n_plus_one_needs_the_threshold() {
        let mut t = D1Tally::new();
        for id in 0..DEFAULT_N_PLUS_ONE_THRESHOLD - 1 {
            t.record_query(&format!("SELECT * FROM lines WHERE ticket_id = {id}"), 1.0);
        }
        assert_eq!(t.n_plus_one(), None, "threshold - 1 repetitions are not flagged");
        t.record_query("SELECT * FROM lines WHERE ticket_id = 999", 1.0);
        assert_eq!(
            t.n_plus_one(),
            Some(NPlusOne { signature: LINES_BY_TICKET.into(), count: DEFAULT_N_PLUS_ONE_THRESHOLD })
        );
    }

    #[test]
    fn n_plus_one_reports_the_most_repeated_signature() {
        let mut t = D1Tally::with_n_plus_one_threshold(3);
        for i in 0..4 {
            t.record_query(&format!("SELECT * FROM customers WHERE id = {i}"), 1.0);
        }
        for i in 0..6 {
            t.record_query(&format!("SELECT * FROM lines WHERE ticket_id = {i}"), 1.0);
        }
        assert_eq!(t.n_plus_one(), Some(NPlusOne { signature: LINES_BY_TICKET.into(), count: 6 }));
        assert_eq!(t.queries(), 10);
    }

    #[test]
    fn threshold_is_at_least_two() {
        let mut t = D1Tally::with_n_plus_one_threshold(0);
        t.record_query("SELECT 1", 1.0);
        assert_eq!(t.n_plus_one(), None);
        t.record_query("SELECT 2", 1.0);
        assert_eq!(t.n_plus_one().map(|n| n.count), Some(2));
    }

    #[test]
    fn a_batch_counts_its_statements_but_is_one_round_trip() {
        let mut t = D1Tally::with_n_plus_one_threshold(3);
        let inserts: Vec<String> =
            (0..5).map(|i| format!("INSERT INTO lines (ticket_id, qty) VALUES (7, {i})")).collect();
        t.record_batch(&inserts, 12.0);
        assert_eq!(t.queries(), 5);
        assert_eq!(t.slowest().map(|s| s.ms), Some(12.0));
        assert_eq!(t.n_plus_one(), None);
        assert_eq!(
            t.slowest().map(|s| s.sql.as_str()),
            Some("BATCH 5: INSERT INTO lines (ticket_id, qty) VALUES (?, ?)")
        );
        t.record_batch::<&str>(&[], 3.0);
        assert_eq!(t.queries(), 5);
    }

    #[test]
    fn bad_durations_count_as_zero() {
        let mut t = D1Tally::new();
        t.record_query("SELECT 1", f64::NAN);
        t.record_query("SELECT 2", -4.0);
        t.record_query("SELECT 3", f64::INFINITY);
        assert_eq!(t.slowest(), Some(&SlowQuery { sql: "SELECT ?".into(), ms: 0.0 }));
    }

    #[test]
    fn fills_the_request_line() {
        let mut t = D1Tally::new();
        t.record_query("SELECT * FROM tickets WHERE id = 1", 2.5);
        let ts = Utc.with_ymd_and_hms(2026, 5, 10, 14, 0, 0).unwrap();
        let mut r = RequestRecord::start(ts, "req_x".into(), "GET", "/api/tickets/1", "v");
        t.apply_to(&mut r);
        let v: serde_json::Value = serde_json::from_str(&r.to_line()).unwrap();
        assert_eq!(v["d1_queries"], 1);
        assert_eq!(v["d1_slowest"], serde_json::json!({"sql": "SELECT * FROM tickets WHERE id = ?", "ms": 2.5}));
    }

    #[test]
    fn n_plus_one_serializes_with_signature_and_count() {
        let n = NPlusOne { signature: LINES_BY_TICKET.into(), count: 12 };
        assert_eq!(serde_json::to_value(&n).unwrap(), serde_json::json!({"signature": LINES_BY_TICKET, "count": 12}));
    }
}
