//! The fake WAHA: the send endpoints of WAHA's OpenAPI as the WEBJS engine answers them, then
//! the `message.any` and `message.ack` webhooks WAHA posts, signed with the HMAC key.
//!
//! Owns: the WAHA fake's routes, answers, scripted failures and webhooks. Must not: print
//! bodies, chat ids or keys (lines name the path and the message id's last part).
//!
//! Routes (body fields as WAHA's OpenAPI names them; `session` defaults to `default`):
//! `POST /api/sendText` {chatId, text, reply_to?, linkPreview?, mentions?},
//! `/api/sendImage` and `/api/sendFile` {chatId, file {mimetype, url | data, filename?},
//! caption?}, `/api/sendVoice` and `/api/sendVideo` {chatId, file, caption? (video), asNote?,
//! convert?}, `/api/sendLocation` {chatId, latitude, longitude, title?},
//! `/api/sendContactVcard` {chatId, contacts [{vcard} | {fullName, phoneNumber,
//! organization?, whatsappId?}]}, `/api/sendList` {chatId, message {title?, description?,
//! footer?, button, sections [{title, rows [{title, rowId, description?}]}]}}, all answering
//! 201 with the WEBJS message object (whatsapp-web.js `Message` as JSON: `id {fromMe, remote,
//! id, _serialized}`, `ack` 0, `body`, `type` chat/image/document/ptt/video/location/vcard/
//! multi_vcard/list, `timestamp`, `from`, `to`, `fromMe` true, `_data`, …);
//! `PUT /api/reaction` {messageId, reaction} → 200, empty body; `POST /api/sendSeen` {chatId,
//! messageId? | messageIds?} → 201, empty body; `POST /api/startTyping` and `/api/stopTyping`
//! {chatId} → 201 `{"result":true}`; `GET /api/files/{session}/{file}` serves media sent as
//! base64 (the `media.url` of `message.any`; media sent by URL keeps its URL there) and files
//! registered with [`FakeWaha::add_file`] (received media; the sample image from the start),
//! with `Content-Type` and `Content-Length`, in several chunks; 404 `FILE_NOT_FOUND` for others.
//!
//! `chatId` forms: `<digits>@c.us`, `<digits>@lid`, `<digits>[-<digits>]@g.us`, or bare digits
//! (taken as `@c.us`, as WAHA's `sendText` does). Message ids: `true_{chatId}_{3EB0…}` (in
//! groups `…_{me}@c.us` appended, as WEBJS does).
//!
//! Errors as WAHA (NestJS) sends them: 401 `{"message":"Unauthorized","statusCode":401}` when
//! `X-Api-Key` is configured and missing or wrong; 404 `{"message":"We didn't find a session
//! with name '…'…","error":"Not Found","statusCode":404}` for an unknown session; 404 `Cannot
//! POST /api/…` for unknown routes; 400 `{"message":[…],"error":"Bad Request","statusCode":400}`
//! for a missing or malformed field; 422 `{"error":"Session status is not as expected…",
//! "session","status","expected"}`; 500 WAHA's exception body `{"statusCode":500,"timestamp",
//! "exception":{"message","name","stack"},"request":{…},"version":{…}}`.
//!
//! Webhooks: `{id:"evt_…", timestamp (ms), event, session, metadata, me {id, pushName},
//! payload, engine "WEBJS", environment}` with `X-Webhook-Request-Id`, `X-Webhook-Timestamp`,
//! `X-Webhook-Hmac` (hex HMAC-SHA512 of the body) and `X-Webhook-Hmac-Algorithm: sha512`.
//! `message.any` carries the sent content (`fromMe` true, `source` "api", ack 1 `SERVER`), then
//! the [`StatusPlan`]'s `message.ack`s (payload `{id, from: chat, to: me, participant, fromMe,
//! ack, ackName, _data}`).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use chrono::Utc;
use serde_json::{Map, Value, json};
use shared::model::Provider;
use shared::ports::Source;
use shared::signature::{Secret, sign_waha};

use super::{
    DEMO_WAHA_API_KEY, DownloadFault, DownloadScript, Journal, Poster, RecordedRequest,
    SAMPLE_IMAGE_MIME_TYPE, Scripted, Server, Status, StatusPlan, WebhookRecord, WebhookRetry,
    ends_with, file_response, json_response, lock, random_hex, read_request, same_secret,
    sample_image_png,
};

/// The session [`SAMPLE_IMAGE_FILE`] is served under.
pub const SAMPLE_IMAGE_SESSION: &str = "default";

/// The file name of [`super::sample_image_png`], which every fake WAHA serves from the start at
/// `/api/files/default/{SAMPLE_IMAGE_FILE}` (named as WAHA names received media: the message
/// id and an extension).
pub const SAMPLE_IMAGE_FILE: &str = "false_15550001234@c.us_3EB0A5A3F1C0DE5A3F1C.png";

/// Largest request body read (base64 media included).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The version the fake reports in webhooks and 500 bodies.
const VERSION: &str = "2025.11.1";

/// An error answer as WAHA sends it: an HTTP status and NestJS's JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WahaError {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl WahaError {
    /// 401: the `X-Api-Key` is missing or wrong.
    pub fn unauthorized() -> Self {
        Self {
            status: 401,
            body: json!({"message": "Unauthorized", "statusCode": 401}),
        }
    }

    /// 404: no session named `name`.
    pub fn session_not_found(name: &str) -> Self {
        Self {
            status: 404,
            body: json!({
                "message": format!(
                    "We didn't find a session with name '{name}'.\nPlease start it first by using POST /api/sessions/{name}/start request"
                ),
                "error": "Not Found",
                "statusCode": 404,
            }),
        }
    }

    /// 422: session `name` is `status` (`STARTING`, `SCAN_QR_CODE`, `FAILED`), not `WORKING`.
    pub fn session_not_working(name: &str, status: &str) -> Self {
        Self {
            status: 422,
            body: json!({
                "error": "Session status is not as expected. Try again later or restart the session",
                "session": name,
                "status": status,
                "expected": ["WORKING"],
            }),
        }
    }

    /// 400: class-validator's messages for the request's fields.
    pub fn bad_request(messages: &[String]) -> Self {
        Self {
            status: 400,
            body: json!({"message": messages, "error": "Bad Request", "statusCode": 400}),
        }
    }

    /// 500: the engine threw `message` (WAHA's exception filter body; the request part is
    /// filled in with the request it answers).
    pub fn internal(message: &str) -> Self {
        Self {
            status: 500,
            body: json!({
                "statusCode": 500,
                "timestamp": "",
                "exception": {
                    "message": message,
                    "name": "Error",
                    "stack": format!("Error: {message}\n    at WhatsappSessionWebJSCore.sendText (/app/dist/core/engines/webjs/session.webjs.core.js:1:1)"),
                },
                "request": null,
                "version": version(),
            }),
        }
    }

    fn not_route(method: &str, path: &str) -> Self {
        Self {
            status: 404,
            body: json!({
                "message": format!("Cannot {method} {path}"),
                "error": "Not Found",
                "statusCode": 404,
            }),
        }
    }

    fn response(&self, request: &RecordedRequest) -> Response {
        let mut body = self.body.clone();
        if self.status == 500 && body.get("request") == Some(&Value::Null) {
            let (path, query) = request
                .path
                .split_once('?')
                .unwrap_or((request.path.as_str(), ""));
            let query: Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            body["timestamp"] =
                json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            body["request"] = json!({
                "path": path,
                "method": request.method,
                "body": request.json.clone().unwrap_or(json!({})),
                "query": query,
            });
        }
        json_response(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &body,
            &[],
        )
    }
}

fn version() -> Value {
    json!({"version": VERSION, "engine": "WEBJS", "tier": "PLUS", "browser": "/usr/bin/chromium"})
}

/// How to run a fake WAHA.
#[derive(Debug, Clone)]
pub struct FakeWahaOptions {
    /// Where to listen (port 0: any free port).
    pub bind: SocketAddr,
    /// The `X-Api-Key` every request must carry (`None`: no key, like WAHA without
    /// `WHATSAPP_API_KEY`).
    pub api_key: Option<Secret>,
    /// The webhook HMAC key (`None`: webhooks unsigned).
    pub hmac_key: Option<Secret>,
    /// Where webhooks go (`None`: none are posted).
    pub webhook_url: Option<String>,
    /// Sessions that exist and are `WORKING`.
    pub sessions: Vec<String>,
    /// The business account's number (digits): `me.id` is `{me}@c.us`.
    pub me: String,
    /// `me.pushName`.
    pub push_name: String,
    /// Which acks follow an accepted message.
    pub statuses: StatusPlan,
    /// Post `message.any` (the sent message, `fromMe` true) before the acks.
    pub echo_message_any: bool,
    /// How webhook POSTs are retried.
    pub retry: WebhookRetry,
    /// Print a line per request and webhook (the `fake-provider` command).
    pub print: bool,
}

impl Default for FakeWahaOptions {
    /// The bundled sample's values: any free port on 127.0.0.1, [`DEMO_WAHA_API_KEY`], the
    /// `waha-demo` HMAC key, session `default`, the sample business number, no webhooks.
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            api_key: Some(Secret::from(DEMO_WAHA_API_KEY)),
            hmac_key: Some(Secret::from("demo-waha-hmac-key")),
            webhook_url: None,
            sessions: vec!["default".to_owned()],
            me: crate::sample::BUSINESS_NUMBER.to_owned(),
            push_name: "Example Shop".to_owned(),
            statuses: StatusPlan::default(),
            echo_message_any: true,
            retry: WebhookRetry::default(),
            print: false,
        }
    }
}

impl FakeWahaOptions {
    /// The defaults, listening on `bind` and posting webhooks to `{gateway}/webhooks/{source}`
    /// signed with `source`'s first HMAC key: what local mode starts next to the gateway.
    pub fn for_source(source: &Source, bind: SocketAddr, gateway: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            source.provider == Provider::Waha,
            "source `{}` is not a WAHA source",
            source.id.as_str()
        );
        Ok(Self {
            bind,
            hmac_key: source.secrets.first().cloned(),
            webhook_url: Some(format!(
                "{}/webhooks/{}",
                gateway.trim_end_matches('/'),
                source.id.as_str()
            )),
            ..Self::default()
        })
    }
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct WahaMessage {
    /// The serialized id, `true_{chatId}_{ID}`.
    pub id: String,
    /// The session it went out on.
    pub session: String,
    /// The chat id (normalized: bare digits get `@c.us`).
    pub chat_id: String,
    /// WEBJS type: `chat`, `image`, `document`, `ptt`, `video`, `location`, `vcard`,
    /// `multi_vcard`, `list`.
    pub kind: String,
    /// The text (or caption, or list description).
    pub body: String,
    /// The media, for media sends.
    pub media: Option<Value>,
    /// `{latitude, longitude, description}`, for locations.
    pub location: Option<Value>,
    /// The vCards, for contact sends.
    pub vcards: Vec<String>,
    /// The message it replies to.
    pub reply_to: Option<String>,
    /// When it was sent (Unix seconds).
    pub timestamp: i64,
}

#[derive(Debug)]
struct Inner {
    options: FakeWahaOptions,
    journal: Journal<WahaError>,
    sent: Mutex<HashMap<String, WahaMessage>>,
    /// Files served at `/api/files/`: `{session}/{file}` → (mimetype, bytes).
    files: Mutex<HashMap<String, (String, Bytes)>>,
    poster: Poster,
    /// Base URL of this server (for `media.url`).
    base: Mutex<String>,
}

/// A running fake WAHA. Stops when dropped or on [`FakeWaha::stop`].
#[derive(Debug)]
pub struct FakeWaha {
    inner: Arc<Inner>,
    server: Server,
}

impl FakeWaha {
    /// Starts the fake on `options.bind`.
    pub async fn start(options: FakeWahaOptions) -> anyhow::Result<Self> {
        let poster = Poster::new(
            options.webhook_url.clone(),
            options.retry,
            options.print.then_some("fake-waha"),
        );
        let bind = options.bind;
        let inner = Arc::new(Inner {
            options,
            journal: Journal::default(),
            sent: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::from([(
                format!("{SAMPLE_IMAGE_SESSION}/{SAMPLE_IMAGE_FILE}"),
                (
                    SAMPLE_IMAGE_MIME_TYPE.to_owned(),
                    Bytes::from(sample_image_png()),
                ),
            )])),
            poster,
            base: Mutex::new(String::new()),
        });
        let app = Router::new()
            .fallback(
                |State(inner): State<Arc<Inner>>, request: Request| async move {
                    Inner::handle(&inner, request).await
                },
            )
            .with_state(inner.clone());
        let server = Server::start(bind, app).await?;
        *lock(&inner.base) = format!("http://{}", server.addr);
        Ok(Self { inner, server })
    }

    /// The base URL, `http://127.0.0.1:{port}` (WAHA's `WAHA_BASE_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.journal.requests()
    }

    /// Every message accepted so far (any order).
    pub fn sent(&self) -> Vec<WahaMessage> {
        lock(&self.inner.sent).values().cloned().collect()
    }

    /// Every webhook posted so far, in the order their POSTs ended.
    pub fn webhooks(&self) -> Vec<WebhookRecord> {
        self.inner.journal.webhooks()
    }

    /// Answers the next `n` authorized requests to a known session with `error`.
    pub fn fail_next(&self, n: usize, error: WahaError) {
        self.inner.journal.push_script(n, &Scripted::Fail(error));
    }

    /// Accepts the next `n` authorized requests to a known session and never answers them
    /// (until the fake stops: then they end with 503 and `Connection: close`).
    pub fn hang_next(&self, n: usize) {
        self.inner.journal.push_script(n, &Scripted::Hang);
    }

    /// Serves `bytes` as `mime_type` at `/api/files/{session}/{file_name}` (as WAHA serves a
    /// received message's media) and returns that URL on this server. Names go into the URL
    /// as given: letters, digits, `@`, `.`, `_` and `-` keep it valid.
    pub fn add_file(
        &self,
        session: &str,
        file_name: &str,
        bytes: Vec<u8>,
        mime_type: &str,
    ) -> String {
        let name = format!("{session}/{file_name}");
        lock(&self.inner.files).insert(name.clone(), (mime_type.to_owned(), Bytes::from(bytes)));
        format!("{}/api/files/{name}", self.url())
    }

    /// The URL of the sample image ([`SAMPLE_IMAGE_FILE`]).
    pub fn sample_image_url(&self) -> String {
        format!(
            "{}/api/files/{SAMPLE_IMAGE_SESSION}/{SAMPLE_IMAGE_FILE}",
            self.url()
        )
    }

    /// Answers the next `n` authorized downloads of a served file with `error` (e.g.
    /// [`WahaError::internal`]: 500).
    pub fn fail_next_download(&self, n: usize, error: WahaError) {
        self.inner
            .journal
            .push_download(n, &DownloadScript::Fail(error));
    }

    /// Accepts the next `n` authorized downloads of a served file and never answers them.
    pub fn hang_next_download(&self, n: usize) {
        self.fault_next_download(n, DownloadFault::Hang);
    }

    /// Makes the next `n` authorized downloads of a served file go wrong as `fault` says.
    pub fn fault_next_download(&self, n: usize, fault: DownloadFault) {
        self.inner
            .journal
            .push_download(n, &DownloadScript::Fault(fault));
    }

    /// Posts a `message.ack` for accepted message `message_id` now (retrying as configured)
    /// and returns what happened. Errs for an id the fake did not accept.
    pub async fn post_status(
        &self,
        message_id: &str,
        status: Status,
    ) -> anyhow::Result<WebhookRecord> {
        let message = lock(&self.inner.sent)
            .get(message_id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no accepted message {message_id}"))?;
        Ok(self.inner.post_ack(&message, status).await)
    }

    /// Stops: open requests (hung ones too) end, webhooks not yet posted are dropped.
    pub async fn stop(&self) {
        self.inner.journal.abort_tasks();
        self.server.stop().await;
    }
}

impl Drop for FakeWaha {
    fn drop(&mut self) {
        self.inner.journal.abort_tasks();
    }
}

/// The send routes: path → what they send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Text,
    Image,
    File,
    Voice,
    Video,
    Location,
    Vcard,
    List,
    Reaction,
    Seen,
    StartTyping,
    StopTyping,
}

fn route(method: &str, path: &str) -> Option<Route> {
    Some(match (method, path) {
        ("POST", "/api/sendText") => Route::Text,
        ("POST", "/api/sendImage") => Route::Image,
        ("POST", "/api/sendFile") => Route::File,
        ("POST", "/api/sendVoice") => Route::Voice,
        ("POST", "/api/sendVideo") => Route::Video,
        ("POST", "/api/sendLocation") => Route::Location,
        ("POST", "/api/sendContactVcard") => Route::Vcard,
        ("POST", "/api/sendList") => Route::List,
        ("PUT", "/api/reaction") => Route::Reaction,
        ("POST", "/api/sendSeen") => Route::Seen,
        ("POST", "/api/startTyping") => Route::StartTyping,
        ("POST", "/api/stopTyping") => Route::StopTyping,
        _ => return None,
    })
}

/// A chat id in one of WAHA's forms (bare digits become `@c.us`).
fn chat_id(text: &str) -> Option<String> {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if digits(text) {
        return Some(format!("{text}@c.us"));
    }
    let (user, server) = text.split_once('@')?;
    let ok = match server {
        "c.us" | "lid" => digits(user),
        "g.us" => match user.split_once('-') {
            Some((a, b)) => digits(a) && digits(b),
            None => digits(user),
        },
        _ => false,
    };
    ok.then(|| text.to_owned())
}

/// Collects class-validator-style messages for one request body.
struct Fields<'a> {
    body: &'a Map<String, Value>,
    problems: Vec<String>,
}

impl<'a> Fields<'a> {
    fn new(body: &'a Map<String, Value>) -> Self {
        Self {
            body,
            problems: Vec::new(),
        }
    }

    fn string(&mut self, key: &str) -> Option<&'a str> {
        match self.body.get(key) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => {
                self.problems.push(format!("{key} should not be empty"));
                None
            }
            Some(_) => {
                self.problems.push(format!("{key} must be a string"));
                None
            }
        }
    }

    fn optional_string(&mut self, key: &str) -> Option<&'a str> {
        match self.body.get(key) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => None,
            Some(_) => {
                self.problems.push(format!("{key} must be a string"));
                None
            }
        }
    }

    fn number(&mut self, key: &str) -> Option<f64> {
        match self.body.get(key) {
            Some(Value::Number(n)) => n.as_f64(),
            None | Some(Value::Null) => {
                self.problems.push(format!("{key} should not be empty"));
                None
            }
            Some(_) => {
                self.problems.push(format!(
                    "{key} must be a number conforming to the specified constraints"
                ));
                None
            }
        }
    }

    fn object(&mut self, key: &str) -> Option<&'a Map<String, Value>> {
        match self.body.get(key) {
            Some(Value::Object(o)) => Some(o),
            None | Some(Value::Null) => {
                self.problems.push(format!("{key} should not be empty"));
                None
            }
            Some(_) => {
                self.problems.push(format!("{key} must be an object"));
                None
            }
        }
    }

    fn array(&mut self, key: &str) -> Option<&'a Vec<Value>> {
        match self.body.get(key) {
            Some(Value::Array(a)) if !a.is_empty() => Some(a),
            Some(Value::Array(_)) | None | Some(Value::Null) => {
                self.problems.push(format!("{key} should not be empty"));
                None
            }
            Some(_) => {
                self.problems.push(format!("{key} must be an array"));
                None
            }
        }
    }

    fn absorb(&mut self, prefix: &str, other: Fields<'_>) {
        self.problems
            .extend(other.problems.into_iter().map(|p| format!("{prefix}.{p}")));
    }
}

/// What a valid send request says.
struct Parsed {
    chat_id: String,
    kind: &'static str,
    body: String,
    media: Option<Media>,
    location: Option<Value>,
    vcards: Vec<String>,
    reply_to: Option<String>,
}

struct Media {
    mimetype: String,
    filename: Option<String>,
    source: MediaSource,
}

enum MediaSource {
    Url(String),
    Data(Vec<u8>),
}

fn file_field(f: &mut Fields<'_>, default_mimetype: Option<&str>) -> Option<Media> {
    let file = f.object("file")?;
    let mut inner = Fields::new(file);
    let mimetype = match default_mimetype {
        Some(default) => inner
            .optional_string("mimetype")
            .unwrap_or(default)
            .to_owned(),
        None => inner.string("mimetype").unwrap_or_default().to_owned(),
    };
    let filename = inner.optional_string("filename").map(str::to_owned);
    let url = inner.optional_string("url");
    let data = inner.optional_string("data");
    let source = match (url, data) {
        (Some(_), Some(_)) | (None, None) => {
            inner
                .problems
                .push("url or data must be set, not both".to_owned());
            None
        }
        (Some(url), None) => match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                Some(MediaSource::Url(url.to_owned()))
            }
            _ => {
                inner.problems.push("url must be a URL address".to_owned());
                None
            }
        },
        (None, Some(data)) => match base64::engine::general_purpose::STANDARD.decode(data) {
            Ok(bytes) => Some(MediaSource::Data(bytes)),
            Err(_) => {
                inner
                    .problems
                    .push("data must be base64 encoded".to_owned());
                None
            }
        },
    };
    f.absorb("file", inner);
    source.map(|source| Media {
        mimetype,
        filename,
        source,
    })
}

fn vcard(contact: &Value, i: usize, f: &mut Fields<'_>) -> Option<String> {
    let Value::Object(contact) = contact else {
        f.problems.push(format!("contacts.{i} must be an object"));
        return None;
    };
    if let Some(Value::String(card)) = contact.get("vcard") {
        return Some(card.clone());
    }
    let mut inner = Fields::new(contact);
    let name = inner.string("fullName");
    let phone = inner.string("phoneNumber");
    let organization = inner.optional_string("organization");
    let whatsapp_id = inner.optional_string("whatsappId");
    f.absorb(&format!("contacts.{i}"), inner);
    let (name, phone) = (name?, phone?);
    let waid: String = whatsapp_id
        .map(str::to_owned)
        .unwrap_or_else(|| phone.chars().filter(char::is_ascii_digit).collect());
    Some(format!(
        "BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nORG:{};\nTEL;type=CELL;type=VOICE;waid={waid}:{phone}\nEND:VCARD",
        organization.unwrap_or_default()
    ))
}

fn list_message(f: &mut Fields<'_>) -> Option<String> {
    let message = f.object("message")?;
    let mut m = Fields::new(message);
    m.optional_string("title");
    let description = m.optional_string("description").unwrap_or_default();
    m.optional_string("footer");
    m.string("button");
    if let Some(sections) = m.array("sections") {
        let sections = sections.clone();
        for (i, section) in sections.iter().enumerate() {
            let Value::Object(section) = section else {
                m.problems.push(format!("sections.{i} must be an object"));
                continue;
            };
            let mut s = Fields::new(section);
            s.string("title");
            if let Some(rows) = s.array("rows") {
                for (j, row) in rows.iter().enumerate() {
                    let Value::Object(row) = row else {
                        s.problems.push(format!("rows.{j} must be an object"));
                        continue;
                    };
                    let mut r = Fields::new(row);
                    r.string("title");
                    r.string("rowId");
                    r.optional_string("description");
                    s.absorb(&format!("rows.{j}"), r);
                }
            }
            m.absorb(&format!("sections.{i}"), s);
        }
    }
    f.absorb("message", m);
    Some(description.to_owned())
}

/// Checks a send body for `route`.
fn parse(route: Route, body: &Map<String, Value>) -> Result<Parsed, WahaError> {
    let mut f = Fields::new(body);
    if route == Route::Reaction {
        // `{messageId, reaction}`: no chat id (an empty reaction removes one).
        f.string("messageId");
        f.string("reaction");
    }
    let chat = if route == Route::Reaction {
        None
    } else {
        f.string("chatId")
    };
    let chat = match chat.map(|c| (c, chat_id(c))) {
        Some((_, Some(id))) => id,
        Some((_, None)) => {
            f.problems.push(
                "chatId must be a phone number with @c.us, a @lid or a group @g.us id".to_owned(),
            );
            String::new()
        }
        None => String::new(),
    };
    let reply_to = f.optional_string("reply_to").map(str::to_owned);
    let mut parsed = Parsed {
        chat_id: chat,
        kind: "chat",
        body: String::new(),
        media: None,
        location: None,
        vcards: Vec::new(),
        reply_to,
    };
    match route {
        Route::Text => {
            parsed.body = f.string("text").unwrap_or_default().to_owned();
            if let Some(Value::Array(_)) | None | Some(Value::Null) = body.get("mentions") {
            } else {
                f.problems.push("mentions must be an array".to_owned());
            }
        }
        Route::Image | Route::File | Route::Video | Route::Voice => {
            let (kind, default) = match route {
                Route::Image => ("image", None),
                Route::File => ("document", None),
                Route::Video => ("video", Some("video/mp4")),
                _ => ("ptt", Some("audio/ogg; codecs=opus")),
            };
            parsed.kind = kind;
            parsed.media = file_field(&mut f, default);
            if route != Route::Voice {
                parsed.body = f.optional_string("caption").unwrap_or_default().to_owned();
            }
        }
        Route::Location => {
            parsed.kind = "location";
            let latitude = f.number("latitude");
            let longitude = f.number("longitude");
            let title = f.optional_string("title");
            if let (Some(lat), Some(lng)) = (latitude, longitude) {
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
                    f.problems
                        .push("latitude/longitude must be valid coordinates".to_owned());
                }
                parsed.location =
                    Some(json!({"latitude": lat, "longitude": lng, "description": title}));
            }
        }
        Route::Vcard => {
            if let Some(contacts) = f.array("contacts") {
                let cards: Vec<Option<String>> = contacts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| vcard(c, i, &mut f))
                    .collect();
                parsed.vcards = cards.into_iter().flatten().collect();
                parsed.kind = if parsed.vcards.len() > 1 {
                    "multi_vcard"
                } else {
                    "vcard"
                };
                parsed.body = parsed.vcards.first().cloned().unwrap_or_default();
            }
        }
        Route::List => {
            parsed.kind = "list";
            parsed.body = list_message(&mut f).unwrap_or_default();
        }
        Route::Reaction | Route::Seen | Route::StartTyping | Route::StopTyping => {}
    }
    if f.problems.is_empty() {
        Ok(parsed)
    } else {
        Err(WahaError::bad_request(&f.problems))
    }
}

fn extension(mimetype: &str) -> &'static str {
    match mimetype.split(';').next().unwrap_or_default().trim() {
        "image/jpeg" => "jpeg",
        "image/png" => "png",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "audio/ogg" => "oga",
        "audio/mpeg" => "mp3",
        "application/pdf" => "pdf",
        _ => "bin",
    }
}

fn wid(serialized: &str) -> Value {
    let (user, server) = serialized.split_once('@').unwrap_or((serialized, ""));
    json!({"server": server, "user": user, "_serialized": serialized})
}

impl Inner {
    fn me(&self) -> String {
        format!("{}@c.us", self.options.me)
    }

    async fn handle(self: &Arc<Self>, request: Request) -> Response {
        let recorded = match read_request(request, BODY_LIMIT).await {
            Ok(r) => r,
            Err(response) => return response,
        };
        self.journal.record(recorded.clone());
        let path = recorded
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (response, what) = self.answer(&recorded, &path).await;
        if self.options.print {
            // File names hold the chat id (a phone number): only the session is shown.
            let shown = match path.strip_prefix("/api/files/") {
                Some(name) => format!(
                    "/api/files/{}/…",
                    name.split('/').next().unwrap_or_default()
                ),
                None => path,
            };
            println!(
                "fake-waha | {} {shown} -> {} {what}",
                recorded.method,
                response.status().as_u16()
            );
        }
        response
    }

    async fn answer(self: &Arc<Self>, request: &RecordedRequest, path: &str) -> (Response, String) {
        let fail = |e: &WahaError| (e.response(request), format!("error {}", e.status));
        if let Some(key) = &self.options.api_key {
            let given = request.header("x-api-key").map(str::to_owned).or_else(|| {
                let query = request.path.split_once('?')?.1;
                url::form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == "x-api-key")
                    .map(|(_, v)| v.into_owned())
            });
            if !given.is_some_and(|g| same_secret(g.as_bytes(), key.expose())) {
                return fail(&WahaError::unauthorized());
            }
        }
        if request.method == "GET"
            && let Some(name) = path.strip_prefix("/api/files/")
        {
            return self.file(name, request).await;
        }
        let Some(route) = route(&request.method, path) else {
            return fail(&WahaError::not_route(&request.method, path));
        };
        let Some(Value::Object(body)) = &request.json else {
            return fail(&WahaError::bad_request(&[
                "the body must be a JSON object".to_owned()
            ]));
        };
        let session = match body.get("session") {
            None | Some(Value::Null) => "default",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return fail(&WahaError::bad_request(&[
                    "session must be a string".to_owned()
                ]));
            }
        };
        if !self.options.sessions.iter().any(|s| s == session) {
            return fail(&WahaError::session_not_found(session));
        }
        match self.journal.next_script() {
            Some(Scripted::Fail(e)) => return fail(&e),
            Some(Scripted::Hang) => {
                if self.options.print {
                    println!("fake-waha | {path} accepted and left hanging (hang_next)");
                }
                std::future::pending::<()>().await;
            }
            None => {}
        }
        let parsed = match parse(route, body) {
            Ok(p) => p,
            Err(e) => return fail(&e),
        };
        match route {
            Route::Reaction => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::OK;
                return (r, "reaction".to_owned());
            }
            Route::Seen => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::CREATED;
                return (r, "seen".to_owned());
            }
            Route::StartTyping | Route::StopTyping => {
                return (
                    json_response(StatusCode::CREATED, &json!({"result": true}), &[]),
                    "typing".to_owned(),
                );
            }
            _ => {}
        }
        let mut plan = self.options.statuses.clone();
        if ends_with(&parsed.chat_id, "0404") {
            return fail(&WahaError::internal(
                "Evaluation failed: Error: No LID for user",
            ));
        }
        if ends_with(&parsed.chat_id, "0500") {
            return fail(&WahaError::internal(
                "Evaluation failed: TypeError: Cannot read properties of undefined (reading 'serialize')",
            ));
        }
        if ends_with(&parsed.chat_id, "0503") {
            return fail(&WahaError::session_not_working(session, "STARTING"));
        }
        if ends_with(&parsed.chat_id, "0131") {
            plan = StatusPlan {
                steps: vec![Status::Failed(0)],
                delay: plan.delay,
            };
        }
        let message = self.accept(session, parsed);
        let answer = self.message_object(&message);
        let short = message
            .id
            .rsplit('_')
            .find(|p| p.starts_with("3EB0"))
            .unwrap_or_default()
            .to_owned();
        let what = format!("{} {short}", message.kind);
        self.plan_webhooks(message, plan);
        (json_response(StatusCode::CREATED, &answer, &[]), what)
    }

    async fn file(&self, name: &str, request: &RecordedRequest) -> (Response, String) {
        let found = lock(&self.files).get(name).cloned();
        let Some((mimetype, bytes)) = found else {
            let body = json!({"error": {"code": 404, "key": "FILE_NOT_FOUND",
                "message": "File not found", "details": "File not found or no longer available"}});
            return (
                json_response(StatusCode::NOT_FOUND, &body, &[]),
                "file not found".to_owned(),
            );
        };
        let fault = match self.journal.next_download() {
            Some(DownloadScript::Fail(e)) => {
                return (e.response(request), format!("file error {}", e.status));
            }
            Some(DownloadScript::Fault(DownloadFault::Hang)) => {
                if self.options.print {
                    println!("fake-waha | file download left hanging (hang_next_download)");
                }
                std::future::pending::<()>().await;
                None
            }
            Some(DownloadScript::Fault(fault)) => Some(fault),
            None => None,
        };
        let what = format!("file ({} bytes)", bytes.len());
        (
            file_response(&bytes, &mimetype, fault, self.journal.stopped.subscribe()),
            what,
        )
    }

    fn accept(&self, session: &str, parsed: Parsed) -> WahaMessage {
        let key = format!("3EB0{}", random_hex(16));
        let id = if parsed.chat_id.ends_with("@g.us") {
            format!("true_{}_{key}_{}", parsed.chat_id, self.me())
        } else {
            format!("true_{}_{key}", parsed.chat_id)
        };
        let media = parsed.media.map(|m| {
            let url = match m.source {
                MediaSource::Url(url) => url,
                MediaSource::Data(bytes) => {
                    let name = format!("{session}/{id}.{}", extension(&m.mimetype));
                    lock(&self.files)
                        .insert(name.clone(), (m.mimetype.clone(), Bytes::from(bytes)));
                    format!("{}/api/files/{name}", lock(&self.base))
                }
            };
            json!({"url": url, "mimetype": m.mimetype, "filename": m.filename, "error": null})
        });
        let message = WahaMessage {
            id,
            session: session.to_owned(),
            chat_id: parsed.chat_id,
            kind: parsed.kind.to_owned(),
            body: parsed.body,
            media,
            location: parsed.location,
            vcards: parsed.vcards,
            reply_to: parsed.reply_to,
            timestamp: Utc::now().timestamp(),
        };
        lock(&self.sent).insert(message.id.clone(), message.clone());
        message
    }

    /// The WEBJS answer: whatsapp-web.js's `Message` as JSON.
    fn message_object(&self, m: &WahaMessage) -> Value {
        let key =
            m.id.trim_start_matches("true_")
                .trim_start_matches(&format!("{}_", m.chat_id))
                .split('_')
                .next()
                .unwrap_or_default()
                .to_owned();
        let id = json!({"fromMe": true, "remote": m.chat_id, "id": key, "_serialized": m.id});
        let mut data = json!({
            "id": id,
            "viewed": false,
            "body": m.body,
            "type": m.kind,
            "t": m.timestamp,
            "from": wid(&self.me()),
            "to": wid(&m.chat_id),
            "ack": 0,
            "isNewMsg": true,
            "star": false,
            "isForwarded": false,
            "mentionedJidList": [],
            "groupMentions": [],
            "links": [],
        });
        if let Some(media) = &m.media {
            data["mimetype"] = media["mimetype"].clone();
            if !m.body.is_empty() {
                data["caption"] = json!(m.body);
            }
        }
        let mut object = json!({
            "_data": data,
            "id": id,
            "ack": 0,
            "hasMedia": m.media.is_some(),
            "body": m.body,
            "type": m.kind,
            "timestamp": m.timestamp,
            "from": self.me(),
            "to": m.chat_id,
            "deviceType": "web",
            "isForwarded": false,
            "forwardingScore": 0,
            "isStatus": false,
            "isStarred": false,
            "fromMe": true,
            "hasQuotedMsg": m.reply_to.is_some(),
            "hasReaction": false,
            "vCards": m.vcards,
            "mentionedIds": [],
            "groupMentions": [],
            "isGif": false,
            "links": [],
        });
        if let Some(location) = &m.location {
            object["location"] = location.clone();
        }
        object
    }

    fn plan_webhooks(self: &Arc<Self>, message: WahaMessage, plan: StatusPlan) {
        if self.options.webhook_url.is_none()
            || (plan.steps.is_empty() && !self.options.echo_message_any)
        {
            return;
        }
        let inner = Arc::clone(self);
        self.journal.spawn(async move {
            if inner.options.echo_message_any {
                inner.post_message_any(&message).await;
            }
            for step in plan.steps {
                tokio::time::sleep(plan.delay).await;
                inner.post_ack(&message, step).await;
            }
        });
    }

    fn envelope(&self, session: &str, event: &str, payload: &Value) -> Value {
        json!({
            "id": format!("evt_{}", ulid::Ulid::new().to_string().to_lowercase()),
            "timestamp": Utc::now().timestamp_millis(),
            "event": event,
            "session": session,
            "metadata": {},
            "me": {"id": self.me(), "pushName": self.options.push_name},
            "payload": payload,
            "engine": "WEBJS",
            "environment": version(),
        })
    }

    async fn post_message_any(&self, m: &WahaMessage) -> WebhookRecord {
        let reply_to = m
            .reply_to
            .as_ref()
            .map(|id| json!({"id": id, "participant": null, "body": null}));
        let payload = json!({
            "id": m.id,
            "timestamp": m.timestamp,
            "from": self.me(),
            "fromMe": true,
            "source": "api",
            "to": m.chat_id,
            "participant": null,
            "body": m.body,
            "hasMedia": m.media.is_some(),
            "media": m.media,
            "ack": 1,
            "ackName": "SERVER",
            "location": m.location,
            "vCards": m.vcards,
            "replyTo": reply_to,
            "_data": self.message_object(m)["_data"],
        });
        let body = self.envelope(&m.session, "message.any", &payload);
        self.post(&m.id, "message.any".to_owned(), &body).await
    }

    async fn post_ack(&self, m: &WahaMessage, status: Status) -> WebhookRecord {
        let (ack, name) = status.waha_ack();
        let payload = json!({
            "id": m.id,
            "from": m.chat_id,
            "to": self.me(),
            "participant": null,
            "fromMe": true,
            "ack": ack,
            "ackName": name,
            "_data": {},
        });
        let body = self.envelope(&m.session, "message.ack", &payload);
        self.post(&m.id, format!("message.ack {ack}"), &body).await
    }

    async fn post(&self, message_id: &str, label: String, body: &Value) -> WebhookRecord {
        let bytes = body.to_string().into_bytes();
        let mut headers = vec![
            ("x-webhook-request-id", ulid::Ulid::new().to_string()),
            (
                "x-webhook-timestamp",
                Utc::now().timestamp_millis().to_string(),
            ),
        ];
        if let Some(key) = &self.options.hmac_key {
            headers.push(("x-webhook-hmac", sign_waha(key, &bytes)));
            headers.push(("x-webhook-hmac-algorithm", "sha512".to_owned()));
        }
        let record = self
            .poster
            .post(label, message_id.to_owned(), bytes, headers)
            .await;
        lock(&self.journal.webhooks).push(record.clone());
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids_take_wahas_forms() {
        assert_eq!(chat_id("15550001111").as_deref(), Some("15550001111@c.us"));
        assert_eq!(
            chat_id("15550001111@c.us").as_deref(),
            Some("15550001111@c.us")
        );
        assert_eq!(chat_id("123456789@lid").as_deref(), Some("123456789@lid"));
        assert_eq!(
            chat_id("120363-1616@g.us").as_deref(),
            Some("120363-1616@g.us")
        );
        assert_eq!(chat_id("120363404@g.us").as_deref(), Some("120363404@g.us"));
        assert!(chat_id("+1555@c.us").is_none());
        assert!(chat_id("abc@s.whatsapp.net").is_none());
        assert!(chat_id("").is_none());
    }

    #[test]
    fn missing_fields_are_listed_like_class_validator_does() {
        let body = json!({"session": "default"});
        let Value::Object(body) = body else { panic!() };
        let e = parse(Route::Text, &body).err().unwrap();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.body["message"],
            json!(["chatId should not be empty", "text should not be empty"])
        );
        let body = json!({"chatId": "1@c.us", "file": {"mimetype": "image/jpeg", "url": "https://x.example/a", "data": "AA=="}});
        let Value::Object(body) = body else { panic!() };
        let e = parse(Route::Image, &body).err().unwrap();
        assert_eq!(
            e.body["message"],
            json!(["file.url or data must be set, not both"])
        );
    }
}
