//! `/v1/messages`: send a message through a source's provider (Meta Cloud API, WAHA), and mark
//! a received one as read.
//!
//! A send is recorded before the provider is called (`send#{id}`: what is sent, its campaign
//! and metadata, and Meta's `biz_opaque_callback_data` names it, so a status that outruns the
//! answer still finds it), then with the provider's message id: the message's document keeps
//! what was sent (statuses and echoes carry it), the campaign counts it, and the customer's
//! conversation records it as the business's latest message (opening one if none is open).
//!
//! Replays: with an `Idempotency-Key`, the send's id is derived from the key, so a retry after
//! a crash finds the send: done, it answers the same; provider answered, it finishes the
//! recording without calling the provider again; provider called and no answer kept, it
//! refuses (`send_in_doubt`, 409) rather than send the message twice. A provider error that
//! certainly sent nothing leaves the send free to be tried again.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa_axum::routes;

use super::audit::Change;
use super::http::{Id, IdempotencyKeyHeader, JsonBody, Now, Routes};
use super::openapi::{ChangeErrors, IdempotencyKey, ItemChangeErrors};
use super::{Admin, ApiError};
use crate::ids::{ConversationId, EventId};
use crate::model::{
    ContactProfile, Conversation, Direction, Message, MessageContent, Provider, SourceInfo,
};
use crate::pipeline::track::state::campaigns::CampaignRefusal;
use crate::pipeline::track::state::contacts::customer_keys;
use crate::pipeline::track::state::{
    Activity, Contacts, ConversationKey, MessageActivity, OutboundRecord, SendRecord, Statuses,
    message_summary,
};
use crate::pipeline::track::sweep::ended_event;
use crate::pipeline::track::{
    SEND_TAG, TrackConfig, conversation_event, created_event_id, outbound_activity_key,
};
use crate::ports::Source;
use crate::send::{MarkRead, SendError, SendMessage, Sent, SentRecipient};

/// The answer of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SentMessage {
    /// wagate's id for the send (`snd_…`).
    pub id: String,
    /// The provider's message id: statuses and replies name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The source it went through.
    pub source_id: String,
    /// Who sent it: the Meta phone number id or the WAHA session.
    pub business_id: String,
    /// The recipient as the provider resolved it.
    pub to: SentRecipient,
    /// The provider's word on it (Meta `accepted`, `held_for_quality_assessment`, `paused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// What was sent, as events show it (`message_type`, `message_type_data`).
    #[serde(flatten)]
    pub content: MessageContent,
    /// The campaign it counts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// The conversation it went into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// The `metadata` given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// When the provider accepted it.
    pub sent_at: DateTime<Utc>,
}

/// The answer of `POST /v1/messages/{id}/read`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MarkedRead {
    /// The message marked as read.
    pub message_id: String,
    /// Whether a typing indicator was shown too.
    pub typing_indicator: bool,
}

/// `POST /v1/messages/{id}/read`: the source the message came in on, and the options.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// The configured source the message came in on.
    pub source_id: String,
    /// WAHA: the chat (phone number or chat id), when the message id does not name it.
    pub to: Option<String>,
    /// WAHA: the chat as a `…@lid` id, when the message id does not name it.
    pub user_id: Option<String>,
    /// The receiving phone number id or WAHA session (default: the source's).
    pub from: Option<String>,
    /// Also show a typing indicator.
    #[serde(default)]
    pub typing_indicator: bool,
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        let mut error = ApiError::new(e.status(), e.code(), e.message());
        error.details = e.details();
        error.retry_after = e.retry_after().map(|d| d.as_secs().max(1));
        if e.status() >= 500 {
            tracing::warn!(
                code = e.code(),
                attempts = e.attempts(),
                "a send failed at the provider"
            );
        }
        error
    }
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .routes(routes!(send_message))
        .routes(routes!(mark_read))
}

impl Admin {
    fn source(&self, field: &str, id: &str) -> Result<Arc<Source>, ApiError> {
        self.sources
            .as_ref()
            .and_then(|s| s.get(id))
            .ok_or_else(|| ApiError::invalid(field, "no source has this id"))
    }

    fn provider(&self) -> Result<&crate::send::Sender, ApiError> {
        self.provider
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "not_found", "sending is not available here"))
    }

    fn statuses(&self) -> Result<Statuses, ApiError> {
        let sweep = self.sweep()?;
        Ok(Statuses {
            docs: self.docs.clone(),
            message_ttl: sweep.conversations.settings.message_ttl,
            campaigns: sweep.campaigns(),
        })
    }
}

/// The send id for an `Idempotency-Key` (the same key, the same send), or a fresh one.
fn send_id(key: Option<&str>) -> String {
    match key {
        Some(k) => {
            let digest = Sha256::digest(format!("send|{k}").as_bytes());
            format!("snd_{}", hex::encode(&digest[..13]))
        }
        None => format!("snd_{}", ulid::Ulid::new().to_string().to_lowercase()),
    }
}

/// The customer as the conversation knows them, from the recipient the provider resolved.
fn customer(to: &SentRecipient) -> ContactProfile {
    let from_chat = to
        .chat_id
        .as_deref()
        .and_then(|c| {
            c.strip_suffix("@c.us")
                .or(c.strip_suffix("@s.whatsapp.net"))
        })
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned);
    let lid = to.chat_id.clone().filter(|c| c.ends_with("@lid"));
    ContactProfile {
        wa_id: to.wa_id.clone().or(from_chat),
        user_id: to.user_id.clone().or(lid),
        ..ContactProfile::default()
    }
}

/// Send a message through a source's provider.
#[utoipa::path(
    post,
    path = "/v1/messages",
    operation_id = "sendMessage",
    params(IdempotencyKey),
    request_body = SendMessage,
    responses(
        (status = 201, description = "The provider accepted it.", body = SentMessage),
        ChangeErrors,
    )
)]
async fn send_message(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    IdempotencyKeyHeader(key): IdempotencyKeyHeader,
    JsonBody(req): JsonBody<SendMessage>,
) -> Result<(StatusCode, Change, Json<SentMessage>), ApiError> {
    req.validate().map_err(SendError::from)?;
    let source = admin.source("source_id", &req.source_id)?;
    if source.send.is_none() {
        return Err(SendError::NotConfigured {
            source_id: source.id.to_string(),
        }
        .into());
    }
    let metadata = super::campaigns::check_metadata(req.metadata.clone())?;
    let statuses = admin.statuses()?;
    let info = SourceInfo::new(source.id.clone(), source.provider);
    if let Some(campaign) = &req.campaign_id {
        match admin
            .campaigns()?
            .take_for_send(campaign, &info, now)
            .await?
        {
            Ok(_) => {}
            Err(CampaignRefusal::NotFound) => {
                return Err(ApiError::invalid("campaign_id", "no campaign has this id"));
            }
            Err(CampaignRefusal::Completed) => {
                return Err(ApiError::new(
                    409,
                    "campaign_completed",
                    "the campaign has completed; create another",
                ));
            }
            Err(CampaignRefusal::OtherSource(s)) => {
                return Err(ApiError::new(
                    409,
                    "campaign_source",
                    format!("the campaign's messages go through source `{s}`"),
                ));
            }
        }
    }
    let id = send_id(key.as_deref());
    let digest = hex::encode(Sha256::digest(
        serde_json::to_vec(&req).unwrap_or_default().as_slice(),
    ));
    let record = OutboundRecord {
        content: Some(req.content()),
        campaign_id: req.campaign_id.clone(),
        metadata,
        to: None,
        sent_at: now,
        via_api: true,
    };
    // The send as it was before the provider was called, or as an earlier run left it.
    let (mut send, mut version) = match statuses.send_versioned(&id, now).await? {
        Some((s, v)) => (s, v),
        None => {
            let send = SendRecord {
                source: info.clone(),
                record,
                conversation_id: None,
                called: false,
                message_id: None,
                provider: None,
                answer: None,
                request_digest: Some(digest.clone()),
            };
            if !statuses.save_send_checked(&id, &send, None, now).await? {
                return Err(ApiError::conflict(
                    "this send is being made by another request; retry",
                ));
            }
            (send, 1)
        }
    };
    if send.request_digest.as_deref() != Some(digest.as_str()) {
        return Err(ApiError::conflict(
            "the Idempotency-Key was used for another message",
        ));
    }
    if let Some(answer) = &send.answer {
        // Done before: the same answer.
        let sent: SentMessage = serde_json::from_value(answer.clone())
            .map_err(|_| ApiError::new(500, "internal", "the stored send is unreadable"))?;
        return Ok((
            StatusCode::CREATED,
            Change::with_body("message.sent", sent.message_id.as_deref()),
            Json(sent),
        ));
    }
    let sent: Sent = match &send.message_id {
        Some(_) => serde_json::from_value(send.provider.clone().unwrap_or_default())
            .map_err(|_| ApiError::new(500, "internal", "the stored send is unreadable"))?,
        None if send.called => {
            return Err(ApiError::new(
                409,
                "send_in_doubt",
                "an earlier attempt of this send called the provider and its answer was lost: \
                 the message may have been sent; watch for its status events",
            ));
        }
        None => {
            send.called = true;
            if !statuses
                .save_send_checked(&id, &send, Some(version), now)
                .await?
            {
                return Err(ApiError::conflict(
                    "this send is being made by another request; retry",
                ));
            }
            version += 1;
            let tag = (source.provider == Provider::Meta).then(|| format!("{SEND_TAG}{id}"));
            match admin.provider()?.send(&source, &req, tag.as_deref()).await {
                Ok(sent) => {
                    send.message_id.clone_from(&sent.message_id);
                    send.provider = serde_json::to_value(&sent).ok();
                    if !statuses
                        .save_send_checked(&id, &send, Some(version), now)
                        .await?
                    {
                        return Err(ApiError::conflict(
                            "this send is being made by another request; retry",
                        ));
                    }
                    version += 1;
                    sent
                }
                Err(e) => {
                    if !matches!(e, SendError::OutcomeUnknown { .. }) {
                        // Nothing was sent: the same request may try again.
                        send.called = false;
                        statuses.save_send(&id, &send, Some(version), now).await?;
                    }
                    return Err(e.into());
                }
            }
        }
    };
    let answer = record_sent(&admin, &statuses, &info, &id, &send, &sent, now).await?;
    send.conversation_id = answer.conversation_id;
    send.answer = serde_json::to_value(&answer).ok();
    // Kept for a retry's answer; a failure here only costs that retry the recording again.
    if let Err(e) = statuses.save_send(&id, &send, Some(version), now).await {
        tracing::warn!(error = %e, "the send's answer could not be kept");
    }
    Ok((
        StatusCode::CREATED,
        Change::with_body("message.sent", answer.message_id.as_deref()),
        Json(answer),
    ))
}

/// Records an accepted send: in the customer's conversation (opening one if needed, events
/// handed on), in the message's document (campaign counted). Every step recognises its replay.
async fn record_sent(
    admin: &Admin,
    statuses: &Statuses,
    info: &SourceInfo,
    send_id: &str,
    send: &SendRecord,
    sent: &Sent,
    now: DateTime<Utc>,
) -> Result<SentMessage, ApiError> {
    let mut source = info.clone();
    source.business_id = Some(sent.business_id.clone());
    let profile = customer(&sent.recipient);
    let mut conversation_id = None;
    if let Some(message_id) = &sent.message_id {
        let mut record = send.record.clone();
        record.to = Some(profile.clone());
        let conversation =
            record_in_conversation(admin, &source, &profile, message_id, (sent, &record), now)
                .await?;
        conversation_id = conversation.as_ref().map(|c| c.id);
        statuses
            .record_outbound(&source, message_id, &record, conversation_id, now)
            .await?;
    }
    tracing::info!(send_id, source_id = %source.id, "send recorded");
    Ok(SentMessage {
        id: send_id.to_owned(),
        message_id: sent.message_id.clone(),
        source_id: source.id.to_string(),
        business_id: sent.business_id.clone(),
        to: sent.recipient.clone(),
        provider_status: sent.provider_status.clone(),
        content: sent.content.clone(),
        campaign_id: send.record.campaign_id.clone(),
        conversation_id,
        metadata: send.record.metadata.clone(),
        sent_at: send.record.sent_at,
    })
}

/// The business's message in the customer's conversation: opens one if none is open (ending
/// an idle one first), and hands on `conversation.ended`/`created` as track would.
async fn record_in_conversation(
    admin: &Admin,
    source: &SourceInfo,
    profile: &ContactProfile,
    message_id: &str,
    (sent, record): (&Sent, &OutboundRecord),
    now: DateTime<Utc>,
) -> Result<Option<Conversation>, ApiError> {
    let sweep = admin.sweep()?;
    // The customer as track knows them: a contact seen before keys their conversation by its
    // primary key (whichever id the provider used first); a new one as track will key it.
    let contacts = Contacts {
        docs: sweep.conversations.docs.clone(),
    };
    let resolved = contacts.resolve(source, profile, now).await?;
    let primary = match &resolved {
        Some(r) => Some(r.primary_key.clone()),
        None => customer_keys(profile, None)
            .first()
            .map(|k| k.customer().to_owned()),
    };
    let Some(key) = ConversationKey::new(source, primary.as_deref()) else {
        return Ok(None);
    };
    let mut message = Message::new(message_id, Direction::Outbound);
    message.to = profile.wa_id.clone();
    message.to_user_id = profile.user_id.clone();
    message.timestamp = Some(now);
    message.content = Some(sent.content.clone());
    message.campaign_id.clone_from(&record.campaign_id);
    let summary = message_summary(&message, now);
    let lease = TrackConfig::default().lease;
    let Activity {
        conversation,
        created,
        ended,
    } = sweep
        .conversations
        .record_activity(
            &key,
            source,
            MessageActivity {
                contact: profile,
                customer: resolved.as_ref().map(|r| &r.contact),
                summary: &summary,
                at: now,
            },
            &outbound_activity_key(source, message_id),
            (sweep.conversations.settings.idle, lease),
            now,
        )
        .await?;
    let mut events = Vec::new();
    if let Some(done) = &ended {
        events.push(ended_event(done, now));
    }
    if created {
        let parent = crate::model::InboundEvent {
            id: EventId::new(),
            event_type: crate::model::EventType::MessageSent,
            dedup_key: outbound_activity_key(source, message_id),
            received_at: now,
            occurred_at: Some(now),
            request_id: None,
            data: crate::model::EventData::new(
                source.clone(),
                crate::model::EventBody::message(message, Some(profile.clone())),
            ),
        };
        events.push(conversation_event(
            &parent,
            crate::model::EventType::ConversationCreated,
            Some(created_event_id(&conversation)),
            &conversation,
            now,
        ));
    }
    if !events.is_empty() {
        sweep.sink.emit(&events, now).await?;
    }
    if let Some(done) = ended {
        sweep
            .conversations
            .ended_handed_off(done.conversation.id, now)
            .await?;
    }
    Ok(Some(conversation))
}

/// Mark a received message as read (and show a typing indicator, if asked).
#[utoipa::path(
    post,
    path = "/v1/messages/{id}/read",
    operation_id = "markMessageRead",
    params(("id" = String, Path, description = "The received message's provider id."), IdempotencyKey),
    request_body = ReadRequest,
    responses((status = 200, description = "Done.", body = MarkedRead), ItemChangeErrors)
)]
async fn mark_read(
    State(admin): State<Arc<Admin>>,
    Id(id): Id,
    JsonBody(req): JsonBody<ReadRequest>,
) -> Result<(StatusCode, Change, Json<MarkedRead>), ApiError> {
    let source = admin.source("source_id", &req.source_id)?;
    let mark = MarkRead {
        source_id: req.source_id,
        message_id: id.clone(),
        to: req.to,
        user_id: req.user_id,
        from: req.from,
        typing_indicator: req.typing_indicator,
    };
    admin.provider()?.mark_read(&source, &mark).await?;
    Ok((
        StatusCode::OK,
        Change::with_body("message.read", Some(&id)),
        Json(MarkedRead {
            message_id: id,
            typing_indicator: mark.typing_indicator,
        }),
    ))
}

#[cfg(test)]
#[path = "send_fault_tests.rs"]
mod fault_tests;
