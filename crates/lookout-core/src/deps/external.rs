//! External calls (Stripe, Twilio, Claude, GBP): the service names, endpoint templates, the
//! retry policy and idempotency keys, and the one-line `external_call` log record. Pure: the
//! edge performs the HTTP calls and sleeps; body redaction lives in `body`.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::body::{is_id_shaped, redact_body};
use super::cost::{CallCost, Cost};
use crate::record::{round_ms, ts_rfc3339, EXTERNAL_SERVICES};
use crate::redact::{cap_chars, looks_like_name, scrub_text_capped};
use crate::request_id::is_request_id;

/// An external service the app calls; its name is the matching [`EXTERNAL_SERVICES`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Stripe,
    Twilio,
    /// The AI API.
    Claude,
    /// Google Business Profile.
    Gbp,
}

impl Service {
    /// In the order of [`EXTERNAL_SERVICES`].
    pub const ALL: [Service; 4] = [Service::Stripe, Service::Twilio, Service::Claude, Service::Gbp];

    pub fn as_str(self) -> &'static str {
        EXTERNAL_SERVICES[self as usize]
    }

    /// The service with this name (exactly as in [`EXTERNAL_SERVICES`]).
    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Service {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Service {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Service::from_name(&name).ok_or_else(|| serde::de::Error::unknown_variant(&name, &EXTERNAL_SERVICES))
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// The upstream answered with this HTTP status.
    Status(u16),
    /// No response: DNS, connect, TLS, reset or timeout (of the whole answer, body included).
    NetworkError,
    /// The upstream answered with this status but a body over the size cap, which was not
    /// read: a failure, not worth repeating (the next answer would be as large).
    TooLarge(u16),
}

impl CallOutcome {
    /// The status for the log line (`null` on a network error).
    pub fn status(self) -> Option<u16> {
        match self {
            CallOutcome::Status(s) | CallOutcome::TooLarge(s) => Some(s),
            CallOutcome::NetworkError => None,
        }
    }

    /// A network error or a 4xx/5xx status.
    pub fn failed(self) -> bool {
        match self {
            CallOutcome::Status(s) => s >= 400,
            CallOutcome::NetworkError | CallOutcome::TooLarge(_) => true,
        }
    }

    /// Worth another attempt (for an idempotent call): network errors, 429 and 5xx.
    pub fn retryable(self) -> bool {
        match self {
            CallOutcome::Status(s) => s == 429 || (500..=599).contains(&s),
            CallOutcome::NetworkError => true,
            CallOutcome::TooLarge(_) => false,
        }
    }
}

/// Whether repeating a call cannot do the work twice: safe and idempotent methods, or any
/// method when the call carries an `Idempotency-Key` (Stripe `POST`s).
pub fn is_idempotent(method: &str, has_idempotency_key: bool) -> bool {
    has_idempotency_key || matches!(method.to_ascii_uppercase().as_str(), "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE")
}

/// Retries with exponential backoff, decided without a clock: the edge sleeps exactly the
/// returned delay (no jitter is added) and tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay_ms: u64,
    /// Cap on any single delay.
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    /// Two retries, 100 ms then 200 ms, never more than 2 s: short enough for a request.
    fn default() -> Self {
        RetryPolicy { max_retries: 2, base_delay_ms: 100, max_delay_ms: 2_000 }
    }
}

impl RetryPolicy {
    /// After attempt number `attempt` (1 for the first try) ended with `outcome`: the delay
    /// in ms before the next attempt, or `None` to stop. Only idempotent calls are retried,
    /// only on network errors, 429 and 5xx (other 4xx never), and at most `max_retries`
    /// times. The delay is `base_delay_ms * 2^(attempt-1)`, capped at `max_delay_ms`.
    pub fn should_retry(&self, method_idempotent: bool, attempt: u32, outcome: CallOutcome) -> Option<u64> {
        let attempt = attempt.max(1);
        if !method_idempotent || !outcome.retryable() || attempt > self.max_retries {
            return None;
        }
        let factor = 1u64.checked_shl(attempt - 1).unwrap_or(u64::MAX);
        Some(self.base_delay_ms.saturating_mul(factor).min(self.max_delay_ms))
    }

    /// Combine a backoff `delay_ms` with the upstream's `Retry-After` header (seconds; the
    /// HTTP-date form is ignored since no clock is read here): wait the longer of the two,
    /// or give up (`None`) when the upstream asks for more than `max_delay_ms`.
    pub fn honor_retry_after(&self, delay_ms: u64, retry_after: Option<&str>) -> Option<u64> {
        match retry_after.and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(s) => {
                let wanted_ms = s.saturating_mul(1_000);
                (wanted_ms <= self.max_delay_ms).then_some(delay_ms.max(wanted_ms))
            }
            None => Some(delay_ms),
        }
    }
}

/// Longest idempotency key (Stripe accepts up to 255 characters).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The `Idempotency-Key` for one logical call of a request: `"{request_id}:{call_label}"`,
/// the same for every retry of that call. `call_label` must name the call uniquely within
/// the request (`"charge:ticket_2506"`, not `"charge"` for two different charges), or Stripe
/// will answer the second call with the first one's result. When the plain key would be
/// too long or hold characters outside `[A-Za-z0-9_.:-]`, it is replaced by `idem_` + 32 hex
/// digits: two 64-bit FNV-1a hashes (of the key and of its bytes reversed), stable across
/// retries and isolates but not cryptographic (it only needs to be unique per call).
pub fn idempotency_key(request_id: &str, call_label: &str) -> String {
    let plain = format!("{request_id}:{call_label}");
    let safe = plain.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if safe && plain.len() <= MAX_IDEMPOTENCY_KEY_LEN {
        plain
    } else {
        let rev: Vec<u8> = plain.bytes().rev().collect();
        format!("idem_{:016x}{:016x}", fnv1a64(plain.as_bytes()), fnv1a64(&rev))
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// What replaces an id-like path segment.
pub const ID_PLACEHOLDER: &str = "{id}";
/// Longest endpoint template kept, in characters.
pub const MAX_ENDPOINT_CHARS: usize = 200;
#[rustfmt::skip]
const KNOWN_EXTENSIONS: &[&str] = &[
    "json", "xml", "csv", "txt", "html", "pdf", "png", "jpg", "mp3", "wav",
];

/// The path template of a URL or path, safe to log: scheme, host (and any credentials in
/// it), query string and fragment are dropped, and every path segment that is not plainly a
/// resource name becomes `{id}`. Deny by default: a segment is kept only when it is
///
/// * an API version (`v1`, `v2beta1`, `2010-04-01`),
/// * a lower-case word (`customers`, `payment_intents`, `count-tokens`), or
/// * a capitalized resource word that is not name-like (`Accounts`, `Messages`,
///   `IncomingPhoneNumbers`; see `redact::looks_like_name`),
///
/// optionally with a known file extension (`.json`) or a Google-style `:verb` suffix. So
/// numbers, Stripe ids (`cus_Nf8a9`), Twilio SIDs, UUIDs, hex or base64 blobs, emails, phone
/// numbers, capitalized names and anything percent-encoded all become `{id}`. A lower-case
/// slug (`alice-smith`) would pass as a resource word: app code must not put customer text in
/// upstream paths (none of the four upstreams needs it).
/// `endpoint_template("/v1/customers/cus_Nf8a9/charges?limit=3")` is `/v1/customers/{id}/charges`.
pub fn endpoint_template(url: &str) -> String {
    let path = strip_origin(url);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let template = path.split('/').map(template_segment).collect::<Vec<_>>().join("/");
    cap_chars(template, MAX_ENDPOINT_CHARS)
}

fn strip_origin(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) if url[..i].bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')) => {
            &url[i + 3..]
        }
        _ => match url.strip_prefix("//") {
            Some(r) => r,
            None => return url,
        },
    };
    // The authority ends at the first '/', '?' or '#'.
    match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
        _ => "/",
    }
}

fn template_segment(seg: &str) -> String {
    if seg.is_empty() || is_api_version(seg) || is_resource_word(seg) {
        return seg.to_string();
    }
    // Google custom methods: `locations/123:batchGet`.
    if let Some((base, verb)) = seg.rsplit_once(':') {
        let verb_ok = verb.len() <= 40
            && verb.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && verb.chars().all(|c| c.is_ascii_alphabetic());
        if verb_ok && !base.contains(':') {
            return format!("{}:{verb}", template_segment(base));
        }
        return ID_PLACEHOLDER.to_string();
    }
    if let Some((stem, ext)) = seg.rsplit_once('.') {
        if KNOWN_EXTENSIONS.contains(&ext) && !stem.is_empty() {
            return format!("{}.{ext}", template_segment(stem));
        }
    }
    ID_PLACEHOLDER.to_string()
}

fn is_api_version(seg: &str) -> bool {
    let b = seg.as_bytes();
    // 2010-04-01
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        return b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    }
    // v1, v2beta1, v1alpha
    let Some(rest) = seg.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let tail = &rest[digits..];
    (1..=2).contains(&digits)
        && ["", "alpha", "beta"].iter().any(|p| {
            tail.strip_prefix(p).is_some_and(|n| {
                n.len() <= 2 && n.bytes().all(|c| c.is_ascii_digit()) && (p.is_empty() == tail.is_empty())
            })
        })
}

fn is_resource_word(seg: &str) -> bool {
    if seg.len() > 40 || !seg.bytes().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        return false;
    }
    let lower_word = seg.bytes().all(|c| c.is_ascii_lowercase() || c == b'_' || c == b'-');
    let capitalized_word = seg.bytes().next().is_some_and(|c| c.is_ascii_uppercase())
        && seg.bytes().all(|c| c.is_ascii_alphabetic())
        && seg.bytes().any(|c| c.is_ascii_lowercase())
        && !looks_like_name(seg);
    lower_word || capitalized_word
}

/// The facts of one external call, as the edge observed them (after all its retries).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallFacts<'a> {
    pub target: Service,
    /// HTTP method; anything unusual is logged as `OTHER`.
    pub method: &'a str,
    /// The URL or path called: only its [`endpoint_template`] is kept.
    pub url: &'a str,
    /// Total wall time across attempts, in ms.
    pub ms: f64,
    /// How the last attempt ended.
    pub outcome: CallOutcome,
    /// Attempts after the first.
    pub retries: u32,
}

/// Longest `error_body` kept, in characters.
pub const MAX_ERROR_BODY_CHARS: usize = 1024;

/// The `external_call` log line. Its fields can only be set through constructors that
/// template or redact, so no raw URL, body or secret can reach it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExternalCallLine {
    #[serde(serialize_with = "ts_rfc3339")]
    ts: DateTime<Utc>,
    kind: &'static str,
    request_id: String,
    target: Service,
    method: &'static str,
    endpoint: String,
    status: Option<u16>,
    ms: f64,
    retries: u32,
    error_body: Option<String>,
    cost_micros: Option<u64>,
}

fn method_label(method: &str) -> &'static str {
    const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    METHODS.into_iter().find(|m| m.eq_ignore_ascii_case(method)).unwrap_or("OTHER")
}

/// Our request ids pass as they are; anything else is kept only when it is a plain opaque id
/// (letters and digits, see `body::is_id_shaped`), otherwise it is scrubbed.
fn clean_request_id(id: &str) -> String {
    if is_request_id(id) || (id.len() <= 64 && is_id_shaped(id)) {
        id.to_string()
    } else {
        scrub_text_capped(id, 64)
    }
}

impl ExternalCallLine {
    /// The line for one call, at `ts`, made while serving `request_id`.
    pub fn new(ts: DateTime<Utc>, request_id: &str, facts: CallFacts<'_>) -> Self {
        let ms = if facts.ms.is_finite() && facts.ms > 0.0 { round_ms(facts.ms) } else { 0.0 };
        ExternalCallLine {
            ts,
            kind: "external_call",
            request_id: clean_request_id(request_id),
            target: facts.target,
            method: method_label(facts.method),
            endpoint: endpoint_template(facts.url),
            status: facts.outcome.status(),
            ms,
            retries: facts.retries,
            error_body: None,
            cost_micros: None,
        }
    }

    /// Attach the upstream's response body, redacted (see [`redact_body`]) and capped at
    /// [`MAX_ERROR_BODY_CHARS`]. Ignored when the call succeeded: only failures log a body.
    pub fn with_error_body(mut self, body: &str, content_type: Option<&str>) -> Self {
        if self.failed() {
            self.error_body = Some(redact_body(body, content_type));
        }
        self
    }

    /// Record what the call cost (Twilio segments, AI tokens).
    pub fn with_cost(mut self, cost: Cost) -> Self {
        self.cost_micros = Some(cost.micros());
        self
    }

    /// A network error or a 4xx/5xx status.
    pub fn failed(&self) -> bool {
        self.status.is_none_or(|s| s >= 400)
    }

    pub fn target(&self) -> Service {
        self.target
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn status(&self) -> Option<u16> {
        self.status
    }

    pub fn retries(&self) -> u32 {
        self.retries
    }

    pub fn error_body(&self) -> Option<&str> {
        self.error_body.as_deref()
    }

    /// The cost to send to the shop's monitor, when one was recorded.
    pub fn call_cost(&self) -> Option<CallCost> {
        self.cost_micros.map(|m| CallCost::new(self.target, Cost::from_micros(m)))
    }

    /// The single JSON line for this call.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"kind\":\"external_call\",\"request_id\":{:?},\"log_error\":{:?}}}",
                self.request_id,
                e.to_string()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn endpoint_templates_drop_ids_and_queries() {
        let cases = [
            ("/v1/customers/cus_Nf8a9/charges?limit=3", "/v1/customers/{id}/charges"),
            ("https://api.stripe.com/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa/confirm", "/v1/payment_intents/{id}/confirm"),
            ("/v1/refunds", "/v1/refunds"),
            (
                "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages/SM0123456789abcdef0123456789abcdef.json",
                "/2010-04-01/Accounts/{id}/Messages/{id}.json",
            ),
            ("/2010-04-01/Accounts/ACabc/IncomingPhoneNumbers.json", "/2010-04-01/Accounts/{id}/IncomingPhoneNumbers.json"),
            ("https://api.anthropic.com/v1/messages", "/v1/messages"),
            ("/v1/messages/batches/msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d/results", "/v1/messages/batches/{id}/results"),
            ("/v4/accounts/1234567890/locations/987654321/reviews?pageSize=50", "/v4/accounts/{id}/locations/{id}/reviews"),
            ("/v1/locations/123:batchGet", "/v1/locations/{id}:batchGet"),
            ("/v1/items/550e8400-e29b-41d4-a716-446655440000", "/v1/items/{id}"),
            ("/v1/blobs/3q2+7w==", "/v1/blobs/{id}"),
            ("/v1/customers/alice@example.com/sources", "/v1/customers/{id}/sources"),
            ("/v1/lookup/+14155550100", "/v1/lookup/{id}"),
            ("/v1/lookup/415-555-0100", "/v1/lookup/{id}"),
            ("/v1/people/Alice", "/v1/people/{id}"),
            ("/v1/people/Alice%20Smith#frag", "/v1/people/{id}"),
            ("https://user:sk_live_secretsecret@api.stripe.com", "/"),
            ("https://api.stripe.com?x=1", "/"),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(endpoint_template(url), want, "for {url}");
        }
    }

    #[test]
    fn endpoint_template_is_capped() {
        let url = "/a".repeat(300);
        assert_eq!(endpoint_template(&url).chars().count(), MAX_ENDPOINT_CHARS + 1);
    }

    #[test]
    fn retry_policy_retries_idempotent_transient_failures_with_backoff() {
        let p = RetryPolicy { max_retries: 3, base_delay_ms: 100, max_delay_ms: 250 };
        assert_eq!(p.should_retry(true, 1, CallOutcome::Status(500)), Some(100));
        assert_eq!(p.should_retry(true, 2, CallOutcome::Status(503)), Some(200));
        assert_eq!(p.should_retry(true, 3, CallOutcome::NetworkError), Some(250), "capped");
        assert_eq!(p.should_retry(true, 4, CallOutcome::Status(500)), None, "out of retries");
        assert_eq!(p.should_retry(true, 1, CallOutcome::Status(429)), Some(100));
        assert_eq!(p.should_retry(true, 1, CallOutcome::Status(529)), Some(100));
    }

    #[test]
    fn retry_policy_never_retries_client_errors_successes_or_unsafe_calls() {
        let p = RetryPolicy::default();
        for s in [400, 401, 402, 403, 404, 408, 409, 422] {
            assert_eq!(p.should_retry(true, 1, CallOutcome::Status(s)), None, "status {s}");
        }
        assert_eq!(p.should_retry(true, 1, CallOutcome::Status(200)), None);
        assert_eq!(p.should_retry(false, 1, CallOutcome::Status(500)), None);
        assert_eq!(p.should_retry(false, 1, CallOutcome::NetworkError), None);
        // An answer over the size cap would be as large again.
        assert_eq!(p.should_retry(true, 1, CallOutcome::TooLarge(200)), None);
        assert!(CallOutcome::TooLarge(200).failed());
        assert_eq!(CallOutcome::TooLarge(200).status(), Some(200));
        let none = RetryPolicy { max_retries: 0, ..p };
        assert_eq!(none.should_retry(true, 1, CallOutcome::Status(500)), None);
        let huge = RetryPolicy { max_retries: u32::MAX, base_delay_ms: u64::MAX, max_delay_ms: 5_000 };
        assert_eq!(huge.should_retry(true, 200, CallOutcome::Status(500)), Some(5_000));
    }

    #[test]
    fn retry_after_is_honored_within_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.honor_retry_after(100, Some("1")), Some(1_000));
        assert_eq!(p.honor_retry_after(100, Some("0")), Some(100));
        assert_eq!(p.honor_retry_after(100, Some("60")), None);
        assert_eq!(p.honor_retry_after(100, Some("Wed, 21 Oct 2015 07:28:00 GMT")), Some(100));
        assert_eq!(p.honor_retry_after(100, None), Some(100));
    }

    #[test]
    fn idempotency_follows_method_and_key() {
        assert!(is_idempotent("GET", false));
        assert!(is_idempotent("delete", false));
        assert!(!is_idempotent("POST", false));
        assert!(is_idempotent("POST", true));
        assert!(!is_idempotent("PATCH", false));
    }

    #[test]
    fn idempotency_key_is_stable_across_attempts_and_distinct_per_call() {
        let rid = "8f3a2b1c4d5e6f70-SJC-21i3v9";
        let attempts: Vec<String> = (0..3).map(|_| idempotency_key(rid, "charge:ticket_2506")).collect();
        assert_eq!(attempts[0], "8f3a2b1c4d5e6f70-SJC-21i3v9:charge:ticket_2506");
        assert!(attempts.iter().all(|k| k == &attempts[0]));
        assert_ne!(idempotency_key(rid, "charge:ticket_2506"), idempotency_key(rid, "refund:ticket_2506"));
        assert_ne!(idempotency_key(rid, "charge"), idempotency_key("req_000000000001", "charge"));
        let odd = idempotency_key(rid, "charge for line 7 / é");
        assert_eq!(odd, idempotency_key(rid, "charge for line 7 / é"));
        assert!(odd.starts_with("idem_") && odd.len() == 37, "{odd}");
        assert_ne!(odd, idempotency_key(rid, "charge for line 8 / é"));
        assert!(idempotency_key(rid, &"x".repeat(400)).len() <= MAX_IDEMPOTENCY_KEY_LEN);
    }

    fn ts() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 10, 14, 23, 11).unwrap()
    }

    #[test]
    fn golden_success_line() {
        let facts = CallFacts {
            target: Service::Twilio,
            method: "post",
            url: "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
            ms: 182.4,
            outcome: CallOutcome::Status(201),
            retries: 0,
        };
        let line = ExternalCallLine::new(ts(), "req_a8h3k2", facts)
            .with_error_body("{\"to\":\"+14155550100\"}", Some("application/json"))
            .with_cost(Cost::from_micros(7_900));
        assert_eq!(
            line.to_line(),
            r#"{"ts":"2026-05-10T14:23:11.000Z","kind":"external_call","request_id":"req_a8h3k2","target":"twilio","method":"POST","endpoint":"/2010-04-01/Accounts/{id}/Messages.json","status":201,"ms":182.4,"retries":0,"error_body":null,"cost_micros":7900}"#
        );
        assert_eq!(line.call_cost(), Some(CallCost { service: Service::Twilio, micros: 7_900 }));
    }

    #[test]
    fn failed_call_line_carries_redacted_body() {
        let facts = CallFacts {
            target: Service::Stripe,
            method: "POST",
            url: "/v1/payment_intents?customer=cus_Nf8a9",
            ms: 40.0,
            outcome: CallOutcome::Status(402),
            retries: 1,
        };
        let body = r#"{"error":{"type":"card_error","code":"card_declined","message":"Card 4242 4242 4242 4242 declined for Alice Smith","customer_name":"Alice Smith"}}"#;
        let line = ExternalCallLine::new(ts(), "req_a8h3k2", facts).with_error_body(body, Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&line.to_line()).unwrap();
        assert_eq!(v["kind"], "external_call");
        assert_eq!(v["endpoint"], "/v1/payment_intents");
        assert_eq!(v["status"], 402);
        assert_eq!(v["retries"], 1);
        let logged = v["error_body"].as_str().unwrap();
        assert!(logged.contains("card_declined"), "{logged}");
        for leaked in ["4242", "Alice", "Smith"] {
            assert!(!line.to_line().contains(leaked), "{leaked} in {logged}");
        }
    }

    #[test]
    fn network_error_has_null_status() {
        let facts = CallFacts {
            target: Service::Claude,
            method: "BREW",
            url: "/v1/messages",
            ms: f64::NAN,
            outcome: CallOutcome::NetworkError,
            retries: 2,
        };
        let line = ExternalCallLine::new(ts(), "req_a8h3k2", facts).with_error_body("connection reset", None);
        let v: serde_json::Value = serde_json::from_str(&line.to_line()).unwrap();
        assert_eq!(v["status"], serde_json::Value::Null);
        assert_eq!(v["method"], "OTHER");
        assert_eq!(v["ms"], 0.0);
        assert_eq!(v["error_body"], "connection reset");
        assert!(line.failed());
    }

    #[test]
    fn foreign_request_ids_are_scrubbed() {
        let facts = CallFacts {
            target: Service::Gbp,
            method: "GET",
            url: "/",
            ms: 1.0,
            outcome: CallOutcome::Status(200),
            retries: 0,
        };
        assert_eq!(
            ExternalCallLine::new(ts(), "8f3a2b1c4d5e6f70-SJC-21i3v9", facts).request_id,
            "8f3a2b1c4d5e6f70-SJC-21i3v9"
        );
        assert_eq!(ExternalCallLine::new(ts(), "alice@example.com", facts).request_id, "[redacted]");
    }

    #[test]
    fn services_match_the_record_list() {
        let names: Vec<&str> = Service::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, EXTERNAL_SERVICES);
        assert_eq!(Service::from_name("gbp"), Some(Service::Gbp));
        assert_eq!(Service::from_name("Stripe"), None);
        assert!(serde_json::from_str::<Service>("\"paypal\"").is_err());
    }
}
