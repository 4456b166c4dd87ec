//! Conversation and contact objects as they appear in events.
//!
//! Owns: the shapes of `data.conversation` (attached to every event that belongs to one) and of
//! `data.contact`. Must not: decide lifecycle (the track stage does).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::Direction;
use crate::ids::ConversationId;

/// Whether a conversation is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Messages still land in it.
    Active,
    /// Closed; the next message opens a new conversation.
    Ended,
}

/// Why a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No message for the inactivity window (24 h by default).
    Inactivity,
    /// Closed through the management API by an operator.
    Manual,
    /// Closed by an agent (a person or bot handling the chat).
    Agent,
}

/// Who the conversation is with, as far as the provider identified them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ContactProfile {
    /// Phone number / WhatsApp id (digits, no `+`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// A user id that is not a phone number: Meta business-scoped user id, WAHA `@lid` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// WhatsApp username, when the provider shares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Profile (push) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ContactProfile {
    /// The most stable identifier the provider gave: the user id, else the phone number.
    pub fn key(&self) -> Option<&str> {
        self.user_id.as_deref().or(self.wa_id.as_deref())
    }
}

/// A short line about one message, kept in conversation context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageSummary {
    /// Provider message id.
    pub id: String,
    /// Inbound or outbound.
    pub direction: Direction,
    /// `message_type`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// Text, caption or other short rendering, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The media it carried (image, video, audio, document, sticker), by reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRef>,
    /// The campaign it was sent in (outbound messages sent through wagate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// When it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub timestamp: Option<DateTime<Utc>>,
}

/// Where a message's media can be found: the provider's id or link, and what it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MediaRef {
    /// Provider media id (Meta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Where to download it, when there is a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MIME type as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// File name (documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// wagate's stored copy, as on the message (`message_type_data.media`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Box<super::StoredMedia>>,
}

/// Who handles a conversation now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Assignee {
    /// The agent (a person, or an app in the provider's hand-over protocol).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// When it was assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub assigned_at: Option<DateTime<Utc>>,
}

/// A request for a human to take a conversation over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Handoff {
    /// Why (free text from the bot or app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who asked: a bot name, an app id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The team asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// Free text for whoever takes over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// When it was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub requested_at: Option<DateTime<Utc>>,
}

/// One changed field of a contact: its name and the values before and after (`null` when
/// absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContactFieldChange {
    /// `name`, `wa_id`, `user_id`, `username`, `tags`, `stage`, `external_id` or
    /// `custom_fields.{name}`.
    pub field: String,
    /// The value before.
    pub before: Value,
    /// The value after.
    pub after: Value,
}

/// Recent history attached to events so a subscriber can act without a lookup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConversationContext {
    /// The last few messages, oldest first.
    #[serde(default)]
    pub recent_messages: Vec<MessageSummary>,
    /// The last message from the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_message: Option<MessageSummary>,
    /// The last message from the business.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outbound_message: Option<MessageSummary>,
    /// One plain-text line describing the conversation so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// A note an operator or agent attached to a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Note {
    /// The note text.
    pub text: String,
    /// Who wrote it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// When it was written.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub created_at: DateTime<Utc>,
}

/// A conversation as attached to events (`data.conversation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Conversation {
    /// wagate's conversation id.
    pub id: ConversationId,
    /// Active or ended.
    pub status: ConversationStatus,
    /// The customer.
    pub contact: ContactProfile,
    /// The business side: Meta `phone_number_id` or WAHA session.
    pub business_id: String,
    /// When the first message opened it.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub created_at: DateTime<Utc>,
    /// When the last message (either direction) was seen.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub last_active_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// Messages from the customer so far.
    #[serde(default)]
    pub inbound_count: u64,
    /// Messages from the business so far.
    #[serde(default)]
    pub outbound_count: u64,
    /// Labels set through the API.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Notes set through the API.
    #[serde(default)]
    pub notes: Vec<Note>,
    /// Notes written by automation (bots, flows) through the API, kept apart from people's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub automation_notes: Vec<Note>,
    /// Who handles it now (set by a transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<Assignee>,
    /// A hand-off to a human asked for and not answered by a transfer yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
    /// The customer's contact id (`ctc_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// Your own id for the customer, set on the contact through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Recent messages and a summary.
    #[serde(default)]
    pub context: ConversationContext,
}

/// A customer as tracked by wagate (`data.contact` of `whatsapp.contact.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Contact {
    /// Stable id per source and customer.
    pub id: String,
    /// What the provider told us about the customer.
    #[serde(flatten)]
    pub profile: ContactProfile,
    /// Your own id for the customer (`PATCH /v1/contacts/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Tags set through the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// A lifecycle stage set through the API (`lead`, `customer`, … as you name them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Your own fields, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_fields: BTreeMap<String, Value>,
    /// First seen.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub created_at: DateTime<Utc>,
    /// Last profile change.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub updated_at: DateTime<Utc>,
}

impl Contact {
    /// A contact first seen at `at`, with nothing set through the API yet.
    pub fn new(id: impl Into<String>, profile: ContactProfile, at: DateTime<Utc>) -> Self {
        Self {
            id: id.into(),
            profile,
            external_id: None,
            tags: Vec::new(),
            stage: None,
            custom_fields: BTreeMap::new(),
            created_at: at,
            updated_at: at,
        }
    }
}

impl Conversation {
    /// A conversation opened at `at` with `contact` on the business side `business_id`, with
    /// no message recorded yet.
    pub fn opened(
        id: ConversationId,
        contact: ContactProfile,
        business_id: String,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            status: ConversationStatus::Active,
            contact,
            business_id,
            created_at: at,
            last_active_at: at,
            ended_at: None,
            end_reason: None,
            inbound_count: 0,
            outbound_count: 0,
            labels: Vec::new(),
            notes: Vec::new(),
            automation_notes: Vec::new(),
            assignee: None,
            handoff: None,
            contact_id: None,
            external_id: None,
            context: ConversationContext::default(),
        }
    }
}
