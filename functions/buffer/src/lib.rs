//! The buffer function as a library: configuration and the SQS handler.

use std::time::Duration;

use aws_adapters::env::{ConfigError, Env};
use aws_adapters::infra::{InfraError, Infrastructure};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use shared::delivery::buffer::{Buffer, BufferConfig, MAX_BATCH_SIZE};
use shared::delivery::fanout::Fanout;
use shared::delivery::request::BodyForm;

/// Everything the buffer function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: pending batches, endpoints, claim-checks.
    pub table_name: String,
    /// `BUFFER_QUEUE_URL`: the queue this function consumes; timers go back onto it.
    pub buffer_queue_url: String,
    /// `DELIVERY_QUEUE_URL`: where batch deliveries go.
    pub delivery_queue_url: String,
    /// `BUFFER_WINDOW_SECONDS` (5, 1–60), `MAX_BATCH_SIZE` (50), `MAX_WAIT_SECONDS` (30).
    pub buffer: BufferConfig,
    /// `RAW_TTL_DAYS` (default 7): how long claim-checked deliveries are kept.
    pub blob_ttl: Duration,
    /// `ENDPOINT_CACHE_SECONDS` (default 5): how long an instance reuses the endpoints it read.
    pub endpoint_cache: Duration,
    /// `DELIVERY_BODY_FORM` (`text` or `json`, default `text`): how tasks carry their bodies.
    pub body_form: BodyForm,
}

impl Config {
    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "TABLE_NAME",
        "BUFFER_QUEUE_URL",
        "DELIVERY_QUEUE_URL",
        "BUFFER_WINDOW_SECONDS",
        "MAX_BATCH_SIZE",
        "MAX_WAIT_SECONDS",
        "RAW_TTL_DAYS",
        "ENDPOINT_CACHE_SECONDS",
        "DELIVERY_BODY_FORM",
    ];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let window = env.number("BUFFER_WINDOW_SECONDS", 5, 1)?;
        if window > 60 {
            return Err(ConfigError::Invalid {
                name: "BUFFER_WINDOW_SECONDS",
                reason: "must be at most 60".into(),
            });
        }
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            buffer_queue_url: env.required("BUFFER_QUEUE_URL")?,
            delivery_queue_url: env.required("DELIVERY_QUEUE_URL")?,
            buffer: BufferConfig {
                window: Duration::from_secs(window),
                max_batch: match env.number("MAX_BATCH_SIZE", 50, 1)? {
                    n if n > MAX_BATCH_SIZE as u64 => {
                        return Err(ConfigError::Invalid {
                            name: "MAX_BATCH_SIZE",
                            reason: format!("must be at most {MAX_BATCH_SIZE}"),
                        });
                    }
                    n => usize::try_from(n).unwrap_or(50),
                },
                max_wait: env.duration("MAX_WAIT_SECONDS", 30, 1, 1)?,
            },
            blob_ttl: env.duration("RAW_TTL_DAYS", 7, 0, 24 * 3600)?,
            endpoint_cache: env.endpoint_cache()?,
            body_form: env.body_form()?,
        })
    }
}

/// The buffer stage (with the fan-out its flushes go through) from its configuration, on
/// `infra`: what the Lambda and the local gateway run.
pub fn build(config: &Config, infra: &dyn Infrastructure) -> Result<Buffer, InfraError> {
    Ok(Buffer {
        docs: infra.docs(),
        queue: infra.queue(&config.buffer_queue_url)?,
        blobs: infra.blobs(),
        fanout: Fanout {
            endpoints: infra.endpoints(config.endpoint_cache),
            queue: infra.queue(&config.delivery_queue_url)?,
            blobs: infra.blobs(),
            blob_ttl: config.blob_ttl,
            body_form: config.body_form,
        },
        config: config.buffer.clone(),
    })
}

/// Handles one SQS batch of buffer records (messages and timers).
pub async fn handle(buffer: &Buffer, event: SqsEvent) -> SqsBatchResponse {
    let records = aws_adapters::lambda::records(&event);
    let failed = buffer.process_batch(&records, chrono::Utc::now()).await;
    aws_adapters::lambda::batch_response(failed)
}
