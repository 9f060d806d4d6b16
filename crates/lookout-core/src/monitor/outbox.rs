//! The outbox, pure and serializable: deliveries waiting to be sent, keyed by
//! (dedup key, event, channel) so one notification is never queued twice, with exponential
//! backoff, a dead-letter list and counters. Payloads are built in notify.rs; the HTTP calls
//! are the edge's.
//!
//! Use: `claim_due(now)` hands out due entries and leases them, the edge sends each, then
//! calls `mark_sent(id)` or `mark_failed(id, now, error)`. A claimed entry that is never
//! reported (the isolate died) becomes due again when its lease ends and counts as an attempt.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::notify::{EventKind, Notification};
use crate::redact::scrub_text;

/// How long a claimed delivery is hidden from other claims.
pub const LEASE_MS: i64 = 60_000;
/// Entries the outbox holds before refusing new ones.
pub const MAX_BACKLOG: usize = 500;
/// Dead letters kept for the status endpoint (all are counted).
pub const MAX_DEAD_LETTERS: usize = 20;
/// Delivery keys remembered after sending, to refuse re-enqueueing the same event.
const MAX_REMEMBERED_KEYS: usize = 256;
/// Longest error summary kept per entry.
const MAX_ERROR_CHARS: usize = 200;

/// Where a notification is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// `ALERT_WEBHOOK_URL`, body from `webhook_payload`.
    Webhook,
    /// PagerDuty Events API v2, body from `pagerduty_payload`.
    PagerDuty,
    /// The `send_email` binding, message from `email_message`.
    Email,
    /// The shop owner's email (`core::owner`): only the alerts that concern the owner, to the
    /// shop's owner contact; never routed by severity, never silenced.
    Owner,
}

/// Identity of one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeliveryKey {
    pub dedup_key: String,
    pub event: EventKind,
    pub channel: Channel,
}

/// Retry timing: `initial_backoff_ms` doubling per failed attempt, capped at
/// `max_backoff_ms`; dead-lettered after `max_attempts` attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub initial_backoff_ms: i64,
    pub max_backoff_ms: i64,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 2 s, 4 s, 8 s ... capped at 5 min; 10 attempts (about 17 minutes in all).
    fn default() -> Self {
        RetryPolicy { initial_backoff_ms: 2_000, max_backoff_ms: 300_000, max_attempts: 10 }
    }
}

impl RetryPolicy {
    /// Wait after the `attempts`-th failed attempt (1-based).
    pub fn backoff_ms(&self, attempts: u32) -> i64 {
        let doublings = attempts.saturating_sub(1).min(30);
        self.initial_backoff_ms.saturating_mul(1i64 << doublings).min(self.max_backoff_ms)
    }
}

/// One queued delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub key: DeliveryKey,
    pub notification: Notification,
    /// Attempts started (claimed) so far.
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub created_at_ms: i64,
    /// Scrubbed summary of the last failure.
    pub last_error: Option<String>,
    /// Claimed and not yet reported back.
    pub leased: bool,
}

/// A delivery given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub key: DeliveryKey,
    pub attempts: u32,
    pub dead_at_ms: i64,
    pub last_error: Option<String>,
}

/// Why `enqueue` refused an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueError {
    /// The same (dedup key, event, channel) is queued or was already delivered.
    Duplicate,
    /// [`MAX_BACKLOG`] entries are waiting; the entry was dropped and counted.
    Full,
}

/// Why `mark_sent` / `mark_failed` refused an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkError {
    /// No queued entry has this id (already marked, or dead-lettered).
    UnknownId(u64),
}

impl std::fmt::Display for EnqueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Duplicate => write!(f, "delivery already queued or sent"),
            Self::Full => write!(f, "outbox full ({MAX_BACKLOG} entries)"),
        }
    }
}

impl std::fmt::Display for MarkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownId(id) => write!(f, "no outbox entry {id}"),
        }
    }
}

impl std::error::Error for EnqueueError {}
impl std::error::Error for MarkError {}

/// What `mark_failed` did with the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again for `next_attempt_at_ms`.
    Retry { next_attempt_at_ms: i64 },
    /// Out of attempts: moved to the dead letters.
    DeadLettered,
}

/// The queue itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    pub policy: RetryPolicy,
    next_id: u64,
    entries: Vec<OutboxEntry>,
    remembered: VecDeque<DeliveryKey>,
    dead_letters: VecDeque<DeadLetter>,
    pub sent_total: u64,
    pub dead_lettered_total: u64,
    pub dropped_full_total: u64,
}

impl Outbox {
    /// Queue `notification` for `channel`, due at once.
    pub fn enqueue(&mut self, notification: Notification, channel: Channel, now_ms: i64) -> Result<u64, EnqueueError> {
        let key = DeliveryKey { dedup_key: notification.dedup_key.clone(), event: notification.event, channel };
        if self.remembered.contains(&key) || self.entries.iter().any(|e| e.key == key) {
            return Err(EnqueueError::Duplicate);
        }
        if self.entries.len() >= MAX_BACKLOG {
            self.dropped_full_total += 1;
            return Err(EnqueueError::Full);
        }
        self.next_id += 1;
        self.remember(key.clone());
        self.entries.push(OutboxEntry {
            id: self.next_id,
            key,
            notification,
            attempts: 0,
            next_attempt_at_ms: now_ms,
            created_at_ms: now_ms,
            last_error: None,
            leased: false,
        });
        Ok(self.next_id)
    }

    fn remember(&mut self, key: DeliveryKey) {
        if self.remembered.len() >= MAX_REMEMBERED_KEYS {
            self.remembered.pop_front();
        }
        self.remembered.push_back(key);
    }

    /// Entries due at `now_ms` (read only; see [`claim_due`](Self::claim_due)).
    pub fn due(&self, now_ms: i64) -> Vec<&OutboxEntry> {
        self.entries.iter().filter(|e| e.next_attempt_at_ms <= now_ms).collect()
    }

    /// Entries due at `now_ms`, each counted as an attempt and leased for [`LEASE_MS`] so a
    /// second claim does not send it again meanwhile.
    pub fn claim_due(&mut self, now_ms: i64) -> Vec<OutboxEntry> {
        let mut claimed = Vec::new();
        for e in self.entries.iter_mut().filter(|e| e.next_attempt_at_ms <= now_ms) {
            e.attempts += 1;
            e.leased = true;
            e.next_attempt_at_ms = now_ms.saturating_add(LEASE_MS);
            claimed.push(e.clone());
        }
        // A lease that ran out on an entry already at its attempt limit ends it.
        let limit = self.policy.max_attempts;
        let expired: Vec<u64> = claimed.iter().filter(|e| e.attempts > limit).map(|e| e.id).collect();
        for id in &expired {
            self.dead_letter(*id, now_ms);
        }
        claimed.retain(|e| !expired.contains(&e.id));
        claimed
    }

    /// The delivery `id` succeeded: drop it.
    pub fn mark_sent(&mut self, id: u64) -> Result<(), MarkError> {
        let i = self.position(id)?;
        self.entries.remove(i);
        self.sent_total += 1;
        Ok(())
    }

    /// The delivery `id` failed at `now_ms`: schedule a retry, or dead-letter it when out of
    /// attempts. `error_summary` is scrubbed and cut before it is kept.
    pub fn mark_failed(&mut self, id: u64, now_ms: i64, error_summary: &str) -> Result<FailOutcome, MarkError> {
        let i = self.position(id)?;
        let policy = self.policy;
        let e = &mut self.entries[i];
        if !e.leased {
            // Sent after `due` without a claim: this report is the attempt.
            e.attempts += 1;
        }
        e.leased = false;
        e.last_error = Some(scrub_text(error_summary).chars().take(MAX_ERROR_CHARS).collect());
        if e.attempts >= policy.max_attempts {
            self.dead_letter(id, now_ms);
            return Ok(FailOutcome::DeadLettered);
        }
        e.next_attempt_at_ms = now_ms.saturating_add(policy.backoff_ms(e.attempts));
        Ok(FailOutcome::Retry { next_attempt_at_ms: e.next_attempt_at_ms })
    }

    fn position(&self, id: u64) -> Result<usize, MarkError> {
        self.entries.iter().position(|e| e.id == id).ok_or(MarkError::UnknownId(id))
    }

    fn dead_letter(&mut self, id: u64, now_ms: i64) {
        if let Ok(i) = self.position(id) {
            let e = self.entries.remove(i);
            if self.dead_letters.len() >= MAX_DEAD_LETTERS {
                self.dead_letters.pop_front();
            }
            self.dead_letters.push_back(DeadLetter {
                key: e.key,
                attempts: e.attempts,
                dead_at_ms: now_ms,
                last_error: e.last_error,
            });
            self.dead_lettered_total += 1;
        }
    }

    /// Dead-letter every entry for a channel not in `channels` (its settings were removed);
    /// returns how many.
    pub fn drop_channels_except(&mut self, channels: &[Channel], now_ms: i64) -> usize {
        let gone: Vec<u64> = self.entries.iter().filter(|e| !channels.contains(&e.key.channel)).map(|e| e.id).collect();
        for &id in &gone {
            if let Ok(i) = self.position(id) {
                self.entries[i].last_error = Some("channel no longer configured".into());
            }
            self.dead_letter(id, now_ms);
        }
        gone.len()
    }

    /// When the earliest entry is due (for the alarm).
    pub fn next_attempt_at_ms(&self) -> Option<i64> {
        self.entries.iter().map(|e| e.next_attempt_at_ms).min()
    }

    /// Entries waiting (including leased ones).
    pub fn backlog(&self) -> &[OutboxEntry] {
        &self.entries
    }

    /// The most recent dead letters, oldest first.
    pub fn dead_letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.dead_letters.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alert::Alert;
    use crate::monitor::notify::{NotifyContext, NotifyReason};
    use crate::monitor::rules::DEFAULT_RULES;

    fn notification(seq: u64, event: EventKind) -> Notification {
        let mut a = Alert::new(DEFAULT_RULES[0].id);
        a.incident_seq = seq;
        let ctx =
            NotifyContext { shop: "swicked", build_version: None, recent_request_ids: &[], now_ms: 0, diagnosis: None };
        Notification::build(&a, &DEFAULT_RULES[0], NotifyReason::FirstFiring, event, ctx)
    }

    #[test]
    fn the_same_delivery_is_never_queued_twice() {
        let mut o = Outbox::default();
        let id = o.enqueue(notification(1, EventKind::Trigger), Channel::Webhook, 0).expect("new");
        assert_eq!(o.enqueue(notification(1, EventKind::Trigger), Channel::Webhook, 0), Err(EnqueueError::Duplicate));
        assert!(o.enqueue(notification(1, EventKind::Trigger), Channel::PagerDuty, 0).is_ok(), "other channel");
        assert!(o.enqueue(notification(1, EventKind::Resolve), Channel::Webhook, 0).is_ok(), "other event");
        o.mark_sent(id).expect("queued");
        assert_eq!(
            o.enqueue(notification(1, EventKind::Trigger), Channel::Webhook, 5),
            Err(EnqueueError::Duplicate),
            "still refused after delivery"
        );
        assert_eq!(o.mark_sent(id), Err(MarkError::UnknownId(id)));
        assert_eq!(o.sent_total, 1);
    }

    #[test]
    fn failures_back_off_exponentially_then_dead_letter() {
        let mut o = Outbox::default();
        let id = o.enqueue(notification(1, EventKind::Trigger), Channel::Webhook, 0).expect("new");
        let mut now = 0;
        let mut waits = Vec::new();
        loop {
            let claimed = o.claim_due(now);
            assert_eq!(claimed.len(), 1, "due at {now}");
            assert!(o.claim_due(now).is_empty(), "leased: not handed out twice");
            match o.mark_failed(id, now, "HTTP 503 from https://hooks.example/x?token=abc123").expect("queued") {
                FailOutcome::Retry { next_attempt_at_ms } => {
                    waits.push(next_attempt_at_ms - now);
                    assert!(o.claim_due(next_attempt_at_ms - 1).is_empty(), "not before its time");
                    now = next_attempt_at_ms;
                }
                FailOutcome::DeadLettered => break,
            }
        }
        assert_eq!(waits, vec![2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000]);
        assert_eq!(o.dead_lettered_total, 1);
        let dead: Vec<_> = o.dead_letters().collect();
        assert_eq!(dead[0].attempts, 10);
        let err = dead[0].last_error.as_deref().unwrap_or_default();
        assert!(err.starts_with("HTTP 503") && !err.contains("abc123"), "scrubbed: {err}");
        assert!(o.backlog().is_empty());
        assert_eq!(o.next_attempt_at_ms(), None);
    }

    #[test]
    fn an_unreported_claim_is_retried_after_its_lease() {
        let mut o = Outbox::default();
        o.enqueue(notification(1, EventKind::Trigger), Channel::Email, 0).expect("new");
        assert_eq!(o.claim_due(0).len(), 1);
        assert_eq!(o.next_attempt_at_ms(), Some(LEASE_MS));
        let again = o.claim_due(LEASE_MS);
        assert_eq!((again.len(), again[0].attempts), (1, 2));
    }

    #[test]
    fn failures_reported_without_claims_still_count() {
        let mut o = Outbox { policy: RetryPolicy { max_attempts: 3, ..RetryPolicy::default() }, ..Outbox::default() };
        let id = o.enqueue(notification(1, EventKind::Trigger), Channel::Webhook, 0).expect("new");
        assert_eq!(o.due(0).len(), 1);
        assert_eq!(o.mark_failed(id, 0, "x"), Ok(FailOutcome::Retry { next_attempt_at_ms: 2_000 }));
        assert_eq!(o.mark_failed(id, 2_000, "x"), Ok(FailOutcome::Retry { next_attempt_at_ms: 6_000 }));
        assert_eq!(o.mark_failed(id, 6_000, "x"), Ok(FailOutcome::DeadLettered));
    }

    #[test]
    fn round_trips_through_json() {
        let mut o = Outbox::default();
        let id = o.enqueue(notification(3, EventKind::Repeat(2)), Channel::PagerDuty, 10).expect("new");
        o.claim_due(10);
        o.mark_failed(id, 10, "timeout").expect("queued");
        let back: Outbox = serde_json::from_str(&serde_json::to_string(&o).expect("ser")).expect("de");
        assert_eq!(back, o);
    }
}
