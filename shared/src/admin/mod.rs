//! The management API as an axum router ([`Admin::router`]): a handler per route with typed
//! extractors and typed answers, and the OpenAPI document generated from the same routes
//! ([`openapi`]). The admin Lambda serves the router through `lambda_http`, local mode through
//! `axum::serve`, tests through `tower::ServiceExt::oneshot`.
//!
//! Owns: authentication (`X-API-Key`, constant-time), the error shape
//! `{"error": {"code", "message", "details?"}}` (mapped to HTTP in one place, `ApiError`'s
//! `IntoResponse`), opaque cursors, `Idempotency-Key` replay, the audit trail, and the routes.
//! Must not: know about Lambda or sockets.

mod contacts;
pub use contacts::{ContactView, UpdateContact};
mod conversations;
pub use conversations::NOTES_MAX_BYTES;
mod audit;
mod campaigns;
mod deliveries;
mod endpoints;
mod http;
mod idempotency;
mod media;
mod messages;
pub mod openapi;
mod sources;
mod stats;
mod test_send;

pub use audit::AuditEntry;
pub use campaigns::{CampaignPage, CreateCampaign, METADATA_MAX_BYTES};
pub use conversations::{
    CloseConversation, ConversationView, NoteInput, SetLabels, SetNotes, TransferConversation,
};
pub use conversations::{CloseReason, HandoffRequested, RequestHandoff, Transferred};
pub use deliveries::{DeliveryView, Recovered, RedriveReport, RedriveRequest};
pub use endpoints::{CreateEndpoint, CreatedEndpoint, EndpointView, RotateSecret, UpdateEndpoint};
pub use messages::{MarkedRead, ReadRequest, SentMessage};
pub use test_send::{TestDelivery, TestOutcome, TestResult, sample_event};

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
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
use crate::ports::{BackendError, BlobStore, DocumentStore, Queue, SourceRegistry};
use crate::signature::Secret;

/// An answer as the `Idempotency-Key` record keeps it and replays it: status, JSON body (empty
/// for 204) and the `Allow` of a 405. The stored form of these records; handlers answer typed
/// values, which the gate reads back into this shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AdminResponse {
    /// The status code.
    pub status: u16,
    /// JSON, or empty for 204.
    pub body: String,
    /// `Allow` of a 405: the methods the path supports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<String>,
    /// `Retry-After` of a 429 or 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
}

impl AdminResponse {
    #[cfg(test)]
    fn json(status: u16, value: &impl Serialize) -> Self {
        Self {
            status,
            body: serde_json::to_string(value).unwrap_or_else(|_| "{}".into()),
            allow: None,
            retry_after: None,
        }
    }

    #[cfg(test)]
    fn empty() -> Self {
        Self {
            status: 204,
            body: String::new(),
            allow: None,
            retry_after: None,
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
    /// Seconds to wait before trying again (`Retry-After`), when known.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
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

    /// The answer as an idempotency record keeps it.
    fn response(&self) -> AdminResponse {
        AdminResponse {
            status: self.status,
            body: serde_json::to_string(&self.body()).unwrap_or_else(|_| "{}".into()),
            allow: None,
            retry_after: self.retry_after.map(|s| s.to_string()),
        }
    }

    /// The body this error is answered with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

/// The one place errors become HTTP answers.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = axum::http::StatusCode::from_u16(self.status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(inline)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: String,
    /// For humans; never echoes secrets.
    pub message: String,
    /// E.g. `field` for 422.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub details: Option<Value>,
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
    /// When a campaign completes at the latest, unless its creation says
    /// (`CAMPAIGN_COMPLETE_AFTER_HOURS`, default 24).
    pub campaign_complete_after: Duration,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            network: NetworkPolicy::PublicOnly,
            rotation_grace: Duration::from_secs(24 * 3600),
            max_body_bytes: 256 * 1024,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            campaign_complete_after: Duration::from_secs(24 * 3600),
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
    /// The configured sources, by id (`None`: routes naming a source answer 422).
    pub sources: Option<Arc<dyn SourceRegistry>>,
    /// Sends messages through the sources' providers (`None`: `/v1/messages` answers 404).
    pub provider: Option<crate::send::Sender>,
    /// Stored media files (`None`: `/v1/media/{id}` answers 404).
    pub media: Option<crate::media::MediaFiles>,
    /// What the stages measured, for `/v1/stats` (`None`: its figures are `null`).
    pub metrics: Option<Arc<dyn crate::ports::MetricsSource>>,
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
            sources: None,
            provider: None,
            media: None,
            metrics: None,
            config,
        }
    }

    /// The same API showing stored media files (`GET /v1/media/{id}`).
    pub fn with_media(self, files: crate::media::MediaFiles) -> Self {
        Self {
            media: Some(files),
            ..self
        }
    }

    /// The same API reading what the stages measured from `metrics` (`GET /v1/stats`).
    pub fn with_metrics(self, metrics: Arc<dyn crate::ports::MetricsSource>) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// The same API sending test deliveries through `sender`.
    pub fn with_sender(self, sender: Arc<dyn HttpSender>) -> Self {
        Self {
            sender: Some(sender),
            ..self
        }
    }

    /// The same API sending messages through `sender` (`POST /v1/messages`).
    pub fn with_provider(self, sender: crate::send::Sender) -> Self {
        Self {
            provider: Some(sender),
            ..self
        }
    }

    /// The same API knowing the configured `sources` (campaigns and sends name them).
    pub fn with_sources(self, sources: Arc<dyn SourceRegistry>) -> Self {
        Self {
            sources: Some(sources),
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

/// Paging of every list: `limit` and `cursor`. Values are read as text and checked by
/// [`Paging::limit`] and [`Paging::cursor`], so a bad one is a 422 (400 for a cursor) naming it.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Items per page, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<String>, min_length = 2, pattern = "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$")]
    pub cursor: Option<String>,
}

impl Paging {
    /// `limit`, 1–100, default 20.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.as_deref() {
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
        self.cursor.as_deref().map(decode_cursor).transpose()
    }
}

/// The timestamp query parameter `name` (RFC 3339), if given.
pub fn query_time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::invalid(name, format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
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

/// A list answer: `{"data": [...], "next_cursor": "…" | null}`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    /// This page's items.
    pub data: Vec<T>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `data`, and a cursor for the sort key `next` of the next page, if any.
    pub fn new(data: Vec<T>, next: Option<&str>) -> Self {
        Self {
            data,
            next_cursor: next.map(encode_cursor),
        }
    }
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

#[cfg(test)]
mod tests;

/// Requests through the router for the tests of the API's parts.
#[cfg(test)]
pub(crate) mod test_support {
    use chrono::{DateTime, Utc};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::Admin;

    /// `method target` with `headers` and `body`, at `now`: the status and the JSON body (`null`
    /// when empty).
    pub(crate) async fn request(
        admin: &Admin,
        now: DateTime<Utc>,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> (u16, Value) {
        let mut request = axum::http::Request::builder().method(method).uri(target);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(axum::body::Body::from(body)).unwrap();
        let response = admin
            .clone()
            .router(crate::clock::Clock::fixed(now))
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }
}
