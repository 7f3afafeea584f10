//! Cron expressions read in an IANA time zone: the next fire after an
//! instant, right across daylight-saving changes.
//!
//! Five fields (`minute hour day-of-month month day-of-week`) or six with
//! seconds first; `*`, lists, ranges, steps, month and weekday names, and
//! `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. When both day
//! fields are restricted, a day matches either (as in Vixie cron).
//!
//! Daylight saving: a fire time the spring change skips (02:30 on the
//! night clocks jump from 02:00 to 03:00) fires when the gap ends (03:00);
//! a time the autumn change repeats fires once, the first time.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CronError {
    /// A field is wrong.
    #[error("cron {expr:?}: {field} field {value:?}: {message}")]
    Field {
        /// The expression.
        expr: String,
        /// Which field (`minute`, `hour`, ...).
        field: &'static str,
        /// Its text.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// Not 5 or 6 fields.
    #[error("cron {expr:?}: expected 5 fields (minute hour day month weekday) or 6 (with seconds first), found {found}")]
    FieldCount {
        /// The expression.
        expr: String,
        /// How many fields it had.
        found: usize,
    },
    /// The time zone is not an IANA name.
    #[error("time zone {0:?} is not an IANA time zone name (like \"Europe/Berlin\")")]
    TimeZone(String),
}

/// A parsed cron schedule in a time zone.
///
/// ```
/// use concertmaster_nodes::CronSchedule;
/// use chrono::{TimeZone, Utc};
///
/// let nine_on_weekdays = CronSchedule::parse("0 9 * * MON-FRI", "Europe/Berlin")?;
/// let friday_evening = Utc.with_ymd_and_hms(2026, 11, 27, 18, 0, 0).unwrap();
/// // Next: Monday 09:00 in Berlin, 08:00 UTC in winter.
/// assert_eq!(
///     nine_on_weekdays.next_after(friday_evening),
///     Some(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap())
/// );
/// # Ok::<(), concertmaster_nodes::CronError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    text: String,
    tz: Tz,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    any_day: bool,
    any_weekday: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Years searched for a next fire before giving up (`0 0 30 2 *` never fires).
const SEARCH_DAYS: i64 = 366 * 8;

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name stands for this number.
    names_from: u32,
}

impl Field {
    fn parse(&self, expr: &str, text: &str) -> Result<(u64, bool), CronError> {
        let fail = |message: String| CronError::Field {
            expr: expr.to_string(),
            field: self.name,
            value: text.to_string(),
            message,
        };
        let number = |s: &str| -> Result<u32, CronError> {
            if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
                return Ok(self.names_from + i as u32);
            }
            let n: u32 = s
                .parse()
                .map_err(|_| fail(format!("{s:?} is not a number{}", self.name_hint())))?;
            // Sunday is 0 and also 7.
            let n = if self.name == "weekday" && n == 7 {
                0
            } else {
                n
            };
            if n < self.min || n > self.max {
                return Err(fail(format!("{n} is outside {}-{}", self.min, self.max)));
            }
            Ok(n)
        };
        let mut bits = 0u64;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => {
                    let step: u32 =
                        step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                            fail(format!("step {step:?} must be a positive number"))
                        })?;
                    (range, step)
                }
                None => (part, 1),
            };
            let (from, to) = match range {
                "*" => (self.min, self.max),
                _ => match range.split_once('-') {
                    Some((a, b)) => (number(a)?, number(b)?),
                    None if part.contains('/') => (number(range)?, self.max),
                    None => {
                        let n = number(range)?;
                        (n, n)
                    }
                },
            };
            if from > to {
                return Err(fail(format!("range {from}-{to} runs backwards")));
            }
            let mut n = from;
            while n <= to {
                bits |= 1 << n;
                n += step;
            }
        }
        Ok((bits, text == "*"))
    }

    fn name_hint(&self) -> &'static str {
        match self.name {
            "month" => " or month name (JAN-DEC)",
            "weekday" => " or weekday name (SUN-SAT)",
            _ => "",
        }
    }
}

impl CronSchedule {
    /// Parses `expr`, read in time zone `timezone` (an IANA name).
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, CronError> {
        let tz: Tz = timezone
            .parse()
            .map_err(|_| CronError::TimeZone(timezone.to_string()))?;
        let expanded = match expr.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let fields: Vec<&str> = match fields.len() {
            5 => std::iter::once("0").chain(fields).collect(),
            6 => fields,
            found => {
                return Err(CronError::FieldCount {
                    expr: expr.to_string(),
                    found,
                })
            }
        };
        let spec = |name, min, max| Field {
            name,
            min,
            max,
            names: &[],
            names_from: 0,
        };
        let (seconds, _) = spec("second", 0, 59).parse(expr, fields[0])?;
        let (minutes, _) = spec("minute", 0, 59).parse(expr, fields[1])?;
        let (hours, _) = spec("hour", 0, 23).parse(expr, fields[2])?;
        let (days, any_day) = spec("day-of-month", 1, 31).parse(expr, fields[3])?;
        let months_field = Field {
            name: "month",
            min: 1,
            max: 12,
            names: &MONTHS,
            names_from: 1,
        };
        let (months, _) = months_field.parse(expr, fields[4])?;
        let weekdays_field = Field {
            name: "weekday",
            min: 0,
            max: 7,
            names: &WEEKDAYS,
            names_from: 0,
        };
        let (weekdays, any_weekday) = weekdays_field.parse(expr, fields[5])?;
        Ok(Self {
            text: expr.to_string(),
            tz,
            seconds,
            minutes,
            hours,
            days,
            months,
            // Sunday as 7 was folded into 0 above.
            weekdays: weekdays | ((weekdays >> 7) & 1),
            any_day,
            any_weekday,
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.text
    }

    /// The time zone it is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The instant a local time stands for: the earlier of two in the
    /// autumn overlap, the end of the gap in the spring one.
    fn resolve(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => (1..=180).find_map(|minutes| {
                let later = local + Duration::minutes(minutes);
                let later = later.with_second(0).unwrap_or(later);
                match self.tz.from_local_datetime(&later) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                        Some(t.with_timezone(&Utc))
                    }
                    LocalResult::None => None,
                }
            }),
        }
    }

    /// The first fire strictly after `after`; `None` when there is none
    /// within eight years (`0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local_after = after.with_timezone(&self.tz).naive_local();
        // Local times can repeat or jump by up to a few hours around a
        // change; candidates this far before `after` cannot come after it.
        let earliest = local_after - Duration::hours(3);
        let start = earliest.date();
        for offset in 0..SEARCH_DAYS {
            let date = start + Duration::days(offset);
            if !self.day_matches(date) {
                continue;
            }
            for hour in bits(self.hours, 24) {
                for minute in bits(self.minutes, 60) {
                    for second in bits(self.seconds, 60) {
                        let Some(local) = date.and_hms_opt(hour, minute, second) else {
                            continue;
                        };
                        if local < earliest {
                            continue;
                        }
                        match self.resolve(local) {
                            Some(at) if at > after => return Some(at),
                            _ => {}
                        }
                    }
                }
            }
        }
        None
    }

    /// Every fire in `(after, until]`, at most `limit` of them.
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::new();
        let mut at = after;
        while fires.len() < limit {
            match self.next_after(at) {
                Some(next) if next <= until => {
                    fires.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        fires
    }
}

fn bits(set: u64, below: u32) -> impl Iterator<Item = u32> {
    (0..below).filter(move |n| set & (1 << n) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn fires(expr: &str, tz: &str, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let schedule = CronSchedule::parse(expr, tz).unwrap();
        let mut out = Vec::new();
        let mut at = from;
        for _ in 0..n {
            at = schedule.next_after(at).unwrap();
            out.push(at);
        }
        out
    }

    #[test]
    fn fields_steps_lists_names_and_seconds() {
        let from = utc(2026, 11, 25, 10, 7, 0);
        assert_eq!(
            fires("*/15 * * * *", "UTC", from, 3),
            vec![
                utc(2026, 11, 25, 10, 15, 0),
                utc(2026, 11, 25, 10, 30, 0),
                utc(2026, 11, 25, 10, 45, 0)
            ]
        );
        assert_eq!(
            fires("30 */20 9 * * *", "UTC", from, 3),
            vec![
                utc(2026, 11, 26, 9, 0, 30),
                utc(2026, 11, 26, 9, 20, 30),
                utc(2026, 11, 26, 9, 40, 30)
            ]
        );
        assert_eq!(
            fires("0 8 1,15 JAN,jul *", "UTC", from, 3),
            vec![
                utc(2027, 1, 1, 8, 0, 0),
                utc(2027, 1, 15, 8, 0, 0),
                utc(2027, 7, 1, 8, 0, 0)
            ]
        );
        // Sunday is 0 and 7; both day fields restricted: either matches.
        assert_eq!(
            fires("0 0 * * 7", "UTC", from, 1),
            vec![utc(2026, 11, 29, 0, 0, 0)]
        );
        assert_eq!(
            fires("0 0 1 * MON", "UTC", from, 2),
            vec![utc(2026, 11, 30, 0, 0, 0), utc(2026, 12, 1, 0, 0, 0)]
        );
        assert_eq!(
            fires("@daily", "UTC", from, 1),
            vec![utc(2026, 11, 26, 0, 0, 0)]
        );
    }

    #[test]
    fn a_time_in_a_zone_is_that_local_time() {
        let from = utc(2026, 7, 1, 0, 0, 0);
        assert_eq!(
            fires("0 9 * * *", "Europe/Berlin", from, 1),
            vec![utc(2026, 7, 1, 7, 0, 0)]
        );
        assert_eq!(
            fires("0 9 * * *", "America/New_York", from, 1),
            vec![utc(2026, 7, 1, 13, 0, 0)]
        );
    }

    #[test]
    fn spring_forward_fires_a_skipped_time_when_the_gap_ends() {
        // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST.
        let from = utc(2026, 3, 27, 12, 0, 0);
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", from, 3),
            vec![
                utc(2026, 3, 28, 1, 30, 0), // 02:30 CET
                utc(2026, 3, 29, 1, 0, 0),  // 02:30 does not exist: 03:00 CEST
                utc(2026, 3, 30, 0, 30, 0), // 02:30 CEST
            ]
        );
        assert_eq!(
            fires("0 * * * *", "Europe/Berlin", utc(2026, 3, 28, 23, 30, 0), 3),
            vec![
                utc(2026, 3, 29, 0, 0, 0),
                utc(2026, 3, 29, 1, 0, 0),
                utc(2026, 3, 29, 2, 0, 0)
            ],
            "hourly: 01:00 CET, 03:00 CEST, 04:00 CEST; no fire twice at 03:00"
        );
    }

    #[test]
    fn fall_back_fires_a_repeated_time_once() {
        // Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET.
        let from = utc(2026, 10, 23, 12, 0, 0);
        assert_eq!(
            fires("30 2 * * *", "Europe/Berlin", from, 3),
            vec![
                utc(2026, 10, 24, 0, 30, 0), // 02:30 CEST
                utc(2026, 10, 25, 0, 30, 0), // the first 02:30 (CEST), not again at 02:30 CET
                utc(2026, 10, 26, 1, 30, 0), // 02:30 CET
            ]
        );
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        let err = CronSchedule::parse("61 * * * *", "UTC").unwrap_err();
        assert!(
            err.to_string()
                .contains("minute field \"61\": 61 is outside 0-59"),
            "{err}"
        );
        let err = CronSchedule::parse("0 0 * FOO *", "UTC").unwrap_err();
        assert!(err.to_string().contains("month name"), "{err}");
        let err = CronSchedule::parse("* * *", "UTC").unwrap_err();
        assert!(
            matches!(err, CronError::FieldCount { found: 3, .. }),
            "{err}"
        );
        let err = CronSchedule::parse("*/0 * * * *", "UTC").unwrap_err();
        assert!(err.to_string().contains("step"), "{err}");
        let err = CronSchedule::parse("0 0 * * *", "Europe/Atlantis").unwrap_err();
        assert!(matches!(err, CronError::TimeZone(_)), "{err}");
        assert_eq!(
            CronSchedule::parse("0 0 30 2 *", "UTC")
                .unwrap()
                .next_after(utc(2026, 1, 1, 0, 0, 0)),
            None
        );
    }
}
