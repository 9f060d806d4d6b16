//! Shared by the core benchmarks: a deterministic latency-like generator and monitors filled
//! the way a shop's traffic fills them (records folded into partial buckets, through
//! `Monitor::ingest_partials`, clock stepped).
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use lookout_core::monitor::{Channel, Monitor, MonitorConfig};
use lookout_core::partial::{Partial, PartialAccumulator};
use lookout_core::record::{RequestRecord, SlowQuery};

/// A 10 s bucket boundary (2026-05-10T08:00:00Z).
pub const T0: i64 = 1_778_400_000_000;
pub const SHOP: &str = "swicked";

pub use lookout_core::testdata::XorShift;

pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).expect("in range")
}

/// The sample app's route templates and D1 signatures (what diagnoses hold).
const ROUTES: [&str; 8] = [
    "/api/tickets/{id}",
    "/api/tickets/{id}/lines",
    "/api/tickets/{id}/photos",
    "/api/tickets/{id}/charge",
    "/api/customers/{id}",
    "/api/reports/open-lines",
    "/api/ai/summarize",
    "/health",
];
const SIGNATURES: [&str; 6] = [
    "SELECT t.id, t.status FROM tickets t WHERE t.id = ? AND t.shop = ?",
    "SELECT id, ticket_id, product_id, qty, unit_cents FROM ticket_lines WHERE ticket_id = ? ORDER BY id",
    "SELECT s.staff_id, s.first_name FROM sessions s WHERE s.token = ? AND s.expires_at > ?",
    "SELECT c.id, c.name FROM customers c WHERE c.id = ? AND c.shop = ?",
    "INSERT INTO audit_events (shop, prev_hash, hash, content, build_version) VALUES (?, ?, ?, ?, ?)",
    "SELECT product_id, SUM(qty) FROM ticket_lines WHERE shop = ? GROUP BY product_id",
];
const CLASSES: [&str; 3] = ["D1Error", "JsError", "UpstreamTimeout"];

/// One request record as the Worker writes it: 2% of them 5xx (three error classes), a D1
/// query on most, eight routes and six query signatures.
pub fn record(rng: &mut XorShift, ts_ms: i64, seq: u64) -> RequestRecord {
    let route = ROUTES[(seq % ROUTES.len() as u64) as usize];
    let mut r = RequestRecord::start(at(ts_ms), format!("req_{seq:012}"), "GET", route, "0.1.0+bench00");
    r.shop = Some(SHOP.into());
    r.staff_id = Some(3);
    r.staff_label = Some("Robbie".into());
    r.status = if seq.is_multiple_of(50) { 503 } else { 200 };
    if r.status >= 500 {
        r.error_class = Some(CLASSES[((seq / 50) % 3) as usize].into());
    }
    r.ms = (rng.heavy_tail_ms() * 1000.0).round() / 1000.0;
    r.d1_queries = 3;
    if !seq.is_multiple_of(4) {
        r.d1_slowest = Some(SlowQuery {
            sql: SIGNATURES[(seq % SIGNATURES.len() as u64) as usize].into(),
            ms: (rng.lognormal_ms(4.0, 0.5) * 1000.0).round() / 1000.0,
        });
    }
    r
}

/// A monitor with the default rules (ALERT_RULES empty) and a webhook channel.
pub fn default_monitor() -> Monitor {
    let config = MonitorConfig::from_alert_rules_json("", vec![Channel::Webhook]).expect("defaults");
    Monitor::new(config, SHOP)
}

/// `records` folded into partial buckets as an isolate sends them (one per second of record
/// time), checked as the monitor receives them.
pub fn partials(records: &[RequestRecord], next: &mut u64) -> Vec<Partial> {
    let mut acc = PartialAccumulator::default();
    records.iter().for_each(|r| acc.fold(r));
    acc.take(SHOP, || {
        *next += 1;
        format!("bench-{next}")
    })
    .into_iter()
    .map(|p| p.check(SHOP).expect("valid partial"))
    .collect()
}

/// Fill every bucket of the ring (the longest rule window) with `per_bucket` records,
/// folded into partial buckets of at most 64 records (as isolates send them) with the clock
/// stepped through each bucket, evaluated every 10 s as the object's alarm would, closed
/// buckets stored as the object stores them. Returns the monitor and the instant it ends at
/// (inside the last, open, bucket).
pub fn full_ring(per_bucket: u64, seed: u64) -> (Monitor, i64) {
    let mut m = default_monitor();
    let ring = m.config().rules.ring_buckets() as i64;
    let bucket_ms = i64::from(m.config().rules.bucket_s) * 1000;
    let mut rng = XorShift(seed);
    let mut seq = 0u64;
    let mut ids = 0u64;
    let start = T0 - (ring - 1) * bucket_ms;
    for b in 0..ring {
        let b0 = start + b * bucket_ms;
        let mut batch = Vec::with_capacity(64);
        for i in 0..per_bucket {
            let ts = b0 + (i as i64 * bucket_ms) / per_bucket.max(1) as i64;
            batch.push(record(&mut rng, ts, seq));
            seq += 1;
            if batch.len() == 64 {
                m.ingest_partials(&partials(&batch, &mut ids), ts);
                batch.clear();
            }
        }
        let end = b0 + bucket_ms - 1;
        if !batch.is_empty() {
            m.ingest_partials(&partials(&batch, &mut ids), end);
        }
        m.evaluate(end);
        let dirty = m.dirty_closed_buckets(end);
        let keys: Vec<_> = dirty.iter().map(|b| b.key()).collect();
        m.mark_buckets_persisted(&keys);
    }
    (m, T0 + bucket_ms - 1)
}

/// Every bucket row the object holds for `m` as of `now` (closed buckets, encoded; whether
/// each keeps detail), the string table and the snapshot, in bytes.
pub fn stored_bytes(m: &Monitor, now: i64) -> (Vec<(bool, usize)>, usize, usize) {
    let mut m = m.clone();
    let closed = m.closed_buckets(now);
    let rows: Vec<(bool, usize)> = closed.iter().map(|b| (b.detail.is_some(), m.encode_bucket_row(b).len())).collect();
    let strings = m.strings_to_store().map_or(0, |s| s.len());
    let snapshot = serde_json::to_string(&m.snapshot()).expect("json").len();
    (rows, strings, snapshot)
}
