//! `endpoints`: seeds subscriber endpoints from a JSON file until the management API exists.
//!
//! ```text
//! TABLE_NAME=… endpoints apply endpoints.json      # create or update, print new secrets once
//! TABLE_NAME=… endpoints list
//! ```
//! The file is a list of `{"id"?, "url", "event_types"?, "batching"?, "headers"?, "description"?,
//! "enabled"?}`. An endpoint without `id` is created with a fresh id and secret; with an `id`, the
//! stored endpoint is updated and keeps its secrets.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, bail};
use aws_adapters::env::Env;
use aws_adapters::{Clients, DynamoDocumentStore};
use serde::Deserialize;
use shared::delivery::endpoints::{Endpoint, Endpoints};
use shared::delivery::ssrf::NetworkPolicy;
use shared::signature::EndpointSecret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    id: Option<String>,
    url: String,
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default = "yes")]
    batching: bool,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = Env(|k: &str| std::env::var(k).ok());
    let clients = Clients::new(&aws_adapters::sdk_config().await);
    let endpoints = Endpoints {
        docs: Arc::new(DynamoDocumentStore::new(
            clients.dynamodb,
            env.required("TABLE_NAME")?,
        )),
    };
    let now = chrono::Utc::now();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["list"] => {
            for e in endpoints.list(10_000, now).await? {
                println!(
                    "{}\t{}\tenabled={}\tbatching={}\t{:?}",
                    e.id, e.url, e.enabled, e.batching, e.event_types
                );
            }
        }
        ["apply", file] => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            let specs: Vec<Spec> =
                serde_json::from_str(&text).context("expected a JSON list of endpoints")?;
            for spec in specs {
                apply(&endpoints, spec, now).await?;
            }
        }
        _ => bail!(
            "usage: endpoints apply FILE | endpoints list   (env: TABLE_NAME and the AWS settings)"
        ),
    }
    Ok(())
}

async fn apply(
    endpoints: &Endpoints,
    spec: Spec,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let existing = match &spec.id {
        Some(id) => Some(
            endpoints
                .get(id, now)
                .await?
                .with_context(|| format!("no endpoint {id}"))?,
        ),
        None => None,
    };
    let (endpoint, version, new_secret) = match existing {
        Some((old, version)) => {
            let e = Endpoint {
                url: spec.url,
                event_types: spec.event_types,
                batching: spec.batching,
                headers: spec.headers,
                description: spec.description,
                enabled: spec.enabled,
                updated_at: now,
                ..old
            };
            (e, Some(version), None)
        }
        None => {
            let secret = EndpointSecret::generate().context("no randomness for a secret")?;
            let mut e = Endpoint::new(format!("ep_{}", ulid::Ulid::new()), spec.url, &secret, now);
            (e.description, e.event_types, e.batching) =
                (spec.description, spec.event_types, spec.batching);
            (e.headers, e.enabled) = (spec.headers, spec.enabled);
            (e, None, Some(secret))
        }
    };
    endpoint
        .validate(NetworkPolicy::PublicOnly)
        .with_context(|| format!("endpoint {}", endpoint.url))?;
    if !endpoints.put(&endpoint, version, now).await? {
        bail!("endpoint {} changed meanwhile; run again", endpoint.id);
    }
    match new_secret {
        Some(secret) => println!(
            "created {} {}\n  secret (shown once): {}",
            endpoint.id,
            endpoint.url,
            secret.expose()
        ),
        None => println!("updated {} {}", endpoint.id, endpoint.url),
    }
    Ok(())
}
