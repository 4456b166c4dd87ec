//! `wagate-local`: the whole wagate pipeline on one machine, and the tools around it.
//!
//! ```text
//! wagate-local                       # serve: every stage + the demo receiver, embedded backend
//! wagate-local serve --backend aws --endpoint-url http://127.0.0.1:5000 --create
//! wagate-local receive               # the verifying demo receiver alone
//! wagate-local sign --source meta-demo payload.json
//! wagate-local send --source waha-demo payload.json
//! wagate-local fault-run             # 10,000 webhooks, failing receiver, a crash: lost must be 0
//! wagate-local load                  # stepped rates until the embedded pipeline saturates
//! wagate-local lambda-bench          # the Lambda binaries on a local runtime API and moto
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::ports::faults::Faults;
use tokio::net::TcpListener;
use wagate_local::backend::{AwsBackend, Backend, Stores};
use wagate_local::config::LocalConfig;
use wagate_local::fault::{FaultOptions, run};
use wagate_local::gateway::{Gateway, Options};
use wagate_local::receiver::{Receiver, ReceiverOptions};
use wagate_local::sample;

#[derive(Parser)]
#[command(
    name = "wagate-local",
    version,
    about = "wagate on one machine: the whole webhook pipeline in one process",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage (the default command).
    Serve(ServeArgs),
    /// Run the demo receiver alone: verify and print deliveries.
    Receive(ReceiveArgs),
    /// Print the signature headers a provider would send with a payload file.
    Sign(SignArgs),
    /// Sign a payload file (or a generated sample) for a source and POST it to the gateway.
    Send(SendArgs),
    /// Many mixed webhooks, a failing receiver and a crash mid-run: prints what was lost.
    FaultRun(FaultArgs),
    /// Signed webhooks at increasing rates until the embedded pipeline stops keeping up:
    /// throughput, ingest and end-to-end latency, peak RSS.
    Load(LoadArgs),
    /// The real Lambda binaries against a local runtime API and moto: cold start, per-webhook
    /// duration, CPU, memory and DynamoDB/SQS calls, and a 10,000-record batch.
    LambdaBench(LambdaBenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendKind {
    /// In-process stores and queues.
    Memory,
    /// DynamoDB and SQS (moto, or AWS).
    Aws,
}

#[derive(Args, Clone)]
struct BackendArgs {
    /// Where state and queues live.
    #[arg(long, value_enum, default_value = "memory")]
    backend: BackendKind,
    /// DynamoDB/SQS endpoint (e.g. moto: http://127.0.0.1:5000); default: AWS itself.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Region for --backend aws.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Table name for --backend aws.
    #[arg(long, default_value = "wagate-local")]
    table: String,
    /// Queue names are PREFIX-inbound, PREFIX-buffer, … and PREFIX-*-dlq.
    #[arg(long, default_value = "wagate-local")]
    queue_prefix: String,
    /// Create the table and queues if they do not exist.
    #[arg(long)]
    create: bool,
}

impl BackendArgs {
    fn backend(&self) -> Backend {
        match self.backend {
            BackendKind::Memory => Backend::Memory,
            BackendKind::Aws => Backend::Aws(AwsBackend {
                endpoint_url: self.endpoint_url.clone(),
                region: self.region.clone(),
                table: self.table.clone(),
                queue_prefix: self.queue_prefix.clone(),
                create: self.create,
            }),
        }
    }
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Configuration file (sources, endpoints, settings); default: the bundled sample.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Port for webhooks on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    #[command(flatten)]
    backend: BackendArgs,
    /// Do not start the demo receiver on 127.0.0.1:3001.
    #[arg(long)]
    no_receiver: bool,
    /// Pollers per stage.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Seconds between sweeps that end idle conversations (0: never).
    #[arg(long, default_value_t = 60)]
    sweep_every: u64,
    /// Seconds to keep working through queued events after Ctrl-C.
    #[arg(long, default_value_t = 30)]
    drain: u64,
    /// Seconds between status lines (0: none).
    #[arg(long, default_value_t = 10)]
    status_every: u64,
    /// Visibility timeout for every poller, in seconds (default: the template's).
    #[arg(long)]
    visibility_timeout: Option<u64>,
    /// Delivery retry delays in seconds, comma-separated (default: 30,120,600,1800,3600,…).
    #[arg(long, value_delimiter = ',')]
    retry_schedule: Option<Vec<u64>>,
    /// No banner, no status lines.
    #[arg(long)]
    quiet: bool,
    /// Fail storage calls on purpose: `CLEAN,AMBIGUOUS,SEED` (shares of calls failed cleanly
    /// and after applying). For the fault run.
    #[arg(long, value_delimiter = ',', hide = true)]
    inject_faults: Option<Vec<f64>>,
}

#[derive(Args)]
struct ReceiveArgs {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3001)]
    port: u16,
    /// The endpoint secret (`whsec_…`); default: the endpoint's in the configuration.
    #[arg(long)]
    secret: Option<String>,
    /// Configuration file to take the secret from; default: the bundled sample.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Which configured endpoint's secret to use (default: the first).
    #[arg(long)]
    endpoint: Option<String>,
}

#[derive(Args)]
struct SignArgs {
    /// The source id (its provider decides the headers).
    #[arg(long)]
    source: String,
    /// Configuration file with the source's secret; default: the bundled sample.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The payload file, signed byte for byte.
    file: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum SampleKind {
    /// A Meta inbound text message.
    MetaText,
    /// A Meta `read` status.
    MetaStatus,
    /// A WAHA `message` event.
    WahaMessage,
}

#[derive(Args)]
struct SendArgs {
    /// The source id; default: the one matching --sample, else `meta-demo`.
    #[arg(long)]
    source: Option<String>,
    /// Configuration file with the source's secret; default: the bundled sample.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Send a generated sample instead of a file.
    #[arg(long, value_enum, conflicts_with = "file")]
    sample: Option<SampleKind>,
    /// The payload file, sent byte for byte.
    file: Option<PathBuf>,
}

#[derive(Args)]
struct FaultArgs {
    /// Webhooks to post, duplicates included.
    #[arg(long, default_value_t = 10_000)]
    webhooks: usize,
    /// Share of posts repeating an earlier webhook.
    #[arg(long, default_value_t = 0.1)]
    duplicates: f64,
    /// Share of deliveries the receiver answers 500.
    #[arg(long, default_value_t = 0.3)]
    fail_rate: f64,
    /// Share of deliveries the receiver stalls past the delivery timeout.
    #[arg(long, default_value_t = 0.02)]
    stall_rate: f64,
    /// Posts in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Crash and restart the gateway after this share of the posts (>= 1: never).
    #[arg(long, default_value_t = 0.5)]
    restart_at: f64,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 1800)]
    deadline: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of storage calls (DynamoDB/SQS, or the embedded stores) that fail cleanly.
    #[arg(long, default_value_t = 0.0)]
    clean_faults: f64,
    /// Share of storage calls that apply and still report an error.
    #[arg(long, default_value_t = 0.0)]
    ambiguous_faults: f64,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
struct LoadArgs {
    /// Offered rates in webhooks per second, comma-separated, tried in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "50,100,200,400,800,1600,3200"
    )]
    rates: Vec<u32>,
    /// Seconds each rate is held.
    #[arg(long, default_value_t = 10)]
    step: u64,
    /// Seconds a step may take after its last post to deliver everything.
    #[arg(long, default_value_t = 30)]
    drain: u64,
    /// Posts in flight at most.
    #[arg(long, default_value_t = 256)]
    max_in_flight: usize,
    /// BUFFER_WINDOW_SECONDS for the run.
    #[arg(long, default_value_t = 1)]
    buffer_window: u64,
    /// Pollers per stage.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
}

#[derive(Args)]
struct LambdaBenchArgs {
    /// Where the function binaries are (cargo build --release --bin ingest …).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// DynamoDB/SQS endpoint (moto's server).
    #[arg(long, default_value = "http://127.0.0.1:5000")]
    endpoint_url: String,
    /// DynamoDB calls go here instead (dynalite; bench/lambda/run.sh starts one).
    #[arg(long)]
    dynamodb_url: Option<String>,
    /// Cold starts per function (0: skip).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Webhooks through the pipeline of processes (0: skip).
    #[arg(long, default_value_t = 1000)]
    webhooks: usize,
    /// Records of the one-event track and deliver batches (0: skip).
    #[arg(long, default_value_t = 10_000)]
    big_batch: usize,
    /// AWS_LAMBDA_FUNCTION_MEMORY_SIZE for the processes (the template's MemorySize).
    #[arg(long, default_value_t = 256)]
    memory_mb: u32,
    /// Where the functions' logs and the report (report.md, report.json) go.
    #[arg(long, default_value = "target/lambda-bench")]
    out_dir: PathBuf,
    /// The functions' log format: `json`, as the template deploys them (`LogFormat: JSON`), or
    /// `text` (what reports before 2026-11-30 measured).
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<LocalConfig> {
    match path {
        Some(p) => LocalConfig::load(p),
        None => LocalConfig::sample(),
    }
}

/// The function settings taken from the process environment (same names as in the template).
fn settings_from_env(config: &mut LocalConfig) {
    let names = track::Config::VARIABLES
        .iter()
        .chain(buffer::Config::VARIABLES)
        .chain(fanout::Config::VARIABLES)
        .chain(deliver::Config::VARIABLES)
        .chain(sweep::Config::VARIABLES)
        .chain(admin::Config::VARIABLES)
        .chain(&["MAX_BODY_BYTES", "RAW_TTL_DAYS"])
        .filter(|n| **n != "TABLE_NAME" && !n.ends_with("_URL"));
    for name in names {
        if let Ok(value) = std::env::var(name) {
            config.settings.insert((*name).to_owned(), value);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let quiet = match &cli.command {
        Some(Command::Serve(a)) => a.quiet,
        None => cli.serve.quiet,
        _ => false,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if quiet { "error" } else { "warn" })
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Receive(args)) => receive(args).await,
        Some(Command::Sign(args)) => sign(&args),
        Some(Command::Send(args)) => send(args).await,
        Some(Command::FaultRun(args)) => fault_run(args).await,
        Some(Command::Load(args)) => load_run(args).await,
        Some(Command::LambdaBench(args)) => lambda_bench(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_ref())?;
    settings_from_env(&mut config);
    let mut stores = Stores::open(&args.backend.backend()).await?;
    match args.inject_faults.as_deref() {
        None => {}
        Some([clean, ambiguous, seed]) => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a seed
            let seed = *seed as u64;
            stores = stores.with_faults(&Faults::random(*clean, *ambiguous, seed));
        }
        Some(_) => anyhow::bail!("--inject-faults takes CLEAN,AMBIGUOUS,SEED"),
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .with_context(|| format!("port {} is taken (use --port)", args.port))?;
    let receiver = if args.no_receiver {
        None
    } else {
        let endpoint = config
            .endpoints
            .first()
            .context("the configuration has no endpoint for the receiver (or use --no-receiver)")?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 3001))
            .await
            .context("port 3001 is taken: stop the other receiver or use --no-receiver")?;
        Some(Receiver::start(
            listener,
            ReceiverOptions {
                secret: endpoint.signing_secret()?,
                print: true,
                fail_rate: 0.0,
                stall_rate: 0.0,
                stall: Duration::ZERO,
                seed: 0,
            },
        )?)
    };
    let mut options = Options::new(config.clone());
    options.concurrency = args.concurrency;
    options.sweep_every = (args.sweep_every > 0).then(|| Duration::from_secs(args.sweep_every));
    options.visibility = args.visibility_timeout.map(Duration::from_secs);
    options.retry_schedule = args
        .retry_schedule
        .clone()
        .map(|s| s.into_iter().map(Duration::from_secs).collect());
    let description = stores.description.clone();
    let gateway = Gateway::start(stores, listener, options).await?;
    let base = format!("http://{}", gateway.addr());
    if !args.quiet {
        banner(&config, &base, &description, receiver.as_ref(), &args);
    }
    let stats = gateway.stats().clone();
    let status = (!args.quiet && args.status_every > 0).then(|| {
        let every = Duration::from_secs(args.status_every);
        tokio::spawn(async move {
            // Quiet until something happens, then a line whenever a counter moved.
            let mut last = stats.line();
            loop {
                tokio::time::sleep(every).await;
                let line = stats.line();
                if line != last {
                    eprintln!("status | {line}");
                    last = line;
                }
            }
        })
    });
    wait_for_stop().await;
    if !args.quiet {
        eprintln!(
            "stopping: no new webhooks; draining queued work for up to {} s (Ctrl-C again to stop now)",
            args.drain
        );
    }
    let stats = gateway.stats().clone();
    let report = tokio::select! {
        r = gateway.shutdown(Duration::from_secs(args.drain)) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    if let Some(task) = status {
        task.abort();
    }
    if !args.quiet {
        eprintln!("status | {}", stats.line());
        match (report, matches!(args.backend.backend, BackendKind::Memory)) {
            (Some(r), _) if r.pending == 0 => eprintln!("stopped: every queue is empty"),
            (Some(r), true) => eprintln!(
                "stopped: {} queued messages discarded (embedded backend; they were retries waiting for their delay)",
                r.pending
            ),
            (Some(r), false) => eprintln!(
                "stopped: {} messages stay in SQS for the next start",
                r.pending
            ),
            (None, _) => eprintln!("stopped without draining"),
        }
    }
    Ok(())
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn banner(
    config: &LocalConfig,
    base: &str,
    backend: &str,
    receiver: Option<&Receiver>,
    args: &ServeArgs,
) {
    println!("wagate local: every stage in one process");
    println!("  backend    {backend}");
    for s in &config.sources {
        println!(
            "  webhooks   {base}/webhooks/{} ({:?})",
            s.id.as_str(),
            s.provider
        );
    }
    println!("  health     {base}/healthz");
    if config.settings.contains_key("ADMIN_API_KEYS") {
        println!(
            "  management {base}/v1 (X-API-Key from ADMIN_API_KEYS; the sample's is demo-admin-key-local-only)"
        );
    }
    for e in &config.endpoints {
        println!("  endpoint   {} -> {}", e.id, e.url);
    }
    if let Some(r) = receiver {
        println!(
            "  receiver   http://{} (verifies X-Webhook-Signature and Standard Webhooks; prints below)",
            r.addr()
        );
    }
    println!(
        "  stages     track, buffer, fan-out, deliver: {} poller(s) each{}",
        args.concurrency,
        if args.sweep_every > 0 {
            format!("; sweep every {} s", args.sweep_every)
        } else {
            String::new()
        }
    );
    if let Some(source) = config
        .sources
        .iter()
        .find(|s| s.provider == shared::model::Provider::Meta)
    {
        let body = sample::meta_text(
            "15550001111",
            "Alice Example",
            &sample::wamid(),
            "Hi, I need help with order 1042",
            chrono::Utc::now(),
        )
        .to_string();
        println!(
            "\nTry it: post a signed Meta text message (the receiver prints the delivery after the buffer window):\n"
        );
        println!(
            "{}\n",
            sample::curl(
                &format!("{base}/webhooks/{}", source.id.as_str()),
                source,
                &body
            )
        );
    }
    println!(
        "Or: cargo run -p wagate-local -- send --sample waha-message   |   Ctrl-C drains and stops.\n"
    );
}

async fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    let secret = match args.secret {
        Some(s) => shared::signature::EndpointSecret::parse(&s).context("--secret")?,
        None => {
            let config = load_config(args.config.as_ref())?;
            let endpoint = match &args.endpoint {
                Some(id) => config.endpoints.iter().find(|e| &e.id == id),
                None => config.endpoints.first(),
            }
            .context("no such endpoint in the configuration (or pass --secret)")?;
            endpoint.signing_secret()?
        }
    };
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
        .await
        .with_context(|| format!("port {} is taken", args.port))?;
    let receiver = Receiver::start(
        listener,
        ReceiverOptions {
            secret,
            print: true,
            fail_rate: 0.0,
            stall_rate: 0.0,
            stall: Duration::ZERO,
            seed: 0,
        },
    )?;
    println!(
        "receiver listening on http://{} (Ctrl-C stops)",
        receiver.addr()
    );
    wait_for_stop().await;
    let c = receiver.collected();
    println!(
        "receiver: {} deliveries verified, {} rejected",
        c.by_key.values().map(|n| u64::from(*n)).sum::<u64>(),
        c.rejected
    );
    Ok(())
}

fn sign(args: &SignArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_ref())?;
    let source = config
        .source(&args.source)
        .with_context(|| format!("no source `{}` in the configuration", args.source))?;
    let body =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    for (name, value) in sample::signature_headers(source, &body) {
        println!("{name}: {value}");
    }
    Ok(())
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_ref())?;
    let now = chrono::Utc::now();
    let (default_source, body) = match (args.sample, &args.file) {
        (Some(SampleKind::MetaText), _) => (
            "meta-demo",
            sample::meta_text(
                "15550001111",
                "Alice Example",
                &sample::wamid(),
                "Hello from wagate-local send",
                now,
            )
            .to_string()
            .into_bytes(),
        ),
        (Some(SampleKind::MetaStatus), _) => (
            "meta-demo",
            sample::meta_status("15550001111", &sample::wamid(), "read", now)
                .to_string()
                .into_bytes(),
        ),
        (Some(SampleKind::WahaMessage), _) => (
            "waha-demo",
            sample::waha_message(
                "15550002222",
                "Bob Example",
                &format!("3EB0{}", ulid::Ulid::new()),
                "Hello from WAHA",
                now,
            )
            .to_string()
            .into_bytes(),
        ),
        (None, Some(file)) => (
            "meta-demo",
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
        ),
        (None, None) => bail!("give a payload file or --sample"),
    };
    let source_id = args.source.as_deref().unwrap_or(default_source);
    let source = config
        .source(source_id)
        .with_context(|| format!("no source `{source_id}` in the configuration"))?;
    let url = format!("{}/webhooks/{source_id}", args.url.trim_end_matches('/'));
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json");
    for (name, value) in sample::signature_headers(source, &body) {
        req = req.header(name, value);
    }
    let response = req
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("{} {text}", status.as_u16());
    if !status.is_success() {
        bail!("the gateway answered {status}");
    }
    Ok(())
}

async fn load_run(args: LoadArgs) -> anyhow::Result<()> {
    use wagate_local::load::{LoadOptions, StepReport, run as run_load};
    eprintln!("{}", StepReport::header());
    let reports = run_load(LoadOptions {
        rates: args.rates,
        step: Duration::from_secs(args.step),
        drain: Duration::from_secs(args.drain),
        max_in_flight: args.max_in_flight,
        buffer_window_secs: args.buffer_window,
        concurrency: args.concurrency,
    })
    .await?;
    println!("{}", StepReport::header());
    for r in &reports {
        println!("{}", r.row());
    }
    match reports.iter().rev().find(|r| r.kept_up) {
        Some(best) => println!(
            "sustained: {} webhooks/s ingest → delivered (the highest rate that kept up)",
            best.offered
        ),
        None => println!("no step kept up"),
    }
    Ok(())
}

async fn lambda_bench(args: LambdaBenchArgs) -> anyhow::Result<()> {
    let report = wagate_local::lambda_bench::run(&wagate_local::lambda_bench::BenchOptions {
        bin_dir: args.bin_dir,
        endpoint_url: args.endpoint_url,
        dynamodb_url: args.dynamodb_url,
        runs: args.runs,
        webhooks: args.webhooks,
        big_batch: args.big_batch,
        memory_mb: args.memory_mb,
        log_dir: args.out_dir.clone(),
        json_logs: args.log_format == "json",
        invocations: Vec::new(),
    })
    .await?;
    println!("{}", report.markdown());
    eprintln!(
        "written: {0}/report.md, {0}/report.json (python3 bench/cost-model.py {0}/report.json)",
        args.out_dir.display()
    );
    Ok(())
}

async fn fault_run(args: FaultArgs) -> anyhow::Result<()> {
    let report = run(FaultOptions {
        webhooks: args.webhooks,
        duplicates: args.duplicates,
        fail_rate: args.fail_rate,
        stall_rate: args.stall_rate,
        concurrency: args.concurrency,
        restart_at: args.restart_at,
        deadline: Duration::from_secs(args.deadline),
        seed: args.seed,
        clean_faults: args.clean_faults,
        ambiguous_faults: args.ambiguous_faults,
        backend: args.backend.backend(),
    })
    .await?;
    println!("{}", report.render());
    if report.lost > 0 {
        bail!("{} accepted events were lost", report.lost);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault run starts its gateway child with exactly this argument.
    #[test]
    fn the_hidden_fault_option_takes_three_comma_separated_values() {
        let cli = Cli::try_parse_from(["wagate-local", "serve", "--inject-faults=0.05,0.05,7"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve");
        };
        assert_eq!(args.inject_faults, Some(vec![0.05, 0.05, 7.0]));
    }
}
