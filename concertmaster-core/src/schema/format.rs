//! The `format` values a [`SchemaValidator`](super::SchemaValidator)
//! asserts. Others (`uint32`, `double`, a host's own) only annotate.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A format this validator checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Date,
    DateTime,
    Time,
    Email,
    Hostname,
    Ipv4,
    Ipv6,
    Uri,
    UriReference,
    Uuid,
    Regex,
    JsonPointer,
    Duration,
}

impl Format {
    pub(super) fn named(name: &str) -> Option<Self> {
        Some(match name {
            "date" => Self::Date,
            "date-time" => Self::DateTime,
            "time" => Self::Time,
            "email" => Self::Email,
            "hostname" => Self::Hostname,
            "ipv4" => Self::Ipv4,
            "ipv6" => Self::Ipv6,
            "uri" => Self::Uri,
            "uri-reference" => Self::UriReference,
            "uuid" => Self::Uuid,
            "regex" => Self::Regex,
            "json-pointer" => Self::JsonPointer,
            "duration" => Self::Duration,
            _ => return None,
        })
    }

    /// What a value of this format is, for messages ("is not ...").
    pub(super) fn described(self) -> &'static str {
        match self {
            Self::Date => "a date (YYYY-MM-DD)",
            Self::DateTime => "a date and time (YYYY-MM-DDThh:mm:ssZ)",
            Self::Time => "a time (hh:mm:ss with a time zone)",
            Self::Email => "an e-mail address",
            Self::Hostname => "a host name",
            Self::Ipv4 => "an IPv4 address",
            Self::Ipv6 => "an IPv6 address",
            Self::Uri => "an absolute URI",
            Self::UriReference => "a URI reference",
            Self::Uuid => "a UUID",
            Self::Regex => "a regular expression",
            Self::JsonPointer => "a JSON pointer",
            Self::Duration => "an ISO 8601 duration (such as P3D)",
        }
    }

    pub(super) fn holds(self, s: &str) -> bool {
        match self {
            Self::Date => date(s),
            Self::DateTime => date_time(s),
            Self::Time => time(s),
            Self::Email => email(s),
            Self::Hostname => hostname(s),
            // Rust's parser refuses leading zeros, as RFC 2673 does.
            Self::Ipv4 => s.parse::<Ipv4Addr>().is_ok(),
            Self::Ipv6 => s.parse::<Ipv6Addr>().is_ok(),
            Self::Uri => uri(s, true),
            Self::UriReference => uri(s, false),
            Self::Uuid => uuid(s),
            Self::Regex => regex::Regex::new(s).is_ok(),
            Self::JsonPointer => json_pointer(s),
            Self::Duration => duration(s),
        }
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// RFC 3339 `full-date`.
fn date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&s[0..4]), digits(&s[5..7]), digits(&s[8..10]))
    else {
        return false;
    };
    chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
}

/// RFC 3339 `full-time`: `hh:mm:ss[.frac](Z|±hh:mm)`, a leap second
/// only at 23:59:60 UTC.
fn time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 9 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(sec)) = (digits(&s[0..2]), digits(&s[3..5]), digits(&s[6..8]))
    else {
        return false;
    };
    let mut rest = &s[8..];
    if let Some(frac) = rest.strip_prefix('.') {
        let end = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if end == 0 {
            return false;
        }
        rest = &frac[end..];
    }
    let offset_minutes: i64 = if rest.eq_ignore_ascii_case("z") {
        0
    } else {
        let rb = rest.as_bytes();
        if rb.len() != 6 || !(rb[0] == b'+' || rb[0] == b'-') || rb[3] != b':' {
            return false;
        }
        let (Some(oh), Some(om)) = (digits(&rest[1..3]), digits(&rest[4..6])) else {
            return false;
        };
        if oh > 23 || om > 59 {
            return false;
        }
        let minutes = i64::from(oh * 60 + om);
        if rb[0] == b'+' {
            minutes
        } else {
            -minutes
        }
    };
    if h > 23 || m > 59 || sec > 60 {
        return false;
    }
    if sec == 60 {
        // A leap second is 23:59:60 in UTC.
        let utc = (i64::from(h * 60 + m) - offset_minutes).rem_euclid(24 * 60);
        return utc == 23 * 60 + 59;
    }
    true
}

fn date_time(s: &str) -> bool {
    match s.find(['T', 't']) {
        Some(10) => date(&s[..10]) && time(&s[11..]),
        _ => false,
    }
}

/// A pragmatic address check: a local part of printable characters
/// (or quoted), `@`, and a host name or bracketed IP address.
fn email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    let local_ok = if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        true
    } else {
        !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
    };
    if !local_ok {
        return false;
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return match literal.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
            None => literal.parse::<Ipv4Addr>().is_ok(),
        };
    }
    hostname(domain)
}

/// RFC 1123 host name: labels of letters, digits and inner hyphens,
/// each at most 63 characters, 253 in all. An A-label (`xn--`) is
/// checked as such a label; its Punycode is not decoded.
fn hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    s.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            // `ab--` labels are reserved for A-labels (RFC 5891).
            && (label.get(2..4) != Some("--") || label.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--")))
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// RFC 3986: with `absolute`, a scheme is required. Characters outside
/// the URI set (spaces, non-ASCII) are refused; `%` must start an escape.
fn uri(s: &str, absolute: bool) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if i + 2 >= bytes.len() {
                return false;
            }
            if !(bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
        if !allowed {
            return false;
        }
        i += 1;
    }
    let scheme_end = s.find(':');
    let has_scheme = scheme_end.is_some_and(|end| {
        let scheme = &s[..end];
        !scheme.is_empty()
            && scheme.as_bytes()[0].is_ascii_alphabetic()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            // A colon after the first `/`, `?` or `#` is no scheme's.
            && !s[..end].contains(['/', '?', '#'])
    });
    if absolute && !has_scheme {
        return false;
    }
    // `[` and `]` only around an IP literal host.
    let after_scheme = if has_scheme {
        &s[scheme_end.map_or(0, |e| e + 1)..]
    } else {
        s
    };
    if let Some(authority) = after_scheme.strip_prefix("//") {
        let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
        let rest = &authority[end..];
        let authority = &authority[..end];
        let (userinfo, host_port) = match authority.split_once('@') {
            Some((userinfo, host_port)) => (userinfo, host_port),
            None => ("", authority),
        };
        if host_port.contains('@') || userinfo.contains(['[', ']']) {
            return false;
        }
        let port = if let Some(literal) = host_port.strip_prefix('[') {
            let Some((inner, after)) = literal.split_once(']') else {
                return false;
            };
            if inner.parse::<Ipv6Addr>().is_err() && !inner.starts_with('v') {
                return false;
            }
            match after.strip_prefix(':') {
                Some(port) => port,
                None if after.is_empty() => "",
                None => return false,
            }
        } else {
            if host_port.contains(['[', ']']) {
                return false;
            }
            host_port.rsplit_once(':').map_or("", |(_, port)| port)
        };
        return port.bytes().all(|b| b.is_ascii_digit()) && !rest.contains(['[', ']']);
    }
    if !has_scheme {
        // A relative path's first segment cannot hold a colon: it would
        // read as a scheme.
        let first = after_scheme
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default();
        if first.contains(':') {
            return false;
        }
    }
    !after_scheme.contains(['[', ']'])
}

fn uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn json_pointer(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if !s.starts_with('/') {
        return false;
    }
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

/// ISO 8601 duration as RFC 3339's appendix A writes it: `P` then date
/// parts (`Y`, `M`, `D`) in order, or weeks alone, then `T` and time
/// parts (`H`, `M`, `S`); at least one part, none empty.
fn duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('P') else {
        return false;
    };
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    fn parts(text: &str, units: &[u8]) -> Option<usize> {
        let mut count = 0;
        let mut next = 0;
        let mut number = false;
        for b in text.bytes() {
            if b.is_ascii_digit() {
                number = true;
                continue;
            }
            let at = units.iter().position(|u| *u == b)?;
            // Units follow one another without a gap (`P1Y1D` lacks
            // its months).
            if !number || (count > 0 && at != next) || at < next {
                return None;
            }
            next = at + 1;
            number = false;
            count += 1;
        }
        (!number).then_some(count)
    }
    if date.ends_with('W') && time.is_none() {
        return date.len() > 1 && date[..date.len() - 1].bytes().all(|b| b.is_ascii_digit());
    }
    let Some(date_parts) = parts(date, b"YMD") else {
        return false;
    };
    match time {
        None => date_parts > 0,
        Some(time) => parts(time, b"HMS").is_some_and(|n| n > 0),
    }
}
