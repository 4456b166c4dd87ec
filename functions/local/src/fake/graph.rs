//! The fake Graph API: `POST /{version}/{phone_number_id}/messages` as Meta's Cloud API
//! documents it, then `whatsapp_business_account` status webhooks signed with the app secret.
//!
//! Owns: the Graph fake's routes, answers, scripted failures and status webhooks. Must not:
//! print bodies, numbers or the token (lines name the path, the type and the wamid).
//!
//! Answers:
//! - `Authorization: Bearer <token>` (or `?access_token=`): missing or wrong → 401, code 190,
//!   `OAuthException`, with `WWW-Authenticate`.
//! - Another phone number id → 400, code 100, subcode 33, `GraphMethodException` ("Unsupported
//!   post request. Object with ID … does not exist").
//! - Another path → 400, code 2500 ("Unknown path components").
//! - A body that breaks the documented rules → 400 (132001 unknown template: 404) with
//!   `{"error":{"message","type":"OAuthException","code","error_data":{"messaging_product",
//!   "details"},"fbtrace_id"}}` (see `graph_validate`).
//! - A send → 200 `{"messaging_product":"whatsapp","contacts":[{"input","wa_id"|"user_id"}],
//!   "messages":[{"id":"wamid.…","message_status":"accepted"}]}`; mark-as-read (with or without
//!   `typing_indicator`) → 200 `{"success":true}`.
//!
//! Status webhooks follow the [`StatusPlan`]: `statuses[]` items with `id`, `status`,
//! `timestamp`, `recipient_id` (phone sends) or `recipient_user_id` (BSUID sends),
//! `biz_opaque_callback_data` when the send had it, `conversation` and `pricing` on `sent` and
//! `delivered` (CBP; PMP: `pricing` only), `errors` on `failed`. No profile name is invented:
//! `contacts` appears only for BSUID sends, with the `user_id`. Bodies are written as Meta
//! writes them (non-ASCII as `\uXXXX`, `/` as `\/`) and signed over those bytes.
//!
//! Media, as Meta's two-step download works: `GET /{version}/{media-id}` (optional
//! `phone_number_id`, which must be the business number's) answers `{"messaging_product",
//! "url","mime_type","sha256" (lowercase hex),"file_size" (a string),"id"}`, or 400 code 100/33
//! for an unknown id. The `url` points back here, shaped like Meta's
//! (`/whatsapp_business/attachments/?mid={id}&ext={expiry, Unix seconds}&hash={HMAC of mid and
//! ext with a key of this server}`), and `GET` of it with the same token serves the bytes with
//! `Content-Type` and `Content-Length`, in several chunks; 404 (plain text) once `ext` has
//! passed ([`FakeGraphOptions::media_url_ttl`]) or when the hash does not match.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use shared::model::Provider;
use shared::ports::Source;
use shared::signature::{Secret, sign_meta};

use super::graph_validate::{Checked, Outbound, check};
use super::{
    DEMO_ACCESS_TOKEN, DownloadFault, DownloadScript, Journal, Poster, RecordedRequest,
    SAMPLE_IMAGE_MIME_TYPE, Scripted, Server, Status, StatusPlan, WebhookRecord, WebhookRetry,
    ends_with, file_response, json_response, lock, meta_json, plain, random_hex, read_request,
    same_secret, sample_image_png,
};

/// The media id of [`super::sample_image_png`], which every fake Graph API serves from the
/// start (a sample inbound image webhook can name it).
pub const SAMPLE_IMAGE_MEDIA_ID: &str = "1480251913277614";

/// Largest request body read (Graph bodies are small; media goes by id or link).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Where Meta documents its error codes (the `href` of webhook errors).
const ERROR_CODES_URL: &str =
    "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/";

/// How status webhooks bill messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PricingModel {
    /// Conversation-based: `conversation` {id, origin, expiration on `sent`} and `pricing`
    /// {billable, pricing_model "CBP", category} (the shape of the repository's fixtures).
    #[default]
    Cbp,
    /// Per-message (Meta's model since July 2025): `pricing` {billable, pricing_model "PMP",
    /// category, type} and no `conversation`.
    Pmp,
}

/// An error answer as Graph sends it: HTTP status, code, type, message and details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// The HTTP status (Meta's documented one for the code).
    pub http_status: u16,
    /// `error.code`.
    pub code: u32,
    /// `error.type`: `OAuthException` (`GraphMethodException` for unknown objects).
    pub error_type: String,
    /// The code's title ("Re-engagement message"), also used in webhook errors.
    pub title: String,
    /// `error.message`, e.g. `(#131047) Re-engagement message`.
    pub message: String,
    /// `error.error_data.details` (empty: no `error_data`).
    pub details: String,
    /// `error.error_subcode`, when Graph sends one.
    pub error_subcode: Option<u32>,
}

impl GraphError {
    /// An error with Meta's documented title, details and HTTP status for `code` (131047,
    /// 130429, 131026, 131000, 2, 131048, 131049, 131051, 131056, 131062, 132001, 100,
    /// 131008, 131009, 190, 368, 131031; others get a generic text and 400).
    pub fn from_code(code: u32) -> Self {
        let (http_status, title, details) = match code {
            2 => (
                503,
                "Service temporarily unavailable",
                "Temporary due to downtime or due to being overloaded.",
            ),
            100 => (
                400,
                "Invalid parameter",
                "The request included one or more unsupported or misspelled parameters.",
            ),
            190 => (
                401,
                "Access token has expired",
                "Your access token has expired.",
            ),
            368 => (
                403,
                "Temporarily blocked for policies violations",
                "The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy.",
            ),
            130_429 => (
                400,
                "Rate limit hit",
                "Cloud API message throughput has been reached.",
            ),
            131_000 => (
                500,
                "Something went wrong",
                "Message failed to send due to an unknown error.",
            ),
            131_008 => (
                400,
                "Required parameter is missing",
                "The request is missing a required parameter.",
            ),
            131_009 => (
                400,
                "Parameter value is not valid",
                "One or more parameter values are invalid.",
            ),
            131_026 => (400, "Message undeliverable", "Message Undeliverable."),
            131_031 => (
                403,
                "Business Account locked",
                "The WhatsApp Business Account associated with the app has been restricted or disabled.",
            ),
            131_047 => (
                400,
                "Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            ),
            131_048 => (
                400,
                "Spam rate limit hit",
                "Message failed to send because there are restrictions on how many messages can be sent from this phone number.",
            ),
            131_049 => (
                400,
                "Meta chose not to deliver",
                "This message was not delivered to maintain healthy ecosystem engagement.",
            ),
            131_051 => (
                400,
                "Unsupported message type",
                "Message type is not currently supported.",
            ),
            131_056 => (
                400,
                "Pair rate limit hit",
                "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
            ),
            131_062 => (
                400,
                "Business-scoped user ID recipients not supported",
                "Business-scoped User ID (BSUID) recipients are not supported for this message.",
            ),
            132_001 => (
                404,
                "Template name does not exist in the translation",
                "The template does not exist in the specified language or the template has not been approved.",
            ),
            _ => (400, "Unknown error", "Unknown error."),
        };
        Self {
            http_status,
            code,
            error_type: "OAuthException".to_owned(),
            title: title.to_owned(),
            message: format!("(#{code}) {title}"),
            details: details.to_owned(),
            error_subcode: None,
        }
    }

    /// 131047: more than 24 hours since the customer last wrote.
    pub fn re_engagement() -> Self {
        Self::from_code(131_047)
    }

    /// 130429: the number's throughput is exhausted.
    pub fn rate_limit() -> Self {
        Self::from_code(130_429)
    }

    /// 131026: the message cannot be delivered.
    pub fn undeliverable() -> Self {
        Self::from_code(131_026)
    }

    /// 131000 (HTTP 500): something went wrong on Meta's side.
    pub fn internal() -> Self {
        Self::from_code(131_000)
    }

    /// Code 2 (HTTP 503): the service is down or overloaded.
    pub fn service_unavailable() -> Self {
        Self::from_code(2)
    }

    /// 401, code 190: the token is wrong (`missing`: there is none).
    pub fn invalid_token(missing: bool) -> Self {
        Self {
            http_status: 401,
            code: 190,
            error_type: "OAuthException".to_owned(),
            title: "Access token has expired".to_owned(),
            message: if missing {
                "An access token is required to request this resource.".to_owned()
            } else {
                "Invalid OAuth access token - Cannot parse access token".to_owned()
            },
            details: String::new(),
            error_subcode: None,
        }
    }

    /// 400, code 100/33: the phone number id is not one this token can use.
    pub fn unknown_object(id: &str) -> Self {
        Self {
            http_status: 400,
            code: 100,
            error_type: "GraphMethodException".to_owned(),
            title: "Invalid parameter".to_owned(),
            message: format!(
                "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            ),
            details: String::new(),
            error_subcode: Some(33),
        }
    }

    /// 400, code 100/33: no media `id` (the media lookup's form of [`Self::unknown_object`]).
    pub fn unknown_media(id: &str) -> Self {
        let mut e = Self::unknown_object(id);
        e.message = e
            .message
            .replace("Unsupported post request", "Unsupported get request");
        e
    }

    /// 400, code 2500: a path Graph does not have.
    pub fn unknown_path(path: &str) -> Self {
        Self {
            http_status: 400,
            code: 2500,
            error_type: "OAuthException".to_owned(),
            title: "Unknown path components".to_owned(),
            message: format!("Unknown path components: {path}"),
            details: String::new(),
            error_subcode: None,
        }
    }

    /// 100: `param` is missing.
    pub fn required(param: &str) -> Self {
        let mut e = Self::from_code(100);
        e.message = format!("(#100) The parameter {param} is required.");
        e.details = format!("The parameter {param} is required.");
        e
    }

    /// 100: `param` is longer than `max` characters.
    pub fn too_long(param: &str, max: usize) -> Self {
        let mut e = Self::from_code(100);
        e.message = format!("(#100) Param {param} must be at most {max} characters long.");
        e.details = format!("Param {param} must be at most {max} characters long.");
        e
    }

    /// 100 "Invalid parameter" with `details`.
    pub fn invalid_parameter(details: String) -> Self {
        let mut e = Self::from_code(100);
        e.details = details;
        e
    }

    /// 131009 "Parameter value is not valid" with `details`.
    pub fn invalid_value(details: String) -> Self {
        let mut e = Self::from_code(131_009);
        e.details = details;
        e
    }

    /// 132001 (404): no template `name` in `language`.
    pub fn template_not_found(name: &str, language: &str) -> Self {
        let mut e = Self::from_code(132_001);
        e.details = format!("template name ({name}) does not exist in {language}");
        e
    }

    /// The response body.
    pub fn body(&self, fbtrace_id: &str) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
        });
        if !self.details.is_empty() {
            error["error_data"] = json!({"messaging_product": "whatsapp", "details": self.details});
        }
        if let Some(sub) = self.error_subcode {
            error["error_subcode"] = json!(sub);
        }
        error["fbtrace_id"] = json!(fbtrace_id);
        json!({ "error": error })
    }

    /// The item of a `failed` status's `errors`.
    pub fn webhook_error(&self) -> Value {
        json!({
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": {"details": self.details},
            "href": ERROR_CODES_URL,
        })
    }

    fn response(&self, fbtrace_id: &str) -> Response {
        let status = StatusCode::from_u16(self.http_status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut headers = vec![("x-fb-trace-id", fbtrace_id.to_owned())];
        if self.http_status == 401 {
            headers.push((
                "www-authenticate",
                format!(
                    "OAuth \"Facebook Platform\" \"invalid_token\" \"{}\"",
                    self.message
                ),
            ));
        }
        json_response(status, &self.body(fbtrace_id), &headers)
    }
}

/// How to run a fake Graph API.
#[derive(Debug, Clone)]
pub struct FakeGraphOptions {
    /// Where to listen (port 0: any free port).
    pub bind: SocketAddr,
    /// The token `Authorization: Bearer` must carry.
    pub access_token: Secret,
    /// The app secret status webhooks are signed with (`X-Hub-Signature-256`).
    pub app_secret: Secret,
    /// Where status webhooks go (`None`: none are posted).
    pub webhook_url: Option<String>,
    /// The business number's id: the only `/{phone_number_id}/messages` that exists.
    pub phone_number_id: String,
    /// `metadata.display_phone_number` of webhooks.
    pub display_phone_number: String,
    /// `entry[].id` of webhooks.
    pub waba_id: String,
    /// Which statuses follow an accepted message.
    pub statuses: StatusPlan,
    /// How webhook POSTs are retried.
    pub retry: WebhookRetry,
    /// How statuses bill messages.
    pub pricing: PricingModel,
    /// Templates that exist, as `name` or `name:language` (empty: every template exists).
    pub templates: Vec<String>,
    /// How long a media lookup's `url` works (Meta: about 5 minutes; zero: it has expired when
    /// it is answered).
    pub media_url_ttl: Duration,
    /// Media lookups give `file_size` as a JSON number instead of a string (as Meta documents
    /// it); some clients only read one of the two.
    pub media_file_size_as_number: bool,
    /// Print a line per request and webhook (the `fake-provider` command).
    pub print: bool,
}

impl Default for FakeGraphOptions {
    /// The bundled sample's values: any free port on 127.0.0.1, [`DEMO_ACCESS_TOKEN`], the
    /// `meta-demo` app secret, the sample business number, no webhooks, media URLs that work
    /// for 5 minutes.
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            access_token: Secret::from(DEMO_ACCESS_TOKEN),
            app_secret: Secret::from("demo-meta-app-secret"),
            webhook_url: None,
            phone_number_id: crate::sample::PHONE_NUMBER_ID.to_owned(),
            display_phone_number: crate::sample::BUSINESS_NUMBER.to_owned(),
            waba_id: crate::sample::WABA_ID.to_owned(),
            statuses: StatusPlan::default(),
            retry: WebhookRetry::default(),
            pricing: PricingModel::default(),
            templates: Vec::new(),
            media_url_ttl: Duration::from_secs(300),
            media_file_size_as_number: false,
            print: false,
        }
    }
}

impl FakeGraphOptions {
    /// The defaults, listening on `bind` and posting statuses to `{gateway}/webhooks/{source}`
    /// signed with `source`'s first app secret: what local mode starts next to the gateway.
    pub fn for_source(source: &Source, bind: SocketAddr, gateway: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            source.provider == Provider::Meta,
            "source `{}` is not a Meta source",
            source.id.as_str()
        );
        Ok(Self {
            bind,
            app_secret: source.secrets.first().cloned().ok_or_else(|| {
                anyhow::anyhow!("source `{}` has no app secret", source.id.as_str())
            })?,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Its wamid.
    pub id: String,
    /// `type` of the send.
    pub kind: String,
    /// The recipient's phone number (digits), for phone sends.
    pub wa_id: Option<String>,
    /// The recipient's BSUID, for BSUID sends.
    pub user_id: Option<String>,
    /// `biz_opaque_callback_data` of the send.
    pub biz_opaque_callback_data: Option<String>,
    /// The billing conversation id its statuses carry.
    pub conversation_id: String,
    /// When that conversation expires.
    pub conversation_expires: DateTime<Utc>,
}

/// What a media lookup says about a file where it should not match the bytes served (tests of
/// a downloader's checks); `None` says the truth.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnouncedMedia {
    /// `mime_type` of the lookup (the file is still served with its own `Content-Type`).
    pub mime_type: Option<String>,
    /// `sha256` of the lookup, as given.
    pub sha256: Option<String>,
    /// `file_size` of the lookup.
    pub file_size: Option<u64>,
}

/// A media file the fake serves.
#[derive(Debug, Clone)]
struct MediaFile {
    bytes: Bytes,
    /// `Content-Type` of the download.
    mime_type: String,
    /// What the lookup says.
    announced_mime_type: String,
    sha256: String,
    file_size: u64,
}

#[derive(Debug)]
struct Inner {
    options: FakeGraphOptions,
    journal: Journal<GraphError>,
    sent: Mutex<HashMap<String, SentMessage>>,
    /// Billing conversation per recipient: id and expiry.
    conversations: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
    poster: Poster,
    /// Media files by id.
    media: Mutex<HashMap<String, MediaFile>>,
    /// The key media URLs' `hash` is made with.
    url_key: Vec<u8>,
    /// Base URL of this server (for media URLs).
    base: Mutex<String>,
}

/// A running fake Graph API. Stops when dropped or on [`FakeGraph::stop`].
#[derive(Debug)]
pub struct FakeGraph {
    inner: Arc<Inner>,
    server: Server,
}

impl FakeGraph {
    /// Starts the fake on `options.bind`.
    pub async fn start(options: FakeGraphOptions) -> anyhow::Result<Self> {
        let poster = Poster::new(
            options.webhook_url.clone(),
            options.retry,
            options.print.then_some("fake-graph"),
        );
        let bind = options.bind;
        let inner = Arc::new(Inner {
            options,
            journal: Journal::default(),
            sent: Mutex::new(HashMap::new()),
            conversations: Mutex::new(HashMap::new()),
            poster,
            media: Mutex::new(HashMap::new()),
            url_key: [ulid::Ulid::new().random(), ulid::Ulid::new().random()]
                .iter()
                .flat_map(|r| r.to_be_bytes())
                .collect(),
            base: Mutex::new(String::new()),
        });
        inner.register(
            SAMPLE_IMAGE_MEDIA_ID.to_owned(),
            sample_image_png(),
            SAMPLE_IMAGE_MIME_TYPE,
            AnnouncedMedia::default(),
        );
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

    /// The base URL, `http://127.0.0.1:{port}` (Graph's `https://graph.facebook.com`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The send endpoint for API `version` (`v23.0`): `{url}/{version}/{phone_number_id}/messages`.
    pub fn messages_url(&self, version: &str) -> String {
        format!(
            "{}/{version}/{}/messages",
            self.url(),
            self.inner.options.phone_number_id
        )
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
    pub fn sent(&self) -> Vec<SentMessage> {
        lock(&self.inner.sent).values().cloned().collect()
    }

    /// Every status webhook posted so far, in the order their POSTs ended.
    pub fn webhooks(&self) -> Vec<WebhookRecord> {
        self.inner.journal.webhooks()
    }

    /// Answers the next `n` authorized send (or mark-as-read) requests with `error`.
    pub fn fail_next(&self, n: usize, error: GraphError) {
        self.inner.journal.push_script(n, &Scripted::Fail(error));
    }

    /// Accepts the next `n` authorized send requests and never answers them (until the fake
    /// stops: then they end with 503 and `Connection: close`).
    pub fn hang_next(&self, n: usize) {
        self.inner.journal.push_script(n, &Scripted::Hang);
    }

    /// The media lookup endpoint of `media_id` for API `version`: `{url}/{version}/{media_id}`.
    pub fn media_lookup_url(&self, version: &str, media_id: &str) -> String {
        format!("{}/{version}/{media_id}", self.url())
    }

    /// Registers a media file (as if a customer had sent it) and returns its new numeric id.
    pub fn add_media(&self, bytes: Vec<u8>, mime_type: &str) -> String {
        self.add_media_announced(bytes, mime_type, AnnouncedMedia::default())
    }

    /// Registers a media file whose lookup announces `announced` where it is set (a wrong
    /// hash, size or type) while the download serves `bytes` as `mime_type`; returns its id.
    pub fn add_media_announced(
        &self,
        bytes: Vec<u8>,
        mime_type: &str,
        announced: AnnouncedMedia,
    ) -> String {
        let id = loop {
            // Meta's media ids are 15–16 digit numbers.
            let n = 1_000_000_000_000_000 + ulid::Ulid::new().random() % 9_000_000_000_000_000;
            let id = n.to_string();
            if !lock(&self.inner.media).contains_key(&id) {
                break id;
            }
        };
        self.inner.register(id.clone(), bytes, mime_type, announced);
        id
    }

    /// Answers the next `n` authorized lookups of a known media id with `error`.
    pub fn fail_next_lookup(&self, n: usize, error: GraphError) {
        self.inner.journal.push_lookup(n, &Scripted::Fail(error));
    }

    /// Accepts the next `n` authorized lookups of a known media id and never answers them
    /// (until the fake stops: then 503).
    pub fn hang_next_lookup(&self, n: usize) {
        self.inner.journal.push_lookup(n, &Scripted::Hang);
    }

    /// Answers the next `n` authorized downloads of a valid media URL with `error` (e.g.
    /// [`GraphError::internal`]: 500).
    pub fn fail_next_download(&self, n: usize, error: GraphError) {
        self.inner
            .journal
            .push_download(n, &DownloadScript::Fail(error));
    }

    /// Accepts the next `n` authorized downloads of a valid media URL and never answers them.
    pub fn hang_next_download(&self, n: usize) {
        self.fault_next_download(n, DownloadFault::Hang);
    }

    /// Makes the next `n` authorized downloads of a valid media URL go wrong as `fault` says.
    pub fn fault_next_download(&self, n: usize, fault: DownloadFault) {
        self.inner
            .journal
            .push_download(n, &DownloadScript::Fault(fault));
    }

    /// Posts a status webhook for accepted message `message_id` now (retrying as configured)
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
        Ok(self.inner.post_status(&message, status).await)
    }

    /// Stops: open requests (hung ones too) end, status webhooks not yet posted are dropped.
    pub async fn stop(&self) {
        self.inner.journal.abort_tasks();
        self.server.stop().await;
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.inner.journal.abort_tasks();
    }
}

fn fbtrace_id() -> String {
    let mut bytes = Vec::with_capacity(20);
    for _ in 0..2 {
        bytes.extend_from_slice(&ulid::Ulid::new().random().to_be_bytes()[6..]);
    }
    bytes.truncate(17);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A wamid shaped like Meta's: base64 of a small protobuf-like record holding the recipient and
/// an 18-digit hex message id.
fn wamid(recipient: &str) -> String {
    let recipient = recipient.as_bytes();
    let mut raw = vec![0x1c, 0x18, u8::try_from(recipient.len()).unwrap_or(u8::MAX)];
    raw.extend_from_slice(recipient);
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x11, 0x18, 0x12]);
    raw.extend_from_slice(random_hex(18).as_bytes());
    raw.push(0x00);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn bearer(request: &RecordedRequest) -> Option<String> {
    if let Some(value) = request.header("authorization") {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    let query = request.path.split_once('?')?.1;
    form_query(query, "access_token")
}

fn form_query(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn is_version(segment: &str) -> bool {
    segment.strip_prefix('v').is_some_and(|v| {
        let mut parts = v.split('.');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        parts.next().is_none()
            && !major.is_empty()
            && !minor.is_empty()
            && major
                .chars()
                .chain(minor.chars())
                .all(|c| c.is_ascii_digit())
    })
}

impl Inner {
    async fn handle(self: &Arc<Self>, request: Request) -> Response {
        let recorded = match read_request(request, BODY_LIMIT).await {
            Ok(r) => r,
            Err(response) => return response,
        };
        self.journal.record(recorded.clone());
        let trace = fbtrace_id();
        let path = recorded
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (response, what) = self.answer(&recorded, &path, &trace).await;
        if self.options.print {
            println!(
                "fake-graph | {} {path} -> {} {what}",
                recorded.method,
                response.status().as_u16()
            );
        }
        response
    }

    async fn answer(
        self: &Arc<Self>,
        request: &RecordedRequest,
        path: &str,
        trace: &str,
    ) -> (Response, String) {
        let fail = |e: GraphError| {
            let what = format!("error {}", e.code);
            (e.response(trace), what)
        };
        match bearer(request) {
            None => return fail(GraphError::invalid_token(true)),
            Some(token) if !same_secret(token.as_bytes(), self.options.access_token.expose()) => {
                return fail(GraphError::invalid_token(false));
            }
            Some(_) => {}
        }
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            ["whatsapp_business", "attachments"] if request.method == "GET" => {
                return self.attachment(request, trace).await;
            }
            [version, id] if request.method == "GET" && is_version(version) => {
                return self.lookup(request, id, trace).await;
            }
            _ => {}
        }
        let [version, id, "messages"] = segments.as_slice() else {
            return fail(GraphError::unknown_path(path));
        };
        if !is_version(version) || request.method != "POST" {
            return fail(GraphError::unknown_path(path));
        }
        if *id != self.options.phone_number_id {
            return fail(GraphError::unknown_object(id));
        }
        match self.journal.next_script() {
            Some(Scripted::Fail(e)) => return fail(e),
            Some(Scripted::Hang) => {
                if self.options.print {
                    println!("fake-graph | POST {path} accepted and left hanging (hang_next)");
                }
                std::future::pending::<()>().await;
            }
            None => {}
        }
        let out = match check(request.json.as_ref(), &self.options.templates) {
            Err(e) => return fail(e),
            Ok(Checked::MarkRead) => {
                return (
                    json_response(
                        StatusCode::OK,
                        &json!({"success": true}),
                        &[("x-fb-trace-id", trace.to_owned())],
                    ),
                    "mark as read".to_owned(),
                );
            }
            Ok(Checked::Send(out)) => out,
        };
        let mut plan = self.options.statuses.clone();
        if let Some(number) = &out.wa_id {
            for (digits, code) in [
                ("0047", 131_047),
                ("0429", 130_429),
                ("0500", 131_000),
                ("0503", 2),
            ] {
                if ends_with(number, digits) {
                    return fail(GraphError::from_code(code));
                }
            }
            for (digits, code) in [("0131", 131_026), ("1047", 131_047)] {
                if ends_with(number, digits) {
                    plan = StatusPlan {
                        steps: vec![Status::Failed(code)],
                        delay: plan.delay,
                    };
                }
            }
        }
        let message = self.accept(&out);
        let mut contact = json!({"input": out.input});
        if let Some(wa_id) = &out.wa_id {
            contact["wa_id"] = json!(wa_id);
        }
        if let Some(user_id) = &out.user_id {
            contact["user_id"] = json!(user_id);
        }
        let body = json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": message.id, "message_status": "accepted"}],
        });
        let what = format!("{} {}", out.kind, message.id);
        self.plan_statuses(message, plan);
        (
            json_response(
                StatusCode::OK,
                &body,
                &[("x-fb-trace-id", trace.to_owned())],
            ),
            what,
        )
    }

    fn register(&self, id: String, bytes: Vec<u8>, mime_type: &str, announced: AnnouncedMedia) {
        let file = MediaFile {
            announced_mime_type: announced.mime_type.unwrap_or_else(|| mime_type.to_owned()),
            sha256: announced
                .sha256
                .unwrap_or_else(|| hex::encode(Sha256::digest(&bytes))),
            file_size: announced.file_size.unwrap_or(bytes.len() as u64),
            mime_type: mime_type.to_owned(),
            bytes: Bytes::from(bytes),
        };
        lock(&self.media).insert(id, file);
    }

    /// The `hash` of a media URL for media `mid` expiring at `ext`.
    fn url_hash(&self, mid: &str, ext: &str) -> Option<String> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.url_key).ok()?;
        mac.update(mid.as_bytes());
        mac.update(b"\n");
        mac.update(ext.as_bytes());
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// `GET /{version}/{media-id}`: the file's details and a short-lived URL.
    async fn lookup(&self, request: &RecordedRequest, id: &str, trace: &str) -> (Response, String) {
        let fail = |e: GraphError| {
            let what = format!("error {}", e.code);
            (e.response(trace), what)
        };
        let query = request.path.split_once('?').map_or("", |(_, q)| q);
        if let Some(number) = form_query(query, "phone_number_id")
            && number != self.options.phone_number_id
        {
            return fail(GraphError::invalid_parameter(format!(
                "Media {id} does not belong to phone number {number}."
            )));
        }
        let Some(file) = lock(&self.media).get(id).cloned() else {
            return fail(GraphError::unknown_media(id));
        };
        match self.journal.next_lookup() {
            Some(Scripted::Fail(e)) => return fail(e),
            Some(Scripted::Hang) => {
                if self.options.print {
                    println!("fake-graph | media lookup {id} left hanging (hang_next_lookup)");
                }
                std::future::pending::<()>().await;
            }
            None => {}
        }
        let ttl = i64::try_from(self.options.media_url_ttl.as_secs()).unwrap_or(i64::MAX);
        let ext = Utc::now().timestamp().saturating_add(ttl).to_string();
        let hash = self.url_hash(id, &ext).unwrap_or_default();
        let url = format!(
            "{}/whatsapp_business/attachments/?mid={id}&ext={ext}&hash={hash}",
            lock(&self.base)
        );
        let file_size = if self.options.media_file_size_as_number {
            json!(file.file_size)
        } else {
            json!(file.file_size.to_string())
        };
        let body = json!({
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": file.announced_mime_type,
            "sha256": file.sha256,
            "file_size": file_size,
            "id": id,
        });
        // Graph writes JSON as webhooks are written (`/` as `\/`).
        let mut response = Response::new(Body::from(meta_json(&body)));
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        if let Ok(v) = axum::http::HeaderValue::try_from(trace) {
            headers.insert("x-fb-trace-id", v);
        }
        (response, format!("media {id}"))
    }

    /// `GET /whatsapp_business/attachments/?mid=…&ext=…&hash=…`: the file, while the URL is
    /// valid.
    async fn attachment(&self, request: &RecordedRequest, trace: &str) -> (Response, String) {
        let query = request.path.split_once('?').map_or("", |(_, q)| q);
        let param = |key| form_query(query, key).unwrap_or_default();
        let (mid, ext, hash) = (param("mid"), param("ext"), param("hash"));
        let signed = !hash.is_empty()
            && self
                .url_hash(&mid, &ext)
                .is_some_and(|h| same_secret(h.as_bytes(), hash.as_bytes()));
        if !signed {
            return (
                plain(StatusCode::NOT_FOUND, "URL signature mismatch"),
                "media URL with a wrong hash".to_owned(),
            );
        }
        if ext
            .parse::<i64>()
            .map_or(true, |ext| Utc::now().timestamp() >= ext)
        {
            return (
                plain(StatusCode::NOT_FOUND, "URL signature expired"),
                "expired media URL".to_owned(),
            );
        }
        let Some(file) = lock(&self.media).get(&mid).cloned() else {
            return (
                plain(StatusCode::NOT_FOUND, "Not Found"),
                "media URL of unknown media".to_owned(),
            );
        };
        let fault = match self.journal.next_download() {
            Some(DownloadScript::Fail(e)) => {
                let what = format!("error {}", e.code);
                return (e.response(trace), what);
            }
            Some(DownloadScript::Fault(DownloadFault::Hang)) => {
                if self.options.print {
                    println!("fake-graph | media {mid} download left hanging (hang_next_download)");
                }
                std::future::pending::<()>().await;
                None
            }
            Some(DownloadScript::Fault(fault)) => Some(fault),
            None => None,
        };
        let what = format!("media {mid} file ({} bytes)", file.bytes.len());
        let response = file_response(
            &file.bytes,
            &file.mime_type,
            fault,
            self.journal.stopped.subscribe(),
        );
        (response, what)
    }

    fn accept(&self, out: &Outbound) -> SentMessage {
        let recipient = out
            .wa_id
            .clone()
            .or_else(|| out.user_id.clone())
            .unwrap_or_default();
        let now = Utc::now();
        let (conversation_id, conversation_expires) = {
            let mut conversations = lock(&self.conversations);
            let entry = conversations.entry(recipient.clone()).or_insert_with(|| {
                (
                    random_hex(32).to_lowercase(),
                    now + chrono::Duration::hours(24),
                )
            });
            if entry.1 <= now {
                *entry = (
                    random_hex(32).to_lowercase(),
                    now + chrono::Duration::hours(24),
                );
            }
            entry.clone()
        };
        let message = SentMessage {
            id: wamid(&recipient),
            kind: out.kind.clone(),
            wa_id: out.wa_id.clone(),
            user_id: out.user_id.clone(),
            biz_opaque_callback_data: out.biz_opaque_callback_data.clone(),
            conversation_id,
            conversation_expires,
        };
        lock(&self.sent).insert(message.id.clone(), message.clone());
        message
    }

    fn plan_statuses(self: &Arc<Self>, message: SentMessage, plan: StatusPlan) {
        if plan.steps.is_empty() || self.options.webhook_url.is_none() {
            return;
        }
        let inner = Arc::clone(self);
        self.journal.spawn(async move {
            for step in plan.steps {
                tokio::time::sleep(plan.delay).await;
                inner.post_status(&message, step).await;
            }
        });
    }

    async fn post_status(&self, message: &SentMessage, status: Status) -> WebhookRecord {
        let body = meta_json(&self.status_body(message, status, Utc::now())).into_bytes();
        let signature = sign_meta(&self.options.app_secret, &body);
        let record = self
            .poster
            .post(
                status.meta_name().to_owned(),
                message.id.clone(),
                body,
                vec![
                    ("x-hub-signature-256", signature),
                    ("user-agent", "facebookexternalua".to_owned()),
                ],
            )
            .await;
        lock(&self.journal.webhooks).push(record.clone());
        record
    }

    /// The `whatsapp_business_account` webhook reporting `status` of `message`.
    fn status_body(&self, message: &SentMessage, status: Status, at: DateTime<Utc>) -> Value {
        let template = message.kind == "template";
        let category = if template { "utility" } else { "service" };
        let mut item = json!({
            "id": message.id,
            "status": status.meta_name(),
            "timestamp": at.timestamp().to_string(),
        });
        if let Some(wa_id) = &message.wa_id {
            item["recipient_id"] = json!(wa_id);
        }
        if let Some(user_id) = &message.user_id {
            item["recipient_user_id"] = json!(user_id);
        }
        if let Some(data) = &message.biz_opaque_callback_data {
            item["biz_opaque_callback_data"] = json!(data);
        }
        match status {
            Status::Sent | Status::Delivered => match self.options.pricing {
                PricingModel::Cbp => {
                    let mut conversation = json!({
                        "id": message.conversation_id,
                        "origin": {"type": category},
                    });
                    if status == Status::Sent {
                        conversation["expiration_timestamp"] =
                            json!(message.conversation_expires.timestamp().to_string());
                    }
                    item["conversation"] = conversation;
                    item["pricing"] =
                        json!({"billable": true, "pricing_model": "CBP", "category": category});
                }
                PricingModel::Pmp => {
                    item["pricing"] = json!({
                        "billable": template,
                        "pricing_model": "PMP",
                        "category": category,
                        "type": if template { "regular" } else { "free_customer_service" },
                    });
                }
            },
            Status::Failed(code) => {
                item["errors"] = json!([GraphError::from_code(code).webhook_error()]);
            }
            Status::Read | Status::Played => {}
        }
        let mut value = json!({
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": self.options.display_phone_number,
                "phone_number_id": self.options.phone_number_id,
            },
        });
        if let (Some(user_id), false) = (&message.user_id, matches!(status, Status::Failed(_))) {
            value["contacts"] = json!([{"user_id": user_id}]);
        }
        value["statuses"] = json!([item]);
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": self.options.waba_id,
                "changes": [{"value": value, "field": "messages"}],
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamids_carry_the_recipient_like_metas() {
        let id = wamid("15550001111");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(id.trim_start_matches("wamid."))
            .unwrap();
        assert!(id.starts_with("wamid.HBgLMTU1NTAwMDExMTEV"), "{id}");
        assert_eq!(&raw[3..14], b"15550001111");
        assert_eq!(raw.len(), 3 + 11 + 6 + 18 + 1);
        assert_ne!(wamid("15550001111"), wamid("15550001111"));
    }

    #[test]
    fn graph_errors_have_metas_shape() {
        let body = GraphError::rate_limit().body("Atrace");
        assert_eq!(body["error"]["code"], 130_429);
        assert_eq!(body["error"]["message"], "(#130429) Rate limit hit");
        assert_eq!(body["error"]["type"], "OAuthException");
        assert_eq!(body["error"]["error_data"]["messaging_product"], "whatsapp");
        assert_eq!(body["error"]["fbtrace_id"], "Atrace");
        let token = GraphError::invalid_token(false).body("t");
        assert!(token["error"].get("error_data").is_none());
        assert_eq!(GraphError::internal().http_status, 500);
        assert_eq!(
            GraphError::template_not_found("x", "en_US").http_status,
            404
        );
        assert_eq!(fbtrace_id().len(), 23);
    }

    #[test]
    fn versions_look_like_graphs() {
        assert!(is_version("v23.0"));
        assert!(!is_version("v23"));
        assert!(!is_version("23.0"));
        assert!(!is_version("vx.0"));
    }
}
