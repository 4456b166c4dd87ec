//! The deliver stage: one delivery task, one signed POST, one verdict, one attempt record.
//!
//! Retries ride on the delivery queue: a transient failure hides the message for the backoff
//! delay (SQS visibility) and reports it failed; after the last attempt, or on a final failure,
//! the task goes to the dead-letter queue, from which redrive sends it again. 410 disables the
//! endpoint. Every attempt is recorded (status, latency, error, attempt number) with a TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::endpoints::Endpoints;
use super::request::{DeliveryTask, headers};
use super::retry::{RetryPolicy, Verdict, judge};
use super::ssrf::{NetworkPolicy, UrlError, check_url};
use crate::pipeline::codec::decode;
use crate::ports::{
    BackendError, BlobStore, DocumentStore, DocumentWrite, IndexEntry, OutgoingMessage, Queue,
    ReceivedMessage,
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

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The answer's status, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long it took.
    pub latency_ms: u64,
    /// Why it failed, if it did (no body content, no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `delivered`, `retrying`, `failed`, `dead_lettered`, `endpoint_disabled`.
    pub outcome: String,
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
        if self.delivered_before(task, attempt, now).await? {
            tracing::info!(delivery_id = %task.delivery_id, attempt, "an earlier attempt was delivered; acknowledging");
            return Ok(DeliverOutcome::AlreadyDelivered);
        }
        let Some((mut endpoint, version)) = self.endpoints.get(&task.endpoint_id, now).await?
        else {
            tracing::info!(delivery_id = %task.delivery_id, endpoint_id = %task.endpoint_id, "endpoint deleted; dropping delivery");
            return Ok(DeliverOutcome::Skipped);
        };
        if !endpoint.enabled {
            return Ok(DeliverOutcome::Skipped);
        }
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
        let record = AttemptRecord {
            delivery_id: task.delivery_id.clone(),
            endpoint_id: task.endpoint_id.clone(),
            attempt,
            at: now,
            status,
            latency_ms,
            error: error.or_else(|| {
                status
                    .filter(|s| !(200..300).contains(s))
                    .map(|s| format!("HTTP {s}"))
            }),
            outcome: match &outcome {
                DeliverOutcome::Delivered => "delivered",
                DeliverOutcome::RetryAfter(_) => "retrying",
                DeliverOutcome::DeadLettered => "dead_lettered",
                DeliverOutcome::EndpointDisabled => "endpoint_disabled",
                DeliverOutcome::Skipped => "skipped",
                DeliverOutcome::AlreadyDelivered => "already_delivered",
            }
            .to_owned(),
        };
        tracing::info!(delivery_id = %task.delivery_id, endpoint_id = %task.endpoint_id, attempt, status = ?status, latency_ms, outcome = %record.outcome, "attempt");
        self.record(&record, now).await?;
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
        }
        Ok(outcome)
    }

    /// Whether the latest recorded attempt up to `attempt` was delivered: then a crash landed
    /// between a 2xx and the queue acknowledgement, or a stage upstream handed the same delivery
    /// on twice, and the POST must not be made again. One read on a first attempt; a retry reads
    /// back to the newest record.
    async fn delivered_before(
        &self,
        task: &DeliveryTask,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        for earlier in (1..=attempt).rev() {
            let key = format!("attempt#{}#{earlier:03}", task.delivery_id);
            if let Some(doc) = self.docs.get(&key, now).await? {
                return Ok(doc.body.get("outcome").and_then(serde_json::Value::as_str)
                    == Some("delivered"));
            }
        }
        Ok(false)
    }

    async fn record(&self, record: &AttemptRecord, now: DateTime<Utc>) -> Result<(), BackendError> {
        let key = format!("attempt#{}#{:03}", record.delivery_id, record.attempt);
        let entry = IndexEntry {
            partition: format!("attempts#{}", record.endpoint_id),
            sort: format!(
                "{}#{}#{:03}",
                record.at.to_rfc3339_opts(SecondsFormat::Millis, true),
                record.delivery_id,
                record.attempt
            ),
        };
        let body =
            serde_json::to_value(record).map_err(|e| BackendError::Rejected(e.to_string()))?;
        let expires = now
            + chrono::Duration::from_std(self.config.attempt_ttl)
                .unwrap_or(chrono::Duration::days(30));
        // A redelivered SQS message may repeat an attempt number: the later record wins.
        let existing = self.docs.get(&key, now).await?.map(|d| d.version);
        self.docs
            .put(
                &key,
                &body,
                DocumentWrite::new(existing, now)
                    .expiring(expires)
                    .indexed(&entry),
            )
            .await?;
        Ok(())
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
