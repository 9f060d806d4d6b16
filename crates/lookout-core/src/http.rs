//! HTTP rules the edge applies, decided here: which responses must leave without a body
//! (`HEAD`, 204, 205, 304) or cannot be sent at all (a status the runtime refuses), and body
//! size limits judged before reading (`Content-Length`) and while reading (a running count),
//! for request bodies and for upstream answers alike. Pure: the edge reads and sends.

/// What the edge does with a response before it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// Send it as it is.
    Send,
    /// Send the status and headers with no body: the method (`HEAD`) or the status (204,
    /// 205, 304) has none. Sending one would make the runtime throw after the line was written.
    DropBody,
    /// The runtime cannot build a response with this status (outside 200-599, 101 aside):
    /// answer 500 instead and say why on the line.
    InvalidStatus,
}

/// The [`BodyRule`] for a response of `status` to a `method` request.
pub fn body_rule(method: &str, status: u16) -> BodyRule {
    if status == 101 {
        // Switching protocols (a WebSocket): the runtime owns it; never rebuilt.
        BodyRule::Send
    } else if !(200..=599).contains(&status) {
        BodyRule::InvalidStatus
    } else if method == "HEAD" || matches!(status, 204 | 205 | 304) {
        BodyRule::DropBody
    } else {
        BodyRule::Send
    }
}

/// Why a body was refused before or while reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Declared (`Content-Length`) or read so far: more than the limit.
    TooLarge { bytes: u64, limit: u64 },
    /// `Content-Length` is not a decimal number.
    BadLength,
}

impl BodyError {
    pub fn message(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "body exceeds the route's limit",
            BodyError::BadLength => "Content-Length is not a number",
        }
    }
}

/// Judge a body by its `Content-Length` before reading any of it: `Ok(Some(n))` when it
/// declares `n <= limit` bytes, `Ok(None)` when it declares nothing (chunked: count while
/// reading with [`BodyCounter`]).
pub fn check_declared_length(content_length: Option<&str>, limit: u64) -> Result<Option<u64>, BodyError> {
    let Some(v) = content_length.map(str::trim) else { return Ok(None) };
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BodyError::BadLength);
    }
    let n: u64 = v.parse().map_err(|_| BodyError::TooLarge { bytes: u64::MAX, limit })?;
    if n > limit {
        Err(BodyError::TooLarge { bytes: n, limit })
    } else {
        Ok(Some(n))
    }
}

/// Counts the bytes of a body as its chunks arrive; refuses the chunk that passes the limit
/// (so at most `limit` bytes plus one chunk are ever held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCounter {
    read: u64,
    limit: u64,
}

impl BodyCounter {
    pub fn new(limit: u64) -> Self {
        BodyCounter { read: 0, limit }
    }

    /// Count a chunk of `len` bytes.
    pub fn add(&mut self, len: usize) -> Result<(), BodyError> {
        self.read = self.read.saturating_add(len as u64);
        if self.read > self.limit {
            Err(BodyError::TooLarge { bytes: self.read, limit: self.limit })
        } else {
            Ok(())
        }
    }

    pub fn read(&self) -> u64 {
        self.read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bodiless_statuses_and_head_drop_the_body() {
        for s in [204, 205, 304] {
            assert_eq!(body_rule("GET", s), BodyRule::DropBody, "{s}");
        }
        assert_eq!(body_rule("HEAD", 200), BodyRule::DropBody);
        assert_eq!(body_rule("GET", 200), BodyRule::Send);
        assert_eq!(body_rule("POST", 404), BodyRule::Send);
        assert_eq!(body_rule("GET", 101), BodyRule::Send);
        for s in [0, 100, 199, 600, 999] {
            assert_eq!(body_rule("GET", s), BodyRule::InvalidStatus, "{s}");
        }
    }

    #[test]
    fn declared_lengths() {
        assert_eq!(check_declared_length(None, 10), Ok(None));
        assert_eq!(check_declared_length(Some("10"), 10), Ok(Some(10)));
        assert_eq!(check_declared_length(Some(" 0 "), 10), Ok(Some(0)));
        assert_eq!(check_declared_length(Some("11"), 10), Err(BodyError::TooLarge { bytes: 11, limit: 10 }));
        assert_eq!(
            check_declared_length(Some("99999999999999999999"), 10),
            Err(BodyError::TooLarge { bytes: u64::MAX, limit: 10 })
        );
        for bad in ["", "-1", "1e3", "0x10", "10, 10", "123456789012345678901"] {
            assert_eq!(check_declared_length(Some(bad), 10), Err(BodyError::BadLength), "{bad:?}");
        }
    }

    #[test]
    fn the_counter_refuses_the_chunk_past_the_limit() {
        let mut c = BodyCounter::new(10);
        assert_eq!(c.add(6), Ok(()));
        assert_eq!(c.add(4), Ok(()));
        assert_eq!(c.add(1), Err(BodyError::TooLarge { bytes: 11, limit: 10 }));
        assert_eq!(c.read(), 11);
    }

    proptest! {
        #[test]
        fn any_content_length_is_judged_without_panic(v in "\\PC{0,30}", limit in 0u64..1_000_000) {
            match check_declared_length(Some(&v), limit) {
                Ok(Some(n)) => prop_assert!(n <= limit),
                Ok(None) => prop_assert!(false, "a header was given"),
                Err(_) => {}
            }
        }
    }
}
