//! A Lambda runtime API on 127.0.0.1, enough to run the real function binaries outside Lambda:
//! `GET /2018-06-01/runtime/invocation/next` (long-polled until an invocation is handed over),
//! `POST …/invocation/{id}/response|error` and `POST …/runtime/init/error`. It records when the
//! process first asked for work: with every Lambda main building its SDK clients and opening
//! its connections before that first poll, spawn → first poll is the cold start.
//!
//! One emulator serves one process; dropping it ends its listener and connections.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// A boxed response future (the handlers of [`spawn_server`]).
pub type Reply = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// Serves HTTP/1 on `listener` with `handle` until the returned task is aborted; aborting it
/// also ends every open connection (and any long poll in progress).
pub fn spawn_server(
    listener: TcpListener,
    handle: Arc<dyn Fn(Request<Incoming>) -> Reply + Send + Sync>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                Some(_) = connections.join_next() => continue,
            };
            let Ok((stream, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let handle = handle.clone();
            let service = service_fn(move |req| {
                let reply = handle(req);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            connections.spawn(async move {
                let _ended = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// A response with `status` and `body`.
pub fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
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
        let handler_inner = inner.clone();
        let server = spawn_server(
            listener,
            Arc::new(move |req| -> Reply {
                let inner = handler_inner.clone();
                Box::pin(async move { inner.handle(req).await })
            }),
        );
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

impl Inner {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return respond(StatusCode::NOT_FOUND, "unknown path");
        };
        let method = req.method().clone();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return respond(StatusCode::BAD_REQUEST, "unreadable body"),
        };
        match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
            (Method::GET, ["invocation", "next"]) => self.next().await,
            (Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
                let outcome = if *kind == "response" {
                    Outcome::Response(body)
                } else {
                    Outcome::Error(body)
                };
                let waiting = self
                    .running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(*id);
                match waiting {
                    Some(done) => {
                        let _gone = done.send(outcome);
                        respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
                    }
                    None => respond(StatusCode::BAD_REQUEST, "unknown request id"),
                }
            }
            (Method::POST, ["init", "error"]) => {
                *self
                    .init_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some(String::from_utf8_lossy(&body).into_owned());
                respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
            _ => respond(StatusCode::NOT_FOUND, "unknown path"),
        }
    }

    async fn next(&self) -> Response<Full<Bytes>> {
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
        let client = reqwest::Client::new();
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
}
