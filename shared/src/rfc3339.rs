//! Timestamps written as chrono's `Serialize` writes them, without its formatting machinery.
//!
//! chrono writes a `DateTime<Utc>` as RFC 3339 with `Z` and as many fractional digits as the
//! nanoseconds need (none, 3, 6 or 9: its `SecondsFormat::AutoSi`), through `fmt::write` and the
//! serializer's `collect_str`, which for serde_json escapes each piece on its own: about 2,200
//! instructions a timestamp, some 35 timestamps a webhook (BENCHMARKS, session 29). Here the
//! same bytes are put together in a buffer and handed over as one string. Years outside
//! 0–9999 and leap seconds (rare, and written with a sign or `:60`) are left to chrono.
//!
//! Reading is the same trade: chrono's `Deserialize` parses through its general format
//! machinery (about 3,000 instructions a timestamp, some 18 a webhook), where the shape written
//! above (`YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1–9 digits, `Z`) takes a few dozen.
//! Any other text (an offset, a space or lowercase separator, a leap second, a date that does
//! not exist, more digits) goes to chrono, so what is accepted, refused, and the error, are
//! chrono's.
//!
//! Used as `#[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with =
//! "crate::rfc3339::deserialize")]` (or `option` and `deserialize_option`) on the timestamps of
//! what the pipeline writes and reads at every hop.

use std::fmt;

use chrono::{DateTime, Datelike as _, NaiveDate, Timelike as _, Utc};
use serde::de::{self, Deserializer, Visitor};
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

/// The timestamp `text` holds when it has the shape [`format`] writes (a fraction of any 1–9
/// digits) and names a time that exists; `None` for anything else, which chrono then reads.
fn parse(text: &[u8]) -> Option<DateTime<Utc>> {
    if text.len() < 20 || text[4] != b'-' || text[7] != b'-' || text[10] != b'T' {
        return None;
    }
    if text[13] != b':' || text[16] != b':' || text.last() != Some(&b'Z') {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        text[from..to].iter().try_fold(0u32, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let year = i32::try_from(digits(0, 4)?).ok()?;
    let (month, day) = (digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let nano = match &text[19..text.len() - 1] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(20, 20 + fraction.len())? * 10u32.pow(9 - u32::try_from(fraction.len()).ok()?)
        }
        _ => return None,
    };
    // A second of 60 (a leap second, which chrono reads) is refused here as a date that does
    // not exist is, and left to chrono.
    let at =
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, minute, second, nano)?;
    Some(at.and_utc())
}

/// Reads a timestamp as chrono's `Deserialize` does, in the common shape without its parser.
struct Rfc3339;

impl Visitor<'_> for Rfc3339 {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        // chrono's words, so an error reads the same.
        formatter.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        match parse(value.as_bytes()) {
            Some(at) => Ok(at),
            None => value
                .parse::<DateTime<chrono::FixedOffset>>()
                .map(|at| at.with_timezone(&Utc))
                .map_err(E::custom),
        }
    }
}

/// Deserializes a timestamp as chrono does (`deserialize_with`).
///
/// # Errors
/// chrono's, for text that is not a timestamp; the deserializer's.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    deserializer.deserialize_str(Rfc3339)
}

/// A timestamp read by [`deserialize`], for a hand-written reader (`next_value::<Timestamp>()`);
/// `Option<Timestamp>` reads as `Option<DateTime<Utc>>` does. Written by [`serialize`], for a
/// hand-written writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(pub DateTime<Utc>);

impl serde::Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer).map(Self)
    }
}

/// [`deserialize`] for an optional timestamp, as serde reads an `Option` (`null` is `None`).
/// The field needs `#[serde(default)]` to be optional when absent.
///
/// # Errors
/// As [`deserialize`].
pub fn deserialize_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    struct Maybe;

    impl<'de> Visitor<'de> for Maybe {
        type Value = Option<DateTime<Utc>>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("option")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserialize(deserializer).map(Some)
        }
    }

    deserializer.deserialize_option(Maybe)
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

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct ReadOurs {
        #[serde(deserialize_with = "deserialize")]
        at: DateTime<Utc>,
        #[serde(default, deserialize_with = "deserialize_option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct ReadChrono {
        at: DateTime<Utc>,
        #[serde(default)]
        maybe: Option<DateTime<Utc>>,
    }

    /// `json` read both ways, from text and from a `Value`: the same timestamps, or the same
    /// error.
    fn read_alike(json: &str) {
        let ours = serde_json::from_str::<ReadOurs>(json).map_err(|e| e.to_string());
        let chrono = serde_json::from_str::<ReadChrono>(json).map_err(|e| e.to_string());
        match (&ours, &chrono) {
            (Ok(a), Ok(b)) => assert_eq!((a.at, a.maybe), (b.at, b.maybe), "{json}"),
            (Err(a), Err(b)) => assert_eq!(a, b, "{json}"),
            _ => panic!("{json}: {ours:?} {chrono:?}"),
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
            return;
        };
        let ours = serde_json::from_value::<ReadOurs>(value.clone()).map_err(|e| e.to_string());
        let chrono = serde_json::from_value::<ReadChrono>(value).map_err(|e| e.to_string());
        match (&ours, &chrono) {
            (Ok(a), Ok(b)) => assert_eq!((a.at, a.maybe), (b.at, b.maybe), "{json} as a value"),
            (Err(a), Err(b)) => assert_eq!(a, b, "{json} as a value"),
            _ => panic!("{json} as a value: {ours:?} {chrono:?}"),
        }
    }

    /// `text` as a timestamp both ways, alone and as the optional field.
    fn text_alike(text: &str) {
        let quoted = serde_json::to_string(text).unwrap();
        read_alike(&format!(r#"{{"at":{quoted}}}"#));
        read_alike(&format!(r#"{{"at":{quoted},"maybe":{quoted}}}"#));
        read_alike(&format!(
            r#"{{"at":"2026-12-03T15:04:05Z","maybe":{quoted}}}"#
        ));
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

    /// `count` timestamps from a fixed seed: seconds over chrono's whole range and more densely
    /// over years 0–9999, nanoseconds of each kind (none, whole milliseconds, whole
    /// microseconds, any).
    fn sweep(seed: u64, count: u64) -> impl Iterator<Item = DateTime<Utc>> {
        let mut rng = Rng(seed);
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
        (0..count).filter_map(move |n| {
            let secs = if n % 2 == 0 {
                min + i64::try_from(rng.next() % span).unwrap()
            } else {
                year_0 + i64::try_from(rng.next() % near).unwrap()
            };
            let nano = match n % 4 {
                0 => 0,
                1 => u32::try_from(rng.next() % 1000).unwrap() * 1_000_000,
                2 => u32::try_from(rng.next() % 1_000_000).unwrap() * 1000,
                _ => u32::try_from(rng.next() % 1_000_000_000).unwrap(),
            };
            DateTime::from_timestamp(secs, nano)
        })
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let mut written = 0;
        for at in sweep(0x9e37_79b9_7f4a_7c15, 200_000) {
            alike(at);
            written += 1;
        }
        assert!(written > 150_000, "{written}");
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

    #[test]
    fn timestamps_are_read_as_chrono_reads_them() {
        let mut rng = Rng(0x1f83_d9ab_fb41_bd6b);
        let mut read = 0;
        for at in sweep(0x2545_f491_4f6c_dd1d, 100_000) {
            // What we write, read back; and the same instant with a fraction of any length
            // (digits cut or repeated), as others write it.
            let written = serde_json::to_value(Ours { at, maybe: None }).unwrap();
            text_alike(written["at"].as_str().unwrap());
            let base = at.format("%Y-%m-%dT%H:%M:%S").to_string();
            let digits = format!("{:09}", at.timestamp_subsec_nanos());
            let cut = usize::try_from(rng.next() % 13).unwrap();
            let fraction: String = digits.chars().cycle().take(cut).collect();
            if cut == 0 {
                text_alike(&format!("{base}Z"));
            } else {
                text_alike(&format!("{base}.{fraction}Z"));
            }
            read += 1;
        }
        assert!(read > 75_000, "{read}");
        // Shapes and values around the common one: chrono decides each.
        for text in [
            "2026-12-03T15:04:05Z",
            "2026-12-03T15:04:05.1Z",
            "2026-12-03T15:04:05.123456789Z",
            "2026-12-03T15:04:05.1234567891Z",
            "2026-12-03T15:04:05.123456789123Z",
            "2026-12-03T15:04:05.Z",
            "2026-12-03T15:04:05,5Z",
            "2026-12-03T15:04:05z",
            "2026-12-03t15:04:05Z",
            "2026-12-03 15:04:05Z",
            "2026-12-03T15:04:05+00:00",
            "2026-12-03T15:04:05-03:30",
            "2026-12-03T15:04:05.5+05:45",
            "2026-12-03T15:04Z",
            "2026-12-03T15:04:5Z",
            "2026-12-3T15:04:05Z",
            "2026-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-00-10T00:00:00Z",
            "2026-13-10T00:00:00Z",
            "2026-12-00T00:00:00Z",
            "2026-12-32T00:00:00Z",
            "2026-12-03T24:00:00Z",
            "2026-12-03T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2026-12-03T15:04:61Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "+10000-01-01T00:00:00Z",
            "-0001-12-31T23:59:59Z",
            "+2026-12-03T15:04:05Z",
            "2026-12-03T15:04:05ZZ",
            "2026-12-03T15:04:05Z ",
            " 2026-12-03T15:04:05Z",
            "2026-12-03T15:04:0\u{661}Z",
            "\u{ff12}026-12-03T15:04:05Z",
            "2026-12-03T15:04:05.\u{661}Z",
            "2026-12-03T15:04:05.-1Z",
            "2026-12-03T15:04:05.+1Z",
            "2026-12-03T1:04:05Z",
            "2026/12/03T15:04:05Z",
            "",
            "Z",
            "not a time",
        ] {
            text_alike(text);
        }
        // Not strings, nulls, absence, escapes.
        for json in [
            r#"{"at":5}"#,
            r#"{"at":null}"#,
            r#"{"at":["2026-12-03T15:04:05Z"]}"#,
            r#"{"at":{"a":1}}"#,
            r#"{"at":true}"#,
            "{}",
            r#"{"at":"2026-12-03T15:04:05Z","maybe":null}"#,
            r#"{"at":"2026-12-03T15:04:05Z","maybe":5}"#,
            r#"{"at":"2026-12-03T15:04:05Z","maybe":{}}"#,
            r#"{"at":"2026-12-03T15:04:05\u005a"}"#,
            r#"{"at":"2026-12-03\u005415:04:05Z"}"#,
        ] {
            read_alike(json);
        }
    }
}
