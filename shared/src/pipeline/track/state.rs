//! The track stage's state over the [`DocumentStore`]: message statuses, contacts and
//! conversations, each written with optimistic concurrency (read, decide, write if the version
//! is unchanged, else read again).
//!
//! Document keys: `msg#{source}#{message id}` (status and conversation of one message),
//! `contact#{contact id}`, `conv-active#{conversation key}` (pointer to the open conversation),
//! `conv#{conversation id}` (the conversation; indexed in `conv-active` by last activity while
//! open, in `conv-ending` while its `ended` event is being handed off).
//!
//! Replays: every change made on behalf of a tracked item records that item's dedup key (`by`):
//! the status moves it made with the status before, the contact changes with the profile before,
//! the conversation it opened or ended, a digest among the latest items applied to a
//! conversation. A retry of the item after any failure (a crash, a write that applied and still
//! reported an error) finds its own mark and gets the outcome the first attempt got, instead of
//! "stale", "unchanged" or a counter applied twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ids::{ConversationId, EventId};
use crate::model::{
    Contact, ContactProfile, Conversation, ConversationContext, ConversationStatus, Direction,
    EndReason, MessageStatus, MessageSummary, SourceInfo,
};
use crate::ports::{BackendError, DocumentStore, DocumentWrite, IndexEntry, Versioned};

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
/// Optimistic-concurrency rounds before giving up (the caller retries the whole item later).
const ROUNDS: usize = 8;

/// Marks of the latest items kept per message status and per contact: more than a message has
/// statuses, more than a contact changes while one item is retried.
const MARKS: usize = 8;

/// Digests of the latest items applied to a conversation: a retry comes within the queue's
/// visibility timeout, so only a conversation with more messages than this in that time could
/// count one twice.
const APPLIED: usize = 32;

/// A change made on behalf of item `by`, with what was there before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Mark<T> {
    by: String,
    before: T,
}

/// Appends `mark`, keeping the latest `keep`.
fn remember<T>(marks: &mut Vec<T>, mark: T, keep: usize) {
    marks.push(mark);
    let excess = marks.len().saturating_sub(keep);
    marks.drain(..excess);
}

/// A short digest of an item key (48 bits: a false match needs one in 2^48 among 32).
fn digest(by: &str) -> String {
    hex::encode(&Sha256::digest(by.as_bytes())[..6])
}

/// A state operation lost every round to concurrent writers, or the backend failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Other writers kept changing the same document.
    #[error("document {0} kept changing under concurrent writers")]
    Contention(String),
    /// The store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A stored document did not decode.
    #[error("stored document {key} is not valid: {reason}")]
    Corrupt {
        /// The document key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl StateError {
    /// Whether retrying the item later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Contention(_) => true,
            Self::Backend(e) => e.is_retryable(),
            Self::Corrupt { .. } => false,
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, doc: &Versioned) -> Result<T, StateError> {
    serde_json::from_value(doc.body.clone()).map_err(|e| StateError::Corrupt {
        key: key.to_owned(),
        reason: crate::json_error(&e),
    })
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Value, StateError> {
    serde_json::to_value(value).map_err(|e| StateError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The state of the track stage.
#[derive(Debug, Clone)]
pub struct State {
    /// Where everything is kept.
    pub docs: Arc<dyn DocumentStore>,
    /// How long message status documents live.
    pub message_ttl: Duration,
    /// Messages kept in a conversation's `recent_messages`.
    pub recent_messages: usize,
}

/// What is known of one message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MessageDoc {
    #[serde(default)]
    status: Option<MessageStatus>,
    #[serde(default)]
    conversation_id: Option<ConversationId>,
    /// The items that moved the status, each with the status before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    advanced_by: Vec<Mark<Option<MessageStatus>>>,
}

/// A contact as stored: the public object and the items that created or changed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ContactDoc {
    #[serde(flatten)]
    contact: Contact,
    /// Each with the profile before (none: it created the contact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changed_by: Vec<Mark<Option<ContactProfile>>>,
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

/// The outcome of [`State::advance_status`].
#[derive(Debug, Clone, PartialEq)]
pub enum StatusChange {
    /// The status moved forward (from `previous`); emit the event.
    Advanced {
        /// The status before.
        previous: Option<MessageStatus>,
        /// The conversation the message belongs to, if known.
        conversation_id: Option<ConversationId>,
    },
    /// The status is not newer than what is recorded (late, duplicate or after a terminal one).
    Stale {
        /// The recorded status.
        current: MessageStatus,
    },
}

/// Whether `next` moves a message on from `current`: ranks only go up (`sent < delivered <
/// read`, `played` ranks with `read`); `failed`/`deleted` are terminal; unknown statuses always
/// pass (they carry no order).
pub fn moves_forward(current: Option<&MessageStatus>, next: &MessageStatus) -> bool {
    match (current.and_then(MessageStatus::rank), next.rank()) {
        (_, None) | (None, _) => true,
        (Some(c), Some(n)) => n > c,
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
}

/// One message as [`State::record_activity`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct MessageActivity<'a> {
    /// The customer's profile from the message.
    pub contact: &'a ContactProfile,
    /// The message's context line.
    pub summary: &'a MessageSummary,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// The outcome of [`State::record_activity`].
#[derive(Debug, Clone)]
pub struct Activity {
    /// The conversation the message now belongs to.
    pub conversation: Conversation,
    /// True when this message opened it.
    pub created: bool,
    /// The previous conversation, ended here because it had been idle too long.
    pub ended: Option<ConversationDoc>,
}

/// The outcome of [`State::upsert_contact`].
#[derive(Debug, Clone, PartialEq)]
pub enum ContactChange {
    /// First sight.
    Created(Contact),
    /// The profile changed.
    Updated {
        /// The contact now.
        contact: Contact,
        /// The profile before.
        previous: ContactProfile,
    },
    /// Nothing new.
    Unchanged(Contact),
}

/// A stable contact id per source and customer.
pub fn contact_id(source: &SourceInfo, customer: &str) -> String {
    let digest = Sha256::digest(format!("{}|{customer}", source.id).as_bytes());
    format!("ctc_{}", hex::encode(&digest[..12]))
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

/// What the sweep has to do (see [`State::due`]).
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

impl State {
    /// Writes `value` under `key` if its version is still `expected` (see [`DocumentStore::put`]).
    async fn write<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        w: DocumentWrite<'_>,
    ) -> Result<bool, StateError> {
        Ok(self.docs.put(key, &encode(key, value)?, w).await?)
    }

    /// Applies `change` to the message document of `message_id` (created empty if absent) and
    /// writes it if `change` returns a result to keep; retries on concurrent writes.
    async fn update_message<R>(
        &self,
        source: &SourceInfo,
        message_id: &str,
        now: DateTime<Utc>,
        change: impl Fn(&mut MessageDoc) -> Result<R, R>,
    ) -> Result<R, StateError> {
        let key = format!("msg#{}#{message_id}", source.id);
        for _ in 0..ROUNDS {
            let stored = self.docs.get(&key, now).await?;
            let mut doc: MessageDoc = stored
                .as_ref()
                .map(|d| decode(&key, d))
                .transpose()?
                .unwrap_or_default();
            let result = match change(&mut doc) {
                Ok(keep) => keep,
                Err(unchanged) => return Ok(unchanged),
            };
            let write = DocumentWrite::new(stored.map(|d| d.version), now)
                .expiring(after(now, self.message_ttl));
            if self.write(&key, &doc, write).await? {
                return Ok(result);
            }
        }
        Err(StateError::Contention(key))
    }

    /// Since when this installation scopes dedup keys by source id: the time recorded by the
    /// first track that asked (now, if none did). Items recorded before may be remembered under
    /// their unscoped keys until [`super::TrackConfig::legacy_window`] of it.
    pub async fn source_scoped_dedup_since(
        &self,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StateError> {
        const KEY: &str = "dedup-scheme";
        for _ in 0..ROUNDS {
            if let Some(doc) = self.docs.get(KEY, now).await? {
                return doc
                    .body
                    .get("source_scoped_since")
                    .and_then(Value::as_str)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or_else(|| StateError::Corrupt {
                        key: KEY.into(),
                        reason: "no source_scoped_since time".into(),
                    });
            }
            let body = serde_json::json!({
                "source_scoped_since": now.to_rfc3339_opts(SecondsFormat::Millis, true)
            });
            if self
                .docs
                .put(KEY, &body, DocumentWrite::new(None, now))
                .await?
            {
                return Ok(now);
            }
        }
        Err(StateError::Contention(KEY.into()))
    }

    /// Moves `message_id`'s status to `status` if that is forward, on behalf of item `by` (a
    /// replay of an item that moved it gets the same answer again).
    pub async fn advance_status(
        &self,
        source: &SourceInfo,
        message_id: &str,
        status: &MessageStatus,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<StatusChange, StateError> {
        self.update_message(source, message_id, now, |doc| {
            if let Some(mark) = doc.advanced_by.iter().find(|m| m.by == by) {
                return Err(StatusChange::Advanced {
                    previous: mark.before.clone(),
                    conversation_id: doc.conversation_id,
                });
            }
            if !moves_forward(doc.status.as_ref(), status) {
                let current = doc.status.clone().unwrap_or_else(|| status.clone());
                return Err(StatusChange::Stale { current });
            }
            let previous = doc.status.replace(status.clone());
            let mark = Mark {
                by: by.to_owned(),
                before: previous.clone(),
            };
            remember(&mut doc.advanced_by, mark, MARKS);
            Ok(StatusChange::Advanced {
                previous,
                conversation_id: doc.conversation_id,
            })
        })
        .await
    }

    /// Records which conversation a message belongs to (and its status, for outbound messages).
    pub async fn link_message(
        &self,
        source: &SourceInfo,
        message_id: &str,
        conversation_id: ConversationId,
        status: Option<&MessageStatus>,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.update_message(source, message_id, now, |doc| {
            doc.conversation_id = Some(conversation_id);
            if let Some(s) = status.filter(|s| moves_forward(doc.status.as_ref(), s)) {
                doc.status = Some(s.clone());
            }
            Ok(())
        })
        .await
    }

    /// Creates or updates the contact for `customer` on behalf of item `by`, reporting what
    /// changed: a field counts as changed when the provider sent it and it differs; fields not
    /// sent keep their value. A replay of an item that created or changed it gets the same
    /// answer again.
    pub async fn upsert_contact(
        &self,
        source: &SourceInfo,
        customer: &str,
        profile: &ContactProfile,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ContactChange, StateError> {
        let id = contact_id(source, customer);
        let key = format!("contact#{id}");
        for _ in 0..ROUNDS {
            let stored = self.docs.get(&key, now).await?;
            let (change, doc, expected) = match &stored {
                None => {
                    let contact = Contact {
                        id: id.clone(),
                        profile: profile.clone(),
                        created_at: now,
                        updated_at: now,
                    };
                    let doc = ContactDoc {
                        contact: contact.clone(),
                        changed_by: vec![Mark {
                            by: by.to_owned(),
                            before: None,
                        }],
                    };
                    (ContactChange::Created(contact), doc, None)
                }
                Some(versioned) => {
                    let mut doc: ContactDoc = decode(&key, versioned)?;
                    if let Some(mark) = doc.changed_by.iter().find(|m| m.by == by) {
                        return Ok(match &mark.before {
                            None => ContactChange::Created(doc.contact),
                            Some(previous) => ContactChange::Updated {
                                previous: previous.clone(),
                                contact: doc.contact,
                            },
                        });
                    }
                    let previous = doc.contact.profile.clone();
                    let merged = ContactProfile {
                        wa_id: profile.wa_id.clone().or(previous.wa_id.clone()),
                        user_id: profile.user_id.clone().or(previous.user_id.clone()),
                        username: profile.username.clone().or(previous.username.clone()),
                        name: profile.name.clone().or(previous.name.clone()),
                    };
                    if merged == previous {
                        return Ok(ContactChange::Unchanged(doc.contact));
                    }
                    doc.contact.profile = merged;
                    doc.contact.updated_at = now;
                    let mark = Mark {
                        by: by.to_owned(),
                        before: Some(previous.clone()),
                    };
                    remember(&mut doc.changed_by, mark, MARKS);
                    let change = ContactChange::Updated {
                        contact: doc.contact.clone(),
                        previous,
                    };
                    (change, doc, Some(versioned.version))
                }
            };
            let write = DocumentWrite::new(expected, now);
            if self.write(&key, &doc, write).await? {
                return Ok(change);
            }
        }
        Err(StateError::Contention(key))
    }

    /// The conversation with this id.
    pub async fn conversation(
        &self,
        id: ConversationId,
        now: DateTime<Utc>,
    ) -> Result<Option<ConversationDoc>, StateError> {
        let key = format!("conv#{id}");
        match self.docs.get(&key, now).await? {
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
        let Some(pointer) = self.docs.get(&pointer_key, now).await? else {
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
            summary,
            at,
        } = message;
        let pointer_key = format!("conv-active#{}", key.as_str());
        let mark = digest(by);
        let mut ended = None;
        for round in 0..ROUNDS {
            let pointer = self.docs.get(&pointer_key, now).await?;
            // The conversation the new pointer will say it replaced.
            let mut replaced = None;
            if let Some(versioned) = &pointer {
                let named: Pointer = decode(&pointer_key, versioned)?;
                let conv_key = format!("conv#{}", named.id());
                match self.docs.get(&conv_key, now).await? {
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
                            self.touch(&mut stored.conversation, contact, summary, at);
                            remember(&mut stored.applied, mark.clone(), APPLIED);
                            let entry = active_entry(&stored.conversation);
                            let write = DocumentWrite::new(Some(doc.version), now).indexed(&entry);
                            if self.write(&conv_key, &stored, write).await? {
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
            if !self
                .write(
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
            let mut conversation = Conversation {
                id,
                status: ConversationStatus::Active,
                contact: contact.clone(),
                business_id: source.business_id.clone().unwrap_or_default(),
                created_at: at,
                last_active_at: at,
                ended_at: None,
                end_reason: None,
                inbound_count: 0,
                outbound_count: 0,
                labels: Vec::new(),
                notes: Vec::new(),
                context: ConversationContext::default(),
            };
            self.touch(&mut conversation, contact, summary, at);
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
            };
            let conv_key = format!("conv#{id}");
            let entry = active_entry(&stored.conversation);
            let write = DocumentWrite::new(None, now).indexed(&entry);
            if self.write(&conv_key, &stored, write).await? {
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
        doc: Versioned,
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
        Ok(self
            .write(conv_key, &stored, write)
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
            let Some(doc) = self.docs.get(&conv_key, now).await? else {
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
            let Some(doc) = self.docs.get(&conv_key, now).await? else {
                return Ok(());
            };
            let mut stored: ConversationDoc = decode(&conv_key, &doc)?;
            stored.ended_handed_off = true;
            let entry = index_entry(&stored);
            let write = DocumentWrite::new(Some(doc.version), now).indexed(&entry);
            if self.write(&conv_key, &stored, write).await? {
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
        let conv_key = format!("conv#{id}");
        for _ in 0..ROUNDS {
            let Some(doc) = self.docs.get(&conv_key, now).await? else {
                return Ok(None);
            };
            let mut stored: ConversationDoc = decode(&conv_key, &doc)?;
            change(&mut stored);
            let entry = index_entry(&stored);
            let write = DocumentWrite::new(Some(doc.version), now).indexed(&entry);
            if self.write(&conv_key, &stored, write).await? {
                return Ok(Some(stored));
            }
        }
        Err(StateError::Contention(conv_key))
    }

    /// Conversations, most recent first: open ones by the minute of their last activity (then
    /// newest id first), or ended ones by end time;
    /// only those of `source_id` when given. Starts below the sort key `before`.
    pub async fn list_conversations(
        &self,
        ended: bool,
        source_id: Option<&str>,
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
                Ok::<_, StateError>(
                    source_id
                        .is_none_or(|s| doc.source.id.as_str() == s)
                        .then_some(doc),
                )
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
        contact: &ContactProfile,
        summary: &MessageSummary,
        at: DateTime<Utc>,
    ) {
        c.last_active_at = c.last_active_at.max(at);
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
        let excess = recent.len().saturating_sub(self.recent_messages.max(1));
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
        timestamp: Some(message.timestamp.unwrap_or(at)),
    }
}
