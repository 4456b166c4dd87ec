//! Campaigns over the [`DocumentStore`]: `campaign#{id}` holds the campaign, listed in
//! `campaigns-open` while it counts, `campaigns-completing` while its `completed` event is being
//! handed off and `campaigns-done` after; its counts live in [`CAMPAIGN_SHARDS`] shard documents
//! `campaign-count#{id}#{n}`, a message always counting in the shard its id hashes to, so a
//! campaign of many messages spreads its writes instead of heating one document.
//!
//! Once per message: what a message has been counted for ([`Counted`]) is kept in the message's
//! own document (see [`super::statuses`]), and the message document and the shard are written
//! together by [`DocumentStore::put_all`], all or nothing. A status seen again, a retry after a
//! crash, or a write that applied and still reported an error finds the message already counted
//! and adds nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{ROUNDS, StateError, after, decode, save};
use crate::ids::EventId;
use crate::model::{Campaign, CampaignCompletion, CampaignStatus, CampaignTotals, MessageStatus};
use crate::ports::{DocumentStore, DocumentWrite, IndexEntry, Versioned};

/// Shards each campaign's counts are spread over.
pub const CAMPAIGN_SHARDS: u32 = 16;
/// Index list of campaigns still counting, by creation.
pub const OPEN: &str = "campaigns-open";
/// Index list of completed campaigns whose event has not been handed off yet.
pub const COMPLETING: &str = "campaigns-completing";
/// Index list of completed campaigns, by completion.
pub const DONE: &str = "campaigns-done";

/// How long after the last send a campaign whose messages are all final waits before it
/// completes: a send in flight (provider called, not yet recorded) still counts.
pub const QUIET: Duration = Duration::from_secs(60);

/// The campaign store.
#[derive(Debug, Clone)]
pub struct Campaigns {
    /// Where campaigns and their counts are kept.
    pub docs: Arc<dyn DocumentStore>,
    /// How long a completed campaign is kept.
    pub ttl: Duration,
}

/// A campaign as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignDoc {
    /// The campaign; its totals are those it completed with (zero while open: the shards hold
    /// the live counts).
    pub campaign: Campaign,
    /// The id of its `whatsapp.campaign.completed` event, fixed when it completes so a
    /// repeated hand-off sends the same event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_event_id: Option<EventId>,
    /// Whether that event has been handed on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handed_off: bool,
    /// The source its messages go through (the event's `data.source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::model::SourceInfo>,
}

/// What a message has been counted for in its campaign: each at most once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    /// In `total` (the provider accepted it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub total: bool,
    /// In `sent`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent: bool,
    /// In `delivered`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delivered: bool,
    /// In `read`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read: bool,
    /// In `failed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

impl Counted {
    /// What a message accepted by the provider (`accepted`) with `status` reached: a later
    /// status implies the earlier ones (read counts as sent and delivered too).
    pub fn reached(accepted: bool, status: Option<&MessageStatus>) -> Self {
        let rank = status.and_then(MessageStatus::rank);
        let failed = matches!(status, Some(MessageStatus::Failed));
        Self {
            total: accepted,
            sent: !failed && rank.is_some_and(|r| (1..=3).contains(&r)),
            delivered: !failed && rank.is_some_and(|r| (2..=3).contains(&r)),
            read: !failed && rank == Some(3),
            failed,
        }
    }

    /// What `self` has that `counted` has not.
    pub fn minus(self, counted: Self) -> Self {
        Self {
            total: self.total && !counted.total,
            sent: self.sent && !counted.sent,
            delivered: self.delivered && !counted.delivered,
            read: self.read && !counted.read,
            failed: self.failed && !counted.failed,
        }
    }

    /// Both together.
    pub fn union(self, other: Self) -> Self {
        Self {
            total: self.total || other.total,
            sent: self.sent || other.sent,
            delivered: self.delivered || other.delivered,
            read: self.read || other.read,
            failed: self.failed || other.failed,
        }
    }

    /// Whether there is nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// As totals (one each).
    pub fn totals(self) -> CampaignTotals {
        let one = |b: bool| u64::from(b);
        CampaignTotals {
            total: one(self.total),
            sent: one(self.sent),
            delivered: one(self.delivered),
            read: one(self.read),
            failed: one(self.failed),
        }
    }
}

/// One shard of a campaign's counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shard {
    /// Counts of the messages hashing to this shard.
    #[serde(default)]
    pub totals: CampaignTotals,
    /// When one of them was last accepted by the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub last_send_at: Option<DateTime<Utc>>,
}

/// A shard as read: its key, version and counts, ready to be written back by `put_all`.
#[derive(Debug, Clone)]
pub struct ShardWrite {
    /// The shard's key.
    pub key: String,
    /// Its version as read.
    pub expected: Option<u64>,
    /// Its counts with the message's added.
    pub shard: Shard,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl ShardWrite {
    /// The shard's new body.
    pub fn body(&self) -> Result<Value, StateError> {
        super::common::encode(&self.key, &self.shard)
    }
}

/// Why a send may not go into a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignRefusal {
    /// No such campaign.
    NotFound,
    /// It completed.
    Completed,
    /// Its messages go through this other source.
    OtherSource(String),
}

/// A page of campaigns, newest first.
#[derive(Debug, Clone)]
pub struct CampaignPage {
    /// The campaigns with their live totals.
    pub campaigns: Vec<Campaign>,
    /// Pass as `before` for the next page.
    pub next: Option<String>,
}

fn campaign_key(id: &str) -> String {
    format!("campaign#{id}")
}

fn shard_key(id: &str, n: u32) -> String {
    format!("campaign-count#{id}#{n}")
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Where a campaign is listed.
fn index_entry(doc: &CampaignDoc) -> IndexEntry {
    let c = &doc.campaign;
    match (c.status, c.completed_at) {
        (CampaignStatus::Completed, Some(at)) if doc.handed_off => IndexEntry {
            partition: DONE.to_owned(),
            sort: format!("{}#{}", stamp(at), c.id),
        },
        (CampaignStatus::Completed, _) => IndexEntry {
            partition: COMPLETING.to_owned(),
            sort: format!("{}#{}", stamp(c.created_at), c.id),
        },
        _ => IndexEntry {
            partition: OPEN.to_owned(),
            sort: format!("{}#{}", stamp(c.created_at), c.id),
        },
    }
}

/// Whether `id` looks like a campaign id (`cmp_` and a ULID).
pub fn is_campaign_id(id: &str) -> bool {
    id.strip_prefix("cmp_")
        .is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

impl Campaigns {
    /// Creates a campaign named `name` that completes at the latest `complete_after` from now.
    pub async fn create(
        &self,
        name: &str,
        source: Option<crate::model::SourceInfo>,
        metadata: Option<Value>,
        complete_after: Duration,
        now: DateTime<Utc>,
    ) -> Result<Campaign, StateError> {
        let campaign = Campaign {
            id: format!("cmp_{}", ulid::Ulid::new()),
            name: name.to_owned(),
            source_id: source.as_ref().map(|s| s.id.to_string()),
            status: CampaignStatus::Open,
            created_at: now,
            complete_after: after(now, complete_after),
            completed_at: None,
            completion: None,
            totals: CampaignTotals::default(),
            metadata,
        };
        let doc = CampaignDoc {
            campaign: campaign.clone(),
            completed_event_id: None,
            handed_off: false,
            source,
        };
        let key = campaign_key(&campaign.id);
        let entry = index_entry(&doc);
        let write = DocumentWrite::new(None, now).indexed(&entry);
        if !save(self.docs.as_ref(), &key, &doc, write).await? {
            return Err(StateError::Contention(key));
        }
        Ok(campaign)
    }

    /// The stored campaign `id` with its version.
    pub async fn doc(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(CampaignDoc, Versioned)>, StateError> {
        let key = campaign_key(id);
        match self.docs.get(&key, now).await? {
            Some(v) => Ok(Some((decode(&key, &v)?, v))),
            None => Ok(None),
        }
    }

    /// Campaign `id` with its live totals (the sum of its shards).
    pub async fn campaign(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Campaign>, StateError> {
        let Some((doc, _)) = self.doc(id, now).await? else {
            return Ok(None);
        };
        let (totals, _) = self.live_totals(id, now).await?;
        let mut campaign = doc.campaign;
        campaign.totals = totals;
        Ok(Some(campaign))
    }

    /// Takes campaign `id` for a send through `source`: the campaign must exist and be open,
    /// and its messages go through one source (the first send's, unless given at creation).
    pub async fn take_for_send(
        &self,
        id: &str,
        source: &crate::model::SourceInfo,
        now: DateTime<Utc>,
    ) -> Result<Result<Campaign, CampaignRefusal>, StateError> {
        let key = campaign_key(id);
        for _ in 0..ROUNDS {
            let Some((mut doc, version)) = self.doc(id, now).await? else {
                return Ok(Err(CampaignRefusal::NotFound));
            };
            if doc.campaign.status != CampaignStatus::Open {
                return Ok(Err(CampaignRefusal::Completed));
            }
            match &doc.source {
                Some(s) if s.id == source.id => return Ok(Ok(doc.campaign)),
                Some(s) => return Ok(Err(CampaignRefusal::OtherSource(s.id.to_string()))),
                None => {}
            }
            doc.source = Some(source.clone());
            doc.campaign.source_id = Some(source.id.to_string());
            let entry = index_entry(&doc);
            let write = DocumentWrite::new(Some(version.version), now).indexed(&entry);
            if save(self.docs.as_ref(), &key, &doc, write).await? {
                return Ok(Ok(doc.campaign));
            }
        }
        Err(StateError::Contention(key))
    }

    /// The sum of a campaign's shards, and when it last had a message accepted.
    pub async fn live_totals(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(CampaignTotals, Option<DateTime<Utc>>), StateError> {
        use futures::{StreamExt, TryStreamExt};
        let reads = (0..CAMPAIGN_SHARDS).map(|n| {
            let key = shard_key(id, n);
            async move {
                let doc = self.docs.get_json(&key, now).await?;
                doc.map(|d| decode::<Shard>(&key, &d)).transpose()
            }
        });
        let shards: Vec<Option<Shard>> = futures::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await?;
        let mut totals = CampaignTotals::default();
        let mut last = None;
        for s in shards.into_iter().flatten() {
            totals.add(&s.totals);
            last = last.max(s.last_send_at);
        }
        Ok((totals, last))
    }

    /// The shard message `message_id` of campaign `id` counts in, read and with `add` added:
    /// for the caller to write together with the message's document.
    pub async fn shard_with(
        &self,
        id: &str,
        message_id: &str,
        add: Counted,
        now: DateTime<Utc>,
    ) -> Result<ShardWrite, StateError> {
        let key = shard_key(id, crate::ports::shard_of(message_id, CAMPAIGN_SHARDS));
        let stored = self.docs.get_json(&key, now).await?;
        let mut shard: Shard = stored
            .as_ref()
            .map(|d| decode(&key, d))
            .transpose()?
            .unwrap_or_default();
        shard.totals.add(&add.totals());
        if add.total {
            shard.last_send_at = shard.last_send_at.max(Some(now));
        }
        Ok(ShardWrite {
            key,
            expected: stored.map(|d| d.version),
            shard,
            expires_at: after(now, self.ttl),
        })
    }

    /// Campaigns, newest first: open ones, or completed ones (by completion).
    pub async fn list(
        &self,
        completed: bool,
        before: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<CampaignPage, StateError> {
        let partitions = if completed {
            vec![DONE.to_owned(), COMPLETING.to_owned()]
        } else {
            vec![OPEN.to_owned()]
        };
        let (docs, next) = crate::ports::merged_page(
            self.docs.as_ref(),
            &partitions,
            (None, before),
            limit,
            now,
            |l| Ok::<_, StateError>(Some(decode::<CampaignDoc>(&l.key, &l.doc)?)),
        )
        .await?;
        let mut campaigns = Vec::with_capacity(docs.len());
        for (_, doc) in docs {
            let (totals, _) = self.live_totals(&doc.campaign.id, now).await?;
            let mut c = doc.campaign;
            c.totals = totals;
            campaigns.push(c);
        }
        Ok(CampaignPage { campaigns, next })
    }

    /// Open campaigns (oldest first, up to `limit`) and completed ones whose event is still to
    /// be handed off: what the sweep looks at.
    pub async fn due(
        &self,
        after_key: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<(Vec<CampaignDoc>, Option<String>, Vec<CampaignDoc>), StateError> {
        let page = |partition, after_key| crate::ports::IndexPage {
            partition,
            after: after_key,
            before: None,
            descending: false,
            limit,
        };
        let open = self.docs.list_page(page(OPEN, after_key), now).await?;
        let next = (open.len() == limit)
            .then(|| open.last().map(|l| l.sort.clone()))
            .flatten();
        let open = open
            .iter()
            .map(|l| decode::<CampaignDoc>(&l.key, &l.doc))
            .collect::<Result<Vec<_>, _>>()?;
        let completing = self
            .docs
            .list_page(page(COMPLETING, None), now)
            .await?
            .iter()
            .map(|l| decode::<CampaignDoc>(&l.key, &l.doc))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((open, next, completing))
    }

    /// Completes campaign `id` if it is open and either every message it counted is final and
    /// none was accepted for [`QUIET`], or its time ran out: fixes its totals and event id and
    /// lists it as completing. Returns it when this call completed it.
    pub async fn complete_if_due(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CampaignDoc>, StateError> {
        let key = campaign_key(id);
        for _ in 0..ROUNDS {
            let Some((mut doc, version)) = self.doc(id, now).await? else {
                return Ok(None);
            };
            if doc.campaign.status != CampaignStatus::Open {
                return Ok(None);
            }
            let (totals, last_send) = self.live_totals(id, now).await?;
            let quiet = last_send.is_none_or(|t| after(t, QUIET) <= now);
            let all_final = totals.total > 0 && totals.finished() >= totals.total && quiet;
            let completion = if all_final {
                CampaignCompletion::AllFinal
            } else if doc.campaign.complete_after <= now {
                CampaignCompletion::Timeout
            } else {
                return Ok(None);
            };
            let c = &mut doc.campaign;
            c.status = CampaignStatus::Completed;
            c.completed_at = Some(now);
            c.completion = Some(completion);
            c.totals = totals;
            doc.completed_event_id = Some(EventId::new());
            doc.handed_off = false;
            let entry = index_entry(&doc);
            let write = DocumentWrite::new(Some(version.version), now)
                .indexed(&entry)
                .expiring(after(now, self.ttl));
            if save(self.docs.as_ref(), &key, &doc, write).await? {
                return Ok(Some(doc));
            }
        }
        Err(StateError::Contention(key))
    }

    /// Lists a completed campaign as done once its event is handed off.
    pub async fn handed_off(&self, id: &str, now: DateTime<Utc>) -> Result<(), StateError> {
        let key = campaign_key(id);
        for _ in 0..ROUNDS {
            let Some((mut doc, version)) = self.doc(id, now).await? else {
                return Ok(());
            };
            if doc.handed_off {
                return Ok(());
            }
            doc.handed_off = true;
            let entry = index_entry(&doc);
            let write = DocumentWrite::new(Some(version.version), now)
                .indexed(&entry)
                .expiring(after(now, self.ttl));
            if save(self.docs.as_ref(), &key, &doc, write).await? {
                return Ok(());
            }
        }
        Err(StateError::Contention(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_status_implies_the_earlier_ones_and_failed_stands_alone() {
        let read = Counted::reached(true, Some(&MessageStatus::Read));
        assert!(read.total && read.sent && read.delivered && read.read && !read.failed);
        let played = Counted::reached(false, Some(&MessageStatus::Played));
        assert!(!played.total && played.read);
        let failed = Counted::reached(true, Some(&MessageStatus::Failed));
        assert_eq!(
            failed,
            Counted {
                total: true,
                failed: true,
                ..Counted::default()
            }
        );
        let pending = Counted::reached(true, Some(&MessageStatus::Pending));
        assert_eq!(
            pending,
            Counted {
                total: true,
                ..Counted::default()
            }
        );
    }

    #[test]
    fn only_what_was_not_counted_is_added() {
        let delivered = Counted::reached(true, Some(&MessageStatus::Delivered));
        let read = Counted::reached(true, Some(&MessageStatus::Read));
        let add = read.minus(delivered);
        assert_eq!(
            add.totals(),
            CampaignTotals {
                read: 1,
                ..CampaignTotals::default()
            }
        );
        assert!(read.minus(read).is_empty());
        assert_eq!(delivered.union(read), read);
    }
}
