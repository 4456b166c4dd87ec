//! Campaigns as the API shows them and `whatsapp.campaign.completed` carries them.
//!
//! Owns: the campaign object and its totals. Must not: count (the campaign store in
//! `pipeline::track::state` does, once per message).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether a campaign still waits for statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Sends and statuses still count.
    Open,
    /// `whatsapp.campaign.completed` went out; statuses arriving later still count.
    Completed,
}

/// Why a campaign completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignCompletion {
    /// Every message sent in it was read (or played) or failed.
    AllFinal,
    /// Its time ran out (`complete_after`) with messages not final yet.
    Timeout,
}

/// How many messages of a campaign reached each status. A message counts once per status,
/// and a later status implies the earlier ones: a message read without a `delivered` status
/// counts as sent, delivered and read. `failed` is terminal and separate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CampaignTotals {
    /// Messages the provider accepted for the campaign.
    pub total: u64,
    /// Of those, on WhatsApp's servers (or further).
    pub sent: u64,
    /// Of those, on the recipient's device (or further).
    pub delivered: u64,
    /// Of those, read or played.
    pub read: u64,
    /// Messages that failed.
    pub failed: u64,
}

impl CampaignTotals {
    /// Messages in a final state (read, played or failed).
    pub fn finished(&self) -> u64 {
        self.read + self.failed
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Self) {
        self.total += other.total;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.read += other.read;
        self.failed += other.failed;
    }
}

/// A campaign: a named group of sends whose statuses are counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Campaign {
    /// `cmp_…`.
    pub id: String,
    /// The name given at creation.
    pub name: String,
    /// The source its messages are sent through: given at creation, or taken from its first
    /// send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// Open or completed.
    pub status: CampaignStatus,
    /// When it was created.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub created_at: DateTime<Utc>,
    /// When it completes at the latest, with what is known then.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub complete_after: DateTime<Utc>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub completed_at: Option<DateTime<Utc>>,
    /// Why it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion: Option<CampaignCompletion>,
    /// Counts so far.
    pub totals: CampaignTotals,
    /// Free-form data given at creation, returned as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// `data` of `whatsapp.campaign.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CampaignBody {
    /// The campaign with its totals when the event was made.
    pub campaign: Campaign,
}
