//! The ingest Lambda: wires configuration, SDK clients and adapters once at cold start, then
//! serves API Gateway requests with [`ingest::router`].

use aws_adapters::infra::Aws;
use ingest::Config;
use lambda_http::Error;
use lambda_http::tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let sdk = aws_adapters::sdk_config().await;
    let config =
        Config::from_lookup(aws_adapters::secrets::environment(&sdk, Config::SECRETS).await?)?;
    let infra = Aws::new(&sdk, &config.table_name);
    // Open both connections now so the first webhook does not pay for the TLS handshakes.
    infra.warm(Some(&config.inbound_queue_url)).await;
    tracing::info!(sources = config.sources.len(), "ingest ready");
    let ingest = ingest::build(&config, &infra)?;
    // One metrics line per invocation, after the answer.
    let service = ServiceBuilder::new()
        .map_future(aws_adapters::lambda::with_metrics)
        .service(ingest::router(ingest));
    lambda_http::run(service).await
}
