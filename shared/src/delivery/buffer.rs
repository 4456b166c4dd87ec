//! The buffer stage: bursts of inbound messages of one conversation become one batch delivery.
//!
//! Each `whatsapp.message.received` is appended to the conversation's pending batch (a document);
//! the append that opens a batch puts a delayed "flush" timer on the buffer queue (so does the
//! first append after a cut, see [`Buffer::sets_timer`]). A timer flushes the batch once the
//! conversation has been quiet for the window, or the first message has waited the maximum, or
//! the batch is full; otherwise it sets a new timer for the remaining time, so one chain of
//! timers serves a batch however many messages join it. Duplicate and early timers are harmless;
//! a redelivered message still waiting in its batch sets a timer again, since the attempt that
//! appended it may have died before its timer went out. A flush fixes
//! what the batch holds (its cut) before it fans out under the batch's fixed id, then leaves a
//! sent marker per message, the last message's last: a crash in between repeats the same
//! deliveries (same ids, deduplicated by receivers) and loses nothing. The batch document is not
//! written again after that: the next message, or the timer of messages appended meanwhile,
//! finds the last marker and starts the next batch with its own write.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{self, Metric};
use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};

use super::fanout::Fanout;
use crate::ids::EventId;
use crate::model::{InboundEvent, StagedField};
use crate::pipeline::track::{StagedEvent, TrackError, staged_events};
use crate::ports::codec::{Record, by_key, decode_with, queued_blob_expiry, skim};
use crate::ports::{
    BackendError, BlobStore, DocumentStore, DocumentWrite, OutgoingMessage, Queue, VersionedJson,
};

/// The largest batch a configuration may ask for (`MaxBatchSize` in `template.yaml`).
pub const MAX_BATCH_SIZE: usize = 500;

/// Buffer settings.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Quiet time after the last message before a batch goes out (default 5 s, 1–60 s).
    pub window: Duration,
    /// Messages per batch at most (default 50, at most [`MAX_BATCH_SIZE`]).
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

/// A batch being collected. It holds references, not events: an item stays small however many
/// or however large the messages it refers to (at most `max_batch` references).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    /// The batch envelope id, fixed when the batch starts.
    batch_id: EventId,
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    first_at: DateTime<Utc>,
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    last_at: DateTime<Utc>,
    /// The messages, in the order they were appended.
    #[serde(default)]
    items: Vec<Held>,
    /// Whole events, as batches written before references kept them; read, never written.
    #[serde(default, skip_serializing)]
    events: Vec<InboundEvent>,
    /// Handed to fan-out; the next message starts a new batch (batches flushed by earlier
    /// versions; a flush now leaves its cut and markers instead).
    #[serde(default)]
    flushed: bool,
    /// What the batch delivers, fixed by the first flush before it fans out: a second flush
    /// of the same batch (a duplicate timer, a retry) delivers the same body under the batch's
    /// id, and messages appended meanwhile wait for the next batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cut: Option<Cut>,
    /// Ids of messages of earlier batches, as batches written before sent markers kept them
    /// (see [`Buffer::sent_key`]); read, carried until the next batch starts, never added to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sent_before: Vec<EventId>,
}

/// One message of a pending batch: its id and where its event is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Held {
    id: EventId,
    /// Staged by track under this dedup key (the usual case: no copy is written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outbox: Option<String>,
    /// Written to the blob store under this key (an event nobody staged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blob: Option<String>,
    /// The event itself (batches written before references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Box<InboundEvent>>,
}

/// The part of a pending batch that a flush hands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Cut {
    /// The first `count` of the batch's messages (in the order they were appended).
    count: usize,
    /// The batch envelope's `created_at`.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    at: DateTime<Utc>,
}

impl Pending {
    fn new(now: DateTime<Utc>, items: Vec<Held>) -> Self {
        Self {
            batch_id: EventId::new(),
            first_at: now,
            last_at: now,
            items,
            events: Vec::new(),
            flushed: false,
            cut: None,
            sent_before: Vec::new(),
        }
    }

    /// Moves whole events of an older document into references that carry them.
    fn upgraded(mut self) -> Self {
        let old = std::mem::take(&mut self.events);
        self.items.extend(old.into_iter().map(|e| Held {
            id: e.id,
            outbox: None,
            blob: None,
            event: Some(Box::new(e)),
        }));
        self
    }

    /// The batch after this one's cut: the messages appended since.
    fn next(self, now: DateTime<Utc>) -> Self {
        let sent = self.cut.map_or(0, |c| c.count.min(self.items.len()));
        let mut items = self.items;
        Pending::new(now, items.split_off(sent))
    }

    fn waiting(&self, id: EventId) -> bool {
        self.items.iter().any(|h| h.id == id)
    }

    fn holds(&self, id: EventId) -> bool {
        self.waiting(id) || self.sent_before.contains(&id)
    }
}

/// A buffer-queue message: a received message, or a timer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum BufferMessage {
    Timer { flush: String },
    Staged(StagedEvent),
    Event(Box<InboundEvent>),
}

impl BufferMessage {
    /// Reads one as the untagged enum would (a timer, else a staged event, else an event), with
    /// the event read once: the enum would copy the message into serde's buffered form and try
    /// the copy three times.
    fn read(text: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Timer {
            flush: String,
        }
        if let Some(Timer { flush }) = skim::<Timer>(text.as_bytes(), "flush") {
            return Ok(Self::Timer { flush });
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let (event, staged) = InboundEvent::with_staged(&mut de)?;
        de.end()?;
        Ok(match staged {
            StagedField::Once(serde_json::Value::String(staged)) => Self::Staged(StagedEvent {
                staged,
                event: Box::new(event),
            }),
            _ => Self::Event(Box::new(event)),
        })
    }
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

    /// The marker a flush leaves for each message it handed on, before the batch lets go of
    /// it: a record the queue hands out again later (its delete lost, a redrive) finds it and
    /// is not sent in another batch. One small item per message, however long the conversation.
    fn sent_key(id: EventId) -> String {
        format!("buffer-sent#{id}")
    }

    /// Whether a flush handed `id` on already.
    async fn was_sent(&self, id: EventId, now: DateTime<Utc>) -> Result<bool, BackendError> {
        Ok(self
            .docs
            .get_json(&Self::sent_key(id), now)
            .await?
            .is_some())
    }

    /// Leaves the sent markers of `items` (batch `batch_id`); repeating it changes nothing.
    async fn mark_sent(
        &self,
        batch_id: EventId,
        items: &[Held],
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let body = serde_json::json!({ "batch": batch_id }).to_string();
        let write = DocumentWrite::new(None, now).expiring(queued_blob_expiry(now, Duration::ZERO));
        let Some((last, rest)) = items.split_last() else {
            return Ok(());
        };
        let puts = rest.iter().map(|h| {
            let (key, body) = (Self::sent_key(h.id), &body);
            async move { self.docs.put_json(&key, body, write).await }
        });
        // `false`: already marked by an earlier try of this flush. The last message's marker
        // goes last, so that it says the whole batch went out (see [`Buffer::cut_sent`]).
        futures::future::try_join_all(puts).await?;
        self.docs
            .put_json(&Self::sent_key(last.id), &body, write)
            .await
            .map(|_| ())
    }

    /// Whether the batch `p` cut went out whole: its flush leaves the last message's marker
    /// after all the others. A marker written a moment ago may be missed: the batch then counts
    /// as still going out, and is sent again under its id (which receivers recognise).
    async fn cut_sent(&self, p: &Pending, now: DateTime<Utc>) -> Result<bool, BackendError> {
        let Some(cut) = p.cut else {
            return Ok(false);
        };
        let Some(last) = p.items[..cut.count.min(p.items.len())].last() else {
            return Ok(false);
        };
        Ok(self
            .docs
            .get_eventually(&Self::sent_key(last.id), now)
            .await?
            .is_some())
    }

    /// A pending batch read as its stored text (no `Value` tree between).
    fn decode_pending(doc: &VersionedJson) -> Result<Pending, BackendError> {
        crate::from_json_bytes::<Pending>(&doc.json)
            .map(Pending::upgraded)
            .map_err(|e| BackendError::Corrupt(crate::json_error(&e)))
    }

    /// Where `event` will be read from at the flush: the outbox track staged it in, or, for an
    /// event nobody staged, a blob written now (kept as long as a queue message may point at
    /// its batch).
    async fn hold(&self, event: &InboundEvent, now: DateTime<Utc>) -> Result<Held, BackendError> {
        let staged = staged_events(
            self.docs.as_ref(),
            self.blobs.as_ref(),
            &event.dedup_key,
            now,
        )
        .await
        .or_else(|e| match e {
            TrackError::Backend(e) => Err(e),
            // An outbox that does not read back: keep a copy of the event in hand instead.
            _ => Ok(None),
        })?;
        if staged.is_some_and(|events| events.iter().any(|e| e.id == event.id && e == event)) {
            return Ok(Held {
                id: event.id,
                outbox: Some(event.dedup_key.clone()),
                blob: None,
                event: None,
            });
        }
        let key = format!("buffer#evt#{}", event.id);
        let body = serde_json::to_vec(event).map_err(|e| BackendError::Rejected(e.to_string()))?;
        self.blobs
            .put(&key, &body, queued_blob_expiry(now, Duration::ZERO))
            .await?;
        Ok(Held {
            id: event.id,
            outbox: None,
            blob: Some(key),
            event: None,
        })
    }

    /// The events `items` refer to, read 16 at a time, in order.
    async fn events_of(
        &self,
        items: &[Held],
        now: DateTime<Utc>,
    ) -> Result<Vec<InboundEvent>, BackendError> {
        // A batch of 500 would otherwise open 500 requests at once. (Boxed: a stream of
        // borrowing futures would otherwise not be provably `Send` to the caller.)
        type Read<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<InboundEvent, BackendError>> + Send + 'a>,
        >;
        let reads: Vec<Read<'_>> = items
            .iter()
            .map(|h| Box::pin(self.read_held(h, now)) as Read<'_>)
            .collect();
        futures::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await
    }

    /// The event one batched message refers to.
    async fn read_held(&self, h: &Held, now: DateTime<Utc>) -> Result<InboundEvent, BackendError> {
        if let Some(e) = &h.event {
            return Ok((**e).clone());
        }
        let missing = || BackendError::Corrupt(format!("batched message {} is gone", h.id));
        if let Some(dedup_key) = &h.outbox {
            let staged = staged_events(self.docs.as_ref(), self.blobs.as_ref(), dedup_key, now)
                .await
                .map_err(|e| match e {
                    TrackError::Backend(e) => e,
                    other => BackendError::Corrupt(other.to_string()),
                })?;
            return staged
                .and_then(|events| events.into_iter().find(|e| e.id == h.id))
                .ok_or_else(missing);
        }
        let key = h.blob.as_deref().ok_or_else(missing)?;
        let bytes = self.blobs.get(key, now).await?.ok_or_else(missing)?;
        crate::from_json_bytes(&bytes).map_err(|e| BackendError::Corrupt(crate::json_error(&e)))
    }

    async fn write(
        &self,
        key: &str,
        pending: &Pending,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let body =
            serde_json::to_string(pending).map_err(|e| BackendError::Rejected(e.to_string()))?;
        // A flushed marker disappears after a day; a batch still waiting lives as long as its
        // timer may (a dead-lettered timer can be redriven days later).
        let expires = if pending.flushed {
            now + chrono::Duration::days(1)
        } else {
            queued_blob_expiry(now, Duration::ZERO)
        };
        let write = DocumentWrite::new(expected, now).expiring(expires);
        self.docs.put_json(&Self::doc_key(key), &body, write).await
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

    /// Whether the append that left `p` (its message last) sets a timer: the one that opens a
    /// batch, and the first one after a cut, since the flush of that cut may have read the batch
    /// before it and then finds nothing left to hand on. Every other message joins a batch
    /// whose chain of timers is running: the opener's, or the first post-cut message's for a
    /// batch started with messages left over from a cut (a flush that starts one with leftovers
    /// sets its own), carried on by each timer that finds the batch not yet due. (An append
    /// whose timer did not go out fails, and its record, still waiting in the batch when it
    /// comes back, sets one again; an append to a batch past its due time sets one too, in
    /// case the chain died, e.g. its timer dead-lettered during an outage.)
    fn sets_timer(p: &Pending) -> bool {
        p.items.len() == 1 || p.cut.is_some_and(|c| p.items.len() == c.count + 1)
    }

    /// When a batch is due: quiet for the window, or waited the maximum.
    fn due(&self, p: &Pending) -> DateTime<Utc> {
        (p.last_at + secs(self.config.window)).min(p.first_at + secs(self.config.max_wait))
    }

    /// Adds a received message to its conversation's batch (and sets a timer if the batch needs
    /// one: [`Buffer::sets_timer`]).
    pub async fn append(&self, event: InboundEvent, now: DateTime<Utc>) -> Result<(), BufferError> {
        self.append_held(event, None, now).await
    }

    /// [`Buffer::append`] of a message track says it staged under dedup key `staged`: the batch
    /// refers to it there without reading it first.
    async fn append_held(
        &self,
        event: InboundEvent,
        staged: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), BufferError> {
        let key = batch_key(&event);
        let mut held = staged.filter(|k| *k == event.dedup_key).map(|k| Held {
            id: event.id,
            outbox: Some(k),
            blob: None,
            event: None,
        });
        for _ in 0..ROUNDS {
            let stored = self.docs.get_json(&Self::doc_key(&key), now).await?;
            let (pending, expected) = match &stored {
                Some(doc) => {
                    let mut p = Self::decode_pending(doc)?;
                    if !p.flushed && p.waiting(event.id) {
                        // A redelivered record still waiting in this batch: an earlier attempt
                        // wrote it and may have failed before its timer went out. Set one again
                        // (duplicate timers are harmless), or flush a full batch.
                        if p.items.len() >= self.config.max_batch {
                            return self.flush(&key, now).await;
                        }
                        self.timer(&key, self.config.window).await?;
                        return Ok(());
                    }
                    // Not waiting here: maybe handed on already. The markers of a flush are
                    // written before its batch lets go of the messages, so reading them after
                    // the batch sees every message this batch no longer holds.
                    if p.holds(event.id) || self.was_sent(event.id, now).await? {
                        return Ok(()); // redelivered record of a batch already handed on
                    }
                    if p.flushed {
                        p = Pending::new(now, Vec::new());
                    } else if p.cut.is_some() && self.cut_sent(&p, now).await? {
                        // Its batch went out (the flush leaves the batch as it was): messages
                        // appended after the cut start the next one, with this message.
                        p = p.next(now);
                    }
                    (p, Some(doc.version))
                }
                None => {
                    if self.was_sent(event.id, now).await? {
                        return Ok(()); // its batch went out, and the marker outlived the batch
                    }
                    (Pending::new(now, Vec::new()), None)
                }
            };
            let mut pending = pending;
            // A batch past its due time should have gone out already: its timer may be late,
            // or dead (dead-lettered after an outage), so this append sets one as well.
            let overdue = !pending.items.is_empty() && now >= self.due(&pending);
            let item = match &held {
                Some(h) => h,
                None => held.insert(self.hold(&event, now).await?),
            };
            pending.items.push(item.clone());
            pending.last_at = pending.last_at.max(now);
            if self.write(&key, &pending, expected, now).await? {
                if pending.items.len() >= self.config.max_batch {
                    return self.flush(&key, now).await;
                }
                if overdue || Self::sets_timer(&pending) {
                    self.timer(&key, self.config.window).await?;
                }
                return Ok(());
            }
        }
        Err(BufferError::Contention(key))
    }

    /// Handles a timer: flushes the batch if it is due (or full), else sets the next timer.
    pub async fn flush(&self, key: &str, now: DateTime<Utc>) -> Result<(), BufferError> {
        for _ in 0..ROUNDS {
            let Some(doc) = self.docs.get_json(&Self::doc_key(key), now).await? else {
                return Ok(());
            };
            let mut pending = Self::decode_pending(&doc)?;
            if pending.flushed || pending.items.is_empty() {
                return Ok(()); // duplicate timer
            }
            let mut version = doc.version;
            if self.cut_sent(&pending, now).await? {
                // This batch went out; messages appended since are the next batch, whose
                // timer this may be.
                let next = pending.next(now);
                if next.items.is_empty() {
                    return Ok(()); // a duplicate timer
                }
                if !self.write(key, &next, Some(doc.version), now).await? {
                    continue;
                }
                self.timer(key, self.config.window).await?;
                return Ok(());
            }
            let cut = match pending.cut {
                Some(cut) => Cut {
                    count: cut.count.min(pending.items.len()),
                    ..cut
                },
                None => {
                    let due = self.due(&pending);
                    if now < due && pending.items.len() < self.config.max_batch {
                        self.timer(key, (due - now).to_std().unwrap_or(Duration::from_secs(1)))
                            .await?;
                        return Ok(());
                    }
                    // Fix what this batch holds before anything goes out.
                    let cut = Cut {
                        count: pending.items.len().min(self.config.max_batch),
                        at: now,
                    };
                    pending.cut = Some(cut);
                    if !self.write(key, &pending, Some(doc.version), now).await? {
                        continue; // a message came in meanwhile: decide again
                    }
                    version += 1;
                    cut
                }
            };
            let mut events = self.events_of(&pending.items[..cut.count], now).await?;
            events.sort_by_key(|e| (e.occurred_at.unwrap_or(e.received_at), e.received_at));
            let deliveries = Box::pin(self.fanout.batch(pending.batch_id, events, cut.at)).await?;
            tracing::info!(batch_id = %pending.batch_id, messages = cut.count, deliveries, "batch flushed");
            #[allow(clippy::cast_precision_loss)] // at most MAX_BATCH_SIZE (500)
            metrics::record(Metric::BatchSize, cut.count as f64);
            self.mark_sent(pending.batch_id, &pending.items[..cut.count], now)
                .await?;
            if pending.items.len() <= cut.count {
                // Nothing came in meanwhile (as far as this flush saw): the batch stays as it
                // is, its markers say it went out, and the next message starts a new one.
                return Ok(());
            }
            let count = cut.count;
            return self.mark_flushed(key, (pending, version), count, now).await;
        }
        Err(BufferError::Contention(key.to_owned()))
    }

    /// Marks the first `sent` messages of the batch `flushed` (as the flush last saw it, at
    /// its version) as flushed; messages appended since start the next batch. The first round
    /// writes over what the flush saw; a changed batch is read again.
    async fn mark_flushed(
        &self,
        key: &str,
        flushed: (Pending, u64),
        sent: usize,
        now: DateTime<Utc>,
    ) -> Result<(), BufferError> {
        let batch_id = flushed.0.batch_id;
        let mut seen = Some(flushed);
        for _ in 0..ROUNDS {
            let (mut p, version) = match seen.take() {
                Some(known) => known,
                None => {
                    let Some(doc) = self.docs.get_json(&Self::doc_key(key), now).await? else {
                        return Ok(());
                    };
                    (Self::decode_pending(&doc)?, doc.version)
                }
            };
            if p.batch_id != batch_id || p.flushed {
                // Marked already (the answer to an applied write was lost). Messages left over
                // for the next batch need their timer; a duplicate one is harmless.
                if !p.flushed && !p.items.is_empty() {
                    self.timer(key, self.config.window).await?;
                }
                return Ok(());
            }
            let rest: Vec<Held> = p.items.split_off(sent.min(p.items.len()));
            let next = if rest.is_empty() {
                Pending { flushed: true, ..p }
            } else {
                Pending::new(now, rest)
            };
            if self.write(key, &next, Some(version), now).await? {
                if !next.flushed {
                    self.timer(key, self.config.window).await?;
                }
                return Ok(());
            }
        }
        Err(BufferError::Contention(key.to_owned()))
    }

    /// Processes a batch of buffer-queue records; returns the message ids that failed, for SQS
    /// partial batch failure. The records of one pending batch (a conversation's messages and
    /// its timers) run in the batch's order, those of different ones at the same time
    /// ([`by_key`]).
    pub async fn process_batch(&self, records: &[Record<'_>], now: DateTime<Utc>) -> Vec<String> {
        let mut decoded = Vec::with_capacity(records.len());
        for record in records {
            decoded.push((
                record,
                decode_with(record.body, self.blobs.as_ref(), now, BufferMessage::read).await,
            ));
        }
        let done = by_key(
            decoded,
            |(_, message)| match message.as_ref().ok()? {
                BufferMessage::Timer { flush } => Some(flush.clone()),
                BufferMessage::Staged(StagedEvent { event, .. }) | BufferMessage::Event(event) => {
                    Some(batch_key(event))
                }
            },
            |(record, message)| async move {
                let result = match message {
                    Ok(BufferMessage::Event(event)) => self.append(*event, now).await,
                    Ok(BufferMessage::Staged(StagedEvent { staged, event })) => {
                        self.append_held(*event, Some(staged), now).await
                    }
                    Ok(BufferMessage::Timer { flush }) => self.flush(&flush, now).await,
                    Err(e) => Err(BufferError::Backend(BackendError::Corrupt(e.to_string()))),
                };
                if let Err(e) = &result {
                    tracing::warn!(message_id = record.message_id, error = %e, "buffer record failed; it will be retried");
                }
                (record, result.is_ok())
            },
        )
        .await;
        done.into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(record, _)| record.message_id.to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests;
