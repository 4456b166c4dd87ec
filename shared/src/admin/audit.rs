//! The audit trail: every change made through the management API (endpoints, deliveries sent
//! again, conversations closed, transferred, labelled or annotated), with who made it (the id of
//! the API key, never the key), what and when; `GET /v1/audit` lists it newest first.
//!
//! An entry names the fields a request set, never their values (they may be header secrets or
//! customer text). It is written after the change, in the request's first run only: a replay
//! through `Idempotency-Key` changes nothing and records nothing. A change whose entry cannot
//! be written is still answered (the change is made; failing the request would make the client
//! repeat it): the entry then goes to the log, at error level, with the same fields.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponseParts, ResponseParts};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa_axum::routes;

use super::http::{ApiQuery, Now, Routes};
use super::openapi::ChangeErrors;
use super::{Admin, AdminResponse, ApiError, Page, Paging};
use crate::ports::{DocumentWrite, IndexEntry, filtered_page};

/// The index partition of the trail.
const PARTITION: &str = "audit";

/// How long entries are kept.
pub const AUDIT_TTL: chrono::Duration = chrono::Duration::days(365);

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// `aud_` + ULID.
    pub id: String,
    /// When the change was made.
    pub at: DateTime<Utc>,
    /// Who: `key_` and the first 12 hex digits of the SHA-256 of the API key used (which key of
    /// a rotation list, without the key).
    pub actor: String,
    /// What: `endpoint.created`, `endpoint.updated`, `endpoint.deleted`,
    /// `endpoint.secret_rotated`, `endpoint.enabled`, `endpoint.disabled`,
    /// `endpoint.recovered`, `delivery.retried`, `deliveries.redriven`, `conversation.closed`,
    /// `conversation.transferred`, `conversation.labels_set`, `conversation.notes_set`.
    pub action: String,
    /// The id of what changed (an endpoint, delivery or conversation), if one.
    pub target: Option<String>,
    /// The request fields given (names only, never values).
    pub fields: Vec<String>,
    /// The answer's status.
    pub status: u16,
}

/// A new entry id, ordered after every id this process made before (ULIDs of one millisecond
/// count up), so entries of one instance list in the order they were made.
fn next_id() -> String {
    static IDS: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut ids = IDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = ids
        .get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new());
    format!("aud_{id}")
}

/// `key_` + 12 hex digits of the SHA-256 of `api_key`.
pub fn key_id(api_key: &str) -> String {
    let digest = hex::encode(Sha256::digest(api_key.as_bytes()));
    format!("key_{}", &digest[..12])
}

/// A change a route made, attached to its successful answer: the gate records it once the
/// answer is known (and never for a replay, which runs no route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    /// `endpoint.created`, … (see [`AuditEntry::action`]).
    pub action: &'static str,
    /// The id of what changed, if one.
    pub target: Option<String>,
    /// Whether the route reads a body: only then are the body's field names recorded (a route
    /// that reads none must not copy whatever a client sent into the trail).
    pub reads_body: bool,
}

impl Change {
    /// A change of `target` by a route that reads no body.
    pub fn of(action: &'static str, target: &str) -> Self {
        Self {
            action,
            target: Some(target.to_owned()),
            reads_body: false,
        }
    }

    /// A change by a route that reads a body.
    pub fn with_body(action: &'static str, target: Option<&str>) -> Self {
        Self {
            action,
            target: target.map(str::to_owned),
            reads_body: true,
        }
    }
}

impl IntoResponseParts for Change {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// The top-level field names of a JSON object body (none for anything else).
fn fields(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl Admin {
    /// Records `change`, answered with `response` to a request with `body` by `actor`, in the
    /// trail, if it succeeded.
    pub(super) async fn audit(
        &self,
        actor: &str,
        change: &Change,
        body: &[u8],
        response: &AdminResponse,
        now: DateTime<Utc>,
    ) {
        if !(200..300).contains(&response.status) {
            return;
        }
        let entry = AuditEntry {
            id: next_id(),
            at: now,
            actor: actor.to_owned(),
            action: change.action.to_owned(),
            target: change.target.clone(),
            fields: if change.reads_body {
                fields(body)
            } else {
                Vec::new()
            },
            status: response.status,
        };
        let index = IndexEntry {
            partition: PARTITION.to_owned(),
            sort: format!(
                "{}#{}",
                now.to_rfc3339_opts(SecondsFormat::Millis, true),
                entry.id
            ),
        };
        let written = match serde_json::to_value(&entry) {
            Ok(doc) => self
                .docs
                .put(
                    &format!("audit#{}", entry.id),
                    &doc,
                    DocumentWrite::new(None, now)
                        .expiring(now + AUDIT_TTL)
                        .indexed(&index),
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = written {
            tracing::error!(
                audit_id = %entry.id, actor = %entry.actor, action = %entry.action,
                target = entry.target.as_deref().unwrap_or(""), fields = ?entry.fields,
                status = entry.status, %error,
                "audit entry not stored; this line is the record"
            );
        }
    }
}

/// `GET /v1/audit`: filters besides paging.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only changes of this endpoint, delivery or conversation id.
    target: Option<String>,
    /// Only this action (e.g. endpoint.updated).
    action: Option<String>,
}

/// A page of the trail.
pub type AuditPage = Page<AuditEntry>;

pub(super) fn routes() -> Routes {
    Routes::default().routes(routes!(list_audit))
}

/// List the changes made through this API (who: the API key's id; what; when), newest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "listAudit",
    params(AuditQuery, Paging),
    responses((status = 200, description = "Done.", body = AuditPage), ChangeErrors)
)]
async fn list_audit(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let limit = paging.limit()?;
    let before = paging.cursor()?;
    let target = query.target.as_deref();
    let action = query.action.as_deref();
    let (entries, next) = filtered_page(
        admin.docs.as_ref(),
        PARTITION,
        None,
        before,
        limit,
        now,
        |listed| {
            let entry: AuditEntry = serde_json::from_value(listed.doc.body).map_err(|e| {
                ApiError::from(crate::ports::BackendError::Corrupt(crate::json_error(&e)))
            })?;
            let wanted = target.is_none_or(|t| entry.target.as_deref() == Some(t))
                && action.is_none_or(|a| entry.action == a);
            Ok::<_, ApiError>(wanted.then_some(entry))
        },
    )
    .await?;
    Ok(Json(Page::new(entries, next.as_deref())))
}
