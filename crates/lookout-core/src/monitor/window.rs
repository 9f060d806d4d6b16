//! The window ring: fixed time buckets, window queries as of `now_ms`, the closed-bucket
//! snapshots the edge persists and their binary row form. No thresholds here (rules/), no
//! request ids (recent.rs) and no storage I/O (the edge).
//!
//! Bucket `i` covers `[i * bucket_ms, (i + 1) * bucket_ms)`. The bucket holding `now_ms` is
//! the *open* one; earlier buckets are *closed*. A window of `window_s` as of `now_ms` is the
//! `window_s / bucket_s` buckets ending with the open one, so it spans between
//! `window_s - bucket_s` and `window_s` seconds of records.
//!
//! Every bucket keeps its counts (requests, 5xx, Stripe signature failures, Twilio and Claude
//! spend). Only the buckets of the *detail window* (the longest window of a rule that reads
//! latency or diagnosis: `http_5xx_rate`, `request_p95`, `d1_p95`, 600 s by default) also keep
//! the two latency digests and the [`Diagnosis`]; an older bucket is *demoted* to its counts
//! (and written again, smaller). Digests are compressed lazily: [`Window::compress`] (the
//! monitor calls it before evaluating) or a copy when a digest is read.
//!
//! Records come in two ways: one by one ([`Window::add`], the request lines an old isolate
//! or a panicked request sends) or folded by an isolate into a [`Partial`]
//! ([`Window::add_partial`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tdigest::TDigest;

use super::diagnosis::{Diagnosis, ErrorClassStat, SlowStat, ERROR_CLASSES_KEPT, SLOW_KEPT};
use super::digest::{merge, DigestSnapshot, DigestSnapshotError, LatencyDigest};
use super::rules::STRIPE_SIGNATURE_ERROR_CLASS;
use super::time::s_to_ms;
use crate::codec::{get_bounded, get_signed, get_varint, put_signed, put_varint, CodecError, CodecErrorKind};
use crate::partial::Partial;
use crate::record::RequestRecord;

/// Records further than this ahead of `now_ms` are rejected (clock skew guard).
pub const MAX_FUTURE_MS: i64 = 60_000;
/// Version byte of a bucket row ([`BucketSnapshot::encode`]).
pub const BUCKET_ROW_FORMAT: u8 = 2;

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

/// What every bucket counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCounts {
    pub requests: u64,
    pub errors_5xx: u64,
    pub stripe_signature_failures: u64,
    /// Spend of the bucket's requests, micro-dollars.
    pub twilio_micros: u64,
    pub claude_micros: u64,
}

/// What a bucket of the detail window keeps besides its counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BucketDetail {
    pub request_ms: LatencyDigest,
    pub d1_ms: LatencyDigest,
    pub diagnosis: Diagnosis,
}

impl BucketDetail {
    fn digest(&self, series: Series) -> &LatencyDigest {
        match series {
            Series::Request => &self.request_ms,
            Series::D1 => &self.d1_ms,
        }
    }
}

/// One time bucket.
#[derive(Debug, Clone, PartialEq)]
struct Bucket {
    counts: BucketCounts,
    detail: Option<Box<BucketDetail>>,
    /// Bumped on every change; the edge persists a closed bucket when it moves.
    revision: u64,
    persisted_revision: u64,
}

impl Bucket {
    fn empty(with_detail: bool) -> Self {
        Bucket {
            counts: BucketCounts::default(),
            detail: with_detail.then(Box::default),
            revision: 0,
            persisted_revision: 0,
        }
    }
}

/// The persisted form of one closed bucket: self-describing (start and width).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSnapshot {
    /// Start of the bucket, Unix epoch ms; the storage key.
    pub start_ms: i64,
    pub bucket_s: u32,
    pub counts: BucketCounts,
    /// Digests and diagnosis: only for buckets of the detail window.
    pub detail: Option<BucketDetail>,
    /// Changes when a late record lands in the bucket after it was written (or when it is
    /// demoted to its counts).
    pub revision: u64,
}

/// A bucket row as written before the binary form (JSON, counts and two digests); still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyBucketSnapshot {
    pub start_ms: i64,
    pub bucket_s: u32,
    pub requests: u64,
    pub errors_5xx: u64,
    pub stripe_signature_failures: u64,
    pub request_ms: DigestSnapshot,
    pub d1_ms: DigestSnapshot,
    pub revision: u64,
}

impl LegacyBucketSnapshot {
    /// The same bucket in the current form (no diagnosis: legacy rows had none).
    pub fn upgrade(&self) -> Result<BucketSnapshot, BucketRestoreError> {
        let digest = |series: &'static str, d: &DigestSnapshot| {
            LatencyDigest::from_snapshot(d).map_err(|error| BucketRestoreError::Digest { series, error })
        };
        Ok(BucketSnapshot {
            start_ms: self.start_ms,
            bucket_s: self.bucket_s,
            counts: BucketCounts {
                requests: self.requests,
                errors_5xx: self.errors_5xx,
                stripe_signature_failures: self.stripe_signature_failures,
                ..BucketCounts::default()
            },
            detail: Some(BucketDetail {
                request_ms: digest("request_ms", &self.request_ms)?,
                d1_ms: digest("d1_ms", &self.d1_ms)?,
                diagnosis: Diagnosis::default(),
            }),
            revision: self.revision,
        })
    }
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

    /// The binary row (its key, `start_ms`, is the row's): format byte, width, revision,
    /// counts as varints, then when present the two digests and the diagnosis with its strings
    /// as ids of `strings`. About 10 bytes for a counts-only bucket.
    pub fn encode(&self, strings: &mut StringTable) -> Vec<u8> {
        let mut out = Vec::with_capacity(if self.detail.is_some() { 512 } else { 16 });
        out.push(BUCKET_ROW_FORMAT);
        put_varint(&mut out, u64::from(self.bucket_s));
        put_varint(&mut out, self.revision);
        let c = &self.counts;
        for v in [c.requests, c.errors_5xx, c.stripe_signature_failures, c.twilio_micros, c.claude_micros] {
            put_varint(&mut out, v);
        }
        match &self.detail {
            None => out.push(0),
            Some(d) => {
                out.push(1);
                d.request_ms.encode(&mut out);
                d.d1_ms.encode(&mut out);
                encode_diagnosis(&d.diagnosis, self.start_ms, strings, &mut out);
            }
        }
        out
    }

    /// Read a row written by [`encode`](Self::encode). Strings missing from `strings` (a table
    /// lost or damaged) drop the diagnosis entries that use them, not the bucket.
    pub fn decode(start_ms: i64, bytes: &[u8], strings: &StringTable) -> Result<BucketSnapshot, BucketRestoreError> {
        let mut input = bytes;
        let codec = |e: CodecError| BucketRestoreError::Codec(e);
        let format = *input.first().ok_or(codec(CodecError::new("bucket row", CodecErrorKind::Truncated)))?;
        if format != BUCKET_ROW_FORMAT {
            return Err(BucketRestoreError::UnknownFormat { format });
        }
        input = &input[1..];
        let bucket_s = get_bounded(&mut input, u64::from(u32::MAX), "bucket_s").map_err(codec)? as u32;
        let revision = get_varint(&mut input, "revision").map_err(codec)?;
        let mut c = [0u64; 5];
        for (v, what) in c.iter_mut().zip(["requests", "errors_5xx", "stripe", "twilio", "claude"]) {
            *v = get_varint(&mut input, what).map_err(codec)?;
        }
        let counts = BucketCounts {
            requests: c[0],
            errors_5xx: c[1],
            stripe_signature_failures: c[2],
            twilio_micros: c[3],
            claude_micros: c[4],
        };
        let has_detail = get_bounded(&mut input, 1, "detail flag").map_err(codec)? == 1;
        let detail = if has_detail {
            let digest = |series: &'static str, input: &mut &[u8]| {
                LatencyDigest::decode(input).map_err(|error| BucketRestoreError::Digest { series, error })
            };
            let request_ms = digest("request_ms", &mut input)?;
            let d1_ms = digest("d1_ms", &mut input)?;
            let diagnosis = decode_diagnosis(&mut input, start_ms, strings).map_err(codec)?;
            Some(BucketDetail { request_ms, d1_ms, diagnosis })
        } else {
            None
        };
        if !input.is_empty() {
            return Err(codec(CodecError::new("bucket row", CodecErrorKind::TrailingBytes)));
        }
        Ok(BucketSnapshot { start_ms, bucket_s, counts, detail, revision })
    }
}

fn encode_diagnosis(d: &Diagnosis, start_ms: i64, strings: &mut StringTable, out: &mut Vec<u8>) {
    let mut id = |s: &str| strings.intern(s);
    put_varint(out, d.errors.len() as u64);
    for e in &d.errors {
        let ids = [id(&e.class), id(&e.route), id(&e.first_build)];
        for i in ids {
            put_varint(out, i);
        }
        put_varint(out, e.count);
        put_varint(out, e.count_5xx);
        put_signed(out, e.first_ts_ms.saturating_sub(start_ms));
    }
    for list in [&d.slow_routes, &d.slow_d1] {
        put_varint(out, list.len() as u64);
        for s in list {
            put_varint(out, id(&s.key));
            put_varint(out, (s.max_ms * 1000.0).round() as u64);
            put_varint(out, s.count);
            put_varint(out, (s.sum_ms * 1000.0).round() as u64);
        }
    }
}

fn decode_diagnosis(input: &mut &[u8], start_ms: i64, strings: &StringTable) -> Result<Diagnosis, CodecError> {
    let mut d = Diagnosis::default();
    let n = get_bounded(input, ERROR_CLASSES_KEPT as u64, "error classes")?;
    for _ in 0..n {
        let class = get_varint(input, "class")?;
        let route = get_varint(input, "route")?;
        let build = get_varint(input, "build")?;
        let count = get_varint(input, "count")?;
        let count_5xx = get_varint(input, "count_5xx")?;
        let first_ts_ms = start_ms.saturating_add(get_signed(input, "first_ts_ms")?);
        if let (Some(class), Some(route), Some(first_build)) =
            (strings.get(class), strings.get(route), strings.get(build))
        {
            d.errors.push(ErrorClassStat {
                class: class.to_string(),
                count,
                count_5xx,
                route: route.to_string(),
                first_build: first_build.to_string(),
                first_ts_ms,
            });
        }
    }
    for routes in [true, false] {
        let n = get_bounded(input, SLOW_KEPT as u64, "slow entries")?;
        for _ in 0..n {
            let key = get_varint(input, "slow key")?;
            let max_us = get_varint(input, "max_ms")?;
            let count = get_varint(input, "slow count")?;
            let sum_us = get_varint(input, "sum_ms")?;
            if let Some(key) = strings.get(key) {
                let s = SlowStat {
                    key: key.to_string(),
                    max_ms: max_us as f64 / 1000.0,
                    count,
                    sum_ms: sum_us as f64 / 1000.0,
                };
                if routes {
                    d.slow_routes.push(s)
                } else {
                    d.slow_d1.push(s)
                }
            }
        }
    }
    Ok(d)
}

/// The strings of the stored diagnoses (error classes, routes, builds, D1 signatures), each
/// stored once (the `meta` row `strings`) and referenced by id from bucket rows: routes and
/// signatures repeat in every bucket. Ids are never reused; strings no bucket of the detail
/// window uses any more are dropped ([`Window::collect_strings`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StringTable {
    by_id: BTreeMap<u64, String>,
    ids: HashMap<String, u64>,
    next: u64,
    changed: bool,
}

#[derive(Serialize, Deserialize)]
struct StringTableJson {
    next: u64,
    strings: Vec<(u64, String)>,
}

impl StringTable {
    /// The id of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> u64 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        self.next += 1;
        let id = self.next;
        self.by_id.insert(id, s.to_string());
        self.ids.insert(s.to_string(), id);
        self.changed = true;
        id
    }

    pub fn get(&self, id: u64) -> Option<&str> {
        self.by_id.get(&id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Drop every string not in `live`.
    fn retain(&mut self, live: &HashSet<&str>) {
        let before = self.by_id.len();
        self.by_id.retain(|_, s| live.contains(s.as_str()));
        self.ids.retain(|s, _| live.contains(s.as_str()));
        self.changed |= self.by_id.len() != before;
    }

    /// The stored form (JSON) when the table changed since [`mark_stored`](Self::mark_stored).
    pub fn to_store(&self) -> Option<String> {
        self.changed.then(|| self.stored_form())
    }

    /// The stored form (JSON), whether or not it changed.
    pub fn stored_form(&self) -> String {
        let strings = self.by_id.iter().map(|(k, v)| (*k, v.clone())).collect();
        serde_json::to_string(&StringTableJson { next: self.next, strings }).unwrap_or_default()
    }

    pub fn mark_stored(&mut self) {
        self.changed = false;
    }

    /// Read the stored form.
    pub fn from_stored(json: &str) -> Result<StringTable, serde_json::Error> {
        let j: StringTableJson = serde_json::from_str(json)?;
        let mut t = StringTable { next: j.next, ..StringTable::default() };
        for (id, s) in j.strings {
            t.next = t.next.max(id);
            t.ids.insert(s.clone(), id);
            t.by_id.insert(id, s);
        }
        Ok(t)
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
    /// A digest is corrupt.
    Digest { series: &'static str, error: DigestSnapshotError },
    /// A second snapshot with the same `start_ms` (the first one is kept).
    Duplicate,
    /// The row is short or malformed.
    Codec(CodecError),
    /// The row was written in a layout this code does not read.
    UnknownFormat { format: u8 },
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
            Self::Codec(e) => write!(f, "bucket row: {e}"),
            Self::UnknownFormat { format } => write!(f, "bucket row format {format} is not read by this build"),
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
    /// Latency samples (over the buckets of the window that keep digests).
    pub request_samples: u64,
    pub d1_samples: u64,
    pub twilio_micros: u64,
    pub claude_micros: u64,
}

/// The ring of buckets (sparse: empty buckets are not stored).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    bucket_s: u32,
    ring_buckets: i64,
    detail_buckets: i64,
    buckets: BTreeMap<i64, Bucket>,
    unflushed: Vec<i64>,
    strings: StringTable,
}

impl Window {
    /// A ring of `ring_buckets` buckets of `bucket_s` (both at least 1), every one with detail.
    pub fn new(bucket_s: u32, ring_buckets: u32) -> Self {
        Self::with_detail(bucket_s, ring_buckets, ring_buckets)
    }

    /// A ring of `ring_buckets` whose newest `detail_buckets` keep digests and diagnosis.
    pub fn with_detail(bucket_s: u32, ring_buckets: u32, detail_buckets: u32) -> Self {
        let ring = i64::from(ring_buckets.max(1));
        Window {
            bucket_s: bucket_s.max(1),
            ring_buckets: ring,
            detail_buckets: i64::from(detail_buckets.max(1)).min(ring),
            buckets: BTreeMap::new(),
            unflushed: Vec::new(),
            strings: StringTable::default(),
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

    /// Index of the oldest bucket that keeps detail as of `now_ms`.
    fn oldest_detail_index(&self, now_ms: i64) -> i64 {
        self.index(now_ms) - self.detail_buckets + 1
    }

    /// The detail window in seconds: latency figures of longer windows are not kept.
    pub fn detail_window_s(&self) -> u32 {
        (self.detail_buckets as u32).saturating_mul(self.bucket_s)
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

    /// The bucket at `index` (created when absent), marked changed.
    fn touch(&mut self, index: i64, now_ms: i64) -> &mut Bucket {
        let with_detail = index >= self.oldest_detail_index(now_ms);
        if with_detail && !self.unflushed.contains(&index) {
            self.unflushed.push(index);
        }
        let b = self.buckets.entry(index).or_insert_with(|| Bucket::empty(with_detail));
        b.revision += 1;
        b
    }

    /// Count one record. Returns how many of its latency samples were unusable (NaN,
    /// infinite or negative).
    pub fn add(&mut self, record: &RequestRecord, now_ms: i64) -> Result<u32, RejectReason> {
        let index = self.place(record.ts.timestamp_millis(), now_ms)?;
        let b = self.touch(index, now_ms);
        let c = &mut b.counts;
        c.requests = c.requests.saturating_add(1);
        if record.is_server_error() {
            c.errors_5xx = c.errors_5xx.saturating_add(1);
        }
        if record.error_class.as_deref() == Some(STRIPE_SIGNATURE_ERROR_CLASS) {
            c.stripe_signature_failures = c.stripe_signature_failures.saturating_add(1);
        }
        c.twilio_micros = c.twilio_micros.saturating_add(record.cost_micros.twilio);
        c.claude_micros = c.claude_micros.saturating_add(record.cost_micros.claude);
        let usable = |ms: f64| ms.is_finite() && ms >= 0.0;
        let mut unusable = u32::from(!usable(record.ms));
        if let Some(q) = &record.d1_slowest {
            unusable += u32::from(!usable(q.ms));
        }
        if let Some(d) = &mut b.detail {
            d.request_ms.push_ms(record.ms);
            if let Some(q) = &record.d1_slowest {
                d.d1_ms.push_ms(q.ms);
            }
            d.diagnosis.note(record);
        }
        Ok(unusable)
    }

    /// Count an isolate's partial bucket (all its records at once).
    pub fn add_partial(&mut self, p: &Partial, now_ms: i64) -> Result<(), RejectReason> {
        if p.last_ts_ms > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(RejectReason::TooFarInFuture);
        }
        let index = self.place(p.start_ms, now_ms)?;
        let b = self.touch(index, now_ms);
        let c = &mut b.counts;
        c.requests = c.requests.saturating_add(p.requests);
        c.errors_5xx = c.errors_5xx.saturating_add(p.errors_5xx);
        c.stripe_signature_failures = c.stripe_signature_failures.saturating_add(p.stripe_signature_failures);
        c.twilio_micros = c.twilio_micros.saturating_add(p.cost_micros.twilio);
        c.claude_micros = c.claude_micros.saturating_add(p.cost_micros.claude);
        if let Some(d) = &mut b.detail {
            d.request_ms.merge_part(p.request_ms.clone());
            d.d1_ms.merge_part(p.d1_ms.clone());
            d.diagnosis.merge(&p.diagnosis);
        }
        Ok(())
    }

    /// Compress the digests of buckets changed since the last call (lazy: the monitor calls
    /// it before evaluating; reads in between work on compressed copies).
    pub fn compress(&mut self) {
        for index in std::mem::take(&mut self.unflushed) {
            if let Some(d) = self.buckets.get_mut(&index).and_then(|b| b.detail.as_mut()) {
                d.request_ms.flush();
                d.d1_ms.flush();
            }
        }
    }

    /// [`compress`](Self::compress), under its former name.
    pub fn flush(&mut self) {
        self.compress();
    }

    /// Drop buckets that fell out of the ring as of `now_ms`, and demote those that left the
    /// detail window to their counts (they are written again, smaller).
    pub fn prune(&mut self, now_ms: i64) {
        let oldest = self.oldest_index(now_ms);
        self.buckets = self.buckets.split_off(&oldest);
        let oldest_detail = self.oldest_detail_index(now_ms);
        for (_, b) in self.buckets.range_mut(..oldest_detail) {
            if b.detail.take().is_some() {
                b.revision += 1;
            }
        }
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
        self.buckets.range(first..=last).fold(WindowTotals::default(), |t, (_, b)| {
            let c = &b.counts;
            let samples = |s: Series| b.detail.as_ref().map_or(0, |d| d.digest(s).count());
            WindowTotals {
                requests: t.requests + c.requests,
                errors_5xx: t.errors_5xx + c.errors_5xx,
                stripe_signature_failures: t.stripe_signature_failures + c.stripe_signature_failures,
                request_samples: t.request_samples + samples(Series::Request),
                d1_samples: t.d1_samples + samples(Series::D1),
                twilio_micros: t.twilio_micros.saturating_add(c.twilio_micros),
                claude_micros: t.claude_micros.saturating_add(c.claude_micros),
            }
        })
    }

    /// The merged latency digest over the last `window_s` as of `now_ms` (over the buckets
    /// that keep digests: all of them for a window within the detail window).
    pub fn merged(&self, series: Series, window_s: u32, now_ms: i64) -> TDigest {
        let (first, last) = self.range(window_s, now_ms);
        merge(self.buckets.range(first..=last).filter_map(|(_, b)| b.detail.as_ref().map(|d| d.digest(series))))
    }

    /// Error classes, slowest routes and slowest D1 signatures over the last `window_s` as of
    /// `now_ms` (within the detail window), most relevant first.
    pub fn diagnosis(&self, window_s: u32, now_ms: i64) -> Diagnosis {
        let (first, last) = self.range(window_s, now_ms);
        let mut out = Diagnosis::default();
        for d in self.buckets.range(first..=last).filter_map(|(_, b)| b.detail.as_ref()) {
            out.merge(&d.diagnosis);
        }
        out.sort();
        out
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

    /// Snapshots of every bucket not stored as it is now, the open one included (what a
    /// hand-over must carry so nothing is lost).
    pub fn unpersisted(&self) -> Vec<BucketSnapshot> {
        self.buckets
            .iter()
            .filter(|(_, b)| b.revision != b.persisted_revision)
            .map(|(&i, b)| self.snapshot(i, b))
            .collect()
    }

    /// Snapshots of every closed bucket, as stored.
    pub fn closed(&self, now_ms: i64) -> Vec<BucketSnapshot> {
        let current = self.index(now_ms);
        self.buckets.range(..current).map(|(&i, b)| self.snapshot(i, b)).collect()
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
            counts: b.counts,
            detail: b.detail.as_ref().map(|d| {
                let flushed = |x: &LatencyDigest| {
                    let mut x = x.clone();
                    x.flush();
                    x
                };
                BucketDetail {
                    request_ms: flushed(&d.request_ms),
                    d1_ms: flushed(&d.d1_ms),
                    diagnosis: d.diagnosis.clone(),
                }
            }),
            revision: b.revision,
        }
    }

    /// The binary row of a snapshot (strings go to this window's table).
    pub fn encode_row(&mut self, s: &BucketSnapshot) -> Vec<u8> {
        s.encode(&mut self.strings)
    }

    /// Drop the strings no bucket keeps any more; then the table when it changed, to store
    /// (`meta` key `strings`), else `None`. Call after the bucket rows are written.
    pub fn collect_strings(&mut self) -> Option<String> {
        let mut live: HashSet<&str> = HashSet::new();
        for d in self.buckets.values().filter_map(|b| b.detail.as_ref()) {
            live.extend(d.diagnosis.strings());
        }
        let mut strings = std::mem::take(&mut self.strings);
        strings.retain(&live);
        self.strings = strings;
        self.strings.to_store()
    }

    /// The string table was stored.
    pub fn mark_strings_stored(&mut self) {
        self.strings.mark_stored();
    }

    /// The string table bucket rows refer to (for decoding them on restore).
    pub fn strings(&self) -> &StringTable {
        &self.strings
    }

    /// Put back the stored string table (before the bucket rows that use it).
    pub fn set_strings(&mut self, strings: StringTable) {
        self.strings = strings;
    }

    /// The whole string table's stored form (rows of a hand-over may use any of it).
    pub fn strings_stored_form(&self) -> String {
        self.strings.stored_form()
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

    /// Put back a stored bucket (as persisted, so it is not written again; a bucket that
    /// left the detail window meanwhile is demoted and will be written again). The open
    /// bucket may be put back too (from a hand-over).
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
        let c = &s.counts;
        let over = |n: u64| n > c.requests;
        let samples = |series: Series| s.detail.as_ref().map_or(0, |d| d.digest(series).count());
        if over(c.errors_5xx)
            || over(c.stripe_signature_failures)
            || over(samples(Series::Request))
            || over(samples(Series::D1))
        {
            return Err(E::InconsistentCounts);
        }
        let keep_detail = index >= self.oldest_detail_index(now_ms);
        let demoted = s.detail.is_some() && !keep_detail;
        let detail = if keep_detail { s.detail.clone().map(Box::new) } else { None };
        let revision = s.revision + u64::from(demoted);
        self.buckets.insert(index, Bucket { counts: s.counts, detail, revision, persisted_revision: s.revision });
        Ok(())
    }

    /// Mark the bucket of `start_ms` as not yet stored (a row read from a legacy table, to be
    /// written in the current form).
    pub fn mark_unpersisted(&mut self, start_ms: i64) {
        if let Some(b) = self.buckets.get_mut(&start_ms.div_euclid(self.bucket_ms())) {
            b.revision = b.revision.max(b.persisted_revision) + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::digest::quantile;
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
        assert_eq!((again.len(), again[0].counts.errors_5xx), (1, 1));
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
            r.error_class = (i % 10 == 0).then(|| "D1Error".to_string());
            w.add(&r, T0).expect("accepted");
        }
        w.flush();
        let now = T0 + 10_000;
        let snaps = w.dirty_closed(now);
        let rows: Vec<Vec<u8>> = snaps.iter().map(|s| w.encode_row(s)).collect();
        let strings = StringTable::from_stored(&w.collect_strings().expect("new strings")).expect("json");
        let back: Vec<BucketSnapshot> = rows
            .iter()
            .zip(&snaps)
            .map(|(r, s)| BucketSnapshot::decode(s.start_ms, r, &strings).expect("valid"))
            .collect();
        assert_eq!(back, snaps, "a row decodes to the snapshot it was written from");
        let mut restored = Window::new(10, 60);
        for s in &back {
            restored.restore(s, now).expect("valid");
        }
        assert_eq!(restored.totals(600, now), w.totals(600, now));
        assert_eq!(restored.merged(Series::D1, 600, now), w.merged(Series::D1, 600, now));
        assert_eq!(restored.diagnosis(600, now), w.diagnosis(600, now));
        assert_eq!(restored.diagnosis(600, now).errors[0].count_5xx, 5);
        assert!(restored.dirty_closed(now).is_empty(), "restored buckets are already stored");
        assert_eq!(restored.restore(&back[0], now), Err(BucketRestoreError::Duplicate));
        let other = Window::new(5, 60).restore(&back[0], now);
        assert_eq!(other, Err(BucketRestoreError::WrongWidth { bucket_s: 10, expected_s: 5 }));
        let bad = BucketSnapshot { counts: BucketCounts { errors_5xx: 51, ..back[0].counts }, ..back[0].clone() };
        assert_eq!(Window::new(10, 60).restore(&bad, now), Err(BucketRestoreError::InconsistentCounts));
        assert_eq!(Window::new(10, 60).restore(&back[0], now + 600_000), Err(BucketRestoreError::OutsideRing));
        // A damaged row is an error, never a panic; a lost string table drops only diagnosis.
        for cut in 0..rows[0].len() {
            assert!(BucketSnapshot::decode(T0, &rows[0][..cut], &strings).is_err(), "cut at {cut}");
        }
        let bare = BucketSnapshot::decode(T0, &rows[0], &StringTable::default()).expect("still a bucket");
        assert!(bare.detail.as_ref().unwrap().diagnosis.is_empty());
        assert_eq!(bare.counts, back[0].counts);
    }

    #[test]
    fn only_the_detail_window_keeps_digests_and_older_buckets_shrink_to_counts() {
        // A 60-bucket ring whose newest 6 buckets keep detail.
        let mut w = Window::with_detail(10, 60, 6);
        for b in 0..10 {
            let now = T0 + b * 10_000;
            let mut r = record(now + 1, 503, 100.0);
            r.d1_slowest = Some(SlowQuery { sql: "SELECT 2".into(), ms: 20.0 });
            w.add(&r, now).expect("accepted");
            w.prune(now);
        }
        let now = T0 + 9 * 10_000 + 1;
        let t = w.totals(600, now);
        assert_eq!((t.requests, t.errors_5xx, t.request_samples, t.d1_samples), (10, 10, 6, 6));
        assert_eq!(w.merged(Series::Request, 60, now).count(), 6.0);
        let dirty = w.dirty_closed(now + 10_000);
        let mut strings = StringTable::default();
        let sizes: Vec<(bool, usize)> =
            dirty.iter().map(|s| (s.detail.is_some(), s.encode(&mut strings).len())).collect();
        assert_eq!(sizes.iter().filter(|(d, _)| *d).count(), 6, "{sizes:?}");
        assert!(sizes.iter().filter(|(d, _)| !*d).all(|(_, n)| *n <= 12), "{sizes:?}");
        // A late record in a demoted bucket counts, without detail.
        w.add(&record(T0 + 2, 200, 5.0), now).expect("in the ring");
        assert_eq!(w.totals(600, now).requests, 11);
        // Persisted detail buckets that leave the window are written again, smaller.
        let keys: Vec<BucketKey> = w.dirty_closed(now).iter().map(BucketSnapshot::key).collect();
        w.mark_persisted(&keys);
        w.prune(now + 10_000);
        let again = w.dirty_closed(now + 10_000);
        assert_eq!(again.len(), 2, "the bucket that left detail and the one that just closed");
        assert!(again[0].detail.is_none() && again[1].detail.is_some());
    }

    #[test]
    fn partial_buckets_count_like_their_records() {
        use crate::partial::PartialAccumulator;
        let records: Vec<RequestRecord> = (0..300)
            .map(|i| {
                let mut r = record(T0 + i * 30, if i % 7 == 0 { 500 } else { 200 }, 1.0 + (i % 97) as f64);
                r.shop = Some("swicked".into());
                r.request_id = format!("req_{i:012}");
                r
            })
            .collect();
        let now = T0 + 9_999;
        let mut by_record = Window::new(10, 6);
        let mut by_partial = Window::new(10, 6);
        let mut acc = PartialAccumulator::default();
        for (i, r) in records.iter().enumerate() {
            by_record.add(r, now).expect("accepted");
            acc.fold(r);
            if i % 40 == 39 {
                let mut n = i;
                for p in acc.take("swicked", || {
                    n += 1;
                    format!("t-{n}")
                }) {
                    by_partial.add_partial(&p.check("swicked").expect("valid"), now).expect("accepted");
                }
            }
        }
        for p in acc.take("swicked", || "t-last".into()) {
            by_partial.add_partial(&p.check("swicked").expect("valid"), now).expect("accepted");
        }
        by_record.compress();
        by_partial.compress();
        assert_eq!(by_partial.totals(60, now), by_record.totals(60, now));
        for q in [0.5, 0.95] {
            let a = quantile(&by_partial.merged(Series::Request, 60, now), q).unwrap();
            let b = quantile(&by_record.merged(Series::Request, 60, now), q).unwrap();
            assert!((a - b).abs() <= 0.02 * b, "q{q}: {a} vs {b}");
        }
        assert_eq!(by_partial.diagnosis(60, now), by_record.diagnosis(60, now));
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
