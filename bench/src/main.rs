//! `wagate-bench`: wagate's measuring tools (BENCHMARKS.md has their figures and commands).
//!
//! ```text
//! wagate-bench fault-run      # 10,000 webhooks, failing receiver, a crash: lost must be 0
//! wagate-bench load           # stepped rates until the embedded pipeline saturates
//! wagate-bench lambda-bench   # the Lambda binaries on a local runtime API and moto
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Parser, Subcommand};
use wagate_bench::fault::{FaultOptions, run};
#[cfg(feature = "aws")]
use wagate_bench::lambda::{BenchOptions, StackOptions};
use wagate_local::cli::{BackendArgs, BackendKind};

/// mimalloc instead of glibc's malloc: the pipeline allocates and frees many small JSON trees on
/// one thread and drops them on another, where glibc's arenas spent about a third of the CPU
/// (BENCHMARKS.md, pipeline throughput). `main` turns transparent huge pages off for it
/// ([`wagate_local::pages`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wagate-bench",
    version,
    about = "wagate's load generator, fault run and Lambda benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Many mixed webhooks, a failing receiver and a crash mid-run: prints what was lost.
    FaultRun(FaultArgs),
    /// Signed webhooks at increasing rates until the embedded pipeline stops keeping up:
    /// throughput, ingest and end-to-end latency, peak RSS.
    Load(LoadArgs),
    /// The real Lambda binaries against a local runtime API and moto: cold start, per-webhook
    /// duration, CPU, memory and DynamoDB/SQS calls, and a 10,000-record batch.
    LambdaBench(LambdaBenchArgs),
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
    /// Cut every TTL to this many seconds, so a long run at one rate reaches the steady state
    /// where items expire as fast as they arrive (the pipeline's TTLs are days).
    #[arg(long)]
    ttl_cap: Option<u64>,
    /// Seconds between runs of the eviction of expired items.
    #[arg(long, default_value_t = 60)]
    evict_every: u64,
    /// Go on after a step that does not keep up (for a long run at one rate).
    #[arg(long)]
    keep_going: bool,
    /// Distinct customers (conversations) the webhooks come from (fewer: bigger batches, as at
    /// a higher rate; used to count work at a rate valgrind can follow).
    #[arg(long, default_value_t = 1000)]
    customers: u64,
    /// `memory` (default) or `sqlite` (in --data-dir; start from an empty directory).
    #[command(flatten)]
    backend: BackendArgs,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    wagate_local::pages::without_huge_pages();
    match cli.command {
        Command::FaultRun(args) => fault_run(args).await,
        Command::Load(args) => load_run(args).await,
        #[cfg(feature = "aws")]
        Command::LambdaBench(args) => lambda_bench(args).await,
        #[cfg(not(feature = "aws"))]
        Command::LambdaBench(_) => anyhow::bail!(
            "this wagate-bench was built without its aws feature (the Lambda bench needs it)"
        ),
    }
}

async fn load_run(args: LoadArgs) -> anyhow::Result<()> {
    use wagate_bench::load::{LoadOptions, StepReport, run as run_load};
    eprintln!("{}", StepReport::header());
    let reports = run_load(LoadOptions {
        rates: args.rates,
        step: Duration::from_secs(args.step),
        drain: Duration::from_secs(args.drain),
        max_in_flight: args.max_in_flight,
        buffer_window_secs: args.buffer_window,
        concurrency: args.concurrency,
        backend: args.backend.backend_or(BackendKind::Memory),
        ttl_cap: args.ttl_cap.map(Duration::from_secs),
        evict_every: Duration::from_secs(args.evict_every.max(1)),
        keep_going: args.keep_going,
        customers: args.customers,
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

#[cfg(feature = "aws")]
async fn lambda_bench(args: LambdaBenchArgs) -> anyhow::Result<()> {
    let report = wagate_bench::lambda::run(&BenchOptions {
        stack: StackOptions {
            bin_dir: args.bin_dir,
            endpoint_url: args.endpoint_url,
            dynamodb_url: args.dynamodb_url,
            memory_mb: args.memory_mb,
            log_dir: args.out_dir.clone(),
            json_logs: args.log_format == "json",
        },
        runs: args.runs,
        webhooks: args.webhooks,
        big_batch: args.big_batch,
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
        backend: args.backend.backend_or(BackendKind::Memory),
    })
    .await?;
    println!("{}", report.render());
    if report.lost > 0 {
        bail!("{} accepted events were lost", report.lost);
    }
    Ok(())
}
