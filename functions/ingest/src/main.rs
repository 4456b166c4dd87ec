//! The ingest Lambda: wires configuration, SDK clients and adapters once at cold start, then
//! serves API Gateway requests with [`ingest::router`].

use std::sync::Arc;

use aws_adapters::{Clients, DynamoBlobStore, SqsQueue};
use ingest::Config;
use lambda_http::Error;
use lambda_http::tower::ServiceBuilder;
use shared::pipeline::ingest::Ingest;
use shared::ports::StaticSources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let sdk = aws_adapters::sdk_config().await;
    let clients = Clients::new(&sdk);
    let config =
        Config::from_lookup(aws_adapters::secrets::environment(&sdk, Config::SECRETS).await?)?;
    let queue = SqsQueue::new(clients.sqs, &config.inbound_queue_url);
    let blobs = DynamoBlobStore::new(clients.dynamodb, &config.table_name);
    // Open both connections now so the first webhook does not pay for the TLS handshakes.
    tokio::join!(queue.warm(), blobs.warm());
    tracing::info!(sources = config.sources.len(), "ingest ready");
    let ingest = Ingest {
        sources: Arc::new(StaticSources::new(config.sources)),
        queue: Arc::new(queue),
        blobs: Arc::new(blobs),
        config: config.ingest,
    };
    // One metrics line per invocation, after the answer.
    let service = ServiceBuilder::new()
        .map_future(aws_adapters::lambda::with_metrics)
        .service(ingest::router(ingest));
    lambda_http::run(service).await
}
