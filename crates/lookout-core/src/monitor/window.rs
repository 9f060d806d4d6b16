//! The window ring: fixed time buckets (requests, 5xx, Stripe signature failures and two
//! latency digests each), window queries as of `now_ms`, the closed-bucket snapshots the edge
//! persists. No thresholds here (rules/), no request ids (recent.rs) and no storage I/O (the
//! edge).
//!
//! Bucket `i` covers `[i * bucket_ms, (i + 1) * bucket_ms)`. The bucket holding `now_ms` is
//! the *open* one; earlier buckets are *closed*. A window of `window_s` as of `now_ms` is the
//! `window_s / bucket_s` buckets ending with the open one, so it spans between
//! `window_s - bucket_s` and `window_s` seconds of records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tdigest::TDigest;

use super::digest::{merge, DigestSnapshot, DigestSnapshotError, LatencyDigest};
use super::rules::STRIPE_SIGNATURE_ERROR_CLASS;
use super::time::s_to_ms;
use crate::record::RequestRecord;

/// Records further than this ahead of `now_ms` are rejected (clock skew guard).
pub const MAX_FUTURE_MS: i64 = 60_000;

/// Which latency digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// `record.ms`, the request's wall time.
    Request,
    /// `record.d1_slowest.ms`, the slowest D1 query of the request (when it made one).
    D1,
}

/// Why a record was not counted in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Its `ts` is older than the oldest bucket the ring holds.
    TooOld,
    /// Its `ts` is more than [`MAX_FUTURE_MS`] ahead of `now_ms`.
    TooFarInFuture,
    /// It names another shop (the monitor is per shop).
    OtherShop,
}

/// One time bucket. Digests are always flushed between [`Window`] calls.
#[derive(Debug, Clone, PartialEq)]
struct Bucket {
    requests: u64,
    errors_5xx: u64,
    stripe_signature_failures: u64,
    request_ms: LatencyDigest,
    d1_ms: LatencyDigest,
    /// Bumped on every change; the edge persists a closed bucket when it moves.
    revision: u64,
    persisted_revision: u64,
}

impl Bucket {
    fn empty() -> Self {
        Bucket {
            requests: 0,
            errors_5xx: 0,
            stripe_signature_failures: 0,
            request_ms: LatencyDigest::default(),
            d1_ms: LatencyDigest::default(),
            revision: 0,
            persisted_revision: 0,
        }
    }

    fn digest(&self, series: Series) -> &LatencyDigest {
        match series {
            Series::Request => &self.request_ms,
            Series::D1 => &self.d1_ms,
        }
    }
}

/// The persisted form of one closed bucket: self-describing (start and width) and compact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketSnapshot {
    /// Start of the bucket, Unix epoch ms; the storage key.
    pub start_ms: i64,
    pub bucket_s: u32,
    pub requests: u64,
    pub errors_5xx: u64,
    pub stripe_signature_failures: u64,
    pub request_ms: DigestSnapshot,
    pub d1_ms: DigestSnapshot,
    /// Changes when a late record lands in the bucket after it was written.
    pub revision: u64,
}

/// Identifies what the edge wrote, for [`Window::mark_persisted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketKey {
    pub start_ms: i64,
    pub revision: u64,
}

impl BucketSnapshot {
    pub fn key(&self) -> BucketKey {
        BucketKey { start_ms: self.start_ms, revision: self.revision }
    }
}

/// Why a stored bucket was skipped on restore (the rest of the restore goes on).
#[derive(Debug, Clone, PartialEq)]
pub enum BucketRestoreError {
    /// Written with another bucket width (the configuration changed).
    WrongWidth { bucket_s: u32, expected_s: u32 },
    /// `start_ms` is not on a bucket boundary.
    Misaligned,
    /// Older than the ring, or ahead of `now_ms`: nothing to restore.
    OutsideRing,
    /// 5xx or Stripe failures or latency samples exceed the request count.
    InconsistentCounts,
    /// A digest snapshot is corrupt.
    Digest { series: &'static str, error: DigestSnapshotError },
    /// A second snapshot with the same `start_ms` (the first one is kept).
    Duplicate,
}

impl std::fmt::Display for BucketRestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongWidth { bucket_s, expected_s } => {
                write!(f, "bucket is {bucket_s} s wide, configuration says {expected_s} s")
            }
            Self::Misaligned => write!(f, "bucket start is not on a bucket boundary"),
            Self::OutsideRing => write!(f, "bucket is outside the ring"),
            Self::InconsistentCounts => write!(f, "bucket counts exceed its request count"),
            Self::Digest { series, error } => write!(f, "bucket {series} digest: {error}"),
            Self::Duplicate => write!(f, "bucket stored twice"),
        }
    }
}

impl std::error::Error for BucketRestoreError {}

/// Window totals as of one `now_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WindowTotals {
    pub requests: u64,
    pub errors_5xx: u64,
    pub stripe_signature_failures: u64,
    pub request_samples: u64,
    pub d1_samples: u64,
}

/// The ring of buckets (sparse: empty buckets are not stored).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    bucket_s: u32,
    ring_buckets: i64,
    buckets: BTreeMap<i64, Bucket>,
    unflushed: Vec<i64>,
}

impl Window {
    /// A ring of `ring_buckets` buckets of `bucket_s` (both at least 1).
    pub fn new(bucket_s: u32, ring_buckets: u32) -> Self {
        Window {
            bucket_s: bucket_s.max(1),
            ring_buckets: i64::from(ring_buckets.max(1)),
            buckets: BTreeMap::new(),
            unflushed: Vec::new(),
        }
    }

    fn bucket_ms(&self) -> i64 {
        s_to_ms(self.bucket_s)
    }

    fn index(&self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.bucket_ms())
    }

    /// Index of the oldest bucket the ring holds as of `now_ms`.
    fn oldest_index(&self, now_ms: i64) -> i64 {
        self.index(now_ms) - self.ring_buckets + 1
    }

    /// Start of the oldest bucket kept as of `now_ms`: stored buckets before it can go.
    pub fn retention_start_ms(&self, now_ms: i64) -> i64 {
        self.oldest_index(now_ms).saturating_mul(self.bucket_ms())
    }

    /// Which bucket a record at `ts_ms` belongs to, or why it is refused.
    pub fn place(&self, ts_ms: i64, now_ms: i64) -> Result<i64, RejectReason> {
        if ts_ms > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(RejectReason::TooFarInFuture);
        }
        let index = self.index(ts_ms);
        if index < self.oldest_index(now_ms) {
            return Err(RejectReason::TooOld);
        }
        Ok(index)
    }

    /// Count one record. Returns how many of its latency samples were unusable (NaN,
    /// infinite or negative). Call [`flush`](Self::flush) after a batch.
    pub fn add(&mut self, record: &RequestRecord, now_ms: i64) -> Result<u32, RejectReason> {
        let index = self.place(record.ts.timestamp_millis(), now_ms)?;
        let b = self.buckets.entry(index).or_insert_with(Bucket::empty);
        b.requests = b.requests.saturating_add(1);
        if record.is_server_error() {
            b.errors_5xx = b.errors_5xx.saturating_add(1);
        }
        if record.error_class.as_deref() == Some(STRIPE_SIGNATURE_ERROR_CLASS) {
            b.stripe_signature_failures = b.stripe_signature_failures.saturating_add(1);
        }
        let mut unusable = u32::from(!b.request_ms.push_ms(record.ms));
        if let Some(q) = &record.d1_slowest {
            unusable += u32::from(!b.d1_ms.push_ms(q.ms));
        }
        b.revision += 1;
        if !self.unflushed.contains(&index) {
            self.unflushed.push(index);
        }
        Ok(unusable)
    }

    /// Compress the digests of buckets touched since the last flush.
    pub fn flush(&mut self) {
        for index in std::mem::take(&mut self.unflushed) {
            if let Some(b) = self.buckets.get_mut(&index) {
                b.request_ms.flush();
                b.d1_ms.flush();
            }
        }
    }

    /// Drop buckets that fell out of the ring as of `now_ms`.
    pub fn prune(&mut self, now_ms: i64) {
        let oldest = self.oldest_index(now_ms);
        self.buckets = self.buckets.split_off(&oldest);
    }

    /// Index range `(first, last)` of a window of `window_s` as of `now_ms`.
    fn range(&self, window_s: u32, now_ms: i64) -> (i64, i64) {
        let n = i64::from((window_s / self.bucket_s).max(1));
        let last = self.index(now_ms);
        (last - n + 1, last)
    }

    /// Counters over the last `window_s` as of `now_ms`.
    pub fn totals(&self, window_s: u32, now_ms: i64) -> WindowTotals {
        let (first, last) = self.range(window_s, now_ms);
        self.buckets.range(first..=last).fold(WindowTotals::default(), |t, (_, b)| WindowTotals {
            requests: t.requests + b.requests,
            errors_5xx: t.errors_5xx + b.errors_5xx,
            stripe_signature_failures: t.stripe_signature_failures + b.stripe_signature_failures,
            request_samples: t.request_samples + b.request_ms.count(),
            d1_samples: t.d1_samples + b.d1_ms.count(),
        })
    }

    /// The merged latency digest over the last `window_s` as of `now_ms`.
    pub fn merged(&self, series: Series, window_s: u32, now_ms: i64) -> TDigest {
        let (first, last) = self.range(window_s, now_ms);
        merge(self.buckets.range(first..=last).map(|(_, b)| b.digest(series)))
    }

    /// Whether any bucket holds a record.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The next instant after `now_ms` when some window of the given widths changes without
    /// new records: a non-empty bucket leaves it, or a future-dated bucket enters it.
    pub fn next_change_ms(&self, now_ms: i64, windows_s: &[u32]) -> Option<i64> {
        let bucket_ms = self.bucket_ms();
        let current = self.index(now_ms);
        let entering = self.buckets.range(current + 1..).next().map(|(&i, _)| i * bucket_ms);
        let leaving = windows_s.iter().filter_map(|&w| {
            let (first, last) = self.range(w, now_ms);
            let n = last - first + 1;
            self.buckets.range(first..=last).next().map(|(&i, _)| (i + n) * bucket_ms)
        });
        entering.into_iter().chain(leaving).filter(|&t| t > now_ms).min()
    }

    /// When the earliest not-yet-persisted open (or future) bucket closes: the edge should be
    /// awake then to write it.
    pub fn next_unpersisted_close_ms(&self, now_ms: i64) -> Option<i64> {
        let current = self.index(now_ms);
        self.buckets
            .range(current..)
            .find(|(_, b)| b.revision != b.persisted_revision)
            .map(|(&i, _)| (i + 1) * self.bucket_ms())
    }

    /// Whether a closed bucket waits to be persisted.
    pub fn has_dirty_closed(&self, now_ms: i64) -> bool {
        self.buckets.range(..self.index(now_ms)).any(|(_, b)| b.revision != b.persisted_revision)
    }

    /// Snapshots of closed buckets changed since they were last marked persisted.
    pub fn dirty_closed(&self, now_ms: i64) -> Vec<BucketSnapshot> {
        let current = self.index(now_ms);
        self.buckets
            .range(..current)
            .filter(|(_, b)| b.revision != b.persisted_revision)
            .map(|(&i, b)| self.snapshot(i, b))
            .collect()
    }

    fn snapshot(&self, index: i64, b: &Bucket) -> BucketSnapshot {
        BucketSnapshot {
            start_ms: index * self.bucket_ms(),
            bucket_s: self.bucket_s,
            requests: b.requests,
            errors_5xx: b.errors_5xx,
            stripe_signature_failures: b.stripe_signature_failures,
            request_ms: b.request_ms.snapshot(),
            d1_ms: b.d1_ms.snapshot(),
            revision: b.revision,
        }
    }

    /// Record that the edge stored these buckets. A bucket changed since its snapshot was
    /// taken (another revision) stays dirty.
    pub fn mark_persisted(&mut self, keys: &[BucketKey]) {
        let bucket_ms = self.bucket_ms();
        for k in keys {
            if let Some(b) = self.buckets.get_mut(&k.start_ms.div_euclid(bucket_ms)) {
                if b.revision == k.revision {
                    b.persisted_revision = k.revision;
                }
            }
        }
    }

    /// Put back a stored bucket (as persisted, so it is not written again).
    pub fn restore(&mut self, s: &BucketSnapshot, now_ms: i64) -> Result<(), BucketRestoreError> {
        use BucketRestoreError as E;
        if s.bucket_s != self.bucket_s {
            return Err(E::WrongWidth { bucket_s: s.bucket_s, expected_s: self.bucket_s });
        }
        if s.start_ms.rem_euclid(self.bucket_ms()) != 0 {
            return Err(E::Misaligned);
        }
        let index = self.index(s.start_ms);
        if index < self.oldest_index(now_ms) || index > self.index(now_ms) {
            return Err(E::OutsideRing);
        }
        if self.buckets.contains_key(&index) {
            return Err(E::Duplicate);
        }
        let bucket = bucket_from_snapshot(s)?;
        self.buckets.insert(index, bucket);
        Ok(())
    }
}

fn bucket_from_snapshot(s: &BucketSnapshot) -> Result<Bucket, BucketRestoreError> {
    let digest = |series: &'static str, d: &DigestSnapshot| {
        LatencyDigest::from_snapshot(d).map_err(|error| BucketRestoreError::Digest { series, error })
    };
    let request_ms = digest("request_ms", &s.request_ms)?;
    let d1_ms = digest("d1_ms", &s.d1_ms)?;
    let over = |n: u64| n > s.requests;
    if over(s.errors_5xx) || over(s.stripe_signature_failures) || over(request_ms.count()) || over(d1_ms.count()) {
        return Err(BucketRestoreError::InconsistentCounts);
    }
    Ok(Bucket {
        requests: s.requests,
        errors_5xx: s.errors_5xx,
        stripe_signature_failures: s.stripe_signature_failures,
        request_ms,
        d1_ms,
        revision: s.revision,
        persisted_revision: s.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SlowQuery;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    const T0: i64 = 1_778_400_000_000; // on a 10 s boundary

    fn record(ts_ms: i64, status: u16, ms: f64) -> RequestRecord {
        let ts = DateTime::<Utc>::from_timestamp_millis(ts_ms).expect("in range");
        let mut r = RequestRecord::start(ts, format!("req_{ts_ms}"), "GET", "/", "v1");
        r.status = status;
        r.ms = ms;
        r
    }

    #[test]
    fn records_land_in_their_bucket_and_age_out() {
        let mut w = Window::new(10, 30);
        for (offset_ms, status) in [(0, 200), (9_999, 500), (10_000, 200)] {
            assert!(w.add(&record(T0 + offset_ms, status, 5.0), T0 + 10_000).is_ok());
        }
        w.flush();
        let now = T0 + 10_000;
        assert_eq!(w.totals(10, now).requests, 1, "only the open bucket");
        let t = w.totals(20, now);
        assert_eq!((t.requests, t.errors_5xx, t.request_samples), (3, 1, 3));
        // 300 s later the first bucket has left a 300 s window; 10 s more and both have.
        assert_eq!(w.totals(300, T0 + 300_000).requests, 1);
        assert_eq!(w.totals(300, T0 + 310_000).requests, 0);
    }

    #[test]
    fn far_records_are_rejected_with_a_reason() {
        let mut w = Window::new(10, 30);
        let now = T0 + 1_000_000;
        assert_eq!(w.add(&record(now - 300_000, 200, 1.0), now), Err(RejectReason::TooOld));
        assert_eq!(w.add(&record(now + 60_001, 200, 1.0), now), Err(RejectReason::TooFarInFuture));
        assert!(w.add(&record(now + 60_000, 200, 1.0), now).is_ok());
        assert!(w.add(&record(now - 290_000, 200, 1.0), now).is_ok());
    }

    #[test]
    fn closed_buckets_are_dirty_once_and_again_after_a_late_record() {
        let mut w = Window::new(10, 30);
        w.add(&record(T0 + 1_000, 200, 5.0), T0 + 1_000).expect("accepted");
        w.flush();
        assert!(w.dirty_closed(T0 + 9_999).is_empty(), "the open bucket is memory only");
        let dirty = w.dirty_closed(T0 + 10_000);
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].start_ms, T0);
        w.mark_persisted(&[dirty[0].key()]);
        assert!(w.dirty_closed(T0 + 20_000).is_empty());
        // A late record changes the closed bucket: it must be written again.
        w.add(&record(T0 + 2_000, 500, 5.0), T0 + 20_000).expect("accepted");
        w.flush();
        let again = w.dirty_closed(T0 + 20_000);
        assert_eq!((again.len(), again[0].errors_5xx), (1, 1));
        // Marking with the stale revision does not hide the change.
        w.mark_persisted(&[dirty[0].key()]);
        assert_eq!(w.dirty_closed(T0 + 20_000).len(), 1);
    }

    #[test]
    fn a_bucket_snapshot_restores_the_same_figures() {
        let mut w = Window::new(10, 60);
        for i in 0..50 {
            let mut r = record(T0 + i * 100, if i % 10 == 0 { 503 } else { 200 }, 10.0 + i as f64);
            r.d1_slowest = Some(SlowQuery { sql: "SELECT 1".into(), ms: 2.0 * i as f64 });
            w.add(&r, T0).expect("accepted");
        }
        w.flush();
        let now = T0 + 10_000;
        let snaps = w.dirty_closed(now);
        let json = serde_json::to_string(&snaps).expect("serialize");
        let back: Vec<BucketSnapshot> = serde_json::from_str(&json).expect("parse");
        let mut restored = Window::new(10, 60);
        for s in &back {
            restored.restore(s, now).expect("valid");
        }
        assert_eq!(restored.totals(600, now), w.totals(600, now));
        assert_eq!(restored.merged(Series::D1, 600, now), w.merged(Series::D1, 600, now));
        assert!(restored.dirty_closed(now).is_empty(), "restored buckets are already stored");
        assert_eq!(restored.restore(&back[0], now), Err(BucketRestoreError::Duplicate));
        let other = Window::new(5, 60).restore(&back[0], now);
        assert_eq!(other, Err(BucketRestoreError::WrongWidth { bucket_s: 10, expected_s: 5 }));
        let bad = BucketSnapshot { errors_5xx: 51, ..back[0].clone() };
        assert_eq!(Window::new(10, 60).restore(&bad, now), Err(BucketRestoreError::InconsistentCounts));
        assert_eq!(Window::new(10, 60).restore(&back[0], now + 600_000), Err(BucketRestoreError::OutsideRing));
    }

    #[test]
    fn next_change_is_when_data_leaves_a_window() {
        let mut w = Window::new(10, 6);
        w.add(&record(T0 + 5_000, 200, 1.0), T0 + 5_000).expect("accepted");
        w.flush();
        // Bucket T0 leaves a 30 s window at T0 + 30 s and a 60 s window at T0 + 60 s.
        assert_eq!(w.next_change_ms(T0 + 5_000, &[30, 60]), Some(T0 + 30_000));
        assert_eq!(w.next_change_ms(T0 + 30_000, &[30, 60]), Some(T0 + 60_000));
        assert_eq!(w.next_change_ms(T0 + 60_000, &[30, 60]), None);
        // A future-dated bucket enters at its start.
        w.add(&record(T0 + 75_000, 200, 1.0), T0 + 60_000).expect("accepted");
        assert_eq!(w.next_change_ms(T0 + 60_000, &[30, 60]), Some(T0 + 70_000));
    }

    proptest! {
        /// Window totals equal the records ingested within the window: nothing lost, nothing
        /// counted twice, rejects only outside the ring.
        #[test]
        fn window_totals_equal_the_sum_of_records_in_the_window(
            recs in proptest::collection::vec((0i64..400_000, prop_oneof![Just(200u16), Just(404), Just(500), Just(503)]), 0..200),
            now_offset in 0i64..400_000,
            window_buckets in 1u32..=30,
        ) {
            let (bucket_s, ring) = (10u32, 30u32);
            let now = T0 + now_offset;
            let mut w = Window::new(bucket_s, ring);
            let mut accepted = Vec::new();
            for (offset, status) in &recs {
                let r = record(T0 + offset, *status, 1.0);
                let ts = T0 + offset;
                let too_old = ts.div_euclid(10_000) <= now.div_euclid(10_000) - i64::from(ring);
                match w.add(&r, now) {
                    Ok(_) => { prop_assert!(!too_old && ts <= now + MAX_FUTURE_MS); accepted.push((ts, *status)); }
                    Err(RejectReason::TooOld) => prop_assert!(too_old),
                    Err(RejectReason::TooFarInFuture) => prop_assert!(ts > now + MAX_FUTURE_MS),
                    Err(RejectReason::OtherShop) => prop_assert!(false),
                }
            }
            w.flush();
            let window_s = window_buckets * bucket_s;
            let first = now.div_euclid(10_000) - i64::from(window_buckets) + 1;
            let in_window: Vec<_> = accepted.iter()
                .filter(|(ts, _)| (first..=now.div_euclid(10_000)).contains(&ts.div_euclid(10_000)))
                .collect();
            let t = w.totals(window_s, now);
            prop_assert_eq!(t.requests, in_window.len() as u64);
            prop_assert_eq!(t.errors_5xx, in_window.iter().filter(|(_, s)| *s >= 500).count() as u64);
            prop_assert_eq!(t.request_samples, in_window.len() as u64);
        }
    }
}
