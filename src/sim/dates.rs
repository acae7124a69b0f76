//! Date parsing for `startDate` / `endDate`: "ISO or RFC2822 compatible".
//!
//! Accepted: RFC 3339 / ISO 8601 with offset or `Z` (`T` or space separator,
//! optional fraction), ISO 8601 without offset, `YYYY-MM-DD HH:MM[:SS[.f]]`,
//! `YYYY-MM-DD` alone, and RFC 2822. A date without offset is taken as UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

const OFFSET_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
];

const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%d %H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

/// Parses a date in one of the accepted formats, to UTC.
pub(super) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in OFFSET_FORMATS {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in NAIVE_FORMATS {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(d.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

#[cfg(test)]
mod tests {
    use super::super::model::format_date;
    use super::parse_date;

    fn iso(s: &str) -> Option<String> {
        parse_date(s).map(|d| format_date(&d))
    }

    #[test]
    fn accepted_formats() {
        let noon = Some("2018-01-01T12:00:00.000Z".to_owned());
        for s in [
            "2018-01-01 12:00:00",
            "2018-01-01T12:00:00",
            "2018-01-01T12:00:00Z",
            "2018-01-01T12:00:00.000Z",
            "2018-01-01T13:00:00+01:00",
            "2018-01-01T13:00:00.000+01:00",
            "2018-01-01 13:00:00+01:00",
            "2018-01-01T13:00:00+0100",
            "2018-01-01 12:00:00Z",
            "2018-01-01 12:00",
            "Mon, 01 Jan 2018 12:00:00 +0000",
            "Mon, 1 Jan 2018 13:00:00 +0100",
            "Mon, 01 Jan 2018 12:00:00 GMT",
            " 2018-01-01 12:00:00 ",
        ] {
            assert_eq!(iso(s), noon, "{s}");
        }
        assert_eq!(
            iso("2018-01-01 12:00:00.5"),
            Some("2018-01-01T12:00:00.500Z".to_owned())
        );
        assert_eq!(
            iso("2018-01-02"),
            Some("2018-01-02T00:00:00.000Z".to_owned())
        );
    }

    #[test]
    fn rejected_formats() {
        for s in [
            "",
            "tomorrow",
            "2018-13-01 12:00:00",
            "2018-02-30",
            "01/01/2018",
            "2018-01-01 25:00:00",
            "1514808000",
        ] {
            assert_eq!(iso(s), None, "{s}");
        }
    }
}
