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
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use graph::{FakeGraph, FakeGraphOptions, GraphError, PricingModel};
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

/// What the next send request gets instead of the normal answer.
#[derive(Debug, Clone)]
enum Scripted<E> {
    Fail(E),
    Hang,
}

/// State every fake keeps: recorded requests, the scripted answers, posted webhooks, and the
/// webhook tasks to end on stop.
#[derive(Debug)]
struct Journal<E> {
    requests: Mutex<Vec<RecordedRequest>>,
    script: Mutex<VecDeque<Scripted<E>>>,
    webhooks: Mutex<Vec<WebhookRecord>>,
    tasks: Mutex<JoinSet<()>>,
}

impl<E> Default for Journal<E> {
    fn default() -> Self {
        Self {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            webhooks: Mutex::new(Vec::new()),
            tasks: Mutex::new(JoinSet::new()),
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

    /// Runs `work` in the background until it ends or the fake stops.
    fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        // Reap finished ones so the set does not grow with every message.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(work);
    }

    fn abort_tasks(&self) {
        lock(&self.tasks).abort_all();
    }
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
        // Building a client fails only without a TLS backend; plain http works either way.
        let client = reqwest::Client::builder()
            .timeout(retry.timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
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
    fn statuses_map_to_both_providers_names() {
        assert_eq!(Status::Delivered.meta_name(), "delivered");
        assert_eq!(Status::Failed(131_026).waha_ack(), (-1, "ERROR"));
        assert_eq!(Status::Read.waha_ack(), (3, "READ"));
    }
}
