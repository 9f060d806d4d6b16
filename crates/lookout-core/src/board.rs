//! The fleet dashboard's data, pure: the compact [`ShopSummary`] each shop monitor pushes
//! (throttled: at once when its firing set changes, else at most every
//! [`SUMMARY_EVERY_MS`] while it is awake, and once more when its last hour of traffic has
//! aged out), the [`FleetBoard`] the fleet-level object keeps (the latest summary per shop),
//! and the [`FleetView`] it answers `GET /ops/fleet` with: every shop sorted by trouble
//! (firing first) and the fleet totals. The answer is computed from memory, so a page load
//! costs one object call whatever the number of shops.
//!
//! ```text
//!  ShopMonitorCore::board_summary(now) ─► SummaryGate::due? ─► POST to the fleet object
//!  fleet object: FleetBoard::upsert(summary)        GET /ops/fleet ─► FleetBoard::view(now)
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alerting::{AlertState, Severity};
use crate::history::series::{ClassCount, LastHour};
use crate::monitor::rules::RuleId;
use crate::monitor::time::rfc3339_ms;
use crate::shop::is_slug;
use crate::shop_monitor::ShopStatus;

/// A shop pushes its summary at most this often while nothing fires or resolves.
pub const SUMMARY_EVERY_MS: i64 = 30_000;
/// A summary older than this is shown as stale (its monitor has been asleep).
pub const STALE_AFTER_MS: i64 = 2 * 3600 * 1000;
/// Error rate over the last hour above which a shop has elevated errors (the 5xx rule's
/// default threshold), with at least [`ELEVATED_MIN_REQUESTS`] requests.
pub const ELEVATED_ERROR_RATE: f64 = 0.01;
pub const ELEVATED_MIN_REQUESTS: u64 = 20;
/// Error classes a summary carries, and the fleet lists.
pub const SUMMARY_CLASSES: usize = 5;
pub const FLEET_CLASSES: usize = 10;
/// Largest summary body accepted, and longest class name.
pub const MAX_SUMMARY_BYTES: usize = 16 * 1024;
const MAX_FIRING: usize = 64;

/// One firing alert of a shop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiringSummary {
    pub rule: String,
    pub severity: Severity,
    /// When it began firing (RFC 3339), when known.
    pub since: Option<String>,
    /// The cron it concerns (cron alerts).
    pub cron: Option<String>,
}

/// Crons of the shop's UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronsToday {
    /// Runs started today (any outcome).
    pub runs: u64,
    /// Slots of today that were missed.
    pub missed: u64,
}

/// What a shop monitor tells the fleet for its dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShopSummary {
    pub shop: String,
    pub at_ms: i64,
    pub firing: Vec<FiringSummary>,
    pub requests_1h: u64,
    pub errors_5xx_1h: u64,
    /// Request p95 over the `request_p95` rule's window (the figure alerts use).
    pub request_p95_ms: Option<f64>,
    pub request_p95_window_s: u32,
    /// Start of the UTC day `crons_today` counts, and of the month `ai_spend_month_micros`.
    pub day_start_ms: i64,
    pub crons_today: CronsToday,
    pub month_start_ms: i64,
    pub ai_spend_month_micros: u64,
    pub top_error_classes_1h: Vec<ClassCount>,
}

/// Why a summary was refused by the fleet object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryError {
    TooLarge { bytes: usize },
    Invalid(String),
}

impl std::fmt::Display for SummaryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SummaryError::TooLarge { bytes } => write!(f, "summary of {bytes} bytes is over {MAX_SUMMARY_BYTES}"),
            SummaryError::Invalid(why) => write!(f, "invalid summary: {why}"),
        }
    }
}

impl std::error::Error for SummaryError {}

fn day_start(ms: i64) -> i64 {
    ms.div_euclid(86_400_000) * 86_400_000
}

fn month_start(ms: i64) -> i64 {
    crate::cron::month_bounds_ms(ms).map(|b| b.0).unwrap_or_else(|| day_start(ms))
}

impl ShopSummary {
    /// The summary of a shop as of `now_ms`, from its status and its history's last hour.
    pub fn from_status(status: &ShopStatus, last_hour: &LastHour, now_ms: i64) -> ShopSummary {
        let m = &status.monitor;
        let mut firing: Vec<FiringSummary> = m
            .rules
            .iter()
            .filter(|r| r.state == AlertState::Firing)
            .map(|r| FiringSummary {
                rule: r.rule.name().to_string(),
                severity: r.severity,
                since: r.fired_at.clone().or_else(|| r.since.clone()),
                cron: None,
            })
            .collect();
        let c = &status.cron;
        let (day, month) = (day_start(now_ms), month_start(now_ms));
        let mut crons_today = CronsToday::default();
        for cron in &c.crons {
            let s = &cron.status;
            if s.missed_firing {
                firing.push(FiringSummary {
                    rule: "cron_missed".into(),
                    severity: Severity::Critical,
                    since: cron.next_expected_at.clone(),
                    cron: Some(s.cron.clone()),
                });
            }
            if s.stuck_firing {
                firing.push(FiringSummary {
                    rule: "cron_stuck".into(),
                    severity: Severity::High,
                    since: cron.last_start_at.clone(),
                    cron: Some(s.cron.clone()),
                });
            }
            use crate::cron::SlotState as S;
            for slot in s.recent_slots.iter().filter(|x| x.slot_ms >= day && x.slot_ms <= now_ms) {
                match slot.state {
                    S::Started | S::EndedOk | S::EndedError | S::Stuck => crons_today.runs += 1,
                    S::Missed => crons_today.missed += 1,
                    S::Expected | S::Unknown => {}
                }
            }
        }
        if c.audit_chain.broken {
            firing.push(FiringSummary {
                rule: "audit_chain_broken".into(),
                severity: Severity::High,
                since: c.audit_chain.broken_since.clone(),
                cron: None,
            });
        }
        if c.costs.twilio.firing {
            firing.push(FiringSummary {
                rule: "twilio_cost_projection".into(),
                severity: Severity::Warning,
                since: c.costs.twilio.last_evaluated_at.clone(),
                cron: None,
            });
        }
        if c.costs.ai.paused {
            firing.push(FiringSummary {
                rule: "ai_cost_projection".into(),
                severity: Severity::High,
                since: c.costs.ai.pause.as_ref().map(|p| rfc3339_ms(p.since_ms)),
                cron: None,
            });
        }
        firing.truncate(MAX_FIRING);
        let p95_window = m
            .rules
            .iter()
            .find(|r| r.rule == RuleId::RequestP95)
            .and_then(|r| r.params.get("window_s"))
            .and_then(|v| v.as_u64())
            .map(|w| w as u32);
        let window = p95_window
            .and_then(|w| m.windows.iter().find(|x| x.window_s == w))
            .or_else(|| m.windows.iter().max_by_key(|x| x.window_s));
        ShopSummary {
            shop: m.shop.clone(),
            at_ms: now_ms,
            firing,
            requests_1h: last_hour.requests,
            errors_5xx_1h: last_hour.errors_5xx,
            request_p95_ms: window.and_then(|w| w.request_p95_ms).map(|v| (v * 10.0).round() / 10.0),
            request_p95_window_s: window.map(|w| w.window_s).unwrap_or(0),
            day_start_ms: day,
            crons_today,
            month_start_ms: month,
            ai_spend_month_micros: c.costs.ai.month.as_ref().map(|p| p.spent_micros).unwrap_or(0),
            top_error_classes_1h: last_hour.top_error_classes.iter().take(SUMMARY_CLASSES).cloned().collect(),
        }
    }

    /// The firing set as one comparable key (what makes a push urgent when it changes).
    pub fn firing_key(&self) -> String {
        let mut keys: Vec<String> = self
            .firing
            .iter()
            .map(|f| format!("{}:{}:{}", f.rule, f.cron.as_deref().unwrap_or(""), f.since.as_deref().unwrap_or("")))
            .collect();
        keys.sort();
        keys.join(",")
    }

    /// Parse and check a pushed summary (the fleet object trusts nothing it is sent).
    pub fn parse(body: &[u8]) -> Result<ShopSummary, SummaryError> {
        if body.len() > MAX_SUMMARY_BYTES {
            return Err(SummaryError::TooLarge { bytes: body.len() });
        }
        let s: ShopSummary = serde_json::from_slice(body).map_err(|e| SummaryError::Invalid(e.to_string()))?;
        if !is_slug(&s.shop) {
            return Err(SummaryError::Invalid("shop is not a shop slug".into()));
        }
        if s.firing.len() > MAX_FIRING || s.top_error_classes_1h.len() > SUMMARY_CLASSES {
            return Err(SummaryError::Invalid("too many firing alerts or error classes".into()));
        }
        if s.errors_5xx_1h > s.requests_1h {
            return Err(SummaryError::Invalid("more 5xx than requests".into()));
        }
        if s.request_p95_ms.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(SummaryError::Invalid("request_p95_ms is not a latency".into()));
        }
        let too_long = |t: &str| t.len() > 64;
        if s.firing.iter().any(|f| too_long(&f.rule) || f.cron.as_deref().is_some_and(too_long))
            || s.top_error_classes_1h.iter().any(|c| too_long(&c.class))
        {
            return Err(SummaryError::Invalid("a name is longer than 64 bytes".into()));
        }
        Ok(s)
    }
}

/// When a shop monitor pushes its summary (kept by the monitor, not persisted: after an
/// eviction the first tick pushes again).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SummaryGate {
    last_sent_ms: Option<i64>,
    last_firing_key: Option<String>,
    last_requests_1h: u64,
    /// The last push went out at this time but its answer has not come.
    in_flight: bool,
    /// Records arrived since the last push (its figures are behind).
    touched: bool,
}

impl SummaryGate {
    /// Whether to push `s` now: its firing set changed (at once), or it is due (every
    /// [`SUMMARY_EVERY_MS`]), or it was never sent.
    pub fn due(&self, s: &ShopSummary) -> bool {
        if self.in_flight {
            return false;
        }
        match (self.last_sent_ms, &self.last_firing_key) {
            (Some(at), Some(key)) => *key != s.firing_key() || s.at_ms - at >= SUMMARY_EVERY_MS,
            _ => true,
        }
    }

    /// Nothing can be due before this unless the firing set changed: a caller that knows it
    /// did not may skip building a summary until then.
    pub fn quiet_until_ms(&self) -> Option<i64> {
        if self.in_flight {
            return Some(i64::MAX);
        }
        self.last_firing_key.as_ref().and(self.last_sent_ms).map(|t| t + SUMMARY_EVERY_MS)
    }

    /// Records arrived: the board's figures for this shop are behind until the next push.
    pub fn touch(&mut self) {
        self.touched = true;
    }

    /// A push of `s` starts.
    pub fn sending(&mut self, s: &ShopSummary) {
        self.in_flight = true;
        self.touched = false;
        self.last_sent_ms = Some(s.at_ms);
        self.last_firing_key = Some(s.firing_key());
        self.last_requests_1h = s.requests_1h;
    }

    /// The push ended; a failed one is retried at the next due time.
    pub fn sent(&mut self, ok: bool) {
        self.in_flight = false;
        if !ok {
            self.last_firing_key = None;
        }
    }

    /// When the monitor should wake to push again even without traffic: at once when records
    /// arrived and nothing was ever pushed; the next regular push when records arrived since
    /// the last one, or while the last one showed traffic (so the fleet sees the hour drain
    /// to zero). `None`: the board is up to date.
    pub fn next_due_ms(&self) -> Option<i64> {
        match self.last_sent_ms {
            None => self.touched.then_some(i64::MIN),
            Some(t) => (self.touched || self.last_requests_1h > 0).then_some(t + SUMMARY_EVERY_MS),
        }
    }
}

/// A shop in the fleet answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetShop {
    pub shop: String,
    pub firing: Vec<FiringSummary>,
    pub requests_1h: u64,
    pub errors_5xx_1h: u64,
    pub error_rate_1h: Option<f64>,
    pub elevated_errors: bool,
    pub request_p95_ms: Option<f64>,
    pub crons_today: CronsToday,
    pub ai_spend_month_micros: u64,
    /// When the shop's monitor sent this (RFC 3339); `None`: it never reported.
    pub summary_at: Option<String>,
    /// No summary for [`STALE_AFTER_MS`] (or never): its figures may be old.
    pub stale: bool,
}

/// Fleet totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FleetTotals {
    pub shops: usize,
    pub shops_reporting: usize,
    pub shops_firing: usize,
    pub firing_alerts: usize,
    pub shops_elevated_errors: usize,
    pub requests_1h: u64,
    pub errors_5xx_1h: u64,
    pub cron_runs_today: u64,
    pub cron_missed_today: u64,
    pub ai_spend_month_micros: u64,
}

/// An error class across shops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetClass {
    pub class: String,
    pub count: u64,
    pub shops: usize,
}

/// `GET /ops/fleet`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetView {
    pub generated_at: String,
    pub oldest_summary_at: Option<String>,
    pub totals: FleetTotals,
    pub top_error_classes: Vec<FleetClass>,
    /// Sorted by trouble: firing (most severe, most alerts) first, then elevated errors,
    /// then stale, then error rate and traffic; at most `limit`.
    pub shops: Vec<FleetShop>,
    /// Shops left out by `limit` (the totals count them).
    pub shops_omitted: usize,
}

/// The latest summary of every shop (the fleet object's state).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetBoard {
    summaries: BTreeMap<String, ShopSummary>,
}

/// Shops a fleet answer lists by default, and at most.
pub const DEFAULT_LIMIT: usize = 500;
pub const MAX_LIMIT: usize = 10_000;

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 3,
        Severity::High => 2,
        Severity::Warning => 1,
    }
}

impl FleetBoard {
    pub fn new() -> FleetBoard {
        FleetBoard::default()
    }

    pub fn len(&self) -> usize {
        self.summaries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.summaries.is_empty()
    }

    /// Keep `s` unless an equal-or-newer summary of its shop is already kept (pushes may
    /// arrive out of order). Returns whether it was kept.
    pub fn upsert(&mut self, s: ShopSummary) -> bool {
        match self.summaries.get(&s.shop) {
            Some(old) if old.at_ms >= s.at_ms => false,
            _ => {
                self.summaries.insert(s.shop.clone(), s);
                true
            }
        }
    }

    /// Restore from stored summaries (JSON, one per shop); unreadable ones are skipped.
    pub fn restore<'a>(rows: impl IntoIterator<Item = &'a str>) -> (FleetBoard, usize) {
        let mut b = FleetBoard::new();
        let mut bad = 0;
        for row in rows {
            match ShopSummary::parse(row.as_bytes()) {
                Ok(s) => {
                    b.upsert(s);
                }
                Err(_) => bad += 1,
            }
        }
        (b, bad)
    }

    /// The fleet answer as of `now_ms` for `known` shops (the Worker's; reporting shops
    /// count too), listing at most `limit`.
    pub fn view(&self, known: &[String], now_ms: i64, limit: usize) -> FleetView {
        let mut names: Vec<&str> = known.iter().map(String::as_str).collect();
        names.extend(self.summaries.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        let (day, month) = (day_start(now_ms), month_start(now_ms));
        let mut shops: Vec<FleetShop> = names
            .iter()
            .map(|&name| match self.summaries.get(name) {
                Some(s) => {
                    let rate = (s.requests_1h > 0).then(|| s.errors_5xx_1h as f64 / s.requests_1h as f64);
                    // Figures of another day or month are over: their counters restart.
                    let crons_today = if s.day_start_ms == day { s.crons_today } else { CronsToday::default() };
                    let ai = if s.month_start_ms == month { s.ai_spend_month_micros } else { 0 };
                    let stale = now_ms - s.at_ms > STALE_AFTER_MS;
                    FleetShop {
                        shop: s.shop.clone(),
                        firing: s.firing.clone(),
                        requests_1h: s.requests_1h,
                        errors_5xx_1h: s.errors_5xx_1h,
                        error_rate_1h: rate,
                        elevated_errors: (s.requests_1h >= ELEVATED_MIN_REQUESTS
                            && rate.is_some_and(|r| r > ELEVATED_ERROR_RATE))
                            || s.firing.iter().any(|f| f.rule == RuleId::Http5xxRate.name()),
                        request_p95_ms: s.request_p95_ms,
                        crons_today,
                        ai_spend_month_micros: ai,
                        summary_at: Some(rfc3339_ms(s.at_ms)),
                        stale,
                    }
                }
                None => FleetShop {
                    shop: name.to_string(),
                    firing: Vec::new(),
                    requests_1h: 0,
                    errors_5xx_1h: 0,
                    error_rate_1h: None,
                    elevated_errors: false,
                    request_p95_ms: None,
                    crons_today: CronsToday::default(),
                    ai_spend_month_micros: 0,
                    summary_at: None,
                    stale: true,
                },
            })
            .collect();
        let mut totals = FleetTotals { shops: shops.len(), ..FleetTotals::default() };
        let mut classes: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
        for s in &shops {
            totals.shops_reporting += usize::from(s.summary_at.is_some());
            totals.shops_firing += usize::from(!s.firing.is_empty());
            totals.firing_alerts += s.firing.len();
            totals.shops_elevated_errors += usize::from(s.elevated_errors);
            totals.requests_1h += s.requests_1h;
            totals.errors_5xx_1h += s.errors_5xx_1h;
            totals.cron_runs_today += s.crons_today.runs;
            totals.cron_missed_today += s.crons_today.missed;
            totals.ai_spend_month_micros = totals.ai_spend_month_micros.saturating_add(s.ai_spend_month_micros);
        }
        for s in self.summaries.values() {
            for c in &s.top_error_classes_1h {
                let e = classes.entry(c.class.as_str()).or_default();
                e.0 += c.count;
                e.1 += 1;
            }
        }
        let mut top: Vec<FleetClass> = classes
            .into_iter()
            .map(|(class, (count, shops))| FleetClass { class: class.to_string(), count, shops })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then(b.shops.cmp(&a.shops)).then(a.class.cmp(&b.class)));
        top.truncate(FLEET_CLASSES);
        let trouble = |s: &FleetShop| {
            let worst = s.firing.iter().map(|f| severity_rank(f.severity)).max().unwrap_or(0);
            (worst, s.firing.len(), s.elevated_errors, s.stale && s.summary_at.is_some())
        };
        shops.sort_by(|a, b| {
            trouble(b)
                .cmp(&trouble(a))
                .then(b.error_rate_1h.unwrap_or(0.0).total_cmp(&a.error_rate_1h.unwrap_or(0.0)))
                .then(b.requests_1h.cmp(&a.requests_1h))
                .then(a.shop.cmp(&b.shop))
        });
        let limit = limit.clamp(1, MAX_LIMIT);
        let omitted = shops.len().saturating_sub(limit);
        shops.truncate(limit);
        FleetView {
            generated_at: rfc3339_ms(now_ms),
            oldest_summary_at: self.summaries.values().map(|s| s.at_ms).min().map(rfc3339_ms),
            totals,
            top_error_classes: top,
            shops,
            shops_omitted: omitted,
        }
    }
}

#[cfg(test)]
mod tests;
