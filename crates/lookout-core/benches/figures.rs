//! Figures of the pure core that are not timings, printed as one JSON object for bench/run:
//!
//! * `persisted`: bytes a shop's monitor writes for a full ring of the longest rule window
//!   (default rules: 3600 s = 360 buckets of 10 s), at several traffic levels: every closed
//!   bucket's JSON row plus the snapshot, as the Durable Object stores them;
//! * `accuracy`: relative error of p50/p95/p99 from the windowed, merged t-digest (the
//!   monitor's own `Window::add` / `merged` / `quantile`, the alert path) against exact
//!   quantiles of the same values, over several seeds of a deterministic generator.
//!
//! `cargo bench --bench figures [-- --smoke]`. Not a test: nothing here asserts a figure.

mod common;

use common::{full_ring, XorShift, T0};
use lookout_core::monitor::digest::quantile;
use lookout_core::monitor::window::{Series, Window};
use lookout_core::record::RequestRecord;
use serde_json::{json, Value};

fn persisted(per_bucket: u64) -> Value {
    let (m, now) = full_ring(per_bucket, 11);
    let buckets = m.dirty_closed_buckets(now);
    let rows: Vec<usize> = buckets.iter().map(|b| serde_json::to_string(b).expect("json").len()).collect();
    let bucket_bytes: usize = rows.iter().sum();
    let snapshot_bytes = serde_json::to_string(&m.snapshot()).expect("json").len();
    let digest_window = 600 / m.config().rules.bucket_s as usize;
    json!({
        "records_per_bucket": per_bucket,
        "requests_per_s": per_bucket as f64 / f64::from(m.config().rules.bucket_s),
        "closed_buckets": rows.len(),
        "bucket_bytes": bucket_bytes,
        "bucket_bytes_mean": bucket_bytes as f64 / rows.len().max(1) as f64,
        "snapshot_bytes": snapshot_bytes,
        "total_bytes": bucket_bytes + snapshot_bytes,
        // What the longest digest rule (600 s) needs; beyond it only counts are read.
        "digest_window_bytes": rows.iter().rev().take(digest_window).sum::<usize>(),
        "centroids_per_request_digest": buckets.last().map(|b| b.request_ms.centroids.len()),
    })
}

/// Nearest-rank quantile of sorted values.
fn exact(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One dataset through a 600 s window of 10 s buckets, as the request_p95 rule sees it.
fn accuracy_run(seed: u64, per_bucket: usize, gen: &dyn Fn(&mut XorShift) -> f64) -> [f64; 3] {
    let bucket_s = 10u32;
    let buckets = 60i64;
    let mut w = Window::new(bucket_s, buckets as u32);
    let mut rng = XorShift(seed);
    let mut values = Vec::with_capacity(per_bucket * buckets as usize);
    let start = T0 - (buckets - 1) * 10_000;
    let now = T0 + 9_999;
    for b in 0..buckets {
        for i in 0..per_bucket {
            let ts = start + b * 10_000 + (i as i64 * 10_000) / per_bucket as i64;
            let mut r = RequestRecord::start(common::at(ts), "req_000000000000".into(), "GET", "/x", "v");
            r.ms = gen(&mut rng);
            values.push(r.ms);
            w.add(&r, now).expect("inside the ring");
            if i % 64 == 63 {
                w.flush();
            }
        }
        w.flush();
    }
    values.sort_by(f64::total_cmp);
    let merged = w.merged(Series::Request, 600, now);
    assert_eq!(merged.count() as usize, values.len());
    [0.5, 0.95, 0.99].map(|q| {
        let est = quantile(&merged, q).expect("samples");
        let truth = exact(&values, q);
        (est - truth).abs() / truth
    })
}

fn accuracy(name: &str, per_bucket: usize, seeds: u64, gen: &dyn Fn(&mut XorShift) -> f64) -> Value {
    let runs: Vec<[f64; 3]> = (1..=seeds).map(|s| accuracy_run(s * 7919, per_bucket, gen)).collect();
    let stat = |k: usize| {
        let mut v: Vec<f64> = runs.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        json!({"median": v[v.len() / 2], "max": v[v.len() - 1]})
    };
    json!({"dataset": name, "records_per_bucket": per_bucket, "buckets": 60, "seeds": seeds,
           "p50": stat(0), "p95": stat(1), "p99": stat(2)})
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let levels: &[u64] = if smoke { &[10] } else { &[10, 100, 1000] };
    let seeds = if smoke { 2 } else { 20 };
    let heavy = |r: &mut XorShift| r.heavy_tail_ms();
    // True p95 near the 200 ms threshold: lognormal median 80 ms, sigma 0.554.
    let near = |r: &mut XorShift| r.lognormal_ms(80.0, 0.554);
    let mut acc = vec![accuracy("heavy_tail", 1000, seeds, &heavy)];
    if !smoke {
        acc.push(accuracy("heavy_tail", 100, seeds, &heavy));
        acc.push(accuracy("p95_near_200ms", 1000, seeds, &near));
    }
    let out = json!({
        "persisted": levels.iter().map(|&n| persisted(n)).collect::<Vec<_>>(),
        "accuracy": acc,
    });
    println!("FIGURES {out}");
}
