//! Redrive: move delivery tasks from the dead-letter queue back onto the delivery queue, all of
//! them or those of one endpoint or one event, so a fixed endpoint gets what it missed. Tasks
//! keep their delivery id and body, so a receiver that did get one before deduplicates it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::request::DeliveryTask;
use crate::ids::EventId;
use crate::ports::codec::decode;
use crate::ports::{BackendError, BlobStore, OutgoingMessage, Queue};

/// Which dead-lettered tasks to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every task.
    All,
    /// Tasks for this endpoint.
    Endpoint(String),
    /// Tasks carrying this event (alone or in a batch).
    Event(EventId),
}

impl Selection {
    fn selects(&self, task: &DeliveryTask) -> bool {
        match self {
            Self::All => true,
            Self::Endpoint(id) => &task.endpoint_id == id,
            Self::Event(id) => task.event_ids.contains(id),
        }
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// Tasks moved back to the delivery queue.
    pub moved: usize,
    /// Tasks looked at and left in the dead-letter queue.
    pub kept: usize,
    /// Messages that are not delivery tasks, left in place.
    pub unreadable: usize,
    /// About how many messages the dead-letter queue still holds afterwards (SQS's estimate,
    /// which lags by up to a minute), if the queue can tell.
    pub remaining: Option<u64>,
}

/// How long one receive waits for a message (a long poll: SQS then asks every server, where a
/// short poll samples a few and may answer empty while messages wait).
pub const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// Empty receives in a row after which the dead-letter queue counts as drained.
pub const EMPTY_RECEIVES: u32 = 3;

/// Moves up to `max` selected tasks from `dead_letter` to `queue`. Messages not selected are made
/// visible again at once; a message is deleted from the dead-letter queue only after its task is
/// on the delivery queue.
pub async fn redrive(
    dead_letter: &dyn Queue,
    queue: &dyn Queue,
    blobs: &dyn BlobStore,
    selection: &Selection,
    max: usize,
    now: DateTime<Utc>,
) -> Result<RedriveReport, BackendError> {
    let mut report = RedriveReport::default();
    let mut held = Vec::new();
    let mut empty = 0;
    while report.moved < max && empty < EMPTY_RECEIVES {
        // Hold what is looked at for a while, so one pass sees each message once.
        let got = dead_letter
            .receive(10, RECEIVE_WAIT, Duration::from_secs(300))
            .await?;
        if got.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        for m in got {
            let task: Option<DeliveryTask> = decode(&m.body, blobs, now).await.ok();
            match task {
                Some(task) if report.moved < max && selection.selects(&task) => {
                    let out = OutgoingMessage {
                        id: "0".into(),
                        body: m.body.clone(),
                        delay: None,
                    };
                    let failed = queue.send_batch(&[out]).await?;
                    if let Some(f) = failed.first() {
                        return Err(BackendError::Rejected(format!(
                            "delivery queue refused a task: {}",
                            f.reason
                        )));
                    }
                    dead_letter.delete(&m.receipt).await?;
                    report.moved += 1;
                }
                Some(_) => {
                    report.kept += 1;
                    held.push(m.receipt);
                }
                None => {
                    report.unreadable += 1;
                    held.push(m.receipt);
                }
            }
        }
    }
    for receipt in held {
        dead_letter
            .change_visibility(&receipt, Duration::ZERO)
            .await?;
    }
    report.remaining = dead_letter.approximate_depth().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;
    use crate::ports::codec::receive_all;
    use crate::ports::memory::{MemoryBlobStore, MemoryQueue};

    fn task(endpoint: &str, event: EventId) -> DeliveryTask {
        DeliveryTask {
            delivery_id: format!("msg_{}_{endpoint}", event.ulid()),
            endpoint_id: endpoint.into(),
            event_type: EventType::MessageReceived,
            batch: false,
            event_ids: vec![event],
            body: "{}".into(),
            created_at: Utc::now(),
            conversation_id: None,
        }
    }

    async fn dlq_with(tasks: &[DeliveryTask]) -> MemoryQueue {
        let dlq = MemoryQueue::new("dlq");
        let mut batch: Vec<OutgoingMessage> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| OutgoingMessage {
                id: i.to_string(),
                body: serde_json::to_string(t).unwrap(),
                delay: None,
            })
            .collect();
        batch.push(OutgoingMessage {
            id: "x".into(),
            body: "not a task".into(),
            delay: None,
        });
        dlq.send_batch(&batch).await.unwrap();
        dlq
    }

    #[tokio::test]
    async fn redrive_by_endpoint_moves_only_that_endpoints_tasks_and_keeps_the_rest() {
        let (e1, e2) = (EventId::new(), EventId::new());
        let tasks = [task("ep_a", e1), task("ep_b", e1), task("ep_a", e2)];
        let dlq = dlq_with(&tasks).await;
        let queue = MemoryQueue::new("delivery");
        let blobs = MemoryBlobStore::new();
        let report = redrive(
            &dlq,
            &queue,
            &blobs,
            &Selection::Endpoint("ep_a".into()),
            100,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            report,
            RedriveReport {
                moved: 2,
                kept: 1,
                unreadable: 1,
                remaining: Some(2),
            }
        );
        let moved: Vec<DeliveryTask> =
            receive_all(&queue, &blobs, Duration::from_secs(60), Utc::now())
                .await
                .unwrap();
        assert_eq!(moved, vec![tasks[0].clone(), tasks[2].clone()]);
        assert_eq!(
            dlq.len(),
            2,
            "the other endpoint's task and the unreadable message stay"
        );
        // What stayed is visible again for the next redrive.
        let report = redrive(&dlq, &queue, &blobs, &Selection::Event(e1), 100, Utc::now())
            .await
            .unwrap();
        assert_eq!(report.moved, 1);
    }

    #[tokio::test]
    async fn redrive_all_respects_the_maximum() {
        let tasks: Vec<DeliveryTask> = (0..5).map(|_| task("ep_a", EventId::new())).collect();
        let dlq = dlq_with(&tasks).await;
        let queue = MemoryQueue::new("delivery");
        let report = redrive(
            &dlq,
            &queue,
            &MemoryBlobStore::new(),
            &Selection::All,
            3,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(report.moved, 3);
        assert_eq!(queue.len(), 3);
    }

    /// A queue answering like SQS's short polls can: empty now and then although messages wait.
    #[derive(Debug)]
    struct Sampling {
        inner: MemoryQueue,
        calls: std::sync::atomic::AtomicU32,
    }

    #[async_trait::async_trait]
    impl Queue for Sampling {
        async fn send_batch(
            &self,
            m: &[OutgoingMessage],
        ) -> Result<Vec<crate::ports::FailedEntry>, BackendError> {
            self.inner.send_batch(m).await
        }
        async fn receive(
            &self,
            max: usize,
            wait: Duration,
            visibility: Duration,
        ) -> Result<Vec<crate::ports::ReceivedMessage>, BackendError> {
            // Every other answer is empty, and only one message comes at a time.
            if self
                .calls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                .is_multiple_of(2)
            {
                return Ok(Vec::new());
            }
            self.inner.receive(max.min(1), wait, visibility).await
        }
        async fn delete(&self, receipt: &str) -> Result<(), BackendError> {
            self.inner.delete(receipt).await
        }
        async fn change_visibility(&self, r: &str, v: Duration) -> Result<(), BackendError> {
            self.inner.change_visibility(r, v).await
        }
        async fn approximate_depth(&self) -> Result<Option<u64>, BackendError> {
            self.inner.approximate_depth().await
        }
    }

    #[tokio::test]
    async fn an_empty_answer_does_not_end_the_redrive_while_messages_wait() {
        let tasks: Vec<DeliveryTask> = (0..5).map(|_| task("ep_a", EventId::new())).collect();
        let dlq = Sampling {
            inner: dlq_with(&tasks).await,
            calls: 0.into(),
        };
        let (queue, blobs) = (MemoryQueue::new("q"), MemoryBlobStore::new());
        let report = redrive(&dlq, &queue, &blobs, &Selection::All, 100, Utc::now())
            .await
            .unwrap();
        assert_eq!((report.moved, report.unreadable), (5, 1));
        assert_eq!(report.remaining, Some(1), "the unreadable message stays");
    }
}
