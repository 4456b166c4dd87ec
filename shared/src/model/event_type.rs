//! The closed list of event types wagate emits, and the family each belongs to.
//!
//! Owns: the `type` strings of the outbound contract. Must not: decide which provider item maps
//! to which type (the parsers do that).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which shape an event's `data` has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `data.message` ([`crate::model::MessageEventData`]).
    Message,
    /// `data.conversation` lifecycle ([`crate::model::ConversationEventData`]).
    Conversation,
    /// `data.contact` lifecycle ([`crate::model::ContactEventData`]).
    Contact,
    /// Typed pass-through of provider notifications ([`crate::model::NotificationData`]).
    Notification,
    /// `data.campaign` ([`crate::model::CampaignBody`]).
    Campaign,
}

macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident => $text:literal, $family:ident;)+) => {
        /// An event type: the envelope's `type` and the `X-Webhook-Event` header.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($(#[$doc])* $variant,)+
        }

        impl EventType {
    /// The event a message status is reported as: `pending`, `sent`, `delivered`, `read` (and
    /// `played`, which ranks with it), `failed`, and `deleted` as the revoke of an outbound
    /// message; `None` for statuses outside that order.
    pub fn of_status(status: &super::MessageStatus) -> Option<Self> {
        use super::MessageStatus as S;
        Some(match status {
            S::Pending => Self::MessagePending,
            S::Sent => Self::MessageSent,
            S::Delivered => Self::MessageDelivered,
            S::Read | S::Played => Self::MessageRead,
            S::Failed => Self::MessageFailed,
            S::Deleted => Self::MessageRevoked,
            _ => return None,
        })
    }

            /// Every event type, in contract order.
            pub const ALL: &'static [EventType] = &[$(Self::$variant,)+];

            /// The wire string, e.g. `whatsapp.message.received`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The shape of `data` for this type.
            pub fn family(self) -> Family {
                match self {
                    $(Self::$variant => Family::$family,)+
                }
            }
        }

        impl FromStr for EventType {
            type Err = UnknownEventType;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownEventType(s.to_owned())),
                }
            }
        }
    };
}

event_types! {
    /// A customer sent the business a message (also reactions, which ride on message events).
    MessageReceived => "whatsapp.message.received", Message;
    /// The business sent a message, or the provider accepted it (`status: sent`).
    MessageSent => "whatsapp.message.sent", Message;
    /// An outbound message reached the customer's device.
    MessageDelivered => "whatsapp.message.delivered", Message;
    /// The customer read (or played) an outbound message.
    MessageRead => "whatsapp.message.read", Message;
    /// An outbound message failed; `message.error` says why.
    MessageFailed => "whatsapp.message.failed", Message;
    /// An outbound message is queued at the provider, not yet on WhatsApp (WAHA ack 0).
    MessagePending => "whatsapp.message.pending", Message;
    /// A message was edited.
    MessageEdited => "whatsapp.message.edited", Message;
    /// A message was deleted for everyone.
    MessageRevoked => "whatsapp.message.revoked", Message;
    /// A conversation started (emitted before its first message event).
    ConversationCreated => "whatsapp.conversation.created", Conversation;
    /// A conversation ended (inactivity, or closed through the API).
    ConversationEnded => "whatsapp.conversation.ended", Conversation;
    /// A conversation was handed to an agent or team (through the API, or the provider's
    /// hand-over protocol passing or taking thread control).
    ConversationTransferred => "whatsapp.conversation.transferred", Conversation;
    /// A bot or app asked for a human to take the conversation over (through the API, or the
    /// provider's hand-over protocol requesting thread control).
    ConversationHandoffRequested => "whatsapp.conversation.handoff_requested", Conversation;
    /// Every message of a campaign reached a final state, or its time ran out; `data.campaign`
    /// carries the totals.
    CampaignCompleted => "whatsapp.campaign.completed", Campaign;
    /// A customer was seen for the first time.
    ContactCreated => "whatsapp.contact.created", Contact;
    /// A customer's profile (name, identity) changed.
    ContactUpdated => "whatsapp.contact.updated", Contact;
    /// A customer changed a messaging preference, e.g. stopped marketing (Meta `user_preferences`).
    ContactPreferencesUpdated => "whatsapp.contact.preferences_updated", Notification;
    /// A customer's user id changed (Meta `user_id_update`).
    ContactUserIdChanged => "whatsapp.contact.user_id_changed", Notification;
    /// The business's contact book changed on a linked app (Meta `smb_app_state_sync`).
    ContactSynced => "whatsapp.contact.synced", Notification;
    /// A WAHA session changed state (`session.status`, `state.change`).
    SessionStatusUpdated => "whatsapp.session.status_updated", Notification;
    /// A low-level engine event from WAHA (`engine.event`).
    SessionEngineEvent => "whatsapp.session.engine_event", Notification;
    /// A template was approved, rejected, paused… (Meta `message_template_status_update`).
    TemplateStatusUpdated => "whatsapp.template.status_updated", Notification;
    /// A template's quality score changed.
    TemplateQualityUpdated => "whatsapp.template.quality_updated", Notification;
    /// A template's category changed or will change.
    TemplateCategoryUpdated => "whatsapp.template.category_updated", Notification;
    /// A template's components were edited.
    TemplateComponentsUpdated => "whatsapp.template.components_updated", Notification;
    /// The business account changed: restriction, ban, partner, pricing tier… (`account_update`).
    AccountUpdated => "whatsapp.account.updated", Notification;
    /// The business account's review finished (`account_review_update`).
    AccountReviewUpdated => "whatsapp.account.review_updated", Notification;
    /// An alert about the account or a number (`account_alerts`).
    AccountAlert => "whatsapp.account.alert", Notification;
    /// Messaging limits or capabilities changed (`business_capability_update`).
    AccountCapabilityUpdated => "whatsapp.account.capability_updated", Notification;
    /// Two-step verification PIN events (`security`).
    AccountSecurity => "whatsapp.account.security", Notification;
    /// Other account-level settings: payments, partner solutions, username, call settings.
    AccountSettingsUpdated => "whatsapp.account.settings_updated", Notification;
    /// A phone number's quality rating or messaging limit changed.
    PhoneNumberQualityUpdated => "whatsapp.phone_number.quality_updated", Notification;
    /// A phone number's display name review finished.
    PhoneNumberNameUpdated => "whatsapp.phone_number.name_updated", Notification;
    /// An incoming call (WAHA `call.received`, Meta user-initiated `connect`).
    CallReceived => "whatsapp.call.received", Notification;
    /// An outgoing call is ringing (Meta call status `RINGING`).
    CallRinging => "whatsapp.call.ringing", Notification;
    /// A call was accepted.
    CallAccepted => "whatsapp.call.accepted", Notification;
    /// A call was rejected.
    CallRejected => "whatsapp.call.rejected", Notification;
    /// A call ended (Meta `terminate`).
    CallEnded => "whatsapp.call.ended", Notification;
    /// Anything else about a call (recording or transcript available, SIP call created).
    CallUpdated => "whatsapp.call.updated", Notification;
    /// The business's account joined a group.
    GroupJoined => "whatsapp.group.joined", Notification;
    /// The business's account left a group.
    GroupLeft => "whatsapp.group.left", Notification;
    /// Participants joined, left, were promoted or demoted.
    GroupParticipantsUpdated => "whatsapp.group.participants_updated", Notification;
    /// A group's subject, description, settings or lifecycle changed.
    GroupUpdated => "whatsapp.group.updated", Notification;
    /// A label was created or changed.
    LabelUpserted => "whatsapp.label.upserted", Notification;
    /// A label was deleted.
    LabelDeleted => "whatsapp.label.deleted", Notification;
    /// A label was put on a chat.
    LabelChatAdded => "whatsapp.label.chat_added", Notification;
    /// A label was taken off a chat.
    LabelChatRemoved => "whatsapp.label.chat_removed", Notification;
    /// Someone's presence changed (typing, recording, online, offline).
    PresenceUpdated => "whatsapp.presence.updated", Notification;
    /// Someone voted in a poll.
    PollVoted => "whatsapp.poll.voted", Notification;
    /// A poll vote arrived but could not be decrypted.
    PollVoteFailed => "whatsapp.poll.vote_failed", Notification;
    /// A chat was archived or unarchived.
    ChatArchiveUpdated => "whatsapp.chat.archive_updated", Notification;
    /// Someone answered an event invitation (going, not going…).
    EventResponded => "whatsapp.event.responded", Notification;
    /// An event response arrived but could not be decrypted.
    EventResponseFailed => "whatsapp.event.response_failed", Notification;
    /// A WhatsApp Flow changed status or crossed an alert threshold (Meta `flows`).
    FlowUpdated => "whatsapp.flow.updated", Notification;
    /// Chat history from a linked WhatsApp Business app (Meta `history`).
    HistorySynced => "whatsapp.history.synced", Notification;
    /// The provider reported an error not tied to one message (Meta value-level `errors`).
    ProviderError => "whatsapp.provider.error", Notification;
    /// Anything wagate does not recognise, carried unchanged in `data.raw`.
    ProviderEvent => "whatsapp.provider.event", Notification;
}

impl EventType {
    /// True for the types the buffer stage batches (inbound messages only).
    pub fn is_bufferable(self) -> bool {
        self == Self::MessageReceived
    }
}

/// A `type` string that is not one of [`EventType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type `{0}`")]
pub struct UnknownEventType(pub String);

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for EventType {
    fn schema_name() -> Cow<'static, str> {
        "EventType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
        json_schema!({ "type": "string", "enum": names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_string() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
            let json = serde_json::to_string(t).unwrap();
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), *t);
        }
    }

    #[test]
    fn type_strings_are_unique_and_namespaced() {
        let mut seen = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert!(t.as_str().starts_with("whatsapp."), "{t}");
            assert!(seen.insert(t.as_str()), "duplicate {t}");
        }
    }

    #[test]
    fn only_received_messages_are_buffered() {
        let buffered: Vec<_> = EventType::ALL
            .iter()
            .filter(|t| t.is_bufferable())
            .collect();
        assert_eq!(buffered, vec![&EventType::MessageReceived]);
    }

    #[test]
    fn rejects_unknown_type_strings() {
        assert!("whatsapp.message.exploded".parse::<EventType>().is_err());
    }
}
