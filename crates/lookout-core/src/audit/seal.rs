//! The app's audit events with SHA-256: what a row's content holds, sealing the next row, and
//! reading rows back for verification. The chain maths (canonical form, links, verdict) is
//! chain.rs; the D1 reads and writes are the app's.
//!
//! One chain per shop in `audit_events`: `prev_hash` is the shop's previous row's `hash`
//! (64 zeros for its first row), `hash = sha256(prev_hash ++ "\n" ++ canonical)` where
//! canonical is `{"build_version", "content", "id"}` with sorted keys. The `content` column
//! stores the content object as canonical JSON. No customer text goes into content: ids,
//! amounts and labels only.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::chain::{canonical_json, seal_row, verify_chain, AuditRow, ChainVerdict, GENESIS_PREV_HASH};

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// One audit event before it is sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// RFC 3339 UTC.
    pub ts: String,
    pub shop: String,
    /// What happened, e.g. `ticket_line_added`, `ticket_deleted`.
    pub action: &'static str,
    /// What it happened to, e.g. `ticket`.
    pub entity: &'static str,
    pub entity_id: i64,
    /// The signed-in staff member who did it.
    pub staff_id: Option<u32>,
    /// The customer concerned (a forensic pivot: which builds touched this customer's rows).
    pub context_customer_id: Option<i64>,
    /// Numbers that describe the change (`qty`, `unit_cents`, `lines_deleted`, ...).
    pub figures: Vec<(&'static str, i64)>,
}

impl AuditEvent {
    /// The row's content object.
    pub fn content(&self) -> Value {
        let mut m = Map::new();
        m.insert("ts".into(), Value::from(self.ts.clone()));
        m.insert("shop".into(), Value::from(self.shop.clone()));
        m.insert("action".into(), Value::from(self.action));
        m.insert("entity".into(), Value::from(self.entity));
        m.insert("entity_id".into(), Value::from(self.entity_id));
        m.insert("staff_id".into(), self.staff_id.map_or(Value::Null, Value::from));
        m.insert("context_customer_id".into(), self.context_customer_id.map_or(Value::Null, Value::from));
        for (k, v) in &self.figures {
            m.insert((*k).into(), Value::from(*v));
        }
        Value::Object(m)
    }
}

/// Seal the shop's next row after `prev_hash` (`None`: the shop's first row).
pub fn seal(prev_hash: Option<&str>, id: i64, content: Value, build_version: &str) -> AuditRow {
    seal_row(prev_hash.unwrap_or(GENESIS_PREV_HASH), id, content, build_version, sha256)
}

/// The `content` column's text for a row: canonical JSON.
pub fn content_text(row: &AuditRow) -> String {
    canonical_json(&row.content)
}

/// A row as read from D1. Content that is not JSON is kept as a string, so it cannot verify.
pub fn row_from_db(id: i64, prev_hash: String, hash: String, content_text: &str, build_version: String) -> AuditRow {
    AuditRow {
        id,
        content: serde_json::from_str(content_text).unwrap_or_else(|_| Value::String(content_text.to_string())),
        build_version,
        prev_hash,
        hash,
    }
}

/// Verify one shop's rows in id order with SHA-256.
pub fn verify(rows: &[AuditRow]) -> ChainVerdict {
    verify_chain(rows, sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ChainBreak;

    fn event(id: i64) -> AuditEvent {
        AuditEvent {
            ts: format!("2026-05-10T09:00:{:02}Z", id),
            shop: "swicked".into(),
            action: "ticket_line_added",
            entity: "ticket",
            entity_id: 2506,
            staff_id: Some(3),
            context_customer_id: Some(1),
            figures: vec![("qty", 1), ("unit_cents", 12_900)],
        }
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        let hex: String = sha256(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn sealed_rows_read_back_from_text_verify_and_a_changed_byte_breaks_them() {
        let mut rows = Vec::new();
        let mut prev: Option<String> = None;
        for id in [3, 7, 8] {
            let r = seal(prev.as_deref(), id, event(id).content(), "0.1.0+abc");
            prev = Some(r.hash.clone());
            // Through the content column and back, as D1 stores it.
            rows.push(row_from_db(
                r.id,
                r.prev_hash.clone(),
                r.hash.clone(),
                &content_text(&r),
                r.build_version.clone(),
            ));
        }
        let v = verify(&rows);
        assert!(v.verified, "{v:?}");
        assert_eq!(v.length, 3);
        let mut tampered = rows.clone();
        tampered[1] = row_from_db(
            7,
            rows[1].prev_hash.clone(),
            rows[1].hash.clone(),
            &content_text(&rows[1]).replace("12900", "1290"),
            rows[1].build_version.clone(),
        );
        let v = verify(&tampered);
        assert_eq!((v.verified, v.first_broken_id, v.broken), (false, Some(7), Some(ChainBreak::HashMismatch)));
        let mut garbage = rows.clone();
        garbage[2] =
            row_from_db(8, rows[2].prev_hash.clone(), rows[2].hash.clone(), "not json", rows[2].build_version.clone());
        assert_eq!(verify(&garbage).first_broken_id, Some(8));
    }
}
