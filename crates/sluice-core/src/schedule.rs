//! Cron windows: steps advance only while `now` lies inside one of them.
//!
//! Accepted forms: the usual 5-field crontab (`min hour dom month dow`, e.g.
//! `* 9-17 * * Mon-Fri`), and the `cron` crate's 6/7-field form with seconds first (and an
//! optional year). A 5-field window covers every second of each matching minute.

use std::str::FromStr;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::spec::Schedule;

/// A parsed schedule, ready to answer "is this instant inside a window?".
#[derive(Debug, Clone)]
pub struct Windows {
    windows: Vec<cron::Schedule>,
    tz: Tz,
}

/// Parses one window expression; the error says what is wrong with it.
pub fn parse_window(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let normalized = match fields {
        5 => format!("* {expr}"),
        6 | 7 => expr.to_string(),
        n => {
            return Err(format!(
                "cron expression {expr:?} has {n} fields; expected 5 (min hour day month weekday) \
                 or 6/7 (with seconds first)"
            ));
        }
    };
    cron::Schedule::from_str(&normalized).map_err(|e| {
        // The cron crate's message repeats the (normalized) expression with a caret line; its
        // last line is the reason.
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        format!("invalid cron expression {expr:?}: {}", reason.trim())
    })
}

/// The first time `window` opens after `after` (seen in `tz`), or `None` when it never will:
/// an impossible date (`* * 30 2 *`, February 30) or only years that have passed. The `cron`
/// crate looks ahead to the year 2100, month by month, so this is quick either way.
pub fn next_opening(
    window: &cron::Schedule,
    tz: Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    window
        .after(&after.with_timezone(&tz))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?} (use an IANA name like Europe/Berlin)"))
}

impl Windows {
    pub fn parse(schedule: &Schedule) -> Result<Self, String> {
        let tz = match &schedule.time_zone {
            Some(name) => parse_time_zone(name)?,
            None => Tz::UTC,
        };
        let windows = schedule
            .windows
            .iter()
            .map(|w| parse_window(w))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Windows { windows, tz })
    }

    /// Whether `now` is inside any window. No windows at all means "always".
    pub fn contains(&self, now: DateTime<Utc>) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let local = now
            .with_timezone(&self.tz)
            .with_nanosecond(0)
            .unwrap_or(now.with_timezone(&self.tz));
        self.windows.iter().any(|w| w.includes(local))
    }
}

/// `None` schedule: always open. An unparsable schedule is closed (validation reports it;
/// the engine must never advance on a window it cannot read).
pub fn window_open(schedule: Option<&Schedule>, now: DateTime<Utc>) -> bool {
    match schedule {
        None => true,
        Some(s) => Windows::parse(s).map(|w| w.contains(now)).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sched(windows: &[&str], tz: Option<&str>) -> Schedule {
        Schedule {
            windows: windows.iter().map(|s| s.to_string()).collect(),
            time_zone: tz.map(String::from),
        }
    }

    #[test]
    fn five_field_business_hours_in_berlin() {
        let s = sched(&["* 9-17 * * Mon-Fri"], Some("Europe/Berlin"));
        // Wednesday 2026-11-25 10:30 UTC = 11:30 Berlin: inside.
        assert!(window_open(
            Some(&s),
            Utc.with_ymd_and_hms(2026, 11, 25, 10, 30, 15).unwrap()
        ));
        // 17:30 UTC = 18:30 Berlin: outside.
        assert!(!window_open(
            Some(&s),
            Utc.with_ymd_and_hms(2026, 11, 25, 17, 30, 0).unwrap()
        ));
        // 07:30 UTC = 08:30 Berlin: outside, although 07:30 UTC... is before 9 anyway; 08:30 UTC
        // = 09:30 Berlin: inside (the zone matters).
        assert!(window_open(
            Some(&s),
            Utc.with_ymd_and_hms(2026, 11, 25, 8, 30, 0).unwrap()
        ));
        // Saturday: outside.
        assert!(!window_open(
            Some(&s),
            Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
        ));
    }

    #[test]
    fn six_field_form_and_no_schedule() {
        let s = sched(&["0 * 3 * * *"], None);
        assert!(window_open(
            Some(&s),
            Utc.with_ymd_and_hms(2026, 1, 1, 3, 5, 0).unwrap()
        ));
        assert!(!window_open(
            Some(&s),
            Utc.with_ymd_and_hms(2026, 1, 1, 3, 5, 1).unwrap()
        ));
        assert!(window_open(None, Utc::now()));
    }

    #[test]
    fn bad_expressions_are_errors_and_closed() {
        assert!(parse_window("* * *").is_err());
        assert!(parse_window("* 25 * * *").is_err());
        assert!(parse_time_zone("Mars/Base").is_err());
        let s = sched(&["nonsense here x y z"], None);
        assert!(!window_open(Some(&s), Utc::now()));
    }
}
