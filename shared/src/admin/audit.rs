//! The audit trail: every change made through the management API (endpoints, deliveries sent
//! again, conversations closed, transferred, labelled or annotated), with who made it (the id of
//! the API key, never the key), what and when; `GET /v1/audit` lists it newest first.
//!
//! An entry names the fields a request set, never their values (they may be header secrets or
//! customer text). It is written after the change, in the request's first run only: a replay
//! through `Idempotency-Key` changes nothing and records nothing. A change whose entry cannot
//! be written is still answered (the change is made; failing the request would make the client
//! repeat it): the entry then goes to the log, at error level, with the same fields.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Admin, AdminResponse, ApiError, Query, page};
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

/// The action a successful `method` on `segments` is, if it changes anything, with its target
/// and whether the route reads a body (only then are the body's field names recorded: a route
/// that reads none must not copy whatever a client sent into the trail).
fn action(method: &str, segments: &[&str]) -> Option<(&'static str, Option<String>, bool)> {
    let target = |id: &str| Some(id.to_owned());
    let (action, target) = match (method, segments) {
        ("POST", ["v1", "endpoints"]) => ("endpoint.created", None),
        ("PATCH", ["v1", "endpoints", id]) => ("endpoint.updated", target(id)),
        ("DELETE", ["v1", "endpoints", id]) => ("endpoint.deleted", target(id)),
        ("POST", ["v1", "endpoints", id, "rotate-secret"]) => {
            ("endpoint.secret_rotated", target(id))
        }
        ("POST", ["v1", "endpoints", id, "enable"]) => ("endpoint.enabled", target(id)),
        ("POST", ["v1", "endpoints", id, "disable"]) => ("endpoint.disabled", target(id)),
        ("POST", ["v1", "endpoints", id, "recover"]) => ("endpoint.recovered", target(id)),
        ("POST", ["v1", "deliveries", "redrive"]) => ("deliveries.redriven", None),
        ("POST", ["v1", "deliveries", id, "retry"]) => ("delivery.retried", target(id)),
        ("POST", ["v1", "conversations", id, "close"]) => ("conversation.closed", target(id)),
        ("POST", ["v1", "conversations", id, "transfer"]) => {
            ("conversation.transferred", target(id))
        }
        ("PUT", ["v1", "conversations", id, "labels"]) => ("conversation.labels_set", target(id)),
        ("PUT", ["v1", "conversations", id, "notes"]) => ("conversation.notes_set", target(id)),
        _ => return None,
    };
    let reads_body = !matches!(
        action,
        "endpoint.deleted"
            | "endpoint.enabled"
            | "endpoint.disabled"
            | "endpoint.recovered"
            | "delivery.retried"
    );
    Some((action, target, reads_body))
}

/// The top-level field names of a JSON object body (none for anything else).
fn fields(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl Admin {
    /// Records `response` to `method` on `segments` by `actor` in the trail, if it was a change
    /// that succeeded.
    pub(super) async fn audit(
        &self,
        actor: &str,
        (method, segments): (&str, &[&str]),
        body: &[u8],
        response: &AdminResponse,
        now: DateTime<Utc>,
    ) {
        if !(200..300).contains(&response.status) {
            return;
        }
        let Some((action, target, reads_body)) = action(method, segments) else {
            return;
        };
        // A created endpoint is named by the answer.
        let target = target.or_else(|| {
            serde_json::from_str::<serde_json::Value>(&response.body)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
        });
        let entry = AuditEntry {
            id: next_id(),
            at: now,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target,
            fields: if reads_body { fields(body) } else { Vec::new() },
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

    /// `GET /v1/audit`: newest first, optionally only one target's, paged by cursor.
    pub(super) async fn list_audit(
        &self,
        query: &Query,
        now: DateTime<Utc>,
    ) -> Result<AdminResponse, ApiError> {
        let limit = query.limit()?;
        let before = query.cursor()?;
        let target = query.get("target");
        let action = query.get("action");
        let (entries, next) = filtered_page(
            self.docs.as_ref(),
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
        Ok(AdminResponse::json(200, &page(&entries, next.as_deref())))
    }
}
