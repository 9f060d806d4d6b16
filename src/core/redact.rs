//! Redaction by type, deny by default. Error context only holds allow-listed keys with
//! numbers, booleans or compile-time labels, so customer text cannot reach a log line by
//! accident. `scrub_text` cleans free text we do not control (runtime error messages).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Context keys that may appear in `error_context`. Anything else is dropped and counted.
pub const ALLOWED_CONTEXT_KEYS: &[&str] = &[
    "ticket_id", "line_id", "customer_id", "blocker", "route", "count", "limit", "field",
    "reason", "service", "status", "attempt", "cron", "rule", "shop_known", "bytes",
];

/// A value allowed in error context: ids and counts, flags, and labels fixed at compile time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ContextValue {
    Int(i64),
    Bool(bool),
    /// Only `&'static str` can be put in, so no runtime (customer) text.
    Label(&'static str),
    /// Text read back from a serialized line (always scrubbed on the way in).
    Text(String),
}

/// The redacted `error_context` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ErrorContext(BTreeMap<String, ContextValue>);

impl<'de> Deserialize<'de> for ErrorContext {
    /// Reading a line back (the monitor's ingest): numbers, flags and scrubbed text survive,
    /// anything else is dropped.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let map = raw
            .into_iter()
            .filter_map(|(k, v)| {
                let v = match v {
                    serde_json::Value::Bool(b) => ContextValue::Bool(b),
                    serde_json::Value::Number(n) => ContextValue::Int(n.as_i64()?),
                    serde_json::Value::String(s) => ContextValue::Text(scrub_text(&s)),
                    _ => return None,
                };
                Some((k, v))
            })
            .collect();
        Ok(ErrorContext(map))
    }
}

impl ErrorContext {
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert when `key` is allow-listed; otherwise count it under `redacted_keys`.
    pub fn insert(&mut self, key: &'static str, value: ContextValue) -> &mut Self {
        let value = match value {
            // Text never comes from app code (no constructor takes a String); scrub anyway.
            ContextValue::Text(t) => ContextValue::Text(scrub_text(&t)),
            v => v,
        };
        if ALLOWED_CONTEXT_KEYS.contains(&key) {
            self.0.insert(key.to_string(), value);
        } else {
            let n = match self.0.get("redacted_keys") {
                Some(ContextValue::Int(n)) => *n + 1,
                _ => 1,
            };
            self.0.insert("redacted_keys".into(), ContextValue::Int(n));
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.0.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What replaces a removed span of text.
pub const REDACTED: &str = "[redacted]";
const MAX_SCRUBBED_CHARS: usize = 300;

/// Clean free text for a log line: quoted spans, emails, long digit runs (cards, phones),
/// secret-looking tokens (API keys, bearer tokens, hex/base64 blobs) are replaced with
/// `[redacted]`, and the result is capped at 300 characters.
pub fn scrub_text(input: &str) -> String {
    let mut out = String::with_capacity(input.len().min(MAX_SCRUBBED_CHARS + 16));
    let mut chars = input.chars().peekable();
    let mut token = String::new();
    // After "Bearer"/"Basic" the next token is a credential whatever it looks like.
    let mut credential_next = false;
    let mut flush = |token: &mut String, out: &mut String| {
        if !token.is_empty() {
            if credential_next || is_sensitive_token(token) {
                out.push_str(REDACTED);
            } else {
                out.push_str(token);
            }
            let lower = token.to_ascii_lowercase();
            credential_next = lower == "bearer" || lower == "basic" || lower == "token";
            token.clear();
        }
    };
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            // A quoted span is data (a value, a name): drop it whole.
            flush(&mut token, &mut out);
            let mut closed = false;
            for d in chars.by_ref() {
                if d == c {
                    closed = true;
                    break;
                }
            }
            let _ = closed;
            out.push_str(REDACTED);
        } else if c.is_whitespace() || matches!(c, ',' | ';' | '[' | ']' | '{' | '}' | '<' | '>') {
            // Phone numbers are written with spaces and dashes: join digit groups first.
            if c == ' ' && token_is_digitish(&token) && chars.peek().is_some_and(|n| n.is_ascii_digit() || *n == '(') {
                token.push(c);
                continue;
            }
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    if out.chars().count() > MAX_SCRUBBED_CHARS {
        out = out.chars().take(MAX_SCRUBBED_CHARS).collect::<String>() + "…";
    }
    out
}

fn token_is_digitish(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | '(' | ')' | ' '))
}

/// A token that may carry personal data or a secret.
pub fn is_sensitive_token(t: &str) -> bool {
    let digits = t.chars().filter(|c| c.is_ascii_digit()).count();
    let alnum = t.chars().filter(|c| c.is_ascii_alphanumeric()).count();
    let lower = t.to_ascii_lowercase();
    // Emails.
    if t.contains('@') && t.contains('.') {
        return true;
    }
    // Card numbers, phone numbers, account numbers: 7+ digits in one token.
    if digits >= 7 {
        return true;
    }
    // Well-known secret prefixes (Stripe, Twilio, Anthropic/OpenAI, GitHub, Slack, webhooks).
    const PREFIXES: &[&str] = &[
        "sk_", "rk_", "pk_live", "whsec_", "sk-", "ghp_", "gho_", "xoxb-", "xoxp-", "key-",
    ];
    for p in PREFIXES {
        if lower.starts_with(p) && t.len() >= p.len() + 8 {
            return true;
        }
    }
    // key=value pairs whose key names a secret.
    if let Some((k, _)) = lower.split_once('=') {
        if ["key", "token", "secret", "password", "auth", "signature", "sig", "phone", "email", "name"]
            .iter()
            .any(|s| k.contains(s))
        {
            return true;
        }
    }
    // Long opaque blobs: 24+ chars mixing letters and digits (hex digests, base64, JWTs).
    if alnum >= 24 && digits >= 3 && digits < alnum {
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_drops_unknown_keys_and_counts_them() {
        let mut c = ErrorContext::new();
        c.insert("ticket_id", ContextValue::Int(7));
        c.insert("customer_name", ContextValue::Label("Alice"));
        c.insert("phone", ContextValue::Int(5551234));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"redacted_keys":2,"ticket_id":7}"#);
    }

    #[test]
    fn context_text_values_are_scrubbed() {
        let mut c = ErrorContext::new();
        c.insert("reason", ContextValue::Text("mail bob@example.com now".into()));
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"reason":"mail [redacted] now"}"#);
    }

    #[test]
    fn scrub_removes_quoted_values() {
        assert_eq!(
            scrub_text(r#"UNIQUE constraint failed: customers.name "Alice Smith""#),
            "UNIQUE constraint failed: customers.name [redacted]"
        );
        assert_eq!(scrub_text("no such column: 'Bob'"), "no such column: [redacted]");
    }

    #[test]
    fn scrub_removes_emails_cards_phones() {
        assert_eq!(scrub_text("to alice@shop.co failed"), "to [redacted] failed");
        assert_eq!(scrub_text("card 4242424242424242 declined"), "card [redacted] declined");
        assert_eq!(scrub_text("card 4242-4242-4242-4242 declined"), "card [redacted] declined");
        assert_eq!(scrub_text("sms to +1 415 555 0100 failed"), "sms to [redacted] failed");
        assert_eq!(scrub_text("sms to (415) 555-0100 failed"), "sms to [redacted] failed");
    }

    #[test]
    fn scrub_removes_secrets() {
        assert_eq!(scrub_text("key sk_live_51HxYzAbCdEfGhIjKl bad"), "key [redacted] bad");
        assert_eq!(scrub_text("Authorization: Bearer abcdefghijklmnop1234"), "Authorization: Bearer [redacted]");
        assert_eq!(scrub_text("url ?api_key=abc123"), "url [redacted]");
        assert_eq!(scrub_text("whsec_abcdefghijklmnop123"), "[redacted]");
    }

    #[test]
    fn scrub_keeps_plain_messages() {
        let m = "Cannot delete ticket 2506 with attached transactions";
        assert_eq!(scrub_text(m), m);
        assert_eq!(scrub_text("D1_ERROR: no such table: tickets"), "D1_ERROR: no such table: tickets");
    }

    #[test]
    fn scrub_caps_length() {
        let long = "word ".repeat(200);
        assert!(scrub_text(&long).chars().count() <= MAX_SCRUBBED_CHARS + 1);
    }
}
