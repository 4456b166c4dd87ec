//! The admin Lambda: wires configuration, clients and stores once at cold start, then serves
//! `/v1/*` through API Gateway with [`admin::router`].

use std::sync::Arc;

use aws_adapters::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use lambda_http::Error;
use lambda_http::tower::ServiceBuilder;

use shared::admin::Admin;
use shared::pipeline::track::QueueSink;
use shared::pipeline::track::state::State;
use shared::pipeline::track::sweep::Sweep;

#[tokio::main]
async fn main() -> Result<(), Error> {
    aws_adapters::lambda::init_logging();
    shared::metrics::enable();
    let sdk = aws_adapters::sdk_config().await;
    let clients = Clients::new(&sdk);
    let lookup = aws_adapters::secrets::environment(&sdk, admin::Config::SECRETS).await?;
    let config = admin::Config::from_lookup(lookup)?;
    let docs = DynamoDocumentStore::new(clients.dynamodb.clone(), &config.table_name);
    docs.warm().await;
    let docs: Arc<DynamoDocumentStore> = Arc::new(docs);
    let blobs = Arc::new(DynamoBlobStore::new(
        clients.dynamodb.clone(),
        &config.table_name,
    ));
    let sender = deliver::http::ReqwestSender::new(config.admin.network)?;
    let admin = Admin::new(
        docs,
        blobs,
        Arc::new(SqsQueue::new(
            clients.sqs.clone(),
            &config.delivery_queue_url,
        )),
        Arc::new(SqsQueue::new(clients.sqs.clone(), &config.delivery_dlq_url)),
        config.record_ttl,
        config.admin,
    );
    let outbound = Arc::new(SqsQueue::new(
        clients.sqs.clone(),
        &config.outbound_queue_url,
    ));
    // The API emits conversation events only (never messages to batch), so both routes of the
    // sink are the outbound queue.
    let sweep = Sweep {
        state: State {
            docs: admin.docs.clone(),
            message_ttl: config.conversations.message_ttl,
            recent_messages: config.conversations.recent_messages,
        },
        sink: Arc::new(QueueSink {
            buffer: outbound.clone(),
            outbound,
            blobs: admin.blobs.clone(),
            blob_ttl: config.blob_ttl,
        }),
        idle: config.conversations.idle,
        page: config.sweep_page,
    };
    // The sender is built before `config.admin` moves into the API.
    let admin = admin
        .with_conversations(sweep)
        .with_sender(Arc::new(sender));
    // One metrics line per invocation, after the answer.
    let service = ServiceBuilder::new()
        .map_future(aws_adapters::lambda::with_metrics)
        .service(admin::router(admin));
    lambda_http::run(service).await
}
