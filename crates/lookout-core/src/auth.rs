//! Operator authentication: `Authorization: Bearer <OPS_TOKEN>`, compared in constant time
//! (both sides hashed first, so neither content nor length leaks through timing).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why an operator request was refused (the client only ever sees 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The Worker has no `OPS_TOKEN` configured: operator endpoints are closed.
    NotConfigured,
    /// No `Authorization: Bearer ...` header.
    Missing,
    /// A token that does not match.
    Wrong,
}

/// Check an `Authorization` header value against the configured token.
pub fn check_bearer(header: Option<&str>, configured: Option<&str>) -> Result<(), AuthError> {
    let configured = configured.filter(|t| !t.is_empty()).ok_or(AuthError::NotConfigured)?;
    let presented = header
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)?;
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(configured.as_bytes());
    if bool::from(a.ct_eq(&b)) {
        Ok(())
    } else {
        Err(AuthError::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_checks() {
        assert_eq!(check_bearer(Some("Bearer s3cret"), Some("s3cret")), Ok(()));
        assert_eq!(check_bearer(Some("Bearer s3cre"), Some("s3cret")), Err(AuthError::Wrong));
        assert_eq!(check_bearer(Some("Bearer s3cret-and-more"), Some("s3cret")), Err(AuthError::Wrong));
        assert_eq!(check_bearer(Some("Basic s3cret"), Some("s3cret")), Err(AuthError::Missing));
        assert_eq!(check_bearer(None, Some("s3cret")), Err(AuthError::Missing));
        assert_eq!(check_bearer(Some("Bearer "), Some("s3cret")), Err(AuthError::Missing));
        assert_eq!(check_bearer(Some("Bearer x"), None), Err(AuthError::NotConfigured));
        assert_eq!(check_bearer(Some("Bearer "), Some("")), Err(AuthError::NotConfigured));
    }
}
