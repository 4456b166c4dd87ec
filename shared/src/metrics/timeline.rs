//! The last day of metrics, minute by minute, kept in this process: what the management API's
//! overview reads where there is no CloudWatch (local mode). The Lambdas do not keep one; their
//! metrics go to CloudWatch as EMF lines ([`super::flush`]).
//!
//! Owns: per-minute sums of every counter and a log-scale histogram of delivery latency per
//! minute (8 buckets per doubling, so a percentile is within 9%), for at most [`KEPT_MINUTES`];
//! older minutes are dropped as new ones start, so memory is bounded (about 2 KiB per minute
//! with latency samples). Must not: block the stages (one short mutex per record).

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::Metric;
use crate::ports::{BackendError, MetricsSource};

/// Minutes kept: one day.
pub const KEPT_MINUTES: usize = 24 * 60;

/// Latency buckets: bucket `i` holds values below `2^((i + 1) / 8)` ms (the last one all above).
const LATENCY_BUCKETS: usize = 8 * 20;

#[derive(Debug, Clone)]
struct Minute {
    /// Unix time / 60.
    index: i64,
    sums: [f64; Metric::ALL.len()],
    latency: Option<Box<[u32; LATENCY_BUCKETS]>>,
}

impl Minute {
    fn new(index: i64) -> Self {
        Self {
            index,
            sums: [0.0; Metric::ALL.len()],
            latency: None,
        }
    }
}

/// Per-minute metrics for the last day.
#[derive(Debug, Default)]
pub struct Timeline {
    minutes: Mutex<VecDeque<Minute>>,
}

/// Delivery latency percentiles over some span, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// How many attempts were timed.
    pub samples: u64,
}

/// What a span of the timeline holds, in `buckets` equal steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Per metric (in [`Metric::ALL`] order), the sum of each step.
    pub sums: Vec<Vec<f64>>,
    /// Latency percentiles of each step (`None`: no attempt was timed).
    pub latency: Vec<Option<Percentiles>>,
    /// Latency percentiles of the whole span.
    pub latency_total: Option<Percentiles>,
}

fn latency_bucket(ms: f64) -> usize {
    if ms < 1.0 {
        return 0;
    }
    // Bounded above by LATENCY_BUCKETS: the cast of a finite, non-negative value is exact enough.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = (ms.log2() * 8.0).floor() as usize;
    i.min(LATENCY_BUCKETS - 1)
}

/// The upper bound of bucket `i`, in ms.
fn bucket_upper(i: usize) -> f64 {
    // i < 160: exact as f64.
    #[allow(clippy::cast_precision_loss)]
    let exponent = (i + 1) as f64 / 8.0;
    exponent.exp2()
}

fn percentiles(histogram: &[u32; LATENCY_BUCKETS]) -> Option<Percentiles> {
    let samples: u64 = histogram.iter().map(|&n| u64::from(n)).sum();
    if samples == 0 {
        return None;
    }
    let at = |fraction: f64| {
        // The rank of the sample at `fraction`, from 1.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((samples as f64) * fraction).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &n) in histogram.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return bucket_upper(i);
            }
        }
        bucket_upper(LATENCY_BUCKETS - 1)
    };
    Some(Percentiles {
        p50: at(0.5),
        p99: at(0.99),
        samples,
    })
}

impl Timeline {
    /// An empty timeline.
    pub const fn new() -> Self {
        Self {
            minutes: Mutex::new(VecDeque::new()),
        }
    }

    /// Adds `value` of `metric` at `at`.
    pub fn record(&self, at: DateTime<Utc>, metric: Metric, value: f64) {
        if !value.is_finite() {
            return;
        }
        let index = at.timestamp().div_euclid(60);
        let Ok(mut minutes) = self.minutes.lock() else {
            return;
        };
        let slot = match minutes.iter().rposition(|m| m.index == index) {
            Some(i) => i,
            None => {
                // Minutes arrive in order but for clock steps; keep them sorted.
                let at = minutes.partition_point(|m| m.index < index);
                minutes.insert(at, Minute::new(index));
                let newest = minutes.back().map_or(index, |m| m.index);
                // Bounded: KEPT_MINUTES is far below i64's range.
                #[allow(clippy::cast_possible_wrap)]
                let oldest_kept = newest - KEPT_MINUTES as i64 + 1;
                while minutes.front().is_some_and(|m| m.index < oldest_kept) {
                    minutes.pop_front();
                }
                match minutes.iter().rposition(|m| m.index == index) {
                    Some(i) => i,
                    None => return,
                }
            }
        };
        let minute = &mut minutes[slot];
        minute.sums[metric.index()] += value;
        if metric == Metric::DeliveryLatency {
            let histogram = minute
                .latency
                .get_or_insert_with(|| Box::new([0; LATENCY_BUCKETS]));
            let b = latency_bucket(value);
            histogram[b] = histogram[b].saturating_add(1);
        }
    }

    /// The span from `from` in `buckets` steps of `step_minutes` minutes each.
    pub fn span(&self, from: DateTime<Utc>, step_minutes: i64, buckets: usize) -> Span {
        let step_minutes = step_minutes.max(1);
        let first = from.timestamp().div_euclid(60);
        let mut sums = vec![vec![0.0; buckets]; Metric::ALL.len()];
        let mut step_histograms = vec![[0u32; LATENCY_BUCKETS]; buckets];
        let mut total = [0u32; LATENCY_BUCKETS];
        if let Ok(minutes) = self.minutes.lock() {
            for minute in minutes.iter() {
                let offset = minute.index - first;
                if offset < 0 {
                    continue;
                }
                let Ok(step) = usize::try_from(offset / step_minutes) else {
                    continue;
                };
                if step >= buckets {
                    continue;
                }
                for (metric, sum) in minute.sums.iter().enumerate() {
                    sums[metric][step] += sum;
                }
                if let Some(histogram) = &minute.latency {
                    for (i, &n) in histogram.iter().enumerate() {
                        step_histograms[step][i] = step_histograms[step][i].saturating_add(n);
                        total[i] = total[i].saturating_add(n);
                    }
                }
            }
        }
        Span {
            sums,
            latency: step_histograms.iter().map(percentiles).collect(),
            latency_total: percentiles(&total),
        }
    }
}

#[async_trait::async_trait]
impl MetricsSource for Timeline {
    async fn span(
        &self,
        from: DateTime<Utc>,
        step_minutes: i64,
        buckets: usize,
    ) -> Result<Span, BackendError> {
        Ok(Timeline::span(self, from, step_minutes, buckets))
    }

    fn origin(&self) -> &'static str {
        "a timeline kept in this process"
    }
}

/// This process's timeline ([`super::timeline()`]) as the overview's [`MetricsSource`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessMetrics;

#[async_trait::async_trait]
impl MetricsSource for ProcessMetrics {
    async fn span(
        &self,
        from: DateTime<Utc>,
        step_minutes: i64,
        buckets: usize,
    ) -> Result<Span, BackendError> {
        Ok(super::timeline().span(from, step_minutes, buckets))
    }

    fn origin(&self) -> &'static str {
        "this process, since it started (kept for a day)"
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
    }

    #[test]
    fn sums_fall_in_their_steps_and_old_minutes_are_dropped() {
        let timeline = Timeline::new();
        timeline.record(t0(), Metric::WebhooksReceived, 2.0);
        timeline.record(t0() + Duration::seconds(59), Metric::WebhooksReceived, 1.0);
        timeline.record(t0() + Duration::minutes(7), Metric::WebhooksReceived, 4.0);
        timeline.record(t0() + Duration::minutes(7), Metric::Delivered, 1.0);
        timeline.record(
            t0() + Duration::minutes(3),
            Metric::WebhooksRejected,
            f64::NAN,
        );
        let span = timeline.span(t0(), 5, 3);
        let received = &span.sums[Metric::WebhooksReceived.index()];
        assert_eq!(received, &vec![3.0, 4.0, 0.0]);
        assert_eq!(span.sums[Metric::Delivered.index()], vec![0.0, 1.0, 0.0]);
        assert_eq!(span.sums[Metric::WebhooksRejected.index()], vec![0.0; 3]);
        assert_eq!(span.latency_total, None);

        // A day later the first minutes are gone; memory stays bounded.
        timeline.record(t0() + Duration::days(1), Metric::Delivered, 1.0);
        let span = timeline.span(t0(), 5, 3);
        assert_eq!(span.sums[Metric::WebhooksReceived.index()][0], 0.0);
        assert_eq!(span.sums[Metric::WebhooksReceived.index()][1], 4.0);
        for i in 0..(2 * KEPT_MINUTES) {
            let minutes = i64::try_from(i).unwrap();
            timeline.record(t0() + Duration::minutes(minutes), Metric::Delivered, 1.0);
        }
        assert_eq!(timeline.minutes.lock().unwrap().len(), KEPT_MINUTES);
    }

    #[test]
    fn latency_percentiles_are_within_a_bucket() {
        let timeline = Timeline::new();
        for ms in 1..=100 {
            timeline.record(t0(), Metric::DeliveryLatency, f64::from(ms));
        }
        timeline.record(t0() + Duration::minutes(5), Metric::DeliveryLatency, 2000.0);
        let span = timeline.span(t0(), 5, 2);
        let first = span.latency[0].unwrap();
        assert_eq!(first.samples, 100);
        assert!((50.0..=50.0 * 1.1).contains(&first.p50), "{first:?}");
        assert!((99.0..=99.0 * 1.1).contains(&first.p99), "{first:?}");
        let second = span.latency[1].unwrap();
        assert!((2000.0..=2200.0).contains(&second.p50), "{second:?}");
        let total = span.latency_total.unwrap();
        assert_eq!(total.samples, 101);
        assert!(total.p99 <= 110.0, "{total:?}");
        assert_eq!(latency_bucket(0.2), 0);
        assert_eq!(latency_bucket(1e12), LATENCY_BUCKETS - 1);
    }
}
