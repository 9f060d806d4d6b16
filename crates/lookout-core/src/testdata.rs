//! Deterministic latency-like data for the native tests and the benchmarks (the digest
//! accuracy check runs in both): a xorshift64* generator, no rand crate, the same data on
//! every run. Not used by the Worker.

/// xorshift64* generator.
pub struct XorShift(pub u64);

impl XorShift {
    /// Uniform in (0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Lognormal latency: median `median_ms`, shape `sigma` (Box-Muller normal).
    pub fn lognormal_ms(&mut self, median_ms: f64, sigma: f64) -> f64 {
        let (u1, u2) = (self.next_f64(), self.next_f64());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median_ms * (sigma * z).exp()
    }

    /// Request latency in ms: lognormal (median 40 ms, sigma 0.6) with a 2% tail spread
    /// log-uniformly over 300-2000 ms.
    pub fn heavy_tail_ms(&mut self) -> f64 {
        if self.next_f64() < 0.02 {
            300.0 * (2000.0f64 / 300.0).powf(self.next_f64())
        } else {
            self.lognormal_ms(40.0, 0.6)
        }
    }
}
