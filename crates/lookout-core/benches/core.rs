//! What the pure monitor core costs per operation, natively (criterion). Run through
//! `bench/run` (which reads the estimates into bench/RESULTS.md) or alone with
//! `cargo bench --bench core`. Not a test: nothing here asserts a time.
//!
//! * `ingest/*`: one record into the monitor, alone and in a 64-record batch (per record),
//!   and parsing the batch body the object receives (`core::ingest::parse_batch`);
//! * `evaluate/full_ring`: every default rule over full windows (360 buckets of 10 s,
//!   100 records each);
//! * `digest/merge_p95_600s`: merge the 60 request-latency digests of the longest digest
//!   window and take p95 (the `request_p95` rule's path);
//! * `state/*`: serialize a shop's full state (closed buckets + snapshot, as the object
//!   writes them) and rebuild it from that JSON (as the object does on load).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{full_ring, record, XorShift, SHOP, T0};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lookout_core::ingest::{batch_body, parse_batch};
use lookout_core::monitor::digest::quantile;
use lookout_core::monitor::window::Series;
use lookout_core::monitor::{BucketSnapshot, Monitor, MonitorSnapshot};

fn ingest(c: &mut Criterion) {
    let mut g = c.benchmark_group("ingest");
    let mut rng = XorShift(7);
    // A warm monitor: the open bucket already holds 1,000 records (a full digest).
    let (mut m, now) = full_ring(100, 1);
    let warm: Vec<_> = (0..1000).map(|i| record(&mut rng, now - 5000 + i, 1_000_000 + i as u64)).collect();
    for chunk in warm.chunks(64) {
        m.ingest(chunk, now);
    }
    let pool: Vec<_> = (0..4096).map(|i| record(&mut rng, now - 2000, 2_000_000 + i as u64)).collect();

    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("one_record_alone", |b| {
        b.iter(|| {
            i = (i + 1) % pool.len();
            black_box(m.ingest(std::slice::from_ref(&pool[i]), now))
        })
    });

    g.throughput(Throughput::Elements(64));
    let mut j = 0usize;
    g.bench_function("batch_of_64", |b| {
        b.iter(|| {
            j = (j + 64) % (pool.len() - 64);
            black_box(m.ingest(&pool[j..j + 64], now))
        })
    });

    let lines: Vec<String> = pool[..64].iter().map(|r| r.to_line()).collect();
    let body = batch_body(lines.iter().map(String::as_str));
    g.bench_function("parse_batch_of_64", |b| b.iter(|| black_box(parse_batch(black_box(body.as_bytes()), SHOP, T0))));
    g.finish();
}

fn evaluate(c: &mut Criterion) {
    let (m, now) = full_ring(100, 2);
    let mut g = c.benchmark_group("evaluate");
    // Clone per iteration (outside the timing) so every evaluation sees the same state.
    g.bench_function("full_ring", |b| {
        b.iter_batched_ref(|| m.clone(), |m| black_box(m.evaluate(now)), BatchSize::LargeInput)
    });
    g.finish();
}

fn digest(c: &mut Criterion) {
    let (m, now) = full_ring(1000, 3);
    let status = m.status(now); // sanity: the window is full
    assert!(status.windows.iter().any(|w| w.window_s == 600 && w.requests > 50_000));
    let window = lookout_window(&m);
    let mut g = c.benchmark_group("digest");
    g.bench_function("merge_p95_600s", |b| {
        b.iter(|| {
            let d = window.merged(Series::Request, 600, now);
            black_box(quantile(&d, 0.95))
        })
    });
    g.finish();
}

/// The window of a monitor, rebuilt from its persisted buckets (the monitor keeps it private).
fn lookout_window(m: &Monitor) -> lookout_core::monitor::window::Window {
    let rules = &m.config().rules;
    let bucket_ms = i64::from(rules.bucket_s) * 1000;
    let now = T0 + bucket_ms - 1;
    let mut w = lookout_core::monitor::window::Window::new(rules.bucket_s, rules.ring_buckets());
    // As of the next bucket every filled bucket is closed; restored as of `now` they make a
    // window of 60 full buckets ending with the one holding `now`.
    for b in m.dirty_closed_buckets(now + bucket_ms) {
        w.restore(&b, now).expect("restorable bucket");
    }
    w
}

/// What the object writes for a shop: every closed bucket's JSON and the snapshot's JSON.
fn persist(m: &Monitor, now: i64) -> (Vec<String>, String) {
    let buckets = m.dirty_closed_buckets(now).iter().map(|b| serde_json::to_string(b).expect("json")).collect();
    (buckets, serde_json::to_string(&m.snapshot()).expect("json"))
}

fn state(c: &mut Criterion) {
    let (m, now) = full_ring(100, 4);
    let (buckets, snap) = persist(&m, now);
    let mut g = c.benchmark_group("state");
    g.bench_function("persist_full_ring", |b| b.iter(|| black_box(persist(&m, now))));
    g.bench_function("restore_full_ring", |b| {
        b.iter(|| {
            let parsed: Vec<BucketSnapshot> =
                buckets.iter().map(|s| serde_json::from_str(s).expect("bucket")).collect();
            let snapshot: MonitorSnapshot = serde_json::from_str(&snap).expect("snapshot");
            black_box(Monitor::restore(m.config().clone(), SHOP, Some(snapshot), &parsed, now).expect("restore"))
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the whole harness must fit in minutes on 2 cores; criterion's estimates
    // still carry confidence intervals.
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = ingest, evaluate, digest, state }
criterion_main!(benches);
