//! One error for operator input that names the broken field and why ([`FieldError`]), shared
//! by the shop settings, the routing and the silences, plus the small readers they use.
//! Reasons never quote a personal value (an owner's name or email), only the rule broken.

use serde::Serialize;
use serde_json::Value;

/// A rejected value: the dotted path of the field (`owner.email`, `rules.http_5xx_rate.for_s`,
/// `channels.critical[0]`) and the reason. Displays as `field: reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), reason: reason.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// A whole number in `0..=max`, or the error naming `field`.
pub fn whole_number(v: &Value, field: &str, max: u64) -> Result<u64, FieldError> {
    match v.as_u64() {
        Some(n) if n <= max => Ok(n),
        Some(_) => Err(FieldError::new(field, format!("must be at most {max}"))),
        None if v.as_f64().is_some_and(|f| f < 0.0) => Err(FieldError::new(field, "must not be negative")),
        None => Err(FieldError::new(field, "must be a whole number")),
    }
}

/// A string of `1..=max_chars` characters with no control characters (so it cannot break an
/// email header or a log line).
pub fn plain_text(v: &Value, field: &str, max_chars: usize) -> Result<String, FieldError> {
    let s = v.as_str().ok_or_else(|| FieldError::new(field, "must be a string"))?;
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(FieldError::new(field, format!("must be at most {max_chars} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters (line breaks, tabs)"));
    }
    Ok(trimmed.to_string())
}

/// An email address as a mail system takes it: `local@domain`, one `@`, a dotted domain, no
/// spaces, quotes, angle brackets or control characters, at most 254 characters. The value is
/// never quoted back.
pub fn email_address(v: &Value, field: &str) -> Result<String, FieldError> {
    let s = v.as_str().ok_or_else(|| FieldError::new(field, "must be a string"))?.trim();
    let bad = || FieldError::new(field, "must be an email address (name@example.com)");
    if s.is_empty() || s.len() > 254 {
        return Err(bad());
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"' | ',' | ';' | '(' | ')')) {
        return Err(bad());
    }
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
    });
    if local.is_empty() || local.len() > 64 || domain.contains('@') || !domain.contains('.') || !labels_ok {
        return Err(bad());
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn readers_name_the_field_and_never_echo_the_value() {
        assert_eq!(whole_number(&json!(5), "x", 10), Ok(5));
        assert_eq!(whole_number(&json!(-1), "x", 10).unwrap_err().reason, "must not be negative");
        assert_eq!(whole_number(&json!(1.5), "x", 10).unwrap_err().reason, "must be a whole number");
        assert_eq!(whole_number(&json!("5"), "x", 10).unwrap_err().reason, "must be a whole number");
        assert_eq!(whole_number(&json!(11), "x", 10).unwrap_err().reason, "must be at most 10");
        assert_eq!(plain_text(&json!("  Robbie "), "n", 10), Ok("Robbie".into()));
        assert!(plain_text(&json!("a\r\nBcc: x"), "n", 40).is_err());
        assert!(plain_text(&json!(""), "n", 40).is_err());
        assert_eq!(email_address(&json!("owner@swicked.example"), "e"), Ok("owner@swicked.example".into()));
        for bad in ["", "robbie", "robbie@", "@x.io", "a@b", "a b@x.io", "a@x.io\r\nBcc: y@z.io", "a@@x.io", "<a@x.io>"]
        {
            let e = email_address(&json!(bad), "owner.email").unwrap_err();
            assert_eq!(e.field, "owner.email");
            assert!(bad.is_empty() || !e.to_string().contains(bad), "{bad:?} echoed: {e}");
        }
    }
}
