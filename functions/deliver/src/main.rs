//! The deliver Lambda: wires configuration, clients and the HTTP sender once at cold start, then
//! handles delivery-queue batches with [`deliver::handle`].

use aws_adapters::infra::Aws;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = deliver::Config::from_lookup(|k| std::env::var(k).ok())?;
    let infra = Aws::new(&aws_adapters::sdk_config().await, &config.table_name);
    infra.warm(None).await;
    let stage = deliver::build(&config, &infra)?;
    let stage = &stage;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(deliver::handle(stage, event.payload)).await,
        )
    }))
    .await
}
