//! The buffer Lambda: inbound messages and flush timers from the buffer queue → batch deliveries.

use std::sync::Arc;

use aws_adapters::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::delivery::buffer::Buffer;
use shared::delivery::endpoints::Endpoints;
use shared::delivery::fanout::Fanout;
use shared::ports::cache::ReadCache;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = buffer::Config::from_lookup(|k| std::env::var(k).ok())?;
    let clients = Clients::new(&aws_adapters::sdk_config().await);
    let docs = Arc::new(DynamoDocumentStore::new(
        clients.dynamodb.clone(),
        &config.table_name,
    ));
    let queue = SqsQueue::new(clients.sqs.clone(), &config.buffer_queue_url);
    tokio::join!(docs.warm(), queue.warm());
    let blobs = Arc::new(DynamoBlobStore::new(
        clients.dynamodb.clone(),
        &config.table_name,
    ));
    let buffer = Buffer {
        docs: docs.clone(),
        queue: Arc::new(queue),
        blobs: blobs.clone(),
        fanout: Fanout {
            endpoints: Endpoints {
                docs: Arc::new(ReadCache::new(docs, config.endpoint_cache)),
            },
            queue: Arc::new(SqsQueue::new(
                clients.sqs.clone(),
                &config.delivery_queue_url,
            )),
            blobs,
            blob_ttl: config.blob_ttl,
        },
        config: config.buffer,
    };
    let buffer = &buffer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(buffer::handle(buffer, event.payload)).await,
        )
    }))
    .await
}
