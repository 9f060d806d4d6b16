//! Appending the sample app's audit events to D1 (`audit_events`), one hash chain per shop,
//! through the request's timed `Db`. The row is sealed in `core::audit` (SHA-256 over the
//! previous hash and the canonical content). Two writers racing for the same predecessor
//! cannot fork the chain: the unique index on `(shop, prev_hash)` (and the id) refuses the
//! second insert, which re-reads the head and retries.

use chrono::SecondsFormat;
use worker::wasm_bindgen::JsValue;

use crate::core::audit::{content_text, seal, AuditEvent};
use crate::edge::config;
use crate::edge::db::Db;
use crate::edge::instrument::{wall_now, Failure, RequestCtx};

const ATTEMPTS: usize = 3;

fn int(n: i64) -> JsValue {
    JsValue::from(n as f64)
}

fn is_conflict(e: &Failure) -> bool {
    format!("{e:?}").contains("UNIQUE constraint failed")
}

/// Append one event about a ticket (`entity` = `ticket`) for the request's shop and staff.
pub async fn ticket_event(
    db: &Db,
    ctx: &RequestCtx,
    action: &'static str,
    ticket_id: i64,
    customer_id: Option<i64>,
    figures: Vec<(&'static str, i64)>,
) -> Result<(), Failure> {
    let event = AuditEvent {
        ts: wall_now().to_rfc3339_opts(SecondsFormat::Millis, true),
        shop: ctx.shop.clone(),
        action,
        entity: "ticket",
        entity_id: ticket_id,
        staff_id: ctx.staff_id(),
        context_customer_id: customer_id,
        figures,
    };
    append(db, ctx, &event).await
}

/// Append `event` at the head of its shop's chain.
pub async fn append(db: &Db, ctx: &RequestCtx, event: &AuditEvent) -> Result<(), Failure> {
    #[derive(serde::Deserialize)]
    struct Head {
        max_id: Option<i64>,
        prev: Option<String>,
    }
    let build_version = config::build_version(&ctx.env);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let head: Option<Head> = db
            .first(
                "SELECT (SELECT MAX(id) FROM audit_events) AS max_id, \
                 (SELECT hash FROM audit_events WHERE shop = ? ORDER BY id DESC LIMIT 1) AS prev",
                &[event.shop.as_str().into()],
            )
            .await?;
        let (max_id, prev) = head.map_or((None, None), |h| (h.max_id, h.prev));
        let row = seal(prev.as_deref(), max_id.unwrap_or(0) + 1, event.content(), &build_version);
        let inserted = db
            .run(
                "INSERT INTO audit_events (id, shop, prev_hash, hash, content, build_version) VALUES (?, ?, ?, ?, ?, ?)",
                &[
                    int(row.id),
                    event.shop.as_str().into(),
                    row.prev_hash.as_str().into(),
                    row.hash.as_str().into(),
                    content_text(&row).into(),
                    row.build_version.as_str().into(),
                ],
            )
            .await;
        match inserted {
            Ok(_) => return Ok(()),
            Err(e) if attempt < ATTEMPTS && is_conflict(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}
