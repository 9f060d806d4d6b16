//! The monitor's ingest protocol: a batch of request records as JSON. Each record is checked
//! on its own, so one malformed record is rejected with its reason while the good ones beside
//! it are kept. Size limits are enforced before parsing.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::core::record::RequestRecord;
use crate::core::request_id::is_request_id;

/// Largest ingest body accepted.
pub const MAX_INGEST_BYTES: usize = 1 << 20;
/// Most records in one batch.
pub const MAX_BATCH_RECORDS: usize = 2000;

/// Why a whole batch was refused (nothing in it was used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The body is larger than [`MAX_INGEST_BYTES`].
    TooLarge { bytes: usize },
    /// The body is not `{"records": [...]}`.
    NotABatch(String),
    /// More than [`MAX_BATCH_RECORDS`] records.
    TooManyRecords { count: usize },
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::TooLarge { bytes } => write!(f, "ingest body of {bytes} bytes exceeds {MAX_INGEST_BYTES}"),
            BatchError::NotABatch(e) => write!(f, "ingest body is not {{\"records\": [...]}}: {e}"),
            BatchError::TooManyRecords { count } => write!(f, "{count} records exceed the batch limit {MAX_BATCH_RECORDS}"),
        }
    }
}

/// One record refused, by position in the batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub reason: String,
}

/// The parsed batch: accepted records and the rejected ones with reasons.
#[derive(Debug, Default)]
pub struct Parsed {
    pub records: Vec<RequestRecord>,
    pub rejected: Vec<Rejection>,
}

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    records: Vec<&'a RawValue>,
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

/// Parse a batch for the monitor of `shop`: records of another shop are rejected.
pub fn parse_batch(body: &[u8], shop: &str) -> Result<Parsed, BatchError> {
    if body.len() > MAX_INGEST_BYTES {
        return Err(BatchError::TooLarge { bytes: body.len() });
    }
    let text = std::str::from_utf8(body).map_err(|e| BatchError::NotABatch(e.to_string()))?;
    let batch: Batch = serde_json::from_str(text).map_err(|e| BatchError::NotABatch(e.to_string()))?;
    if batch.records.len() > MAX_BATCH_RECORDS {
        return Err(BatchError::TooManyRecords { count: batch.records.len() });
    }
    let mut out = Parsed::default();
    for (index, raw) in batch.records.iter().enumerate() {
        match serde_json::from_str::<RequestRecord>(raw.get()) {
            Err(e) => out.rejected.push(Rejection { index, reason: format!("not a request record: {e}") }),
            Ok(r) => match check(&r, shop) {
                Ok(()) => out.records.push(r),
                Err(reason) => out.rejected.push(Rejection { index, reason }),
            },
        }
    }
    Ok(out)
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

    fn line(shop: &str, status: u16) -> String {
        let mut r = RequestRecord::start(
            chrono::Utc.with_ymd_and_hms(2026, 5, 10, 0, 0, 0).unwrap(),
            "req_0123456789ab".into(),
            "GET",
            "/x",
            "v",
        );
        r.shop = Some(shop.into());
        r.status = status;
        r.to_line()
    }

    #[test]
    fn good_records_survive_bad_neighbours() {
        let good = line("swicked", 200);
        let body = batch_body([good.as_str(), "{\"nope\":1}", &line("demo", 200), &line("swicked", 42), "7"]);
        let p = parse_batch(body.as_bytes(), "swicked").unwrap();
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].status, 200);
        let idx: Vec<usize> = p.rejected.iter().map(|r| r.index).collect();
        assert_eq!(idx, vec![1, 2, 3, 4]);
        assert!(p.rejected[1].reason.contains("\"demo\""), "{:?}", p.rejected[1]);
        assert!(p.rejected[2].reason.contains("status 42"));
    }

    #[test]
    fn whole_batch_errors_are_precise() {
        assert!(matches!(parse_batch(b"[1,2]", "s"), Err(BatchError::NotABatch(_))));
        assert!(matches!(parse_batch(&vec![b' '; MAX_INGEST_BYTES + 1], "s"), Err(BatchError::TooLarge { .. })));
        let many = batch_body(std::iter::repeat_n("1", MAX_BATCH_RECORDS + 1));
        assert_eq!(parse_batch(many.as_bytes(), "s").unwrap_err(), BatchError::TooManyRecords { count: MAX_BATCH_RECORDS + 1 });
    }

    #[test]
    fn empty_batch_is_fine() {
        let p = parse_batch(b"{\"records\":[]}", "s").unwrap();
        assert!(p.records.is_empty() && p.rejected.is_empty());
    }
}
