//! Notification decisions and payloads, pure: "notify, and why" (Alertmanager's
//! `needsUpdate`), the [`Notification`] a decision produces, and the bodies for each channel
//! (generic webhook JSON, PagerDuty Events API v2, email). Sending is the edge's job; queueing
//! and retries live in outbox.rs.
//!
//! Payloads carry the shop slug, rule, values, thresholds, times, the operator action, request
//! ids and the build version: no customer data, no secrets. The PagerDuty routing key appears
//! only in the PagerDuty envelope, where the API requires it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::alert::Alert;
use super::alert_diagnosis::AlertDiagnosis;
use super::rules::Rule;
use super::time::{rfc3339_ms, rfc3339_opt, s_to_ms};
use crate::alerting::{AlertState, Severity, Unit};

/// Why a notification goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyReason {
    /// The incident started firing.
    FirstFiring,
    /// Still firing `repeat_interval_s` after the last firing notification.
    RepeatInterval,
    /// The incident resolved.
    Resolved,
}

/// Which event of an incident a notification is (part of the outbox dedup key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Trigger,
    /// The n-th repeat (1, 2, ...).
    Repeat(u32),
    Resolve,
}

impl EventKind {
    /// `trigger`, `repeat-2`, `resolve`.
    pub fn label(self) -> String {
        match self {
            EventKind::Trigger => "trigger".into(),
            EventKind::Repeat(n) => format!("repeat-{n}"),
            EventKind::Resolve => "resolve".into(),
        }
    }
}

/// Does this alert need a notification now? `None` means "do not notify". Pure: the caller
/// records the decision with [`record_decision`] so a retried evaluation does not repeat it.
pub fn needs_update(alert: &Alert, repeat_interval_s: u32, now_ms: i64) -> Option<NotifyReason> {
    match alert.state {
        AlertState::Firing if alert.notified_firing_seq != alert.incident_seq => Some(NotifyReason::FirstFiring),
        AlertState::Firing => {
            let due = alert.last_sent_at_ms.is_none_or(|t| now_ms.saturating_sub(t) >= s_to_ms(repeat_interval_s));
            due.then_some(NotifyReason::RepeatInterval)
        }
        AlertState::Resolved
            if alert.notified_firing_seq == alert.incident_seq && alert.notified_resolved_seq != alert.incident_seq =>
        {
            Some(NotifyReason::Resolved)
        }
        _ => None,
    }
}

/// Record that `reason` was decided at `now_ms`; returns the event it is.
pub fn record_decision(alert: &mut Alert, reason: NotifyReason, now_ms: i64) -> EventKind {
    match reason {
        NotifyReason::FirstFiring => {
            alert.notified_firing_seq = alert.incident_seq;
            alert.repeats_sent = 0;
            alert.last_sent_at_ms = Some(now_ms);
            EventKind::Trigger
        }
        NotifyReason::RepeatInterval => {
            alert.repeats_sent += 1;
            alert.last_sent_at_ms = Some(now_ms);
            EventKind::Repeat(alert.repeats_sent)
        }
        NotifyReason::Resolved => {
            alert.notified_resolved_seq = alert.incident_seq;
            EventKind::Resolve
        }
    }
}

/// Everything a channel needs to say about one alert event: of a rule of the table (built by
/// [`Notification::build`]) or of a cron/business alert (built in `external.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub reason: NotifyReason,
    pub event: EventKind,
    pub shop: String,
    /// The rule's name: a `RuleId` name (`http_5xx_rate`) or a cron/business rule
    /// (`cron_missed`, `audit_chain_broken`, ...).
    pub rule: String,
    pub severity: Severity,
    pub state: AlertState,
    /// The value at the decision; `None` when there was no data.
    pub value: Option<f64>,
    pub threshold: f64,
    pub clear_threshold: f64,
    pub unit: Unit,
    /// The rule's window; 0 for cron and business alerts (they have none).
    pub window_s: u32,
    /// When the incident started firing (RFC 3339).
    pub since: String,
    /// When the breach was first seen (RFC 3339).
    pub active_at: Option<String>,
    pub resolved_at: Option<String>,
    /// When this notification was decided (RFC 3339).
    pub notified_at: String,
    pub description: String,
    pub action: String,
    pub recent_request_ids: Vec<String>,
    pub build_version: Option<String>,
    pub dedup_key: String,
    /// The incident's sequence number per rule; 0 for cron and business alerts (their dedup
    /// key carries the incident's start instead).
    pub incident_seq: u64,
    pub summary: String,
    /// The watched cron a cron alert is about (`None` for everything else).
    #[serde(default)]
    pub cron: Option<String>,
    /// The run (or missed slot) a cron alert is about.
    #[serde(default)]
    pub run_id: Option<String>,
    /// A fleet alert (`shop` is `*`): the shops firing its rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shops: Vec<String>,
    /// The owner's email, for a delivery on `Channel::Owner` only (rendered when the alert was
    /// decided, from the shop's own figures; see `core::owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<EmailMessage>,
    /// Why, from the rule's window (`core::monitor::alert_diagnosis`); rule alerts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<AlertDiagnosis>,
}

/// What goes into a notification besides the alert and its rule.
#[derive(Debug, Clone, Copy)]
pub struct NotifyContext<'a> {
    pub shop: &'a str,
    pub build_version: Option<&'a str>,
    pub recent_request_ids: &'a [String],
    pub now_ms: i64,
    /// The diagnosis of the rule's window, when the notification fires.
    pub diagnosis: Option<&'a AlertDiagnosis>,
}

impl Notification {
    /// Build the notification for a decided `reason`/`event`.
    pub fn build(alert: &Alert, rule: &Rule, reason: NotifyReason, event: EventKind, ctx: NotifyContext) -> Self {
        let mut n = Notification {
            reason,
            event,
            shop: ctx.shop.to_string(),
            rule: rule.id.name().to_string(),
            severity: rule.severity,
            state: alert.state,
            value: alert.value,
            threshold: rule.threshold,
            clear_threshold: rule.clear_threshold,
            unit: rule.id.unit(),
            window_s: rule.window_s,
            since: rfc3339_ms(alert.fired_at_ms.unwrap_or(ctx.now_ms)),
            active_at: rfc3339_opt(alert.active_at_ms),
            resolved_at: if alert.state == AlertState::Resolved { rfc3339_opt(alert.resolved_at_ms) } else { None },
            notified_at: rfc3339_ms(ctx.now_ms),
            description: rule.description.to_string(),
            action: rule.action.to_string(),
            recent_request_ids: ctx.recent_request_ids.to_vec(),
            build_version: ctx.build_version.map(str::to_string),
            dedup_key: alert.dedup_key(ctx.shop),
            incident_seq: alert.incident_seq,
            summary: String::new(),
            cron: None,
            run_id: None,
            shops: Vec::new(),
            owner_email: None,
            diagnosis: if alert.state == AlertState::Resolved { None } else { ctx.diagnosis.cloned() },
        };
        n.summary = n.summary_line(rule.id.fires_at_equal());
        n
    }

    /// `dedup_key` plus the event: unique per delivery (receivers can dedup on it).
    pub fn event_id(&self) -> String {
        format!("{}:{}", self.dedup_key, self.event.label())
    }

    /// One line for humans, e.g. `[swicked] FIRING http_5xx_rate: 3.20% > 1.00% over 300 s`.
    fn summary_line(&self, fires_at_equal: bool) -> String {
        let value = self.value.map_or_else(|| "no data".to_string(), |v| self.unit.format(v));
        match self.state {
            AlertState::Resolved => format!(
                "[{}] RESOLVED {}: {value} (fired {} at > {}, clears below {})",
                self.shop,
                self.rule,
                self.since,
                self.unit.format(self.threshold),
                self.unit.format(self.clear_threshold)
            ),
            _ => {
                let op = if fires_at_equal { ">=" } else { ">" };
                let hint = self.diagnosis.as_ref().and_then(AlertDiagnosis::hint).map(|h| format!(" ({h})"));
                format!(
                    "[{}] FIRING {}: {value} {op} {} over {} s{}",
                    self.shop,
                    self.rule,
                    self.unit.format(self.threshold),
                    self.window_s,
                    hint.unwrap_or_default()
                )
            }
        }
    }
}

/// The generic webhook body (`ALERT_WEBHOOK_URL`); a fleet alert also carries `shops`.
pub fn webhook_payload(n: &Notification) -> Value {
    let mut v = json!({
        "version": 1,
        "event_id": n.event_id(),
        "event": n.event.label(),
        "reason": n.reason,
        "dedup_key": n.dedup_key,
        "shop": n.shop,
        "rule": n.rule,
        "severity": n.severity,
        "state": n.state,
        "value": n.value,
        "threshold": n.threshold,
        "clear_threshold": n.clear_threshold,
        "unit": n.unit,
        "window_s": n.window_s,
        "since": n.since,
        "active_at": n.active_at,
        "resolved_at": n.resolved_at,
        "notified_at": n.notified_at,
        "description": n.description,
        "action": n.action,
        "recent_request_ids": n.recent_request_ids,
        "diagnosis": n.diagnosis,
        "build_version": n.build_version,
        "summary": n.summary,
        "cron": n.cron,
        "run_id": n.run_id,
    });
    if !n.shops.is_empty() {
        v["shops"] = json!(n.shops);
    }
    v
}

/// PagerDuty's summary limit.
const PAGERDUTY_SUMMARY_MAX_CHARS: usize = 1024;

/// A PagerDuty Events API v2 event: `trigger` for firing (first and repeats, which PagerDuty
/// folds into the open incident by `dedup_key`), `resolve` when resolved.
pub fn pagerduty_payload(n: &Notification, routing_key: &str) -> Value {
    if n.state == AlertState::Resolved {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": n.dedup_key});
    }
    let mut v = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.dedup_key,
        "client": "lookout",
        "payload": {
            "summary": n.summary.chars().take(PAGERDUTY_SUMMARY_MAX_CHARS).collect::<String>(),
            "source": format!("lookout/{}", n.shop),
            "severity": n.severity.pagerduty(),
            "timestamp": n.notified_at,
            "component": n.rule,
            "group": n.shop,
            "class": n.rule,
            "custom_details": {
                "value": n.value,
                "threshold": n.threshold,
                "unit": n.unit,
                "window_s": n.window_s,
                "since": n.since,
                "reason": n.reason,
                "action": n.action,
                "recent_request_ids": n.recent_request_ids,
                "diagnosis": n.diagnosis,
                "build_version": n.build_version,
                "cron": n.cron,
                "run_id": n.run_id,
            },
        },
    });
    if !n.shops.is_empty() {
        v["payload"]["custom_details"]["shops"] = json!(n.shops);
    }
    v
}

/// An email's subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailMessage {
    pub subject: String,
    pub text: String,
}

/// The email for a notification.
pub fn email_message(n: &Notification) -> EmailMessage {
    let tag = match (n.state, n.severity) {
        (AlertState::Resolved, _) => "RESOLVED",
        (_, Severity::Critical) => "CRITICAL",
        (_, Severity::High) => "HIGH",
        (_, Severity::Warning) => "WARNING",
    };
    let subject = format!("[lookout][{tag}] {}: {}", n.shop, n.rule);
    let value = n.value.map_or_else(|| "no data".to_string(), |v| n.unit.format(v));
    let ids = if n.recent_request_ids.is_empty() { "(none)".to_string() } else { n.recent_request_ids.join(", ") };
    let threshold = if n.window_s > 0 {
        format!(
            "{} (clears below {}) over {} s",
            n.unit.format(n.threshold),
            n.unit.format(n.clear_threshold),
            n.window_s
        )
    } else {
        n.unit.format(n.threshold)
    };
    let mut text = format!(
        "{}\n\nShop: {}\nRule: {} ({})\nState: {:?}\nValue: {value}\nThreshold: {threshold}\nSince: {}\n",
        n.summary, n.shop, n.rule, n.description, n.state, n.since,
    );
    if let Some(c) = &n.cron {
        text.push_str(&format!("Cron: {c}\n"));
    }
    if let Some(r) = &n.run_id {
        text.push_str(&format!("Run: {r}\n"));
    }
    if !n.shops.is_empty() {
        text.push_str(&format!("Shops: {}\n", n.shops.join(", ")));
    }
    if let Some(d) = &n.diagnosis {
        text.push_str(&d.email_block());
    }
    if let Some(r) = &n.resolved_at {
        text.push_str(&format!("Resolved: {r}\n"));
    }
    text.push_str(&format!(
        "What to do: {}\nRecent request ids: {ids}\nBuild: {}\nDedup key: {}\n",
        n.action,
        n.build_version.as_deref().unwrap_or("unknown"),
        n.dedup_key
    ));
    EmailMessage { subject, text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::rules::{Observation, DEFAULT_RULES};

    fn firing_alert() -> (Alert, Rule) {
        let rule = Rule { for_s: 0, ..DEFAULT_RULES[0].clone() };
        let mut a = Alert::new(rule.id);
        a.step(&rule, Observation { value: Some(0.032), samples: 500 }, 1_778_400_000_000);
        (a, rule)
    }

    fn notification(a: &Alert, rule: &Rule, reason: NotifyReason, event: EventKind) -> Notification {
        diagnosed(a, rule, reason, event, None)
    }

    fn diagnosed(
        a: &Alert,
        rule: &Rule,
        reason: NotifyReason,
        event: EventKind,
        diagnosis: Option<&crate::monitor::alert_diagnosis::AlertDiagnosis>,
    ) -> Notification {
        let ids = vec!["req_a8h3k2".to_string()];
        let ctx = NotifyContext {
            shop: "swicked",
            build_version: Some("0.4.11+abc"),
            recent_request_ids: &ids,
            now_ms: 1_778_400_000_000,
            diagnosis,
        };
        Notification::build(a, rule, reason, event, ctx)
    }

    #[test]
    fn decides_first_firing_once_then_repeats_after_the_interval() {
        let (mut a, _) = firing_alert();
        let t = 1_778_400_000_000;
        assert_eq!(needs_update(&a, 3600, t), Some(NotifyReason::FirstFiring));
        assert_eq!(record_decision(&mut a, NotifyReason::FirstFiring, t), EventKind::Trigger);
        assert_eq!(needs_update(&a, 3600, t), None, "decided: a retry must not repeat it");
        assert_eq!(needs_update(&a, 3600, t + 3_599_999), None);
        assert_eq!(needs_update(&a, 3600, t + 3_600_000), Some(NotifyReason::RepeatInterval));
        assert_eq!(record_decision(&mut a, NotifyReason::RepeatInterval, t + 3_600_000), EventKind::Repeat(1));
        assert_eq!(needs_update(&a, 3600, t + 3_600_000), None);
    }

    #[test]
    fn resolve_is_decided_once_and_only_after_a_firing_notification() {
        let (mut a, rule) = firing_alert();
        let t = 1_778_400_000_000;
        let clear = Observation { value: Some(0.0), samples: 500 };
        let mut silent = a.clone();
        silent.step(&rule, clear, t + 60_000);
        silent.step(&rule, clear, t + 120_000);
        assert_eq!(silent.state, AlertState::Resolved);
        assert_eq!(needs_update(&silent, 3600, t + 120_000), None, "never announced, nothing to resolve");

        record_decision(&mut a, NotifyReason::FirstFiring, t);
        a.step(&rule, clear, t + 60_000);
        a.step(&rule, clear, t + 120_000);
        assert_eq!(needs_update(&a, 3600, t + 120_000), Some(NotifyReason::Resolved));
        record_decision(&mut a, NotifyReason::Resolved, t + 120_000);
        assert_eq!(needs_update(&a, 3600, t + 999_000_000), None);
    }

    #[test]
    fn firing_payloads_carry_context_and_no_secrets() {
        let (a, rule) = firing_alert();
        let n = notification(&a, &rule, NotifyReason::FirstFiring, EventKind::Trigger);
        assert_eq!(n.summary, "[swicked] FIRING http_5xx_rate: 3.20% > 1.00% over 300 s");
        let w = webhook_payload(&n);
        assert_eq!(w["dedup_key"], "swicked:http_5xx_rate:1");
        assert_eq!(w["event_id"], "swicked:http_5xx_rate:1:trigger");
        assert_eq!(w["action"], "Worker logs, identify error class, deploy fix");
        assert_eq!(w["recent_request_ids"], json!(["req_a8h3k2"]));
        assert_eq!(w["build_version"], "0.4.11+abc");
        assert_eq!(w["since"], "2026-05-10T08:00:00.000Z");
        assert_eq!(w["severity"], "critical");

        let p = pagerduty_payload(&n, "R0UTINGKEY");
        assert_eq!(p["event_action"], "trigger");
        assert_eq!(p["dedup_key"], "swicked:http_5xx_rate:1");
        assert_eq!(p["payload"]["severity"], "critical");
        assert_eq!(p["payload"]["source"], "lookout/swicked");
        assert_eq!(p["payload"]["custom_details"]["action"], n.action);
        let body = p["payload"].to_string();
        assert!(!body.contains("R0UTINGKEY"), "routing key only in the envelope");
        assert!(!w.to_string().contains("R0UTINGKEY"));

        let e = email_message(&n);
        assert_eq!(e.subject, "[lookout][CRITICAL] swicked: http_5xx_rate");
        assert!(e.text.contains("What to do: Worker logs, identify error class, deploy fix"));
        assert!(e.text.contains("req_a8h3k2"));
    }

    #[test]
    fn a_diagnosis_reaches_every_channel_of_the_trigger_and_not_the_resolve() {
        use crate::monitor::alert_diagnosis::{AlertDiagnosis, ClassFigures};
        let (a, rule) = firing_alert();
        let classes = [
            ClassFigures { class: "D1Error", count_5xx: 6, route: "/api/tickets/{id}", first_build: "0.4.11+abc" },
            ClassFigures { class: "UpstreamTimeout", count_5xx: 4, route: "/api/charge", first_build: "0.4.10+def" },
        ];
        let d = AlertDiagnosis::for_rule(rule.id, rule.window_s, 10, &classes, &[], &[]).unwrap();
        let n = diagnosed(&a, &rule, NotifyReason::FirstFiring, EventKind::Trigger, Some(&d));
        assert_eq!(n.summary, "[swicked] FIRING http_5xx_rate: 3.20% > 1.00% over 300 s (top: D1Error 60%)");
        let w = webhook_payload(&n);
        assert_eq!(w["diagnosis"]["error_classes"][1]["class"], "UpstreamTimeout");
        assert_eq!(w["diagnosis"]["error_classes"][1]["share"], 0.4);
        assert_eq!(w["diagnosis"]["error_classes"][0]["first_build"], "0.4.11+abc");
        assert_eq!(w["recent_request_ids"], json!(["req_a8h3k2"]), "kept beside the diagnosis");
        let p = pagerduty_payload(&n, "k");
        assert_eq!(p["payload"]["custom_details"]["diagnosis"], w["diagnosis"]);
        let e = email_message(&n);
        assert!(e.text.contains("Diagnosis (last 300 s):\n  D1Error: 6 5xx (60%)"), "{}", e.text);
        let mut resolved = a.clone();
        resolved.state = AlertState::Resolved;
        let r = diagnosed(&resolved, &rule, NotifyReason::Resolved, EventKind::Resolve, Some(&d));
        assert_eq!(webhook_payload(&r)["diagnosis"], Value::Null);
    }

    #[test]
    fn resolve_payloads() {
        let (mut a, rule) = firing_alert();
        record_decision(&mut a, NotifyReason::FirstFiring, 0);
        let rule = Rule { keep_firing_for_s: 0, ..rule };
        a.step(&rule, Observation { value: Some(0.001), samples: 500 }, 1_778_400_060_000);
        let n = notification(&a, &rule, NotifyReason::Resolved, EventKind::Resolve);
        assert_eq!(n.resolved_at.as_deref(), Some("2026-05-10T08:01:00.000Z"));
        assert!(n.summary.starts_with("[swicked] RESOLVED http_5xx_rate: 0.10%"), "{}", n.summary);
        assert_eq!(
            pagerduty_payload(&n, "k"),
            json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "swicked:http_5xx_rate:1"})
        );
        assert_eq!(webhook_payload(&n)["event"], "resolve");
        assert!(email_message(&n).subject.starts_with("[lookout][RESOLVED]"));
    }
}
