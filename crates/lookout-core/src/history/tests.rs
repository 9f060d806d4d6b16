//! The history's behaviour under a fake clock: finalization, hour percentiles from merged
//! digests, late and dropped samples, retention, storage round trips, the encoded size at
//! full retention.

use super::series::Range;
use super::*;
use crate::testdata::XorShift;

/// 2026-05-10T00:00:00Z, on an hour and a day boundary.
const T0: i64 = 1_778_371_200_000;

fn sample(ts_ms: i64, status: u16, ms: f64) -> Sample<'static> {
    Sample { ts_ms, status, ms, d1_ms: Some(ms / 10.0), error_class: None, twilio_micros: 0, claude_micros: 0 }
}

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn store(h: &mut History, db: &mut BTreeMap<(ChunkKind, i64), Vec<u8>>) -> usize {
    let chunks = h.dirty_chunks();
    let keys: Vec<(ChunkKind, i64)> = chunks.iter().map(|c| (c.kind, c.idx)).collect();
    for c in &chunks {
        db.insert((c.kind, c.idx), c.data.clone());
    }
    h.mark_persisted(&keys);
    chunks.len()
}

fn from_db(db: &BTreeMap<(ChunkKind, i64), Vec<u8>>) -> Vec<Chunk> {
    db.iter().map(|(&(kind, idx), data)| Chunk { kind, idx, data: data.clone() }).collect()
}

#[test]
fn a_minute_is_finalized_once_it_settled() {
    let mut h = History::new();
    for i in 0..100 {
        assert_eq!(
            h.add(sample(T0 + i * 500, if i < 3 { 503 } else { 200 }, (i + 1) as f64), T0 + i * 500),
            Added::Open
        );
    }
    assert_eq!(h.next_due_ms(), Some(T0 + MINUTE_MS + SETTLE_MS));
    // A fake clock stepped across the settle time: open, open, finalized.
    for (now, finalized) in
        [(T0 + MINUTE_MS, false), (T0 + MINUTE_MS + SETTLE_MS - 1, false), (T0 + MINUTE_MS + SETTLE_MS, true)]
    {
        assert_eq!(h.advance(now), finalized, "at {}", now - T0);
        assert_eq!(h.minutes.contains_key(&minute_of(T0)), finalized);
    }
    let slot = &h.minutes[&minute_of(T0)];
    assert_eq!(slot.counts.requests, 100);
    assert_eq!(slot.counts.errors_5xx, 3);
    assert_eq!(slot.counts.d1_samples, 100);
    let p50 = slot.request_p50_ms.unwrap();
    let p95 = slot.request_p95_ms.unwrap();
    assert!((p50 - 50.0).abs() <= 1.5, "p50 {p50}");
    assert!((p95 - 95.0).abs() <= 1.5, "p95 {p95}");
    // Its digests went into the open hour, which waits for the hour's end.
    assert_eq!(h.open_hours[&hour_of(T0)].counts.requests, 100);
    assert_eq!(h.next_due_ms(), Some(T0 + HOUR_MS + SETTLE_MS));
    assert!(!h.advance(T0 + HOUR_MS));
    assert!(h.advance(T0 + HOUR_MS + SETTLE_MS));
    assert_eq!(h.hours[&hour_of(T0)].counts.requests, 100);
    assert_eq!(h.next_due_ms(), None);
}

#[test]
fn hour_percentiles_come_from_merged_minute_digests_not_averages() {
    // 59 quiet minutes of fast requests and one busy minute of slow ones: the hour's p95 is
    // the slow minute's latency, which an average of minute p95s would hide.
    let mut rng = XorShift(11);
    let mut h = History::new();
    let mut all = Vec::new();
    for m in 0..60 {
        let (n, median) = if m == 30 { (3000, 400.0) } else { (200, 20.0) };
        for i in 0..n {
            let v = rng.lognormal_ms(median, 0.3);
            all.push(v);
            let ts = T0 + m * MINUTE_MS + i * (MINUTE_MS / n);
            h.add(sample(ts, 200, v), ts);
        }
        h.advance(T0 + (m + 1) * MINUTE_MS + SETTLE_MS);
    }
    h.advance(T0 + HOUR_MS + SETTLE_MS);
    all.sort_by(f64::total_cmp);
    let exact = exact_quantile(&all, 0.95);
    let hour = h.hours[&hour_of(T0)].request_p95_ms.unwrap();
    let averaged: f64 = h.minutes.values().map(|s| s.request_p95_ms.unwrap()).sum::<f64>() / 60.0;
    assert!((hour - exact).abs() / exact < 0.02, "hour p95 {hour} vs exact {exact}");
    assert!((averaged - exact).abs() / exact > 0.5, "the average {averaged} would have been far off {exact}");
    assert_eq!(h.hours[&hour_of(T0)].counts.requests, 59 * 200 + 3000);
}

#[test]
fn late_samples_count_but_do_not_move_percentiles() {
    let mut h = History::new();
    h.add(sample(T0, 200, 10.0), T0);
    h.advance(T0 + MINUTE_MS + SETTLE_MS);
    let before = h.minutes[&minute_of(T0)].clone();
    let late = Sample { error_class: Some("D1Error"), ..sample(T0 + 10, 500, 9999.0) };
    assert_eq!(h.add(late, T0 + 2 * MINUTE_MS), Added::Late);
    let after = &h.minutes[&minute_of(T0)];
    assert_eq!(after.counts.requests, 2);
    assert_eq!(after.counts.errors_5xx, 1);
    assert_eq!(after.request_p95_ms, before.request_p95_ms);
    assert_eq!(after.classes, vec![(0, 1)]);
    assert_eq!(h.counters().late_samples, 1);
    // The hour is still open: the late sample is in it too.
    assert_eq!(h.open_hours[&hour_of(T0)].counts.requests, 2);
    // Older than 30 days or from the future: dropped.
    let now = T0 + 2 * MINUTE_MS;
    assert_eq!(h.add(sample(now - 31 * DAY_MS, 200, 1.0), now), Added::Dropped);
    assert_eq!(h.add(sample(now + 2 * MAX_FUTURE_MS, 200, 1.0), now), Added::Dropped);
    assert_eq!(h.counters().dropped_samples, 2);
}

#[test]
fn retention_keeps_24h_of_minutes_and_30d_of_hours() {
    let mut h = History::new();
    h.add(sample(T0, 200, 5.0), T0);
    h.advance(T0 + HOUR_MS + SETTLE_MS);
    assert!(h.minutes.contains_key(&minute_of(T0)));
    let day = T0 + DAY_MS;
    h.advance(day - MINUTE_MS);
    assert!(h.minutes.contains_key(&minute_of(T0)), "still within 24 h");
    h.advance(day);
    assert!(!h.minutes.contains_key(&minute_of(T0)), "24 h later the minute is gone");
    assert!(h.hours.contains_key(&hour_of(T0)));
    h.advance(T0 + 30 * DAY_MS - HOUR_MS);
    assert!(h.hours.contains_key(&hour_of(T0)));
    h.advance(T0 + 30 * DAY_MS);
    assert!(!h.hours.contains_key(&hour_of(T0)), "30 days later the hour is gone");
    assert_eq!(h.retention_start_idx(ChunkKind::Hours, T0 + 30 * DAY_MS), T0 / DAY_MS);
}

#[test]
fn a_long_sleep_finalizes_everything_on_wake() {
    let mut h = History::new();
    for i in 0..10 {
        h.add(sample(T0 + i * 1000, 200, 7.0), T0 + i * 1000);
    }
    // Nothing ran for three hours (the object was evicted, say): the next call catches up.
    assert!(h.advance(T0 + 3 * HOUR_MS));
    assert_eq!(h.minutes[&minute_of(T0)].counts.requests, 10);
    assert_eq!(h.hours[&hour_of(T0)].counts.requests, 10);
    assert!(h.open_minutes.is_empty() && h.open_hours.is_empty());
}

#[test]
fn chunks_round_trip_and_traffic_alone_writes_nothing() {
    let mut rng = XorShift(5);
    let mut h = History::new();
    let mut db = BTreeMap::new();
    let classes = ["D1Error", "NotFound", "JsError"];
    let mut now = T0;
    for step in 0..(3 * 60 * 6) {
        now = T0 + 1_000 + step * 10_000;
        for k in 0..5 {
            let class = (k == 0 && step % 7 == 0).then(|| classes[(step % 3) as usize]);
            let s = Sample {
                error_class: class,
                twilio_micros: 7900 * u64::from(k == 1),
                ..sample(now - k * 100, if class.is_some() { 500 } else { 200 }, rng.lognormal_ms(40.0, 0.5))
            };
            h.add(s, now);
        }
        h.advance(now);
        store(&mut h, &mut db);
    }
    // Once stored, more traffic in the open minute leaves nothing to write.
    h.add(sample(now, 200, 3.0), now);
    assert!(h.dirty_chunks().is_empty());
    let (back, errors) = History::restore(&from_db(&db), now);
    assert!(errors.is_empty(), "{errors:?}");
    // The restored history lacks only what the open minute took since the open chunk was
    // last written (what an eviction can lose): the finalized slots are identical.
    for range in [Range::Day, Range::Month] {
        let (a, b) = (h.series("s", range, now), back.series("s", range, now));
        let n = a.series.t.len() - 1;
        assert_eq!(a.series.requests[..n], b.series.requests[..n], "{range:?}");
        assert_eq!(a.series.request_p95_ms[..n], b.series.request_p95_ms[..n], "{range:?}");
        assert_eq!(a.series.d1_p50_ms[..n], b.series.d1_p50_ms[..n], "{range:?}");
        let lost = a.totals.requests - b.totals.requests;
        assert!((1..=31).contains(&lost), "{range:?}: {lost} samples lost, more than the open minute");
    }
    assert_eq!(h.series("s", Range::Day, now - 70_000).top_error_classes.len(), 3);
    // Three hours, each a minute chunk; the hour chunks; the open chunk.
    assert_eq!(db.keys().filter(|k| k.0 == ChunkKind::Minutes).count(), 3);
    assert_eq!(db.keys().filter(|k| k.0 == ChunkKind::Open).count(), 1);
}

#[test]
fn corrupt_chunks_are_skipped_and_named() {
    let mut h = History::new();
    h.add(sample(T0, 200, 5.0), T0);
    h.advance(T0 + HOUR_MS + SETTLE_MS);
    let mut chunks = h.all_chunks();
    chunks.push(Chunk { kind: ChunkKind::Minutes, idx: hour_of(T0) + 1, data: vec![1, 200] });
    chunks.push(Chunk { kind: ChunkKind::Hours, idx: 1, data: vec![9] });
    let (back, errors) = History::restore(&chunks, T0 + HOUR_MS + SETTLE_MS);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[1], (ChunkKind::Hours, 1, DecodeError::Version(9)));
    assert_eq!(back.minutes, h.minutes);
    // Every truncation of a good chunk is an error, never a panic.
    let good = h.all_chunks().into_iter().find(|c| c.kind == ChunkKind::Minutes).unwrap();
    for cut in 0..good.data.len() {
        let c = Chunk { data: good.data[..cut].to_vec(), ..good.clone() };
        assert_eq!(History::restore(&[c], T0).1.len(), 1, "cut at {cut}");
    }
}

#[test]
fn class_names_are_capped() {
    let mut h = History::new();
    let names: Vec<String> = (0..100).map(|i| format!("Class{i}")).collect();
    for n in &names {
        h.add(Sample { error_class: Some(n), ..sample(T0, 500, 1.0) }, T0);
    }
    let long = "X".repeat(500);
    h.add(Sample { error_class: Some(&long), ..sample(T0, 500, 1.0) }, T0);
    assert_eq!(h.class_names.len(), MAX_CLASS_NAMES);
    assert_eq!(h.class_names.last().map(String::as_str), Some("Other"));
    h.advance(T0 + MINUTE_MS + SETTLE_MS);
    let s = h.series("s", Range::Day, T0 + MINUTE_MS + SETTLE_MS);
    assert_eq!(s.top_error_classes[0], series::ClassCount { class: "Other".into(), count: 38 });
}

#[test]
fn series_are_dense_aligned_and_add_up() {
    let mut h = History::new();
    let now = T0 + 90 * MINUTE_MS + 30_000;
    for m in [0, 45, 90] {
        for i in 0..10 {
            let ts = T0 + m * MINUTE_MS + i * 1000;
            let s = Sample { twilio_micros: 100, ..sample(ts, if i == 0 { 502 } else { 200 }, 10.0 + i as f64) };
            h.add(s, ts);
        }
        h.advance(T0 + m * MINUTE_MS + 20_000);
    }
    h.advance(now);
    let day = h.series("swicked", Range::Day, now);
    assert_eq!(day.series.t.len(), 1440);
    assert_eq!(day.step_s, 60);
    assert_eq!(*day.series.t.last().unwrap(), (now / MINUTE_MS) * 60);
    assert_eq!(day.totals.requests, 30);
    assert_eq!(day.totals.errors_5xx, 3);
    assert_eq!(day.totals.twilio_micros, 3000);
    assert_eq!(day.series.requests.iter().sum::<u64>(), 30);
    // The open minute (90) is in the series with its percentiles so far.
    assert_eq!(day.series.requests[1439], 10);
    assert!(day.series.request_p95_ms[1439].is_some());
    assert_eq!(day.series.error_rate[1439], Some(0.1));
    assert_eq!(day.series.error_rate[1438], None);
    let month = h.series("swicked", Range::Month, now);
    assert_eq!(month.series.t.len(), 720);
    assert_eq!(month.step_s, 3600);
    // Hour 0 finalized (minutes 0 and 45), hour 1 open (minute 90).
    assert_eq!(month.series.requests[718..], [20, 10]);
    assert_eq!(month.totals.requests, 30);
    let last = h.last_hour(now);
    assert_eq!((last.requests, last.errors_5xx), (20, 2), "minutes 45 and 90");
    assert_eq!(Range::parse(Some("7d")), Err(series::RangeError("7d".into())));
    assert_eq!(Range::parse(None), Ok(Range::Day));
    assert_eq!(Range::parse(Some("30d")), Ok(Range::Month));
}

#[test]
fn r2_samples_are_kept_per_instant_and_capped() {
    let mut h = History::new();
    for d in 0..100 {
        h.add_r2_sample(R2Sample { at_ms: T0 + d * DAY_MS, bytes: d as u64, objects: 1 });
    }
    h.add_r2_sample(R2Sample { at_ms: T0 + 99 * DAY_MS, bytes: 7, objects: 2 });
    assert_eq!(h.r2_samples().len(), MAX_R2_SAMPLES);
    assert_eq!(h.r2_samples().last().unwrap().bytes, 7);
    assert_eq!(h.r2_samples()[0].at_ms, T0 + 10 * DAY_MS);
}

/// The budget README states for the history part of a shop's storage (the rest of the
/// 512 KiB is the monitor's alerting state).
pub const HISTORY_BUDGET_BYTES: usize = 160 * 1024;

#[test]
fn full_retention_at_10_requests_a_second_fits_the_budget() {
    let now = T0 + 30 * DAY_MS + 17 * MINUTE_MS + 12_000;
    for rps in [1.0, 10.0, 100.0] {
        let mut h = History::new();
        synthetic::fill(&mut h, now, rps, 42);
        let chunks = h.all_chunks();
        let bytes: usize = chunks.iter().map(|c| c.data.len()).sum();
        assert!(bytes <= HISTORY_BUDGET_BYTES, "{rps} req/s: {bytes} bytes");
        // Full retention: every minute of 24 h and every hour of 30 days is there.
        let day = h.series("s", Range::Day, now);
        assert!(day.series.requests.iter().all(|&r| r > 0), "{rps} req/s: a minute is empty");
        let month = h.series("s", Range::Month, now);
        assert!(month.series.requests.iter().all(|&r| r > 0));
        // And it restores to the same series.
        let (back, errors) = History::restore(&chunks, now);
        assert!(errors.is_empty());
        assert_eq!(back.series("s", Range::Month, now), month);
        eprintln!("history at {rps} req/s: {bytes} bytes in {} chunks", chunks.len());
    }
}
