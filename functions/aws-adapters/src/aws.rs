//! [`Aws`]: the [`Infrastructure`] of the Lambda functions (DynamoDB, SQS, S3, CloudWatch and
//! reqwest). Built with the `sdk` feature only.

use std::sync::Arc;

use aws_config::SdkConfig;
use shared::delivery::deliver::HttpSender;
use shared::delivery::ssrf::NetworkPolicy;
use shared::ports::media::MediaStore;
use shared::ports::{BlobStore, DocumentStore, Queue};
use shared::send::ProviderApi;

use crate::infra::{InfraError, Infrastructure, MetricsFunctions};
use crate::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};

/// DynamoDB, SQS and reqwest: what the Lambda functions run on.
#[derive(Debug, Clone)]
pub struct Aws {
    clients: Clients,
    docs: Arc<DynamoDocumentStore>,
    blobs: Arc<DynamoBlobStore>,
}

impl Aws {
    /// Clients from `sdk`, the stores on `table`.
    pub fn new(sdk: &SdkConfig, table: &str) -> Self {
        let clients = Clients::new(sdk);
        Self {
            docs: Arc::new(DynamoDocumentStore::new(clients.dynamodb.clone(), table)),
            blobs: Arc::new(DynamoBlobStore::new(clients.dynamodb.clone(), table)),
            clients,
        }
    }

    /// Opens the DynamoDB connection and, with `queue_url`, the SQS one (TLS handshakes
    /// included) before the first invocation needs them. Failures are only logged.
    pub async fn warm(&self, queue_url: Option<&str>) {
        match queue_url {
            Some(url) => {
                let queue = SqsQueue::new(self.clients.sqs.clone(), url);
                tokio::join!(self.docs.warm(), queue.warm());
            }
            None => self.docs.warm().await,
        }
    }

    /// The SDK clients.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }
}

impl Infrastructure for Aws {
    fn docs(&self) -> Arc<dyn DocumentStore> {
        self.docs.clone()
    }

    fn blobs(&self) -> Arc<dyn BlobStore> {
        self.blobs.clone()
    }

    fn queue(&self, url: &str) -> Result<Arc<dyn Queue>, InfraError> {
        Ok(Arc::new(SqsQueue::new(self.clients.sqs.clone(), url)))
    }

    fn http(&self, network: NetworkPolicy) -> Result<Arc<dyn HttpSender>, InfraError> {
        crate::infra::http_sender(network)
    }

    /// Lambda functions call providers on public https addresses only (Graph API, a WAHA server
    /// exposed over https), unless a source allows its private network: a function in a VPC can
    /// then reach a WAHA server beside it.
    fn provider_api(&self) -> Result<Arc<dyn ProviderApi>, InfraError> {
        crate::infra::provider_api_client(NetworkPolicy::PublicOnly)
    }

    fn media_store(&self, bucket: &str) -> Result<Arc<dyn MediaStore>, InfraError> {
        Ok(Arc::new(crate::S3MediaStore::new(
            self.clients.s3.clone(),
            bucket,
        )))
    }

    fn metrics(
        &self,
        functions: &MetricsFunctions,
    ) -> Option<Arc<dyn shared::ports::MetricsSource>> {
        (!functions.all.is_empty()).then(|| {
            Arc::new(crate::cloudwatch::CloudWatchMetrics::new(
                self.clients.cloudwatch.clone(),
                functions.all.clone(),
                functions.deliver.clone(),
            )) as Arc<dyn shared::ports::MetricsSource>
        })
    }
}
