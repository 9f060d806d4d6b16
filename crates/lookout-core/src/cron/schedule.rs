//! Cron expressions with Cloudflare's semantics, parsed by croner, and expected-slot maths:
//! previous/next slot and the stateless attribution of a run to a slot. No watch state here.
//!
//! Cloudflare Workers cron triggers (developers.cloudflare.com, "Cron Triggers"): UTC only,
//! exactly five fields `minute hour day-of-month month day-of-week`, characters `* , - /`
//! everywhere, `L W` in day-of-month, `L #` in day-of-week, three-letter month and weekday
//! names (any case), and **weekdays 1-7 with 1 = Sunday** (Quartz style: `0 17 * * 1` and
//! `0 17 * * sun` are both Sunday 17:00; `6L` is the last Friday). We therefore parse with
//! croner's `alternative_weekdays` (1 = SUN .. 7 = SAT), seconds and years disallowed, and
//! standard cron's OR between a restricted day-of-month and a restricted day-of-week
//! (Cloudflare does not document this case; OR is what Vixie cron and croner do). `?`,
//! `@daily`-style nicknames and croner's `+` are rejected: they are not in Cloudflare's table.

use std::fmt;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::Serialize;

const MINUTE_MS: i64 = 60_000;

/// One of the five fields of a Workers cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const FIELDS: [Field; 5] = [Field::Minute, Field::Hour, Field::DayOfMonth, Field::Month, Field::DayOfWeek];

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

/// Why an expression is not a valid Workers cron trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The expression is empty or only whitespace.
    Empty,
    /// A nickname such as `@daily`: not in Cloudflare's documented syntax; write five fields.
    Nickname { expr: String },
    /// Not exactly five fields (Workers crons have no seconds and no year field).
    FieldCount { expr: String, found: usize },
    /// A character Cloudflare does not accept in this field (e.g. `?`, or `L` in `hour`).
    IllegalCharacter { field: Field, value: String, ch: char },
    /// Letters that are not a three-letter month (month field) or weekday (day-of-week
    /// field), or a modifier letter used where it means nothing (bare `L` in day-of-week).
    UnknownName { field: Field, value: String, name: String },
    /// Legal characters but a rejected value: out of range, empty or reversed range, zero
    /// step. `detail` is croner's message.
    InvalidField { field: Field, value: String, detail: String },
    /// Every field is fine alone but croner rejects the whole expression.
    Rejected { expr: String, detail: String },
    /// Valid syntax that matches no time at all (e.g. `0 0 30 2 *`, February 30th).
    NeverFires { expr: String },
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::Empty => write!(f, "cron expression is empty"),
            ScheduleError::Nickname { expr } => {
                write!(f, "cron expression `{expr}`: nicknames are not supported by Workers; write five fields")
            }
            ScheduleError::FieldCount { expr, found } => write!(
                f,
                "cron expression `{expr}` has {found} fields; Workers crons have exactly 5 (minute hour day-of-month month day-of-week)"
            ),
            ScheduleError::IllegalCharacter { field, value, ch } => {
                write!(f, "cron {field} field `{value}`: character `{ch}` is not allowed there")
            }
            ScheduleError::UnknownName { field, value, name } => {
                write!(f, "cron {field} field `{value}`: `{name}` is not a valid name there")
            }
            ScheduleError::InvalidField { field, value, detail } => {
                write!(f, "cron {field} field `{value}` is invalid: {detail}")
            }
            ScheduleError::Rejected { expr, detail } => write!(f, "cron expression `{expr}` is invalid: {detail}"),
            ScheduleError::NeverFires { expr } => write!(f, "cron expression `{expr}` never matches any date"),
        }
    }
}

impl std::error::Error for ScheduleError {}

/// Collapse whitespace and upper-case: the form used to compare the watch list with
/// `wrangler.toml` and with `controller.cron`.
pub fn normalize_expression(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_uppercase()
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Check one field against Cloudflare's table before croner sees it, so errors name the field.
fn check_field(field: Field, value: &str) -> Result<(), ScheduleError> {
    let upper = value.to_ascii_uppercase();
    let extra: &[char] = match field {
        Field::DayOfWeek => &['#'],
        _ => &[],
    };
    let chars: Vec<char> = upper.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            let after_digit = start > 0 && chars[start - 1].is_ascii_digit();
            let after_hash = start > 0 && chars[start - 1] == '#';
            let ok = match field {
                Field::Minute | Field::Hour => false,
                Field::Month => MONTHS.contains(&run.as_str()),
                Field::DayOfMonth => match run.as_str() {
                    "L" | "LW" => !after_digit,
                    "W" => after_digit,
                    _ => false,
                },
                Field::DayOfWeek => {
                    let name = run.strip_suffix('L').filter(|n| WEEKDAYS.contains(n));
                    WEEKDAYS.contains(&run.as_str()) || name.is_some() || (run == "L" && (after_digit || after_hash))
                }
            };
            if !ok {
                return Err(
                    if run.chars().all(|c| "LW".contains(c))
                        && matches!(field, Field::Minute | Field::Hour | Field::Month)
                    {
                        ScheduleError::IllegalCharacter {
                            field,
                            value: value.to_string(),
                            ch: run.chars().next().unwrap_or('L'),
                        }
                    } else {
                        ScheduleError::UnknownName { field, value: value.to_string(), name: run }
                    },
                );
            }
            continue;
        }
        if !(c.is_ascii_digit() || matches!(c, '*' | ',' | '-' | '/') || extra.contains(&c)) {
            return Err(ScheduleError::IllegalCharacter { field, value: value.to_string(), ch: c });
        }
        i += 1;
    }
    Ok(())
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        // Quartz weekdays, as Cloudflare documents: 1 = SUN .. 7 = SAT.
        .alternative_weekdays(true)
        // Standard cron: a restricted day-of-month OR a restricted day-of-week.
        .dom_and_dow(false)
        // Quartz accepts `5/15` (start 5, step 15); so does this parser.
        .sloppy_ranges(true)
        .build()
}

/// A parsed Workers cron trigger. Equality is on the normalized expression.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    normalized: String,
    cron: Cron,
    sub_daily: bool,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

/// Where a run belongs: the slot it was attributed to and how far from it it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SlotMatch {
    pub slot_ms: i64,
    /// `at_ms - slot_ms`: negative for an early start, positive for a late one.
    pub offset_ms: i64,
    /// True when the platform's `scheduledTime` named the slot exactly.
    pub from_platform: bool,
}

fn to_dt(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ms.div_euclid(1000), 0)
}

impl Schedule {
    /// Parse with Cloudflare's semantics (see the module doc).
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if trimmed.starts_with('@') {
            return Err(ScheduleError::Nickname { expr: trimmed.to_string() });
        }
        let parts: Vec<&str> = trimmed.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(ScheduleError::FieldCount { expr: trimmed.to_string(), found: parts.len() });
        }
        for (field, value) in FIELDS.iter().zip(&parts) {
            check_field(*field, value)?;
        }
        let normalized = normalize_expression(trimmed);
        let cron = match parser().parse(&normalized) {
            Ok(c) => c,
            Err(e) => return Err(Self::locate_error(&parts, &normalized, e.to_string())),
        };
        // A reference long past: a pattern without a year field that matches nothing in the
        // following centuries matches nothing ever.
        let reference = DateTime::from_timestamp(946_684_800, 0); // 2000-01-01T00:00:00Z
        let fires = reference.is_some_and(|r| cron.find_next_occurrence(&r, true).is_ok());
        if !fires {
            return Err(ScheduleError::NeverFires { expr: trimmed.to_string() });
        }
        let minutes = cron.pattern.minutes.values().len();
        let hours = cron.pattern.hours.values().len();
        Ok(Schedule { expr: trimmed.to_string(), normalized, cron, sub_daily: minutes * hours > 1 })
    }

    /// Find the field croner objects to by parsing it alone among `*`s.
    fn locate_error(parts: &[&str], normalized: &str, detail: String) -> ScheduleError {
        for (i, field) in FIELDS.iter().enumerate() {
            let probe: Vec<&str> = (0..5).map(|j| if j == i { parts[j] } else { "*" }).collect();
            if let Err(e) = parser().parse(&normalize_expression(&probe.join(" "))) {
                return ScheduleError::InvalidField {
                    field: *field,
                    value: parts[i].to_string(),
                    detail: e.to_string(),
                };
            }
        }
        ScheduleError::Rejected { expr: normalized.to_string(), detail }
    }

    /// The expression as written (trimmed).
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// Whitespace-collapsed, upper-cased expression.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// True when the schedule can fire more than once on a UTC day (its run ids then carry
    /// `_HHMM`).
    pub fn is_sub_daily(&self) -> bool {
        self.sub_daily
    }

    /// The earliest slot at or after `ms`.
    pub fn next_at_or_after_ms(&self, ms: i64) -> Option<i64> {
        let t = to_dt(ms)?;
        // croner works in whole seconds: a fractional `ms` must not match its own second.
        let inclusive = ms.rem_euclid(1000) == 0;
        self.cron.find_next_occurrence(&t, inclusive).ok().map(|d| d.timestamp_millis())
    }

    /// The earliest slot strictly after `ms`.
    pub fn next_after_ms(&self, ms: i64) -> Option<i64> {
        self.next_at_or_after_ms(ms.checked_add(1)?)
    }

    /// The latest slot at or before `ms`.
    pub fn prev_at_or_before_ms(&self, ms: i64) -> Option<i64> {
        let t = to_dt(ms)?;
        self.cron.find_previous_occurrence(&t, true).ok().map(|d| d.timestamp_millis())
    }

    /// The latest slot strictly before `ms`.
    pub fn prev_before_ms(&self, ms: i64) -> Option<i64> {
        self.prev_at_or_before_ms(ms.checked_sub(1)?)
    }

    /// True when `ms` is exactly a slot (whole minute matching the pattern).
    pub fn is_slot(&self, ms: i64) -> bool {
        ms.rem_euclid(MINUTE_MS) == 0 && to_dt(ms).is_some_and(|t| self.cron.is_time_matching(&t).unwrap_or(false))
    }

    /// How early a run may start and still belong to `slot_ms`: `min(grace, half the gap to
    /// the previous slot)`, so an early start is never closer to the previous slot.
    pub fn early_tolerance_ms(&self, slot_ms: i64, grace_ms: i64) -> i64 {
        match self.prev_before_ms(slot_ms) {
            Some(prev) => grace_ms.min((slot_ms - prev) / 2),
            None => grace_ms,
        }
    }

    /// Attribute a run to a slot. `scheduled_ms` is the platform's `scheduledTime`; when it is
    /// exactly a slot not yet `taken`, that slot wins. Otherwise the start `at_ms` is matched
    /// to its neighbours: the previous slot `p` when `at - p <= grace`, the next slot `n` when
    /// `n - at <= early_tolerance(n)`, skipping slots already `taken`; if both qualify the
    /// nearer wins (a tie goes to `p`). `None`: an unscheduled (manual) run.
    pub fn attribute(
        &self,
        scheduled_ms: Option<i64>,
        at_ms: i64,
        grace_ms: i64,
        taken: impl Fn(i64) -> bool,
    ) -> Option<SlotMatch> {
        if let Some(s) = scheduled_ms.filter(|s| self.is_slot(*s) && !taken(*s)) {
            return Some(SlotMatch { slot_ms: s, offset_ms: at_ms.saturating_sub(s), from_platform: true });
        }
        let late =
            self.prev_at_or_before_ms(at_ms).filter(|p| at_ms - p <= grace_ms && !taken(*p)).map(|p| (p, at_ms - p));
        let early = self
            .next_after_ms(at_ms)
            .filter(|n| n - at_ms <= self.early_tolerance_ms(*n, grace_ms) && !taken(*n))
            .map(|n| (n, n - at_ms));
        let (slot, _) = match (late, early) {
            (Some(l), Some(e)) => {
                if e.1 < l.1 {
                    e
                } else {
                    l
                }
            }
            (Some(l), None) => l,
            (None, Some(e)) => e,
            (None, None) => return None,
        };
        Some(SlotMatch { slot_ms: slot, offset_ms: at_ms - slot, from_platform: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().timestamp_millis()
    }

    fn s(expr: &str) -> Schedule {
        Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn daily_across_month_year_and_leap_day() {
        let d = s("0 7 * * *");
        assert!(!d.is_sub_daily());
        assert_eq!(d.next_at_or_after_ms(ms(2026, 1, 31, 8, 0)), Some(ms(2026, 2, 1, 7, 0)));
        assert_eq!(d.next_after_ms(ms(2026, 12, 31, 7, 0)), Some(ms(2027, 1, 1, 7, 0)));
        assert_eq!(d.prev_at_or_before_ms(ms(2027, 1, 1, 6, 59)), Some(ms(2026, 12, 31, 7, 0)));
        assert_eq!(d.next_after_ms(ms(2028, 2, 28, 7, 0)), Some(ms(2028, 2, 29, 7, 0)));
        assert_eq!(d.next_after_ms(ms(2027, 2, 28, 7, 0)), Some(ms(2027, 3, 1, 7, 0)));
        assert_eq!(d.prev_before_ms(ms(2028, 3, 1, 7, 0)), Some(ms(2028, 2, 29, 7, 0)));
        // Inclusive on an exact slot, exclusive one millisecond after it.
        assert_eq!(d.next_at_or_after_ms(ms(2026, 5, 10, 7, 0)), Some(ms(2026, 5, 10, 7, 0)));
        assert_eq!(d.next_at_or_after_ms(ms(2026, 5, 10, 7, 0) + 1), Some(ms(2026, 5, 11, 7, 0)));
        assert_eq!(d.prev_at_or_before_ms(ms(2026, 5, 10, 7, 0) - 1), Some(ms(2026, 5, 9, 7, 0)));
    }

    #[test]
    fn every_five_minutes_across_year_end() {
        let f = s("*/5 * * * *");
        assert!(f.is_sub_daily());
        let t = ms(2026, 12, 31, 23, 58);
        assert_eq!(f.prev_at_or_before_ms(t), Some(ms(2026, 12, 31, 23, 55)));
        assert_eq!(f.next_at_or_after_ms(t), Some(ms(2027, 1, 1, 0, 0)));
        assert_eq!(f.next_after_ms(ms(2027, 1, 1, 0, 0)), Some(ms(2027, 1, 1, 0, 5)));
        assert_eq!(f.early_tolerance_ms(ms(2027, 1, 1, 0, 0), 1_800_000), 150_000);
    }

    #[test]
    fn weekday_one_is_sunday_as_on_cloudflare() {
        // 2026-05-10 is a Sunday, 2026-05-11 a Monday.
        let sun = s("0 8 * * 1");
        assert_eq!(sun.next_at_or_after_ms(ms(2026, 5, 5, 0, 0)), Some(ms(2026, 5, 10, 8, 0)));
        assert_eq!(s("0 8 * * sun").next_at_or_after_ms(ms(2026, 5, 5, 0, 0)), Some(ms(2026, 5, 10, 8, 0)));
        let mon = s("0 8 * * MON");
        assert_eq!(mon.next_at_or_after_ms(ms(2026, 5, 5, 0, 0)), Some(ms(2026, 5, 11, 8, 0)));
        assert_eq!(s("0 8 * * 2").next_at_or_after_ms(ms(2026, 5, 5, 0, 0)), Some(ms(2026, 5, 11, 8, 0)));
        // 7 is Saturday (2026-05-09).
        assert_eq!(s("0 8 * * 7").next_at_or_after_ms(ms(2026, 5, 5, 0, 0)), Some(ms(2026, 5, 9, 8, 0)));
        // Weekly across year end: Sunday 2026-12-27 then Sunday 2027-01-03.
        assert_eq!(sun.next_after_ms(ms(2026, 12, 27, 8, 0)), Some(ms(2027, 1, 3, 8, 0)));
        assert_eq!(sun.early_tolerance_ms(ms(2027, 1, 3, 8, 0), 1_800_000), 1_800_000);
        // Cloudflare's documented examples.
        let weekdays = s("10 7 * * mon-fri");
        assert_eq!(weekdays, weekdays.clone());
        let days: Vec<i64> = {
            let mut v = vec![];
            let mut t = ms(2026, 5, 9, 0, 0); // Saturday
            for _ in 0..5 {
                t = weekdays.next_after_ms(t).unwrap();
                v.push(t);
            }
            v
        };
        assert_eq!(days, (11..=15).map(|d| ms(2026, 5, d, 7, 10)).collect::<Vec<_>>());
        assert_eq!(s("10 7 * * 2-6").next_after_ms(ms(2026, 5, 9, 0, 0)), Some(ms(2026, 5, 11, 7, 10)));
    }

    #[test]
    fn monthly_last_day_and_last_friday() {
        let m = s("0 0 1 * *");
        assert_eq!(m.next_after_ms(ms(2026, 12, 1, 0, 0)), Some(ms(2027, 1, 1, 0, 0)));
        assert_eq!(m.prev_before_ms(ms(2026, 3, 1, 0, 0)), Some(ms(2026, 2, 1, 0, 0)));
        let l = s("59 23 L * *");
        assert_eq!(l.next_at_or_after_ms(ms(2028, 2, 1, 0, 0)), Some(ms(2028, 2, 29, 23, 59)));
        assert_eq!(l.next_at_or_after_ms(ms(2027, 2, 1, 0, 0)), Some(ms(2027, 2, 28, 23, 59)));
        assert_eq!(l.next_after_ms(ms(2026, 12, 31, 23, 59)), Some(ms(2027, 1, 31, 23, 59)));
        assert_eq!(l.next_after_ms(ms(2026, 4, 1, 0, 0)), Some(ms(2026, 4, 30, 23, 59)));
        // Last Friday (6L / friL): May 2026 ends on Sunday 31st, so Friday 29th.
        assert_eq!(s("0 18 * * 6L").next_after_ms(ms(2026, 5, 1, 0, 0)), Some(ms(2026, 5, 29, 18, 0)));
        assert_eq!(s("0 18 * * friL").next_after_ms(ms(2026, 5, 1, 0, 0)), Some(ms(2026, 5, 29, 18, 0)));
        // Last weekday (LW): 2026-05-31 is a Sunday, so Friday 29th.
        assert_eq!(s("59 23 LW * *").next_after_ms(ms(2026, 5, 1, 0, 0)), Some(ms(2026, 5, 29, 23, 59)));
        // Second Monday (MON#2 = 2#2).
        assert_eq!(s("0 9 * * MON#2").next_after_ms(ms(2026, 5, 1, 0, 0)), Some(ms(2026, 5, 11, 9, 0)));
        assert_eq!(s("0 9 * * 2#2").next_after_ms(ms(2026, 5, 1, 0, 0)), Some(ms(2026, 5, 11, 9, 0)));
    }

    #[test]
    fn dom_and_dow_are_ored() {
        // The 1st of the month OR any Sunday.
        let o = s("0 0 1 * 1");
        assert_eq!(o.next_after_ms(ms(2026, 5, 1, 0, 0)), Some(ms(2026, 5, 3, 0, 0)));
        assert_eq!(o.next_after_ms(ms(2026, 5, 31, 0, 0)), Some(ms(2026, 6, 1, 0, 0)));
    }

    #[test]
    fn rejections_name_the_field() {
        use ScheduleError::*;
        assert_eq!(Schedule::parse("  "), Err(Empty));
        assert!(matches!(Schedule::parse("@daily"), Err(Nickname { .. })));
        assert_eq!(Schedule::parse("0 0 7 * * *"), Err(FieldCount { expr: "0 0 7 * * *".into(), found: 6 }));
        assert!(matches!(Schedule::parse("0 7 * *"), Err(FieldCount { found: 4, .. })));
        assert!(matches!(
            Schedule::parse("0 7 ? * *"),
            Err(IllegalCharacter { field: Field::DayOfMonth, ch: '?', .. })
        ));
        assert!(matches!(
            Schedule::parse("0 7 * * +1"),
            Err(IllegalCharacter { field: Field::DayOfWeek, ch: '+', .. })
        ));
        assert!(matches!(Schedule::parse("0 L * * *"), Err(IllegalCharacter { field: Field::Hour, ch: 'L', .. })));
        assert!(Schedule::parse("0 7 * * 1#2").is_ok());
        assert!(matches!(
            Schedule::parse("0 7 1#2 * *"),
            Err(IllegalCharacter { field: Field::DayOfMonth, ch: '#', .. })
        ));
        assert!(matches!(Schedule::parse("0 7 * JUNE *"), Err(UnknownName { field: Field::Month, .. })));
        assert!(matches!(Schedule::parse("0 7 * MON *"), Err(UnknownName { field: Field::Month, .. })));
        assert!(matches!(Schedule::parse("0 7 * * JAN"), Err(UnknownName { field: Field::DayOfWeek, .. })));
        assert!(matches!(Schedule::parse("0 7 * * L"), Err(UnknownName { field: Field::DayOfWeek, .. })));
        assert!(matches!(Schedule::parse("0 7 W * *"), Err(UnknownName { field: Field::DayOfMonth, .. })));
        assert!(matches!(Schedule::parse("60 7 * * *"), Err(InvalidField { field: Field::Minute, .. })));
        assert!(matches!(Schedule::parse("0 24 * * *"), Err(InvalidField { field: Field::Hour, .. })));
        assert!(matches!(Schedule::parse("0 7 32 * *"), Err(InvalidField { field: Field::DayOfMonth, .. })));
        assert!(matches!(Schedule::parse("0 7 * 13 *"), Err(InvalidField { field: Field::Month, .. })));
        // Cloudflare's weekdays are 1-7: 0 is out of range.
        assert!(matches!(Schedule::parse("0 7 * * 0"), Err(InvalidField { field: Field::DayOfWeek, .. })));
        assert!(matches!(Schedule::parse("0 7 * * 8"), Err(InvalidField { field: Field::DayOfWeek, .. })));
        assert!(matches!(Schedule::parse("*/0 * * * *"), Err(InvalidField { field: Field::Minute, .. })));
        assert!(matches!(Schedule::parse("5-1 * * * *"), Err(InvalidField { field: Field::Minute, .. })));
        assert!(matches!(Schedule::parse("0 0 30 2 *"), Err(NeverFires { .. })));
        let msg = Schedule::parse("0 24 * * *").unwrap_err().to_string();
        assert!(msg.contains("hour field `24`"), "{msg}");
    }

    #[test]
    fn steps_lists_ranges_and_names() {
        assert_eq!(s("0,30 9-10 * * *").next_after_ms(ms(2026, 5, 10, 9, 30)), Some(ms(2026, 5, 10, 10, 0)));
        assert_eq!(s("5/15 * * * *").next_after_ms(ms(2026, 5, 10, 9, 5)), Some(ms(2026, 5, 10, 9, 20)));
        assert_eq!(s("0 0 1 jan,Jul *").next_after_ms(ms(2026, 1, 1, 0, 0)), Some(ms(2026, 7, 1, 0, 0)));
        assert_eq!(s("0 0 15W * *").next_after_ms(ms(2026, 8, 1, 0, 0)), Some(ms(2026, 8, 14, 0, 0)));
        assert_eq!(normalize_expression("  0  7 * * mon "), "0 7 * * MON");
        assert_eq!(s("0 7 * * mon"), s("0  7 * * MON"));
        assert!(!s("0 7 * * *").is_sub_daily());
        assert!(s("0 7,19 * * *").is_sub_daily());
        assert!(s("0 * * * *").is_sub_daily());
    }

    #[test]
    fn is_slot_requires_whole_matching_minutes() {
        let d = s("0 7 * * *");
        assert!(d.is_slot(ms(2026, 5, 10, 7, 0)));
        assert!(!d.is_slot(ms(2026, 5, 10, 7, 0) + 1));
        assert!(!d.is_slot(ms(2026, 5, 10, 7, 1)));
    }

    #[test]
    fn attribution_early_late_and_taken() {
        let d = s("0 7 * * *");
        let g = 1_800_000;
        let slot = ms(2026, 5, 10, 7, 0);
        let none = |_: i64| false;
        // The platform's exact scheduled time wins.
        let m = d.attribute(Some(slot), slot + 900, g, none).unwrap();
        assert_eq!(m, SlotMatch { slot_ms: slot, offset_ms: 900, from_platform: true });
        // Late within grace; early within min(grace, half the day).
        assert_eq!(d.attribute(None, slot + 1_799_000, g, none).map(|m| m.slot_ms), Some(slot));
        assert_eq!(d.attribute(None, slot + 1_801_000, g, none), None);
        let e = d.attribute(Some(slot - 120_000), slot - 120_000, g, none).unwrap();
        assert_eq!((e.slot_ms, e.offset_ms, e.from_platform), (slot, -120_000, false));
        assert_eq!(d.attribute(None, slot - 1_801_000, g, none), None);
        // Never to a slot already taken.
        assert_eq!(d.attribute(Some(slot), slot + 60_000, g, |t| t == slot), None);
        let f = s("*/5 * * * *");
        let s0 = ms(2026, 5, 10, 12, 0);
        // 12:04:30 is 30 s early for 12:05 and 4.5 min late for 12:00: nearer wins.
        assert_eq!(f.attribute(None, s0 + 270_000, g, none).map(|m| m.slot_ms), Some(s0 + 300_000));
        // 12:04:30 with 12:05 taken: late for 12:00.
        assert_eq!(f.attribute(None, s0 + 270_000, g, |t| t == s0 + 300_000).map(|m| m.slot_ms), Some(s0));
        // 12:02:30: equidistant; tie goes to the earlier (late) slot.
        assert_eq!(f.attribute(None, s0 + 150_000, g, none).map(|m| m.slot_ms), Some(s0));
        // Early tolerance for */5 is 2.5 min: 12:02:29 cannot be early for 12:05.
        assert_eq!(f.attribute(None, s0 + 149_000, g, |t| t == s0).map(|m| m.slot_ms), None);
    }
}
