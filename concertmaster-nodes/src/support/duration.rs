//! Durations in node configs: `90s`, `2h30m`, `3d`, `1w`, or ISO 8601
//! (`PT2H30M`, `P3D`, `P1W`).

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest duration a config may give: times stay far inside the calendar.
const MAX: chrono::Duration = chrono::Duration::days(36_500);

/// What the schema lets through; [`parse`] says why anything else is wrong.
const PATTERN: &str =
    "^(([0-9]+[smhdw])+|P([0-9]+W)?([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+S)?)?)$";

/// A duration read from a config field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interval(pub(crate) chrono::Duration);

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        parse(&text).map(Interval).map_err(serde::de::Error::custom)
    }
}

/// Written the short way (`1m`, `2h30m`, `3d`), so that a default reads
/// like what a person would type.
impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut rest = self.0.num_seconds();
        let mut text = String::new();
        for (unit, seconds) in [
            ("w", 604_800),
            ("d", 86_400),
            ("h", 3_600),
            ("m", 60),
            ("s", 1),
        ] {
            if rest >= seconds {
                text.push_str(&format!("{}{unit}", rest / seconds));
                rest %= seconds;
            }
        }
        if text.is_empty() {
            text.push_str("0s");
        }
        serializer.serialize_str(&text)
    }
}

impl JsonSchema for Interval {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "description": "Like `90s`, `2h30m`, `3d`, `1w`, or ISO 8601 (`PT2H30M`, `P3D`)."
        })
    }
}

/// Parses `2h30m`-style durations (whole numbers with units s, m, h, d, w)
/// and ISO 8601 durations of weeks, days, hours, minutes and seconds.
pub(crate) fn parse(text: &str) -> Result<chrono::Duration, String> {
    let trimmed = text.trim();
    let total = match trimmed.strip_prefix('P') {
        Some(iso) => parse_iso(text, iso)?,
        None => parse_short(text, trimmed)?,
    };
    if total > MAX {
        return Err(format!("{text:?} is longer than 100 years"));
    }
    Ok(total)
}

fn parse_short(text: &str, trimmed: &str) -> Result<chrono::Duration, String> {
    let mut parts = Parts::new(text);
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            parts.digit(c);
            continue;
        }
        let unit = match c {
            's' => Unit::Second,
            'm' => Unit::Minute,
            'h' => Unit::Hour,
            'd' => Unit::Day,
            'w' => Unit::Week,
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {c:?}; use s, m, h, d or w (or ISO 8601 like \"PT2H\")"
                ))
            }
        };
        parts.add(c, unit)?;
    }
    parts.finish("expected a duration like \"90s\", \"2h30m\", \"3d\" or \"PT2H30M\"")
}

/// `iso` is what follows the `P`: `[nW][nD][T[nH][nM][nS]]`.
fn parse_iso(text: &str, iso: &str) -> Result<chrono::Duration, String> {
    let mut parts = Parts::new(text);
    let mut in_time = false;
    // Units must come in ISO 8601's order; this is the last one seen.
    let mut last: Option<Unit> = None;
    for c in iso.chars() {
        if c.is_ascii_digit() {
            parts.digit(c);
            continue;
        }
        let unit = match (c, in_time) {
            ('T', false) if parts.number.is_empty() => {
                in_time = true;
                continue;
            }
            ('W', false) => Unit::Week,
            ('D', false) => Unit::Day,
            ('H', true) => Unit::Hour,
            ('M', true) => Unit::Minute,
            ('S', true) => Unit::Second,
            ('Y' | 'M', false) => {
                return Err(format!(
                    "{text:?}: years and months vary in length; give weeks or days (\"P30D\")"
                ))
            }
            ('.' | ',', _) => {
                return Err(format!("{text:?}: give whole numbers (\"PT90S\", not \"PT1.5M\")"))
            }
            _ => {
                return Err(format!(
                    "{text:?}: unexpected {c:?}; ISO 8601 durations read like \"P3D\", \"PT2H30M\" or \"P1DT12H\""
                ))
            }
        };
        if last.is_some_and(|previous| previous >= unit) {
            return Err(format!(
                "{text:?}: units go from weeks down to seconds, each once"
            ));
        }
        last = Some(unit);
        parts.add(c, unit)?;
    }
    if in_time && last.is_none_or(|unit| unit < Unit::Hour) {
        return Err(format!(
            "{text:?}: a \"T\" is followed by hours, minutes or seconds"
        ));
    }
    parts.finish("expected an ISO 8601 duration like \"P3D\" or \"PT2H30M\"")
}

/// Units, largest first so that ISO 8601's order can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Week,
    Day,
    Hour,
    Minute,
    Second,
}

struct Parts<'a> {
    text: &'a str,
    number: String,
    total: chrono::Duration,
    any: bool,
}

impl<'a> Parts<'a> {
    fn new(text: &'a str) -> Self {
        Parts {
            text,
            number: String::new(),
            total: chrono::Duration::zero(),
            any: false,
        }
    }

    fn digit(&mut self, c: char) {
        self.number.push(c);
    }

    fn add(&mut self, c: char, unit: Unit) -> Result<(), String> {
        let text = self.text;
        let too_long = || format!("{text:?} is too long");
        let n: i64 = if self.number.is_empty() {
            return Err(format!("{text:?}: expected a number before {c:?}"));
        } else {
            self.number.parse().map_err(|_| too_long())?
        };
        let part = match unit {
            Unit::Second => chrono::Duration::try_seconds(n),
            Unit::Minute => chrono::Duration::try_minutes(n),
            Unit::Hour => chrono::Duration::try_hours(n),
            Unit::Day => chrono::Duration::try_days(n),
            Unit::Week => chrono::Duration::try_weeks(n),
        }
        .ok_or_else(too_long)?;
        self.total = self.total.checked_add(&part).ok_or_else(too_long)?;
        self.number.clear();
        self.any = true;
        Ok(())
    }

    fn finish(self, expected: &str) -> Result<chrono::Duration, String> {
        if !self.number.is_empty() || !self.any {
            return Err(format!("{:?}: {expected}", self.text));
        }
        Ok(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use chrono::Duration;

    #[test]
    fn short_durations_parse_and_bad_ones_say_why() {
        assert_eq!(parse("2h30m").unwrap(), Duration::minutes(150));
        assert_eq!(parse("1w1d").unwrap(), Duration::days(8));
        assert!(parse("5").unwrap_err().contains("expected a duration"));
        assert!(parse("5y").unwrap_err().contains("unknown unit"));
        assert!(parse("").is_err());
        assert!(parse("99999999w").unwrap_err().contains("100 years"));
    }

    #[test]
    fn iso_8601_durations_parse() {
        assert_eq!(parse("PT2H30M").unwrap(), Duration::minutes(150));
        assert_eq!(parse("P3D").unwrap(), Duration::days(3));
        assert_eq!(parse("P1W").unwrap(), Duration::weeks(1));
        assert_eq!(parse("P1DT12H").unwrap(), Duration::hours(36));
        assert_eq!(parse("PT90S").unwrap(), Duration::seconds(90));
        assert_eq!(
            parse("P2W3DT4H5M6S").unwrap(),
            Duration::seconds(((17 * 24 + 4) * 60 + 5) * 60 + 6)
        );
    }

    #[test]
    fn bad_iso_8601_durations_say_why() {
        let says = |text: &str, why: &str| {
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        };
        says("P1M", "years and months");
        says("P1Y", "years and months");
        says("PT1.5M", "whole numbers");
        says("P", "expected an ISO 8601 duration");
        says("PT", "followed by hours");
        says("P3DT", "followed by hours");
        says("PT30M2H", "from weeks down to seconds");
        says("P1D1D", "from weeks down to seconds");
        says("P2H", "unexpected 'H'");
        says("PTD", "unexpected 'D'");
        says("P3", "expected an ISO 8601 duration");
        says("P99999999W", "100 years");
    }

    #[test]
    fn intervals_print_as_they_are_typed() {
        for (text, printed) in [
            ("1m", "1m"),
            ("PT2H30M", "2h30m"),
            ("P1W1D", "1w1d"),
            ("90s", "1m30s"),
        ] {
            let interval = super::Interval(parse(text).unwrap());
            assert_eq!(serde_json::to_value(interval).unwrap(), printed);
        }
    }

    #[test]
    fn the_schema_pattern_lets_through_what_parses() {
        let pattern = regex_lite(super::PATTERN);
        for ok in ["3d", "2h30m", "PT2H30M", "P3D", "P1DT12H", "P1W"] {
            assert!(parse(ok).is_ok(), "{ok}");
            assert!(pattern(ok), "{ok}");
        }
        for bad in ["P1M", "5y", "PT1.5M", "3 d", "P2H"] {
            assert!(parse(bad).is_err(), "{bad}");
            assert!(!pattern(bad), "{bad}");
        }
    }

    /// The pattern as the registry reads it: through a JSON Schema.
    fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
        let validator = concertmaster_core::validate::SchemaValidator::new(
            &serde_json::json!({ "type": "string", "pattern": pattern }),
        )
        .expect("the duration pattern compiles");
        move |text| validator.is_valid(&serde_json::json!(text))
    }
}
