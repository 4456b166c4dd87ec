//! Conversation and contact objects as they appear in events.
//!
//! Owns: the shapes of `data.conversation` (attached to every event that belongs to one) and of
//! `data.contact`. Must not: decide lifecycle (the track stage does).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// When it was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
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
    pub created_at: DateTime<Utc>,
    /// When the last message (either direction) was seen.
    pub last_active_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last profile change.
    pub updated_at: DateTime<Utc>,
}
