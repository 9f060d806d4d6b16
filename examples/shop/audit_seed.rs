//! Prints the `audit_events` rows of examples/shop/seed.sql: valid SHA-256 hash chains per shop,
//! sealed with the same code the app uses. Regenerate after changing the rows here:
//! `cargo run -p shop-app --example audit_seed`, then paste the statement into seed.sql (the
//! native test `the_seed_chains_verify_with_sha256` checks the file).

use lookout_core::audit::{content_text, seal, AuditEvent};

fn main() {
    // (id, shop, ts, action, entity, entity_id, staff, customer, figures, build)
    #[allow(clippy::type_complexity)]
    let events: Vec<(
        i64,
        &str,
        &str,
        &'static str,
        &'static str,
        i64,
        u32,
        Option<i64>,
        Vec<(&'static str, i64)>,
        &str,
    )> = vec![
        (1, "swicked", "2026-04-28T09:12:00Z", "ticket_created", "ticket", 2506, 3, Some(1), vec![], "0.0.9+seed"),
        (
            2,
            "swicked",
            "2026-04-28T09:14:30Z",
            "ticket_line_added",
            "ticket",
            2506,
            3,
            Some(1),
            vec![("qty", 1), ("unit_cents", 12_900)],
            "0.0.9+seed",
        ),
        (
            3,
            "swicked",
            "2026-04-28T09:15:10Z",
            "ticket_line_added",
            "ticket",
            2506,
            3,
            Some(1),
            vec![("qty", 2), ("unit_cents", 4_500)],
            "0.0.9+seed",
        ),
        (4, "demo", "2026-04-29T10:00:00Z", "ticket_created", "ticket", 3001, 4, Some(1), vec![], "0.0.9+seed"),
        (5, "swicked", "2026-04-30T11:02:00Z", "ticket_created", "ticket", 2507, 4, Some(2), vec![], "0.1.0+seed"),
        (
            6,
            "swicked",
            "2026-04-30T11:05:00Z",
            "ticket_line_added",
            "ticket",
            2507,
            4,
            Some(2),
            vec![("qty", 1), ("unit_cents", 5_900)],
            "0.1.0+seed",
        ),
        (7, "demo", "2026-04-30T12:00:00Z", "ticket_created", "ticket", 3002, 4, Some(2), vec![], "0.1.0+seed"),
        (
            8,
            "swicked",
            "2026-05-01T16:40:00Z",
            "payment_recorded",
            "ticket",
            2506,
            3,
            Some(1),
            vec![("amount_cents", 21_900)],
            "0.1.0+seed",
        ),
        (
            9,
            "demo",
            "2026-05-01T17:00:00Z",
            "stock_adjusted",
            "product",
            103,
            4,
            None,
            vec![("delta", -2)],
            "0.1.0+seed",
        ),
    ];
    let mut heads: Vec<(&str, String)> = Vec::new();
    let mut lines = Vec::new();
    for (id, shop, ts, action, entity, entity_id, staff, customer, figures, build) in events {
        let e = AuditEvent {
            ts: ts.into(),
            shop: shop.into(),
            action,
            entity,
            entity_id,
            staff_id: Some(staff),
            context_customer_id: customer,
            figures,
        };
        let prev = heads.iter().find(|(s, _)| *s == shop).map(|(_, h)| h.clone());
        let row = seal(prev.as_deref(), id, e.content(), build);
        heads.retain(|(s, _)| *s != shop);
        heads.push((shop, row.hash.clone()));
        lines.push(format!(
            "  ({}, '{shop}', '{}', '{}', '{}', '{}')",
            row.id,
            row.prev_hash,
            row.hash,
            content_text(&row),
            row.build_version
        ));
    }
    println!("INSERT OR REPLACE INTO audit_events (id, shop, prev_hash, hash, content, build_version) VALUES");
    println!("{};", lines.join(",\n"));
}
