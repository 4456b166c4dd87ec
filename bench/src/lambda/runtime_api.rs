//! A Lambda runtime API on 127.0.0.1, enough to run the real function binaries outside Lambda:
//! `GET /2018-06-01/runtime/invocation/next` (long-polled until an invocation is handed over),
//! `POST …/invocation/{id}/response|error` and `POST …/runtime/init/error`. It records when the
//! process first asked for work: with every Lambda main building its SDK clients and opening
//! its connections before that first poll, spawn → first poll is the cold start.
//!
//! One emulator serves one process; dropping it ends its listener and connections.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// A boxed response future (the handlers of [`spawn_server`]).
pub type Reply = Pin<Box<dyn Future<Output = Response> + Send>>;

/// Serves HTTP/1 on `listener` with `handle` (every method and path) until the returned task is
/// aborted; aborting it also ends every open connection (a request in progress, such as a long
/// poll, is answered 503 first).
pub fn spawn_server(
    listener: TcpListener,
    handle: Arc<dyn Fn(Request) -> Reply + Send + Sync>,
) -> JoinHandle<()> {
    serve(
        listener,
        Router::new().fallback(move |req: Request| handle(req)),
    )
}

/// Serves `app` on `listener` until the returned task is aborted: that closes the listener,
/// answers the requests in progress 503 and closes every connection.
fn serve(listener: TcpListener, app: Router) -> JoinHandle<()> {
    // The sender lives as long as the task: its drop is the signal to stop.
    let (alive, alive_rx) = watch::channel(());
    let mut stopped = alive_rx.clone();
    let app = app.layer(middleware::from_fn_with_state(alive_rx, until_stopped));
    tokio::spawn(async move {
        let _alive = alive;
        let _served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _gone = stopped.changed().await;
            })
            .await;
    })
}

/// Ends a request when its server is stopped: axum's connections are tasks of their own, which
/// aborting [`serve`]'s task would otherwise leave answering.
async fn until_stopped(
    State(alive): State<watch::Receiver<()>>,
    request: Request,
    next: Next,
) -> Response {
    wagate_local::server::unless_stopped(alive, request, next, || {
        respond(StatusCode::SERVICE_UNAVAILABLE, "the server stopped")
    })
    .await
}

/// A response with `status` and `body`.
pub fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = status;
    r
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST …/response` with this body.
    Response(Vec<u8>),
    /// `POST …/error` with this body.
    Error(Vec<u8>),
}

struct Pending {
    id: String,
    event: Vec<u8>,
    /// When the caller stops waiting (Unix ms): the `Lambda-Runtime-Deadline-Ms` the function sees.
    deadline_ms: i64,
    done: oneshot::Sender<Outcome>,
}

struct Inner {
    function_arn: String,
    /// Invocations waiting for the process to ask for them.
    next: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    /// Invocations handed over, by request id.
    running: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_poll: watch::Sender<Option<Instant>>,
    init_error: Mutex<Option<String>>,
}

/// The emulator for one function process.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    submit: mpsc::Sender<Pending>,
    first_poll: watch::Receiver<Option<Instant>>,
    inner: Arc<Inner>,
    server: JoinHandle<()>,
    counter: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("function_arn", &self.function_arn)
            .finish_non_exhaustive()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const PREFIX: &str = "/2018-06-01/runtime/";

impl RuntimeApi {
    /// Starts an emulator on a free port of 127.0.0.1 for the function named `function`.
    pub async fn start(function: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (submit, next) = mpsc::channel(16);
        let (first_tx, first_rx) = watch::channel(None);
        let inner = Arc::new(Inner {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
            next: tokio::sync::Mutex::new(next),
            running: Mutex::new(HashMap::new()),
            first_poll: first_tx,
            init_error: Mutex::new(None),
        });
        let server = serve(listener, router(inner.clone()));
        Ok(Self {
            addr,
            submit,
            first_poll: first_rx,
            inner,
            server,
            counter: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the process.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits until the process first asks for an invocation (or `timeout`); the instant it did.
    pub async fn first_poll(&self, timeout: Duration) -> anyhow::Result<Instant> {
        let mut rx = self.first_poll.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        if let Some(reason) = self.init_error() {
            bail!("the function reported an init error: {reason}");
        }
        match waited {
            Ok(Ok(at)) => at.context("first poll recorded without a time"),
            Ok(Err(_)) => bail!("the emulator stopped"),
            Err(_) => bail!("no poll for an invocation within {timeout:?}"),
        }
    }

    /// The init error the process reported, if any.
    pub fn init_error(&self) -> Option<String> {
        self.inner
            .init_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Hands `event` to the process and waits for its answer (or `timeout`).
    pub async fn invoke(&self, event: Vec<u8>, timeout: Duration) -> anyhow::Result<Outcome> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            id: format!("bench-{n:08}-{}", ulid::Ulid::new()),
            event,
            deadline_ms: chrono::Utc::now().timestamp_millis()
                + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2),
            done,
        };
        self.submit
            .send(pending)
            .await
            .context("the emulator stopped")?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => bail!("the invocation was dropped (did the process exit?)"),
            Err(_) => bail!("no answer within {timeout:?}"),
        }
    }
}

/// The routes; every other path or method is 404.
fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        // `get` alone would answer HEAD too.
        .route(
            &format!("{PREFIX}invocation/next"),
            get(next).head(unknown_path).fallback(unknown_path),
        )
        .route(
            &format!("{PREFIX}invocation/{{id}}/response"),
            post(response).fallback(unknown_path),
        )
        .route(
            &format!("{PREFIX}invocation/{{id}}/error"),
            post(error).fallback(unknown_path),
        )
        .route(
            &format!("{PREFIX}init/error"),
            post(init_error).fallback(unknown_path),
        )
        .fallback(unknown_path)
        // Whatever the function answers is taken, however large.
        .layer(DefaultBodyLimit::disable())
        .with_state(inner)
}

async fn unknown_path() -> Response {
    respond(StatusCode::NOT_FOUND, "unknown path")
}

async fn next(State(inner): State<Arc<Inner>>) -> Response {
    inner.next().await
}

async fn response(
    State(inner): State<Arc<Inner>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    inner.finish(id, body, Outcome::Response)
}

async fn error(
    State(inner): State<Arc<Inner>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    inner.finish(id, body, Outcome::Error)
}

async fn init_error(
    State(inner): State<Arc<Inner>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        return respond(StatusCode::BAD_REQUEST, "unreadable body");
    };
    *inner
        .init_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner) =
        Some(String::from_utf8_lossy(&body).into_owned());
    respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

impl Inner {
    /// Hands the answer to invocation `id` to whoever waits for it.
    fn finish(
        &self,
        id: Result<Path<String>, PathRejection>,
        body: Result<Bytes, BytesRejection>,
        outcome: fn(Vec<u8>) -> Outcome,
    ) -> Response {
        let Ok(body) = body else {
            return respond(StatusCode::BAD_REQUEST, "unreadable body");
        };
        let waiting = id.ok().and_then(|Path(id)| {
            self.running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id)
        });
        match waiting {
            Some(done) => {
                let _gone = done.send(outcome(body.to_vec()));
                respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            None => respond(StatusCode::BAD_REQUEST, "unknown request id"),
        }
    }

    async fn next(&self) -> Response {
        self.first_poll.send_if_modified(|first| {
            if first.is_none() {
                *first = Some(Instant::now());
                true
            } else {
                false
            }
        });
        let pending = self.next.lock().await.recv().await;
        let Some(pending) = pending else {
            return respond(StatusCode::GONE, "the emulator stopped");
        };
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(pending.id.clone(), pending.done);
        let mut r = respond(StatusCode::OK, pending.event);
        let headers = r.headers_mut();
        for (name, value) in [
            ("lambda-runtime-aws-request-id", pending.id),
            (
                "lambda-runtime-deadline-ms",
                pending.deadline_ms.to_string(),
            ),
            (
                "lambda-runtime-invoked-function-arn",
                self.function_arn.clone(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ] {
            if let Ok(v) = value.parse() {
                headers.insert(name, v);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_invocation_goes_out_on_next_and_comes_back_on_response() {
        let api = RuntimeApi::start("probe").await.unwrap();
        let base = format!("http://{}{PREFIX}", api.address());
        let client = aws_adapters::http::client();
        let poller = {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let next = client
                    .get(format!("{base}invocation/next"))
                    .send()
                    .await
                    .unwrap();
                let id = next.headers()["lambda-runtime-aws-request-id"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                // The deadline is the caller's timeout (60 s below), not some fixed far future.
                let deadline: i64 = next.headers()["lambda-runtime-deadline-ms"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(deadline <= chrono::Utc::now().timestamp_millis() + 60_000);
                let event = next.bytes().await.unwrap();
                let answer = client
                    .post(format!("{base}invocation/{id}/response"))
                    .body(format!("echo {}", String::from_utf8_lossy(&event)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 202);
            })
        };
        // Generous bounds, not expectations: a busy machine may stall this for seconds.
        api.first_poll(Duration::from_secs(60)).await.unwrap();
        let outcome = api
            .invoke(b"ping".to_vec(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Response(b"echo ping".to_vec()));
        poller.await.unwrap();
        let unknown = client
            .post(format!("{base}invocation/nope/response"))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 400);
        let init = client
            .post(format!("{base}init/error"))
            .body("boom")
            .send()
            .await
            .unwrap();
        assert_eq!(init.status(), 202);
        assert_eq!(api.init_error().as_deref(), Some("boom"));
    }

    #[tokio::test]
    async fn other_paths_and_methods_are_unknown() {
        let api = RuntimeApi::start("probe").await.unwrap();
        let base = format!("http://{}{PREFIX}", api.address());
        let client = aws_adapters::http::client();
        for request in [
            client.post(format!("{base}invocation/next")),
            client.head(format!("{base}invocation/next")),
            client.get(format!("{base}invocation/x/response")),
            client.post(format!("{base}invocation/x/other")),
            client.get(format!("{base}init/error")),
            client.post(format!("http://{}/elsewhere", api.address())),
        ] {
            assert_eq!(request.send().await.unwrap().status(), 404);
        }
    }

    #[tokio::test]
    async fn aborting_the_server_ends_its_requests_and_its_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrived_tx, mut arrived) = mpsc::channel(1);
        let server = spawn_server(
            listener,
            Arc::new(move |_req: Request| -> Reply {
                let arrived_tx = arrived_tx.clone();
                Box::pin(async move {
                    arrived_tx.send(()).await.unwrap();
                    std::future::pending::<Response>().await
                })
            }),
        );
        let request = tokio::spawn(
            aws_adapters::http::client()
                .get(format!("http://{addr}/"))
                .send(),
        );
        arrived.recv().await.unwrap();
        server.abort();
        // Generous bounds: the answer and the closed port come as soon as the abort is seen.
        let answer = tokio::time::timeout(Duration::from_secs(60), request)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(answer.status(), 503);
        tokio::time::timeout(Duration::from_secs(60), async {
            while tokio::net::TcpStream::connect(addr).await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }
}
