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
    cached: Mutex<Cached>,
}

/// What the cache holds, and how many writes went through it: a read keeps what it found only
/// if no write went through since it began, so a read that raced a write (began before it,
/// answered after it) cannot keep the old document for a whole `ttl`.
#[derive(Debug, Default)]
struct Cached {
    writes: u64,
    gets: HashMap<String, Entry<Option<Versioned>>>,
    lists: HashMap<String, Entry<Vec<Listed>>>,
}

impl Cached {
    /// Bounded: a burst of distinct keys cannot grow an instance's memory without end.
    const MOST: usize = 10_000;
}

impl ReadCache {
    /// Caches `inner`'s eventually consistent reads and listings for `ttl` (zero: not at all).
    pub fn new(inner: Arc<dyn DocumentStore>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            cached: Mutex::default(),
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a read sees before it goes to the store: a fresh entry, or the write count to
    /// keep what it reads under.
    fn look<T: Clone>(&self, pick: impl Fn(&Cached) -> Option<&Entry<T>>) -> Result<T, u64> {
        let cached = self.cached();
        match pick(&cached).filter(|(at, _)| at.elapsed() < self.ttl) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(cached.writes),
        }
    }

    /// Keeps what a read found, unless a write went through since it began (`writes`).
    fn keep(&self, writes: u64, put: impl FnOnce(&mut Cached)) {
        let mut cached = self.cached();
        if cached.writes != writes {
            return;
        }
        if cached.gets.len() + cached.lists.len() >= Cached::MOST {
            cached.gets.clear();
            cached.lists.clear();
        }
        put(&mut cached);
    }

    fn forget(&self, key: &str) {
        let mut cached = self.cached();
        cached.writes = cached.writes.wrapping_add(1);
        cached.gets.remove(key);
        cached.lists.clear();
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
        let writes = match self.look(|c| c.gets.get(key)) {
            Ok(doc) => return Ok(doc),
            Err(writes) => writes,
        };
        let doc = self.inner.get_eventually(key, now).await?;
        self.keep(writes, |c| {
            c.gets.insert(key.to_owned(), (Instant::now(), doc.clone()));
        });
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
        let writes = match self.look(|c| c.lists.get(&key)) {
            Ok(listed) => return Ok(listed),
            Err(writes) => writes,
        };
        let listed = self.inner.list_page(page, now).await?;
        self.keep(writes, |c| {
            c.lists.insert(key, (Instant::now(), listed.clone()));
        });
        Ok(listed)
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

    /// Reads that answer only when let go: a read that began before a write and answers after.
    #[derive(Debug)]
    struct HeldReads {
        reading: tokio::sync::Notify,
        go: tokio::sync::Semaphore,
    }

    impl crate::ports::layer::Layer for HeldReads {
        async fn around<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, BackendError>
        where
            T: Send,
            F: Fn() -> Fut + Send + Sync,
            Fut: Future<Output = Result<T, BackendError>> + Send,
        {
            let answer = call().await;
            if op == "get" {
                self.reading.notify_one();
                let _ = self.go.acquire().await.map(|p| p.forget());
            }
            answer
        }
    }

    #[tokio::test]
    async fn a_read_that_raced_a_write_through_the_cache_is_not_kept() {
        let held = Arc::new(HeldReads {
            reading: tokio::sync::Notify::new(),
            go: tokio::sync::Semaphore::new(0),
        });
        let inner: Arc<dyn DocumentStore> = Arc::new(MemoryDocumentStore::new());
        let store = crate::ports::layer::Layered {
            inner,
            layer: held.clone(),
        };
        let cache = Arc::new(ReadCache::new(Arc::new(store), Duration::from_secs(3600)));
        let now = Utc::now();
        assert!(
            cache
                .put(
                    "endpoint#ep_1",
                    &json!({"v": 1}),
                    DocumentWrite::new(None, now)
                )
                .await
                .unwrap()
        );
        // A read finds version 1 in the store, then waits; a write makes version 2 meanwhile.
        let reader = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get_eventually("endpoint#ep_1", now).await }
        });
        held.reading.notified().await;
        assert!(
            cache
                .put(
                    "endpoint#ep_1",
                    &json!({"v": 2}),
                    DocumentWrite::new(Some(1), now)
                )
                .await
                .unwrap()
        );
        held.go.add_permits(1);
        let raced = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(raced.version, 1, "it answers what it read");
        // ... but did not keep it: the next read goes to the store and finds version 2.
        held.go.add_permits(1);
        let next = cache.get_eventually("endpoint#ep_1", now).await.unwrap();
        assert_eq!(next.unwrap().version, 2);
        // That one is kept: a third read does not reach the store (no permit is left for it
        // there, so reaching it would wait for ever).
        let third = tokio::time::timeout(
            Duration::from_secs(30),
            cache.get_eventually("endpoint#ep_1", now),
        )
        .await
        .expect("answered from the cache");
        assert_eq!(third.unwrap().unwrap().version, 2);
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
