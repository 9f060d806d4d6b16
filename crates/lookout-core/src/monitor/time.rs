//! Millisecond timestamps for the monitor: RFC 3339 formatting and second/millisecond
//! conversions. No clock reads here: every caller passes `now_ms` in.

use chrono::{DateTime, SecondsFormat};

/// Milliseconds in `s` seconds.
pub fn s_to_ms(s: u32) -> i64 {
    i64::from(s) * 1000
}

/// `ms` (Unix epoch milliseconds) as RFC 3339 UTC with milliseconds, e.g.
/// `2026-05-10T14:23:11.000Z`. Out-of-range values fall back to `"<ms>ms"`, never a panic.
pub fn rfc3339_ms(ms: i64) -> String {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{ms}ms"),
    }
}

/// [`rfc3339_ms`] for an optional timestamp.
pub fn rfc3339_opt(ms: Option<i64>) -> Option<String> {
    ms.map(rfc3339_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_ms_as_rfc3339() {
        assert_eq!(rfc3339_ms(1_778_423_000_000), "2026-05-10T14:23:20.000Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(i64::MAX), format!("{}ms", i64::MAX));
    }
}
