//! Appending the sample app's audit events to D1 (`audit_events`), one hash chain per shop,
//! through the request's timed `Db`. The row is sealed in `core::audit` (SHA-256 over the
//! previous hash and the canonical content) and written in the same D1 batch (one
//! transaction) as the change it describes: both land or neither does. Two writers racing for
//! the same predecessor cannot fork the chain: the unique index on `(shop, prev_hash)` (and
//! the id) refuses the second batch, which is rebuilt on a fresh head and retried.

use std::future::Future;

use chrono::SecondsFormat;
use worker::wasm_bindgen::JsValue;

use lookout::clock::wall_now;
use lookout::db::{int, Db};
use lookout::{Failure, RequestCtx};
use lookout_core::audit::{content_text, seal, AuditEvent};

const ATTEMPTS: usize = 3;

fn is_conflict(e: &Failure) -> bool {
    format!("{e:?}").contains("UNIQUE constraint failed")
}

/// One change to apply: its statements and the audit event that describes it.
pub struct Change {
    pub statements: Vec<(&'static str, Vec<JsValue>)>,
    pub event: AuditEvent,
}

/// An event about a ticket (`entity` = `ticket`) for the request's shop and staff.
pub fn ticket_event(
    ctx: &RequestCtx,
    action: &'static str,
    ticket_id: i64,
    customer_id: Option<i64>,
    figures: Vec<(&'static str, i64)>,
) -> AuditEvent {
    AuditEvent {
        ts: wall_now().to_rfc3339_opts(SecondsFormat::Millis, true),
        shop: ctx.shop.clone(),
        action,
        entity: "ticket",
        entity_id: ticket_id,
        staff_id: ctx.staff_id(),
        context_customer_id: customer_id,
        figures,
    }
}

/// Apply the change `build` prepares, with its audit row at the head of the shop's chain, in
/// one batch. `build` runs again for each attempt (so it can re-read what it allocates).
pub async fn apply<F, Fut>(db: &Db, ctx: &RequestCtx, mut build: F) -> Result<(), Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Change, Failure>>,
{
    #[derive(serde::Deserialize)]
    struct Head {
        max_id: Option<i64>,
        prev: Option<String>,
    }
    let build_version = ctx.build_version();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let change = build().await?;
        let event = &change.event;
        let head: Option<Head> = db
            .first(
                "SELECT (SELECT MAX(id) FROM audit_events) AS max_id, \
                 (SELECT hash FROM audit_events WHERE shop = ? ORDER BY id DESC LIMIT 1) AS prev",
                &[event.shop.as_str().into()],
            )
            .await?;
        let (max_id, prev) = head.map_or((None, None), |h| (h.max_id, h.prev));
        let row = seal(prev.as_deref(), max_id.unwrap_or(0) + 1, event.content(), build_version);
        let mut statements = change.statements;
        statements.push((
            "INSERT INTO audit_events (id, shop, prev_hash, hash, content, build_version) VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                int(row.id),
                event.shop.as_str().into(),
                row.prev_hash.as_str().into(),
                row.hash.as_str().into(),
                content_text(&row).into(),
                row.build_version.as_str().into(),
            ],
        ));
        match db.batch(&statements).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < ATTEMPTS && is_conflict(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}
