//! Redaction by type, deny by default. Error context only reaches a line through
//! [`ErrorContext::allowed`]: allow-listed keys (lookout's own plus the app's, [`ContextKeys`])
//! with numbers, booleans or compile-time labels, so customer text cannot reach a log line by
//! accident. `scrub_text` cleans free text we do not control (runtime error messages, upstream
//! error bodies): quoted spans, emails, card and phone numbers, secrets and capitalized words
//! that may be names. Structured bodies (JSON, headers) are handled in `core::deps`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Context keys lookout itself puts in errors; always allowed. An app adds its own keys with
/// [`ContextKeys::new`].
#[rustfmt::skip]
pub const LOOKOUT_CONTEXT_KEYS: &[&str] = &[
    "route", "count", "limit", "field", "reason", "service", "status", "attempt", "cron", "rule",
    "shop_known", "bytes",
];

/// The keys that may appear in `error_context`: lookout's own ([`LOOKOUT_CONTEXT_KEYS`]) and
/// the app's. Anything else is dropped and counted under `redacted_keys`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextKeys {
    app: &'static [&'static str],
}

impl ContextKeys {
    /// lookout's keys plus `app` (e.g. `&["ticket_id", "blocker"]`).
    pub const fn new(app: &'static [&'static str]) -> Self {
        ContextKeys { app }
    }

    pub fn allows(&self, key: &str) -> bool {
        LOOKOUT_CONTEXT_KEYS.contains(&key) || self.app.contains(&key)
    }
}

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

    /// Insert an entry (text values are scrubbed). Which keys reach a line is decided by
    /// [`ErrorContext::allowed`].
    pub fn insert(&mut self, key: &'static str, value: ContextValue) -> &mut Self {
        let value = match value {
            // Text never comes from app code (no constructor takes a String); scrub anyway.
            ContextValue::Text(t) => ContextValue::Text(scrub_text(&t)),
            v => v,
        };
        self.0.insert(key.to_string(), value);
        self
    }

    /// The context as a line may carry it: keys `keys` allows; the others are dropped and
    /// counted under `redacted_keys`.
    pub fn allowed(&self, keys: &ContextKeys) -> ErrorContext {
        let mut out = BTreeMap::new();
        let mut dropped = 0i64;
        for (k, v) in &self.0 {
            if keys.allows(k) {
                out.insert(k.clone(), v.clone());
            } else if k != "redacted_keys" {
                dropped += 1;
            }
        }
        if dropped > 0 {
            out.insert("redacted_keys".into(), ContextValue::Int(dropped));
        }
        ErrorContext(out)
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

/// Clean free text for a log line: quoted spans, emails, long digit runs (cards, phones, in
/// any grouping), secret-looking tokens (API keys, bearer tokens, hex/base64 blobs) and words
/// that may be personal names (see [`looks_like_name`]) are replaced with `[redacted]`, and
/// the result is capped at 300 characters.
pub fn scrub_text(input: &str) -> String {
    scrub_text_capped(input, MAX_SCRUBBED_CHARS)
}

/// [`scrub_text`] with a caller-chosen cap on the output length (in characters; an ellipsis
/// is appended when the output is cut).
pub fn scrub_text_capped(input: &str, max_chars: usize) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len().min(max_chars + 16));
    let mut token = String::new();
    // After "Bearer"/"Basic"/"token" the next token is a credential whatever it looks like.
    let mut credential_next = false;
    let mut flush = |token: &mut String, out: &mut String| {
        if !token.is_empty() {
            if credential_next || is_sensitive_token(token) {
                out.push_str(REDACTED);
            } else {
                out.push_str(&redact_names(token));
            }
            let lower = token.to_ascii_lowercase();
            credential_next = lower == "bearer" || lower == "basic" || lower == "token";
            token.clear();
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // A quoted span is data (a value, a name): drop it whole, up to the closing quote
            // or to the end of the text when it is never closed.
            flush(&mut token, &mut out);
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            i += 1;
            out.push_str(REDACTED);
        } else if c.is_whitespace() || matches!(c, ',' | ';' | ':' | '[' | ']' | '{' | '}' | '<' | '>') {
            // Phone and card numbers are written in groups ("4242 4242", "415 - 555 0100"):
            // keep a digit group together with the next one so the whole number is judged.
            if (c.is_whitespace() || c == ':') && token_is_digitish(&token) && digits_follow(&chars, i) {
                token.push(c);
            } else {
                flush(&mut token, &mut out);
                out.push(c);
            }
            i += 1;
        } else {
            token.push(c);
            i += 1;
        }
    }
    flush(&mut token, &mut out);
    cap_chars(out, max_chars)
}

/// Cut `s` to at most `max_chars` characters, marking the cut with an ellipsis.
pub fn cap_chars(s: String, max_chars: usize) -> String {
    if s.chars().count() > max_chars {
        s.chars().take(max_chars).collect::<String>() + "…"
    } else {
        s
    }
}

fn token_is_digitish(t: &str) -> bool {
    t.chars().any(|c| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || c.is_whitespace() || matches!(c, '-' | '+' | '.' | '(' | ')' | '/' | ':'))
}

/// Whether, from the separator at `i`, only group separators stand before the next digit.
fn digits_follow(chars: &[char], i: usize) -> bool {
    for &d in &chars[i..] {
        if d.is_ascii_digit() || d == '(' || d == '+' {
            return true;
        }
        if !(d.is_whitespace() || matches!(d, '-' | '.' | '/' | ':')) {
            return false;
        }
    }
    false
}

/// Secret prefixes (Stripe, Twilio, Anthropic/OpenAI, Google, AWS, GitHub, Slack, webhooks,
/// JWTs), lower-cased. A token carries a secret when one of them starts a word in it and at
/// least 8 more characters follow.
#[rustfmt::skip]
const SECRET_PREFIXES: &[&str] = &[
    "sk_", "rk_", "pk_live", "whsec_", "sk-", "ghp_", "gho_", "xoxb-", "xoxp-", "xoxa-", "key-",
    "aiza", "ya29.", "eyj", "akia", "glpat-",
];

/// Whether a secret prefix (see `SECRET_PREFIXES`) starts a word inside `t`.
pub fn has_secret_prefix(t: &str) -> bool {
    let lower = t.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    (0..bytes.len()).any(|i| {
        let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        word_start
            && lower.is_char_boundary(i)
            && SECRET_PREFIXES.iter().any(|p| lower[i..].starts_with(p) && lower.len() - i >= p.len() + 8)
    })
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
    if has_secret_prefix(t) {
        return true;
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
    // Twilio auth tokens and SIDs, digests: a run of 32+ hex digits.
    if longest_run(t, |c| c.is_ascii_hexdigit()) >= 32 {
        return true;
    }
    // Any 32+ character key-like run with a digit or a lower-to-upper hump (base64 secrets).
    opaque_runs(t)
}

fn longest_run(t: &str, pred: impl Fn(char) -> bool) -> usize {
    let (mut best, mut cur) = (0, 0);
    for c in t.chars() {
        cur = if pred(c) { cur + 1 } else { 0 };
        best = best.max(cur);
    }
    best
}

fn opaque_runs(t: &str) -> bool {
    t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+' || c == '/'))
        .filter(|run| run.len() >= 32)
        .any(|run| {
            let b = run.as_bytes();
            run.bytes().any(|c| c.is_ascii_digit())
                || b.windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
        })
}

/// Capitalized words that are kept in free text because they are common English or
/// error-message vocabulary, not personal names. Lower-case; compared case-insensitively.
/// Words that are also common first or last names (Will, May, Mark, Grace, Price, Key, Long,
/// Young, King, Field, ...) are left out on purpose: they are redacted when capitalized.
#[rustfmt::skip]
const NOT_NAMES: &[&str] = &[
    // Function words that start sentences.
    "a", "about", "after", "again", "all", "already", "also", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "being", "both", "but", "by", "can", "cannot", "could", "couldn", "did",
    "do", "does", "each", "either", "else", "every", "for", "from", "got", "had", "has", "have",
    "he", "her", "here", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "less",
    "many", "more", "most", "much", "must", "neither", "no", "none", "nor", "not", "nothing", "of",
    "off", "on", "once", "one", "only", "or", "other", "our", "out", "over", "please", "she",
    "should", "since", "so", "some", "such", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "try", "two", "under",
    "until", "up", "upon", "very", "was", "we", "were", "what", "when", "where", "whether", "which",
    "while", "who", "why", "with", "within", "without", "would", "yes", "you", "your",
    // Error and HTTP vocabulary.
    "abort", "aborted", "accepted", "access", "acceptable", "active", "allowed", "attempt",
    "attempts", "authentication", "authorization", "authorized", "bad", "binding", "blocked",
    "buffer", "busy", "call", "callback", "calls", "cancel", "canceled", "cancelled", "caller",
    "check", "closed", "conflict", "connection", "constraint", "content", "continue", "created",
    "credential", "credentials", "debug", "declined", "denied", "detected", "disabled", "duplicate",
    "empty", "enabled", "entity", "error", "errors", "exceeded", "exceeds", "exception",
    "exhausted", "exist", "exists", "expected", "expired", "failed", "failure", "fatal",
    "forbidden", "found", "gateway", "gone", "header", "headers", "hint", "incorrect", "info",
    "input", "insufficient", "internal", "invalid", "large", "legal", "limit", "limits", "lost",
    "malformed", "maximum", "method", "methods", "minimum", "missing", "mode", "moved", "network",
    "note", "null", "ok", "output", "overflow", "overloaded", "panic", "panicked", "parse",
    "payload", "permission", "permissions", "precondition", "processing", "promise", "properties",
    "property", "provided", "proxy", "query", "queue", "queued", "range", "rate", "read", "reading",
    "received", "redirect", "reference", "refused", "request", "requested", "requests", "required",
    "reset", "resource", "resources", "response", "rest", "retry", "runtime", "script", "server",
    "service", "services", "size", "storage", "stream", "success", "successful", "supported",
    "syntax", "time", "timed", "timeout", "type", "unable", "unauthorized", "undefined",
    "unexpected", "unique", "unknown", "unprocessable", "unsupported", "unavailable", "upstream",
    "valid", "value", "values", "version", "warning", "worker", "workers", "write",
    // Domain words (payments, messaging, the shop app) and upstream resource names.
    "account", "accounts", "address", "addresses", "amount", "api", "app", "balance", "batch",
    "batches", "body", "business", "card", "cards", "charge", "charges", "code", "column",
    "conference", "conferences", "credit", "currency", "customer", "customers", "database", "date",
    "day", "days", "db", "event", "events", "feedback", "funds", "google", "hour", "hours", "id",
    "idempotency", "idempotent", "incoming", "intent", "intents", "invoice", "invoices", "item",
    "items", "json", "keys", "line", "lines", "live", "location", "locations", "message",
    "messages", "media", "minute", "minutes", "model", "month", "name", "notifications", "number",
    "numbers", "object", "order", "orders", "outgoing", "participant", "participants", "payment",
    "phone", "product", "products", "profile", "prompt", "queues", "recipient", "records", "record",
    "recordings", "recording", "refund", "refunds", "region", "review", "reviews", "row", "rows",
    "secret", "security", "send", "sent", "shop", "shops", "signature", "sms", "source", "sources",
    "staff", "statement", "stripe", "string", "subscription", "subscriptions", "table", "test",
    "ticket", "tickets", "token", "tokens", "transaction", "transactions", "twilio", "usage",
    "user", "users", "verification", "verifications", "webhook", "webhooks", "week", "year",
    "anthropic", "claude", "array", "function", "sid", "bearer", "basic", "digest", "available",
    "local", "toll", "free", "mobile", "triggers", "sip", "domains", "transcriptions", "members",
    "applications", "ids", "codes", "signing", "summary",
];

/// Whether a run of letters may be a personal name: it is capitalized (an upper-case first
/// letter and some lower-case letters) and at least one of its capitalized parts (`McDonald`
/// is `Mc` + `Donald`, `TypeError` is `Type` + `Error`) is not a known common word. All-caps
/// words (`API`, `UNIQUE`) and lower-case words are not treated as names.
pub fn looks_like_name(word: &str) -> bool {
    let chars: Vec<char> = word.chars().collect();
    if !chars.first().is_some_and(|c| c.is_uppercase()) || !chars.iter().any(|c| c.is_lowercase()) {
        return false;
    }
    // Split into humps: a new hump starts at an upper-case letter that follows a lower-case
    // one, or that starts a capitalized word after an acronym ("APIError" -> "API", "Error").
    let mut humps: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase()
                || (chars[i - 1].is_uppercase() && chars.get(i + 1).is_some_and(|n| n.is_lowercase())));
        if boundary {
            humps.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    humps.push(cur);
    humps.iter().any(|h| {
        let capitalized = h.chars().next().is_some_and(|c| c.is_uppercase()) && h.chars().any(|c| c.is_lowercase());
        capitalized && !NOT_NAMES.contains(&h.to_lowercase().as_str())
    })
}

/// Replace every word of `text` that [`looks_like_name`] with `[redacted]`. Words are split
/// at anything but letters, digits and `_`, and at percent escapes (`Alice%20Smith`); a word
/// with a digit is an identifier (`pm_1Nx`, `D1_ERROR`) and is left to the other rules; the
/// parts of a `snake_case` word are judged one by one (`Alice_Smith`).
pub fn redact_names(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().any(|c| c.is_ascii_digit()) {
            out.push_str(word);
        } else {
            let parts: Vec<&str> = word.split('_').map(|p| if looks_like_name(p) { REDACTED } else { p }).collect();
            out.push_str(&parts.join("_"));
        }
        word.clear();
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let escape = c == '%' && chars.get(i + 1..i + 3).is_some_and(|h| h.iter().all(char::is_ascii_hexdigit));
        if escape {
            flush(&mut word, &mut out);
            out.extend(&chars[i..i + 3]);
            i += 3;
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
        i += 1;
    }
    flush(&mut word, &mut out);
    out
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
        c.insert("bytes", ContextValue::Int(12));
        let keys = ContextKeys::new(&["ticket_id"]);
        let json = serde_json::to_string(&c.allowed(&keys)).unwrap();
        assert_eq!(json, r#"{"bytes":12,"redacted_keys":2,"ticket_id":7}"#);
        // Without the app's key, the app's entry is dropped too; lookout's own stays.
        let json = serde_json::to_string(&c.allowed(&ContextKeys::default())).unwrap();
        assert_eq!(json, r#"{"bytes":12,"redacted_keys":3}"#);
    }

    #[test]
    fn context_text_values_are_scrubbed() {
        let mut c = ErrorContext::new();
        c.insert("reason", ContextValue::Text("mail bob@example.com now".into()));
        assert_eq!(
            serde_json::to_string(&c.allowed(&ContextKeys::default())).unwrap(),
            r#"{"reason":"mail [redacted] now"}"#
        );
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
    fn scrub_removes_capitalized_names() {
        assert_eq!(scrub_text("Card declined for Alice Smith"), "Card declined for [redacted] [redacted]");
        assert_eq!(scrub_text("Alice called about her order"), "[redacted] called about her order");
        assert_eq!(
            scrub_text("refund to McDonald, Smith-Jones and José"),
            "refund to [redacted], [redacted]-[redacted] and [redacted]"
        );
        assert_eq!(scrub_text("message=Sent+to+Priya"), "message=Sent+to+[redacted]");
        assert_eq!(scrub_text("invalid name Alice%20Smith"), "invalid name [redacted]%20[redacted]");
        assert_eq!(scrub_text("no customer Alice_Smith"), "no customer [redacted]_[redacted]");
        assert_eq!(scrub_text("no such payment_method pm_1Nx"), "no such payment_method pm_1Nx");
    }

    #[test]
    fn scrub_keeps_error_vocabulary() {
        for m in [
            "TypeError: Cannot read properties of undefined",
            "Network connection lost.",
            "UNIQUE constraint failed: tickets.id",
            "Your card was declined.",
            "Invalid API request: Too Many Requests",
            "RangeError: Maximum call stack size exceeded",
        ] {
            assert_eq!(scrub_text(m), m);
        }
    }

    #[test]
    fn name_rule_reads_humps() {
        assert!(looks_like_name("Alice"));
        assert!(looks_like_name("McDonald"));
        assert!(looks_like_name("Zoë"));
        assert!(!looks_like_name("TypeError"));
        assert!(!looks_like_name("APIError"));
        assert!(!looks_like_name("UNIQUE"));
        assert!(!looks_like_name("customers"));
        assert!(!looks_like_name(""));
    }

    #[test]
    fn scrub_removes_numbers_in_any_grouping() {
        for card in [
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "4242.4242.4242.4242",
            "4242 - 4242 - 4242 - 4242",
            "3782 822463 10005",
        ] {
            assert_eq!(scrub_text(&format!("card {card} declined")), "card [redacted] declined", "{card}");
        }
        for phone in ["+44 20 7946 0958", "415.555.0100", "+1 (415) 555-0100", "+14155550100", "415 555 0100"] {
            assert_eq!(scrub_text(&format!("sms to {phone} failed")), "sms to [redacted] failed", "{phone}");
            assert_eq!(scrub_text(&format!("to:{phone}")), "to:[redacted]", "{phone}");
        }
        assert_eq!(scrub_text("ticket 2506 has 3 lines"), "ticket 2506 has 3 lines");
    }

    #[test]
    fn scrub_removes_secrets_inside_tokens() {
        assert_eq!(scrub_text("(sk_live_abcdefghijklmnop)"), "[redacted]");
        assert_eq!(scrub_text("apiKey=sk_test_abcdefghijkl"), "[redacted]");
        assert_eq!(scrub_text("token abcdefabcdefabcdefabcdefabcdefab"), "token [redacted]");
        assert_eq!(scrub_text("auth 0123456789abcdef0123456789abcdef"), "auth [redacted]");
        assert_eq!(scrub_text("sig AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"), "sig [redacted]");
        assert_eq!(scrub_text("key sk-ant-api03-AbCdEfGhIjKl_mnOp-qrst"), "key [redacted]");
    }

    #[test]
    fn scrub_capped_respects_its_cap() {
        let out = scrub_text_capped(&"word ".repeat(500), 1024);
        assert_eq!(out.chars().count(), 1025);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn scrub_caps_length() {
        let long = "word ".repeat(200);
        assert!(scrub_text(&long).chars().count() <= MAX_SCRUBBED_CHARS + 1);
    }
}
