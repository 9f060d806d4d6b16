//! The operator's browser session: the signed, expiring cookie the dashboard's sign-in form
//! sets, and the one check every operator request goes through ([`authorize`]: the bearer
//! header when present, else the cookie). Pure: the clock (`now_ms`) and the nonce are
//! arguments; the edge reads them, sets the header and answers 401.
//!
//! Cookie value: `v1.{expires_ms}.{nonce:016x}.{mac}` where `mac` is the hex HMAC-SHA256 of
//! `v1.{expires_ms}.{nonce:016x}` under a key derived from `OPS_TOKEN`
//! (`HMAC-SHA256(OPS_TOKEN, "lookout ops session v1")`), so rotating the token signs every
//! session out and nothing else needs storing. The cookie carries no data beyond its expiry.
//! Attributes: `HttpOnly; Secure; SameSite=Strict; Path=/ops; Max-Age`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::{check_bearer, AuthError};

type HmacSha256 = Hmac<Sha256>;

/// The cookie's name.
pub const COOKIE_NAME: &str = "lookout_ops";
/// How long a session lasts (12 h: a working day, then sign in again).
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Cookie candidates looked at in one `Cookie` header (bounds the HMAC work per request).
const MAX_CANDIDATES: usize = 4;
const VERSION: &str = "v1";
const KEY_LABEL: &[u8] = b"lookout ops session v1";

/// Why a session cookie was refused (the client only ever sees 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// No `OPS_TOKEN`: operator endpoints are closed, no session can be valid.
    NotConfigured,
    /// No `lookout_ops` cookie.
    Missing,
    /// Not `v1.{expires}.{nonce}.{mac}`.
    Malformed,
    /// Its expiry has passed, or lies further ahead than a session can last.
    Expired,
    /// The signature does not match (another token, or tampered).
    BadSignature,
}

/// How an operator request was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    Bearer,
    Cookie,
}

/// Why an operator request was refused: by its bearer header, or (no header) by its cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Bearer(AuthError),
    Cookie(SessionError),
}

impl Refusal {
    /// The operator API is closed (no `OPS_TOKEN` configured).
    pub fn not_configured(self) -> bool {
        matches!(self, Refusal::Bearer(AuthError::NotConfigured) | Refusal::Cookie(SessionError::NotConfigured))
    }
}

/// A freshly issued session: the cookie's value and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub value: String,
    pub expires_ms: i64,
}

impl Session {
    /// The `Set-Cookie` header that stores it.
    pub fn set_cookie(&self, now_ms: i64) -> String {
        let max_age_s = ((self.expires_ms - now_ms) / 1000).max(0);
        format!("{COOKIE_NAME}={}; Path=/ops; Max-Age={max_age_s}; HttpOnly; Secure; SameSite=Strict", self.value)
    }
}

/// The `Set-Cookie` header that signs out (expires the cookie at once).
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/ops; Max-Age=0; HttpOnly; Secure; SameSite=Strict")
}

fn session_key(ops_token: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(ops_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(KEY_LABEL);
    mac.finalize().into_bytes().into()
}

fn signer(ops_token: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(&session_key(ops_token)).expect("32-byte key")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Issue a session at `now_ms` (the caller proved the token) with a random `nonce`.
pub fn issue(ops_token: &str, now_ms: i64, nonce: u64) -> Session {
    let expires_ms = now_ms.saturating_add(SESSION_TTL_MS);
    let payload = format!("{VERSION}.{expires_ms}.{nonce:016x}");
    let mut mac = signer(ops_token);
    mac.update(payload.as_bytes());
    let tag = hex(&mac.finalize().into_bytes());
    Session { value: format!("{payload}.{tag}"), expires_ms }
}

/// Check one cookie value.
pub fn verify_value(value: &str, ops_token: &str, now_ms: i64) -> Result<(), SessionError> {
    let mut parts = value.split('.');
    let (Some(version), Some(expires), Some(nonce), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SessionError::Malformed);
    };
    let expires_ms: i64 = expires.parse().map_err(|_| SessionError::Malformed)?;
    if version != VERSION
        || nonce.len() != 16
        || !nonce.bytes().all(|b| b.is_ascii_hexdigit())
        || !expires.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SessionError::Malformed);
    }
    let tag = unhex(tag).filter(|t| t.len() == 32).ok_or(SessionError::Malformed)?;
    let mut mac = signer(ops_token);
    mac.update(format!("{version}.{expires}.{nonce}").as_bytes());
    mac.verify_slice(&tag).map_err(|_| SessionError::BadSignature)?;
    // Signed, so the expiry is ours: refuse it once passed, and refuse one further ahead
    // than a session lasts (a clock far off, or a token shared with another issuer).
    if expires_ms <= now_ms || expires_ms > now_ms.saturating_add(SESSION_TTL_MS + 60_000) {
        return Err(SessionError::Expired);
    }
    Ok(())
}

/// The session cookie's values in a `Cookie` header (at most a few).
fn candidates(cookie_header: &str) -> impl Iterator<Item = &str> {
    cookie_header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(k, _)| k.trim() == COOKIE_NAME)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .take(MAX_CANDIDATES)
}

/// Check a request's `Cookie` header: any one valid session cookie lets it in; otherwise the
/// most telling reason (a bad signature over an expiry over a malformed value).
pub fn verify_cookie(cookie_header: Option<&str>, ops_token: Option<&str>, now_ms: i64) -> Result<(), SessionError> {
    let token = ops_token.filter(|t| !t.is_empty()).ok_or(SessionError::NotConfigured)?;
    let mut worst = SessionError::Missing;
    for value in candidates(cookie_header.unwrap_or("")) {
        match verify_value(value, token, now_ms) {
            Ok(()) => return Ok(()),
            Err(e) => {
                let rank = |e: SessionError| match e {
                    SessionError::BadSignature => 3,
                    SessionError::Expired => 2,
                    SessionError::Malformed => 1,
                    _ => 0,
                };
                if rank(e) > rank(worst) {
                    worst = e;
                }
            }
        }
    }
    Err(worst)
}

/// Every operator request's check: an `Authorization` header decides alone (a wrong bearer
/// is refused even beside a valid cookie); without one, the session cookie.
pub fn authorize(
    authorization: Option<&str>,
    cookie: Option<&str>,
    ops_token: Option<&str>,
    now_ms: i64,
) -> Result<AuthVia, Refusal> {
    if authorization.is_some_and(|h| !h.trim().is_empty()) {
        return check_bearer(authorization, ops_token).map(|()| AuthVia::Bearer).map_err(Refusal::Bearer);
    }
    verify_cookie(cookie, ops_token, now_ms).map(|()| AuthVia::Cookie).map_err(Refusal::Cookie)
}

/// Whether a presented token (the sign-in form's) is the operator token; constant time.
pub fn token_matches(presented: &str, ops_token: Option<&str>) -> bool {
    let bearer = format!("Bearer {}", presented.trim());
    check_bearer(Some(&bearer), ops_token).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cret-ops-token";
    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn cookie_of(s: &Session) -> String {
        format!("other=1; {COOKIE_NAME}={}; x=y", s.value)
    }

    #[test]
    fn a_fresh_session_is_valid_until_it_expires() {
        let s = issue(TOKEN, T0, 0x1234);
        assert_eq!(s.expires_ms, T0 + SESSION_TTL_MS);
        let c = cookie_of(&s);
        // A fake clock stepped through the session's life.
        for (now, expected) in [
            (T0, Ok(())),
            (T0 + 3_600_000, Ok(())),
            (T0 + SESSION_TTL_MS - 1, Ok(())),
            (T0 + SESSION_TTL_MS, Err(SessionError::Expired)),
            (T0 + 2 * SESSION_TTL_MS, Err(SessionError::Expired)),
        ] {
            assert_eq!(verify_cookie(Some(&c), Some(TOKEN), now), expected, "at {}", now - T0);
        }
    }

    #[test]
    fn a_session_from_the_future_is_refused() {
        // Issued by a clock a day ahead: its expiry is further than a session lasts.
        let s = issue(TOKEN, T0 + 86_400_000, 1);
        assert_eq!(verify_cookie(Some(&cookie_of(&s)), Some(TOKEN), T0), Err(SessionError::Expired));
    }

    #[test]
    fn tampering_or_another_token_breaks_the_signature() {
        let s = issue(TOKEN, T0, 7);
        assert_eq!(verify_value(&s.value, "another-token", T0), Err(SessionError::BadSignature));
        // Push the expiry a little later without re-signing.
        let (_, rest) = s.value.split_once('.').unwrap();
        let (exp, tail) = rest.split_once('.').unwrap();
        let later: i64 = exp.parse::<i64>().unwrap() + 1000;
        let forged = format!("v1.{later}.{tail}");
        assert_eq!(verify_value(&forged, TOKEN, T0), Err(SessionError::BadSignature));
        // Flip one hex digit of the tag.
        let mut v = s.value.clone().into_bytes();
        let last = v.len() - 1;
        v[last] = if v[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(verify_value(std::str::from_utf8(&v).unwrap(), TOKEN, T0), Err(SessionError::BadSignature));
    }

    #[test]
    fn malformed_values_are_refused_not_panics() {
        for v in [
            "",
            "v1",
            "v1.1.2",
            "v2.1767225600000.0000000000000001.00",
            "v1.-5.0000000000000001.aa",
            "v1.+5.0000000000000001.aa",
            "v1.99999999999999999999999.0000000000000001.aa",
            "v1.1767225600000.xyz.aa",
            "v1.1767225600000.0000000000000001.zz",
            "v1.1767225600000.0000000000000001.abc",
            "v1.1767225600000.0000000000000001.aa.bb",
            "v1.1767225600000.00000000000000é1.aa",
        ] {
            assert_eq!(verify_value(v, TOKEN, T0), Err(SessionError::Malformed), "{v:?}");
        }
    }

    #[test]
    fn cookie_header_parsing() {
        let good = issue(TOKEN, T0, 9);
        assert_eq!(verify_cookie(None, Some(TOKEN), T0), Err(SessionError::Missing));
        assert_eq!(verify_cookie(Some("a=b; c=d"), Some(TOKEN), T0), Err(SessionError::Missing));
        assert_eq!(verify_cookie(Some(&cookie_of(&good)), None, T0), Err(SessionError::NotConfigured));
        assert_eq!(verify_cookie(Some(&cookie_of(&good)), Some(""), T0), Err(SessionError::NotConfigured));
        // A stale cookie beside a good one (another path's, say): the good one lets it in.
        let stale = issue(TOKEN, T0 - 2 * SESSION_TTL_MS, 1);
        let both = format!("{COOKIE_NAME}={}; {COOKIE_NAME}={}", stale.value, good.value);
        assert_eq!(verify_cookie(Some(&both), Some(TOKEN), T0), Ok(()));
        assert_eq!(
            verify_cookie(Some(&format!("{COOKIE_NAME}={}", stale.value)), Some(TOKEN), T0),
            Err(SessionError::Expired)
        );
        // Only the first few candidates are checked.
        let many = std::iter::repeat_n(format!("{COOKIE_NAME}=junk"), 10)
            .chain([format!("{COOKIE_NAME}={}", good.value)])
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(verify_cookie(Some(&many), Some(TOKEN), T0), Err(SessionError::Malformed));
    }

    #[test]
    fn authorize_prefers_the_bearer_header() {
        let c = cookie_of(&issue(TOKEN, T0, 3));
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(authorize(Some(&bearer), None, Some(TOKEN), T0), Ok(AuthVia::Bearer));
        assert_eq!(authorize(None, Some(&c), Some(TOKEN), T0), Ok(AuthVia::Cookie));
        assert_eq!(authorize(Some("Bearer nope"), Some(&c), Some(TOKEN), T0), Err(Refusal::Bearer(AuthError::Wrong)));
        assert_eq!(authorize(Some("  "), Some(&c), Some(TOKEN), T0), Ok(AuthVia::Cookie));
        assert_eq!(authorize(None, None, Some(TOKEN), T0), Err(Refusal::Cookie(SessionError::Missing)));
        assert!(authorize(None, Some(&c), None, T0).unwrap_err().not_configured());
        assert!(authorize(Some(&bearer), None, None, T0).unwrap_err().not_configured());
    }

    #[test]
    fn sign_in_token_check_and_headers() {
        assert!(token_matches(TOKEN, Some(TOKEN)));
        assert!(token_matches(&format!(" {TOKEN}\n"), Some(TOKEN)));
        assert!(!token_matches("wrong", Some(TOKEN)));
        assert!(!token_matches("", Some(TOKEN)));
        assert!(!token_matches(TOKEN, None));
        let s = issue(TOKEN, T0, 5);
        let h = s.set_cookie(T0);
        assert!(h.starts_with(&format!("{COOKIE_NAME}={};", s.value)));
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/ops", "Max-Age=43200"] {
            assert!(h.split("; ").any(|a| a == attr), "{attr} missing in {h}");
        }
        assert!(clear_cookie().contains("Max-Age=0"));
        // The value is only the expiry, a nonce and the tag: nothing of the token.
        assert!(!s.value.contains(TOKEN));
        assert_ne!(issue(TOKEN, T0, 6).value, s.value);
    }
}
