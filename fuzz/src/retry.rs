//! The `retry_after` target: a receiver's `Retry-After` header through `parse_retry_after` and
//! `judge`.
//!
//! The input is split on the first `0xFF` into the header value and parameter bytes: 8 bytes of
//! clock (seconds since 1970, kept within years 1970 to 9999), 4 of nanoseconds, 8 of a number
//! for the round trips, then the status, attempt and jitter bytes. Missing bytes are zero.

use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::delivery::retry::{RetryPolicy, Verdict, judge, parse_retry_after};

/// The last second of year 9999: RFC 2822 dates have four-digit years.
const MAX_SECS: i64 = 253_402_300_799;

struct Params<'a>(&'a [u8]);

impl Params<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
}

pub fn check_retry_after(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == 0xFF);
    let value = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut params = Params(parts.next().unwrap_or_default());
    let secs = i64::from_le_bytes(params.take::<8>()).rem_euclid(MAX_SECS + 1);
    let nanos = u32::from_le_bytes(params.take::<4>()) % 1_000_000_000;
    let now = DateTime::from_timestamp(secs, nanos).expect("in chrono's range");
    let number = u64::from_le_bytes(params.take::<8>());
    let [status, attempt, jitter] = params.take::<3>();

    check_value(&value, now);
    check_round_trips(number, now);
    check_judge(&value, status, attempt, jitter, now);
}

/// A fuzzed header: delta-seconds mean the same at any time; a date counts down as the clock
/// moves on and is no wait at all once it has passed (never a negative or wrapped one).
fn check_value(value: &str, now: DateTime<Utc>) {
    let parsed = parse_retry_after(value, now);
    let trimmed = value.trim();
    let digits = !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit());
    if digits {
        // Too many digits to count: as long as allowed (the caller caps the wait).
        let n = trimmed.parse::<u64>().unwrap_or(u64::MAX);
        assert_eq!(parsed, Some(Duration::from_secs(n)), "{value:?}");
    }
    let Some(wait) = parsed else {
        return;
    };
    let delta = digits;
    // chrono reads `:60` as a leap second, around which its arithmetic is not linear (the
    // second after it is also 0 s away): such a date counts down with a one-second stutter.
    if !delta
        && (DateTime::parse_from_rfc2822(trimmed)
            .is_ok_and(|t| t.timestamp_subsec_nanos() >= 1_000_000_000)
            || trimmed.contains(":60"))
    {
        return;
    }
    let later = |d: Duration| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
    };
    for step in [
        Some(Duration::from_secs(1)),
        Some(Duration::from_nanos(1)),
        Some(wait / 2),
        Some(wait),
        wait.checked_add(Duration::from_secs(1)),
    ] {
        let Some(then) = step.and_then(later) else {
            continue;
        };
        let expected = if delta {
            Some(wait)
        } else {
            step.and_then(|step| wait.checked_sub(step))
        };
        assert_eq!(
            parse_retry_after(value, then),
            expected,
            "{value:?} at {now} then {then}"
        );
    }
}

/// What we write ourselves reads back: delta-seconds (also padded), and an IMF-fixdate that
/// many seconds from now.
fn check_round_trips(number: u64, now: DateTime<Utc>) {
    for text in [number.to_string(), format!(" \t{number} ")] {
        assert_eq!(
            parse_retry_after(&text, now),
            Some(Duration::from_secs(number)),
            "{text:?}"
        );
    }
    let whole = now.timestamp();
    let secs = i64::try_from(number % 1_000_000_000).expect("small");
    if whole + secs > MAX_SECS {
        return;
    }
    let at = DateTime::from_timestamp(whole + secs, 0).expect("in range");
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let whole_now = DateTime::from_timestamp(whole, 0).expect("in range");
    let secs = u64::try_from(secs).expect("not negative");
    assert_eq!(
        parse_retry_after(&date, whole_now),
        Some(Duration::from_secs(secs)),
        "{date:?} at {whole_now}"
    );
    // From a clock inside that second, the wait is shorter by the fraction, and a date just
    // passed is no wait.
    let fraction = Duration::from_nanos(u64::from(now.timestamp_subsec_nanos()));
    assert_eq!(
        parse_retry_after(&date, now),
        Duration::from_secs(secs).checked_sub(fraction),
        "{date:?} at {now}"
    );
}

/// `judge` classifies by status alone, and a retry waits at least the schedule's lower bound and
/// what `Retry-After` asked, and never longer than the cap.
fn check_judge(value: &str, status: u8, attempt: u8, jitter: u8, now: DateTime<Utc>) {
    let policy = RetryPolicy::default();
    let status = match status % 8 {
        0 => None,
        1 => Some(429),
        2 => Some(503),
        3 => Some(408),
        4 => Some(410),
        5 => Some(200 + u16::from(status) % 100),
        _ => Some(100 + u16::from(status) * 2),
    };
    let attempt = u32::from(attempt);
    let jitter = f64::from(jitter) / 256.0;
    let verdict = judge(status, Some(value), attempt, &policy, jitter, now);
    match status {
        Some(200..=299) => assert_eq!(verdict, Verdict::Delivered),
        Some(410) => assert_eq!(verdict, Verdict::Disable),
        None | Some(408 | 429 | 500..=599) => {
            let Verdict::Retry(wait) = verdict else {
                panic!("{status:?} must be retried, got {verdict:?}");
            };
            let base = policy.base_delay(attempt);
            let floor = base.mul_f64(0.8).min(policy.max_delay);
            assert!(wait <= policy.max_delay, "{wait:?} over the cap");
            assert!(wait >= floor, "{wait:?} under the schedule's {floor:?}");
            assert!(wait <= base.mul_f64(1.2).max(policy.max_delay), "{wait:?}");
            if let Some(asked) = parse_retry_after(value, now) {
                assert!(wait >= asked.min(policy.max_delay), "{wait:?} < {asked:?}");
            } else {
                assert!(wait <= base.mul_f64(1.2), "{wait:?} over the schedule");
            }
        }
        Some(_) => assert_eq!(verdict, Verdict::Fail),
    }
}
