//! The end-of-request log record and the cron summary record: every field declared up front,
//! serialized to exactly one JSON object. No I/O and no clock here: callers pass `ts`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::deps::NPlusOne;
use crate::redact::ErrorContext;

/// External services the app talks to; every request line lists each with its call count.
pub const EXTERNAL_SERVICES: [&str; 4] = ["stripe", "twilio", "claude", "gbp"];

/// Serialize a timestamp as RFC 3339 UTC with millisecond precision and a `Z` suffix.
pub fn ts_rfc3339<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The longest D1 query of a request: its parameterized signature (never bound values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowQuery {
    pub sql: String,
    pub ms: f64,
}

/// Every field of the request line, in order: each is always present.
pub const FIELDS: [&str; 19] = [
    "ts",
    "request_id",
    "shop",
    "staff_id",
    "staff_label",
    "path",
    "method",
    "status",
    "ms",
    "d1_queries",
    "d1_slowest",
    "d1_n_plus_one",
    "r2_ops",
    "external_calls",
    "cost_micros",
    "error_class",
    "error_msg",
    "error_context",
    "build_version",
];

/// One line per request. Fields that do not apply are `null`, `0` or `[]`, never missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    #[serde(serialize_with = "ts_rfc3339")]
    pub ts: DateTime<Utc>,
    pub request_id: String,
    pub shop: Option<String>,
    pub staff_id: Option<u32>,
    pub staff_label: Option<String>,
    pub path: String,
    pub method: String,
    pub status: u16,
    /// Wall time of the request in milliseconds (fractional: sub-millisecond locally).
    pub ms: f64,
    pub d1_queries: u32,
    pub d1_slowest: Option<SlowQuery>,
    /// The most repeated query shape when it crossed the N+1 threshold.
    pub d1_n_plus_one: Option<NPlusOne>,
    pub r2_ops: u32,
    /// `"service:count"` for every service in [`EXTERNAL_SERVICES`], in that order.
    pub external_calls: Vec<String>,
    /// What this request's external calls cost, for the shop's spend projections.
    pub cost_micros: CostMicros,
    pub error_class: Option<String>,
    pub error_msg: Option<String>,
    pub error_context: Option<ErrorContext>,
    pub build_version: String,
}

/// Spend of one request in micro-dollars, by the services that are billed per call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostMicros {
    pub twilio: u64,
    pub claude: u64,
}

/// Per-service call counters that become `external_calls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExternalCounts(pub [u32; EXTERNAL_SERVICES.len()]);

impl ExternalCounts {
    /// Count one call to `service`; unknown names are ignored (they cannot be listed).
    pub fn add(&mut self, service: &str) {
        if let Some(i) = EXTERNAL_SERVICES.iter().position(|s| *s == service) {
            self.0[i] += 1;
        }
    }

    pub fn to_field(self) -> Vec<String> {
        EXTERNAL_SERVICES.iter().zip(self.0).map(|(s, n)| format!("{s}:{n}")).collect()
    }
}

impl RequestRecord {
    /// A record with every field present and nothing yet observed.
    pub fn start(ts: DateTime<Utc>, request_id: String, method: &str, path: &str, build_version: &str) -> Self {
        RequestRecord {
            ts,
            request_id,
            shop: None,
            staff_id: None,
            staff_label: None,
            path: path.to_string(),
            method: method.to_string(),
            status: 500,
            ms: 0.0,
            d1_queries: 0,
            d1_slowest: None,
            d1_n_plus_one: None,
            r2_ops: 0,
            external_calls: ExternalCounts::default().to_field(),
            cost_micros: CostMicros::default(),
            error_class: None,
            error_msg: None,
            error_context: None,
            build_version: build_version.to_string(),
        }
    }

    /// The single JSON line for this record.
    pub fn to_line(&self) -> String {
        // Serialization of these plain types cannot fail; fall back to a minimal line anyway.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"request_id\":{:?},\"log_error\":{:?}}}", self.request_id, e.to_string()))
    }

    pub fn is_server_error(&self) -> bool {
        self.status >= 500
    }
}

/// Round a duration in ms to microseconds, so lines stay short and stable.
pub fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::{ContextValue, ErrorContext};
    use chrono::TimeZone;

    fn ts() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 10, 14, 23, 11).unwrap()
    }

    #[test]
    fn golden_success_line() {
        let mut r = RequestRecord::start(ts(), "req_a8h3k2".into(), "POST", "/api/tickets/2506/lines", "0.1.0+abc1234");
        r.shop = Some("swicked".into());
        r.staff_id = Some(3);
        r.staff_label = Some("Robbie".into());
        r.status = 200;
        r.ms = 47.0;
        r.d1_queries = 4;
        assert_eq!(
            r.to_line(),
            r#"{"ts":"2026-05-10T14:23:11.000Z","request_id":"req_a8h3k2","shop":"swicked","staff_id":3,"staff_label":"Robbie","path":"/api/tickets/2506/lines","method":"POST","status":200,"ms":47.0,"d1_queries":4,"d1_slowest":null,"d1_n_plus_one":null,"r2_ops":0,"external_calls":["stripe:0","twilio:0","claude:0","gbp:0"],"cost_micros":{"twilio":0,"claude":0},"error_class":null,"error_msg":null,"error_context":null,"build_version":"0.1.0+abc1234"}"#
        );
    }

    #[test]
    fn golden_error_line() {
        let mut r = RequestRecord::start(ts(), "req_a8h3k2".into(), "DELETE", "/api/tickets/2506", "v");
        r.shop = Some("swicked".into());
        r.status = 409;
        r.ms = 12.0;
        r.error_class = Some("BlockedByDependents".into());
        r.error_msg = Some("Cannot delete ticket with attached transactions".into());
        let mut c = ErrorContext::new();
        c.insert("ticket_id", ContextValue::Int(2506));
        c.insert("blocker", ContextValue::Label("transactions"));
        r.error_context = Some(c);
        let v: serde_json::Value = serde_json::from_str(&r.to_line()).unwrap();
        assert_eq!(v["status"], 409);
        assert_eq!(v["error_class"], "BlockedByDependents");
        assert_eq!(v["error_context"], serde_json::json!({"ticket_id": 2506, "blocker": "transactions"}));
        assert_eq!(v["staff_id"], serde_json::Value::Null);
    }

    #[test]
    fn every_field_is_present() {
        let r = RequestRecord::start(ts(), "req_x".into(), "GET", "/", "v");
        let v: serde_json::Value = serde_json::from_str(&r.to_line()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut declared = FIELDS.to_vec();
        keys.sort_unstable();
        declared.sort_unstable();
        assert_eq!(keys, declared, "the line has exactly the declared fields");
    }

    #[test]
    fn external_counts_list_every_service() {
        let mut c = ExternalCounts::default();
        c.add("stripe");
        c.add("stripe");
        c.add("claude");
        c.add("nonsense");
        assert_eq!(c.to_field(), vec!["stripe:2", "twilio:0", "claude:1", "gbp:0"]);
    }

    #[test]
    fn record_round_trips_through_json() {
        let mut r = RequestRecord::start(ts(), "req_x".into(), "GET", "/a", "v");
        r.d1_slowest = Some(SlowQuery { sql: "SELECT * FROM t WHERE id = ?".into(), ms: 1.5 });
        let back: RequestRecord = serde_json::from_str(&r.to_line()).unwrap();
        assert_eq!(back, r);
    }
}
