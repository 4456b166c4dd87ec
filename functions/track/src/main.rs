//! The track Lambda: wires configuration, SDK clients and adapters once at cold start, then
//! handles inbound SQS batches with [`track::handle`] (partial batch failures reported).

use aws_adapters::infra::Aws;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = track::Config::from_lookup(|k| std::env::var(k).ok())?;
    let infra = Aws::new(&aws_adapters::sdk_config().await, &config.table_name);
    infra.warm(Some(&config.buffer_queue_url)).await;
    let stage = track::build(&config, &infra).await?;
    let stage = &stage;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(Box::pin(track::handle(stage, event.payload))).await,
        )
    }))
    .await
}
