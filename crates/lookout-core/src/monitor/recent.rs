//! The last few request ids per incident kind (5xx, slow request, slow D1 query, bad Stripe
//! signature), kept with the monitor's snapshot so a notification can name requests to look
//! up. No counting here (window.rs) and no thresholds of its own: "slow" is the matching p95
//! rule's threshold, passed in.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::rules::{RuleId, STRIPE_SIGNATURE_ERROR_CLASS};
use crate::partial::Sample;
use crate::record::RequestRecord;

/// Recent request ids kept per incident kind.
pub const RECENT_IDS_PER_KIND: usize = 5;
/// Request ids longer than this are cut (they are ours, but storage must stay bounded).
const MAX_REQUEST_ID_CHARS: usize = 64;

/// A request id kept as evidence for a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentId {
    pub ts_ms: i64,
    pub request_id: String,
}

/// Which kinds a request is evidence for.
#[derive(Debug, Clone, Copy)]
struct Kinds {
    server_5xx: bool,
    slow_request: bool,
    slow_d1: bool,
    stripe: bool,
}

/// The last few request ids per incident kind (5xx, slow request, slow D1 query, bad Stripe
/// signature), newest last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentIds {
    pub server_5xx: VecDeque<RecentId>,
    pub slow_request: VecDeque<RecentId>,
    pub slow_d1: VecDeque<RecentId>,
    pub stripe_signature: VecDeque<RecentId>,
}

impl RecentIds {
    /// Note `record` under every kind it is evidence for; "slow" means above the threshold
    /// of the matching p95 rule.
    pub fn note(&mut self, record: &RequestRecord, slow_request_ms: f64, slow_d1_ms: f64) {
        let stripe = record.error_class.as_deref() == Some(STRIPE_SIGNATURE_ERROR_CLASS);
        let d1_ms = record.d1_slowest.as_ref().map(|q| q.ms);
        let kinds = Kinds {
            server_5xx: record.is_server_error(),
            slow_request: record.ms > slow_request_ms,
            slow_d1: d1_ms.is_some_and(|ms| ms > slow_d1_ms),
            stripe,
        };
        self.push(&record.request_id, record.ts.timestamp_millis(), kinds);
    }

    /// Note a request id an isolate kept in a partial bucket, by the same rules.
    pub fn note_sample(&mut self, s: &Sample, slow_request_ms: f64, slow_d1_ms: f64) {
        let kinds = Kinds {
            server_5xx: s.status >= 500,
            slow_request: s.ms > slow_request_ms,
            slow_d1: s.d1_ms.is_some_and(|ms| ms > slow_d1_ms),
            stripe: s.stripe,
        };
        self.push(&s.request_id, s.ts_ms, kinds);
    }

    fn push(&mut self, request_id: &str, ts_ms: i64, kinds: Kinds) {
        if !(kinds.server_5xx || kinds.slow_request || kinds.slow_d1 || kinds.stripe) {
            return;
        }
        let id: String = request_id.chars().take(MAX_REQUEST_ID_CHARS).collect();
        let push = |q: &mut VecDeque<RecentId>| {
            if q.iter().any(|r| r.request_id == id) {
                return;
            }
            if q.len() >= RECENT_IDS_PER_KIND {
                q.pop_front();
            }
            q.push_back(RecentId { ts_ms, request_id: id.clone() });
        };
        if kinds.server_5xx {
            push(&mut self.server_5xx);
        }
        if kinds.slow_request {
            push(&mut self.slow_request);
        }
        if kinds.slow_d1 {
            push(&mut self.slow_d1);
        }
        if kinds.stripe {
            push(&mut self.stripe_signature);
        }
    }

    /// Ids of the kind that `rule` alerts on, at or after `since_ms`, newest last.
    pub fn for_rule(&self, rule: RuleId, since_ms: i64) -> Vec<String> {
        let q = match rule {
            RuleId::Http5xxRate => &self.server_5xx,
            RuleId::RequestP95 => &self.slow_request,
            RuleId::D1P95 => &self.slow_d1,
            RuleId::StripeSignatureFailures => &self.stripe_signature,
        };
        q.iter().filter(|r| r.ts_ms >= since_ms).map(|r| r.request_id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    const T0: i64 = 1_778_400_000_000;

    fn record(ts_ms: i64, status: u16, ms: f64) -> RequestRecord {
        let ts = DateTime::<Utc>::from_timestamp_millis(ts_ms).expect("in range");
        let mut r = RequestRecord::start(ts, format!("req_{ts_ms}"), "GET", "/", "v1");
        r.status = status;
        r.ms = ms;
        r
    }

    #[test]
    fn recent_ids_keep_the_last_five_per_kind() {
        let mut ids = RecentIds::default();
        for i in 0..7 {
            ids.note(&record(T0 + i, 500, 1.0), 200.0, 200.0);
        }
        ids.note(&record(T0 + 100, 200, 250.0), 200.0, 200.0);
        let got = ids.for_rule(RuleId::Http5xxRate, T0);
        assert_eq!(got, (2..7).map(|i| format!("req_{}", T0 + i)).collect::<Vec<_>>());
        assert_eq!(ids.for_rule(RuleId::RequestP95, T0), vec![format!("req_{}", T0 + 100)]);
        assert_eq!(
            ids.for_rule(RuleId::Http5xxRate, T0 + 5),
            vec![format!("req_{}", T0 + 5), format!("req_{}", T0 + 6)]
        );
        assert!(ids.for_rule(RuleId::D1P95, 0).is_empty());
    }
}
