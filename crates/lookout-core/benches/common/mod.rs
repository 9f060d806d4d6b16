//! Shared by the core benchmarks: a deterministic latency-like generator and monitors filled
//! the way a shop's traffic fills them (records through `Monitor::ingest`, clock stepped).
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use lookout_core::monitor::{Channel, Monitor, MonitorConfig};
use lookout_core::record::{RequestRecord, SlowQuery};

/// A 10 s bucket boundary (2026-05-10T08:00:00Z).
pub const T0: i64 = 1_778_400_000_000;
pub const SHOP: &str = "swicked";

pub use lookout_core::testdata::XorShift;

pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).expect("in range")
}

/// One request record as the Worker writes it: 2% of them 5xx, a D1 query on most.
pub fn record(rng: &mut XorShift, ts_ms: i64, seq: u64) -> RequestRecord {
    let mut r = RequestRecord::start(at(ts_ms), format!("req_{seq:012}"), "GET", "/api/tickets/2506", "0.1.0+bench00");
    r.shop = Some(SHOP.into());
    r.staff_id = Some(3);
    r.staff_label = Some("Robbie".into());
    r.status = if seq.is_multiple_of(50) { 503 } else { 200 };
    r.ms = (rng.heavy_tail_ms() * 1000.0).round() / 1000.0;
    r.d1_queries = 3;
    if !seq.is_multiple_of(4) {
        r.d1_slowest = Some(SlowQuery {
            sql: "SELECT t.id, t.status FROM tickets t WHERE t.id = ? AND t.shop = ?".into(),
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

/// Fill every bucket of the ring (the longest rule window) with `per_bucket` records,
/// ingested in batches of 64 with the clock stepped through each bucket, evaluated every
/// 10 s as the object's alarm would. Returns the monitor and the instant it ends at (inside
/// the last, open, bucket).
pub fn full_ring(per_bucket: u64, seed: u64) -> (Monitor, i64) {
    let mut m = default_monitor();
    let ring = m.config().rules.ring_buckets() as i64;
    let bucket_ms = i64::from(m.config().rules.bucket_s) * 1000;
    let mut rng = XorShift(seed);
    let mut seq = 0u64;
    let start = T0 - (ring - 1) * bucket_ms;
    for b in 0..ring {
        let b0 = start + b * bucket_ms;
        let mut batch = Vec::with_capacity(64);
        for i in 0..per_bucket {
            let ts = b0 + (i as i64 * bucket_ms) / per_bucket.max(1) as i64;
            batch.push(record(&mut rng, ts, seq));
            seq += 1;
            if batch.len() == 64 {
                m.ingest(&batch, ts);
                batch.clear();
            }
        }
        let end = b0 + bucket_ms - 1;
        if !batch.is_empty() {
            m.ingest(&batch, end);
        }
        m.evaluate(end);
    }
    (m, T0 + bucket_ms - 1)
}
