//! What the history route answers (`GET /ops/shops/{shop}/history?range=24h|30d`): dense
//! columnar series (one entry per minute or hour, oldest first, the open slots included as of
//! `now_ms`), totals, top error classes and the R2 samples; and the last hour's figures the
//! fleet summary uses. Columnar because the charts take arrays.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    merged, minute_hour, minute_of, History, OpenSlot, R2Sample, Slot, SlotCounts, HOUR_MS, HOUR_SLOTS, MINUTE_MS,
    MINUTE_SLOTS, TOP_CLASSES_HOUR, TOP_CLASSES_MINUTE,
};
use crate::monitor::time::rfc3339_ms;

/// Error classes listed in a range's totals.
pub const TOP_CLASSES_LISTED: usize = 8;

/// The two ranges the route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `24h`: 1440 minutes.
    Day,
    /// `30d`: 720 hours.
    Month,
}

/// An unknown `range` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError(pub String);

impl std::fmt::Display for RangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "range must be 24h or 30d, got {:?}", self.0)
    }
}

impl std::error::Error for RangeError {}

impl Range {
    /// `24h` or `30d` (absent: `24h`).
    pub fn parse(v: Option<&str>) -> Result<Range, RangeError> {
        match v {
            None | Some("24h") => Ok(Range::Day),
            Some("30d") => Ok(Range::Month),
            Some(other) => Err(RangeError(other.chars().take(16).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Month => "30d",
        }
    }

    fn step_ms(self) -> i64 {
        match self {
            Range::Day => MINUTE_MS,
            Range::Month => HOUR_MS,
        }
    }

    fn slots(self) -> i64 {
        match self {
            Range::Day => MINUTE_SLOTS,
            Range::Month => HOUR_SLOTS,
        }
    }
}

/// One column per figure, one entry per slot; `t` is the slot's start in Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Columns {
    pub t: Vec<i64>,
    pub requests: Vec<u64>,
    pub errors_5xx: Vec<u64>,
    pub error_rate: Vec<Option<f64>>,
    pub request_p50_ms: Vec<Option<f64>>,
    pub request_p95_ms: Vec<Option<f64>>,
    pub d1_p50_ms: Vec<Option<f64>>,
    pub d1_p95_ms: Vec<Option<f64>>,
    pub twilio_micros: Vec<u64>,
    pub claude_micros: Vec<u64>,
}

/// An error class and its count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCount {
    pub class: String,
    pub count: u64,
}

/// Sums over the range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub errors_5xx: u64,
    pub error_rate: Option<f64>,
    pub twilio_micros: u64,
    pub claude_micros: u64,
}

/// One R2 sample as the route shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct R2Point {
    pub at: String,
    pub bytes: u64,
    pub objects: u64,
}

/// The history route's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistorySeries {
    pub shop: String,
    pub range: &'static str,
    pub step_s: u32,
    /// Start of the first slot and end of the last (the open one), RFC 3339.
    pub from: String,
    pub to: String,
    pub now: String,
    pub series: Columns,
    pub totals: Totals,
    /// Summed from each slot's top classes (minutes keep 3, hours 5), count descending.
    pub top_error_classes: Vec<ClassCount>,
    /// The daily job's R2 storage samples (last 90), oldest first.
    pub r2: Vec<R2Point>,
    /// The last 60 minutes, whatever the range (the page's headline figures).
    pub last_hour: LastHour,
    pub late_samples: u64,
}

/// The last 60 minutes (the open minute included): what the fleet summary shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastHour {
    pub requests: u64,
    pub errors_5xx: u64,
    pub error_rate: Option<f64>,
    pub top_error_classes: Vec<ClassCount>,
}

fn rate(errors: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| errors as f64 / requests as f64)
}

impl History {
    /// An open slot's view as of now (percentiles of its digests so far).
    fn open_view(open: &OpenSlot, top: usize) -> Slot {
        open.finalize(top)
    }

    /// Every slot of `range` as of `now_ms`, by slot index (open ones included).
    fn slots(&self, range: Range, now_ms: i64) -> BTreeMap<i64, Slot> {
        let step = range.step_ms();
        let last = now_ms.div_euclid(step);
        let first = last - range.slots() + 1;
        let mut out = BTreeMap::new();
        match range {
            Range::Day => {
                out.extend(self.minutes.range(first..=last).map(|(&k, v)| (k, v.clone())));
                for (&m, open) in self.open_minutes.range(first..=last) {
                    out.insert(m, Self::open_view(open, TOP_CLASSES_MINUTE));
                }
            }
            Range::Month => {
                out.extend(self.hours.range(first..=last).map(|(&k, v)| (k, v.clone())));
                // Open hours: their merged minutes plus the minutes still open in them.
                let mut open: BTreeMap<i64, OpenSlot> = self.open_hours.clone();
                for (&m, o) in &self.open_minutes {
                    let h = minute_hour(m);
                    if self.hours.contains_key(&h) {
                        continue;
                    }
                    let e = open.entry(h).or_default();
                    e.counts.add(&o.counts);
                    e.request_ms = merged(&e.request_ms, &o.request_ms);
                    e.d1_ms = merged(&e.d1_ms, &o.d1_ms);
                    e.add_classes(o.classes.iter().map(|(&k, &v)| (k, v)));
                }
                for (h, o) in open.range(first..=last) {
                    out.insert(*h, Self::open_view(o, TOP_CLASSES_HOUR));
                }
            }
        }
        out
    }

    fn class_counts(&self, slots: impl Iterator<Item = Vec<(u16, u64)>>, n: usize) -> Vec<ClassCount> {
        let mut sums: BTreeMap<u16, u64> = BTreeMap::new();
        for classes in slots {
            for (id, c) in classes {
                *sums.entry(id).or_default() += c;
            }
        }
        super::top_classes(sums, n)
            .into_iter()
            .map(|(id, count)| ClassCount { class: self.class_name(id).to_string(), count })
            .collect()
    }

    /// The history route's answer for `range` as of `now_ms`.
    pub fn series(&self, shop: &str, range: Range, now_ms: i64) -> HistorySeries {
        let step = range.step_ms();
        let last = now_ms.div_euclid(step);
        let first = last - range.slots() + 1;
        let slots = self.slots(range, now_ms);
        let mut c = Columns::default();
        let mut totals = SlotCounts::default();
        let empty = Slot::default();
        for i in first..=last {
            let s = slots.get(&i).unwrap_or(&empty);
            totals.add(&s.counts);
            c.t.push(i * step / 1000);
            c.requests.push(s.counts.requests);
            c.errors_5xx.push(s.counts.errors_5xx);
            c.error_rate.push(rate(s.counts.errors_5xx, s.counts.requests));
            c.request_p50_ms.push(s.request_p50_ms);
            c.request_p95_ms.push(s.request_p95_ms);
            c.d1_p50_ms.push(s.d1_p50_ms);
            c.d1_p95_ms.push(s.d1_p95_ms);
            c.twilio_micros.push(s.counts.twilio_micros);
            c.claude_micros.push(s.counts.claude_micros);
        }
        HistorySeries {
            shop: shop.to_string(),
            range: range.as_str(),
            step_s: (step / 1000) as u32,
            from: rfc3339_ms(first * step),
            to: rfc3339_ms((last + 1) * step),
            now: rfc3339_ms(now_ms),
            series: c,
            totals: Totals {
                requests: totals.requests,
                errors_5xx: totals.errors_5xx,
                error_rate: rate(totals.errors_5xx, totals.requests),
                twilio_micros: totals.twilio_micros,
                claude_micros: totals.claude_micros,
            },
            top_error_classes: self.class_counts(slots.into_values().map(|s| s.classes), TOP_CLASSES_LISTED),
            r2: self
                .r2
                .iter()
                .map(|s: &R2Sample| R2Point { at: rfc3339_ms(s.at_ms), bytes: s.bytes, objects: s.objects })
                .collect(),
            last_hour: self.last_hour(now_ms),
            late_samples: self.counters.late_samples,
        }
    }

    /// The last 60 minutes as of `now_ms` (the open minute included).
    pub fn last_hour(&self, now_ms: i64) -> LastHour {
        let last = minute_of(now_ms);
        let first = last - 59;
        let mut counts = SlotCounts::default();
        let mut classes = Vec::new();
        for s in self.minutes.range(first..=last).map(|(_, s)| s) {
            counts.add(&s.counts);
            classes.push(s.classes.clone());
        }
        for o in self.open_minutes.range(first..=last).map(|(_, o)| o) {
            counts.add(&o.counts);
            classes.push(o.classes.iter().map(|(&k, &v)| (k, v)).collect());
        }
        LastHour {
            requests: counts.requests,
            errors_5xx: counts.errors_5xx,
            error_rate: rate(counts.errors_5xx, counts.requests),
            top_error_classes: self.class_counts(classes.into_iter(), TOP_CLASSES_MINUTE),
        }
    }
}
