//! The fault run: thousands of mixed, partly duplicated webhooks through the whole pipeline while
//! the receiver fails or stalls a share of requests and the gateway is crashed and restarted
//! mid-run; then every accepted event must have been delivered or be in the dead-letter queue.
//!
//! With the embedded backend the crash aborts every stage and the front mid-flight and starts
//! them again over the surviving stores (what a Lambda crash does over DynamoDB and SQS). With
//! `--backend sqlite` or `--backend aws` the gateway is a child process, killed with SIGKILL and
//! started again over its data directory (or DynamoDB and SQS).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use futures::StreamExt;
use shared::delivery::request::DeliveryTask;
use shared::ports::codec::decode;
use shared::ports::faults::Faults;
use shared::signature::EndpointSecret;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use wagate_local::backend::{Backend, Stores};
use wagate_local::config::LocalConfig;
use wagate_local::gateway::{Gateway, Options};
use wagate_local::receiver::{Receiver, Rng, item_key, items};
use wagate_local::sample::{meta_status, meta_text, signature_headers, waha_message, wamid};

/// Fault run settings.
#[derive(Debug, Clone)]
pub struct FaultOptions {
    /// Webhooks to post, duplicates included.
    pub webhooks: usize,
    /// Share of posts that repeat an earlier webhook byte for byte.
    pub duplicates: f64,
    /// Share of deliveries the receiver answers 500.
    pub fail_rate: f64,
    /// Share of deliveries the receiver stalls past the delivery timeout.
    pub stall_rate: f64,
    /// Posts in flight.
    pub concurrency: usize,
    /// Crash and restart the gateway after this share of the posts (none when outside 0–1).
    pub restart_at: f64,
    /// Give up waiting for deliveries after this long.
    pub deadline: Duration,
    /// Random seed.
    pub seed: u64,
    /// Share of storage calls failed cleanly (nothing applied).
    pub clean_faults: f64,
    /// Share of storage calls applied and then reported as failed.
    pub ambiguous_faults: f64,
    /// Where to run.
    pub backend: Backend,
}

/// What the run found.
#[derive(Debug, Clone, Default)]
pub struct FaultReport {
    /// POSTs made (first tries; provider-style retries not counted).
    pub posted: usize,
    /// Of those, byte-identical repeats of an earlier webhook.
    pub duplicate_posts: usize,
    /// Provider-style retries after a 5xx or a refused connection.
    pub retries: usize,
    /// Distinct webhooks answered 2xx.
    pub accepted: usize,
    /// Events those webhooks carry (messages and statuses).
    pub expected: usize,
    /// Of those, delivered to the receiver (verified, answered 2xx).
    pub delivered: usize,
    /// Of those, in the delivery dead-letter queue (after the last attempt).
    pub dead_lettered: usize,
    /// Neither: lost.
    pub lost: usize,
    /// Deliveries the receiver got more than once under one idempotency key (a receiver
    /// deduplicates them; they happen when a crash lands between the POST and the ack).
    pub redelivered: usize,
    /// Deliveries failed or stalled on purpose by the receiver.
    pub injected_failures: u64,
    /// Batches delivered and the items they held.
    pub batches: usize,
    /// Items delivered in batches.
    pub batched_items: usize,
    /// Messages left in the stage dead-letter queues (inbound, buffer, outbound).
    pub stage_dead_letters: [u64; 3],
    /// What they hold: `stage type id` of each (the first 20), to look up in the log.
    pub stage_dead_letter_items: Vec<String>,
    /// Restarts done.
    pub restarts: usize,
    /// Storage faults injected in the in-memory backend: (clean, ambiguous). With `--backend
    /// sqlite` or `aws` they are injected in the gateway process and not counted here.
    pub storage_faults: (u64, u64),
    /// Storage faults were asked for but injected in the gateway child (`sqlite`, `aws`),
    /// which is killed, not asked: they are not counted here.
    pub faults_in_child: bool,
    /// Seconds from the first post to the end of the check.
    pub elapsed_secs: f64,
}

impl FaultReport {
    /// The summary lines.
    pub fn render(&self) -> String {
        format!(
            "posted {} webhooks ({} duplicates, {} provider retries), {} restart(s)\n\
             accepted {} | expected events {} | delivered {} | dlq {} | lost {}\n\
             redelivered under a seen idempotency key: {} | injected receiver failures: {} | batches: {} holding {} messages\n\
             stage DLQ messages: inbound {}, buffer {}, outbound {}{}\n\
             injected storage faults: {}\n\
             elapsed {:.1} s",
            self.posted,
            self.duplicate_posts,
            self.retries,
            self.restarts,
            self.accepted,
            self.expected,
            self.delivered,
            self.dead_lettered,
            self.lost,
            self.redelivered,
            self.injected_failures,
            self.batches,
            self.batched_items,
            self.stage_dead_letters[0],
            self.stage_dead_letters[1],
            self.stage_dead_letters[2],
            self.stage_dead_letter_items
                .iter()
                .map(|i| format!("\n  {i}"))
                .collect::<String>(),
            if self.faults_in_child {
                "injected in the gateway child process, not counted here".to_owned()
            } else {
                format!(
                    "{} clean, {} ambiguous",
                    self.storage_faults.0, self.storage_faults.1
                )
            },
            self.elapsed_secs,
        )
    }
}

/// One distinct webhook of the load.
struct Webhook {
    source: &'static str,
    body: String,
    expected: Vec<String>,
}

fn workload(options: &FaultOptions) -> (Vec<Webhook>, Vec<usize>) {
    let mut rng = Rng::new(options.seed);
    let now = Utc::now();
    let mut unique: Vec<Webhook> = Vec::new();
    let mut order = Vec::with_capacity(options.webhooks);
    for i in 0..options.webhooks {
        if !unique.is_empty() && rng.next_f64() < options.duplicates {
            let pick = usize::try_from(rng.next_u64() % unique.len() as u64).unwrap_or(0);
            order.push(pick);
            continue;
        }
        // 300 customers, so conversations get bursts that the buffer batches.
        let customer = 15_550_100_000 + rng.next_u64() % 300;
        let from = customer.to_string();
        let name = format!("Customer {}", customer % 1000);
        let at = now + chrono::Duration::milliseconds(i64::try_from(i).unwrap_or(0));
        let kind = rng.next_f64();
        let webhook = if kind < 0.5 {
            let id = wamid();
            Webhook {
                source: "meta-demo",
                body: meta_text(&from, &name, &id, &format!("message {i}"), at).to_string(),
                expected: vec![format!("whatsapp.message.received {id}")],
            }
        } else if kind < 0.75 {
            let id = wamid();
            let status =
                ["sent", "delivered", "read"][usize::try_from(rng.next_u64() % 3).unwrap_or(0)];
            Webhook {
                source: "meta-demo",
                body: meta_status(&from, &id, status, at).to_string(),
                expected: vec![format!("whatsapp.message.{status} {id}")],
            }
        } else {
            let key = format!("3EB0{}", ulid::Ulid::new());
            Webhook {
                source: "waha-demo",
                body: waha_message(&from, &name, &key, &format!("message {i}"), at).to_string(),
                expected: vec![format!("whatsapp.message.received false_{from}@c.us_{key}")],
            }
        };
        order.push(unique.len());
        unique.push(webhook);
    }
    (unique, order)
}

/// The gateway under test, in-process or as a child process.
enum Running {
    InProcess(Box<Gateway>),
    Child(tokio::process::Child),
}

struct Harness {
    options: FaultOptions,
    config: LocalConfig,
    config_path: std::path::PathBuf,
    port: u16,
}

fn gateway_options(config: LocalConfig) -> Options {
    let mut options = Options::new(config);
    options.concurrency = 4;
    options.visibility = Some(Duration::from_secs(30));
    options.retry_schedule = Some(retry_schedule());
    options.sweep_every = None;
    options
}

fn retry_schedule() -> Vec<Duration> {
    [1, 2, 4, 8, 15, 30].map(Duration::from_secs).to_vec()
}

async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.map_or_else(|| anyhow::anyhow!("bind failed"), anyhow::Error::from))
        .with_context(|| format!("binding 127.0.0.1:{port}"))
}

impl Harness {
    async fn start(&self, stores: Option<Stores>) -> anyhow::Result<Running> {
        match &self.options.backend {
            Backend::Memory => {
                let stores = stores.unwrap_or_else(Stores::memory);
                let listener = bind(self.port).await?;
                let gateway =
                    Gateway::start(stores, listener, gateway_options(self.config.clone())).await?;
                Ok(Running::InProcess(Box::new(gateway)))
            }
            Backend::Aws(_) | Backend::Sqlite(_) => {
                let exe = gateway_binary()?;
                let mut cmd = tokio::process::Command::new(exe);
                cmd.arg("serve")
                    .arg("--config")
                    .arg(&self.config_path)
                    .args(["--port", &self.port.to_string()])
                    .args(["--no-receiver", "--quiet"])
                    .args(["--concurrency", "4", "--visibility-timeout", "30"])
                    .args(["--retry-schedule", "1,2,4,8,15,30", "--sweep-every", "0"])
                    .kill_on_drop(true);
                match &self.options.backend {
                    Backend::Aws(aws) => {
                        cmd.args(["--backend", "aws", "--create"])
                            .args(["--region", &aws.region, "--table", &aws.table])
                            .args(["--queue-prefix", &aws.queue_prefix]);
                        if let Some(url) = &aws.endpoint_url {
                            cmd.args(["--endpoint-url", url]);
                        }
                    }
                    Backend::Sqlite(dir) => {
                        cmd.args(["--backend", "sqlite", "--data-dir"]).arg(dir);
                    }
                    Backend::Memory => {}
                }
                let o = &self.options;
                if o.clean_faults > 0.0 || o.ambiguous_faults > 0.0 {
                    // A new seed per start, so a restart does not replay the same faults.
                    let seed = o.seed
                        ^ u64::from(std::process::id())
                        ^ Utc::now().timestamp_subsec_nanos() as u64;
                    cmd.arg(format!(
                        "--inject-faults={},{},{}",
                        o.clean_faults,
                        o.ambiguous_faults,
                        seed % (1 << 52)
                    ));
                }
                let child = cmd.spawn().context("starting the gateway process")?;
                Ok(Running::Child(child))
            }
        }
    }

    /// Kills the gateway without any draining and starts it again.
    async fn restart(&self, running: Running) -> anyhow::Result<Running> {
        match running {
            Running::InProcess(gateway) => {
                let stores = (*gateway).crash();
                self.start(Some(stores)).await
            }
            Running::Child(mut child) => {
                child.kill().await.context("killing the gateway")?;
                self.start(None).await
            }
        }
    }
}

/// Posts one webhook until it is answered 2xx (as a provider retries); returns the retries, or
/// `None` if it was never accepted.
async fn post(
    client: &reqwest::Client,
    base: &str,
    config: &LocalConfig,
    webhook: &Webhook,
) -> (bool, usize) {
    let Some(source) = config.source(webhook.source) else {
        return (false, 0);
    };
    let url = format!("{base}/webhooks/{}", webhook.source);
    let headers = signature_headers(source, "", webhook.body.as_bytes());
    for attempt in 0..600 {
        let mut req = client
            .post(&url)
            .header("content-type", "application/json")
            .body(webhook.body.clone());
        for (name, value) in &headers {
            req = req.header(name.as_str(), value);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return (true, attempt),
            Ok(r) if r.status().is_client_error() => return (false, attempt),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    (false, 600)
}

/// Runs the fault run.
pub async fn run(options: FaultOptions) -> anyhow::Result<FaultReport> {
    let (receiver, secret) = Receiver::start_local(
        options.fail_rate,
        options.stall_rate,
        Duration::from_secs(3),
        options.seed ^ 0x5EED,
    )
    .await?;
    let mut config = LocalConfig::sample()?;
    config.endpoints = vec![receiver.endpoint("ep_fault", &secret, "fault run receiver", &["*"])];
    for (k, v) in [
        ("DELIVERY_TIMEOUT_SECONDS", "2"),
        ("BUFFER_WINDOW_SECONDS", "1"),
        ("MAX_WAIT_SECONDS", "5"),
        ("LEASE_SECONDS", "10"),
        ("MAX_ATTEMPTS", "8"),
    ] {
        config.settings.insert(k.into(), v.into());
    }
    let config_path =
        std::env::temp_dir().join(format!("wagate-fault-{}.json", std::process::id()));
    std::fs::write(&config_path, config_json(&config, &secret)?)?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let faults = (options.clean_faults > 0.0 || options.ambiguous_faults > 0.0).then(|| {
        Faults::random(
            options.clean_faults,
            options.ambiguous_faults,
            options.seed ^ 0xFA17,
        )
    });
    // The embedded stores as the gateway sees them (faults injected, kept across the restart)
    // and as the check reads them afterwards (no faults).
    let (first, exact) = match (&options.backend, &faults) {
        (Backend::Memory, Some(faults)) => {
            let raw = Stores::memory();
            (Some(raw.clone().with_faults(faults)), Some(raw))
        }
        _ => (None, None),
    };
    let harness = Harness {
        options: options.clone(),
        config: config.clone(),
        config_path,
        port,
    };
    let (unique, order) = workload(&options);
    let started = Instant::now();
    let running = Arc::new(Mutex::new(Some(harness.start(first).await?)));
    let base = format!("http://{}", SocketAddr::from(([127, 0, 0, 1], port)));
    wait_healthy(&base).await?;
    let client = aws_adapters::http::client_builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let restart_after = if (0.0..1.0).contains(&options.restart_at) {
        (options.webhooks as f64 * options.restart_at) as usize
    } else {
        usize::MAX
    };
    let mut report = FaultReport {
        posted: order.len(),
        ..FaultReport::default()
    };
    let mut seen = BTreeSet::new();
    for &u in &order {
        if !seen.insert(u) {
            report.duplicate_posts += 1;
        }
    }
    let mut accepted = vec![false; unique.len()];
    let posts = futures::stream::iter(order.iter().enumerate())
        .map(|(i, &u)| {
            let (client, base, config, unique, running, harness) =
                (&client, &base, &config, &unique, running.clone(), &harness);
            async move {
                if i == restart_after {
                    let mut guard = running.lock().await;
                    if let Some(r) = guard.take() {
                        match harness.restart(r).await {
                            Ok(r) => *guard = Some(r),
                            Err(e) => eprintln!("restart failed: {e:#}"),
                        }
                    }
                }
                let (ok, retries) = post(client, base, config, &unique[u]).await;
                (u, ok, retries, i == restart_after)
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    futures::pin_mut!(posts);
    let mut done = 0usize;
    while let Some((u, ok, retries, restarted)) = posts.next().await {
        accepted[u] |= ok;
        report.retries += retries;
        report.restarts += usize::from(restarted);
        done += 1;
        if done.is_multiple_of(1000) {
            eprintln!(
                "fault run: {done}/{} posted, {} delivered so far",
                order.len(),
                receiver.collected().items.len()
            );
        }
    }
    let expected: Vec<&String> = unique
        .iter()
        .zip(&accepted)
        .filter(|(_, ok)| **ok)
        .flat_map(|(w, _)| &w.expected)
        .collect();
    report.accepted = accepted.iter().filter(|a| **a).count();
    report.expected = expected.len();
    // Stores for reading queue depths and the dead-letter queue.
    let stores = match (&options.backend, &*running.lock().await) {
        _ if exact.is_some() => exact.clone().context("the exact stores")?,
        (_, Some(Running::InProcess(g))) => g.stores().clone(),
        (Backend::Aws(aws), _) => {
            let mut aws = aws.clone();
            aws.create = false;
            Stores::open(&Backend::Aws(aws)).await?
        }
        (Backend::Sqlite(dir), _) => {
            let data = wagate_local::sqlite::DataDir::open_shared(dir)
                .map_err(|e| anyhow::anyhow!("opening {}: {e}", dir.display()))?;
            Stores::on_data_dir(&data, format!("SQLite in {}", dir.display()))
        }
        (Backend::Memory, _) => anyhow::bail!("the gateway did not restart"),
    };
    let mut quiet_since: Option<Instant> = None;
    loop {
        let collected = receiver.collected();
        let missing = expected
            .iter()
            .filter(|k| !collected.items.contains_key(**k))
            .count();
        if missing == 0 || started.elapsed() > options.deadline {
            break;
        }
        let pending = stores.pending().await.unwrap_or(1);
        if pending == 0 {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(5) {
                break;
            }
        } else {
            quiet_since = None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let collected = receiver.collected();
    let dlq = dead_lettered(&stores).await?;
    for key in &expected {
        if collected.items.contains_key(*key) {
            report.delivered += 1;
        } else if dlq.contains_key(*key) {
            report.dead_lettered += 1;
        } else {
            report.lost += 1;
        }
    }
    report.redelivered = collected.by_key.values().filter(|n| **n > 1).count();
    report.injected_failures = collected.injected_failures;
    report.batches = collected.batches.len();
    report.batched_items = collected.batches.iter().sum();
    for (n, pair) in stores.queues[..3].iter().enumerate() {
        report.stage_dead_letters[n] = pair.depth.1.get().await.unwrap_or(0);
    }
    report.stage_dead_letter_items = stage_dead_letter_items(&stores).await?;
    report.storage_faults = faults.as_ref().map_or((0, 0), |f| f.injected());
    report.faults_in_child =
        faults.is_none() && (options.clean_faults > 0.0 || options.ambiguous_faults > 0.0);
    report.elapsed_secs = started.elapsed().as_secs_f64();
    match running.lock().await.take() {
        Some(Running::InProcess(g)) => {
            (*g).shutdown(Duration::ZERO).await;
        }
        Some(Running::Child(mut c)) => {
            let _ = c.kill().await;
        }
        None => {}
    }
    let _ = std::fs::remove_file(&harness.config_path);
    Ok(report)
}

/// The configuration as a file for the child process (sources keep their demo secrets).
fn config_json(config: &LocalConfig, secret: &EndpointSecret) -> anyhow::Result<String> {
    let sample: serde_json::Value = serde_json::from_str(wagate_local::config::SAMPLE)?;
    let endpoint = config.endpoints.first().context("no endpoint")?;
    Ok(serde_json::json!({
        "sources": sample["sources"],
        "endpoints": [{
            "id": endpoint.id,
            "url": endpoint.url,
            "secret": secret.expose(),
            "event_types": endpoint.event_types,
            "batching": endpoint.batching
        }],
        "settings": config.settings
    })
    .to_string())
}

async fn wait_healthy(base: &str) -> anyhow::Result<()> {
    let client = aws_adapters::http::client();
    for _ in 0..600 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the gateway did not come up at {base}")
}

/// Item keys of every delivery task in the delivery dead-letter queue (read without removing:
/// the tasks become visible again after a minute).
/// `stage type id` of what the stage dead-letter queues hold (at most 20), left in place.
async fn stage_dead_letter_items(stores: &Stores) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for (stage, pair) in ["inbound", "buffer", "outbound"].iter().zip(&stores.queues) {
        loop {
            let batch = pair
                .dead_letter
                .receive(10, Duration::ZERO, Duration::from_secs(60))
                .await?;
            if batch.is_empty() || out.len() >= 20 {
                break;
            }
            for m in batch {
                let item: serde_json::Value = decode(&m.body, stores.blobs.as_ref(), Utc::now())
                    .await
                    .unwrap_or(serde_json::Value::Null);
                let field = |k: &str| item[k].as_str().unwrap_or("?").to_owned();
                out.push(format!(
                    "{stage} {} {} (received {} times)",
                    field("type"),
                    field("id"),
                    m.receive_count
                ));
            }
        }
    }
    Ok(out)
}

async fn dead_lettered(stores: &Stores) -> anyhow::Result<HashMap<String, u32>> {
    let mut out = HashMap::new();
    let queue = &stores.delivery().dead_letter;
    loop {
        let batch = queue
            .receive(10, Duration::ZERO, Duration::from_secs(60))
            .await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            let task: DeliveryTask = decode(&m.body, stores.blobs.as_ref(), Utc::now())
                .await
                .context("reading a dead-lettered task")?;
            let envelope: serde_json::Value = serde_json::from_str(task.body.as_str())?;
            let event_type = envelope["type"].as_str().unwrap_or("?").to_owned();
            for item in items(&envelope) {
                *out.entry(item_key(&event_type, item)).or_insert(0) += 1;
            }
        }
    }
    Ok(out)
}

/// The gateway binary the run starts as a child: `wagate`, next to this executable (cargo builds
/// both into the same directory).
fn gateway_binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locating wagate-bench")?;
    let path = exe.with_file_name("wagate");
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: cargo build -p wagate-local (the same profile as wagate-bench)",
        path.display()
    );
    Ok(path)
}
