//! Figures of the pure core that are not timings, printed as one JSON object for bench/run:
//!
//! * `persisted`: bytes a shop's monitor stores for a full ring of the longest rule window
//!   (default rules: 3600 s = 360 buckets of 10 s), at several traffic levels: every closed
//!   bucket's binary row (digests and diagnosis only in the 600 s detail window), the string
//!   table, the snapshot and the cron state, as the Durable Object stores them;
//! * `accuracy`: relative error of p50/p95/p99 from the windowed, merged t-digest on the alert
//!   path (records folded into partial buckets as an isolate does, sent as binary digests,
//!   merged by `Window::add_partial`, `merged`, `quantile`) against exact quantiles of the
//!   same values, over several seeds of a deterministic generator;
//! * `partial_bytes`: the JSON size of one partial bucket an isolate sends, by records folded.
//!
//! `cargo bench --bench figures [-- --smoke]`. Not a test: nothing here asserts a figure.

mod common;

use common::{full_ring, partials, record, stored_bytes, XorShift, T0};
use lookout_core::cron::CronPersisted;
use lookout_core::monitor::digest::quantile;
use lookout_core::monitor::window::{Series, Window};
use lookout_core::partial::PartialAccumulator;
use lookout_core::record::RequestRecord;
use serde_json::{json, Value};

fn persisted(per_bucket: u64) -> Value {
    let (m, now) = full_ring(per_bucket, 11);
    let (rows, strings_bytes, snapshot_bytes) = stored_bytes(&m, now);
    let detail: Vec<usize> = rows.iter().filter(|(d, _)| *d).map(|(_, n)| *n).collect();
    let counts: Vec<usize> = rows.iter().filter(|(d, _)| !*d).map(|(_, n)| *n).collect();
    let bucket_bytes: usize = rows.iter().map(|(_, n)| n).sum();
    // The cron state of a shop with the default config and no spend (what request traffic
    // alone leaves; spend adds a few bytes per period and partial id).
    let cron_bytes = serde_json::to_string(&CronPersisted::default()).expect("json").len();
    let last = m.closed_buckets(now).into_iter().rev().find_map(|b| b.detail);
    json!({
        "records_per_bucket": per_bucket,
        "requests_per_s": per_bucket as f64 / f64::from(m.config().rules.bucket_s),
        "closed_buckets": rows.len(),
        "bucket_bytes": bucket_bytes,
        "bucket_bytes_mean": bucket_bytes as f64 / rows.len().max(1) as f64,
        "detail_buckets": detail.len(),
        "detail_bytes": detail.iter().sum::<usize>(),
        "detail_row_mean": detail.iter().sum::<usize>() as f64 / detail.len().max(1) as f64,
        "counts_buckets": counts.len(),
        "counts_bytes": counts.iter().sum::<usize>(),
        "counts_row_mean": counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64,
        "strings_bytes": strings_bytes,
        "snapshot_bytes": snapshot_bytes,
        "cron_bytes": cron_bytes,
        "total_bytes": bucket_bytes + strings_bytes + snapshot_bytes + cron_bytes,
        "centroids_per_request_digest": last.as_ref().map(|d| d.request_ms.flushed().centroids().len()),
    })
}

/// JSON bytes of one partial bucket holding `n` realistic records of one second.
fn partial_bytes(n: u64) -> Value {
    let mut rng = XorShift(3);
    let mut acc = PartialAccumulator::default();
    for i in 0..n {
        acc.fold(&record(&mut rng, T0 + (i * 1000 / n.max(1)) as i64, i));
    }
    let parts = acc.take(common::SHOP, || "bench-1".into());
    let bytes = serde_json::to_string(&parts[0]).expect("json").len();
    json!({"records": n, "bytes": bytes, "bytes_per_record": bytes as f64 / n as f64})
}

/// Nearest-rank quantile of sorted values.
fn exact(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One dataset through a 600 s window of 10 s buckets, as the request_p95 rule sees it:
/// records folded into partial buckets (flushes of 64 records, as an isolate sends them).
fn accuracy_run(seed: u64, per_bucket: usize, gen: &dyn Fn(&mut XorShift) -> f64) -> [f64; 3] {
    let bucket_s = 10u32;
    let buckets = 60i64;
    let mut w = Window::new(bucket_s, buckets as u32);
    let mut rng = XorShift(seed);
    let mut values = Vec::with_capacity(per_bucket * buckets as usize);
    let start = T0 - (buckets - 1) * 10_000;
    let now = T0 + 9_999;
    let mut ids = 0u64;
    let mut batch = Vec::with_capacity(64);
    for b in 0..buckets {
        for i in 0..per_bucket {
            let ts = start + b * 10_000 + (i as i64 * 10_000) / per_bucket as i64;
            let mut r = RequestRecord::start(common::at(ts), "req_000000000000".into(), "GET", "/x", "v");
            r.shop = Some(common::SHOP.into());
            r.ms = gen(&mut rng);
            values.push(r.ms);
            batch.push(r);
            if batch.len() == 64 {
                for p in partials(&batch, &mut ids) {
                    w.add_partial(&p, now).expect("inside the ring");
                }
                batch.clear();
            }
        }
        for p in partials(&batch, &mut ids) {
            w.add_partial(&p, now).expect("inside the ring");
        }
        batch.clear();
        w.compress();
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
    let partial_sizes: Vec<Value> = [1, 10, 100, 1000].iter().map(|&n| partial_bytes(n)).collect();
    let out = json!({
        "persisted": levels.iter().map(|&n| persisted(n)).collect::<Vec<_>>(),
        "accuracy": acc,
        "partial_bytes": partial_sizes,
    });
    println!("FIGURES {out}");
}
