//! Typed pass-through: provider notifications that are not messages (templates, account, calls,
//! groups, labels, presence, polls, sessions…).
//!
//! Owns: one shape for all of them: the fields subscribers filter and route on, typed, plus the
//! provider's item unchanged in `raw`, so nothing the provider said is lost. Must not: interpret
//! provider semantics beyond naming them (parsers fill the fields).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conversation::ContactProfile;
use super::vocab::open_vocabulary;

open_vocabulary!(
    /// What a notification is about.
    SubjectKind {
        /// A message template.
        Template => "template",
        /// The WhatsApp Business Account.
        Account => "account",
        /// A business phone number.
        PhoneNumber => "phone_number",
        /// A WAHA session.
        Session => "session",
        /// A voice or video call.
        Call => "call",
        /// A group chat.
        Group => "group",
        /// A chat label.
        Label => "label",
        /// A chat.
        Chat => "chat",
        /// A poll message.
        Poll => "poll",
        /// An event (invitation) message.
        Event => "event",
        /// A WhatsApp Flow.
        Flow => "flow",
        /// A customer.
        Contact => "contact",
        /// A message.
        Message => "message",
    }
);

/// The thing a notification is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Subject {
    /// What kind of thing.
    #[serde(rename = "type")]
    pub kind: SubjectKind,
    /// Its provider id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its name (template name, group subject, label name…), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Subject {
    /// A subject with a kind and optional id.
    pub fn new(kind: SubjectKind, id: Option<String>) -> Self {
        Self {
            kind,
            id,
            name: None,
        }
    }
}

/// Someone taking part: a group member, a presence entry, a voter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Participant {
    /// Their id as the provider gave it (`…@c.us`, `…@lid`, phone number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Their phone number, when the provider resolved it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Group role (`participant`, `admin`, `superadmin`, `left`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Their state (presence: `typing`, `online`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// When they were last seen, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub last_seen: Option<DateTime<Utc>>,
}

/// `data` of every notification-family event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationData {
    /// The provider's own name for it: Meta `field` (e.g. `message_template_status_update`),
    /// WAHA `event` (e.g. `session.status`).
    pub provider_event: String,
    /// What happened, in the provider's words: Meta `event`/`decision`/`status`, WAHA `type`,
    /// `status` or `response` (e.g. `APPROVED`, `WORKING`, `promote`, `GOING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// When it happened, per the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub occurred_at: Option<DateTime<Utc>>,
    /// What it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// The customer involved (caller, voter, the user whose preference changed…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactProfile>,
    /// The chat involved, as the provider names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// People involved (group members changed, presence entries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<Participant>,
    /// The new state (template status, quality score, session status, call status…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The state before, when the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<String>,
    /// The provider's reason or detail text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's item, unchanged.
    pub raw: Value,
}

impl NotificationData {
    /// A notification carrying only its provider name and raw item; parsers set the rest.
    pub fn new(provider_event: impl Into<String>, raw: Value) -> Self {
        Self {
            provider_event: provider_event.into(),
            kind: None,
            occurred_at: None,
            subject: None,
            contact: None,
            chat_id: None,
            participants: Vec::new(),
            status: None,
            previous_status: None,
            reason: None,
            raw,
        }
    }
}
