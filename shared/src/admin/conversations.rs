//! `/v1/conversations`: list (open or ended, by source), show, close (emits
//! `whatsapp.conversation.ended` with reason `manual` or `agent`), transfer to an agent or team
//! (emits `whatsapp.conversation.transferred`), and set labels and notes, which every later
//! event carrying the conversation shows.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::audit::Change;
use super::http::{ApiQuery, Id, JsonBody, Now, Routes};
use super::openapi::{ChangeErrors, IdempotencyKey, ItemChangeErrors, ItemErrors};
use super::{Admin, ApiError, Page, Paging, has_visible};
use crate::ids::{ConversationId, EventId, SourceId};
use crate::model::{
    Conversation, ConversationBody, ConversationStatus, EndReason, EventBody, EventData, EventType,
    InboundEvent, Note, SourceInfo, Transfer,
};
use crate::pipeline::track::state::{ConversationDoc, StateError};
use crate::pipeline::track::sweep::{Sweep, SweepError};

/// A conversation as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConversationView {
    /// The source it belongs to.
    pub source: SourceInfo,
    /// The conversation, as events carry it.
    #[serde(flatten)]
    pub conversation: Conversation,
}

impl ConversationView {
    fn of(doc: ConversationDoc) -> Self {
        Self {
            source: doc.source,
            conversation: doc.conversation,
        }
    }
}

/// A page of conversations.
pub type ConversationPage = Page<ConversationView>;

/// The answer of `POST /v1/conversations/{id}/transfer`: the event that went out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Transferred {
    /// The event's id.
    pub event_id: EventId,
    /// `whatsapp.conversation.transferred`.
    #[serde(rename = "type")]
    #[schemars(extend("const" = "whatsapp.conversation.transferred"))]
    pub event_type: EventType,
    /// The conversation as the event carries it.
    pub conversation: ConversationView,
}

/// `GET /v1/conversations`: filters besides paging.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ConversationQuery {
    /// active (default) or ended.
    #[param(value_type = Option<ConversationStatus>)]
    status: Option<String>,
    /// Only this source's.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    source_id: Option<String>,
}

/// Why the API closes a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// An operator closed it.
    Manual,
    /// The agent or bot handling the chat closed it.
    Agent,
}

/// `POST /v1/conversations/{id}/close`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseConversation {
    /// `manual` (default) or `agent`.
    pub reason: Option<CloseReason>,
}

/// `POST /v1/conversations/{id}/transfer`: at least one of `to_agent`, `to_team`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    {"required": ["to_agent"], "properties": {"to_agent": {"type": "string"}}},
    {"required": ["to_team"], "properties": {"to_team": {"type": "string"}}}
]))]
pub struct TransferConversation {
    /// The agent taking over.
    #[schemars(
        length(min = 1, max = 200),
        regex(pattern = r"[^\s\x00-\x1f\x7f-\x9f]")
    )]
    pub to_agent: Option<String>,
    /// The team taking over.
    #[schemars(
        length(min = 1, max = 200),
        regex(pattern = r"[^\s\x00-\x1f\x7f-\x9f]")
    )]
    pub to_team: Option<String>,
    /// Notes for whoever takes over.
    #[schemars(length(max = 2000))]
    pub notes: Option<String>,
}

/// `PUT /v1/conversations/{id}/labels`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLabels {
    /// The labels (replacing the current ones); 1–64 characters each, at most 50.
    #[schemars(
        length(max = 50),
        inner(
            length(min = 1, max = 64),
            regex(
                pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
            )
        )
    )]
    pub labels: Vec<String>,
}

/// One note in `PUT /v1/conversations/{id}/notes`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    /// The text (1–2,000 characters).
    #[schemars(
        length(min = 1, max = 2000),
        regex(pattern = r"[^\s\x00-\x1f\x7f-\x9f]")
    )]
    pub text: String,
    /// Who wrote it (at most 200 characters).
    #[schemars(length(max = 200))]
    pub author: Option<String>,
}

/// All notes of a conversation together, texts and authors, in UTF-8 bytes at most: they ride
/// with every event of the conversation, so they are bounded as a whole, not only one by one.
pub const NOTES_MAX_BYTES: usize = 32 * 1024;

/// `PUT /v1/conversations/{id}/notes`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetNotes {
    /// The notes (replacing the current ones; unchanged ones keep their time), at most 100,
    /// together at most 32 KiB of text and authors (UTF-8).
    #[schemars(length(max = 100))]
    pub notes: Vec<NoteInput>,
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        tracing::error!(error = %e, "conversation state failed during a management request");
        if e.is_retryable() {
            Self::new(503, "unavailable", "storage is unavailable; retry")
        } else {
            Self::new(
                500,
                "internal",
                "conversation state could not be read or written",
            )
        }
    }
}

impl From<SweepError> for ApiError {
    fn from(e: SweepError) -> Self {
        tracing::error!(error = %e, "closing a conversation failed");
        Self::new(
            503,
            "unavailable",
            "the conversation could not be closed; retry",
        )
    }
}

fn conversation_id(id: &str) -> Result<ConversationId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("conversation"))
}

impl Admin {
    fn sweep(&self) -> Result<&Sweep, ApiError> {
        self.conversations
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "not_found", "conversations are not available here"))
    }

    async fn conversation_doc(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<ConversationDoc, ApiError> {
        let id = conversation_id(id)?;
        self.sweep()?
            .conversations
            .conversation(id, now)
            .await?
            .ok_or_else(|| ApiError::not_found("conversation"))
    }
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(close_conversation))
        .routes(routes!(transfer_conversation))
        .routes(routes!(set_labels))
        .routes(routes!(set_notes))
}

/// List conversations, most recent first (active ones by the minute of their last activity).
#[utoipa::path(
    get,
    path = "/v1/conversations",
    operation_id = "listConversations",
    params(ConversationQuery, Paging),
    responses((status = 200, description = "Done.", body = ConversationPage), ChangeErrors)
)]
async fn list_conversations(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiQuery(query): ApiQuery<ConversationQuery>,
) -> Result<Json<ConversationPage>, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor()?;
    let ended = match query.status.as_deref() {
        None | Some("active") => false,
        Some("ended") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "status must be active or ended",
            ));
        }
    };
    let source = query.source_id.as_deref();
    if let Some(s) = source {
        SourceId::parse(s).map_err(|_| ApiError::invalid("source_id", "not a source id"))?;
    }
    let page = admin
        .sweep()?
        .conversations
        .list_conversations(ended, source, cursor.as_deref(), limit, now)
        .await?;
    let data: Vec<ConversationView> = page
        .conversations
        .into_iter()
        .map(ConversationView::of)
        .collect();
    Ok(Json(Page::new(data, page.next.as_deref())))
}

/// Show a conversation.
#[utoipa::path(
    get,
    path = "/v1/conversations/{id}",
    operation_id = "getConversation",
    params(("id" = String, Path)),
    responses((status = 200, description = "Done.", body = ConversationView), ItemErrors)
)]
async fn get_conversation(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<Json<ConversationView>, ApiError> {
    let doc = admin.conversation_doc(&id, now).await?;
    Ok(Json(ConversationView::of(doc)))
}

/// End a conversation; emits whatsapp.conversation.ended.
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/close",
    operation_id = "closeConversation",
    params(("id" = String, Path), IdempotencyKey),
    request_body = Option<CloseConversation>,
    responses((status = 200, description = "Done.", body = ConversationView), ItemChangeErrors)
)]
async fn close_conversation(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<CloseConversation>,
) -> Result<(StatusCode, Change, Json<ConversationView>), ApiError> {
    let reason = match req.reason {
        None | Some(CloseReason::Manual) => EndReason::Manual,
        Some(CloseReason::Agent) => EndReason::Agent,
    };
    let doc = admin.conversation_doc(&id, now).await?;
    if !admin
        .sweep()?
        .close(doc.conversation.id, reason, now)
        .await?
    {
        return Err(ApiError::conflict("the conversation has already ended"));
    }
    let doc = admin.conversation_doc(&id, now).await?;
    Ok((
        StatusCode::OK,
        Change::with_body("conversation.closed", Some(&id)),
        Json(ConversationView::of(doc)),
    ))
}

/// Hand a conversation to an agent or team; emits whatsapp.conversation.transferred.
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/transfer",
    operation_id = "transferConversation",
    params(("id" = String, Path), IdempotencyKey),
    request_body = TransferConversation,
    responses((status = 202, description = "Done.", body = Transferred), ItemChangeErrors)
)]
async fn transfer_conversation(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<TransferConversation>,
) -> Result<(StatusCode, Change, Json<Transferred>), ApiError> {
    if req.to_agent.is_none() && req.to_team.is_none() {
        return Err(ApiError::invalid("to_agent", "give to_agent or to_team"));
    }
    for (field, value) in [("to_agent", &req.to_agent), ("to_team", &req.to_team)] {
        if value
            .as_deref()
            .is_some_and(|v| !has_visible(v) || v.chars().count() > 200)
        {
            return Err(ApiError::invalid(
                field,
                format!("{field} is 1 to 200 characters, not all blank"),
            ));
        }
    }
    if req
        .notes
        .as_deref()
        .is_some_and(|n| n.chars().count() > 2000)
    {
        return Err(ApiError::invalid(
            "notes",
            "notes are at most 2,000 characters",
        ));
    }
    let doc = admin.conversation_doc(&id, now).await?;
    let transfer = Transfer {
        from_agent: None,
        from_team: None,
        to_agent: req.to_agent,
        to_team: req.to_team,
        notes: req.notes,
    };
    let mut data = EventData::new(
        doc.source.clone(),
        EventBody::Conversation(ConversationBody {
            transfer: Some(transfer),
            ..Default::default()
        }),
    );
    data.conversation = Some(doc.conversation.clone());
    let event = InboundEvent {
        id: EventId::new(),
        event_type: EventType::ConversationTransferred,
        dedup_key: format!(
            "conversation:{}:transfer:{}",
            doc.conversation.id,
            ulid::Ulid::new()
        ),
        received_at: now,
        occurred_at: Some(now),
        request_id: None,
        data,
    };
    admin
        .sweep()?
        .sink
        .emit(std::slice::from_ref(&event), now)
        .await?;
    let transferred = Transferred {
        event_id: event.id,
        event_type: event.event_type,
        conversation: ConversationView::of(doc),
    };
    Ok((
        StatusCode::ACCEPTED,
        Change::with_body("conversation.transferred", Some(&id)),
        Json(transferred),
    ))
}

/// Replace a conversation's labels.
#[utoipa::path(
    put,
    path = "/v1/conversations/{id}/labels",
    operation_id = "setConversationLabels",
    params(("id" = String, Path)),
    request_body = SetLabels,
    responses((status = 200, description = "Done.", body = ConversationView), ItemChangeErrors)
)]
async fn set_labels(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<SetLabels>,
) -> Result<(StatusCode, Change, Json<ConversationView>), ApiError> {
    if req.labels.len() > 50 {
        return Err(ApiError::invalid("labels", "at most 50 labels"));
    }
    let mut labels: Vec<String> = Vec::new();
    for l in req.labels {
        let l = l.trim().to_owned();
        if !has_visible(&l) || l.chars().count() > 64 || l.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "labels",
                "labels are 1 to 64 printable characters",
            ));
        }
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let cid = conversation_id(&id)?;
    let doc = admin
        .sweep()?
        .conversations
        .update_conversation(cid, now, |d| d.conversation.labels.clone_from(&labels))
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok((
        StatusCode::OK,
        Change::with_body("conversation.labels_set", Some(&id)),
        Json(ConversationView::of(doc)),
    ))
}

/// Replace a conversation's notes.
#[utoipa::path(
    put,
    path = "/v1/conversations/{id}/notes",
    operation_id = "setConversationNotes",
    params(("id" = String, Path)),
    request_body = SetNotes,
    responses((status = 200, description = "Done.", body = ConversationView), ItemChangeErrors)
)]
async fn set_notes(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<SetNotes>,
) -> Result<(StatusCode, Change, Json<ConversationView>), ApiError> {
    if req.notes.len() > 100 {
        return Err(ApiError::invalid("notes", "at most 100 notes"));
    }
    if req
        .notes
        .iter()
        .any(|n| !has_visible(&n.text) || n.text.chars().count() > 2000)
    {
        return Err(ApiError::invalid(
            "notes",
            "a note's text is 1 to 2,000 characters",
        ));
    }
    if req
        .notes
        .iter()
        .any(|n| n.author.as_ref().is_some_and(|a| a.chars().count() > 200))
    {
        return Err(ApiError::invalid(
            "notes",
            "a note's author is at most 200 characters",
        ));
    }
    let total: usize = req
        .notes
        .iter()
        .map(|n| n.text.len() + n.author.as_ref().map_or(0, String::len))
        .sum();
    if total > NOTES_MAX_BYTES {
        return Err(ApiError::invalid(
            "notes",
            "the notes together are at most 32 KiB of text (UTF-8)",
        ));
    }
    let cid = conversation_id(&id)?;
    let doc = admin
        .sweep()?
        .conversations
        .update_conversation(cid, now, |d| {
            let old = std::mem::take(&mut d.conversation.notes);
            d.conversation.notes = req
                .notes
                .iter()
                .map(|n| {
                    let kept = old
                        .iter()
                        .find(|o| o.text == n.text && o.author == n.author)
                        .map(|o| o.created_at);
                    Note {
                        text: n.text.clone(),
                        author: n.author.clone(),
                        created_at: kept.unwrap_or(now),
                    }
                })
                .collect();
        })
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok((
        StatusCode::OK,
        Change::with_body("conversation.notes_set", Some(&id)),
        Json(ConversationView::of(doc)),
    ))
}
