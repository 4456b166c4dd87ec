//! The ingest stage: one provider HTTP request in, events on the inbound queue, one small answer out.
//!
//! Order of checks: source (404) → method → size (413) → signature over the raw bytes, or the
//! token of a source whose provider does not sign (401) →
//! nesting deeper than [`MAX_JSON_DEPTH`] (400, so every stage after can decode what ingest
//! accepts) → parse (400) → more than `max_events` events (413) → keep the raw request (unless `raw_ttl` is zero) and enqueue every event (503 if either fails, so the
//! provider retries and nothing verified is lost) → 200 `{"received": N}`. Answers never carry
//! internal detail; logs carry ids and counts, never bodies, numbers or secrets.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{self, Metric};
use chrono::{DateTime, Utc};
use serde_json::json;
use ulid::Ulid;

use crate::model::Provider;
use crate::ports::Source;
pub use crate::ports::codec::SEND_CONCURRENCY;
use crate::ports::codec::{enqueue_events, queued_blob_expiry};
use crate::ports::{BackendError, BlobStore, Queue, SourceRegistry};
use crate::providers::{ParseError, normalize};
use crate::signature::{
    HandshakeOutcome, SignatureError, bearer_value, meta_handshake, verify_meta, verify_token,
    verify_twilio, verify_waha,
};

/// Ingest settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long raw requests are kept for replay (zero: not kept, one write less per
    /// webhook); claim-checked events are kept at least as long as queues may point at them.
    pub raw_ttl: Duration,
    /// Most events one request may carry; more get 413. A 1 MiB Meta body of minimal statuses
    /// is about 15,000 events (1,500 queue calls, sent [`SEND_CONCURRENCY`] at a time); the cap
    /// bounds the work one signed request can cause when `max_body_bytes` is raised.
    pub max_events: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            raw_ttl: Duration::from_secs(7 * 24 * 3600),
            max_events: 20_000,
        }
    }
}

/// Deepest nesting of arrays and objects a webhook body may have. serde_json, which reads every
/// queue message and document downstream, refuses more than 128 levels; events wrap provider
/// items in a few levels more, and delivery tasks wrap events, so a body within this limit
/// decodes at every stage. WhatsApp payloads nest about 10 levels.
pub const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting of arrays and objects in `bytes` (brackets inside strings not counted).
/// Linear and allocation-free; for bytes that are not JSON the figure is meaningless but finite.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The ingest stage with its ports.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Configured sources.
    pub sources: Arc<dyn SourceRegistry>,
    /// The inbound queue (ingest → track).
    pub queue: Arc<dyn Queue>,
    /// Raw requests and oversized events.
    pub blobs: Arc<dyn BlobStore>,
    /// Limits and retention.
    pub config: IngestConfig,
}

/// The HTTP method, reduced to what ingest distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A webhook delivery.
    Post,
    /// Meta's subscription handshake.
    Get,
    /// Anything else.
    Other,
}

/// What ingest needs of a request: the raw bytes, the URL and the headers.
#[derive(Debug, Clone, Copy)]
pub struct IngestRequest<'a> {
    /// The method.
    pub method: Method,
    /// `{source_id}` from the path.
    pub source_id: &'a str,
    /// The path as the function received it (`/webhooks/{source_id}`), for rebuilding the URL
    /// Twilio signed when the source has no `public_url`.
    pub path: &'a str,
    /// The scheme and authority of the request's URI when it had them (an absolute URI, as the
    /// Lambda adapter builds from API Gateway's event); a plain HTTP/1 request has neither.
    pub origin: Option<(&'a str, &'a str)>,
    /// The raw query string (for the handshake, tokens and Twilio's URL), without `?`.
    pub query: &'a str,
    /// The exact body bytes (already base64-decoded when API Gateway encoded them).
    pub body: &'a [u8],
    /// The request's headers, names in any case (looked up case-insensitively; the first of a
    /// repeated name counts).
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> IngestRequest<'a> {
    /// A POST of `body` to `/webhooks/{source_id}` with these headers and no query.
    pub fn post(source_id: &'a str, body: &'a [u8], headers: &'a [(&'a str, &'a str)]) -> Self {
        Self {
            method: Method::Post,
            source_id,
            path: "",
            origin: None,
            query: "",
            body,
            headers,
        }
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The URL the provider called: the source's `public_url`, or else one rebuilt from the
    /// scheme (`X-Forwarded-Proto`, set by API Gateway and Function URLs; else the URI's; else
    /// `http`, a direct connection), the host (`Host`, else the URI's authority) and the path;
    /// then the query string.
    fn public_url(&self, source: &Source) -> String {
        let base = match &source.inbound.public_url {
            Some(url) => url.clone(),
            None => {
                let scheme = self
                    .header("x-forwarded-proto")
                    .and_then(|p| p.split(',').next())
                    .map(str::trim)
                    .filter(|p| matches!(*p, "http" | "https"))
                    .or(self.origin.map(|(scheme, _)| scheme))
                    .unwrap_or("http");
                let host = self
                    .header("host")
                    .or(self.origin.map(|(_, authority)| authority))
                    .unwrap_or_default()
                    .trim();
                format!("{scheme}://{host}{}", self.path)
            }
        };
        if self.query.is_empty() {
            base
        } else {
            format!("{base}?{}", self.query)
        }
    }

    /// The tokens a token source's request presents in its URL and headers: the configured
    /// header (a `Bearer ` scheme removed) and the configured query parameter.
    fn presented_tokens(&self, source: &Source) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(value) = self.header(&source.inbound.token_header) {
            out.push(bearer_value(value).to_owned());
        }
        out.extend(
            form_urlencoded::parse(self.query.as_bytes())
                .filter(|(name, _)| *name == source.inbound.token_query.as_str())
                .map(|(_, value)| value.into_owned()),
        );
        out
    }

    /// Evolution API's body `apikey`, read only when the URL and headers did not verify (the
    /// body is parsed once more for it).
    fn body_apikey(&self) -> Option<String> {
        serde_json::from_slice::<ApiKey>(self.body).ok()?.apikey
    }
}

/// Evolution API's `apikey` body field, the instance's key, which its webhooks send back.
#[derive(serde::Deserialize)]
struct ApiKey {
    #[serde(default)]
    apikey: Option<String>,
}

/// Checks the request against the source's verification: the provider's signature, or the
/// source's token.
fn verify(req: &IngestRequest<'_>, source: &Source) -> Result<(), SignatureError> {
    match source.provider {
        Provider::Meta => verify_meta(req.body, req.header("x-hub-signature-256"), &source.secrets),
        Provider::Waha => verify_waha(
            req.body,
            req.header("x-webhook-hmac"),
            req.header("x-webhook-hmac-algorithm"),
            &source.secrets,
        ),
        Provider::Twilio => verify_twilio(
            &req.public_url(source),
            req.body,
            req.header("x-twilio-signature"),
            &source.secrets,
        ),
        Provider::Dialog360 | Provider::Gupshup | Provider::Evolution => {
            let presented = req.presented_tokens(source);
            let presented: Vec<&str> = presented.iter().map(String::as_str).collect();
            let verified = verify_token(&presented, &source.secrets);
            match (verified, source.provider) {
                (Err(e), Provider::Evolution) => match req.body_apikey() {
                    Some(key) => verify_token(&[&key], &source.secrets),
                    None => Err(e),
                },
                (verified, _) => verified,
            }
        }
    }
}

/// Twilio reads the answer to an incoming-message webhook as TwiML: an empty `<Response>` tells
/// it to do nothing more (no auto-reply).
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

/// The answer to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResponse {
    /// HTTP status.
    pub status: u16,
    /// `application/json`, `text/plain` (handshake) or `text/xml` (TwiML for Twilio).
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Events enqueued (0 unless 200 on a POST).
    pub received: usize,
}

impl IngestResponse {
    fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
            received: 0,
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(
            status,
            &json!({"error": {"code": code, "message": message}}),
        )
    }
}

impl Ingest {
    /// Handles one request. Never fails: every outcome is an HTTP answer.
    pub async fn handle(&self, req: IngestRequest<'_>, now: DateTime<Utc>) -> IngestResponse {
        self.handle_body(req, false, now).await
    }

    /// Handles a request whose body was over `max_body_bytes` (an HTTP front that stops reading
    /// there): the answer a body that size gets, after the same checks before it (`req.body`
    /// is not looked at).
    pub async fn handle_oversized(
        &self,
        req: IngestRequest<'_>,
        now: DateTime<Utc>,
    ) -> IngestResponse {
        self.handle_body(req, true, now).await
    }

    async fn handle_body(
        &self,
        req: IngestRequest<'_>,
        oversized: bool,
        now: DateTime<Utc>,
    ) -> IngestResponse {
        let webhook = req.method == Method::Post;
        let out = self.answer(req, oversized, now).await;
        if webhook {
            match out.status {
                200..300 => {
                    metrics::count(Metric::WebhooksReceived, 1);
                    metrics::count(Metric::EventsEnqueued, out.received);
                }
                500.. => metrics::count(Metric::WebhooksUnavailable, 1),
                _ => metrics::count(Metric::WebhooksRejected, 1),
            }
        }
        out
    }

    async fn answer(
        &self,
        req: IngestRequest<'_>,
        oversized: bool,
        now: DateTime<Utc>,
    ) -> IngestResponse {
        let Some(source) = self.sources.get(req.source_id) else {
            tracing::info!(source_id = %truncate(req.source_id), "unknown source");
            return IngestResponse::error(404, "unknown_source", "no webhook source with this id");
        };
        match req.method {
            Method::Get if source.provider == Provider::Meta => {
                return match meta_handshake(req.query, &source.verify_tokens) {
                    HandshakeOutcome::Challenge(challenge) => {
                        tracing::info!(source_id = %source.id, "handshake accepted");
                        IngestResponse {
                            status: 200,
                            content_type: "text/plain",
                            body: challenge,
                            received: 0,
                        }
                    }
                    HandshakeOutcome::Forbidden => {
                        tracing::warn!(source_id = %source.id, "handshake refused");
                        IngestResponse::error(403, "forbidden", "verification token mismatch")
                    }
                    HandshakeOutcome::NotHandshake => IngestResponse::error(
                        400,
                        "bad_request",
                        "expected hub.mode, hub.verify_token and hub.challenge",
                    ),
                };
            }
            Method::Post => {}
            _ => return IngestResponse::error(405, "method_not_allowed", "use POST for webhooks"),
        }
        if oversized || req.body.len() > self.config.max_body_bytes {
            tracing::warn!(source_id = %source.id, bytes = req.body.len(), limit = self.config.max_body_bytes, "body too large");
            return IngestResponse::error(
                413,
                "payload_too_large",
                "request body exceeds the limit",
            );
        }
        if let Err(e) = verify(&req, &source) {
            tracing::warn!(source_id = %source.id, reason = %e, "signature rejected");
            return IngestResponse::error(401, "invalid_signature", "signature missing or invalid");
        }
        if source.provider == Provider::Gupshup && req.body.trim_ascii().is_empty() {
            // Gupshup checks a callback URL with a request that carries nothing: answer it as
            // accepted (it was verified, and there is nothing to lose).
            tracing::info!(source_id = %source.id, "empty request accepted");
            return accepted(source.provider, 0);
        }
        let depth = json_depth(req.body);
        if depth > MAX_JSON_DEPTH {
            tracing::warn!(source_id = %source.id, depth, "verified body nested too deep");
            return IngestResponse::error(
                400,
                "invalid_body",
                &format!("body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"),
            );
        }
        let mut events = match normalize(&source.id, source.provider, req.body, now) {
            Ok(events) => events,
            Err(ParseError::NotJson(_)) => {
                tracing::warn!(source_id = %source.id, bytes = req.body.len(), "verified body is not JSON");
                return IngestResponse::error(400, "invalid_body", "body is not valid JSON");
            }
        };
        if events.len() > self.config.max_events {
            tracing::warn!(source_id = %source.id, events = events.len(), "too many events in one request");
            return IngestResponse::error(
                413,
                "too_many_events",
                &format!(
                    "the body carries more than {} events; send them in smaller webhooks",
                    self.config.max_events
                ),
            );
        }
        let request_id = Ulid::new().to_string();
        for e in &mut events {
            e.request_id = Some(request_id.clone());
        }
        let expires_at = now
            + chrono::Duration::from_std(self.config.raw_ttl).unwrap_or(chrono::Duration::days(7));
        let raw_key = format!("req#{request_id}");
        let keep_raw = !self.config.raw_ttl.is_zero();
        let (stored, sent) = futures::join!(
            async {
                if keep_raw {
                    self.blobs.put(&raw_key, req.body, expires_at).await
                } else {
                    Ok(())
                }
            },
            enqueue_events(
                &events,
                self.queue.as_ref(),
                self.blobs.as_ref(),
                queued_blob_expiry(now, self.config.raw_ttl)
            ),
        );
        match stored.and(sent) {
            Ok(received) => {
                tracing::info!(source_id = %source.id, %request_id, events = received, bytes = req.body.len(), "accepted");
                accepted(source.provider, received)
            }
            Err(e) => unavailable(&source.id, &request_id, &e),
        }
    }
}

/// The answer to an accepted webhook, in the form its provider expects: Twilio reads TwiML (an
/// empty `<Response>`: no auto-reply), Gupshup wants an empty body, the others get
/// `{"received": N}`.
fn accepted(provider: Provider, received: usize) -> IngestResponse {
    let (content_type, body) = match provider {
        Provider::Twilio => ("text/xml", EMPTY_TWIML.to_owned()),
        Provider::Gupshup => ("text/plain", String::new()),
        _ => {
            return IngestResponse {
                received,
                ..IngestResponse::json(200, &json!({"received": received}))
            };
        }
    };
    IngestResponse {
        status: 200,
        content_type,
        body,
        received,
    }
}

fn unavailable(
    source_id: &crate::ids::SourceId,
    request_id: &str,
    e: &BackendError,
) -> IngestResponse {
    tracing::error!(%source_id, %request_id, error = %e, retryable = e.is_retryable(), "could not enqueue; asking the provider to retry");
    IngestResponse::error(
        503,
        "unavailable",
        "temporarily unable to accept the webhook; retry later",
    )
}

/// A path segment for logs: unknown ids come from the URL, so keep them short.
fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(64).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

pub mod diagnose;
mod http;
pub use http::{Received, RequestedUri};

#[cfg(test)]
mod tests;
