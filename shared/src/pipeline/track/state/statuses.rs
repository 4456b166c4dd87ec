//! Message statuses over the [`DocumentStore`]: one document per message,
//! `msg#{source}#{message id}` (its status, conversation, and for the business's messages what
//! was sent: content, campaign, metadata), expiring after the message TTL; statuses only move
//! forward, and each move records the item that made it with the status before, so a replay
//! gets the answer the first attempt got. A message sent in a campaign is counted there in the
//! same write as the status that reached a new count ([`super::campaigns`]). Also since when
//! dedup keys are scoped by source (`dedup-scheme`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::campaigns::{Campaigns, Counted};
use super::common::{MARKS, Mark, ROUNDS, StateError, after, decode, encode_json, remember, save};
use crate::ids::ConversationId;
use crate::model::{ContactProfile, MessageContent, MessageStatus, SourceInfo};
use crate::ports::{DocBody, DocumentStore, DocumentWrite, PutDocument};

/// The message status store.
#[derive(Debug, Clone)]
pub struct Statuses {
    /// Where message documents are kept.
    pub docs: Arc<dyn DocumentStore>,
    /// How long message status documents live.
    pub message_ttl: Duration,
    /// Where campaign messages are counted.
    pub campaigns: Campaigns,
}

/// What the business sent: recorded when a message is sent through `POST /v1/messages`, or
/// seen leaving through another way (an echo from the WhatsApp Business app, WAHA `fromMe`),
/// so later statuses can say what they are about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRecord {
    /// What was sent, in the event model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// The campaign it was sent in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// The `metadata` of the send request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// The recipient as the provider named them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<ContactProfile>,
    /// When it was sent.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub sent_at: DateTime<Utc>,
    /// True when it was sent through wagate's API (false: seen as an echo).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub via_api: bool,
}

/// A send through `POST /v1/messages`: written before the provider is called (so a status that
/// outruns the send's answer, carrying the send's id in Meta's `biz_opaque_callback_data`, can
/// still say what was sent), completed with the provider's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRecord {
    /// The source it was sent through.
    pub source: SourceInfo,
    /// What is being sent.
    pub record: OutboundRecord,
    /// The conversation it went into, once recorded there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// Whether the provider is being (or was) called: set before the call, cleared when it
    /// certainly sent nothing. A retry that finds it set and no answer does not call again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub called: bool,
    /// The provider's message id, once the provider answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The provider's answer, once it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<serde_json::Value>,
    /// The API's answer, once the send completed (replayed to a retry of the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<serde_json::Value>,
    /// A digest of the request, so a different request under the same key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_digest: Option<String>,
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
    /// What the business sent, for its own messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outbound: Option<OutboundRecord>,
    /// What the message has been counted for in its campaign.
    #[serde(default, skip_serializing_if = "Counted::is_empty")]
    counted: Counted,
}

impl MessageDoc {
    /// What the message's campaign still has to count, and the campaign.
    fn uncounted(&self) -> Option<(&str, Counted)> {
        let outbound = self.outbound.as_ref()?;
        let campaign = outbound.campaign_id.as_deref()?;
        let add = Counted::reached(true, self.status.as_ref()).minus(self.counted);
        (!add.is_empty()).then_some((campaign, add))
    }
}

/// The outcome of [`Statuses::advance_status`].
#[derive(Debug, Clone, PartialEq)]
pub enum StatusChange {
    /// The status moved forward (from `previous`); emit the event.
    Advanced {
        /// The status before.
        previous: Option<MessageStatus>,
        /// The conversation the message belongs to, if known.
        conversation_id: Option<ConversationId>,
        /// What was sent, when the business sent it and wagate saw it leave.
        outbound: Option<Box<OutboundRecord>>,
    },
    /// The status is not newer than what is recorded (late, duplicate or after a terminal one).
    Stale {
        /// The recorded status.
        current: MessageStatus,
    },
}

/// The document key of message `message_id` of `source`. A WAHA serialized id is reduced to
/// WhatsApp's message key (direction and bare id): its chat part is spelled `@c.us` or `@lid`
/// depending on the engine and on what WhatsApp revealed, and one message's statuses must meet
/// in one document whichever spelling each report used.
fn message_key(source: &SourceInfo, message_id: &str) -> String {
    match crate::providers::chat_id::WahaMessageId::parse(message_id) {
        Some(parsed) if source.provider == crate::model::Provider::Waha => {
            format!("msg#{}#{}_{}", source.id, parsed.from_me, parsed.id)
        }
        _ => format!("msg#{}#{message_id}", source.id),
    }
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

impl Statuses {
    /// Applies `change` to the message document of `message_id` (created empty if absent) and
    /// writes it if `change` returns a result to keep; retries on concurrent writes. When the
    /// change lets the message's campaign count something new, the campaign's shard is written
    /// in the same `put_all`.
    async fn update_message<R>(
        &self,
        source: &SourceInfo,
        message_id: &str,
        now: DateTime<Utc>,
        change: impl Fn(&mut MessageDoc) -> Result<R, R>,
    ) -> Result<R, StateError> {
        let key = message_key(source, message_id);
        for _ in 0..ROUNDS {
            let stored = self.docs.get_json(&key, now).await?;
            let mut doc: MessageDoc = stored
                .as_ref()
                .map(|d| decode(&key, d))
                .transpose()?
                .unwrap_or_default();
            let result = match change(&mut doc) {
                Ok(keep) => keep,
                Err(unchanged) => {
                    // A change that had been made but not counted (written by a version that
                    // did not count): count it now.
                    if doc.uncounted().is_none() {
                        return Ok(unchanged);
                    }
                    unchanged
                }
            };
            let write = DocumentWrite::new(stored.map(|d| d.version), now)
                .expiring(after(now, self.message_ttl));
            let Some((campaign, add)) = doc.uncounted() else {
                if save(self.docs.as_ref(), &key, &doc, write).await? {
                    return Ok(result);
                }
                continue;
            };
            let campaign = campaign.to_owned();
            doc.counted = doc.counted.union(add);
            let shard = self
                .campaigns
                .shard_with(&campaign, message_id, add, now)
                .await?;
            let message_body = encode_json(&key, &doc)?;
            let shard_body = shard.body()?;
            let shard_write = DocumentWrite::new(shard.expected, now).expiring(shard.expires_at);
            let puts = [
                PutDocument {
                    key: &key,
                    body: DocBody::Json(&message_body),
                    write,
                },
                PutDocument {
                    key: &shard.key,
                    body: (&shard_body).into(),
                    write: shard_write,
                },
            ];
            if self.docs.put_all(&puts).await? {
                return Ok(result);
            }
        }
        Err(StateError::Contention(key))
    }

    /// Send `send_id` of the API, as recorded before and after the provider was called, with
    /// its version.
    pub async fn send_versioned(
        &self,
        send_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(SendRecord, u64)>, StateError> {
        let key = format!("send#{send_id}");
        match self.docs.get_json(&key, now).await? {
            Some(v) => Ok(Some((decode(&key, &v)?, v.version))),
            None => Ok(None),
        }
    }

    /// Send `send_id` of the API.
    pub async fn send(
        &self,
        send_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SendRecord>, StateError> {
        Ok(self.send_versioned(send_id, now).await?.map(|(s, _)| s))
    }

    /// Writes send `send_id` if its version is still `expected` (`None`: new); `false` when
    /// someone else wrote it first.
    pub async fn save_send(
        &self,
        send_id: &str,
        send: &SendRecord,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let key = format!("send#{send_id}");
        let write = DocumentWrite::new(expected, now).expiring(after(now, self.message_ttl));
        save(self.docs.as_ref(), &key, send, write).await
    }

    /// [`Statuses::save_send`], read back when the write reports an error: a write that
    /// applied and then failed to answer (the stored record is exactly `send`, one version on)
    /// counts as done, so the caller does not take its own mark for another attempt's.
    pub async fn save_send_checked(
        &self,
        send_id: &str,
        send: &SendRecord,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        match self.save_send(send_id, send, expected, now).await {
            Ok(done) => Ok(done),
            Err(e) => match self.send_versioned(send_id, now).await {
                Ok(Some((stored, version)))
                    if version == expected.map_or(1, |v| v + 1) && &stored == send =>
                {
                    Ok(true)
                }
                _ => Err(e),
            },
        }
    }

    /// What the business sent as message `message_id`, if wagate saw it leave.
    pub async fn outbound(
        &self,
        source: &SourceInfo,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(OutboundRecord, Option<ConversationId>)>, StateError> {
        let key = message_key(source, message_id);
        let Some(stored) = self.docs.get_json(&key, now).await? else {
            return Ok(None);
        };
        let doc: MessageDoc = decode(&key, &stored)?;
        Ok(doc.outbound.map(|o| (o, doc.conversation_id)))
    }

    /// Records what the business sent as message `message_id` (in `conversation_id`, when
    /// known), unless recorded before; counts it in its campaign once, with any status that
    /// arrived first. Returns the record kept (the earlier one, if any).
    pub async fn record_outbound(
        &self,
        source: &SourceInfo,
        message_id: &str,
        record: &OutboundRecord,
        conversation_id: Option<ConversationId>,
        now: DateTime<Utc>,
    ) -> Result<OutboundRecord, StateError> {
        let kept = self
            .update_message(source, message_id, now, |doc| {
                if let Some(kept) = &mut doc.outbound {
                    if record.via_api && !kept.via_api {
                        // Heard of as an echo first, recorded by its send now: what the send knew
                        // (campaign, metadata) joins the record.
                        kept.via_api = true;
                        kept.campaign_id.clone_from(&record.campaign_id);
                        kept.metadata.clone_from(&record.metadata);
                        if kept.content.is_none() {
                            kept.content.clone_from(&record.content);
                        }
                        return Ok(Box::new(kept.clone()));
                    }
                    return Err(Box::new(kept.clone()));
                }
                doc.outbound = Some(record.clone());
                if doc.conversation_id.is_none() {
                    doc.conversation_id = conversation_id;
                }
                Ok(Box::new(record.clone()))
            })
            .await?;
        Ok(*kept)
    }

    /// Since when this installation scopes dedup keys by source id: the time recorded by the
    /// first track that asked (now, if none did). Items recorded before may be remembered under
    /// their unscoped keys until [`TrackConfig::legacy_window`] of it.
    ///
    /// [`TrackConfig::legacy_window`]: crate::pipeline::track::TrackConfig::legacy_window
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
                    outbound: doc.outbound.clone().map(Box::new),
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
                outbound: doc.outbound.clone().map(Box::new),
            })
        })
        .await
    }

    /// Records which conversation a message belongs to (and its status, for outbound messages).
    /// What was sent, for an outbound message wagate did not send, is kept with
    /// [`Statuses::record_outbound`].
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
}
