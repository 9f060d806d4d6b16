//! Partial buckets: what an isolate sends its shop's monitor instead of record lines. The
//! Worker folds each request record into a [`PartialAccumulator`] per shop (counts, the two
//! latency digests, error classes, slowest routes and D1 signatures, a few request ids, the
//! build version, costs); a flush [`take`](PartialAccumulator::take)s one [`PartialBucket`]
//! per second of record time (a slot, [`PARTIAL_SPAN_MS`]) and sends them as JSON in the
//! ingest batch (`{"partials": [...]}`, ingest.rs). The monitor [`check`](PartialBucket::check)s
//! each one into a [`Partial`] and merges it into the bucket of its slot (window.rs).
//!
//! A slot never straddles a monitor bucket (bucket widths are whole seconds) nor an ISO week
//! or calendar month, so counts, digests and costs land exactly where the records would have.
//! Each partial carries an `id` (`<isolate>-<sequence>`): a batch sent again after a failed
//! call is recognised and counted once.
//!
//! ```text
//!  record ─► fold ─► slot (1 s): counts, digests (raw values, compressed past 100),
//!                    Diagnosis, samples (5xx, Stripe, slowest), build, costs
//!  flush ──► take ─► PartialBucket (JSON, digests as base64 of digest.rs's binary form)
//!  monitor ► check ─► Partial ─► Window::add_partial, RecentIds, spend ledger
//! ```

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::codec::cap;
use crate::monitor::diagnosis::{Diagnosis, ErrorClassStat, SlowStat, MAX_BUILD_CHARS};
use crate::monitor::digest::{LatencyDigest, DIGEST_MAX_SIZE};
use crate::monitor::rules::STRIPE_SIGNATURE_ERROR_CLASS;
use crate::record::{CostMicros, RequestRecord};
use crate::request_id::is_request_id;

/// The layout this code writes and reads.
pub const PARTIAL_FORMAT: u32 = 1;
/// Width of a slot: the record time one partial bucket covers.
pub const PARTIAL_SPAN_MS: i64 = 1000;
/// Request ids kept per kind (5xx, bad Stripe signature, slowest, slowest D1) per slot.
pub const SAMPLES_PER_KIND: usize = 5;
/// Most request ids in one partial.
pub const MAX_SAMPLES: usize = 4 * SAMPLES_PER_KIND;
/// Most records one partial may claim.
pub const MAX_PARTIAL_REQUESTS: u64 = 10_000_000;
/// Longest partial id.
const MAX_ID_CHARS: usize = 64;
/// Earliest plausible slot (2020-01-01): anything before is a unit mistake.
const MIN_START_MS: i64 = 1_577_836_800_000;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One request id kept as evidence, with what the monitor needs to file it (5xx, slow, slow
/// D1, bad Stripe signature: the thresholds are the monitor's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub request_id: String,
    pub ts_ms: i64,
    pub status: u16,
    pub ms: f64,
    pub d1_ms: Option<f64>,
    #[serde(default)]
    pub stripe: bool,
}

/// A partial bucket as it travels (JSON). Every count is over the records of one slot
/// `[start_ms, start_ms + span_ms)` folded by one isolate between two flushes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialBucket {
    /// [`PARTIAL_FORMAT`].
    pub v: u32,
    /// `<isolate>-<sequence>`: unique per partial, the same when a batch is sent again.
    pub id: String,
    pub shop: String,
    pub start_ms: i64,
    pub span_ms: i64,
    pub requests: u64,
    pub errors_5xx: u64,
    pub stripe_signature_failures: u64,
    /// Latency samples that were NaN, infinite or negative (the requests still count).
    #[serde(default)]
    pub unusable: u64,
    pub first_ts_ms: i64,
    pub last_ts_ms: i64,
    /// Request latency digest: base64 of `LatencyDigest::encode`.
    pub request_ms: String,
    /// Slowest-D1-query latency digest, likewise.
    pub d1_ms: String,
    /// The build of the latest record.
    pub build_version: String,
    #[serde(default)]
    pub errors: Vec<ErrorClassStat>,
    #[serde(default)]
    pub slow_routes: Vec<SlowStat>,
    #[serde(default)]
    pub slow_d1: Vec<SlowStat>,
    #[serde(default)]
    pub samples: Vec<Sample>,
    #[serde(default)]
    pub cost_micros: CostMicros,
}

/// A partial bucket the monitor accepted: digests decoded, diagnosis assembled.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial {
    pub id: String,
    pub start_ms: i64,
    pub requests: u64,
    pub errors_5xx: u64,
    pub stripe_signature_failures: u64,
    pub unusable: u64,
    pub first_ts_ms: i64,
    pub last_ts_ms: i64,
    pub request_ms: LatencyDigest,
    pub d1_ms: LatencyDigest,
    pub build_version: String,
    pub diagnosis: Diagnosis,
    /// Oldest first.
    pub samples: Vec<Sample>,
    pub cost_micros: CostMicros,
}

fn is_partial_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_CHARS
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn decode_digest(field: &str, b64: &str) -> Result<LatencyDigest, String> {
    let bytes = B64.decode(b64).map_err(|e| format!("{field} is not base64: {e}"))?;
    let mut input = &bytes[..];
    let d = LatencyDigest::decode(&mut input).map_err(|e| format!("{field}: {e}"))?;
    if !input.is_empty() {
        return Err(format!("{field}: trailing bytes"));
    }
    Ok(d)
}

impl PartialBucket {
    /// Check a received partial for the monitor of `shop`; the reason names the field.
    pub fn check(self, shop: &str) -> Result<Partial, String> {
        if self.v != PARTIAL_FORMAT {
            return Err(format!("partial format v{} is not supported (this monitor reads v{PARTIAL_FORMAT})", self.v));
        }
        if !is_partial_id(&self.id) {
            return Err(format!("id must be 1-{MAX_ID_CHARS} of a-z, 0-9, -, _"));
        }
        if self.shop != shop {
            return Err(format!("partial belongs to shop {:?}, not {shop:?}", cap(&self.shop, 40)));
        }
        if self.span_ms != PARTIAL_SPAN_MS {
            return Err(format!("span_ms must be {PARTIAL_SPAN_MS}"));
        }
        if self.start_ms < MIN_START_MS || self.start_ms.rem_euclid(PARTIAL_SPAN_MS) != 0 {
            return Err("start_ms must be epoch milliseconds (after 2020) on a whole second".into());
        }
        if !(1..=MAX_PARTIAL_REQUESTS).contains(&self.requests) {
            return Err(format!("requests must be 1-{MAX_PARTIAL_REQUESTS}"));
        }
        if self.errors_5xx > self.requests || self.stripe_signature_failures > self.requests {
            return Err("errors_5xx and stripe_signature_failures cannot exceed requests".into());
        }
        if self.unusable > 2 * self.requests {
            return Err("unusable cannot exceed two samples a request".into());
        }
        let slot = self.start_ms..self.start_ms + PARTIAL_SPAN_MS;
        if !slot.contains(&self.first_ts_ms) || !slot.contains(&self.last_ts_ms) || self.first_ts_ms > self.last_ts_ms {
            return Err("first_ts_ms and last_ts_ms must lie in the slot, in order".into());
        }
        let request_ms = decode_digest("request_ms", &self.request_ms)?;
        let d1_ms = decode_digest("d1_ms", &self.d1_ms)?;
        if request_ms.count() > self.requests || d1_ms.count() > self.requests {
            return Err("a digest holds more samples than requests".into());
        }
        if self.build_version.chars().count() > MAX_BUILD_CHARS {
            return Err(format!("build_version is longer than {MAX_BUILD_CHARS} characters"));
        }
        let diagnosis = Diagnosis { errors: self.errors, slow_routes: self.slow_routes, slow_d1: self.slow_d1 };
        diagnosis.check_bounds()?;
        if diagnosis.errors.iter().any(|e| !slot.contains(&e.first_ts_ms)) {
            return Err("an error class's first_ts_ms lies outside the slot".into());
        }
        if self.samples.len() > MAX_SAMPLES {
            return Err(format!("more than {MAX_SAMPLES} samples"));
        }
        for s in &self.samples {
            if !is_request_id(&s.request_id) {
                return Err("a sample's request_id has an unknown shape".into());
            }
            let ok = |x: f64| x.is_finite() && x >= 0.0;
            if !slot.contains(&s.ts_ms) || !(100..=599).contains(&s.status) || !ok(s.ms) || !s.d1_ms.is_none_or(ok) {
                return Err("a sample needs ts_ms in the slot, an HTTP status and finite non-negative ms".into());
            }
        }
        let mut samples = self.samples;
        samples.sort_by_key(|s| s.ts_ms);
        Ok(Partial {
            id: self.id,
            start_ms: self.start_ms,
            requests: self.requests,
            errors_5xx: self.errors_5xx,
            stripe_signature_failures: self.stripe_signature_failures,
            unusable: self.unusable,
            first_ts_ms: self.first_ts_ms,
            last_ts_ms: self.last_ts_ms,
            request_ms,
            d1_ms,
            build_version: self.build_version,
            diagnosis,
            samples,
            cost_micros: self.cost_micros,
        })
    }
}

/// Latencies of one slot: kept as values while few (they travel losslessly), compressed
/// into a digest past [`DIGEST_MAX_SIZE`].
#[derive(Debug, Clone, Default)]
struct Values {
    raw: Vec<f64>,
    digest: Option<LatencyDigest>,
}

impl Values {
    fn push(&mut self, ms: f64) {
        match &mut self.digest {
            Some(d) => {
                d.push_ms(ms);
            }
            None if self.raw.len() < DIGEST_MAX_SIZE => self.raw.push(ms),
            None => {
                let mut d = LatencyDigest::default();
                for v in self.raw.drain(..) {
                    d.push_ms(v);
                }
                d.push_ms(ms);
                self.digest = Some(d);
            }
        }
    }

    fn encode(&mut self) -> String {
        let mut bytes = Vec::new();
        match &self.digest {
            Some(d) => d.encode(&mut bytes),
            None => LatencyDigest::encode_values(&mut self.raw, &mut bytes),
        }
        B64.encode(bytes)
    }
}

/// One slot being filled.
#[derive(Debug, Clone)]
struct Slot {
    start_ms: i64,
    requests: u64,
    errors_5xx: u64,
    stripe: u64,
    unusable: u64,
    first_ts_ms: i64,
    last_ts_ms: i64,
    request_ms: Values,
    d1_ms: Values,
    diagnosis: Diagnosis,
    /// Last few 5xx and bad-signature ids, the slowest and the slowest-D1 ones.
    server_errors: Vec<Sample>,
    stripe_failures: Vec<Sample>,
    slowest: Vec<Sample>,
    slowest_d1: Vec<Sample>,
    build_version: String,
    build_ts_ms: i64,
    cost: CostMicros,
}

fn sample(r: &RequestRecord, ts_ms: i64, stripe: bool) -> Sample {
    Sample {
        request_id: r.request_id.clone(),
        ts_ms,
        status: r.status,
        ms: r.ms,
        d1_ms: r.d1_slowest.as_ref().map(|q| q.ms),
        stripe,
    }
}

/// Keep the last [`SAMPLES_PER_KIND`].
fn keep_last(list: &mut Vec<Sample>, s: Sample) {
    if list.len() >= SAMPLES_PER_KIND {
        list.remove(0);
    }
    list.push(s);
}

/// Keep the [`SAMPLES_PER_KIND`] with the largest `key`; builds the sample only when it enters.
fn keep_top(list: &mut Vec<Sample>, value: f64, key: impl Fn(&Sample) -> f64, make: impl FnOnce() -> Sample) {
    if list.len() < SAMPLES_PER_KIND {
        list.push(make());
    } else if let Some((i, _)) = list.iter().enumerate().min_by(|a, b| key(a.1).total_cmp(&key(b.1))) {
        if value > key(&list[i]) {
            list[i] = make();
        }
    }
}

impl Slot {
    fn new(start_ms: i64, ts_ms: i64) -> Slot {
        Slot {
            start_ms,
            requests: 0,
            errors_5xx: 0,
            stripe: 0,
            unusable: 0,
            first_ts_ms: ts_ms,
            last_ts_ms: ts_ms,
            request_ms: Values::default(),
            d1_ms: Values::default(),
            diagnosis: Diagnosis::default(),
            server_errors: Vec::new(),
            stripe_failures: Vec::new(),
            slowest: Vec::new(),
            slowest_d1: Vec::new(),
            build_version: String::new(),
            build_ts_ms: i64::MIN,
            cost: CostMicros::default(),
        }
    }

    fn fold(&mut self, r: &RequestRecord, ts_ms: i64) {
        self.requests += 1;
        self.first_ts_ms = self.first_ts_ms.min(ts_ms);
        self.last_ts_ms = self.last_ts_ms.max(ts_ms);
        let server_error = r.status >= 500;
        let stripe = r.error_class.as_deref() == Some(STRIPE_SIGNATURE_ERROR_CLASS);
        self.errors_5xx += u64::from(server_error);
        self.stripe += u64::from(stripe);
        let usable = |ms: f64| ms.is_finite() && ms >= 0.0;
        if usable(r.ms) {
            self.request_ms.push(r.ms);
        } else {
            self.unusable += 1;
        }
        if let Some(q) = &r.d1_slowest {
            if usable(q.ms) {
                self.d1_ms.push(q.ms);
            } else {
                self.unusable += 1;
            }
        }
        self.diagnosis.note(r);
        if server_error {
            keep_last(&mut self.server_errors, sample(r, ts_ms, stripe));
        }
        if stripe {
            keep_last(&mut self.stripe_failures, sample(r, ts_ms, stripe));
        }
        if usable(r.ms) {
            keep_top(&mut self.slowest, r.ms, |s| s.ms, || sample(r, ts_ms, stripe));
        }
        if let Some(ms) = r.d1_slowest.as_ref().map(|q| q.ms).filter(|&ms| usable(ms)) {
            keep_top(&mut self.slowest_d1, ms, |s| s.d1_ms.unwrap_or(0.0), || sample(r, ts_ms, stripe));
        }
        if ts_ms >= self.build_ts_ms {
            self.build_ts_ms = ts_ms;
            if self.build_version != r.build_version {
                self.build_version = cap(&r.build_version, MAX_BUILD_CHARS);
            }
        }
        self.cost.twilio = self.cost.twilio.saturating_add(r.cost_micros.twilio);
        self.cost.claude = self.cost.claude.saturating_add(r.cost_micros.claude);
    }

    fn into_partial(mut self, shop: &str, id: String) -> PartialBucket {
        let mut samples: Vec<Sample> = Vec::with_capacity(MAX_SAMPLES);
        for s in [self.server_errors, self.stripe_failures, self.slowest, self.slowest_d1].into_iter().flatten() {
            if !samples.iter().any(|x| x.request_id == s.request_id) {
                samples.push(s);
            }
        }
        samples.sort_by_key(|s| s.ts_ms);
        self.diagnosis.sort();
        PartialBucket {
            v: PARTIAL_FORMAT,
            id,
            shop: shop.to_string(),
            start_ms: self.start_ms,
            span_ms: PARTIAL_SPAN_MS,
            requests: self.requests,
            errors_5xx: self.errors_5xx,
            stripe_signature_failures: self.stripe,
            unusable: self.unusable,
            first_ts_ms: self.first_ts_ms,
            last_ts_ms: self.last_ts_ms,
            request_ms: self.request_ms.encode(),
            d1_ms: self.d1_ms.encode(),
            build_version: self.build_version,
            errors: self.diagnosis.errors,
            slow_routes: self.diagnosis.slow_routes,
            slow_d1: self.diagnosis.slow_d1,
            samples,
            cost_micros: self.cost,
        }
    }
}

/// One shop's records in an isolate, folded per slot until the next flush. Its size is
/// bounded by the number of slots, whatever the number of records.
#[derive(Debug, Clone, Default)]
pub struct PartialAccumulator {
    slots: Vec<Slot>,
    records: u64,
}

impl PartialAccumulator {
    /// Fold one finished request's record in.
    pub fn fold(&mut self, r: &RequestRecord) {
        let ts_ms = r.ts.timestamp_millis();
        let start_ms = ts_ms - ts_ms.rem_euclid(PARTIAL_SPAN_MS);
        let slot = match self.slots.iter().rposition(|s| s.start_ms == start_ms) {
            Some(i) => &mut self.slots[i],
            None => {
                self.slots.push(Slot::new(start_ms, ts_ms));
                self.slots.last_mut().expect("just pushed")
            }
        };
        slot.fold(r, ts_ms);
        self.records += 1;
    }

    /// Records folded since the last take.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Slots (partials a take would give).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Everything folded so far as partial buckets of `shop`, oldest slot first, each with
    /// an id from `next_id`; the accumulator is empty afterwards.
    pub fn take(&mut self, shop: &str, mut next_id: impl FnMut() -> String) -> Vec<PartialBucket> {
        self.records = 0;
        let mut slots = std::mem::take(&mut self.slots);
        slots.sort_by_key(|s| s.start_ms);
        slots.into_iter().map(|s| s.into_partial(shop, next_id())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SlowQuery;
    use chrono::{DateTime, Utc};

    /// On a 10 s boundary.
    const T0: i64 = 1_778_400_000_000;

    fn rec(ts_ms: i64, seq: u64, status: u16, ms: f64) -> RequestRecord {
        let ts = DateTime::<Utc>::from_timestamp_millis(ts_ms).expect("in range");
        let mut r = RequestRecord::start(ts, format!("req_{seq:012}"), "GET", "/api/tickets/2506", "0.1.0+abc");
        r.shop = Some("swicked".into());
        r.status = status;
        r.ms = ms;
        r
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("iso1-{n}")
        }
    }

    #[test]
    fn records_fold_into_one_partial_per_second_that_checks_back() {
        let mut acc = PartialAccumulator::default();
        for i in 0..250u64 {
            let mut r = rec(T0 + 300 + i as i64 * 4, i, if i % 50 == 0 { 503 } else { 200 }, 10.0 + i as f64);
            if i % 2 == 0 {
                r.d1_slowest = Some(SlowQuery { sql: "SELECT 1".into(), ms: 2.0 });
            }
            r.cost_micros = CostMicros { twilio: 7_900 * u64::from(i == 3), claude: 0 };
            acc.fold(&r);
        }
        assert_eq!((acc.records(), acc.slots()), (250, 2));
        let parts = acc.take("swicked", ids());
        assert!(acc.is_empty());
        assert_eq!(parts.len(), 2);
        let json = serde_json::to_string(&parts).expect("serialize");
        let back: Vec<PartialBucket> = serde_json::from_str(&json).expect("parse");
        let checked: Vec<Partial> = back.into_iter().map(|p| p.check("swicked").expect("valid")).collect();
        let (a, b) = (&checked[0], &checked[1]);
        assert_eq!((a.start_ms, b.start_ms), (T0, T0 + 1000));
        assert_eq!(a.requests + b.requests, 250);
        assert_eq!(a.errors_5xx + b.errors_5xx, 5);
        assert_eq!(a.request_ms.count() + b.request_ms.count(), 250);
        assert_eq!(a.d1_ms.count() + b.d1_ms.count(), 125);
        assert_eq!(a.cost_micros.twilio, 7_900);
        assert_eq!(a.build_version, "0.1.0+abc");
        assert_eq!(a.id, "iso1-1");
        // The 5xx ids and the slowest ones travel.
        let all: Vec<&str> = checked.iter().flat_map(|p| p.samples.iter().map(|s| s.request_id.as_str())).collect();
        assert!(all.contains(&"req_000000000000") && all.contains(&"req_000000000249"), "{all:?}");
        assert_eq!(a.diagnosis.errors[0].class, "HTTP 503");
        assert!(json.len() < 8_000, "two partials of 250 records: {} bytes", json.len());
    }

    #[test]
    fn a_partial_is_bounded_in_bytes_whatever_its_records_carry() {
        let mut acc = PartialAccumulator::default();
        for i in 0..2_000u64 {
            let mut r = rec(T0 + (i % 1000) as i64, i, 500, 1.0 + (i % 977) as f64);
            r.path = format!("/{}{i}", "x".repeat(60 * 1024));
            r.error_class = Some(format!("Class{i}{}", "y".repeat(200)));
            r.build_version = "b".repeat(300);
            r.d1_slowest = Some(SlowQuery { sql: format!("SELECT {i} {}", "z".repeat(2000)), ms: (i % 300) as f64 });
            acc.fold(&r);
        }
        let parts = acc.take("swicked", ids());
        assert_eq!(parts.len(), 1);
        let bytes = serde_json::to_string(&parts[0]).expect("json").len();
        assert!(bytes < 16 * 1024, "{bytes} bytes");
        assert!(parts[0].clone().check("swicked").is_ok());
    }

    #[test]
    fn malformed_or_foreign_partials_are_refused_with_their_reason() {
        let mut acc = PartialAccumulator::default();
        acc.fold(&rec(T0 + 5, 1, 200, 3.0));
        let good = acc.take("swicked", ids()).remove(0);
        let cases: Vec<(PartialBucket, &str)> = vec![
            (PartialBucket { v: 2, ..good.clone() }, "format v2"),
            (PartialBucket { id: "NOPE!".into(), ..good.clone() }, "id must be"),
            (PartialBucket { shop: "demo".into(), ..good.clone() }, "shop \"demo\""),
            (PartialBucket { start_ms: T0 + 1, ..good.clone() }, "whole second"),
            (PartialBucket { span_ms: 10_000, ..good.clone() }, "span_ms"),
            (PartialBucket { requests: 0, ..good.clone() }, "requests must be"),
            (PartialBucket { errors_5xx: 2, ..good.clone() }, "cannot exceed requests"),
            (PartialBucket { last_ts_ms: T0 + 1000, ..good.clone() }, "in the slot"),
            (PartialBucket { request_ms: "***".into(), ..good.clone() }, "request_ms is not base64"),
            (PartialBucket { d1_ms: B64.encode([9u8]), ..good.clone() }, "d1_ms: digest"),
            (PartialBucket { build_version: "v".repeat(65), ..good.clone() }, "build_version"),
        ];
        for (p, reason) in cases {
            let e = p.check("swicked").expect_err(reason);
            assert!(e.contains(reason), "{e:?} should mention {reason:?}");
        }
        let mut two = rec(T0 + 6, 2, 200, 3.0);
        two.ms = 5.0;
        acc.fold(&two);
        let mut p = acc.take("swicked", ids()).remove(0);
        p.requests = 0;
        p.request_ms = good.request_ms.clone();
        assert!(p.check("swicked").is_err());
    }
}
