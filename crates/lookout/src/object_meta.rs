//! The `meta(key, value)` table both Durable Objects keep (the shop monitor and the fleet
//! object): one text value per key, each part of their state written when it changed.

use worker::{Result, SqlCursor, SqlStorage};

/// The table's DDL, run when an object starts.
pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)";
/// Write one key: bind `key`, `value`.
pub(crate) const PUT: &str = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)";

/// The value under `key` (`None` when absent), and the spent cursor (for its row counts).
pub(crate) fn get(sql: &SqlStorage, key: &str) -> Result<(Option<String>, SqlCursor)> {
    #[derive(serde::Deserialize)]
    struct Row {
        value: String,
    }
    let cursor = sql.exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?;
    let rows: Vec<Row> = cursor.to_array()?;
    Ok((rows.into_iter().next().map(|r| r.value), cursor))
}
