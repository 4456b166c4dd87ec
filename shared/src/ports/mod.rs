//! Ports: the narrow traits the pipeline stages talk to storage and queues through.
//!
//! Owns: the capability contracts (what a conditional write means, what a batch send may report,
//! how TTLs behave) and their in-memory backend ([`memory`]). Must not: name a vendor. AWS adapters
//! live in `functions/aws-adapters`; both backends pass the same contract suites in `tests/`.

pub mod cache;
pub mod codec;
pub mod faults;
pub mod layer;
pub mod media;
pub mod memory;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::SourceId;
use crate::model::Provider;
use crate::signature::Secret;

/// A failure of a storage or queue backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend could not be reached or refused for now (network, throttling, 5xx): retry.
    #[error("backend unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request was invalid for the backend (too large, malformed): retrying will not help.
    #[error("request rejected by backend: {0}")]
    Rejected(String),
    /// Stored data could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl BackendError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// Wraps any error as [`BackendError::Unavailable`].
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

/// SQS limits, kept by every queue backend so local runs fail where AWS would.
pub mod limits {
    /// Entries in one batch send.
    pub const MAX_BATCH_ENTRIES: usize = 10;
    /// Bytes in one message body, and in all bodies of one batch together (256 KiB).
    pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
    /// Longest delivery delay (15 minutes).
    pub const MAX_DELAY_SECS: u64 = 900;
    /// Longest visibility timeout (12 hours).
    pub const MAX_VISIBILITY_SECS: u64 = 12 * 3600;

    use std::collections::HashSet;

    use super::{BackendError, OutgoingMessage};

    /// Whether SQS accepts every character of `body`: `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
    /// #x10000-#x10FFFF` (surrogates cannot occur in a Rust string).
    ///
    /// Checked over the UTF-8 bytes, which every message body of every stage passes through
    /// (a character at a time it was 4% of the local gateway's CPU): below U+0080 only the
    /// control characters are refused, each one byte; above, only U+FFFE and U+FFFF, encoded
    /// `EF BF BE` and `EF BF BF` (`EF` only ever leads a three-byte character, so the bytes
    /// cannot occur otherwise). Most bodies hold neither a control byte nor an `EF`: a pass
    /// without branches over 64-byte chunks, which the compiler vectorizes, says so about 13
    /// times faster than the character loop; only a body with one is looked at closely.
    pub fn sqs_allows(body: &str) -> bool {
        let bytes = body.as_bytes();
        let refused_control = |b: u8| (b < 0x20) & !matches!(b, b'\t' | b'\n' | b'\r');
        let suspect = |b: u8| refused_control(b) | (b == 0xEF);
        let clean = !bytes
            .chunks(64)
            .any(|c| c.iter().fold(false, |any, &b| any | suspect(b)));
        clean
            || (!bytes.iter().any(|&b| refused_control(b))
                && !bytes
                    .windows(3)
                    .any(|w| matches!(w, [0xEF, 0xBF, 0xBE | 0xBF])))
    }

    /// Checks a batch against the SQS limits, as SQS would before accepting any of it.
    pub fn check_batch(messages: &[OutgoingMessage]) -> Result<(), BackendError> {
        if messages.is_empty() || messages.len() > MAX_BATCH_ENTRIES {
            return Err(BackendError::Rejected(format!(
                "a batch holds 1 to 10 entries, not {}",
                messages.len()
            )));
        }
        let ids: HashSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        if ids.len() != messages.len() {
            return Err(BackendError::Rejected(
                "batch entry ids must be distinct".into(),
            ));
        }
        let total: usize = messages.iter().map(|m| m.body.len()).sum();
        if total > MAX_MESSAGE_BYTES {
            return Err(BackendError::Rejected(format!(
                "batch of {total} bytes exceeds 262144"
            )));
        }
        if messages
            .iter()
            .any(|m| m.delay.is_some_and(|d| d.as_secs() > MAX_DELAY_SECS))
        {
            return Err(BackendError::Rejected("delay exceeds 900 seconds".into()));
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::sqs_allows;

        /// SQS's rule, a character at a time.
        fn allowed(c: char) -> bool {
            matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
        }

        #[test]
        fn every_character_is_judged_as_sqs_judges_it_alone_and_among_others() {
            for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
                let want = allowed(c);
                assert_eq!(sqs_allows(&c.to_string()), want, "{:04x}", u32::from(c));
                // Beside characters whose encodings share its bytes.
                let among = format!("a\u{FFFD}{c}\u{EFBF}é");
                assert_eq!(
                    sqs_allows(&among),
                    want,
                    "{:04x} among others",
                    u32::from(c)
                );
                // Across the boundary of the 64-byte chunks the fast pass reads.
                let across = format!("{}{c}{}", "x".repeat(63), "y".repeat(70));
                assert_eq!(sqs_allows(&across), want, "{:04x} across", u32::from(c));
            }
            assert!(sqs_allows(""));
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Id of the entry within its batch (unique per batch; reported back on failure).
    pub id: String,
    /// The message body.
    pub body: String,
    /// Delay before the message becomes visible (at most 15 minutes).
    pub delay: Option<Duration>,
}

/// One entry of a batch that the queue did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// The entry's [`OutgoingMessage::id`].
    pub id: String,
    /// Whether sending it again may succeed (throttling, internal error) or not (too large…).
    pub retryable: bool,
    /// The backend's reason code.
    pub reason: String,
}

/// A message handed out by [`Queue::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Handle for [`Queue::delete`] and [`Queue::change_visibility`]; valid for this receive only.
    pub receipt: String,
    /// The queue's id for the message (stable across receives).
    pub message_id: String,
    /// The body as sent.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
}

/// A message queue with SQS semantics: at-least-once, batches of up to 10, visibility timeouts,
/// and (when configured) a dead-letter queue after a maximum number of receives.
#[async_trait]
pub trait Queue: Send + Sync + Debug {
    /// Sends up to [`limits::MAX_BATCH_ENTRIES`] messages whose bodies total at most
    /// [`limits::MAX_MESSAGE_BYTES`]. Entries the queue refused are listed in the result; an `Err`
    /// means the whole call failed and nothing may be assumed sent.
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, BackendError>;

    /// Receives up to `max` (1–10) visible messages, waiting up to `wait` for the first, and hides
    /// them for `visibility`.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError>;

    /// Deletes a received message for good.
    async fn delete(&self, receipt: &str) -> Result<(), BackendError>;

    /// Deletes several received messages (SQS `DeleteMessageBatch`): returns the receipts that
    /// were not deleted, by their index in `receipts`, each with why; an `Err` means none may be
    /// assumed deleted. A message not deleted only comes back later. Backends where one call
    /// costs less than several override it; by default each is deleted on its own.
    async fn delete_batch(
        &self,
        receipts: &[&str],
    ) -> Result<Vec<(usize, BackendError)>, BackendError> {
        let mut failed = Vec::new();
        for (i, receipt) in receipts.iter().enumerate() {
            if let Err(e) = self.delete(receipt).await {
                failed.push((i, e));
            }
        }
        Ok(failed)
    }

    /// Makes a received message visible again after `visibility` (zero: now).
    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), BackendError>;

    /// About how many messages the queue holds (visible, in flight and delayed), if the backend
    /// can tell; on SQS an estimate that lags by up to a minute.
    async fn approximate_depth(&self) -> Result<Option<u64>, BackendError> {
        Ok(None)
    }
}

/// A stored document and its version (for optimistic concurrency).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// Starts at 1 and grows by one with every write.
    pub version: u64,
    /// The document.
    pub body: serde_json::Value,
}

/// A stored document as its JSON text, for a reader that decodes it straight into its own type
/// ([`DocumentStore::get_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedJson {
    /// As [`Versioned::version`].
    pub version: u64,
    /// The document's JSON text.
    pub json: bytes::Bytes,
}

impl VersionedJson {
    /// The document as a [`Versioned`] (what [`DocumentStore::get`] answers): stored text that
    /// is not JSON is a [`BackendError::Corrupt`].
    pub fn decode(&self) -> Result<Versioned, BackendError> {
        crate::from_json_bytes(&self.json)
            .map(|body| Versioned {
                version: self.version,
                body,
            })
            .map_err(|e| BackendError::Corrupt(format!("stored document: {e}")))
    }

    fn of(doc: &Versioned) -> Result<Self, BackendError> {
        serde_json::to_vec(&doc.body)
            .map(|json| Self {
                version: doc.version,
                json: json.into(),
            })
            .map_err(|e| BackendError::Corrupt(format!("document does not encode: {e}")))
    }
}

/// The most documents one [`DocumentStore::put_all`] writes.
pub const MAX_PUT_ALL: usize = 10;

/// A document body to write: a `serde_json::Value` tree, or the JSON text a serializer wrote
/// straight from the caller's type ([`DocumentStore::put_json`]): the embedded stores keep
/// text, and DynamoDB stores it as a string attribute, so the tree between is only a cost.
#[derive(Debug, Clone, Copy)]
pub enum DocBody<'a> {
    /// A tree.
    Value(&'a serde_json::Value),
    /// JSON text, as `serde_json` wrote it (a writer that hands over anything else gets
    /// [`BackendError::Corrupt`] on the next read).
    Json(&'a str),
}

impl<'a> From<&'a serde_json::Value> for DocBody<'a> {
    fn from(value: &'a serde_json::Value) -> Self {
        Self::Value(value)
    }
}

impl<'a> DocBody<'a> {
    /// The body as compact JSON text: borrowed when it is text already.
    pub fn text(&self) -> Result<std::borrow::Cow<'a, str>, BackendError> {
        match *self {
            Self::Json(text) => {
                // Callers hand over what `serde_json` wrote; debug builds (the tests) check it.
                debug_assert!(
                    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
                    "DocBody::Json holds JSON"
                );
                Ok(text.into())
            }
            Self::Value(value) => serde_json::to_string(value)
                .map(Into::into)
                .map_err(|e| BackendError::Rejected(format!("document does not encode: {e}"))),
        }
    }

    /// The body as a tree, for a store that needs one.
    pub fn value(&self) -> Result<std::borrow::Cow<'a, serde_json::Value>, BackendError> {
        match *self {
            Self::Value(value) => Ok(std::borrow::Cow::Borrowed(value)),
            Self::Json(text) => serde_json::from_str(text)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| BackendError::Rejected(format!("document is not JSON: {e}"))),
        }
    }
}

/// One document of a [`DocumentStore::put_all`].
#[derive(Debug, Clone, Copy)]
pub struct PutDocument<'a> {
    /// Its key.
    pub key: &'a str,
    /// The new body.
    pub body: DocBody<'a>,
    /// The condition and placement, as for [`DocumentStore::put`].
    pub write: DocumentWrite<'a>,
}

/// Checks a [`DocumentStore::put_all`] request as every backend does before writing.
pub fn check_put_all(puts: &[PutDocument<'_>]) -> Result<(), BackendError> {
    if puts.is_empty() || puts.len() > MAX_PUT_ALL {
        return Err(BackendError::Rejected(format!(
            "put_all writes 1 to {MAX_PUT_ALL} documents, not {}",
            puts.len()
        )));
    }
    let keys: std::collections::HashSet<&str> = puts.iter().map(|p| p.key).collect();
    if keys.len() != puts.len() {
        return Err(BackendError::Rejected(
            "put_all writes each key once".into(),
        ));
    }
    Ok(())
}

/// Where a document sits in the secondary index: documents are listed by `partition`, ordered by
/// `sort` (for conversations: activity time). Documents written without one are not indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index partition.
    pub partition: String,
    /// The order within the partition (compared as strings).
    pub sort: String,
}

/// JSON documents under keys, written with optimistic concurrency, optionally expiring and
/// optionally listed in one secondary index. The domain stores (conversations, contacts, message
/// statuses) are built on it in `pipeline::track::state`.
#[async_trait]
pub trait DocumentStore: Send + Sync + Debug {
    /// The document under `key`, unless absent or expired at `now`.
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned>, BackendError>;

    /// [`DocumentStore::get`] that may miss a write made a moment ago (DynamoDB's eventually
    /// consistent read, half the price), for callers whose later conditional write catches
    /// what the read missed.
    async fn get_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned>, BackendError> {
        self.get(key, now).await
    }

    /// [`DocumentStore::get`] as JSON text: the embedded backends keep documents as text, so a
    /// reader that decodes into its own type skips the `serde_json::Value` tree between. Others
    /// encode what `get` returns.
    async fn get_json(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.get(key, now)
            .await?
            .as_ref()
            .map(VersionedJson::of)
            .transpose()
    }

    /// [`DocumentStore::get_eventually`] as JSON text (see [`DocumentStore::get_json`]).
    async fn get_json_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<VersionedJson>, BackendError> {
        self.get_eventually(key, now)
            .await?
            .as_ref()
            .map(VersionedJson::of)
            .transpose()
    }

    /// Writes `body` under `key` if the stored version is `expected` (`None`: no live document,
    /// an expired one counts as absent). The new version is `expected + 1` (or 1). Returns
    /// `false`, writing nothing, when the version did not match.
    async fn put(
        &self,
        key: &str,
        body: &serde_json::Value,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError>;

    /// [`DocumentStore::put`] of JSON text a serializer wrote from the caller's type (see
    /// [`DocBody`]). Stores that keep text take it as it is; the default decodes it for `put`.
    async fn put_json(
        &self,
        key: &str,
        json: &str,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        let body = DocBody::Json(json).value()?;
        self.put(key, &body, write).await
    }

    /// Writes every document of `puts` if each one's stored version is its `expected`, or none
    /// of them: returns `false`, writing nothing, when any condition failed. At most
    /// [`MAX_PUT_ALL`] documents, each key once. What one change of state spread over several
    /// documents needs (a message's status and its campaign's counts).
    async fn put_all(&self, puts: &[PutDocument<'_>]) -> Result<bool, BackendError>;

    /// One page of index partition `page.partition`: live documents whose sort key lies between
    /// the page's exclusive bounds, in sort order (reversed when `descending`), at most
    /// `page.limit`, each with its key and sort key. The index may lag the documents by a moment
    /// (DynamoDB GSIs are eventually consistent); callers re-read before acting. Pagination
    /// passes the last sort key of a page as the next page's bound, so sort keys should be
    /// unique within a partition (append the document's id).
    async fn list_page(
        &self,
        page: IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, BackendError>;

    /// Live documents in index `partition` whose sort key is below `below`, lowest first, at
    /// most `limit`.
    async fn list_below(
        &self,
        partition: &str,
        below: &str,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, Versioned)>, BackendError> {
        let page = IndexPage {
            partition,
            after: None,
            before: Some(below),
            descending: false,
            limit,
        };
        Ok(self
            .list_page(page, now)
            .await?
            .into_iter()
            .map(|l| (l.key, l.doc))
            .collect())
    }
}

/// Lists index partition `partition` newest first between `after` and `before` (exclusive),
/// keeping what `keep` returns, until `limit` are kept or 1,000 documents were read (so a rare
/// filter cannot make one call unbounded). Returns the kept items and the sort key to pass as
/// `before` for the next page (`None` at the end).
pub async fn filtered_page<T, E: From<BackendError>>(
    docs: &dyn DocumentStore,
    partition: &str,
    after: Option<&str>,
    before: Option<String>,
    limit: usize,
    now: DateTime<Utc>,
    mut keep: impl FnMut(Listed) -> Result<Option<T>, E>,
) -> Result<(Vec<T>, Option<String>), E> {
    const SCAN: usize = 1000;
    let mut cursor = before;
    let mut kept = Vec::new();
    let mut scanned = 0;
    loop {
        let chunk = (limit + 1).clamp(10, 100);
        let page = IndexPage {
            partition,
            after,
            before: cursor.as_deref(),
            descending: true,
            limit: chunk,
        };
        let listed = docs.list_page(page, now).await?;
        let exhausted = listed.len() < chunk;
        for l in listed {
            scanned += 1;
            cursor = Some(l.sort.clone());
            if let Some(item) = keep(l)? {
                kept.push(item);
                if kept.len() == limit {
                    return Ok((kept, cursor));
                }
            }
        }
        if exhausted {
            return Ok((kept, None));
        }
        if scanned >= SCAN {
            return Ok((kept, cursor));
        }
    }
}

/// The index partitions of a sharded list: `base` itself (where entries written before sharding
/// stay until their documents change) and `base#0` … `base#{shards - 1}`.
pub fn sharded_partitions(base: &str, shards: u32) -> Vec<String> {
    std::iter::once(base.to_owned())
        .chain((0..shards).map(|n| format!("{base}#{n}")))
        .collect()
}

/// The partition of a sharded list that `id` is written to: `base#{n}`, `n` from a hash of
/// `id`, so one busy list spreads over `shards` index partitions instead of heating one.
pub fn shard_partition(base: &str, id: &str, shards: u32) -> String {
    format!("{base}#{}", shard_of(id, shards))
}

/// Which of `shards` shards `id` belongs to (0 to `shards - 1`), from a hash of `id`.
pub fn shard_of(id: &str, shards: u32) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % shards.max(1)
}

/// [`filtered_page`] over several partitions whose sort keys are comparable and unique across
/// them (time, then id): each is listed newest first between the same bounds, concurrently,
/// and the answers merged. Returns the newest `limit` kept items with their sort keys, and the sort
/// key to pass as `before` for the next page (`None` when every partition ended).
pub async fn merged_page<T: Send, E: From<BackendError> + Send>(
    docs: &dyn DocumentStore,
    partitions: &[String],
    (after, before): (Option<&str>, Option<&str>),
    limit: usize,
    now: DateTime<Utc>,
    keep: impl Fn(Listed) -> Result<Option<T>, E> + Sync,
) -> Result<(Vec<(String, T)>, Option<String>), E> {
    use futures::{StreamExt, TryStreamExt};
    type Sorted<T> = (Vec<(String, T)>, Option<String>);
    type Page<'a, T, E> =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Sorted<T>, E>> + Send + 'a>>;
    let keep = &keep;
    let pages: Vec<Page<'_, T, E>> = partitions
        .iter()
        .map(|partition| {
            Box::pin(filtered_page(
                docs,
                partition,
                after,
                before.map(str::to_owned),
                limit,
                now,
                move |l: Listed| {
                    let sort = l.sort.clone();
                    Ok(keep(l)?.map(|t| (sort, t)))
                },
            )) as Page<'_, T, E>
        })
        .collect();
    let answers: Vec<Sorted<T>> = futures::stream::iter(pages)
        .buffered(16)
        .try_collect()
        .await?;
    let mut more = false;
    let mut found: Vec<(String, T)> = Vec::new();
    for (items, next) in answers {
        more |= next.is_some();
        found.extend(items);
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    more |= found.len() > limit;
    found.truncate(limit);
    let next = if more {
        found.last().map(|(sort, _)| sort.clone())
    } else {
        None
    };
    Ok((found, next))
}

/// The oldest `limit` documents of several partitions between exclusive bounds, merged in sort
/// order (sort keys comparable and unique across the partitions); queried concurrently.
pub async fn merged_ascending(
    docs: &dyn DocumentStore,
    partitions: &[String],
    after: Option<&str>,
    before: Option<&str>,
    limit: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Listed>, BackendError> {
    use futures::{StreamExt, TryStreamExt};
    type Page<'a> = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<Listed>, BackendError>> + Send + 'a>,
    >;
    let pages: Vec<Page<'_>> = partitions
        .iter()
        .map(|partition| {
            Box::pin(docs.list_page(
                IndexPage {
                    partition,
                    after,
                    before,
                    descending: false,
                    limit,
                },
                now,
            )) as Page<'_>
        })
        .collect();
    let mut found: Vec<Listed> = futures::stream::iter(pages)
        .buffered(16)
        .try_collect::<Vec<Vec<Listed>>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    found.sort_by(|a, b| a.sort.cmp(&b.sort));
    found.truncate(limit);
    Ok(found)
}

/// Which part of an index partition to list (see [`DocumentStore::list_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPage<'a> {
    /// The partition.
    pub partition: &'a str,
    /// Only sort keys strictly greater than this.
    pub after: Option<&'a str>,
    /// Only sort keys strictly less than this.
    pub before: Option<&'a str>,
    /// Highest sort key first.
    pub descending: bool,
    /// At most this many documents.
    pub limit: usize,
}

/// A document found through the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its sort key in the partition.
    pub sort: String,
    /// The document.
    pub doc: Versioned,
}

/// The conditions and placement of one [`DocumentStore::put`].
#[derive(Debug, Clone, Copy)]
pub struct DocumentWrite<'a> {
    /// The version the caller read (`None`: the document must not exist).
    pub expected: Option<u64>,
    /// When the write happens (expired documents count as absent).
    pub now: DateTime<Utc>,
    /// When the document expires, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its index entry, if it is to be listed.
    pub index: Option<&'a IndexEntry>,
}

impl<'a> DocumentWrite<'a> {
    /// A write expecting version `expected` (`None`: creation), not expiring, not indexed.
    pub fn new(expected: Option<u64>, now: DateTime<Utc>) -> Self {
        Self {
            expected,
            now,
            expires_at: None,
            index: None,
        }
    }

    /// The document expires at `at`.
    pub fn expiring(self, at: DateTime<Utc>) -> Self {
        Self {
            expires_at: Some(at),
            ..self
        }
    }

    /// The document is listed under `entry`.
    pub fn indexed(self, entry: &'a IndexEntry) -> Self {
        Self {
            index: Some(entry),
            ..self
        }
    }
}

/// Bytes stored under a key until a time (claim-check for raw requests and oversized events).
#[async_trait]
pub trait BlobStore: Send + Sync + Debug {
    /// Stores `bytes` under `key` until `expires_at`, replacing what was there.
    async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError>;

    /// The bytes under `key`, unless absent or expired at `now`.
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Vec<u8>>, BackendError>;
}

/// A configured webhook source: where `/webhooks/{id}` comes from and how to verify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `{source_id}` of the webhook URL.
    pub id: SourceId,
    /// Who sends to it.
    pub provider: Provider,
    /// Meta app secrets, WAHA HMAC keys, Twilio auth tokens, or the tokens 360dialog, Gupshup
    /// and Evolution API send back; any one verifies (several during a rotation).
    pub secrets: Vec<Secret>,
    /// Meta verify tokens for the GET handshake.
    pub verify_tokens: Vec<Secret>,
    /// Where the request carries what is verified, beyond the provider's fixed headers.
    pub inbound: InboundAuth,
    /// How messages are sent through this source (`POST /v1/messages`); `None` when it only
    /// receives.
    pub send: Option<crate::send::SendSettings>,
}

/// The per-source parts of verification that are not fixed by the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundAuth {
    /// Twilio: the webhook URL exactly as configured in Twilio (scheme, host, any port and
    /// path; the request's query string is appended), since Twilio signs that URL and a proxy
    /// (API Gateway's stage path, a custom domain) changes what the function sees. `None`:
    /// rebuilt from the request's `X-Forwarded-Proto`, `Host` and path.
    pub public_url: Option<String>,
    /// Token sources: the header carrying the token (`Authorization` takes `Bearer <token>`).
    pub token_header: String,
    /// Token sources: the query parameter of the webhook URL carrying the token.
    pub token_query: String,
}

impl InboundAuth {
    /// The header token sources read unless configured otherwise.
    pub const DEFAULT_TOKEN_HEADER: &str = "X-Wagate-Token";
    /// The query parameter token sources read unless configured otherwise.
    pub const DEFAULT_TOKEN_QUERY: &str = "token";
}

impl Default for InboundAuth {
    fn default() -> Self {
        Self {
            public_url: None,
            token_header: Self::DEFAULT_TOKEN_HEADER.to_owned(),
            token_query: Self::DEFAULT_TOKEN_QUERY.to_owned(),
        }
    }
}

/// Where the management API's overview reads what the stages measured
/// ([`crate::metrics::Metric`]): this process's timeline in local mode, CloudWatch when deployed.
#[async_trait]
pub trait MetricsSource: Send + Sync + Debug {
    /// `buckets` steps of `step_minutes` minutes from `from`: each metric's sum per step, and
    /// delivery latency percentiles per step and overall.
    async fn span(
        &self,
        from: DateTime<Utc>,
        step_minutes: i64,
        buckets: usize,
    ) -> Result<crate::metrics::timeline::Span, BackendError>;

    /// Where the figures come from, in a few words, for the overview to say.
    fn origin(&self) -> &'static str;
}

/// Looks up sources by id.
pub trait SourceRegistry: Send + Sync + Debug {
    /// The source, if configured.
    fn get(&self, id: &str) -> Option<Arc<Source>>;

    /// Every source, by id.
    fn all(&self) -> Vec<Arc<Source>>;
}

/// Sources fixed at start-up (from configuration).
#[derive(Debug, Default, Clone)]
pub struct StaticSources {
    sources: std::collections::HashMap<String, Arc<Source>>,
}

impl StaticSources {
    /// A registry of the given sources (a later duplicate id replaces an earlier one).
    pub fn new(sources: impl IntoIterator<Item = Source>) -> Self {
        Self {
            sources: sources
                .into_iter()
                .map(|s| (s.id.as_str().to_owned(), Arc::new(s)))
                .collect(),
        }
    }

    /// How many sources there are.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

impl SourceRegistry for StaticSources {
    fn get(&self, id: &str) -> Option<Arc<Source>> {
        self.sources.get(id).cloned()
    }

    fn all(&self) -> Vec<Arc<Source>> {
        let mut all: Vec<_> = self.sources.values().cloned().collect();
        all.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        all
    }
}
