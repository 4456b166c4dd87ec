//! The sweep Lambda: runs on an EventBridge schedule and ends idle conversations.

use aws_adapters::infra::Aws;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = sweep::Config::from_lookup(|k| std::env::var(k).ok())?;
    let infra = Aws::new(&aws_adapters::sdk_config().await, &config.table_name);
    let stage = sweep::build(&config, &infra)?;
    let stage = &stage;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        aws_adapters::lambda::with_metrics(sweep::handle(stage, chrono::Utc::now()))
            .await
            .map_err(Error::from)
    }))
    .await
}
