//! Sending alert notifications: the generic JSON webhook (`ALERT_WEBHOOK_URL`), PagerDuty
//! Events API v2 (`PAGERDUTY_ROUTING_KEY`, `PAGERDUTY_EVENTS_URL`), and email through the
//! `ALERT_MAILER` send_email binding (`ALERT_EMAIL_FROM`, `ALERT_EMAIL_TO`; `ALERT_MAILER_BINDING`
//! names another binding); the shop owner's email through the same binding, from
//! `ALERT_EMAIL_FROM` to the shop's owner contact; and the dead-man's switch ping
//! (`DEADMAN_URL`). Payloads are built by `core::monitor::notify` and `core::owner`; routing
//! is decided in the core (each outbox entry names its channel); this file only performs the
//! calls, each with a timeout.

use std::time::Duration;

use worker::{Env, Headers, Method, Request, RequestInit};

use crate::http::{fetch_capped, FetchError};
use crate::settings;
use lookout_core::monitor::{email_message, pagerduty_payload, webhook_payload, Channel, OutboxEntry};
use lookout_core::shop_config::OwnerContact;

/// Deadline of one send, the receiver's whole answer included.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The receiver's answer is read (so the deadline covers it) but only its status matters.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
pub const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// The `send_email` binding alert email goes through; the `ALERT_MAILER_BINDING` var names
/// another (the object is built by the runtime, so its binding names are vars, not code).
pub const DEFAULT_MAILER_BINDING: &str = "ALERT_MAILER";

/// Channels whose settings are present.
pub fn configured_channels(env: &Env) -> Vec<Channel> {
    let mut c = Vec::new();
    if settings::var(env, "ALERT_WEBHOOK_URL").is_some() {
        c.push(Channel::Webhook);
    }
    if settings::var(env, "PAGERDUTY_ROUTING_KEY").is_some() {
        c.push(Channel::PagerDuty);
    }
    if settings::var(env, "ALERT_EMAIL_TO").is_some() && settings::var(env, "ALERT_EMAIL_FROM").is_some() {
        c.push(Channel::Email);
    }
    c
}

/// Whether the owner's email can be sent: `ALERT_EMAIL_FROM` and the mailer binding.
pub fn owner_channel_available(env: &Env) -> bool {
    settings::var(env, "ALERT_EMAIL_FROM").is_some() && env.send_email(&mailer_binding(env)).is_ok()
}

fn mailer_binding(env: &Env) -> String {
    settings::var(env, "ALERT_MAILER_BINDING").unwrap_or_else(|| DEFAULT_MAILER_BINDING.into())
}

/// Send every entry; the outcome per outbox id (errors are short and hold no secrets, nor the
/// owner's address). `owner` is the shop's owner contact, for `Channel::Owner` entries.
pub async fn send_all(
    env: &Env,
    entries: Vec<OutboxEntry>,
    owner: Option<&OwnerContact>,
) -> Vec<(u64, Result<(), String>)> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let r = send_one(env, &e, owner).await;
        out.push((e.id, r));
    }
    out
}

async fn send_one(env: &Env, e: &OutboxEntry, owner: Option<&OwnerContact>) -> Result<(), String> {
    match e.key.channel {
        Channel::Webhook => {
            let url = settings::var(env, "ALERT_WEBHOOK_URL").ok_or("ALERT_WEBHOOK_URL is no longer set")?;
            post_json(&url, &webhook_payload(&e.notification).to_string(), "webhook").await
        }
        Channel::PagerDuty => {
            let key = settings::var(env, "PAGERDUTY_ROUTING_KEY").ok_or("PAGERDUTY_ROUTING_KEY is no longer set")?;
            let url = settings::var(env, "PAGERDUTY_EVENTS_URL").unwrap_or_else(|| DEFAULT_PAGERDUTY_URL.into());
            post_json(&url, &pagerduty_payload(&e.notification, &key).to_string(), "pagerduty").await
        }
        Channel::Email => {
            let from = settings::var(env, "ALERT_EMAIL_FROM").ok_or("ALERT_EMAIL_FROM is no longer set")?;
            let to = settings::var(env, "ALERT_EMAIL_TO").ok_or("ALERT_EMAIL_TO is no longer set")?;
            let m = email_message(&e.notification);
            send_email(env, &from, &to, &m.subject, &m.text).await
        }
        Channel::Owner => {
            // No owner any more (the operator removed the contact): nothing to send.
            let Some(owner) = owner else { return Ok(()) };
            let Some(m) = &e.notification.owner_email else { return Ok(()) };
            let from = settings::var(env, "ALERT_EMAIL_FROM").ok_or("ALERT_EMAIL_FROM is no longer set")?;
            send_email(env, &from, &owner.email, &m.subject, &m.text)
                .await
                .map_err(|_| "owner email send failed".to_string())
        }
    }
}

async fn send_email(env: &Env, from: &str, to: &str, subject: &str, text: &str) -> Result<(), String> {
    let binding = mailer_binding(env);
    let mailer = env.send_email(&binding).map_err(|_| format!("no {binding} send_email binding"))?;
    let builder = worker::SendEmailBuilder::builder(from, to, subject).text(text).build();
    mailer.send_with_builder(&builder).await.map(|_| ()).map_err(|e| format!("email send failed: {e:?}"))
}

/// The dead-man's switch ping: `POST DEADMAN_URL` with the JSON body (Healthchecks.io and
/// its peers take a POST with a body as a ping); 2xx is success.
pub async fn ping(url: &str, body: &serde_json::Value) -> Result<(), String> {
    post_json(url, &body.to_string(), "deadman").await
}

/// POST a JSON body; 2xx is success. The URL is not echoed in errors (it may hold a token).
async fn post_json(url: &str, body: &str, what: &str) -> Result<(), String> {
    let headers = Headers::new();
    headers.set("content-type", "application/json").map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    let req = Request::new_with_init(url, &init).map_err(|_| format!("{what}: invalid URL"))?;
    let status = match fetch_capped(req, SEND_TIMEOUT, MAX_ANSWER_BYTES).await {
        Ok(answer) => answer.status,
        // Delivered; only the receiver's long answer was left unread.
        Err(FetchError::TooLarge { status }) => status,
        Err(FetchError::Network(e)) => {
            return Err(format!("{what} unreachable: {}", lookout_core::redact::scrub_text(&e)))
        }
        Err(FetchError::Timeout) => return Err(format!("{what} timed out after {} s", SEND_TIMEOUT.as_secs())),
    };
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("{what} answered {status}"))
    }
}
