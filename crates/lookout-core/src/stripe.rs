//! Stripe webhook signatures: the `Stripe-Signature` scheme (`t=<unix>,v1=<hex>`), an
//! HMAC-SHA256 of `"{t}.{payload}"` with the endpoint secret, compared in constant time,
//! with a timestamp tolerance against replays. `now_s` is passed in.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's default tolerance between the signed timestamp and now.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

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
}

impl SignatureError {
    pub fn message(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader => "missing Stripe-Signature header",
            SignatureError::MalformedHeader => "malformed Stripe-Signature header",
            SignatureError::TimestampOutsideTolerance => "Stripe-Signature timestamp outside tolerance",
            SignatureError::NoMatchingSignature => "no Stripe-Signature v1 signature matches",
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
            Some(("v1", v)) => candidates.push(unhex(v).ok_or(SignatureError::MalformedHeader)?),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::MalformedHeader)?;
    if candidates.is_empty() {
        return Err(SignatureError::MalformedHeader);
    }
    if (now_s - t).abs() > tolerance_s {
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
}
