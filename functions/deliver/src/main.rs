//! The deliver Lambda: wires configuration, clients and the HTTP sender once at cold start, then
//! handles delivery-queue batches with [`deliver::handle`].

use std::sync::Arc;

use aws_adapters::http::ReqwestSender;
use aws_adapters::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::delivery::deliver::Deliver;
use shared::delivery::endpoints::Endpoints;
use shared::ports::cache::ReadCache;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let config = deliver::Config::from_lookup(|k| std::env::var(k).ok())?;
    let clients = Clients::new(&aws_adapters::sdk_config().await);
    let docs = Arc::new(DynamoDocumentStore::new(
        clients.dynamodb.clone(),
        &config.table_name,
    ));
    docs.warm().await;
    let deliver = Deliver {
        endpoints: Endpoints {
            docs: Arc::new(ReadCache::new(docs.clone(), config.endpoint_cache)),
        },
        docs,
        http: Arc::new(ReqwestSender::new(config.deliver.network)?),
        queue: Arc::new(SqsQueue::new(
            clients.sqs.clone(),
            &config.delivery_queue_url,
        )),
        dead_letter: Arc::new(SqsQueue::new(clients.sqs.clone(), &config.delivery_dlq_url)),
        blobs: Arc::new(DynamoBlobStore::new(
            clients.dynamodb.clone(),
            &config.table_name,
        )),
        config: config.deliver,
    };
    let deliver = &deliver;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            aws_adapters::lambda::with_metrics(deliver::handle(deliver, event.payload)).await,
        )
    }))
    .await
}
