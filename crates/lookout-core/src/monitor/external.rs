//! Notifications for alerts decided outside the rule table: the cron and business alerts of
//! `core::cron` (`cron_missed`, `cron_stuck`, `audit_chain_broken`, `twilio_cost_projection`,
//! `ai_cost_projection`). Their state machines live in `core::cron`; here a
//! [`CronAlertEvent`] becomes a [`Notification`] so it travels through the same outbox,
//! channels, retries and dedup as the rule alerts. No decisions here.
//!
//! Dedup key: `{shop}:{rule}:{cron}:{since_ms}` (`{shop}:{rule}:{since_ms}` for shop-wide
//! rules). `since_ms` is when the incident began and is the same on its resolve event, so
//! trigger and resolve share the key and a later incident gets a new one.

use super::notify::{EventKind, Notification, NotifyReason};
use super::time::rfc3339_ms;
use crate::alerting::AlertState;
use crate::cron::{self, CronAlertEvent};

/// The dedup key of a cron/business incident (see the module doc).
pub fn cron_dedup_key(shop: &str, ev: &CronAlertEvent) -> String {
    match &ev.cron {
        Some(c) => format!("{shop}:{}:{c}:{}", ev.rule, ev.since_ms),
        None => format!("{shop}:{}:{}", ev.rule, ev.since_ms),
    }
}

impl Notification {
    /// The notification of one cron/business alert transition, decided at `now_ms`.
    pub fn from_cron_event(shop: &str, build_version: Option<&str>, ev: &CronAlertEvent, now_ms: i64) -> Notification {
        let resolved = ev.state == AlertState::Resolved;
        let (reason, event, state) = if resolved {
            (NotifyReason::Resolved, EventKind::Resolve, AlertState::Resolved)
        } else {
            (NotifyReason::FirstFiring, EventKind::Trigger, AlertState::Firing)
        };
        let rule = cron::rule(&ev.rule);
        let what = match &ev.cron {
            Some(c) => format!("{} ({c})", ev.rule),
            None => ev.rule.clone(),
        };
        let summary = format!("[{shop}] {} {what}: {}", if resolved { "RESOLVED" } else { "FIRING" }, ev.summary);
        Notification {
            reason,
            event,
            shop: shop.to_string(),
            rule: ev.rule.clone(),
            severity: ev.severity,
            state,
            value: Some(ev.value),
            threshold: ev.threshold,
            clear_threshold: ev.threshold,
            unit: ev.unit,
            window_s: 0,
            since: rfc3339_ms(ev.since_ms),
            active_at: Some(rfc3339_ms(ev.since_ms)),
            resolved_at: resolved.then(|| rfc3339_ms(ev.at_ms)),
            notified_at: rfc3339_ms(now_ms),
            description: rule.description.to_string(),
            action: ev.action.clone(),
            recent_request_ids: Vec::new(),
            build_version: build_version.map(str::to_string),
            dedup_key: cron_dedup_key(shop, ev),
            incident_seq: 0,
            summary,
            cron: ev.cron.clone(),
            run_id: ev.run_id.clone(),
            shops: Vec::new(),
            owner_email: None,
            diagnosis: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron::{CronConfig, CronPersisted, WatchList};
    use crate::monitor::notify::{email_message, pagerduty_payload, webhook_payload};
    use crate::monitor::{Channel, Monitor, MonitorConfig};

    /// 2026-05-09T12:00:00Z
    const T0: i64 = 1_778_328_000_000;

    fn missed_then_resolved() -> (CronAlertEvent, CronAlertEvent) {
        let cfg = CronConfig {
            watch: WatchList::parse(r#"[{"cron":"daily_reconciliation","schedule":"0 7 * * *"}]"#).unwrap(),
            ..Default::default()
        };
        let mut p = CronPersisted::default();
        p.evaluate(&cfg, T0);
        let due = p.next_due_ms(&cfg).unwrap();
        let fired = p.evaluate(&cfg, due).events.remove(0);
        let run = crate::cron::CronCheckIn {
            cron: "daily_reconciliation".into(),
            run_id: "cron_d_2026_05_10_m080000".into(),
            scheduled_ms: due + 1_800_000,
            kind: crate::cron::CheckInKind::End { ok: true, ms: 5, results: Default::default(), errors_count: 0 },
            at_ms: due + 1_800_000,
        };
        let resolved = p.check_in(&cfg, &run, due + 1_800_000).events.remove(0);
        (fired, resolved)
    }

    fn monitor() -> Monitor {
        let config =
            MonitorConfig::from_alert_rules_json("", vec![Channel::Webhook, Channel::PagerDuty, Channel::Email])
                .unwrap();
        Monitor::new(config, "swicked")
    }

    #[test]
    fn a_cron_alert_goes_to_every_channel_once_with_a_stable_dedup_key() {
        let (fired, resolved) = missed_then_resolved();
        let mut m = monitor();
        let now = fired.at_ms;
        assert_eq!(m.notify_event(&fired, now).len(), 3, "one per channel");
        assert!(m.notify_event(&fired, now).is_empty(), "a replayed event is not queued twice");
        let due = m.claim_due_deliveries(now);
        assert_eq!(due.len(), 3);
        let n = &due[0].notification;
        assert_eq!(n.dedup_key, "swicked:cron_missed:daily_reconciliation:1778398200000");
        let w = webhook_payload(n);
        assert_eq!(w["rule"], "cron_missed");
        assert_eq!(w["event"], "trigger");
        assert_eq!(w["severity"], "critical");
        assert_eq!(w["state"], "firing");
        assert_eq!(w["cron"], "daily_reconciliation");
        assert_eq!(w["run_id"], "cron_d_2026_05_10");
        assert_eq!(w["unit"], "s");
        assert_eq!(w["since"], "2026-05-10T07:30:00.000Z");
        assert_eq!(w["action"], "Check Cloudflare cron status; run it by hand if needed");
        assert!(
            w["summary"]
                .as_str()
                .unwrap()
                .starts_with("[swicked] FIRING cron_missed (daily_reconciliation): daily_reconciliation did not run"),
            "{}",
            w["summary"]
        );
        let p = pagerduty_payload(n, "rk");
        assert_eq!(
            (p["event_action"].as_str(), p["payload"]["severity"].as_str()),
            (Some("trigger"), Some("critical"))
        );
        assert_eq!(p["dedup_key"], n.dedup_key);
        for e in &due {
            m.mark_delivery_sent(e.id).unwrap();
        }
        // The resolve shares the key and goes out once per channel too.
        let later = resolved.at_ms;
        assert_eq!(m.notify_event(&resolved, later).len(), 3);
        let due = m.claim_due_deliveries(later);
        let n = &due[0].notification;
        assert_eq!(n.dedup_key, "swicked:cron_missed:daily_reconciliation:1778398200000");
        assert_eq!(webhook_payload(n)["event"], "resolve");
        assert_eq!(n.resolved_at.as_deref(), Some("2026-05-10T08:00:00.000Z"));
        assert_eq!(pagerduty_payload(n, "rk")["event_action"], "resolve");
        assert!(email_message(n).subject.starts_with("[lookout][RESOLVED] swicked: cron_missed"));
    }

    #[test]
    fn high_severity_maps_to_pagerduty_error_and_the_email_says_high() {
        let mut g = crate::cron::AiGuard::default();
        let events = g.evaluate(9_000_000, Some(1_000_000), T0);
        let n = Notification::from_cron_event("swicked", Some("0.1.0+abc"), &events[0], T0);
        assert_eq!(n.dedup_key, format!("swicked:ai_cost_projection:{T0}"));
        assert_eq!(webhook_payload(&n)["severity"], "high");
        assert_eq!(webhook_payload(&n)["cron"], serde_json::Value::Null);
        assert_eq!(pagerduty_payload(&n, "rk")["payload"]["severity"], "error");
        let e = email_message(&n);
        assert_eq!(e.subject, "[lookout][HIGH] swicked: ai_cost_projection");
        assert!(e.text.contains("Threshold: $1.00\n"), "{}", e.text);
        assert!(e.text.contains("What to do: Pause AI; notify the shop owner"));
        // The notification survives the outbox's storage round trip.
        let back: Notification = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back, n);
    }
}
