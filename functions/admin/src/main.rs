//! The admin Lambda: wires configuration, clients and stores once at cold start, then serves
//! `/v1/*` through API Gateway with [`admin::handle`].

use std::sync::Arc;

use aws_adapters::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use lambda_http::{Error, service_fn};
use shared::admin::Admin;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = admin::Config::from_lookup(|k| std::env::var(k).ok())?;
    let clients = Clients::new(&aws_adapters::sdk_config().await);
    let docs = DynamoDocumentStore::new(clients.dynamodb.clone(), &config.table_name);
    docs.warm().await;
    let docs: Arc<DynamoDocumentStore> = Arc::new(docs);
    let blobs = Arc::new(DynamoBlobStore::new(
        clients.dynamodb.clone(),
        &config.table_name,
    ));
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
    let admin = &admin;
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, Error>(admin::handle(admin, req).await)
    }))
    .await
}
