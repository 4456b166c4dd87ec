//! The sweep Lambda: runs on an EventBridge schedule and ends idle conversations.

use std::sync::Arc;

use aws_adapters::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use shared::pipeline::track::QueueSink;
use shared::pipeline::track::state::Conversations;
use shared::pipeline::track::sweep::Sweep;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = sweep::Config::from_lookup(|k| std::env::var(k).ok())?;
    let clients = Clients::new(&aws_adapters::sdk_config().await);
    let docs = Arc::new(DynamoDocumentStore::new(
        clients.dynamodb.clone(),
        &config.table_name,
    ));
    // The sweep only emits `ended` events, which go to the outbound queue.
    let outbound = Arc::new(SqsQueue::new(
        clients.sqs.clone(),
        &config.outbound_queue_url,
    ));
    let sink = QueueSink {
        buffer: outbound.clone(),
        outbound,
        blobs: Arc::new(DynamoBlobStore::new(
            clients.dynamodb.clone(),
            &config.table_name,
        )),
        blob_ttl: config.blob_ttl,
    };
    let sweep = Sweep {
        conversations: Conversations {
            docs,
            settings: config.conversations,
        },
        sink: Arc::new(sink),
        page: config.page,
    };
    let sweep = &sweep;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        aws_adapters::lambda::with_metrics(sweep::handle(sweep, chrono::Utc::now()))
            .await
            .map_err(Error::from)
    }))
    .await
}
