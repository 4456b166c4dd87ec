//! Fan-out: each event (or batch of inbound messages) to every enabled endpoint whose filter
//! wants it, as one delivery task per (endpoint, payload) on the delivery queue. The envelope —
//! and so the body bytes and the delivery id — is built here once; retries resend it unchanged.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{self, Metric};
use chrono::{DateTime, Utc};

use super::endpoints::{Endpoint, Endpoints};
use super::request::{BodyForm, DeliveryTask};
use crate::ids::EventId;
use crate::model::{Envelope, InboundEvent};
use crate::ports::codec::{Record, decode, encode, pack, send_all};
use crate::ports::{BackendError, BlobStore, Queue};

/// Fan-out with its ports.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Endpoints and their filters.
    pub endpoints: Endpoints,
    /// The delivery queue.
    pub queue: Arc<dyn Queue>,
    /// Claim-checks for large deliveries.
    pub blobs: Arc<dyn BlobStore>,
    /// How long claim-checked deliveries are kept.
    pub blob_ttl: Duration,
    /// How tasks carry their bodies on the delivery queue.
    pub body_form: BodyForm,
}

impl Fanout {
    /// Queues single events; returns how many deliveries were queued.
    pub async fn events(
        &self,
        events: &[InboundEvent],
        now: DateTime<Utc>,
    ) -> Result<usize, BackendError> {
        let endpoints = self.endpoints.list(10_000, now).await?;
        let mut tasks = Vec::new();
        for event in events {
            tasks.extend(event_tasks(event, false, &endpoints, self.body_form)?);
        }
        self.send(&tasks, now).await
    }

    /// Queues a batch of inbound messages of one conversation: one batch delivery to endpoints
    /// with batching on, one delivery per message to the others. `batch_id` names the batch
    /// envelope (fixed by the caller so a repeated flush yields the same delivery ids).
    pub async fn batch(
        &self,
        batch_id: EventId,
        events: Vec<InboundEvent>,
        now: DateTime<Utc>,
    ) -> Result<usize, BackendError> {
        let Some(first) = events.first() else {
            return Ok(0);
        };
        let event_type = first.event_type;
        let endpoints: Vec<Endpoint> = self
            .endpoints
            .list(10_000, now)
            .await?
            .into_iter()
            .filter(|e| e.wants(event_type))
            .collect();
        // Endpoints that do not wait for media had those messages at once from track (see
        // `process_batch` on a record marked `media_early`): their batches leave them out.
        let waited: Vec<bool> = events.iter().map(went_through_media).collect();
        let singles: Vec<Envelope> = events.iter().cloned().map(Envelope::single).collect();
        let unwaited: Vec<InboundEvent> = events
            .iter()
            .zip(&waited)
            .filter(|(_, w)| !**w)
            .map(|(e, _)| e.clone())
            .collect();
        let partial = (unwaited.len() != events.len() && !unwaited.is_empty())
            .then(|| Envelope::batch(batch_id, event_type, now, unwaited));
        let batch = Envelope::batch(batch_id, event_type, now, events);
        let mut tasks = Vec::new();
        for endpoint in &endpoints {
            let skip_waited = !endpoint.media_wait;
            if endpoint.batching {
                if !skip_waited || !waited.iter().any(|w| *w) {
                    tasks.push(task(&batch, endpoint, self.body_form)?);
                } else if let Some(partial) = &partial {
                    tasks.push(task(partial, endpoint, self.body_form)?);
                }
            } else {
                for (single, w) in singles.iter().zip(&waited) {
                    if !(skip_waited && *w) {
                        tasks.push(task(single, endpoint, self.body_form)?);
                    }
                }
            }
        }
        self.send(&tasks, now).await
    }

    /// Fans out a batch of outbound-queue records (one event each); returns the message ids that
    /// failed, for SQS partial batch failure. The batch reads the endpoints once and queues its
    /// deliveries together, in the records' order (track queues a conversation's lifecycle
    /// events before the message that caused them); if that send fails, each record is sent
    /// again on its own, so one that cannot be queued fails alone. Fanning out a record twice
    /// queues the same delivery ids again, which receivers deduplicate by `X-Idempotency-Key`.
    pub async fn process_batch(&self, records: &[Record<'_>], now: DateTime<Utc>) -> Vec<String> {
        let mut failed = Vec::new();
        let mut items = Vec::with_capacity(records.len());
        for record in records {
            match decode::<OutboundItem>(record.body, self.blobs.as_ref(), now).await {
                Ok(item) => items.push((record.message_id, item)),
                Err(e) => {
                    tracing::warn!(message_id = record.message_id, error = %e, "unreadable outbound record; it will be retried");
                    failed.push(record.message_id.to_owned());
                }
            }
        }
        if items.is_empty() {
            return failed;
        }
        let endpoints = match self.endpoints.list(10_000, now).await {
            Ok(endpoints) => endpoints,
            Err(e) => {
                let ids: Vec<&str> = items.iter().map(|(id, _)| *id).collect();
                tracing::warn!(message_ids = ?ids, error = %e, "fan-out failed reading the endpoints; the records will be retried");
                failed.extend(ids.into_iter().map(str::to_owned));
                return failed;
            }
        };
        let mut per_record: Vec<(&str, Vec<DeliveryTask>)> = Vec::with_capacity(items.len());
        for (id, item) in &items {
            match event_tasks(&item.event, item.media_early, &endpoints, self.body_form) {
                Ok(tasks) => per_record.push((id, tasks)),
                Err(e) => {
                    tracing::warn!(message_id = id, error = %e, "fan-out failed; the record will be retried");
                    failed.push((*id).to_owned());
                }
            }
        }
        let all: Vec<DeliveryTask> = per_record
            .iter()
            .flat_map(|(_, tasks)| tasks.iter().cloned())
            .collect();
        let ids: Vec<&str> = per_record.iter().map(|(id, _)| *id).collect();
        match self.send(&all, now).await {
            Ok(n) => {
                tracing::info!(message_ids = ?ids, deliveries = n, "fanned out");
                return failed;
            }
            Err(e) => {
                tracing::warn!(message_ids = ?ids, error = %e, "fanning out the batch together failed; sending each record on its own");
            }
        }
        for (id, tasks) in &per_record {
            match self.send(tasks, now).await {
                Ok(n) => tracing::info!(message_id = id, deliveries = n, "fanned out"),
                Err(e) => {
                    tracing::warn!(message_id = id, error = %e, "fan-out failed; the record will be retried");
                    failed.push((*id).to_owned());
                }
            }
        }
        failed
    }

    async fn send(
        &self,
        tasks: &[DeliveryTask],
        now: DateTime<Utc>,
    ) -> Result<usize, BackendError> {
        let expires = crate::ports::codec::queued_blob_expiry(now, self.blob_ttl);
        let mut bodies = Vec::with_capacity(tasks.len());
        for t in tasks {
            bodies.push(
                encode(
                    t,
                    &format!("dlv#{}", t.delivery_id),
                    self.blobs.as_ref(),
                    expires,
                )
                .await?,
            );
        }
        if bodies.is_empty() {
            return Ok(0);
        }
        let queued = send_all(self.queue.as_ref(), pack(bodies)).await?;
        metrics::count(Metric::DeliveriesQueued, queued);
        Ok(queued)
    }
}

/// An outbound-queue record: an event, or a message's early copy for endpoints that do not
/// wait for media (`pipeline::track::MediaEarly`).
#[derive(serde::Deserialize)]
struct OutboundItem {
    #[serde(default)]
    media_early: bool,
    #[serde(flatten)]
    event: InboundEvent,
}

/// Whether the media stage handed this message on (its file has a status): endpoints that do
/// not wait for media had it already.
fn went_through_media(event: &InboundEvent) -> bool {
    let crate::model::EventBody::Message(body) = &event.data.body else {
        return false;
    };
    body.message
        .content
        .as_ref()
        .and_then(|c| c.media_ref())
        .is_some_and(|m| m.stored.is_some())
}

/// The deliveries of one event: to every endpoint that wants its type, or for a message's early
/// copy (`media_early`), to those of them that do not wait for media.
fn event_tasks(
    event: &InboundEvent,
    media_early: bool,
    endpoints: &[Endpoint],
    form: BodyForm,
) -> Result<Vec<DeliveryTask>, BackendError> {
    let envelope = Envelope::single(event.clone());
    endpoints
        .iter()
        .filter(|e| e.wants(event.event_type) && !(media_early && e.media_wait))
        .map(|endpoint| task(&envelope, endpoint, form))
        .collect()
}

fn task(
    envelope: &Envelope,
    endpoint: &Endpoint,
    form: BodyForm,
) -> Result<DeliveryTask, BackendError> {
    DeliveryTask::new(envelope, &endpoint.id, form)
        .map_err(|e| BackendError::Rejected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::request::TaskBody;
    use crate::ids::SourceId;
    use crate::model::{EnvelopeData, EventType, Provider};
    use crate::ports::codec::receive_all;
    use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
    use crate::providers::normalize;
    use crate::providers::test_support::fixture;
    use crate::signature::EndpointSecret;

    fn endpoint(id: &str, filters: &[&str], batching: bool) -> Endpoint {
        let secret = EndpointSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let mut e = Endpoint::new(id, "https://hooks.example.com", &secret, Utc::now());
        e.event_types = filters.iter().map(|s| (*s).to_owned()).collect();
        e.batching = batching;
        e
    }

    async fn fanout(endpoints: &[Endpoint]) -> (Fanout, Arc<MemoryQueue>) {
        let store = Endpoints {
            docs: Arc::new(MemoryDocumentStore::new()),
        };
        for e in endpoints {
            store.put(e, None, Utc::now()).await.unwrap();
        }
        let queue = Arc::new(MemoryQueue::new("delivery"));
        let f = Fanout {
            endpoints: store,
            queue: queue.clone(),
            blobs: Arc::new(MemoryBlobStore::new()),
            blob_ttl: Duration::from_secs(3600),
            body_form: BodyForm::Json,
        };
        (f, queue)
    }

    fn events(name: &str) -> Vec<InboundEvent> {
        normalize(
            &SourceId::parse("src").unwrap(),
            Provider::Meta,
            &fixture(name),
            Utc::now(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn each_event_goes_to_every_endpoint_that_wants_it_once() {
        let mut off = endpoint("ep_off", &[], true);
        off.enabled = false;
        let (f, queue) = fanout(&[
            endpoint("ep_all", &[], true),
            endpoint(
                "ep_status",
                &["whatsapp.message.read", "whatsapp.message.delivered"],
                true,
            ),
            off,
        ])
        .await;
        let evs = events("meta-multi-entry-batch.json"); // 3 received, 1 delivered, 1 read
        assert_eq!(f.events(&evs, Utc::now()).await.unwrap(), 5 + 2);
        let tasks: Vec<DeliveryTask> = receive_all(
            queue.as_ref(),
            f.blobs.as_ref(),
            Duration::from_secs(60),
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            tasks.iter().filter(|t| t.endpoint_id == "ep_all").count(),
            5
        );
        assert_eq!(
            tasks
                .iter()
                .filter(|t| t.endpoint_id == "ep_status")
                .count(),
            2
        );
        let ids: std::collections::HashSet<_> =
            tasks.iter().map(|t| t.delivery_id.clone()).collect();
        assert_eq!(ids.len(), 7);
    }

    #[tokio::test]
    async fn batches_go_whole_to_batching_endpoints_and_split_to_the_others() {
        let (f, queue) = fanout(&[
            endpoint("ep_batch", &["whatsapp.message.*"], true),
            endpoint("ep_single", &[], false),
        ])
        .await;
        let received: Vec<InboundEvent> = events("meta-multi-entry-batch.json")
            .into_iter()
            .filter(|e| e.event_type == EventType::MessageReceived)
            .take(2)
            .collect();
        let ids: Vec<EventId> = received.iter().map(|e| e.id).collect();
        assert_eq!(
            f.batch(EventId::new(), received, Utc::now()).await.unwrap(),
            3
        );
        let tasks: Vec<DeliveryTask> = receive_all(
            queue.as_ref(),
            f.blobs.as_ref(),
            Duration::from_secs(60),
            Utc::now(),
        )
        .await
        .unwrap();
        let batch = tasks.iter().find(|t| t.endpoint_id == "ep_batch").unwrap();
        assert!(batch.batch);
        assert_eq!(batch.event_ids, ids);
        let envelope: Envelope = serde_json::from_str(batch.body.as_str()).unwrap();
        assert!(matches!(envelope.data, EnvelopeData::Batch(ref items) if items.len() == 2));
        let singles: Vec<_> = tasks
            .iter()
            .filter(|t| t.endpoint_id == "ep_single")
            .collect();
        assert_eq!(singles.len(), 2);
        assert!(singles.iter().all(|t| !t.batch));
    }

    #[tokio::test]
    async fn outbound_records_are_fanned_out_and_unreadable_ones_reported() {
        let (f, queue) = fanout(&[endpoint("ep_all", &[], true)]).await;
        let body = serde_json::to_string(&events("meta-template-status-update.json")[0]).unwrap();
        let records = [
            Record {
                message_id: "m1",
                body: &body,
            },
            Record {
                message_id: "m2",
                body: "garbage",
            },
        ];
        assert_eq!(
            f.process_batch(&records, Utc::now()).await,
            vec!["m2".to_owned()]
        );
        assert_eq!(queue.len(), 1);
    }

    /// Fails every send that carries `marker`, like a queue refusing one event every time:
    /// cleanly, or (`applied`) after sending it, as a send whose answer was lost.
    #[derive(Debug)]
    struct Refusing {
        inner: Arc<MemoryQueue>,
        marker: String,
        applied: bool,
    }

    #[async_trait::async_trait]
    impl Queue for Refusing {
        async fn send_batch(
            &self,
            messages: &[crate::ports::OutgoingMessage],
        ) -> Result<Vec<crate::ports::FailedEntry>, BackendError> {
            if messages.iter().any(|m| m.body.contains(&self.marker)) {
                if self.applied {
                    self.inner.send_batch(messages).await?;
                }
                return Err(BackendError::Unavailable("refused".into()));
            }
            self.inner.send_batch(messages).await
        }
        async fn receive(
            &self,
            max: usize,
            wait: Duration,
            visibility: Duration,
        ) -> Result<Vec<crate::ports::ReceivedMessage>, BackendError> {
            self.inner.receive(max, wait, visibility).await
        }
        async fn delete(&self, receipt: &str) -> Result<(), BackendError> {
            self.inner.delete(receipt).await
        }
        async fn change_visibility(
            &self,
            receipt: &str,
            visibility: Duration,
        ) -> Result<(), BackendError> {
            self.inner.change_visibility(receipt, visibility).await
        }
    }

    /// A batch queues its deliveries in the records' order, early copies included; when that
    /// send fails, each record is sent on its own and only the one that cannot be fails.
    #[tokio::test]
    async fn a_batch_queues_in_record_order_and_a_refused_record_fails_alone() {
        let mut eager = endpoint("ep_eager", &[], false);
        eager.media_wait = false;
        let (mut f, queue) = fanout(&[eager]).await;
        let status = events("meta-template-status-update.json").remove(0);
        let text = events("meta-text.json").remove(0);
        let mut image = events("meta-image.json").remove(0);
        crate::model::attach_media(&mut image, &crate::model::StoredMedia::pending("med_x"));
        let bodies = [
            serde_json::to_string(&status).unwrap(),
            serde_json::to_string(&crate::pipeline::track::MediaEarly {
                media_early: true,
                event: Box::new(image.clone()),
            })
            .unwrap(),
            serde_json::to_string(&text).unwrap(),
        ];
        let records: Vec<Record<'_>> = ["m1", "m2", "m3"]
            .iter()
            .zip(&bodies)
            .map(|(id, body)| Record {
                message_id: id,
                body,
            })
            .collect();
        let received = |queue: Arc<MemoryQueue>, blobs: Arc<dyn BlobStore>| async move {
            let tasks: Vec<DeliveryTask> = receive_all(
                queue.as_ref(),
                blobs.as_ref(),
                Duration::from_secs(60),
                Utc::now(),
            )
            .await
            .unwrap();
            tasks
                .into_iter()
                .flat_map(|t| t.event_ids)
                .collect::<Vec<_>>()
        };
        assert!(f.process_batch(&records, Utc::now()).await.is_empty());
        assert_eq!(
            received(queue.clone(), f.blobs.clone()).await,
            vec![status.id, image.id, text.id]
        );

        f.queue = Arc::new(Refusing {
            inner: queue.clone(),
            marker: image.id.to_string(),
            applied: false,
        });
        assert_eq!(
            f.process_batch(&records, Utc::now()).await,
            vec!["m2".to_owned()]
        );
        assert_eq!(
            received(queue.clone(), f.blobs.clone()).await,
            vec![status.id, text.id]
        );

        // The failed sends went through: the batch's deliveries are queued, then each record's
        // again (the same tasks, whose ids receivers and deliver's records deduplicate), and
        // the record whose send reported a failure comes back.
        f.queue = Arc::new(Refusing {
            inner: queue.clone(),
            marker: image.id.to_string(),
            applied: true,
        });
        assert_eq!(
            f.process_batch(&records, Utc::now()).await,
            vec!["m2".to_owned()]
        );
        assert_eq!(
            received(queue, f.blobs.clone()).await,
            vec![status.id, image.id, text.id, status.id, image.id, text.id]
        );
    }

    /// A message that went through the media stage reaches endpoints that wait for media in
    /// the batch; the others had its early copy (`process_batch`, from an outbound record marked
    /// `media_early`) and get the batch without it.
    #[tokio::test]
    async fn messages_with_media_reach_each_endpoint_once_early_or_waited() {
        let mut eager_batch = endpoint("ep_eager_batch", &[], true);
        eager_batch.media_wait = false;
        let mut eager_single = endpoint("ep_eager_single", &[], false);
        eager_single.media_wait = false;
        let (f, queue) = fanout(&[endpoint("ep_wait", &[], true), eager_batch, eager_single]).await;
        let text = events("meta-text.json").remove(0);
        let mut image = events("meta-image.json").remove(0);
        let pending = crate::model::StoredMedia::pending("med_x");
        let mut early = image.clone();
        crate::model::attach_media(&mut early, &pending);
        crate::model::attach_media(
            &mut image,
            &crate::model::StoredMedia {
                status: crate::model::MediaStatus::Stored,
                url: Some("https://files.example/x".into()),
                ..pending
            },
        );
        let body = serde_json::to_string(&crate::pipeline::track::MediaEarly {
            media_early: true,
            event: Box::new(early.clone()),
        })
        .unwrap();
        let record = Record {
            message_id: "m1",
            body: &body,
        };
        assert!(f.process_batch(&[record], Utc::now()).await.is_empty());
        let batch_id = EventId::new();
        f.batch(batch_id, vec![text.clone(), image.clone()], Utc::now())
            .await
            .unwrap();
        let tasks: Vec<DeliveryTask> = receive_all(
            queue.as_ref(),
            f.blobs.as_ref(),
            Duration::from_secs(60),
            Utc::now(),
        )
        .await
        .unwrap();
        let of = |ep: &str| -> Vec<&DeliveryTask> {
            tasks.iter().filter(|t| t.endpoint_id == ep).collect()
        };
        let wait = of("ep_wait");
        assert_eq!(wait.len(), 1);
        assert_eq!(wait[0].event_ids, vec![text.id, image.id]);
        assert!(wait[0].body.as_str().contains("https://files.example/x"));
        for ep in ["ep_eager_batch", "ep_eager_single"] {
            let got = of(ep);
            assert_eq!(got.len(), 2, "{ep}: the early copy and the text");
            let image_tasks: Vec<_> = got
                .iter()
                .filter(|t| t.event_ids.contains(&image.id))
                .collect();
            assert_eq!(image_tasks.len(), 1, "{ep}");
            assert!(!image_tasks[0].batch);
            assert!(
                image_tasks[0]
                    .body
                    .as_str()
                    .contains(r#""status":"pending""#)
            );
            assert!(got.iter().any(|t| t.event_ids == vec![text.id]), "{ep}");
        }
    }

    #[tokio::test]
    async fn no_endpoint_no_delivery() {
        let (f, queue) = fanout(&[]).await;
        assert_eq!(
            f.events(&events("meta-text.json"), Utc::now())
                .await
                .unwrap(),
            0
        );
        assert!(queue.is_empty());
    }
    /// Fan-out recognises its own replay: every call it makes (endpoint listing, claim-check
    /// writes, sends) failed in turn, cleanly or after applying, then the record retried as SQS
    /// would: the delivery queue holds the same tasks a run without faults sends, under the same
    /// delivery ids (a repeat carries the same body), none missing.
    #[tokio::test]
    async fn a_retry_after_any_failed_call_sends_the_same_tasks_under_the_same_ids() {
        use crate::ports::faults::{Fault, Faults, FaultyBlobs, FaultyDocs, FaultyQueue};
        use std::collections::BTreeMap;

        let endpoints = [
            endpoint("ep_all", &[], true),
            endpoint("ep_status", &["whatsapp.message.read"], true),
        ];
        let evs = events("meta-multi-entry-batch.json");
        let now = Utc::now();
        let run = |fault: Option<(u64, Fault)>, form: BodyForm| {
            let evs = evs.clone();
            let endpoints = endpoints.clone();
            async move {
                let (plain, queue) = fanout(&endpoints).await;
                let faults = Faults::none();
                let f = Fanout {
                    endpoints: Endpoints {
                        docs: Arc::new(FaultyDocs {
                            inner: plain.endpoints.docs.clone(),
                            layer: faults.clone(),
                        }),
                    },
                    queue: Arc::new(FaultyQueue {
                        inner: queue.clone(),
                        layer: faults.clone(),
                    }),
                    blobs: Arc::new(FaultyBlobs {
                        inner: plain.blobs.clone(),
                        layer: faults.clone(),
                    }),
                    blob_ttl: plain.blob_ttl,
                    body_form: form,
                };
                if let Some((k, kind)) = fault {
                    faults.fail_in(k, kind);
                }
                let mut tries = 0;
                while f.events(&evs, now).await.is_err() {
                    tries += 1;
                    assert!(tries < 3, "the retry after one fault succeeds");
                }
                let tasks: Vec<DeliveryTask> = receive_all(
                    queue.as_ref(),
                    plain.blobs.as_ref(),
                    Duration::from_secs(60),
                    now,
                )
                .await
                .unwrap();
                let mut by_id: BTreeMap<String, TaskBody> = BTreeMap::new();
                for t in tasks {
                    let body = by_id.entry(t.delivery_id.clone()).or_insert(t.body.clone());
                    assert_eq!(
                        *body, t.body,
                        "a repeated delivery id carries the same body"
                    );
                }
                (by_id, faults.calls())
            }
        };
        for form in [BodyForm::Text, BodyForm::Json] {
            let (clean_run, calls) = run(None, form).await;
            assert_eq!(clean_run.len(), 5 + 1);
            for k in 1..=calls {
                for kind in [Fault::Clean, Fault::Ambiguous] {
                    let (got, _) = run(Some((k, kind)), form).await;
                    assert_eq!(got, clean_run, "call {k} failed {kind:?} ({form:?})");
                }
            }
        }
    }
}
