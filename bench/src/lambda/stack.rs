//! The seven function binaries as Lambda runs them, on one machine: each process gets its
//! template environment and `AWS_LAMBDA_RUNTIME_API` pointing at its own [`RuntimeApi`]
//! emulator, with DynamoDB and SQS on moto (or dynalite) behind a metering [`MeterProxy`] that
//! records every call. [`Pipeline`] feeds the queue-fed functions from their queues as event
//! source mappings do ([`wagate_local::poller`]), one invocation per batch.
//!
//! The benchmark (`super::run`) and the binary tests (`tests/integration/lambda_binaries.rs`)
//! both drive a [`Stack`] through these primitives.

use std::collections::{BTreeMap, BTreeSet, HashSet};
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
use wagate_local::backend::{AwsBackend, Depth, QUEUES, Stores};
use wagate_local::clock::Clock;
use wagate_local::config::LocalConfig;
use wagate_local::poller::{PollerSpec, Stage, poll};
use wagate_local::receiver::Receiver;
use wagate_local::sample::signature_headers;
use wagate_local::stats::StageStats;

use super::meter::{Call, MeterProxy, Upstream, Usage};
use super::runtime_api::{Outcome, RuntimeApi};

/// How long the bench waits for one invocation (and the deadline the function is told): a
/// 10,000-record track batch processes its records one after another, 160–470 ms each against
/// moto's SQS (78 min in all on an idle machine, BENCHMARKS.md).
pub const INVOCATION_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// The seven functions of the template, in its order.
pub const FUNCTIONS: [&str; 7] = [
    "ingest", "track", "sweep", "fanout", "buffer", "deliver", "admin",
];

/// The admin API key of every stack (its `ADMIN_API_KEYS`).
pub const ADMIN_KEY: &str = "lambda-bench-admin-key";

/// The environment variable names each function reads, by function (its `Config::VARIABLES`).
fn variables() -> [(&'static str, &'static [&'static str]); 7] {
    [
        ("ingest", ingest::Config::VARIABLES),
        ("track", track::Config::VARIABLES),
        ("sweep", sweep::Config::VARIABLES),
        ("fanout", fanout::Config::VARIABLES),
        ("buffer", buffer::Config::VARIABLES),
        ("deliver", deliver::Config::VARIABLES),
        ("admin", admin::Config::VARIABLES),
    ]
}

/// The calls of every process of a run, by function name.
type CallSink = Arc<Mutex<BTreeMap<String, BTreeSet<Call>>>>;

/// Where the binaries are and how their processes run.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where the function binaries are (`target/release`, or `target/debug` in the tests).
    pub bin_dir: PathBuf,
    /// DynamoDB/SQS endpoint (moto).
    pub endpoint_url: String,
    /// A DynamoDB endpoint to use instead of moto's for DynamoDB (dynalite: moto's DynamoDB
    /// takes tens of milliseconds per call once its tables fill, too slow for 10,000 records).
    pub dynamodb_url: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` given to the processes (the template's 256).
    pub memory_mb: u32,
    /// Where the processes' stdout and stderr go, one file per function.
    pub log_dir: PathBuf,
    /// Whether the functions log JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`, as deployed) or text.
    pub json_logs: bool,
}

/// The resources of one run on moto, and what the functions are configured with.
#[derive(Debug)]
pub struct Stack {
    /// How the processes run.
    pub options: StackOptions,
    /// The run's name: the table's, and the prefix of the queues' (`{run}-inbound`, …).
    pub run: String,
    upstream: Upstream,
    /// The route the bench itself takes to DynamoDB/SQS (and the stores below).
    _router: MeterProxy,
    /// The run's table and queues, as the bench itself reaches them (through a proxy).
    pub stores: Stores,
    env: BTreeMap<&'static str, BTreeMap<&'static str, String>>,
    /// The sample configuration's Meta source, which the webhooks are signed for.
    pub meta: Source,
    /// Every kind of call each function's processes made, by function ([`Call`]).
    calls: CallSink,
    /// The endpoint every message event is delivered to.
    pub receiver: Receiver,
}

/// A queue's URL and its dead-letter queue's.
pub fn queue_url(stores: &Stores, name: &str) -> anyhow::Result<(String, String)> {
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

/// A queue and its depth gauge.
pub fn queue(stores: &Stores, name: &str) -> anyhow::Result<(Arc<dyn Queue>, Depth)> {
    let pair = stores
        .queues
        .iter()
        .find(|p| p.spec.name == name)
        .with_context(|| format!("no {name} queue"))?;
    Ok((pair.queue.clone(), pair.depth.0.clone()))
}

impl Stack {
    /// Every kind of DynamoDB and SQS call each function's stopped processes made, by function.
    pub fn calls(&self) -> BTreeMap<String, BTreeSet<Call>> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Creates the run's table and queues (through the metering proxy), the receiver and its
    /// endpoint, and each function's environment.
    pub async fn create(options: StackOptions) -> anyhow::Result<Self> {
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
        let sample: Value = serde_json::from_str(wagate_local::config::SAMPLE)?;
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
        wagate_local::gateway::apply_endpoints(
            &Endpoints {
                docs: stores.docs.clone(),
            },
            &with_endpoint,
            Utc::now(),
        )
        .await?;
        // The stack's values; each function gets those of its `Config::VARIABLES` (the names the
        // template gives it), so a variable a function reads reaches it here as on AWS.
        let values: BTreeMap<&'static str, String> = BTreeMap::from([
            ("TABLE_NAME", run.clone()),
            ("INBOUND_QUEUE_URL", inbound),
            ("BUFFER_QUEUE_URL", buffer),
            ("OUTBOUND_QUEUE_URL", outbound),
            ("DELIVERY_QUEUE_URL", delivery),
            ("DELIVERY_DLQ_URL", delivery_dlq),
            ("WAGATE_SOURCES", sample["sources"].to_string()),
            ("ADMIN_API_KEYS", ADMIN_KEY.to_owned()),
            ("BUFFER_WINDOW_SECONDS", "1".to_owned()),
        ]);
        let env = variables()
            .into_iter()
            .map(|(function, names)| {
                let mut env: BTreeMap<&'static str, String> = names
                    .iter()
                    .filter_map(|n| values.get(n).map(|v| (*n, v.clone())))
                    .collect();
                if function == "deliver" {
                    env.insert(deliver::Config::ALLOW_LOOPBACK, "true".into());
                }
                (function, env)
            })
            .collect();
        Ok(Self {
            options,
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
#[derive(Debug)]
pub struct Process {
    /// The function.
    pub name: &'static str,
    child: tokio::process::Child,
    /// Its process id.
    pub pid: u32,
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
pub fn memory_mib(pid: u32) -> (f64, f64) {
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
pub fn cpu_seconds(pid: u32) -> f64 {
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
    /// Starts `name`'s binary with its environment (not yet ready: see [`Self::ready`]).
    pub async fn spawn(stack: &Stack, name: &'static str) -> anyhow::Result<Self> {
        let options = &stack.options;
        let env = stack
            .env
            .get(name)
            .with_context(|| format!("no function {name}"))?;
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
    pub async fn ready(&self) -> anyhow::Result<Duration> {
        let at = self
            .api
            .first_poll(Duration::from_secs(30))
            .await
            .with_context(|| format!("{}: no first poll", self.name))?;
        Ok(at.saturating_duration_since(self.spawned))
    }

    /// Hands `event` over and waits for the answer; how long it took.
    pub async fn invoke(&self, event: &Value) -> anyhow::Result<(Value, Duration)> {
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

    /// Calls made since the last reset, by action.
    pub fn usage(&self) -> BTreeMap<String, Usage> {
        self.proxy.meter().snapshot()
    }

    /// DynamoDB calls since the last reset, by action and item kind.
    pub fn by_item(&self) -> BTreeMap<String, Usage> {
        self.proxy.meter().by_item()
    }

    /// Bytes the process has written to stdout and stderr (CloudWatch Logs ingestion on AWS).
    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// Starts the counts of [`Self::usage`] again.
    pub fn reset_usage(&self) {
        self.proxy.meter().reset();
    }

    /// Kills the process.
    pub async fn stop(mut self) {
        let _gone = self.child.kill().await;
    }
}

/// The message ids a queue-triggered function reported failed (`batchItemFailures`).
pub fn failed_ids(answer: &Value) -> std::collections::HashSet<&str> {
    answer["batchItemFailures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["itemIdentifier"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// An SQS event as the event source mapping builds it.
pub fn sqs_event(queue_arn: &str, messages: &[ReceivedMessage]) -> Value {
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
pub fn webhook_event(source: &Source, body: &str, n: usize) -> Value {
    let mut headers = serde_json::Map::new();
    headers.insert("content-type".into(), json!("application/json"));
    headers.insert("content-length".into(), json!(body.len().to_string()));
    headers.insert(
        "host".into(),
        json!("abc123defg.execute-api.us-east-1.amazonaws.com"),
    );
    for (name, value) in signature_headers(source, "", body.as_bytes()) {
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
#[derive(Debug)]
pub struct Invoked {
    /// The function's process.
    pub process: Process,
    queue_arn: String,
    /// Each invocation's time, ms.
    pub durations_ms: Mutex<Vec<f64>>,
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

/// The queue-fed stages as metered processes behind pollers, and ingest.
#[derive(Debug)]
pub struct Pipeline {
    /// The ingest process (invoked directly, as API Gateway would).
    pub ingest: Process,
    /// Track, buffer, fanout and deliver, each with its queue.
    pub stages: Vec<(Arc<Invoked>, Arc<dyn Queue>)>,
}

/// The pollers [`Pipeline::poll`] started.
#[derive(Debug)]
pub struct Polling {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Polling {
    /// Stops the pollers and waits until each has finished the batch in hand, so no message is
    /// left received by a poller that is gone (it would stay invisible for its timeout).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The ARN moto gives the queue at `queue_url`.
pub fn arn(queue_url: &str) -> String {
    let name = queue_url.rsplit('/').next().unwrap_or_default();
    format!("arn:aws:sqs:us-east-1:123456789012:{name}")
}

impl Pipeline {
    /// Starts ingest and the four queue-fed functions, each ready and with its counts reset.
    pub async fn start(stack: &Stack) -> anyhow::Result<Self> {
        let ingest = Process::spawn(stack, "ingest").await?;
        ingest.ready().await?;
        ingest.reset_usage();
        let mut stages = Vec::new();
        for (name, queue_name) in [
            ("track", "inbound"),
            ("buffer", "buffer"),
            ("fanout", "outbound"),
            ("deliver", "delivery"),
        ] {
            let process = Process::spawn(stack, name).await?;
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

    /// Starts a poller per stage (except `skip`) with `batch_size`, as an event source mapping
    /// would; [`Polling::stop`] ends them.
    pub fn poll(&self, batch_size: usize, skip: &[&str]) -> Polling {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
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
            tasks.push(tokio::spawn(poll(
                spec,
                queue.clone(),
                stage.clone(),
                Clock::system(),
                Arc::new(StageStats::default()),
                stopped.clone(),
            )));
        }
        Polling { stop, tasks }
    }

    /// Signs `body` for the Meta source and invokes ingest with it; fails unless it answers
    /// 200. The invocation's time, ms.
    pub async fn post(&self, stack: &Stack, body: &Value, n: usize) -> anyhow::Result<f64> {
        let event = webhook_event(&stack.meta, &body.to_string(), n);
        let (answer, took) = self.ingest.invoke(&event).await?;
        let status = answer["statusCode"].as_u64().unwrap_or(0);
        if status != 200 {
            bail!("ingest answered {status}: {}", answer["body"]);
        }
        Ok(took.as_secs_f64() * 1000.0)
    }

    /// Stops every process (their calls are kept in the stack's record).
    pub async fn stop(self) {
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
pub async fn take(
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

/// Waits until every queue of the stack is empty (or fails after `timeout`).
pub async fn drained(stack: &Stack, timeout: Duration) -> anyhow::Result<()> {
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
pub async fn wait_for(receiver: &Receiver, expected: &HashSet<String>, timeout: Duration) -> usize {
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
