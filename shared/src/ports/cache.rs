//! A short-lived read cache in front of a [`DocumentStore`], for documents every invocation reads
//! and few change: the endpoints. Without it, every outbound event lists the endpoints (one
//! index partition) and every delivery reads its endpoint (one item): at 40,000 deliveries a
//! second that is one key read 40,000 times a second, above DynamoDB's 3,000 read units a second
//! per partition. With it, each function instance reads them at most once per `ttl`.
//!
//! Cached: eventually consistent reads and index listings, which may miss a recent change
//! anyway. Not cached: strongly consistent reads (`get`), which callers use before a
//! conditional write. A write through the cache forgets what it cached, so an instance sees
//! its own changes at once; other instances see a change within `ttl`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    BackendError, DocumentStore, DocumentWrite, IndexPage, Listed, PutDocument, Versioned,
    VersionedJson,
};

/// What a cache entry holds, and when it was read.
type Entry<T> = (Instant, T);

/// The read cache (see the module doc).
#[derive(Debug)]
pub struct ReadCache {
    inner: Arc<dyn DocumentStore>,
    ttl: Duration,
    gets: Mutex<HashMap<String, Entry<Option<Versioned>>>>,
    lists: Mutex<HashMap<String, Entry<Vec<Listed>>>>,
}

impl ReadCache {
    /// Caches `inner`'s eventually consistent reads and listings for `ttl` (zero: not at all).
    pub fn new(inner: Arc<dyn DocumentStore>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            gets: Mutex::default(),
            lists: Mutex::default(),
        }
    }

    fn fresh<T: Clone>(
        map: &Mutex<HashMap<String, Entry<T>>>,
        key: &str,
        ttl: Duration,
    ) -> Option<T> {
        let map = map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, v)| v.clone())
    }

    fn keep<T>(map: &Mutex<HashMap<String, Entry<T>>>, key: String, value: T) {
        let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
        // Bounded: a burst of distinct keys cannot grow an instance's memory without end.
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert(key, (Instant::now(), value));
    }
}

#[async_trait]
impl DocumentStore for ReadCache {
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned>, BackendError> {
        self.inner.get(key, now).await
    }

    // Strong reads are not cached, so the store's text can come straight through. (The
    // eventual one keeps the default, through `get_eventually` and its cache.)
    async fn get_json(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.inner.get_json(key, now).await
    }

    async fn get_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned>, BackendError> {
        if self.ttl.is_zero() {
            return self.inner.get_eventually(key, now).await;
        }
        if let Some(doc) = Self::fresh(&self.gets, key, self.ttl) {
            return Ok(doc);
        }
        let doc = self.inner.get_eventually(key, now).await?;
        Self::keep(&self.gets, key.to_owned(), doc.clone());
        Ok(doc)
    }

    async fn put(
        &self,
        key: &str,
        body: &serde_json::Value,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        // Forgotten before and after: a read racing the write cannot keep the old document.
        self.forget(key);
        let written = self.inner.put(key, body, write).await;
        self.forget(key);
        written
    }

    async fn put_json(
        &self,
        key: &str,
        json: &str,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.forget(key);
        let written = self.inner.put_json(key, json, write).await;
        self.forget(key);
        written
    }

    async fn put_all(&self, puts: &[PutDocument<'_>]) -> Result<bool, BackendError> {
        puts.iter().for_each(|p| self.forget(p.key));
        let written = self.inner.put_all(puts).await;
        puts.iter().for_each(|p| self.forget(p.key));
        written
    }

    async fn list_page(
        &self,
        page: IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, BackendError> {
        if self.ttl.is_zero() {
            return self.inner.list_page(page, now).await;
        }
        let key = format!(
            "{}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{}",
            page.partition, page.after, page.before, page.descending, page.limit
        );
        if let Some(listed) = Self::fresh(&self.lists, &key, self.ttl) {
            return Ok(listed);
        }
        let listed = self.inner.list_page(page, now).await?;
        Self::keep(&self.lists, key, listed.clone());
        Ok(listed)
    }
}

impl ReadCache {
    fn forget(&self, key: &str) {
        self.gets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ports::IndexEntry;
    use crate::ports::memory::MemoryDocumentStore;

    #[tokio::test]
    async fn reads_are_cached_for_the_ttl_and_writes_through_it_are_seen_at_once() {
        let store = Arc::new(MemoryDocumentStore::new());
        let cache = ReadCache::new(store.clone(), Duration::from_secs(3600));
        let now = Utc::now();
        let entry = IndexEntry {
            partition: "endpoints".into(),
            sort: "ep_1".into(),
        };
        assert!(
            store
                .put(
                    "endpoint#ep_1",
                    &json!({"v": 1}),
                    DocumentWrite::new(None, now).indexed(&entry)
                )
                .await
                .unwrap()
        );
        let page = || IndexPage {
            partition: "endpoints",
            after: None,
            before: None,
            descending: false,
            limit: 10,
        };
        assert_eq!(
            cache
                .get_eventually("endpoint#ep_1", now)
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );
        assert_eq!(cache.list_page(page(), now).await.unwrap().len(), 1);
        // Another instance changes it: this one keeps what it read, for the ttl.
        assert!(
            store
                .put(
                    "endpoint#ep_1",
                    &json!({"v": 2}),
                    DocumentWrite::new(Some(1), now).indexed(&entry)
                )
                .await
                .unwrap()
        );
        let cached = cache
            .get_eventually("endpoint#ep_1", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cached.body, json!({"v": 1}));
        assert_eq!(
            cache.list_page(page(), now).await.unwrap()[0].doc.body,
            json!({"v": 1})
        );
        // A strong read is never cached.
        assert_eq!(
            cache
                .get("endpoint#ep_1", now)
                .await
                .unwrap()
                .unwrap()
                .version,
            2
        );
        // A write through the cache is seen at once.
        assert!(
            cache
                .put(
                    "endpoint#ep_1",
                    &json!({"v": 3}),
                    DocumentWrite::new(Some(2), now).indexed(&entry)
                )
                .await
                .unwrap()
        );
        assert_eq!(
            cache
                .get_eventually("endpoint#ep_1", now)
                .await
                .unwrap()
                .unwrap()
                .version,
            3
        );
        assert_eq!(
            cache.list_page(page(), now).await.unwrap()[0].doc.body,
            json!({"v": 3})
        );
    }

    #[tokio::test]
    async fn a_zero_ttl_caches_nothing() {
        let store = Arc::new(MemoryDocumentStore::new());
        let cache = ReadCache::new(store.clone(), Duration::ZERO);
        let now = Utc::now();
        assert!(cache.get_eventually("k", now).await.unwrap().is_none());
        assert!(
            store
                .put("k", &json!(1), DocumentWrite::new(None, now))
                .await
                .unwrap()
        );
        assert!(cache.get_eventually("k", now).await.unwrap().is_some());
    }
}
