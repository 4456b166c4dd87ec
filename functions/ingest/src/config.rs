//! Ingest configuration, read once at cold start from the environment (names as in
//! `template.yaml`).

use std::time::Duration;

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

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Config {
    /// Reads the configuration through `lookup` (the process environment in `main`, a map in
    /// tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            lookup(name)
                .filter(|v| !v.is_empty())
                .map_or(Ok(default), |v| {
                    v.trim().parse().map_err(|_| ConfigError::Invalid {
                        name,
                        reason: format!("`{v}` is not a whole number"),
                    })
                })
        };
        let sources = parse_sources(&required("WAGATE_SOURCES")?).map_err(|e: SourcesError| {
            ConfigError::Invalid {
                name: "WAGATE_SOURCES",
                reason: e.to_string(),
            }
        })?;
        let max_body_bytes =
            usize::try_from(number("MAX_BODY_BYTES", 1024 * 1024)?).map_err(|_| {
                ConfigError::Invalid {
                    name: "MAX_BODY_BYTES",
                    reason: "too large".into(),
                }
            })?;
        let raw_ttl_days = number("RAW_TTL_DAYS", 7)?;
        if raw_ttl_days == 0 {
            return Err(ConfigError::Invalid {
                name: "RAW_TTL_DAYS",
                reason: "must be at least 1".into(),
            });
        }
        Ok(Self {
            sources,
            table_name: required("TABLE_NAME")?,
            inbound_queue_url: required("INBOUND_QUEUE_URL")?,
            ingest: IngestConfig {
                max_body_bytes,
                raw_ttl: Duration::from_secs(raw_ttl_days * 24 * 3600),
            },
        })
    }

    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "WAGATE_SOURCES",
        "TABLE_NAME",
        "INBOUND_QUEUE_URL",
        "MAX_BODY_BYTES",
        "RAW_TTL_DAYS",
    ];
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
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
