//! Latency sketches: a t-digest per bucket, its compact forms (the binary encoding the monitor
//! stores and the isolate sends, and the older JSON snapshot still read from storage) and
//! merged quantiles. Windows and buckets live in `window.rs`.
//!
//! Compression is lazy: values ([`LatencyDigest::push_ms`]) and whole digests from the
//! isolates' partial buckets ([`LatencyDigest::merge_part`]) are buffered and compressed when
//! the digest is read (a query, a snapshot), not on every ingest call.
//!
//! Every flushed digest is *canonical*: centroid means sit on a logarithmic grid
//! (`ln(1 + ms) * 10_000` rounded, a relative step of 1e-4, clamped into `[min, max]`), so the
//! binary form ([`LatencyDigest::encode`]: varint deltas of grid indices and varint weights,
//! 2-4 bytes a centroid) decodes to exactly the same digest.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tdigest::{Centroid, TDigest};

use crate::codec::{get_bounded, get_f64, get_varint, put_f64, put_varint, CodecError};

/// Compression of every digest (the figure measured in quantile-sketches.md).
pub const DIGEST_MAX_SIZE: usize = 100;
/// Largest `max_size` a snapshot may declare, and most centroids an encoded digest may hold
/// (guards against hostile or corrupt input).
const MAX_SNAPSHOT_SIZE: usize = 1000;
/// Grid of canonical means: index `k` is `exp(k / GRID) - 1` ms.
const GRID: f64 = 10_000.0;
/// Largest grid index accepted (about 10^200 ms: far past any latency, still finite).
const MAX_GRID_INDEX: u64 = 4_600_000;
/// Largest sample count of one digest (f64 counts stay exact below 2^53).
const MAX_COUNT: u64 = 1 << 53;

/// A latency digest in milliseconds. Values and merged digests are buffered and compressed
/// on [`flush`](Self::flush) (or, as a copy, by [`flushed`](Self::flushed)).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyDigest {
    inner: TDigest,
    pending: usize,
    /// Digests merged in since the last flush.
    parts: Vec<TDigest>,
    parts_count: f64,
}

impl Default for LatencyDigest {
    fn default() -> Self {
        LatencyDigest {
            inner: TDigest::new_with_size(DIGEST_MAX_SIZE),
            pending: 0,
            parts: Vec::new(),
            parts_count: 0.0,
        }
    }
}

/// The JSON form of a digest (bucket rows written before the binary form; still read):
/// `centroids` are `(mean, weight)` pairs in ascending mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestSnapshot {
    pub centroids: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_size: usize,
}

impl DigestSnapshot {
    /// The JSON form of a flushed t-digest.
    pub fn of(d: &TDigest) -> DigestSnapshot {
        DigestSnapshot {
            centroids: d.centroids().iter().map(|c| (c.mean(), c.weight())).collect(),
            sum: d.sum(),
            count: d.count(),
            min: d.min(),
            max: d.max(),
            max_size: d.max_size(),
        }
    }
}

/// Why a stored or received digest cannot be rebuilt (corrupt or foreign input).
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
    /// A non-empty digest without min/max, or min above max, or a negative min.
    BadExtrema,
    /// A centroid mean outside `[min, max]`.
    MeanOutOfRange { index: usize },
    /// The binary form is short or malformed.
    Codec(CodecError),
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
            Self::BadExtrema => write!(f, "digest min/max missing, negative or min > max"),
            Self::MeanOutOfRange { index } => {
                write!(f, "digest centroid {index} mean outside [min, max]")
            }
            Self::Codec(e) => write!(f, "digest {e}"),
        }
    }
}

impl std::error::Error for DigestSnapshotError {}

impl From<CodecError> for DigestSnapshotError {
    fn from(e: CodecError) -> Self {
        DigestSnapshotError::Codec(e)
    }
}

/// Grid position of a latency (not rounded).
fn grid(ms: f64) -> f64 {
    ms.max(0.0).ln_1p() * GRID
}

/// The latency at grid index `k`.
fn ungrid(k: u64) -> f64 {
    (k as f64 / GRID).exp_m1()
}

/// The digest with its means moved onto the grid (monotone, so order survives; clamped so
/// `min <= mean <= max` holds). Idempotent.
fn canonical(d: TDigest) -> TDigest {
    if d.is_empty() {
        return d;
    }
    let (min, max) = (d.min().unwrap_or(0.0), d.max().unwrap_or(0.0));
    let centroids = d
        .centroids()
        .iter()
        .map(|c| Centroid::new(ungrid(grid(c.mean()).round() as u64).clamp(min, max), c.weight()))
        .collect();
    TDigest::new(centroids, d.sum(), d.count(), d.max(), d.min(), d.max_size())
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

    /// Buffer a whole digest (a partial bucket's) to be merged in at the next flush.
    pub fn merge_part(&mut self, part: LatencyDigest) {
        let mut part = part;
        part.flush();
        if part.inner.is_empty() {
            return;
        }
        self.parts_count += part.inner.count();
        self.parts.push(part.inner);
    }

    /// Compress buffered samples and digests and make the digest canonical. Cheap when
    /// nothing is buffered.
    pub fn flush(&mut self) {
        if self.pending == 0 && self.parts.is_empty() {
            return;
        }
        self.inner.flush();
        self.pending = 0;
        let merged = if self.parts.is_empty() {
            std::mem::replace(&mut self.inner, TDigest::new_with_size(DIGEST_MAX_SIZE))
        } else {
            let mut all = std::mem::take(&mut self.parts);
            all.push(std::mem::replace(&mut self.inner, TDigest::new_with_size(DIGEST_MAX_SIZE)));
            self.parts_count = 0.0;
            TDigest::merge_digests(all)
        };
        self.inner = canonical(merged);
    }

    /// Whether values or digests wait to be compressed.
    pub fn is_pending(&self) -> bool {
        self.pending > 0 || !self.parts.is_empty()
    }

    /// Samples recorded (including any still buffered).
    pub fn count(&self) -> u64 {
        // Counts are whole numbers well below 2^53.
        (self.inner.count() + self.parts_count) as u64
    }

    /// The digest with everything buffered compressed in (a copy only when something is).
    pub fn flushed(&self) -> Cow<'_, TDigest> {
        if !self.is_pending() {
            Cow::Borrowed(&self.inner)
        } else {
            let mut copy = self.clone();
            copy.flush();
            Cow::Owned(copy.inner)
        }
    }

    /// The JSON form (buffered values included).
    pub fn snapshot(&self) -> DigestSnapshot {
        DigestSnapshot::of(&self.flushed())
    }

    /// Rebuild a digest from its JSON form, checking it first so that a corrupt snapshot is
    /// an error here rather than a panic inside `tdigest` later.
    pub fn from_snapshot(s: &DigestSnapshot) -> Result<Self, DigestSnapshotError> {
        validate(s)?;
        let centroids = s.centroids.iter().map(|&(m, w)| Centroid::new(m, w)).collect();
        let (min, max) = if s.count > 0.0 { (s.min, s.max) } else { (None, None) };
        let inner = TDigest::new(centroids, s.sum, s.count, max, min, s.max_size);
        Ok(LatencyDigest { inner, ..LatencyDigest::default() })
    }

    /// Append the binary form (buffered values included): `varint n`; when `n > 0`, `f64`
    /// sum, min and max, then per centroid the varint delta of its grid index and its
    /// varint weight.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let d = self.flushed();
        encode_tdigest(&d, out);
    }

    /// The binary form of `values` (latencies in ms; bad ones skipped): lossless up to the
    /// grid when there are at most [`DIGEST_MAX_SIZE`] of them, each a centroid of weight 1.
    /// What an isolate sends for a partial bucket that saw few requests.
    pub fn encode_values(values: &mut [f64], out: &mut Vec<u8>) {
        if values.len() > DIGEST_MAX_SIZE {
            let mut d = LatencyDigest::default();
            for &v in values.iter() {
                d.push_ms(v);
            }
            d.encode(out);
            return;
        }
        // Each value a centroid of weight 1 (what `canonical` would make of them), written
        // directly: no digest is built.
        values.sort_unstable_by(f64::total_cmp);
        let good = values.iter().copied().filter(|v| v.is_finite() && *v >= 0.0);
        let n = good.clone().count();
        put_varint(out, n as u64);
        if n == 0 {
            return;
        }
        put_f64(out, good.clone().sum());
        put_f64(out, good.clone().next().unwrap_or(0.0));
        put_f64(out, good.clone().next_back().unwrap_or(0.0));
        let mut last = 0u64;
        for v in good {
            let k = (grid(v).round() as u64).max(last);
            put_varint(out, k - last);
            put_varint(out, 1);
            last = k;
        }
    }

    /// Read the binary form from the front of `input` (advancing it).
    pub fn decode(input: &mut &[u8]) -> Result<Self, DigestSnapshotError> {
        use DigestSnapshotError as E;
        let n = get_bounded(input, MAX_SNAPSHOT_SIZE as u64, "digest centroids")? as usize;
        if n == 0 {
            return Ok(LatencyDigest::default());
        }
        let sum = get_f64(input, "digest sum")?;
        let min = get_f64(input, "digest min")?;
        let max = get_f64(input, "digest max")?;
        if !sum.is_finite() || sum < 0.0 {
            return Err(E::NonFinite { field: "sum" });
        }
        if !(min.is_finite() && max.is_finite() && min >= 0.0 && min <= max) {
            return Err(E::BadExtrema);
        }
        let mut centroids = Vec::with_capacity(n);
        let (mut k, mut count) = (0u64, 0u64);
        for index in 0..n {
            k = k.saturating_add(get_varint(input, "digest mean")?);
            if k > MAX_GRID_INDEX {
                return Err(E::NonFinite { field: "centroid" });
            }
            let w = get_bounded(input, MAX_COUNT, "digest weight")?;
            if w == 0 {
                return Err(E::NonPositiveWeight { index });
            }
            count = count.saturating_add(w);
            centroids.push(Centroid::new(ungrid(k).clamp(min, max), w as f64));
        }
        if count > MAX_COUNT {
            return Err(E::NonFinite { field: "count" });
        }
        let t = TDigest::new(centroids, sum, count as f64, Some(max), Some(min), DIGEST_MAX_SIZE);
        // More centroids than the compression allows were recompressed: back onto the grid.
        let inner = if n > DIGEST_MAX_SIZE { canonical(t) } else { t };
        Ok(LatencyDigest { inner, ..LatencyDigest::default() })
    }
}

fn encode_tdigest(d: &TDigest, out: &mut Vec<u8>) {
    let centroids = d.centroids();
    put_varint(out, centroids.len() as u64);
    if centroids.is_empty() {
        return;
    }
    put_f64(out, d.sum());
    put_f64(out, d.min().unwrap_or(0.0));
    put_f64(out, d.max().unwrap_or(0.0));
    let mut last = 0u64;
    for c in centroids {
        let k = (grid(c.mean()).round() as u64).max(last);
        put_varint(out, k - last);
        put_varint(out, c.weight().round().max(1.0) as u64);
        last = k;
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
    fn legacy_json_snapshots_still_rebuild_the_digest() {
        // Bucket rows written before the binary form hold JSON snapshots; they restore to the
        // same digest up to JSON's float parsing (the binary form, what is written now, is
        // exact: see the_binary_form_decodes_to_the_same_digest_in_a_few_bytes_a_centroid).
        let mut rng = XorShift(42);
        let values: Vec<f64> = (0..5000).map(|_| rng.lognormal_ms(40.0, 1.0)).collect();
        let d = digest_of(&values);
        let json = serde_json::to_string(&d.snapshot()).expect("serialize");
        let back: DigestSnapshot = serde_json::from_str(&json).expect("parse");
        let rebuilt = LatencyDigest::from_snapshot(&back).expect("valid");
        assert_eq!(rebuilt.count(), d.count());
        for q in [0.5, 0.95, 0.99] {
            let (a, b) = (quantile(&rebuilt.flushed(), q).unwrap(), quantile(&d.flushed(), q).unwrap());
            assert!((a - b).abs() <= 1e-12 * b, "q{q}: {a} vs {b}");
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
    fn the_binary_form_decodes_to_the_same_digest_in_a_few_bytes_a_centroid() {
        let mut rng = XorShift(5);
        let values: Vec<f64> = (0..5000).map(|_| rng.heavy_tail_ms()).collect();
        let d = digest_of(&values);
        let mut bytes = Vec::new();
        d.encode(&mut bytes);
        let n = d.flushed().centroids().len();
        assert!(bytes.len() <= 25 + 4 * n, "{} bytes for {n} centroids", bytes.len());
        let mut input = &bytes[..];
        let back = LatencyDigest::decode(&mut input).expect("valid");
        assert!(input.is_empty());
        assert_eq!(back.flushed(), d.flushed(), "decoding is exact");
        let mut again = Vec::new();
        back.encode(&mut again);
        assert_eq!(again, bytes, "and re-encoding is stable");
        // The grid moves a mean by at most 5e-5 of its value.
        let exact = digest_of_exact(&values);
        for q in [0.5, 0.95, 0.99] {
            let (a, b) = (quantile(&d.flushed(), q).unwrap(), quantile(&exact, q).unwrap());
            assert!((a - b).abs() <= 1e-4 * b, "q{q}: {a} vs {b}");
        }
    }

    /// The same digest as `digest_of`, off the grid.
    fn digest_of_exact(values: &[f64]) -> TDigest {
        let mut t = TDigest::new_with_size(DIGEST_MAX_SIZE);
        for &v in values {
            t.push(v);
        }
        t.flush();
        t
    }

    #[test]
    fn few_values_travel_losslessly_and_merge_like_pushes() {
        let mut values = vec![12.5, 3.0, 250.25, 3.0, 0.0];
        let mut bytes = Vec::new();
        LatencyDigest::encode_values(&mut values, &mut bytes);
        let part = LatencyDigest::decode(&mut &bytes[..]).expect("valid");
        assert_eq!(part.count(), 5);
        let d = part.flushed();
        assert_eq!((d.min(), d.max(), d.sum()), (Some(0.0), Some(250.25), 268.75));
        let means: Vec<f64> = d.centroids().iter().map(|c| c.mean()).collect();
        for (m, v) in means.iter().zip([0.0, 3.0, 3.0, 12.5, 250.25]) {
            assert!((m - v).abs() <= 5e-5 * v.max(1e-3), "{m} vs {v}");
        }
        // Merged as a part, buffered until read, then the same as pushing the values.
        let mut bucket = LatencyDigest::default();
        bucket.push_ms(40.0);
        bucket.merge_part(part);
        assert!(bucket.is_pending());
        assert_eq!(bucket.count(), 6);
        bucket.flush();
        assert!(!bucket.is_pending());
        assert_eq!(quantile(&bucket.flushed(), 1.0), Some(250.25));
        // Many values are compressed before they travel.
        let mut many: Vec<f64> = (0..1000).map(f64::from).collect();
        let mut bytes = Vec::new();
        LatencyDigest::encode_values(&mut many, &mut bytes);
        let d = LatencyDigest::decode(&mut &bytes[..]).expect("valid");
        assert_eq!(d.count(), 1000);
        assert!(d.flushed().centroids().len() <= DIGEST_MAX_SIZE);
    }

    #[test]
    fn corrupt_binary_digests_are_errors_not_panics() {
        let mut bytes = Vec::new();
        digest_of(&[1.0, 2.0, 3.0]).encode(&mut bytes);
        for cut in 0..bytes.len() {
            assert!(LatencyDigest::decode(&mut &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = vec![1u8];
        crate::codec::put_f64(&mut bad, 1.0);
        crate::codec::put_f64(&mut bad, 5.0);
        crate::codec::put_f64(&mut bad, 2.0);
        bad.extend([1, 1]);
        assert_eq!(LatencyDigest::decode(&mut &bad[..]), Err(DigestSnapshotError::BadExtrema));
        let mut zero_weight = vec![1u8];
        for x in [1.0, 1.0, 1.0] {
            crate::codec::put_f64(&mut zero_weight, x);
        }
        zero_weight.extend([1, 0]);
        assert_eq!(
            LatencyDigest::decode(&mut &zero_weight[..]),
            Err(DigestSnapshotError::NonPositiveWeight { index: 0 })
        );
        let mut huge = Vec::new();
        crate::codec::put_varint(&mut huge, 5000);
        assert!(matches!(LatencyDigest::decode(&mut &huge[..]), Err(DigestSnapshotError::Codec(_))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = LatencyDigest::decode(&mut &bytes[..]);
        }
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
