//! The management API over HTTP: [`Admin::router`], the gate every request passes before its
//! route (stage prefix, `X-API-Key`, body limit, `Idempotency-Key`, audit), and the extractors
//! the handlers take, each refusing with the API's own error answers.
//!
//! The operator console (`/console`, [`crate::console`]) is answered before the gate: its page
//! and assets are public, and every call it makes carries the key.
//!
//! The gate wraps the whole router, not a route: it rewrites the path (a stage prefix before
//! `/v1`, a trailing `/`) before routing, answers 401 and 413 before any route is chosen, and
//! an idempotent replay must not run the route at all. Must not: know about Lambda or sockets.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;

use super::audit::{self, Change};
use super::{Admin, AdminResponse, ApiError, idempotency, key_matches};
use crate::clock::Clock;

/// The routes with their documentation; the state is the API.
pub(super) type Routes = OpenApiRouter<Arc<Admin>>;

/// Every route of the API, documented ([`super::openapi::document`] reads the same value).
pub(super) fn routes() -> Routes {
    OpenApiRouter::with_openapi(super::openapi::base())
        .merge(super::endpoints::routes())
        .merge(super::test_send::routes())
        .merge(super::deliveries::routes())
        .merge(super::conversations::routes())
        .merge(super::campaigns::routes())
        .merge(super::messages::routes())
        .merge(super::contacts::routes())
        .merge(super::media::routes())
        .merge(super::audit::routes())
        .merge(super::sources::routes())
        .merge(super::stats::routes())
}

impl Admin {
    /// The management API as a router that answers every path: `/v1/…` after any stage prefix
    /// API Gateway puts before it, JSON 404 for anything else. Requests are timed by `clock`.
    pub fn router(self, clock: Clock) -> Router {
        // The routes (and their documentation, which building them generates) are built once
        // per process; each router gets its own state and limits.
        static ROUTES: OnceLock<Router<Arc<Admin>>> = OnceLock::new();
        let admin = Arc::new(self);
        let routes = ROUTES.get_or_init(|| routes().split_for_parts().0).clone();
        let inner = routes
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(no_route)
            // The gate has read the body within the same limit; extractors must not apply
            // axum's default (2 MB) instead.
            .layer(DefaultBodyLimit::max(admin.config.max_body_bytes))
            .with_state(admin.clone());
        let gated = tower::ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(Gate { admin, clock }, gate))
            .service(inner);
        // The operator console's page and assets are public (every call they make carries the
        // key), so they are answered before the gate.
        Router::new()
            .fallback_service(gated)
            .layer(middleware::from_fn(console_first))
    }
}

/// `/console…` (after a stage prefix) is the operator console; anything else goes on.
async fn console_first(request: Request, next: Next) -> Response {
    match crate::console::serve(request.method(), request.uri().path()) {
        Some(page) => page,
        None => next.run(request).await,
    }
}

async fn no_route() -> ApiError {
    ApiError::new(404, "not_found", "no such route")
}

/// A known path, another method (axum adds `Allow`; the gate writes it as the API always has).
async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        format!("{method} is not supported here"),
    )
}

#[derive(Debug, Clone)]
struct Gate {
    admin: Arc<Admin>,
    clock: Clock,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `/prod/v1/endpoints/` → `/v1/endpoints`: API Gateway may put a stage before `/v1`.
fn api_path(path: &str) -> &str {
    let path = match path.find("/v1/") {
        Some(i) => &path[i..],
        None if path.ends_with("/v1") => "/v1",
        None => path,
    };
    path.trim_end_matches('/')
}

/// The request's URI with `path` (a part of its own path, so valid) and its query.
fn with_path(uri: &Uri, path: &str) -> Uri {
    let path = if path.is_empty() { "/" } else { path };
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    target.parse().unwrap_or_else(|_| uri.clone())
}

/// The body within `limit`: 413 above it, 400 if it cannot be read.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return ApiError::new(413, "payload_too_large", "the body is too large");
            }
            source = s.source();
        }
        ApiError::bad_request("the body could not be read")
    })
}

/// What every request passes, in today's order: the key (401), the body limit (413), then the
/// route, once per `Idempotency-Key` on a POST, with its change recorded in the first run only.
async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let Gate { admin, clock } = gate;
    let now = clock.now();
    let (mut parts, body) = request.into_parts();
    let Some(api_key) = header_str(&parts.headers, "x-api-key")
        .filter(|k| key_matches(&admin.config.api_keys, k))
        .map(str::to_owned)
    else {
        return ApiError::new(401, "unauthorized", "a valid X-API-Key header is required")
            .into_response();
    };
    let body = match read_body(body, admin.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let path = api_path(parts.uri.path()).to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    parts.uri = with_path(&parts.uri, &path);
    parts.extensions.insert(Now(now));
    // A key that is not text is refused, not ignored: the client asked for a replay-safe call.
    let idempotency_key = match parts.headers.get("idempotency-key") {
        Some(value) if parts.method == Method::POST => match value.to_str() {
            Ok(key) => Some(key.to_owned()),
            Err(_) => {
                return ApiError::invalid(
                    "Idempotency-Key",
                    "Idempotency-Key must be printable ASCII",
                )
                .into_response();
            }
        },
        _ => None,
    };
    let actor = audit::key_id(&api_key);
    let request = Request::from_parts(parts, Body::from(body.clone()));
    let run = || async {
        let response = next.run(request).await;
        let change = response.extensions().get::<Change>().cloned();
        let answer = AdminResponse::read(response).await;
        if let Some(change) = change {
            admin.audit(&actor, &change, &body, &answer, now).await;
        }
        Ok(answer)
    };
    let answer = match idempotency_key {
        Some(key) => idempotency::run(&admin, &key, &path, &query, &body, now, run).await,
        None => run().await,
    };
    match answer {
        Ok(answer) => answer.into_response(),
        Err(e) => e.into_response(),
    }
}

impl AdminResponse {
    /// A handler's answer, read whole (handlers answer small JSON documents).
    async fn read(response: Response) -> Self {
        let (parts, body) = response.into_parts();
        let allow = (parts.status == StatusCode::METHOD_NOT_ALLOWED)
            .then(|| header_str(&parts.headers, "allow").map(allow_list))
            .flatten();
        let retry_after = header_str(&parts.headers, "retry-after").map(str::to_owned);
        match to_bytes(body, usize::MAX).await {
            Ok(bytes) => Self {
                status: parts.status.as_u16(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
                allow,
                retry_after,
            },
            Err(_) => ApiError::new(500, "internal", "the answer could not be read").response(),
        }
    }
}

/// axum's `GET,HEAD,POST` as the API has always written it: `GET, POST` (HEAD is answered as
/// GET, as HTTP wants, but was never listed).
fn allow_list(allow: &str) -> String {
    let mut methods: Vec<&str> = allow
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != "HEAD")
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods.join(", ")
}

impl IntoResponse for AdminResponse {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = if self.body.is_empty() {
            Response::new(Body::empty())
        } else {
            let mut r = Response::new(Body::from(self.body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        };
        *response.status_mut() = status;
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        if let Some(after) = self
            .retry_after
            .and_then(|a| HeaderValue::from_str(&a).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, after);
        }
        response
    }
}

/// The time of the request: the gate reads the clock once, so the route, the audit entry and
/// the idempotency record agree.
#[derive(Debug, Clone, Copy)]
pub(super) struct Now(pub DateTime<Utc>);

impl<S: Send + Sync> FromRequestParts<S> for Now {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Now>()
            .copied()
            .unwrap_or_else(|| Now(Utc::now())))
    }
}

/// The `{id}` of a path. One that does not decode (percent-encoded bytes that are not UTF-8)
/// names nothing: 404. Read by name, so a route that captured before this router (local mode
/// mounts it under `/v1/{*rest}`) does not count.
#[derive(Debug, Clone)]
pub(super) struct Id(pub String);

/// The request's `Idempotency-Key`, if it has one (the gate has checked it is text).
pub(super) struct IdempotencyKeyHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            header_str(&parts.headers, "idempotency-key").map(str::to_owned),
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|Path(mut params)| params.remove("id"))
            .map(Self)
            .ok_or_else(|| ApiError::new(404, "not_found", "no such item"))
    }
}

/// A JSON body as [`super::body`] reads it: no body is `{}`, 400 for what is not JSON, 422
/// naming the field for a wrong shape; no `Content-Type` required.
#[derive(Debug, Clone)]
pub(super) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(413, "payload_too_large", "the body is too large")
                }
                _ => ApiError::bad_request("the body could not be read"),
            })?;
        super::body(&bytes).map(Self)
    }
}

/// Query parameters as `T`, whose fields are text checked by the handler (so a bad value is a
/// 422 naming it); the first of repeated names counts, unknown names are ignored.
#[derive(Debug, Clone)]
pub(super) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut map = serde_json::Map::new();
        let raw = parts.uri.query().unwrap_or_default();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            map.entry(name.into_owned())
                .or_insert_with(|| serde_json::Value::String(value.into_owned()));
        }
        serde_json::from_value(serde_json::Value::Object(map))
            .map(Self)
            .map_err(|_| ApiError::bad_request("the query string could not be read"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_prefix_and_trailing_slashes_are_not_part_of_the_route() {
        assert_eq!(api_path("/prod/v1/endpoints/"), "/v1/endpoints");
        assert_eq!(api_path("/v1/endpoints"), "/v1/endpoints");
        assert_eq!(api_path("/prod/v1"), "/v1");
        assert_eq!(api_path("/other"), "/other");
        assert_eq!(api_path("/"), "");
        let uri: Uri = "/prod/v1/endpoints/?limit=2".parse().unwrap();
        assert_eq!(with_path(&uri, "/v1/endpoints"), "/v1/endpoints?limit=2");
        assert_eq!(with_path(&uri, ""), "/?limit=2");
    }

    #[tokio::test]
    async fn the_console_is_served_before_the_key_gate_and_the_api_is_not() {
        use tower::ServiceExt as _;
        let admin = Admin::new(
            Arc::new(crate::ports::memory::MemoryDocumentStore::new()),
            Arc::new(crate::ports::memory::MemoryBlobStore::new()),
            Arc::new(crate::ports::memory::MemoryQueue::new("delivery")),
            Arc::new(crate::ports::memory::MemoryQueue::new("delivery-dlq")),
            std::time::Duration::from_secs(86400),
            super::super::AdminConfig::default(),
        );
        let get = |target: &str| {
            axum::http::Request::builder()
                .uri(target)
                .body(Body::empty())
                .unwrap()
        };
        let router = admin.router(Clock::system());
        let page = router.clone().oneshot(get("/prod/console/")).await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let moved = router.clone().oneshot(get("/console")).await.unwrap();
        assert_eq!(moved.status(), 308);
        let api = router.clone().oneshot(get("/v1/endpoints")).await.unwrap();
        assert_eq!(api.status(), 401);
        let elsewhere = router.oneshot(get("/consoles")).await.unwrap();
        assert_eq!(elsewhere.status(), 401);
    }

    #[test]
    fn allow_is_written_sorted_without_head() {
        assert_eq!(allow_list("GET,HEAD,POST"), "GET, POST");
        assert_eq!(allow_list("POST"), "POST");
        assert_eq!(allow_list("PATCH,DELETE,GET,HEAD"), "DELETE, GET, PATCH");
    }
}
