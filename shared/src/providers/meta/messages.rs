//! `messages[]` and `message_echoes[]` items: one received or sent message each, its content
//! read by `type`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::errors::errors;
use super::payloads::{
    ContactIn, ContextIn, EditIn, MediaIn, OrderIn, ReactionIn, RevokeIn, SystemIn, TextIn,
    UnsupportedIn, interactive, referral,
};
use super::{ValueCtx, decode, decode_owned};
use crate::model::{
    ButtonData, ContactsData, Direction, EventBody, EventType, InboundEvent, Message,
    MessageContent, MessageStatus, ReactionData, RevokeData, TemplateMessageData, TextData,
    UnknownData, UnsupportedData,
};
use crate::providers::LocationIn;
use crate::providers::lenient::{opt_str, opt_string, opt_unix_time, value_to_string};

impl ValueCtx<'_> {
    pub(super) fn message(&self, raw: &RawValue, direction: Direction) -> Option<InboundEvent> {
        self.read_message(decode(raw)?, direction, Some(raw))
    }

    /// A `messages[]`/`message_echoes[]` item read in the one pass ([`super::parse_strict`]),
    /// without its raw JSON: `None` when it needs that (no id, a type whose content cannot be
    /// read, which keeps its raw object), and the caller then goes level by level.
    pub(super) fn typed_message(
        &self,
        m: MetaMessage<'_>,
        direction: Direction,
    ) -> Option<InboundEvent> {
        let event = self.read_message(m, direction, None)?;
        Some(self.channel_marked(event))
    }

    /// The event of one message item; `whole` is the item's raw JSON, kept in the event when
    /// its content cannot be read (without it, `None`).
    fn read_message(
        &self,
        mut m: MetaMessage<'_>,
        direction: Direction,
        whole: Option<&RawValue>,
    ) -> Option<InboundEvent> {
        let id = m.id.take()?;
        let business_id = self.source.business_id.as_deref().unwrap_or_default();
        let key = self.ctx().key(format_args!("meta:{business_id}:{id}"));
        let mut message = Message::new(id, direction);
        message.timestamp = m.timestamp;
        let business = self.source.business_phone_number.clone();
        let contact = match direction {
            Direction::Inbound => {
                let contact = self.profile(m.from.as_deref(), m.from_user_id.as_deref());
                (message.from, message.from_user_id) = (m.from.take(), m.from_user_id.take());
                message.to = business;
                contact
            }
            Direction::Outbound => {
                let contact = self.profile(m.to.as_deref(), m.to_user_id.as_deref());
                message.from = m.from.take().or(business);
                (message.to, message.to_user_id) = (m.to.take(), m.to_user_id.take());
                contact
            }
        };
        if let Some(group) = &m.group_id {
            (message.chat_id, message.group_id) = (Some(group.clone()), Some(group.clone()));
        }
        message.context = m
            .context
            .and_then(decode_owned::<ContextIn>)
            .map(ContextIn::into_model);
        message.referral = m.referral.and_then(referral).map(Box::new);
        message.set_errors(errors(m.errors));
        let content = m.content(whole)?;
        let event_type = match (&content, direction) {
            (MessageContent::Edit(_), _) => EventType::MessageEdited,
            (MessageContent::Revoke(_), _) => EventType::MessageRevoked,
            (_, Direction::Inbound) => EventType::MessageReceived,
            (_, Direction::Outbound) => EventType::MessageSent,
        };
        if direction == Direction::Outbound {
            message.status = Some(MessageStatus::Sent);
        }
        message.content = Some(content);
        let body = EventBody::message(message, contact);
        Some(
            self.ctx()
                .scoped_event(event_type, key, m.timestamp, self.source.clone(), body),
        )
    }
}

/// One `messages[]` / `message_echoes[]` item. Type payloads stay raw until the type is known.
#[derive(Deserialize)]
pub(super) struct MetaMessage<'a> {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    from_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group_id: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(borrow, rename = "type", default, deserialize_with = "opt_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    referral: Option<&'a RawValue>,
    #[serde(borrow, default)]
    errors: Option<&'a RawValue>,
    #[serde(default)]
    text: Option<TextIn>,
    #[serde(borrow, default)]
    image: Option<&'a RawValue>,
    #[serde(borrow, default)]
    video: Option<&'a RawValue>,
    #[serde(borrow, default)]
    audio: Option<&'a RawValue>,
    #[serde(borrow, default)]
    document: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sticker: Option<&'a RawValue>,
    #[serde(borrow, default)]
    location: Option<&'a RawValue>,
    #[serde(borrow, default)]
    contacts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    interactive: Option<&'a RawValue>,
    #[serde(borrow, default)]
    button: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reaction: Option<&'a RawValue>,
    #[serde(borrow, default)]
    order: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    unsupported: Option<&'a RawValue>,
    #[serde(borrow, default)]
    edit: Option<&'a RawValue>,
    #[serde(borrow, default)]
    revoke: Option<&'a RawValue>,
    #[serde(borrow, default)]
    template: Option<&'a RawValue>,
}

impl MetaMessage<'_> {
    /// The content for `type`, or `unknown` with the type's raw object (from `whole`, the
    /// item's raw JSON) when it cannot be read; `None` then if `whole` is not given.
    fn content(&mut self, whole: Option<&RawValue>) -> Option<MessageContent> {
        let kind = self.kind.as_deref().unwrap_or("unknown");
        let media = |raw: Option<&RawValue>| {
            raw.and_then(decode_owned::<MediaIn>)
                .map(MediaIn::into_model)
        };
        let parsed = match kind {
            "text" => self
                .text
                .take()
                .and_then(|t| t.body)
                .map(|body| MessageContent::Text(TextData { body })),
            "image" => media(self.image).map(MessageContent::Image),
            "video" => media(self.video).map(MessageContent::Video),
            "audio" => media(self.audio).map(MessageContent::Audio),
            "document" => media(self.document).map(MessageContent::Document),
            "sticker" => media(self.sticker).map(MessageContent::Sticker),
            "location" => self
                .location
                .and_then(decode_owned::<LocationIn>)
                .and_then(LocationIn::into_model)
                .map(MessageContent::Location),
            "contacts" => self
                .contacts
                .and_then(decode_owned::<Vec<ContactIn>>)
                .map(|cards| {
                    MessageContent::Contacts(ContactsData {
                        contacts: cards.into_iter().map(ContactIn::into_model).collect(),
                    })
                }),
            "interactive" => self
                .interactive
                .and_then(interactive)
                .map(MessageContent::Interactive),
            "button" => self
                .button
                .and_then(decode_owned::<ButtonData>)
                .map(MessageContent::Button),
            "reaction" => self.reaction.and_then(decode_owned::<ReactionIn>).map(|r| {
                let removed = r.emoji.is_none();
                MessageContent::Reaction(ReactionData {
                    message_id: r.message_id,
                    emoji: r.emoji,
                    removed,
                })
            }),
            "order" => self
                .order
                .and_then(decode_owned::<OrderIn>)
                .map(|o| MessageContent::Order(o.into_model())),
            "system" => self
                .system
                .and_then(decode_owned::<SystemIn>)
                .map(|s| MessageContent::System(s.into_model())),
            "request_welcome" => Some(MessageContent::RequestWelcome),
            "unsupported" | "unknown" => Some(MessageContent::Unsupported(UnsupportedData {
                provider_type: self
                    .unsupported
                    .and_then(decode_owned::<UnsupportedIn>)
                    .and_then(|u| u.kind),
            })),
            "edit" => self
                .edit
                .and_then(decode_owned::<EditIn>)
                .map(|e| MessageContent::Edit(e.into_model())),
            "revoke" => self.revoke.and_then(decode_owned::<RevokeIn>).map(|r| {
                MessageContent::Revoke(RevokeData {
                    revoked_message_id: r.original_message_id,
                    before: None,
                })
            }),
            "template" => self.template.and_then(decode_owned::<Value>).map(|raw| {
                let s = |p: &str| raw.pointer(p).cloned().and_then(value_to_string);
                MessageContent::Template(TemplateMessageData {
                    name: s("/name"),
                    language: s("/language/code"),
                    raw: Some(raw),
                })
            }),
            _ => None,
        };
        if parsed.is_some() {
            return parsed;
        }
        let raw = serde_json::from_str::<Value>(whole?.get())
            .ok()
            .and_then(|mut v| v.get_mut(kind).map(Value::take))
            .unwrap_or(Value::Null);
        Some(MessageContent::Unknown(UnknownData {
            provider_type: kind.to_owned(),
            raw,
        }))
    }
}
