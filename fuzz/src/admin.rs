//! The `admin_api` target: a short sequence of management requests sent through the API's
//! router ([`Admin::router`], without a socket) over the in-memory ports, seeded with one
//! endpoint, one dead-lettered delivery and one open conversation (the ids `events/admin-*.json`
//! name), plus the body, cursor and id parsers the handlers use, called directly.
//!
//! One input is up to [`MAX_REQUESTS`] requests separated by `0xFF`. A request reads like HTTP:
//!
//! ```text
//! POST /v1/endpoints/{ep}/rotate-secret?x=1
//! Idempotency-Key: k1
//! X-API-Key: wagate-admin-key-example
//! Receiver-Status: 410
//!
//! {"grace_seconds": 60}
//! ```
//!
//! The first line is the method and the target (path, then `?` and the raw query). A request
//! HTTP cannot carry (a method that is no token, a target or header value that is not valid
//! there) is skipped: the router never sees one. `{ep}` in the
//! target is the endpoint created last in this input (the seeded one before any), `{conv}` the
//! seeded conversation and `{dlv}` the seeded delivery. Header lines follow until an empty line;
//! names are case-insensitive. Without `X-API-Key` the request carries the valid key (so that
//! short inputs reach the routes); `Receiver-Status` and `Receiver-Retry-After` are what the fake
//! receiver answers a test delivery (default 204). Everything after the empty line is the body.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use shared::admin::{
    Admin, AdminConfig, AdminResponse, ApiError, CloseConversation, CreateEndpoint, RedriveRequest,
    RotateSecret, SetLabels, SetNotes, TestDelivery, TransferConversation, UpdateEndpoint,
};
use shared::delivery::deliver::{HttpError, HttpRequest, HttpResponse, HttpSender};
use shared::delivery::endpoints::Endpoint;
use shared::delivery::request::DeliveryTask;
use shared::delivery::ssrf::NetworkPolicy;
use shared::ids::SourceId;
use shared::model::EventType;
use shared::pipeline::track::state::{ConversationSettings, Conversations};
use shared::pipeline::track::sweep::Sweep;
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use shared::ports::{OutgoingMessage, Queue};
use shared::signature::{EndpointSecret, Secret};
use shared::testing;
use tower::ServiceExt as _;

/// The key every request carries unless it says otherwise (`events/env.json`).
pub const API_KEY: &str = "wagate-admin-key-example";
/// A second accepted key (a rotation in progress).
pub const OLD_API_KEY: &str = "wagate-admin-key-old";
/// The seeded endpoint.
pub const ENDPOINT: &str = "ep_01JBCQ3ZX0V9K8N7M6P5Q4R301";
/// The seeded open conversation.
pub const CONVERSATION: &str = "conv_01JBCQ3ZX0V9K8N7M6P5Q4R305";
/// The seeded dead-lettered delivery (also on the dead-letter queue).
pub const DELIVERY: &str = "msg_01JBCQ3ZX0V9K8N7M6P5Q4R302_ep_01JBCQ3ZX0V9K8N7M6P5Q4R301";
/// The seeded endpoint's custom header value: header values are write-only.
pub const RECEIVER_KEY: &str = "receiver-key-5f0c1e2d";
/// How the API shows every custom header value.
pub const MASKED: &str = "********";
/// Bodies above this are refused with 413 (small, so the fuzzer reaches it).
pub const MAX_BODY_BYTES: usize = 2048;
/// Requests per input; the rest is ignored.
pub const MAX_REQUESTS: usize = 8;

/// The fixed clock of every request (the time `events/admin-*.json` were made for).
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// One request, parsed from the fuzz input.
#[derive(Debug, Clone, Default)]
pub struct FuzzRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub api_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub receiver_status: Option<u16>,
    pub receiver_retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl FuzzRequest {
    /// Reads one request (see the module documentation); `ep` replaces `{ep}` in the target.
    pub fn parse(bytes: &[u8], ep: &str) -> Self {
        let mut request = Self {
            api_key: Some(API_KEY.to_owned()),
            ..Self::default()
        };
        let mut rest = bytes;
        let mut first = true;
        loop {
            let (line, after) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = String::from_utf8_lossy(line);
            if first {
                first = false;
                let (method, target) = text.split_once(' ').unwrap_or((&text, ""));
                let target = target
                    .replace("{ep}", ep)
                    .replace("{conv}", CONVERSATION)
                    .replace("{dlv}", DELIVERY);
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                request.method = method.to_owned();
                request.path = path.to_owned();
                request.query = query.to_owned();
            } else if line.is_empty() {
                request.body = after.unwrap_or_default().to_vec();
                return request;
            } else {
                let (name, value) = text.split_once(':').unwrap_or((&text, ""));
                let value = value.trim_matches([' ', '\t']).to_owned();
                match name.trim().to_ascii_lowercase().as_str() {
                    "x-api-key" => request.api_key = Some(value),
                    "idempotency-key" => request.idempotency_key = Some(value),
                    "receiver-status" => request.receiver_status = value.parse().ok(),
                    "receiver-retry-after" => request.receiver_retry_after = Some(value),
                    _ => {}
                }
            }
            match after {
                Some(after) => rest = after,
                None => return request,
            }
        }
    }

    /// The request as HTTP carries it, if it can.
    fn as_http(&self) -> Option<axum::http::Request<Body>> {
        if !self.path.starts_with('/') {
            return None;
        }
        let target = if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        };
        let mut request = axum::http::Request::builder()
            .method(axum::http::Method::from_bytes(self.method.as_bytes()).ok()?)
            .uri(target.parse::<axum::http::Uri>().ok()?);
        for (name, value) in [
            ("x-api-key", &self.api_key),
            ("idempotency-key", &self.idempotency_key),
        ] {
            if let Some(value) = value {
                request = request.header(name, axum::http::HeaderValue::from_str(value).ok()?);
            }
        }
        request.body(Body::from(self.body.clone())).ok()
    }

    fn authorized(&self) -> bool {
        matches!(self.api_key.as_deref(), Some(API_KEY | OLD_API_KEY))
    }
}

/// A receiver that answers test deliveries without a network.
#[derive(Debug, Default)]
struct FakeReceiver {
    answer: Mutex<(u16, Option<String>)>,
}

#[async_trait]
impl HttpSender for FakeReceiver {
    async fn post(&self, _: HttpRequest<'_>) -> Result<HttpResponse, HttpError> {
        let (status, retry_after) = self
            .answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Ok(HttpResponse {
            status,
            retry_after,
        })
    }
}

/// The API over fresh in-memory stores, and the secrets it holds.
struct World {
    /// The API's router, on the fixed clock.
    router: axum::Router,
    receiver: Arc<FakeReceiver>,
    /// Endpoint secrets and header values no response may show.
    hidden: Vec<String>,
    /// Secrets a response showed once, with that response's body (an idempotent replay may
    /// show it again, byte for byte; nothing else may).
    shown: Vec<(String, String)>,
    /// The endpoint created last (`{ep}`).
    ep: String,
}

async fn world() -> World {
    let now = now();
    let docs = Arc::new(MemoryDocumentStore::new());
    let blobs = Arc::new(MemoryBlobStore::new());
    let queue = Arc::new(MemoryQueue::new("delivery"));
    let dead_letter = Arc::new(MemoryQueue::new("delivery-dlq"));
    let outbound = Arc::new(MemoryQueue::new("outbound"));
    let receiver = Arc::new(FakeReceiver {
        answer: Mutex::new((204, None)),
    });
    let config = AdminConfig {
        api_keys: vec![Secret::from(API_KEY), Secret::from(OLD_API_KEY)],
        network: NetworkPolicy::PublicOnly,
        rotation_grace: Duration::from_secs(3600),
        max_body_bytes: MAX_BODY_BYTES,
        idempotency_ttl: Duration::from_secs(86400),
        campaign_complete_after: Duration::from_secs(86400),
    };
    let admin = Admin::new(
        docs.clone(),
        blobs.clone(),
        queue,
        dead_letter.clone(),
        Duration::from_secs(30 * 86400),
        config,
    )
    .with_sender(receiver.clone())
    .with_conversations(Sweep::emitting_to(
        Conversations {
            docs: docs.clone(),
            settings: ConversationSettings {
                idle: Duration::from_secs(86400),
                message_ttl: Duration::from_secs(86400),
                recent_messages: 5,
            },
        },
        outbound,
        blobs.clone(),
        Duration::from_secs(86400),
        100,
    ));

    // The endpoint.
    let secret = EndpointSecret::from_key(&[7; 32]).expect("32 bytes make a secret");
    let mut endpoint = Endpoint::new(ENDPOINT, "https://crm.example.com/whatsapp", &secret, now);
    endpoint.event_types = vec!["whatsapp.message.*".into()];
    endpoint.headers = BTreeMap::from([("X-API-Key".to_owned(), RECEIVER_KEY.to_owned())]);
    assert!(
        admin
            .endpoints
            .put(&endpoint, None, now)
            .await
            .expect("memory store")
    );

    // A dead-lettered delivery to it, also waiting on the dead-letter queue, next to a message
    // that is not a task.
    let task = DeliveryTask {
        delivery_id: DELIVERY.into(),
        endpoint_id: ENDPOINT.into(),
        event_type: EventType::MessageRead,
        batch: false,
        event_ids: vec![],
        body: "{}".into(),
        created_at: now - chrono::Duration::hours(1),
        conversation_id: None,
    };
    let body = testing::dead_lettered(&admin, &task, now - chrono::Duration::minutes(50), now)
        .await
        .expect("memory store");
    let failed = dead_letter
        .send_batch(&[
            OutgoingMessage {
                id: "0".into(),
                body,
                delay: None,
            },
            OutgoingMessage {
                id: "1".into(),
                body: "not a task".into(),
                delay: None,
            },
        ])
        .await
        .expect("memory queue");
    assert!(failed.is_empty());

    // The conversation, stored as the tracker stores it.
    testing::active_conversation(
        docs.as_ref(),
        CONVERSATION.parse().expect("a conversation id"),
        now,
    )
    .await
    .expect("memory store");

    World {
        router: admin.router(shared::clock::Clock::fixed(now)),
        receiver,
        hidden: vec![secret.expose().to_owned(), RECEIVER_KEY.to_owned()],
        shown: Vec::new(),
        ep: ENDPOINT.to_owned(),
    }
}

/// Runs the requests of one input and checks every answer.
pub fn check_admin(data: &[u8]) {
    crate::block_on(async {
        let mut world = world().await;
        for part in data.split(|b| *b == 0xFF).take(MAX_REQUESTS) {
            let request = FuzzRequest::parse(part, &world.ep);
            // A value the input itself sends may come back (a label, a note, the method in a
            // 405's message): only values the input never gave are secret to it.
            let texts = sent_texts(&request);
            let given = |value: &str| {
                part.windows(value.len()).any(|w| w == value.as_bytes())
                    || texts.iter().any(|t| t.contains(value))
            };
            world.hidden.retain(|v| !given(v));
            world.shown.retain(|(v, _)| !given(v));
            check_parsers(&request);
            *world
                .receiver
                .answer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = (
                request.receiver_status.unwrap_or(204),
                request.receiver_retry_after.clone(),
            );
            // The console's page and assets are public, answered before the key gate: the
            // router answers exactly what the console does, and none of the API's rules apply.
            let console = request.as_http().and_then(|http| {
                shared::console::serve(http.method(), http.uri().path())
                    .map(|page| page.status().as_u16())
            });
            let Some(response) = send(&world.router, &request).await else {
                continue;
            };
            if let Some(status) = console {
                assert_eq!(response.status, status, "console {}", request.path);
                continue;
            }
            check_response(&request, &response);
            check_secrets(&mut world, &request, &response);
            check_audit(&request, &response);
            // Replays: a POST with an Idempotency-Key answers the same again; a GET changes
            // nothing, so it also answers the same again.
            if (request.method == "POST" && request.idempotency_key.is_some())
                || request.method == "GET"
            {
                let again = send(&world.router, &request).await;
                assert_eq!(
                    again.as_ref(),
                    Some(&response),
                    "{} {} answered differently the second time",
                    request.method,
                    request.path
                );
            }
            if response.status == 201
                && let Ok(v) = serde_json::from_str::<Value>(&response.body)
                && let Some(id) = v["id"].as_str()
            {
                world.ep = id.to_owned();
            }
        }
    });
}

/// Sends `request` through `router`: the answer as status, body and `Allow`, or `None` for a
/// request HTTP cannot carry.
async fn send(router: &axum::Router, request: &FuzzRequest) -> Option<AdminResponse> {
    let http = request.as_http()?;
    let response = match router.clone().oneshot(http).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().expect("Allow is text").to_owned());
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("Retry-After is text").to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("an answer is read whole");
    Some(AdminResponse {
        status,
        body: String::from_utf8(bytes.to_vec()).expect("answers are UTF-8"),
        allow,
        retry_after,
    })
}

/// The text a request sends once decoded: the strings and keys of a JSON body, the query's
/// values.
fn sent_texts(request: &FuzzRequest) -> Vec<String> {
    fn strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                out.push(k.clone());
                strings(v, out);
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(body) = serde_json::from_slice::<Value>(&request.body) {
        strings(&body, &mut out);
    }
    for (name, value) in form_urlencoded::parse(request.query.as_bytes()) {
        out.push(name.into_owned());
        out.push(value.into_owned());
    }
    out
}

/// The error code each error status carries.
fn code_of(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        422 => "validation_failed",
        _ => return None,
    })
}

/// What holds for every answer to any input: no server error, JSON bodies, the error shape,
/// authentication first, then the size limit, and an `Allow` header exactly on 405.
fn check_response(request: &FuzzRequest, response: &AdminResponse) {
    let what = format!(
        "{} {}?{} -> {} {}",
        request.method, request.path, request.query, response.status, response.body
    );
    let status = response.status;
    assert!(
        matches!(status, 200 | 201 | 202 | 204) || code_of(status).is_some(),
        "unexpected status: {what}"
    );
    if !request.authorized() {
        assert_eq!(status, 401, "unauthenticated request answered: {what}");
    } else if request.body.len() > MAX_BODY_BYTES {
        assert_eq!(status, 413, "oversized body accepted: {what}");
    } else {
        assert!(!matches!(status, 401 | 413), "{what}");
    }
    if request.method == "HEAD" {
        // Answered as GET would be, without the body (as HTTP has it).
        assert!(response.body.is_empty(), "HEAD with a body: {what}");
    } else if status == 204 {
        assert_eq!(request.method, "DELETE", "{what}");
        assert!(response.body.is_empty(), "204 with a body: {what}");
    } else {
        let value: Value = match serde_json::from_str(&response.body) {
            Ok(v) => v,
            Err(e) => panic!("body is not JSON ({e}): {what}"),
        };
        let object = value.as_object().expect("every body is a JSON object");
        if let Some(code) = code_of(status) {
            assert_eq!(object.len(), 1, "error body with more than `error`: {what}");
            let error = object["error"]
                .as_object()
                .unwrap_or_else(|| panic!("error body without an `error` object: {what}"));
            assert_eq!(error["code"], code, "{what}");
            assert!(error["message"].is_string(), "{what}");
            assert!(
                error
                    .keys()
                    .all(|k| ["code", "message", "details"].contains(&k.as_str())),
                "{what}"
            );
            if status == 422 {
                assert!(error["details"]["field"].is_string(), "{what}");
            }
        } else {
            assert!(
                !object.contains_key("error"),
                "success with an error: {what}"
            );
        }
    }
    match (&response.allow, status) {
        (Some(allow), 405) => {
            assert!(!allow.is_empty(), "405 with an empty Allow: {what}");
            assert!(
                allow.split(", ").all(|m| m != request.method),
                "405 although Allow ({allow}) has the method: {what}"
            );
        }
        (None, 405) => panic!("405 without Allow: {what}"),
        (Some(allow), _) => panic!("Allow ({allow}) on a {status}: {what}"),
        (None, _) => {}
    }
}

/// Endpoint secrets are shown once: in the answer that created them (creation, rotation) and
/// in idempotent replays of that answer, never elsewhere.
fn check_secrets(world: &mut World, request: &FuzzRequest, response: &AdminResponse) {
    for secret in &world.hidden {
        assert!(
            !response.body.contains(secret.as_str()),
            "a stored secret or header value was shown: {} {}",
            request.method,
            request.path
        );
    }
    for (secret, body) in &world.shown {
        assert!(
            !response.body.contains(secret.as_str()) || response.body == *body,
            "a secret was shown again: {} {}",
            request.method,
            request.path
        );
    }
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&response.body) else {
        return;
    };
    // Endpoint views (one, or a page of them) show header names with masked values only.
    if request.path.contains("/endpoints") {
        let single = Value::Object(object.clone());
        let views: Vec<&Value> = match object.get("data") {
            Some(Value::Array(views)) => views.iter().collect(),
            _ => vec![&single],
        };
        for view in views {
            if let Some(headers) = view.get("headers").and_then(Value::as_object) {
                assert!(
                    headers.values().all(|v| v == MASKED),
                    "a header value was shown: {} {}",
                    request.method,
                    request.path
                );
            }
        }
    }
    if let Some(secret) = object.get("secret") {
        let secret = secret.as_str().expect("a shown secret is a string");
        let path = request.path.trim_end_matches('/');
        assert!(
            request.method == "POST"
                && ((response.status == 201 && path.ends_with("/endpoints"))
                    || (response.status == 200 && path.ends_with("/rotate-secret"))),
            "secret in the answer to {} {}",
            request.method,
            request.path
        );
        assert!(
            EndpointSecret::parse(secret).is_ok(),
            "a shown secret does not parse"
        );
        if !world.shown.iter().any(|(s, _)| s == secret) {
            world.shown.push((secret.to_owned(), response.body.clone()));
        }
    }
}

/// The parsers `handle` uses, called directly on the same request.
fn check_parsers(request: &FuzzRequest) {
    let bytes = &request.body;
    check_body::<CreateEndpoint>(bytes);
    check_body::<UpdateEndpoint>(bytes);
    check_body::<RotateSecret>(bytes);
    check_body::<RedriveRequest>(bytes);
    check_body::<TestDelivery>(bytes);
    check_body::<CloseConversation>(bytes);
    check_body::<TransferConversation>(bytes);
    check_body::<SetLabels>(bytes);
    check_body::<SetNotes>(bytes);

    // Cursors: any cursor given decodes to a bound that encodes back to a cursor for itself;
    // any text survives encode then decode.
    for (name, value) in form_urlencoded::parse(request.query.as_bytes()) {
        if name == "cursor" {
            match shared::admin::decode_cursor(&value) {
                Ok(bound) => assert_eq!(
                    shared::admin::decode_cursor(&shared::admin::encode_cursor(&bound)),
                    Ok(bound)
                ),
                Err(e) => assert_eq!((e.status, e.code), (400, "bad_request")),
            }
        }
        check_id(&value);
    }
    for text in [request.path.as_str(), request.query.as_str()] {
        assert_eq!(
            shared::admin::decode_cursor(&shared::admin::encode_cursor(text)).ok(),
            (!text.is_empty()).then(|| text.to_owned()),
            "cursor round trip of {text:?}"
        );
    }
    for segment in request.path.split('/') {
        check_id(segment);
    }
}

/// `is_plain_id` is the source id rule; `has_visible` is false for blank text.
fn check_id(s: &str) {
    assert_eq!(
        shared::admin::is_plain_id(s),
        SourceId::parse(s).is_ok(),
        "{s:?}"
    );
    if s.trim().is_empty() {
        assert!(!shared::admin::has_visible(s), "{s:?}");
    }
}

/// A body parser refuses with 400 exactly what is not JSON (an empty body is `{}`), and with
/// 422 naming a field what is JSON of the wrong shape.
fn check_body<T: for<'de> serde::Deserialize<'de>>(bytes: &[u8]) {
    let Err(ApiError {
        status,
        code,
        details,
        ..
    }) = shared::admin::body::<T>(bytes)
    else {
        return;
    };
    let blank = bytes.iter().all(u8::is_ascii_whitespace);
    let json = blank || serde_json::from_slice::<Value>(bytes).is_ok();
    if json {
        assert_eq!((status, code), (422, "validation_failed"));
        assert!(details.is_some_and(|d| d["field"].is_string()));
    } else {
        assert_eq!((status, code), (400, "bad_request"));
    }
}

/// `key_` and the first 12 hex digits of the SHA-256 of an API key: how the audit trail names
/// who made a change.
fn key_id(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("key_{}", &digest[..12])
}

/// The request fields each audited change may name: those of the body its route reads.
fn audited_fields(action: &str) -> Option<&'static [&'static str]> {
    Some(match action {
        "endpoint.created" => &["url", "event_types", "batching", "headers", "description"],
        "endpoint.updated" => &[
            "url",
            "event_types",
            "batching",
            "headers",
            "description",
            "enabled",
        ],
        "endpoint.secret_rotated" => &["grace_seconds"],
        "deliveries.redriven" => &["endpoint_id", "event_id", "max"],
        "conversation.closed" => &["reason"],
        "conversation.transferred" => &["to_agent", "to_team", "notes"],
        "conversation.labels_set" => &["labels"],
        "conversation.notes_set" => &["notes"],
        // Routes that read no body record no fields, whatever a client sent.
        "endpoint.deleted" | "endpoint.enabled" | "endpoint.disabled" | "endpoint.recovered"
        | "delivery.retried" => &[],
        other => panic!("unknown audit action {other:?}"),
    })
}

/// An audit page names changes by action, target id, field names and the key's id: never the
/// key, never a value.
fn check_audit(request: &FuzzRequest, response: &AdminResponse) {
    let path = request.path.trim_end_matches('/');
    if request.method != "GET" || !path.ends_with("/v1/audit") || response.status != 200 {
        return;
    }
    let page: Value = serde_json::from_str(&response.body).expect("checked JSON");
    let entries = page["data"].as_array().expect("an audit page has data");
    let actors = [key_id(API_KEY), key_id(OLD_API_KEY)];
    for entry in entries {
        let entry = entry.as_object().expect("an audit entry is an object");
        let known = ["id", "at", "actor", "action", "target", "fields", "status"];
        assert!(
            entry.keys().all(|k| known.contains(&k.as_str())),
            "{entry:?}"
        );
        assert!(
            entry["actor"]
                .as_str()
                .is_some_and(|a| actors.iter().any(|k| k == a)),
            "{entry:?}"
        );
        assert!(
            entry["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s)),
            "{entry:?}"
        );
        assert!(
            entry["target"].is_null()
                || entry["target"]
                    .as_str()
                    .is_some_and(shared::admin::is_plain_id),
            "{entry:?}"
        );
        let action = entry["action"].as_str().expect("an action");
        let fields = entry["fields"].as_array().expect("fields");
        assert!(fields.iter().all(Value::is_string), "{entry:?}");
        if let Some(allowed) = audited_fields(action) {
            assert!(
                fields
                    .iter()
                    .all(|f| f.as_str().is_some_and(|f| allowed.contains(&f))),
                "audit entry names a field its route does not read: {entry:?}"
            );
        }
    }
}
