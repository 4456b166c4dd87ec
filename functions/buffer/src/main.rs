//! The buffer Lambda: inbound messages and flush timers from the buffer queue → batch deliveries.

use aws_adapters::infra::Aws;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = buffer::Config::from_lookup(|k| std::env::var(k).ok())?;
    let infra = Aws::new(&aws_adapters::sdk_config().await, &config.table_name);
    infra.warm(Some(&config.buffer_queue_url)).await;
    let stage = buffer::build(&config, &infra)?;
    let stage = &stage;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(buffer::handle(stage, event.payload)).await,
        )
    }))
    .await
}
