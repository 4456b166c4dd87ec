//! What a stage is built on: the document and blob stores, the queues (named by the URLs in the
//! function's configuration), the HTTP sender of deliveries and the provider API client of sends. Each function crate builds its
//! stage from its typed `Config` and an [`Infrastructure`] in one `build` function; the Lambda
//! main passes [`Aws`], the local gateway its embedded (or DynamoDB/SQS) stores.

use std::sync::Arc;
use std::time::Duration;

use shared::delivery::deliver::HttpSender;
use shared::delivery::endpoints::Endpoints;
use shared::delivery::ssrf::NetworkPolicy;
use shared::ports::media::MediaStore;
use shared::ports::{BlobStore, DocumentStore, Queue};
use shared::send::ProviderApi;

#[cfg(feature = "sdk")]
pub use crate::aws::Aws;
use crate::http::{ReqwestProviderApi, ReqwestSender};

/// The functions whose metrics the overview reads (admin's `METRICS_FUNCTIONS` and
/// `METRICS_DELIVER_FUNCTION`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsFunctions {
    /// Every function whose counts are summed.
    pub all: Vec<String>,
    /// The one that records delivery latency.
    pub deliver: Option<String>,
}

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
    /// Endpoints as the stages read them, each read reused for `ttl` ([`Endpoints::cached`]):
    /// on AWS a cache per stage (each function runs in processes of its own). Local mode
    /// hands every stage the one cache of its process instead, which every endpoint change
    /// clears at once, as they all go through it.
    fn endpoints(&self, ttl: Duration) -> Endpoints {
        Endpoints::cached(self.docs(), ttl)
    }
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
    /// Whether the document store may hold items recorded under dedup keys without their
    /// source id in front, as before 2026-11-30: a DynamoDB table of an earlier deployment may,
    /// so the track stage reads since when keys are scoped and looks such items up too for as
    /// long as they may live (`TrackConfig::legacy_keys_until`). Local mode's embedded stores
    /// came after that change, so theirs never hold one and spare that lookup.
    fn may_hold_unscoped_dedup_keys(&self) -> bool {
        true
    }

    /// What the stages measured, for the overview (`GET /v1/stats`): local mode's timeline;
    /// on AWS, CloudWatch's metrics of `functions` (none when no function is named).
    fn metrics(
        &self,
        _functions: &MetricsFunctions,
    ) -> Option<Arc<dyn shared::ports::MetricsSource>> {
        None
    }
}

/// The HTTP sender of deliveries under `network` ([`ReqwestSender`]).
pub fn http_sender(network: NetworkPolicy) -> Result<Arc<dyn HttpSender>, InfraError> {
    let sender = ReqwestSender::new(network).map_err(|e| InfraError::Http(e.to_string()))?;
    Ok(Arc::new(sender))
}

/// The provider API client under `network` ([`ReqwestProviderApi`]).
pub fn provider_api_client(network: NetworkPolicy) -> Result<Arc<dyn ProviderApi>, InfraError> {
    let api = ReqwestProviderApi::new(network).map_err(|e| InfraError::Http(e.to_string()))?;
    Ok(Arc::new(api))
}
