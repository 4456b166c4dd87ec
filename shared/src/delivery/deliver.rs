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

use super::endpoints::{Endpoint, Endpoints};
use super::record::{AttemptRecord, Deliveries, DeliveryRecord, DeliveryStatus};
use super::request::{DeliveryTask, headers};
use super::retry::{RetryPolicy, Verdict, judge};
use super::ssrf::{NetworkPolicy, UrlError, check_url};
use crate::ports::codec::{
    DecodeError, by_key, decode, encode, extend_claim_check, inline, queued_blob_expiry,
};
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
        self.deliver_received(task, None, attempt, now).await
    }

    /// Delivers one task on its `attempt`-th try; `received` is the queue message it came in,
    /// which a dead-lettered task is parked as, unchanged (its body inline or a claim-check).
    async fn deliver_received(
        &self,
        task: &DeliveryTask,
        received: Option<&ReceivedMessage>,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Result<DeliverOutcome, BackendError> {
        let records = self.deliveries();
        let (mut record, record_version) = match records.get(&task.delivery_id, now).await? {
            Some((r, _)) if r.status == DeliveryStatus::Delivered => {
                tracing::info!(delivery_id = %task.delivery_id, attempt, "an earlier attempt was delivered; acknowledging");
                return Ok(DeliverOutcome::AlreadyDelivered);
            }
            // This very message was parked before, but its parking was not acknowledged (the
            // dead-letter send or the delete failed): park it again, post nothing.
            Some((r, _))
                if r.parked_by.is_some()
                    && r.parked_by.as_deref() == received.map(|m| m.message_id.as_str()) =>
            {
                if r.status == DeliveryStatus::EndpointDisabled {
                    // The disabling write may be what failed the first time.
                    if let Some((mut endpoint, version)) =
                        self.endpoints.get(&task.endpoint_id, now).await?
                    {
                        self.disable_gone(&mut endpoint, version, now).await?;
                    }
                }
                self.park(task, received, now).await?;
                return Ok(match r.status {
                    DeliveryStatus::EndpointDisabled => DeliverOutcome::EndpointDisabled,
                    _ => DeliverOutcome::DeadLettered,
                });
            }
            Some((r, v)) => (r, Some(v)),
            // The task's JSON is the message that brought it, when it is inline: kept as it
            // came, not written again.
            None => match received.and_then(|m| inline(&m.body)) {
                Some(json) => (records.new_record_as(task, json, now).await?, None),
                None => (records.new_record(task, now).await?, None),
            },
        };
        // Eventually consistent: an endpoint changed a moment ago may be seen as it was.
        let endpoint = match self
            .endpoints
            .get_eventually(&task.endpoint_id, now)
            .await?
        {
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
        tracing::info!(delivery_id = %task.delivery_id, endpoint_id = %task.endpoint_id, attempt, status = made.status, latency_ms, outcome = state.as_str(), "attempt");
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
        let parks = matches!(
            outcome,
            DeliverOutcome::DeadLettered | DeliverOutcome::EndpointDisabled
        );
        if parks {
            record.parked_by = received.map(|m| m.message_id.clone());
        }
        self.save(record, record_version, Some(made), now).await?;
        if outcome == DeliverOutcome::EndpointDisabled {
            self.disable_gone(&mut endpoint, version, now).await?;
        }
        if parks {
            self.park(task, received, now).await?;
        }
        Ok(outcome)
    }

    /// Disables `endpoint` (read at `version`) because it answered 410 Gone, unless it is
    /// disabled already; repeating it changes nothing.
    async fn disable_gone(
        &self,
        endpoint: &mut Endpoint,
        version: u64,
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        // The version may come from a read that missed a recent change (or the endpoint may
        // change meanwhile): read it again, consistently, and decide again.
        let mut version = version;
        for _ in 0..3 {
            if !endpoint.enabled {
                return Ok(());
            }
            endpoint.enabled = false;
            endpoint.disabled_reason = Some("the endpoint answered 410 Gone".to_owned());
            endpoint.updated_at = now;
            if self.endpoints.put(endpoint, Some(version), now).await? {
                return Ok(());
            }
            match self.endpoints.get(&endpoint.id, now).await? {
                Some((current, v)) => (*endpoint, version) = (current, v),
                None => return Ok(()), // deleted meanwhile
            }
        }
        Err(BackendError::Unavailable(
            "the endpoint kept changing while it was being disabled".into(),
        ))
    }

    /// Puts the task on the dead-letter queue: the message that came in, unchanged (a redrive
    /// sends it back as it was); a task handed in directly is encoded as fan-out encodes it,
    /// claim-checked when it is too large.
    async fn park(
        &self,
        task: &DeliveryTask,
        received: Option<&ReceivedMessage>,
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let body = match received {
            Some(m) => {
                // Parked as a new message, it may wait the dead-letter queue's full retention
                // and a redrive: what its claim-check points at must last as long.
                extend_claim_check(
                    &m.body,
                    self.blobs.as_ref(),
                    now,
                    queued_blob_expiry(now, Duration::ZERO),
                )
                .await
                .map_err(|e| match e {
                    DecodeError::Backend(e) => e,
                    other => BackendError::Corrupt(other.to_string()),
                })?;
                m.body.clone()
            }
            None => {
                encode(
                    task,
                    &format!("dlv#{}", task.delivery_id),
                    self.blobs.as_ref(),
                    queued_blob_expiry(now, Duration::ZERO),
                )
                .await?
            }
        };
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
        Ok(())
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
            let parked_by = record.parked_by.take();
            record = fresh;
            record.parked_by = parked_by.or(record.parked_by);
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
    /// (their visibility already set to the backoff delay). The deliveries of one conversation
    /// to one endpoint (and copies of one delivery) go out in the batch's order, the others at
    /// the same time ([`by_key`]): a batch takes about its slowest endpoint's answer, not the
    /// sum of them.
    pub async fn process_batch(
        &self,
        messages: &[ReceivedMessage],
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let decoded = futures::future::join_all(messages.iter().map(|m| async move {
            (
                m,
                decode::<DeliveryTask>(&m.body, self.blobs.as_ref(), now).await,
            )
        }))
        .await;
        let done = by_key(
            decoded,
            |(_, task)| {
                // Without a conversation, by the delivery itself: two copies of one delivery in
                // a batch run in turn, and the second finds the first's record.
                let task = task.as_ref().ok()?;
                let within = task.conversation_id.as_ref().unwrap_or(&task.delivery_id);
                Some((task.endpoint_id.clone(), within.clone()))
            },
            |(m, task)| async move { (m, self.process_message(m, task, now).await) },
        )
        .await;
        done.into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(m, _)| m.message_id.clone())
            .collect()
    }

    /// One received message of a batch; `false` when it is to be reported failed.
    async fn process_message(
        &self,
        m: &ReceivedMessage,
        task: Result<DeliveryTask, DecodeError>,
        now: DateTime<Utc>,
    ) -> bool {
        let task = match task {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(message_id = %m.message_id, error = %e, "unreadable delivery task");
                return false;
            }
        };
        match self
            .deliver_received(&task, Some(m), m.receive_count.max(1), now)
            .await
        {
            Ok(DeliverOutcome::RetryAfter(delay)) => {
                if let Err(e) = self.queue.change_visibility(&m.receipt, delay).await {
                    tracing::warn!(delivery_id = %task.delivery_id, error = %e, "could not set the retry delay; the queue default applies");
                }
                false
            }
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(delivery_id = %task.delivery_id, error = %e, "delivery bookkeeping failed; retrying");
                false
            }
        }
    }
}

/// Deliver recognises its own replay: every call it makes (record and endpoint reads, record
/// writes, claim-check reads, the dead-letter send) failed in turn, cleanly or after applying,
/// and the queue message redelivered as SQS would. Whatever failed, the task ends delivered (or
/// parked) exactly as without faults: one idempotency key and one body on every POST, a second
/// POST only when a record write failed cleanly after the first (a crash there does the same),
/// and a parked task parked as the message that came in.
#[cfg(test)]
mod replay_tests {
    use std::sync::Mutex;

    use super::*;
    use crate::delivery::endpoints::Endpoint;
    use crate::delivery::request::BodyForm;
    use crate::model::Envelope;
    use crate::ports::codec::encode;
    use crate::ports::faults::{Fault, Faults, FaultyBlobs, FaultyDocs, FaultyQueue};
    use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
    use crate::providers::normalize;
    use crate::providers::test_support::fixture;
    use crate::signature::EndpointSecret;

    /// An endpoint that answers every POST with one status and remembers (key, body).
    #[derive(Debug)]
    struct Endpoint200Or400 {
        status: u16,
        posts: Mutex<Vec<(String, Vec<u8>)>>,
    }

    #[async_trait]
    impl HttpSender for Endpoint200Or400 {
        async fn post(&self, request: HttpRequest<'_>) -> Result<HttpResponse, HttpError> {
            let key = request
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-idempotency-key"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            self.posts
                .lock()
                .unwrap()
                .push((key, request.body.to_vec()));
            // An answer takes a moment, as over the network: tasks of a batch that run at the
            // same time overlap here.
            tokio::task::yield_now().await;
            Ok(HttpResponse {
                status: self.status,
                retry_after: None,
            })
        }
    }

    /// Stores the endpoint `ep` every test here delivers to.
    async fn store_endpoint(docs: &Arc<MemoryDocumentStore>, now: DateTime<Utc>) {
        let secret = EndpointSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let endpoint = Endpoint::new("ep", "https://hooks.example.com/in", &secret, now);
        Endpoints { docs: docs.clone() }
            .put(&endpoint, None, now)
            .await
            .unwrap();
    }

    struct Run {
        posts: Vec<(String, Vec<u8>)>,
        parked: Vec<String>,
        status: DeliveryStatus,
        task: DeliveryTask,
        sent: String,
        /// Calls deliver made to its ports.
        calls: u64,
    }

    /// One task through deliver with `fault` at one call; `lose_first_delete`: the poller's
    /// delete after the first successful processing is lost, so the message comes again.
    async fn run(
        status: u16,
        fault: Option<(u64, Fault)>,
        lose_first_delete: bool,
        form: BodyForm,
    ) -> Run {
        let now = Utc::now();
        let docs = Arc::new(MemoryDocumentStore::new());
        let blobs = Arc::new(MemoryBlobStore::new());
        let queue = Arc::new(MemoryQueue::new("delivery"));
        let dlq = Arc::new(MemoryQueue::new("delivery-dlq"));
        store_endpoint(&docs, now).await;
        let event = normalize(
            &crate::ids::SourceId::parse("src").unwrap(),
            crate::model::Provider::Meta,
            &fixture("meta-text.json"),
            now,
        )
        .unwrap()
        .remove(0);
        let task = DeliveryTask::new(&Envelope::single(event), "ep", form).unwrap();
        let sent = encode(
            &task,
            "dlv#t",
            blobs.as_ref(),
            now + chrono::Duration::days(1),
        )
        .await
        .unwrap();
        queue
            .send_batch(&[OutgoingMessage {
                id: "0".into(),
                body: sent.clone(),
                delay: None,
            }])
            .await
            .unwrap();
        let faults = Faults::none();
        let faulty_docs: Arc<dyn DocumentStore> = Arc::new(FaultyDocs {
            inner: docs.clone(),
            layer: faults.clone(),
        });
        let endpoint_answer = Arc::new(Endpoint200Or400 {
            status,
            posts: Mutex::new(Vec::new()),
        });
        let deliver = Deliver {
            endpoints: Endpoints {
                docs: faulty_docs.clone(),
            },
            docs: faulty_docs,
            http: endpoint_answer.clone(),
            queue: Arc::new(FaultyQueue {
                inner: queue.clone(),
                layer: faults.clone(),
            }),
            dead_letter: Arc::new(FaultyQueue {
                inner: dlq.clone(),
                layer: faults.clone(),
            }),
            blobs: Arc::new(FaultyBlobs {
                inner: blobs.clone(),
                layer: faults.clone(),
            }),
            config: DeliverConfig::default(),
        };
        if let Some((k, kind)) = fault {
            faults.fail_in(k, kind);
        }
        let mut delete_lost = !lose_first_delete;
        for _ in 0..6 {
            let got = queue
                .receive(10, Duration::ZERO, Duration::from_secs(30))
                .await
                .unwrap();
            if got.is_empty() {
                break;
            }
            let failed = deliver.process_batch(&got, now).await;
            for m in &got {
                if failed.contains(&m.message_id) || !delete_lost {
                    delete_lost = true;
                    // Back at once (the test skips the visibility wait).
                    queue
                        .change_visibility(&m.receipt, Duration::ZERO)
                        .await
                        .unwrap();
                } else {
                    queue.delete(&m.receipt).await.unwrap();
                }
            }
        }
        assert!(queue.is_empty(), "the message was acknowledged in the end");
        let calls = faults.calls();
        let (record, _) = Deliver {
            docs: docs.clone(),
            blobs: blobs.clone(),
            ..deliver
        }
        .deliveries()
        .get(&task.delivery_id, now)
        .await
        .unwrap()
        .unwrap();
        let parked = dlq
            .receive(10, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.body)
            .collect();
        let posts = endpoint_answer.posts.lock().unwrap().clone();
        Run {
            posts,
            parked,
            status: record.status,
            task,
            sent,
            calls,
        }
    }

    /// Two copies of one delivery in a batch (fanned out twice) run one after the other: the
    /// second finds the first delivered and does not POST again.
    #[tokio::test]
    async fn copies_of_one_delivery_in_a_batch_post_once() {
        let now = Utc::now();
        let docs = Arc::new(MemoryDocumentStore::new());
        let queue = Arc::new(MemoryQueue::new("delivery"));
        store_endpoint(&docs, now).await;
        let mut events = normalize(
            &crate::ids::SourceId::parse("src").unwrap(),
            crate::model::Provider::Meta,
            &fixture("meta-text.json"),
            now,
        )
        .unwrap();
        let task =
            DeliveryTask::new(&Envelope::single(events.remove(0)), "ep", BodyForm::Json).unwrap();
        assert_eq!(task.conversation_id, None);
        let body = serde_json::to_string(&task).unwrap();
        let copies: Vec<OutgoingMessage> = (0..2)
            .map(|i| OutgoingMessage {
                id: i.to_string(),
                body: body.clone(),
                delay: None,
            })
            .collect();
        queue.send_batch(&copies).await.unwrap();
        let answer = Arc::new(Endpoint200Or400 {
            status: 200,
            posts: Mutex::new(Vec::new()),
        });
        let deliver = Deliver {
            endpoints: Endpoints { docs: docs.clone() },
            docs,
            http: answer.clone(),
            queue: queue.clone(),
            dead_letter: Arc::new(MemoryQueue::new("delivery-dlq")),
            blobs: Arc::new(MemoryBlobStore::new()),
            config: DeliverConfig::default(),
        };
        let got = queue
            .receive(10, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got.len(), 2);
        assert!(deliver.process_batch(&got, now).await.is_empty());
        assert_eq!(answer.posts.lock().unwrap().len(), 1);
    }

    fn check(r: &Run, fault: Option<(u64, Fault)>, expected: DeliveryStatus) {
        let what = format!("{fault:?}");
        assert_eq!(r.status, expected, "{what}");
        assert!(!r.posts.is_empty(), "{what}");
        for (key, body) in &r.posts {
            assert_eq!(key, &r.task.delivery_id, "{what}");
            assert_eq!(body, r.task.body.as_bytes(), "{what}");
        }
        let most = match fault {
            Some((_, Fault::Clean)) => 2,
            _ => 1,
        };
        assert!(r.posts.len() <= most, "{what}: {} POSTs", r.posts.len());
        if expected == DeliveryStatus::DeadLettered {
            assert!(!r.parked.is_empty(), "{what}: parked");
            assert!(
                r.parked.iter().all(|b| *b == r.sent),
                "{what}: parked as sent"
            );
        } else {
            assert!(r.parked.is_empty(), "{what}: nothing parked");
        }
    }

    #[tokio::test]
    async fn a_delivery_survives_any_failed_call_without_a_second_key_or_body() {
        for form in [BodyForm::Text, BodyForm::Json] {
            for (status, expected) in [
                (200, DeliveryStatus::Delivered),
                (400, DeliveryStatus::DeadLettered),
            ] {
                let plain = run(status, None, false, form).await;
                check(&plain, None, expected);
                assert_eq!(plain.posts.len(), 1);
                for k in 1..=plain.calls {
                    for kind in [Fault::Clean, Fault::Ambiguous] {
                        let r = run(status, Some((k, kind)), false, form).await;
                        check(&r, Some((k, kind)), expected);
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn a_message_whose_acknowledgement_was_lost_is_not_posted_or_parked_twice() {
        for form in [BodyForm::Text, BodyForm::Json] {
            let r = run(200, None, true, form).await;
            check(&r, None, DeliveryStatus::Delivered);
            assert_eq!(r.posts.len(), 1);
            let r = run(400, None, true, form).await;
            check(&r, None, DeliveryStatus::DeadLettered);
            assert_eq!(r.posts.len(), 1, "the repeat parks again without posting");
            assert!(r.parked.len() <= 2);
        }
    }
}
