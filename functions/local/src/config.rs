//! The local configuration file: sources (the `WAGATE_SOURCES` format), endpoints to create or
//! update at start, and function settings under the same names as the Lambda environment
//! variables. The bundled sample ([`SAMPLE`]) is what the first README command runs with.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use shared::config::parse_sources;
use shared::delivery::endpoints::Endpoint;
use shared::delivery::ssrf::NetworkPolicy;
use shared::ports::Source;
use shared::signature::EndpointSecret;

/// The sample configuration compiled into the binary (`functions/local/wagate.local.json`).
pub const SAMPLE: &str = include_str!("../wagate.local.json");

/// One endpoint to have at start (created if missing, updated if different).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// The endpoint id (stable, so restarts update rather than duplicate).
    pub id: String,
    /// Where deliveries go (`http://` allowed to loopback in local mode).
    pub url: String,
    /// The `whsec_` signing secret (fixed, so a receiver can be started with it).
    pub secret: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Event type filters (empty or `*`: everything).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Batch inbound message bursts.
    #[serde(default = "yes")]
    pub batching: bool,
    /// Extra headers sent with every delivery.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "_comment")]
    _comment: Option<String>,
    sources: serde_json::Value,
    #[serde(default)]
    endpoints: Vec<EndpointSpec>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

/// A parsed, validated local configuration.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Webhook sources with their secrets.
    pub sources: Vec<Source>,
    /// Endpoints to create or update at start.
    pub endpoints: Vec<EndpointSpec>,
    /// Function settings (`BUFFER_WINDOW_SECONDS`, `MAX_ATTEMPTS`, …), below the process
    /// environment in precedence.
    pub settings: BTreeMap<String, String>,
}

impl LocalConfig {
    /// Parses a configuration file's text. Errors name the field, never a secret.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: File = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("{}", shared::json_error(&e)))
            .context("the configuration is not the documented JSON shape")?;
        let sources = parse_sources(&file.sources.to_string()).context("`sources`")?;
        let mut ids = std::collections::HashSet::new();
        for spec in &file.endpoints {
            if !ids.insert(spec.id.as_str()) {
                bail!("endpoint id `{}` is used twice", spec.id);
            }
            spec.to_endpoint(Utc::now())?;
        }
        Ok(Self {
            sources,
            endpoints: file.endpoints,
            settings: file.settings,
        })
    }

    /// The bundled sample.
    pub fn sample() -> anyhow::Result<Self> {
        Self::parse(SAMPLE)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The source with this id.
    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id.as_str() == id)
    }
}

impl EndpointSpec {
    /// The endpoint this spec describes, validated for local mode (loopback allowed).
    pub fn to_endpoint(&self, now: DateTime<Utc>) -> anyhow::Result<Endpoint> {
        let secret = EndpointSecret::parse(&self.secret)
            .with_context(|| format!("endpoint `{}`: secret", self.id))?;
        let mut endpoint = Endpoint::new(&self.id, &self.url, &secret, now);
        endpoint.description.clone_from(&self.description);
        endpoint.event_types.clone_from(&self.event_types);
        endpoint.batching = self.batching;
        endpoint.headers.clone_from(&self.headers);
        endpoint
            .validate(NetworkPolicy::AllowLoopback)
            .with_context(|| format!("endpoint `{}`", self.id))?;
        Ok(endpoint)
    }

    /// The parsed signing secret.
    pub fn signing_secret(&self) -> anyhow::Result<EndpointSecret> {
        EndpointSecret::parse(&self.secret).with_context(|| format!("endpoint `{}`", self.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_parses_with_a_source_per_provider_and_the_demo_endpoint() {
        let config = LocalConfig::sample().unwrap();
        assert_eq!(config.sources.len(), 6);
        for provider in shared::model::Provider::ALL {
            assert!(
                config.sources.iter().any(|s| s.provider == provider),
                "{provider:?}"
            );
        }
        assert!(config.source("meta-demo").is_some());
        assert!(config.source("waha-demo").is_some());
        assert_eq!(config.endpoints.len(), 1);
        let endpoint = config.endpoints[0].to_endpoint(Utc::now()).unwrap();
        assert_eq!(endpoint.url, "http://127.0.0.1:3001/webhooks");
        assert_eq!(
            endpoint.headers.get("X-API-Key").map(String::as_str),
            Some("demo-api-key")
        );
    }

    #[test]
    fn bad_files_are_refused_without_echoing_secrets() {
        let err =
            LocalConfig::parse(r#"{"sources": [{"id": "x", "provider": "meta", "secrets": []}]}"#)
                .unwrap_err();
        assert!(format!("{err:#}").contains("no secret"), "{err:#}");
        let err = LocalConfig::parse(
            r#"{"sources": [], "endpoints": [{"id": "e", "url": "http://10.0.0.1/", "secret": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}"#,
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("endpoint `e`"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(LocalConfig::parse("{").is_err());
    }
}
