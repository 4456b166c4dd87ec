//! What a stage is built on: the document and blob stores, the queues (named by the URLs in the
//! function's configuration), the HTTP sender of deliveries and the provider API client of sends. Each function crate builds its
//! stage from its typed `Config` and an [`Infrastructure`] in one `build` function; the Lambda
//! main passes [`Aws`], the local gateway its embedded (or DynamoDB/SQS) stores.

use std::sync::Arc;

use aws_config::SdkConfig;
use shared::delivery::deliver::HttpSender;
use shared::delivery::ssrf::NetworkPolicy;
use shared::ports::media::MediaStore;
use shared::ports::{BlobStore, DocumentStore, Queue};
use shared::send::ProviderApi;

use crate::http::{ReqwestProviderApi, ReqwestSender};
use crate::{Clients, DynamoBlobStore, DynamoDocumentStore, SqsQueue};

/// Why a stage could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// The configuration names a queue this infrastructure does not have.
    #[error("no queue {0}")]
    NoQueue(String),
    /// The HTTP client could not be built (its TLS setup).
    #[error("building the HTTP client: {0}")]
    Http(String),
    /// The configuration names a media store this infrastructure does not have.
    #[error("no media store {0}")]
    NoMediaStore(String),
}

/// The stores, queues and HTTP client stages are built on.
pub trait Infrastructure: Send + Sync {
    /// Documents: state, endpoints, delivery records, pending batches.
    fn docs(&self) -> Arc<dyn DocumentStore>;
    /// Raw requests and claim-checks.
    fn blobs(&self) -> Arc<dyn BlobStore>;
    /// The queue a configuration names by `url` (`*_QUEUE_URL`, `DELIVERY_DLQ_URL`).
    fn queue(&self, url: &str) -> Result<Arc<dyn Queue>, InfraError>;
    /// The sender of deliveries and test events, under `network`'s address rules.
    fn http(&self, network: NetworkPolicy) -> Result<Arc<dyn HttpSender>, InfraError>;
    /// The client of provider APIs (Meta's Graph API, WAHA) that sends messages: public https
    /// addresses on AWS, loopback too in local mode; a source whose WAHA server lives in the
    /// operator's network says so in its settings (`allow_private_network`).
    fn provider_api(&self) -> Result<Arc<dyn ProviderApi>, InfraError>;
    /// Where media files are stored: the S3 `bucket` on AWS; local mode's own store.
    fn media_store(&self, bucket: &str) -> Result<Arc<dyn MediaStore>, InfraError>;
    /// What the stages measured, for the overview (`GET /v1/stats`): local mode's timeline;
    /// on AWS, CloudWatch's metrics of `functions` (none when no function is named).
    fn metrics(
        &self,
        _functions: &crate::cloudwatch::MetricsFunctions,
    ) -> Option<Arc<dyn shared::ports::MetricsSource>> {
        None
    }
}

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

    /// The HTTP sender of deliveries under `network` ([`ReqwestSender`]).
    pub fn http_sender(network: NetworkPolicy) -> Result<Arc<dyn HttpSender>, InfraError> {
        let sender = ReqwestSender::new(network).map_err(|e| InfraError::Http(e.to_string()))?;
        Ok(Arc::new(sender))
    }
}

impl Aws {
    /// The provider API client under `network` ([`ReqwestProviderApi`]).
    pub fn provider_api_client(network: NetworkPolicy) -> Result<Arc<dyn ProviderApi>, InfraError> {
        let api = ReqwestProviderApi::new(network).map_err(|e| InfraError::Http(e.to_string()))?;
        Ok(Arc::new(api))
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
        Self::http_sender(network)
    }

    /// Lambda functions call providers on public https addresses only (Graph API, a WAHA server
    /// exposed over https), unless a source allows its private network: a function in a VPC can
    /// then reach a WAHA server beside it.
    fn provider_api(&self) -> Result<Arc<dyn ProviderApi>, InfraError> {
        Self::provider_api_client(NetworkPolicy::PublicOnly)
    }

    fn media_store(&self, bucket: &str) -> Result<Arc<dyn MediaStore>, InfraError> {
        Ok(Arc::new(crate::S3MediaStore::new(
            self.clients.s3.clone(),
            bucket,
        )))
    }

    fn metrics(
        &self,
        functions: &crate::cloudwatch::MetricsFunctions,
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
