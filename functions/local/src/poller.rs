//! Lambda-like SQS pollers: what the Lambda event source mapping does for each function, so local
//! behaviour matches Lambda + SQS. A poller receives up to `batch_size` records (waiting up to
//! the batching window for more once the first arrived), hands them to the stage, deletes the
//! records the stage did not report failed (`ReportBatchItemFailures`), and leaves the failed
//! ones to come back after their visibility timeout (or the delay the stage set). Dead-lettering
//! after `maxReceiveCount` is the queue's job, as in SQS.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use shared::delivery::buffer::Buffer;
use shared::delivery::deliver::Deliver;
use shared::delivery::fanout::Fanout;
use shared::pipeline::track::Track;
use shared::ports::codec::Record;
use shared::ports::{Queue, ReceivedMessage, limits};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::stats::StageStats;

/// A stage as a Lambda handler over one batch: returns the message ids that failed.
#[async_trait]
pub trait Stage: Send + Sync {
    /// Processes `messages`; the ids returned are retried.
    async fn run(&self, messages: &[ReceivedMessage], now: DateTime<Utc>) -> Vec<String>;
}

fn records(messages: &[ReceivedMessage]) -> Vec<Record<'_>> {
    messages
        .iter()
        .map(|m| Record {
            message_id: &m.message_id,
            body: &m.body,
        })
        .collect()
}

#[async_trait]
impl Stage for Track {
    async fn run(&self, messages: &[ReceivedMessage], now: DateTime<Utc>) -> Vec<String> {
        self.process_batch(&records(messages), now).await
    }
}

#[async_trait]
impl Stage for Buffer {
    async fn run(&self, messages: &[ReceivedMessage], now: DateTime<Utc>) -> Vec<String> {
        self.process_batch(&records(messages), now).await
    }
}

#[async_trait]
impl Stage for Fanout {
    async fn run(&self, messages: &[ReceivedMessage], now: DateTime<Utc>) -> Vec<String> {
        self.process_batch(&records(messages), now).await
    }
}

#[async_trait]
impl Stage for shared::media::Media {
    async fn run(&self, messages: &[ReceivedMessage], _now: DateTime<Utc>) -> Vec<String> {
        self.process_batch(&records(messages)).await
    }
}

#[async_trait]
impl Stage for Deliver {
    async fn run(&self, messages: &[ReceivedMessage], now: DateTime<Utc>) -> Vec<String> {
        self.process_batch(messages, now).await
    }
}

/// The event source mapping settings of one function.
#[derive(Debug, Clone, Copy)]
pub struct PollerSpec {
    /// Records per invocation (`BatchSize`).
    pub batch_size: usize,
    /// How long to gather records after the first (`MaximumBatchingWindowInSeconds`).
    pub window: Duration,
    /// The queue's visibility timeout.
    pub visibility: Duration,
    /// Concurrent pollers (Lambda scales these; locally a fixed number).
    pub concurrency: usize,
}

/// How long one receive call waits for a first message (long polling, so a stop request is
/// noticed within this time).
const WAIT: Duration = Duration::from_secs(1);

/// Runs one poller until `stop` turns true; the batch in hand is always finished first.
pub async fn poll(
    spec: PollerSpec,
    queue: Arc<dyn Queue>,
    stage: Arc<dyn Stage>,
    clock: Clock,
    stats: Arc<StageStats>,
    mut stop: watch::Receiver<bool>,
) {
    let max = spec.batch_size.clamp(1, limits::MAX_BATCH_ENTRIES);
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        let mut batch = match queue.receive(max, WAIT, spec.visibility).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "receive failed; backing off");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let deadline = tokio::time::Instant::now() + spec.window;
        while batch.len() < spec.batch_size {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let want = (spec.batch_size - batch.len()).min(limits::MAX_BATCH_ENTRIES);
            match queue.receive(want, left.min(WAIT), spec.visibility).await {
                Ok(more) => {
                    for m in more {
                        // Seen again within the window (visibility shorter than the window):
                        // only the newest receipt is valid.
                        match batch.iter_mut().find(|b| b.message_id == m.message_id) {
                            Some(slot) => *slot = m,
                            None => batch.push(m),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed while gathering a batch");
                    break;
                }
            }
        }
        run_batch(&*queue, &*stage, &batch, &clock, &stats).await;
    }
}

/// One invocation: the stage, then the deletes of what succeeded.
async fn run_batch(
    queue: &dyn Queue,
    stage: &dyn Stage,
    batch: &[ReceivedMessage],
    clock: &Clock,
    stats: &StageStats,
) {
    let failed = stage.run(batch, clock.now()).await;
    stats.batches.add(1);
    stats.records.add(u64::try_from(batch.len()).unwrap_or(0));
    stats.failed.add(u64::try_from(failed.len()).unwrap_or(0));
    let done: Vec<&ReceivedMessage> = batch
        .iter()
        .filter(|m| !failed.contains(&m.message_id))
        .collect();
    // A failed delete only means the record comes back later: every stage is idempotent. A
    // receipt refused after a retried ambiguous delete is one the first attempt used: that
    // record is gone, so the warnings say "unless".
    for chunk in done.chunks(limits::MAX_BATCH_ENTRIES) {
        let receipts: Vec<&str> = chunk.iter().map(|m| m.receipt.as_str()).collect();
        match queue.delete_batch(&receipts).await {
            Ok(failed) => {
                for (i, e) in failed {
                    if let Some(m) = chunk.get(i) {
                        tracing::warn!(message_id = %m.message_id, error = %e, "delete failed; unless an earlier attempt of this delete went through, the record comes back after its visibility timeout");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(records = chunk.len(), error = %e, "batch delete failed; unless an earlier attempt went through, the records come back after their visibility timeout");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use shared::ports::OutgoingMessage;
    use shared::ports::memory::{DeadLetter, MemoryQueue};

    use super::*;

    /// Fails every record whose body is `fail`, records batch sizes.
    #[derive(Default)]
    struct Probe {
        batches: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl Stage for Probe {
        async fn run(&self, messages: &[ReceivedMessage], _now: DateTime<Utc>) -> Vec<String> {
            self.batches
                .lock()
                .unwrap()
                .push(messages.iter().map(|m| m.body.clone()).collect());
            messages
                .iter()
                .filter(|m| m.body == "fail")
                .map(|m| m.message_id.clone())
                .collect()
        }
    }

    async fn send(queue: &MemoryQueue, bodies: &[&str]) {
        let messages: Vec<OutgoingMessage> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| OutgoingMessage {
                id: i.to_string(),
                body: (*b).to_owned(),
                delay: None,
            })
            .collect();
        assert!(queue.send_batch(&messages).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn batches_are_gathered_failures_retried_then_dead_lettered() {
        let dlq = Arc::new(MemoryQueue::new("dlq"));
        let queue = Arc::new(MemoryQueue::with_dead_letter(
            "q",
            DeadLetter {
                queue: dlq.clone(),
                max_receives: 2,
            },
        ));
        send(&queue, &["a", "b", "fail"]).await;
        send(&queue, &["c"]).await;
        let probe = Arc::new(Probe::default());
        let (stop_tx, stop) = watch::channel(false);
        let spec = PollerSpec {
            batch_size: 10,
            window: Duration::from_millis(100),
            // Long enough that a stalled scheduler on a busy machine does not hand the
            // successful records out again before they are deleted.
            visibility: Duration::from_secs(2),
            concurrency: 1,
        };
        let stats = Arc::new(StageStats::default());
        let task = tokio::spawn(poll(
            spec,
            queue.clone(),
            probe.clone(),
            Clock::system(),
            stats.clone(),
            stop,
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !(dlq.len() == 1 && queue.is_empty()) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        let batches = probe.batches.lock().unwrap().clone();
        // The first invocation gathered all four records within the window.
        assert_eq!(batches[0], ["a", "b", "fail", "c"]);
        // The failed record came back once more (max receives 2), then went to the DLQ.
        assert_eq!(batches[1], ["fail"]);
        assert_eq!(batches.len(), 2);
        assert!(queue.is_empty());
        assert_eq!(dlq.len(), 1);
        assert_eq!(stats.records.get(), 5);
        assert_eq!(stats.failed.get(), 2);
    }
}
