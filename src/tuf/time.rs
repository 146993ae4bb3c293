//! Times as metadata writes them: Go's own RFC 3339 form, parsed strictly, and expiries given
//! on the command line.
//!
//! notary-server re-serialises every uploaded file with Go's `encoding/json` and hashes the
//! result, so an `expires` string must be exactly what Go would write for the time it reads:
//! `2036-11-25T07:39:08.482378058Z` (fraction trimmed of trailing zeros, left out when zero; a
//! zero offset as `Z`, any other as `±hh:mm`). [`GoTime::parse`] accepts only that form.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A point in time, UTC, with nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime {
    secs: i64,
    nanos: u32,
}

const SECS_PER_DAY: i64 = 86_400;
const NANOS_PER_SEC: u32 = 1_000_000_000;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const DAYS_0000_TO_1970: i64 = 719_468;

/// Calendar arithmetic (Howard Hinnant's algorithms), on bounded values only: every caller
/// passes years 0 to 9999 (or day and second counts within them, as [`UtcTime`] is clamped to
/// those years), so no intermediate value comes within a factor of 10^6 of `i64`'s range.
#[allow(clippy::arithmetic_side_effects)]
mod calendar {
    /// Days since 1970-01-01 of a civil date (proleptic Gregorian).
    pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = i64::from((month + 9) % 12);
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - super::DAYS_0000_TO_1970
    }

    /// The civil date of a day count since 1970-01-01.
    pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + super::DAYS_0000_TO_1970;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
        let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
        (yoe + era * 400 + i64::from(month <= 2), month, day)
    }

    /// Seconds since the epoch of a civil date and time of day.
    pub(super) fn secs_from_civil(
        date: (i64, u32, u32),
        hour: u32,
        minute: u32,
        second: u32,
    ) -> i64 {
        days_from_civil(date.0, date.1, date.2) * super::SECS_PER_DAY
            + i64::from(hour * 3600 + minute * 60 + second)
    }

    /// The civil date and (hour, minute, second) of seconds since the epoch.
    pub(super) fn civil_from_secs(secs: i64) -> ((i64, u32, u32), (i64, i64, i64)) {
        let rem = secs.rem_euclid(super::SECS_PER_DAY);
        (
            civil_from_days(secs.div_euclid(super::SECS_PER_DAY)),
            (rem / 3600, rem % 3600 / 60, rem % 60),
        )
    }
}

use calendar::{civil_from_secs, secs_from_civil};

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// The latest time metadata may name: Go's JSON encoder refuses years after 9999.
const MAX_SECS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

impl UtcTime {
    /// Now.
    pub fn now() -> UtcTime {
        Self::from_system(SystemTime::now())
    }

    /// From a `SystemTime` (clamped to the years 0 to 9999).
    pub fn from_system(t: SystemTime) -> UtcTime {
        let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => (secs.saturating_neg(), 0),
                    n => (
                        secs.saturating_neg().saturating_sub(1),
                        NANOS_PER_SEC.saturating_sub(n),
                    ),
                }
            }
        };
        UtcTime { secs, nanos }.clamped()
    }

    fn clamped(self) -> UtcTime {
        let min = secs_from_civil((0, 1, 1), 0, 0, 0);
        if self.secs > MAX_SECS {
            UtcTime {
                secs: MAX_SECS,
                nanos: 0,
            }
        } else if self.secs < min {
            UtcTime {
                secs: min,
                nanos: 0,
            }
        } else {
            self
        }
    }

    /// As a `SystemTime`.
    pub fn to_system(self) -> SystemTime {
        let whole = Duration::from_secs(self.secs.unsigned_abs());
        let at = if self.secs >= 0 {
            UNIX_EPOCH.checked_add(whole)
        } else {
            UNIX_EPOCH.checked_sub(whole)
        };
        at.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(self.nanos))))
            .unwrap_or(UNIX_EPOCH)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }

    /// The same time with the fraction of a second dropped.
    pub fn whole_seconds(self) -> UtcTime {
        UtcTime {
            secs: self.secs,
            nanos: 0,
        }
    }

    /// This time plus `d`, saturating at the end of year 9999 (never earlier than `self`,
    /// which may lie in the last second of 9999).
    pub fn plus(self, d: Duration) -> UtcTime {
        let total = self.nanos.saturating_add(d.subsec_nanos());
        let carry = i64::from(total / NANOS_PER_SEC);
        let secs = i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| self.secs.checked_add(s))
            .and_then(|s| s.checked_add(carry))
            .unwrap_or(i64::MAX);
        UtcTime {
            secs,
            nanos: total % NANOS_PER_SEC,
        }
        .clamped()
        .max(self)
    }

    /// This time minus `d`, saturating at the start of year 0.
    pub fn minus(self, d: Duration) -> UtcTime {
        let secs = i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| self.secs.checked_sub(s))
            .unwrap_or(i64::MIN);
        let (secs, nanos) = if self.nanos >= d.subsec_nanos() {
            (secs, self.nanos.saturating_sub(d.subsec_nanos()))
        } else {
            (
                secs.saturating_sub(1),
                (self.nanos.saturating_add(NANOS_PER_SEC)).saturating_sub(d.subsec_nanos()),
            )
        };
        UtcTime { secs, nanos }.clamped()
    }

    /// Whole days from `earlier` until `self` (negative when `earlier` is later).
    pub fn days_since(self, earlier: UtcTime) -> i64 {
        earlier.days_until(self)
    }

    /// Whole days from `self` until `later` (negative when `later` is earlier).
    pub fn days_until(self, later: UtcTime) -> i64 {
        later
            .secs
            .saturating_sub(self.secs)
            .div_euclid(SECS_PER_DAY)
    }

    /// The same wall-clock time `years` calendar years later (29 February becomes 28 February
    /// in a year that is not a leap year), saturating at the end of year 9999 (never earlier
    /// than `self`).
    pub fn plus_years(self, years: u64) -> UtcTime {
        let ((y, m, d), (hour, minute, second)) = civil_from_secs(self.secs);
        let saturated = Self::from_secs(MAX_SECS).max(self);
        let Some(year) = i64::try_from(years).ok().and_then(|n| y.checked_add(n)) else {
            return saturated;
        };
        if year > 9999 {
            return saturated;
        }
        let day = d.min(days_in_month(year, m));
        let time = |v: i64| u32::try_from(v).unwrap_or(0);
        UtcTime {
            secs: secs_from_civil((year, m, day), time(hour), time(minute), time(second)),
            nanos: self.nanos,
        }
        .clamped()
    }

    fn from_secs(secs: i64) -> UtcTime {
        UtcTime { secs, nanos: 0 }
    }

    /// Go's `time.Time` JSON form in UTC: `2036-11-25T07:39:08.482378058Z`.
    pub fn to_go_string(self) -> String {
        GoTime::utc(self).to_string()
    }

    /// Parses a time in Go's own RFC 3339 form (see [`GoTime::parse`]).
    pub fn parse(text: &str) -> Result<UtcTime> {
        GoTime::parse(text).map(|t| t.utc)
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&GoTime::utc(*self), f)
    }
}

/// A time as metadata writes it: an instant and the UTC offset it was written with, which
/// Go keeps when it re-serialises (notary writes local times such as `…-05:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTime {
    utc: UtcTime,
    offset_minutes: i32,
}

impl GoTime {
    /// A UTC time, written with `Z`.
    pub fn utc(at: UtcTime) -> GoTime {
        GoTime {
            utc: at,
            offset_minutes: 0,
        }
    }

    /// The instant.
    pub fn instant(self) -> UtcTime {
        self.utc
    }

    /// Parses exactly Go's output form: `YYYY-MM-DDTHH:MM:SS[.fraction]Z` or `…±hh:mm`, with
    /// an upper-case `T` and `Z`, a real calendar date, seconds below 60, 1 to 9 fractional
    /// digits without trailing zeros, and a zero offset written only as `Z`. Anything else
    /// would come back from Go's re-serialisation as other bytes.
    pub fn parse(text: &str) -> Result<GoTime> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "`{}` is not a time in Go's RFC 3339 form such as 2036-01-31T12:00:00Z: {why}",
                crate::text::escape_untrusted(text)
            ))
        };
        let b = text.as_bytes();
        let digits = |from: usize, len: usize| -> Result<u32> {
            let part = b
                .get(from..from.saturating_add(len))
                .ok_or_else(|| bad("too short"))?;
            part.iter().try_fold(0u32, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc
                        .saturating_mul(10)
                        .saturating_add(u32::from(c.saturating_sub(b'0'))))
                } else {
                    Err(bad("a digit is expected"))
                }
            })
        };
        let sep = |at: usize, want: u8, what: &str| -> Result<()> {
            if b.get(at) == Some(&want) {
                Ok(())
            } else {
                Err(bad(what))
            }
        };
        let year = digits(0, 4)?;
        sep(4, b'-', "a `-` after the year")?;
        let month = digits(5, 2)?;
        sep(7, b'-', "a `-` after the month")?;
        let day = digits(8, 2)?;
        sep(10, b'T', "an upper-case `T` between date and time")?;
        let hour = digits(11, 2)?;
        sep(13, b':', "a `:` after the hour")?;
        let minute = digits(14, 2)?;
        sep(16, b':', "a `:` after the minutes")?;
        let second = digits(17, 2)?;
        let year = i64::from(year);
        if !(1..=12).contains(&month) {
            return Err(bad("the month is out of range"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(bad("the day is past the end of the month"));
        }
        if hour > 23 || minute > 59 {
            return Err(bad("the hour or minute is out of range"));
        }
        if second > 59 {
            return Err(bad(
                "the seconds are out of range (Go refuses leap seconds)",
            ));
        }
        let mut at = 19;
        let mut nanos = 0u32;
        if b.get(at) == Some(&b'.') {
            at = at.saturating_add(1);
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at = at.saturating_add(1);
            }
            let len = at.saturating_sub(start);
            if len == 0 || len > 9 {
                return Err(bad("the fraction must have 1 to 9 digits"));
            }
            if b.get(at.saturating_sub(1)) == Some(&b'0') {
                return Err(bad(
                    "the fraction ends in 0 (Go trims trailing zeros when it writes a time)",
                ));
            }
            let value = digits(start, len)?;
            nanos = value.saturating_mul(
                10u32.saturating_pow(u32::try_from(9usize.saturating_sub(len)).unwrap_or(0)),
            );
        }
        let offset_minutes = match b.get(at..) {
            Some(b"Z") => 0,
            Some([sign @ (b'+' | b'-'), _, _, b':', _, _]) => {
                let hours = digits(at.saturating_add(1), 2)?;
                let minutes = digits(at.saturating_add(4), 2)?;
                if hours > 23 || minutes > 59 {
                    return Err(bad("the offset is out of range"));
                }
                let total =
                    i32::try_from(hours.saturating_mul(60).saturating_add(minutes)).unwrap_or(0);
                if total == 0 {
                    return Err(bad("a zero offset is written `Z` by Go, not `+00:00`"));
                }
                if *sign == b'-' {
                    total.saturating_neg()
                } else {
                    total
                }
            }
            _ => {
                return Err(bad(
                    "the time must end in `Z` or an offset such as `-05:00`",
                ));
            }
        };
        let local = secs_from_civil((year, month, day), hour, minute, second);
        let utc = UtcTime {
            secs: local.saturating_sub(i64::from(offset_minutes).saturating_mul(60)),
            nanos,
        };
        if utc.secs > MAX_SECS || utc.clamped() != utc {
            return Err(bad("the time is outside the years 0 to 9999 in UTC"));
        }
        Ok(GoTime {
            utc,
            offset_minutes,
        })
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self
            .utc
            .secs
            .saturating_add(i64::from(self.offset_minutes).saturating_mul(60));
        let ((y, mo, d), (h, mi, sec)) = civil_from_secs(local);
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}")?;
        if self.utc.nanos > 0 {
            let frac = format!("{:09}", self.utc.nanos);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        match self.offset_minutes {
            0 => f.write_str("Z"),
            m => write!(
                f,
                "{}{:02}:{:02}",
                if m < 0 { '-' } else { '+' },
                m.unsigned_abs() / 60,
                m.unsigned_abs() % 60
            ),
        }
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<GoTime, D::Error> {
        let text = String::deserialize(d)?;
        GoTime::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Parses an expiry given on the command line: a duration from now (`10y`, `26w`, `90d`,
/// `12h`; `y` is a calendar year), a date (`2036-01-31`, midnight UTC), or a time in Go's
/// RFC 3339 form.
pub fn parse_expiry(text: &str, now: UtcTime) -> Result<UtcTime> {
    let bad = || {
        Error::Invalid(format!(
            "--expires `{}`: give a duration such as 10y, 26w, 90d, 12h, a date such as 2036-01-31, or an RFC 3339 time",
            crate::text::escape_untrusted(text)
        ))
    };
    if text.contains('T') {
        return UtcTime::parse(text);
    }
    if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        return UtcTime::parse(&format!("{text}T00:00:00Z")).map_err(|_| bad());
    }
    let unit = text.chars().last().ok_or_else(bad)?;
    let count: u64 = text
        .strip_suffix(unit)
        .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)?;
    let per = match unit {
        'y' => return Ok(now.plus_years(count)),
        'w' => 7 * 86_400,
        'd' => 86_400,
        'h' => 3_600,
        _ => return Err(bad()),
    };
    Ok(now.plus(Duration::from_secs(count.saturating_mul(per))))
}

/// A duration of `days` days.
pub fn days(days: u64) -> Duration {
    Duration::from_secs(days.saturating_mul(86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_format_round_trips() {
        for text in [
            "2036-11-25T07:39:08.482378058Z",
            "2036-11-25T07:39:08Z",
            "2029-11-27T07:39:44.4745478Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.5Z",
            "2116-07-03T17:56:36.027379879-05:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
        ] {
            assert_eq!(GoTime::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            UtcTime::parse("2116-07-03T17:56:36.027379879-05:00")
                .unwrap()
                .to_go_string(),
            "2116-07-03T22:56:36.027379879Z"
        );
    }

    #[test]
    fn only_gos_own_form_is_accepted() {
        for bad in [
            "2036-13-01T00:00:00Z",
            "2036-02-30T00:00:00Z",
            "2035-02-29T00:00:00Z",
            "2036-04-31T00:00:00Z",
            "2036-01-01T23:59:60Z",
            "2036-01-01 00:00:00Z",
            "2036-01-01t00:00:00Z",
            "2036-01-01T00:00:00z",
            "2036-01-01T00:00:00+00:00",
            "2036-01-01T00:00:00-00:00",
            "2036-01-01T00:00:00.500Z",
            "2036-01-01T00:00:00.Z",
            "2036-01-01T00:00:00.1234567891Z",
            "2036-01-01T00:00:00",
            "2036-01-01T00:00:00Z ",
            "2036-01-01T00:00:00+5:00",
            "2036-01-01T00:00:00\u{ff0b}05:00",
            "２036-01-01T00:00:00Z",
            "",
            "2036",
        ] {
            assert!(GoTime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_system_time() {
        let now = SystemTime::now();
        let t = UtcTime::from_system(now);
        assert_eq!(t.to_system(), now);
        assert_eq!(UtcTime::parse(&t.to_go_string()).unwrap(), t);
    }

    #[test]
    fn expiry_durations_are_calendar_years() {
        let now = UtcTime::parse("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            parse_expiry("10y", now).unwrap().to_go_string(),
            "2036-01-01T00:00:00Z"
        );
        let leap = UtcTime::parse("2028-02-29T12:00:00Z").unwrap();
        assert_eq!(
            parse_expiry("1y", leap).unwrap().to_go_string(),
            "2029-02-28T12:00:00Z"
        );
        assert_eq!(
            parse_expiry("2d", now).unwrap().to_go_string(),
            "2026-01-03T00:00:00Z"
        );
        assert_eq!(
            parse_expiry("2031-06-30", now).unwrap().to_go_string(),
            "2031-06-30T00:00:00Z"
        );
        for bad in ["10", "x", "y", "-1y", "1.5y", "2031-02-30", "10ｙ", "+3d"] {
            assert!(parse_expiry(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn huge_expiries_saturate_instead_of_wrapping() {
        let now = UtcTime::parse("2026-01-01T00:00:00Z").unwrap();
        for text in [
            "300000000000y",
            "99999999999999999999y",
            "18446744073709551615d",
        ] {
            if let Ok(t) = parse_expiry(text, now) {
                assert_eq!(t.to_go_string(), "9999-12-31T23:59:59Z", "{text}");
            }
        }
        assert_eq!(
            parse_expiry("300000000000y", now).unwrap().to_go_string(),
            "9999-12-31T23:59:59Z"
        );
    }

    /// Found by tests/parsers.rs: `--expires 1y` (or `1h`) from 9999-12-31T23:59:59.999999999Z
    /// saturated to 9999-12-31T23:59:59Z, a time before now.
    #[test]
    fn saturation_never_goes_back_in_the_last_second() {
        let now = UtcTime::parse("9999-12-31T23:59:59.999999999Z").unwrap();
        for text in [
            "1y",
            "1h",
            "1d",
            "0y",
            "300000000000y",
            "18446744073709551615d",
        ] {
            assert_eq!(parse_expiry(text, now).unwrap(), now, "{text}");
        }
    }
}
