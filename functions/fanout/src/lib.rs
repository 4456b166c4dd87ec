//! The fan-out function as a library: configuration and the SQS handler.

use std::time::Duration;

use aws_adapters::env::{ConfigError, Env};
use aws_adapters::infra::{InfraError, Infrastructure};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use shared::delivery::fanout::Fanout;
use shared::delivery::request::BodyForm;

/// Everything the fan-out function needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TABLE_NAME`: endpoints and claim-checks.
    pub table_name: String,
    /// `DELIVERY_QUEUE_URL`: where delivery tasks go.
    pub delivery_queue_url: String,
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
        "DELIVERY_QUEUE_URL",
        "RAW_TTL_DAYS",
        "ENDPOINT_CACHE_SECONDS",
        "DELIVERY_BODY_FORM",
    ];

    /// Reads the configuration through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        Ok(Self {
            table_name: env.required("TABLE_NAME")?,
            delivery_queue_url: env.required("DELIVERY_QUEUE_URL")?,
            blob_ttl: env.duration("RAW_TTL_DAYS", 7, 0, 24 * 3600)?,
            endpoint_cache: env.endpoint_cache()?,
            body_form: env.body_form()?,
        })
    }
}

/// The fan-out stage from its configuration, on `infra`: what the Lambda and the local gateway
/// run.
pub fn build(config: &Config, infra: &dyn Infrastructure) -> Result<Fanout, InfraError> {
    Ok(Fanout {
        endpoints: infra.endpoints(config.endpoint_cache),
        queue: infra.queue(&config.delivery_queue_url)?,
        blobs: infra.blobs(),
        blob_ttl: config.blob_ttl,
        body_form: config.body_form,
    })
}

/// Handles one SQS batch of outbound events.
pub async fn handle(fanout: &Fanout, event: SqsEvent) -> SqsBatchResponse {
    let records = aws_adapters::lambda::records(&event);
    let failed = fanout.process_batch(&records, chrono::Utc::now()).await;
    aws_adapters::lambda::batch_response(failed)
}
