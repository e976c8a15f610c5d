//! Datetime syntax and parsing: the intersection of RFC 3339 and ISO 8601 that
//! atproto uses, e.g. `1985-04-12T23:20:50.123Z` or `1985-04-12T23:20:50-07:00`.
//!
//! Shape: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of one or more digits, then
//! `Z` or `±HH:MM`; upper-case `T` and `Z`; exactly 4-digit years (no sign, no
//! expanded years); at most 64 characters; `-00:00` is refused (RFC 3339's "unknown
//! offset", which ISO 8601 forbids).
//!
//! Two levels, so callers can pick:
//! - [`validate_datetime`] checks the shape only (digits in the right places), which
//!   is all that can be said without calendar knowledge.
//! - [`parse_datetime`] also checks the values (month 1–12, day within the month
//!   with Gregorian leap years, hour ≤ 23, minute and second ≤ 59 — leap seconds
//!   are refused as by the reference implementations — offset ≤ 23:59) and that the
//!   instant, normalized to UTC, lies in years 0000–9999; it returns Unix
//!   microseconds. Digits of the fraction beyond microseconds are truncated.

use super::error::{SyntaxError, SyntaxKind};

/// Longest datetime accepted, in bytes.
pub const MAX_DATETIME_LEN: usize = 64;

fn err(reason: &'static str) -> SyntaxError {
    SyntaxError::new(SyntaxKind::Datetime, reason)
}

/// The numeric fields of a datetime that passed the shape check, unvalidated.
struct Fields {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Fraction truncated to microseconds.
    micros: u32,
    /// `±(HH, MM)` offset as signed minutes east of UTC, and its parts for range checks.
    offset_sign: i64,
    offset_hour: u32,
    offset_minute: u32,
}

/// Two ASCII digits at `at`, or `None`.
fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    match (b.get(at), b.get(at + 1)) {
        (Some(&h), Some(&l)) if h.is_ascii_digit() && l.is_ascii_digit() => {
            Some(u32::from(h - b'0') * 10 + u32::from(l - b'0'))
        }
        _ => None,
    }
}

/// Checks the shape and extracts the fields.
fn scan(s: &str) -> Result<Fields, SyntaxError> {
    let b = s.as_bytes();
    if b.len() > MAX_DATETIME_LEN {
        return Err(err("longer than 64 characters"));
    }
    const SHAPE: &str = "must start YYYY-MM-DDTHH:MM:SS (upper-case T, zero-padded)";
    let (Some(y_hi), Some(y_lo)) = (two_digits(b, 0), two_digits(b, 2)) else {
        return Err(err(SHAPE));
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
        return Err(err(SHAPE));
    }
    let (Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        two_digits(b, 5),
        two_digits(b, 8),
        two_digits(b, 11),
        two_digits(b, 14),
        two_digits(b, 17),
    ) else {
        return Err(err(SHAPE));
    };
    let mut i = 19;
    let mut micros = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start < 6 {
                micros = micros * 10 + u32::from(d - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return Err(err("fraction of a second needs at least one digit"));
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let (offset_sign, offset_hour, offset_minute) = match b.get(i) {
        Some(b'Z') if i + 1 == b.len() => (1, 0, 0),
        Some(&c @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            match (two_digits(b, i + 1), two_digits(b, i + 4)) {
                (Some(h), Some(m)) => {
                    if c == b'-' && h == 0 && m == 0 {
                        return Err(err("\"-00:00\" is not allowed; use \"Z\" or \"+00:00\""));
                    }
                    (if c == b'-' { -1 } else { 1 }, h, m)
                }
                _ => return Err(err("timezone must be \"Z\" or ±HH:MM")),
            }
        }
        None => return Err(err("timezone is required (\"Z\" or ±HH:MM)")),
        _ => return Err(err("timezone must be \"Z\" or ±HH:MM")),
    };
    Ok(Fields {
        year: i64::from(y_hi * 100 + y_lo),
        month,
        day,
        hour,
        minute,
        second,
        micros,
        offset_sign,
        offset_hour,
        offset_minute,
    })
}

/// Whether `year` is a leap year in the proleptic Gregorian calendar.
fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1–12) of `year`.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (negative before).
/// Counts in 400-year eras of 146 097 days, with years starting in March so the
/// leap day falls at the end of the counted year.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400; // 0..=399
    let month_from_march = i64::from((month + 9) % 12); // March = 0
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Formats microseconds since the Unix epoch as the datetime form the
/// firehose uses (`2024-01-02T03:04:05.678Z`, UTC, milliseconds), e.g. the
/// `time` of events the relay itself emits.
///
/// ```
/// use atrelay::wire::syntax::{format_datetime_micros, parse_datetime};
/// let s = format_datetime_micros(1_700_000_000_123_456);
/// assert_eq!(s, "2023-11-14T22:13:20.123Z");
/// assert_eq!(parse_datetime(&s).unwrap(), 1_700_000_000_123_000);
/// ```
pub fn format_datetime_micros(micros: u64) -> String {
    let secs = micros / 1_000_000;
    let millis = (micros / 1_000) % 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), the inverse of
    // `days_from_civil` above.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3_600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Checks datetime *shape* only (see the module documentation): accepts
/// `1985-13-12T25:99:61Z`. Use [`parse_datetime`] for a full check.
pub fn validate_datetime(s: &str) -> Result<(), SyntaxError> {
    scan(s).map(|_| ())
}

/// Parses a datetime fully (shape, field ranges, calendar, and normalized year within
/// 0000–9999) and returns the instant as microseconds since the Unix epoch
/// (negative before 1970).
pub fn parse_datetime(s: &str) -> Result<i64, SyntaxError> {
    let f = scan(s)?;
    if !(1..=12).contains(&f.month) {
        return Err(err("month out of range (01-12)"));
    }
    if f.day == 0 || f.day > days_in_month(f.year, f.month) {
        return Err(err("day out of range for the month"));
    }
    if f.hour > 23 {
        return Err(err("hour out of range (00-23)"));
    }
    if f.minute > 59 {
        return Err(err("minute out of range (00-59)"));
    }
    if f.second > 59 {
        return Err(err("second out of range (00-59)"));
    }
    if f.offset_hour > 23 || f.offset_minute > 59 {
        return Err(err("timezone offset out of range"));
    }
    let offset_secs =
        f.offset_sign * (i64::from(f.offset_hour) * 3600 + i64::from(f.offset_minute) * 60);
    let local_secs = i64::from(f.hour) * 3600 + i64::from(f.minute) * 60 + i64::from(f.second);
    let micros = days_from_civil(f.year, f.month, f.day) * MICROS_PER_DAY
        + (local_secs - offset_secs) * 1_000_000
        + i64::from(f.micros);
    if micros < days_from_civil(0, 1, 1) * MICROS_PER_DAY {
        return Err(err("normalizes to a time before year 0000"));
    }
    if micros >= days_from_civil(10_000, 1, 1) * MICROS_PER_DAY {
        return Err(err("normalizes to a time after year 9999"));
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_round_trips_through_parsing() {
        let mut micros: u64 = 0;
        // Steps of about 3.7 days across 1970..2100, leap years included.
        while micros < 4_102_444_800_000_000 {
            let text = format_datetime_micros(micros);
            assert_eq!(
                parse_datetime(&text).unwrap() as u64,
                micros / 1_000 * 1_000,
                "{text}"
            );
            micros += 321_987_654_321;
        }
        assert_eq!(
            format_datetime_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn known_instants() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000001Z"), Ok(1));
        assert_eq!(parse_datetime("1969-12-31T23:59:59.999999Z"), Ok(-1));
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_datetime("1969-12-31T23:15:00-00:45"), Ok(0));
        // 2000-03-01 is 11017 days after the epoch
        assert_eq!(
            parse_datetime("2000-03-01T00:00:00Z"),
            Ok(11_017 * MICROS_PER_DAY)
        );
        assert_eq!(
            parse_datetime("1985-04-12T23:20:50.123456789Z"),
            Ok(482_196_050_123_456)
        );
        assert_eq!(
            parse_datetime("0000-01-01T00:00:00.000Z"),
            Ok(-62_167_219_200_000_000)
        );
        assert_eq!(
            parse_datetime("9999-12-31T23:59:59.999999Z"),
            Ok(253_402_300_799_999_999)
        );
    }

    #[test]
    fn calendar() {
        assert!(parse_datetime("2024-02-29T00:00:00Z").is_ok());
        assert!(parse_datetime("2000-02-29T00:00:00Z").is_ok());
        assert!(parse_datetime("0000-02-29T00:00:00Z").is_ok());
        for bad in [
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-01-32T00:00:00Z",
            "2023-01-01T23:59:60Z",
            "2023-01-01T00:00:00+24:00",
            "2023-01-01T00:00:00+01:60",
            "9999-12-31T23:59:59-00:01",
        ] {
            assert_eq!(validate_datetime(bad), Ok(()), "{bad}");
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shape_reasons() {
        let cases = [
            (
                "1985-04-12T23:20:50.Z",
                "fraction of a second needs at least one digit",
            ),
            (
                "1985-04-12T23:20:50",
                "timezone is required (\"Z\" or ±HH:MM)",
            ),
            (
                "1985-04-12T23:20:50.123z",
                "timezone must be \"Z\" or ±HH:MM",
            ),
            (
                "1985-04-12T23:20:50+0000",
                "timezone must be \"Z\" or ±HH:MM",
            ),
            (
                "1985-04-12T23:20:50-00:00",
                "\"-00:00\" is not allowed; use \"Z\" or \"+00:00\"",
            ),
            (
                "1985-04-12t23:20:50Z",
                "must start YYYY-MM-DDTHH:MM:SS (upper-case T, zero-padded)",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                validate_datetime(input).map_err(|e| e.reason()),
                Err(reason),
                "{input}"
            );
        }
    }
}
