//! The management API, independent of any HTTP library: [`Admin::handle`] takes a method, path,
//! query, the two headers it reads and the body, and returns a status and a JSON body. The admin
//! Lambda (API Gateway `/v1/*`) and the local front both call it.
//!
//! Owns: authentication (`X-API-Key`, constant-time), the error shape
//! `{"error": {"code", "message", "details?"}}`, opaque cursors, `Idempotency-Key` replay, and
//! the routes. Must not: know about Lambda or hyper.

mod conversations;
pub use conversations::NOTES_MAX_BYTES;
mod audit;
mod deliveries;
mod endpoints;
mod idempotency;
pub mod openapi;
mod test_send;

pub use conversations::{
    CloseConversation, ConversationView, NoteInput, SetLabels, SetNotes, TransferConversation,
};
pub use deliveries::{DeliveryView, RedriveRequest};
pub use endpoints::{CreateEndpoint, EndpointView, RotateSecret, UpdateEndpoint};
pub use test_send::{TestDelivery, sample_event};

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize as _, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::delivery::deliver::HttpSender;
use crate::delivery::endpoints::Endpoints;
use crate::delivery::record::Deliveries;
use crate::delivery::ssrf::NetworkPolicy;
use crate::pipeline::track::sweep::Sweep;
use crate::ports::{BackendError, BlobStore, DocumentStore, Queue};
use crate::signature::Secret;

/// One management request.
#[derive(Debug, Clone, Copy)]
pub struct AdminRequest<'a> {
    /// `GET`, `POST`, `PATCH`, `PUT`, `DELETE`.
    pub method: &'a str,
    /// The path, `/v1/…` (a stage prefix before `/v1` is ignored).
    pub path: &'a str,
    /// The raw query string.
    pub query: &'a str,
    /// `X-API-Key`.
    pub api_key: Option<&'a str>,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<&'a str>,
    /// The body bytes.
    pub body: &'a [u8],
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AdminResponse {
    /// The status code.
    pub status: u16,
    /// JSON, or empty for 204.
    pub body: String,
    /// `Allow` of a 405: the methods the path supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<String>,
}

impl AdminResponse {
    fn json(status: u16, value: &impl Serialize) -> Self {
        Self {
            status,
            body: serde_json::to_string(value).unwrap_or_else(|_| "{}".into()),
            allow: None,
        }
    }

    fn empty() -> Self {
        Self {
            status: 204,
            body: String::new(),
            allow: None,
        }
    }
}

/// A failed request, rendered as `{"error": {"code", "message", "details?"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The status code.
    pub status: u16,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// For humans; never echoes secrets.
    pub message: String,
    /// Structured details (e.g. which field).
    pub details: Option<Value>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// 422: well-formed but invalid; `field` names the culprit.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            details: Some(json!({"field": field})),
            ..Self::new(422, "validation_failed", message)
        }
    }

    fn response(&self) -> AdminResponse {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.details {
            error["details"] = d.clone();
        }
        AdminResponse::json(self.status, &json!({ "error": error }))
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        tracing::error!(error = %e, "storage failed during a management request");
        if e.is_retryable() {
            Self::new(503, "unavailable", "storage is unavailable; retry")
        } else {
            Self::new(500, "internal", "storage refused the request")
        }
    }
}

/// Settings.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Accepted `X-API-Key` values (several during a rotation).
    pub api_keys: Vec<Secret>,
    /// Which endpoint URLs may be saved.
    pub network: NetworkPolicy,
    /// How long an old endpoint secret keeps working after a rotation, unless the call says.
    pub rotation_grace: Duration,
    /// Bodies above this are refused with 413.
    pub max_body_bytes: usize,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            network: NetworkPolicy::PublicOnly,
            rotation_grace: Duration::from_secs(24 * 3600),
            max_body_bytes: 256 * 1024,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// The management API over its ports.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Endpoints.
    pub endpoints: Endpoints,
    /// Idempotency records and everything else document-shaped.
    pub docs: Arc<dyn DocumentStore>,
    /// Delivery records.
    pub deliveries: Deliveries,
    /// The delivery queue (retries, recovery, redrive go there) …
    pub delivery_queue: Arc<dyn Queue>,
    /// … and its dead-letter queue.
    pub dead_letter: Arc<dyn Queue>,
    /// Claim-checks of large tasks.
    pub blobs: Arc<dyn BlobStore>,
    /// Conversations: their store, and where `ended`/`transferred` events go (`None`: the
    /// routes answer 404).
    pub conversations: Option<Sweep>,
    /// Sends test deliveries (`None`: `/test` answers 404).
    pub sender: Option<Arc<dyn HttpSender>>,
    /// Settings.
    pub config: AdminConfig,
}

impl Admin {
    /// The API over one document store, blob store and the delivery queues; delivery records
    /// are kept `record_ttl` (the deliver stage's attempt TTL).
    pub fn new(
        docs: Arc<dyn DocumentStore>,
        blobs: Arc<dyn BlobStore>,
        delivery_queue: Arc<dyn Queue>,
        dead_letter: Arc<dyn Queue>,
        record_ttl: Duration,
        config: AdminConfig,
    ) -> Self {
        Self {
            endpoints: Endpoints { docs: docs.clone() },
            deliveries: Deliveries {
                docs: docs.clone(),
                blobs: blobs.clone(),
                ttl: record_ttl,
            },
            delivery_queue,
            dead_letter,
            blobs,
            docs,
            conversations: None,
            sender: None,
            config,
        }
    }

    /// The same API sending test deliveries through `sender`.
    pub fn with_sender(self, sender: Arc<dyn HttpSender>) -> Self {
        Self {
            sender: Some(sender),
            ..self
        }
    }

    /// The same API with the conversation routes, over `sweep`'s conversations and event sink.
    pub fn with_conversations(self, sweep: Sweep) -> Self {
        Self {
            conversations: Some(sweep),
            ..self
        }
    }
}

/// Whether `given` is one of `keys`, in time independent of where they differ.
fn key_matches(keys: &[Secret], given: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    keys.iter().fold(false, |found, k| {
        let k = Sha256::digest(k.expose());
        found | bool::from(k.ct_eq(&given))
    })
}

/// An opaque cursor for a sort key.
pub fn encode_cursor(sort: &str) -> String {
    URL_SAFE_NO_PAD.encode(sort.as_bytes())
}

/// The sort key of a cursor.
pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    // Any base64url text is a bound; one we did not hand out merely starts the page elsewhere.
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    if cursor.is_empty() {
        return Err(ApiError::bad_request("invalid cursor"));
    }
    LENIENT
        .decode(cursor)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|_| ApiError::bad_request("invalid cursor"))
}

/// Query parameters.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Self {
        Self(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `limit`, 1–100, default 20.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(20),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| ApiError::invalid("limit", "limit must be 1 to 100")),
        }
    }

    /// `cursor`, decoded.
    pub fn cursor(&self) -> Result<Option<String>, ApiError> {
        self.get("cursor").map(decode_cursor).transpose()
    }

    /// A timestamp parameter.
    pub fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::invalid(name, format!("{name} must be an RFC 3339 time"))
                    })
            })
            .transpose()
    }
}

/// Whether `id` is 1 to 64 of `A-Z a-z 0-9 _ -` (endpoint and source ids).
pub fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `text` has a character a reader can see: not white space and not a control
/// character. White space is the union of Unicode's and JSON Schema's (ECMAScript `\s`, which
/// adds U+FEFF), so the code and the document's `[^\s\x00-\x1f\x7f-\x9f]` patterns agree.
pub fn has_visible(text: &str) -> bool {
    text.chars()
        .any(|c| !c.is_whitespace() && !c.is_control() && c != '\u{feff}')
}

/// A list response: `{"data": [...], "next_cursor": "…" | null}`.
pub fn page<T: Serialize>(data: &[T], next: Option<&str>) -> Value {
    json!({"data": data, "next_cursor": next.map(encode_cursor)})
}

/// Reads an optional whole number that JSON may write as `5` or `5.0` (both are integers to
/// JSON Schema).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n = Option::<serde_json::Number>::deserialize(d)?;
    n.map(|n| {
        n.as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| serde::de::Error::custom("expected a whole number"))
    })
    .transpose()
}

/// The body as `T`, with 400 for malformed JSON and 422 for a wrong shape.
pub fn body<T: for<'de> serde::Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    // No body is an empty object: optional-body routes take their defaults, the others name the
    // missing field.
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("the body is not JSON: {}", crate::json_error(&e)))
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        // Unknown and missing fields are named (names are ours, not user data); for any other
        // shape error the message says what kind, never which value.
        for prefix in ["unknown field", "missing field"] {
            if text.starts_with(prefix)
                && let Some(field) = text.split('`').nth(1)
            {
                return ApiError::invalid(field, format!("{prefix} `{field}`"));
            }
        }
        ApiError::invalid("body", "a field has the wrong type or an invalid value")
    })
}

impl Admin {
    /// Answers one request at `now`.
    pub async fn handle(&self, req: AdminRequest<'_>, now: DateTime<Utc>) -> AdminResponse {
        let authorized = req
            .api_key
            .is_some_and(|k| key_matches(&self.config.api_keys, k));
        if !authorized {
            return ApiError::new(401, "unauthorized", "a valid X-API-Key header is required")
                .response();
        }
        if req.body.len() > self.config.max_body_bytes {
            return ApiError::new(413, "payload_too_large", "the body is too large").response();
        }
        let path = match req.path.find("/v1/") {
            Some(i) => &req.path[i..],
            None if req.path.ends_with("/v1") => "/v1",
            None => req.path,
        };
        let path = path.trim_end_matches('/');
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let query = Query::parse(req.query);
        let actor = audit::key_id(req.api_key.unwrap_or_default());
        // A change is recorded in the first run only (a replay runs nothing).
        let run = || async {
            let result = self
                .route(req.method, &segments, &query, req.body, now)
                .await;
            if let Ok(response) = &result {
                self.audit(&actor, (req.method, &segments), req.body, response, now)
                    .await;
            }
            result
        };
        let result = match (req.method, req.idempotency_key) {
            ("POST", Some(key)) => {
                idempotency::run(self, key, path, req.query, req.body, now, run).await
            }
            _ => run().await,
        };
        let mut response = result.unwrap_or_else(|e| e.response());
        if response.status == 405 {
            response.allow = Some(openapi::allowed_methods(&segments));
        }
        response
    }

    async fn route(
        &self,
        method: &str,
        segments: &[&str],
        query: &Query,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<AdminResponse, ApiError> {
        match (method, segments) {
            ("POST", ["v1", "endpoints"]) => self.create_endpoint(body, now).await,
            ("GET", ["v1", "endpoints"]) => self.list_endpoints(query, now).await,
            ("GET", ["v1", "endpoints", id]) => self.get_endpoint(id, now).await,
            ("PATCH", ["v1", "endpoints", id]) => self.update_endpoint(id, body, now).await,
            ("DELETE", ["v1", "endpoints", id]) => self.delete_endpoint(id, now).await,
            ("POST", ["v1", "endpoints", id, "rotate-secret"]) => {
                self.rotate_secret(id, body, now).await
            }
            ("POST", ["v1", "endpoints", id, "enable"]) => self.set_enabled(id, true, now).await,
            ("POST", ["v1", "endpoints", id, "disable"]) => self.set_enabled(id, false, now).await,
            ("POST", ["v1", "endpoints", id, "test"]) => self.test_endpoint(id, body, now).await,
            ("POST", ["v1", "endpoints", id, "recover"]) => {
                self.recover_endpoint(id, query, now).await
            }
            ("GET", ["v1", "deliveries"]) => self.list_deliveries(query, now).await,
            ("POST", ["v1", "deliveries", "redrive"]) => self.redrive_dead_letters(body, now).await,
            ("GET", ["v1", "deliveries", id]) => self.get_delivery(id, now).await,
            ("POST", ["v1", "deliveries", id, "retry"]) => self.retry_delivery(id, now).await,
            ("GET", ["v1", "conversations"]) => self.list_conversations(query, now).await,
            ("GET", ["v1", "conversations", id]) => self.get_conversation(id, now).await,
            ("POST", ["v1", "conversations", id, "close"]) => {
                self.close_conversation(id, body, now).await
            }
            ("POST", ["v1", "conversations", id, "transfer"]) => {
                self.transfer_conversation(id, body, now).await
            }
            ("PUT", ["v1", "conversations", id, "labels"]) => self.set_labels(id, body, now).await,
            ("PUT", ["v1", "conversations", id, "notes"]) => self.set_notes(id, body, now).await,
            ("GET", ["v1", "audit"]) => self.list_audit(query, now).await,
            (
                _,
                [
                    "v1",
                    "endpoints" | "deliveries" | "conversations" | "audit",
                    ..,
                ],
            ) if !openapi::allowed_methods(segments).is_empty() => Err(ApiError::new(
                405,
                "method_not_allowed",
                format!("{method} is not supported here"),
            )),
            _ => Err(ApiError::new(404, "not_found", "no such route")),
        }
    }
}

#[cfg(test)]
mod tests;
