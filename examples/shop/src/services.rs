//! Sample-app routes that use the dependency wrappers: charging a ticket (Stripe), texting a
//! customer (Twilio), an AI summary (Claude), ticket photos (R2), and a deliberately N+1
//! report. A stand-in for the real app, showing how app code reaches D1, R2 and external APIs.

use std::rc::Rc;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde::Deserialize;
use worker::{Method, Response};

use lookout::db::{int, Db};
use lookout::external::{self, form, Answer, Call};
use lookout::r2::Files;
use lookout::settings;
use lookout::{AppResult, Failure, RequestCtx};
use lookout_core::deps::{ai_cost, sms_segments, twilio_sms_cost, AiPrice, Service};
use lookout_core::error::AppError;
use lookout_core::redact::ContextValue;

fn secret(ctx: &RequestCtx, name: &'static str) -> Result<String, Failure> {
    settings::var(&ctx.env, name).ok_or_else(|| {
        AppError::new(500, "ConfigError", "a service credential is not configured")
            .with("field", ContextValue::Label(name))
            .into()
    })
}

fn var_u64(ctx: &RequestCtx, name: &str, default: u64) -> u64 {
    settings::var(&ctx.env, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn upstream_failed(service: Service, a: &Answer) -> Failure {
    AppError::new(502, "UpstreamError", "an upstream service refused the call")
        .with("service", ContextValue::Label(service.as_str()))
        .with("status", ContextValue::Int(a.status as i64))
        .into()
}

async fn ticket_exists(db: &Db, ctx: &RequestCtx, id: i64) -> Result<(), Failure> {
    let row: Option<serde_json::Value> =
        db.first("SELECT id FROM tickets WHERE id = ? AND shop = ?", &[int(id), ctx.shop.as_str().into()]).await?;
    row.map(|_| ()).ok_or_else(|| AppError::not_found("no such ticket").with("ticket_id", ContextValue::Int(id)).into())
}

#[derive(Deserialize)]
pub struct Charge {
    pub amount_cents: i64,
}

/// `POST /api/tickets/{id}/charge`: a Stripe PaymentIntent, then the transaction in D1.
pub async fn charge(db: &Db, ctx: &Rc<RequestCtx>, id: i64, body: Charge) -> AppResult {
    if !(50..=10_000_000).contains(&body.amount_cents) {
        return Err(AppError::new(422, "InvalidAmount", "amount_cents must be 50 to 10,000,000").into());
    }
    ticket_exists(db, ctx, id).await?;
    let key = secret(ctx, "STRIPE_SECRET_KEY")?;
    let amount = body.amount_cents.to_string();
    let ticket = id.to_string();
    let call = Call {
        service: Service::Stripe,
        method: Method::Post,
        path: "/v1/payment_intents".into(),
        headers: vec![
            ("authorization", format!("Bearer {key}")),
            ("content-type", "application/x-www-form-urlencoded".into()),
        ],
        body: Some(form(&[("amount", &amount), ("currency", "usd"), ("metadata[ticket_id]", &ticket)])),
        idempotency_label: Some(format!("charge:ticket_{id}")),
    };
    let answer = external::send(ctx, call, |_| None).await?;
    if !answer.ok() {
        return Err(upstream_failed(Service::Stripe, &answer));
    }
    db.run("INSERT INTO transactions (ticket_id, amount_cents) VALUES (?, ?)", &[int(id), int(body.amount_cents)])
        .await?;
    Ok(Response::from_json(&serde_json::json!({"charged": body.amount_cents, "ticket_id": id}))?.with_status(201))
}

#[derive(Deserialize)]
pub struct Sms {
    pub message: String,
}

/// `POST /api/tickets/{id}/sms`: text the ticket's customer through Twilio (never logged).
pub async fn sms(db: &Db, ctx: &Rc<RequestCtx>, id: i64, body: Sms) -> AppResult {
    if body.message.trim().is_empty() || body.message.chars().count() > 1600 {
        return Err(AppError::new(422, "InvalidMessage", "message must be 1-1600 characters").into());
    }
    #[derive(Deserialize)]
    struct To {
        phone: Option<String>,
    }
    let to: Option<To> = db
        .first(
            "SELECT c.phone FROM tickets t JOIN customers c ON c.id = t.customer_id WHERE t.id = ? AND t.shop = ?",
            &[int(id), ctx.shop.as_str().into()],
        )
        .await?;
    let phone = to
        .ok_or_else(|| AppError::not_found("no such ticket").with("ticket_id", ContextValue::Int(id)))?
        .phone
        .ok_or(AppError::new(422, "NoPhone", "the customer has no phone number"))?;
    let sid = secret(ctx, "TWILIO_ACCOUNT_SID")?;
    let token = secret(ctx, "TWILIO_AUTH_TOKEN")?;
    let from = secret(ctx, "TWILIO_FROM")?;
    let segments = sms_segments(&body.message).segments;
    let price = var_u64(ctx, "TWILIO_PRICE_PER_SEGMENT_MICROS", 7_900);
    let call = Call {
        service: Service::Twilio,
        method: Method::Post,
        path: format!("/2010-04-01/Accounts/{sid}/Messages.json"),
        headers: vec![
            ("authorization", format!("Basic {}", BASE64_STANDARD.encode(format!("{sid}:{token}")))),
            ("content-type", "application/x-www-form-urlencoded".into()),
        ],
        body: Some(form(&[("To", &phone), ("From", &from), ("Body", &body.message)])),
        idempotency_label: None,
    };
    let answer = external::send(ctx, call, |_| twilio_sms_cost(segments, price).ok()).await?;
    if !answer.ok() {
        return Err(upstream_failed(Service::Twilio, &answer));
    }
    Ok(Response::from_json(&serde_json::json!({"sent": true, "segments": segments}))?.with_status(201))
}

#[derive(Deserialize)]
pub struct Summarize {
    pub ticket_id: i64,
}

/// `POST /api/ai/summarize`: a Claude summary of a ticket's lines (no customer data sent).
pub async fn summarize(db: &Db, ctx: &Rc<RequestCtx>, body: Summarize) -> AppResult {
    lookout::ai_guard::ensure_ai_allowed(ctx).await?;
    ticket_exists(db, ctx, body.ticket_id).await?;
    #[derive(Deserialize)]
    struct L {
        description: String,
        qty: i64,
    }
    let lines: Vec<L> = db
        .all("SELECT description, qty FROM ticket_lines WHERE ticket_id = ? ORDER BY id", &[int(body.ticket_id)])
        .await?;
    let text: Vec<String> = lines.iter().map(|l| format!("{} x {}", l.qty, l.description)).collect();
    let key = secret(ctx, "ANTHROPIC_API_KEY")?;
    let prompt = serde_json::json!({
        "model": settings::var(&ctx.env, "AI_MODEL").unwrap_or_else(|| "claude-sonnet-4-5".into()),
        "max_tokens": 200,
        "messages": [{"role": "user", "content": format!("Summarize this repair ticket in one line:\n{}", text.join("\n"))}],
    });
    let price = AiPrice {
        input_per_mtok_micros: var_u64(ctx, "AI_INPUT_PER_MTOK_MICROS", 3_000_000),
        output_per_mtok_micros: var_u64(ctx, "AI_OUTPUT_PER_MTOK_MICROS", 15_000_000),
    };
    let call = Call {
        service: Service::Claude,
        method: Method::Post,
        path: "/v1/messages".into(),
        headers: vec![
            ("x-api-key", key),
            ("anthropic-version", "2023-06-01".into()),
            ("content-type", "application/json".into()),
        ],
        body: Some(prompt.to_string()),
        idempotency_label: None,
    };
    let answer = external::send(ctx, call, |a| {
        let v: serde_json::Value = serde_json::from_str(&a.body).ok()?;
        let usage = v.get("usage")?;
        ai_cost(usage.get("input_tokens")?.as_u64()?, usage.get("output_tokens")?.as_u64()?, price).ok()
    })
    .await?;
    if !answer.ok() {
        return Err(upstream_failed(Service::Claude, &answer));
    }
    let v: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    let summary = v["content"][0]["text"].as_str().unwrap_or("").to_string();
    Ok(Response::from_json(&serde_json::json!({"ticket_id": body.ticket_id, "summary": summary}))?)
}

/// Photo keys are `shops/{shop}/tickets/{id}/{name}` with a plain file name: a shop's photos
/// live under its own prefix, and every photo route first checks that the ticket is the
/// shop's, so another shop's host can neither list nor fetch them.
fn photo_prefix(shop: &str, id: i64) -> String {
    format!("shops/{shop}/tickets/{id}/")
}

fn photo_key(shop: &str, id: i64, name: &str) -> Result<String, Failure> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if ok {
        Ok(format!("{}{name}", photo_prefix(shop, id)))
    } else {
        Err(AppError::bad_request("photo names are 1-64 chars of letters, digits, - _ .").into())
    }
}

/// `PUT /api/tickets/{id}/photos/{name}`.
pub async fn put_photo(db: &Db, ctx: &Rc<RequestCtx>, id: i64, name: &str, bytes: Vec<u8>) -> AppResult {
    let key = photo_key(&ctx.shop, id, name)?;
    ticket_exists(db, ctx, id).await?;
    Files::new(ctx)?.put(&key, bytes).await?;
    Ok(Response::from_json(&serde_json::json!({"stored": key}))?.with_status(201))
}

/// `GET /api/tickets/{id}/photos/{name}`.
pub async fn get_photo(db: &Db, ctx: &Rc<RequestCtx>, id: i64, name: &str) -> AppResult {
    let key = photo_key(&ctx.shop, id, name)?;
    ticket_exists(db, ctx, id).await?;
    match Files::new(ctx)?.get(&key).await? {
        Some(bytes) => Ok(Response::from_bytes(bytes)?),
        None => Err(AppError::not_found("no such photo").with("ticket_id", ContextValue::Int(id)).into()),
    }
}

/// `GET /api/tickets/{id}/photos`: the ticket's photo names.
pub async fn list_photos(db: &Db, ctx: &Rc<RequestCtx>, id: i64) -> AppResult {
    ticket_exists(db, ctx, id).await?;
    let prefix = photo_prefix(&ctx.shop, id);
    let keys = Files::new(ctx)?.list(&prefix).await?;
    let names: Vec<&str> = keys.iter().filter_map(|k| k.strip_prefix(&prefix)).collect();
    Ok(Response::from_json(&serde_json::json!({"photos": names}))?)
}

/// `GET /api/reports/open-lines`: written the naive way on purpose, one lines query per
/// ticket (an N+1), to show the detection on the request line.
pub async fn open_lines_report(db: &Db, ctx: &Rc<RequestCtx>) -> AppResult {
    #[derive(Deserialize)]
    struct T {
        id: i64,
    }
    #[derive(Deserialize, serde::Serialize)]
    struct Total {
        total_cents: Option<i64>,
    }
    let tickets: Vec<T> = db
        .all("SELECT id FROM tickets WHERE shop = ? AND status = 'open' ORDER BY id", &[ctx.shop.as_str().into()])
        .await?;
    let mut report = Vec::new();
    for t in &tickets {
        let total: Option<Total> = db
            .first("SELECT SUM(qty * unit_cents) AS total_cents FROM ticket_lines WHERE ticket_id = ?", &[int(t.id)])
            .await?;
        report.push(
            serde_json::json!({"ticket_id": t.id, "total_cents": total.and_then(|x| x.total_cents).unwrap_or(0)}),
        );
    }
    Ok(Response::from_json(&serde_json::json!({"tickets": report}))?)
}
