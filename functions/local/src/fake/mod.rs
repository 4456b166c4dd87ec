//! Bundled fake WhatsApp providers: real HTTP servers on 127.0.0.1 that answer sends the way
//! Meta's Cloud API ([`graph`]) and WAHA ([`waha`]) document it, then post the status webhooks a
//! real provider would send back, signed with the source's secret.
//!
//! Owns: the two fakes, what they share (the status plan, webhook posting with retries, request
//! recording, scripted failures, start/stop), and the `wagate fake-provider` command ([`cli`]).
//! Must not: call a real provider, depend on wagate's pipeline (a fake only speaks HTTP to it),
//! or print message bodies, phone numbers or secrets (request lines name the path, the message
//! type and the provider's message id).
//!
//! # Scripted recipients
//!
//! A recipient whose number ends in these digits gets a documented failure, so a test or a demo
//! user can provoke one without a handle on the server:
//!
//! | ends in | Graph API (`to`)                                           | WAHA (`chatId`)                                   |
//! |---------|------------------------------------------------------------|---------------------------------------------------|
//! | `0047`  | 400, code 131047 (re-engagement: outside the 24 h window)  | accepted                                           |
//! | `1047`  | accepted, then a `failed` status with 131047               | accepted                                           |
//! | `0429`  | 400, code 130429 (throughput rate limit)                   | accepted                                           |
//! | `0131`  | accepted, then a `failed` status with 131026 (undeliverable) | accepted, then `message.ack` -1 (`ERROR`)        |
//! | `0500`  | 500, code 131000 (something went wrong)                    | 500, WAHA's exception body                         |
//! | `0503`  | 503, code 2 (service temporarily unavailable)              | 422, session not `WORKING`                         |
//! | `0404`  | accepted                                                   | 500, "No LID for user" (number not on WhatsApp)    |
//!
//! Programmatically: `fail_next(n, error)` answers the next `n` send requests with `error`,
//! `hang_next(n)` accepts the next `n` and never answers (until the fake stops), `requests()`
//! lists what arrived, `post_status(id, status)` posts a status webhook now.
//!
//! # Media
//!
//! Both fakes serve media files, in several chunks (a streamed body with `Content-Length`):
//! the Graph fake behind Meta's two-step flow (`GET /{version}/{media-id}` answers a short-lived
//! signed URL on this server, which serves the bytes to the same token), WAHA at
//! `/api/files/{session}/{file}`. Each starts with [`sample_image_png`] registered
//! ([`graph::SAMPLE_IMAGE_MEDIA_ID`], [`waha::SAMPLE_IMAGE_FILE`]). `fail_next_download(n,
//! error)`, `hang_next_download(n)` and `fault_next_download(n, fault)` script the next `n`
//! authorized file downloads ([`DownloadFault`]: no answer, a body that stalls, a body that
//! breaks off); the Graph fake also has `fail_next_lookup` and `hang_next_lookup`.

pub mod bundled;
pub mod cli;
pub mod graph;
mod graph_validate;
pub mod waha;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use graph::{AnnouncedMedia, FakeGraph, FakeGraphOptions, GraphError, PricingModel};
pub use waha::{FakeWaha, FakeWahaOptions, WahaError};

/// The access token the demo Graph fake accepts unless told otherwise.
pub const DEMO_ACCESS_TOKEN: &str = "demo-meta-access-token";
/// The `X-Api-Key` the demo WAHA fake accepts unless told otherwise.
pub const DEMO_WAHA_API_KEY: &str = "demo-waha-api-key";

/// One status a fake reports for an accepted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Meta `sent`; WAHA ack 1 (`SERVER`).
    Sent,
    /// Meta `delivered`; WAHA ack 2 (`DEVICE`).
    Delivered,
    /// Meta `read`; WAHA ack 3 (`READ`).
    Read,
    /// Meta `played` (voice messages); WAHA ack 4 (`PLAYED`).
    Played,
    /// Meta `failed` with this error code (131026, 131047, …); WAHA ack -1 (`ERROR`).
    Failed(u32),
}

impl Status {
    /// Meta's name for it.
    pub fn meta_name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed(_) => "failed",
        }
    }

    /// WAHA's ack number and name.
    pub fn waha_ack(self) -> (i64, &'static str) {
        match self {
            Self::Sent => (1, "SERVER"),
            Self::Delivered => (2, "DEVICE"),
            Self::Read => (3, "READ"),
            Self::Played => (4, "PLAYED"),
            Self::Failed(_) => (-1, "ERROR"),
        }
    }
}

/// Which statuses a fake posts for each accepted message, in which order, and how far apart.
///
/// Order and duplicates are the list's: `[Read, Delivered, Sent]` arrives out of order,
/// `[Sent, Sent, Delivered]` repeats `sent`. A scripted failure replaces the plan for its
/// message with one `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusPlan {
    /// The statuses, posted one after the other (each one waits for the previous POST).
    pub steps: Vec<Status>,
    /// The pause before each status.
    pub delay: Duration,
}

impl Default for StatusPlan {
    /// `sent`, `delivered`, `read`, one second apart (a demo user sees them arrive).
    fn default() -> Self {
        Self {
            steps: vec![Status::Sent, Status::Delivered, Status::Read],
            delay: Duration::from_secs(1),
        }
    }
}

impl StatusPlan {
    /// No status webhooks at all.
    pub fn none() -> Self {
        Self {
            steps: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// `steps` without pauses (tests).
    pub fn immediate(steps: &[Status]) -> Self {
        Self {
            steps: steps.to_vec(),
            delay: Duration::ZERO,
        }
    }
}

/// How a webhook POST is retried when the receiver answers 5xx, 408 or 429, or is not up yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookRetry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The pause after the first failed attempt; it doubles after each one (at most 8 s).
    pub first_backoff: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Default for WebhookRetry {
    /// Six attempts over about eight seconds, ten seconds each.
    fn default() -> Self {
        Self {
            attempts: 6,
            first_backoff: Duration::from_millis(250),
            timeout: Duration::from_secs(10),
        }
    }
}

/// One request a fake received, as it arrived.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
    /// The body as JSON, when it is.
    pub json: Option<Value>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One webhook a fake posted (or gave up posting).
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    /// What it reports: `sent`, `delivered`, … (Meta) or `message.any`, `message.ack 2` (WAHA).
    pub label: String,
    /// The provider message id it is about.
    pub message_id: String,
    /// The exact body bytes (signed as they are).
    pub body: Vec<u8>,
    /// The status of the last answer, if any came.
    pub status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
    /// Whether the receiver answered 2xx.
    pub delivered: bool,
}

/// What the next send request (or media lookup) gets instead of the normal answer.
#[derive(Debug, Clone)]
enum Scripted<E> {
    Fail(E),
    Hang,
}

/// How a scripted file download goes wrong (besides answering an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadFault {
    /// The request is accepted and never answered (until the fake stops: then 503).
    Hang,
    /// Status, headers (the full `Content-Length`) and the first chunk come, then nothing more
    /// until the fake stops: a body timeout's case.
    Stall,
    /// Status, headers and the first chunk come, then the connection breaks off.
    Cut,
}

/// What the next file download gets instead of the file.
#[derive(Debug, Clone)]
enum DownloadScript<E> {
    Fail(E),
    Fault(DownloadFault),
}

/// State every fake keeps: recorded requests, the scripted answers, posted webhooks, and the
/// webhook tasks to end on stop.
#[derive(Debug)]
struct Journal<E> {
    requests: Mutex<Vec<RecordedRequest>>,
    script: Mutex<VecDeque<Scripted<E>>>,
    lookups: Mutex<VecDeque<Scripted<E>>>,
    downloads: Mutex<VecDeque<DownloadScript<E>>>,
    webhooks: Mutex<Vec<WebhookRecord>>,
    tasks: Mutex<JoinSet<()>>,
    /// Turns true when the fake stops: stalled file bodies end then.
    stopped: watch::Sender<bool>,
}

impl<E> Default for Journal<E> {
    fn default() -> Self {
        Self {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            lookups: Mutex::new(VecDeque::new()),
            downloads: Mutex::new(VecDeque::new()),
            webhooks: Mutex::new(Vec::new()),
            tasks: Mutex::new(JoinSet::new()),
            stopped: watch::Sender::new(false),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<E: Clone + Send + 'static> Journal<E> {
    fn record(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
    }

    fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    fn webhooks(&self) -> Vec<WebhookRecord> {
        lock(&self.webhooks).clone()
    }

    fn push_script(&self, n: usize, item: &Scripted<E>) {
        let mut script = lock(&self.script);
        for _ in 0..n {
            script.push_back(item.clone());
        }
    }

    fn next_script(&self) -> Option<Scripted<E>> {
        lock(&self.script).pop_front()
    }

    fn push_lookup(&self, n: usize, item: &Scripted<E>) {
        lock(&self.lookups).extend(std::iter::repeat_n(item.clone(), n));
    }

    fn next_lookup(&self) -> Option<Scripted<E>> {
        lock(&self.lookups).pop_front()
    }

    fn push_download(&self, n: usize, item: &DownloadScript<E>) {
        lock(&self.downloads).extend(std::iter::repeat_n(item.clone(), n));
    }

    fn next_download(&self) -> Option<DownloadScript<E>> {
        lock(&self.downloads).pop_front()
    }

    /// Runs `work` in the background until it ends or the fake stops.
    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        // Reap finished ones so the set does not grow with every message.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(work);
    }

    fn abort_tasks(&self) {
        self.stopped.send_replace(true);
        lock(&self.tasks).abort_all();
    }
}

/// The chunk size a served file is cut into: at least four chunks for a file of four bytes or
/// more, at most 64 KiB each.
fn chunk_size(len: usize) -> usize {
    len.div_ceil(4).clamp(1, 64 * 1024)
}

/// A file answer: 200 with `Content-Type` and `Content-Length`, the body streamed in several
/// chunks (a client sees a real stream, not one write). `fault` `Stall` sends the first chunk
/// and then waits for `stopped`; `Cut` sends the first chunk and breaks off.
fn file_response(
    bytes: &Bytes,
    content_type: &str,
    fault: Option<DownloadFault>,
    mut stopped: watch::Receiver<bool>,
) -> Response {
    use futures::StreamExt as _;
    type Chunks = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static>,
    >;
    let length = bytes.len();
    let size = chunk_size(length);
    let mut chunks = (0..length)
        .step_by(size)
        .map(|at| bytes.slice(at..(at + size).min(length)))
        .collect::<Vec<_>>()
        .into_iter();
    let first = futures::stream::iter(chunks.next().map(Ok));
    let rest: Chunks = match fault {
        Some(DownloadFault::Stall) => Box::pin(futures::stream::once(async move {
            // Nothing more until the fake stops; then the body breaks off.
            let _ = stopped.wait_for(|s| *s).await;
            Err(broken_off())
        })),
        Some(DownloadFault::Cut) => Box::pin(futures::stream::once(async {
            // Pending once first: hyper then flushes the head and the first chunk, so the
            // client gets them before the connection breaks.
            tokio::task::yield_now().await;
            Err(broken_off())
        })),
        Some(DownloadFault::Hang) | None => {
            Box::pin(futures::stream::iter(chunks).then(|chunk| async move {
                // One chunk per write: let the connection flush in between.
                tokio::task::yield_now().await;
                Ok(chunk)
            }))
        }
    };
    let mut r = Response::new(Body::from_stream(first.chain(rest)));
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::try_from(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    r
}

fn broken_off() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the fake provider broke the download off (scripted)",
    )
}

/// A 16×16 PNG of one colour (RGB, 8 bits, no interlace), built here with a real zlib stream
/// and CRCs: the sample image both fakes serve.
pub fn sample_image_png() -> Vec<u8> {
    const SIDE: u32 = 16;
    const COLOUR: [u8; 3] = [0x25, 0xD3, 0x66];
    // Each scanline: filter type 0 (none), then the pixels.
    let mut scanline = vec![0u8];
    scanline.extend(COLOUR.repeat(SIDE as usize));
    let raw = scanline.repeat(SIDE as usize);
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&SIDE.to_be_bytes());
    header.extend_from_slice(&SIDE.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), compression 0, filter 0, interlace 0.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut png, *b"IHDR", &header);
    png_chunk(
        &mut png,
        *b"IDAT",
        &miniz_oxide::deflate::compress_to_vec_zlib(&raw, 9),
    );
    png_chunk(&mut png, *b"IEND", &[]);
    png
}

/// The MIME type of [`sample_image_png`].
pub const SAMPLE_IMAGE_MIME_TYPE: &str = "image/png";

/// Appends a PNG chunk: length, type, data, CRC-32 of type and data.
fn png_chunk(png: &mut Vec<u8>, kind: [u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    png.extend_from_slice(&length.to_be_bytes());
    png.extend_from_slice(&kind);
    png.extend_from_slice(data);
    let mut covered = kind.to_vec();
    covered.extend_from_slice(data);
    png.extend_from_slice(&crc32(&covered).to_be_bytes());
}

/// CRC-32 (ISO-HDLC, the one PNG and zip use), bit by bit: the sample image is tiny.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Posts signed webhooks to one URL with retries, and records each.
#[derive(Debug, Clone)]
struct Poster {
    client: reqwest::Client,
    url: Option<String>,
    retry: WebhookRetry,
    print: Option<&'static str>,
}

impl Poster {
    fn new(url: Option<String>, retry: WebhookRetry, print: Option<&'static str>) -> Self {
        // Building a client fails only when its TLS backend cannot be set up, at start.
        #[allow(clippy::expect_used)]
        let client = aws_adapters::http::client_builder()
            .timeout(retry.timeout)
            .build()
            .expect("the HTTP client's TLS backend could not be set up");
        Self {
            client,
            url,
            retry,
            print,
        }
    }

    /// POSTs `body` with `headers`, retrying 5xx/408/429 and connection failures.
    async fn post(
        &self,
        label: String,
        message_id: String,
        body: Vec<u8>,
        headers: Vec<(&'static str, String)>,
    ) -> WebhookRecord {
        let mut record = WebhookRecord {
            label,
            message_id,
            body,
            status: None,
            attempts: 0,
            delivered: false,
        };
        let Some(url) = &self.url else {
            return record;
        };
        let mut backoff = self.retry.first_backoff;
        for attempt in 1..=self.retry.attempts.max(1) {
            record.attempts = attempt;
            let mut request = self
                .client
                .post(url)
                .header("content-type", "application/json");
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            let retry = match request.body(record.body.clone()).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    record.status = Some(status);
                    record.delivered = (200..300).contains(&status);
                    status >= 500 || status == 408 || status == 429
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "webhook POST failed");
                    true
                }
            };
            if !retry || attempt == self.retry.attempts.max(1) {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(8));
        }
        if let Some(name) = self.print {
            let answer = record
                .status
                .map_or_else(|| "no answer".to_owned(), |s| s.to_string());
            println!(
                "{name} | webhook {} for {} -> {answer} ({} attempt{})",
                record.label,
                record.message_id,
                record.attempts,
                if record.attempts == 1 { "" } else { "s" }
            );
        }
        record
    }
}

/// A running axum server that can be stopped: open requests (a hung one too) end with 503 and
/// `Connection: close`, new connections are refused.
#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    alive: Mutex<Option<watch::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

async fn until_stopped(
    State(alive): State<watch::Receiver<()>>,
    request: Request,
    next: Next,
) -> Response {
    crate::server::unless_stopped(alive, request, next, || {
        plain(StatusCode::SERVICE_UNAVAILABLE, "the fake provider stopped")
    })
    .await
}

fn plain(status: StatusCode, text: &str) -> Response {
    let mut r = Response::new(Body::from(text.to_owned()));
    *r.status_mut() = status;
    r
}

impl Server {
    async fn start(bind: SocketAddr, app: Router) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
        let addr = listener.local_addr()?;
        let (alive, alive_rx) = watch::channel(());
        let (stop, mut stop_rx) = watch::channel(false);
        let app = app.layer(middleware::from_fn_with_state(alive_rx, until_stopped));
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "a fake provider stopped with an error");
            }
        });
        Ok(Self {
            addr,
            stop,
            alive: Mutex::new(Some(alive)),
            task: Mutex::new(Some(task)),
        })
    }

    /// Ends open requests, stops accepting, and waits (briefly) for the server to finish.
    async fn stop(&self) {
        self.signal();
        let task = lock(&self.task).take();
        if let Some(task) = task
            && tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
        {
            tracing::warn!("a fake provider did not stop within 5 s");
        }
    }

    fn signal(&self) {
        lock(&self.alive).take();
        let _ = self.stop.send(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal();
    }
}

/// Reads a request into a record (the body up to `limit` bytes).
async fn read_request(request: Request, limit: usize) -> Result<RecordedRequest, Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?
        .to_vec();
    let json = serde_json::from_slice(&body).ok();
    Ok(RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        json,
    })
}

/// A JSON response.
fn json_response(status: StatusCode, body: &Value, headers: &[(&str, String)]) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::try_from(*name),
            axum::http::HeaderValue::try_from(value.as_str()),
        ) {
            h.insert(n, v);
        }
    }
    r
}

/// Constant-time equality of two byte strings.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random uppercase hex digits.
fn random_hex(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        // A ULID's 80 random bits: 20 hex digits.
        out.push_str(&format!("{:020X}", ulid::Ulid::new().random()));
    }
    out.truncate(n);
    out
}

/// The recipient number's last digits decide a scripted outcome.
fn ends_with(recipient: &str, digits: &str) -> bool {
    recipient
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .ends_with(digits)
}

/// JSON the way Meta writes webhook bodies: every non-ASCII character as `\uXXXX` (UTF-16) and
/// `/` as `\/`, so a receiver that verifies the bytes it got (not a re-encoding) passes.
fn meta_json(value: &Value) -> String {
    use std::fmt::Write as _;
    let text = value.to_string();
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            // `/` only occurs inside strings in JSON, so escaping it everywhere is safe.
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_json_escapes_non_ascii_and_slashes_and_stays_the_same_json() {
        let value = serde_json::json!({"a": "café 👍", "u": "https://x/y"});
        let text = meta_json(&value);
        assert!(text.is_ascii());
        assert!(text.contains("caf\\u00e9 \\ud83d\\udc4d"), "{text}");
        assert!(text.contains("https:\\/\\/x\\/y"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }

    #[test]
    fn scripted_digits_are_read_from_the_end_of_the_number() {
        assert!(ends_with("+1 555 000-0047", "0047"));
        assert!(ends_with("15550000047@c.us", "0047"));
        assert!(!ends_with("15550000048", "0047"));
        assert_eq!(random_hex(18).len(), 18);
        assert!(random_hex(40).chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_sample_image_is_a_valid_png_with_correct_crcs_and_zlib_data() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let png = sample_image_png();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut at = 8;
        let mut kinds = Vec::new();
        let mut pixels = Vec::new();
        while at < png.len() {
            let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + length];
            let crc =
                u32::from_be_bytes(png[at + 8 + length..at + 12 + length].try_into().unwrap());
            assert_eq!(crc, crc32(&png[at + 4..at + 8 + length]));
            if kind == b"IHDR" {
                assert_eq!(data, [0, 0, 0, 16, 0, 0, 0, 16, 8, 2, 0, 0, 0]);
            }
            if kind == b"IDAT" {
                pixels = miniz_oxide::inflate::decompress_to_vec_zlib(data).unwrap();
            }
            kinds.push(String::from_utf8(kind.to_vec()).unwrap());
            at += 12 + length;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        assert_eq!(pixels.len(), 16 * (1 + 16 * 3));
        assert!(pixels.chunks(49).all(|line| line[0] == 0));
    }

    #[test]
    fn files_are_cut_into_several_chunks() {
        assert_eq!(chunk_size(0), 1);
        assert_eq!(chunk_size(3), 1);
        assert_eq!(chunk_size(100), 25);
        assert_eq!(chunk_size(10 * 1024 * 1024), 64 * 1024);
    }

    #[test]
    fn statuses_map_to_both_providers_names() {
        assert_eq!(Status::Delivered.meta_name(), "delivered");
        assert_eq!(Status::Failed(131_026).waha_ack(), (-1, "ERROR"));
        assert_eq!(Status::Read.waha_ack(), (3, "READ"));
    }
}
