//! The hash-chained audit log, pure: each `audit_events` row stores `prev_hash` (the previous
//! row's `hash`, 64 zeros for the first row) and `hash = H(prev_hash ++ "\n" ++ canonical)`.
//! This file holds the canonical form, sealing and verification, generic over the hash
//! function: SHA-256 (the `sha2` crate) is bound in seal.rs. The `audit_chain_broken` alert
//! is watch.rs.
//!
//! **Canonical content** of a row: compact JSON of `{"build_version", "content", "id"}`
//! with object keys sorted (by UTF-8 bytes) at every level; strings escaped as serde_json
//! does; an integral number written as an integer (`5.0` becomes `5`, so values read back
//! from D1 as JS numbers hash the same), other numbers in shortest round-trip form.
//! `content` holds the row's own columns (not `id`, `build_version`, `prev_hash`, `hash`).
//! Hashes are lowercase hex.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `prev_hash` of the first row.
pub const GENESIS_PREV_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One `audit_events` row as the verifier sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    /// The row's content columns as a JSON object (e.g. `ts`, `actor`, `action`, `entity`,
    /// `entity_id`, `context_customer_id`).
    pub content: Value,
    pub build_version: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A verified point of the chain, kept between runs so truncation or a rewrite of already
/// verified history is caught.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainAnchor {
    pub id: i64,
    pub hash: String,
}

/// Why verification stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainBreak {
    /// The first row's `prev_hash` is not 64 zeros (rows before it were deleted).
    BadGenesis,
    /// `prev_hash` differs from the previous row's `hash` (a row deleted, inserted or moved).
    BrokenLink,
    /// `hash` does not match the row's content (content, `build_version`, `id` or the hash
    /// itself altered).
    HashMismatch,
    /// Ids not strictly increasing in the given order (rows reordered).
    IdOrder,
    /// A stored hash is not 64 lowercase hex characters.
    MalformedHash,
    /// The anchor row from an earlier verification is gone or changed (truncation/rewrite).
    AnchorMissing,
}

/// The verifier's answer; `length` feeds `audit_chain_length`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainVerdict {
    pub verified: bool,
    /// Rows examined (the whole chain).
    pub length: u64,
    pub first_broken_id: Option<i64>,
    pub broken: Option<ChainBreak>,
    /// The last row when verified: the anchor for the next verification.
    pub head: Option<ChainAnchor>,
}

/// Canonical JSON: keys sorted at every level, integral numbers as integers.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => out.push_str(&v.to_string()),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.push_str(&n.to_string());
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
                    out.push_str(&(f as i64).to_string());
                } else {
                    out.push_str(&n.to_string());
                }
            }
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(*k) {
                    write_canonical(x, out);
                }
            }
            out.push('}');
        }
    }
}

/// The canonical content of a row (see the module doc).
pub fn canonical_content(id: i64, build_version: &str, content: &Value) -> String {
    let mut m = serde_json::Map::new();
    m.insert("build_version".into(), Value::String(build_version.to_string()));
    m.insert("content".into(), content.clone());
    m.insert("id".into(), Value::from(id));
    canonical_json(&Value::Object(m))
}

/// The bytes hashed for a row: `prev_hash ++ "\n" ++ canonical`.
pub fn chain_input(prev_hash: &str, canonical: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(prev_hash.len() + 1 + canonical.len());
    b.extend_from_slice(prev_hash.as_bytes());
    b.push(b'\n');
    b.extend_from_slice(canonical.as_bytes());
    b
}

fn hex(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `hex(hash(prev_hash ++ "\n" ++ canonical))`.
pub fn chain_hash(prev_hash: &str, canonical: &str, hash: impl Fn(&[u8]) -> [u8; 32]) -> String {
    hex(&hash(&chain_input(prev_hash, canonical)))
}

/// Build the next row of a chain (what the app does when it appends an audit event).
pub fn seal_row(
    prev_hash: &str,
    id: i64,
    content: Value,
    build_version: &str,
    hash: impl Fn(&[u8]) -> [u8; 32],
) -> AuditRow {
    let h = chain_hash(prev_hash, &canonical_content(id, build_version, &content), hash);
    AuditRow { id, content, build_version: build_version.to_string(), prev_hash: prev_hash.to_string(), hash: h }
}

/// The bytes to hash for each row, in order.
fn chain_inputs(rows: &[AuditRow]) -> Vec<Vec<u8>> {
    rows.iter().map(|r| chain_input(&r.prev_hash, &canonical_content(r.id, &r.build_version, &r.content))).collect()
}

/// Verify rows given in chain order (`ORDER BY id`), from the genesis row.
pub fn verify_chain(rows: &[AuditRow], hash: impl Fn(&[u8]) -> [u8; 32]) -> ChainVerdict {
    verify_chain_anchored(rows, None, hash)
}

/// [`verify_chain`], also requiring the `anchor` row of an earlier verification to be present
/// and unchanged.
pub fn verify_chain_anchored(
    rows: &[AuditRow],
    anchor: Option<&ChainAnchor>,
    hash: impl Fn(&[u8]) -> [u8; 32],
) -> ChainVerdict {
    let digests: Vec<[u8; 32]> = chain_inputs(rows).iter().map(|b| hash(b)).collect();
    verify_with(rows, anchor, &digests)
}

fn verify_with(rows: &[AuditRow], anchor: Option<&ChainAnchor>, digests: &[[u8; 32]]) -> ChainVerdict {
    let length = rows.len() as u64;
    let broken = |id: Option<i64>, why: ChainBreak| ChainVerdict {
        verified: false,
        length,
        first_broken_id: id,
        broken: Some(why),
        head: None,
    };
    for (i, (row, digest)) in rows.iter().zip(digests).enumerate() {
        if !is_hash(&row.hash) || !is_hash(&row.prev_hash) {
            return broken(Some(row.id), ChainBreak::MalformedHash);
        }
        if i == 0 {
            if row.prev_hash != GENESIS_PREV_HASH {
                return broken(Some(row.id), ChainBreak::BadGenesis);
            }
        } else {
            let prev = &rows[i - 1];
            if row.id <= prev.id {
                return broken(Some(row.id), ChainBreak::IdOrder);
            }
            if row.prev_hash != prev.hash {
                return broken(Some(row.id), ChainBreak::BrokenLink);
            }
        }
        if row.hash != hex(digest) {
            return broken(Some(row.id), ChainBreak::HashMismatch);
        }
    }
    if let Some(a) = anchor {
        if !rows.iter().any(|r| r.id == a.id && r.hash == a.hash) {
            return broken(Some(a.id), ChainBreak::AnchorMissing);
        }
    }
    ChainVerdict {
        verified: true,
        length,
        first_broken_id: None,
        broken: None,
        head: rows.last().map(|r| ChainAnchor { id: r.id, hash: r.hash.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A deterministic 32-byte test hash (four FNV-1a-64 lanes). NOT cryptographic:
    /// production uses SHA-256.
    fn test_hash(bytes: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        for lane in 0..4u64 {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ lane.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            out[(lane as usize) * 8..(lane as usize + 1) * 8].copy_from_slice(&h.to_be_bytes());
        }
        out
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut rows = Vec::new();
        let mut prev = GENESIS_PREV_HASH.to_string();
        for id in 1..=n {
            let content = json!({"ts": format!("2026-05-10T07:00:{:02}Z", id), "actor": "system", "action": "sale", "entity_id": id * 10, "amount_cents": 1250});
            let row = seal_row(&prev, id, content, if id < 3 { "0.4.10" } else { "0.4.11" }, test_hash);
            prev = row.hash.clone();
            rows.push(row);
        }
        rows
    }

    #[test]
    fn canonical_form_is_stable() {
        let a = json!({"b": 1, "a": {"z": [1, 2.5, 3.0], "y": "q\"x"}, "c": null});
        assert_eq!(canonical_json(&a), r#"{"a":{"y":"q\"x","z":[1,2.5,3]},"b":1,"c":null}"#);
        assert_eq!(
            canonical_content(7, "0.4.11", &json!({"action": "sale", "amount_cents": 1250.0})),
            r#"{"build_version":"0.4.11","content":{"action":"sale","amount_cents":1250},"id":7}"#
        );
        let mut rev = serde_json::Map::new();
        rev.insert("b".into(), json!(1));
        rev.insert("a".into(), json!(2));
        assert_eq!(canonical_json(&Value::Object(rev)), r#"{"a":2,"b":1}"#);
    }

    #[test]
    fn intact_chain_verifies() {
        let rows = chain(6);
        let v = verify_chain(&rows, test_hash);
        assert!(v.verified, "{v:?}");
        assert_eq!(v.length, 6);
        assert_eq!(v.first_broken_id, None);
        assert_eq!(v.head, Some(ChainAnchor { id: 6, hash: rows[5].hash.clone() }));
        assert!(verify_chain(&[], test_hash).verified);
    }

    #[test]
    fn tampered_content_is_caught_at_that_row() {
        let mut rows = chain(6);
        rows[3].content["amount_cents"] = json!(1);
        let v = verify_chain(&rows, test_hash);
        assert_eq!((v.verified, v.first_broken_id, v.broken), (false, Some(4), Some(ChainBreak::HashMismatch)));
        let mut rows = chain(6);
        rows[1].build_version = "0.4.11".into();
        assert_eq!(verify_chain(&rows, test_hash).first_broken_id, Some(2));
    }

    #[test]
    fn tampered_hash_is_caught() {
        // Hash edited alone: the row no longer matches its content.
        let mut rows = chain(6);
        rows[2].hash = "f".repeat(64);
        let v = verify_chain(&rows, test_hash);
        assert_eq!((v.first_broken_id, v.broken), (Some(3), Some(ChainBreak::HashMismatch)));
        // Content edited and its hash recomputed: the next row's link breaks.
        let mut rows = chain(6);
        rows[2].content["amount_cents"] = json!(1);
        rows[2].hash =
            chain_hash(&rows[2].prev_hash, &canonical_content(3, &rows[2].build_version, &rows[2].content), test_hash);
        let v = verify_chain(&rows, test_hash);
        assert_eq!((v.first_broken_id, v.broken), (Some(4), Some(ChainBreak::BrokenLink)));
        let mut rows = chain(3);
        rows[1].hash = "XYZ".into();
        assert_eq!(verify_chain(&rows, test_hash).broken, Some(ChainBreak::MalformedHash));
    }

    #[test]
    fn deleted_row_is_caught() {
        let mut rows = chain(6);
        rows.remove(2);
        let v = verify_chain(&rows, test_hash);
        assert_eq!((v.first_broken_id, v.broken, v.length), (Some(4), Some(ChainBreak::BrokenLink), 5));
        let mut rows = chain(6);
        rows.remove(0);
        assert_eq!(verify_chain(&rows, test_hash).broken, Some(ChainBreak::BadGenesis));
    }

    #[test]
    fn reordered_rows_are_caught() {
        let mut rows = chain(6);
        rows.swap(2, 3);
        let v = verify_chain(&rows, test_hash);
        assert_eq!((v.first_broken_id, v.broken), (Some(4), Some(ChainBreak::BrokenLink)));
        // Moved to the end: the ids go backwards.
        let mut rows = chain(6);
        let r = rows.remove(1);
        rows.push(r);
        let v = verify_chain(&rows, test_hash);
        assert_eq!((v.first_broken_id, v.broken), (Some(3), Some(ChainBreak::BrokenLink)));
        let mut rows = chain(3);
        rows[2].id = 2;
        assert_eq!(verify_chain(&rows, test_hash).broken, Some(ChainBreak::IdOrder));
        // Ids renumbered to hide the swap: the links still break.
        let mut rows = chain(6);
        rows.swap(2, 3);
        rows[2].id = 3;
        rows[3].id = 4;
        let v = verify_chain(&rows, test_hash);
        assert!(!v.verified);
        assert_eq!(v.first_broken_id, Some(3));
    }

    #[test]
    fn truncation_is_caught_by_the_anchor() {
        let rows = chain(6);
        let head = verify_chain(&rows, test_hash).head.unwrap();
        assert!(verify_chain_anchored(&rows, Some(&head), test_hash).verified);
        let v = verify_chain_anchored(&rows[..4], Some(&head), test_hash);
        assert_eq!((v.verified, v.first_broken_id, v.broken), (false, Some(6), Some(ChainBreak::AnchorMissing)));
        // Without an anchor a cut tail is a valid shorter chain: AuditChainWatch's length
        // check catches that case.
        assert!(verify_chain(&rows[..4], test_hash).verified);
    }
}
