//! Stores whose TTLs are capped, for the long steady load run: the pipeline's TTLs are days (raw
//! requests 7, statuses and attempts 30), so under a steady rate memory and disk only level off
//! once the oldest items start to expire, weeks in. Capping every TTL at a few minutes brings
//! that steady state into a 30-minute run without touching what the pipeline needs within a
//! step (a pending batch or a queued body lives for seconds). Items written without a TTL
//! (endpoints, contacts) keep none. The stores' own eviction then has to keep up, which is what
//! the run measures.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use shared::ports::{
    BackendError, BlobStore, DocumentStore, DocumentWrite, IndexPage, Listed, PutDocument,
    Versioned, VersionedJson,
};
use std::sync::Arc;

/// A document and blob store that shortens every expiry to at most `cap` after the write.
#[derive(Debug, Clone)]
pub struct TtlCap<S: ?Sized> {
    inner: Arc<S>,
    cap: chrono::Duration,
}

impl<S: ?Sized> TtlCap<S> {
    /// Wraps `inner`, capping every TTL it is given at `cap`.
    pub fn new(inner: Arc<S>, cap: Duration) -> Self {
        Self {
            inner,
            cap: chrono::Duration::from_std(cap).unwrap_or(chrono::Duration::MAX),
        }
    }

    fn capped(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        at.min(now + self.cap)
    }

    fn write<'a>(&self, write: DocumentWrite<'a>) -> DocumentWrite<'a> {
        DocumentWrite {
            expires_at: write.expires_at.map(|at| self.capped(at, write.now)),
            ..write
        }
    }
}

#[async_trait]
impl DocumentStore for TtlCap<dyn DocumentStore> {
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned>, BackendError> {
        self.inner.get(key, now).await
    }

    async fn get_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned>, BackendError> {
        self.inner.get_eventually(key, now).await
    }

    async fn get_json(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.inner.get_json(key, now).await
    }

    async fn get_json_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.inner.get_json_eventually(key, now).await
    }

    async fn put(
        &self,
        key: &str,
        body: &serde_json::Value,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.inner.put(key, body, self.write(write)).await
    }

    async fn put_json(
        &self,
        key: &str,
        json: &str,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.inner.put_json(key, json, self.write(write)).await
    }

    async fn put_all(&self, puts: &[PutDocument<'_>]) -> Result<bool, BackendError> {
        let capped: Vec<PutDocument<'_>> = puts
            .iter()
            .map(|p| PutDocument {
                write: self.write(p.write),
                ..*p
            })
            .collect();
        self.inner.put_all(&capped).await
    }

    async fn list_page(
        &self,
        page: IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, BackendError> {
        self.inner.list_page(page, now).await
    }
}

#[async_trait]
impl BlobStore for TtlCap<dyn BlobStore> {
    async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let at = self.capped(expires_at, Utc::now());
        self.inner.put(key, bytes, at).await
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(key, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
    }

    #[tokio::test]
    async fn long_ttls_are_cut_to_the_cap_and_documents_without_one_keep_none() {
        let docs: Arc<dyn DocumentStore> = Arc::new(MemoryDocumentStore::new());
        let capped = TtlCap::new(docs, Duration::from_secs(60));
        let body = serde_json::json!({"a": 1});
        let week = DocumentWrite::new(None, at(0)).expiring(at(7 * 86_400));
        assert!(capped.put("long", &body, week).await.unwrap());
        let short = DocumentWrite::new(None, at(0)).expiring(at(10));
        assert!(capped.put("short", &body, short).await.unwrap());
        let forever = DocumentWrite::new(None, at(0));
        let puts = [PutDocument {
            key: "forever",
            body: (&body).into(),
            write: forever,
        }];
        assert!(capped.put_all(&puts).await.unwrap());

        assert!(capped.get("long", at(59)).await.unwrap().is_some());
        assert!(capped.get("long", at(61)).await.unwrap().is_none());
        assert!(capped.get("short", at(11)).await.unwrap().is_none());
        assert!(
            capped
                .get("forever", at(86_400 * 365))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn blob_ttls_are_cut_to_the_cap_from_now() {
        let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
        let capped = TtlCap::new(blobs, Duration::from_secs(60));
        let now = Utc::now();
        capped
            .put("raw", b"x", now + chrono::Duration::days(7))
            .await
            .unwrap();
        let seen = |secs| now + chrono::Duration::seconds(secs);
        assert_eq!(
            capped.get("raw", seen(30)).await.unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert!(capped.get("raw", seen(120)).await.unwrap().is_none());
    }
}
