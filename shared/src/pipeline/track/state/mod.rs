//! The track stage's state over the [`DocumentStore`]: message statuses ([`Statuses`]),
//! contacts ([`Contacts`]) and conversations ([`Conversations`]), three stores each written with
//! optimistic concurrency (read, decide, write if the version is unchanged, else read again).
//! Whoever needs one takes only that one (the sweep and the API take [`Conversations`]); the
//! track stage holds all three in a [`State`].
//!
//! Document keys: `msg#{source}#{message id}` (status and conversation of one message),
//! `contact#{contact id}` (indexed in `contacts`), `contact-key#{source}#{wa:…|user:…}` (which
//! contact has a customer id), `contact-ext#{source}#{external id}` (which contact has an
//! external id), `conv-active#{conversation key}` (pointer to the open conversation),
//! `conv#{conversation id}` (the conversation; indexed in `conv-active` by last activity while
//! open, in `conv-ending` while its `ended` event is being handed off).
//!
//! Replays: every change made on behalf of a tracked item records that item's dedup key (`by`):
//! the status moves it made with the status before, the contact changes with the profile before,
//! the conversation it opened or ended, a digest among the latest items applied to a
//! conversation. A retry of the item after any failure (a crash, a write that applied and still
//! reported an error) finds its own mark and gets the outcome the first attempt got, instead of
//! "stale", "unchanged" or a counter applied twice.

pub mod campaigns;
mod common;
pub mod contacts;
pub mod conversations;
pub mod statuses;

use std::sync::Arc;

use crate::ports::DocumentStore;

pub use self::campaigns::{CampaignDoc, Campaigns, Counted};
pub use self::common::StateError;
pub use self::contacts::{
    CONTACT_SHARDS, CONTACTS, CUSTOM_FIELDS_MAX_BYTES, ContactChange, ContactFilter, ContactPage,
    ContactPatch, Contacts, CustomerKey, PatchError, Patched, PendingEvent, Resolved, Upserted,
    contact_changes, contact_id, customer_keys, is_contact_id, phone_digits,
};
pub use self::conversations::{
    ACTIVE, Activity, CONVERSATION_SHARDS, ConversationDoc, ConversationKey, ConversationPage,
    ConversationSettings, Conversations, DueConversations, ENDED, ENDING, MessageActivity,
    activity_bound, idle_bound, index_entry, message_summary, summary_line,
};
pub use self::statuses::{OutboundRecord, SendRecord, StatusChange, Statuses, moves_forward};

/// The state of the track stage: its three stores over one document store, which also holds
/// what track stages for each item (its outbox).
#[derive(Debug, Clone)]
pub struct State {
    /// Where everything is kept (the stores below keep theirs in it too).
    pub docs: Arc<dyn DocumentStore>,
    /// Message statuses.
    pub statuses: Statuses,
    /// Contacts.
    pub contacts: Contacts,
    /// Conversations.
    pub conversations: Conversations,
}

impl State {
    /// The three stores over `docs`, conversations kept as `settings` say (message statuses for
    /// their `message_ttl`).
    pub fn new(docs: Arc<dyn DocumentStore>, settings: ConversationSettings) -> Self {
        Self {
            statuses: Statuses {
                docs: docs.clone(),
                message_ttl: settings.message_ttl,
                campaigns: Campaigns {
                    docs: docs.clone(),
                    ttl: settings.message_ttl,
                },
            },
            contacts: Contacts { docs: docs.clone() },
            conversations: Conversations {
                docs: docs.clone(),
                settings,
            },
            docs,
        }
    }
}
