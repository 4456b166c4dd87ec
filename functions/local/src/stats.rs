//! Counters for the status line and the fault run: what came in, what each stage did, what was
//! delivered and dead-lettered. Counting happens in thin decorators around the ports, so the
//! stages themselves stay exactly what the Lambdas run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use shared::delivery::deliver::{HttpError, HttpRequest, HttpResponse, HttpSender};
use shared::ports::{BackendError, FailedEntry, OutgoingMessage, Queue, ReceivedMessage};

/// A counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-stage counters.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Records handed to the stage.
    pub records: Counter,
    /// Records the stage reported failed (they come back after their visibility timeout).
    pub failed: Counter,
    /// Batches run.
    pub batches: Counter,
}

/// Everything counted in one process.
#[derive(Debug, Default)]
pub struct Stats {
    /// Webhooks answered 2xx (handshakes included).
    pub accepted: Counter,
    /// Webhooks answered 4xx (bad signature, unknown source, malformed, too large).
    pub rejected: Counter,
    /// Webhooks answered 5xx (the provider retries).
    pub unavailable: Counter,
    /// Events put on the inbound queue.
    pub events: Counter,
    /// Track stage.
    pub track: Arc<StageStats>,
    /// Buffer stage.
    pub buffer: Arc<StageStats>,
    /// Fan-out stage.
    pub fanout: Arc<StageStats>,
    /// Deliver stage.
    pub deliver: Arc<StageStats>,
    /// Media stage.
    pub media: Arc<StageStats>,
    /// POSTs answered 2xx.
    pub delivered: Counter,
    /// POSTs that failed (non-2xx, timeout, network error).
    pub failed_attempts: Counter,
    /// Delivery tasks moved to the dead-letter queue.
    pub dead_lettered: Counter,
    /// Conversations ended by the sweep.
    pub swept: Counter,
    /// Expired documents and blobs freed from an embedded backend.
    pub evicted: Counter,
}

impl Stats {
    /// One status line.
    pub fn line(&self) -> String {
        format!(
            "webhooks {} accepted, {} rejected, {} unavailable | events {} | tracked {} | buffered {} | fanned out {} | delivered {} | failed attempts {} | dead-lettered {} | swept {} | expired freed {}",
            self.accepted.get(),
            self.rejected.get(),
            self.unavailable.get(),
            self.events.get(),
            self.track.records.get() - self.track.failed.get().min(self.track.records.get()),
            self.buffer.records.get() - self.buffer.failed.get().min(self.buffer.records.get()),
            self.fanout.records.get() - self.fanout.failed.get().min(self.fanout.records.get()),
            self.delivered.get(),
            self.failed_attempts.get(),
            self.dead_lettered.get(),
            self.swept.get(),
            self.evicted.get(),
        )
    }
}

/// An [`HttpSender`] that counts answers.
#[derive(Debug)]
pub struct CountingSender {
    /// The real sender.
    pub inner: Arc<dyn HttpSender>,
    /// Where to count.
    pub stats: Arc<Stats>,
}

#[async_trait]
impl HttpSender for CountingSender {
    async fn post(&self, request: HttpRequest<'_>) -> Result<HttpResponse, HttpError> {
        let result = self.inner.post(request).await;
        match &result {
            Ok(r) if (200..300).contains(&r.status) => self.stats.delivered.add(1),
            _ => self.stats.failed_attempts.add(1),
        }
        result
    }
}

/// A [`Queue`] that counts the messages it accepted (used on the delivery dead-letter queue).
#[derive(Debug)]
pub struct CountingQueue {
    /// The real queue.
    pub inner: Arc<dyn Queue>,
    /// Where to count.
    pub stats: Arc<Stats>,
}

#[async_trait]
impl Queue for CountingQueue {
    async fn approximate_depth(&self) -> Result<Option<u64>, BackendError> {
        self.inner.approximate_depth().await
    }

    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, BackendError> {
        let failed = self.inner.send_batch(messages).await?;
        self.stats
            .dead_lettered
            .add(u64::try_from(messages.len() - failed.len().min(messages.len())).unwrap_or(0));
        Ok(failed)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        self.inner.receive(max, wait, visibility).await
    }

    async fn delete(&self, receipt: &str) -> Result<(), BackendError> {
        self.inner.delete(receipt).await
    }

    async fn delete_batch(
        &self,
        receipts: &[&str],
    ) -> Result<Vec<(usize, BackendError)>, BackendError> {
        self.inner.delete_batch(receipts).await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), BackendError> {
        self.inner.change_visibility(receipt, visibility).await
    }
}
