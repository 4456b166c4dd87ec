//! The track stage: the raw stream of normalized provider events in, a clean stream out. Each
//! item is claimed once (dedup), statuses only move forward, customers become contacts, messages
//! open and feed conversations, and every event leaves with its conversation attached.
//!
//! Dedup and crash safety in one document per item, its outbox (`outbox#{dedup key}`, kept as
//! long as dedup remembers items): created by one conditional write when the item's results are
//! staged, before anything is handed on, and naming the queue record (event id) that staged it.
//!
//! - An item whose outbox exists was seen: a copy from another request (the provider sent it
//!   again) is a duplicate; the record that staged it, handed out again (its attempt died or
//!   lost its answer, before or after handing on), hands on exactly the staged events, same ids,
//!   which the next stages recognise.
//! - Deriving the results changes state (statuses, contacts, conversations), and every such
//!   change records the item it was made for: two copies deriving at once, or a retry after a
//!   failed outbox write, get the first one's outcome, and the conditional create of the outbox
//!   decides which copy's results leave.
//!
//! One write per item where a claim and its completion took two.

pub mod state;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{self, Metric};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use self::state::{
    Activity, ContactChange, ConversationKey, MessageActivity, OutboundRecord, State, StateError,
    StatusChange, Upserted, message_summary,
};
use crate::ids::EventId;
use crate::model::{
    ContactBody, ContactProfile, ConversationBody, EventBody, EventData, EventType, InboundEvent,
    MessageStatus,
};
pub use crate::ports::codec::Record;
use crate::ports::codec::{
    DecodeError, by_key, decode, encode, enqueue_events, pack, send_all, stash, unstash,
};
use crate::ports::{BackendError, BlobStore, DocumentWrite, Queue};

/// Where tracked events go next.
#[async_trait]
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Hands on `events` in order; `Ok` only when all of them are accepted.
    async fn emit(&self, events: &[InboundEvent], now: DateTime<Utc>) -> Result<(), BackendError>;

    /// Hands on `events` that track staged in its outbox (under each event's dedup key), so the
    /// next stage may refer to them there instead of keeping a copy.
    async fn emit_staged(
        &self,
        events: &[InboundEvent],
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        self.emit(events, now).await
    }
}

/// Routes `whatsapp.message.received` to the buffer queue and everything else to the outbound
/// queue (where fan-out to endpoints picks them up).
#[derive(Debug, Clone)]
pub struct QueueSink {
    /// Inbound messages, to be batched per conversation.
    pub buffer: Arc<dyn Queue>,
    /// Every other event.
    pub outbound: Arc<dyn Queue>,
    /// Claim-checks for large events.
    pub blobs: Arc<dyn BlobStore>,
    /// How long claim-checked events are kept.
    pub blob_ttl: Duration,
    /// The media stage's queue: inbound messages that name a provider file go there instead
    /// of the buffer (and a `pending` copy to the outbound queue, for endpoints that do not
    /// wait for media). `None`: the media stage is off.
    pub media: Option<Arc<dyn Queue>>,
}

/// An outbound-queue record of a message whose media is still being fetched: fan-out gives it
/// only to endpoints that do not wait for media (the others get the message from the media
/// stage, through the buffer). On the wire it is the event with one more field.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MediaEarly {
    /// Always `true`.
    pub media_early: bool,
    /// The event, its media `pending`.
    #[serde(flatten)]
    pub event: Box<InboundEvent>,
}

#[async_trait]
impl EventSink for QueueSink {
    async fn emit(&self, events: &[InboundEvent], now: DateTime<Utc>) -> Result<(), BackendError> {
        self.send(events, false, now).await
    }

    async fn emit_staged(
        &self,
        events: &[InboundEvent],
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        self.send(events, true, now).await
    }
}

impl QueueSink {
    /// Sends `events` on; buffered ones say where they are staged when `staged`.
    async fn send(
        &self,
        events: &[InboundEvent],
        staged: bool,
        now: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        for e in events {
            match e.event_type {
                EventType::ConversationCreated => metrics::count(Metric::ConversationsCreated, 1),
                EventType::ConversationEnded => metrics::count(Metric::ConversationsEnded, 1),
                _ => {}
            }
        }
        let (buffered, direct): (Vec<InboundEvent>, Vec<InboundEvent>) = events
            .iter()
            .cloned()
            .partition(|e| e.event_type.is_bufferable());
        let expires = crate::ports::codec::queued_blob_expiry(now, self.blob_ttl);
        // Lifecycle events (contact, conversation) go first so they arrive before the message.
        if !direct.is_empty() {
            enqueue_events(
                &direct,
                self.outbound.as_ref(),
                self.blobs.as_ref(),
                expires,
            )
            .await?;
        }
        let (to_media, buffered): (Vec<InboundEvent>, Vec<InboundEvent>) = match &self.media {
            Some(_) => buffered.into_iter().partition(names_media_file),
            None => (Vec::new(), buffered),
        };
        if let (Some(media), false) = (&self.media, to_media.is_empty()) {
            let mut early = Vec::with_capacity(to_media.len());
            for event in &to_media {
                let mut copy = event.clone();
                if let Some(id) = media_id(event) {
                    crate::model::attach_media(
                        &mut copy,
                        &crate::model::StoredMedia {
                            reason: Some(crate::model::MediaFailure::InProgress),
                            ..crate::model::StoredMedia::pending(id)
                        },
                    );
                }
                let message = MediaEarly {
                    media_early: true,
                    event: Box::new(copy),
                };
                let key = format!("evt#{}#early", event.id);
                early.push(encode(&message, &key, self.blobs.as_ref(), expires).await?);
            }
            send_all(self.outbound.as_ref(), pack(early)).await?;
            enqueue_events(&to_media, media.as_ref(), self.blobs.as_ref(), expires).await?;
        }
        if buffered.is_empty() {
            return Ok(());
        }
        if !staged {
            enqueue_events(
                &buffered,
                self.buffer.as_ref(),
                self.blobs.as_ref(),
                expires,
            )
            .await?;
            return Ok(());
        }
        let mut bodies = Vec::with_capacity(buffered.len());
        for event in buffered {
            let key = format!("evt#{}", event.id);
            let message = StagedEvent {
                staged: event.dedup_key.clone(),
                event: Box::new(event),
            };
            bodies.push(encode(&message, &key, self.blobs.as_ref(), expires).await?);
        }
        send_all(self.buffer.as_ref(), pack(bodies)).await?;
        Ok(())
    }
}

/// Whether `event` is a message naming a provider file the media stage can fetch.
fn names_media_file(event: &InboundEvent) -> bool {
    media_id(event).is_some()
}

/// wagate's media id of the file `event`'s message names, if any.
fn media_id(event: &InboundEvent) -> Option<String> {
    crate::model::MediaKey::of_event(event).map(|k| k.id)
}

/// A buffer-queue message for an event track staged in its outbox under `staged` (its dedup
/// key): the buffer refers to it there without reading it first. On the wire it is the event
/// with one more field, so a reader that knows only events reads it as one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StagedEvent {
    /// The dedup key of the outbox holding the event.
    pub staged: String,
    /// The event.
    #[serde(flatten)]
    pub event: Box<InboundEvent>,
}

/// Read in one pass with the event's fields ([`InboundEvent::with_staged`]), not through the
/// buffered copy a flattened field costs.
impl<'de> serde::Deserialize<'de> for StagedEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use crate::model::StagedField;
        match InboundEvent::with_staged(deserializer)? {
            (event, StagedField::Once(serde_json::Value::String(staged))) => Ok(Self {
                staged,
                event: Box::new(event),
            }),
            (_, StagedField::Absent) => Err(serde::de::Error::missing_field("staged")),
            (_, StagedField::Repeated) => Err(serde::de::Error::duplicate_field("staged")),
            (_, StagedField::Once(_)) => Err(serde::de::Error::custom("`staged` is not a string")),
        }
    }
}

/// Track settings.
#[derive(Debug, Clone)]
pub struct TrackConfig {
    /// How long processed items are remembered (Meta retries for days).
    pub dedup_ttl: Duration,
    /// The longest one attempt at an item may run: a conversation pointer left this long ago
    /// by an attempt that never wrote its conversation belongs to a dead attempt and is taken
    /// over; a younger one is waited for.
    pub lease: Duration,
    /// Inactivity after which a conversation ends.
    pub idle: Duration,
    /// Until when an item may have been recorded under its dedup key without the source id in
    /// front (keys before 2026-11-30 had none): until then, an item whose outbox is not found
    /// is looked up under that key too. `None`: no such items (new installations, tests). See
    /// [`state::Statuses::source_scoped_dedup_since`].
    pub legacy_keys_until: Option<DateTime<Utc>>,
}

impl Default for TrackConfig {
    fn default() -> Self {
        Self {
            dedup_ttl: Duration::from_secs(8 * 24 * 3600),
            lease: Duration::from_secs(60),
            idle: Duration::from_secs(24 * 3600),
            legacy_keys_until: None,
        }
    }
}

impl TrackConfig {
    /// [`TrackConfig::legacy_keys_until`] for keys scoped by source since `since`: as long as
    /// an outbox written before may live.
    pub fn legacy_window(&self, since: DateTime<Utc>) -> DateTime<Utc> {
        since + self.remembered()
    }

    /// How long an item's outbox is kept: as long as dedup remembers it, and at least as long
    /// as a queued claim-check (the buffer refers to staged messages until their batch goes
    /// out, which a redriven timer can make that late).
    fn remembered(&self) -> chrono::Duration {
        let ttl = self
            .dedup_ttl
            .max(crate::ports::codec::QUEUED_BLOB_LIFETIME);
        chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(19))
    }
}

/// The track stage with its ports.
#[derive(Debug, Clone)]
pub struct Track {
    /// Claim-checked events on the inbound queue.
    pub blobs: Arc<dyn BlobStore>,
    /// Statuses, contacts, conversations, staged results.
    pub state: State,
    /// Where events go next.
    pub sink: Arc<dyn EventSink>,
    /// Settings.
    pub config: TrackConfig,
}

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackOutcome {
    /// Handed on these events (lifecycle events included), by type.
    Emitted(Vec<EventType>),
    /// Seen before: dropped.
    Duplicate,
    /// A status that does not move its message forward: dropped.
    Stale,
}

/// Why an item could not be processed now.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// A store or queue failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// State could not be updated.
    #[error(transparent)]
    State(#[from] StateError),
    /// Staged results did not decode.
    #[error("staged results are corrupt: {0}")]
    Corrupt(String),
}

/// The document under which track stages what an item turned into.
fn outbox_key(dedup_key: &str) -> String {
    format!("outbox#{dedup_key}")
}

/// What an item's outbox holds: which queue record staged it, and the events it staged.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Outbox {
    /// The id of the event (queue record) that staged it.
    by: EventId,
    /// The staged events as [`stash`] wrote them; absent for an item handed on as it came
    /// (nothing derived from state: the item is the event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<serde_json::Value>,
}

/// An [`Outbox`] as written: its events as [`stash`] wrote them, text put in as it is.
#[derive(serde::Serialize)]
struct OutboxOut<'a> {
    by: EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a serde_json::value::RawValue>,
}

/// An outbox as read: written by this version, or staged events alone (before outboxes named
/// their record).
enum Stored {
    Outbox(Outbox),
    Events(serde_json::Value),
}

/// The outbox of `dedup_key`; `eventually`: a read that may miss one written a moment ago.
async fn read_outbox(
    docs: &dyn crate::ports::DocumentStore,
    dedup_key: &str,
    eventually: bool,
    now: DateTime<Utc>,
) -> Result<Option<Stored>, TrackError> {
    let key = outbox_key(dedup_key);
    let read = if eventually {
        docs.get_eventually(&key, now).await?
    } else {
        docs.get(&key, now).await?
    };
    read.map(|doc| stored(doc.body)).transpose()
}

/// What an outbox document holds.
fn stored(body: serde_json::Value) -> Result<Stored, TrackError> {
    if body.get("by").is_some() {
        let outbox =
            serde_json::from_value(body).map_err(|e| TrackError::Corrupt(crate::json_error(&e)))?;
        return Ok(Stored::Outbox(outbox));
    }
    Ok(Stored::Events(body))
}

async fn unstash_events(
    part: serde_json::Value,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
) -> Result<Vec<InboundEvent>, TrackError> {
    match unstash(part, blobs, now).await {
        Ok(events) => Ok(events),
        Err(DecodeError::Backend(e)) => Err(TrackError::Backend(e)),
        Err(e) => Err(TrackError::Corrupt(e.to_string())),
    }
}

/// An outbox as this version writes it, its events left as text.
#[derive(serde::Deserialize)]
struct OutboxText<'a> {
    /// Read only to check it is there and well formed, as [`Outbox`] does.
    #[serde(rename = "by")]
    _by: EventId,
    #[serde(default, borrow)]
    events: Option<&'a serde_json::value::RawValue>,
}

/// The staged events of an outbox's text when it is the usual kind (written by this version,
/// its events inline): decoded straight into events, with no `Value` tree between. `None`
/// for anything else (a claim check, an older document, a decoding error), which
/// [`staged_events`] then reads the general way, errors included.
fn staged_inline(json: &[u8]) -> Option<Option<Vec<InboundEvent>>> {
    if json.first() != Some(&b'{') {
        return None;
    }
    let outbox: OutboxText<'_> = crate::from_json_bytes(json).ok()?;
    match outbox.events {
        None => Some(None),
        // An array that decodes as events (objects) is not a claim check (which an array of
        // one string would be), so `Carried`'s untagged decoding would take it inline too.
        Some(part) if part.get().starts_with('[') => {
            serde_json::from_str(part.get()).ok().map(Some)
        }
        Some(_) => None,
    }
}

/// The events track staged for the item with `dedup_key` (exactly as it handed them on), if
/// it staged any: message events are staged before they leave, so later stages can refer to
/// them by dedup key instead of keeping copies.
pub async fn staged_events(
    docs: &dyn crate::ports::DocumentStore,
    blobs: &dyn BlobStore,
    dedup_key: &str,
    now: DateTime<Utc>,
) -> Result<Option<Vec<InboundEvent>>, TrackError> {
    let Some(doc) = docs.get_json(&outbox_key(dedup_key), now).await? else {
        return Ok(None);
    };
    if let Some(events) = staged_inline(&doc.json) {
        return Ok(events);
    }
    // Text that is not JSON at all is what a store's `get` reports as corrupt: the same error.
    let body = crate::from_json_bytes(&doc.json).map_err(|e| {
        TrackError::Backend(crate::ports::BackendError::Corrupt(crate::json_error(&e)))
    })?;
    match stored(body)? {
        Stored::Outbox(Outbox {
            events: Some(part), ..
        })
        | Stored::Events(part) => Ok(Some(unstash_events(part, blobs, now).await?)),
        Stored::Outbox(Outbox { events: None, .. }) => Ok(None),
    }
}

impl TrackError {
    /// Whether a later retry may succeed (otherwise the record ends in the DLQ).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Backend(e) => e.is_retryable(),
            Self::State(e) => e.is_retryable(),
            Self::Corrupt(_) => false,
        }
    }
}

/// What orders the tracking of a batch's records: the source and the customer (or group) an
/// event is about, whose conversation and contact its tracking reads and writes. `None` for an
/// event that touches no such state.
fn order_key(event: &InboundEvent) -> Option<(String, String)> {
    let party = match &event.data.body {
        EventBody::Message(body) => body
            .message
            .group_id
            .as_deref()
            .or_else(|| body.contact.as_ref().and_then(ContactProfile::key)),
        EventBody::Conversation(body) => body.contact.as_ref().and_then(ContactProfile::key),
        _ => None,
    }?;
    Some((event.data.source.id.to_string(), party.to_owned()))
}

impl Track {
    /// Processes a batch of inbound queue records and returns the message ids that failed, for
    /// SQS partial batch failure: those come back after their visibility timeout, and a record
    /// that can never succeed reaches the DLQ after the queue's `maxReceiveCount`. The records of
    /// one customer (or group) are tracked in the batch's order, those of different ones at the
    /// same time ([`by_key`]): state is read and written per conversation and contact.
    pub async fn process_batch(&self, records: &[Record<'_>], now: DateTime<Utc>) -> Vec<String> {
        use tracing::Instrument;
        let decoded = futures::future::join_all(records.iter().map(|record| async move {
            let event = decode::<InboundEvent>(record.body, self.blobs.as_ref(), now).await;
            (record, event)
        }))
        .await;
        let tracked = by_key(
            decoded,
            |(_, event)| event.as_ref().ok().and_then(order_key),
            |(record, event)| {
                // The span is entered on every poll of the record's future, not held across
                // awaits.
                let span = tracing::info_span!("record", message_id = record.message_id);
                async move { (record, self.process_record(event, now).await) }.instrument(span)
            },
        )
        .await;
        tracked
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(record, _)| record.message_id.to_owned())
            .collect()
    }

    /// One record of a batch; `false` when it is to come back.
    async fn process_record(
        &self,
        event: Result<InboundEvent, DecodeError>,
        now: DateTime<Utc>,
    ) -> bool {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(error = %e, retryable = e.is_retryable(), "unreadable inbound record");
                return false;
            }
        };
        let (event_id, event_type) = (event.id, event.event_type);
        match self.process(event, now).await {
            Ok(outcome) => {
                if matches!(outcome, TrackOutcome::Duplicate) {
                    metrics::count(Metric::Duplicates, 1);
                }
                tracing::info!(%event_id, %event_type, ?outcome, "tracked");
                true
            }
            Err(e) => {
                tracing::warn!(%event_id, %event_type, error = %e, retryable = e.is_retryable(), "tracking failed; the record will be retried");
                false
            }
        }
    }

    /// Processes one inbound event.
    pub async fn process(
        &self,
        event: InboundEvent,
        now: DateTime<Utc>,
    ) -> Result<TrackOutcome, TrackError> {
        let key = event.dedup_key.clone();
        // A copy seen a moment ago may be missed here: its state marks and the outbox's
        // conditional create below catch it.
        if let Some(stored) = read_outbox(self.state.docs.as_ref(), &key, true, now).await? {
            return self.seen(&event, stored, now).await;
        }
        if let Some(legacy) = self.legacy_key(&event, now)
            && read_outbox(self.state.docs.as_ref(), legacy, true, now)
                .await?
                .is_some()
        {
            // Recorded before keys were scoped by source: a copy of an item seen then.
            return Ok(TrackOutcome::Duplicate);
        }
        // Message events change state, and so do conversation events a provider caused (the
        // hand-over protocol): their results are staged whole, so that a retry hands on exactly
        // these. Anything else is handed on as it came.
        let stateful = matches!(
            event.data.body,
            EventBody::Message(_) | EventBody::Conversation(_)
        );
        let item = event.clone();
        // Boxed: deriving holds a message and its record across many awaits.
        let Some(events) = Box::pin(self.derive(event, now)).await? else {
            // A status that moves nothing: nothing to stage, and a replay finds it stale again.
            return Ok(TrackOutcome::Stale);
        };
        let expires = now + self.config.remembered();
        let staged = if stateful {
            // Large events (a big provider payload, notes at their limit) are claim-checked
            // under a key of this attempt's own, so that an outbox staged by an earlier attempt
            // keeps pointing at what it staged.
            let blob_key = format!("{}#{}", outbox_key(&key), ulid::Ulid::new());
            Some(stash(&events, &blob_key, self.blobs.as_ref(), expires).await?)
        } else {
            None
        };
        let outbox = OutboxOut {
            by: item.id,
            events: staged.as_deref(),
        };
        let body = serde_json::to_string(&outbox)
            .map_err(|e| TrackError::Corrupt(crate::json_error(&e)))?;
        let write = DocumentWrite::new(None, now).expiring(expires);
        if !self
            .state
            .docs
            .put_json(&outbox_key(&key), &body, write)
            .await?
        {
            // Staged already: by an earlier attempt of this record whose answer was lost, or
            // by a copy from another request that got there first.
            let stored = read_outbox(self.state.docs.as_ref(), &key, false, now)
                .await?
                .ok_or_else(|| TrackError::Corrupt("the staged outbox vanished".into()))?;
            return self.seen(&item, stored, now).await;
        }
        self.hand_on(&events, stateful, now).await
    }

    /// The key `event` had before dedup keys were scoped by source, while such keys may still
    /// be remembered.
    fn legacy_key<'e>(&self, event: &'e InboundEvent, now: DateTime<Utc>) -> Option<&'e str> {
        let until = self.config.legacy_keys_until?;
        if now >= until {
            return None;
        }
        event
            .dedup_key
            .strip_prefix(event.data.source.id.as_str())?
            .strip_prefix(':')
    }

    /// An item whose outbox exists: the record that staged it hands on what it staged again;
    /// any other copy is a duplicate.
    async fn seen(
        &self,
        event: &InboundEvent,
        stored: Stored,
        now: DateTime<Utc>,
    ) -> Result<TrackOutcome, TrackError> {
        match stored {
            Stored::Outbox(Outbox { by, events }) if by == event.id => match events {
                Some(part) => {
                    let events = unstash_events(part, self.blobs.as_ref(), now).await?;
                    self.hand_on(&events, true, now).await
                }
                None => self.hand_on(std::slice::from_ref(event), false, now).await,
            },
            // Another copy, or an outbox of an earlier version (whose claim saw it through).
            _ => Ok(TrackOutcome::Duplicate),
        }
    }

    async fn hand_on(
        &self,
        events: &[InboundEvent],
        staged: bool,
        now: DateTime<Utc>,
    ) -> Result<TrackOutcome, TrackError> {
        if staged {
            self.sink.emit_staged(events, now).await?;
        } else {
            self.sink.emit(events, now).await?;
        }
        Ok(TrackOutcome::Emitted(
            events.iter().map(|e| e.event_type).collect(),
        ))
    }

    /// The events one item turns into, state updated on the way; `None` for a stale status.
    async fn derive(
        &self,
        mut event: InboundEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<InboundEvent>>, TrackError> {
        if matches!(event.data.body, EventBody::Conversation(_)) {
            // Boxed: the message path's future is large enough already.
            return Ok(Some(
                Box::pin(self.provider_conversation(event, now)).await?,
            ));
        }
        let EventBody::Message(body) = &event.data.body else {
            return Ok(Some(vec![event]));
        };
        // A copy: the event's own message is enriched on the way.
        let message = &body.message.clone();
        // Every state change is made on behalf of this item, so that its replay is recognised.
        let by = event.dedup_key.clone();
        let source = event.data.source.clone();
        let contact = body.contact.clone().unwrap_or_default();
        let customer = message
            .group_id
            .clone()
            .or(contact.key().map(str::to_owned));
        let at = event
            .occurred_at
            .unwrap_or(event.received_at)
            .min(event.received_at.max(now));

        // A pure status update: move the status forward, attach the message's conversation.
        if message.content.is_none() {
            let status = message
                .status
                .clone()
                .unwrap_or_else(|| MessageStatus::Other("unknown".into()));
            let (mut conversation_id, mut outbound) = match self
                .state
                .statuses
                .advance_status(&source, &message.id, &status, &by, now)
                .await?
            {
                StatusChange::Stale { .. } => return Ok(None),
                StatusChange::Advanced {
                    conversation_id,
                    outbound,
                    ..
                } => (conversation_id, outbound.map(|o| *o)),
            };
            if outbound.is_none()
                && let Some(send_id) = message
                    .biz_opaque_callback_data
                    .as_deref()
                    .and_then(|d| d.strip_prefix(SEND_TAG))
                && let Some(send) = self.state.statuses.send(send_id, now).await?
            {
                // The status outran the send's own record (the provider answered the send,
                // then the status came before the API recorded it): record it from the send.
                let kept = self
                    .state
                    .statuses
                    .record_outbound(
                        &source,
                        &message.id,
                        &send.record,
                        send.conversation_id,
                        now,
                    )
                    .await?;
                conversation_id = conversation_id.or(send.conversation_id);
                outbound = Some(kept);
            }
            if let EventBody::Message(body) = &mut event.data.body {
                enrich(&mut body.message, outbound.as_ref());
            }
            let mut out = Vec::new();
            let mut known = None;
            if let Some(customer) = &customer
                && message.group_id.is_none()
            {
                let (change, upserted) =
                    Box::pin(self.contact_event(&event, customer, &contact, now)).await?;
                out.extend(change);
                known = Some(Box::new(upserted));
            }
            let conversation_key = conversation_key(
                &source,
                message.group_id.as_deref(),
                customer.as_deref(),
                known.as_deref(),
            );
            event.data.conversation = self
                .conversation_of(conversation_id, conversation_key.as_ref(), now)
                .await?
                .map(Box::new);
            out.push(event);
            return Ok(Some(out));
        }

        let mut out = Vec::new();
        let mut known = None;
        if let Some(customer) = &customer {
            let (change, upserted) =
                Box::pin(self.contact_event(&event, customer, &contact, now)).await?;
            out.extend(change);
            known = Some(Box::new(upserted));
        }
        let conversation_key = conversation_key(
            &source,
            message.group_id.as_deref(),
            customer.as_deref(),
            known.as_deref(),
        );
        let outbound = message.direction == crate::model::Direction::Outbound;
        if outbound
            && let Some((record, conversation_id)) = self
                .state
                .statuses
                .outbound(&source, &message.id, now)
                .await?
            && record.via_api
        {
            // Sent through the API, which recorded it in its conversation: this is the
            // provider telling us it left (WAHA `fromMe`), not another message. It says `sent`
            // (or what its status says) once, like the status of the same message would.
            let status = message.status.clone().unwrap_or(MessageStatus::Sent);
            if let StatusChange::Stale { .. } = self
                .state
                .statuses
                .advance_status(&source, &message.id, &status, &by, now)
                .await?
            {
                return Ok(None);
            }
            let message_id = message.id.clone();
            if let EventBody::Message(body) = &mut event.data.body {
                enrich(&mut body.message, Some(&record));
            }
            event.data.conversation = self
                .conversation_of(conversation_id, conversation_key.as_ref(), now)
                .await?
                .map(Box::new);
            tracing::debug!(message_id, "echo of a message sent through the API");
            out.push(event);
            return Ok(Some(out));
        }
        let Some(conversation_key) = conversation_key else {
            out.push(event);
            return Ok(Some(out));
        };
        // The business's messages are recorded once whichever way wagate hears of them first
        // (the send API, or the provider's echo): both record them under the message's id.
        let activity_by = if outbound {
            outbound_activity_key(&source, &message.id)
        } else {
            by.clone()
        };
        let summary = message_summary(message, at);
        let Activity {
            conversation,
            created,
            ended,
        } = self
            .state
            .conversations
            .record_activity(
                &conversation_key,
                &source,
                MessageActivity {
                    contact: &contact,
                    customer: known
                        .as_ref()
                        .filter(|_| message.group_id.is_none())
                        .map(|u| u.change.contact()),
                    summary: &summary,
                    at,
                },
                &activity_by,
                (self.config.idle, self.config.lease),
                now,
            )
            .await?;
        // Statuses come for the business's messages: those are linked to their conversation
        // (a status attaches it), a customer's are not (nothing would read the link).
        if outbound {
            self.state
                .statuses
                .link_message(
                    &source,
                    &message.id,
                    conversation.id,
                    message.status.as_ref(),
                    now,
                )
                .await?;
            let record = OutboundRecord {
                content: message.content.clone(),
                campaign_id: None,
                metadata: None,
                to: Some(contact.clone()),
                sent_at: at,
                via_api: false,
            };
            self.state
                .statuses
                .record_outbound(&source, &message.id, &record, Some(conversation.id), now)
                .await?;
        }
        if let Some(done) = ended {
            out.push(conversation_event(
                &event,
                EventType::ConversationEnded,
                done.ended_event_id,
                &done.conversation,
                now,
            ));
        }
        if created {
            out.push(conversation_event(
                &event,
                EventType::ConversationCreated,
                Some(created_event_id(&conversation)),
                &conversation,
                now,
            ));
        }
        event.data.conversation = Some(Box::new(conversation));
        out.push(event);
        Ok(Some(out))
    }

    /// Conversation `id` if the message was linked to one, else the customer's open one.
    async fn conversation_of(
        &self,
        id: Option<crate::ids::ConversationId>,
        key: Option<&ConversationKey>,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::model::Conversation>, TrackError> {
        Ok(match (id, key) {
            (Some(id), _) => self
                .state
                .conversations
                .conversation(id, now)
                .await?
                .map(|d| d.conversation),
            (None, Some(k)) => self.state.conversations.active_conversation(k, now).await?,
            (None, None) => None,
        })
    }

    /// A conversation event a provider caused (Meta's hand-over protocol: a transfer or a
    /// hand-off request, naming the customer): their open conversation is changed as the API
    /// changes it (a transfer sets the assignee and answers a pending hand-off; a request is
    /// recorded) and attached. The change is marked with the item, so a replay finds it made
    /// and changes nothing twice. With no conversation open (or no customer named), the event
    /// goes on with `conversation: null`: nothing verified is dropped.
    async fn provider_conversation(
        &self,
        mut event: InboundEvent,
        now: DateTime<Utc>,
    ) -> Result<Vec<InboundEvent>, TrackError> {
        use self::state::conversations::{assign, request_handoff};
        let EventBody::Conversation(body) = &event.data.body else {
            return Ok(vec![event]);
        };
        let (transfer, handoff) = (body.transfer.clone(), body.handoff.clone());
        let contact = body.contact.clone().unwrap_or_default();
        let at = event
            .occurred_at
            .unwrap_or(event.received_at)
            .min(event.received_at.max(now));
        // Messages key conversations by the user id when there is one, else the phone number:
        // look under both, as either may have opened it.
        let mut open = None;
        for customer in [contact.user_id.as_deref(), contact.wa_id.as_deref()]
            .into_iter()
            .flatten()
        {
            let Some(key) = ConversationKey::new(&event.data.source, Some(customer)) else {
                continue;
            };
            open = self
                .state
                .conversations
                .active_conversation(&key, now)
                .await?;
            if open.is_some() {
                break;
            }
        }
        let Some(open) = open else {
            event.data.conversation = None;
            return Ok(vec![event]);
        };
        let by = event.dedup_key.clone();
        let mut applied = false;
        let doc = self
            .state
            .conversations
            .try_update_conversation(open.id, now, |d| {
                applied = d.was_applied(&by);
                if applied || d.conversation.status != crate::model::ConversationStatus::Active {
                    return false;
                }
                if let Some(t) = &transfer {
                    assign(&mut d.conversation, t, at);
                }
                if let Some(h) = &handoff {
                    request_handoff(&mut d.conversation, h, at);
                }
                d.mark_applied(&by);
                applied = true;
                true
            })
            .await?;
        // Ended between the look-up and the change (and not by this item's earlier attempt
        // having changed it first): no conversation was open for it.
        event.data.conversation = doc.filter(|_| applied).map(|d| Box::new(d.conversation));
        Ok(vec![event])
    }

    /// The contact of the customer of `event` (`customer` names them when its profile has no
    /// id) with its primary key, and `whatsapp.contact.created|updated` if it is new or changed
    /// (an update lists each changed field).
    async fn contact_event(
        &self,
        event: &InboundEvent,
        customer: &str,
        profile: &crate::model::ContactProfile,
        now: DateTime<Utc>,
    ) -> Result<(Option<InboundEvent>, Upserted), TrackError> {
        let upserted = self
            .state
            .contacts
            .upsert(&event.data.source, customer, profile, &event.dedup_key, now)
            .await?;
        let (event_type, body) = match &upserted.change {
            ContactChange::Unchanged(_) => return Ok((None, upserted)),
            ContactChange::Created(contact) => (
                EventType::ContactCreated,
                ContactBody {
                    contact: contact.clone(),
                    previous: None,
                    changes: Vec::new(),
                },
            ),
            ContactChange::Updated {
                contact,
                previous,
                changes,
            } => (
                EventType::ContactUpdated,
                ContactBody {
                    contact: contact.clone(),
                    previous: Some(previous.clone()),
                    changes: changes.clone(),
                },
            ),
        };
        let change = derived(event, event_type, None, EventBody::contact(body), now);
        Ok((Some(change), upserted))
    }
}

/// The conversation key of an item: its group's, else its customer contact's primary key (the
/// same whichever id the provider used this time), else the id it carried.
fn conversation_key(
    source: &crate::model::SourceInfo,
    group_id: Option<&str>,
    customer: Option<&str>,
    contact: Option<&Upserted>,
) -> Option<ConversationKey> {
    match group_id {
        Some(group) => ConversationKey::new(source, Some(group)),
        None => ConversationKey::new(source, contact.map(|u| u.primary_key.as_str()).or(customer)),
    }
}

/// What `biz_opaque_callback_data` of a message sent through the API starts with; the send's
/// id follows.
pub const SEND_TAG: &str = "wagate:";

/// The id of `whatsapp.conversation.created` for `conversation`: fixed by the conversation, so
/// whichever way its first message is heard of (the send API or the provider's echo), the
/// event is the same one.
pub fn created_event_id(conversation: &crate::model::Conversation) -> EventId {
    EventId::from_ulid(conversation.id.ulid())
}

/// The item key under which the business's message `message_id` is recorded in its
/// conversation, by the send API and by track alike.
pub fn outbound_activity_key(source: &crate::model::SourceInfo, message_id: &str) -> String {
    format!("outbound:{}:{message_id}", source.id)
}

/// Adds what the business sent (`record`) to a status or echo of its message: the content
/// when the provider did not repeat it, the campaign and the send's metadata. wagate's own
/// callback tag is taken off.
pub fn enrich(message: &mut crate::model::Message, record: Option<&OutboundRecord>) {
    if message
        .biz_opaque_callback_data
        .as_deref()
        .is_some_and(|d| d.starts_with(SEND_TAG))
    {
        message.biz_opaque_callback_data = None;
    }
    let Some(record) = record else {
        return;
    };
    if message.content.is_none() {
        message.content.clone_from(&record.content);
    }
    if message.campaign_id.is_none() {
        message.campaign_id.clone_from(&record.campaign_id);
    }
    if message.metadata.is_none() {
        message.metadata.clone_from(&record.metadata);
    }
}

/// An event caused by `parent` (same source and request), keyed after it.
fn derived(
    parent: &InboundEvent,
    event_type: EventType,
    id: Option<EventId>,
    body: EventBody,
    now: DateTime<Utc>,
) -> InboundEvent {
    InboundEvent {
        id: id.unwrap_or_default(),
        event_type,
        dedup_key: format!("{}#{}", parent.dedup_key, event_type.as_str()),
        received_at: now,
        occurred_at: parent.occurred_at,
        request_id: parent.request_id.clone(),
        data: EventData::new(parent.data.source.clone(), body),
    }
}

/// The `whatsapp.conversation.*` event `event_type` about `conversation`, caused by `parent`.
pub fn conversation_event(
    parent: &InboundEvent,
    event_type: EventType,
    id: Option<EventId>,
    conversation: &crate::model::Conversation,
    now: DateTime<Utc>,
) -> InboundEvent {
    let body = ConversationBody {
        reason: conversation.end_reason,
        ..Default::default()
    };
    let mut e = derived(parent, event_type, id, EventBody::conversation(body), now);
    e.data.conversation = Some(Box::new(conversation.clone()));
    e
}

#[cfg(test)]
mod campaign_tests;
#[cfg(test)]
mod contact_tests;
#[cfg(test)]
mod handover_tests;
#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod tests;
