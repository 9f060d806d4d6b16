//! The history's binary encoding: LEB128 varints, latencies quantized to 0.1 ms, digests as
//! centroids (f64 mean, varint weight). A slot costs ~20-30 bytes; a digest ~9 bytes per
//! centroid. Reading never panics: short or corrupt input is a [`DecodeError`].

use super::{OpenSlot, Slot, SlotCounts};
use crate::monitor::digest::{DigestSnapshot, LatencyDigest, DIGEST_MAX_SIZE};

/// Why a stored chunk could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a value.
    Truncated,
    /// A varint longer than 10 bytes, or a count beyond what a chunk can hold.
    TooLarge(&'static str),
    /// A chunk of another format version.
    Version(u8),
    /// Not UTF-8 where a name is expected.
    BadName,
    /// A digest that does not validate.
    Digest(String),
    /// Bytes left after the chunk's end.
    Trailing,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => write!(f, "history chunk truncated"),
            Self::TooLarge(what) => write!(f, "history chunk: {what} too large"),
            Self::Version(v) => write!(f, "history chunk version {v} unknown"),
            Self::BadName => write!(f, "history chunk: an error class is not UTF-8"),
            Self::Digest(e) => write!(f, "history chunk digest: {e}"),
            Self::Trailing => write!(f, "history chunk has trailing bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Latency resolution: 0.1 ms. Stored as `round(ms * 10) + 1`, 0 for none.
const LATENCY_SCALE: f64 = 10.0;
/// Latencies are clamped to this (a day, in ms): far beyond any request.
const LATENCY_MAX_MS: f64 = 86_400_000.0;

/// A latency as stored (quantized); what the reader gets back.
pub fn quantize_ms(ms: Option<f64>) -> Option<f64> {
    ms.filter(|v| v.is_finite()).map(|v| (v.clamp(0.0, LATENCY_MAX_MS) * LATENCY_SCALE).round() / LATENCY_SCALE)
}

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    /// A signed value (zigzag).
    pub fn ivarint(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn latency(&mut self, ms: Option<f64>) {
        match quantize_ms(ms) {
            Some(v) => self.varint((v * LATENCY_SCALE).round() as u64 + 1),
            None => self.varint(0),
        }
    }

    pub fn name(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
}

pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(DecodeError::TooLarge("varint"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::TooLarge("varint"))
    }

    pub fn ivarint(&mut self) -> Result<i64, DecodeError> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// A count that must not exceed `max`.
    pub fn count(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(DecodeError::TooLarge(what));
        }
        Ok(n as usize)
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let end = self.pos.checked_add(8).ok_or(DecodeError::Truncated)?;
        let bytes = self.data.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    pub fn latency(&mut self) -> Result<Option<f64>, DecodeError> {
        let q = self.varint()?;
        Ok((q > 0).then(|| ((q - 1) as f64 / LATENCY_SCALE).min(LATENCY_MAX_MS)))
    }

    pub fn name(&mut self, max_len: usize) -> Result<String, DecodeError> {
        let n = self.count(max_len, "name")?;
        let end = self.pos + n;
        let bytes = self.data.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadName)
    }

    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(DecodeError::Trailing)
        }
    }
}

/// Error classes kept per slot, and the interned table's size.
pub const MAX_SLOT_CLASSES: usize = 16;

pub fn write_counts(w: &mut Writer, c: &SlotCounts) {
    w.varint(c.requests);
    w.varint(c.errors_5xx);
    w.varint(c.d1_samples);
    w.varint(c.twilio_micros);
    w.varint(c.claude_micros);
}

pub fn read_counts(r: &mut Reader) -> Result<SlotCounts, DecodeError> {
    Ok(SlotCounts {
        requests: r.varint()?,
        errors_5xx: r.varint()?,
        d1_samples: r.varint()?,
        twilio_micros: r.varint()?,
        claude_micros: r.varint()?,
    })
}

fn write_classes(w: &mut Writer, classes: &[(u16, u64)]) {
    w.varint(classes.len() as u64);
    for &(id, n) in classes {
        w.varint(u64::from(id));
        w.varint(n);
    }
}

fn read_classes(r: &mut Reader, max: usize) -> Result<Vec<(u16, u64)>, DecodeError> {
    let n = r.count(max, "error classes")?;
    (0..n)
        .map(|_| {
            let id = u16::try_from(r.varint()?).map_err(|_| DecodeError::TooLarge("class id"))?;
            Ok((id, r.varint()?))
        })
        .collect()
}

pub fn write_slot(w: &mut Writer, s: &Slot) {
    write_counts(w, &s.counts);
    w.latency(s.request_p50_ms);
    w.latency(s.request_p95_ms);
    w.latency(s.d1_p50_ms);
    w.latency(s.d1_p95_ms);
    write_classes(w, &s.classes);
}

pub fn read_slot(r: &mut Reader) -> Result<Slot, DecodeError> {
    Ok(Slot {
        counts: read_counts(r)?,
        request_p50_ms: r.latency()?,
        request_p95_ms: r.latency()?,
        d1_p50_ms: r.latency()?,
        d1_p95_ms: r.latency()?,
        classes: read_classes(r, MAX_SLOT_CLASSES)?,
    })
}

pub fn write_digest(w: &mut Writer, d: &LatencyDigest) {
    let s = d.snapshot();
    w.varint(s.centroids.len() as u64);
    for &(mean, weight) in &s.centroids {
        w.f64(mean);
        w.varint(weight.round() as u64);
    }
    if !s.centroids.is_empty() {
        w.f64(s.sum);
        w.f64(s.min.unwrap_or(0.0));
        w.f64(s.max.unwrap_or(0.0));
    }
}

pub fn read_digest(r: &mut Reader) -> Result<LatencyDigest, DecodeError> {
    let n = r.count(DIGEST_MAX_SIZE * 2, "digest")?;
    let mut centroids = Vec::with_capacity(n);
    let mut count = 0.0;
    for _ in 0..n {
        let mean = r.f64()?;
        let weight = r.varint()? as f64;
        count += weight;
        centroids.push((mean, weight));
    }
    let (sum, min, max) = if n == 0 { (0.0, None, None) } else { (r.f64()?, Some(r.f64()?), Some(r.f64()?)) };
    let snapshot = DigestSnapshot { centroids, sum, count, min, max, max_size: DIGEST_MAX_SIZE.max(n) };
    LatencyDigest::from_snapshot(&snapshot).map_err(|e| DecodeError::Digest(e.to_string()))
}

/// Every class an open slot counted (not only the top ones).
const MAX_OPEN_CLASSES: usize = 1024;

pub fn write_open(w: &mut Writer, o: &OpenSlot) {
    write_counts(w, &o.counts);
    write_digest(w, &o.request_ms);
    write_digest(w, &o.d1_ms);
    let classes: Vec<(u16, u64)> = o.classes.iter().map(|(&k, &v)| (k, v)).collect();
    write_classes(w, &classes);
}

pub fn read_open(r: &mut Reader) -> Result<OpenSlot, DecodeError> {
    Ok(OpenSlot {
        counts: read_counts(r)?,
        request_ms: read_digest(r)?,
        d1_ms: read_digest(r)?,
        classes: read_classes(r, MAX_OPEN_CLASSES)?.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_refuse_garbage() {
        let mut w = Writer::default();
        let values = [0u64, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as u64, u64::MAX];
        for v in values {
            w.varint(v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -123_456] {
            w.ivarint(v);
        }
        let mut r = Reader::new(&w.buf);
        for v in values {
            assert_eq!(r.varint(), Ok(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -123_456] {
            assert_eq!(r.ivarint(), Ok(v));
        }
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(DecodeError::Truncated));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(DecodeError::TooLarge("varint")));
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]).varint(),
            Err(DecodeError::TooLarge("varint"))
        );
    }

    #[test]
    fn latencies_keep_a_tenth_of_a_millisecond() {
        for (ms, back) in [(None, None), (Some(0.0), Some(0.0)), (Some(41.26), Some(41.3)), (Some(f64::NAN), None)] {
            let mut w = Writer::default();
            w.latency(ms);
            assert_eq!(Reader::new(&w.buf).latency(), Ok(back), "{ms:?}");
        }
        let mut w = Writer::default();
        w.latency(Some(1e300));
        assert_eq!(Reader::new(&w.buf).latency(), Ok(Some(LATENCY_MAX_MS)));
    }

    #[test]
    fn digests_round_trip_exactly() {
        let mut d = LatencyDigest::default();
        for i in 0..5000 {
            d.push_ms(f64::from(i % 97) * 1.7 + 3.0);
        }
        d.flush();
        let mut w = Writer::default();
        write_digest(&mut w, &d);
        let mut r = Reader::new(&w.buf);
        let back = read_digest(&mut r).expect("valid");
        r.finish().expect("no trailing bytes");
        assert_eq!(back.snapshot(), d.snapshot());
        let mut w = Writer::default();
        write_digest(&mut w, &LatencyDigest::default());
        assert_eq!(read_digest(&mut Reader::new(&w.buf)).expect("empty").count(), 0);
    }

    #[test]
    fn corrupt_digests_are_errors() {
        let mut d = LatencyDigest::default();
        d.push_ms(5.0);
        d.push_ms(9.0);
        d.flush();
        let mut w = Writer::default();
        write_digest(&mut w, &d);
        for cut in 0..w.buf.len() {
            assert!(read_digest(&mut Reader::new(&w.buf[..cut])).is_err(), "cut at {cut}");
        }
        // min above max
        let mut bad = w.buf.clone();
        let n = bad.len();
        bad[n - 16..n - 8].copy_from_slice(&100.0f64.to_le_bytes());
        assert!(matches!(read_digest(&mut Reader::new(&bad)), Err(DecodeError::Digest(_))));
    }
}
