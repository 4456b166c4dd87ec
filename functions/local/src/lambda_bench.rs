//! `wagate-local lambda-bench`: the real Lambda binaries (`target/release/{ingest,track,…}`),
//! each started as Lambda starts it (its environment, `AWS_LAMBDA_RUNTIME_API` pointing at a
//! [`RuntimeApi`] emulator) against DynamoDB/SQS on moto. Three phases:
//!
//! 1. **Cold start**: spawn → first `GET …/invocation/next`, with the SDK clients built and
//!    the connections opened (each main does that before its first poll), and the peak RSS then.
//! 2. **Pipeline**: signed webhooks invoked on ingest one after another; track, buffer, fanout
//!    and deliver fed by Lambda-like pollers ([`crate::poller`]) with the template's batch sizes,
//!    deliveries to a real receiver on 127.0.0.1. Per function: invocations, duration, CPU time,
//!    peak RSS and every DynamoDB/SQS call it made ([`MeterProxy`]), per webhook: the inputs of
//!    the cost model (`bench/cost-model.py`).
//! 3. **Big batch**: one SQS event of `big_batch` records (10,000: the most an SQS event source
//!    mapping hands over) to a fresh track process, then one to a fresh deliver process: peak
//!    RSS, duration and CPU time for the batch.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::delivery::endpoints::Endpoints;
use shared::ports::{Queue, ReceivedMessage, Source};
use tokio::sync::watch;

use crate::aws_meter::{Call, MeterProxy, Upstream, Usage};
use crate::backend::{AwsBackend, Depth, QUEUES, Stores};
use crate::clock::Clock;
use crate::config::LocalConfig;
use crate::load::p50_p99;
use crate::poller::{PollerSpec, Stage, poll};
use crate::receiver::Receiver;
use crate::runtime_api::{Outcome, RuntimeApi};
use crate::sample::{meta_status, meta_text, signature_headers, wamid};
use crate::stats::StageStats;

/// How long the bench waits for one invocation (and the deadline the function is told): a
/// 10,000-record track batch processes its records one after another, 160–470 ms each against
/// moto's SQS (78 min in all on an idle machine, BENCHMARKS.md).
const INVOCATION_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// The seven functions of the template, in its order.
pub const FUNCTIONS: [&str; 7] = [
    "ingest", "track", "sweep", "fanout", "buffer", "deliver", "admin",
];

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Where the function binaries are (`target/release`).
    pub bin_dir: PathBuf,
    /// DynamoDB/SQS endpoint (moto).
    pub endpoint_url: String,
    /// A DynamoDB endpoint to use instead of moto's for DynamoDB (dynalite: moto's DynamoDB
    /// takes tens of milliseconds per call once its tables fill, too slow for 10,000 records).
    pub dynamodb_url: Option<String>,
    /// Cold starts per function (0: skip the phase).
    pub runs: usize,
    /// Webhooks through the pipeline (0: skip the phase).
    pub webhooks: usize,
    /// Records of the big track and deliver batches (0: skip the phase).
    pub big_batch: usize,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` given to the processes (the template's 256).
    pub memory_mb: u32,
    /// Where the processes' stdout and stderr go, one file per function.
    pub log_dir: PathBuf,
    /// Whether the functions log JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`, as deployed) or text.
    pub json_logs: bool,
    /// Events handed, after the other phases, to a fresh process of the named function (one
    /// process per function, the events in order): the admin API's requests, a sweep's
    /// schedule. Their answers are in [`BenchReport::answers`].
    pub invocations: Vec<(&'static str, Value)>,
}

/// The calls of every process of a run, by function name.
type CallSink = Arc<Mutex<BTreeMap<String, BTreeSet<Call>>>>;

/// The resources of one run on moto, and what the functions are configured with.
struct Stack {
    /// The run's name: the table's, and the prefix of the queues' (`{run}-inbound`, …).
    run: String,
    upstream: Upstream,
    /// The route the bench itself takes to DynamoDB/SQS (and the stores below).
    _router: MeterProxy,
    stores: Stores,
    env: BTreeMap<&'static str, BTreeMap<&'static str, String>>,
    meta: Source,
    /// Every kind of call each function's processes made, by function ([`Call`]).
    calls: CallSink,
    receiver: Receiver,
}

fn queue_url(stores: &Stores, name: &str) -> anyhow::Result<(String, String)> {
    let pair = stores
        .queues
        .iter()
        .find(|p| p.spec.name == name)
        .with_context(|| format!("no {name} queue"))?;
    match (&pair.depth.0, &pair.depth.1) {
        (Depth::Sqs(q), Depth::Sqs(dlq)) => Ok((q.url().to_owned(), dlq.url().to_owned())),
        _ => bail!("the {name} queue is not on SQS"),
    }
}

fn queue(stores: &Stores, name: &str) -> anyhow::Result<(Arc<dyn Queue>, Depth)> {
    let pair = stores
        .queues
        .iter()
        .find(|p| p.spec.name == name)
        .with_context(|| format!("no {name} queue"))?;
    Ok((pair.queue.clone(), pair.depth.0.clone()))
}

impl Stack {
    async fn create(options: &BenchOptions) -> anyhow::Result<Self> {
        let run = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
        let upstream = Upstream {
            default: options.endpoint_url.clone(),
            dynamodb: options.dynamodb_url.clone(),
            ledger: Arc::default(),
        };
        let router = MeterProxy::start(&upstream).await?;
        let stores = Stores::aws(&AwsBackend {
            endpoint_url: Some(router.url().to_owned()),
            region: "us-east-1".into(),
            table: run.clone(),
            queue_prefix: run.clone(),
            create: true,
        })
        .await?;
        let (inbound, _) = queue_url(&stores, "inbound")?;
        let (buffer, _) = queue_url(&stores, "buffer")?;
        let (outbound, _) = queue_url(&stores, "outbound")?;
        let (delivery, delivery_dlq) = queue_url(&stores, "delivery")?;
        let sample: Value = serde_json::from_str(crate::config::SAMPLE)?;
        let config = LocalConfig::sample()?;
        let meta = config
            .source("meta-demo")
            .context("the sample config has no meta-demo source")?
            .clone();
        let (receiver, secret) = Receiver::start_local(0.0, 0.0, Duration::ZERO, 1).await?;
        let mut with_endpoint = config;
        with_endpoint.endpoints = vec![receiver.endpoint(
            "ep_bench",
            &secret,
            "lambda-bench receiver",
            &["whatsapp.message.*"],
        )];
        crate::gateway::apply_endpoints(
            &Endpoints {
                docs: stores.docs.clone(),
            },
            &with_endpoint,
            Utc::now(),
        )
        .await?;
        let table = || ("TABLE_NAME", run.clone());
        let env = BTreeMap::from([
            (
                "ingest",
                BTreeMap::from([
                    table(),
                    ("INBOUND_QUEUE_URL", inbound.clone()),
                    ("WAGATE_SOURCES", sample["sources"].to_string()),
                ]),
            ),
            (
                "track",
                BTreeMap::from([
                    table(),
                    ("BUFFER_QUEUE_URL", buffer.clone()),
                    ("OUTBOUND_QUEUE_URL", outbound.clone()),
                ]),
            ),
            (
                "sweep",
                BTreeMap::from([table(), ("OUTBOUND_QUEUE_URL", outbound.clone())]),
            ),
            (
                "fanout",
                BTreeMap::from([table(), ("DELIVERY_QUEUE_URL", delivery.clone())]),
            ),
            (
                "buffer",
                BTreeMap::from([
                    table(),
                    ("BUFFER_QUEUE_URL", buffer),
                    ("DELIVERY_QUEUE_URL", delivery.clone()),
                    ("BUFFER_WINDOW_SECONDS", "1".into()),
                ]),
            ),
            (
                "deliver",
                BTreeMap::from([
                    table(),
                    ("DELIVERY_QUEUE_URL", delivery.clone()),
                    ("DELIVERY_DLQ_URL", delivery_dlq.clone()),
                    (deliver::Config::ALLOW_LOOPBACK, "true".into()),
                ]),
            ),
            (
                "admin",
                BTreeMap::from([
                    table(),
                    ("DELIVERY_QUEUE_URL", delivery),
                    ("DELIVERY_DLQ_URL", delivery_dlq),
                    ("OUTBOUND_QUEUE_URL", outbound),
                    ("ADMIN_API_KEYS", "lambda-bench-admin-key".into()),
                ]),
            ),
        ]);
        Ok(Self {
            run,
            calls: CallSink::default(),
            upstream,
            _router: router,
            stores,
            env,
            meta,
            receiver,
        })
    }
}

/// One function binary running against its own runtime API emulator.
struct Process {
    name: &'static str,
    child: tokio::process::Child,
    pid: u32,
    api: RuntimeApi,
    proxy: MeterProxy,
    spawned: Instant,
    log: PathBuf,
    calls: CallSink,
}

impl Drop for Process {
    fn drop(&mut self) {
        self.keep_calls();
    }
}

impl Process {
    /// Adds the calls the process made so far to the run's (idempotent: a set union).
    fn keep_calls(&self) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.name.to_owned())
            .or_default()
            .extend(self.proxy.meter().calls());
    }
}

/// `VmHWM` (peak) and `VmRSS` of a process, MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// User + system CPU seconds of a process so far (`/proc/<pid>/stat`, all threads, in the
/// kernel's 100 Hz clock ticks).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

impl Process {
    async fn spawn(
        options: &BenchOptions,
        stack: &Stack,
        name: &'static str,
    ) -> anyhow::Result<Self> {
        let env = &stack.env[name];
        let api = RuntimeApi::start(name).await?;
        let proxy = MeterProxy::start(&stack.upstream).await?;
        let endpoint = proxy.url().to_owned();
        std::fs::create_dir_all(&options.log_dir)?;
        let log_path = options.log_dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let binary = options.bin_dir.join(name);
        let mut command = tokio::process::Command::new(&binary);
        // What Lambda sets for a provided.al2023 function, and nothing from this shell.
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", format!("wagate-{name}"))
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                options.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/wagate-{name}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/21/[$LATEST]bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_SESSION_TOKEN", "test")
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("_HANDLER", "bootstrap")
            .envs(
                options
                    .json_logs
                    .then_some([
                        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
                    ])
                    .into_iter()
                    .flatten(),
            )
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the process ended at once")?;
        Ok(Self {
            name,
            child,
            pid,
            api,
            proxy,
            spawned,
            log: log_path,
            calls: stack.calls.clone(),
        })
    }

    /// Spawn → first poll for work.
    async fn ready(&self) -> anyhow::Result<Duration> {
        let at = self
            .api
            .first_poll(Duration::from_secs(30))
            .await
            .with_context(|| format!("{}: no first poll", self.name))?;
        Ok(at.saturating_duration_since(self.spawned))
    }

    async fn invoke(&self, event: &Value) -> anyhow::Result<(Value, Duration)> {
        let started = Instant::now();
        let outcome = self
            .api
            .invoke(serde_json::to_vec(event)?, INVOCATION_LIMIT)
            .await
            .with_context(|| format!("{}: invocation", self.name))?;
        let took = started.elapsed();
        match outcome {
            Outcome::Response(body) => Ok((serde_json::from_slice(&body)?, took)),
            Outcome::Error(body) => bail!(
                "{}: invocation error {}",
                self.name,
                String::from_utf8_lossy(&body)
            ),
        }
    }

    fn usage(&self) -> BTreeMap<String, Usage> {
        self.proxy.meter().snapshot()
    }

    fn by_item(&self) -> BTreeMap<String, Usage> {
        self.proxy.meter().by_item()
    }

    /// Bytes the process has written to stdout and stderr (CloudWatch Logs ingestion on AWS).
    fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    fn reset_usage(&self) {
        self.proxy.meter().reset();
    }

    async fn stop(mut self) {
        let _gone = self.child.kill().await;
    }
}

/// An SQS event as the event source mapping builds it.
fn sqs_event(queue_arn: &str, messages: &[ReceivedMessage]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": Utc::now().timestamp_millis().to_string(),
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": Utc::now().timestamp_millis().to_string(),
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// An API Gateway HTTP API (payload 2.0) request for `POST /webhooks/{source}`.
fn webhook_event(source: &Source, body: &str, n: usize) -> Value {
    let mut headers = serde_json::Map::new();
    headers.insert("content-type".into(), json!("application/json"));
    headers.insert("content-length".into(), json!(body.len().to_string()));
    headers.insert(
        "host".into(),
        json!("abc123defg.execute-api.us-east-1.amazonaws.com"),
    );
    for (name, value) in signature_headers(source, body.as_bytes()) {
        headers.insert(name.to_ascii_lowercase(), json!(value));
    }
    let id = source.id.to_string();
    let path = format!("/webhooks/{id}");
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{source_id}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123defg",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "lambda-bench"
            },
            "requestId": format!("bench-{n}"),
            "routeKey": "POST /webhooks/{source_id}",
            "stage": "$default",
            "time": Utc::now().format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": Utc::now().timestamp_millis()
        },
        "pathParameters": { "source_id": id },
        "isBase64Encoded": false,
        "body": body
    })
}

/// A queue-fed function as a poller [`Stage`]: each batch is one invocation of the process.
struct Invoked {
    process: Process,
    queue_arn: String,
    durations_ms: Mutex<Vec<f64>>,
}

#[async_trait]
impl Stage for Invoked {
    async fn run(&self, messages: &[ReceivedMessage], _now: DateTime<Utc>) -> Vec<String> {
        let event = sqs_event(&self.queue_arn, messages);
        match self.process.invoke(&event).await {
            Ok((answer, took)) => {
                self.durations_ms
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(took.as_secs_f64() * 1000.0);
                answer["batchItemFailures"]
                    .as_array()
                    .map(|failures| {
                        failures
                            .iter()
                            .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Err(e) => {
                eprintln!("{e:#}");
                messages.iter().map(|m| m.message_id.clone()).collect()
            }
        }
    }
}

/// Per-function figures of a phase.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FunctionReport {
    /// Function name.
    pub name: String,
    /// Invocations.
    pub invocations: usize,
    /// Mean, p50 and p99 invocation time (handing the event over → its answer), ms.
    pub duration_ms: (f64, f64, f64),
    /// CPU seconds used over the phase.
    pub cpu_s: f64,
    /// Peak RSS of the process, MiB.
    pub peak_rss_mib: f64,
    /// DynamoDB and SQS calls made over the phase.
    pub usage: BTreeMap<String, Usage>,
    /// The DynamoDB calls by action and item kind (`PutItem doc#conv`, …).
    pub by_item: BTreeMap<String, Usage>,
    /// Log bytes written over the phase (stdout and stderr; the EMF metric lines included).
    pub log_bytes: u64,
}

impl FunctionReport {
    fn of(process: &Process, durations_ms: &[f64], start: Mark) -> Self {
        let mean = if durations_ms.is_empty() {
            f64::NAN
        } else {
            durations_ms.iter().sum::<f64>() / durations_ms.len() as f64
        };
        let (p50, p99) = p50_p99(durations_ms.to_vec());
        Self {
            name: process.name.to_owned(),
            invocations: durations_ms.len(),
            duration_ms: (mean, p50, p99),
            cpu_s: cpu_seconds(process.pid) - start.cpu_s,
            peak_rss_mib: memory_mib(process.pid).0,
            usage: process.usage(),
            by_item: process.by_item(),
            log_bytes: process.log_bytes().saturating_sub(start.log_bytes),
        }
    }
}

/// Where a process's counters stood when a phase began.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    cpu_s: f64,
    log_bytes: u64,
}

impl Mark {
    fn of(process: &Process) -> Self {
        process.reset_usage();
        Self {
            cpu_s: cpu_seconds(process.pid),
            log_bytes: process.log_bytes(),
        }
    }
}

/// Cold starts of one function.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ColdStart {
    /// Function name.
    pub name: String,
    /// Spawn → first poll, ms, per run.
    pub samples_ms: Vec<f64>,
    /// The highest peak RSS at first poll, MiB.
    pub peak_rss_mib: f64,
    /// Of each sample, the time spent waiting for the servers' answers to the warm-up calls (the
    /// proxy's clock), ms.
    pub waiting_ms: Vec<f64>,
}

/// A phase that ran items through functions.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Phase {
    /// What went through.
    pub name: String,
    /// Webhooks posted (pipeline) or records in the one event (big batch).
    pub items: usize,
    /// Deliveries (POSTs) the receiver accepted over the phase, and their bytes.
    pub deliveries: u64,
    /// See `deliveries`.
    pub delivery_bytes: u64,
    /// Size of the one big event per function (big batch only), bytes. Lambda refuses events
    /// over 6 MB, so an event source mapping cuts SQS batches at that size.
    pub event_bytes: BTreeMap<String, usize>,
    /// Items the receiver accepted of those expected.
    pub delivered: usize,
    /// Per function.
    pub functions: Vec<FunctionReport>,
}

/// What a run measured.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BenchReport {
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` the processes had.
    pub memory_mb: u32,
    /// Per function.
    pub cold_starts: Vec<ColdStart>,
    /// Webhooks through the pipeline of processes: inbound messages, then statuses.
    pub pipeline: Vec<Phase>,
    /// One event of many records to track, then to deliver.
    pub big_batch: Option<Phase>,
    /// The answers to [`BenchOptions::invocations`], by function in the order each first
    /// appears there, then in order.
    #[serde(skip)]
    pub answers: Vec<Value>,
    /// Every kind of DynamoDB and SQS call each function made over the run, by function.
    #[serde(skip)]
    pub calls: BTreeMap<String, BTreeSet<Call>>,
    /// The run's name: the table's, and the prefix of the queues' (`{run}-inbound`, …).
    #[serde(skip)]
    pub run: String,
}

fn stats_ms(samples: &[f64]) -> (f64, f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).copied().unwrap_or(f64::NAN)
    };
    (
        sorted.first().copied().unwrap_or(f64::NAN),
        at(0.5),
        at(0.9),
        sorted.last().copied().unwrap_or(f64::NAN),
    )
}

impl BenchReport {
    /// The report as Markdown tables.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.cold_starts.is_empty() {
            out.push_str("### Cold start: spawn → first poll of the runtime API\n\n");
            out.push_str("| function | runs | min ms | p50 ms | p90 ms | max ms | p50 without the servers' answers | peak RSS at first poll |\n|---|---|---|---|---|---|---|---|\n");
            for c in &self.cold_starts {
                let (min, p50, p90, max) = stats_ms(&c.samples_ms);
                let own: Vec<f64> = c
                    .samples_ms
                    .iter()
                    .zip(&c.waiting_ms)
                    .map(|(total, waiting)| total - waiting)
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {min:.1} | {p50:.1} | {p90:.1} | {max:.1} | {:.1} | {:.1} MiB |",
                    c.name,
                    c.samples_ms.len(),
                    stats_ms(&own).1,
                    c.peak_rss_mib
                );
            }
            out.push('\n');
        }
        for p in &self.pipeline {
            let _ = writeln!(
                out,
                "### Pipeline, {}: {} webhooks, {} of their items delivered in {} POSTs ({} bytes)\n",
                p.name, p.items, p.delivered, p.deliveries, p.delivery_bytes
            );
            function_table(&mut out, &p.functions, p.items, "webhook");
        }
        if let Some(p) = &self.big_batch {
            let _ = writeln!(
                out,
                "### One SQS event of {} records ({} of the messages delivered; event bytes {:?})\n",
                p.items, p.delivered, p.event_bytes
            );
            function_table(&mut out, &p.functions, p.items, "record");
        }
        out
    }
}

fn function_table(out: &mut String, functions: &[FunctionReport], per: usize, unit: &str) {
    let n = per.max(1) as f64;
    let _ = writeln!(
        out,
        "| function | invocations | mean ms | p50 ms | p99 ms | CPU ms per {unit} | log bytes per {unit} | peak RSS MiB |\n|---|---|---|---|---|---|---|---|"
    );
    for f in functions {
        let (mean, p50, p99) = f.duration_ms;
        let _ = writeln!(
            out,
            "| {} | {} | {mean:.1} | {p50:.1} | {p99:.1} | {:.3} | {:.0} | {:.1} |",
            f.name,
            f.invocations,
            f.cpu_s * 1000.0 / n,
            f.log_bytes as f64 / n,
            f.peak_rss_mib
        );
    }
    usage_table(
        out,
        &format!(
            "DynamoDB and SQS calls per {unit} (billed units per {unit}: write/read capacity units, SQS requests)"
        ),
        functions,
        n,
        unit,
        |f| &f.usage,
    );
    usage_table(
        out,
        "The DynamoDB calls by item kind (the `pk` prefix)",
        functions,
        n,
        unit,
        |f| &f.by_item,
    );
    out.push('\n');
}

impl BenchReport {
    /// Writes `report.md` and `report.json` into `dir` (after every phase, so a long run that
    /// is stopped keeps what it measured).
    pub fn save(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        Ok(())
    }
}

/// One row per function and call of `pick`'s usage, per `unit` (`n` of them).
fn usage_table(
    out: &mut String,
    title: &str,
    functions: &[FunctionReport],
    n: f64,
    unit: &str,
    pick: fn(&FunctionReport) -> &BTreeMap<String, Usage>,
) {
    let _ = writeln!(
        out,
        "\n{title}:\n\n| function | call | calls per {unit} | units per {unit} | server ms per call |\n|---|---|---|---|---|"
    );
    for f in functions {
        for (call, usage) in pick(f) {
            let _ = writeln!(
                out,
                "| {} | {call} | {:.3} | {:.3} | {:.1} |",
                f.name,
                usage.calls as f64 / n,
                usage.units / n,
                usage.upstream_ms / usage.calls.max(1) as f64
            );
        }
    }
}

/// Runs the phases `options` asks for; the report so far is saved into `log_dir` after each.
pub async fn run(options: &BenchOptions) -> anyhow::Result<BenchReport> {
    for name in FUNCTIONS {
        let binary = options.bin_dir.join(name);
        if !binary.is_file() {
            bail!(
                "{} is missing: build the functions first (cargo build --release --bin {name} …)",
                binary.display()
            );
        }
    }
    let stack = Stack::create(options).await?;
    let mut report = BenchReport {
        memory_mb: options.memory_mb,
        ..BenchReport::default()
    };
    if options.runs > 0 {
        for name in FUNCTIONS {
            let mut samples = Vec::with_capacity(options.runs);
            let mut waiting = Vec::with_capacity(options.runs);
            let mut peak = 0.0_f64;
            for _ in 0..options.runs {
                let process = Process::spawn(options, &stack, name).await?;
                let ready = process.ready().await;
                let rss = memory_mib(process.pid).0;
                waiting.push(process.usage().values().map(|u| u.upstream_ms).sum());
                process.stop().await;
                samples.push(ready?.as_secs_f64() * 1000.0);
                peak = peak.max(rss);
            }
            eprintln!("cold start {name}: {:?}", stats_ms(&samples));
            report.save(&options.log_dir)?;
            report.cold_starts.push(ColdStart {
                name: name.to_owned(),
                samples_ms: samples,
                peak_rss_mib: peak,
                waiting_ms: waiting,
            });
        }
    }
    if options.webhooks > 0 || options.big_batch > 0 {
        let pipeline = Pipeline::start(options, &stack).await?;
        if options.webhooks > 0 {
            for statuses in [false, true] {
                report
                    .pipeline
                    .push(pipeline.run(&stack, options.webhooks, statuses).await?);
                report.save(&options.log_dir)?;
            }
        }
        if options.big_batch > 0 {
            report.big_batch = Some(
                pipeline
                    .big_batch(options, &stack, options.big_batch)
                    .await?,
            );
            report.save(&options.log_dir)?;
        }
        pipeline.stop().await;
    }
    let mut functions: Vec<&'static str> = Vec::new();
    for (f, _) in &options.invocations {
        if !functions.contains(f) {
            functions.push(f);
        }
    }
    for name in functions {
        let process = Process::spawn(options, &stack, name).await?;
        process.ready().await?;
        for (_, event) in options.invocations.iter().filter(|(f, _)| *f == name) {
            report.answers.push(process.invoke(event).await?.0);
        }
        process.stop().await;
    }
    report.run.clone_from(&stack.run);
    report.calls = stack
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(report)
}

/// The queue-fed stages as metered processes behind pollers, and ingest.
struct Pipeline {
    ingest: Process,
    stages: Vec<(Arc<Invoked>, Arc<dyn Queue>)>,
}

fn arn(queue_url: &str) -> String {
    let name = queue_url.rsplit('/').next().unwrap_or_default();
    format!("arn:aws:sqs:us-east-1:123456789012:{name}")
}

impl Pipeline {
    async fn start(options: &BenchOptions, stack: &Stack) -> anyhow::Result<Self> {
        let ingest = Process::spawn(options, stack, "ingest").await?;
        ingest.ready().await?;
        ingest.reset_usage();
        let mut stages = Vec::new();
        for (name, queue_name) in [
            ("track", "inbound"),
            ("buffer", "buffer"),
            ("fanout", "outbound"),
            ("deliver", "delivery"),
        ] {
            let process = Process::spawn(options, stack, name).await?;
            process.ready().await?;
            process.reset_usage();
            let (queue, _) = queue(&stack.stores, queue_name)?;
            let (url, _) = queue_url(&stack.stores, queue_name)?;
            stages.push((
                Arc::new(Invoked {
                    process,
                    queue_arn: arn(&url),
                    durations_ms: Mutex::new(Vec::new()),
                }),
                queue,
            ));
        }
        Ok(Self { ingest, stages })
    }

    /// Starts a poller per stage (except `skip`) with `batch_size`; stop with the sender.
    fn poll(&self, batch_size: usize, skip: &[&str]) -> watch::Sender<bool> {
        let (stop, stopped) = watch::channel(false);
        for (stage, queue) in &self.stages {
            if skip.contains(&stage.process.name) {
                continue;
            }
            let visibility = QUEUES
                .iter()
                .find(|q| Some(q.name) == queue_name(stage.process.name))
                .map_or(Duration::from_secs(180), |q| q.visibility);
            let spec = PollerSpec {
                batch_size,
                window: Duration::from_secs(1),
                visibility,
                concurrency: 1,
            };
            tokio::spawn(poll(
                spec,
                queue.clone(),
                stage.clone(),
                Clock::system(),
                Arc::new(StageStats::default()),
                stopped.clone(),
            ));
        }
        stop
    }

    async fn post(&self, stack: &Stack, body: &Value, n: usize) -> anyhow::Result<f64> {
        let event = webhook_event(&stack.meta, &body.to_string(), n);
        let (answer, took) = self.ingest.invoke(&event).await?;
        let status = answer["statusCode"].as_u64().unwrap_or(0);
        if status != 200 {
            bail!("ingest answered {status}: {}", answer["body"]);
        }
        Ok(took.as_secs_f64() * 1000.0)
    }

    fn reset(&self) -> Vec<Mark> {
        let mut marks = vec![Mark::of(&self.ingest)];
        for (s, _) in &self.stages {
            s.durations_ms
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            marks.push(Mark::of(&s.process));
        }
        marks
    }

    fn reports(&self, ingest_ms: &[f64], marks: &[Mark]) -> Vec<FunctionReport> {
        let mut reports = vec![FunctionReport::of(
            &self.ingest,
            ingest_ms,
            marks.first().copied().unwrap_or_default(),
        )];
        for (i, (s, _)) in self.stages.iter().enumerate() {
            let durations = s
                .durations_ms
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            reports.push(FunctionReport::of(
                &s.process,
                &durations,
                marks.get(i + 1).copied().unwrap_or_default(),
            ));
        }
        reports
    }

    /// Meta text messages, each of `webhooks / 5` customers sending 5 (buffered per
    /// conversation), or as many delivery statuses; until everything is delivered and every
    /// queue is empty.
    async fn run(&self, stack: &Stack, webhooks: usize, statuses: bool) -> anyhow::Result<Phase> {
        let marks = self.reset();
        let before = stack.receiver.collected();
        let stop = self.poll(10, &[]);
        let mut expected = HashSet::new();
        let mut ingest_ms = Vec::with_capacity(webhooks);
        let customers = (webhooks / 5).max(1);
        for i in 0..webhooks {
            let id = wamid();
            let customer = format!("1555{:07}", i % customers);
            let body = if statuses {
                expected.insert(format!("whatsapp.message.delivered {id}"));
                meta_status(&customer, &id, "delivered", Utc::now())
            } else {
                expected.insert(format!("whatsapp.message.received {id}"));
                meta_text(&customer, "Bench", &id, "hello from the bench", Utc::now())
            };
            ingest_ms.push(self.post(stack, &body, i).await?);
        }
        let delivered = wait_for(&stack.receiver, &expected, Duration::from_secs(600)).await;
        drained(stack, Duration::from_secs(120)).await?;
        let _ = stop.send(true);
        // The pollers finish the receive in hand (up to a second) and stop.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = stack.receiver.collected();
        Ok(Phase {
            event_bytes: BTreeMap::new(),
            name: if statuses {
                "delivery statuses"
            } else {
                "inbound text messages"
            }
            .into(),
            items: webhooks,
            deliveries: after.deliveries - before.deliveries,
            delivery_bytes: after.bytes - before.bytes,
            delivered,
            functions: self.reports(&ingest_ms, &marks),
        })
    }

    async fn big_batch(
        &self,
        options: &BenchOptions,
        stack: &Stack,
        records: usize,
    ) -> anyhow::Result<Phase> {
        // Text messages from as many customers: each becomes its own buffered delivery. They
        // are taken off the queue as ingest puts them there: moto's SQS slows down with the
        // length of a queue (its receive and delete scan every message).
        let (inbound, _) = queue(&stack.stores, "inbound")?;
        let (inbound_url, _) = queue_url(&stack.stores, "inbound")?;
        let mut expected = HashSet::new();
        let mut inbound_records = Vec::with_capacity(records);
        let mut posted = 0;
        while posted < records {
            let chunk = (records - posted).min(500);
            for i in posted..posted + chunk {
                let id = wamid();
                expected.insert(format!("whatsapp.message.received {id}"));
                let customer = format!("1666{i:07}");
                let body = meta_text(&customer, "Bench", &id, "hello from the bench", Utc::now());
                self.post(stack, &body, i).await?;
            }
            posted += chunk;
            inbound_records.extend(take(&*inbound, chunk, Duration::from_secs(10)).await?);
        }
        let before = stack.receiver.collected();
        // Buffer and fan-out (not measured here) turn what track emits into delivery tasks as
        // it goes, and the tasks are taken off the delivery queue as they come.
        let stop = self.poll(100, &["track", "deliver"]);
        let (delivery, _) = queue(&stack.stores, "delivery")?;
        let collector = {
            let delivery = delivery.clone();
            tokio::spawn(async move { take(&*delivery, records, Duration::from_secs(600)).await })
        };
        let (track_report, track_bytes) =
            one_batch(options, stack, "track", &inbound_url, &inbound_records).await?;
        let tasks = collector.await??;
        let _ = stop.send(true);
        let (delivery_url, _) = queue_url(&stack.stores, "delivery")?;
        let (deliver_report, deliver_bytes) =
            one_batch(options, stack, "deliver", &delivery_url, &tasks).await?;
        let delivered = wait_for(&stack.receiver, &expected, Duration::from_secs(60)).await;
        eprintln!("big batch: {delivered} of {records} messages delivered");
        let after = stack.receiver.collected();
        Ok(Phase {
            name: "one event".into(),
            event_bytes: BTreeMap::from([
                ("track".to_owned(), track_bytes),
                ("deliver".to_owned(), deliver_bytes),
            ]),
            deliveries: after.deliveries - before.deliveries,
            delivery_bytes: after.bytes - before.bytes,
            items: records,
            delivered,
            functions: vec![track_report, deliver_report],
        })
    }

    async fn stop(self) {
        self.ingest.stop().await;
        for (s, _) in &self.stages {
            s.process.keep_calls();
        }
        for (s, _) in self.stages {
            if let Ok(s) = Arc::try_unwrap(s) {
                s.process.stop().await;
            }
        }
    }
}

fn queue_name(function: &str) -> Option<&'static str> {
    match function {
        "track" => Some("inbound"),
        "buffer" => Some("buffer"),
        "fanout" => Some("outbound"),
        "deliver" => Some("delivery"),
        _ => None,
    }
}

/// Takes `want` messages off `queue` (received, then deleted) as they arrive; fails when none
/// came for `idle`.
async fn take(
    queue: &dyn Queue,
    want: usize,
    idle: Duration,
) -> anyhow::Result<Vec<ReceivedMessage>> {
    let mut taken = Vec::with_capacity(want);
    let mut last = Instant::now();
    while taken.len() < want {
        let got = queue
            .receive(
                (want - taken.len()).min(10),
                Duration::from_secs(1),
                Duration::from_secs(900),
            )
            .await?;
        if got.is_empty() {
            if last.elapsed() > idle {
                bail!("only {} of {want} messages arrived", taken.len());
            }
            continue;
        }
        last = Instant::now();
        for m in got {
            queue.delete(&m.receipt).await?;
            taken.push(m);
        }
    }
    Ok(taken)
}

/// Hands `batch` to a fresh `name` process as one event (the records were taken off the queue
/// already, as the event source mapping would delete them after a success).
async fn one_batch(
    options: &BenchOptions,
    stack: &Stack,
    name: &'static str,
    url: &str,
    batch: &[ReceivedMessage],
) -> anyhow::Result<(FunctionReport, usize)> {
    let process = Process::spawn(options, stack, name).await?;
    process.ready().await?;
    let mark = Mark::of(&process);
    let event = sqs_event(&arn(url), batch);
    let event_bytes = serde_json::to_vec(&event)?.len();
    let (answer, took) = process.invoke(&event).await?;
    let failed: HashSet<&str> = answer["batchItemFailures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["itemIdentifier"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let report = FunctionReport::of(&process, &[took.as_secs_f64() * 1000.0], mark);
    eprintln!(
        "{name}: {} records ({event_bytes} bytes) in {took:?}, {} failed, peak RSS {:.1} MiB",
        batch.len(),
        failed.len(),
        report.peak_rss_mib
    );
    process.stop().await;
    Ok((report, event_bytes))
}

/// Waits until every queue of the stack is empty (or fails after `timeout`).
async fn drained(stack: &Stack, timeout: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut left = 0;
        for pair in &stack.stores.queues {
            left += pair.depth.0.get().await?;
        }
        if left == 0 {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("{left} messages still queued after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the receiver has every item of `expected` (or `timeout`); how many it has.
async fn wait_for(receiver: &Receiver, expected: &HashSet<String>, timeout: Duration) -> usize {
    let started = Instant::now();
    loop {
        let collected = receiver.collected();
        let have = expected
            .iter()
            .filter(|k| collected.arrived.contains_key(*k))
            .count();
        if have == expected.len() || started.elapsed() > timeout {
            return have;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_tables_put_figures_per_item() {
        let usage = Usage {
            calls: 20,
            units: 40.0,
            request_bytes: 0,
            request_units: 40.0,
            upstream_ms: 50.0,
        };
        let report = BenchReport {
            memory_mb: 256,
            cold_starts: vec![ColdStart {
                name: "track".into(),
                samples_ms: vec![30.0, 10.0, 20.0],
                peak_rss_mib: 10.5,
                waiting_ms: vec![5.0, 5.0, 5.0],
            }],
            pipeline: vec![Phase {
                name: "inbound text messages".into(),
                items: 10,
                delivered: 10,
                deliveries: 8,
                delivery_bytes: 16_000,
                event_bytes: BTreeMap::new(),
                functions: vec![FunctionReport {
                    name: "track".into(),
                    invocations: 1,
                    duration_ms: (100.0, 100.0, 100.0),
                    cpu_s: 0.05,
                    peak_rss_mib: 11.0,
                    usage: BTreeMap::from([("DynamoDB PutItem".to_owned(), usage)]),
                    by_item: BTreeMap::from([("PutItem dedup".to_owned(), usage)]),
                    log_bytes: 3_000,
                }],
            }],
            big_batch: None,
            ..BenchReport::default()
        };
        let md = report.markdown();
        assert!(
            md.contains("| track | 3 | 10.0 | 20.0 | 30.0 | 30.0 | 15.0 | 10.5 MiB |"),
            "{md}"
        );
        assert!(
            md.contains("| track | 1 | 100.0 | 100.0 | 100.0 | 5.000 | 300 | 11.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| track | DynamoDB PutItem | 2.000 | 4.000 | 2.5 |"),
            "{md}"
        );
        assert!(
            md.contains("| track | PutItem dedup | 2.000 | 4.000 | 2.5 |"),
            "{md}"
        );
    }
}
