//! `wagate`: the whole wagate pipeline on one machine, and the client of any gateway's
//! management API.
//!
//! ```text
//! wagate                             # serve: every stage + the demo receiver, embedded backend
//! wagate serve --backend aws --endpoint-url http://127.0.0.1:5000 --create
//! wagate receive                     # the verifying demo receiver alone
//! wagate sign --source meta-demo payload.json
//! wagate send --source waha-demo payload.json
//! wagate fake-provider --provider meta  # a fake Cloud API on 127.0.0.1:3002 posting statuses
//! wagate endpoints list              # /v1 of --url (WAGATE_URL) with --api-key (WAGATE_API_KEY)
//! wagate endpoints apply endpoints.json
//! wagate deliveries list --status dead --endpoint-id ep_…
//! wagate dlq redrive --endpoint-id ep_…
//! wagate conversations get conv_…
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use shared::ports::faults::Faults;
use tokio::net::TcpListener;
use wagate_local::backend::{Backend, Stores};
use wagate_local::cli::{BackendArgs, BackendKind};
use wagate_local::config::LocalConfig;
use wagate_local::gateway::{Gateway, Options};
use wagate_local::manage::ManageCommand;
use wagate_local::receiver::{Receiver, ReceiverOptions};
use wagate_local::sample;

/// mimalloc instead of glibc's malloc: the pipeline allocates and frees many small JSON trees on
/// one thread and drops them on another, where glibc's arenas spent about a third of the CPU
/// (BENCHMARKS.md, pipeline throughput). `main` turns transparent huge pages off for it
/// ([`wagate_local::pages`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The port local mode listens on for webhooks unless told otherwise.
const DEFAULT_PORT: u16 = 3000;

#[derive(Parser)]
#[command(
    name = "wagate",
    version,
    about = "wagate: the whole webhook pipeline on one machine, and the management API of any gateway",
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
    /// Run a fake provider (Meta Cloud API or WAHA) that answers sends and posts statuses.
    FakeProvider(wagate_local::fake::cli::FakeProviderArgs),
    #[command(flatten)]
    Manage(ManageCommand),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Configuration file (sources, endpoints, settings); default: the bundled sample.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Port for webhooks on 127.0.0.1.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    #[command(flatten)]
    backend: BackendArgs,
    /// Do not start the demo receiver on 127.0.0.1:3001.
    #[arg(long)]
    no_receiver: bool,
    /// Do not start the fake providers (a fake Graph API / WAHA wherever a source's send
    /// settings point at 127.0.0.1).
    #[arg(long)]
    no_fake_provider: bool,
    /// Keep inbound media files under this directory (default: in memory).
    #[arg(long)]
    media_dir: Option<PathBuf>,
    /// Do not run the media stage (messages keep the provider's media reference only).
    #[arg(long)]
    no_media: bool,
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
    /// The webhook URL the request goes to (Twilio signs it); default: local mode's
    /// `http://127.0.0.1:3000/webhooks/{source}`.
    #[arg(long)]
    url: Option<String>,
    /// The payload file, signed byte for byte.
    file: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum SampleKind {
    /// A Meta inbound text message.
    MetaText,
    /// A Meta inbound image: the fake Graph API's sample image, which the media stage fetches.
    MetaImage,
    /// A Meta `read` status.
    MetaStatus,
    /// A WAHA `message` event.
    WahaMessage,
    /// A Twilio inbound WhatsApp text (form-encoded, `X-Twilio-Signature`).
    TwilioText,
    /// A Twilio `read` status callback.
    TwilioStatus,
    /// A 360dialog inbound text (Meta's envelope, the source's token header).
    #[value(name = "360dialog-text")]
    Dialog360Text,
    /// A Gupshup (v2) inbound text (the source's token).
    GupshupText,
    /// An Evolution API `messages.upsert` text (the source's token).
    EvolutionText,
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
    wagate_local::pages::without_huge_pages();
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Receive(args)) => receive(args).await,
        Some(Command::Sign(args)) => sign(&args),
        Some(Command::Send(args)) => send(args).await,
        Some(Command::FakeProvider(args)) => {
            wagate_local::fake::cli::run(args, wait_for_stop()).await
        }
        Some(Command::Manage(command)) => manage(&command).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_ref())?;
    settings_from_env(&mut config);
    let backend = args.backend.backend_or(BackendKind::Sqlite);
    let mut stores = Stores::open(&backend).await?;
    let volatile = stores.is_volatile();
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
    options.media = !args.no_media;
    options.media_dir = match (&args.media_dir, &backend) {
        (Some(dir), _) => Some(dir.clone()),
        // The durable backend keeps media files beside its database.
        (None, Backend::Sqlite(dir)) => Some(dir.join("media")),
        (None, _) => None,
    };
    options.retry_schedule = args
        .retry_schedule
        .clone()
        .map(|s| s.into_iter().map(Duration::from_secs).collect());
    let description = stores.description.clone();
    let gateway = Gateway::start(stores, listener, options).await?;
    let base = format!("http://{}", gateway.addr());
    let fakes = if args.no_fake_provider {
        Vec::new()
    } else {
        wagate_local::fake::bundled::start(&config.sources, &base)
            .await
            .context("starting the fake providers (or use --no-fake-provider)")?
    };
    if !args.quiet {
        banner(&config, &base, &description, receiver.as_ref(), &args);
        for fake in &fakes {
            eprintln!("  {}", fake.describe());
        }
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
    for fake in &fakes {
        fake.stop().await;
    }
    if !args.quiet {
        eprintln!("status | {}", stats.line());
        match (report, volatile, &backend) {
            (Some(r), _, _) if r.pending == 0 => eprintln!("stopped: every queue is empty"),
            (Some(r), true, _) => eprintln!(
                "stopped: {} queued messages discarded (in-memory backend; they were retries waiting for their delay)",
                r.pending
            ),
            (Some(r), false, Backend::Sqlite(dir)) => eprintln!(
                "stopped: {} messages stay in {} for the next start",
                r.pending,
                dir.display()
            ),
            (Some(r), false, _) => eprintln!(
                "stopped: {} messages stay in SQS for the next start",
                r.pending
            ),
            (None, _, _) => eprintln!("stopped without draining"),
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
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}/webhooks/{}", DEFAULT_PORT, args.source));
    for (name, value) in sample::request_headers(source, &url, &body) {
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
                "Hello from wagate send",
                now,
            )
            .to_string()
            .into_bytes(),
        ),
        (Some(SampleKind::MetaImage), _) => {
            let png = wagate_local::fake::sample_image_png();
            let sha256 = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                <sha2::Sha256 as sha2::Digest>::digest(&png),
            );
            (
                "meta-demo",
                sample::meta_image(
                    "15550001111",
                    "Alice Example",
                    &sample::wamid(),
                    (wagate_local::fake::graph::SAMPLE_IMAGE_MEDIA_ID, &sha256),
                    "A photo from wagate send",
                    now,
                )
                .to_string()
                .into_bytes(),
            )
        }
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
        (Some(SampleKind::TwilioText), _) => (
            "twilio-demo",
            sample::twilio_text(
                "15550006666",
                "Tia Example",
                &sample::twilio_sid(),
                "Hello from Twilio",
            )
            .into_bytes(),
        ),
        (Some(SampleKind::TwilioStatus), _) => (
            "twilio-demo",
            sample::twilio_status("15550006666", &sample::twilio_sid(), "read").into_bytes(),
        ),
        (Some(SampleKind::Dialog360Text), _) => (
            "360dialog-demo",
            sample::meta_text(
                "15550003333",
                "Dee Example",
                &sample::wamid(),
                "Hello from 360dialog",
                now,
            )
            .to_string()
            .into_bytes(),
        ),
        (Some(SampleKind::GupshupText), _) => (
            "gupshup-demo",
            sample::gupshup_text(
                "15550004444",
                "Gus Example",
                &format!("gs-{}", ulid::Ulid::new()),
                "Hello from Gupshup",
                now,
            )
            .to_string()
            .into_bytes(),
        ),
        (Some(SampleKind::EvolutionText), _) => (
            "evolution-demo",
            sample::evolution_text(
                "15550005555",
                "Eve Example",
                &format!("3EB0{}", ulid::Ulid::new()),
                "Hello from Evolution API",
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
    let mut req = aws_adapters::http::client().post(&url);
    for (name, value) in sample::request_headers(source, &url, &body) {
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

async fn manage(command: &ManageCommand) -> anyhow::Result<()> {
    let answer = wagate_local::manage::run(command).await?;
    if !answer.is_null() {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault run starts its gateway child with exactly this argument.
    #[test]
    fn the_hidden_fault_option_takes_three_comma_separated_values() {
        let cli = Cli::try_parse_from(["wagate", "serve", "--inject-faults=0.05,0.05,7"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve");
        };
        assert_eq!(args.inject_faults, Some(vec![0.05, 0.05, 7.0]));
    }
}
