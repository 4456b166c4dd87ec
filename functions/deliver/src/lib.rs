//! The deliver function as a library: configuration, the reqwest sender, and the SQS handler.

pub mod http;

use aws_adapters::env::{ConfigError, Env};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use shared::delivery::deliver::{Deliver, DeliverConfig};
use shared::delivery::retry::RetryPolicy;
use shared::delivery::ssrf::NetworkPolicy;

/// Everything the deliver function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: endpoints and attempt records.
    pub table_name: String,
    /// `DELIVERY_QUEUE_URL`: the queue this function consumes (for retry delays).
    pub delivery_queue_url: String,
    /// `DELIVERY_DLQ_URL`: where tasks go after the last attempt or a final failure.
    pub delivery_dlq_url: String,
    /// `DELIVERY_TIMEOUT_SECONDS` (10), `MAX_ATTEMPTS` (8), `ATTEMPT_TTL_DAYS` (30).
    pub deliver: DeliverConfig,
}

impl Config {
    /// The environment variables this function reads (checked against `template.yaml`).
    pub const VARIABLES: &'static [&'static str] = &[
        "TABLE_NAME",
        "DELIVERY_QUEUE_URL",
        "DELIVERY_DLQ_URL",
        "DELIVERY_TIMEOUT_SECONDS",
        "MAX_ATTEMPTS",
        "ATTEMPT_TTL_DAYS",
    ];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let max_attempts = u32::try_from(env.number("MAX_ATTEMPTS", 8, 1)?).unwrap_or(8);
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            delivery_queue_url: env.required("DELIVERY_QUEUE_URL")?,
            delivery_dlq_url: env.required("DELIVERY_DLQ_URL")?,
            deliver: DeliverConfig {
                timeout: env.duration("DELIVERY_TIMEOUT_SECONDS", 10, 1, 1)?,
                retry: RetryPolicy {
                    max_attempts,
                    ..RetryPolicy::default()
                },
                attempt_ttl: env.duration("ATTEMPT_TTL_DAYS", 30, 1, 24 * 3600)?,
                network: NetworkPolicy::PublicOnly,
            },
        })
    }
}

/// Handles one SQS batch of delivery tasks; transient failures come back after their backoff.
pub async fn handle(deliver: &Deliver, event: SqsEvent) -> SqsBatchResponse {
    let messages = aws_adapters::lambda::received(&event);
    let failed = deliver.process_batch(&messages, chrono::Utc::now()).await;
    aws_adapters::lambda::batch_response(failed)
}
