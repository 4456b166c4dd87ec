//! In-memory backends for the ports: the embedded local mode and fast tests.
//!
//! They keep the semantics the AWS services have (SQS limits, visibility timeouts, receive counts,
//! dead-lettering after a maximum number of receives; DynamoDB conditional writes and TTLs), and
//! pass the same contract suites as the AWS adapters. State lives in the process: nothing here
//! survives a restart. Expired items are skipped at once and freed by `evict_expired`, which
//! local mode calls every minute (DynamoDB's TTL deletion, done here).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{
    BackendError, BlobStore, DocBody, DocumentStore, DocumentWrite, FailedEntry, IndexEntry,
    IndexPage, Listed, OutgoingMessage, PutDocument, Queue, ReceivedMessage, Versioned,
    VersionedJson, check_put_all, limits,
};
use limits::{check_batch, sqs_allows};

/// Locks a mutex, taking the data even if a panicking holder poisoned it (the state is kept
/// consistent between statements, so a panic elsewhere cannot leave it half-written).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Stored {
    message_id: String,
    body: String,
    visible_at: Instant,
    /// When it was last received: SQS counts the 12 hours a message may stay hidden from there.
    received_at: Instant,
    receive_count: u32,
    /// The receipts handed out for it (each stays valid until the message is deleted).
    receipts: Vec<String>,
}

#[derive(Debug, Default)]
struct QueueState {
    /// Messages by arrival order.
    messages: BTreeMap<u64, Stored>,
    /// Every message as `(visible_at, seq)`, in order: a receive reads the visible ones from the
    /// front instead of stepping over every hidden or delayed message.
    by_visibility: BTreeSet<(Instant, u64)>,
    next_seq: u64,
    /// Every receipt handed out, to the message it names.
    receipts: HashMap<String, u64>,
}

impl QueueState {
    /// Moves message `seq` to `visible_at`.
    fn set_visible_at(&mut self, seq: u64, visible_at: Instant) {
        if let Some(m) = self.messages.get_mut(&seq) {
            self.by_visibility.remove(&(m.visible_at, seq));
            m.visible_at = visible_at;
            self.by_visibility.insert((visible_at, seq));
        }
    }

    /// Removes message `seq` and forgets its receipts.
    fn remove(&mut self, seq: u64) -> Option<Stored> {
        let m = self.messages.remove(&seq)?;
        self.by_visibility.remove(&(m.visible_at, seq));
        for r in &m.receipts {
            self.receipts.remove(r);
        }
        Some(m)
    }
}

/// Where a queue sends messages received too often.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The dead-letter queue.
    pub queue: Arc<MemoryQueue>,
    /// Receives after which a message moves there (SQS `maxReceiveCount`).
    pub max_receives: u32,
}

/// An SQS-like queue in memory.
#[derive(Debug)]
pub struct MemoryQueue {
    name: String,
    state: Mutex<QueueState>,
    notify: Notify,
    dead_letter: Option<DeadLetter>,
}

impl MemoryQueue {
    /// A queue with no dead-letter queue.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            state: Mutex::default(),
            notify: Notify::new(),
            dead_letter: None,
        }
    }

    /// A queue that moves a message to `dead_letter` once it has been received more than
    /// `max_receives` times without being deleted.
    pub fn with_dead_letter(name: impl Into<String>, dead_letter: DeadLetter) -> Self {
        Self {
            dead_letter: Some(dead_letter),
            ..Self::new(name)
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Messages in the queue, visible or not.
    pub fn len(&self) -> usize {
        lock(&self.state).messages.len()
    }

    /// Whether the queue holds no message at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every message off the queue at once, delayed and in-flight ones included, and
    /// returns their bodies in arrival order: for tests that fire delayed timers without
    /// waiting for them.
    pub fn take_all(&self) -> Vec<String> {
        let mut state = lock(&self.state);
        state.receipts.clear();
        state.by_visibility.clear();
        std::mem::take(&mut state.messages)
            .into_values()
            .map(|m| m.body)
            .collect()
    }

    fn push(&self, body: String, delay: Duration, receive_count: u32) {
        let mut state = lock(&self.state);
        let seq = state.next_seq;
        state.next_seq += 1;
        let message_id = format!("{}-{seq}", self.name);
        let visible_at = Instant::now() + delay;
        state.messages.insert(
            seq,
            Stored {
                message_id,
                body,
                visible_at,
                received_at: Instant::now(),
                receive_count,
                receipts: Vec::new(),
            },
        );
        state.by_visibility.insert((visible_at, seq));
        drop(state);
        self.notify.notify_waiters();
    }

    /// Takes up to `max` visible messages, longest visible first; also returns when the next
    /// hidden one turns visible.
    fn take_visible(
        &self,
        max: usize,
        visibility: Duration,
    ) -> (Vec<ReceivedMessage>, Option<Instant>) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let mut out = Vec::new();
        let mut moved = Vec::new();
        let mut seen: Vec<u64> = Vec::new();
        let due = (now, u64::MAX);
        let mut cursor: Option<(Instant, u64)> = None;
        while out.len() < max {
            let next = match cursor {
                None => state.by_visibility.range(..=due).next(),
                Some(c) => state
                    .by_visibility
                    .range((Bound::Excluded(c), Bound::Included(due)))
                    .next(),
            }
            .copied();
            let Some((at, seq)) = next else { break };
            cursor = Some((at, seq));
            // A zero visibility puts a taken message back in range: take it once per call.
            if seen.contains(&seq) {
                continue;
            }
            seen.push(seq);
            let Some(count) = state.messages.get(&seq).map(|m| m.receive_count) else {
                state.by_visibility.remove(&(at, seq));
                continue;
            };
            if let Some(dl) = &self.dead_letter
                && count >= dl.max_receives
            {
                moved.extend(state.remove(seq));
                continue;
            }
            state.set_visible_at(seq, now + visibility);
            let receipt = format!("{}:{seq}:{}", self.name, ulid::Ulid::new());
            state.receipts.insert(receipt.clone(), seq);
            if let Some(m) = state.messages.get_mut(&seq) {
                m.receipts.push(receipt.clone());
                m.receive_count += 1;
                m.received_at = now;
                out.push(ReceivedMessage {
                    receipt,
                    message_id: m.message_id.clone(),
                    body: m.body.clone(),
                    receive_count: m.receive_count,
                });
            }
        }
        let next_visible = state
            .by_visibility
            .range((Bound::Excluded(due), Bound::Unbounded))
            .next()
            .map(|(at, _)| *at);
        drop(state);
        if let Some(dl) = &self.dead_letter {
            for m in moved {
                dl.queue.push(m.body, Duration::ZERO, 0);
            }
        }
        (out, next_visible)
    }

    fn seq_of(&self, state: &QueueState, receipt: &str) -> Result<u64, BackendError> {
        state
            .receipts
            .get(receipt)
            .copied()
            .filter(|seq| state.messages.contains_key(seq))
            .ok_or_else(|| {
                BackendError::Rejected(format!("receipt handle not valid for queue {}", self.name))
            })
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn approximate_depth(&self) -> Result<Option<u64>, BackendError> {
        Ok(Some(lock(&self.state).messages.len() as u64))
    }

    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, BackendError> {
        check_batch(messages)?;
        let mut failed = Vec::new();
        for m in messages {
            if sqs_allows(&m.body) {
                self.push(m.body.clone(), m.delay.unwrap_or_default(), 0);
            } else {
                failed.push(FailedEntry {
                    id: m.id.clone(),
                    retryable: false,
                    reason: "InvalidMessageContents".into(),
                });
            }
        }
        Ok(failed)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        let max = max.clamp(1, limits::MAX_BATCH_ENTRIES);
        let deadline = Instant::now() + wait;
        loop {
            // Register for wake-ups before looking, so a send between the look and the wait
            // is not missed.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (got, next_visible) = self.take_visible(max, visibility);
            if !got.is_empty() || Instant::now() >= deadline {
                return Ok(got);
            }
            let until = next_visible.map_or(deadline, |n| n.min(deadline));
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    async fn delete(&self, receipt: &str) -> Result<(), BackendError> {
        let mut state = lock(&self.state);
        let seq = self.seq_of(&state, receipt)?;
        state.remove(seq);
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), BackendError> {
        if visibility.as_secs() > limits::MAX_VISIBILITY_SECS {
            return Err(BackendError::Rejected(
                "visibility timeout exceeds 12 hours".into(),
            ));
        }
        let mut state = lock(&self.state);
        let seq = self.seq_of(&state, receipt)?;
        if let Some(m) = state.messages.get(&seq) {
            // As SQS: hidden at most 12 hours from the receive, not from this call.
            let now = Instant::now();
            if now.duration_since(m.received_at) + visibility
                > Duration::from_secs(limits::MAX_VISIBILITY_SECS)
            {
                return Err(BackendError::Rejected(
                    "visibility would end more than 12 hours after the message was received".into(),
                ));
            }
            state.set_visible_at(seq, now + visibility);
        }
        drop(state);
        self.notify.notify_waiters();
        Ok(())
    }
}

/// A stored blob and when it expires.
type Expiring = (Vec<u8>, DateTime<Utc>);

/// Blobs in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<Blobs>,
}

/// The blobs by key, and `(expires_at, key)` in order for eviction.
#[derive(Debug, Default)]
struct Blobs {
    by_key: Sharded<Expiring>,
    by_expiry: BTreeSet<(DateTime<Utc>, String)>,
}

/// Hash tables a [`Sharded`] map is split into.
const SHARDS: usize = 64;

/// A map from keys to items split over [`SHARDS`] hash tables. A store's lock is held while an
/// insert grows its table, and a table grows by moving every entry it holds: in one piece, a
/// table of a million documents took over 100 ms to grow, and every call of the pipeline waited
/// behind it (the load run's ingest stalled long enough to leave posts unsent). Split, one growth
/// moves a sixty-fourth of the entries; the total work is the same.
///
/// Keys are hashed with foldhash, seeded at random per map like std's SipHash but a fraction of
/// its cost (every call of every stage hashes its keys twice: the shard, then the slot). Its
/// resistance to crafted collisions is weaker than SipHash's; this backend serves tests and
/// `--backend memory`, while `serve`'s default (SQLite) keeps its documents in B-trees.
#[derive(Debug)]
struct Sharded<V> {
    shards: Vec<HashMap<String, V, foldhash::fast::RandomState>>,
    pick: foldhash::fast::RandomState,
}

impl<V> Default for Sharded<V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            pick: foldhash::fast::RandomState::default(),
        }
    }
}

impl<V> Sharded<V> {
    /// The table of `key`: always one of the [`SHARDS`] (the remainder of a division by 64).
    fn shard(&self, key: &str) -> usize {
        (self.pick.hash_one(key) % SHARDS as u64) as usize
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    fn insert(&mut self, key: String, value: V) -> Option<V> {
        let shard = self.shard(&key);
        self.shards[shard].insert(key, value)
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        let shard = self.shard(key);
        self.shards[shard].remove(key)
    }

    fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }
}

/// Most items one eviction batch takes while holding a store's lock.
const EVICT_BATCH: usize = 1_000;

/// Takes up to [`EVICT_BATCH`] entries that expired at `now` out of an expiry order, and
/// returns their keys (expiring at `now` counts: reads treat it as gone).
fn take_expired(
    by_expiry: &mut BTreeSet<(DateTime<Utc>, String)>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut keys = Vec::new();
    while keys.len() < EVICT_BATCH {
        match by_expiry.first() {
            Some((at, _)) if *at <= now => {}
            _ => break,
        }
        if let Some((_, key)) = by_expiry.pop_first() {
            keys.push(key);
        }
    }
    keys
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the blobs expired at `now` (reads already skip them; this frees their memory).
    /// Returns how many were dropped. Works through the expiry order a batch at a time and
    /// frees each batch after letting go of the lock, so readers and writers wait for one
    /// batch at most, not for the whole backlog.
    pub fn evict_expired(&self, now: DateTime<Utc>) -> u64 {
        let mut total = 0;
        loop {
            let (n, freed): (usize, Vec<Expiring>) = {
                let mut blobs = lock(&self.blobs);
                let due = take_expired(&mut blobs.by_expiry, now);
                let n = due.len();
                let freed = due
                    .iter()
                    .filter_map(|k| blobs.by_key.remove(k.as_str()))
                    .collect();
                (n, freed)
            };
            total += freed.len() as u64;
            if n < EVICT_BATCH {
                return total;
            }
            std::thread::yield_now();
        }
    }

    /// Blobs held, expired ones not yet evicted included.
    pub fn len(&self) -> usize {
        lock(&self.blobs).by_key.len()
    }

    /// Whether it holds no blob.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let mut blobs = lock(&self.blobs);
        if let Some((_, old)) = blobs
            .by_key
            .insert(key.to_owned(), (bytes.to_vec(), expires_at))
        {
            blobs.by_expiry.remove(&(old, key.to_owned()));
        }
        blobs.by_expiry.insert((expires_at, key.to_owned()));
        Ok(())
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Vec<u8>>, BackendError> {
        let blobs = lock(&self.blobs);
        Ok(blobs
            .by_key
            .get(key)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(b, _)| b.clone()))
    }
}

/// One document as held: its body as compact JSON, not as a `serde_json::Value` tree. A tree
/// costs an allocation per object, key and string (several times the text's size), and copying
/// one in and out under the store's lock led the local pipeline's profile. The text is written
/// and read outside the lock, shared (reference-counted) while it is read, and freed in one
/// piece.
#[derive(Debug, Clone)]
struct StoredDocument {
    version: u64,
    body: bytes::Bytes,
    expires_at: Option<DateTime<Utc>>,
    index: Option<IndexEntry>,
}

impl StoredDocument {
    fn live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// Documents in memory, with their index kept ordered beside them.
#[derive(Debug, Default)]
pub struct MemoryDocumentStore {
    docs: Mutex<Documents>,
}

/// The documents by key, and the index entries as `(partition, sort, key)` in order, so listing
/// a partition reads that range instead of every document.
#[derive(Debug, Default)]
struct Documents {
    by_key: Sharded<StoredDocument>,
    index: BTreeSet<(String, String, String)>,
    /// `(expires_at, key)` of the documents that expire, in order, for eviction.
    by_expiry: BTreeSet<(DateTime<Utc>, String)>,
}

impl Documents {
    fn insert(&mut self, key: &str, doc: StoredDocument) {
        if let Some(old) = self.by_key.remove(key) {
            self.unindex(key, &old);
        }
        if let Some(entry) = &doc.index {
            self.index
                .insert((entry.partition.clone(), entry.sort.clone(), key.to_owned()));
        }
        if let Some(at) = doc.expires_at {
            self.by_expiry.insert((at, key.to_owned()));
        }
        self.by_key.insert(key.to_owned(), doc);
    }

    fn remove(&mut self, key: &str) -> Option<StoredDocument> {
        let old = self.by_key.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }

    /// Takes `doc` out of the index and the expiry order (not out of `by_key`).
    fn unindex(&mut self, key: &str, doc: &StoredDocument) {
        if let Some(entry) = &doc.index {
            self.index
                .remove(&(entry.partition.clone(), entry.sort.clone(), key.to_owned()));
        }
        if let Some(at) = doc.expires_at {
            self.by_expiry.remove(&(at, key.to_owned()));
        }
    }
}

impl MemoryDocumentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops the documents expired at `now` (reads already skip them; this frees their
    /// memory). Returns how many were dropped. A batch at a time, freed outside the lock, as
    /// [`MemoryBlobStore::evict_expired`].
    pub fn evict_expired(&self, now: DateTime<Utc>) -> u64 {
        let mut total = 0;
        loop {
            let (n, freed): (usize, Vec<StoredDocument>) = {
                let mut docs = lock(&self.docs);
                let due = take_expired(&mut docs.by_expiry, now);
                let freed = due.iter().filter_map(|k| docs.remove(k)).collect();
                (due.len(), freed)
            };
            total += freed.len() as u64;
            if n < EVICT_BATCH {
                return total;
            }
            std::thread::yield_now();
        }
    }

    #[cfg(test)]
    fn index_sizes(&self) -> (usize, usize) {
        let docs = lock(&self.docs);
        (docs.by_key.len(), docs.by_expiry.len())
    }

    /// Documents held, expired ones not yet evicted included.
    pub fn len(&self) -> usize {
        lock(&self.docs).by_key.len()
    }

    /// Whether it holds no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl DocumentStore for MemoryDocumentStore {
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned>, BackendError> {
        self.get_json(key, now)
            .await?
            .map(|d| d.decode())
            .transpose()
    }

    async fn get_json(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        Ok(lock(&self.docs)
            .by_key
            .get(key)
            .filter(|d| d.live(now))
            .map(|d| VersionedJson {
                version: d.version,
                json: d.body.clone(),
            }))
    }

    async fn get_json_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.get_json(key, now).await
    }

    async fn put(
        &self,
        key: &str,
        body: &serde_json::Value,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        let body = body.into();
        self.put_all(&[PutDocument { key, body, write }]).await
    }

    async fn put_json(
        &self,
        key: &str,
        json: &str,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        let body = DocBody::Json(json);
        self.put_all(&[PutDocument { key, body, write }]).await
    }

    async fn put_all(&self, puts: &[PutDocument<'_>]) -> Result<bool, BackendError> {
        check_put_all(puts)?;
        let bodies = puts
            .iter()
            .map(|p| match p.body.text()? {
                std::borrow::Cow::Borrowed(text) => {
                    Ok(bytes::Bytes::copy_from_slice(text.as_bytes()))
                }
                std::borrow::Cow::Owned(text) => Ok(bytes::Bytes::from(text)),
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        let mut docs = lock(&self.docs);
        let matches = puts.iter().all(|p| {
            let current = docs
                .by_key
                .get(p.key)
                .filter(|d| d.live(p.write.now))
                .map(|d| d.version);
            current == p.write.expected
        });
        if !matches {
            return Ok(false);
        }
        for (p, body) in puts.iter().zip(bodies) {
            docs.insert(
                p.key,
                StoredDocument {
                    version: p.write.expected.unwrap_or(0) + 1,
                    body,
                    expires_at: p.write.expires_at,
                    index: p.write.index.cloned(),
                },
            );
        }
        Ok(true)
    }

    async fn list_page(
        &self,
        page: IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, BackendError> {
        // (partition, sort, key) tuples from the first sort key above `after` (the smallest
        // string above it is `after` + NUL) to the last below `before` (or the partition's end).
        let partition = page.partition.to_owned();
        let low = (
            partition.clone(),
            page.after.map_or_else(String::new, |a| format!("{a}\0")),
            String::new(),
        );
        let high = match page.before {
            Some(b) => (partition, b.to_owned(), String::new()),
            None => (format!("{partition}\0"), String::new(), String::new()),
        };
        if low >= high {
            return Ok(Vec::new());
        }
        let found: Vec<(String, String, u64, bytes::Bytes)> = {
            let docs = lock(&self.docs);
            let range = docs
                .index
                .range((Bound::Included(low), Bound::Excluded(high)));
            let live = |(_, sort, key): &(String, String, String)| {
                let d = docs.by_key.get(key).filter(|d| d.live(now))?;
                Some((key.clone(), sort.clone(), d.version, d.body.clone()))
            };
            if page.descending {
                range.rev().filter_map(live).take(page.limit).collect()
            } else {
                range.filter_map(live).take(page.limit).collect()
            }
        };
        found
            .into_iter()
            .map(|(key, sort, version, json)| {
                Ok(Listed {
                    key,
                    sort,
                    doc: VersionedJson { version, json }.decode()?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn eviction_takes_every_expired_item_over_several_batches_and_follows_rewrites() {
        let now = Utc::now();
        let soon = now + chrono::Duration::seconds(10);
        let later = now + chrono::Duration::seconds(60);
        let docs = MemoryDocumentStore::new();
        let blobs = MemoryBlobStore::new();
        let n = EVICT_BATCH * 2 + 500;
        for i in 0..n {
            let write = DocumentWrite::new(None, now).expiring(soon);
            assert!(docs.put(&format!("d{i}"), &json!(i), write).await.unwrap());
            blobs.put(&format!("b{i}"), b"x", soon).await.unwrap();
        }
        // Rewritten: d0 to expire after `later`, d1 to never expire, b0 to expire after it.
        let write = DocumentWrite::new(Some(1), now).expiring(later + chrono::Duration::hours(1));
        assert!(docs.put("d0", &json!("kept"), write).await.unwrap());
        assert!(
            docs.put("d1", &json!("forever"), DocumentWrite::new(Some(1), now))
                .await
                .unwrap()
        );
        blobs
            .put("b0", b"y", later + chrono::Duration::hours(1))
            .await
            .unwrap();

        assert_eq!(docs.evict_expired(now), 0);
        assert_eq!(docs.evict_expired(later), (n - 2) as u64);
        assert_eq!(blobs.evict_expired(later), (n - 1) as u64);
        assert_eq!((docs.len(), blobs.len()), (2, 1));
        assert_eq!(
            docs.get("d0", later).await.unwrap().unwrap().body,
            json!("kept")
        );
        assert!(docs.get("d1", later).await.unwrap().is_some());
        assert_eq!(
            blobs.get("b0", later).await.unwrap().as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(docs.evict_expired(later + chrono::Duration::days(1)), 1);
        assert_eq!(blobs.evict_expired(later + chrono::Duration::days(1)), 1);
        assert_eq!(docs.index_sizes(), (1, 0));
    }

    #[tokio::test]
    async fn visibility_ends_at_most_twelve_hours_after_the_receipt_as_on_sqs() {
        let q = MemoryQueue::new("q");
        q.send_batch(&[OutgoingMessage {
            id: "0".into(),
            body: "b".into(),
            delay: None,
        }])
        .await
        .unwrap();
        let got = q
            .receive(1, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap();
        let twelve_hours = Duration::from_secs(limits::MAX_VISIBILITY_SECS);
        q.change_visibility(&got[0].receipt, twelve_hours - Duration::from_secs(5))
            .await
            .unwrap();
        // Counted from the receipt, not from the change: a second later, 12 h is too long.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            q.change_visibility(&got[0].receipt, twelve_hours)
                .await
                .is_err()
        );
        q.change_visibility(&got[0].receipt, twelve_hours - Duration::from_secs(5))
            .await
            .unwrap();
    }
}
