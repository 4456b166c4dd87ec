//! Message statuses over the [`DocumentStore`]: one document per message,
//! `msg#{source}#{message id}` (its status and conversation), expiring after the message TTL;
//! statuses only move forward, and each move records the item that made it with the status
//! before, so a replay gets the answer the first attempt got. Also since when dedup keys are
//! scoped by source (`dedup-scheme`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{MARKS, Mark, ROUNDS, StateError, after, decode, remember, save};
use crate::ids::ConversationId;
use crate::model::{MessageStatus, SourceInfo};
use crate::ports::{DocumentStore, DocumentWrite};

/// The message status store.
#[derive(Debug, Clone)]
pub struct Statuses {
    /// Where message documents are kept.
    pub docs: Arc<dyn DocumentStore>,
    /// How long message status documents live.
    pub message_ttl: Duration,
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

/// The outcome of [`Statuses::advance_status`].
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

impl Statuses {
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
            if save(self.docs.as_ref(), &key, &doc, write).await? {
                return Ok(result);
            }
        }
        Err(StateError::Contention(key))
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
}
