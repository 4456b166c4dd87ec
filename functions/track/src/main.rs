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
    let state = State::new(Arc::new(docs), config.conversations);
    let mut track_config = config.track;
    track_config.legacy_keys_until = Some(legacy_keys_until(&state, &track_config).await);
    let track = Track {
        blobs: blobs.clone(),
        state,
        sink: Arc::new(QueueSink {
            buffer: Arc::new(buffer),
            outbound: Arc::new(outbound),
            blobs,
            blob_ttl: config.blob_ttl,
        }),
        config: track_config,
    };
    let track = &track;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(Box::pin(track::handle(track, event.payload))).await,
        )
    }))
    .await
}

/// Until when items may be remembered under dedup keys without their source id (see
/// `TrackConfig::legacy_keys_until`); if the store cannot say, for as long as they could be.
async fn legacy_keys_until(
    state: &State,
    config: &shared::pipeline::track::TrackConfig,
) -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    let since = state
        .statuses
        .source_scoped_dedup_since(now)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read since when dedup keys are scoped; looking up unscoped keys too");
            now
        });
    config.legacy_window(since)
}
