//! The local HTTP front: what API Gateway routes to the ingest function in a deployment.
//! `GET|POST /webhooks/{source_id}` → [`Ingest::handle`], `GET /healthz`, JSON 404 otherwise.
//! Bodies are read with a limit, so an oversized request is refused with 413 without being
//! buffered whole.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method as HttpMethod, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use shared::admin::{Admin, AdminRequest};
use shared::pipeline::ingest::{Ingest, IngestRequest, IngestResponse, Method};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::stats::Stats;

/// What the front needs.
#[derive(Debug, Clone)]
pub struct Front {
    /// The ingest stage.
    pub ingest: Arc<Ingest>,
    /// The pipeline clock.
    pub clock: Clock,
    /// Counters.
    pub stats: Arc<Stats>,
    /// The management API on `/v1` (`None` without `ADMIN_API_KEYS`).
    pub admin: Option<Arc<Admin>>,
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// The whole body, or the 413 (over `limit`) or 400 answer.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Box<Response<Full<Bytes>>>> {
    match Limited::new(body, limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("the body exceeds {limit} bytes"),
        ))),
        Err(_) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body could not be read",
        ))),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Front {
    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        if path == "/healthz" {
            return json_response(StatusCode::OK, &json!({"status": "ok"}));
        }
        if path == "/v1" || path.starts_with("/v1/") {
            return self.admin(req).await;
        }
        let Some(source_id) = path
            .strip_prefix("/webhooks/")
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .map(str::to_owned)
        else {
            return error(StatusCode::NOT_FOUND, "not_found", "no such route");
        };
        let method = match *req.method() {
            HttpMethod::POST => Method::Post,
            HttpMethod::GET => Method::Get,
            _ => Method::Other,
        };
        let query = req.uri().query().unwrap_or_default().to_owned();
        let (parts, body) = req.into_parts();
        let body = match read_body(body, self.ingest.config.max_body_bytes).await {
            Ok(b) => b,
            Err(r) => {
                self.stats.rejected.add(1);
                return *r;
            }
        };
        let get = |name: &str| header(&parts.headers, name);
        let request = IngestRequest {
            method,
            source_id: &source_id,
            query: &query,
            body: &body,
            hub_signature_256: get("x-hub-signature-256"),
            webhook_hmac: get("x-webhook-hmac"),
            webhook_hmac_algorithm: get("x-webhook-hmac-algorithm"),
        };
        let out: IngestResponse = self.ingest.handle(request, self.clock.now()).await;
        match out.status {
            200..=299 => {
                self.stats.accepted.add(1);
                self.stats
                    .events
                    .add(u64::try_from(out.received).unwrap_or(0));
            }
            400..=499 => self.stats.rejected.add(1),
            _ => self.stats.unavailable.add(1),
        }
        let mut response = Response::new(Full::new(Bytes::from(out.body)));
        *response.status_mut() =
            StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(out.content_type),
        );
        response
    }
}

impl Front {
    async fn admin(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(admin) = &self.admin else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "the management API is off: set ADMIN_API_KEYS",
            );
        };
        let (parts, body) = req.into_parts();
        let body = match read_body(body, admin.config.max_body_bytes).await {
            Ok(b) => b,
            Err(r) => return *r,
        };
        let get = |name: &str| header(&parts.headers, name);
        let out = admin
            .handle(
                AdminRequest {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query: parts.uri.query().unwrap_or_default(),
                    api_key: get("x-api-key"),
                    idempotency_key: get("idempotency-key"),
                    body: &body,
                },
                self.clock.now(),
            )
            .await;
        let empty = out.body.is_empty();
        let allow = out
            .allow
            .as_deref()
            .and_then(|a| hyper::header::HeaderValue::from_str(a).ok());
        let mut response = Response::new(Full::new(Bytes::from(out.body)));
        *response.status_mut() =
            StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(allow) = allow {
            response.headers_mut().insert(hyper::header::ALLOW, allow);
        }
        if !empty {
            response.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
        }
        response
    }
}

/// Serves `front` on `listener` until `stop` turns true, then lets open requests finish (at
/// most `grace`) while accepting nothing new.
pub async fn serve(
    listener: TcpListener,
    front: Front,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let front = Arc::new(front);
    // Connections live in this set, so aborting `serve` (a simulated crash) ends them too.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
            Some(_) = connections.join_next() => continue,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let front = front.clone();
        let service = service_fn(move |req| {
            let front = front.clone();
            async move { Ok::<_, Infallible>(front.handle(req).await) }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within the grace period");
    }
    connections.shutdown().await;
}
