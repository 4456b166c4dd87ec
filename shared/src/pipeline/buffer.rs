//! The buffer stage: bursts of inbound messages of one conversation become one batch delivery.
//!
//! Each `whatsapp.message.received` is appended to the conversation's pending batch (a document)
//! and a delayed "flush" timer is put on the buffer queue. A timer flushes the batch once the
//! conversation has been quiet for the window, or the first message has waited the maximum, or
//! the batch is full; otherwise it sets a new timer for the remaining time. Duplicate and early
//! timers are harmless; a redelivered message still waiting in its batch sets a timer again,
//! since the attempt that appended it may have died before its timer went out. A flush fans out
//! first and marks the batch flushed after, under the batch's fixed id: a crash in between
//! repeats the same deliveries (same ids, deduplicated by receivers) and loses nothing; messages
//! appended meanwhile start the next batch.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{self, Metric};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::delivery::fanout::Fanout;
use crate::ids::EventId;
use crate::model::InboundEvent;
use crate::pipeline::codec::{Record, decode};
use crate::ports::{
    BackendError, BlobStore, DocumentStore, DocumentWrite, OutgoingMessage, Queue, Versioned,
};

/// Buffer settings.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Quiet time after the last message before a batch goes out (default 5 s, 1–60 s).
    pub window: Duration,
    /// Messages per batch at most (default 50).
    pub max_batch: usize,
    /// Longest a first message waits (default 30 s).
    pub max_wait: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(5),
            max_batch: 50,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// A batch being collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    /// The batch envelope id, fixed when the batch starts.
    batch_id: EventId,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    events: Vec<InboundEvent>,
    /// Handed to fan-out; the next message starts a new batch.
    #[serde(default)]
    flushed: bool,
    /// What the batch delivers, fixed by the first flush before it fans out: a second flush
    /// of the same batch (a duplicate timer, a retry) delivers the same body under the batch's
    /// id, and messages appended meanwhile wait for the next batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cut: Option<Cut>,
    /// Ids of the messages of earlier batches (the latest [`REMEMBERED`]), so a record the
    /// queue hands out again after its batch went out is not sent in the next one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sent_before: Vec<EventId>,
}

/// The part of a pending batch that a flush hands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Cut {
    /// The first `count` of the batch's events (in the order they were appended).
    count: usize,
    /// The batch envelope's `created_at`.
    at: DateTime<Utc>,
}

/// How many already-batched message ids a conversation's pending batch remembers.
const REMEMBERED: usize = 500;

impl Pending {
    fn new(now: DateTime<Utc>, events: Vec<InboundEvent>, sent_before: Vec<EventId>) -> Self {
        Self {
            batch_id: EventId::new(),
            first_at: now,
            last_at: now,
            events,
            flushed: false,
            cut: None,
            sent_before,
        }
    }

    fn holds(&self, id: EventId) -> bool {
        self.events.iter().any(|e| e.id == id) || self.sent_before.contains(&id)
    }

    /// `sent_before` plus the ids of `sent`, trimmed to the latest [`REMEMBERED`].
    fn remember(&self, sent: &[InboundEvent]) -> Vec<EventId> {
        let mut ids = self.sent_before.clone();
        ids.extend(sent.iter().map(|e| e.id));
        let excess = ids.len().saturating_sub(REMEMBERED);
        ids.drain(..excess);
        ids
    }
}

/// A buffer-queue message: a received message, or a timer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum BufferMessage {
    Timer { flush: String },
    Event(Box<InboundEvent>),
}

/// Why a buffer operation failed (the record is retried).
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// A store or queue failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Concurrent writers kept changing the batch.
    #[error("pending batch {0} kept changing")]
    Contention(String),
}

/// The buffer stage with its ports.
#[derive(Debug, Clone)]
pub struct Buffer {
    /// Pending batches.
    pub docs: Arc<dyn DocumentStore>,
    /// The buffer queue (timers go back onto it).
    pub queue: Arc<dyn Queue>,
    /// Claim-checked records.
    pub blobs: Arc<dyn BlobStore>,
    /// Where batches go.
    pub fanout: Fanout,
    /// Settings.
    pub config: BufferConfig,
}

const ROUNDS: usize = 8;

fn secs(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(60))
}

/// The conversation a received message belongs to, as the batch key.
fn batch_key(event: &InboundEvent) -> String {
    match &event.data.conversation {
        Some(c) => c.id.to_string(),
        // No conversation (customer unknown): a batch of its own.
        None => format!("event-{}", event.id),
    }
}

impl Buffer {
    fn doc_key(key: &str) -> String {
        format!("buffer#{key}")
    }

    fn decode_pending(doc: &Versioned) -> Result<Pending, BackendError> {
        serde_json::from_value(doc.body.clone())
            .map_err(|e| BackendError::Corrupt(crate::json_error(&e)))
    }

    async fn write(
        &self,
        key: &str,
        pending: &Pending,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let body =
            serde_json::to_value(pending).map_err(|e| BackendError::Rejected(e.to_string()))?;
        // Flushed markers and forgotten batches disappear after a day.
        let write = DocumentWrite::new(expected, now).expiring(now + chrono::Duration::days(1));
        self.docs.put(&Self::doc_key(key), &body, write).await
    }

    async fn timer(&self, key: &str, delay: Duration) -> Result<(), BackendError> {
        let body = serde_json::to_string(&BufferMessage::Timer {
            flush: key.to_owned(),
        })
        .map_err(|e| BackendError::Rejected(e.to_string()))?;
        let delay = delay.min(Duration::from_secs(crate::ports::limits::MAX_DELAY_SECS));
        let failed = self
            .queue
            .send_batch(&[OutgoingMessage {
                id: "0".into(),
                body,
                delay: Some(delay),
            }])
            .await?;
        match failed.first() {
            Some(f) => Err(BackendError::Rejected(format!(
                "buffer queue refused a timer: {}",
                f.reason
            ))),
            None => Ok(()),
        }
    }

    /// When a batch is due: quiet for the window, or waited the maximum.
    fn due(&self, p: &Pending) -> DateTime<Utc> {
        (p.last_at + secs(self.config.window)).min(p.first_at + secs(self.config.max_wait))
    }

    /// Adds a received message to its conversation's batch (and sets a timer).
    pub async fn append(&self, event: InboundEvent, now: DateTime<Utc>) -> Result<(), BufferError> {
        let key = batch_key(&event);
        for _ in 0..ROUNDS {
            let stored = self.docs.get(&Self::doc_key(&key), now).await?;
            let (pending, expected) = match &stored {
                Some(doc) => {
                    let mut p = Self::decode_pending(doc)?;
                    if !p.flushed && p.events.iter().any(|e| e.id == event.id) {
                        // A redelivered record still waiting in this batch: an earlier attempt
                        // wrote it and may have failed before its timer went out. Set one again
                        // (duplicate timers are harmless), or flush a full batch.
                        if p.events.len() >= self.config.max_batch {
                            return self.flush(&key, now).await;
                        }
                        self.timer(&key, self.config.window).await?;
                        return Ok(());
                    }
                    if p.holds(event.id) {
                        return Ok(()); // redelivered record of a batch already handed on
                    }
                    if p.flushed {
                        p = Pending::new(now, Vec::new(), p.remember(&p.events));
                    }
                    p.events.push(event.clone());
                    p.last_at = p.last_at.max(now);
                    (p, Some(doc.version))
                }
                None => (Pending::new(now, vec![event.clone()], Vec::new()), None),
            };
            if self.write(&key, &pending, expected, now).await? {
                if pending.events.len() >= self.config.max_batch {
                    return self.flush(&key, now).await;
                }
                self.timer(&key, self.config.window).await?;
                return Ok(());
            }
        }
        Err(BufferError::Contention(key))
    }

    /// Handles a timer: flushes the batch if it is due (or full), else sets the next timer.
    pub async fn flush(&self, key: &str, now: DateTime<Utc>) -> Result<(), BufferError> {
        for _ in 0..ROUNDS {
            let Some(doc) = self.docs.get(&Self::doc_key(key), now).await? else {
                return Ok(());
            };
            let mut pending = Self::decode_pending(&doc)?;
            if pending.flushed || pending.events.is_empty() {
                return Ok(()); // duplicate timer
            }
            let cut = match pending.cut {
                Some(cut) => Cut {
                    count: cut.count.min(pending.events.len()),
                    ..cut
                },
                None => {
                    let due = self.due(&pending);
                    if now < due && pending.events.len() < self.config.max_batch {
                        self.timer(key, (due - now).to_std().unwrap_or(Duration::from_secs(1)))
                            .await?;
                        return Ok(());
                    }
                    // Fix what this batch holds before anything goes out.
                    let cut = Cut {
                        count: pending.events.len().min(self.config.max_batch),
                        at: now,
                    };
                    pending.cut = Some(cut);
                    if !self.write(key, &pending, Some(doc.version), now).await? {
                        continue; // a message came in meanwhile: decide again
                    }
                    cut
                }
            };
            let mut events = pending.events[..cut.count].to_vec();
            events.sort_by_key(|e| (e.occurred_at.unwrap_or(e.received_at), e.received_at));
            let deliveries = self.fanout.batch(pending.batch_id, events, cut.at).await?;
            tracing::info!(batch_id = %pending.batch_id, messages = cut.count, deliveries, "batch flushed");
            #[allow(clippy::cast_precision_loss)] // at most MAX_BATCH_SIZE (500)
            metrics::record(Metric::BatchSize, cut.count as f64);
            return self
                .mark_flushed(key, pending.batch_id, cut.count, now)
                .await;
        }
        Err(BufferError::Contention(key.to_owned()))
    }

    /// Marks the first `sent` messages of batch `batch_id` as flushed; messages appended since
    /// the flush read the batch start the next one.
    async fn mark_flushed(
        &self,
        key: &str,
        batch_id: EventId,
        sent: usize,
        now: DateTime<Utc>,
    ) -> Result<(), BufferError> {
        for _ in 0..ROUNDS {
            let Some(doc) = self.docs.get(&Self::doc_key(key), now).await? else {
                return Ok(());
            };
            let mut p = Self::decode_pending(&doc)?;
            if p.batch_id != batch_id || p.flushed {
                return Ok(());
            }
            let rest: Vec<InboundEvent> = p.events.split_off(sent.min(p.events.len()));
            let next = if rest.is_empty() {
                Pending { flushed: true, ..p }
            } else {
                Pending::new(now, rest, p.remember(&p.events))
            };
            if self.write(key, &next, Some(doc.version), now).await? {
                if !next.flushed {
                    self.timer(key, self.config.window).await?;
                }
                return Ok(());
            }
        }
        Err(BufferError::Contention(key.to_owned()))
    }

    /// Processes buffer-queue records; returns the message ids that failed (retried by SQS).
    pub async fn process_batch(&self, records: &[Record<'_>], now: DateTime<Utc>) -> Vec<String> {
        let mut failed = Vec::new();
        for record in records {
            let result = match decode::<BufferMessage>(record.body, self.blobs.as_ref(), now).await
            {
                Ok(BufferMessage::Event(event)) => self.append(*event, now).await,
                Ok(BufferMessage::Timer { flush }) => self.flush(&flush, now).await,
                Err(e) => Err(BufferError::Backend(BackendError::Corrupt(e.to_string()))),
            };
            if let Err(e) = result {
                tracing::warn!(message_id = record.message_id, error = %e, "buffer record failed; it will be retried");
                failed.push(record.message_id.to_owned());
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests;
