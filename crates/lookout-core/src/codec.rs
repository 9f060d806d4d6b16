//! The little binary encoding the monitor stores (bucket rows, digests) and the isolate sends
//! (partial buckets' digests): LEB128 varints, little-endian f64, length-prefixed UTF-8
//! strings. Reading never panics: a short or malformed input is a [`CodecError`] naming what
//! was being read. What is encoded lives with its type (digest.rs, window.rs).

/// Why bytes could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecError {
    /// What was being read (`"varint"`, `"f64"`, `"string"`, or a caller's field name).
    pub what: &'static str,
    pub kind: CodecErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecErrorKind {
    /// The input ended first.
    Truncated,
    /// A varint longer than 10 bytes or past `u64`.
    Overflow,
    /// A string that is not UTF-8 or is longer than allowed.
    BadString,
    /// A value outside what the field allows (the caller's check).
    OutOfRange,
    /// Bytes left over after the value.
    TrailingBytes,
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            CodecErrorKind::Truncated => "input ends early",
            CodecErrorKind::Overflow => "varint overflows",
            CodecErrorKind::BadString => "not UTF-8 or too long",
            CodecErrorKind::OutOfRange => "value out of range",
            CodecErrorKind::TrailingBytes => "trailing bytes",
        };
        write!(f, "{}: {kind}", self.what)
    }
}

impl std::error::Error for CodecError {}

impl CodecError {
    pub fn new(what: &'static str, kind: CodecErrorKind) -> Self {
        CodecError { what, kind }
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn get_varint(input: &mut &[u8], what: &'static str) -> Result<u64, CodecError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = input.split_first().ok_or(CodecError::new(what, CodecErrorKind::Truncated))?;
        *input = rest;
        let part = u64::from(b & 0x7f);
        if i == 9 && part > 1 {
            return Err(CodecError::new(what, CodecErrorKind::Overflow));
        }
        v |= part << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(CodecError::new(what, CodecErrorKind::Overflow))
}

pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn get_f64(input: &mut &[u8], what: &'static str) -> Result<f64, CodecError> {
    if input.len() < 8 {
        return Err(CodecError::new(what, CodecErrorKind::Truncated));
    }
    let (head, rest) = input.split_at(8);
    *input = rest;
    let mut b = [0u8; 8];
    b.copy_from_slice(head);
    Ok(f64::from_le_bytes(b))
}

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A string of at most `max_bytes`.
pub fn get_str(input: &mut &[u8], max_bytes: usize, what: &'static str) -> Result<String, CodecError> {
    let n = get_varint(input, what)?;
    if n > max_bytes as u64 {
        return Err(CodecError::new(what, CodecErrorKind::BadString));
    }
    let n = n as usize;
    if input.len() < n {
        return Err(CodecError::new(what, CodecErrorKind::Truncated));
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    std::str::from_utf8(head).map(str::to_string).map_err(|_| CodecError::new(what, CodecErrorKind::BadString))
}

/// A varint that must be at most `max`.
pub fn get_bounded(input: &mut &[u8], max: u64, what: &'static str) -> Result<u64, CodecError> {
    let v = get_varint(input, what)?;
    if v > max {
        return Err(CodecError::new(what, CodecErrorKind::OutOfRange));
    }
    Ok(v)
}

/// Zigzag, so small negative numbers stay short.
pub fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn get_signed(input: &mut &[u8], what: &'static str) -> Result<i64, CodecError> {
    let v = get_varint(input, what)?;
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// `s` cut to at most `max_chars` characters (on a character boundary).
pub fn cap(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_and_bad_input_is_an_error_not_a_panic() {
        assert_eq!(get_varint(&mut &[][..], "n").unwrap_err().kind, CodecErrorKind::Truncated);
        assert_eq!(get_varint(&mut &[0xff; 11][..], "n").unwrap_err().kind, CodecErrorKind::Overflow);
        assert_eq!(get_f64(&mut &[1, 2, 3][..], "x").unwrap_err().kind, CodecErrorKind::Truncated);
        let mut out = Vec::new();
        put_str(&mut out, "héllo");
        assert_eq!(get_str(&mut &out[..], 3, "s").unwrap_err().kind, CodecErrorKind::BadString);
        assert_eq!(get_str(&mut &out[..4], 10, "s").unwrap_err().kind, CodecErrorKind::Truncated);
        assert_eq!(get_str(&mut &[2, 0xc3, 0x28][..], 10, "s").unwrap_err().kind, CodecErrorKind::BadString);
        assert_eq!(get_bounded(&mut &[9][..], 8, "k").unwrap_err().kind, CodecErrorKind::OutOfRange);
        assert_eq!(cap("héllo", 2), "hé");
        assert_eq!(cap("hi", 5), "hi");
    }

    proptest! {
        #[test]
        fn everything_written_reads_back(v in any::<u64>(), s in any::<i64>(), x in any::<f64>(), t in ".{0,40}") {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            put_signed(&mut out, s);
            put_f64(&mut out, x);
            put_str(&mut out, &t);
            let mut input = &out[..];
            prop_assert_eq!(get_varint(&mut input, "v").unwrap(), v);
            prop_assert_eq!(get_signed(&mut input, "s").unwrap(), s);
            prop_assert_eq!(get_f64(&mut input, "x").unwrap().to_bits(), x.to_bits());
            prop_assert_eq!(get_str(&mut input, 1000, "t").unwrap(), t);
            prop_assert!(input.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut input = &bytes[..];
            let _ = get_varint(&mut input, "v");
            let _ = get_str(&mut input, 16, "s");
            let _ = get_f64(&mut input, "x");
        }
    }
}
