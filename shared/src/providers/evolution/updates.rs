//! What happens to a message after it is sent: `messages.update` (acks, poll results),
//! `messages.delete` (revoked for everyone), and protocol messages (`messages.edited`,
//! `send.message.update`, or a `protocolMessage` upserted as a message): edits and revokes.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::content::Protocol;
use super::fields::{long, opt_lenient};
use super::identity::{Chat, KeyIn, Person, canonical_jid};
use super::messages::Wrapper;
use super::{EvoCtx, decode, value};
use crate::model::{
    ContactProfile, Direction, EditData, EventBody, EventType, InboundEvent, Message,
    MessageContent, MessageStatus, Participant, RevokeData, Subject, SubjectKind,
};
use crate::providers::chat_id::ChatId;
use crate::providers::lenient::{opt_bool, opt_nonempty_string};

/// A message status as Evolution names it (or Baileys numbers it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AckStatus {
    Status(MessageStatus),
    /// Evolution's `DELETED`: any update without a status, edits included.
    Deleted,
}

impl AckStatus {
    pub(super) fn status(self) -> Option<MessageStatus> {
        match self {
            Self::Status(s) => Some(s),
            Self::Deleted => None,
        }
    }
}

/// Evolution's status names, and Baileys' `WAMessageStatus` numbers (0 `ERROR` … 5 `PLAYED`).
pub(super) fn ack_status(v: &Value) -> Option<AckStatus> {
    let status = match v {
        Value::String(s) => match s.as_str() {
            "ERROR" => MessageStatus::Failed,
            "PENDING" => MessageStatus::Pending,
            "SERVER_ACK" => MessageStatus::Sent,
            "DELIVERY_ACK" => MessageStatus::Delivered,
            "READ" => MessageStatus::Read,
            "PLAYED" => MessageStatus::Played,
            "DELETED" => return Some(AckStatus::Deleted),
            _ => return long(v).and_then(|n| ack_status(&Value::from(n))),
        },
        other => match long(other)? {
            0 => MessageStatus::Failed,
            1 => MessageStatus::Pending,
            2 => MessageStatus::Sent,
            3 => MessageStatus::Delivered,
            4 => MessageStatus::Read,
            5 => MessageStatus::Played,
            _ => return None,
        },
    };
    Some(AckStatus::Status(status))
}

/// A `messages.update` item: Evolution 2's flat form (`keyId`), 1's (the key spread with `id`),
/// or Baileys' own `{key, update}`.
#[derive(Deserialize)]
struct UpdateIn {
    #[serde(rename = "keyId", default, deserialize_with = "opt_nonempty_string")]
    key_id: Option<String>,
    #[serde(default, deserialize_with = "opt_lenient")]
    key: Option<KeyIn>,
    #[serde(default)]
    update: Option<Value>,
    #[serde(
        rename = "remoteJid",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    remote_jid: Option<String>,
    #[serde(rename = "fromMe", default, deserialize_with = "opt_bool")]
    from_me: Option<bool>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    id: Option<String>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(rename = "pollUpdates", default)]
    poll_updates: Option<Value>,
}

impl UpdateIn {
    /// The message key, whichever form carried it. `participant` is left out: Evolution 2.2-2.3.0
    /// put the chat there, and no version names the member who read.
    fn key(&self) -> KeyIn {
        let mut key = self.key.clone().unwrap_or_default();
        key.id = self.key_id.clone().or(key.id).or_else(|| self.id.clone());
        key.remote_jid = key.remote_jid.or_else(|| self.remote_jid.clone());
        key.from_me = key.from_me.or(self.from_me);
        key.participant = None;
        key
    }

    fn field(&self, name: &str) -> Option<&Value> {
        let flat = match name {
            "status" => self.status.as_ref(),
            _ => self.poll_updates.as_ref(),
        };
        flat.filter(|v| !v.is_null())
            .or_else(|| self.update.as_ref()?.get(name).filter(|v| !v.is_null()))
    }
}

impl EvoCtx<'_> {
    /// `messages.update`: a delivery, read or failure status, or a poll's tally.
    pub(super) fn ack(&self, raw: &RawValue) -> Option<InboundEvent> {
        let u: UpdateIn = decode(raw)?;
        let key = u.key();
        let id = key.id.clone()?;
        let from_me = key.from_me.unwrap_or(false);
        let chat = Chat::of(&key, None, self.business.phone.as_deref())?;
        if let Some(polls) = u.field("pollUpdates").and_then(Value::as_array) {
            return self.poll_tally(raw, &chat, &id, polls);
        }
        let status = match ack_status(u.field("status")?)? {
            AckStatus::Status(status) => status,
            AckStatus::Deleted => return self.deleted_status(raw, &chat, &id),
        };
        let (mut message, contact) = self.frame(Some(&chat), id, from_me, None);
        let event_type = EventType::of_status(&status).unwrap_or(EventType::MessageRead);
        let dedup = format!(
            "{}:{}",
            self.message_key(from_me, &message.id),
            status.as_str()
        );
        message.status = Some(status);
        Some(self.emit(
            event_type,
            dedup,
            None,
            EventBody::message(message, contact),
        ))
    }

    /// `DELETED` in `messages.update` is not a revoke (see the module doc): kept as a
    /// pass-through that names the message.
    fn deleted_status(&self, raw: &RawValue, chat: &Chat, id: &str) -> Option<InboundEvent> {
        let mut n = self.notification(&value(raw)?);
        n.kind = Some("DELETED".to_owned());
        n.status = n.kind.clone();
        n.subject = Some(Subject::new(SubjectKind::Message, Some(id.to_owned())));
        n.chat_id = Some(chat.id.clone());
        Some(self.notify(EventType::ProviderEvent, self.item_key(raw), n))
    }

    /// A poll's votes as Evolution tallied them: one participant per vote, the option chosen as
    /// its `status`.
    fn poll_tally(
        &self,
        raw: &RawValue,
        chat: &Chat,
        id: &str,
        polls: &[Value],
    ) -> Option<InboundEvent> {
        let mut n = self.notification(&value(raw)?);
        n.kind = Some("votes".to_owned());
        n.subject = Some(Subject::new(SubjectKind::Poll, Some(id.to_owned())));
        n.chat_id = Some(chat.id.clone());
        for option in polls {
            let name = option.get("name").and_then(Value::as_str);
            let voters = option.get("voters").and_then(Value::as_array);
            for voter in voters.into_iter().flatten().filter_map(Value::as_str) {
                let person = Person::from_jids([Some(voter)], None);
                n.participants.push(Participant {
                    id: Some(canonical_jid(voter)),
                    phone_number: person.phone,
                    status: name.map(str::to_owned),
                    ..Participant::default()
                });
            }
        }
        Some(self.notify(EventType::PollVoted, self.item_key(raw), n))
    }

    /// `messages.delete`: Baileys' key of the revoked message, or (deleted through Evolution's
    /// API) Evolution's stored message, whose `id` is Evolution's own and whose `key` is
    /// WhatsApp's.
    pub(super) fn delete(&self, raw: &RawValue) -> Option<InboundEvent> {
        #[derive(Deserialize)]
        struct DeleteIn {
            #[serde(flatten)]
            flat: KeyIn,
            #[serde(default, deserialize_with = "opt_lenient")]
            key: Option<KeyIn>,
            #[serde(default)]
            message: Option<Value>,
        }
        let d: DeleteIn = decode(raw)?;
        let key = d.key.filter(|k| k.id.is_some()).unwrap_or(d.flat);
        let id = key.id.clone()?;
        let from_me = key.from_me.unwrap_or(false);
        let chat = Chat::of(&key, None, self.business.phone.as_deref())?;
        let before = d.message.filter(|m| !m.is_null()).map(|mut m| {
            super::scrub(&mut m);
            m
        });
        let framed = self.frame(Some(&chat), id.clone(), from_me, None);
        Some(self.revoke(framed, &id, before))
    }

    /// `messages.edited`, `send.message.update` (`sent`): a bare protocol message.
    pub(super) fn protocol_item(&self, raw: &RawValue, sent: bool) -> Option<InboundEvent> {
        let p = Protocol::from_value(&value(raw)?);
        self.protocol(&p, None, raw, sent)
    }

    /// An edit or revoke of another message, or another protocol message (passed through with
    /// its type). `wrapper` is the message it came in; without one the protocol key is all
    /// there is, in the editor's perspective: when its `remoteJid` is the business's own
    /// number, the customer made the change and their chat is not named.
    pub(super) fn protocol(
        &self,
        p: &Protocol,
        wrapper: Option<Wrapper>,
        raw: &RawValue,
        sent: bool,
    ) -> Option<InboundEvent> {
        let target = p.key.as_ref().and_then(|k| k.id.clone());
        let (chat, own_id, from_me, at, name) = match wrapper {
            Some(w) => (Some(w.chat), Some(w.id), w.from_me, w.at, w.name),
            None => {
                let key = p.key.clone().unwrap_or_default();
                let by_customer = !sent && self.is_business(key.remote_jid.as_deref());
                let chat = (!by_customer)
                    .then(|| Chat::of(&key, None, self.business.phone.as_deref()))
                    .flatten();
                let from_me = sent || (!by_customer && key.from_me == Some(true));
                (chat, None, from_me, None, None)
            }
        };
        match (p.kind.as_str(), target) {
            ("REVOKE", Some(target)) => {
                let id = own_id.unwrap_or_else(|| target.clone());
                let mut framed = self.frame(chat.as_ref(), id, from_me, name);
                framed.0.timestamp = at;
                Some(self.revoke(framed, &target, None))
            }
            ("MESSAGE_EDIT", Some(target)) => {
                let id = own_id.unwrap_or_else(|| target.clone());
                let (mut message, contact) = self.frame(chat.as_ref(), id, from_me, name);
                message.timestamp = p.at.or(at);
                message.content = Some(MessageContent::Edit(EditData {
                    edited_message_id: Some(target.clone()),
                    body: p.edited_text.clone(),
                }));
                let stamp = p.stamp.map_or_else(
                    || {
                        let digest = Sha256::digest(p.edited_text.as_deref().unwrap_or_default());
                        hex::encode(&digest[..8])
                    },
                    |ms| ms.to_string(),
                );
                let dedup = format!("{}:edited:{stamp}", self.message_key(from_me, &target));
                let at = message.timestamp;
                Some(self.emit(
                    EventType::MessageEdited,
                    dedup,
                    at,
                    EventBody::message(message, contact),
                ))
            }
            _ => {
                let mut n = self.notification(&value(raw)?);
                n.kind = Some(p.kind.clone());
                n.chat_id = chat.map(|c| c.id);
                n.subject = p
                    .key
                    .as_ref()
                    .and_then(|k| k.id.clone())
                    .map(|id| Subject::new(SubjectKind::Message, Some(id)));
                n.occurred_at = at;
                Some(self.notify(EventType::ProviderEvent, self.item_key(raw), n))
            }
        }
    }

    /// Message `target` revoked for everyone; `framed` is the revoking message, its id the
    /// revoking message's own when known.
    fn revoke(
        &self,
        (mut message, contact): (Message, Option<ContactProfile>),
        target: &str,
        before: Option<Value>,
    ) -> InboundEvent {
        let from_me = message.direction == Direction::Outbound;
        message.content = Some(MessageContent::Revoke(RevokeData {
            revoked_message_id: Some(target.to_owned()),
            before,
        }));
        let dedup = format!("{}:revoked", self.message_key(from_me, target));
        let at = message.timestamp;
        self.emit(
            EventType::MessageRevoked,
            dedup,
            at,
            EventBody::message(message, contact),
        )
    }

    /// Whether `jid` is the business's own number.
    fn is_business(&self, jid: Option<&str>) -> bool {
        let phone = jid
            .and_then(|j| ChatId::parse(j).ok())
            .and_then(|id| id.phone_number().map(str::to_owned));
        phone.is_some() && phone == self.business.phone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_are_read_by_name_and_by_baileys_number() {
        let s = |v: Value| ack_status(&v).and_then(AckStatus::status);
        assert_eq!(s(json!("DELIVERY_ACK")), Some(MessageStatus::Delivered));
        assert_eq!(s(json!(3)), Some(MessageStatus::Delivered));
        assert_eq!(s(json!("3")), Some(MessageStatus::Delivered));
        assert_eq!(s(json!(0)), Some(MessageStatus::Failed));
        assert_eq!(s(json!(5)), Some(MessageStatus::Played));
        assert_eq!(ack_status(&json!("DELETED")), Some(AckStatus::Deleted));
        assert_eq!(ack_status(&json!("SOMETHING_NEW")), None);
        assert_eq!(ack_status(&json!(9)), None);
        assert_eq!(ack_status(&json!(null)), None);
    }
}
