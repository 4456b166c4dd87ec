//! Evolution API (self-hosted, built on Baileys): `{event, instance, data, destination,
//! date_time, sender, server_url, apikey}` → events.
//!
//! Owns: every Evolution webhook event (messages, sends, acks, deletes, edits, history, contacts,
//! chats, presence, connection and QR code, groups, calls, labels), one event per item of
//! `data` (an object, an array, or `{messages: […]}`). Must not: let the `apikey` (the instance's
//! key, which Evolution echoes in every body) reach an event, a pass-through or a log; carry the
//! inline `base64` media Evolution adds when `webhook_base64` is on; trust `date_time`, which
//! Evolution writes as server-local time labelled `Z` (it only scopes dedup keys here).
//!
//! # Event names
//! The webhook's `event` is the dotted name (`messages.upsert`, `group-participants.update`);
//! configuration and some versions use the upper-case form (`MESSAGES_UPSERT`). Both are read
//! (dots and dashes are underscores, case ignored), and notifications name the dotted form.
//!
//! # Identity
//! The business is the `instance` (`source.business_id`); its phone number is the digits of
//! `sender`. A customer is the phone number of a `…@s.whatsapp.net` JID, and/or an opaque
//! `…@lid` user id, gathered from every spelling a key carries (`remoteJid`, `remoteJidAlt`,
//! `senderPn`, `previousRemoteJid`, and the `participant…` fields in groups; see `identity`):
//! a lid is never read as a phone number. The chat id is the customer's phone JID when known,
//! else the lid; groups keep their `…@g.us` JID.
//!
//! # Dedup keys
//! A message is keyed by WhatsApp's own message key: the instance, `fromMe` and `key.id`, never
//! the JID spelling, so one message reported under its `@lid` and its phone JID (or by
//! `messages.upsert` and `send.message`) is one event. Its acks add the status, its revoke
//! `:revoked` (shared by `messages.delete`, `messages.edited` of type `REVOKE` and an upserted
//! `protocolMessage`), its edits `:edited:{timestampMs}`, its calls `call:{id}:{status}`.
//! Items with no id of their own are keyed by a hash of the instance, `date_time` (fixed across
//! Evolution's retries of one webhook) and the item's bytes.
//!
//! # Quirks of Evolution read here
//! - `messages.edited` carries the bare `protocolMessage`, whose key is in the editor's
//!   perspective: when the customer edits, `fromMe` is true and `remoteJid` is the business's
//!   own number, so the chat is unknown and the edit is inbound.
//! - `messages.update` reports `DELETED` for any update without a status (edits included), so
//!   it is not taken as a revoke: revokes come from `messages.delete`.
//! - Versions 2.2-2.3.0 put the chat in an ack's `participant`; an ack names no member.
//! - `pushName` is `Você` on the business's own messages and the sender's number when WhatsApp
//!   gave no name: neither is a name.

mod calls;
mod chats;
mod content;
mod fields;
mod groups;
mod identity;
mod labels;
mod messages;
mod sessions;
mod updates;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use self::identity::Person;
use super::lenient::{opt_nonempty_string, opt_string};
use super::{Ctx, ParseError, content_key};
use crate::model::{EventBody, EventType, InboundEvent, NotificationData, Provider, SourceInfo};

/// The envelope; `apikey`, `destination` and `server_url` are deliberately not read.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    event: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    instance: Option<String>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "opt_string")]
    date_time: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    sender: Option<String>,
}

/// The events Evolution sends, by the upper-case name its configuration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    MessagesUpsert,
    SendMessage,
    MessagesSet,
    MessagesUpdate,
    MessagesDelete,
    MessagesEdited,
    SendMessageUpdate,
    ContactsSet,
    ContactsUpsert,
    ContactsUpdate,
    ChatsSet,
    ChatsUpsert,
    ChatsUpdate,
    ChatsDelete,
    PresenceUpdate,
    ConnectionUpdate,
    QrcodeUpdated,
    StatusInstance,
    LogoutInstance,
    RemoveInstance,
    InstanceCreate,
    InstanceDelete,
    GroupsUpsert,
    GroupsUpdate,
    GroupParticipantsUpdate,
    Call,
    LabelsEdit,
    LabelsAssociation,
    /// A name Evolution has but wagate does not map (Typebot, application startup, creds), or
    /// one this version does not know.
    Other,
}

/// `(topic, upper-case name, webhook name)`.
const TOPICS: &[(Topic, &str, &str)] = &[
    (Topic::MessagesUpsert, "MESSAGES_UPSERT", "messages.upsert"),
    (Topic::SendMessage, "SEND_MESSAGE", "send.message"),
    (Topic::MessagesSet, "MESSAGES_SET", "messages.set"),
    (Topic::MessagesUpdate, "MESSAGES_UPDATE", "messages.update"),
    (Topic::MessagesDelete, "MESSAGES_DELETE", "messages.delete"),
    (Topic::MessagesEdited, "MESSAGES_EDITED", "messages.edited"),
    (
        Topic::SendMessageUpdate,
        "SEND_MESSAGE_UPDATE",
        "send.message.update",
    ),
    (Topic::ContactsSet, "CONTACTS_SET", "contacts.set"),
    (Topic::ContactsUpsert, "CONTACTS_UPSERT", "contacts.upsert"),
    (Topic::ContactsUpdate, "CONTACTS_UPDATE", "contacts.update"),
    (Topic::ChatsSet, "CHATS_SET", "chats.set"),
    (Topic::ChatsUpsert, "CHATS_UPSERT", "chats.upsert"),
    (Topic::ChatsUpdate, "CHATS_UPDATE", "chats.update"),
    (Topic::ChatsDelete, "CHATS_DELETE", "chats.delete"),
    (Topic::PresenceUpdate, "PRESENCE_UPDATE", "presence.update"),
    (
        Topic::ConnectionUpdate,
        "CONNECTION_UPDATE",
        "connection.update",
    ),
    (Topic::QrcodeUpdated, "QRCODE_UPDATED", "qrcode.updated"),
    (Topic::StatusInstance, "STATUS_INSTANCE", "status.instance"),
    (Topic::LogoutInstance, "LOGOUT_INSTANCE", "logout.instance"),
    (Topic::RemoveInstance, "REMOVE_INSTANCE", "remove.instance"),
    (Topic::InstanceCreate, "INSTANCE_CREATE", "instance.create"),
    (Topic::InstanceDelete, "INSTANCE_DELETE", "instance.delete"),
    (Topic::GroupsUpsert, "GROUPS_UPSERT", "groups.upsert"),
    (Topic::GroupsUpdate, "GROUPS_UPDATE", "groups.update"),
    // The configuration's name for `groups.update`.
    (Topic::GroupsUpdate, "GROUP_UPDATE", "groups.update"),
    (
        Topic::GroupParticipantsUpdate,
        "GROUP_PARTICIPANTS_UPDATE",
        "group-participants.update",
    ),
    (Topic::Call, "CALL", "call"),
    (Topic::LabelsEdit, "LABELS_EDIT", "labels.edit"),
    (
        Topic::LabelsAssociation,
        "LABELS_ASSOCIATION",
        "labels.association",
    ),
];

impl Topic {
    /// The topic of an event name in either spelling, and the name notifications carry.
    fn of(event: &str) -> (Self, String) {
        let upper: String = event
            .chars()
            .map(|c| match c {
                '.' | '-' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        TOPICS
            .iter()
            .find(|(_, name, _)| *name == upper)
            .map_or_else(
                // Bounded: the name is the provider's, and lands in events.
                || (Self::Other, event.chars().take(64).collect()),
                |(topic, _, dotted)| (*topic, (*dotted).to_owned()),
            )
    }
}

pub(crate) fn parse(ctx: &Ctx, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let root: &RawValue = serde_json::from_slice(body).map_err(ParseError::NotJson)?;
    let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(root.get()) else {
        return Ok(vec![whole(ctx, ctx.source.clone(), "unknown", body)]);
    };
    let mut source = ctx.source.clone();
    source.business_id.clone_from(&envelope.instance);
    let business = Person::business(envelope.sender.as_deref());
    source.business_phone_number.clone_from(&business.phone);
    let Some(event) = envelope.event.as_deref() else {
        return Ok(vec![whole(ctx, source, "unknown", body)]);
    };
    let (topic, provider_event) = Topic::of(event);
    let e = EvoCtx {
        ctx,
        source,
        instance: envelope.instance.clone().unwrap_or_default(),
        provider_event,
        date_time: envelope.date_time.clone().unwrap_or_default(),
        business,
    };
    let data = envelope.data;
    Ok(match topic {
        Topic::ConnectionUpdate
        | Topic::QrcodeUpdated
        | Topic::StatusInstance
        | Topic::LogoutInstance
        | Topic::RemoveInstance
        | Topic::InstanceCreate
        | Topic::InstanceDelete => vec![e.session(topic, data)],
        Topic::Other => vec![whole(ctx, e.source.clone(), &e.provider_event, body)],
        _ => match data {
            Some(data) => e.items(topic, data),
            None => vec![whole(ctx, e.source.clone(), &e.provider_event, body)],
        },
    })
}

/// The whole body as one `whatsapp.provider.event`, scrubbed (see [`scrub`]).
fn whole(ctx: &Ctx, source: SourceInfo, provider_event: &str, body: &[u8]) -> InboundEvent {
    let scrubbed = match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            scrub(&mut v);
            serde_json::to_vec(&v).unwrap_or_default()
        }
        // Not reached: the body was checked to be JSON. Say nothing rather than risk the key.
        Err(_) => Vec::new(),
    };
    ctx.passthrough(source, provider_event, &scrubbed)
}

/// Removes what must never leave wagate from a provider value, at any depth: `apikey` (any
/// case) is deleted; inline files (`base64`, and the `jpegThumbnail` previews Baileys embeds)
/// and key material (app-state sync keys, group sender keys) are replaced by a note of what
/// was there and how long it was.
pub(super) fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !k.eq_ignore_ascii_case("apikey"));
            for (k, val) in map.iter_mut() {
                match k.as_str() {
                    "base64" | "jpegThumbnail" if val.is_string() => {
                        *val = omitted(k, val);
                    }
                    "appStateSyncKeyShare" | "senderKeyDistributionMessage" | "keyData" => {
                        *val = omitted("key material", val);
                    }
                    _ => scrub(val),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

fn omitted(what: &str, v: &Value) -> Value {
    let len = match v {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    };
    Value::String(format!("[{what} omitted: {len} characters]"))
}

/// Everything one Evolution webhook's items share.
struct EvoCtx<'c> {
    ctx: &'c Ctx,
    source: SourceInfo,
    /// The instance name (empty when the envelope has none).
    instance: String,
    /// The event's dotted name, for notifications.
    provider_event: String,
    date_time: String,
    /// The business's own account.
    business: Person,
}

impl EvoCtx<'_> {
    /// One event per item of `data`; an item that cannot be read is passed through.
    fn items(&self, topic: Topic, data: &RawValue) -> Vec<InboundEvent> {
        let items = split(
            data,
            matches!(topic, Topic::MessagesUpsert | Topic::SendMessage),
        );
        items
            .into_iter()
            .map(|item| {
                let event = match topic {
                    Topic::MessagesUpsert => self.message(item, false),
                    Topic::SendMessage => self.message(item, true),
                    Topic::MessagesSet => self.history_message(item),
                    Topic::MessagesUpdate => self.ack(item),
                    Topic::MessagesDelete => self.delete(item),
                    Topic::MessagesEdited => self.protocol_item(item, false),
                    Topic::SendMessageUpdate => self.protocol_item(item, true),
                    Topic::ContactsSet | Topic::ContactsUpsert | Topic::ContactsUpdate => {
                        self.contact(topic, item)
                    }
                    Topic::ChatsSet
                    | Topic::ChatsUpsert
                    | Topic::ChatsUpdate
                    | Topic::ChatsDelete => self.chat(topic, item),
                    Topic::PresenceUpdate => self.presence(item),
                    Topic::GroupsUpsert | Topic::GroupsUpdate => self.group(topic, item),
                    Topic::GroupParticipantsUpdate => self.participants(item),
                    Topic::Call => self.call(item),
                    Topic::LabelsEdit => self.label(item),
                    Topic::LabelsAssociation => self.label_association(item),
                    _ => None,
                };
                event.unwrap_or_else(|| self.passthrough_item(item))
            })
            .collect()
    }

    fn emit(
        &self,
        event_type: EventType,
        key: String,
        at: Option<DateTime<Utc>>,
        body: EventBody,
    ) -> InboundEvent {
        self.ctx
            .event(event_type, key, at, self.source.clone(), body)
    }

    /// A notification; its `occurred_at` is the event's.
    fn notify(&self, event_type: EventType, key: String, n: NotificationData) -> InboundEvent {
        let at = n.occurred_at;
        self.emit(event_type, key, at, EventBody::notification(n))
    }

    /// A notification of this event about `item`, its raw value scrubbed.
    fn notification(&self, item: &Value) -> NotificationData {
        let mut raw = item.clone();
        scrub(&mut raw);
        NotificationData::new(self.provider_event.clone(), raw)
    }

    /// The dedup key of WhatsApp message `id` (direction and bare id; see the module doc).
    fn message_key(&self, from_me: bool, id: &str) -> String {
        format!("evolution:{}:{from_me}_{id}", self.instance)
    }

    /// The dedup key of an item with no id of its own (see the module doc).
    fn item_key(&self, item: &RawValue) -> String {
        content_key(
            Provider::Evolution,
            &self.provider_event,
            &[
                self.instance.as_bytes(),
                self.date_time.as_bytes(),
                item.get().as_bytes(),
            ],
        )
    }

    /// An item that could not be read, as a `whatsapp.provider.event`.
    fn passthrough_item(&self, item: &RawValue) -> InboundEvent {
        let raw = serde_json::from_str::<Value>(item.get()).unwrap_or(Value::Null);
        let n = self.notification(&raw);
        self.notify(EventType::ProviderEvent, self.item_key(item), n)
    }
}

/// The items of `data`: an array's elements, `{messages: […]}`'s messages when `messages` is
/// true, else `data` itself.
fn split(data: &RawValue, messages: bool) -> Vec<&RawValue> {
    #[derive(Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        messages: Vec<&'a RawValue>,
    }
    if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(data.get()) {
        return items;
    }
    if messages && let Ok(w) = serde_json::from_str::<Wrapped<'_>>(data.get()) {
        return w.messages;
    }
    vec![data]
}

/// Decodes an item leniently: `None` when it is not of the shape at all.
fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

/// An item as a JSON value.
fn value(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

#[cfg(test)]
mod tests;
