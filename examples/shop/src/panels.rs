//! The sample app's panels on each shop's dashboard page (lookout's `Options::panels` hook):
//! today's revenue from D1 `transactions` and the open tickets from `tickets`, both for the
//! page's shop. "Today" is the UTC day of the operator's request.

use lookout::pages::{PanelCtx, PanelsFuture};
use lookout_core::dash::{usd_cents, Panel};
use serde::Deserialize;

/// `Options::panels` for the shop app.
pub fn shop_panels(p: PanelCtx) -> PanelsFuture {
    Box::pin(async move {
        #[derive(Deserialize)]
        struct Revenue {
            cents: Option<i64>,
            payments: i64,
        }
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let db = p.db()?;
        let day = chrono::DateTime::from_timestamp_millis(p.now_ms).unwrap_or_default().format("%Y-%m-%dT00:00:00Z");
        let revenue: Option<Revenue> = db
            .first(
                "SELECT SUM(x.amount_cents) AS cents, COUNT(*) AS payments FROM transactions x \
                 JOIN tickets t ON t.id = x.ticket_id WHERE t.shop = ? AND x.created_at >= ?",
                &[p.shop.as_str().into(), day.to_string().into()],
            )
            .await?;
        let open: Option<Count> = db
            .first("SELECT COUNT(*) AS n FROM tickets WHERE shop = ? AND status = 'open'", &[p.shop.as_str().into()])
            .await?;
        let (cents, payments) = revenue.map(|r| (r.cents.unwrap_or(0), r.payments)).unwrap_or((0, 0));
        let open = open.map(|c| c.n).unwrap_or(0);
        Ok(vec![
            Panel::new("revenue_today", "Revenue today", cents as f64 / 100.0, usd_cents(cents))
                .detail(format!("{payments} payment{}", if payments == 1 { "" } else { "s" })),
            Panel::new("open_tickets", "Open tickets", open as f64, open.to_string()).detail("status open"),
        ])
    })
}
