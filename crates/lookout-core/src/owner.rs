//! What a shop's owner is told, pure: the alerts that concern them (AI paused, AI resumed, the
//! week's text-message spend running over budget) as a plain-language email: what happened,
//! what it means for them, what the operator will do. Only the owner's own shop's figures are
//! in it, never another shop's, never internals (rule names, dedup keys, request ids).
//! Sending is the edge's (the `send_email` binding, to the shop's owner contact).

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::cron::cost::{RESUMED_BY_OPERATOR, RESUMED_CAP_REMOVED, RESUMED_NEW_MONTH};
use crate::cron::PauseReason;
use crate::monitor::EmailMessage;

/// Why AI was resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeWhy {
    Operator,
    NewMonth,
    CapRemoved,
}

impl ResumeWhy {
    /// From the summary of the `ai_cost_projection` resolve (`core::cron::cost`).
    pub fn from_summary(summary: &str) -> ResumeWhy {
        match summary {
            RESUMED_NEW_MONTH => ResumeWhy::NewMonth,
            RESUMED_CAP_REMOVED => ResumeWhy::CapRemoved,
            RESUMED_BY_OPERATOR => ResumeWhy::Operator,
            _ => ResumeWhy::Operator,
        }
    }
}

/// The news, with the shop's own figures (micro-dollars, epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "news", rename_all = "snake_case")]
pub enum OwnerNews {
    AiPaused {
        at_ms: i64,
        reason: PauseReason,
        spent_micros: u64,
        projected_micros: u64,
        cap_micros: u64,
        month_end_ms: i64,
    },
    AiResumed {
        at_ms: i64,
        why: ResumeWhy,
    },
    TwilioOverBudget {
        at_ms: i64,
        spent_micros: u64,
        projected_micros: u64,
        budget_micros: u64,
        week_end_ms: i64,
    },
}

fn usd(micros: u64) -> String {
    format!("${}.{:02}", micros / 1_000_000, (micros % 1_000_000) / 10_000)
}

fn when(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%B %-d at %H:%M UTC").to_string())
}

fn day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(String::new, |t| t.format("%A, %B %-d").to_string())
}

const SIGN_OFF: &str = "This message was sent automatically by the monitoring your shop's operator runs. \
Reply to your operator if you have questions.";

/// The owner's email for `news` about `shop`, greeting `owner_name`.
pub fn owner_email(shop: &str, owner_name: &str, news: &OwnerNews) -> EmailMessage {
    let (subject, body) = match news {
        OwnerNews::AiPaused { at_ms, reason, spent_micros, projected_micros, cap_micros, month_end_ms } => {
            let what = match reason {
                PauseReason::SpentOverCap => format!(
                    "this month's AI spending reached {}, which is over your monthly limit of {}",
                    usd(*spent_micros),
                    usd(*cap_micros)
                ),
                PauseReason::ProjectedOverCap => format!(
                    "this month's AI spending ({} so far) is on track to reach about {} by the end of the month, \
                     which is over your monthly limit of {}",
                    usd(*spent_micros),
                    usd(*projected_micros),
                    usd(*cap_micros)
                ),
            };
            (
                format!("AI features are paused for your shop {shop}"),
                format!(
                    "What happened: on {}, the AI features of your shop {shop} (such as ticket summaries) were \
                     paused, because {what}.\n\n\
                     What this means for you: until AI is turned back on, those features tell your staff that \
                     they are paused. Everything else in your shop works as usual, and nothing more is spent on \
                     AI this month.\n\n\
                     What happens next: your operator has been alerted. They will contact you to agree whether \
                     to raise your limit and turn AI back on. If nothing changes, AI turns back on by itself on \
                     {}.",
                    when(*at_ms),
                    day(*month_end_ms)
                ),
            )
        }
        OwnerNews::AiResumed { at_ms, why } => {
            let because = match why {
                ResumeWhy::Operator => "your operator turned them back on",
                ResumeWhy::NewMonth => "a new month started, with a fresh monthly limit",
                ResumeWhy::CapRemoved => "the monthly limit on AI spending was removed",
            };
            (
                format!("AI features are back on for your shop {shop}"),
                format!(
                    "What happened: on {}, the AI features of your shop {shop} were turned back on, because \
                     {because}.\n\n\
                     What this means for you: ticket summaries and the other AI features work again as \
                     usual.\n\n\
                     What happens next: nothing is needed from you. If spending goes over the monthly limit \
                     again, AI is paused again and you will be told.",
                    when(*at_ms)
                ),
            )
        }
        OwnerNews::TwilioOverBudget { at_ms, spent_micros, projected_micros, budget_micros, week_end_ms } => (
            format!("Text message spending is running high for your shop {shop}"),
            format!(
                "What happened: as of {}, your shop {shop} has spent {} on text messages (SMS) this week. At \
                 this pace the week comes to about {} by the end of {}, well over your weekly budget of {}.\n\n\
                 What this means for you: nothing is blocked; your text messages still go out. If the pace \
                 continues, this week's text message bill will be above your budget.\n\n\
                 What happens next: your operator has been alerted and will contact you about your text message \
                 volume, for example to check for messages sent more often than intended.",
                when(*at_ms),
                usd(*spent_micros),
                usd(*projected_micros),
                day(week_end_ms.saturating_sub(1)),
                usd(*budget_micros)
            ),
        ),
    };
    EmailMessage { subject, text: format!("Hello {owner_name},\n\n{body}\n\n{SIGN_OFF}\n") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_779_278_400_000; // 2026-05-20T12:00:00Z
    const JUNE_1: i64 = 1_780_272_000_000;

    #[test]
    fn the_paused_email_says_what_happened_what_it_means_and_what_happens_next() {
        let news = OwnerNews::AiPaused {
            at_ms: T,
            reason: PauseReason::SpentOverCap,
            spent_micros: 1_500_000,
            projected_micros: 2_325_000,
            cap_micros: 1_000_000,
            month_end_ms: JUNE_1,
        };
        let m = owner_email("swicked", "Robbie", &news);
        assert_eq!(m.subject, "AI features are paused for your shop swicked");
        assert!(m.text.starts_with("Hello Robbie,\n\nWhat happened: on May 20 at 12:00 UTC"), "{}", m.text);
        assert!(m.text.contains("reached $1.50, which is over your monthly limit of $1.00"), "{}", m.text);
        assert!(m.text.contains("What this means for you:") && m.text.contains("What happens next:"));
        assert!(m.text.contains("by itself on Monday, June 1"), "{}", m.text);
        for jargon in ["ai_cost_projection", "micro", "dedup", "projection", "cron", "lookout"] {
            assert!(!m.text.contains(jargon), "{jargon:?} in an owner's email: {}", m.text);
        }
    }

    #[test]
    fn resumed_and_twilio_emails() {
        let m = owner_email(
            "demo",
            "Sam",
            &OwnerNews::AiResumed { at_ms: T, why: ResumeWhy::from_summary(RESUMED_BY_OPERATOR) },
        );
        assert_eq!(m.subject, "AI features are back on for your shop demo");
        assert!(m.text.contains("your operator turned them back on"));
        assert_eq!(ResumeWhy::from_summary(RESUMED_NEW_MONTH), ResumeWhy::NewMonth);
        let m = owner_email(
            "demo",
            "Sam",
            &OwnerNews::TwilioOverBudget {
                at_ms: T,
                spent_micros: 2_000_000,
                projected_micros: 6_000_000,
                budget_micros: 1_000_000,
                week_end_ms: T + 4 * 86_400_000,
            },
        );
        assert!(m.text.contains("spent $2.00 on text messages (SMS) this week"), "{}", m.text);
        assert!(
            m.text.contains("about $6.00 by the end of Sunday, May 24, well over your weekly budget of $1.00"),
            "{}",
            m.text
        );
    }
}
