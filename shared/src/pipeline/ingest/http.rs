//! Ingest over HTTP: [`Ingest::router`], `POST|GET /webhooks/{source_id}` → [`Ingest::handle`]
//! over the body's exact bytes (signatures are checked over them; nothing is re-serialized).
//!
//! The body is read within `max_body_bytes` (axum's `DefaultBodyLimit`, set from the
//! configuration instead of axum's 2 MB); a longer one gets ingest's own 413 answer, after the
//! checks that come before the size (source, method). Must not: know about Lambda or sockets.

use std::sync::Arc;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method as HttpMethod, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::{Ingest, IngestRequest, IngestResponse, Method};
use crate::clock::Clock;

/// How many events a request put on the queue: an extension of every answer, for fronts that
/// count (local mode's status line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received(pub usize);

/// The URI the client requested, for a front that rewrites the path before ingest sees it (the
/// Lambda handler drops API Gateway's stage prefix): put in the request's extensions, it is
/// what Twilio's signed URL is rebuilt from.
#[derive(Debug, Clone)]
pub struct RequestedUri(pub Uri);

#[derive(Debug, Clone)]
struct Front {
    ingest: Arc<Ingest>,
    clock: Clock,
}

impl Ingest {
    /// The webhook URL, `/webhooks/{source_id}` (a trailing `/` allowed), any method (ingest
    /// answers 405 to all but POST and Meta's GET handshake); any other path is answered as a
    /// source that does not exist (404), which is what a Lambda Function URL, sending every
    /// path to the function, needs. Requests are timed by `clock`.
    pub fn router(self: Arc<Self>, clock: Clock) -> Router {
        let limit = self.config.max_body_bytes;
        Router::new()
            .route("/webhooks/{source_id}", any(webhook))
            .route("/webhooks/{source_id}/", any(webhook))
            .fallback(no_webhook)
            .layer(DefaultBodyLimit::max(limit))
            .with_state(Front {
                ingest: self,
                clock,
            })
    }
}

async fn webhook(
    State(front): State<Front>,
    source_id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    method: HttpMethod,
    uri: Uri,
    original: Option<Extension<RequestedUri>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let uri = original.map_or(uri, |Extension(RequestedUri(u))| u);
    // An id that does not decode names no source.
    let source_id = source_id.map(|Path(id)| id).unwrap_or_default();
    answer(&front, &source_id, &method, &uri, &headers, body).await
}

async fn no_webhook(
    State(front): State<Front>,
    method: HttpMethod,
    uri: Uri,
    original: Option<Extension<RequestedUri>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let uri = original.map_or(uri, |Extension(RequestedUri(u))| u);
    answer(&front, "", &method, &uri, &headers, body).await
}

async fn answer(
    front: &Front,
    source_id: &str,
    method: &HttpMethod,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let method = match *method {
        HttpMethod::POST => Method::Post,
        HttpMethod::GET => Method::Get,
        _ => Method::Other,
    };
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let mut request = IngestRequest {
        method,
        source_id,
        path: uri.path(),
        origin: uri.scheme_str().zip(uri.authority().map(|a| a.as_str())),
        query: uri.query().unwrap_or_default(),
        body: &[],
        headers: &pairs,
    };
    let now = front.clock.now();
    let out = match &body {
        Ok(bytes) => {
            request.body = bytes;
            front.ingest.handle(request, now).await
        }
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            front.ingest.handle_oversized(request, now).await
        }
        Err(_) => IngestResponse::error(400, "bad_request", "the body could not be read"),
    };
    into_response(out)
}

fn into_response(out: IngestResponse) -> Response {
    let status = StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, out.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(out.content_type),
    );
    response.extensions_mut().insert(Received(out.received));
    response
}
