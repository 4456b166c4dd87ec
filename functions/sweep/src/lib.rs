//! The sweep function as a library: configuration and the scheduled handler.

use std::time::Duration;

use aws_adapters::env::{ConfigError, ConversationSettings, Env};
use aws_adapters::infra::{InfraError, Infrastructure};
use serde_json::{Value, json};
use shared::pipeline::track::state::Conversations;
use shared::pipeline::track::sweep::{Sweep, SweepError};

/// Everything the sweep function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: the wagate table.
    pub table_name: String,
    /// `OUTBOUND_QUEUE_URL`: where `whatsapp.conversation.ended` goes.
    pub outbound_queue_url: String,
    /// `CONVERSATION_IDLE_HOURS`, `MESSAGE_TTL_DAYS`, `RECENT_MESSAGES`: as track keeps them.
    pub conversations: ConversationSettings,
    /// `SWEEP_PAGE_SIZE` (default 100): conversations ended per index page.
    pub page: usize,
    /// `RAW_TTL_DAYS` (default 7): how long claim-checked events are kept.
    pub blob_ttl: Duration,
}

impl Config {
    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "TABLE_NAME",
        "OUTBOUND_QUEUE_URL",
        "CONVERSATION_IDLE_HOURS",
        "MESSAGE_TTL_DAYS",
        "RECENT_MESSAGES",
        "SWEEP_PAGE_SIZE",
        "RAW_TTL_DAYS",
    ];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            outbound_queue_url: env.required("OUTBOUND_QUEUE_URL")?,
            conversations: env.conversations()?,
            page: env.sweep_page()?,
            blob_ttl: env.duration("RAW_TTL_DAYS", 7, 0, 24 * 3600)?,
        })
    }
}

/// The sweep from its configuration, on `infra`: what the Lambda, the admin API (closing a
/// conversation) and the local gateway run. It emits only conversation events, so both routes
/// of its sink are the outbound queue.
pub fn build(config: &Config, infra: &dyn Infrastructure) -> Result<Sweep, InfraError> {
    Ok(Sweep::emitting_to(
        Conversations {
            docs: infra.docs(),
            settings: config.conversations,
        },
        infra.queue(&config.outbound_queue_url)?,
        infra.blobs(),
        config.blob_ttl,
        config.page,
    ))
}

/// Handles one scheduled invocation (the EventBridge event itself carries nothing needed).
pub async fn handle(
    sweep: &Sweep,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Value, SweepError> {
    let ended = sweep.run(now).await?;
    tracing::info!(ended, "sweep done");
    Ok(json!({ "ended": ended }))
}
