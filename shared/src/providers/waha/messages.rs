//! Message events: `message`/`message.any`, `message.reaction`, `message.edited` and
//! `message.revoked`, and the framing they share (direction, chat, sender, recipient).

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::acks::ack_status;
use super::content::WaMessage;
use super::parties::Party;
use super::{WahaCtx, decode};
use crate::model::{
    ContactProfile, Direction, EditData, EventBody, EventType, InboundEvent, Message,
    MessageContent, MessageStatus, ReactionData, RevokeData,
};
use crate::providers::chat_id::{ChatId, WahaMessageId};
use crate::providers::lenient::{opt_nonempty_string, opt_string};

impl WahaCtx<'_> {
    /// Who the business is, as a message party.
    fn me_party(&self) -> Party {
        self.me.as_ref().map(Party::from_chat).unwrap_or_default()
    }

    /// The message's direction, chat, sender and recipient, whichever engine sent it.
    pub(super) fn frame(&self, m: &WaMessage) -> Option<(Message, Option<ContactProfile>)> {
        let id = m.id.clone()?;
        let parsed = WahaMessageId::parse(&id);
        let from_me = m
            .from_me
            .or(parsed.as_ref().map(|p| p.from_me))
            .unwrap_or(false);
        let direction = if from_me {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        // The chat is the 2nd part of the id on every engine; `from`/`to` are engine-specific.
        let chat = parsed
            .as_ref()
            .and_then(|p| ChatId::parse(&p.chat).ok())
            .or_else(|| m.from.as_deref().and_then(|f| ChatId::parse(f).ok()));
        let mut message = Message::new(id, direction);
        message.timestamp = m.timestamp;
        let is_group = chat.as_ref().is_some_and(ChatId::is_group);
        message.chat_id = chat.as_ref().map(ChatId::to_string);
        if is_group {
            message.group_id = message.chat_id.clone();
        }
        let member = m
            .participant
            .as_deref()
            .or(m.author.as_deref())
            .or(parsed.as_ref().and_then(|p| p.participant.as_deref()))
            .and_then(|p| ChatId::parse(p).ok());
        let chat_party = chat.as_ref().map(Party::from_chat).unwrap_or_default();
        let (sender, recipient) = match (from_me, is_group) {
            (true, false) => (self.me_party(), chat_party),
            (false, false) => (chat_party, self.me_party()),
            (true, true) => (self.me_party(), Party::default()),
            (false, true) => (
                member.as_ref().map(Party::from_chat).unwrap_or_default(),
                Party::default(),
            ),
        };
        let customer = if from_me {
            recipient.clone()
        } else {
            sender.clone()
        };
        (message.from, message.from_user_id) = (sender.phone, sender.user_id);
        (message.to, message.to_user_id) = (recipient.phone, recipient.user_id);
        let name = if from_me { None } else { m.push_name() };
        let contact = ContactProfile {
            wa_id: customer.phone,
            user_id: customer.user_id,
            username: None,
            name,
        };
        Some((
            message,
            (contact != ContactProfile::default()).then_some(contact),
        ))
    }

    /// The dedup key of message `id`: WhatsApp's own message key (direction and bare id), not
    /// the serialized id, whose chat and participant are spelled `@c.us` or `@lid` depending on
    /// the engine and on whether WhatsApp revealed the phone number, so that one message
    /// reported under both spellings is one event.
    pub(super) fn message_key(&self, id: &str) -> String {
        match WahaMessageId::parse(id) {
            Some(parsed) => format!("waha:{}:{}_{}", self.session(), parsed.from_me, parsed.id),
            None => format!("waha:{}:{id}", self.session()),
        }
    }

    pub(super) fn message(&self, payload: &RawValue) -> Option<InboundEvent> {
        let m: WaMessage = decode(payload)?;
        let (mut message, contact) = self.frame(&m)?;
        message.content = Some(m.content());
        message.context = m.context();
        let event_type = match message.direction {
            Direction::Inbound => EventType::MessageReceived,
            Direction::Outbound => {
                message.status = m.ack.and_then(ack_status).or(Some(MessageStatus::Sent));
                EventType::MessageSent
            }
        };
        let key = self.message_key(&message.id);
        let at = message.timestamp;
        Some(self.emit(event_type, key, at, EventBody::message(message, contact)))
    }

    pub(super) fn reaction(&self, payload: &RawValue) -> Option<InboundEvent> {
        #[derive(Deserialize)]
        struct ReactionIn {
            #[serde(flatten)]
            message: WaMessage,
            #[serde(default)]
            reaction: Option<ReactionInner>,
        }
        #[derive(Deserialize)]
        struct ReactionInner {
            #[serde(default, deserialize_with = "opt_nonempty_string")]
            text: Option<String>,
            #[serde(rename = "messageId", default, deserialize_with = "opt_string")]
            message_id: Option<String>,
        }
        let r: ReactionIn = decode(payload)?;
        let inner = r.reaction?;
        let (mut message, contact) = self.frame(&r.message)?;
        let removed = inner.text.is_none();
        message.content = Some(MessageContent::Reaction(ReactionData {
            message_id: inner.message_id,
            emoji: inner.text,
            removed,
        }));
        let event_type = match message.direction {
            Direction::Inbound => EventType::MessageReceived,
            Direction::Outbound => EventType::MessageSent,
        };
        let key = self.message_key(&message.id);
        let at = message.timestamp;
        Some(self.emit(event_type, key, at, EventBody::message(message, contact)))
    }

    pub(super) fn edited(&self, payload: &RawValue) -> Option<InboundEvent> {
        #[derive(Deserialize)]
        struct EditedIn {
            #[serde(flatten)]
            message: WaMessage,
            #[serde(rename = "editedMessageId", default, deserialize_with = "opt_string")]
            edited_message_id: Option<String>,
        }
        let e: EditedIn = decode(payload)?;
        let (mut message, contact) = self.frame(&e.message)?;
        message.content = Some(MessageContent::Edit(EditData {
            edited_message_id: e.edited_message_id,
            body: e.message.body,
        }));
        let key = format!("{}:edited", self.message_key(&message.id));
        let at = message.timestamp;
        Some(self.emit(
            EventType::MessageEdited,
            key,
            at,
            EventBody::message(message, contact),
        ))
    }

    pub(super) fn revoked(&self, payload: &RawValue) -> Option<InboundEvent> {
        #[derive(Deserialize)]
        struct RevokedIn {
            #[serde(default)]
            after: Option<WaMessage>,
            #[serde(default)]
            before: Option<Value>,
            #[serde(rename = "revokedMessageId", default, deserialize_with = "opt_string")]
            revoked_message_id: Option<String>,
        }
        let r: RevokedIn = decode(payload)?;
        let after = r.after.unwrap_or_default();
        // Older payloads have no `revokedMessageId`; then `after.id` is the deleted message.
        let revoked = r.revoked_message_id.or_else(|| {
            after
                .id
                .as_deref()
                .and_then(WahaMessageId::parse)
                .map(|p| p.id)
        })?;
        let frame = WaMessage {
            id: after.id.clone().or_else(|| Some(revoked.clone())),
            ..after
        };
        let (mut message, contact) = self.frame(&frame)?;
        let before = r.before.filter(|b| !b.is_null());
        message.content = Some(MessageContent::Revoke(RevokeData {
            revoked_message_id: Some(revoked.clone()),
            before,
        }));
        let key = format!("waha:{}:{revoked}:revoked", self.session());
        let at = message.timestamp;
        Some(self.emit(
            EventType::MessageRevoked,
            key,
            at,
            EventBody::message(message, contact),
        ))
    }
}
