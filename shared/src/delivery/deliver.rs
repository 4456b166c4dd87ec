//! The deliver stage: one delivery task, one signed POST, one verdict, one attempt record.
//!
//! Retries ride on the delivery queue: a transient failure hides the message for the backoff
//! delay (SQS visibility) and reports it failed; after the last attempt, or on a final failure,
//! the task goes to the dead-letter queue, from which redrive sends it again. 410 disables the
//! endpoint. Every attempt is recorded (status, latency, error, attempt number) with a TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::{self, Metric};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::endpoints::Endpoints;
use super::record::{AttemptRecord, Deliveries, DeliveryRecord, DeliveryStatus};
use super::request::{DeliveryTask, headers};
use super::retry::{RetryPolicy, Verdict, judge};
use super::ssrf::{NetworkPolicy, UrlError, check_url};
use crate::pipeline::codec::decode;
use crate::ports::{
    BackendError, BlobStore, DocumentStore, OutgoingMessage, Queue, ReceivedMessage,
};

/// One POST to make.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequest<'a> {
    /// The endpoint URL.
    pub url: &'a str,
    /// Headers, in order.
    pub headers: &'a [(String, String)],
    /// The exact body.
    pub body: &'a [u8],
    /// Give up after this long.
    pub timeout: Duration,
}

/// What the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Retry-After`, if sent.
    pub retry_after: Option<String>,
}

/// Why no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL or an address it resolved to is not allowed.
    #[error(transparent)]
    Blocked(#[from] UrlError),
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// Connection refused, reset, DNS failure, TLS failure…
    #[error("network error: {0}")]
    Network(String),
}

/// Sends webhook POSTs (reqwest in the functions, with the SSRF check at connect time).
#[async_trait]
pub trait HttpSender: Send + Sync + std::fmt::Debug {
    /// POSTs and returns the status, or why there is none.
    async fn post(&self, request: HttpRequest<'_>) -> Result<HttpResponse, HttpError>;
}

/// What became of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverOutcome {
    /// 2xx.
    Delivered,
    /// Transient failure: hide the message this long and report it failed.
    RetryAfter(Duration),
    /// Final failure or last attempt: moved to the dead-letter queue.
    DeadLettered,
    /// 410: the endpoint is now disabled; the task is dead-lettered too.
    EndpointDisabled,
    /// The endpoint is gone or disabled: nothing to do.
    Skipped,
    /// An earlier attempt of this delivery was answered 2xx but not acknowledged (the process
    /// stopped between the POST and the delete, or the task was handed on twice): acknowledged
    /// now without a second POST.
    AlreadyDelivered,
}

/// Deliver settings.
#[derive(Debug, Clone)]
pub struct DeliverConfig {
    /// Per-attempt timeout (default 10 s).
    pub timeout: Duration,
    /// Retry schedule and attempt count.
    pub retry: RetryPolicy,
    /// How long attempt records are kept.
    pub attempt_ttl: Duration,
    /// Which addresses may be called.
    pub network: NetworkPolicy,
}

impl Default for DeliverConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            attempt_ttl: Duration::from_secs(30 * 24 * 3600),
            network: NetworkPolicy::PublicOnly,
        }
    }
}

/// The deliver stage with its ports.
#[derive(Debug, Clone)]
pub struct Deliver {
    /// Endpoints.
    pub endpoints: Endpoints,
    /// Attempt records.
    pub docs: Arc<dyn DocumentStore>,
    /// The POSTs.
    pub http: Arc<dyn HttpSender>,
    /// The delivery queue (for visibility changes) …
    pub queue: Arc<dyn Queue>,
    /// … and its dead-letter queue.
    pub dead_letter: Arc<dyn Queue>,
    /// Claim-checked task bodies.
    pub blobs: Arc<dyn BlobStore>,
    /// Settings.
    pub config: DeliverConfig,
}

/// A jitter value in `[0, 1)` from fresh randomness.
fn jitter() -> f64 {
    f64::from(ulid::Ulid::new().random() as u32) / (f64::from(u32::MAX) + 1.0)
}

impl Deliver {
    /// Delivers one task on its `attempt`-th try.
    pub async fn deliver(
        &self,
        task: &DeliveryTask,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<DeliverOutcome, BackendError> {
        let records = self.deliveries();
        let (mut record, record_version) = match records.get(&task.delivery_id, now).await? {
            Some((r, _)) if r.status == DeliveryStatus::Delivered => {
                tracing::info!(delivery_id = %task.delivery_id, attempt, "an earlier attempt was delivered; acknowledging");
                return Ok(DeliverOutcome::AlreadyDelivered);
            }
            Some((r, v)) => (r, Some(v)),
            None => (records.new_record(task, now).await?, None),
        };
        let endpoint = match self.endpoints.get(&task.endpoint_id, now).await? {
            Some((e, v)) if e.enabled => Some((e, v)),
            _ => None,
        };
        let Some((mut endpoint, version)) = endpoint else {
            tracing::info!(delivery_id = %task.delivery_id, endpoint_id = %task.endpoint_id, "endpoint deleted or disabled; dropping delivery");
            record.status = DeliveryStatus::Skipped;
            record.next_attempt_at = None;
            record.updated_at = now;
            self.save(record, record_version, None, now).await?;
            return Ok(DeliverOutcome::Skipped);
        };
        let hs = headers(task, &endpoint, now);
        let started = Instant::now();
        let result = match check_url(&endpoint.url, self.config.network) {
            Err(e) => Err(HttpError::Blocked(e)),
            Ok(()) => {
                self.http
                    .post(HttpRequest {
                        url: &endpoint.url,
                        headers: &hs,
                        body: task.body.as_bytes(),
                        timeout: self.config.timeout,
                    })
                    .await
            }
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (status, retry_after, error) = match &result {
            Ok(r) => (Some(r.status), r.retry_after.clone(), None),
            Err(e) => (None, None, Some(e.to_string())),
        };
        let last = attempt >= self.config.retry.max_attempts;
        let verdict = match &result {
            Err(HttpError::Blocked(_)) => Verdict::Fail,
            _ => judge(
                status,
                retry_after.as_deref(),
                attempt,
                &self.config.retry,
                jitter(),
                now,
            ),
        };
        let outcome = match verdict {
            Verdict::Delivered => DeliverOutcome::Delivered,
            Verdict::Retry(delay) if !last => DeliverOutcome::RetryAfter(delay),
            Verdict::Retry(_) | Verdict::Fail => DeliverOutcome::DeadLettered,
            Verdict::Disable => DeliverOutcome::EndpointDisabled,
        };
        let state = match &outcome {
            DeliverOutcome::Delivered | DeliverOutcome::AlreadyDelivered => {
                DeliveryStatus::Delivered
            }
            DeliverOutcome::RetryAfter(_) => DeliveryStatus::Retrying,
            DeliverOutcome::DeadLettered => DeliveryStatus::DeadLettered,
            DeliverOutcome::EndpointDisabled => DeliveryStatus::EndpointDisabled,
            DeliverOutcome::Skipped => DeliveryStatus::Skipped,
        };
        let next_attempt_at = match &outcome {
            DeliverOutcome::RetryAfter(d) => {
                Some(now + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::hours(1)))
            }
            _ => None,
        };
        let made = AttemptRecord {
            attempt: record.attempt_count + 1,
            at: now,
            status,
            latency_ms,
            error: error.or_else(|| {
                status
                    .filter(|s| !(200..300).contains(s))
                    .map(|s| format!("HTTP {s}"))
            }),
            outcome: state,
        };
        tracing::info!(delivery_id = %task.delivery_id, endpoint_id = %task.endpoint_id, attempt, status = ?made.status, latency_ms, outcome = state.as_str(), "attempt");
        #[allow(clippy::cast_precision_loss)] // milliseconds: exact far beyond any timeout
        metrics::record(Metric::DeliveryLatency, latency_ms as f64);
        metrics::count(
            if outcome == DeliverOutcome::Delivered {
                Metric::Delivered
            } else {
                Metric::FailedAttempts
            },
            1,
        );
        record.push(made.clone(), next_attempt_at);
        self.save(record, record_version, Some(made), now).await?;
        if outcome == DeliverOutcome::EndpointDisabled {
            endpoint.enabled = false;
            endpoint.disabled_reason = Some("the endpoint answered 410 Gone".to_owned());
            endpoint.updated_at = now;
            self.endpoints.put(&endpoint, Some(version), now).await?;
        }
        if matches!(
            outcome,
            DeliverOutcome::DeadLettered | DeliverOutcome::EndpointDisabled
        ) {
            let body =
                serde_json::to_string(task).map_err(|e| BackendError::Rejected(e.to_string()))?;
            let failed = self
                .dead_letter
                .send_batch(&[OutgoingMessage {
                    id: "0".into(),
                    body,
                    delay: None,
                }])
                .await?;
            if let Some(f) = failed.first() {
                return Err(BackendError::Rejected(format!(
                    "dead-letter queue refused the task: {}",
                    f.reason
                )));
            }
            metrics::count(Metric::DeadLettered, 1);
        }
        Ok(outcome)
    }

    /// The delivery records this stage keeps.
    pub fn deliveries(&self) -> Deliveries {
        Deliveries {
            docs: self.docs.clone(),
            blobs: self.blobs.clone(),
            ttl: self.config.attempt_ttl,
        }
    }

    /// Saves `record`; when another copy of the same task wrote first, re-reads and adds `made`
    /// to the stored record instead (a few rounds, then the error lets the message retry).
    async fn save(
        &self,
        mut record: DeliveryRecord,
        mut version: Option<u64>,
        made: Option<AttemptRecord>,
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let records = self.deliveries();
        for _ in 0..4 {
            if records.put(&record, version, now).await? {
                return Ok(());
            }
            let Some((fresh, v)) = records.get(&record.id, now).await? else {
                version = None;
                continue;
            };
            let (status, next) = (record.status, record.next_attempt_at);
            record = fresh;
            version = Some(v);
            match &made {
                Some(m) if record.status != DeliveryStatus::Delivered => {
                    let mut m = m.clone();
                    m.attempt = record.attempt_count + 1;
                    record.push(m, next);
                }
                Some(_) => {}
                None => {
                    record.status = status;
                    record.updated_at = now;
                }
            }
        }
        Err(BackendError::Rejected(format!(
            "delivery record {} kept changing",
            record.id
        )))
    }

    /// Processes received delivery-queue messages; returns the message ids to report as failed
    /// (their visibility already set to the backoff delay).
    pub async fn process_batch(
        &self,
        messages: &[ReceivedMessage],
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for m in messages {
            let task: DeliveryTask = match decode(&m.body, self.blobs.as_ref(), now).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(message_id = %m.message_id, error = %e, "unreadable delivery task");
                    failed.push(m.message_id.clone());
                    continue;
                }
            };
            match self.deliver(&task, m.receive_count.max(1), now).await {
                Ok(DeliverOutcome::RetryAfter(delay)) => {
                    if let Err(e) = self.queue.change_visibility(&m.receipt, delay).await {
                        tracing::warn!(delivery_id = %task.delivery_id, error = %e, "could not set the retry delay; the queue default applies");
                    }
                    failed.push(m.message_id.clone());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(delivery_id = %task.delivery_id, error = %e, "delivery bookkeeping failed; retrying");
                    failed.push(m.message_id.clone());
                }
            }
        }
        failed
    }
}
