//! `wagate fake-provider`: one fake provider on 127.0.0.1, its webhook secret taken from the
//! local configuration's source, printing a line per request and webhook until Ctrl-C.
//!
//! Owns: the command's arguments and turning them (plus the configuration) into fake options.
//! Must not: print secrets, bodies or numbers.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use shared::model::Provider;
use shared::ports::Source;
use shared::signature::Secret;

use super::{
    DEMO_ACCESS_TOKEN, DEMO_WAHA_API_KEY, FakeGraph, FakeGraphOptions, FakeWaha, FakeWahaOptions,
    StatusPlan,
};
use crate::config::LocalConfig;

/// Which provider to fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FakeKind {
    /// Meta's Cloud API (Graph API `/{version}/{phone_number_id}/messages`).
    Meta,
    /// WAHA (`/api/sendText`, …).
    Waha,
}

/// `wagate fake-provider` arguments.
#[derive(Debug, Clone, Args)]
pub struct FakeProviderArgs {
    /// Which provider to fake.
    #[arg(long, value_enum, default_value = "meta")]
    pub provider: FakeKind,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3002)]
    pub port: u16,
    /// Where status webhooks go; default: http://127.0.0.1:3000/webhooks/{source}.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Post no webhooks at all.
    #[arg(long, conflicts_with = "webhook")]
    pub no_webhooks: bool,
    /// Configuration file whose source signs the webhooks; default: the bundled sample.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The source (default: the configuration's first source of that provider).
    #[arg(long)]
    pub source: Option<String>,
    /// The access token the Graph fake accepts (Meta).
    #[arg(long, env = "WAGATE_FAKE_ACCESS_TOKEN", default_value = DEMO_ACCESS_TOKEN, hide_env_values = true)]
    pub access_token: String,
    /// The `X-Api-Key` the WAHA fake accepts (WAHA; empty: none).
    #[arg(long, env = "WAGATE_FAKE_API_KEY", default_value = DEMO_WAHA_API_KEY, hide_env_values = true)]
    pub api_key: String,
    /// Milliseconds before each status (sent, delivered, read).
    #[arg(long, default_value_t = 1000)]
    pub status_delay_ms: u64,
}

/// The configured source the fake signs for.
fn pick_source<'a>(config: &'a LocalConfig, args: &FakeProviderArgs) -> anyhow::Result<&'a Source> {
    let provider = match args.provider {
        FakeKind::Meta => Provider::Meta,
        FakeKind::Waha => Provider::Waha,
    };
    let source = match &args.source {
        Some(id) => config
            .source(id)
            .with_context(|| format!("no source `{id}` in the configuration"))?,
        None => config
            .sources
            .iter()
            .find(|s| s.provider == provider)
            .with_context(|| format!("the configuration has no {provider:?} source"))?,
    };
    anyhow::ensure!(
        source.provider == provider,
        "source `{}` is a {:?} source, not {provider:?}",
        source.id.as_str(),
        source.provider
    );
    Ok(source)
}

/// The fake's options for `args` and `config`: webhooks to `{webhook}` (default
/// `http://127.0.0.1:3000/webhooks/{source}`) signed with the source's first secret.
pub fn graph_options(
    config: &LocalConfig,
    args: &FakeProviderArgs,
) -> anyhow::Result<FakeGraphOptions> {
    let source = pick_source(config, args)?;
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    Ok(FakeGraphOptions {
        access_token: Secret::from(args.access_token.as_str()),
        webhook_url: webhook(args, source),
        statuses: plan(args),
        print: true,
        ..FakeGraphOptions::for_source(source, bind, DEFAULT_GATEWAY)?
    })
}

/// See [`graph_options`].
pub fn waha_options(
    config: &LocalConfig,
    args: &FakeProviderArgs,
) -> anyhow::Result<FakeWahaOptions> {
    let source = pick_source(config, args)?;
    let bind = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    Ok(FakeWahaOptions {
        api_key: (!args.api_key.is_empty()).then(|| Secret::from(args.api_key.as_str())),
        webhook_url: webhook(args, source),
        statuses: plan(args),
        print: true,
        ..FakeWahaOptions::for_source(source, bind, DEFAULT_GATEWAY)?
    })
}

/// Where `wagate` serves by default.
const DEFAULT_GATEWAY: &str = "http://127.0.0.1:3000";

fn webhook(args: &FakeProviderArgs, source: &Source) -> Option<String> {
    if args.no_webhooks {
        return None;
    }
    Some(
        args.webhook
            .clone()
            .unwrap_or_else(|| format!("{DEFAULT_GATEWAY}/webhooks/{}", source.id.as_str())),
    )
}

fn plan(args: &FakeProviderArgs) -> StatusPlan {
    StatusPlan {
        delay: Duration::from_millis(args.status_delay_ms),
        ..StatusPlan::default()
    }
}

/// Runs the fake until `stop` resolves.
pub async fn run(args: FakeProviderArgs, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => LocalConfig::load(path)?,
        None => LocalConfig::sample()?,
    };
    match args.provider {
        FakeKind::Meta => {
            let options = graph_options(&config, &args)?;
            let webhook = options.webhook_url.clone();
            let fake = FakeGraph::start(options)
                .await
                .with_context(|| format!("port {} is taken (use --port)", args.port))?;
            println!("fake Meta Cloud API on {}", fake.url());
            println!("  send       POST {}", fake.messages_url("v23.0"));
            println!(
                "  token      Authorization: Bearer <--access-token> (default {DEMO_ACCESS_TOKEN})"
            );
            print_common(webhook.as_deref(), "0047, 1047, 0429, 0131, 0500, 0503");
            stop.await;
            fake.stop().await;
        }
        FakeKind::Waha => {
            let options = waha_options(&config, &args)?;
            let webhook = options.webhook_url.clone();
            let fake = FakeWaha::start(options)
                .await
                .with_context(|| format!("port {} is taken (use --port)", args.port))?;
            println!("fake WAHA (WEBJS engine) on {}", fake.url());
            println!(
                "  send       POST {}/api/sendText {{\"session\":\"default\",\"chatId\":\"15550001111@c.us\",\"text\":\"Hi\"}}",
                fake.url()
            );
            println!("  key        X-Api-Key: <--api-key> (default {DEMO_WAHA_API_KEY})");
            print_common(webhook.as_deref(), "0131, 0404, 0500, 0503");
            stop.await;
            fake.stop().await;
        }
    }
    Ok(())
}

fn print_common(webhook: Option<&str>, scripted: &str) {
    match webhook {
        Some(url) => println!("  webhooks   {url} (signed with the source's secret)"),
        None => println!("  webhooks   none"),
    }
    println!("  scripted   numbers ending {scripted} fail as documented in `wagate_local::fake`\n");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: FakeProviderArgs,
    }

    #[test]
    fn the_sample_sources_sign_the_fakes_webhooks() {
        let config = LocalConfig::sample().unwrap();
        let cli = Cli::try_parse_from(["x", "--provider", "meta"]).unwrap();
        let meta = graph_options(&config, &cli.args).unwrap();
        assert_eq!(
            meta.webhook_url.as_deref(),
            Some("http://127.0.0.1:3000/webhooks/meta-demo")
        );
        assert_eq!(meta.app_secret, Secret::from("demo-meta-app-secret"));
        assert_eq!(meta.bind.port(), 3002);
        let cli = Cli::try_parse_from([
            "x",
            "--provider",
            "waha",
            "--webhook",
            "http://127.0.0.1:9/h",
            "--api-key",
            "",
        ])
        .unwrap();
        let waha = waha_options(&config, &cli.args).unwrap();
        assert_eq!(waha.webhook_url.as_deref(), Some("http://127.0.0.1:9/h"));
        assert_eq!(waha.hmac_key, Some(Secret::from("demo-waha-hmac-key")));
        assert_eq!(waha.api_key, None);
        let wrong =
            Cli::try_parse_from(["x", "--provider", "waha", "--source", "meta-demo"]).unwrap();
        assert!(waha_options(&config, &wrong.args).is_err());
    }
}
