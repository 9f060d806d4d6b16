//! Latency sketches: a t-digest per bucket, its compact serde snapshot (centroids plus
//! sum/count/min/max) and merged quantiles. Windows and buckets live in `window.rs`.
//!
//! `tdigest` is used without its `serde` feature; a digest is persisted as a
//! [`DigestSnapshot`] and rebuilt with `TDigest::new`, which gives back an equal digest.
//! Every flushed digest is *canonical*: centroid means, sum, min and max are rounded to
//! 1e-6 ms, so a snapshot written as JSON parses back to exactly the same numbers.

use serde::{Deserialize, Serialize};
use tdigest::{Centroid, TDigest};

/// Compression of every digest (the figure measured in quantile-sketches.md).
pub const DIGEST_MAX_SIZE: usize = 100;
/// Largest `max_size` a snapshot may declare (guards against hostile or corrupt storage).
const MAX_SNAPSHOT_SIZE: usize = 1000;
/// Canonical precision of stored values: 1e-6 ms (a nanosecond).
const CANON_SCALE: f64 = 1e6;

/// A latency digest in milliseconds. Values are buffered by [`push_ms`](Self::push_ms)
/// and must be [`flush`](Self::flush)ed before queries or snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyDigest {
    inner: TDigest,
    pending: usize,
}

impl Default for LatencyDigest {
    fn default() -> Self {
        LatencyDigest { inner: TDigest::new_with_size(DIGEST_MAX_SIZE), pending: 0 }
    }
}

/// The persisted form of a digest: `centroids` are `(mean, weight)` pairs in ascending mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestSnapshot {
    pub centroids: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_size: usize,
}

/// Why a [`DigestSnapshot`] cannot be rebuilt (corrupt or foreign storage).
#[derive(Debug, Clone, PartialEq)]
pub enum DigestSnapshotError {
    /// `max_size` is zero or larger than the monitor accepts.
    BadMaxSize { max_size: usize },
    /// More centroids than `max_size`.
    TooManyCentroids { centroids: usize, max_size: usize },
    /// A mean, weight, sum, count, min or max is NaN or infinite.
    NonFinite { field: &'static str },
    /// A centroid weight is zero or negative.
    NonPositiveWeight { index: usize },
    /// `count` is not the sum of the centroid weights.
    CountMismatch { count: f64, weights: f64 },
    /// A non-empty digest without min/max, or min above max.
    BadExtrema,
    /// A centroid mean outside `[min, max]`.
    MeanOutOfRange { index: usize },
}

impl std::fmt::Display for DigestSnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadMaxSize { max_size } => write!(f, "digest max_size {max_size} not in 1..={MAX_SNAPSHOT_SIZE}"),
            Self::TooManyCentroids { centroids, max_size } => {
                write!(f, "digest has {centroids} centroids, more than max_size {max_size}")
            }
            Self::NonFinite { field } => write!(f, "digest {field} is not a finite number"),
            Self::NonPositiveWeight { index } => {
                write!(f, "digest centroid {index} has a weight <= 0")
            }
            Self::CountMismatch { count, weights } => {
                write!(f, "digest count {count} differs from the sum of weights {weights}")
            }
            Self::BadExtrema => write!(f, "digest min/max missing or min > max"),
            Self::MeanOutOfRange { index } => {
                write!(f, "digest centroid {index} mean outside [min, max]")
            }
        }
    }
}

impl std::error::Error for DigestSnapshotError {}

/// Round to the canonical precision (monotone, so order and `min <= mean <= max` survive).
fn canon(x: f64) -> f64 {
    (x * CANON_SCALE).round() / CANON_SCALE
}

impl LatencyDigest {
    /// Buffer one latency sample. Returns `false` (and ignores it) for NaN, infinite or
    /// negative values, which the digest must never see.
    pub fn push_ms(&mut self, ms: f64) -> bool {
        if !ms.is_finite() || ms < 0.0 {
            return false;
        }
        self.inner.push(ms);
        self.pending += 1;
        true
    }

    /// Compress buffered samples and make the digest canonical. Cheap when nothing is buffered.
    pub fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        self.inner.flush();
        self.pending = 0;
        let centroids = self.inner.centroids().iter().map(|c| Centroid::new(canon(c.mean()), c.weight())).collect();
        self.inner = TDigest::new(
            centroids,
            canon(self.inner.sum()),
            self.inner.count(),
            self.inner.max().map(canon),
            self.inner.min().map(canon),
            self.inner.max_size(),
        );
    }

    /// Samples recorded (including any still buffered).
    pub fn count(&self) -> u64 {
        // Counts are whole numbers well below 2^53.
        self.inner.count() as u64
    }

    /// The digest with every buffered value compressed in (a copy only when some are buffered).
    pub fn flushed(&self) -> std::borrow::Cow<'_, TDigest> {
        if self.pending == 0 {
            std::borrow::Cow::Borrowed(&self.inner)
        } else {
            let mut copy = self.clone();
            copy.flush();
            std::borrow::Cow::Owned(copy.inner)
        }
    }

    /// The persisted form (buffered values included).
    pub fn snapshot(&self) -> DigestSnapshot {
        let d = self.flushed();
        DigestSnapshot {
            centroids: d.centroids().iter().map(|c| (c.mean(), c.weight())).collect(),
            sum: d.sum(),
            count: d.count(),
            min: d.min(),
            max: d.max(),
            max_size: d.max_size(),
        }
    }

    /// Rebuild a digest from its snapshot, checking it first so that a corrupt snapshot is an
    /// error here rather than a panic inside `tdigest` later.
    pub fn from_snapshot(s: &DigestSnapshot) -> Result<Self, DigestSnapshotError> {
        validate(s)?;
        let centroids = s.centroids.iter().map(|&(m, w)| Centroid::new(m, w)).collect();
        let (min, max) = if s.count > 0.0 { (s.min, s.max) } else { (None, None) };
        let inner = TDigest::new(centroids, s.sum, s.count, max, min, s.max_size);
        Ok(LatencyDigest { inner, pending: 0 })
    }
}

fn validate(s: &DigestSnapshot) -> Result<(), DigestSnapshotError> {
    use DigestSnapshotError as E;
    if s.max_size == 0 || s.max_size > MAX_SNAPSHOT_SIZE {
        return Err(E::BadMaxSize { max_size: s.max_size });
    }
    if s.centroids.len() > s.max_size {
        return Err(E::TooManyCentroids { centroids: s.centroids.len(), max_size: s.max_size });
    }
    if !s.sum.is_finite() {
        return Err(E::NonFinite { field: "sum" });
    }
    if !s.count.is_finite() || s.count < 0.0 {
        return Err(E::NonFinite { field: "count" });
    }
    let mut weights = 0.0;
    for (index, &(mean, weight)) in s.centroids.iter().enumerate() {
        if !mean.is_finite() || !weight.is_finite() {
            return Err(E::NonFinite { field: "centroid" });
        }
        if weight <= 0.0 {
            return Err(E::NonPositiveWeight { index });
        }
        weights += weight;
    }
    if (weights - s.count).abs() > 1e-6 * s.count.max(1.0) {
        return Err(E::CountMismatch { count: s.count, weights });
    }
    if s.centroids.is_empty() {
        return Ok(());
    }
    let (min, max) = match (s.min, s.max) {
        (Some(min), Some(max)) if min.is_finite() && max.is_finite() && min <= max => (min, max),
        _ => return Err(E::BadExtrema),
    };
    match s.centroids.iter().position(|&(m, _)| m < min || m > max) {
        Some(index) => Err(E::MeanOutOfRange { index }),
        None => Ok(()),
    }
}

/// Merge several digests into one (for a window of buckets).
pub fn merge<'a>(digests: impl IntoIterator<Item = &'a LatencyDigest>) -> TDigest {
    let parts: Vec<TDigest> = digests.into_iter().filter(|d| d.count() > 0).map(|d| d.flushed().into_owned()).collect();
    TDigest::merge_digests(parts)
}

/// The `q` quantile (0..=1) of a merged digest, `None` when it holds no samples.
pub fn quantile(d: &TDigest, q: f64) -> Option<f64> {
    if d.is_empty() {
        None
    } else {
        d.estimate_quantile(q)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::testdata::XorShift;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    fn digest_of(values: &[f64]) -> LatencyDigest {
        let mut d = LatencyDigest::default();
        for &v in values {
            assert!(d.push_ms(v));
        }
        d.flush();
        d
    }

    #[test]
    fn merged_p95_is_within_one_percent_of_exact_on_lognormal_data() {
        // 60 buckets of 1,000 values: the alert path (a 10 min window of 10 s buckets).
        // Lognormal body (median 40 ms) plus a 2% tail at 300-2000 ms, as measured in
        // quantile-sketches.md; and a variant whose p95 sits near the 200 ms threshold.
        for (seed, median, sigma) in [(7u64, 40.0, 0.9), (99, 60.0, 0.75)] {
            let mut rng = XorShift(seed);
            let mut all = Vec::new();
            let mut buckets = Vec::new();
            for _ in 0..60 {
                let values: Vec<f64> = (0..1000)
                    .map(|_| {
                        if rng.next_f64() < 0.02 {
                            300.0 + 1700.0 * rng.next_f64()
                        } else {
                            rng.lognormal_ms(median, sigma)
                        }
                    })
                    .collect();
                all.extend_from_slice(&values);
                buckets.push(digest_of(&values));
            }
            all.sort_by(f64::total_cmp);
            let exact = exact_quantile(&all, 0.95);
            let estimate = quantile(&merge(&buckets), 0.95).expect("non-empty");
            let error = (estimate - exact).abs() / exact;
            assert!(error < 0.01, "seed {seed}: p95 {estimate} vs exact {exact} ({:.3}%)", error * 100.0);
        }
    }

    #[test]
    fn snapshot_rebuilds_an_equal_digest_even_through_json() {
        let mut rng = XorShift(42);
        let values: Vec<f64> = (0..5000).map(|_| rng.lognormal_ms(40.0, 1.0)).collect();
        let d = digest_of(&values);
        let json = serde_json::to_string(&d.snapshot()).expect("serialize");
        let back: DigestSnapshot = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, d.snapshot(), "JSON round trip must be exact");
        let rebuilt = LatencyDigest::from_snapshot(&back).expect("valid");
        assert_eq!(rebuilt.flushed(), d.flushed());
        for q in [0.5, 0.95, 0.99] {
            assert_eq!(quantile(&rebuilt.flushed(), q), quantile(&d.flushed(), q));
        }
    }

    #[test]
    fn empty_digest_round_trips_and_has_no_quantile() {
        let d = LatencyDigest::default();
        let rebuilt = LatencyDigest::from_snapshot(&d.snapshot()).expect("valid");
        assert_eq!(rebuilt.count(), 0);
        assert_eq!(quantile(&merge([&rebuilt, &d]), 0.95), None);
    }

    #[test]
    fn buffered_values_are_not_lost_by_snapshots_or_merges() {
        let mut d = LatencyDigest::default();
        d.push_ms(10.0);
        d.push_ms(30.0);
        assert_eq!(d.snapshot().count, 2.0);
        assert_eq!(quantile(&merge([&d]), 1.0), Some(30.0));
    }

    #[test]
    fn bad_values_are_refused_not_recorded() {
        let mut d = LatencyDigest::default();
        assert!(!d.push_ms(f64::NAN));
        assert!(!d.push_ms(f64::INFINITY));
        assert!(!d.push_ms(-1.0));
        assert!(d.push_ms(0.0));
        d.flush();
        assert_eq!(d.count(), 1);
    }

    #[test]
    fn corrupt_snapshots_are_errors_not_panics() {
        let good = digest_of(&[1.0, 2.0, 3.0]).snapshot();
        let cases: Vec<(DigestSnapshot, DigestSnapshotError)> = vec![
            (DigestSnapshot { max_size: 0, ..good.clone() }, DigestSnapshotError::BadMaxSize { max_size: 0 }),
            (DigestSnapshot { min: None, ..good.clone() }, DigestSnapshotError::BadExtrema),
            (DigestSnapshot { min: Some(5.0), ..good.clone() }, DigestSnapshotError::BadExtrema),
            (
                DigestSnapshot { count: 7.0, ..good.clone() },
                DigestSnapshotError::CountMismatch { count: 7.0, weights: 3.0 },
            ),
            (
                DigestSnapshot { centroids: vec![(1.0, 0.0), (2.0, 3.0)], ..good.clone() },
                DigestSnapshotError::NonPositiveWeight { index: 0 },
            ),
            (DigestSnapshot { sum: f64::NAN, ..good.clone() }, DigestSnapshotError::NonFinite { field: "sum" }),
            (
                DigestSnapshot { centroids: vec![(9.0, 3.0)], ..good.clone() },
                DigestSnapshotError::MeanOutOfRange { index: 0 },
            ),
        ];
        for (snapshot, expected) in cases {
            assert_eq!(LatencyDigest::from_snapshot(&snapshot), Err(expected));
        }
    }
}
