//! The fleet board: sorting by trouble, totals, the push gate, refused summaries.

use super::*;

/// 2026-05-10T12:00:00Z
const NOW: i64 = 1_778_414_400_000;

fn summary(shop: &str, at_ms: i64) -> ShopSummary {
    ShopSummary {
        shop: shop.into(),
        at_ms,
        firing: vec![],
        requests_1h: 100,
        errors_5xx_1h: 0,
        request_p95_ms: Some(42.0),
        request_p95_window_s: 600,
        day_start_ms: day_start(at_ms),
        crons_today: CronsToday { runs: 2, missed: 0 },
        month_start_ms: month_start(at_ms),
        ai_spend_month_micros: 1_000_000,
        top_error_classes_1h: vec![],
    }
}

fn firing(rule: &str, severity: Severity) -> FiringSummary {
    FiringSummary { rule: rule.into(), severity, since: Some("2026-05-10T11:59:00.000Z".into()), cron: None }
}

fn class(name: &str, count: u64) -> ClassCount {
    ClassCount { class: name.into(), count }
}

#[test]
fn shops_are_sorted_by_trouble_and_totals_add_up() {
    let mut b = FleetBoard::new();
    let mut quiet = summary("quiet", NOW - 1000);
    quiet.requests_1h = 5000;
    let mut warn = summary("warn", NOW - 1000);
    warn.firing = vec![firing("request_p95", Severity::Warning)];
    let mut crit = summary("crit", NOW - 1000);
    crit.firing = vec![firing("http_5xx_rate", Severity::Critical)];
    crit.errors_5xx_1h = 40;
    crit.top_error_classes_1h = vec![class("D1Error", 30), class("JsError", 10)];
    let mut elevated = summary("elevated", NOW - 1000);
    elevated.errors_5xx_1h = 5;
    elevated.top_error_classes_1h = vec![class("D1Error", 5)];
    let mut tiny = summary("tiny", NOW - 1000);
    tiny.requests_1h = 3;
    tiny.errors_5xx_1h = 3;
    let old = summary("asleep", NOW - STALE_AFTER_MS - 1);
    for s in [quiet, warn, crit, elevated, tiny, old] {
        assert!(b.upsert(s));
    }
    let known: Vec<String> = ["quiet", "never", "crit"].iter().map(|s| s.to_string()).collect();
    let v = b.view(&known, NOW, DEFAULT_LIMIT);
    let order: Vec<&str> = v.shops.iter().map(|s| s.shop.as_str()).collect();
    assert_eq!(order, ["crit", "warn", "elevated", "asleep", "tiny", "quiet", "never"]);
    let t = &v.totals;
    assert_eq!((t.shops, t.shops_reporting, t.shops_firing, t.firing_alerts), (7, 6, 2, 2));
    // "tiny" has 100% 5xx but only 3 requests: not elevated; "crit" fires the 5xx rule.
    assert_eq!(t.shops_elevated_errors, 2);
    assert_eq!(t.requests_1h, 5000 + 100 * 4 + 3);
    assert_eq!(t.cron_runs_today, 12);
    assert_eq!(t.ai_spend_month_micros, 6_000_000);
    assert_eq!(
        v.top_error_classes,
        vec![
            FleetClass { class: "D1Error".into(), count: 35, shops: 2 },
            FleetClass { class: "JsError".into(), count: 10, shops: 1 }
        ]
    );
    let never = v.shops.iter().find(|s| s.shop == "never").unwrap();
    assert!(never.stale && never.summary_at.is_none());
    assert!(v.shops.iter().find(|s| s.shop == "asleep").unwrap().stale);
    assert_eq!(v.oldest_summary_at, Some(rfc3339_ms(NOW - STALE_AFTER_MS - 1)));
    // A limit keeps the most troubled; the totals still count everyone.
    let v2 = b.view(&known, NOW, 2);
    assert_eq!(v2.shops.len(), 2);
    assert_eq!(v2.shops_omitted, 5);
    assert_eq!(v2.totals, v.totals);
}

#[test]
fn an_older_summary_never_replaces_a_newer_one() {
    let mut b = FleetBoard::new();
    assert!(b.upsert(summary("a", NOW)));
    let mut older = summary("a", NOW - 5);
    older.requests_1h = 1;
    assert!(!b.upsert(older));
    assert_eq!(b.view(&[], NOW, 10).shops[0].requests_1h, 100);
}

#[test]
fn yesterdays_crons_and_last_months_spend_do_not_count() {
    let mut b = FleetBoard::new();
    b.upsert(summary("a", NOW - 13 * 3600 * 1000));
    let v = b.view(&[], NOW, 10);
    assert_eq!(v.shops[0].crons_today, CronsToday::default());
    assert_eq!(v.shops[0].ai_spend_month_micros, 1_000_000, "same month");
    let v = b.view(&[], NOW + 31 * 86_400_000, 10);
    assert_eq!(v.shops[0].ai_spend_month_micros, 0, "the month is over");
}

#[test]
fn the_gate_pushes_changes_at_once_and_the_rest_every_30_s() {
    let mut g = SummaryGate::default();
    let s0 = summary("a", NOW);
    assert!(g.due(&s0), "never sent");
    g.sending(&s0);
    assert!(!g.due(&summary("a", NOW + 60_000)), "one push at a time");
    g.sent(true);
    // A fake clock: nothing changed -> due after 30 s only.
    for (dt, expected) in [(1_000, false), (29_999, false), (30_000, true)] {
        assert_eq!(g.due(&summary("a", NOW + dt)), expected, "+{dt} ms");
    }
    let mut fire = summary("a", NOW + 2_000);
    fire.firing = vec![firing("http_5xx_rate", Severity::Critical)];
    assert!(g.due(&fire), "a firing alert goes at once");
    g.sending(&fire);
    g.sent(true);
    assert!(!g.due(&fire));
    assert!(g.due(&summary("a", NOW + 3_000)), "so does its resolve");
    // A failed push is due again.
    let s = summary("a", NOW + 4_000);
    g.sending(&s);
    g.sent(false);
    assert!(g.due(&summary("a", NOW + 4_500)));
    // While the last push showed traffic, the monitor wakes to send the next.
    assert_eq!(g.next_due_ms(), Some(NOW + 4_000 + SUMMARY_EVERY_MS));
    let mut idle = summary("a", NOW + 40_000);
    idle.requests_1h = 0;
    g.sending(&idle);
    g.sent(true);
    assert_eq!(g.next_due_ms(), None);
}

#[test]
fn bad_summaries_are_refused() {
    let ok = serde_json::to_vec(&summary("a", NOW)).unwrap();
    assert!(ShopSummary::parse(&ok).is_ok());
    let mut bad = summary("A B", NOW);
    assert!(ShopSummary::parse(&serde_json::to_vec(&bad).unwrap()).is_err());
    bad = summary("a", NOW);
    bad.errors_5xx_1h = 101;
    assert!(ShopSummary::parse(&serde_json::to_vec(&bad).unwrap()).is_err());
    bad = summary("a", NOW);
    bad.top_error_classes_1h = (0..6).map(|i| class(&format!("C{i}"), 1)).collect();
    assert!(ShopSummary::parse(&serde_json::to_vec(&bad).unwrap()).is_err());
    assert!(matches!(ShopSummary::parse(&vec![b' '; MAX_SUMMARY_BYTES + 1]), Err(SummaryError::TooLarge { .. })));
    assert!(matches!(ShopSummary::parse(b"{}"), Err(SummaryError::Invalid(_))));
    let (board, skipped) = FleetBoard::restore([std::str::from_utf8(&ok).unwrap(), "junk"]);
    assert_eq!((board.len(), skipped), (1, 1));
}
