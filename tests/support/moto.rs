//! A moto server (DynamoDB + SQS over the wire on 127.0.0.1) for adapter and pipeline tests.
//!
//! `.ci/run` and `scripts/test.sh` start one and export `WAGATE_MOTO_URL`; without it, the first
//! test that asks starts its own on a free port, through a small Python wrapper that kills moto
//! when this test process exits (its stdin closes). Tests isolate themselves with unique table and
//! queue names instead of resetting shared state, so they can run in parallel. The heavy suites
//! start a [`Server`] of their own.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_adapters::{Clients, SqsQueue, provision};
use chrono::Utc;
use shared::ports::codec::decode;
use shared::ports::{BlobStore, Queue};

/// The moto endpoint, e.g. `http://127.0.0.1:5000`.
pub fn url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("WAGATE_MOTO_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start(),
    })
    .clone()
}

/// Keeps the shared server's wrapper (and with it moto) alive as long as the test process.
static CHILD: Mutex<Option<Child>> = Mutex::new(None);

fn start() -> String {
    let (url, child) = spawn();
    *CHILD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child);
    url
}

/// Starts moto on a free port through a small Python wrapper that kills it when its stdin
/// closes (when the test process exits, or the [`Server`] is dropped); returns its URL once it
/// listens.
fn spawn() -> (String, Child) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    // scripts/moto-server.py: moto_server with DynamoDB's atomic conditional writes.
    let wrapper = "import subprocess, sys\n\
        p = subprocess.Popen([sys.executable, sys.argv[2], '-H', '127.0.0.1', '-p', sys.argv[1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
        sys.stdin.read()\n\
        p.kill()\n";
    let launcher = crate::repo_root().join("scripts/moto-server.py");
    let child = Command::new("python3")
        .args(["-c", wrapper, &port.to_string()])
        .arg(&launcher)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start moto_server (pip install 'moto[server]')");
    // moto imports slowly on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(_) => return (format!("http://127.0.0.1:{port}"), child),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("moto_server did not come up on port {port}: {e}"),
        }
    }
}

/// A moto server of one test's own, for the heavy suites (a thousand webhooks, the whole
/// pipeline): they neither wait behind the other suites' calls on the shared server nor slow
/// them down. Stopped when dropped.
#[derive(Debug)]
pub struct Server {
    url: String,
    child: Child,
}

impl Server {
    /// Starts one on a free port.
    pub fn start() -> Self {
        let (url, child) = spawn();
        Self { url, child }
    }

    /// Its endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// SDK clients pointed at it.
    pub async fn clients(&self) -> Clients {
        Clients::new(&aws_adapters::local_sdk_config(&self.url, "us-east-1").await)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the wrapper's stdin makes it kill moto; then reap the wrapper.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// SDK clients pointed at moto.
pub async fn clients() -> Clients {
    Clients::new(&aws_adapters::local_sdk_config(&url(), "us-east-1").await)
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A fresh wagate table on moto; returns its name.
pub async fn table(clients: &Clients) -> String {
    let name = unique("wagate");
    provision::ensure_table(&clients.dynamodb, &name)
        .await
        .expect("create table on moto");
    name
}

/// A fresh queue on moto (with a dead-letter queue after `max_receives` when given).
pub async fn queue(
    clients: &Clients,
    visibility_secs: u32,
    max_receives: Option<u32>,
) -> (SqsQueue, Option<SqsQueue>) {
    let dlq = match max_receives {
        Some(max) => {
            let url = provision::ensure_queue(&clients.sqs, &unique("dlq"), 30, None)
                .await
                .expect("create DLQ");
            Some((SqsQueue::new(clients.sqs.clone(), &url), max))
        }
        None => None,
    };
    let url = provision::ensure_queue(
        &clients.sqs,
        &unique("q"),
        visibility_secs,
        dlq.as_ref().map(|(q, max)| (q.url(), *max)),
    )
    .await
    .expect("create queue");
    (SqsQueue::new(clients.sqs.clone(), url), dlq.map(|(q, _)| q))
}

/// Creates the table and queues on moto exactly as `template.yaml` declares them, with
/// `scripts/provision-from-template.py`, under a fresh prefix; returns the prefix (the table's
/// name; queues are `{prefix}-inbound`, `{prefix}-inbound-dlq`, …).
pub fn from_template(prefix: &str) -> String {
    from_template_at(&url(), prefix)
}

/// [`from_template`] on the moto server at `url`.
pub fn from_template_at(url: &str, prefix: &str) -> String {
    let prefix = unique(prefix);
    let out = Command::new("python3")
        .arg(crate::repo_root().join("scripts/provision-from-template.py"))
        .args(["--endpoint-url", url, "--prefix", &prefix])
        .output()
        .expect(
            "run scripts/provision-from-template.py (needs boto3 and PyYAML, which moto brings)",
        );
    assert!(
        out.status.success(),
        "provision-from-template.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    prefix
}

/// Everything on `queue`, decoded, as a consumer reads it: received, then deleted, until the
/// queue holds nothing (visible, in flight or delayed), or `deadline` passes (a panic). Call it
/// once the producers are done. SQS delivers at least once, so the same message may be in the
/// result twice; callers deduplicate by event id, as the pipeline does.
pub async fn drain<T: serde::de::DeserializeOwned>(
    queue: &SqsQueue,
    blobs: &dyn BlobStore,
    deadline: Duration,
) -> Vec<T> {
    let started = Instant::now();
    let mut out = Vec::new();
    loop {
        // A receive lost on a slow server hides its messages for the visibility timeout only.
        let got = queue
            .receive(10, Duration::from_secs(1), Duration::from_secs(30))
            .await
            .expect("receive from moto");
        if got.is_empty() && queue.depth().await.expect("queue depth on moto") == 0 {
            return out;
        }
        for m in got {
            let decoded = decode(&m.body, blobs, Utc::now())
                .await
                .expect("a message the pipeline wrote decodes");
            out.push(decoded);
            queue.delete(&m.receipt).await.expect("delete on moto");
        }
        assert!(
            started.elapsed() < deadline,
            "{} still holds messages after {deadline:?}",
            queue.url()
        );
    }
}
