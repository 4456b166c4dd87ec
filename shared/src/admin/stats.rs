//! `/v1/stats`: the console's overview over the last hour or day. Each figure says where it
//! comes from, and none costs a write on the ingest path:
//! - webhooks, events, deliveries and latency: the metrics the stages record anyway
//!   ([`crate::metrics::Metric`]), read through a [`MetricsSource`] (this process's timeline in
//!   local mode; absent, so `null`, where none is configured);
//! - the dead-letter queue's depth: the queue's approximate count;
//! - endpoints in trouble: each endpoint's latest deliveries in the window (one list per
//!   endpoint, at most [`RECENT`] records) and its disabled state.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::http::{ApiQuery, Now, Routes};
use super::openapi::ChangeErrors;
use super::{Admin, ApiError};
use crate::delivery::record::{DeliveryFilter, DeliveryStatus};
use crate::metrics::Metric;
use crate::metrics::timeline::Percentiles;

/// Deliveries read per endpoint to judge it.
pub const RECENT: usize = 20;
/// Endpoints judged (the first by id).
const MAX_ENDPOINTS: usize = 100;

pub(super) fn routes() -> Routes {
    Routes::default().routes(routes!(get_stats))
}

/// `?window=hour|day`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StatsQuery {
    /// `hour` (12 steps of 5 minutes, the default) or `day` (24 steps of an hour).
    #[serde(default)]
    window: Option<String>,
}

/// Counts of one step, or of the whole window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatsFigures {
    /// Verified webhooks accepted.
    pub webhooks_accepted: f64,
    /// Webhooks refused (signature, size, shape, unknown source).
    pub webhooks_refused: f64,
    /// Webhooks answered 503 (storage or queue down; the provider retries).
    pub webhooks_unavailable: f64,
    /// Normalized events queued.
    pub events: f64,
    /// Provider duplicates and redeliveries dropped.
    pub duplicates: f64,
    /// Deliveries answered 2xx.
    pub delivered: f64,
    /// Delivery attempts that failed.
    pub failed_attempts: f64,
    /// Deliveries moved to the dead-letter queue.
    pub dead_lettered: f64,
    /// Median delivery attempt latency, ms (`null`: no attempt).
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile delivery attempt latency, ms.
    pub latency_p99_ms: Option<f64>,
}

/// One step of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatsStep {
    /// The step's start.
    pub start: DateTime<Utc>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: StatsFigures,
}

/// An endpoint whose deliveries are failing, or that was disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EndpointTrouble {
    /// The endpoint.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// Whether deliveries are on.
    pub enabled: bool,
    /// Why it was disabled, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Of its latest deliveries in the window (at most 20), how many are retrying.
    pub retrying: usize,
    /// … and how many failed for good.
    pub dead_lettered: usize,
    /// … and how many were read.
    pub recent: usize,
    /// The last failed attempt's error or status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// The overview of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// `hour` or `day`.
    pub window: String,
    /// The window's start (a step boundary) …
    pub from: DateTime<Utc>,
    /// … and end (now).
    pub to: DateTime<Utc>,
    /// Seconds per step.
    pub step_seconds: u32,
    /// Where the webhook, event and delivery figures come from; `null` when no metrics are
    /// configured here (then `steps` is empty and `totals` null).
    pub metrics_from: Option<String>,
    /// The figures per step, oldest first.
    pub steps: Vec<StatsStep>,
    /// The figures of the whole window.
    pub totals: Option<StatsFigures>,
    /// Messages waiting in the delivery dead-letter queue (approximate; `null` when the queue
    /// cannot tell).
    pub dead_letter_depth: Option<u64>,
    /// Endpoints with retrying or dead-lettered deliveries in the window, or disabled; most
    /// failing first.
    pub endpoints_in_trouble: Vec<EndpointTrouble>,
}

fn figures(sums: &[Vec<f64>], step: Option<usize>, latency: Option<Percentiles>) -> StatsFigures {
    let get = |m: Metric| {
        let series = &sums[m.index()];
        match step {
            Some(i) => series.get(i).copied().unwrap_or_default(),
            None => series.iter().sum(),
        }
    };
    StatsFigures {
        webhooks_accepted: get(Metric::WebhooksReceived),
        webhooks_refused: get(Metric::WebhooksRejected),
        webhooks_unavailable: get(Metric::WebhooksUnavailable),
        events: get(Metric::EventsEnqueued),
        duplicates: get(Metric::Duplicates),
        delivered: get(Metric::Delivered),
        failed_attempts: get(Metric::FailedAttempts),
        dead_lettered: get(Metric::DeadLettered),
        latency_p50_ms: latency.map(|p| p.p50),
        latency_p99_ms: latency.map(|p| p.p99),
    }
}

/// The overview: webhooks accepted and refused, events, deliveries delivered, failed and
/// dead-lettered, delivery latency p50/p99, per step and in total; the dead-letter queue's
/// depth; endpoints in trouble.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "getStats",
    params(StatsQuery),
    responses((status = 200, description = "Done.", body = Stats), ChangeErrors)
)]
async fn get_stats(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<Stats>, ApiError> {
    let (window, step_minutes, buckets) = match query.window.as_deref() {
        None | Some("hour") => ("hour", 5, 12),
        Some("day") => ("day", 60, 24),
        Some(_) => return Err(ApiError::invalid("window", "window is hour or day")),
    };
    // Steps end at the current step's end, so the last one is the one under way.
    let step_seconds = step_minutes * 60;
    let current_start = now.timestamp().div_euclid(step_seconds) * step_seconds;
    let from_seconds = current_start - step_seconds * (i64::from(buckets) - 1);
    let from = DateTime::from_timestamp(from_seconds, 0).unwrap_or(now);
    let (metrics_from, steps, totals) = match &admin.metrics {
        Some(source) => {
            let span = source.span(from, step_minutes, buckets as usize).await?;
            let steps = (0..buckets as usize)
                .map(|i| StatsStep {
                    start: from + Duration::minutes(step_minutes * i as i64),
                    figures: figures(&span.sums, Some(i), span.latency.get(i).copied().flatten()),
                })
                .collect();
            let totals = figures(&span.sums, None, span.latency_total);
            (Some(source.origin().to_owned()), steps, Some(totals))
        }
        None => (None, Vec::new(), None),
    };
    let dead_letter_depth = admin.dead_letter.approximate_depth().await?;
    let endpoints_in_trouble = troubled_endpoints(&admin, from, now).await?;
    Ok(Json(Stats {
        window: window.to_owned(),
        from,
        to: now,
        step_seconds: u32::try_from(step_seconds).unwrap_or(u32::MAX),
        metrics_from,
        steps,
        totals,
        dead_letter_depth,
        endpoints_in_trouble,
    }))
}

async fn troubled_endpoints(
    admin: &Admin,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<EndpointTrouble>, ApiError> {
    let mut out = Vec::new();
    let endpoints = admin.endpoints.list(MAX_ENDPOINTS, now).await?;
    let filter = DeliveryFilter {
        since: Some(since),
        ..DeliveryFilter::default()
    };
    for endpoint in endpoints {
        let page = admin
            .deliveries
            .list(
                std::slice::from_ref(&endpoint.id),
                &filter,
                None,
                RECENT,
                now,
            )
            .await?;
        let mut trouble = EndpointTrouble {
            endpoint_id: endpoint.id.clone(),
            url: endpoint.url.clone(),
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason.clone(),
            retrying: 0,
            dead_lettered: 0,
            recent: page.records.len(),
            last_error: None,
            last_failure_at: None,
        };
        for (record, _) in &page.records {
            match record.status {
                DeliveryStatus::Retrying => trouble.retrying += 1,
                DeliveryStatus::DeadLettered | DeliveryStatus::EndpointDisabled => {
                    trouble.dead_lettered += 1;
                }
                DeliveryStatus::Delivered | DeliveryStatus::Skipped => continue,
            }
            let failed = record
                .attempts
                .iter()
                .rev()
                .find(|a| a.outcome != DeliveryStatus::Delivered);
            if let Some(attempt) = failed
                && trouble.last_failure_at.is_none_or(|t| attempt.at > t)
            {
                trouble.last_failure_at = Some(attempt.at);
                trouble.last_error = Some(match (&attempt.error, attempt.status) {
                    (Some(error), _) => error.clone(),
                    (None, Some(status)) => format!("HTTP {status}"),
                    (None, None) => "failed".to_owned(),
                });
            }
        }
        if trouble.retrying + trouble.dead_lettered > 0 || !endpoint.enabled {
            out.push(trouble);
        }
    }
    out.sort_by(|a, b| {
        (b.retrying + b.dead_lettered)
            .cmp(&(a.retrying + a.dead_lettered))
            .then_with(|| a.endpoint_id.cmp(&b.endpoint_id))
    });
    Ok(out)
}
