//! Property tests ("fuzzing") of every parser of untrusted input in the core, through the
//! public API: the monitor's ingest batch (partial buckets, records, check-ins), `ALERT_RULES`, `CRON_WATCH` and cron expressions,
//! the Host header and the shop vars, `cf-ray`, the operator's `Authorization`, and (in
//! their own modules) `Stripe-Signature`, route ids, paths and `Content-Length`. Arbitrary
//! input, and input in the expected shape with arbitrary values: never a panic, always a
//! clear answer (an error that says what is wrong), and good items beside bad ones kept.
//! Failing cases are kept in `proptest-regressions/` (checked in).

use lookout_core::auth::check_bearer;
use lookout_core::cron::{watch_list_from_var, Schedule, WatchList};
use lookout_core::ingest::{parse_batch, partials_bodies, MAX_INGEST_BYTES};
use lookout_core::monitor::RuleSet;
use lookout_core::partial::PartialAccumulator;
use lookout_core::record::RequestRecord;
use lookout_core::request_id::{is_request_id, make_request_id};
use lookout_core::shop::{is_slug, ShopResolution, ShopSet};
use proptest::prelude::*;
use proptest::sample::select;

const NOW_MS: i64 = 1_778_421_791_000;

/// A valid record line of `shop`, as the wrapper writes it.
fn record_line(shop: &str, i: usize) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(NOW_MS).unwrap();
    let mut r = RequestRecord::start(ts, format!("req_{:012}", i), "GET", "/health", "0.1.0+abc1234");
    r.shop = Some(shop.to_string());
    r.status = 200;
    r.ms = 3.0;
    r.to_line()
}

/// JSON values of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Ingest: any bytes are refused with a reason or parsed; nothing panics.
    #[test]
    fn ingest_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        match parse_batch(&body, "swicked", NOW_MS) {
            Ok(p) => prop_assert!(p.rejected.iter().all(|r| !r.reason.is_empty())),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Ingest: a batch of good records, junk and other shops' records keeps exactly the good
    /// ones and names each rejected item by its position.
    #[test]
    fn ingest_keeps_good_records_beside_bad(items in proptest::collection::vec((0..4usize, json_value()), 0..40)) {
        let mut lines = Vec::new();
        let mut good = Vec::new();
        for (i, (kind, junk)) in items.iter().enumerate() {
            match kind {
                0 => {
                    lines.push(record_line("swicked", i));
                    good.push(i);
                }
                1 => lines.push(record_line("demo", i)),
                _ => lines.push(junk.to_string()),
            }
        }
        let body = lookout_core::ingest::batch_body(lines.iter().map(String::as_str));
        let p = parse_batch(body.as_bytes(), "swicked", NOW_MS).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(p.records.len(), good.len(), "{:?}", p.rejected);
        prop_assert_eq!(p.records.len() + p.rejected.len(), lines.len());
        for (r, i) in p.records.iter().zip(&good) {
            prop_assert_eq!(&r.request_id, &format!("req_{:012}", i));
        }
        let rejected: Vec<usize> = p.rejected.iter().map(|r| r.index).collect();
        prop_assert!(rejected.iter().all(|i| !good.contains(i)));
    }

    /// Ingest: partial buckets as an isolate sends them, some tampered with (a field set to an
    /// arbitrary JSON value), some of another shop, some junk: the untouched ones of this shop
    /// are kept and every other one is named by its position.
    #[test]
    fn ingest_partials_keep_good_beside_bad(
        slots in proptest::collection::vec((0..4usize, 0i64..50, 1usize..4, json_value(), select(&["v", "id", "shop", "start_ms", "span_ms", "requests", "errors_5xx", "first_ts_ms", "last_ts_ms", "request_ms", "d1_ms", "build_version", "errors", "samples", "cost_micros"][..])), 0..12),
    ) {
        let mut items: Vec<(bool, serde_json::Value)> = Vec::new();
        for (i, (kind, second, n, junk, field)) in slots.iter().enumerate() {
            let shop = if *kind == 1 { "demo" } else { "swicked" };
            let mut acc = PartialAccumulator::default();
            for k in 0..*n {
                let ts = chrono::DateTime::from_timestamp_millis(NOW_MS - 60_000 + second * 1000).unwrap();
                let mut r = RequestRecord::start(ts, format!("req_{:012}", i * 10 + k), "GET", "/health", "0.1.0+abc1234");
                r.shop = Some(shop.to_string());
                r.status = if k % 2 == 0 { 200 } else { 503 };
                r.ms = 4.0 + k as f64;
                acc.fold(&r);
            }
            for p in acc.take(shop, || format!("iso-{i}")) {
                let mut v = serde_json::to_value(&p).unwrap();
                match kind {
                    2 => {
                        v[*field] = junk.clone();
                        items.push((false, v));
                    }
                    3 => items.push((false, junk.clone())),
                    _ => items.push((*kind == 0, v)),
                }
            }
        }
        let body = serde_json::json!({"partials": items.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()}).to_string();
        let p = parse_batch(body.as_bytes(), "swicked", NOW_MS).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let good = items.iter().filter(|(g, _)| *g).count();
        // A tampered partial may still be valid (a field set to an acceptable value): at
        // least the good ones are kept, and everything is either kept or named.
        prop_assert!(p.partials.len() >= good, "{:?}", p.rejected);
        prop_assert_eq!(p.partials.len() + p.rejected.len(), items.len());
        for r in &p.rejected {
            prop_assert!(!items[r.index].0, "a good partial was rejected: {:?}", r);
            prop_assert!(!r.reason.is_empty());
        }
        // What the isolate's own body builder gives is accepted whole.
        let valid: Vec<_> = items.iter().filter(|(g, _)| *g).map(|(_, v)| serde_json::from_value(v.clone()).unwrap()).collect();
        for (body, _) in partials_bodies(&valid) {
            let p = parse_batch(body.as_bytes(), "swicked", NOW_MS).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        }
    }

    /// Ingest: any JSON document (objects with `partials`/`records`/`cron_check_ins` of any content).
    #[test]
    fn ingest_any_json(records in json_value(), check_ins in json_value(), which in 0..4usize) {
        let body = match which {
            0 => serde_json::json!({"records": records}),
            1 => serde_json::json!({"cron_check_ins": check_ins}),
            2 => serde_json::json!({"partials": records}),
            _ => serde_json::json!({"records": records, "cron_check_ins": check_ins, "partials": check_ins}),
        }
        .to_string();
        if let Ok(p) = parse_batch(body.as_bytes(), "swicked", NOW_MS) {
            prop_assert!(p.records.iter().all(|r| r.shop.as_deref() == Some("swicked")));
        }
    }

    /// ALERT_RULES: any text and any JSON object is accepted or refused with a message; an
    /// accepted set validates.
    #[test]
    fn alert_rules_any_input(text in "\\PC{0,200}", v in json_value()) {
        for input in [text, v.to_string()] {
            match RuleSet::from_alert_rules_json(&input) {
                Ok(set) => prop_assert!(set.validate().is_ok()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    /// ALERT_RULES in its own shape: known rules and fields with arbitrary values.
    #[test]
    fn alert_rules_shaped(
        entries in proptest::collection::vec((
            select(&["http_5xx_rate", "request_p95", "d1_p95", "stripe_signature_failures", "bucket_s", "eval_interval_s", "repeat_interval_s", "nope"][..]),
            proptest::collection::btree_map(
                select(&["enabled", "window_s", "for_s", "keep_firing_for_s", "severity", "threshold_ratio", "clear_ratio", "min_requests", "threshold_ms", "clear_ms", "min_samples", "threshold_count", "clear_count", "typo"][..]),
                prop_oneof![any::<i64>().prop_map(serde_json::Value::from), any::<bool>().prop_map(serde_json::Value::from), (-10.0f64..1e6).prop_map(serde_json::Value::from), "[a-z]{0,8}".prop_map(serde_json::Value::from)],
                0..5,
            ),
            any::<u32>(),
        ), 0..6),
    ) {
        let mut doc = serde_json::Map::new();
        for (name, fields, n) in entries {
            let value = if name.ends_with("_s") {
                serde_json::Value::from(n % 100_000)
            } else {
                serde_json::Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            };
            doc.insert(name.to_string(), value);
        }
        let json = serde_json::Value::Object(doc).to_string();
        match RuleSet::from_alert_rules_json(&json) {
            Ok(set) => prop_assert!(set.validate().is_ok()),
            Err(e) => prop_assert!(!e.to_string().is_empty(), "{:?}", e),
        }
    }

    /// CRON_WATCH: any text and any JSON is a watch list or an error naming what is wrong.
    #[test]
    fn cron_watch_any_input(text in "\\PC{0,200}", v in json_value()) {
        for input in [text, v.to_string()] {
            match WatchList::parse(&input) {
                Ok(list) => prop_assert!(list.entries().iter().all(|e| Schedule::parse(e.schedule.expression()).is_ok())),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
            let (_list, _err) = watch_list_from_var(Some(&input));
        }
    }

    /// CRON_WATCH in its own shape with arbitrary names, schedules and numbers.
    #[test]
    fn cron_watch_shaped(entries in proptest::collection::vec((
        "[a-z_0-9A-Z-]{0,12}",
        prop_oneof!["[0-9*/,LW#-]{1,4} [0-9*/,-]{1,4} [0-9*/,LW?-]{1,4} [0-9*/,A-Z-]{1,5} [0-9*/,A-Z#L-]{1,5}", "\\PC{0,20}"],
        any::<i64>(),
        any::<i64>(),
        "[a-z0-9]{0,10}",
    ), 0..5)) {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|(cron, schedule, grace, max, code)| serde_json::json!({"cron": cron, "schedule": schedule, "grace_s": grace, "max_runtime_s": max, "code": code}))
            .collect();
        match WatchList::parse(&serde_json::Value::from(list).to_string()) {
            Ok(l) => prop_assert!(l.entries().len() <= entries.len()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Cron expressions: anything is a schedule or a schedule error.
    #[test]
    fn cron_expressions(expr in prop_oneof!["\\PC{0,40}", "[0-9*/,LW#?A-Z -]{0,30}"]) {
        if let Ok(s) = Schedule::parse(&expr) {
            let _ = s.next_after_ms(NOW_MS);
            let _ = s.prev_at_or_before_ms(NOW_MS);
        }
    }

    /// Host: any header resolves to a listed shop, an unknown slug (safe to log) or nothing.
    #[test]
    fn host_any_input(host in prop_oneof!["\\PC{0,80}", "[a-zA-Z0-9.:_-]{0,40}"], shops in "\\PC{0,60}", slug in "\\PC{0,20}") {
        let (set, _err) = ShopSet::from_vars(None, Some(&shops));
        match set.resolve(&host) {
            ShopResolution::Known(s) => prop_assert!(is_slug(&s) && set.contains(&s)),
            ShopResolution::Unknown(s) => prop_assert!(is_slug(&s) && !set.contains(&s)),
            ShopResolution::Missing => {}
        }
        let (one, err) = ShopSet::from_vars(Some(&slug), Some(&shops));
        prop_assert!(one.all().iter().all(|s| is_slug(s)));
        prop_assert!(err.is_none() || !err.unwrap().to_string().is_empty());
    }

    /// cf-ray: any header value gives a well-formed request id.
    #[test]
    fn cf_ray_any_input(ray in proptest::option::of("\\PC{0,80}"), random in any::<u64>()) {
        let id = make_request_id(ray.as_deref(), random);
        prop_assert!(is_request_id(&id), "{}", id);
    }

    /// Authorization: any header is accepted only when it is exactly `Bearer <token>`.
    #[test]
    fn bearer_any_input(header in proptest::option::of("\\PC{0,60}"), token in "[A-Za-z0-9]{1,20}") {
        let ok = check_bearer(header.as_deref(), Some(&token)).is_ok();
        prop_assert_eq!(ok, header.as_deref() == Some(format!("Bearer {token}").as_str()));
        prop_assert!(check_bearer(header.as_deref(), None).is_err());
    }
}

#[test]
fn ingest_refuses_oversize_bodies_before_parsing() {
    let body = vec![b' '; MAX_INGEST_BYTES + 1];
    assert!(parse_batch(&body, "swicked", NOW_MS).is_err());
}
