//! The sweep: ends conversations idle for the inactivity window, found through the activity
//! index (never a table scan), and hands on their `whatsapp.conversation.ended` events; and
//! completes campaigns whose messages are all final or whose time ran out, handing on their
//! `whatsapp.campaign.completed` events.
//!
//! Lossless and idempotent: a conversation (a campaign) is first marked ended (completed) with
//! its event id fixed and listed as "ending" ("completing"); the event is handed on; only then
//! is it taken off that list. A sweep that dies halfway leaves it listed, and the next sweep
//! hands on the same event again.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::state::{CampaignDoc, Campaigns, ConversationDoc, Conversations, StateError};
use super::{EventSink, QueueSink};
use crate::ids::ConversationId;
use crate::model::{
    CampaignBody, ConversationBody, EndReason, EventBody, EventData, EventType, InboundEvent,
};
use crate::ports::{BackendError, BlobStore, Queue};

/// The sweep with its ports.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Conversations (their settings say after how long idle they end).
    pub conversations: Conversations,
    /// Where `ended` events go.
    pub sink: Arc<dyn EventSink>,
    /// Conversations handled per page (a run goes on until nothing is due).
    pub page: usize,
}

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The sink failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The `whatsapp.conversation.ended` event of an ended conversation.
pub fn ended_event(doc: &ConversationDoc, now: DateTime<Utc>) -> InboundEvent {
    let c = &doc.conversation;
    let mut data = EventData::new(
        doc.source.clone(),
        EventBody::conversation(ConversationBody {
            reason: c.end_reason,
            ..Default::default()
        }),
    );
    data.conversation = Some(Box::new(c.clone()));
    InboundEvent {
        id: doc.ended_event_id.unwrap_or_default(),
        event_type: EventType::ConversationEnded,
        dedup_key: format!("conversation:{}:ended", c.id),
        received_at: now,
        occurred_at: c.ended_at,
        request_id: None,
        data,
    }
}

/// The `whatsapp.campaign.completed` event of a completed campaign; `None` for a campaign no
/// message was ever sent in (no source to speak for it, nothing to report).
pub fn completed_event(doc: &CampaignDoc, now: DateTime<Utc>) -> Option<InboundEvent> {
    let source = doc.source.clone()?;
    let c = &doc.campaign;
    let data = EventData::new(
        source,
        EventBody::campaign(CampaignBody {
            campaign: c.clone(),
        }),
    );
    Some(InboundEvent {
        id: doc.completed_event_id.unwrap_or_default(),
        event_type: EventType::CampaignCompleted,
        dedup_key: format!("campaign:{}:completed", c.id),
        received_at: now,
        occurred_at: c.completed_at,
        request_id: None,
        data,
    })
}

impl Sweep {
    /// The campaigns kept beside the conversations (same store, same retention).
    pub fn campaigns(&self) -> Campaigns {
        Campaigns {
            docs: self.conversations.docs.clone(),
            ttl: self.conversations.settings.message_ttl,
        }
    }

    /// Completes every campaign that is due and hands on pending `completed` events; returns
    /// how many events were handed on.
    pub async fn complete_campaigns(&self, now: DateTime<Utc>) -> Result<usize, SweepError> {
        let campaigns = self.campaigns();
        let mut handed_on = 0;
        let mut after: Option<String> = None;
        loop {
            let (open, next, mut completed) =
                campaigns.due(after.as_deref(), self.page, now).await?;
            for doc in &open {
                if let Some(done) = campaigns.complete_if_due(&doc.campaign.id, now).await? {
                    completed.push(done);
                }
            }
            let events: Vec<InboundEvent> = completed
                .iter()
                .filter_map(|d| completed_event(d, now))
                .collect();
            if !events.is_empty() {
                self.sink.emit(&events, now).await?;
                handed_on += events.len();
            }
            for doc in &completed {
                campaigns.handed_off(&doc.campaign.id, now).await?;
            }
            match next {
                Some(n) => after = Some(n),
                None if completed.is_empty() => return Ok(handed_on),
                // Completing ones were moved on: look again for any beyond the page.
                None => after = None,
            }
            if open.is_empty() && completed.is_empty() {
                return Ok(handed_on);
            }
        }
    }

    /// The sweep over `conversations` whose events (only conversation events: never messages
    /// to batch) go to `outbound`, claim-checked into `blobs` for `blob_ttl` when large: how
    /// the sweep function and the admin API's close and transfer are wired.
    pub fn emitting_to(
        conversations: Conversations,
        outbound: Arc<dyn Queue>,
        blobs: Arc<dyn BlobStore>,
        blob_ttl: std::time::Duration,
        page: usize,
    ) -> Self {
        Self {
            conversations,
            sink: Arc::new(QueueSink {
                buffer: outbound.clone(),
                outbound,
                blobs,
                blob_ttl,
                media: None,
            }),
            page,
        }
    }

    /// Ends every conversation idle at `now` and hands on pending `ended` events; returns how
    /// many events were handed on.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<usize, SweepError> {
        let idle = self.conversations.settings.idle;
        let cutoff = now - chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::days(1));
        let mut handed_on = 0;
        // Conversations listed but active since (later in the cutoff's minute, or revived
        // while the index lags) stay listed: page past them.
        let mut after: Option<String> = None;
        loop {
            let due = self
                .conversations
                .due(cutoff, after.as_deref(), self.page, now)
                .await?;
            if due.idle.is_empty() && due.ending.is_empty() {
                return Ok(handed_on + self.complete_campaigns(now).await?);
            }
            after = due.next.or(after);
            let mut ended = due.ending;
            for id in due.idle {
                if let Some(doc) = self
                    .conversations
                    .end_conversation(id, EndReason::Inactivity, Some(cutoff), now)
                    .await?
                {
                    ended.push(doc);
                }
            }
            handed_on += self.hand_off(&ended, now).await?;
        }
    }

    /// Ends one conversation now (closed through the API); `false` if it was already ended.
    pub async fn close(
        &self,
        id: ConversationId,
        reason: EndReason,
        now: DateTime<Utc>,
    ) -> Result<bool, SweepError> {
        match self
            .conversations
            .end_conversation(id, reason, None, now)
            .await?
        {
            Some(doc) => {
                self.hand_off(&[doc], now).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn hand_off(
        &self,
        ended: &[ConversationDoc],
        now: DateTime<Utc>,
    ) -> Result<usize, SweepError> {
        if ended.is_empty() {
            return Ok(0);
        }
        // A transfer or hand-off whose request died before handing its event on left it in the
        // conversation: it goes out first, then the end.
        let events: Vec<InboundEvent> = ended
            .iter()
            .flat_map(|d| {
                let mut events = d.pending_events();
                events.push(ended_event(d, now));
                events
            })
            .collect();
        self.sink.emit(&events, now).await?;
        for doc in ended {
            self.conversations
                .ended_handed_off(doc.conversation.id, now)
                .await?;
        }
        Ok(events.len())
    }
}
