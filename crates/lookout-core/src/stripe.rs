//! Stripe webhook signatures: the `Stripe-Signature` scheme (`t=<unix>,v1=<hex>`), an
//! HMAC-SHA256 of `"{t}.{payload}"` with the endpoint secret, compared in constant time,
//! with a timestamp tolerance against replays. `now_s` is passed in. Each `v1` candidate
//! costs an HMAC over the whole body, so a header may carry at most
//! [`MAX_V1_CANDIDATES`] of them (Stripe sends one per active secret: two during a rotation).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's default tolerance between the signed timestamp and now.
pub const DEFAULT_TOLERANCE_S: i64 = 300;
/// Most `v1` signatures a header may carry.
pub const MAX_V1_CANDIDATES: usize = 8;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    MissingHeader,
    /// The header has no `t=` timestamp or no `v1=` signature, or they do not parse.
    MalformedHeader,
    /// The timestamp is further from now than the tolerance.
    TimestampOutsideTolerance,
    /// No `v1` signature matches the payload and secret.
    NoMatchingSignature,
    /// More than [`MAX_V1_CANDIDATES`] `v1` signatures (refused before computing any HMAC).
    TooManySignatures,
}

impl SignatureError {
    pub fn message(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader => "missing Stripe-Signature header",
            SignatureError::MalformedHeader => "malformed Stripe-Signature header",
            SignatureError::TimestampOutsideTolerance => "Stripe-Signature timestamp outside tolerance",
            SignatureError::NoMatchingSignature => "no Stripe-Signature v1 signature matches",
            SignatureError::TooManySignatures => "Stripe-Signature has more than 8 v1 signatures",
        }
    }
}

/// Compute the `v1` signature (lowercase hex) for a payload.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex(&mac.finalize().into_bytes())
}

/// Verify a `Stripe-Signature` header for `payload`.
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secret: &str,
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", _)) if candidates.len() == MAX_V1_CANDIDATES => return Err(SignatureError::TooManySignatures),
            Some(("v1", v)) => candidates.push(unhex(v).ok_or(SignatureError::MalformedHeader)?),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::MalformedHeader)?;
    if candidates.is_empty() {
        return Err(SignatureError::MalformedHeader);
    }
    // Checked: an extreme `t` (i64::MIN + now) must not wrap into the window.
    let within = now_s.checked_sub(t).and_then(i64::checked_abs).is_some_and(|age| age <= tolerance_s);
    if !within {
        return Err(SignatureError::TimestampOutsideTolerance);
    }
    for sig in candidates {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::NoMatchingSignature)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog") is a published vector.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn accepts_a_valid_signature() {
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let sig = sign(SECRET, 1_700_000_000, body);
        let header = format!("t=1700000000,v1={sig},v0=deadbeef");
        assert_eq!(verify(Some(&header), body, SECRET, 1_700_000_100, DEFAULT_TOLERANCE_S), Ok(()));
    }

    #[test]
    fn refuses_tampering_wrong_secret_and_replay() {
        let body = br#"{"id":"evt_1"}"#;
        let sig = sign(SECRET, 1_700_000_000, body);
        let header = format!("t=1700000000,v1={sig}");
        let now = 1_700_000_010;
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_2"}"#, SECRET, now, 300),
            Err(SignatureError::NoMatchingSignature)
        );
        assert_eq!(verify(Some(&header), body, "whsec_other", now, 300), Err(SignatureError::NoMatchingSignature));
        assert_eq!(
            verify(Some(&header), body, SECRET, now + 1000, 300),
            Err(SignatureError::TimestampOutsideTolerance)
        );
        assert_eq!(verify(None, body, SECRET, now, 300), Err(SignatureError::MissingHeader));
        assert_eq!(verify(Some("t=abc,v1=00"), body, SECRET, now, 300), Err(SignatureError::MalformedHeader));
        assert_eq!(verify(Some("t=1700000000"), body, SECRET, now, 300), Err(SignatureError::MalformedHeader));
        assert_eq!(verify(Some("t=1700000000,v1=zz"), body, SECRET, now, 300), Err(SignatureError::MalformedHeader));
    }

    #[test]
    fn extreme_timestamps_do_not_wrap_into_the_window() {
        let body = b"{}";
        let now = 1_700_000_000;
        for t in [i64::MIN, i64::MIN + now, i64::MIN + now + 1, i64::MAX, i64::MAX - 1, -now] {
            let header = format!("t={t},v1={}", sign(SECRET, t, body));
            assert_eq!(
                verify(Some(&header), body, SECRET, now, 300),
                Err(SignatureError::TimestampOutsideTolerance),
                "t={t}"
            );
        }
        // Extreme now as well.
        let header = format!("t=0,v1={}", sign(SECRET, 0, body));
        assert_eq!(verify(Some(&header), body, SECRET, i64::MIN, 300), Err(SignatureError::TimestampOutsideTolerance));
    }

    #[test]
    fn v1_candidates_are_capped_before_any_hmac() {
        let body = b"{}";
        let t = 1_700_000_000;
        let good = sign(SECRET, t, body);
        let bad = "ab".repeat(32);
        // Eight candidates, the last one right: accepted (a rotation sends two).
        let eight = format!("t={t},{}v1={good}", format!("v1={bad},").repeat(7));
        assert_eq!(verify(Some(&eight), body, SECRET, t, 300), Ok(()));
        let nine = format!("t={t},{}v1={good}", format!("v1={bad},").repeat(8));
        assert_eq!(verify(Some(&nine), body, SECRET, t, 300), Err(SignatureError::TooManySignatures));
        assert_eq!(SignatureError::TooManySignatures.message(), "Stripe-Signature has more than 8 v1 signatures");
    }

    proptest::proptest! {
        /// Any header: no panic, and an error unless it carries the right signature.
        #[test]
        fn any_header_is_judged_without_panic(h in "\\PC{0,200}", now in proptest::prelude::any::<i64>(), tol in 0i64..100_000) {
            let r = verify(Some(&h), b"payload", SECRET, now, tol);
            proptest::prop_assert!(r.is_err(), "{:?}", r);
        }

        /// Headers in Stripe's shape with arbitrary numbers and candidates.
        #[test]
        fn shaped_headers_are_judged_without_panic(
            t in proptest::prelude::any::<i64>(),
            now in proptest::prelude::any::<i64>(),
            sigs in proptest::collection::vec("[0-9a-f]{0,130}", 0..20),
        ) {
            let mut h = format!("t={t}");
            for s in &sigs {
                h.push_str(&format!(",v1={s}"));
            }
            let r = verify(Some(&h), b"payload", SECRET, now, DEFAULT_TOLERANCE_S);
            proptest::prop_assert!(r.is_err());
            let well_formed = sigs.iter().all(|s| s.len() % 2 == 0 && s.len() <= 128);
            if sigs.len() > MAX_V1_CANDIDATES && well_formed {
                proptest::prop_assert_eq!(r, Err(SignatureError::TooManySignatures));
            }
        }
    }
}
