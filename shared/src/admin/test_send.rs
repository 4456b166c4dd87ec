//! `POST /v1/endpoints/{id}/test`: one realistic event of a chosen type, sent through the real
//! delivery path (signing, headers, SSRF guard, attempt record) to one endpoint, with the
//! attempt's result in the answer. The event comes from a provider sample normalized by the real
//! parsers; conversation events use a sample conversation. Test deliveries are never retried nor
//! dead-lettered, but a `410` answer disables the endpoint as it would for any delivery.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::http::{Id, JsonBody, Now, Routes};
use super::openapi::{IdempotencyKey, ItemChangeErrors};
use super::{Admin, ApiError};
use crate::delivery::deliver::{Deliver, DeliverConfig, DeliverOutcome};
use crate::delivery::record::AttemptRecord;
use crate::delivery::request::{BodyForm, DeliveryTask};
use crate::ids::{ConversationId, EventId, SourceId};
use crate::model::{
    ContactProfile, Conversation, ConversationBody, ConversationContext, ConversationStatus,
    EndReason, Envelope, EventBody, EventData, EventType, InboundEvent, NotificationData, Provider,
    SourceInfo, Transfer,
};
use crate::ports::{BackendError, FailedEntry, OutgoingMessage, Queue, ReceivedMessage};

/// Provider samples the test events are normalized from.
const SAMPLES: &[(Provider, &str)] = &[
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-text.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-image.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-reaction.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-edit.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-revoke.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-status-sent.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-status-delivered.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-status-read.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-status-failed.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-template-status-update.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-template-quality-update.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-template-category-update.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-account-update.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-account-alerts.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-calls.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-phone-number-quality-update.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-phone-number-name-update.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-user-preferences.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-security.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-smb-message-echoes.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-flows.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-history.json"),
    ),
    (
        Provider::Meta,
        include_str!("../../fixtures/providers/meta-group-message.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-session-status.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-group-v2-join.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-group-v2-leave.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-group-v2-participants.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-group-v2-update.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-label-upsert.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-label-chat-added.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-call-received.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-chat-archive.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-message-ack.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-presence-update.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-poll-vote.json"),
    ),
    (
        Provider::Waha,
        include_str!("../../fixtures/providers/waha-engine-event.json"),
    ),
];

/// `POST /v1/endpoints/{id}/test`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestDelivery {
    /// The event type to send (default `whatsapp.message.received`).
    pub event_type: Option<EventType>,
}

/// How a test delivery went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// It did not (an error status, a timeout, a refused address).
    Failed,
    /// It answered 410: the endpoint is now disabled.
    EndpointDisabled,
    /// Nothing was sent (the endpoint does not want this event type).
    Skipped,
}

/// The answer of `POST /v1/endpoints/{id}/test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TestResult {
    /// The test delivery's id.
    pub delivery_id: String,
    /// The event type sent.
    pub event_type: EventType,
    /// How it went.
    pub result: TestOutcome,
    /// The attempt, if one was made.
    pub attempt: Option<AttemptRecord>,
}

/// A queue that takes nothing anywhere: test deliveries are not retried or dead-lettered.
#[derive(Debug)]
struct Nowhere;

#[async_trait]
impl Queue for Nowhere {
    async fn send_batch(&self, _: &[OutgoingMessage]) -> Result<Vec<FailedEntry>, BackendError> {
        Ok(Vec::new())
    }

    async fn receive(
        &self,
        _: usize,
        _: Duration,
        _: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        Ok(Vec::new())
    }

    async fn delete(&self, _: &str) -> Result<(), BackendError> {
        Ok(())
    }

    async fn change_visibility(&self, _: &str, _: Duration) -> Result<(), BackendError> {
        Ok(())
    }
}

fn sample_conversation(now: DateTime<Utc>) -> Conversation {
    Conversation {
        id: ConversationId::new(),
        status: ConversationStatus::Active,
        contact: ContactProfile {
            wa_id: Some("15550001111".into()),
            name: Some("Alice Example".into()),
            ..ContactProfile::default()
        },
        business_id: "106540352242922".into(),
        created_at: now - chrono::Duration::minutes(5),
        last_active_at: now,
        ended_at: None,
        end_reason: None,
        inbound_count: 2,
        outbound_count: 1,
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

/// A realistic event of `event_type` from source `source_id`, with a fresh id.
pub fn sample_event(
    source_id: &SourceId,
    event_type: EventType,
    now: DateTime<Utc>,
) -> InboundEvent {
    let from_samples = SAMPLES.iter().find_map(|(provider, text)| {
        crate::providers::normalize(source_id, *provider, text.as_bytes(), now)
            .ok()?
            .into_iter()
            .find(|e| e.event_type == event_type)
    });
    let mut event = from_samples.unwrap_or_else(|| {
        let source = SourceInfo::new(source_id.clone(), Provider::Meta);
        let (body, conversation) = match event_type {
            EventType::ConversationCreated
            | EventType::ConversationEnded
            | EventType::ConversationTransferred => {
                let mut c = sample_conversation(now);
                let mut body = ConversationBody::default();
                if event_type == EventType::ConversationEnded {
                    c.status = ConversationStatus::Ended;
                    c.ended_at = Some(now);
                    c.end_reason = Some(EndReason::Manual);
                    body.reason = Some(EndReason::Manual);
                }
                if event_type == EventType::ConversationTransferred {
                    body.transfer = Some(Transfer {
                        from_agent: Some("bot".into()),
                        from_team: None,
                        to_agent: None,
                        to_team: Some("support".into()),
                        notes: Some("test transfer".into()),
                    });
                }
                (EventBody::conversation(body), Some(c))
            }
            _ => (
                EventBody::notification(NotificationData::new(
                    "wagate.test",
                    serde_json::json!({"test": true, "event_type": event_type.as_str()}),
                )),
                None,
            ),
        };
        let mut data = EventData::new(source, body);
        data.conversation = conversation.map(Box::new);
        InboundEvent {
            id: EventId::new(),
            event_type,
            dedup_key: String::new(),
            received_at: now,
            occurred_at: Some(now),
            request_id: None,
            data,
        }
    });
    event.id = EventId::new();
    event.dedup_key = format!("test:{}", event.id);
    event.received_at = now;
    event
}

pub(super) fn routes() -> Routes {
    Routes::default().routes(routes!(test_endpoint))
}

/// Send one realistic event of a chosen type through the delivery path; answers the attempt.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/test",
    operation_id = "testEndpoint",
    params(("id" = String, Path), IdempotencyKey),
    request_body = Option<TestDelivery>,
    responses((status = 200, description = "Done.", body = TestResult), ItemChangeErrors)
)]
async fn test_endpoint(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<TestDelivery>,
) -> Result<Json<TestResult>, ApiError> {
    let event_type = req.event_type.unwrap_or(EventType::MessageReceived);
    let Some(http) = &admin.sender else {
        return Err(ApiError::new(
            404,
            "not_found",
            "test deliveries are not available here",
        ));
    };
    let (endpoint, _) = admin
        .endpoints
        .get(&id, now)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    if !endpoint.enabled {
        return Err(ApiError::conflict(
            "the endpoint is disabled; enable it first",
        ));
    }
    let source = SourceId::parse("wagate-test")
        .map_err(|_| ApiError::new(500, "internal", "could not build the test event"))?;
    let event = sample_event(&source, event_type, now);
    let task = DeliveryTask::new(&Envelope::single(event), &id, BodyForm::default())
        .map_err(|_| ApiError::new(500, "internal", "could not build the test event"))?;
    let nowhere: Arc<dyn Queue> = Arc::new(Nowhere);
    let deliver = Deliver {
        endpoints: admin.endpoints.clone(),
        docs: admin.docs.clone(),
        http: http.clone(),
        queue: nowhere.clone(),
        dead_letter: nowhere,
        blobs: admin.blobs.clone(),
        config: DeliverConfig {
            attempt_ttl: admin.deliveries.ttl,
            network: admin.config.network,
            ..DeliverConfig::default()
        },
    };
    let outcome = deliver.deliver(&task, 1, now).await?;
    let attempt = admin
        .deliveries
        .get(&task.delivery_id, now)
        .await?
        .and_then(|(r, _)| r.attempts.last().cloned());
    let result = match outcome {
        DeliverOutcome::Delivered | DeliverOutcome::AlreadyDelivered => TestOutcome::Delivered,
        DeliverOutcome::EndpointDisabled => TestOutcome::EndpointDisabled,
        DeliverOutcome::Skipped => TestOutcome::Skipped,
        DeliverOutcome::RetryAfter(_) | DeliverOutcome::DeadLettered => TestOutcome::Failed,
    };
    Ok(Json(TestResult {
        delivery_id: task.delivery_id,
        event_type,
        result,
        attempt,
    }))
}
