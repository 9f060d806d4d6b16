//! Cron watch maths, pure: schedules, expected slots, the watchdog and cost projections.
