//! Ingest configuration, read once at cold start from the environment (names as in
//! `template.yaml`).

use aws_adapters::env::{ConfigError, Env};
use shared::config::{SourcesError, parse_sources};
use shared::pipeline::ingest::IngestConfig;
use shared::ports::Source;

/// Everything the ingest function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `WAGATE_SOURCES`: JSON list of sources with their secrets (see README, "Sources").
    pub sources: Vec<Source>,
    /// `TABLE_NAME`: the wagate DynamoDB table (raw requests, claim-checked events).
    pub table_name: String,
    /// `INBOUND_QUEUE_URL`: where normalized events go.
    pub inbound_queue_url: String,
    /// `MAX_BODY_BYTES` (default 1048576) and `RAW_TTL_DAYS` (default 7).
    pub ingest: IngestConfig,
}

impl Config {
    /// Reads the configuration through `lookup` (the process environment in `main`, a map in
    /// tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let sources =
            parse_sources(&env.required("WAGATE_SOURCES")?).map_err(|e: SourcesError| {
                ConfigError::Invalid {
                    name: "WAGATE_SOURCES",
                    reason: e.to_string(),
                }
            })?;
        Self::with_sources(sources, &env)
    }

    /// The configuration with `sources` given (local mode reads them from its file), the rest
    /// through `env`.
    pub fn with_sources(
        sources: Vec<Source>,
        env: &Env<impl Fn(&str) -> Option<String>>,
    ) -> Result<Self, ConfigError> {
        let max_body_bytes = usize::try_from(env.number("MAX_BODY_BYTES", 1024 * 1024, 1024)?)
            .map_err(|_| ConfigError::Invalid {
                name: "MAX_BODY_BYTES",
                reason: "too large".into(),
            })?;
        Ok(Self {
            sources,
            table_name: env.required("TABLE_NAME")?,
            inbound_queue_url: env.required("INBOUND_QUEUE_URL")?,
            ingest: IngestConfig {
                max_body_bytes,
                raw_ttl: env.duration("RAW_TTL_DAYS", 7, 0, 24 * 3600)?,
                ..IngestConfig::default()
            },
        })
    }

    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "WAGATE_SOURCES",
        "WAGATE_SOURCES_PARAMETER",
        "TABLE_NAME",
        "INBOUND_QUEUE_URL",
        "MAX_BODY_BYTES",
        "RAW_TTL_DAYS",
    ];

    /// The secrets that may come from SSM Parameter Store instead (`{NAME}_PARAMETER`, read by
    /// `main` through `aws_adapters::secrets` before the configuration).
    pub const SECRETS: &'static [&'static str] = &["WAGATE_SOURCES"];
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        aws_adapters::env::lookup_in(pairs)
    }

    const SOURCES: &str =
        r#"[{"id":"meta-main","provider":"meta","secrets":"a,b","verify_token":"t"}]"#;

    #[test]
    fn reads_a_complete_configuration_with_defaults() {
        let c = Config::from_lookup(env(&[
            ("WAGATE_SOURCES", SOURCES),
            ("TABLE_NAME", "t"),
            ("INBOUND_QUEUE_URL", "u"),
        ]))
        .unwrap();
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].secrets.len(), 2);
        assert_eq!(c.ingest.max_body_bytes, 1024 * 1024);
        assert_eq!(c.ingest.raw_ttl, Duration::from_secs(7 * 86400));
    }

    #[test]
    fn names_the_missing_or_invalid_variable() {
        let e = Config::from_lookup(env(&[("WAGATE_SOURCES", SOURCES), ("TABLE_NAME", "t")]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable INBOUND_QUEUE_URL is not set"
        );
        let e = Config::from_lookup(env(&[
            ("WAGATE_SOURCES", SOURCES),
            ("TABLE_NAME", "t"),
            ("INBOUND_QUEUE_URL", "u"),
            ("MAX_BODY_BYTES", "lots"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("MAX_BODY_BYTES"), "{e}");
        let e = Config::from_lookup(env(&[
            ("WAGATE_SOURCES", "[{}]"),
            ("TABLE_NAME", "t"),
            ("INBOUND_QUEUE_URL", "u"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("WAGATE_SOURCES"), "{e}");
    }
}
