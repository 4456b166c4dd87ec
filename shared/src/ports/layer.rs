//! Per-call layers over the ports: [`Layered`] puts one [`Layer`] around every call of a document
//! store, dedup store, blob store or queue. Two layers exist: [`super::faults::Faults`] (failures
//! on purpose) and [`Retry`] (the retries an AWS SDK client makes inside one call, for ports that
//! have none of their own, such as the in-memory ones behind injected faults).

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    BackendError, BlobStore, DocumentStore, DocumentWrite, FailedEntry, IndexPage, Listed,
    OutgoingMessage, PutDocument, Queue, ReceivedMessage, Versioned, VersionedJson,
};

/// What happens around each call of a port.
pub trait Layer: Send + Sync + Debug {
    /// Runs the call named `op` (`call` makes it afresh each time it is invoked) under this layer.
    fn around<T, F, Fut>(
        &self,
        op: &'static str,
        call: F,
    ) -> impl Future<Output = Result<T, BackendError>> + Send
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BackendError>> + Send;
}

impl<L: Layer> Layer for Arc<L> {
    fn around<T, F, Fut>(
        &self,
        op: &'static str,
        call: F,
    ) -> impl Future<Output = Result<T, BackendError>> + Send
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BackendError>> + Send,
    {
        L::around(self, op, call)
    }
}

/// A port (`P`: `dyn DocumentStore`, `dyn BlobStore` or `dyn Queue`) with
/// `layer` around each of its calls; it is itself a port of the same kind.
#[derive(Debug, Clone)]
pub struct Layered<P: ?Sized, L> {
    /// The port underneath.
    pub inner: Arc<P>,
    /// What runs around each call.
    pub layer: L,
}

#[async_trait]
impl<L: Layer> DocumentStore for Layered<dyn DocumentStore, L> {
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned>, BackendError> {
        self.layer.around("get", || self.inner.get(key, now)).await
    }

    async fn get_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned>, BackendError> {
        self.layer
            .around("get", || self.inner.get_eventually(key, now))
            .await
    }

    async fn get_json(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.layer
            .around("get", || self.inner.get_json(key, now))
            .await
    }

    async fn get_json_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.layer
            .around("get", || self.inner.get_json_eventually(key, now))
            .await
    }

    async fn put(
        &self,
        key: &str,
        body: &serde_json::Value,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.layer
            .around("put", || self.inner.put(key, body, write))
            .await
    }

    async fn put_json(
        &self,
        key: &str,
        json: &str,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.layer
            .around("put", || self.inner.put_json(key, json, write))
            .await
    }

    async fn put_all(&self, puts: &[PutDocument<'_>]) -> Result<bool, BackendError> {
        self.layer.around("put", || self.inner.put_all(puts)).await
    }

    async fn list_page(
        &self,
        page: IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, BackendError> {
        self.layer
            .around("list", || self.inner.list_page(page, now))
            .await
    }
}

#[async_trait]
impl<L: Layer> BlobStore for Layered<dyn BlobStore, L> {
    async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        self.layer
            .around("blob put", || self.inner.put(key, bytes, expires_at))
            .await
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Vec<u8>>, BackendError> {
        self.layer
            .around("blob get", || self.inner.get(key, now))
            .await
    }
}

#[async_trait]
impl<L: Layer> Queue for Layered<dyn Queue, L> {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, BackendError> {
        self.layer
            .around("send", || self.inner.send_batch(messages))
            .await
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        self.layer
            .around("receive", || self.inner.receive(max, wait, visibility))
            .await
    }

    async fn delete(&self, receipt: &str) -> Result<(), BackendError> {
        self.layer
            .around("delete", || self.inner.delete(receipt))
            .await
    }

    async fn delete_batch(
        &self,
        receipts: &[&str],
    ) -> Result<Vec<(usize, BackendError)>, BackendError> {
        self.layer
            .around("delete batch", || self.inner.delete_batch(receipts))
            .await
    }

    async fn approximate_depth(&self) -> Result<Option<u64>, BackendError> {
        self.layer
            .around("depth", || self.inner.approximate_depth())
            .await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), BackendError> {
        self.layer
            .around("change visibility", || {
                self.inner.change_visibility(receipt, visibility)
            })
            .await
    }
}

/// Retries a call that failed with a retryable error, as the AWS SDK's standard retry mode does:
/// up to `attempts` tries in all, sleeping a random time between zero and
/// `min(cap, base × 2^(try − 1))` before each new try ("full jitter"). A try whose effect applied
/// but whose answer was lost is tried again like any other, so a conditional write may come back
/// refused by its own first try: callers recognise that (see `pipeline::track::state`).
#[derive(Debug)]
pub struct Retry {
    /// Tries in all (1: no retry).
    pub attempts: u32,
    /// The first backoff bound.
    pub base: Duration,
    /// The largest backoff bound.
    pub cap: Duration,
    rng: AtomicU64,
}

impl Retry {
    /// The SDK's standard mode: 3 tries. `base` and `cap` bound the jittered sleeps.
    pub fn standard(base: Duration, cap: Duration) -> Arc<Self> {
        let mut seed = [0u8; 8];
        // Any seed spreads the sleeps; a failed draw falls back to a fixed one.
        let _ = getrandom::fill(&mut seed);
        Arc::new(Self {
            attempts: 3,
            base,
            cap,
            rng: AtomicU64::new(u64::from_le_bytes(seed) | 1),
        })
    }

    /// The sleep before try `n + 1` (`n` ≥ 1 tries made).
    fn backoff(&self, n: u32) -> Duration {
        let bound = self
            .base
            .saturating_mul(1u32 << (n - 1).min(16))
            .min(self.cap);
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)] // 53 bits of a u64 make the fraction
        let fraction = (x >> 11) as f64 / (1u64 << 53) as f64;
        bound.mul_f64(fraction)
    }
}

impl Layer for Retry {
    async fn around<T, F, Fut>(&self, _op: &'static str, call: F) -> Result<T, BackendError>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BackendError>> + Send,
    {
        let mut tries = 1;
        loop {
            match call().await {
                Err(e) if e.is_retryable() && tries < self.attempts => {
                    tokio::time::sleep(self.backoff(tries)).await;
                    tries += 1;
                }
                result => return result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::faults::{Fault, Faults};
    use crate::ports::memory::MemoryDocumentStore;

    fn retried_over_faults() -> (Arc<dyn DocumentStore>, Arc<Faults>) {
        let faults = Faults::none();
        let faulty: Arc<dyn DocumentStore> = Arc::new(Layered {
            inner: Arc::new(MemoryDocumentStore::new()) as Arc<dyn DocumentStore>,
            layer: faults.clone(),
        });
        let docs = Arc::new(Layered {
            inner: faulty,
            layer: Retry::standard(Duration::from_millis(1), Duration::from_millis(4)),
        });
        (docs, faults)
    }

    /// A clean failure is tried again and the write lands; an applied write tried again comes
    /// back refused by its own first try (what the caller's replay marks are for).
    #[tokio::test]
    async fn a_failed_try_is_made_again_and_an_applied_one_comes_back_refused_by_itself() {
        for (fault, answer) in [(Fault::Clean, true), (Fault::Ambiguous, false)] {
            let (docs, faults) = retried_over_faults();
            let now = Utc::now();
            faults.fail_in(1, fault);
            let body = serde_json::json!({"n": 1});
            let wrote = docs
                .put("a", &body, DocumentWrite::new(None, now))
                .await
                .unwrap();
            assert_eq!(wrote, answer, "{fault:?}");
            assert_eq!(faults.calls(), 2);
            let stored = docs.get("a", now).await.unwrap();
            assert_eq!(stored.map(|d| d.version), Some(1), "written once");
        }
    }

    #[tokio::test]
    async fn it_gives_up_after_three_tries_and_never_retries_what_cannot_succeed() {
        let (docs, faults) = retried_over_faults();
        let now = Utc::now();
        for n in 1..=3 {
            faults.fail_in(n, Fault::Clean);
        }
        let err = docs.get("a", now).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(faults.calls(), 3);

        let rejected = Layered {
            inner: Arc::new(Rejecting) as Arc<dyn BlobStore>,
            layer: Retry::standard(Duration::from_millis(1), Duration::from_millis(4)),
        };
        assert!(rejected.get("k", now).await.is_err());
        assert_eq!(REJECTED_CALLS.load(Ordering::Relaxed), 1);
    }

    static REJECTED_CALLS: AtomicU64 = AtomicU64::new(0);

    #[derive(Debug)]
    struct Rejecting;

    #[async_trait]
    impl BlobStore for Rejecting {
        async fn put(&self, _: &str, _: &[u8], _: DateTime<Utc>) -> Result<(), BackendError> {
            unreachable!("only get is called")
        }

        async fn get(&self, _: &str, _: DateTime<Utc>) -> Result<Option<Vec<u8>>, BackendError> {
            REJECTED_CALLS.fetch_add(1, Ordering::Relaxed);
            Err(BackendError::Rejected("too large".into()))
        }
    }

    #[test]
    fn backoff_stays_under_its_doubling_bound_and_the_cap() {
        let retry = Retry::standard(Duration::from_millis(10), Duration::from_millis(25));
        for _ in 0..1000 {
            assert!(retry.backoff(1) <= Duration::from_millis(10));
            assert!(retry.backoff(2) <= Duration::from_millis(20));
            assert!(retry.backoff(5) <= Duration::from_millis(25));
        }
    }
}
