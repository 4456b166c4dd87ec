//! The local HTTP front: what API Gateway routes to the ingest and admin functions in a
//! deployment, as one `axum::serve`. `GET|POST /webhooks/{source_id}` → the ingest router,
//! `/v1/…` → the management API's router (JSON 404 without `ADMIN_API_KEYS`), `/console/…` →
//! the operator console (served with or without the API: without it, its login fails with the
//! API's own 404), `GET /healthz`, JSON 404 otherwise. Bodies are read within each router's configured limit, so an oversized
//! request is refused with 413 without being buffered whole.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, any_service, get};
use serde_json::json;
use shared::admin::Admin;
use shared::pipeline::ingest::{Ingest, Received};
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
    /// Stored media at its signed URLs (`/media/…`), when local mode keeps the files itself.
    pub media: Option<Router>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn no_route() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn admin_off() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "the management API is off: set ADMIN_API_KEYS",
    )
}

/// The operator console's page and assets (`shared::console` decides what is a console path).
async fn console(method: Method, uri: Uri) -> Response {
    shared::console::serve(&method, uri.path())
        .unwrap_or_else(|| error(StatusCode::NOT_FOUND, "not_found", "no such route"))
}

/// Counts webhook answers for the status line: accepted (with the events they enqueued),
/// rejected, unavailable.
async fn count(State(stats): State<Arc<Stats>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    match response.status().as_u16() {
        200..=299 => {
            stats.accepted.add(1);
            let received = response.extensions().get::<Received>().map_or(0, |r| r.0);
            stats.events.add(u64::try_from(received).unwrap_or(0));
        }
        400..=499 => stats.rejected.add(1),
        _ => stats.unavailable.add(1),
    }
    response
}

/// Ends a request when the front is gone (a simulated crash aborts [`serve`]; connections that
/// axum spawned would otherwise go on answering): what was not answered is not, and the
/// client is told to come back on a new connection, as after a killed process.
async fn until_stopped(
    State(alive): State<watch::Receiver<()>>,
    request: Request,
    next: Next,
) -> Response {
    unless_stopped(alive, request, next, || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the gateway stopped; retry",
        )
    })
    .await
}

/// Runs `request` unless `alive`'s sender is dropped first (or already was); then answers
/// `stopped()` with `Connection: close`. The local front and the bench's servers stop this way.
pub async fn unless_stopped(
    mut alive: watch::Receiver<()>,
    request: Request,
    next: Next,
    stopped: impl Fn() -> Response,
) -> Response {
    let closing = || {
        let mut r = stopped();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    if alive.has_changed().is_err() {
        return closing();
    }
    tokio::select! {
        response = next.run(request) => response,
        _ = alive.changed() => closing(),
    }
}

/// The front's router: ingest, the management API, health, JSON 404s; requests end when
/// `alive`'s sender is dropped.
pub fn router(front: &Front, alive: watch::Receiver<()>) -> Router {
    let clock = front.clock.clone();
    let clock = shared::clock::Clock::from_fn(move || clock.now());
    // Ingest's own fallback (a Function URL's unknown path) gives way to the front's.
    let ingest = front
        .ingest
        .clone()
        .router(clock.clone())
        .reset_fallback()
        .layer(middleware::from_fn_with_state(front.stats.clone(), count));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/healthz/", get(healthz))
        .route("/console", any(console))
        .route("/console/", any(console))
        .route("/console/{*rest}", any(console))
        .merge(ingest);
    let app = match &front.admin {
        Some(admin) => {
            // The API's router answers every method itself (405 with its own `Allow`).
            let api = Admin::clone(admin).router(clock);
            app.route("/v1", any_service(api.clone()))
                .route("/v1/", any_service(api.clone()))
                .route("/v1/{*rest}", any_service(api))
        }
        None => app
            .route("/v1", any(admin_off))
            .route("/v1/", any(admin_off))
            .route("/v1/{*rest}", any(admin_off)),
    };
    let app = match &front.media {
        Some(media) => app.merge(media.clone()),
        None => app,
    };
    app.fallback(no_route)
        .layer(middleware::from_fn_with_state(alive, until_stopped))
}

/// Serves `front` on `listener` until `stop` turns true, then lets open requests finish (at
/// most `grace`) while accepting nothing new. Aborting the future ends open requests too.
pub async fn serve(
    listener: TcpListener,
    front: Front,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    // Dropped when this future ends or is aborted: open requests end with it.
    let (alive, alive_rx) = watch::channel(());
    let app = router(&front, alive_rx);
    let mut stopping = stop.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop.changed().await;
    });
    let deadline = async move {
        let _ = stopping.changed().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server.into_future() => {
            if let Err(e) = served {
                tracing::warn!(error = %e, "the front stopped with an error");
            }
        }
        () = deadline => {
            tracing::warn!("open connections did not finish within the grace period");
        }
    }
    drop(alive);
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use shared::admin::AdminConfig;
    use shared::pipeline::ingest::IngestConfig;
    use shared::ports::StaticSources;
    use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
    use shared::signature::Secret;
    use tower::ServiceExt as _;

    use super::*;

    fn front(admin: bool) -> Front {
        let docs = Arc::new(MemoryDocumentStore::new());
        let blobs = Arc::new(MemoryBlobStore::new());
        let admin = admin.then(|| {
            Arc::new(Admin::new(
                docs,
                blobs.clone(),
                Arc::new(MemoryQueue::new("delivery")),
                Arc::new(MemoryQueue::new("dlq")),
                Duration::from_secs(60),
                AdminConfig {
                    api_keys: vec![Secret::from("local-admin-key-0001".to_owned())],
                    ..AdminConfig::default()
                },
            ))
        });
        Front {
            ingest: Arc::new(Ingest {
                sources: Arc::new(StaticSources::new([])),
                queue: Arc::new(MemoryQueue::new("inbound")),
                blobs,
                config: IngestConfig::default(),
            }),
            clock: Clock::system(),
            stats: Arc::new(Stats::default()),
            admin,
            media: None,
        }
    }

    async fn status(app: &Router, method: &str, path: &str, key: Option<&str>) -> u16 {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let request = request.body(Body::empty()).unwrap();
        app.clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn one_router_serves_health_webhooks_and_the_management_api() {
        let (_alive, rx) = watch::channel(());
        let app = router(&front(true), rx);
        assert_eq!(status(&app, "GET", "/healthz", None).await, 200);
        assert_eq!(status(&app, "POST", "/webhooks/nobody", None).await, 404);
        assert_eq!(status(&app, "POST", "/hooks/x", None).await, 404);
        assert_eq!(status(&app, "GET", "/v1/endpoints", None).await, 401);
        let key = Some("local-admin-key-0001");
        assert_eq!(status(&app, "GET", "/v1/endpoints", key).await, 200);
        assert_eq!(status(&app, "PUT", "/v1/endpoints", key).await, 405);
        // A route's `{id}` is the API's own, whatever the front captured before it.
        assert_eq!(status(&app, "GET", "/v1/deliveries/dlv_x", key).await, 404);
        let request = Request::builder()
            .method("GET")
            .uri("/v1/deliveries/dlv_x")
            .header("x-api-key", "local-admin-key-0001")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(
            String::from_utf8_lossy(&body).contains("delivery not found"),
            "{body:?}"
        );
        let (_alive, rx) = watch::channel(());
        let off = router(&front(false), rx);
        assert_eq!(status(&off, "GET", "/v1/endpoints", key).await, 404);
    }

    #[tokio::test]
    async fn the_console_is_served_with_or_without_the_management_api() {
        for admin in [true, false] {
            let (_alive, rx) = watch::channel(());
            let app = router(&front(admin), rx);
            assert_eq!(status(&app, "GET", "/console", None).await, 308);
            assert_eq!(status(&app, "GET", "/console/", None).await, 200);
            assert_eq!(status(&app, "GET", "/console/app.js", None).await, 200);
            assert_eq!(status(&app, "GET", "/console/nope.js", None).await, 404);
            assert_eq!(status(&app, "POST", "/console/", None).await, 405);
        }
    }

    #[tokio::test]
    async fn requests_after_the_front_stopped_are_refused() {
        let (alive, rx) = watch::channel(());
        let app = router(&front(false), rx);
        drop(alive);
        assert_eq!(status(&app, "GET", "/healthz", None).await, 503);
    }
}
