//! Messages: `messages.upsert` (received, and sent from the business's phone), `send.message`
//! (sent through Evolution's API), `messages.set` (history), and the framing every message
//! event shares (direction, chat, sender, recipient, customer).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::content::{self, Body};
use super::fields::{opt_lenient, opt_time};
use super::identity::{Chat, KeyIn, Person};
use super::updates::{AckStatus, ack_status};
use super::{EvoCtx, decode, value};
use crate::model::{
    ContactProfile, Direction, EventBody, EventType, InboundEvent, Message, MessageStatus, Subject,
    SubjectKind,
};
use crate::providers::lenient::opt_nonempty_string;

/// One message as Evolution's `prepareMessage` writes it (and as older versions did).
#[derive(Deserialize)]
pub(super) struct MessageIn {
    #[serde(default, deserialize_with = "opt_lenient")]
    pub(super) key: Option<KeyIn>,
    #[serde(rename = "pushName", default, deserialize_with = "opt_nonempty_string")]
    push_name: Option<String>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(
        rename = "messageType",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    message_type: Option<String>,
    #[serde(rename = "messageTimestamp", default, deserialize_with = "opt_time")]
    pub(super) timestamp: Option<DateTime<Utc>>,
    #[serde(rename = "contextInfo", default)]
    context_info: Option<Value>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    participant: Option<String>,
}

impl MessageIn {
    /// The sender's profile name, when it is one: never on the business's own messages
    /// (Evolution writes `Você` there), never a number or JID standing in for a name.
    fn name(&self, from_me: bool) -> Option<String> {
        self.push_name
            .clone()
            .filter(|_| !from_me)
            .and_then(real_name)
    }
}

/// `name` unless it is a phone number or JID that Evolution put where WhatsApp gave no name.
pub(super) fn real_name(name: String) -> Option<String> {
    let digits = name.trim_start_matches('+');
    let placeholder =
        name.contains('@') || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    (!placeholder && !name.trim().is_empty()).then_some(name)
}

/// The message a protocol message or vote came in, when it came in one (`messages.upsert`).
pub(super) struct Wrapper {
    pub(super) chat: Chat,
    pub(super) id: String,
    pub(super) from_me: bool,
    pub(super) at: Option<DateTime<Utc>>,
    /// The sender's profile name (see [`MessageIn::name`]).
    pub(super) name: Option<String>,
}

impl EvoCtx<'_> {
    /// The message's direction, chat, sender and recipient, and the customer it is with. With no
    /// chat (an edit by the customer, whose chat Evolution does not name) only the business's
    /// side is known.
    pub(super) fn frame(
        &self,
        chat: Option<&Chat>,
        id: String,
        from_me: bool,
        name: Option<String>,
    ) -> (Message, Option<ContactProfile>) {
        let direction = if from_me {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let mut message = Message::new(id, direction);
        let other = chat.map(|c| c.person.clone()).unwrap_or_default();
        let direct = chat.is_none_or(Chat::is_direct);
        if let Some(chat) = chat {
            message.chat_id = Some(chat.id.clone());
            if chat.is_group() {
                message.group_id = Some(chat.id.clone());
            }
        }
        let me = self.business.clone();
        let (sender, recipient) = match (from_me, direct) {
            (true, true) => (me, other.clone()),
            (false, true) => (other.clone(), me),
            (true, false) => (me, Person::default()),
            (false, false) => (other.clone(), Person::default()),
        };
        (message.from, message.from_user_id) = (sender.phone, sender.lid);
        (message.to, message.to_user_id) = (recipient.phone, recipient.lid);
        let contact = match (from_me, direct) {
            (false, _) => other.profile(name),
            (true, true) => other.profile(None),
            (true, false) => None,
        };
        (message, contact)
    }

    /// `messages.upsert` and `send.message` (`sent`: always the business's): one message.
    pub(super) fn message(&self, raw: &RawValue, sent: bool) -> Option<InboundEvent> {
        let m: MessageIn = decode(raw)?;
        let key = m.key.as_ref()?;
        let id = key.id.clone()?;
        let from_me = sent || key.from_me == Some(true);
        let chat = Chat::of(
            key,
            m.participant.as_deref(),
            self.business.phone.as_deref(),
        )?;
        let read = content::read(m.message.as_ref(), m.message_type.as_deref());
        let content = match read.body {
            Body::Content(content) => content,
            Body::Protocol(p) => {
                let wrapper = Wrapper {
                    chat,
                    id,
                    from_me,
                    at: m.timestamp,
                    name: m.name(from_me),
                };
                return self.protocol(&p, Some(wrapper), raw, sent);
            }
            Body::PollVote(poll) => {
                let wrapper = Wrapper {
                    chat,
                    id,
                    from_me,
                    at: m.timestamp,
                    name: m.name(from_me),
                };
                return self.poll_vote(raw, &wrapper, poll.as_ref());
            }
        };
        let (mut message, contact) = self.frame(Some(&chat), id, from_me, m.name(from_me));
        message.timestamp = m.timestamp;
        message.content = Some(content);
        // Evolution copies the entry's `contextInfo` beside the message (and removes it with
        // `extendedTextMessage`); either may be the one that is filled in.
        let filled = |c: &&Value| c.as_object().is_some_and(|o| !o.is_empty());
        let info = read
            .context_info
            .as_ref()
            .filter(filled)
            .or(m.context_info.as_ref().filter(filled));
        (message.context, message.referral) = content::context(info);
        let event_type = if from_me {
            message.status = m
                .status
                .as_ref()
                .and_then(ack_status)
                .and_then(AckStatus::status)
                .or(Some(MessageStatus::Sent));
            EventType::MessageSent
        } else {
            EventType::MessageReceived
        };
        let dedup = self.message_key(from_me, &message.id);
        let at = message.timestamp;
        Some(self.emit(event_type, dedup, at, EventBody::message(message, contact)))
    }

    /// A `pollUpdateMessage`: a vote, encrypted, so only who voted on which poll.
    fn poll_vote(
        &self,
        raw: &RawValue,
        wrapper: &Wrapper,
        poll: Option<&KeyIn>,
    ) -> Option<InboundEvent> {
        let mut n = self.notification(&value(raw)?);
        n.kind = Some("vote".to_owned());
        n.subject = Some(Subject::new(
            SubjectKind::Poll,
            poll.and_then(|k| k.id.clone()),
        ));
        n.chat_id = Some(wrapper.chat.id.clone());
        n.contact = (!wrapper.from_me)
            .then(|| wrapper.chat.person.profile(wrapper.name.clone()))
            .flatten();
        n.occurred_at = wrapper.at;
        let key = self.message_key(wrapper.from_me, &wrapper.id);
        Some(self.notify(EventType::PollVoted, key, n))
    }

    /// `messages.set`: a message of the history Evolution synced when the instance connected.
    /// History is context, not traffic: a notification, never a received message to answer.
    pub(super) fn history_message(&self, raw: &RawValue) -> Option<InboundEvent> {
        let m: MessageIn = decode(raw)?;
        let key = m.key.as_ref()?;
        let id = key.id.clone()?;
        let from_me = key.from_me == Some(true);
        let chat = Chat::of(
            key,
            m.participant.as_deref(),
            self.business.phone.as_deref(),
        )?;
        let mut n = self.notification(&value(raw)?);
        n.kind = Some("message".to_owned());
        n.subject = Some(Subject::new(SubjectKind::Message, Some(id.clone())));
        n.chat_id = Some(chat.id.clone());
        n.contact = if chat.is_direct() || !from_me {
            chat.person.profile(m.name(from_me))
        } else {
            None
        };
        n.occurred_at = m.timestamp;
        let key = format!("{}:history", self.message_key(from_me, &id));
        Some(self.notify(EventType::HistorySynced, key, n))
    }
}

#[cfg(test)]
mod tests {
    use super::real_name;

    #[test]
    fn numbers_and_jids_standing_in_for_names_are_not_names() {
        assert_eq!(real_name("Alice".into()).as_deref(), Some("Alice"));
        assert_eq!(real_name("Agent 007".into()).as_deref(), Some("Agent 007"));
        for placeholder in [
            "15550001111",
            "+15550001111",
            "15550001111@s.whatsapp.net",
            " ",
        ] {
            assert_eq!(real_name(placeholder.into()), None, "{placeholder}");
        }
    }
}
