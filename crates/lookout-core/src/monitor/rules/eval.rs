//! Evaluation of one rule: what it measures over its window as of `now_ms` (observe) and how
//! that compares with its fire and clear thresholds and its floor (verdict). The state
//! machine that acts on verdicts is `alert.rs`.

use serde::{Deserialize, Serialize};

use super::table::{Rule, RuleId};
use crate::monitor::digest::quantile;
use crate::monitor::window::{Series, Window};

/// What a rule measured over its window at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The measured value; `None` when the window holds no sample at all.
    pub value: Option<f64>,
    /// Samples behind the value (requests, latency samples, or events).
    pub samples: u64,
}

/// How an observation compares with the rule's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Above the fire threshold (at or above for counts).
    Breach,
    /// Between the clear and fire thresholds: keeps a firing alert firing.
    Band,
    /// Below the clear threshold.
    Clear,
    /// Fewer samples than the floor (or none): not enough to judge.
    NoData,
}

impl Rule {
    /// Measure this rule over its window as of `now_ms`.
    pub fn observe(&self, window: &Window, now_ms: i64) -> Observation {
        let totals = window.totals(self.window_s, now_ms);
        match self.id {
            RuleId::Http5xxRate => Observation {
                value: (totals.requests > 0).then(|| totals.errors_5xx as f64 / totals.requests as f64),
                samples: totals.requests,
            },
            RuleId::RequestP95 => self.p95(window, Series::Request, now_ms),
            RuleId::D1P95 => self.p95(window, Series::D1, now_ms),
            RuleId::StripeSignatureFailures => Observation {
                value: Some(totals.stripe_signature_failures as f64),
                samples: totals.stripe_signature_failures,
            },
        }
    }

    fn p95(&self, window: &Window, series: Series, now_ms: i64) -> Observation {
        let merged = window.merged(series, self.window_s, now_ms);
        Observation { value: quantile(&merged, 0.95), samples: merged.count() as u64 }
    }

    /// Compare an observation with the thresholds (the floor first).
    pub fn verdict(&self, obs: &Observation) -> Verdict {
        let value = match obs.value {
            Some(v) if obs.samples >= self.min_samples => v,
            _ => return Verdict::NoData,
        };
        let breach = if self.id.fires_at_equal() { value >= self.threshold } else { value > self.threshold };
        if breach {
            Verdict::Breach
        } else if value < self.clear_threshold {
            Verdict::Clear
        } else {
            Verdict::Band
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::rules::DEFAULT_RULES;

    #[test]
    fn verdicts_use_floor_fire_and_clear_thresholds() {
        let r = &DEFAULT_RULES[0];
        let obs = |errors: u64, requests: u64| Observation {
            value: (requests > 0).then(|| errors as f64 / requests as f64),
            samples: requests,
        };
        assert_eq!(r.verdict(&obs(1, 3)), Verdict::NoData, "3 requests is below the floor of 20");
        assert_eq!(r.verdict(&obs(0, 0)), Verdict::NoData);
        assert_eq!(r.verdict(&obs(2, 100)), Verdict::Breach);
        assert_eq!(r.verdict(&obs(1, 100)), Verdict::Band, "exactly 1% does not exceed 1%");
        assert_eq!(r.verdict(&obs(1, 150)), Verdict::Band);
        assert_eq!(r.verdict(&obs(1, 250)), Verdict::Clear);
        let s = &DEFAULT_RULES[3];
        let count = |n: u64| Observation { value: Some(n as f64), samples: n };
        assert_eq!(s.verdict(&count(3)), Verdict::Breach, "3 or more fires");
        assert_eq!(s.verdict(&count(2)), Verdict::Clear);
        assert_eq!(s.verdict(&count(0)), Verdict::Clear);
    }
}
