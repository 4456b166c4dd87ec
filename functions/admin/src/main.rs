//! The admin Lambda: wires configuration, clients and stores once at cold start, then serves
//! `/v1/*` through API Gateway with [`admin::router`].

use aws_adapters::infra::Aws;
use lambda_http::Error;
use lambda_http::tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let sdk = aws_adapters::sdk_config().await;
    let lookup = aws_adapters::secrets::environment(&sdk, admin::Config::SECRETS).await?;
    let config = admin::Config::from_lookup(lookup)?;
    let infra = Aws::new(&sdk, &config.table_name);
    infra.warm(None).await;
    let admin = admin::build(&config, &infra)?;
    // One metrics line per invocation, after the answer.
    let service = ServiceBuilder::new()
        .map_future(aws_adapters::lambda::with_metrics)
        .service(admin::router(admin));
    lambda_http::run(service).await
}
