//! Payout validity dates.
//!
//! The sender's text (trimmed) is what the panel receives; the parsed
//! instant is what the bridge compares.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

use super::validation::{echo, json_type};

/// Longest date text accepted (characters, after trimming).
pub const MAX_DATE_LEN: usize = 64;
/// Earliest accepted year (of the instant in UTC).
pub const MIN_YEAR: i32 = 1970;
/// Latest accepted year (of the instant in UTC).
pub const MAX_YEAR: i32 = 9999;

/// Human-readable list of accepted formats, used in error messages.
pub const ACCEPTED_FORMATS: &str = "accepted formats: \
2024-01-31T12:00:00Z or 2024-01-31 12:00:00.250+02:00 (RFC 3339 / ISO 8601 with Z or an offset, \
optional fractional seconds, 'T' or space), \
2024-01-31T12:00:00 or 2024-01-31 12:00:00 (no offset: taken as UTC), \
2024-01-31 (midnight UTC), \
Wed, 31 Jan 2024 12:00:00 +0000 (RFC 2822)";

/// A date as the sender wrote it, plus the instant it denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelDate {
    original: String,
    instant: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("must be a date string, got {0}")]
    WrongType(&'static str),
    #[error("must not be empty")]
    Empty,
    #[error("{0} is not a recognised date; {formats}", formats = ACCEPTED_FORMATS)]
    Unrecognised(String),
    #[error("{0} is not a valid calendar date, time or offset")]
    Invalid(String),
    #[error("{0} is outside the supported years {MIN_YEAR}..={MAX_YEAR}")]
    OutOfRange(String),
}

/// Why the ISO parser gave up: the text does not have the shape at all
/// (try RFC 2822 next), or it has the shape but an impossible value.
enum IsoFailure {
    Shape,
    Value,
}

fn digits(bytes: &[u8], start: usize, len: usize) -> Option<u32> {
    let slice = bytes.get(start..start + len)?;
    if !slice.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        slice
            .iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0')),
    )
}

/// `YYYY-MM-DD`, optionally followed by `[T t space]HH:MM:SS[.f{1,9}]`
/// and optionally `Z`/`z`/`±HH:MM`/`±HHMM` (no offset = UTC).
fn parse_iso(s: &str) -> Result<DateTime<Utc>, IsoFailure> {
    use IsoFailure::{Shape, Value};
    let b = s.as_bytes();
    let year = digits(b, 0, 4).ok_or(Shape)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err(Shape);
    }
    let month = digits(b, 5, 2).ok_or(Shape)?;
    let day = digits(b, 8, 2).ok_or(Shape)?;
    let year = i32::try_from(year).map_err(|_| Value)?;
    let date = NaiveDate::from_ymd_opt(year, month, day);
    if b.len() == 10 {
        let date = date.ok_or(Value)?;
        return Ok(date.and_time(NaiveTime::MIN).and_utc());
    }

    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return Err(Shape);
    }
    let hour = digits(b, 11, 2).ok_or(Shape)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return Err(Shape);
    }
    let minute = digits(b, 14, 2).ok_or(Shape)?;
    let second = digits(b, 17, 2).ok_or(Shape)?;
    let mut i = 19;

    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        let frac_len = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&frac_len) {
            return Err(Shape);
        }
        let frac = digits(b, i + 1, frac_len).ok_or(Shape)?;
        nanos = frac * 10u32.pow(9 - frac_len as u32);
        i += 1 + frac_len;
    }

    let offset_seconds: i32 = match &b[i..] {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [_, _, b':', _, _] => (digits(rest, 0, 2), digits(rest, 3, 2)),
                [_, _, _, _] => (digits(rest, 0, 2), digits(rest, 2, 2)),
                _ => return Err(Shape),
            };
            let (h, m) = (h.ok_or(Shape)?, m.ok_or(Shape)?);
            if h > 23 || m > 59 {
                return Err(Value);
            }
            let secs = i32::try_from(h * 3600 + m * 60).map_err(|_| Value)?;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return Err(Shape),
    };

    let date = date.ok_or(Value)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos).ok_or(Value)?;
    let offset = FixedOffset::east_opt(offset_seconds).ok_or(Value)?;
    let local = offset
        .from_local_datetime(&date.and_time(time))
        .single()
        .ok_or(Value)?;
    Ok(local.with_timezone(&Utc))
}

impl PanelDate {
    /// Parse one of the accepted formats (see [`ACCEPTED_FORMATS`]).
    /// Surrounding whitespace is removed and the rest kept verbatim.
    pub fn parse(input: &str) -> Result<PanelDate, DateError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(DateError::Empty);
        }
        if s.chars().count() > MAX_DATE_LEN {
            return Err(DateError::Unrecognised(echo(s)));
        }
        let instant = match parse_iso(s) {
            Ok(t) => t,
            Err(IsoFailure::Value) => return Err(DateError::Invalid(echo(s))),
            Err(IsoFailure::Shape) => match DateTime::parse_from_rfc2822(s) {
                Ok(t) => t.with_timezone(&Utc),
                Err(_) => return Err(DateError::Unrecognised(echo(s))),
            },
        };
        if !(MIN_YEAR..=MAX_YEAR).contains(&instant.year()) {
            return Err(DateError::OutOfRange(echo(s)));
        }
        Ok(PanelDate {
            original: s.to_owned(),
            instant,
        })
    }

    /// Parse a JSON value, which must be a string.
    pub fn from_json(value: &Value) -> Result<PanelDate, DateError> {
        match value {
            Value::String(s) => PanelDate::parse(s),
            other => Err(DateError::WrongType(json_type(other))),
        }
    }

    /// The sender's text, trimmed: what the panel receives.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The instant the text denotes.
    pub fn instant(&self) -> DateTime<Utc> {
        self.instant
    }

    /// The instant as RFC 3339 in UTC (`2024-01-31T10:00:00Z`, fractional
    /// seconds only when present): one spelling per instant.
    pub fn canonical(&self) -> String {
        self.instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

impl fmt::Display for PanelDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> String {
        PanelDate::parse(s).unwrap().canonical()
    }

    #[test]
    fn rfc3339_with_z_or_offset() {
        assert_eq!(at("2024-01-31T12:00:00Z"), "2024-01-31T12:00:00Z");
        assert_eq!(at("2024-01-31t12:00:00z"), "2024-01-31T12:00:00Z");
        assert_eq!(at("2024-01-31T12:00:00+02:00"), "2024-01-31T10:00:00Z");
        assert_eq!(at("2024-01-31T12:00:00-0530"), "2024-01-31T17:30:00Z");
        assert_eq!(at("2024-01-31T00:30:00+01:00"), "2024-01-30T23:30:00Z");
    }

    #[test]
    fn fractional_seconds_and_space_separator() {
        assert_eq!(at("2024-01-31T12:00:00.5Z"), "2024-01-31T12:00:00.500Z");
        assert_eq!(
            at("2024-01-31 12:00:00.123456789+00:00"),
            "2024-01-31T12:00:00.123456789Z"
        );
        assert_eq!(at("2024-01-31 12:00:00Z"), "2024-01-31T12:00:00Z");
    }

    #[test]
    fn no_offset_is_utc() {
        assert_eq!(at("2024-01-31T12:00:00"), "2024-01-31T12:00:00Z");
        assert_eq!(at("2018-01-01 12:00:00"), "2018-01-01T12:00:00Z");
        assert_eq!(at("2018-01-01 12:00:00.25"), "2018-01-01T12:00:00.250Z");
    }

    #[test]
    fn bare_date_is_midnight_utc() {
        assert_eq!(at("2024-02-29"), "2024-02-29T00:00:00Z");
    }

    #[test]
    fn rfc2822() {
        assert_eq!(at("Tue, 1 Jul 2003 10:52:37 +0200"), "2003-07-01T08:52:37Z");
        assert_eq!(at("1 Jul 2003 10:52:37 GMT"), "2003-07-01T10:52:37Z");
    }

    #[test]
    fn original_text_is_kept_trimmed() {
        let d = PanelDate::parse("  2018-01-01 12:00:00 \n").unwrap();
        assert_eq!(d.as_str(), "2018-01-01 12:00:00");
        assert_eq!(d.to_string(), "2018-01-01 12:00:00");
    }

    #[test]
    fn equal_instants_in_different_spellings_compare_equal() {
        let a = PanelDate::parse("2024-01-31T12:00:00+02:00").unwrap();
        let b = PanelDate::parse("Wed, 31 Jan 2024 10:00:00 +0000").unwrap();
        assert_eq!(a.instant(), b.instant());
        assert_ne!(a, b, "different text is a different PanelDate");
    }

    #[test]
    fn other_formats_are_rejected_with_the_format_list() {
        for bad in [
            "31/01/2024",
            "01-31-2024",
            "2024/01/31",
            "2024-1-31",
            "2024-01-31T12:00",
            "2024-01-31T12:00:00 +02:00",
            "2024-01-31T12:00:00+2",
            "2024-01-31T12:00:00.Z",
            "2024-01-31T12:00:00.1234567890Z",
            "2024-01-31X12:00:00",
            "tomorrow",
            "1706702400",
            "2024-01-31T12:00:00ZZ",
        ] {
            let e = PanelDate::parse(bad).unwrap_err();
            assert!(matches!(e, DateError::Unrecognised(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("RFC 2822"), "{e}");
        }
    }

    #[test]
    fn impossible_values_are_invalid() {
        for bad in [
            "2024-02-30",
            "2023-02-29",
            "2024-13-01",
            "2024-01-31T24:00:00Z",
            "2024-01-31T12:60:00Z",
            "2024-01-31T12:00:60Z",
            "2024-01-31T12:00:00+24:00",
            "2024-01-31T12:00:00+01:60",
        ] {
            let e = PanelDate::parse(bad).unwrap_err();
            assert!(matches!(e, DateError::Invalid(_)), "{bad}: {e:?}");
        }
    }

    #[test]
    fn years_outside_1970_to_9999_are_rejected() {
        for bad in [
            "1969-12-31T23:59:59Z",
            "0000-01-01",
            "9999-12-31T23:00:00-05:00",
        ] {
            let e = PanelDate::parse(bad).unwrap_err();
            assert!(matches!(e, DateError::OutOfRange(_)), "{bad}: {e:?}");
        }
        assert!(PanelDate::parse("1970-01-01").is_ok());
        assert!(PanelDate::parse("9999-12-31T23:59:59Z").is_ok());
    }

    #[test]
    fn empty_long_and_non_string_inputs() {
        assert_eq!(PanelDate::parse("  "), Err(DateError::Empty));
        let e = PanelDate::parse(&"2".repeat(1000)).unwrap_err();
        assert!(matches!(e, DateError::Unrecognised(_)));
        assert!(!e.to_string().contains(&"2".repeat(41)));
        assert_eq!(
            PanelDate::from_json(&json!(1706702400)),
            Err(DateError::WrongType("number"))
        );
        assert_eq!(
            PanelDate::from_json(&json!(null)),
            Err(DateError::WrongType("null"))
        );
    }

    #[test]
    fn non_ascii_input_does_not_panic() {
        for s in [
            "2024-01-31T12:00:00€",
            "€€€€-01-01",
            "2024-01-31T12:00:00.€",
            "2024-01-31 ١٢:00:00",
        ] {
            assert!(PanelDate::parse(s).is_err(), "{s}");
        }
    }
}
