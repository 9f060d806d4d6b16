//! The hash-chained audit log, pure: the canonical form of a row, chain hashing and
//! verification (chain.rs), the app's audit events sealed with SHA-256 (seal.rs), and the
//! `audit_chain_broken` alert fed by the reconciliation job's results (watch.rs).
//!
//! ```text
//!  app mutation ──► AuditEvent::content ──► seal(prev_hash, id, content) ──► D1 row (the app)
//!  reconciliation job: rows ──► row_from_db ──► verify ──► results {audit_chain_verified, ...}
//!  monitor: end check-in results ──► AuditChainWatch::observe_results ──► audit_chain_broken
//! ```
//!
//! One chain per shop; the format is in chain.rs. The D1 reads and writes are the app's; the
//! watch is persisted with the cron state (`CronPersisted::audit`).

mod chain;
mod seal;
mod watch;

pub use chain::{
    canonical_content, canonical_json, chain_hash, chain_input, seal_row, verify_chain, verify_chain_anchored,
    AuditRow, ChainAnchor, ChainBreak, ChainVerdict, GENESIS_PREV_HASH,
};
pub use seal::{content_text, row_from_db, seal, sha256, verify, AuditEvent};
pub use watch::AuditChainWatch;
