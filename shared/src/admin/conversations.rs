//! `/v1/conversations`: list (open or ended, by source), show, close (emits
//! `whatsapp.conversation.ended` with reason `manual` or `agent`), transfer to an agent or team
//! (stores the assignee, emits `whatsapp.conversation.transferred`), ask for a hand-off to a
//! human (stores it, emits `whatsapp.conversation.handoff_requested`), and set labels, notes and
//! automation notes, which every later event carrying the conversation shows.
//!
//! A change that emits an event writes the event into the conversation with the change, in one
//! conditional write, and hands it on after (see [`ChangeEvent`]): a retry of the request (same
//! `Idempotency-Key`) after a failure or a crash between the two hands on that same event, and
//! the next change of the conversation hands on one whose request never came back. Must not:
//! emit an event whose change was not written, or write one twice.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
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
    Handoff, InboundEvent, Note, SourceInfo, Transfer,
};
use crate::pipeline::track::state::contacts::phone_digits;
use crate::pipeline::track::state::conversations::{
    ChangeEvent, ConversationFilter, assign, request_handoff,
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

/// The answer of `POST /v1/conversations/{id}/handoff`: the event that went out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HandoffRequested {
    /// The event's id.
    pub event_id: EventId,
    /// `whatsapp.conversation.handoff_requested`.
    #[serde(rename = "type")]
    #[schemars(extend("const" = "whatsapp.conversation.handoff_requested"))]
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
    /// The contact's phone number; punctuation and a leading `+` are ignored.
    #[param(value_type = Option<String>, max_length = 32)]
    phone: Option<String>,
    /// The contact's user id (Meta business-scoped user id, WAHA `@lid` id), exactly.
    #[param(value_type = Option<String>, max_length = 128)]
    user_id: Option<String>,
    /// Carries this label (case-insensitive).
    #[param(value_type = Option<String>, max_length = 64)]
    label: Option<String>,
    /// Free text, case-insensitive, found in the id, phone number, user id, username, name,
    /// external id or a label.
    #[param(value_type = Option<String>, max_length = 128)]
    q: Option<String>,
}

impl ConversationQuery {
    fn filter(&self) -> Result<ConversationFilter, ApiError> {
        if let Some(s) = self.source_id.as_deref() {
            SourceId::parse(s).map_err(|_| ApiError::invalid("source_id", "not a source id"))?;
        }
        let text = |name: &'static str, value: &Option<String>, max: usize| match value
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => Ok(None),
            Some(v) if v.chars().count() > max => Err(ApiError::invalid(
                name,
                format!("{name} is longer than {max} characters"),
            )),
            Some(v) => Ok(Some(v.to_owned())),
        };
        let phone = text("phone", &self.phone, 32)?
            .map(|p| {
                phone_digits(&p).ok_or_else(|| ApiError::invalid("phone", "not a phone number"))
            })
            .transpose()?;
        Ok(ConversationFilter {
            source_id: self.source_id.clone(),
            phone,
            user_id: text("user_id", &self.user_id, 128)?,
            label: text("label", &self.label, 64)?,
            text: text("q", &self.q, 128)?.map(|q| q.to_lowercase()),
        })
    }
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

/// `POST /v1/conversations/{id}/handoff`: a bot or flow asks for a human.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestHandoff {
    /// Why a human is needed (1–500 characters).
    #[schemars(
        length(min = 1, max = 500),
        regex(pattern = r"[^\s\x00-\x1f\x7f-\x9f]")
    )]
    pub reason: String,
    /// Who asks: a bot's name, an app id (at most 200 characters).
    #[schemars(length(max = 200))]
    pub requested_by: Option<String>,
    /// The team asked for.
    #[schemars(
        length(min = 1, max = 200),
        regex(pattern = r"[^\s\x00-\x1f\x7f-\x9f]")
    )]
    pub team_id: Option<String>,
    /// Notes for whoever takes over (at most 2,000 characters).
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
/// People's notes and automation notes have this bound each.
pub const NOTES_MAX_BYTES: usize = 32 * 1024;

/// `PUT /v1/conversations/{id}/notes` and `PUT /v1/conversations/{id}/automation-notes`.
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

/// Which request makes a change, for [`ChangeEvent::by`]: its route and `Idempotency-Key`
/// (the gate refuses the key with another body), so a retry is recognised; without a key,
/// every request is its own.
fn request_id(uri: &Uri, headers: &HeaderMap) -> String {
    use sha2::{Digest, Sha256};
    match headers.get("idempotency-key").and_then(|k| k.to_str().ok()) {
        Some(key) => {
            let digest = Sha256::new()
                .chain_update(uri.path())
                .chain_update([0])
                .chain_update(key)
                .finalize();
            format!("api:{}", hex::encode(&digest[..12]))
        }
        None => format!("api:{}", ulid::Ulid::new()),
    }
}

/// `Some(text)` of 1 to `max` characters, not all blank, or 422 naming `field`; `None` as is.
fn visible(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    if value.is_some_and(|v| !has_visible(v) || v.chars().count() > max) {
        return Err(ApiError::invalid(
            field,
            format!("{field} is 1 to {max} characters, not all blank"),
        ));
    }
    Ok(())
}

/// `Some(text)` of at most `max` characters, or 422 naming `field`.
fn at_most(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    if value.is_some_and(|v| v.chars().count() > max) {
        return Err(ApiError::invalid(
            field,
            format!("{field} is at most {max} characters"),
        ));
    }
    Ok(())
}

/// The event a change through the API emits about conversation `doc` (as changed).
fn change_event(
    doc: &ConversationDoc,
    event_type: EventType,
    body: ConversationBody,
    now: DateTime<Utc>,
) -> InboundEvent {
    let id = EventId::new();
    let mut data = EventData::new(doc.source.clone(), EventBody::conversation(body));
    data.conversation = Some(Box::new(doc.conversation.clone()));
    let kind = event_type.as_str().rsplit('.').next().unwrap_or("changed");
    InboundEvent {
        id,
        event_type,
        dedup_key: format!("conversation:{}:{kind}:{id}", doc.conversation.id),
        received_at: now,
        occurred_at: Some(now),
        request_id: None,
        data,
    }
}

impl Admin {
    pub(super) fn sweep(&self) -> Result<&Sweep, ApiError> {
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

    /// Changes open conversation `id` for request `by` with `change`, which returns the event
    /// to emit (the conversation as changed in it), written with the change; then hands on
    /// every pending event of the conversation, oldest first. A retry of request `by` makes no
    /// second change: it hands on the event of the first (again, same id, if it may not have
    /// gone out). 409 when the conversation has ended. The conversation after, and the id of
    /// `by`'s event.
    async fn change_with_event(
        &self,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
        change: impl Fn(&mut ConversationDoc) -> InboundEvent,
    ) -> Result<(ConversationDoc, EventId), ApiError> {
        let cid = conversation_id(id)?;
        let mut outcome = Err(ApiError::not_found("conversation"));
        let doc = self
            .sweep()?
            .conversations
            .try_update_conversation(cid, now, |d| {
                if let Some(done) = d.events.iter().find(|e| e.by == by) {
                    outcome = Ok(done.id);
                    return false;
                }
                if d.conversation.status == ConversationStatus::Ended {
                    outcome = Err(ApiError::conflict("the conversation has ended"));
                    return false;
                }
                let event = change(d);
                outcome = Ok(event.id);
                d.events.push(ChangeEvent {
                    by: by.to_owned(),
                    id: event.id,
                    pending: Some(Box::new(event)),
                });
                true
            })
            .await?
            .ok_or_else(|| ApiError::not_found("conversation"))?;
        let doc = self.hand_on_pending(doc, now).await?;
        Ok((doc, outcome?))
    }

    /// Hands on the events changes through the API left pending in `doc` (oldest first) and
    /// records them handed on; the conversation after.
    async fn hand_on_pending(
        &self,
        doc: ConversationDoc,
        now: DateTime<Utc>,
    ) -> Result<ConversationDoc, ApiError> {
        let pending = doc.pending_events();
        if pending.is_empty() {
            return Ok(doc);
        }
        let sweep = self.sweep()?;
        sweep.sink.emit(&pending, now).await?;
        let ids: Vec<EventId> = pending.iter().map(|e| e.id).collect();
        Ok(sweep
            .conversations
            .update_conversation(doc.conversation.id, now, |d| d.handed_on(&ids))
            .await?
            .unwrap_or(doc))
    }
}

/// Notes for `PUT …/notes` and `PUT …/automation-notes`: at most 100, each 1 to 2,000
/// characters with an author of at most 200, together within [`NOTES_MAX_BYTES`]; or 422
/// naming `notes`.
fn check_notes(req: &SetNotes) -> Result<(), ApiError> {
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
    Ok(())
}

/// `req`'s notes replacing `old`: a note given again unchanged keeps its time.
fn replace_notes(old: &[Note], req: &SetNotes, now: DateTime<Utc>) -> Vec<Note> {
    req.notes
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
        .collect()
}

/// Which notes of a conversation a `PUT` replaces.
#[derive(Debug, Clone, Copy)]
enum Notes {
    /// People's (`…/notes`).
    People,
    /// Automation's (`…/automation-notes`).
    Automation,
}

impl Notes {
    fn of(self, c: &mut Conversation) -> &mut Vec<Note> {
        match self {
            Self::People => &mut c.notes,
            Self::Automation => &mut c.automation_notes,
        }
    }
}

/// `PUT …/notes` and `PUT …/automation-notes`: checks `req` and replaces those notes.
async fn put_notes(
    admin: &Admin,
    id: &str,
    which: Notes,
    req: &SetNotes,
    now: DateTime<Utc>,
) -> Result<ConversationDoc, ApiError> {
    check_notes(req)?;
    let cid = conversation_id(id)?;
    admin
        .sweep()?
        .conversations
        .update_conversation(cid, now, |d| {
            let notes = which.of(&mut d.conversation);
            *notes = replace_notes(notes, req, now);
        })
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .routes(routes!(list_conversations))
        .routes(routes!(get_conversation))
        .routes(routes!(close_conversation))
        .routes(routes!(transfer_conversation))
        .routes(routes!(request_handoff_route))
        .routes(routes!(set_labels))
        .routes(routes!(set_notes))
        .routes(routes!(set_automation_notes))
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
    let filter = query.filter()?;
    let page = admin
        .sweep()?
        .conversations
        .list_conversations(ended, &filter, cursor.as_deref(), limit, now)
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
    // Events of earlier changes whose requests never came back go out before it ends.
    let doc = admin.hand_on_pending(doc, now).await?;
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

/// Hand a conversation to an agent or team: stores the assignee (replacing the one before),
/// answers a pending hand-off, and emits whatsapp.conversation.transferred from the previous
/// assignee to the new one. Replay-safe with an Idempotency-Key: a retry emits the same event.
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
    uri: Uri,
    headers: HeaderMap,
    JsonBody(req): JsonBody<TransferConversation>,
) -> Result<(StatusCode, Change, Json<Transferred>), ApiError> {
    if req.to_agent.is_none() && req.to_team.is_none() {
        return Err(ApiError::invalid("to_agent", "give to_agent or to_team"));
    }
    visible("to_agent", req.to_agent.as_deref(), 200)?;
    visible("to_team", req.to_team.as_deref(), 200)?;
    at_most("notes", req.notes.as_deref(), 2000)?;
    let by = request_id(&uri, &headers);
    let (doc, event_id) = admin
        .change_with_event(&id, &by, now, |d| {
            let before = d.conversation.assignee.clone().unwrap_or_default();
            let transfer = Transfer {
                from_agent: before.agent_id,
                from_team: before.team_id,
                to_agent: req.to_agent.clone(),
                to_team: req.to_team.clone(),
                notes: req.notes.clone(),
            };
            assign(&mut d.conversation, &transfer, now);
            let body = ConversationBody {
                transfer: Some(transfer),
                ..Default::default()
            };
            change_event(d, EventType::ConversationTransferred, body, now)
        })
        .await?;
    let transferred = Transferred {
        event_id,
        event_type: EventType::ConversationTransferred,
        conversation: ConversationView::of(doc),
    };
    Ok((
        StatusCode::ACCEPTED,
        Change::with_body("conversation.transferred", Some(&id)),
        Json(transferred),
    ))
}

/// Ask for a human to take a conversation over: stores the hand-off request (until a transfer
/// answers it) and emits whatsapp.conversation.handoff_requested. Replay-safe with an
/// Idempotency-Key: a retry emits the same event.
#[utoipa::path(
    post,
    path = "/v1/conversations/{id}/handoff",
    operation_id = "requestConversationHandoff",
    params(("id" = String, Path), IdempotencyKey),
    request_body = RequestHandoff,
    responses((status = 202, description = "Done.", body = HandoffRequested), ItemChangeErrors)
)]
async fn request_handoff_route(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RequestHandoff>,
) -> Result<(StatusCode, Change, Json<HandoffRequested>), ApiError> {
    visible("reason", Some(&req.reason), 500)?;
    at_most("requested_by", req.requested_by.as_deref(), 200)?;
    visible("team_id", req.team_id.as_deref(), 200)?;
    at_most("notes", req.notes.as_deref(), 2000)?;
    let by = request_id(&uri, &headers);
    let (doc, event_id) = admin
        .change_with_event(&id, &by, now, |d| {
            let handoff = Handoff {
                reason: Some(req.reason.clone()),
                requested_by: req.requested_by.clone(),
                team_id: req.team_id.clone(),
                notes: req.notes.clone(),
                requested_at: Some(now),
            };
            request_handoff(&mut d.conversation, &handoff, now);
            let body = ConversationBody {
                handoff: Some(handoff),
                ..Default::default()
            };
            change_event(d, EventType::ConversationHandoffRequested, body, now)
        })
        .await?;
    let requested = HandoffRequested {
        event_id,
        event_type: EventType::ConversationHandoffRequested,
        conversation: ConversationView::of(doc),
    };
    Ok((
        StatusCode::ACCEPTED,
        Change::with_body("conversation.handoff_requested", Some(&id)),
        Json(requested),
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
    let doc = put_notes(&admin, &id, Notes::People, &req, now).await?;
    Ok((
        StatusCode::OK,
        Change::with_body("conversation.notes_set", Some(&id)),
        Json(ConversationView::of(doc)),
    ))
}

/// Replace a conversation's automation notes (what bots and flows record, kept apart from
/// people's notes; same rules and bound).
#[utoipa::path(
    put,
    path = "/v1/conversations/{id}/automation-notes",
    operation_id = "setConversationAutomationNotes",
    params(("id" = String, Path)),
    request_body = SetNotes,
    responses((status = 200, description = "Done.", body = ConversationView), ItemChangeErrors)
)]
async fn set_automation_notes(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<SetNotes>,
) -> Result<(StatusCode, Change, Json<ConversationView>), ApiError> {
    let doc = put_notes(&admin, &id, Notes::Automation, &req, now).await?;
    Ok((
        StatusCode::OK,
        Change::with_body("conversation.automation_notes_set", Some(&id)),
        Json(ConversationView::of(doc)),
    ))
}

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
