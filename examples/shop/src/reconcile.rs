//! The daily reconciliation job, on the sample app's D1 through lookout's counted `Db` (its
//! queries are counted into the summary line like a request's): the day's sales (each payment
//! of the last 24 hours against its ticket's line total), low-stock items, and the shop's
//! hash-chained audit log (SHA-256, `lookout_core::audit`). Figures go into the run's
//! `results` as they are known, so a failure part-way still reports what was done. A broken
//! chain is a result (`audit_chain_verified: false`), not an error: the monitor fires
//! `audit_chain_broken` from it. Last, the shop's R2 storage is sampled for its dashboard.

use chrono::{DateTime, SecondsFormat};
use lookout::cron::{JobCtx, JobResult};
use lookout::db::{int, Db};
use lookout_core::audit;
use serde::Deserialize;

/// Rows read per query when walking the audit chain.
const AUDIT_PAGE: i64 = 1000;
/// How far back "the day's sales" reach from the run's start.
const SALES_WINDOW_MS: i64 = 86_400_000;

fn ts(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default()
}

pub async fn run(job: JobCtx) -> JobResult {
    let db = job.db()?;
    sales(&db, &job).await?;
    low_stock(&db, &job).await?;
    audit_chain(&db, &job).await?;
    r2_usage(&job).await?;
    Ok(())
}

/// The shop's ticket photos in R2, sampled for its dashboard (`r2_bytes`, `r2_objects`).
/// Photos are keyed `shops/{shop}/tickets/{id}/{name}` (services.rs), so the shop's are
/// exactly those under its prefix.
async fn r2_usage(job: &JobCtx) -> JobResult {
    let prefix = format!("shops/{}/", job.shop);
    job.sample_r2_usage(&prefix, |_| true).await?;
    Ok(())
}

async fn sales(db: &Db, job: &JobCtx) -> JobResult {
    #[derive(Deserialize)]
    struct Sale {
        amount_cents: i64,
        lines_cents: Option<i64>,
    }
    let since = ts(job.started_at_ms - SALES_WINDOW_MS);
    let sales: Vec<Sale> = db
        .all(
            "SELECT t.amount_cents, (SELECT SUM(l.qty * l.unit_cents) FROM ticket_lines l WHERE l.ticket_id = t.ticket_id) AS lines_cents \
             FROM transactions t JOIN tickets k ON k.id = t.ticket_id WHERE k.shop = ?1 AND t.created_at >= ?2",
            &[job.shop.as_str().into(), since.into()],
        )
        .await?;
    let total: i64 = sales.iter().map(|s| s.amount_cents).sum();
    let mismatched = sales.iter().filter(|s| s.lines_cents.unwrap_or(0) != s.amount_cents).count();
    job.int("sales_reconciled", sales.len() as i64)
        .int("sales_total_cents", total)
        .int("sales_mismatched", mismatched as i64);
    Ok(())
}

async fn low_stock(db: &Db, job: &JobCtx) -> JobResult {
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let c: Option<Count> = db
        .first(
            "SELECT COUNT(*) AS n FROM products WHERE shop = ?1 AND stock_qty <= reorder_level",
            &[job.shop.as_str().into()],
        )
        .await?;
    job.int("low_stock_alerts", c.map_or(0, |c| c.n));
    Ok(())
}

async fn audit_chain(db: &Db, job: &JobCtx) -> JobResult {
    #[derive(Deserialize)]
    struct Row {
        id: i64,
        prev_hash: String,
        hash: String,
        content: String,
        build_version: String,
    }
    let mut rows = Vec::new();
    let mut after = 0i64;
    loop {
        let page: Vec<Row> = db
            .all(
                "SELECT id, prev_hash, hash, content, build_version FROM audit_events \
                 WHERE shop = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                &[job.shop.as_str().into(), int(after), int(AUDIT_PAGE)],
            )
            .await?;
        let n = page.len() as i64;
        for r in page {
            after = r.id;
            rows.push(audit::row_from_db(r.id, r.prev_hash, r.hash, &r.content, r.build_version));
        }
        if n < AUDIT_PAGE {
            break;
        }
    }
    let verdict = audit::verify(&rows);
    job.flag("audit_chain_verified", verdict.verified).int("audit_chain_length", verdict.length as i64);
    if let Some(id) = verdict.first_broken_id {
        job.int("audit_chain_first_broken_id", id);
    }
    Ok(())
}
