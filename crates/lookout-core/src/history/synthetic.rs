//! A full history made up, for measuring (never for a real shop's figures): 30 days of hours
//! and 24 h of minutes at a given request rate, with realistic latencies, a few error
//! classes and costs, and the open minute and hour with full digests. The native size test,
//! the bench and the test environment's fill route use it to see what full retention costs
//! without waiting 30 days. Deterministic for a seed.

use super::{hour_of, minute_hour, minute_of, History, OpenSlot, R2Sample, Slot, SlotCounts, DAY_MS, HOUR_MS};
use super::{HOUR_SLOTS, MINUTE_MS, MINUTE_SLOTS, TOP_CLASSES_HOUR, TOP_CLASSES_MINUTE};

/// Error classes the made-up traffic fails with.
const CLASSES: [&str; 6] = ["D1Error", "BlockedByDependents", "NotFound", "JsError", "UpstreamTimeout", "Panic"];
/// Latency samples drawn per made-up minute (and per hour for the older hours).
const SAMPLES_PER_SLOT: usize = 120;

struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Lognormal latency around `median_ms`, with a 1% slow tail.
    fn latency_ms(&mut self, median_ms: f64) -> f64 {
        if self.unit() < 0.01 {
            return 300.0 + 1700.0 * self.unit();
        }
        let (u1, u2) = (self.unit(), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median_ms * (0.6 * z).exp()
    }

    fn poisson_like(&mut self, mean: f64) -> u64 {
        // Normal approximation, good enough for made-up counts.
        let (u1, u2) = (self.unit(), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (mean + z * mean.sqrt()).round().max(0.0) as u64
    }
}

/// An open slot of `span_s` seconds at `rps`.
fn made_up(rng: &mut Rng, h: &mut History, rps: f64, span_s: f64) -> OpenSlot {
    let mut o = OpenSlot::default();
    let requests = rng.poisson_like(rps * span_s);
    let errors = rng.poisson_like(requests as f64 * 0.004).min(requests);
    o.counts = SlotCounts {
        requests,
        errors_5xx: errors,
        d1_samples: requests * 7 / 10,
        twilio_micros: rng.poisson_like(requests as f64 * 0.01) * 7900,
        claude_micros: rng.poisson_like(requests as f64 * 0.005) * 4200,
    };
    for _ in 0..SAMPLES_PER_SLOT.min(requests as usize) {
        o.request_ms.push_ms(rng.latency_ms(40.0));
        o.d1_ms.push_ms(rng.latency_ms(4.0));
    }
    o.request_ms.flush();
    o.d1_ms.flush();
    let mut left = errors + requests / 50;
    for (i, name) in CLASSES.iter().enumerate() {
        if left == 0 {
            break;
        }
        let n = if i + 1 == CLASSES.len() { left } else { (left as f64 * rng.unit()).round() as u64 };
        if n > 0 {
            let id = h.class_id(name);
            o.add_classes([(id, n)]);
            left -= n;
        }
    }
    o
}

/// Fill `h` with full retention as of `now_ms` at `rps` requests per second: every minute of
/// the last 24 h, every hour of the last 30 days, the open minute and hour, 30 R2 samples.
pub fn fill(h: &mut History, now_ms: i64, rps: f64, seed: u64) {
    let mut rng = Rng(seed | 1);
    let (now_minute, now_hour) = (minute_of(now_ms), hour_of(now_ms));
    for hour in now_hour - HOUR_SLOTS + 1..now_hour {
        let o = made_up(&mut rng, h, rps, 3600.0);
        h.hours.insert(hour, o.finalize(TOP_CLASSES_HOUR));
        h.dirty_hour_chunks.insert((hour * HOUR_MS).div_euclid(DAY_MS));
    }
    let mut open_hour = OpenSlot::default();
    for m in now_minute - MINUTE_SLOTS + 1..now_minute {
        let o = made_up(&mut rng, h, rps, 60.0);
        let slot: Slot = o.finalize(TOP_CLASSES_MINUTE);
        if minute_hour(m) == now_hour {
            open_hour.counts.add(&o.counts);
            open_hour.request_ms = super::merged(&open_hour.request_ms, &o.request_ms);
            open_hour.d1_ms = super::merged(&open_hour.d1_ms, &o.d1_ms);
            open_hour.add_classes(o.classes.iter().map(|(&k, &v)| (k, v)));
        }
        h.minutes.insert(m, slot);
        h.dirty_minute_chunks.insert(minute_hour(m));
    }
    if open_hour.counts.requests > 0 {
        h.open_hours.insert(now_hour, open_hour);
    }
    let open_minute = made_up(&mut rng, h, rps, ((now_ms - now_minute * MINUTE_MS) as f64 / 1000.0).max(1.0));
    h.open_minutes.insert(now_minute, open_minute);
    let mut bytes = 40_000_000u64;
    for d in (0..30).rev() {
        bytes += rng.poisson_like(2_000_000.0);
        h.add_r2_sample(R2Sample { at_ms: now_ms - d * DAY_MS, bytes, objects: bytes / 180_000 });
    }
    h.open_dirty = true;
}
