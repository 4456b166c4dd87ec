//! The overview's figures on AWS: the metrics every function already writes as EMF lines
//! (namespace `wagate`, dimension `Function`), read back with CloudWatch `GetMetricData`.
//!
//! Owns: one `GetMetricData` call (paged) for the sums of every metric of every named function
//! in the span's steps, and one for the deliver function's latency percentiles (per step and
//! over the whole span). Percentiles of different functions cannot be merged, so latency comes
//! from the one function that records it. Must not: write anything, or fail the counts because
//! the percentiles could not be read (they are left out and the reason logged).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::primitives::DateTime as SmithyTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDataQuery, MetricDataResult, MetricStat};
use chrono::{DateTime, Utc};
use shared::metrics::timeline::{Percentiles, Span};
use shared::metrics::{Metric, NAMESPACE};
use shared::ports::{BackendError, MetricsSource};

use crate::error::backend_error;

/// Queries per `GetMetricData` call (CloudWatch's limit).
const MAX_QUERIES: usize = 500;

/// CloudWatch as the overview's [`MetricsSource`].
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
    /// The functions whose counts are summed (their `AWS_LAMBDA_FUNCTION_NAME`s).
    functions: Vec<String>,
    /// The function that records `DeliveryLatency`.
    deliver_function: Option<String>,
}

impl CloudWatchMetrics {
    /// Reads the metrics of `functions`, latency from `deliver_function`.
    pub fn new(
        client: aws_sdk_cloudwatch::Client,
        functions: Vec<String>,
        deliver_function: Option<String>,
    ) -> Self {
        Self {
            client,
            functions,
            deliver_function,
        }
    }

    /// The results of `queries` from `start` to `end`, every page, by query id.
    async fn fetch(
        &self,
        queries: Vec<MetricDataQuery>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<HashMap<String, Vec<Point>>, BackendError> {
        let mut by_id: HashMap<String, Vec<Point>> = HashMap::new();
        for chunk in queries.chunks(MAX_QUERIES) {
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .get_metric_data()
                    .start_time(SmithyTime::from_secs(start.timestamp()))
                    .end_time(SmithyTime::from_secs(end.timestamp()))
                    .set_metric_data_queries(Some(chunk.to_vec()))
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| backend_error("GetMetricData", e))?;
                for result in out.metric_data_results() {
                    let Some(id) = result.id() else { continue };
                    // A later page continues an id's points.
                    by_id
                        .entry(id.to_owned())
                        .or_default()
                        .extend(points(result));
                }
                match out.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(by_id)
    }

    /// Latency p50, p99 and the sample count per step, and over the whole span.
    async fn latency(
        &self,
        function: &str,
        from: DateTime<Utc>,
        step_seconds: i32,
        buckets: usize,
    ) -> Result<(Vec<Option<Percentiles>>, Option<Percentiles>), BackendError> {
        let end = from + chrono::Duration::seconds(i64::from(step_seconds) * buckets as i64);
        let whole = i32::try_from(i64::from(step_seconds) * buckets as i64).unwrap_or(i32::MAX);
        let mut queries = Vec::new();
        for (prefix, period) in [("s", step_seconds), ("t", whole)] {
            for stat in ["p50", "p99", "SampleCount"] {
                queries.push(query(
                    &format!("{prefix}{}", stat.to_ascii_lowercase()),
                    Metric::DeliveryLatency,
                    function,
                    period,
                    stat,
                ));
            }
        }
        let results = self.fetch(queries, from, end).await?;
        let series = |id: &str, period: i32, n: usize| {
            results
                .get(id)
                .map(|p| steps(p, from, period, n))
                .unwrap_or_else(|| vec![None; n])
        };
        let combine = |prefix: &str, period: i32, n: usize| -> Vec<Option<Percentiles>> {
            let p50 = series(&format!("{prefix}p50"), period, n);
            let p99 = series(&format!("{prefix}p99"), period, n);
            let count = series(&format!("{prefix}samplecount"), period, n);
            (0..n)
                .map(|i| match (p50[i], p99[i], count[i]) {
                    (Some(p50), Some(p99), Some(samples)) if samples > 0.0 => Some(Percentiles {
                        p50,
                        p99,
                        // A count of attempts: whole and far below 2^53.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        samples: samples.round() as u64,
                    }),
                    _ => None,
                })
                .collect()
        };
        let per_step = combine("s", step_seconds, buckets);
        let total = combine("t", whole, 1).into_iter().next().flatten();
        Ok((per_step, total))
    }
}

/// A `GetMetricData` query for `stat` of `metric` of `function` over `period` seconds.
fn query(id: &str, metric: Metric, function: &str, period: i32, stat: &str) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    aws_sdk_cloudwatch::types::Metric::builder()
                        .namespace(NAMESPACE)
                        .metric_name(metric.name())
                        .dimensions(
                            Dimension::builder()
                                .name("Function")
                                .value(function)
                                .build(),
                        )
                        .build(),
                )
                .period(period)
                .stat(stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// One value of a series: its timestamp (Unix seconds) and the value.
type Point = (i64, f64);

/// `result`'s timestamps and values, paired.
fn points(result: &MetricDataResult) -> impl Iterator<Item = Point> + '_ {
    result
        .timestamps()
        .iter()
        .map(SmithyTime::secs)
        .zip(result.values().iter().copied())
}

/// `points` placed in `n` steps of `period` seconds from `from` (a point whose timestamp falls
/// outside is ignored; two in one step are added).
fn steps(points: &[Point], from: DateTime<Utc>, period: i32, n: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; n];
    for &(at, value) in points {
        let offset = at - from.timestamp();
        if offset < 0 || period <= 0 {
            continue;
        }
        let Ok(step) = usize::try_from(offset / i64::from(period)) else {
            continue;
        };
        if let Some(slot) = out.get_mut(step) {
            *slot = Some(slot.unwrap_or(0.0) + value);
        }
    }
    out
}

#[async_trait]
impl MetricsSource for CloudWatchMetrics {
    async fn span(
        &self,
        from: DateTime<Utc>,
        step_minutes: i64,
        buckets: usize,
    ) -> Result<Span, BackendError> {
        let step_seconds = i32::try_from(step_minutes.max(1) * 60)
            .map_err(|_| BackendError::Rejected("a step of over 68 years".into()))?;
        let end = from + chrono::Duration::seconds(i64::from(step_seconds) * buckets as i64);
        let counted: Vec<Metric> = Metric::ALL
            .into_iter()
            .filter(|m| *m != Metric::DeliveryLatency)
            .collect();
        let mut queries = Vec::new();
        for metric in &counted {
            for (f, function) in self.functions.iter().enumerate() {
                queries.push(query(
                    &format!("m{}f{f}", metric.index()),
                    *metric,
                    function,
                    step_seconds,
                    "Sum",
                ));
            }
        }
        // The counts and the percentiles in two calls at once; only the counts must succeed.
        let latency = async {
            let function = self.deliver_function.as_deref()?;
            match self.latency(function, from, step_seconds, buckets).await {
                Ok(found) => Some(found),
                Err(e) => {
                    tracing::warn!(error = %e, "delivery latency percentiles could not be read");
                    None
                }
            }
        };
        let (results, latency) = futures::join!(self.fetch(queries, from, end), latency);
        let results = results?;
        let mut sums = vec![vec![0.0; buckets]; Metric::ALL.len()];
        for metric in &counted {
            for f in 0..self.functions.len() {
                let Some(points) = results.get(&format!("m{}f{f}", metric.index())) else {
                    continue;
                };
                for (step, value) in steps(points, from, step_seconds, buckets)
                    .into_iter()
                    .enumerate()
                {
                    sums[metric.index()][step] += value.unwrap_or(0.0);
                }
            }
        }
        let (latency, latency_total) = latency.unwrap_or_else(|| (vec![None; buckets], None));
        Ok(Span {
            sums,
            latency,
            latency_total,
        })
    }

    fn origin(&self) -> &'static str {
        "CloudWatch (namespace wagate, what each function reports)"
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn values_fall_in_the_step_of_their_timestamp() {
        let from = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let at = |minutes: i64| SmithyTime::from_secs(from.timestamp() + minutes * 60);
        let result = MetricDataResult::builder()
            .id("m")
            .set_timestamps(Some(vec![at(0), at(4), at(5), at(14), at(15), at(-1)]))
            .set_values(Some(vec![1.0, 2.0, 3.0, 4.0, 99.0, 98.0]))
            .build();
        let result: Vec<Point> = points(&result).collect();
        assert_eq!(
            steps(&result, from, 300, 3),
            vec![Some(3.0), Some(3.0), Some(4.0)]
        );
        assert_eq!(steps(&result, from, 3600, 1), vec![Some(109.0)]);
    }

    #[test]
    fn each_function_and_metric_gets_its_own_query() {
        let q = query("m9f1", Metric::Delivered, "stack-deliver", 60, "Sum");
        let stat = q.metric_stat().unwrap();
        assert_eq!(q.id(), Some("m9f1"));
        assert_eq!(stat.period(), Some(60));
        assert_eq!(stat.stat(), Some("Sum"));
        let metric = stat.metric().unwrap();
        assert_eq!(metric.namespace(), Some("wagate"));
        assert_eq!(metric.metric_name(), Some("Delivered"));
        assert_eq!(metric.dimensions()[0].value(), Some("stack-deliver"));
    }
}
