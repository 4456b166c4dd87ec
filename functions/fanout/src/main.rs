//! The fan-out Lambda: outbound queue → delivery tasks for every matching endpoint.

use std::sync::Arc;

use aws_adapters::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::delivery::endpoints::Endpoints;
use shared::delivery::fanout::Fanout;
use shared::ports::cache::ReadCache;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = fanout::Config::from_lookup(|k| std::env::var(k).ok())?;
    let clients = Clients::new(&aws_adapters::sdk_config().await);
    let docs = DynamoDocumentStore::new(clients.dynamodb.clone(), &config.table_name);
    let queue = SqsQueue::new(clients.sqs.clone(), &config.delivery_queue_url);
    tokio::join!(docs.warm(), queue.warm());
    let fanout = Fanout {
        endpoints: Endpoints {
            docs: Arc::new(ReadCache::new(Arc::new(docs), config.endpoint_cache)),
        },
        queue: Arc::new(queue),
        blobs: Arc::new(DynamoBlobStore::new(
            clients.dynamodb.clone(),
            &config.table_name,
        )),
        blob_ttl: config.blob_ttl,
    };
    let fanout = &fanout;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(fanout::handle(fanout, event.payload)).await,
        )
    }))
    .await
}
