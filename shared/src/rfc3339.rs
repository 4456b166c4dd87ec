//! Timestamps written as chrono's `Serialize` writes them, without its formatting machinery.
//!
//! chrono writes a `DateTime<Utc>` as RFC 3339 with `Z` and as many fractional digits as the
//! nanoseconds need (none, 3, 6 or 9: its `SecondsFormat::AutoSi`), through `fmt::write` and the
//! serializer's `collect_str`, which for serde_json escapes each piece on its own: about 2,200
//! instructions a timestamp, some 35 timestamps a webhook (BENCHMARKS, session 29). Here the
//! same bytes are put together in a buffer and handed over as one string. Years outside
//! 0–9999 and leap seconds (rare, and written with a sign or `:60`) are left to chrono.
//!
//! Used as `#[serde(serialize_with = "crate::rfc3339::serialize")]` (or `option`) on the
//! timestamps of what the pipeline writes at every hop; reading is chrono's, unchanged.

use chrono::{DateTime, Datelike as _, Timelike as _, Utc};
use serde::{Serialize as _, Serializer};

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, the longest this writes.
const LONGEST: usize = 30;

/// Writes `at` into `buf` as chrono's `Serialize` would; `None` where chrono writes it
/// differently from the common shape (a year outside 0–9999, a leap second).
fn format(at: &DateTime<Utc>, buf: &mut [u8; LONGEST]) -> Option<usize> {
    let date = at.date_naive();
    let time = at.time();
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let nano = time.nanosecond();
    if nano >= 1_000_000_000 {
        return None;
    }
    let two = |buf: &mut [u8; LONGEST], at: usize, v: u32| {
        // `v` < 100 for every field written with it.
        buf[at] = b'0' + u8::try_from(v / 10 % 10).unwrap_or(0);
        buf[at + 1] = b'0' + u8::try_from(v % 10).unwrap_or(0);
    };
    two(buf, 0, year / 100);
    two(buf, 2, year % 100);
    buf[4] = b'-';
    two(buf, 5, date.month());
    buf[7] = b'-';
    two(buf, 8, date.day());
    buf[10] = b'T';
    two(buf, 11, time.hour());
    buf[13] = b':';
    two(buf, 14, time.minute());
    buf[16] = b':';
    two(buf, 17, time.second());
    let (mut fraction, digits) = if nano == 0 {
        (0, 0)
    } else if nano.is_multiple_of(1_000_000) {
        (nano / 1_000_000, 3)
    } else if nano.is_multiple_of(1_000) {
        (nano / 1_000, 6)
    } else {
        (nano, 9)
    };
    let mut len = 19;
    if digits > 0 {
        buf[19] = b'.';
        for i in (0..digits).rev() {
            buf[20 + i] = b'0' + u8::try_from(fraction % 10).unwrap_or(0);
            fraction /= 10;
        }
        len = 20 + digits;
    }
    buf[len] = b'Z';
    Some(len + 1)
}

/// Serializes `at` as chrono does (`serialize_with`).
///
/// # Errors
/// The serializer's.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; LONGEST];
    match format(at, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
        Some(text) => serializer.serialize_str(text),
        None => at.serialize(serializer),
    }
}

/// [`serialize`] for an optional timestamp (`None` as chrono's `Option` writes it: `null`).
///
/// # Errors
/// The serializer's.
#[allow(clippy::ref_option)] // the signature `serialize_with` calls
pub fn option<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => {
            let mut buf = [0u8; LONGEST];
            match format(at, &mut buf).and_then(|n| std::str::from_utf8(&buf[..n]).ok()) {
                Some(text) => serializer.serialize_some(text),
                None => serializer.serialize_some(at),
            }
        }
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone as _};
    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chrono {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    fn alike(at: DateTime<Utc>) {
        for maybe in [Some(at), None] {
            let ours = serde_json::to_string(&Ours { at, maybe }).unwrap();
            let chrono = serde_json::to_string(&Chrono { at, maybe }).unwrap();
            assert_eq!(ours, chrono, "{at:?}");
            let ours = serde_json::to_value(Ours { at, maybe }).unwrap();
            let chrono = serde_json::to_value(Chrono { at, maybe }).unwrap();
            assert_eq!(ours, chrono, "{at:?} as a value");
        }
    }

    /// A small deterministic generator (xorshift), so the sweep is the same every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        );
        let span = u64::try_from(max - min).unwrap();
        let year_0 = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap().timestamp();
        let year_10000 = Utc
            .with_ymd_and_hms(10_000, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let near = u64::try_from(year_10000 - year_0).unwrap();
        for n in 0..200_000u64 {
            // Seconds over chrono's whole range, and more densely over years 0–9999.
            let secs = if n % 2 == 0 {
                min + i64::try_from(rng.next() % span).unwrap()
            } else {
                year_0 + i64::try_from(rng.next() % near).unwrap()
            };
            // Nanoseconds of each kind: none, whole milliseconds, whole microseconds, any.
            let nano = match n % 4 {
                0 => 0,
                1 => u32::try_from(rng.next() % 1000).unwrap() * 1_000_000,
                2 => u32::try_from(rng.next() % 1_000_000).unwrap() * 1000,
                _ => u32::try_from(rng.next() % 1_000_000_000).unwrap(),
            };
            if let Some(at) = DateTime::from_timestamp(secs, nano) {
                alike(at);
            }
        }
        let edges = [
            (0, 1, 1, 0, 0, 0, 0),
            (9999, 12, 31, 23, 59, 59, 999_999_999),
            (-1, 12, 31, 23, 59, 59, 0),
            (10_000, 1, 1, 0, 0, 0, 0),
            (1970, 1, 1, 0, 0, 0, 1),
            (2026, 12, 3, 15, 4, 5, 100_000),
            (2026, 12, 3, 15, 4, 5, 120_000_000),
            (2016, 12, 31, 23, 59, 59, 1_000_000_000), // a leap second
            (2016, 12, 31, 23, 59, 59, 1_500_000_000),
        ];
        for (y, mo, d, h, mi, s, ns) in edges {
            let naive: NaiveDateTime = NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_nano_opt(h, mi, s, ns)
                .unwrap();
            alike(naive.and_utc());
        }
        alike(DateTime::<Utc>::MIN_UTC);
        alike(DateTime::<Utc>::MAX_UTC);
    }
}
