//! The address book and chat list: `contacts.upsert`/`contacts.update`/`contacts.set`
//! (`whatsapp.contact.synced`), `chats.upsert`/`chats.update`/`chats.delete` (pass-throughs
//! that name the chat: wagate has no chat-list events), `chats.set` (history), and
//! `presence.update`.

use serde_json::Value;
use serde_json::value::RawValue;

use super::fields::{text, time};
use super::identity::{Person, canonical_jid};
use super::messages::real_name;
use super::{EvoCtx, Topic, value};
use crate::model::{EventType, InboundEvent, Participant, Subject, SubjectKind};
use crate::providers::chat_id::{ChatId, ChatKind};

/// The chat a JID names, and the person when it is a user.
fn addressee(jid: &str) -> Option<(ChatId, Option<Person>)> {
    let id = ChatId::parse(jid).ok()?;
    let person = matches!(id.kind(), ChatKind::User | ChatKind::Lid)
        .then(|| Person::from_jids([Some(jid)], None));
    Some((id, person))
}

/// A name that is not the JID's own digits (Evolution's stand-in when WhatsApp gave none).
fn name_of(v: &Value, keys: &[&str], jid: &ChatId) -> Option<String> {
    keys.iter()
        .find_map(|k| text(v, k))
        .filter(|n| n != jid.user())
        .and_then(real_name)
}

impl EvoCtx<'_> {
    /// A contact: Evolution's `{remoteJid, pushName, profilePicUrl}`, or Baileys'
    /// `{id, name, notify, verifiedName, lid, phoneNumber}`.
    pub(super) fn contact(&self, topic: Topic, raw: &RawValue) -> Option<InboundEvent> {
        let v = value(raw)?;
        let jid = text(&v, "remoteJid").or_else(|| text(&v, "id"))?;
        let (id, person) = addressee(&jid)?;
        let name = name_of(&v, &["pushName", "name", "notify", "verifiedName"], &id);
        let mut n = self.notification(&v);
        n.kind = Some(
            match topic {
                Topic::ContactsSet => "set",
                Topic::ContactsUpsert => "upsert",
                _ => "update",
            }
            .to_owned(),
        );
        match person {
            Some(_) => {
                // Every spelling the item carries, not only the one it is keyed by.
                let person = Person::from_jids(
                    [
                        Some(jid.as_str()),
                        v.get("lid").and_then(Value::as_str),
                        v.get("phoneNumber").and_then(Value::as_str),
                    ],
                    None,
                );
                n.chat_id = person.jid();
                let mut subject = Subject::new(SubjectKind::Contact, person.jid());
                subject.name.clone_from(&name);
                n.subject = Some(subject);
                n.contact = person.profile(name);
            }
            None => {
                let chat = canonical_jid(&jid);
                let kind = if id.is_group() {
                    SubjectKind::Group
                } else {
                    SubjectKind::Chat
                };
                let mut subject = Subject::new(kind, Some(chat.clone()));
                subject.name = name;
                n.subject = Some(subject);
                n.chat_id = Some(chat);
            }
        }
        Some(self.notify(EventType::ContactSynced, self.item_key(raw), n))
    }

    /// A chat: `{remoteJid, name, unreadMessages}`, Baileys' `{id, name}`, or (`chats.delete`)
    /// a bare JID.
    pub(super) fn chat(&self, topic: Topic, raw: &RawValue) -> Option<InboundEvent> {
        let v = value(raw)?;
        let jid = match &v {
            Value::String(s) => s.clone(),
            other => text(other, "remoteJid").or_else(|| text(other, "id"))?,
        };
        let (id, person) = addressee(&jid)?;
        let name = name_of(&v, &["name"], &id);
        let mut n = self.notification(&v);
        let chat = person
            .as_ref()
            .and_then(Person::jid)
            .unwrap_or_else(|| canonical_jid(&jid));
        let mut subject = Subject::new(SubjectKind::Chat, Some(chat.clone()));
        subject.name.clone_from(&name);
        n.subject = Some(subject);
        n.chat_id = Some(chat);
        n.contact = person.and_then(|p| p.profile(name));
        let (kind, event_type) = match topic {
            Topic::ChatsSet => ("chat", EventType::HistorySynced),
            Topic::ChatsUpsert => ("upsert", EventType::ProviderEvent),
            Topic::ChatsUpdate => ("update", EventType::ProviderEvent),
            _ => ("delete", EventType::ProviderEvent),
        };
        n.kind = Some(kind.to_owned());
        Some(self.notify(event_type, self.item_key(raw), n))
    }

    /// `presence.update`: Baileys' `{id, presences: {jid: {lastKnownPresence, lastSeen}}}`.
    pub(super) fn presence(&self, raw: &RawValue) -> Option<InboundEvent> {
        let v = value(raw)?;
        let jid = text(&v, "id")?;
        let (_, person) = addressee(&jid)?;
        let mut n = self.notification(&v);
        n.chat_id = Some(
            person
                .as_ref()
                .and_then(Person::jid)
                .unwrap_or_else(|| canonical_jid(&jid)),
        );
        n.participants = v
            .get("presences")
            .and_then(Value::as_object)
            .map(|ps| {
                ps.iter()
                    .map(|(who, p)| Participant {
                        id: Some(canonical_jid(who)),
                        phone_number: Person::from_jids([Some(who.as_str())], None).phone,
                        status: text(p, "lastKnownPresence"),
                        last_seen: p.get("lastSeen").and_then(time),
                        ..Participant::default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        n.kind = n.participants.first().and_then(|p| p.status.clone());
        n.status.clone_from(&n.kind);
        n.contact = person.and_then(|p| p.profile(None));
        Some(self.notify(EventType::PresenceUpdated, self.item_key(raw), n))
    }
}
