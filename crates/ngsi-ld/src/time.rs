//! Date-time and ISO 8601 duration parsing (no clock: "now" is always an argument).

use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta, Utc};

use crate::error::{NgsiError, Result};
use crate::model::Timestamp;

/// Parse an NGSI-LD DateTime: RFC 3339 (`2024-01-02T03:04:05Z`, offsets, fractions). A value without
/// zone designator is read as UTC, as deployed brokers do.
pub fn parse_datetime(s: &str) -> Option<Timestamp> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Parse a DateTime named `field`, with a `BadRequestData` error naming it.
pub fn parse_datetime_field(field: &str, s: &str) -> Result<Timestamp> {
    parse_datetime(s)
        .ok_or_else(|| NgsiError::bad_data(format!("{field}: `{s}` is not a valid DateTime")))
}

/// Parse an ISO 8601 date (`2024-01-02`).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Render a timestamp the way NGSI-LD responses carry it: RFC 3339 UTC with `Z`, keeping the
/// sub-second precision the instant has (none, milliseconds, microseconds or nanoseconds).
pub fn format_datetime(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An ISO 8601 duration (`P1Y2M3DT4H5M6.5S`, `P2W`), kept as a calendar part (months) and an exact
/// part, because months and years have no fixed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoDuration {
    /// Years * 12 + months.
    pub months: u32,
    /// Weeks, days, hours, minutes and seconds.
    pub exact: TimeDelta,
}

impl IsoDuration {
    /// True for `P0D`, `PT0S` and the like.
    pub fn is_zero(&self) -> bool {
        self.months == 0 && self.exact.is_zero()
    }

    /// `t + self`, or `None` on overflow.
    pub fn add_to(&self, t: Timestamp) -> Option<Timestamp> {
        t.checked_add_months(Months::new(self.months))?
            .checked_add_signed(self.exact)
    }

    /// Parse `s`, naming `field` in the error.
    pub fn parse(field: &str, s: &str) -> Result<IsoDuration> {
        parse_duration(s).ok_or_else(|| {
            NgsiError::bad_data(format!("{field}: `{s}` is not an ISO 8601 duration"))
        })
    }
}

fn parse_duration(s: &str) -> Option<IsoDuration> {
    let rest = s.strip_prefix('P')?;
    if rest.is_empty() {
        return None;
    }
    let (date_part, time_part) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return None;
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut months: u64 = 0;
    let mut exact_ms: i128 = 0;
    let mut seen_any = false;
    for (number, unit) in components(date_part)? {
        seen_any = true;
        let whole = whole_number(&number)?;
        match unit {
            'Y' => months = months.checked_add(whole.checked_mul(12)?)?,
            'M' => months = months.checked_add(whole)?,
            'W' => exact_ms += i128::from(whole) * 7 * 86_400_000,
            'D' => exact_ms += i128::from(whole) * 86_400_000,
            _ => return None,
        }
    }
    if let Some(t) = time_part {
        for (number, unit) in components(t)? {
            seen_any = true;
            let millis = match unit {
                'H' => i128::from(whole_number(&number)?) * 3_600_000,
                'M' => i128::from(whole_number(&number)?) * 60_000,
                'S' => {
                    let secs: f64 = number.parse().ok()?;
                    if !secs.is_finite() || secs < 0.0 {
                        return None;
                    }
                    (secs * 1000.0).round() as i128
                }
                _ => return None,
            };
            exact_ms += millis;
        }
    }
    if !seen_any || exact_ms > i128::from(i64::MAX / 2) {
        return None;
    }
    Some(IsoDuration {
        months: u32::try_from(months).ok()?,
        exact: TimeDelta::try_milliseconds(i64::try_from(exact_ms).ok()?)?,
    })
}

fn whole_number(s: &str) -> Option<u64> {
    if s.contains('.') {
        return None;
    }
    s.parse().ok()
}

fn components(s: &str) -> Option<Vec<(String, char)>> {
    let mut out = Vec::new();
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' || c == ',' {
            number.push(if c == ',' { '.' } else { c });
        } else if c.is_ascii_uppercase() {
            if number.is_empty() {
                return None;
            }
            out.push((std::mem::take(&mut number), c));
        } else {
            return None;
        }
    }
    if !number.is_empty() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        let t = parse_datetime("2018-09-27T12:00:00Z").expect("parses");
        assert_eq!(format_datetime(&t), "2018-09-27T12:00:00Z");
        let t = parse_datetime("2021-03-11T15:51:02+05:30").expect("parses");
        assert_eq!(format_datetime(&t), "2021-03-11T10:21:02Z");
        let t = parse_datetime("2020-01-01T00:00:00.120").expect("parses");
        assert_eq!(format_datetime(&t), "2020-01-01T00:00:00.120Z");
        assert!(parse_datetime("2020-13-01T00:00:00Z").is_none());
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn durations() {
        let d = IsoDuration::parse("p", "P1Y2M3DT4H5M6.5S").expect("parses");
        assert_eq!(d.months, 14);
        assert_eq!(
            d.exact.num_milliseconds(),
            ((3 * 24 + 4) * 3600 + 5 * 60) * 1000 + 6500
        );
        assert_eq!(
            IsoDuration::parse("p", "P2W").map(|d| d.exact.num_days()),
            Ok(14)
        );
        assert!(IsoDuration::parse("p", "P0D").expect("parses").is_zero());
        for bad in ["", "P", "PT", "1D", "P1.5D", "PT-1S", "P1X", "PT1H2"] {
            assert!(IsoDuration::parse("p", bad).is_err(), "{bad}");
        }
        let start = parse_datetime("2024-01-31T00:00:00Z").expect("parses");
        let next = IsoDuration::parse("p", "P1M")
            .expect("parses")
            .add_to(start)
            .expect("in range");
        assert_eq!(format_datetime(&next), "2024-02-29T00:00:00Z");
    }
}
