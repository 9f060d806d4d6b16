//! Property tests: random PII and secrets (emails, phones, cards, API keys, names) fed through
//! every logging path of the dependency layer never come out, and arbitrary input never
//! panics. Tests only; the generators are shared with `route`'s property tests.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::select;

use super::*;
use crate::redact::scrub_text;

/// A generated piece of personal data or secret, and what must not be found afterwards.
#[derive(Debug, Clone)]
pub(crate) struct Pii {
    pub(crate) text: String,
    /// Substrings that must not appear in any output.
    pub(crate) needles: Vec<String>,
    /// For numbers: this digit sequence must not appear among the output's digits once the
    /// other characters are removed (catches a number leaked in pieces).
    pub(crate) digits: Option<String>,
}

impl Pii {
    fn whole(text: String) -> Pii {
        Pii { needles: vec![text.clone()], text, digits: None }
    }

    fn number(text: String) -> Pii {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        // Phone numbers: the national part (without the country code) must not leak either.
        let national = digits.chars().skip(digits.len().saturating_sub(10)).collect();
        Pii { needles: vec![text.clone()], text, digits: Some(national) }
    }
}

#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Alice", "Bob", "Maria", "José", "Siobhan", "Wei", "Priya", "Olu", "Dmitri", "Aisha", "Zoë",
    "Mateo",
];
/// Last names, each with the parts that must not leak.
const LAST_NAMES: &[(&str, &[&str])] = &[
    ("Smith", &["Smith"]),
    ("García", &["García"]),
    ("Nguyen", &["Nguyen"]),
    ("O'Brien", &["Brien"]),
    ("McDonald", &["McDonald", "Donald"]),
    ("Okafor", &["Okafor"]),
    ("Kowalski", &["Kowalski"]),
    ("Smith-Jones", &["Smith", "Jones"]),
    ("Müller", &["Müller"]),
    ("Patel", &["Patel"]),
];

fn email() -> impl Strategy<Value = Pii> {
    "[a-z]{3,8}(\\.[a-z]{2,6})?(\\+[a-z]{2,5})?@[a-z]{3,10}\\.(com|io|co\\.uk|shop)".prop_map(Pii::whole)
}

fn phone() -> impl Strategy<Value = Pii> {
    ("[2-9][0-9]{2}", "[2-9][0-9]{2}", "[0-9]{4}", 0..9usize).prop_map(|(a, e, l, f)| {
        let text = match f {
            0 => format!("+1 {a} {e} {l}"),
            1 => format!("({a}) {e}-{l}"),
            2 => format!("{a}-{e}-{l}"),
            3 => format!("{a}.{e}.{l}"),
            4 => format!("+1{a}{e}{l}"),
            5 => format!("{a} {e} {l}"),
            6 => format!("+1 ({a}) {e}-{l}"),
            7 => format!("+1-{a}-{e}-{l}"),
            _ => format!("+44 20 {}{} {l}", &a[..2], &e[..2]),
        };
        Pii::number(text)
    })
}

fn card() -> impl Strategy<Value = Pii> {
    let visa = ("[45][0-9]{15}", 0..6usize).prop_map(|(d, g)| {
        let groups: Vec<&str> = (0..4).map(|i| &d[i * 4..i * 4 + 4]).collect();
        match g {
            0 => d.clone(),
            1 => groups.join(" "),
            2 => groups.join("-"),
            3 => groups.join("."),
            4 => groups.join(" - "),
            _ => groups.join("  "),
        }
    });
    let amex = "3[47][0-9]{13}".prop_map(|d| format!("{} {} {}", &d[..4], &d[4..10], &d[10..]));
    prop_oneof![visa, amex].prop_map(Pii::number)
}

fn api_key() -> impl Strategy<Value = Pii> {
    prop_oneof![
        (select(&["sk_live_", "sk_test_", "rk_live_"][..]), "[A-Za-z0-9]{24,40}").prop_map(|(p, r)| format!("{p}{r}")),
        "[A-Za-z0-9]{32}".prop_map(|r| format!("whsec_{r}")),
        "[A-Za-z0-9_-]{40,90}".prop_map(|r| format!("sk-ant-api03-{r}")),
        "[0-9a-f]{32}",
        (select(&["AC", "SM"][..]), "[0-9a-f]{32}").prop_map(|(p, r)| format!("{p}{r}")),
    ]
    .prop_map(Pii::whole)
}

fn name() -> impl Strategy<Value = Pii> {
    (select(FIRST_NAMES), select(LAST_NAMES), 0..3usize).prop_map(|(first, (last, parts), form)| {
        let (text, needles): (String, Vec<String>) = match form {
            0 => (
                format!("{first} {last}"),
                std::iter::once(first).chain(parts.iter().copied()).map(String::from).collect(),
            ),
            1 => (first.to_string(), vec![first.to_string()]),
            _ => (last.to_string(), parts.iter().map(|p| p.to_string()).collect()),
        };
        Pii { text, needles, digits: None }
    })
}

pub(crate) fn pii() -> impl Strategy<Value = Pii> {
    prop_oneof![email(), phone(), card(), api_key(), name()]
}

/// Filler without digits or names: lower-case words and capitalized error vocabulary.
fn filler() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        select(
            &[
                "card",
                "declined",
                "for",
                "the",
                "payment",
                "failed",
                "please",
                "retry",
                "Your",
                "The",
                "Error:",
                "Invalid",
                "Request",
                "message",
                "to",
                "from",
                "customer",
                "was",
                "not",
                "found",
                "-",
                "(see docs)",
            ][..],
        ),
        0..5,
    )
    .prop_map(|w| w.join(" "))
}

/// `pii` embedded in free text in one of several ways people write things.
fn free_text() -> impl Strategy<Value = (Pii, String)> {
    (pii(), filler(), filler(), 0..11usize).prop_map(|(p, a, b, form)| {
        let t = &p.text;
        let text = match form {
            0 => format!("{a} {t} {b}"),
            1 => format!("{a} ({t}) {b}"),
            2 => format!("{a}: {t}. {b}"),
            3 => format!("{a} '{t}' {b}"),
            4 => format!("{a} \"{t}\" {b}"),
            5 => format!("{a} <{t}> {b}"),
            6 => format!("{a} to:{t} {b}"),
            7 => format!("{t} {b}"),
            8 => format!("{a} [{t}]"),
            9 => format!("{a} {t},{b}"),
            _ => format!("{a}\n{t}\n{b}"),
        };
        (p, text)
    })
}

pub(crate) fn assert_clean(p: &Pii, path: &str, out: &str) -> Result<(), TestCaseError> {
    for n in &p.needles {
        prop_assert!(!out.contains(n.as_str()), "{path}: {n:?} found in {out:?}");
    }
    if let Some(d) = &p.digits {
        let out_digits: String = out.chars().filter(char::is_ascii_digit).collect();
        prop_assert!(!out_digits.contains(d.as_str()), "{path}: digits {d} found in {out:?}");
    }
    Ok(())
}

pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scrub_text_never_leaks((p, text) in free_text()) {
        assert_clean(&p, "scrub_text", &scrub_text(&text))?;
    }

    #[test]
    fn redact_body_json_never_leaks((p, text) in free_text(), key in select(&["customer_name", "email", "to", "phone", "api_key", "card", "body", "metadata"][..])) {
        let body = serde_json::json!({
            "error": {
                "type": "card_error",
                "message": text,
                key: p.text,
                "detail": p.text,
                "items": [p.text, {"note": text}],
            },
            p.text.clone(): 1,
        });
        let out = redact_body(&body.to_string(), Some("application/json"));
        assert_clean(&p, "redact_body json", &out)?;
        prop_assert!(out.contains("card_error"), "structure kept: {}", out);
        // Without a content type the body is still recognised as JSON.
        assert_clean(&p, "redact_body json sniffed", &redact_body(&body.to_string(), None))?;
    }

    #[test]
    fn redact_body_text_never_leaks((p, text) in free_text(), ct in select(&[Some("text/plain"), Some("text/html"), Some("application/xml"), None][..])) {
        assert_clean(&p, "redact_body text", &redact_body(&text, ct))?;
        let xml = format!("<Response><Message>{text}</Message><To>{}</To></Response>", p.text);
        assert_clean(&p, "redact_body xml", &redact_body(&xml, ct))?;
        let form = format!("message={}&to={}&note={}", percent_encode(&text), percent_encode(&p.text), percent_encode(&p.text));
        assert_clean(&p, "redact_body form", &redact_body(&form, Some("application/x-www-form-urlencoded")))?;
    }

    #[test]
    fn endpoint_template_never_leaks(p in pii()) {
        let enc = percent_encode(&p.text);
        for url in [
            format!("/v1/customers/{}/charges?email={enc}&name={enc}", p.text),
            format!("https://api.stripe.com/v1/customers/{enc}/charges#{enc}"),
            format!("/2010-04-01/Accounts/{enc}/Messages/{enc}.json?To={enc}"),
            format!("/v1/locations/{enc}:batchGet"),
        ] {
            let out = endpoint_template(&url);
            assert_clean(&p, "endpoint_template", &out)?;
            prop_assert!(!out.contains(&enc), "encoded value in {}", out);
        }
    }

    #[test]
    fn sql_signature_never_leaks(p in pii()) {
        let digits: String = p.text.chars().filter(char::is_ascii_digit).collect();
        let number = if digits.is_empty() { "0".to_string() } else { digits };
        let sql = format!(
            "SELECT * FROM customers WHERE name = '{}' OR note = \"{}\" OR phone IN ({number}, '{}') -- {}\n AND id = {number} /* {} */",
            p.text.replace('\'', "''"),
            p.text.replace('"', "\"\""),
            p.text.replace('\'', "''"),
            p.text,
            p.text.replace("*/", ""),
        );
        let out = sql_signature(&sql);
        assert_clean(&p, "sql_signature", &out)?;
        prop_assert!(out.starts_with("SELECT * FROM customers WHERE name = ?"), "{}", out);
    }

    #[test]
    fn external_call_line_never_leaks((p, text) in free_text(), status in select(&[400u16, 402, 404, 429, 500][..])) {
        let ts = Utc.with_ymd_and_hms(2026, 5, 10, 14, 23, 11).unwrap();
        let url = format!("https://api.stripe.com/v1/customers/{}/charges?q={}", percent_encode(&p.text), percent_encode(&p.text));
        let facts = CallFacts { target: Service::Stripe, method: "POST", url: &url, ms: 12.5, outcome: CallOutcome::Status(status), retries: 1 };
        let body = serde_json::json!({"error": {"message": text, "customer_name": p.text}}).to_string();
        for line in [
            ExternalCallLine::new(ts, "req_a8h3k2", facts).with_error_body(&body, Some("application/json")),
            ExternalCallLine::new(ts, "req_a8h3k2", facts).with_error_body(&text, Some("text/plain")),
            ExternalCallLine::new(ts, &p.text, facts).with_error_body(&text, None),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(&line.to_line()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            // The timestamp is ours; leave its digits out of the digit check.
            if let Some(o) = v.as_object_mut() {
                o.remove("ts");
            }
            assert_clean(&p, "external_call line", &v.to_string())?;
        }
    }

    #[test]
    fn redact_headers_never_leaks(p in pii()) {
        let headers: Vec<(String, String)> = ["x-request-id", "request-id", "content-type", "retry-after", "x-customer", "authorization", "anthropic-ratelimit-tokens-reset"]
            .iter()
            .map(|n| (n.to_string(), p.text.clone()))
            .collect();
        let out = redact_headers(&headers);
        let flat: String = out.iter().map(|(n, v)| format!("{n}: {v}\n")).collect();
        assert_clean(&p, "redact_headers", &flat)?;
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,200}", ct in select(&[Some("application/json"), Some("application/x-www-form-urlencoded"), None][..])) {
        let _ = scrub_text(&s);
        let _ = sql_signature(&s);
        let _ = endpoint_template(&s);
        let _ = redact_body(&s, ct);
        let _ = redact_headers(&[(s.clone(), s.clone())]);
        let _ = sms_segments(&s);
        let mut t = D1Tally::new();
        t.record_query(&s, 1.0);
        t.record_batch(&[s.as_str(), s.as_str()], 2.0);
        prop_assert_eq!(t.queries(), 3);
    }

    #[test]
    fn sql_like_input_never_panics(s in "[ 'x\"`\\[\\]()?:@$0-9a-zA-Z.,=*/-]{0,80}") {
        let sig = sql_signature(&s);
        prop_assert!(sig.chars().count() <= MAX_SIGNATURE_CHARS + 1);
    }
}
