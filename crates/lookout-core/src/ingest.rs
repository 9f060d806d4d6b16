//! The monitor's ingest protocol: a batch of partial buckets (what an isolate folded its
//! requests into, `core::partial`), request records (a panicked request's line, an isolate of
//! an older build during a deploy) and cron check-ins as JSON,
//! `{"partials": [...], "records": [...], "cron_check_ins": [...]}` (any list may be absent,
//! not all). Each item is checked on its own, so one malformed or foreign item is rejected
//! with its reason while the good ones beside it are kept. Size limits are enforced before
//! parsing; [`partials_bodies`] splits what an isolate sends into bodies under a byte bound.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::cron::{is_cron_name, CheckInKind, CronCheckIn};
use crate::partial::{Partial, PartialBucket};
use crate::record::RequestRecord;
use crate::request_id::is_request_id;

/// Largest ingest body accepted.
pub const MAX_INGEST_BYTES: usize = 1 << 20;
/// Most records in one batch.
pub const MAX_BATCH_RECORDS: usize = 2000;
/// Most cron check-ins in one batch.
pub const MAX_BATCH_CHECK_INS: usize = 100;
/// Most partial buckets in one batch.
pub const MAX_BATCH_PARTIALS: usize = 512;
/// The byte bound of a body an isolate sends ([`partials_bodies`]): far under
/// [`MAX_INGEST_BYTES`], so a body is never refused for its size.
pub const MAX_SEND_BYTES: usize = 256 * 1024;
/// A check-in dated further than this ahead of the monitor's clock is refused (it could claim
/// slots that have not happened yet).
pub const MAX_CHECK_IN_AHEAD_MS: i64 = 300_000;
/// A check-in's run may not report a duration longer than this (7 days).
pub const MAX_CHECK_IN_RUN_MS: u64 = 7 * 86_400_000;

/// Why a whole batch was refused (nothing in it was used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The body is larger than [`MAX_INGEST_BYTES`].
    TooLarge { bytes: usize },
    /// The body is not `{"partials": [...], "records": [...], "cron_check_ins": [...]}` (at
    /// least one list).
    NotABatch(String),
    /// More than [`MAX_BATCH_RECORDS`] records.
    TooManyRecords { count: usize },
    /// More than [`MAX_BATCH_CHECK_INS`] check-ins.
    TooManyCheckIns { count: usize },
    /// More than [`MAX_BATCH_PARTIALS`] partial buckets.
    TooManyPartials { count: usize },
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::TooLarge { bytes } => write!(f, "ingest body of {bytes} bytes exceeds {MAX_INGEST_BYTES}"),
            BatchError::NotABatch(e) => {
                write!(
                    f,
                    "ingest body is not {{\"partials\": [...], \"records\": [...], \"cron_check_ins\": [...]}}: {e}"
                )
            }
            BatchError::TooManyRecords { count } => {
                write!(f, "{count} records exceed the batch limit {MAX_BATCH_RECORDS}")
            }
            BatchError::TooManyCheckIns { count } => {
                write!(f, "{count} cron check-ins exceed the batch limit {MAX_BATCH_CHECK_INS}")
            }
            BatchError::TooManyPartials { count } => {
                write!(f, "{count} partial buckets exceed the batch limit {MAX_BATCH_PARTIALS}")
            }
        }
    }
}

/// One item refused, by list and position in the batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// `partials`, `records` or `cron_check_ins`.
    pub list: &'static str,
    pub index: usize,
    pub reason: String,
}

/// The parsed batch: accepted items and the rejected ones with reasons.
#[derive(Debug, Default)]
pub struct Parsed {
    pub records: Vec<RequestRecord>,
    pub partials: Vec<Partial>,
    pub check_ins: Vec<CronCheckIn>,
    pub rejected: Vec<Rejection>,
}

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow, default)]
    records: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    cron_check_ins: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    partials: Option<Vec<&'a RawValue>>,
}

/// Build a batch body from already-serialized record lines (no re-serialization).
pub fn batch_body<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut body = String::from("{\"records\":[");
    for (i, l) in lines.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(l);
    }
    body.push_str("]}");
    body
}

/// Bodies carrying `partials`, each at most [`MAX_SEND_BYTES`] (a partial is far smaller:
/// its strings and lists are bounded), with the number of records each body carries.
pub fn partials_bodies(partials: &[PartialBucket]) -> Vec<(String, u64)> {
    let mut bodies = Vec::new();
    let (mut body, mut records, mut n) = (String::from("{\"partials\":["), 0u64, 0usize);
    for p in partials {
        let Ok(json) = serde_json::to_string(p) else { continue };
        if n > 0 && (body.len() + json.len() + 2 > MAX_SEND_BYTES || n >= MAX_BATCH_PARTIALS) {
            body.push_str("]}");
            bodies.push((std::mem::replace(&mut body, String::from("{\"partials\":[")), records));
            (records, n) = (0, 0);
        }
        if n > 0 {
            body.push(',');
        }
        body.push_str(&json);
        records += p.requests;
        n += 1;
    }
    if n > 0 {
        body.push_str("]}");
        bodies.push((body, records));
    }
    bodies
}

/// A batch body carrying only cron check-ins.
pub fn check_ins_body(check_ins: &[CronCheckIn]) -> String {
    serde_json::json!({ "cron_check_ins": check_ins }).to_string()
}

/// Parse a batch for the monitor of `shop` as of `now_ms` (the monitor's clock): records of
/// another shop are rejected, and so are check-ins dated too far ahead.
pub fn parse_batch(body: &[u8], shop: &str, now_ms: i64) -> Result<Parsed, BatchError> {
    if body.len() > MAX_INGEST_BYTES {
        return Err(BatchError::TooLarge { bytes: body.len() });
    }
    let text = std::str::from_utf8(body).map_err(|e| BatchError::NotABatch(e.to_string()))?;
    let batch: Batch = serde_json::from_str(text).map_err(|e| BatchError::NotABatch(e.to_string()))?;
    if batch.records.is_none() && batch.cron_check_ins.is_none() && batch.partials.is_none() {
        return Err(BatchError::NotABatch("none of `partials`, `records`, `cron_check_ins` is present".into()));
    }
    let records = batch.records.unwrap_or_default();
    let check_ins = batch.cron_check_ins.unwrap_or_default();
    let partials = batch.partials.unwrap_or_default();
    if partials.len() > MAX_BATCH_PARTIALS {
        return Err(BatchError::TooManyPartials { count: partials.len() });
    }
    if records.len() > MAX_BATCH_RECORDS {
        return Err(BatchError::TooManyRecords { count: records.len() });
    }
    if check_ins.len() > MAX_BATCH_CHECK_INS {
        return Err(BatchError::TooManyCheckIns { count: check_ins.len() });
    }
    let mut out = Parsed::default();
    for (index, raw) in partials.iter().enumerate() {
        let list = "partials";
        match serde_json::from_str::<PartialBucket>(raw.get()) {
            Err(e) => out.rejected.push(Rejection { list, index, reason: format!("not a partial bucket: {e}") }),
            Ok(p) => match p.check(shop) {
                Ok(p) => out.partials.push(p),
                Err(reason) => out.rejected.push(Rejection { list, index, reason }),
            },
        }
    }
    for (index, raw) in records.iter().enumerate() {
        let list = "records";
        match serde_json::from_str::<RequestRecord>(raw.get()) {
            Err(e) => out.rejected.push(Rejection { list, index, reason: format!("not a request record: {e}") }),
            Ok(r) => match check(&r, shop) {
                Ok(()) => out.records.push(r),
                Err(reason) => out.rejected.push(Rejection { list, index, reason }),
            },
        }
    }
    for (index, raw) in check_ins.iter().enumerate() {
        let list = "cron_check_ins";
        match serde_json::from_str::<CronCheckIn>(raw.get()) {
            Err(e) => out.rejected.push(Rejection { list, index, reason: format!("not a cron check-in: {e}") }),
            Ok(c) => match check_check_in(&c, now_ms) {
                Ok(()) => out.check_ins.push(c),
                Err(reason) => out.rejected.push(Rejection { list, index, reason }),
            },
        }
    }
    Ok(out)
}

/// A run id as [`crate::cron::CronRun`] makes them: `cron_` then 1-59 of `a-z0-9_`.
fn is_run_id(s: &str) -> bool {
    s.len() <= 64
        && s.strip_prefix("cron_").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Earliest plausible check-in time (2020-01-01): anything before is a unit mistake.
const MIN_CHECK_IN_MS: i64 = 1_577_836_800_000;

fn check_check_in(c: &CronCheckIn, now_ms: i64) -> Result<(), String> {
    if !is_cron_name(&c.cron) {
        return Err("cron must be 1-64 of a-z, 0-9, _ starting with a letter".into());
    }
    if !is_run_id(&c.run_id) {
        return Err("run_id must be `cron_` followed by a-z, 0-9, _ (at most 64 chars)".into());
    }
    if c.at_ms < MIN_CHECK_IN_MS || c.scheduled_ms < MIN_CHECK_IN_MS {
        return Err("at_ms and scheduled_ms must be Unix epoch milliseconds (after 2020)".into());
    }
    if c.at_ms > now_ms.saturating_add(MAX_CHECK_IN_AHEAD_MS) {
        return Err(format!("at_ms is {} s ahead of the monitor's clock", (c.at_ms - now_ms) / 1000));
    }
    if let CheckInKind::End { ms, .. } = &c.kind {
        if *ms > MAX_CHECK_IN_RUN_MS {
            return Err(format!("ms {ms} exceeds the longest run accepted ({MAX_CHECK_IN_RUN_MS})"));
        }
    }
    Ok(())
}

fn check(r: &RequestRecord, shop: &str) -> Result<(), String> {
    if r.shop.as_deref() != Some(shop) {
        return Err(format!("record belongs to shop {:?}, not {shop:?}", r.shop.as_deref().unwrap_or("none")));
    }
    if !is_request_id(&r.request_id) {
        return Err("request_id has an unknown shape".into());
    }
    if !(100..=599).contains(&r.status) {
        return Err(format!("status {} is not an HTTP status", r.status));
    }
    if !r.ms.is_finite() || r.ms < 0.0 {
        return Err("ms must be a finite non-negative number".into());
    }
    if let Some(s) = &r.d1_slowest {
        if !s.ms.is_finite() || s.ms < 0.0 {
            return Err("d1_slowest.ms must be a finite non-negative number".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(shop: &str, status: u16) -> RequestRecord {
        let mut r = RequestRecord::start(
            chrono::Utc.with_ymd_and_hms(2026, 5, 10, 0, 0, 0).unwrap(),
            "req_0123456789ab".into(),
            "GET",
            "/x",
            "v",
        );
        r.shop = Some(shop.into());
        r.status = status;
        r
    }

    fn line(shop: &str, status: u16) -> String {
        record(shop, status).to_line()
    }

    #[test]
    fn good_records_survive_bad_neighbours() {
        let good = line("swicked", 200);
        let body = batch_body([good.as_str(), "{\"nope\":1}", &line("demo", 200), &line("swicked", 42), "7"]);
        let p = parse_batch(body.as_bytes(), "swicked", NOW).unwrap();
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].status, 200);
        let idx: Vec<usize> = p.rejected.iter().map(|r| r.index).collect();
        assert_eq!(idx, vec![1, 2, 3, 4]);
        assert!(p.rejected[1].reason.contains("\"demo\""), "{:?}", p.rejected[1]);
        assert!(p.rejected[2].reason.contains("status 42"));
    }

    #[test]
    fn whole_batch_errors_are_precise() {
        assert!(matches!(parse_batch(b"[1,2]", "s", NOW), Err(BatchError::NotABatch(_))));
        assert!(matches!(parse_batch(b"{}", "s", NOW), Err(BatchError::NotABatch(ref e)) if e.contains("none of")));
        assert!(matches!(parse_batch(&vec![b' '; MAX_INGEST_BYTES + 1], "s", NOW), Err(BatchError::TooLarge { .. })));
        let many = batch_body(std::iter::repeat_n("1", MAX_BATCH_RECORDS + 1));
        assert_eq!(
            parse_batch(many.as_bytes(), "s", NOW).unwrap_err(),
            BatchError::TooManyRecords { count: MAX_BATCH_RECORDS + 1 }
        );
        let ci = serde_json::to_string(&check_in("daily_reconciliation", "cron_d_2026_05_10", NOW)).unwrap();
        let many = format!("{{\"cron_check_ins\":[{}]}}", vec![ci; MAX_BATCH_CHECK_INS + 1].join(","));
        assert_eq!(
            parse_batch(many.as_bytes(), "s", NOW).unwrap_err(),
            BatchError::TooManyCheckIns { count: MAX_BATCH_CHECK_INS + 1 }
        );
    }

    fn partial(shop: &str, seq: u64) -> PartialBucket {
        let mut acc = crate::partial::PartialAccumulator::default();
        acc.fold(&record(shop, 200));
        acc.take(shop, || format!("iso-{seq}")).remove(0)
    }

    #[test]
    fn partials_ride_beside_records_and_bad_ones_are_refused_alone() {
        let good = serde_json::to_string(&partial("swicked", 1)).unwrap();
        let foreign = serde_json::to_string(&partial("demo", 2)).unwrap();
        let mut future = partial("swicked", 3);
        future.v = 9;
        let future = serde_json::to_string(&future).unwrap();
        let body =
            format!("{{\"partials\":[{good},{foreign},{{\"v\":1}},{future}],\"records\":[{}]}}", line("swicked", 200));
        let p = parse_batch(body.as_bytes(), "swicked", NOW).unwrap();
        assert_eq!((p.partials.len(), p.records.len()), (1, 1));
        assert_eq!(p.partials[0].id, "iso-1");
        let got: Vec<(&str, usize)> = p.rejected.iter().map(|r| (r.list, r.index)).collect();
        assert_eq!(got, vec![("partials", 1), ("partials", 2), ("partials", 3)]);
        assert!(p.rejected[0].reason.contains("shop \"demo\""), "{:?}", p.rejected[0]);
        assert!(p.rejected[1].reason.starts_with("not a partial bucket"), "{:?}", p.rejected[1]);
        assert!(p.rejected[2].reason.contains("format v9"), "{:?}", p.rejected[2]);
        let many = format!("{{\"partials\":[{}]}}", vec!["1"; MAX_BATCH_PARTIALS + 1].join(","));
        assert_eq!(
            parse_batch(many.as_bytes(), "swicked", NOW).unwrap_err(),
            BatchError::TooManyPartials { count: MAX_BATCH_PARTIALS + 1 }
        );
    }

    #[test]
    fn what_an_isolate_sends_is_split_into_bodies_under_the_byte_bound() {
        let partials: Vec<PartialBucket> = (0..2000).map(|i| partial("swicked", i)).collect();
        let bodies = partials_bodies(&partials);
        assert!(bodies.len() > 1);
        assert_eq!(bodies.iter().map(|(_, n)| n).sum::<u64>(), 2000);
        let mut seen = 0;
        for (body, records) in &bodies {
            assert!(body.len() <= MAX_SEND_BYTES, "{} bytes", body.len());
            let p = parse_batch(body.as_bytes(), "swicked", NOW).unwrap();
            assert!(p.rejected.is_empty());
            assert_eq!(p.partials.len() as u64, *records);
            seen += p.partials.len();
        }
        assert_eq!(seen, 2000);
        assert!(partials_bodies(&[]).is_empty());
    }

    #[test]
    fn empty_batch_is_fine() {
        let p = parse_batch(b"{\"records\":[]}", "s", NOW).unwrap();
        assert!(p.records.is_empty() && p.rejected.is_empty());
        let p = parse_batch(b"{\"cron_check_ins\":[]}", "s", NOW).unwrap();
        assert!(p.check_ins.is_empty() && p.rejected.is_empty());
    }

    /// 2026-05-10T07:00:00Z
    const NOW: i64 = 1_778_396_400_000;

    fn check_in(cron: &str, run_id: &str, at_ms: i64) -> CronCheckIn {
        CronCheckIn { cron: cron.into(), run_id: run_id.into(), scheduled_ms: NOW, kind: CheckInKind::Start, at_ms }
    }

    #[test]
    fn check_ins_ride_beside_records_and_are_checked_one_by_one() {
        let good = check_in("daily_reconciliation", "cron_d_2026_05_10", NOW);
        let mut end = good.clone();
        end.kind = CheckInKind::End { ok: true, ms: 8420, results: Default::default(), errors_count: 0 };
        end.at_ms = NOW + 8420;
        let bad_name = check_in("Daily Reconciliation", "cron_d_2026_05_10", NOW);
        let bad_run = check_in("daily_reconciliation", "run-1; DROP", NOW);
        let ahead = check_in("daily_reconciliation", "cron_d_2026_05_11", NOW + 3_600_000);
        let seconds = check_in("daily_reconciliation", "cron_d_2026_05_10", NOW / 1000);
        let mut long = end.clone();
        long.kind =
            CheckInKind::End { ok: true, ms: MAX_CHECK_IN_RUN_MS + 1, results: Default::default(), errors_count: 0 };
        let items: Vec<String> = [&good, &bad_name, &end, &bad_run, &ahead, &seconds, &long]
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .chain(["{\"cron\":1}".to_string()])
            .collect();
        let body = format!("{{\"records\":[{}],\"cron_check_ins\":[{}]}}", line("swicked", 200), items.join(","));
        let p = parse_batch(body.as_bytes(), "swicked", NOW).unwrap();
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.check_ins, vec![good.clone(), end]);
        let rejected: Vec<(&str, usize)> = p.rejected.iter().map(|r| (r.list, r.index)).collect();
        assert_eq!(
            rejected,
            vec![
                ("cron_check_ins", 1),
                ("cron_check_ins", 3),
                ("cron_check_ins", 4),
                ("cron_check_ins", 5),
                ("cron_check_ins", 6),
                ("cron_check_ins", 7)
            ]
        );
        assert!(p.rejected[0].reason.contains("cron must be"), "{:?}", p.rejected[0]);
        assert!(p.rejected[1].reason.contains("run_id"), "{:?}", p.rejected[1]);
        assert!(p.rejected[2].reason.contains("3600 s ahead"), "{:?}", p.rejected[2]);
        assert!(p.rejected[3].reason.contains("epoch milliseconds"), "{:?}", p.rejected[3]);
        assert!(p.rejected[4].reason.contains("longest run"), "{:?}", p.rejected[4]);
        assert!(p.rejected[5].reason.starts_with("not a cron check-in"), "{:?}", p.rejected[5]);
        // The body the scheduled handler sends parses back to the same check-ins.
        let p = parse_batch(check_ins_body(std::slice::from_ref(&good)).as_bytes(), "swicked", NOW).unwrap();
        assert_eq!(p.check_ins, vec![good]);
    }
}
