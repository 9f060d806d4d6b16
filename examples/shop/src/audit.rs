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

/// Whether a failed batch lost a race (the chain head or an allocated id was taken), so it is
/// worth rebuilding. D1 gives no error code: a failed statement is a D1 error (`worker::Error::D1`)
/// whose cause is SQLite's message. So only that structure is read, and only SQLite's fixed
/// wording for a unique or primary-key violation ([`is_unique_violation`]) counts; any other
/// error, whatever its text, is not a conflict.
fn is_conflict(e: &Failure) -> bool {
    matches!(e, Failure::Runtime(worker::Error::D1(d1)) if is_unique_violation(&d1.cause()))
}

/// SQLite's message for `SQLITE_CONSTRAINT_UNIQUE` / `SQLITE_CONSTRAINT_PRIMARYKEY`:
/// `UNIQUE constraint failed: <table>.<column>[, ...]` (D1 may append `: SQLITE_CONSTRAINT`).
pub fn is_unique_violation(sqlite_message: &str) -> bool {
    sqlite_message
        .strip_prefix("UNIQUE constraint failed: ")
        .is_some_and(|cols| cols.split([',', ':']).next().is_some_and(|c| c.trim().contains('.')))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sqlites_unique_violation_is_a_conflict() {
        assert!(is_unique_violation("UNIQUE constraint failed: audit_events.shop, audit_events.prev_hash"));
        assert!(is_unique_violation("UNIQUE constraint failed: ticket_lines.id: SQLITE_CONSTRAINT"));
        assert!(!is_unique_violation("NOT NULL constraint failed: audit_events.hash"));
        assert!(!is_unique_violation("no such table: audit_events"));
        assert!(!is_unique_violation("D1_ERROR: UNIQUE constraint failed: audit_events.id"));
    }

    #[test]
    fn errors_that_merely_mention_the_text_are_not_conflicts() {
        // The old check matched the Debug text of any error.
        let runtime = Failure::Runtime(worker::Error::RustError("UNIQUE constraint failed: audit_events.id".into()));
        assert!(!is_conflict(&runtime));
        let app = Failure::App(lookout_core::error::AppError::new(409, "Conflict", "UNIQUE constraint failed: x.y"));
        assert!(!is_conflict(&app));
    }
}
