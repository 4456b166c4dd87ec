//! A real HTTP server on 127.0.0.1 playing a subscriber endpoint: it records every request and
//! answers from a script (status, headers, optional delay), then 200 once the script runs out.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The exact body bytes.
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering (to provoke timeouts).
    pub delay: Duration,
}

impl Answer {
    /// A plain answer with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    received: Vec<Received>,
    script: VecDeque<Answer>,
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Starts a receiver on a free port of 127.0.0.1 answering `script` in order.
    pub async fn start(script: Vec<Answer>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Mutex::new(Shared {
            received: Vec::new(),
            script: script.into(),
        }));
        // Every method and path is recorded and answered.
        let app = Router::new().fallback(answer).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .received
            .clone()
    }

    /// What a receiver that deduplicates by `X-Idempotency-Key` keeps: the first arrival of
    /// each key, in arrival order (requests without the header are all kept). Delivery is at
    /// least once, so a key may come again (a retry after a timeout, a redelivered task); the
    /// gateway promises that it then carries the same body, which this checks.
    pub fn distinct(&self) -> Vec<Received> {
        let mut first: std::collections::HashMap<String, usize> = Default::default();
        let mut out: Vec<Received> = Vec::new();
        for r in self.received() {
            let Some(key) = r.header("x-idempotency-key").map(str::to_owned) else {
                out.push(r);
                continue;
            };
            match first.get(&key) {
                Some(&at) => assert!(
                    out[at].body == r.body,
                    "idempotency key {key} ({}) came again with another body:\n{}\n{}",
                    r.header("x-webhook-event").unwrap_or("?"),
                    String::from_utf8_lossy(&out[at].body),
                    String::from_utf8_lossy(&r.body)
                ),
                None => {
                    first.insert(key, out.len());
                    out.push(r);
                }
            }
        }
        out
    }
}

async fn answer(State(state): State<Arc<Mutex<Shared>>>, req: Request) -> Response {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    // The exact bytes, whatever their size.
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let next = {
        let mut s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.received.push(Received {
            path,
            headers,
            body,
        });
        s.script.pop_front().unwrap_or(Answer::status(200))
    };
    tokio::time::sleep(next.delay).await;
    let mut response = Response::builder().status(next.status);
    for (k, v) in &next.headers {
        response = response.header(k, v);
    }
    response
        .body(Body::from("ok"))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
