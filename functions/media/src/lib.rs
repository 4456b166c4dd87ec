//! The media function as a library: configuration and the SQS handler, so tests drive exactly
//! what the Lambda runs (`main.rs` only wires it).

use std::sync::Arc;
use std::time::Duration;

use aws_adapters::env::{ConfigError, Env};
use aws_adapters::infra::{InfraError, Infrastructure};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use shared::clock::Clock;
use shared::config::parse_sources;
use shared::media::{Media, MediaConfig};
use shared::ports::{Source, StaticSources};

/// Everything the media function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: media documents, claim-checks.
    pub table_name: String,
    /// `MEDIA_BUCKET`: where files are stored (private, encrypted, expiring).
    pub bucket: String,
    /// `BUFFER_QUEUE_URL`: where messages go once their file is stored (or the wait ran out).
    pub buffer_queue_url: String,
    /// `RAW_TTL_DAYS` (7): how long claim-checked events are kept.
    pub blob_ttl: Duration,
    /// `MEDIA_WAIT_SECONDS` (30, 0–600), `MEDIA_URL_TTL_SECONDS` (86400, 60–604800),
    /// `MEDIA_TTL_DAYS` (30), `MEDIA_DOWNLOAD_TIMEOUT_SECONDS` (60, 5–600), `MEDIA_MAX_BYTES`
    /// (a ceiling under WhatsApp's per-type limits), `MEDIA_ALLOWED_TYPES` (comma-separated
    /// MIME types, `type/*` allowed; default the types WhatsApp documents).
    pub media: MediaConfig,
    /// `CONVERSATION_IDLE_HOURS`, `MESSAGE_TTL_DAYS`, `RECENT_MESSAGES`: as track keeps
    /// conversations (a stored file goes on its message's summaries there too).
    pub conversations: aws_adapters::env::ConversationSettings,
    /// `WAGATE_SOURCES` (or its SSM parameter): the sources and the credentials their files are
    /// fetched with (Meta: `send.access_token`; WAHA: `send.api_key`).
    pub sources: Vec<Source>,
}

impl Config {
    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "TABLE_NAME",
        "MEDIA_BUCKET",
        "BUFFER_QUEUE_URL",
        "RAW_TTL_DAYS",
        "MEDIA_WAIT_SECONDS",
        "MEDIA_URL_TTL_SECONDS",
        "MEDIA_TTL_DAYS",
        "MEDIA_DOWNLOAD_TIMEOUT_SECONDS",
        "MEDIA_MAX_BYTES",
        "MEDIA_ALLOWED_TYPES",
        "CONVERSATION_IDLE_HOURS",
        "MESSAGE_TTL_DAYS",
        "RECENT_MESSAGES",
        "WAGATE_SOURCES",
        "WAGATE_SOURCES_PARAMETER",
    ];

    /// The secrets that may come from SSM Parameter Store instead (`{NAME}_PARAMETER`).
    pub const SECRETS: &'static [&'static str] = &["WAGATE_SOURCES"];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let media = env.media()?;
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            bucket: env.required("MEDIA_BUCKET")?,
            buffer_queue_url: env.required("BUFFER_QUEUE_URL")?,
            blob_ttl: env.duration("RAW_TTL_DAYS", 7, 0, 24 * 3600)?,
            media,
            conversations: env.conversations()?,
            sources: parse_sources(&env.required("WAGATE_SOURCES")?).map_err(|e| {
                ConfigError::Invalid {
                    name: "WAGATE_SOURCES",
                    reason: e.to_string(),
                }
            })?,
        })
    }
}

/// The media stage from its configuration, on `infra`: what the Lambda and the local gateway
/// run.
pub fn build(config: &Config, infra: &dyn Infrastructure) -> Result<Media, InfraError> {
    Ok(Media {
        config: config.media.clone(),
        docs: infra.docs(),
        store: infra.media_store(&config.bucket)?,
        api: infra.provider_api()?,
        sources: Arc::new(StaticSources::new(config.sources.clone())),
        next: infra.queue(&config.buffer_queue_url)?,
        blobs: infra.blobs(),
        blob_ttl: config.blob_ttl,
        clock: Clock::system(),
        conversations: Some(shared::pipeline::track::state::Conversations {
            docs: infra.docs(),
            settings: config.conversations,
        }),
    })
}

/// Handles one SQS batch: records that failed are reported for retry, the rest acknowledged.
pub async fn handle(media: &Media, event: SqsEvent) -> SqsBatchResponse {
    let records = aws_adapters::lambda::records(&event);
    let failed = media.process_batch(&records).await;
    tracing::info!(records = records.len(), failed = failed.len(), "batch done");
    aws_adapters::lambda::batch_response(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        aws_adapters::env::lookup_in(pairs)
    }

    const BASE: [(&str, &str); 4] = [
        ("TABLE_NAME", "t"),
        ("MEDIA_BUCKET", "b"),
        ("BUFFER_QUEUE_URL", "q"),
        (
            "WAGATE_SOURCES",
            r#"[{"id":"meta-main","provider":"meta","secrets":["s"],"send":{"access_token":"EAAG"}}]"#,
        ),
    ];

    #[test]
    fn reads_defaults_and_refuses_bad_values() {
        let config = Config::from_lookup(env(&BASE)).unwrap();
        assert_eq!(config.media.wait, Duration::from_secs(30));
        assert_eq!(config.media.url_ttl, Duration::from_secs(86_400));
        assert_eq!(config.media.ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(config.media.max_bytes, None);
        assert!(
            config
                .media
                .allowed_types
                .contains(&"image/jpeg".to_owned())
        );
        assert_eq!(config.sources.len(), 1);
        let with = |k: &'static str, v: &'static str| {
            let mut pairs = BASE.to_vec();
            pairs.push((k, v));
            Config::from_lookup(env(&pairs))
        };
        let config = with("MEDIA_ALLOWED_TYPES", "image/*, application/pdf").unwrap();
        assert_eq!(config.media.allowed_types, ["image/*", "application/pdf"]);
        assert_eq!(
            with("MEDIA_MAX_BYTES", "1000").unwrap().media.max_bytes,
            Some(1000)
        );
        for (k, v) in [
            ("MEDIA_URL_TTL_SECONDS", "604801"),
            ("MEDIA_WAIT_SECONDS", "601"),
            ("MEDIA_ALLOWED_TYPES", "jpeg"),
            ("MEDIA_MAX_BYTES", "0"),
            ("MEDIA_TTL_DAYS", "0"),
        ] {
            let err = with(k, v).unwrap_err().to_string();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
        let err = Config::from_lookup(env(&BASE[..3]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("WAGATE_SOURCES"), "{err}");
    }
}
