//! The track function as a library: configuration and the SQS handler, so tests drive exactly
//! what the Lambda runs (`main.rs` only wires it).

use std::sync::Arc;
use std::time::Duration;

use aws_adapters::env::{ConfigError, ConversationSettings, Env};
use aws_adapters::infra::{InfraError, Infrastructure};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use shared::pipeline::track::state::State;
use shared::pipeline::track::{QueueSink, Track, TrackConfig};

/// Everything the track function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: the wagate table (claims, state, staged results, claim-checks).
    pub table_name: String,
    /// `BUFFER_QUEUE_URL`: where `whatsapp.message.received` goes (batching per conversation).
    pub buffer_queue_url: String,
    /// `OUTBOUND_QUEUE_URL`: where every other event goes (fan-out to endpoints).
    pub outbound_queue_url: String,
    /// `DEDUP_TTL_DAYS` (default 8), `LEASE_SECONDS` (60), `CONVERSATION_IDLE_HOURS` (24).
    pub track: TrackConfig,
    /// `CONVERSATION_IDLE_HOURS`, `MESSAGE_TTL_DAYS` (default 30: how long message statuses are
    /// remembered), `RECENT_MESSAGES` (5: messages kept in a conversation's context): as sweep
    /// and admin keep them (the idle time is in `track` too).
    pub conversations: ConversationSettings,
    /// `RAW_TTL_DAYS` (default 7): how long claim-checked events are kept.
    pub blob_ttl: Duration,
    /// `MEDIA_QUEUE_URL` (optional): messages naming a media file go there to have it stored
    /// first; without it they go to the buffer with the provider's reference only.
    pub media_queue_url: Option<String>,
}

impl Config {
    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "TABLE_NAME",
        "BUFFER_QUEUE_URL",
        "OUTBOUND_QUEUE_URL",
        "DEDUP_TTL_DAYS",
        "LEASE_SECONDS",
        "CONVERSATION_IDLE_HOURS",
        "MESSAGE_TTL_DAYS",
        "RECENT_MESSAGES",
        "RAW_TTL_DAYS",
        "MEDIA_QUEUE_URL",
    ];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        const DAY: u64 = 24 * 3600;
        let env = Env(lookup);
        let conversations = env.conversations()?;
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            buffer_queue_url: env.required("BUFFER_QUEUE_URL")?,
            outbound_queue_url: env.required("OUTBOUND_QUEUE_URL")?,
            track: TrackConfig {
                dedup_ttl: env.duration("DEDUP_TTL_DAYS", 8, 7, DAY)?,
                lease: env.duration("LEASE_SECONDS", 60, 5, 1)?,
                idle: conversations.idle,
                // Read from the table at cold start (`main`), not from the environment.
                legacy_keys_until: None,
            },
            conversations,
            blob_ttl: env.duration("RAW_TTL_DAYS", 7, 0, DAY)?,
            media_queue_url: env.0("MEDIA_QUEUE_URL").filter(|u| !u.trim().is_empty()),
        })
    }
}

/// The track stage from its configuration, on `infra`: what the Lambda and the local gateway
/// run. Reads from the table since when dedup keys carry their source
/// ([`TrackConfig::legacy_keys_until`]), unless the store cannot hold keys from before.
pub async fn build(config: &Config, infra: &dyn Infrastructure) -> Result<Track, InfraError> {
    let state = State::new(infra.docs(), config.conversations);
    let mut track = config.track.clone();
    track.legacy_keys_until = if infra.may_hold_unscoped_dedup_keys() {
        Some(legacy_keys_until(&state, &track).await)
    } else {
        None
    };
    Ok(Track {
        blobs: infra.blobs(),
        state,
        sink: Arc::new(QueueSink {
            buffer: infra.queue(&config.buffer_queue_url)?,
            outbound: infra.queue(&config.outbound_queue_url)?,
            blobs: infra.blobs(),
            blob_ttl: config.blob_ttl,
            media: config
                .media_queue_url
                .as_deref()
                .map(|url| infra.queue(url))
                .transpose()?,
        }),
        config: track,
    })
}

/// Until when items may be remembered under dedup keys without their source id (see
/// `TrackConfig::legacy_keys_until`); if the store cannot say, for as long as they could be.
async fn legacy_keys_until(state: &State, config: &TrackConfig) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    let since = state
        .statuses
        .source_scoped_dedup_since(now)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read since when dedup keys are scoped; looking up unscoped keys too");
            now
        });
    config.legacy_window(since)
}

/// Handles one SQS batch: records that failed are reported for retry, the rest acknowledged.
pub async fn handle(track: &Track, event: SqsEvent) -> SqsBatchResponse {
    let records = aws_adapters::lambda::records(&event);
    let failed = track.process_batch(&records, chrono::Utc::now()).await;
    tracing::info!(records = records.len(), failed = failed.len(), "batch done");
    aws_adapters::lambda::batch_response(failed)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn reads_defaults_and_names_bad_variables() {
        let map: HashMap<&str, &str> = [
            ("TABLE_NAME", "t"),
            ("BUFFER_QUEUE_URL", "b"),
            ("OUTBOUND_QUEUE_URL", "o"),
        ]
        .into();
        let c = Config::from_lookup(|k| map.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.track.idle, Duration::from_secs(24 * 3600));
        assert_eq!(c.track.dedup_ttl, Duration::from_secs(8 * 24 * 3600));
        let mut short = map.clone();
        short.insert("DEDUP_TTL_DAYS", "3");
        let e = Config::from_lookup(|k| short.get(k).map(|v| (*v).to_owned())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable DEDUP_TTL_DAYS is invalid: must be at least 7"
        );
        let e = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(e.to_string(), "environment variable TABLE_NAME is not set");
    }
}
