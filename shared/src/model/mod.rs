//! The outbound event contract: the envelope every subscriber receives and what its `data` holds.
//!
//! Owns: [`Envelope`] (`{id, type, created_at, batch, data}`), [`EventData`] and its families,
//! [`InboundEvent`] (one normalized provider item on its way through the pipeline), and the JSON
//! Schema of the envelope. Must not: parse provider payloads or touch storage.

mod campaign;
mod conversation;
mod event_type;
mod media;
mod message;
mod notification;
pub(crate) mod vocab;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use campaign::{Campaign, CampaignBody, CampaignCompletion, CampaignStatus, CampaignTotals};
pub use conversation::{
    Assignee, Contact, ContactFieldChange, ContactProfile, Conversation, ConversationContext,
    ConversationStatus, EndReason, Handoff, MediaRef, MessageSummary, Note,
};
pub use event_type::{EventType, Family, UnknownEventType};
pub use media::{
    MediaFailure, MediaKey, MediaLocator, MediaStatus, StoredMedia, attach_media, event_media,
    media_mut, media_ref,
};
pub use message::*;
pub use notification::{NotificationData, Participant, Subject, SubjectKind};

use crate::ids::{EventId, SourceId};
use crate::rfc3339::Timestamp;

/// Which provider a source receives webhooks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Meta WhatsApp Cloud API (`whatsapp_business_account` webhooks).
    Meta,
    /// WAHA, the self-hosted WhatsApp HTTP API.
    Waha,
    /// Twilio's WhatsApp channel of Programmable Messaging (form-encoded webhooks).
    Twilio,
    /// 360dialog, a BSP that forwards Meta's Cloud API envelope.
    #[serde(rename = "360dialog")]
    Dialog360,
    /// Gupshup, a BSP (its v2 format, and v3: Meta's envelope with Gupshup's additions).
    Gupshup,
    /// Evolution API, a self-hosted bridge built on Baileys.
    Evolution,
}

impl Provider {
    /// The lowercase name used in dedup keys and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meta => "meta",
            Self::Waha => "waha",
            Self::Twilio => "twilio",
            Self::Dialog360 => "360dialog",
            Self::Gupshup => "gupshup",
            Self::Evolution => "evolution",
        }
    }

    /// Every provider, in the order the documentation lists them.
    pub const ALL: [Self; 6] = [
        Self::Meta,
        Self::Waha,
        Self::Twilio,
        Self::Dialog360,
        Self::Gupshup,
        Self::Evolution,
    ];

    /// How webhooks from this provider prove where they come from.
    pub fn verification(self) -> Verification {
        match self {
            Self::Meta | Self::Waha | Self::Twilio => Verification::Signature,
            Self::Dialog360 | Self::Gupshup | Self::Evolution => Verification::Token,
        }
    }
}

/// How a provider's webhooks are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// An HMAC over the request made with a shared secret (Meta, WAHA, Twilio): a request cannot
    /// be forged or altered without the secret.
    Signature,
    /// A secret token the provider sends back with every request (in a header, the URL's query
    /// or, for Evolution API, the body's `apikey`): proves the sender knows the token, but does
    /// not protect the body, and anyone who sees one request can replay or forge others.
    Token,
}

/// Where an event came from (`data.source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceInfo {
    /// The configured source id (`/webhooks/{source_id}`).
    pub id: SourceId,
    /// The provider of that source.
    pub provider: Provider,
    /// Meta WhatsApp Business Account id (`entry.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_account_id: Option<String>,
    /// The business side of the chat: Meta `phone_number_id`, WAHA session name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    /// The business's own phone number (Meta `display_phone_number`, WAHA `me.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_phone_number: Option<String>,
    /// WAHA engine (`WEBJS`, `NOWEB`, `GOWS`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

impl SourceInfo {
    /// Source info with only id and provider known (parsers add the rest per item).
    pub fn new(id: SourceId, provider: Provider) -> Self {
        Self {
            id,
            provider,
            business_account_id: None,
            business_id: None,
            business_phone_number: None,
            engine: None,
        }
    }
}

/// `data` of `whatsapp.message.*` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageBody {
    /// The message or the status update.
    pub message: Message,
    /// The customer as the provider described them on this item (profile name, ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactProfile>,
}

/// A hand-over of a conversation to an agent or team.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Transfer {
    /// The agent who had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_agent: Option<String>,
    /// The team that had it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_team: Option<String>,
    /// The agent taking over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_agent: Option<String>,
    /// The team taking over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_team: Option<String>,
    /// Free text for whoever takes over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `data` of `whatsapp.conversation.*` events (the conversation itself is `data.conversation`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationBody {
    /// Why it ended (`whatsapp.conversation.ended`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    /// To whom it went (`whatsapp.conversation.transferred`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// Who asked for a human and why (`whatsapp.conversation.handoff_requested`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
    /// The customer, as the provider named them on an item that caused the event (Meta's
    /// hand-over protocol); the track stage finds their open conversation by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactProfile>,
    /// What the provider sent, as sent, when the provider caused the event (Meta's hand-over
    /// protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

/// `data` of `whatsapp.contact.created|updated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContactBody {
    /// The contact as it is now.
    pub contact: Contact,
    /// The profile before the change (`updated` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ContactProfile>,
    /// What changed, field by field (`updated` only): profile fields the provider sent anew,
    /// or fields changed through the API (`tags`, `stage`, `custom_fields.{name}`,
    /// `external_id`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ContactFieldChange>,
}

/// The family-specific part of `data`; which variant is fixed by the event type's [`Family`].
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum EventBody {
    /// Message and status events.
    Message(Box<MessageBody>),
    /// Conversation lifecycle events.
    Conversation(Box<ConversationBody>),
    /// Contact lifecycle events.
    Contact(Box<ContactBody>),
    /// Typed pass-through of everything else.
    Notification(Box<NotificationData>),
    /// Campaign events.
    Campaign(Box<CampaignBody>),
}

// Every variant is boxed: an event is a small header plus one allocation for its body, so
// batches of events (a Meta webhook of 214 statuses) move and free little.

impl EventBody {
    /// A message-family body.
    pub fn message(message: Message, contact: Option<ContactProfile>) -> Self {
        Self::Message(Box::new(MessageBody { message, contact }))
    }

    /// A conversation-family body.
    pub fn conversation(body: ConversationBody) -> Self {
        Self::Conversation(Box::new(body))
    }

    /// A contact-family body.
    pub fn contact(body: ContactBody) -> Self {
        Self::Contact(Box::new(body))
    }

    /// A notification-family body.
    pub fn notification(data: NotificationData) -> Self {
        Self::Notification(Box::new(data))
    }

    /// A campaign-family body.
    pub fn campaign(body: CampaignBody) -> Self {
        Self::Campaign(Box::new(body))
    }

    /// The family of this body.
    pub fn family(&self) -> Family {
        match self {
            Self::Message(_) => Family::Message,
            Self::Conversation(_) => Family::Conversation,
            Self::Contact(_) => Family::Contact,
            Self::Notification(_) => Family::Notification,
            Self::Campaign(_) => Family::Campaign,
        }
    }
}

/// One event's `data` (or one item of a batch's `data` array).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct EventData {
    /// The item's own event id; set on batch items, where the envelope id names the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// Where it came from.
    // Shared by the events of one change (they have the same source), so normalizing a batch
    // does not copy it per event.
    pub source: Arc<SourceInfo>,
    /// The conversation it belongs to, attached by the track stage; `null` when none applies.
    #[serde(default)]
    pub conversation: Option<Box<Conversation>>,
    /// The family-specific fields.
    #[serde(flatten)]
    pub body: EventBody,
}

impl EventData {
    /// Data with no conversation attached yet.
    pub fn new(source: impl Into<Arc<SourceInfo>>, body: EventBody) -> Self {
        Self {
            event_id: None,
            source: source.into(),
            conversation: None,
            body,
        }
    }

    /// Decodes `data` whose shape is given by `event_type` (serde cannot pick an untagged variant
    /// reliably, since all families share optional fields).
    pub fn from_value(event_type: EventType, value: Value) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Common {
            #[serde(default)]
            event_id: Option<EventId>,
            source: SourceInfo,
            #[serde(default)]
            conversation: Option<Conversation>,
        }
        let common = Common::deserialize(&value)?;
        let body = match event_type.family() {
            Family::Message => EventBody::Message(Box::new(MessageBody::deserialize(value)?)),
            Family::Conversation => EventBody::conversation(ConversationBody::deserialize(value)?),
            Family::Contact => EventBody::contact(ContactBody::deserialize(value)?),
            Family::Notification => EventBody::notification(NotificationData::deserialize(value)?),
            Family::Campaign => EventBody::campaign(CampaignBody::deserialize(value)?),
        };
        Ok(Self {
            event_id: common.event_id,
            source: Arc::new(common.source),
            conversation: common.conversation.map(Box::new),
            body,
        })
    }

    /// The message, for message-family data.
    pub fn message(&self) -> Option<&Message> {
        match &self.body {
            EventBody::Message(m) => Some(&m.message),
            _ => None,
        }
    }
}

/// One normalized provider item on its way through the pipeline (ingest → track).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundEvent {
    /// The event id subscribers will see.
    pub id: EventId,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Key under which the track stage claims the item exactly once (see DESIGN "Dedup").
    pub dedup_key: String,
    /// When wagate received the webhook.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub received_at: DateTime<Utc>,
    /// When the provider says it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub occurred_at: Option<DateTime<Utc>>,
    /// The webhook request this came from; its raw bytes are kept under this id for replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The event data.
    pub data: EventData,
}

impl<'de> Deserialize<'de> for InboundEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (event, _) = InboundEvent::with_staged(deserializer)?;
        Ok(event)
    }
}

/// The `staged` field of an event on the wire ([`InboundEvent::with_staged`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StagedField {
    /// Not there: a plain event.
    Absent,
    /// There once, with this value (a staged event's is a string).
    Once(Value),
    /// There more than once: a plain event to a reader of events, an error to one of staged
    /// events (as serde reads a repeated field).
    Repeated,
}

impl InboundEvent {
    /// Reads an event, and the `staged` field the track stage adds to one it hands on
    /// (`StagedEvent`), in one pass over its fields: a flattened field would make serde copy
    /// the whole event into its buffered form first, on every queue message that holds one.
    /// As the flattened form did, it reads objects only, takes any other field (`staged`
    /// included, of any kind, even repeated) and refuses a repeated field of its own.
    pub fn with_staged<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<(Self, StagedField), D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

/// The fields of an event on the wire ([`InboundEvent::with_staged`]).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EventField {
    Id,
    Type,
    Data,
    DedupKey,
    ReceivedAt,
    OccurredAt,
    RequestId,
    Staged,
    #[serde(other)]
    Other,
}

/// Reads an event's object ([`InboundEvent::with_staged`]).
struct EventVisitor;

impl<'de> serde::de::Visitor<'de> for EventVisitor {
    type Value = (InboundEvent, StagedField);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        /// The field's value, unless it came before.
        fn once<'de, T: Deserialize<'de>, A: serde::de::MapAccess<'de>>(
            map: &mut A,
            slot: &mut Option<T>,
            name: &'static str,
        ) -> Result<(), A::Error> {
            if slot.is_some() {
                return Err(A::Error::duplicate_field(name));
            }
            *slot = Some(map.next_value()?);
            Ok(())
        }
        let (mut id, mut event_type, mut data, mut dedup_key, mut received_at) = (
            None,
            None::<EventType>,
            None::<WireData>,
            None::<String>,
            None::<Timestamp>,
        );
        let (mut occurred_at, mut request_id) = (None::<Option<Timestamp>>, None);
        let mut staged = StagedField::Absent;
        while let Some(field) = map.next_key::<EventField>()? {
            match field {
                EventField::Id => once(&mut map, &mut id, "id")?,
                EventField::Type => once(&mut map, &mut event_type, "type")?,
                EventField::Data => {
                    if data.is_some() {
                        return Err(A::Error::duplicate_field("data"));
                    }
                    // Our own events name their type before their data: a message's data is
                    // then read straight into its types, without a `Value` tree between.
                    data = Some(match event_type {
                        Some(t) if t.family() == Family::Message => {
                            WireData::Read(map.next_value_seed(MessageData)?)
                        }
                        _ => WireData::Tree(map.next_value()?),
                    });
                }
                EventField::DedupKey => once(&mut map, &mut dedup_key, "dedup_key")?,
                EventField::ReceivedAt => once(&mut map, &mut received_at, "received_at")?,
                EventField::OccurredAt => once(&mut map, &mut occurred_at, "occurred_at")?,
                EventField::RequestId => once(&mut map, &mut request_id, "request_id")?,
                EventField::Staged => {
                    let value: Value = map.next_value()?;
                    staged = match staged {
                        StagedField::Absent => StagedField::Once(value),
                        _ => StagedField::Repeated,
                    };
                }
                EventField::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let event_type: EventType = event_type.ok_or_else(|| A::Error::missing_field("type"))?;
        let data = data.ok_or_else(|| A::Error::missing_field("data"))?;
        let event = InboundEvent {
            id: id.ok_or_else(|| A::Error::missing_field("id"))?,
            event_type,
            dedup_key: dedup_key.ok_or_else(|| A::Error::missing_field("dedup_key"))?,
            received_at: received_at
                .ok_or_else(|| A::Error::missing_field("received_at"))?
                .0,
            occurred_at: occurred_at.flatten().map(|t| t.0),
            request_id: request_id.flatten(),
            data: match data {
                WireData::Read(data) => data,
                WireData::Tree(data) => {
                    EventData::from_value(event_type, data).map_err(A::Error::custom)?
                }
            },
        };
        Ok((event, staged))
    }
}

/// An event's `data` as [`EventVisitor`] found it.
enum WireData {
    /// Read into its types as it came (its family was known).
    Read(EventData),
    /// Kept whole until the event's type is known ([`EventData::from_value`]).
    Tree(Value),
}

/// The `data` of a message-family event read straight from the wire: what
/// [`EventData::from_value`] reads from the tree (the common fields and the body's, each object
/// field once, unknown ones skipped), in one pass over the object.
struct MessageData;

impl<'de> serde::de::DeserializeSeed<'de> for MessageData {
    type Value = EventData;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<EventData, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for MessageData {
    type Value = EventData;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a message event's data object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<EventData, A::Error> {
        /// [`MessageBody`]'s fields beside the ones every family has (`from_value`'s `Common`).
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            event_id: Option<EventId>,
            source: SourceInfo,
            #[serde(default)]
            conversation: Option<Conversation>,
            message: Message,
            #[serde(default)]
            contact: Option<ContactProfile>,
        }
        let w = Wire::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(EventData {
            event_id: w.event_id,
            source: Arc::new(w.source),
            conversation: w.conversation.map(Box::new),
            body: EventBody::Message(Box::new(MessageBody {
                message: w.message,
                contact: w.contact,
            })),
        })
    }
}

/// What [`InboundEvent`] and [`Envelope`] share on the wire: an id and a type that decides how to
/// read `data`, plus their own fields in `rest`.
#[derive(Deserialize)]
struct Typed<T> {
    id: EventId,
    #[serde(rename = "type")]
    event_type: EventType,
    data: Value,
    #[serde(flatten)]
    rest: T,
}

/// `data` of an envelope: one event's data, or a batch of them.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvelopeData {
    /// `batch: false`.
    Single(Box<EventData>),
    /// `batch: true`: inbound messages of one conversation, oldest first, each with `event_id`.
    Batch(Vec<EventData>),
}

/// What every delivery POSTs: `{id, type, created_at, batch, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(title = "wagate event envelope")]
pub struct Envelope {
    /// The event id (for a batch: the batch's id; items carry their own `event_id`).
    pub id: EventId,
    /// The event type; for a batch, the type of every item.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When wagate created the event (RFC 3339, UTC).
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub created_at: DateTime<Utc>,
    /// Whether `data` is an array of items.
    pub batch: bool,
    /// The event data.
    pub data: EnvelopeData,
}

impl Envelope {
    /// The envelope for one event.
    pub fn single(event: InboundEvent) -> Self {
        Self {
            id: event.id,
            event_type: event.event_type,
            created_at: event.received_at,
            batch: false,
            data: EnvelopeData::Single(Box::new(event.data)),
        }
    }

    /// The conversation the event belongs to (a batch's items all belong to one).
    pub fn conversation_id(&self) -> Option<crate::ids::ConversationId> {
        let data = match &self.data {
            EnvelopeData::Single(data) => Some(&**data),
            EnvelopeData::Batch(items) => items.first(),
        };
        data.and_then(|d| d.conversation.as_ref()).map(|c| c.id)
    }

    /// The envelope for a batch of events of one type: each item keeps its own id.
    pub fn batch(
        id: EventId,
        event_type: EventType,
        created_at: DateTime<Utc>,
        events: Vec<InboundEvent>,
    ) -> Self {
        let items = events
            .into_iter()
            .map(|e| EventData {
                event_id: Some(e.id),
                ..e.data
            })
            .collect();
        Self {
            id,
            event_type,
            created_at,
            batch: true,
            data: EnvelopeData::Batch(items),
        }
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Rest {
            created_at: DateTime<Utc>,
            batch: bool,
        }
        let r = Typed::<Rest>::deserialize(deserializer)?;
        let read = |v: Value| EventData::from_value(r.event_type, v).map_err(D::Error::custom);
        let data = match (r.rest.batch, r.data) {
            (true, Value::Array(items)) => {
                EnvelopeData::Batch(items.into_iter().map(read).collect::<Result<_, _>>()?)
            }
            (false, v @ Value::Object(_)) => EnvelopeData::Single(Box::new(read(v)?)),
            _ => {
                return Err(D::Error::custom(
                    "`data` must be an array when `batch` is true, else an object",
                ));
            }
        };
        Ok(Self {
            id: r.id,
            event_type: r.event_type,
            created_at: r.rest.created_at,
            batch: r.rest.batch,
            data,
        })
    }
}

/// The JSON Schema (draft 2020-12) of [`Envelope`], pretty-printed, as committed in
/// `schema/envelope.schema.json`.
pub fn envelope_schema_json() -> String {
    let schema = schemars::schema_for!(Envelope);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
