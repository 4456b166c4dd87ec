//! The track Lambda: wires configuration, SDK clients and adapters once at cold start, then
//! handles inbound SQS batches with [`track::handle`] (partial batch failures reported).

use std::sync::Arc;

use aws_adapters::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::pipeline::track::state::State;
use shared::pipeline::track::{QueueSink, Track};

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = track::Config::from_lookup(|k| std::env::var(k).ok())?;
    let clients = Clients::new(&aws_adapters::sdk_config().await);
    let docs = DynamoDocumentStore::new(clients.dynamodb.clone(), &config.table_name);
    let buffer = SqsQueue::new(clients.sqs.clone(), &config.buffer_queue_url);
    let outbound = SqsQueue::new(clients.sqs.clone(), &config.outbound_queue_url);
    tokio::join!(docs.warm(), buffer.warm());
    let blobs = Arc::new(DynamoBlobStore::new(
        clients.dynamodb.clone(),
        &config.table_name,
    ));
    let track = Track {
        blobs: blobs.clone(),
        state: State {
            docs: Arc::new(docs),
            message_ttl: config.message_ttl,
            recent_messages: config.recent_messages,
        },
        sink: Arc::new(QueueSink {
            buffer: Arc::new(buffer),
            outbound: Arc::new(outbound),
            blobs,
            blob_ttl: config.blob_ttl,
        }),
        config: config.track,
    };
    let track = &track;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(Box::pin(track::handle(track, event.payload))).await,
        )
    }))
    .await
}
