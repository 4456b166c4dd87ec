//! Conversations over the [`DocumentStore`]: `conv-active#{conversation key}` points at the
//! open (or last) conversation of a customer, `conv#{conversation id}` holds the conversation,
//! indexed in `conv-active` by last activity while open, in `conv-ending` while its `ended` event
//! is being handed off and in `conv-ended` after. Each message recorded, conversation opened or
//! ended on behalf of an item is marked with it, so a replay gets the outcome the first attempt
//! got and counts nothing twice. A change made through the API that emits an event (a transfer,
//! a hand-off request) keeps that event in the conversation until it is handed on
//! ([`ChangeEvent`]); who handles a conversation ([`assign`]) and hand-off requests
//! ([`request_handoff`]) are changed alike by the API and the provider's hand-over protocol.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::common::{ROUNDS, StateError, after, decode, remember, save};
use crate::ids::{ConversationId, EventId};
use crate::model::{
    Assignee, Contact, ContactProfile, Conversation, ConversationStatus, Direction, EndReason,
    Handoff, InboundEvent, MessageSummary, SourceInfo, Transfer,
};
use crate::ports::{DocumentStore, DocumentWrite, IndexEntry, Versioned, VersionedJson};

/// Index list of open conversations, ordered by last activity.
pub const ACTIVE: &str = "conv-active";
/// Index list of conversations whose `ended` event has not been handed off yet.
pub const ENDING: &str = "conv-ending";
/// Index list of ended conversations whose event went out, by end time.
pub const ENDED: &str = "conv-ended";
/// Partitions each conversation list is spread over (`conv-active#0` … `#31`, by a hash of the
/// conversation id): at 10,000 messages a second, each changes its index key under 700 times a
/// second, below DynamoDB's 1,000 writes a second per partition. Readers also read the unsharded
/// partition, where entries written before sharding stay until their conversation changes.
pub const CONVERSATION_SHARDS: u32 = 32;

/// The partition conversation `id` is listed in, in list `base`.
fn partition_of(base: &str, id: &ConversationId) -> String {
    crate::ports::shard_partition(base, &id.to_string(), CONVERSATION_SHARDS)
}

/// Every partition of list `base`.
fn partitions(base: &str) -> Vec<String> {
    crate::ports::sharded_partitions(base, CONVERSATION_SHARDS)
}

/// Digests of the latest items applied to a conversation: a retry comes within the queue's
/// visibility timeout, so only a conversation with more messages than this in that time could
/// count one twice.
const APPLIED: usize = 32;

/// A short digest of an item key (48 bits: a false match needs one in 2^48 among 32).
fn digest(by: &str) -> String {
    hex::encode(&Sha256::digest(by.as_bytes())[..6])
}

/// How conversations are kept, read alike by every function that writes them (track, sweep,
/// admin), so they agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationSettings {
    /// `CONVERSATION_IDLE_HOURS` (default 24): inactivity after which a conversation ends.
    pub idle: Duration,
    /// `MESSAGE_TTL_DAYS` (default 30): how long statuses and conversations are remembered.
    pub message_ttl: Duration,
    /// `RECENT_MESSAGES` (default 5): messages kept in a conversation's context.
    pub recent_messages: usize,
}

impl ConversationSettings {
    /// The environment variables the functions read them from (`Env::conversations` in the
    /// AWS adapters).
    pub const VARIABLES: [&'static str; 3] = [
        "CONVERSATION_IDLE_HOURS",
        "MESSAGE_TTL_DAYS",
        "RECENT_MESSAGES",
    ];
}

/// The conversation store.
#[derive(Debug, Clone)]
pub struct Conversations {
    /// Where conversations, their pointers and their index entries are kept.
    pub docs: Arc<dyn DocumentStore>,
    /// How they are kept (`recent_messages` bounds their context; the sweep ends them after
    /// `idle`).
    pub settings: ConversationSettings,
}

/// What `conv-active#{key}` holds: the open (or last) conversation of the key, and the one it
/// replaced, so a retry of the item that replaced it can still find what it ended. Written
/// before as a bare id, which still reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Pointer {
    Full {
        id: ConversationId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaced: Option<ConversationId>,
        /// When it was claimed (the conversation is written right after).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[serde(
            serialize_with = "crate::rfc3339::option",
            deserialize_with = "crate::rfc3339::deserialize_option"
        )]
        at: Option<DateTime<Utc>>,
    },
    Bare(ConversationId),
}

impl Pointer {
    fn id(&self) -> ConversationId {
        match self {
            Self::Full { id, .. } | Self::Bare(id) => *id,
        }
    }

    fn replaced(&self) -> Option<ConversationId> {
        match self {
            Self::Full { replaced, .. } => *replaced,
            Self::Bare(_) => None,
        }
    }

    fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Full { at, .. } => *at,
            Self::Bare(_) => None,
        }
    }
}

/// Identifies a conversation: source + business number + customer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationKey(String);

impl ConversationKey {
    /// The key for `customer` (user id, phone number or group id) on the business side of
    /// `source`; `None` when the customer is unknown.
    pub fn new(source: &SourceInfo, customer: Option<&str>) -> Option<Self> {
        let customer = customer.filter(|c| !c.is_empty())?;
        let business = source.business_id.as_deref().unwrap_or("-");
        Some(Self(format!("{}|{business}|{customer}", source.id)))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which conversations a listing keeps; every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    /// Only this source's.
    pub source_id: Option<String>,
    /// The contact's phone number, as digits ([`super::contacts::phone_digits`]).
    pub phone: Option<String>,
    /// The contact's user id (business-scoped user id, WAHA `@lid`), exactly.
    pub user_id: Option<String>,
    /// Carries this label (case-insensitive).
    pub label: Option<String>,
    /// Contains this text, lowercased, in the id, phone number, user id, username, name,
    /// external id or a label (compared lowercased).
    pub text: Option<String>,
}

impl ConversationFilter {
    /// Whether `doc` passes.
    pub fn matches(&self, doc: &ConversationDoc) -> bool {
        let c = &doc.conversation;
        let contact = &c.contact;
        if self
            .source_id
            .as_deref()
            .is_some_and(|s| doc.source.id.as_str() != s)
        {
            return false;
        }
        if self
            .phone
            .as_deref()
            .is_some_and(|p| contact.wa_id.as_deref() != Some(p))
        {
            return false;
        }
        if self
            .user_id
            .as_deref()
            .is_some_and(|u| contact.user_id.as_deref() != Some(u))
        {
            return false;
        }
        if self
            .label
            .as_deref()
            .is_some_and(|l| !c.labels.iter().any(|have| have.eq_ignore_ascii_case(l)))
        {
            return false;
        }
        if let Some(needle) = &self.text {
            let id = c.id.to_string();
            let fields = [
                Some(id.as_str()),
                contact.wa_id.as_deref(),
                contact.user_id.as_deref(),
                contact.username.as_deref(),
                contact.name.as_deref(),
                c.external_id.as_deref(),
            ];
            let found = fields
                .into_iter()
                .flatten()
                .chain(c.labels.iter().map(String::as_str))
                .any(|f| f.to_lowercase().contains(needle.as_str()));
            if !found {
                return false;
            }
        }
        true
    }
}

/// A conversation as stored: the public object plus what sweeping needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationDoc {
    /// The conversation key.
    pub key: String,
    /// The source it belongs to (for events emitted without a triggering message).
    pub source: SourceInfo,
    /// The conversation.
    pub conversation: Conversation,
    /// The id of its `whatsapp.conversation.ended` event, fixed when it ends so a repeated
    /// hand-off sends the same event.
    #[serde(default)]
    pub ended_event_id: Option<EventId>,
    /// Whether that event has been handed on (until then the conversation is listed under
    /// [`ENDING`], after under [`ENDED`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended_handed_off: bool,
    /// The item (dedup key) whose message opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<String>,
    /// The conversation that item ended as idle before opening this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_before: Option<ConversationId>,
    /// The item whose message ended it as idle (not the sweep or the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    /// Digests of the latest items applied to it ([`APPLIED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<String>,
    /// Events of changes made through the API: whole while still to be handed on, then by id
    /// only (the latest [`CHANGE_EVENTS`]), so a retried request finds its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<ChangeEvent>,
}

/// Handed-on API change events a conversation remembers (by id) for retried requests: retries
/// come within minutes, in which a conversation sees few API changes.
pub const CHANGE_EVENTS: usize = 8;

/// An event a change made through the API produced (a transfer, a hand-off request), written
/// with the change in one conditional write: a retry of the same request (same
/// `Idempotency-Key`, after a failure or a crash before the hand-off) hands on this event, same
/// id and data, instead of making another; the next change hands it on first if its request
/// never came back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The request that made the change (a digest of its route and key).
    pub by: String,
    /// The event's id.
    pub id: EventId,
    /// The event, until it is handed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Box<InboundEvent>>,
}

impl ConversationDoc {
    /// Whether item `by` was applied to it (among the latest few items applied).
    pub fn was_applied(&self, by: &str) -> bool {
        self.applied.contains(&digest(by))
    }

    /// Records that item `by` was applied.
    pub fn mark_applied(&mut self, by: &str) {
        remember(&mut self.applied, digest(by), APPLIED);
    }

    /// The API change events still to be handed on, oldest first.
    pub fn pending_events(&self) -> Vec<InboundEvent> {
        self.events
            .iter()
            .filter_map(|e| e.pending.as_deref().cloned())
            .collect()
    }

    /// Records API change events `ids` as handed on: their ids stay (the latest
    /// [`CHANGE_EVENTS`] handed on ones), their events go.
    pub fn handed_on(&mut self, ids: &[EventId]) {
        for e in &mut self.events {
            if ids.contains(&e.id) {
                e.pending = None;
            }
        }
        let done = self.events.iter().filter(|e| e.pending.is_none()).count();
        let mut excess = done.saturating_sub(CHANGE_EVENTS);
        self.events.retain(|e| {
            let drop = excess > 0 && e.pending.is_none();
            if drop {
                excess -= 1;
            }
            !drop
        });
    }
}

/// Makes `c` handled by `transfer`'s agent and team from `at` (replacing who handled it), and
/// answers a pending hand-off: how the API and the provider's hand-over protocol both assign.
pub fn assign(c: &mut Conversation, transfer: &Transfer, at: DateTime<Utc>) {
    c.assignee = Some(Assignee {
        agent_id: transfer.to_agent.clone(),
        team_id: transfer.to_team.clone(),
        assigned_at: Some(at),
    });
    c.handoff = None;
}

/// Records that a hand-off to a human was asked for at `at` (replacing an earlier request).
pub fn request_handoff(c: &mut Conversation, handoff: &Handoff, at: DateTime<Utc>) {
    c.handoff = Some(Handoff {
        requested_at: handoff.requested_at.or(Some(at)),
        ..handoff.clone()
    });
}

/// One message as [`Conversations::record_activity`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct MessageActivity<'a> {
    /// The customer's profile from the message.
    pub contact: &'a ContactProfile,
    /// The customer's contact, when tracked (not for groups): its id and external id go on the
    /// conversation.
    pub customer: Option<&'a Contact>,
    /// The message's context line.
    pub summary: &'a MessageSummary,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// The outcome of [`Conversations::record_activity`].
#[derive(Debug, Clone)]
pub struct Activity {
    /// The conversation the message now belongs to.
    pub conversation: Conversation,
    /// True when this message opened it.
    pub created: bool,
    /// The previous conversation, ended here because it had been idle too long.
    pub ended: Option<ConversationDoc>,
}

/// Where an open conversation sits in the activity index: by the minute of its last activity.
/// Most messages of a conversation come within a minute of the one before, and a document
/// whose index key stays the same costs no index write (the index projects only keys).
fn active_entry(c: &Conversation) -> IndexEntry {
    IndexEntry {
        partition: partition_of(ACTIVE, &c.id),
        sort: format!("{}#{}", minute(c.last_active_at), c.id),
    }
}

/// `at` to the start of its minute, as the activity index writes it.
fn minute(at: DateTime<Utc>) -> String {
    let start = at
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at);
    start.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The activity index bound below which conversations may have been idle since `cutoff`:
/// every minute up to the cutoff's own, included.
pub fn idle_bound(cutoff: DateTime<Utc>) -> String {
    format!("{}#~", minute(cutoff))
}

/// What the sweep has to do (see [`Conversations::due`]).
#[derive(Debug, Clone)]
pub struct DueConversations {
    /// Open conversations that may be idle.
    pub idle: Vec<ConversationId>,
    /// The sort key to list the next page of them after.
    pub next: Option<String>,
    /// Ended conversations whose event is still to be handed off.
    pub ending: Vec<ConversationDoc>,
}

/// Where a conversation sits in the index: open ones by activity, ended ones by end time (the
/// sweep moves them from [`ENDING`] once their event is handed on).
pub fn index_entry(doc: &ConversationDoc) -> IndexEntry {
    let c = &doc.conversation;
    match (c.status, c.ended_at) {
        (ConversationStatus::Ended, Some(at)) if doc.ended_handed_off => IndexEntry {
            partition: partition_of(ENDED, &c.id),
            sort: format!(
                "{}#{}",
                at.to_rfc3339_opts(SecondsFormat::Millis, true),
                c.id
            ),
        },
        (ConversationStatus::Ended, Some(at)) => IndexEntry {
            partition: partition_of(ENDING, &c.id),
            sort: format!("{}#{}", activity_bound(at), c.id),
        },
        _ => active_entry(c),
    }
}

/// A page of conversations, most recent first, and the sort key to continue below.
#[derive(Debug, Clone)]
pub struct ConversationPage {
    /// The conversations.
    pub conversations: Vec<ConversationDoc>,
    /// Pass as `before` for the next page.
    pub next: Option<String>,
}

/// The index bound for "last active at or before `cutoff`": index sort keys are
/// `{time}#{id}`, and `~` sorts after every id character, so entries at exactly `cutoff` count.
pub fn activity_bound(cutoff: DateTime<Utc>) -> String {
    format!("{}#~", cutoff.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl Conversations {
    /// The conversation with this id.
    pub async fn conversation(
        &self,
        id: ConversationId,
        now: DateTime<Utc>,
    ) -> Result<Option<ConversationDoc>, StateError> {
        let key = format!("conv#{id}");
        match self.docs.get_json(&key, now).await? {
            Some(doc) => Ok(Some(decode(&key, &doc)?)),
            None => Ok(None),
        }
    }

    /// The open conversation for `key`, if any (without touching it).
    pub async fn active_conversation(
        &self,
        key: &ConversationKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Conversation>, StateError> {
        let pointer_key = format!("conv-active#{}", key.as_str());
        let Some(pointer) = self.docs.get_json(&pointer_key, now).await? else {
            return Ok(None);
        };
        let pointer: Pointer = decode(&pointer_key, &pointer)?;
        Ok(self
            .conversation(pointer.id(), now)
            .await?
            .map(|d| d.conversation)
            .filter(|c| c.status == ConversationStatus::Active))
    }

    /// Records a message (item `by`) in the customer's conversation: opens one if none is open
    /// (or the open one has been idle for `idle`, which is then ended), updates activity,
    /// counters and context. A replay of an item already recorded gets the same answer (the
    /// conversation it opened and the one it ended) and counts nothing twice.
    ///
    /// A pointer naming a conversation not written yet belongs to a worker opening it right
    /// now: this waits for it (briefly, then fails for a retry), and takes over only once the
    /// pointer is older than `lease`, when its worker can no longer be running.
    pub async fn record_activity(
        &self,
        key: &ConversationKey,
        source: &SourceInfo,
        message: MessageActivity<'_>,
        by: &str,
        (idle, lease): (Duration, Duration),
        now: DateTime<Utc>,
    ) -> Result<Activity, StateError> {
        let MessageActivity {
            contact,
            customer,
            summary,
            at,
        } = message;
        let pointer_key = format!("conv-active#{}", key.as_str());
        let mark = digest(by);
        let mut ended = None;
        for round in 0..ROUNDS {
            let pointer = self.docs.get_json(&pointer_key, now).await?;
            // The conversation the new pointer will say it replaced.
            let mut replaced = None;
            if let Some(versioned) = &pointer {
                let named: Pointer = decode(&pointer_key, versioned)?;
                let conv_key = format!("conv#{}", named.id());
                match self.docs.get_json(&conv_key, now).await? {
                    Some(doc) => {
                        let mut stored: ConversationDoc = decode(&conv_key, &doc)?;
                        if stored.opened_by.as_deref() == Some(by) {
                            let ended = self.ended_by(stored.ended_before, by, now).await?;
                            return Ok(Activity {
                                conversation: stored.conversation,
                                created: true,
                                ended,
                            });
                        }
                        if stored.applied.contains(&mark) {
                            // It joined this one; it may have ended the one before on the way
                            // (and lost the pointer race to the writer of this one).
                            let ended = self.ended_by(named.replaced(), by, now).await?;
                            return Ok(Activity {
                                conversation: stored.conversation,
                                created: false,
                                ended,
                            });
                        }
                        let open = stored.conversation.status == ConversationStatus::Active;
                        if open && after(stored.conversation.last_active_at, idle) > at {
                            self.touch(&mut stored.conversation, (contact, customer), summary, at);
                            remember(&mut stored.applied, mark.clone(), APPLIED);
                            let entry = active_entry(&stored.conversation);
                            let write = DocumentWrite::new(Some(doc.version), now).indexed(&entry);
                            if save(self.docs.as_ref(), &conv_key, &stored, write).await? {
                                return Ok(Activity {
                                    conversation: stored.conversation,
                                    created: false,
                                    ended,
                                });
                            }
                            continue;
                        }
                        if open {
                            // Idle past the window and not swept yet: end it here, first.
                            match self
                                .end(&conv_key, doc, EndReason::Inactivity, Some(by), now)
                                .await?
                            {
                                Some(done) => ended = Some(done),
                                None => continue,
                            }
                        } else if stored.ended_by.as_deref() == Some(by) {
                            // This item ended it before and failed after.
                            ended = Some(stored);
                        }
                        replaced = Some(named.id());
                    }
                    None => {
                        let opening = named.at().is_some_and(|t| after(t, lease) > now);
                        if opening {
                            if round + 1 == ROUNDS {
                                break; // no use sleeping before giving up
                            }
                            // Another worker is between the pointer and the conversation.
                            tokio::time::sleep(Duration::from_millis(25 * (1 << round.min(4))))
                                .await;
                            continue;
                        }
                        // Named but never written: an attempt died between the pointer and
                        // the conversation (perhaps this item's, after ending the one before).
                        replaced = named.replaced();
                        if ended.is_none() {
                            ended = self.ended_by(replaced, by, now).await?;
                        }
                    }
                }
            }
            // No open conversation: claim the pointer for a new one, then write it.
            let id = ConversationId::new();
            let write = DocumentWrite::new(pointer.as_ref().map(|p| p.version), now);
            if !save(
                self.docs.as_ref(),
                &pointer_key,
                &Pointer::Full {
                    id,
                    replaced,
                    at: Some(now),
                },
                write,
            )
            .await?
            {
                continue;
            }
            let mut conversation = Conversation::opened(
                id,
                contact.clone(),
                source.business_id.clone().unwrap_or_default(),
                at,
            );
            self.touch(&mut conversation, (contact, customer), summary, at);
            let stored = ConversationDoc {
                key: key.as_str().to_owned(),
                source: source.clone(),
                conversation,
                ended_event_id: None,
                ended_handed_off: false,
                opened_by: Some(by.to_owned()),
                ended_before: ended.as_ref().map(|d| d.conversation.id),
                ended_by: None,
                applied: vec![mark.clone()],
                events: Vec::new(),
            };
            let conv_key = format!("conv#{id}");
            let entry = active_entry(&stored.conversation);
            let write = DocumentWrite::new(None, now).indexed(&entry);
            if save(self.docs.as_ref(), &conv_key, &stored, write).await? {
                return Ok(Activity {
                    conversation: stored.conversation,
                    created: true,
                    ended,
                });
            }
        }
        Err(StateError::Contention(pointer_key))
    }

    /// Conversation `id` if item `by` ended it.
    async fn ended_by(
        &self,
        id: Option<ConversationId>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ConversationDoc>, StateError> {
        let Some(id) = id else {
            return Ok(None);
        };
        Ok(self
            .conversation(id, now)
            .await?
            .filter(|d| d.ended_by.as_deref() == Some(by)))
    }

    /// Ends the open conversation stored under `conv_key` (as read in `doc`): marks it ended
    /// (by item `by`, when a message ended it), fixes its `ended` event id and lists it under
    /// [`ENDING`] until the event is handed off. `None` when someone changed it meanwhile
    /// (re-read and decide again).
    async fn end(
        &self,
        conv_key: &str,
        doc: VersionedJson,
        reason: EndReason,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<ConversationDoc>, StateError> {
        let mut stored: ConversationDoc = decode(conv_key, &doc)?;
        stored.conversation.status = ConversationStatus::Ended;
        stored.conversation.ended_at = Some(now);
        stored.conversation.end_reason = Some(reason);
        stored.ended_event_id = Some(EventId::new());
        stored.ended_handed_off = false;
        stored.ended_by = by.map(str::to_owned);
        let entry = index_entry(&stored);
        let write = DocumentWrite::new(Some(doc.version), now).indexed(&entry);
        Ok(save(self.docs.as_ref(), conv_key, &stored, write)
            .await?
            .then_some(stored))
    }

    /// Ends conversation `id` now (sweep, or closed through the API) unless already ended;
    /// returns it when this call ended it. Idempotent.
    pub async fn end_conversation(
        &self,
        id: ConversationId,
        reason: EndReason,
        idle_cutoff: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<ConversationDoc>, StateError> {
        let conv_key = format!("conv#{id}");
        for _ in 0..ROUNDS {
            let Some(doc) = self.docs.get_json(&conv_key, now).await? else {
                return Ok(None);
            };
            let stored: ConversationDoc = decode(&conv_key, &doc)?;
            if stored.conversation.status == ConversationStatus::Ended {
                return Ok(None);
            }
            // The sweep's index may lag: a message may have revived it since it was listed.
            if idle_cutoff.is_some_and(|cutoff| stored.conversation.last_active_at > cutoff) {
                return Ok(None);
            }
            if let Some(done) = self.end(&conv_key, doc, reason, None, now).await? {
                return Ok(Some(done));
            }
        }
        Err(StateError::Contention(conv_key))
    }

    /// Takes an ended conversation off the [`ENDING`] list once its event is handed off.
    pub async fn ended_handed_off(
        &self,
        id: ConversationId,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let conv_key = format!("conv#{id}");
        for _ in 0..ROUNDS {
            let Some(doc) = self.docs.get_json(&conv_key, now).await? else {
                return Ok(());
            };
            let mut stored: ConversationDoc = decode(&conv_key, &doc)?;
            stored.ended_handed_off = true;
            // The sweep hands on the API changes' events left pending with the `ended` one.
            let pending: Vec<EventId> = stored
                .events
                .iter()
                .filter(|e| e.pending.is_some())
                .map(|e| e.id)
                .collect();
            stored.handed_on(&pending);
            let entry = index_entry(&stored);
            let write = DocumentWrite::new(Some(doc.version), now).indexed(&entry);
            if save(self.docs.as_ref(), &conv_key, &stored, write).await? {
                return Ok(());
            }
        }
        Err(StateError::Contention(conv_key))
    }

    /// Changes conversation `id` with `change` (labels, notes, …) and saves it where it is in
    /// the index; `None` if there is no such conversation. Retries on concurrent writes.
    pub async fn update_conversation(
        &self,
        id: ConversationId,
        now: DateTime<Utc>,
        change: impl Fn(&mut ConversationDoc),
    ) -> Result<Option<ConversationDoc>, StateError> {
        self.try_update_conversation(id, now, |d| {
            change(d);
            true
        })
        .await
    }

    /// Like [`Conversations::update_conversation`], but `change` decides from what it finds
    /// whether to write (`false`: nothing to change, e.g. a replay that finds its own mark);
    /// the conversation as found or as written. `change` runs again on each round.
    pub async fn try_update_conversation(
        &self,
        id: ConversationId,
        now: DateTime<Utc>,
        mut change: impl FnMut(&mut ConversationDoc) -> bool,
    ) -> Result<Option<ConversationDoc>, StateError> {
        let conv_key = format!("conv#{id}");
        for _ in 0..ROUNDS {
            let Some(doc) = self.docs.get_json(&conv_key, now).await? else {
                return Ok(None);
            };
            let mut stored: ConversationDoc = decode(&conv_key, &doc)?;
            if !change(&mut stored) {
                return Ok(Some(stored));
            }
            let entry = index_entry(&stored);
            let write = DocumentWrite::new(Some(doc.version), now).indexed(&entry);
            if save(self.docs.as_ref(), &conv_key, &stored, write).await? {
                return Ok(Some(stored));
            }
        }
        Err(StateError::Contention(conv_key))
    }

    /// Conversations, most recent first: open ones by the minute of their last activity (then
    /// newest id first), or ended ones by end time; only those `filter` matches. Starts below
    /// the sort key `before`.
    pub async fn list_conversations(
        &self,
        ended: bool,
        filter: &ConversationFilter,
        before: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<ConversationPage, StateError> {
        let list = if ended { ENDED } else { ACTIVE };
        let (conversations, next) = crate::ports::merged_page(
            self.docs.as_ref(),
            &partitions(list),
            (None, before),
            limit,
            now,
            |l| {
                let doc: ConversationDoc = decode(&l.key, &l.doc)?;
                Ok::<_, StateError>(filter.matches(&doc).then_some(doc))
            },
        )
        .await?;
        Ok(ConversationPage {
            conversations: conversations.into_iter().map(|(_, c)| c).collect(),
            next,
        })
    }

    /// A page of open conversations listed as last active in `cutoff`'s minute or before (the
    /// sweep re-reads each: one active later in that minute is not idle yet), after the sort
    /// key `after`, with the sort key to continue after; and ended ones whose event is still
    /// to be handed off (oldest first, `limit` of each).
    pub async fn due(
        &self,
        cutoff: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<DueConversations, StateError> {
        let bound = idle_bound(cutoff);
        let idle = crate::ports::merged_ascending(
            self.docs.as_ref(),
            &partitions(ACTIVE),
            after,
            Some(&bound),
            limit,
            now,
        )
        .await?;
        let ending: Vec<(String, Versioned)> = crate::ports::merged_ascending(
            self.docs.as_ref(),
            &partitions(ENDING),
            None,
            Some(&activity_bound(now + chrono::Duration::seconds(1))),
            limit,
            now,
        )
        .await?
        .into_iter()
        .map(|l| (l.key, l.doc))
        .collect();
        let next = idle.last().map(|l| l.sort.clone());
        let idle = idle
            .iter()
            .map(|l| decode::<ConversationDoc>(&l.key, &l.doc).map(|c| c.conversation.id))
            .collect::<Result<Vec<_>, _>>()?;
        let ending = ending
            .iter()
            .map(|(k, d)| decode::<ConversationDoc>(k, d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DueConversations { idle, next, ending })
    }

    /// Applies one message to a conversation: activity time, counters, context, latest profile.
    fn touch(
        &self,
        c: &mut Conversation,
        (contact, customer): (&ContactProfile, Option<&Contact>),
        summary: &MessageSummary,
        at: DateTime<Utc>,
    ) {
        c.last_active_at = c.last_active_at.max(at);
        if let Some(customer) = customer {
            c.contact_id = Some(customer.id.clone());
            c.external_id.clone_from(&customer.external_id);
        }
        c.contact = ContactProfile {
            wa_id: contact.wa_id.clone().or(c.contact.wa_id.take()),
            user_id: contact.user_id.clone().or(c.contact.user_id.take()),
            username: contact.username.clone().or(c.contact.username.take()),
            name: contact.name.clone().or(c.contact.name.take()),
        };
        match summary.direction {
            Direction::Inbound => {
                c.inbound_count += 1;
                c.context.last_inbound_message = Some(summary.clone());
            }
            Direction::Outbound => {
                c.outbound_count += 1;
                c.context.last_outbound_message = Some(summary.clone());
            }
        }
        let recent = &mut c.context.recent_messages;
        recent.push(summary.clone());
        recent.sort_by_key(|m| m.timestamp);
        let excess = recent
            .len()
            .saturating_sub(self.settings.recent_messages.max(1));
        recent.drain(..excess);
        c.context.summary = Some(summary_line(c));
    }
}

/// One plain-text line about a conversation, e.g. `3 messages from Alice, 1 reply; last from
/// Alice: "Where is my order?"`.
pub fn summary_line(c: &Conversation) -> String {
    let who = c
        .contact
        .name
        .clone()
        .or(c.contact.wa_id.clone())
        .unwrap_or_else(|| "the customer".to_owned());
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let mut line = format!(
        "{} from {who}, {}",
        plural(c.inbound_count, "message", "messages"),
        plural(c.outbound_count, "reply", "replies")
    );
    if let Some(last) = c.context.recent_messages.last() {
        let from = match last.direction {
            Direction::Inbound => who.as_str(),
            Direction::Outbound => "the business",
        };
        let what = last
            .text
            .as_deref()
            .map(|t| format!("\"{t}\""))
            .or(last.message_type.clone())
            .unwrap_or_default();
        line.push_str(&format!("; last from {from}: {what}"));
    }
    line
}

/// The context line for a message: id, direction, type and up to 160 characters of text.
pub fn message_summary(message: &crate::model::Message, at: DateTime<Utc>) -> MessageSummary {
    let text = message.content.as_ref().and_then(|c| c.preview()).map(|t| {
        let mut short: String = t.chars().take(160).collect();
        if short.len() < t.len() {
            short.push('…');
        }
        short
    });
    MessageSummary {
        id: message.id.clone(),
        direction: message.direction,
        message_type: message.message_type().map(str::to_owned),
        text,
        media: message
            .content
            .as_ref()
            .and_then(crate::model::MessageContent::media_ref),
        campaign_id: message.campaign_id.clone(),
        timestamp: Some(message.timestamp.unwrap_or(at)),
    }
}
