//! The sample shop app the wrapper instruments: tickets with lines on a real D1 database,
//! customers whose names must never reach a log line, and (test environment only) fault
//! routes for alert tests. It is a stand-in for the real app, not part of lookout's product.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use worker::{Request, Response};

use crate::audit;
use crate::services;
use lookout::body;
use lookout::db::{int, Db};
use lookout::{AppResult, Failure, RequestCtx};
use lookout_core::error::AppError;
use lookout_core::redact::ContextValue;
use lookout_core::stripe;

/// Largest JSON body the app accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest photo accepted.
pub const MAX_PHOTO_BYTES: usize = 1024 * 1024;
/// Largest Stripe webhook body accepted.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// The app's routes: what the line's `path` says (the template) and what `route` serves.
/// `HEAD` is served by the `GET` entries (uptime checks use `HEAD /health`).
pub const ROUTES: &[&str] = &[
    "GET /health",
    "GET /api/tickets/{id}",
    "DELETE /api/tickets/{id}",
    "POST /api/tickets/{id}/lines",
    "POST /api/tickets/{id}/charge",
    "POST /api/tickets/{id}/sms",
    "GET /api/tickets/{id}/photos",
    "GET /api/tickets/{id}/photos/{name}",
    "PUT /api/tickets/{id}/photos/{name}",
    "POST /api/ai/summarize",
    "GET /api/reports/open-lines",
    "POST /webhooks/stripe",
    // ENVIRONMENT=test only (404 elsewhere): fault routes for the alert tests.
    "GET /__test/fault",
    "GET /__test/fault/{*rest}",
    "GET /__test/error",
    "GET /__test/panic",
];

/// Route a request of a known shop.
pub async fn route(mut req: Request, ctx: Rc<RequestCtx>) -> AppResult {
    if req.path().starts_with("/__test/") && !ctx.is_test_env() {
        return Err(AppError::not_found("no such route").into());
    }
    let r = ctx.route(&req, ROUTES)?;
    if r.template.starts_with("/__test/") {
        return test_routes(req, r.entry).await;
    }
    if r.entry == "GET /health" {
        return Ok(Response::ok("ok")?);
    }
    if r.entry == "POST /webhooks/stripe" {
        return stripe_webhook(req, &ctx).await;
    }
    let db = Db::new(&ctx)?;
    authenticate(&req, &ctx, &db).await?;
    match r.entry {
        "GET /api/tickets/{id}" => get_ticket(&db, &ctx, r.id("id")?).await,
        "DELETE /api/tickets/{id}" => delete_ticket(&db, &ctx, r.id("id")?).await,
        "POST /api/tickets/{id}/lines" => {
            let id = r.id("id")?;
            add_line(&db, &ctx, id, read_json::<NewLine>(&mut req).await?).await
        }
        "POST /api/tickets/{id}/charge" => {
            let id = r.id("id")?;
            services::charge(&db, &ctx, id, read_json(&mut req).await?).await
        }
        "POST /api/tickets/{id}/sms" => {
            let id = r.id("id")?;
            services::sms(&db, &ctx, id, read_json(&mut req).await?).await
        }
        "POST /api/ai/summarize" => services::summarize(&db, &ctx, read_json(&mut req).await?).await,
        "GET /api/tickets/{id}/photos" => services::list_photos(&db, &ctx, r.id("id")?).await,
        "PUT /api/tickets/{id}/photos/{name}" => {
            let id = r.id("id")?;
            let bytes = body::read_body(&mut req, MAX_PHOTO_BYTES).await?;
            services::put_photo(&db, &ctx, id, r.param("name"), bytes).await
        }
        "GET /api/tickets/{id}/photos/{name}" => services::get_photo(&db, &ctx, r.id("id")?, r.param("name")).await,
        "GET /api/reports/open-lines" => services::open_lines_report(&db, &ctx).await,
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
    let token = session_token(&cookie).ok_or(AppError::new(401, "Unauthenticated", "sign in first"))?;
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

/// The `session` cookie's value in a `Cookie` header, if any (the first one).
pub fn session_token(cookie_header: &str) -> Option<&str> {
    cookie_header.split(';').filter_map(|c| c.trim().strip_prefix("session=")).find(|t| !t.is_empty())
}

async fn read_json<T: for<'de> Deserialize<'de>>(req: &mut Request) -> Result<T, Failure> {
    let bytes = body::read_body(req, MAX_BODY_BYTES).await?;
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

/// The largest integer D1 stores and gives back exactly: D1 binds and returns JS numbers,
/// so amounts and quantities past 2^53 - 1 would be rounded on the way in and refused on the
/// way out.
pub const MAX_EXACT: i64 = (1 << 53) - 1;

fn invalid_line(message: &'static str, field: &'static str) -> AppError {
    AppError::new(422, "InvalidLine", message).with("field", ContextValue::Label(field))
}

/// Check a new line on its own: the field at fault is named. Returns the line's total in
/// cents (`qty * unit_cents`, exact).
pub fn validate_line(description: &str, qty: i64, unit_cents: i64) -> Result<i64, AppError> {
    if description.trim().is_empty() || description.len() > 500 {
        return Err(invalid_line("description must be 1-500 characters", "description"));
    }
    if !(1..=MAX_EXACT).contains(&qty) {
        return Err(invalid_line("qty must be a whole number from 1 to 2^53 - 1", "qty"));
    }
    if !(0..=MAX_EXACT).contains(&unit_cents) {
        return Err(invalid_line("unit_cents must be a whole number from 0 to 2^53 - 1", "unit_cents"));
    }
    qty.checked_mul(unit_cents)
        .filter(|t| *t <= MAX_EXACT)
        .ok_or_else(|| invalid_line("qty x unit_cents must be at most 2^53 - 1", "line_total_cents"))
}

/// The ticket's total with a new line stays exact (what the ticket, the report and the AI
/// summary add up).
pub fn check_ticket_total(current_cents: i64, line_cents: i64) -> Result<(), AppError> {
    match current_cents.checked_add(line_cents) {
        Some(t) if t <= MAX_EXACT => Ok(()),
        _ => Err(invalid_line("the ticket's total would pass 2^53 - 1 cents", "ticket_total_cents")),
    }
}

async fn add_line(db: &Db, ctx: &RequestCtx, id: i64, line: NewLine) -> AppResult {
    let line_total = validate_line(&line.description, line.qty, line.unit_cents)?;
    #[derive(Deserialize)]
    struct Existing {
        customer_id: Option<i64>,
        total_cents: i64,
    }
    let exists: Option<Existing> = db
        .first(
            "SELECT t.customer_id, (SELECT COALESCE(SUM(l.qty * l.unit_cents), 0) FROM ticket_lines l \
             WHERE l.ticket_id = t.id) AS total_cents FROM tickets t WHERE t.id = ? AND t.shop = ?",
            &[int(id), ctx.shop.as_str().into()],
        )
        .await?;
    let Some(existing) = exists else {
        return Err(AppError::not_found("no such ticket").with("ticket_id", ContextValue::Int(id)).into());
    };
    // Two concurrent adds may both pass this check; each line is exact on its own, and the
    // sum of two stays far inside i64 for SQLite.
    check_ticket_total(existing.total_cents, line_total)?;
    let customer = existing.customer_id;
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
    let body = body::read_body(&mut req, MAX_WEBHOOK_BYTES).await?;
    let now_s = (worker::js_sys::Date::now() / 1000.0) as i64;
    stripe::verify(header.as_deref(), &body, &secret, now_s, stripe::DEFAULT_TOLERANCE_S)
        .map_err(|e| AppError::new(400, "StripeSignatureInvalid", e.message()))?;
    Ok(Response::from_json(&serde_json::json!({"received": true}))?)
}

/// The fault route's query: `status` (200-599, default 200), `delay_ms` (default 0, at most
/// 30 s) and `class` (`timeout`, `d1`, `payment`: fail with an `AppError` of that class and
/// the status, so alerts can name the classes of a burst).
pub fn fault_params(query: &str) -> Result<(u16, u32, Option<&'static str>), AppError> {
    let not_integers = || AppError::bad_request("status and delay_ms are integers");
    let (mut status, mut delay_ms, mut class) = (200u16, 0u32, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "status" => status = v.parse().map_err(|_| not_integers())?,
            "delay_ms" => delay_ms = v.parse().map_err(|_| not_integers())?,
            "class" => {
                class = Some(fault_class(&v).ok_or_else(|| AppError::bad_request("class is timeout, d1 or payment"))?)
            }
            _ => {}
        }
    }
    if !(200..=599).contains(&status) {
        return Err(AppError::bad_request("status must be 200-599"));
    }
    Ok((status, delay_ms.min(30_000), class))
}

/// The fixed error classes the fault route can fail with.
fn fault_class(name: &str) -> Option<&'static str> {
    match name {
        "timeout" => Some("UpstreamTimeout"),
        "d1" => Some("D1Unavailable"),
        "payment" => Some("PaymentProviderDown"),
        _ => None,
    }
}

/// Test-only routes: a chosen status after a chosen delay, a returned `Err`, a panic.
async fn test_routes(req: Request, entry: &str) -> AppResult {
    match entry {
        // `/__test/fault/<anything>`: the same, under any path (long URLs in the tests).
        "GET /__test/fault" | "GET /__test/fault/{*rest}" => {
            let (status, delay, class) = fault_params(req.url()?.query().unwrap_or(""))?;
            if delay > 0 {
                worker::Delay::from(std::time::Duration::from_millis(delay as u64)).await;
            }
            if let Some(class) = class {
                return Err(AppError::new(status, class, "injected fault").into());
            }
            Ok(Response::ok(format!("fault {status}"))?.with_status(status))
        }
        // A runtime error whose message carries a customer's name, as real ones do.
        "GET /__test/error" => {
            Err(worker::Error::RustError("lookup failed for customer 'Alice Smith' <alice@example.com>".into()).into())
        }
        "GET /__test/panic" => {
            let name = "Alice Smith";
            panic!("unexpected state for customer {name}");
        }
        _ => Err(AppError::not_found("no such test route").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: AppError) -> Option<ContextValue> {
        e.context.get("field").cloned()
    }

    #[test]
    fn lines_beyond_exact_integers_are_refused_naming_the_field() {
        assert_eq!(validate_line("Screen", 2, 12_900), Ok(25_800));
        assert_eq!(validate_line("Screen", MAX_EXACT, 1), Ok(MAX_EXACT));
        let two_53_plus_1 = MAX_EXACT + 2;
        assert_eq!(field(validate_line("x", two_53_plus_1, 1).unwrap_err()), Some(ContextValue::Label("qty")));
        assert_eq!(field(validate_line("x", 0, 1).unwrap_err()), Some(ContextValue::Label("qty")));
        assert_eq!(field(validate_line("x", 1, two_53_plus_1).unwrap_err()), Some(ContextValue::Label("unit_cents")));
        assert_eq!(field(validate_line("x", 1, -1).unwrap_err()), Some(ContextValue::Label("unit_cents")));
        let e = validate_line("x", 4_000_000_000_000_000, 4_000_000_000_000_000).unwrap_err();
        assert_eq!((e.status, field(e)), (422, Some(ContextValue::Label("line_total_cents"))));
        assert_eq!(field(validate_line(" ", 1, 1).unwrap_err()), Some(ContextValue::Label("description")));
        assert_eq!(check_ticket_total(MAX_EXACT - 5, 5), Ok(()));
        assert_eq!(
            field(check_ticket_total(MAX_EXACT - 5, 6).unwrap_err()),
            Some(ContextValue::Label("ticket_total_cents"))
        );
        assert!(check_ticket_total(i64::MAX, 1).is_err());
    }

    #[test]
    fn the_route_table_is_well_formed() {
        assert_eq!(lookout_core::route::check_routes(ROUTES), Ok(()));
    }

    #[test]
    fn fault_query() {
        assert_eq!(fault_params(""), Ok((200, 0, None)));
        assert_eq!(fault_params("status=503&delay_ms=300&x=1"), Ok((503, 300, None)));
        assert_eq!(fault_params("delay_ms=99999999"), Ok((200, 30_000, None)));
        assert_eq!(fault_params("status=504&class=timeout"), Ok((504, 0, Some("UpstreamTimeout"))));
        assert!(fault_params("class=other").is_err());
        assert!(fault_params("status=600").is_err());
        assert!(fault_params("status=abc").is_err());
        assert!(fault_params("delay_ms=-1").is_err());
    }

    proptest::proptest! {
        /// The cookie and the fault query, the app's parsers of request text: any input, no
        /// panic; a session is only ever the value of a `session` cookie.
        #[test]
        fn cookies_and_queries_never_panic(h in "\\PC{0,120}", q in "\\PC{0,120}") {
            if let Some(t) = session_token(&h) {
                let cookie = format!("session={}", t);
                proptest::prop_assert!(!t.is_empty() && h.contains(&cookie));
            }
            if let Ok((status, delay, _)) = fault_params(&q) {
                proptest::prop_assert!((200..=599).contains(&status) && delay <= 30_000);
            }
        }
    }

    #[test]
    fn session_cookie() {
        assert_eq!(session_token("a=1; session=sess_robbie; b=2"), Some("sess_robbie"));
        assert_eq!(session_token("session=; session=x"), Some("x"));
        assert_eq!(session_token("sessions=x"), None);
        assert_eq!(session_token(""), None);
    }
}
