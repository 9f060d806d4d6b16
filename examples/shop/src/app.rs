//! The sample shop app the wrapper instruments: tickets with lines on a real D1 database,
//! customers whose names must never reach a log line, and (test environment only) fault
//! routes for alert tests. It is a stand-in for the real app, not part of lookout's product.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use worker::{Method, Request, Response};

use crate::audit;
use crate::services;
use lookout::db::{int, Db};
use lookout::{AppResult, Failure, RequestCtx};
use lookout_core::error::AppError;
use lookout_core::redact::ContextValue;
use lookout_core::stripe;

/// Largest JSON body the app accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Route a request of a known shop.
pub async fn route(req: Request, ctx: Rc<RequestCtx>) -> AppResult {
    let path = req.path();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method();
    match (method.clone(), segs.as_slice()) {
        (Method::Get, ["health"]) => Ok(Response::ok("ok")?),
        (_, ["api", ..]) => api(req, ctx, method, &segs[1..]).await,
        (Method::Post, ["webhooks", "stripe"]) => stripe_webhook(req, &ctx).await,
        (_, ["__test", ..]) if ctx.is_test_env() => test_routes(req, &segs[1..]).await,
        _ => Err(AppError::not_found("no such route").into()),
    }
}

async fn api(mut req: Request, ctx: Rc<RequestCtx>, method: Method, segs: &[&str]) -> AppResult {
    let db = Db::new(&ctx)?;
    authenticate(&req, &ctx, &db).await?;
    match (method, segs) {
        (Method::Get, ["tickets", id]) => get_ticket(&db, &ctx, parse_id(id)?).await,
        (Method::Delete, ["tickets", id]) => delete_ticket(&db, &ctx, parse_id(id)?).await,
        (Method::Post, ["tickets", id, "lines"]) => {
            let body = read_json::<NewLine>(&mut req).await?;
            add_line(&db, &ctx, parse_id(id)?, body).await
        }
        (Method::Post, ["tickets", id, "charge"]) => {
            let body = read_json(&mut req).await?;
            services::charge(&db, &ctx, parse_id(id)?, body).await
        }
        (Method::Post, ["tickets", id, "sms"]) => {
            let body = read_json(&mut req).await?;
            services::sms(&db, &ctx, parse_id(id)?, body).await
        }
        (Method::Post, ["ai", "summarize"]) => {
            let body = read_json(&mut req).await?;
            services::summarize(&db, &ctx, body).await
        }
        (Method::Get, ["tickets", id, "photos"]) => services::list_photos(&ctx, parse_id(id)?).await,
        (Method::Put, ["tickets", id, "photos", name]) => {
            let bytes = read_bytes(&mut req, MAX_PHOTO_BYTES).await?;
            services::put_photo(&db, &ctx, parse_id(id)?, name, bytes).await
        }
        (Method::Get, ["tickets", id, "photos", name]) => services::get_photo(&ctx, parse_id(id)?, name).await,
        (Method::Get, ["reports", "open-lines"]) => services::open_lines_report(&db, &ctx).await,
        _ => Err(AppError::not_found("no such route").into()),
    }
}

#[derive(Deserialize)]
struct Session {
    staff_id: u32,
    first_name: String,
}

/// The app's session: a `session` cookie naming a row of `sessions`.
async fn authenticate(req: &Request, ctx: &RequestCtx, db: &Db) -> Result<(), Failure> {
    let cookie = req.headers().get("cookie")?.unwrap_or_default();
    let token = cookie.split(';').filter_map(|c| c.trim().strip_prefix("session=")).next().ok_or(AppError::new(
        401,
        "Unauthenticated",
        "sign in first",
    ))?;
    let session: Option<Session> = db
        .first(
            "SELECT s.staff_id, st.first_name FROM sessions s JOIN staff st ON st.id = s.staff_id WHERE s.token = ?",
            &[token.into()],
        )
        .await?;
    let session = session.ok_or(AppError::new(401, "Unauthenticated", "session expired or unknown"))?;
    ctx.set_staff(session.staff_id, &session.first_name);
    Ok(())
}

fn parse_id(s: &str) -> Result<i64, Failure> {
    s.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| AppError::bad_request("ids are positive integers").into())
}

/// Largest photo accepted.
pub const MAX_PHOTO_BYTES: usize = 1024 * 1024;

async fn read_bytes(req: &mut Request, limit: usize) -> Result<Vec<u8>, Failure> {
    let bytes = req.bytes().await?;
    if bytes.len() > limit {
        return Err(AppError::new(413, "PayloadTooLarge", "body exceeds the route's limit")
            .with("bytes", ContextValue::Int(bytes.len() as i64))
            .with("limit", ContextValue::Int(limit as i64))
            .into());
    }
    Ok(bytes)
}

async fn read_json<T: for<'de> Deserialize<'de>>(req: &mut Request) -> Result<T, Failure> {
    let bytes = read_bytes(req, MAX_BODY_BYTES).await?;
    serde_json::from_slice(&bytes).map_err(|_| AppError::bad_request("body is not the expected JSON").into())
}

#[derive(Serialize, Deserialize)]
struct Ticket {
    id: i64,
    status: String,
    customer_name: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Line {
    id: i64,
    description: String,
    qty: i64,
    unit_cents: i64,
}

async fn get_ticket(db: &Db, ctx: &RequestCtx, id: i64) -> AppResult {
    let ticket: Option<Ticket> = db
        .first(
            "SELECT t.id, t.status, c.name AS customer_name FROM tickets t \
             LEFT JOIN customers c ON c.id = t.customer_id WHERE t.id = ? AND t.shop = ?",
            &[int(id), ctx.shop.as_str().into()],
        )
        .await?;
    let ticket =
        ticket.ok_or_else(|| AppError::not_found("no such ticket").with("ticket_id", ContextValue::Int(id)))?;
    let lines: Vec<Line> = db
        .all("SELECT id, description, qty, unit_cents FROM ticket_lines WHERE ticket_id = ? ORDER BY id", &[int(id)])
        .await?;
    Ok(Response::from_json(&serde_json::json!({ "ticket": ticket, "lines": lines }))?)
}

async fn delete_ticket(db: &Db, ctx: &RequestCtx, id: i64) -> AppResult {
    let exists: Option<serde_json::Value> = db
        .first("SELECT id, customer_id FROM tickets WHERE id = ? AND shop = ?", &[int(id), ctx.shop.as_str().into()])
        .await?;
    if exists.is_none() {
        return Err(AppError::not_found("no such ticket").with("ticket_id", ContextValue::Int(id)).into());
    }
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let txns: Option<Count> =
        db.first("SELECT COUNT(*) AS n FROM transactions WHERE ticket_id = ?", &[int(id)]).await?;
    if txns.map(|c| c.n).unwrap_or(0) > 0 {
        return Err(AppError::new(409, "BlockedByDependents", "Cannot delete ticket with attached transactions")
            .with("ticket_id", ContextValue::Int(id))
            .with("blocker", ContextValue::Label("transactions"))
            .into());
    }
    #[derive(Deserialize)]
    struct Lines {
        n: i64,
    }
    let lines: Option<Lines> =
        db.first("SELECT COUNT(*) AS n FROM ticket_lines WHERE ticket_id = ?", &[int(id)]).await?;
    let lines = lines.map_or(0, |l| l.n);
    let customer = exists.as_ref().and_then(|t| t["customer_id"].as_i64());
    audit::apply(db, ctx, || async {
        Ok(audit::Change {
            statements: vec![
                ("DELETE FROM ticket_lines WHERE ticket_id = ?", vec![int(id)]),
                ("DELETE FROM tickets WHERE id = ?", vec![int(id)]),
            ],
            event: audit::ticket_event(ctx, "ticket_deleted", id, customer, vec![("lines_deleted", lines)]),
        })
    })
    .await?;
    Ok(Response::empty()?.with_status(204))
}

#[derive(Deserialize)]
struct NewLine {
    description: String,
    qty: i64,
    unit_cents: i64,
}

async fn add_line(db: &Db, ctx: &RequestCtx, id: i64, line: NewLine) -> AppResult {
    if line.qty <= 0 || line.unit_cents < 0 || line.description.trim().is_empty() || line.description.len() > 500 {
        return Err(AppError::new(422, "InvalidLine", "qty > 0, unit_cents >= 0, description 1-500 chars").into());
    }
    let exists: Option<serde_json::Value> = db
        .first("SELECT id, customer_id FROM tickets WHERE id = ? AND shop = ?", &[int(id), ctx.shop.as_str().into()])
        .await?;
    if exists.is_none() {
        return Err(AppError::not_found("no such ticket").with("ticket_id", ContextValue::Int(id)).into());
    }
    let customer = exists.as_ref().and_then(|t| t["customer_id"].as_i64());
    #[derive(Deserialize)]
    struct Next {
        id: i64,
    }
    let line = &line;
    let allocated = std::cell::Cell::new(0i64);
    let line_id = &allocated;
    audit::apply(db, ctx, move || {
        async move {
            // The line's id is allocated here so the audit row can name it; losing a race for
            // it fails the batch, which is rebuilt with a fresh id.
            let next: Option<Next> = db.first("SELECT COALESCE(MAX(id), 0) + 1 AS id FROM ticket_lines", &[]).await?;
            line_id.set(next.map_or(1, |n| n.id));
            let figures = vec![("line_id", line_id.get()), ("qty", line.qty), ("unit_cents", line.unit_cents)];
            Ok(audit::Change {
                statements: vec![(
                    "INSERT INTO ticket_lines (id, ticket_id, description, qty, unit_cents) VALUES (?, ?, ?, ?, ?)",
                    vec![
                        int(line_id.get()),
                        int(id),
                        line.description.as_str().into(),
                        int(line.qty),
                        int(line.unit_cents),
                    ],
                )],
                event: audit::ticket_event(ctx, "ticket_line_added", id, customer, figures),
            })
        }
    })
    .await?;
    let row =
        Line { id: allocated.get(), description: line.description.clone(), qty: line.qty, unit_cents: line.unit_cents };
    Ok(Response::from_json(&row)?.with_status(201))
}

/// Stripe webhooks: the raw body must carry a valid `Stripe-Signature`; a failure answers
/// 400 `StripeSignatureInvalid`, which the monitor counts.
async fn stripe_webhook(mut req: Request, ctx: &RequestCtx) -> AppResult {
    let secret = lookout::settings::var(&ctx.env, "STRIPE_WEBHOOK_SECRET").ok_or(AppError::new(
        500,
        "ConfigError",
        "STRIPE_WEBHOOK_SECRET is not configured",
    ))?;
    let header = req.headers().get("stripe-signature")?;
    let body = req.bytes().await?;
    if body.len() > 64 * 1024 {
        return Err(AppError::new(413, "PayloadTooLarge", "webhook body exceeds 64 KiB").into());
    }
    let now_s = (worker::js_sys::Date::now() / 1000.0) as i64;
    stripe::verify(header.as_deref(), &body, &secret, now_s, stripe::DEFAULT_TOLERANCE_S)
        .map_err(|e| AppError::new(400, "StripeSignatureInvalid", e.message()))?;
    Ok(Response::from_json(&serde_json::json!({"received": true}))?)
}

#[derive(Deserialize)]
struct Fault {
    status: Option<u16>,
    delay_ms: Option<u32>,
}

/// Test-only routes: a chosen status after a chosen delay, a returned `Err`, a panic.
async fn test_routes(req: Request, segs: &[&str]) -> AppResult {
    match segs {
        // `/__test/fault/<anything>`: the same, under any path (long URLs in the tests).
        ["fault", ..] => {
            let q: Fault = req.query().map_err(|_| AppError::bad_request("status and delay_ms are integers"))?;
            let delay = q.delay_ms.unwrap_or(0).min(30_000);
            if delay > 0 {
                worker::Delay::from(std::time::Duration::from_millis(delay as u64)).await;
            }
            let status = q.status.unwrap_or(200);
            if !(200..=599).contains(&status) {
                return Err(AppError::bad_request("status must be 200-599").into());
            }
            Ok(Response::ok(format!("fault {status}"))?.with_status(status))
        }
        // A runtime error whose message carries a customer's name, as real ones do.
        ["error"] => {
            Err(worker::Error::RustError("lookup failed for customer 'Alice Smith' <alice@example.com>".into()).into())
        }
        ["panic"] => {
            let name = "Alice Smith";
            panic!("unexpected state for customer {name}");
        }
        _ => Err(AppError::not_found("no such test route").into()),
    }
}
