//! What an attempt's result means, and when to try again: 2xx delivered; network error,
//! timeout, 408, 429 and 5xx retried with exponential backoff and jitter (honouring
//! `Retry-After`, capped); 410 disables the endpoint; any other status is a final failure.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Retry settings.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (the delivery queue's `maxReceiveCount`); default 8, about a day.
    pub max_attempts: u32,
    /// Base delay after attempt n (1-based; the last entry repeats).
    pub schedule: Vec<Duration>,
    /// Longest wait, whatever `Retry-After` says: [`MAX_RETRY_DELAY`] by default.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = |mins: u64| Duration::from_secs(mins * 60);
        Self {
            max_attempts: 8,
            // 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h: about 11 h of waiting over 8 attempts,
            // plus jitter; the last attempt is then a day after the first at most.
            schedule: vec![
                Duration::from_secs(30),
                m(2),
                m(10),
                m(30),
                m(60),
                m(180),
                m(360),
            ],
            max_delay: MAX_RETRY_DELAY,
        }
    }
}

/// The longest a retry can wait. It is a visibility change of the received task, and SQS keeps a
/// message hidden at most 12 hours *from its receipt*, refusing a change past that: less the
/// deliver function's timeout (120 s, the longest since the receipt) and a margin.
pub const MAX_RETRY_DELAY: Duration =
    Duration::from_secs(crate::ports::limits::MAX_VISIBILITY_SECS - 300);

/// The verdict on one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Transient: try again after this long (unless this was the last attempt).
    Retry(Duration),
    /// 410 Gone: the endpoint asked to be removed; disable it.
    Disable,
    /// Any other answer: retrying will not help.
    Fail,
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based) before jitter: the schedule's entry, its
    /// last one past its end (a minute if it is empty).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.schedule
            .get(index)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }
}

/// Judges an attempt: `status` is `None` for network errors and timeouts. `jitter` in `[0, 1)`
/// spreads retries ±20 % around the schedule.
pub fn judge(
    status: Option<u16>,
    retry_after: Option<&str>,
    attempt: u32,
    policy: &RetryPolicy,
    jitter: f64,
    now: DateTime<Utc>,
) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Disable,
        None | Some(408 | 429 | 500..=599) => {
            let base = policy.base_delay(attempt);
            let spread = base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
            let asked = retry_after.and_then(|v| parse_retry_after(v, now));
            Verdict::Retry(
                asked
                    .map_or(spread, |a| a.max(spread))
                    .min(policy.max_delay),
            )
        }
        Some(_) => Verdict::Fail,
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
///
/// Delta-seconds are digits only (a number too large for `u64` waits as long as allowed: the
/// caller caps it). Dates in the three forms RFC 9110 says a recipient must accept: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37
/// GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). A date passed is no wait (`None`).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| rfc850(value))
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(value, "%a %b %e %H:%M:%S %Y")
                .ok()
                .map(|t| t.and_utc())
        })?;
    // A leap second (`:60`) is no time a server means to name; chrono's arithmetic around one is
    // not linear, so such a date would not count down evenly.
    if at.timestamp_subsec_nanos() >= 1_000_000_000 {
        return None;
    }
    (at - now).to_std().ok()
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`: a two-digit year is the one within 50 years of now
/// (RFC 9110, section 5.6.7), here read as 19xx from 70 and 20xx below.
fn rfc850(value: &str) -> Option<DateTime<Utc>> {
    let rest = value.strip_suffix(" GMT")?;
    let (_, rest) = rest.split_once(", ")?;
    let t = chrono::NaiveDateTime::parse_from_str(rest, "%d-%b-%y %H:%M:%S").ok()?;
    Some(t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_base_delay_follows_the_schedule_then_keeps_its_last_step() {
        let policy = RetryPolicy {
            schedule: vec![Duration::from_secs(30), Duration::from_secs(120)],
            ..RetryPolicy::default()
        };
        assert_eq!(policy.base_delay(0), Duration::from_secs(30));
        assert_eq!(policy.base_delay(1), Duration::from_secs(30));
        assert_eq!(policy.base_delay(2), Duration::from_secs(120));
        assert_eq!(policy.base_delay(u32::MAX), Duration::from_secs(120));
        let empty = RetryPolicy {
            schedule: Vec::new(),
            ..RetryPolicy::default()
        };
        assert_eq!(empty.base_delay(3), Duration::from_secs(60));
    }

    #[test]
    fn success_gone_and_final_statuses() {
        let p = RetryPolicy::default();
        for s in [200, 201, 204, 299] {
            assert_eq!(judge(Some(s), None, 1, &p, 0.5, now()), Verdict::Delivered);
        }
        assert_eq!(judge(Some(410), None, 1, &p, 0.5, now()), Verdict::Disable);
        for s in [300, 301, 400, 401, 403, 404, 405, 413, 422] {
            assert_eq!(
                judge(Some(s), None, 1, &p, 0.5, now()),
                Verdict::Fail,
                "{s}"
            );
        }
    }

    #[test]
    fn transient_failures_back_off_exponentially_with_jitter() {
        let p = RetryPolicy::default();
        for s in [
            None,
            Some(408),
            Some(429),
            Some(500),
            Some(502),
            Some(503),
            Some(599),
        ] {
            assert_eq!(
                judge(s, None, 1, &p, 0.5, now()),
                Verdict::Retry(Duration::from_secs(30)),
                "{s:?}"
            );
        }
        assert_eq!(
            judge(None, None, 1, &p, 0.0, now()),
            Verdict::Retry(Duration::from_secs(24))
        );
        assert_eq!(
            judge(None, None, 1, &p, 0.999_999, now()),
            Verdict::Retry(Duration::from_secs_f64(30.0 * 1.199_999_6))
        );
        let delays: Vec<Duration> = (1..=9)
            .map(|a| match judge(None, None, a, &p, 0.5, now()) {
                Verdict::Retry(d) => d,
                v => panic!("{v:?}"),
            })
            .collect();
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        let total: Duration = delays.iter().take(7).sum();
        assert!(
            total > Duration::from_secs(10 * 3600) && total < Duration::from_secs(24 * 3600),
            "{total:?}"
        );
    }

    #[test]
    fn retry_after_reads_every_date_form_http_allows() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 0).unwrap();
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(v, now),
                Some(Duration::from_secs(37)),
                "{v}"
            );
        }
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:48:00 GMT", now),
            None,
            "passed"
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:60 GMT", now),
            None
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:\x0c60 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("+5", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX)),
            "too large to count: as long as allowed"
        );
        let p = RetryPolicy::default();
        assert_eq!(
            judge(Some(503), Some("99999999999999999999999"), 1, &p, 0.5, now),
            Verdict::Retry(MAX_RETRY_DELAY)
        );
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            judge(Some(429), Some("120"), 1, &p, 0.5, now()),
            Verdict::Retry(Duration::from_secs(120))
        );
        assert_eq!(
            judge(
                Some(503),
                Some("Sat, 21 Nov 2026 12:05:00 GMT"),
                1,
                &p,
                0.5,
                now()
            ),
            Verdict::Retry(Duration::from_secs(300))
        );
        assert_eq!(
            judge(Some(503), Some("999999"), 1, &p, 0.5, now()),
            Verdict::Retry(MAX_RETRY_DELAY)
        );
        // Within what SQS takes as a visibility change, counted from the receipt, even at the
        // end of the deliver function's 120 s.
        assert!(
            MAX_RETRY_DELAY + Duration::from_secs(120)
                < Duration::from_secs(crate::ports::limits::MAX_VISIBILITY_SECS)
        );
        assert_eq!(
            judge(Some(503), Some("5"), 1, &p, 0.5, now()),
            Verdict::Retry(Duration::from_secs(30)),
            "never sooner than the schedule"
        );
        assert_eq!(
            judge(Some(503), Some("soon"), 1, &p, 0.5, now()),
            Verdict::Retry(Duration::from_secs(30))
        );
    }
}
