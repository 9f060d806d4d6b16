//! The only way app code reaches Stripe, Twilio, the AI API (Claude) and Google Business
//! Profile: each call is timed, retried with backoff when it is idempotent (Stripe `POST`s
//! carry an `Idempotency-Key` derived from the request id, the same on every attempt), logged
//! as its own `external_call` line (templated endpoint, redacted error body, cost), counted
//! into the request's `external_calls` and `cost_micros`. Each attempt has one deadline for
//! the whole answer, body included ([`CALL_TIMEOUT`]), and reads at most
//! [`MAX_ANSWER_BYTES`]. What to log is decided in `lookout_core::deps`; this file performs
//! the HTTP.

use std::time::Duration;

use worker::{Headers, Method, Request, RequestInit};

use crate::clock::{mono_ms, wall_now};
use crate::http::{fetch_capped, FetchError};
use crate::instrument::{Failure, RequestCtx};
use crate::settings;
use lookout_core::deps::{
    idempotency_key, is_idempotent, CallFacts, CallOutcome, Cost, ExternalCallLine, RetryPolicy, Service,
};
use lookout_core::error::AppError;

/// Deadline of one attempt: headers and the whole body.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer body read from an upstream; a larger one fails the call (502
/// `UpstreamAnswerTooLarge`) and is not retried.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The configured base URL of a service (`*_API_BASE` vars let tests use local stand-ins).
pub fn base_url(ctx: &RequestCtx, service: Service) -> String {
    let (var, default) = match service {
        Service::Stripe => ("STRIPE_API_BASE", "https://api.stripe.com"),
        Service::Twilio => ("TWILIO_API_BASE", "https://api.twilio.com"),
        Service::Claude => ("ANTHROPIC_API_BASE", "https://api.anthropic.com"),
        Service::Gbp => ("GBP_API_BASE", "https://mybusiness.googleapis.com"),
    };
    settings::var(&ctx.env, var).unwrap_or_else(|| default.to_string()).trim_end_matches('/').to_string()
}

/// One logical call.
pub struct Call {
    pub service: Service,
    pub method: Method,
    /// Path and query after the service's base URL.
    pub path: String,
    /// Credentials and content type; never logged.
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
    /// For Stripe: names the call uniquely within the request; sends `Idempotency-Key`.
    pub idempotency_label: Option<String>,
}

/// The upstream's final answer.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Perform `call` with retries; `cost` prices a successful answer. A network failure after
/// the retries becomes 502 `UpstreamUnavailable`; an HTTP error answer is returned for the
/// app to judge.
pub async fn send(ctx: &RequestCtx, call: Call, cost: impl FnOnce(&Answer) -> Option<Cost>) -> Result<Answer, Failure> {
    let url = format!("{}{}", base_url(ctx, call.service), call.path);
    let key = call.idempotency_label.as_deref().map(|l| idempotency_key(&ctx.request_id, l));
    let method_name = call.method.to_string();
    let idempotent = is_idempotent(&method_name, key.is_some());
    let policy = RetryPolicy::default();
    let t0 = mono_ms();
    let mut attempt = 1u32;
    let (outcome, answer, content_type) = loop {
        let (outcome, answer, ct, retry_after) = match attempt_once(&call, &url, key.as_deref(), &ctx.request_id).await
        {
            Ok((status, body, ct, retry_after)) => {
                (CallOutcome::Status(status), Some(Answer { status, body }), ct, retry_after)
            }
            Err(FetchError::TooLarge { status }) => (CallOutcome::TooLarge(status), None, None, None),
            Err(FetchError::Timeout | FetchError::Network(_)) => (CallOutcome::NetworkError, None, None, None),
        };
        let next = policy
            .should_retry(idempotent, attempt, outcome)
            .and_then(|d| policy.honor_retry_after(d, retry_after.as_deref()));
        match next {
            Some(delay_ms) => {
                worker::Delay::from(Duration::from_millis(delay_ms)).await;
                attempt += 1;
            }
            None => break (outcome, answer, ct),
        }
    };
    let facts = CallFacts {
        target: call.service,
        method: &method_name,
        url: &url,
        ms: mono_ms() - t0,
        outcome,
        retries: attempt - 1,
    };
    let mut line = ExternalCallLine::new(wall_now(), &ctx.request_id, facts);
    let mut cost_micros = 0;
    if let Some(a) = &answer {
        line = line.with_error_body(&a.body, content_type.as_deref());
        if a.ok() {
            if let Some(c) = cost(a) {
                cost_micros = c.micros();
                line = line.with_cost(c);
            }
        }
    }
    worker::console_log!("{}", line.to_line());
    ctx.record_external(call.service, cost_micros);
    let service = lookout_core::redact::ContextValue::Label(call.service.as_str());
    answer.ok_or_else(|| match outcome {
        CallOutcome::TooLarge(_) => AppError::new(502, "UpstreamAnswerTooLarge", "an upstream answer exceeded 1 MiB")
            .with("service", service)
            .with("limit", lookout_core::redact::ContextValue::Int(MAX_ANSWER_BYTES as i64))
            .into(),
        _ => AppError::new(502, "UpstreamUnavailable", "an upstream service did not answer")
            .with("service", service)
            .into(),
    })
}

type Attempt = (u16, String, Option<String>, Option<String>);

async fn attempt_once(call: &Call, url: &str, key: Option<&str>, request_id: &str) -> Result<Attempt, FetchError> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| FetchError::Network(e.to_string()));
    for (k, v) in &call.headers {
        set(k, v)?;
    }
    set("x-request-id", request_id)?;
    if let Some(key) = key {
        set("idempotency-key", key)?;
    }
    let mut init = RequestInit::new();
    init.with_method(call.method.clone()).with_headers(headers);
    if let Some(b) = &call.body {
        init.with_body(Some(b.as_str().into()));
    }
    let req = Request::new_with_init(url, &init).map_err(|e| FetchError::Network(e.to_string()))?;
    let answer = fetch_capped(req, CALL_TIMEOUT, MAX_ANSWER_BYTES).await?;
    let ct = answer.headers.get("content-type").ok().flatten();
    let retry_after = answer.headers.get("retry-after").ok().flatten();
    let body = String::from_utf8_lossy(&answer.body).into_owned();
    Ok((answer.status, body, ct, retry_after))
}

/// `application/x-www-form-urlencoded` body from pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}
