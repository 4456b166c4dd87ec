//! The ingest function as a library: configuration and the HTTP router, so tests drive exactly
//! what the Lambda runs (`main.rs` only wires it to the runtime).

mod config;
// The Lambda's API Gateway step (`lambda_http`): only the function and the tests need it.
#[cfg(feature = "aws")]
mod handler;

use std::sync::Arc;

pub use aws_adapters::env::ConfigError;
use aws_adapters::infra::{InfraError, Infrastructure};
pub use config::Config;
#[cfg(feature = "aws")]
pub use handler::router;
use shared::pipeline::ingest::Ingest;
use shared::ports::StaticSources;

/// The ingest stage from its configuration, on `infra`: what the Lambda and the local gateway
/// run.
pub fn build(config: &Config, infra: &dyn Infrastructure) -> Result<Ingest, InfraError> {
    Ok(Ingest {
        sources: Arc::new(StaticSources::new(config.sources.clone())),
        queue: infra.queue(&config.inbound_queue_url)?,
        blobs: infra.blobs(),
        config: config.ingest.clone(),
    })
}
