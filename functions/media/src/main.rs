//! The media Lambda: wires configuration, SDK clients and adapters once at cold start, then
//! handles media-queue batches with [`media::handle`] (partial batch failures reported).

use aws_adapters::infra::Aws;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let sdk = aws_adapters::sdk_config().await;
    let lookup = aws_adapters::secrets::environment(&sdk, media::Config::SECRETS).await?;
    let config = media::Config::from_lookup(lookup)?;
    let infra = Aws::new(&sdk, &config.table_name);
    infra.warm(Some(&config.buffer_queue_url)).await;
    let stage = media::build(&config, &infra)?;
    let stage = &stage;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(Box::pin(media::handle(stage, event.payload))).await,
        )
    }))
    .await
}
