//! What the pure monitor core costs per operation, natively (criterion). Run through
//! `bench/run` (which reads the estimates into bench/RESULTS.md) or alone with
//! `cargo bench --bench core`. Not a test: nothing here asserts a time.
//!
//! * `ingest/*`: what the object does per record. The record path (an isolate of an older
//!   build, a panicked request's line): one record alone and in a 64-record batch, and
//!   parsing the batch body (`core::ingest::parse_batch`). The partial path (what isolates
//!   send now): parsing a body with one partial bucket of 64 records, and merging it in
//!   (with the digest compression an evaluation then does), per record;
//! * `isolate/*`: what the Worker does per request: fold a record into its shop's partial
//!   bucket, and take + serialize a 64-record partial at a flush (per record);
//! * `evaluate/full_ring`: every default rule over full windows (360 buckets of 10 s,
//!   100 records each);
//! * `digest/merge_p95_600s`: merge the 60 request-latency digests of the longest digest
//!   window and take p95 (the `request_p95` rule's path);
//! * `state/*`: encode a shop's full state (closed bucket rows + string table + snapshot, as
//!   the object writes them) and rebuild it from those bytes (as the object does on load).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{full_ring, record, XorShift, SHOP, T0};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lookout_core::ingest::{batch_body, parse_batch, partials_bodies};
use lookout_core::monitor::digest::quantile;
use lookout_core::monitor::window::{Series, StringTable};
use lookout_core::monitor::{BucketSnapshot, Monitor, MonitorSnapshot};
use lookout_core::partial::PartialAccumulator;

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

    // The partial path: one partial bucket of 64 records (one second of one isolate's traffic).
    let mut acc = PartialAccumulator::default();
    let one_second: Vec<_> = (0..64).map(|i| record(&mut rng, now - 1500 + i * 10, 3_000_000 + i as u64)).collect();
    one_second.iter().for_each(|r| acc.fold(r));
    let partial = acc.take(SHOP, || "bench-0".into()).remove(0);
    let (pbody, _) = partials_bodies(std::slice::from_ref(&partial)).remove(0);
    g.bench_function("parse_partial_of_64", |b| {
        b.iter(|| black_box(parse_batch(black_box(pbody.as_bytes()), SHOP, T0)))
    });
    let checked = partial.clone().check(SHOP).expect("valid");
    let mut k = 0u64;
    g.bench_function("partial_of_64", |b| {
        b.iter_batched_ref(
            || {
                k += 1;
                let mut p = checked.clone();
                p.id = format!("bench-{k}");
                vec![p]
            },
            |p| {
                m.ingest(&[], now);
                black_box(m.ingest_partials(p, now));
                m.compress();
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("isolate");
    g.throughput(Throughput::Elements(1));
    let mut acc = PartialAccumulator::default();
    let mut n = 0usize;
    g.bench_function("fold_record", |b| {
        b.iter(|| {
            n = (n + 1) % one_second.len();
            if n == 0 {
                acc = PartialAccumulator::default();
            }
            acc.fold(black_box(&one_second[n]));
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("take_serialize_64", |b| {
        b.iter_batched_ref(
            || {
                let mut acc = PartialAccumulator::default();
                one_second.iter().for_each(|r| acc.fold(r));
                acc
            },
            |acc| black_box(partials_bodies(&acc.take(SHOP, || "bench-1".into()))),
            BatchSize::SmallInput,
        )
    });
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

/// What the object holds for a shop: every closed bucket's row, the string table and the
/// snapshot's JSON.
fn persist(m: &mut Monitor, now: i64) -> (Vec<(i64, Vec<u8>)>, String, String) {
    let rows = m.closed_buckets(now).iter().map(|b| (b.start_ms, m.encode_bucket_row(b))).collect();
    let strings = m.strings_to_store().unwrap_or_default();
    (rows, strings, serde_json::to_string(&m.snapshot()).expect("json"))
}

fn state(c: &mut Criterion) {
    let (mut m, now) = full_ring(100, 4);
    let (rows, strings, snap) = persist(&mut m, now);
    let mut g = c.benchmark_group("state");
    g.bench_function("persist_full_ring", |b| {
        b.iter_batched_ref(|| m.clone(), |m| black_box(persist(m, now)), BatchSize::LargeInput)
    });
    g.bench_function("restore_full_ring", |b| {
        b.iter(|| {
            let table = StringTable::from_stored(&strings).expect("strings");
            let parsed: Vec<BucketSnapshot> =
                rows.iter().map(|(start, row)| BucketSnapshot::decode(*start, row, &table).expect("bucket")).collect();
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
