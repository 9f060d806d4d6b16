//! What a rule alert's notification says about *why*, pure: [`AlertDiagnosis`], built from the
//! figures a window keeps (error classes with counts, route and first build; the slowest
//! routes and D1 signatures) for the rule that fired, and how the channels show it (the
//! webhook's `diagnosis`, PagerDuty's `custom_details.diagnosis`, the email's `Diagnosis:`
//! block, a hint in the summary). Collecting the figures is the window's job, not this file's.
//!
//! | rule | carries |
//! |---|---|
//! | `http_5xx_rate` | the top [`MAX_ERROR_CLASSES`] error classes of the window's 5xx: count, share of the 5xx, route and build where first seen |
//! | `request_p95` | the [`MAX_SLOW_ROUTES`] slowest route templates |
//! | `d1_p95` | the slowest D1 signature |
//! | others | nothing |

use serde::{Deserialize, Serialize};

use super::diagnosis::Diagnosis;
use super::rules::RuleId;

/// Error classes a 5xx alert names.
pub const MAX_ERROR_CLASSES: usize = 3;
/// Slow routes a latency alert names.
pub const MAX_SLOW_ROUTES: usize = 3;
/// D1 signatures a D1 alert names.
pub const MAX_SLOW_D1: usize = 1;

/// One error class of the window's 5xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorShare {
    pub class: String,
    /// Its 5xx in the window.
    pub count: u64,
    /// `count` over the window's 5xx (0..=1).
    pub share: f64,
    /// Where and in which build it was first seen.
    pub route: String,
    pub first_build: String,
}

/// One slow route template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowRoute {
    pub route: String,
    pub count: u64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// One slow D1 signature (parameterized SQL, no values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowQuery {
    pub signature: String,
    pub count: u64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// The diagnosis a notification carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertDiagnosis {
    pub window_s: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_classes: Vec<ErrorShare>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slow_routes: Vec<SlowRoute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slow_d1: Vec<SlowQuery>,
}

/// An error class as a window keeps it.
#[derive(Debug, Clone, Copy)]
pub struct ClassFigures<'a> {
    pub class: &'a str,
    pub count_5xx: u64,
    pub route: &'a str,
    pub first_build: &'a str,
}

/// A route or D1 signature as a window keeps it.
#[derive(Debug, Clone, Copy)]
pub struct SlowFigures<'a> {
    pub key: &'a str,
    pub count: u64,
    pub max_ms: f64,
    pub sum_ms: f64,
}

fn slow_figures(list: &[super::diagnosis::SlowStat]) -> Vec<SlowFigures<'_>> {
    list.iter().map(|s| SlowFigures { key: &s.key, count: s.count, max_ms: s.max_ms, sum_ms: s.sum_ms }).collect()
}

fn mean(s: &SlowFigures) -> f64 {
    if s.count == 0 {
        0.0
    } else {
        ((s.sum_ms / s.count as f64) * 10.0).round() / 10.0
    }
}

fn by_slowest<'a>(list: &[SlowFigures<'a>], n: usize) -> Vec<SlowFigures<'a>> {
    let mut v: Vec<SlowFigures> = list.iter().filter(|s| s.count > 0).copied().collect();
    v.sort_by(|a, b| b.max_ms.total_cmp(&a.max_ms).then_with(|| a.key.cmp(b.key)));
    v.truncate(n);
    v
}

impl AlertDiagnosis {
    /// The diagnosis of `rule` over a window of `window_s` with these figures; `None` when
    /// the rule carries none or there is nothing to say.
    pub fn for_rule(
        rule: RuleId,
        window_s: u32,
        errors_5xx: u64,
        classes: &[ClassFigures],
        slow_routes: &[SlowFigures],
        slow_d1: &[SlowFigures],
    ) -> Option<AlertDiagnosis> {
        let mut d = AlertDiagnosis { window_s, ..Default::default() };
        match rule {
            RuleId::Http5xxRate => {
                let mut c: Vec<&ClassFigures> = classes.iter().filter(|c| c.count_5xx > 0).collect();
                c.sort_by(|a, b| b.count_5xx.cmp(&a.count_5xx).then_with(|| a.class.cmp(b.class)));
                let total = errors_5xx.max(c.iter().map(|c| c.count_5xx).sum::<u64>()).max(1);
                d.error_classes = c
                    .into_iter()
                    .take(MAX_ERROR_CLASSES)
                    .map(|c| ErrorShare {
                        class: c.class.to_string(),
                        count: c.count_5xx,
                        share: ((c.count_5xx as f64 / total as f64) * 1000.0).round() / 1000.0,
                        route: c.route.to_string(),
                        first_build: c.first_build.to_string(),
                    })
                    .collect();
            }
            RuleId::RequestP95 => {
                d.slow_routes = by_slowest(slow_routes, MAX_SLOW_ROUTES)
                    .iter()
                    .map(|s| SlowRoute { route: s.key.to_string(), count: s.count, max_ms: s.max_ms, mean_ms: mean(s) })
                    .collect();
            }
            RuleId::D1P95 => {
                d.slow_d1 = by_slowest(slow_d1, MAX_SLOW_D1)
                    .iter()
                    .map(|s| SlowQuery {
                        signature: s.key.to_string(),
                        count: s.count,
                        max_ms: s.max_ms,
                        mean_ms: mean(s),
                    })
                    .collect();
            }
            RuleId::StripeSignatureFailures => return None,
        }
        let empty = d.error_classes.is_empty() && d.slow_routes.is_empty() && d.slow_d1.is_empty();
        (!empty).then_some(d)
    }

    /// The diagnosis of `rule` from a window's [`Diagnosis`] (`errors_5xx`: the window's 5xx).
    pub fn from_window(rule: RuleId, window_s: u32, errors_5xx: u64, d: &Diagnosis) -> Option<AlertDiagnosis> {
        let classes: Vec<ClassFigures> = d
            .errors
            .iter()
            .map(|e| ClassFigures {
                class: &e.class,
                count_5xx: e.count_5xx,
                route: &e.route,
                first_build: &e.first_build,
            })
            .collect();
        let (routes, queries) = (slow_figures(&d.slow_routes), slow_figures(&d.slow_d1));
        AlertDiagnosis::for_rule(rule, window_s, errors_5xx, &classes, &routes, &queries)
    }

    /// A few words for the summary line: `top: D1Error 60%`, `slowest: /api/x 812 ms max`.
    pub fn hint(&self) -> Option<String> {
        if let Some(e) = self.error_classes.first() {
            return Some(format!("top: {} {:.0}%", e.class, e.share * 100.0));
        }
        if let Some(r) = self.slow_routes.first() {
            return Some(format!("slowest: {} {:.0} ms max", r.route, r.max_ms));
        }
        self.slow_d1.first().map(|q| format!("slowest D1: {:.0} ms max", q.max_ms))
    }

    /// The email's `Diagnosis:` block (lines ending in `\n`).
    pub fn email_block(&self) -> String {
        let mut t = format!("Diagnosis (last {} s):\n", self.window_s);
        for e in &self.error_classes {
            t.push_str(&format!(
                "  {}: {} 5xx ({:.0}%), first seen on {} in build {}\n",
                e.class,
                e.count,
                e.share * 100.0,
                e.route,
                e.first_build
            ));
        }
        for r in &self.slow_routes {
            t.push_str(&format!(
                "  {}: {} requests, {:.1} ms mean, {:.1} ms max\n",
                r.route, r.count, r.mean_ms, r.max_ms
            ));
        }
        for q in &self.slow_d1 {
            t.push_str(&format!(
                "  {}: {} queries, {:.1} ms mean, {:.1} ms max\n",
                q.signature, q.count, q.mean_ms, q.max_ms
            ));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_5xx_alert_names_its_top_classes_with_share_and_first_build() {
        let classes = [
            ClassFigures { class: "D1Error", count_5xx: 12, route: "/api/tickets/{id}", first_build: "0.4.11+abc" },
            ClassFigures {
                class: "UpstreamTimeout",
                count_5xx: 8,
                route: "/api/tickets/{id}/charge",
                first_build: "0.4.10+def",
            },
            ClassFigures { class: "NotFound", count_5xx: 0, route: "/x", first_build: "0.4.10+def" },
        ];
        let d = AlertDiagnosis::for_rule(RuleId::Http5xxRate, 300, 20, &classes, &[], &[]).expect("diagnosis");
        assert_eq!(d.error_classes.len(), 2, "classes without 5xx are left out");
        assert_eq!((d.error_classes[0].class.as_str(), d.error_classes[0].share), ("D1Error", 0.6));
        assert_eq!((d.error_classes[1].count, d.error_classes[1].share), (8, 0.4));
        assert_eq!(d.error_classes[1].first_build, "0.4.10+def");
        assert_eq!(d.hint().as_deref(), Some("top: D1Error 60%"));
        let v = serde_json::to_value(&d).unwrap();
        assert!(v.get("slow_routes").is_none(), "{v}");
        assert!(d
            .email_block()
            .contains("  D1Error: 12 5xx (60%), first seen on /api/tickets/{id} in build 0.4.11+abc\n"));
        assert_eq!(AlertDiagnosis::for_rule(RuleId::Http5xxRate, 300, 0, &[], &[], &[]), None);
    }

    #[test]
    fn latency_alerts_name_the_slowest_routes_and_d1_signature() {
        let routes = [
            SlowFigures { key: "/a", count: 10, max_ms: 300.0, sum_ms: 2000.0 },
            SlowFigures { key: "/b", count: 4, max_ms: 900.0, sum_ms: 2000.0 },
            SlowFigures { key: "/c", count: 1, max_ms: 50.0, sum_ms: 50.0 },
            SlowFigures { key: "/d", count: 1, max_ms: 100.0, sum_ms: 100.0 },
        ];
        let d = AlertDiagnosis::for_rule(RuleId::RequestP95, 600, 0, &[], &routes, &routes).unwrap();
        let names: Vec<&str> = d.slow_routes.iter().map(|r| r.route.as_str()).collect();
        assert_eq!(names, ["/b", "/a", "/d"]);
        assert_eq!(d.slow_routes[0].mean_ms, 500.0);
        assert!(d.slow_d1.is_empty());
        let q = AlertDiagnosis::for_rule(RuleId::D1P95, 600, 0, &[], &[], &routes).unwrap();
        assert_eq!((q.slow_d1.len(), q.slow_d1[0].signature.as_str()), (1, "/b"));
        assert_eq!(AlertDiagnosis::for_rule(RuleId::StripeSignatureFailures, 60, 0, &[], &routes, &routes), None);
    }
}
