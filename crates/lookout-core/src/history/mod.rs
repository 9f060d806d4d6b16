//! A shop's history for the dashboards, pure: rollups per minute for the last 24 h and per
//! hour for the last 30 days (requests, 5xx, request and D1 p50/p95, error classes, costs),
//! the R2 storage samples of the daily job, the series the history route answers, and the
//! compact binary chunks the Durable Object stores. No thresholds (monitor/) and no I/O.
//!
//! ```text
//!  records ─► add_record ─┐
//!  partial buckets ─► add_partial ─► open minute (counts, two digests, error classes)
//!  advance(now): a minute SETTLE_MS past its end ─► its slot (p50/p95 of its digests,
//!                top classes) and its digests merged into its open hour
//!                an hour SETTLE_MS past its end ─► its slot: p50/p95 of the merged minute
//!                digests (not an average of percentiles), top classes of all its counts
//!  series(range, now) ─► the history route's answer (open slots included, as of now)
//!  dirty_chunks ─► storage;  restore(chunks) ◄─ storage
//! ```
//!
//! Storage (see [`Chunk`]): the finalized minutes of one hour per chunk, the finalized hours
//! of one day per chunk, and one chunk for the rest (the open minute and hour with their
//! digests, the interned class names, the R2 samples). A minute's finalization rewrites its
//! hour's minute chunk and the open chunk (a few KiB once a minute at most); traffic alone
//! writes nothing. What an eviction can lose: the records of the minutes still open.

mod codec;
pub mod series;
pub mod synthetic;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

pub use codec::DecodeError;
use codec::{Reader, Writer};

use crate::monitor::diagnosis::error_label;
use crate::monitor::digest::{merge, quantile, DigestSnapshot, LatencyDigest};
use crate::partial::Partial;
use crate::record::RequestRecord;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// Minute slots kept: 24 h.
pub const MINUTE_SLOTS: i64 = 1440;
/// Hour slots kept: 30 days.
pub const HOUR_SLOTS: i64 = 720;
/// A minute (an hour) is finalized this long after its end, so records still in flight
/// (coalesced up to 250 ms, retried after 200 ms) land in it first.
pub const SETTLE_MS: i64 = 5_000;
/// Top error classes kept in a minute slot and in an hour slot.
pub const TOP_CLASSES_MINUTE: usize = 3;
pub const TOP_CLASSES_HOUR: usize = 5;
/// Distinct error class names a shop's history interns; further names count as `Other`.
pub const MAX_CLASS_NAMES: usize = 64;
/// Longest class name kept (longer ones are cut).
pub const MAX_CLASS_NAME_LEN: usize = 64;
/// R2 samples kept (one a day).
pub const MAX_R2_SAMPLES: usize = 90;
/// Records further ahead of `now_ms` than this are not counted.
pub const MAX_FUTURE_MS: i64 = 60_000;
const OTHER_CLASS: &str = "Other";
const CHUNK_VERSION: u8 = 1;

/// Counts of one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SlotCounts {
    pub requests: u64,
    pub errors_5xx: u64,
    /// Requests that made a D1 query (the D1 digest's samples).
    pub d1_samples: u64,
    pub twilio_micros: u64,
    pub claude_micros: u64,
}

impl SlotCounts {
    fn add(&mut self, o: &SlotCounts) {
        self.requests = self.requests.saturating_add(o.requests);
        self.errors_5xx = self.errors_5xx.saturating_add(o.errors_5xx);
        self.d1_samples = self.d1_samples.saturating_add(o.d1_samples);
        self.twilio_micros = self.twilio_micros.saturating_add(o.twilio_micros);
        self.claude_micros = self.claude_micros.saturating_add(o.claude_micros);
    }
}

/// A finalized minute or hour: counts, percentiles (0.1 ms resolution), top error classes
/// (interned ids, count descending).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slot {
    pub counts: SlotCounts,
    pub request_p50_ms: Option<f64>,
    pub request_p95_ms: Option<f64>,
    pub d1_p50_ms: Option<f64>,
    pub d1_p95_ms: Option<f64>,
    pub classes: Vec<(u16, u64)>,
}

/// A minute or hour still collecting: counts, digests, every error class's count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenSlot {
    pub counts: SlotCounts,
    pub request_ms: LatencyDigest,
    pub d1_ms: LatencyDigest,
    pub classes: BTreeMap<u16, u64>,
}

impl OpenSlot {
    fn add_classes(&mut self, classes: impl IntoIterator<Item = (u16, u64)>) {
        for (id, n) in classes {
            let c = self.classes.entry(id).or_default();
            *c = c.saturating_add(n);
        }
    }

    /// The slot this open one finalizes to (digests merged once, percentiles taken).
    fn finalize(&self, top: usize) -> Slot {
        let req = merge([&self.request_ms]);
        let d1 = merge([&self.d1_ms]);
        Slot {
            counts: self.counts,
            request_p50_ms: codec::quantize_ms(quantile(&req, 0.5)),
            request_p95_ms: codec::quantize_ms(quantile(&req, 0.95)),
            d1_p50_ms: codec::quantize_ms(quantile(&d1, 0.5)),
            d1_p95_ms: codec::quantize_ms(quantile(&d1, 0.95)),
            classes: top_classes(self.classes.iter().map(|(&k, &v)| (k, v)), top),
        }
    }
}

/// The `n` largest counts, count descending then id ascending.
fn top_classes(classes: impl IntoIterator<Item = (u16, u64)>, n: usize) -> Vec<(u16, u64)> {
    let mut v: Vec<(u16, u64)> = classes.into_iter().filter(|&(_, c)| c > 0).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// One R2 storage sample (the daily job's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct R2Sample {
    /// When it was taken, Unix epoch ms.
    pub at_ms: i64,
    pub bytes: u64,
    pub objects: u64,
}

/// What one request adds to the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub ts_ms: i64,
    pub status: u16,
    pub ms: f64,
    /// The slowest D1 query's time, when it made one.
    pub d1_ms: Option<f64>,
    pub error_class: Option<&'a str>,
    pub twilio_micros: u64,
    pub claude_micros: u64,
}

impl<'a> Sample<'a> {
    /// A record's sample; `label` is its error label (see [`Self::label`]).
    pub fn of(r: &'a RequestRecord, label: Option<&'a str>) -> Sample<'a> {
        Sample {
            ts_ms: r.ts.timestamp_millis(),
            status: r.status,
            ms: r.ms,
            d1_ms: r.d1_slowest.as_ref().map(|q| q.ms),
            error_class: label,
            twilio_micros: r.cost_micros.twilio,
            claude_micros: r.cost_micros.claude,
        }
    }
}

/// What happened to a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Counted in its open minute.
    Open,
    /// Its minute was already finalized: counts added, latencies not (counted as late).
    Late,
    /// Older than the history keeps, or too far ahead: not counted.
    Dropped,
}

/// Which part of the history a stored chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChunkKind {
    /// The finalized minutes of hour `idx` (`idx` = epoch ms / [`HOUR_MS`]).
    Minutes = 0,
    /// The finalized hours of day `idx` (`idx` = epoch ms / [`DAY_MS`]).
    Hours = 1,
    /// The open minutes and hours, class names, R2 samples, counters (`idx` 0).
    Open = 2,
}

impl ChunkKind {
    pub fn from_code(code: i64) -> Option<ChunkKind> {
        match code {
            0 => Some(ChunkKind::Minutes),
            1 => Some(ChunkKind::Hours),
            2 => Some(ChunkKind::Open),
            _ => None,
        }
    }

    pub fn code(self) -> i64 {
        self as i64
    }
}

/// One stored chunk (the Durable Object's `history(kind, idx, data)` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub kind: ChunkKind,
    pub idx: i64,
    pub data: Vec<u8>,
}

/// Counters for the status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HistoryCounters {
    /// Samples whose minute was already finalized (counts kept, latencies not).
    pub late_samples: u64,
    /// Samples outside the history (older than 30 days, or from the future).
    pub dropped_samples: u64,
}

/// One shop's history (see the module doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    minutes: BTreeMap<i64, Slot>,
    hours: BTreeMap<i64, Slot>,
    open_minutes: BTreeMap<i64, OpenSlot>,
    open_hours: BTreeMap<i64, OpenSlot>,
    class_names: Vec<String>,
    r2: Vec<R2Sample>,
    counters: HistoryCounters,
    dirty_minute_chunks: BTreeSet<i64>,
    dirty_hour_chunks: BTreeSet<i64>,
    open_dirty: bool,
}

fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS)
}

fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

fn minute_hour(minute: i64) -> i64 {
    (minute * MINUTE_MS).div_euclid(HOUR_MS)
}

fn hour_day(hour: i64) -> i64 {
    (hour * HOUR_MS).div_euclid(DAY_MS)
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    pub fn counters(&self) -> HistoryCounters {
        self.counters
    }

    pub fn class_name(&self, id: u16) -> &str {
        self.class_names.get(usize::from(id)).map(String::as_str).unwrap_or(OTHER_CLASS)
    }

    pub fn r2_samples(&self) -> &[R2Sample] {
        &self.r2
    }

    /// The interned id of an error class (`Other` once the table is full).
    fn class_id(&mut self, name: &str) -> u16 {
        let name = cut(name, MAX_CLASS_NAME_LEN);
        if let Some(i) = self.class_names.iter().position(|n| n == name) {
            return i as u16;
        }
        if self.class_names.len() + 1 < MAX_CLASS_NAMES {
            self.class_names.push(name.to_string());
            self.open_dirty = true;
            return (self.class_names.len() - 1) as u16;
        }
        match self.class_names.iter().position(|n| n == OTHER_CLASS) {
            Some(i) => i as u16,
            None => {
                self.class_names.push(OTHER_CLASS.to_string());
                self.open_dirty = true;
                (self.class_names.len() - 1) as u16
            }
        }
    }

    /// Whether minute `m` is finalized as of `now_ms`.
    fn minute_final(m: i64, now_ms: i64) -> bool {
        (m + 1) * MINUTE_MS + SETTLE_MS <= now_ms
    }

    /// Count one request as of `now_ms`.
    pub fn add(&mut self, s: Sample, now_ms: i64) -> Added {
        if s.ts_ms > now_ms.saturating_add(MAX_FUTURE_MS) || s.ts_ms < self.hour_retention_start_ms(now_ms) {
            self.counters.dropped_samples += 1;
            return Added::Dropped;
        }
        let counts = SlotCounts {
            requests: 1,
            errors_5xx: u64::from(s.status >= 500),
            d1_samples: u64::from(s.d1_ms.is_some_and(|v| v.is_finite() && v >= 0.0)),
            twilio_micros: s.twilio_micros,
            claude_micros: s.claude_micros,
        };
        let class = s.error_class.filter(|c| !c.is_empty()).map(|c| self.class_id(c));
        let m = minute_of(s.ts_ms);
        if !Self::minute_final(m, now_ms) {
            let open = self.open_minutes.entry(m).or_default();
            open.counts.add(&counts);
            open.request_ms.push_ms(s.ms);
            if let Some(d1) = s.d1_ms {
                open.d1_ms.push_ms(d1);
            }
            open.add_classes(class.map(|c| (c, 1)));
            return Added::Open;
        }
        // Late: counts into the finalized minute (when still kept) and its hour.
        self.counters.late_samples += 1;
        self.open_dirty = true;
        if m >= self.minute_retention_start(now_ms) {
            let slot = self.minutes.entry(m).or_default();
            slot.counts.add(&counts);
            if let Some(c) = class {
                add_top_class(&mut slot.classes, c, TOP_CLASSES_MINUTE);
            }
            self.dirty_minute_chunks.insert(minute_hour(m));
        }
        let h = minute_hour(m);
        if let Some(open) = self.open_hours.get_mut(&h) {
            open.counts.add(&counts);
            open.add_classes(class.map(|c| (c, 1)));
        } else {
            let slot = self.hours.entry(h).or_default();
            slot.counts.add(&counts);
            if let Some(c) = class {
                add_top_class(&mut slot.classes, c, TOP_CLASSES_HOUR);
            }
            self.dirty_hour_chunks.insert(hour_day(h));
        }
        Added::Late
    }

    /// Count a record as of `now_ms`. Its error class is the monitor's label (its class, or
    /// `HTTP <status>` for a 5xx without one), as in partial buckets' diagnoses.
    pub fn add_record(&mut self, r: &RequestRecord, now_ms: i64) -> Added {
        let label = error_label(r);
        self.add(Sample::of(r, label.as_deref()), now_ms)
    }

    /// Count a partial bucket (one isolate's records of one second) as of `now_ms`: into its
    /// open minute (digests merged), or, when that minute is already finalized, its counts
    /// into the finalized slots (latencies not).
    pub fn add_partial(&mut self, p: &Partial, now_ms: i64) -> Added {
        if p.start_ms > now_ms.saturating_add(MAX_FUTURE_MS) || p.start_ms < self.hour_retention_start_ms(now_ms) {
            self.counters.dropped_samples += p.requests;
            return Added::Dropped;
        }
        let counts = SlotCounts {
            requests: p.requests,
            errors_5xx: p.errors_5xx,
            d1_samples: p.d1_ms.count(),
            twilio_micros: p.cost_micros.twilio,
            claude_micros: p.cost_micros.claude,
        };
        let classes: Vec<(u16, u64)> =
            p.diagnosis.errors.iter().filter(|e| e.count > 0).map(|e| (self.class_id(&e.class), e.count)).collect();
        let m = minute_of(p.start_ms);
        if !Self::minute_final(m, now_ms) {
            let open = self.open_minutes.entry(m).or_default();
            open.counts.add(&counts);
            open.request_ms = merged(&open.request_ms, &p.request_ms);
            open.d1_ms = merged(&open.d1_ms, &p.d1_ms);
            open.add_classes(classes);
            return Added::Open;
        }
        self.counters.late_samples += p.requests;
        self.open_dirty = true;
        let h = minute_hour(m);
        if m >= self.minute_retention_start(now_ms) {
            let slot = self.minutes.entry(m).or_default();
            slot.counts.add(&counts);
            for &(c, n) in &classes {
                add_top_class_n(&mut slot.classes, c, n, TOP_CLASSES_MINUTE);
            }
            self.dirty_minute_chunks.insert(h);
        }
        if let Some(open) = self.open_hours.get_mut(&h) {
            open.counts.add(&counts);
            open.add_classes(classes);
        } else {
            let slot = self.hours.entry(h).or_default();
            slot.counts.add(&counts);
            for &(c, n) in &classes {
                add_top_class_n(&mut slot.classes, c, n, TOP_CLASSES_HOUR);
            }
            self.dirty_hour_chunks.insert(hour_day(h));
        }
        Added::Late
    }

    /// Keep an R2 storage sample (the daily job's); the oldest go past [`MAX_R2_SAMPLES`].
    pub fn add_r2_sample(&mut self, sample: R2Sample) {
        self.r2.retain(|s| s.at_ms != sample.at_ms);
        self.r2.push(sample);
        self.r2.sort_by_key(|s| s.at_ms);
        if self.r2.len() > MAX_R2_SAMPLES {
            self.r2.drain(..self.r2.len() - MAX_R2_SAMPLES);
        }
        self.open_dirty = true;
    }

    fn minute_retention_start(&self, now_ms: i64) -> i64 {
        minute_of(now_ms) - MINUTE_SLOTS + 1
    }

    fn hour_retention_start_ms(&self, now_ms: i64) -> i64 {
        (hour_of(now_ms) - HOUR_SLOTS + 1) * HOUR_MS
    }

    /// Finalize what is due as of `now_ms` and drop what left the history. Returns whether
    /// anything changed (then store [`dirty_chunks`](Self::dirty_chunks)).
    pub fn advance(&mut self, now_ms: i64) -> bool {
        let mut changed = false;
        let due: Vec<i64> = self.open_minutes.keys().copied().filter(|&m| Self::minute_final(m, now_ms)).collect();
        for m in due {
            let open = self.open_minutes.remove(&m).expect("listed");
            let h = minute_hour(m);
            if m >= self.minute_retention_start(now_ms) {
                self.minutes.insert(m, open.finalize(TOP_CLASSES_MINUTE));
                self.dirty_minute_chunks.insert(h);
            }
            if let Some(slot) = self.hours.get_mut(&h) {
                // The hour was finalized already (a restore after a long sleep): counts only.
                slot.counts.add(&open.counts);
                for (c, n) in open.classes {
                    add_top_class_n(&mut slot.classes, c, n, TOP_CLASSES_HOUR);
                }
                self.dirty_hour_chunks.insert(hour_day(h));
            } else {
                let hour = self.open_hours.entry(h).or_default();
                hour.counts.add(&open.counts);
                hour.request_ms = merged(&hour.request_ms, &open.request_ms);
                hour.d1_ms = merged(&hour.d1_ms, &open.d1_ms);
                hour.add_classes(open.classes);
            }
            changed = true;
        }
        let due: Vec<i64> = self
            .open_hours
            .keys()
            .copied()
            .filter(|&h| {
                (h + 1) * HOUR_MS + SETTLE_MS <= now_ms && !self.open_minutes.keys().any(|&m| minute_hour(m) == h)
            })
            .collect();
        for h in due {
            let open = self.open_hours.remove(&h).expect("listed");
            if h * HOUR_MS >= self.hour_retention_start_ms(now_ms) {
                self.hours.insert(h, open.finalize(TOP_CLASSES_HOUR));
                self.dirty_hour_chunks.insert(hour_day(h));
            }
            changed = true;
        }
        let (m0, h0) = (self.minute_retention_start(now_ms), hour_of(self.hour_retention_start_ms(now_ms)));
        let before = (self.minutes.len(), self.hours.len());
        self.minutes.retain(|&m, _| m >= m0);
        self.hours.retain(|&h, _| h >= h0);
        changed |= before != (self.minutes.len(), self.hours.len());
        if changed {
            self.open_dirty = true;
        }
        changed
    }

    /// When [`advance`](Self::advance) next has something to finalize (`None`: nothing open).
    pub fn next_due_ms(&self) -> Option<i64> {
        let minute = self.open_minutes.keys().next().map(|&m| (m + 1) * MINUTE_MS + SETTLE_MS);
        let hour = self.open_hours.keys().next().map(|&h| (h + 1) * HOUR_MS + SETTLE_MS);
        minute.into_iter().chain(hour).min()
    }

    // ---- Storage ----

    /// Chunks changed since they were last stored (upsert by kind and idx), then
    /// [`mark_persisted`](Self::mark_persisted).
    pub fn dirty_chunks(&self) -> Vec<Chunk> {
        let mut out = Vec::new();
        for &h in &self.dirty_minute_chunks {
            out.push(Chunk { kind: ChunkKind::Minutes, idx: h, data: self.encode_minutes(h) });
        }
        for &d in &self.dirty_hour_chunks {
            out.push(Chunk { kind: ChunkKind::Hours, idx: d, data: self.encode_hours(d) });
        }
        if self.open_dirty {
            out.push(Chunk { kind: ChunkKind::Open, idx: 0, data: self.encode_open() });
        }
        out
    }

    /// Every chunk (what a full store writes; the bench measures its size).
    pub fn all_chunks(&self) -> Vec<Chunk> {
        let hours: BTreeSet<i64> = self.minutes.keys().map(|&m| minute_hour(m)).collect();
        let days: BTreeSet<i64> = self.hours.keys().map(|&h| hour_day(h)).collect();
        let mut out: Vec<Chunk> = hours
            .into_iter()
            .map(|h| Chunk { kind: ChunkKind::Minutes, idx: h, data: self.encode_minutes(h) })
            .collect();
        out.extend(days.into_iter().map(|d| Chunk { kind: ChunkKind::Hours, idx: d, data: self.encode_hours(d) }));
        out.push(Chunk { kind: ChunkKind::Open, idx: 0, data: self.encode_open() });
        out
    }

    /// The chunks in `stored` were written.
    pub fn mark_persisted(&mut self, stored: &[(ChunkKind, i64)]) {
        for &(kind, idx) in stored {
            match kind {
                ChunkKind::Minutes => self.dirty_minute_chunks.remove(&idx),
                ChunkKind::Hours => self.dirty_hour_chunks.remove(&idx),
                ChunkKind::Open => std::mem::replace(&mut self.open_dirty, false),
            };
        }
    }

    /// Stored chunks of a kind with an `idx` below this are outside the history: delete them.
    pub fn retention_start_idx(&self, kind: ChunkKind, now_ms: i64) -> i64 {
        match kind {
            ChunkKind::Minutes => minute_hour(self.minute_retention_start(now_ms)),
            ChunkKind::Hours => hour_day(hour_of(self.hour_retention_start_ms(now_ms))),
            ChunkKind::Open => 0,
        }
    }

    fn encode_slots(slots: impl Iterator<Item = (i64, Slot)>, base: i64) -> Vec<u8> {
        let slots: Vec<(i64, Slot)> = slots.collect();
        let mut w = Writer::default();
        w.u8(CHUNK_VERSION);
        w.varint(slots.len() as u64);
        for (i, s) in &slots {
            w.varint((i - base) as u64);
            codec::write_slot(&mut w, s);
        }
        w.buf
    }

    fn encode_minutes(&self, hour: i64) -> Vec<u8> {
        let base = hour * 60;
        Self::encode_slots(self.minutes.range(base..base + 60).map(|(&k, v)| (k, v.clone())), base)
    }

    fn encode_hours(&self, day: i64) -> Vec<u8> {
        let base = day * 24;
        Self::encode_slots(self.hours.range(base..base + 24).map(|(&k, v)| (k, v.clone())), base)
    }

    fn encode_open(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(CHUNK_VERSION);
        w.varint(self.class_names.len() as u64);
        for n in &self.class_names {
            w.name(n);
        }
        for map in [&self.open_minutes, &self.open_hours] {
            w.varint(map.len() as u64);
            for (&k, o) in map {
                w.ivarint(k);
                codec::write_open(&mut w, o);
            }
        }
        w.varint(self.r2.len() as u64);
        for s in &self.r2 {
            w.ivarint(s.at_ms);
            w.varint(s.bytes);
            w.varint(s.objects);
        }
        w.varint(self.counters.late_samples);
        w.varint(self.counters.dropped_samples);
        w.buf
    }

    fn decode_slots(data: &[u8], base: i64, span: i64) -> Result<Vec<(i64, Slot)>, DecodeError> {
        let mut r = Reader::new(data);
        let v = r.u8()?;
        if v != CHUNK_VERSION {
            return Err(DecodeError::Version(v));
        }
        let n = r.count(span as usize, "slots")?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let off = r.varint()?;
            if off >= span as u64 {
                return Err(DecodeError::TooLarge("slot offset"));
            }
            out.push((base + off as i64, codec::read_slot(&mut r)?));
        }
        r.finish()?;
        Ok(out)
    }

    fn decode_open(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader::new(data);
        let v = r.u8()?;
        if v != CHUNK_VERSION {
            return Err(DecodeError::Version(v));
        }
        let n = r.count(MAX_CLASS_NAMES, "class names")?;
        let names = (0..n).map(|_| r.name(MAX_CLASS_NAME_LEN * 4)).collect::<Result<Vec<_>, _>>()?;
        let mut maps: [BTreeMap<i64, OpenSlot>; 2] = Default::default();
        for map in &mut maps {
            let n = r.count(MINUTE_SLOTS as usize, "open slots")?;
            for _ in 0..n {
                let k = r.ivarint()?;
                map.insert(k, codec::read_open(&mut r)?);
            }
        }
        let n = r.count(MAX_R2_SAMPLES, "R2 samples")?;
        let r2 = (0..n)
            .map(|_| Ok(R2Sample { at_ms: r.ivarint()?, bytes: r.varint()?, objects: r.varint()? }))
            .collect::<Result<Vec<_>, DecodeError>>()?;
        let counters = HistoryCounters { late_samples: r.varint()?, dropped_samples: r.varint()? };
        r.finish()?;
        let [open_minutes, open_hours] = maps;
        self.class_names = names;
        self.open_minutes = open_minutes;
        self.open_hours = open_hours;
        self.r2 = r2;
        self.counters = counters;
        Ok(())
    }

    /// Rebuild from stored chunks as of `now_ms`. Never fails: an unreadable chunk is skipped
    /// and reported (with its kind and idx); then what is due is finalized.
    pub fn restore(chunks: &[Chunk], now_ms: i64) -> (History, Vec<(ChunkKind, i64, DecodeError)>) {
        let mut h = History::new();
        let mut errors = Vec::new();
        for c in chunks {
            let result = match c.kind {
                ChunkKind::Minutes => Self::decode_slots(&c.data, c.idx * 60, 60).map(|s| h.minutes.extend(s)),
                ChunkKind::Hours => Self::decode_slots(&c.data, c.idx * 24, 24).map(|s| h.hours.extend(s)),
                ChunkKind::Open => h.decode_open(&c.data),
            };
            if let Err(e) = result {
                errors.push((c.kind, c.idx, e));
            }
        }
        // Class ids must name a class: drop any that do not (a chunk from a lost table).
        let known = h.class_names.len();
        for slot in h.minutes.values_mut().chain(h.hours.values_mut()) {
            slot.classes.retain(|&(id, _)| usize::from(id) < known);
        }
        for open in h.open_minutes.values_mut().chain(h.open_hours.values_mut()) {
            open.classes.retain(|&id, _| usize::from(id) < known);
        }
        h.advance(now_ms);
        (h, errors)
    }
}

/// Two digests merged into one (through its snapshot, which validates it).
fn merged(a: &LatencyDigest, b: &LatencyDigest) -> LatencyDigest {
    let snapshot = DigestSnapshot::of(&merge([a, b]));
    // A merge of valid digests is valid; should it ever not be, keep the larger part.
    LatencyDigest::from_snapshot(&snapshot)
        .unwrap_or_else(|_| if a.count() >= b.count() { a.clone() } else { b.clone() })
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn add_top_class(classes: &mut Vec<(u16, u64)>, id: u16, top: usize) {
    add_top_class_n(classes, id, 1, top);
}

/// Add to a finalized slot's top list (a late record): the class's count grows, or it joins
/// the list when there is room or it now outnumbers the last.
fn add_top_class_n(classes: &mut Vec<(u16, u64)>, id: u16, n: u64, top: usize) {
    match classes.iter_mut().find(|(c, _)| *c == id) {
        Some(e) => e.1 = e.1.saturating_add(n),
        None => classes.push((id, n)),
    }
    let all = std::mem::take(classes);
    *classes = top_classes(all, top);
}
