//! Redaction of what upstreams send back: failed responses' bodies (JSON walked key by key,
//! forms pair by pair, anything else scrubbed as text) and response headers (allow-list).
//! Free-text rules (names, cards, secrets) live in `core::redact`; nothing is logged here.

use serde_json::{Map, Value};

use super::external::MAX_ERROR_BODY_CHARS;
use crate::redact::{cap_chars, has_secret_prefix, is_sensitive_token, scrub_text, scrub_text_capped, REDACTED};

/// Largest body read for redaction; beyond it the text is cut at a word boundary (the JSON
/// then no longer parses and is scrubbed as text, which removes every quoted value).
pub const MAX_BODY_INPUT_BYTES: usize = 64 * 1024;

/// Key words whose values are personal data or secrets, matched against the words of a JSON
/// or form key (`customer_name` -> `customer`, `name`; `apiKey` -> `api`, `key`).
#[rustfmt::skip]
const SENSITIVE_KEY_WORDS: &[&str] = &[
    "key", "secret", "token", "password", "passwd", "pwd", "authorization", "auth", "bearer",
    "card", "number", "cvc", "cvv", "exp", "pin", "otp", "iban", "routing", "last4", "fingerprint",
    "name", "first", "last", "full", "given", "family", "surname", "nickname", "email", "phone",
    "mobile", "tel", "to", "from", "body", "address", "line1", "line2", "city", "zip", "postal",
    "postcode", "customer", "recipient", "sender", "contact", "shipping", "billing", "ip", "ssn",
    "dob", "birth", "birthday", "metadata", "description", "signature", "sig", "credential",
    "credentials", "cookie", "session", "login", "user", "username",
];

/// Fragments that mark a key sensitive wherever they appear in it (`apikey`, `phonenumber`,
/// `emailaddress`, `accesstoken`).
#[rustfmt::skip]
const SENSITIVE_KEY_FRAGMENTS: &[&str] = &[
    "secret", "token", "passw", "email", "phone", "name", "address", "card", "customer", "auth",
    "credential", "cookie", "session", "signature", "apikey",
];

/// Split a key into lower-case words at non-alphanumerics and camel-case humps.
fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Whether values under `key` are personal data or secrets (and so replaced whole).
pub fn is_sensitive_key(key: &str) -> bool {
    let lower = key.to_lowercase();
    key_words(key).iter().any(|w| SENSITIVE_KEY_WORDS.contains(&w.as_str()))
        || SENSITIVE_KEY_FRAGMENTS.iter().any(|f| lower.contains(f))
}

/// The response body of a failed upstream call, safe to log, at most
/// [`MAX_ERROR_BODY_CHARS`] characters:
///
/// * JSON (by content type, or a body starting with `{`/`[`) is parsed and walked: the value
///   under a sensitive key ([`is_sensitive_key`]: secrets, card data, names, emails, phones,
///   addresses, `to`/`from`/`body`, `customer`, `metadata`, ...) becomes `"[redacted]"`
///   whole; keys that themselves look like data are dropped and counted under
///   `"[redacted_keys]"`; every other string goes through `scrub_text` (so free-text
///   `message`s lose emails, numbers, secrets, quoted spans and capitalized name-like
///   words); numbers of 7+ digits become `"[redacted]"`;
/// * `application/x-www-form-urlencoded` bodies get the same key rule, pair by pair;
/// * anything else (text, HTML, XML, JSON that does not parse) goes through `scrub_text`.
pub fn redact_body(body: &str, content_type: Option<&str>) -> String {
    let body = cut_at_word(body, MAX_BODY_INPUT_BYTES);
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let starts_like_json = matches!(body.trim_start().as_bytes().first(), Some(b'{' | b'['));
    if ct.contains("json") || starts_like_json {
        if let Ok(v) = serde_json::from_str::<Value>(body) {
            let text = serde_json::to_string(&redact_json(v)).unwrap_or_else(|_| REDACTED.to_string());
            return cap_chars(text, MAX_ERROR_BODY_CHARS);
        }
    }
    if ct.contains("x-www-form-urlencoded") || looks_like_form(body) {
        return cap_chars(redact_form(body), MAX_ERROR_BODY_CHARS);
    }
    scrub_text_capped(body, MAX_ERROR_BODY_CHARS)
}

/// At most `max_bytes` of `s`, cut before the last whitespace so no token is split (a cut
/// secret could slip under the detectors).
fn cut_at_word(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let head = &s[..end];
    match head.rfind(char::is_whitespace) {
        Some(i) => &head[..i],
        None => "",
    }
}

fn redact_json(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            let mut dropped = 0u64;
            for (k, val) in map {
                if scrub_text(&k) != k {
                    dropped += 1;
                } else if is_sensitive_key(&k) {
                    out.insert(k, Value::String(REDACTED.to_string()));
                } else {
                    out.insert(k, redact_json(val));
                }
            }
            if dropped > 0 {
                out.insert("[redacted_keys]".to_string(), Value::from(dropped));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        Value::String(s) => Value::String(scrub_text(&s)),
        Value::Number(n) if is_sensitive_token(&n.to_string()) => Value::String(REDACTED.to_string()),
        other => other,
    }
}

fn looks_like_form(body: &str) -> bool {
    let body = body.trim();
    !body.is_empty()
        && !body.contains(char::is_whitespace)
        && body.split('&').all(|pair| pair.split_once('=').is_some_and(|(k, _)| !k.is_empty()))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = |c: u8| (c as char).to_digit(16);
        match b {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn redact_form(body: &str) -> String {
    body.trim()
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(k);
            if scrub_text(&key) != key {
                return format!("{REDACTED}={REDACTED}");
            }
            let value = if is_sensitive_key(&key) { REDACTED.to_string() } else { scrub_text(&percent_decode(v)) };
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Response headers whose values may be logged (lower-case names). Everything else keeps
/// its name with the value `[redacted]`.
#[rustfmt::skip]
pub const ALLOWED_HEADERS: &[&str] = &[
    "content-type", "content-length", "content-encoding", "retry-after", "cache-control",
    "request-id", "x-request-id", "twilio-request-id", "cf-ray", "idempotency-key",
    "idempotent-replayed", "stripe-version", "stripe-should-retry", "x-should-retry",
];
/// Allowed header name prefixes (rate-limit state).
pub const ALLOWED_HEADER_PREFIXES: &[&str] = &["x-ratelimit-", "ratelimit-", "anthropic-ratelimit-"];
/// Allowed headers that carry an upstream's id: kept when the value is id-shaped.
#[rustfmt::skip]
const ID_HEADERS: &[&str] = &[
    "request-id", "x-request-id", "twilio-request-id", "cf-ray", "idempotency-key",
];

/// An opaque id as upstreams mint them: `[A-Za-z0-9_.:-]`, both letters and digits, no
/// secret prefix, not mostly digits (a phone or card number), and either `req_…` (Stripe,
/// Anthropic) or shorter than 32 characters (so 32-hex Twilio auth tokens, and with them
/// Twilio's `RQ…` request ids, are redacted).
pub(crate) fn is_id_shaped(v: &str) -> bool {
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    let letters = v.bytes().filter(u8::is_ascii_alphabetic).count();
    (1..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        && digits > 0
        && letters > 0
        && !(digits >= 7 && letters < 3)
        && !has_secret_prefix(v)
        && (v.starts_with("req_") || v.len() < 32)
}

/// Headers safe to log, deny by default: names are kept (a name that is not a plain header
/// token becomes `[redacted]`), values only for [`ALLOWED_HEADERS`] and
/// [`ALLOWED_HEADER_PREFIXES`], and only when harmless: id headers must be id-shaped, other
/// values must be dates, RFC 3339 timestamps or come through `scrub_text` unchanged.
pub fn redact_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let plain_name = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !plain_name {
                return (REDACTED.to_string(), REDACTED.to_string());
            }
            let allowed = ALLOWED_HEADERS.contains(&lower.as_str())
                || ALLOWED_HEADER_PREFIXES.iter().any(|p| lower.starts_with(p));
            let value = value.trim();
            let keep = allowed
                && if ID_HEADERS.contains(&lower.as_str()) {
                    is_id_shaped(value)
                } else {
                    value.len() <= 200
                        && (chrono::DateTime::parse_from_rfc3339(value).is_ok()
                            || chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
                            || scrub_text(value) == value)
                };
            (name.clone(), if keep { value.to_string() } else { REDACTED.to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn stripe_card_error_loses_card_key_and_name() {
        let body = r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds",
            "message":"Card declined for Alice Smith","customer_name":"Alice Smith",
            "payment_method":{"id":"pm_1Nx","card":{"number":"4242 4242 4242 4242","cvc":"123"},
            "billing_details":{"email":"alice@example.com","phone":"+1 415 555 0100"}},
            "doc_url":"https://stripe.com/docs/error-codes/card-declined"}}"#;
        let out = redact_body(body, Some("application/json; charset=utf-8"));
        for gone in ["Alice", "Smith", "4242", "alice@example.com", "415", "123"] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        let v = json(&out);
        assert_eq!(v["error"]["code"], "card_declined");
        assert_eq!(v["error"]["decline_code"], "insufficient_funds");
        assert_eq!(v["error"]["message"], "Card declined for [redacted] [redacted]");
        assert_eq!(v["error"]["customer_name"], "[redacted]");
        assert_eq!(v["error"]["payment_method"]["card"], "[redacted]");
        assert_eq!(v["error"]["payment_method"]["billing_details"], "[redacted]");
        assert_eq!(v["error"]["payment_method"]["id"], "pm_1Nx");
        assert_eq!(v["error"]["doc_url"], "https://stripe.com/docs/error-codes/card-declined");
    }

    #[test]
    fn api_keys_are_removed_from_json_and_text() {
        let body = r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_live_51HxYzAbCdEfGhIjKlMnOp","api_key":"sk_test_abcdefghijklmnop1234"}}"#;
        let out = redact_body(body, Some("application/json"));
        assert!(!out.contains("sk_live_") && !out.contains("sk_test_"), "{out}");
        assert_eq!(json(&out)["error"]["message"], "Invalid API [redacted] provided: [redacted]");
        for text in [
            "bad key whsec_0123456789abcdefABCDEF here",
            "x-api-key: sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx-yz_0123456789 rejected",
            "Twilio auth token 0123456789abcdef0123456789abcdef is wrong",
        ] {
            let out = redact_body(text, Some("text/plain"));
            for secret in ["whsec_", "sk-ant-", "0123456789abcdef0123456789abcdef"] {
                assert!(!out.contains(secret), "{secret} in {out}");
            }
        }
    }

    #[test]
    fn text_bodies_are_scrubbed() {
        assert_eq!(
            redact_body("Card 4242-4242-4242-4242 of Alice Smith declined", None),
            "Card [redacted] of [redacted] [redacted] declined"
        );
        let xml = "<TwilioResponse><RestException><Code>21211</Code><Message>The To number +1 415 555 0100 is not a valid phone number.</Message></RestException></TwilioResponse>";
        let out = redact_body(xml, Some("application/xml"));
        assert!(!out.contains("415") && out.contains("21211"), "{out}");
        assert_eq!(redact_body("upstream connect error", Some("text/plain")), "upstream connect error");
    }

    #[test]
    fn twilio_json_error_keeps_code_drops_numbers() {
        let body = r#"{"code":21211,"message":"The 'To' number +14155550100 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400,"to":"+14155550100"}"#;
        let v = json(&redact_body(body, None));
        assert_eq!(v["code"], 21211);
        assert_eq!(v["status"], 400);
        assert_eq!(v["to"], "[redacted]");
        assert_eq!(v["message"], "The [redacted] number [redacted] is not a valid phone number.");
    }

    #[test]
    fn keys_that_hold_data_are_dropped_and_long_numbers_redacted() {
        let v =
            json(&redact_body(r#"{"alice@example.com":{"x":1},"ok":true,"amount":4242424242424242,"qty":3}"#, None));
        assert_eq!(v, serde_json::json!({"[redacted_keys]": 1, "ok": true, "amount": "[redacted]", "qty": 3}));
    }

    #[test]
    fn form_bodies_are_redacted_pair_by_pair() {
        let out = redact_body(
            "error=invalid_grant&message=Expired+grant+for+Alice+Smith&refresh_token=1%2F%2F0gAbC&error_description=x",
            Some("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            out,
            "error=invalid_grant&message=Expired grant for [redacted] [redacted]&refresh_token=[redacted]&error_description=[redacted]"
        );
    }

    #[test]
    fn bodies_are_capped() {
        let body = serde_json::json!({"items": vec!["plain words here"; 500]}).to_string();
        assert!(redact_body(&body, Some("application/json")).chars().count() <= MAX_ERROR_BODY_CHARS + 1);
        let text = "word ".repeat(1000);
        assert!(redact_body(&text, None).chars().count() <= MAX_ERROR_BODY_CHARS + 1);
        // Oversized JSON is cut, fails to parse, and is scrubbed as text: no value survives.
        let big = format!(r#"{{"pad":"{}","name":"Alice Smith"}}"#, "x ".repeat(MAX_BODY_INPUT_BYTES));
        assert!(!redact_body(&big, Some("application/json")).contains("Alice"));
    }

    #[test]
    fn sensitive_keys_by_word_and_fragment() {
        for k in [
            "customer_name",
            "apiKey",
            "x-api-key",
            "Authorization",
            "client_secret",
            "phoneNumber",
            "to",
            "From",
            "body",
            "emailaddress",
            "metadata",
            "last4",
        ] {
            assert!(is_sensitive_key(k), "{k}");
        }
        for k in ["message", "type", "code", "decline_code", "param", "doc_url", "status", "more_info", "total", "id"] {
            assert!(!is_sensitive_key(k), "{k}");
        }
    }

    #[test]
    fn headers_are_denied_by_default() {
        let h = |n: &str, v: &str| (n.to_string(), v.to_string());
        let input = vec![
            h("Content-Type", "application/json"),
            h("Retry-After", "2"),
            h("Request-Id", "req_Bs2a7ZXq8RkRxy"),
            h("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy"),
            h("Stripe-Version", "2024-06-20"),
            h("anthropic-ratelimit-requests-reset", "2026-05-10T14:23:11Z"),
            h("Authorization", "Bearer sk_live_abcdefghijklmnop"),
            h("Set-Cookie", "session=abc"),
            h("X-Customer-Email", "alice@example.com"),
            h("x-request-id", "415-555-0100"),
            h("x-request-id", "sk_live_abcdefghijklmnop"),
            h("content-type", "text/plain; name=\"Alice\""),
            h("bad header\n", "x"),
        ];
        let out = redact_headers(&input);
        let values: Vec<&str> = out.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            vec![
                "application/json",
                "2",
                "req_Bs2a7ZXq8RkRxy",
                "req_011CSHoEeqs5C35K2UUqR7Fy",
                "2024-06-20",
                "2026-05-10T14:23:11Z",
                REDACTED,
                REDACTED,
                REDACTED,
                REDACTED,
                REDACTED,
                REDACTED,
                REDACTED,
            ]
        );
        assert_eq!(out[6].0, "Authorization");
        assert_eq!(out[12].0, REDACTED);
    }
}
