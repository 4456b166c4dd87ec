//! How events travel between stages: queue message bodies, claim-checks for events too large for
//! one message, and packing into SQS-sized batches.
//!
//! Must not: decide routing (stages do); talk to a queue except through the [`Queue`] port.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::InboundEvent;
use crate::ports::{BackendError, BlobStore, OutgoingMessage, Queue, limits};

/// One received queue record, as a batch handler sees it.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The queue's message id (what a partial batch failure names).
    pub message_id: &'a str,
    /// The message body.
    pub body: &'a str,
}

/// Bodies above this go to the blob store and travel as a claim-check. It leaves room under the
/// SQS limit for the message attributes SQS counts against the same 256 KiB.
pub const INLINE_LIMIT: usize = limits::MAX_MESSAGE_BYTES - 8 * 1024;

/// A queue message body: an event inline, or a pointer to it in the blob store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Carried<T> {
    /// The blob key under which the serialized item is stored.
    ClaimCheck {
        /// Blob key.
        claim_check: String,
    },
    /// The item itself.
    Inline(T),
}

/// Why a queue message could not be turned back into an item.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body (or the blob it points to) is not a valid item.
    #[error("malformed queue message: {}", crate::json_error(.0))]
    Malformed(#[from] serde_json::Error),
    /// The claim-check points to a blob that is gone (expired or never written).
    #[error("claim-checked item {0} is missing from the blob store")]
    MissingBlob(String),
    /// The blob store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl DecodeError {
    /// Whether a later retry may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Backend(e) if e.is_retryable())
    }
}

/// The shortest time a claim-checked body is kept: as long as a message pointing at it can live.
/// SQS keeps a message at most 4 days in a work queue (`MessageRetentionPeriod` 345600 in
/// `template.yaml`) and a dead-letter queue keeps the original enqueue time, so at most 14 days
/// (1209600) from it; a redrive from the dead-letter queue starts a new message with its 4 days.
/// 14 + 4 days, plus one for a redrive on the last day: 19 days. A test checks the template.
pub const QUEUED_BLOB_LIFETIME: std::time::Duration = std::time::Duration::from_secs(19 * 86400);

/// When a claim-check written at `now` expires: after `configured` (`RAW_TTL_DAYS`), but never
/// before a message that points at it could still be received or redriven.
pub fn queued_blob_expiry(now: DateTime<Utc>, configured: std::time::Duration) -> DateTime<Utc> {
    let ttl = configured.max(QUEUED_BLOB_LIFETIME);
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(365))
}

/// The message body for `item`, claim-checking it under `blob_key` when it is too large to inline.
pub async fn encode<T: Serialize + Sync>(
    item: &T,
    blob_key: &str,
    blobs: &dyn BlobStore,
    expires_at: DateTime<Utc>,
) -> Result<String, BackendError> {
    let body =
        sqs_safe(serde_json::to_string(item).map_err(|e| BackendError::Rejected(e.to_string()))?);
    if body.len() <= INLINE_LIMIT {
        return Ok(body);
    }
    blobs.put(blob_key, body.as_bytes(), expires_at).await?;
    let check: Carried<()> = Carried::ClaimCheck {
        claim_check: blob_key.to_owned(),
    };
    serde_json::to_string(&check).map_err(|e| BackendError::Rejected(e.to_string()))
}

/// A part of a document larger than this goes to the blob store and the document keeps a
/// claim-check: items stay far below DynamoDB's 400 KB limit, whatever they refer to.
pub const DOC_INLINE_LIMIT: usize = 32 * 1024;

/// `item` as a document part: inline when its JSON is at most [`DOC_INLINE_LIMIT`] bytes,
/// otherwise written under `blob_key` (until `expires_at`) and replaced by a claim-check. The
/// part is JSON text, written into the document as it is (not a `Value` tree parsed from the
/// text only to be written out again).
pub async fn stash<T: Serialize + Sync>(
    item: &T,
    blob_key: &str,
    blobs: &dyn BlobStore,
    expires_at: DateTime<Utc>,
) -> Result<Box<serde_json::value::RawValue>, BackendError> {
    let rejected = |e: serde_json::Error| BackendError::Rejected(e.to_string());
    let text = serde_json::value::to_raw_value(item).map_err(rejected)?;
    if text.get().len() <= DOC_INLINE_LIMIT {
        return Ok(text);
    }
    blobs
        .put(blob_key, text.get().as_bytes(), expires_at)
        .await?;
    serde_json::value::to_raw_value(&Carried::<()>::ClaimCheck {
        claim_check: blob_key.to_owned(),
    })
    .map_err(rejected)
}

/// The item a document part written by [`stash`] holds.
pub async fn unstash<T: for<'de> Deserialize<'de>>(
    part: serde_json::Value,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
) -> Result<T, DecodeError> {
    carried(serde_json::from_value(part)?, blobs, now).await
}

/// The item itself, fetched from the blob store when claim-checked.
async fn carried<T: for<'de> Deserialize<'de>>(
    carried: Carried<T>,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
) -> Result<T, DecodeError> {
    match carried {
        Carried::Inline(item) => Ok(item),
        Carried::ClaimCheck { claim_check } => Ok(serde_json::from_slice(
            &claimed(claim_check, blobs, now).await?,
        )?),
    }
}

/// What the claim check `key` points at; a blob that is gone is [`DecodeError::MissingBlob`].
async fn claimed(
    key: String,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, DecodeError> {
    blobs
        .get(&key, now)
        .await?
        .ok_or(DecodeError::MissingBlob(key))
}

/// Keeps the blob behind a claim-checked message `body` until at least `expires_at` (an inline
/// body needs nothing): for a body sent again as a new message, which lives its own retention.
pub async fn extend_claim_check(
    body: &str,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DecodeError> {
    let Some(key) = claim_check(body) else {
        return Ok(());
    };
    let bytes = claimed(key.clone(), blobs, now).await?;
    blobs.put(&key, &bytes, expires_at).await?;
    Ok(())
}

/// Escapes the characters SQS refuses (U+FFFE, U+FFFF; serde_json already escapes control
/// characters) as JSON `\uXXXX`. They can only occur inside JSON strings, where the escape means
/// the same character, so the document is unchanged for any JSON reader.
pub(crate) fn sqs_safe(body: String) -> String {
    if crate::ports::limits::sqs_allows(&body) {
        return body;
    }
    let mut out = String::with_capacity(body.len() + 16);
    for c in body.chars() {
        if crate::ports::limits::sqs_allows(c.encode_utf8(&mut [0; 4])) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        }
    }
    out
}

/// The item a message body carries, fetching claim-checked items from the blob store.
pub async fn decode<T: for<'de> Deserialize<'de>>(
    body: &str,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
) -> Result<T, DecodeError> {
    decode_with(body, blobs, now, |text| serde_json::from_str(text)).await
}

/// The item a message body carries, as `read` reads it from the item's JSON (the body's own,
/// or the claim-checked blob's): for a type read faster by hand than by its `Deserialize`.
///
/// The body is read as [`Carried`] reads it, without its untagged decoding: that copies the
/// whole body into serde's buffered form first and decodes the item from the copy, on every
/// message of every stage. Here the body is skimmed for a claim check (an object with a
/// `claim_check` string; other fields are skipped unread), and otherwise read once.
pub async fn decode_with<T>(
    body: &str,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
    read: impl FnOnce(&str) -> Result<T, serde_json::Error>,
) -> Result<T, DecodeError> {
    match claim_check(body) {
        Some(key) => {
            let bytes = claimed(key, blobs, now).await?;
            let text = std::str::from_utf8(&bytes).map_err(|e| {
                <serde_json::Error as serde::de::Error>::custom(format_args!(
                    "the claim-checked item is not UTF-8: {e}"
                ))
            })?;
            Ok(read(text)?)
        }
        // Read as text: a `&str` is UTF-8 already, so its strings are not checked again one by
        // one as they would be when read as bytes.
        None => Ok(read(body)?),
    }
}

/// `body` itself when it carries its item inline (is not a claim-check): the item's JSON, for a
/// stage that keeps it as it came instead of writing it again.
pub fn inline(body: &str) -> Option<&str> {
    claim_check(body).is_none().then_some(body)
}

/// The blob key of a claim-checked body, as [`Carried`] would find it.
fn claim_check(body: &str) -> Option<String> {
    /// [`Carried::ClaimCheck`] on its own.
    #[derive(Deserialize)]
    struct ClaimCheck {
        claim_check: String,
    }
    skim::<ClaimCheck>(body.as_bytes(), "claim_check").map(|c| c.claim_check)
}

/// `text` as the small variant `T` of an untagged enum (a claim check, a timer), as serde's
/// untagged decoding would find it, without copying a message that is not one into serde's
/// buffered form: only an object (the untagged variant takes no array, which the struct alone
/// would), its other fields skipped unread; once found, read whole, as the buffered copy
/// refused nesting beyond serde_json's limit (128) that the skim skips. Such variants are a
/// few bytes.
///
/// `key` is the one field `T` requires (ASCII letters and `_`). Most bodies are not the variant
/// and are larger than it by far, so first a byte search: an object key reads as `key` only
/// when written as it is or with a `\u` escape in it (JSON's other escapes stand for no letter
/// or `_`), and a body holding neither cannot be the variant, whatever else it holds. The
/// search costs a fraction of the full parse it saves.
pub(crate) fn skim<T: for<'de> Deserialize<'de>>(text: &[u8], key: &str) -> Option<T> {
    if text.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    if memchr::memmem::find(text, key.as_bytes()).is_none()
        && memchr::memmem::find(text, b"\\u").is_none()
    {
        return None;
    }
    let found = serde_json::from_slice::<T>(text).ok()?;
    serde_json::from_slice::<serde_json::Value>(text).ok()?;
    Some(found)
}

/// Runs `work` on every item of a batch: items that share a key one after another in the
/// batch's order, the rest at the same time (on the caller's task), and returns each item's
/// result in the batch's order. An item without a key runs on its own.
///
/// A stage's records mostly wait on storage, so a batch handled one record after another takes
/// the sum of their round trips; keyed by conversation, the records of different conversations
/// overlap while those of one keep their order (and do not race each other for its state).
pub async fn by_key<T, K, R, Fut>(
    items: Vec<T>,
    key: impl Fn(&T) -> Option<K>,
    work: impl Fn(T) -> Fut,
) -> Vec<R>
where
    K: Eq + std::hash::Hash,
    Fut: std::future::Future<Output = R>,
{
    let count = items.len();
    let mut groups: Vec<Vec<(usize, T)>> = Vec::new();
    let mut group_of: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    for (i, item) in items.into_iter().enumerate() {
        match key(&item) {
            Some(k) => {
                let g = *group_of.entry(k).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                if let Some(group) = groups.get_mut(g) {
                    group.push((i, item));
                }
            }
            None => groups.push(vec![(i, item)]),
        }
    }
    let work = &work;
    let done = futures::future::join_all(groups.into_iter().map(|group| async move {
        let mut out = Vec::with_capacity(group.len());
        for (i, item) in group {
            out.push((i, work(item).await));
        }
        out
    }))
    .await;
    let mut results: Vec<(usize, R)> = Vec::with_capacity(count);
    results.extend(done.into_iter().flatten());
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Receives and decodes every message visible on `queue` now, hiding each for `visibility`
/// (for reading a queue back: tests, the local tools). Stops at the first empty receive.
pub async fn receive_all<T: for<'de> Deserialize<'de>>(
    queue: &dyn Queue,
    blobs: &dyn BlobStore,
    visibility: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    loop {
        let got = queue
            .receive(
                limits::MAX_BATCH_ENTRIES,
                std::time::Duration::ZERO,
                visibility,
            )
            .await?;
        if got.is_empty() {
            return Ok(out);
        }
        for m in got {
            out.push(decode(&m.body, blobs, now).await?);
        }
    }
}

/// Groups bodies into batches that respect the SQS entry and size limits, keeping their order.
/// Entry ids are the bodies' indexes in `bodies`.
pub fn pack(bodies: Vec<String>) -> Vec<Vec<OutgoingMessage>> {
    let mut batches: Vec<Vec<OutgoingMessage>> = Vec::new();
    let mut size = 0;
    for (i, body) in bodies.into_iter().enumerate() {
        let full = batches.last().is_none_or(|b| {
            b.len() >= limits::MAX_BATCH_ENTRIES || size + body.len() > limits::MAX_MESSAGE_BYTES
        });
        if full {
            batches.push(Vec::new());
            size = 0;
        }
        size += body.len();
        if let Some(batch) = batches.last_mut() {
            batch.push(OutgoingMessage {
                id: i.to_string(),
                body,
                delay: None,
            });
        }
    }
    batches
}

/// How many times a batch's retryable failures are sent again before giving up.
const SEND_ATTEMPTS: usize = 3;

type Boxed<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// Batches in flight at once: one request of 15,000 events (1,500 batches) takes about 50 round
/// trips instead of 1,500, well inside ingest's timeout.
pub const SEND_CONCURRENCY: usize = 32;

/// Sends every batch, [`SEND_CONCURRENCY`] at a time, re-sending entries the queue reported as
/// retryable failures. Succeeds only when every message is on the queue; otherwise nothing about
/// the rest is promised (a retry of the whole request may duplicate some, which downstream dedup
/// absorbs). The first error stops sending batches not yet started.
pub async fn send_all(
    queue: &dyn Queue,
    batches: Vec<Vec<OutgoingMessage>>,
) -> Result<usize, BackendError> {
    use futures::{StreamExt, TryStreamExt};
    // Collected, boxed futures: a stream built with a borrowing closure is not provably `Send`
    // to `async_trait` callers.
    let sends: Vec<Boxed<'_, usize>> = batches
        .into_iter()
        .map(|batch| Box::pin(send_one(queue, batch)) as Boxed<'_, usize>)
        .collect();
    futures::stream::iter(sends)
        .buffer_unordered(SEND_CONCURRENCY)
        .try_fold(0, |total, sent| async move { Ok(total + sent) })
        .await
}

/// One batch, with its retryable failures sent again.
async fn send_one(
    queue: &dyn Queue,
    mut batch: Vec<OutgoingMessage>,
) -> Result<usize, BackendError> {
    let mut sent = 0;
    for attempt in 1..=SEND_ATTEMPTS {
        let failed = queue.send_batch(&batch).await?;
        sent += batch.len() - failed.len();
        if failed.is_empty() {
            break;
        }
        if let Some(fatal) = failed.iter().find(|f| !f.retryable) {
            return Err(BackendError::Rejected(format!(
                "queue refused a message: {}",
                fatal.reason
            )));
        }
        if attempt == SEND_ATTEMPTS {
            return Err(BackendError::Rejected(format!(
                "{} messages still failing after {SEND_ATTEMPTS} attempts",
                failed.len()
            )));
        }
        let retry: std::collections::HashSet<&str> = failed.iter().map(|f| f.id.as_str()).collect();
        batch.retain(|m| retry.contains(m.id.as_str()));
    }
    Ok(sent)
}

/// Encodes, packs and sends inbound events (claim-checking large ones under `evt#{id}`).
pub async fn enqueue_events(
    events: &[InboundEvent],
    queue: &dyn Queue,
    blobs: &dyn BlobStore,
    blob_expires_at: DateTime<Utc>,
) -> Result<usize, BackendError> {
    use futures::{StreamExt, TryStreamExt};
    // In order (the packing keeps it); large events' blob writes overlap.
    let encodes: Vec<Boxed<'_, String>> = events
        .iter()
        .map(|event| {
            Box::pin(async move {
                encode(event, &format!("evt#{}", event.id), blobs, blob_expires_at).await
            }) as Boxed<'_, String>
        })
        .collect();
    let bodies: Vec<String> = futures::stream::iter(encodes)
        .buffered(16)
        .try_collect()
        .await?;
    send_all(queue, pack(bodies)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::{MemoryBlobStore, MemoryQueue};

    #[test]
    fn bodies_are_read_as_the_untagged_carried_reads_them() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Item {
            id: u64,
            #[serde(default)]
            note: Option<String>,
        }
        let bodies = [
            r#"{"id":1}"#,
            r#"{"id":1,"note":"x"}"#,
            r#"{"claim_check":"raw/k"}"#,
            r#"{"claim\u005fcheck":"raw/k"}"#,
            r#"{"\u0063laim_check":"raw/k"}"#,
            r#"{"claim_chec\u006b":"raw/k","id":1}"#,
            r#"{"id":1,"note":"claim_check"}"#,
            r#"{"id":1,"note":"\u0041"}"#,
            r#"{"id":1,"claim\"check":"raw/k"}"#,
            r#"{"id":1,"claim_checks":"raw/k"}"#,
            r#"{"id":1,"claim_check":"raw/k"}"#,
            r#"{"claim_check":"raw/k","extra":[1,{"a":null}]}"#,
            r#"["raw/k"]"#,
            r#"[1]"#,
            &format!(
                r#"{{"claim_check":"k","x":{}{}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            ),
            &format!(
                r#"{{"claim_check":"k","x":{}{}}}"#,
                "[".repeat(100),
                "]".repeat(100)
            ),
            r#" {"claim_check":"raw/k"} "#,
            r#"[{"claim_check":"raw/k"}]"#,
            r#"{"claim_check":5}"#,
            r#"{"claim_check":5,"id":2}"#,
            r#"{"claim_check":"a","claim_check":"b"}"#,
            r#"{"id":1,"id":2}"#,
            r#"{"id":-1}"#,
            r#"{"id":1} x"#,
            r#"{"#,
            "",
            "null",
            r#""raw/k""#,
        ];
        fn read<T: for<'de> Deserialize<'de>>(body: &str) -> Option<Carried<T>> {
            match claim_check(body) {
                Some(claim_check) => Some(Carried::ClaimCheck { claim_check }),
                None => serde_json::from_str(body).ok().map(Carried::Inline),
            }
        }
        for body in bodies {
            let want = serde_json::from_str::<Carried<Item>>(body).ok();
            assert_eq!(read::<Item>(body), want, "{body}");
            let want = serde_json::from_str::<Carried<serde_json::Value>>(body).ok();
            assert_eq!(read::<serde_json::Value>(body), want, "{body}");
        }
    }

    #[test]
    fn packing_respects_entry_count_and_total_size_and_keeps_order() {
        let small: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();
        let batches = pack(small);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 3]
        );
        assert_eq!(batches[2][2].body, "m22");

        let big = "x".repeat(100 * 1024);
        let batches = pack(vec![big.clone(), big.clone(), big, "tail".into()]);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2]);
        assert_eq!(batches[1][1].id, "3");
    }

    #[tokio::test]
    async fn items_of_one_key_run_in_order_and_other_keys_at_the_same_time() {
        use std::sync::Mutex;
        // a1 and b1 meet at a barrier of two: they only get past it when they run at the same
        // time (one after the other, the first would wait forever: bounded by the timeout).
        let barrier = tokio::sync::Barrier::new(2);
        let log = Mutex::new(Vec::new());
        let items = vec![("a", 1), ("b", 1), ("a", 2), ("-", 1), ("a", 3), ("-", 2)];
        let run = by_key(
            items,
            |(k, _)| (*k != "-").then_some(*k),
            |(k, n)| {
                let (barrier, log) = (&barrier, &log);
                async move {
                    log.lock().unwrap().push(format!("start {k}{n}"));
                    if n == 1 && k != "-" {
                        barrier.wait().await;
                    }
                    tokio::task::yield_now().await;
                    log.lock().unwrap().push(format!("end {k}{n}"));
                    format!("{k}{n}")
                }
            },
        );
        let results = tokio::time::timeout(std::time::Duration::from_secs(60), run)
            .await
            .expect("items of different keys ran at the same time");
        assert_eq!(results, ["a1", "b1", "a2", "-1", "a3", "-2"]);
        let log = log.into_inner().unwrap();
        let at = |entry: &str| log.iter().position(|l| l == entry).unwrap();
        assert!(at("end a1") < at("start a2"));
        assert!(at("end a2") < at("start a3"));
        // Items without a key do not wait for one another.
        assert!(at("start -2") < at("end -1"));
    }

    #[tokio::test]
    async fn large_items_travel_as_claim_checks_and_come_back_whole() {
        let blobs = MemoryBlobStore::new();
        let now = Utc::now();
        let expires = now + chrono::Duration::days(1);
        let item = vec!["y".repeat(1024); 300];
        let body = encode(&item, "evt#big", &blobs, expires).await.unwrap();
        assert!(body.len() < 100, "{body}");
        let back: Vec<String> = decode(&body, &blobs, now).await.unwrap();
        assert_eq!(back, item);

        let small = vec!["z".to_owned()];
        let body = encode(&small, "evt#small", &blobs, expires).await.unwrap();
        assert_eq!(body, r#"["z"]"#);
        assert_eq!(
            decode::<Vec<String>>(&body, &blobs, now).await.unwrap(),
            small
        );
    }

    #[tokio::test]
    async fn characters_sqs_refuses_are_escaped_and_decode_back_unchanged() {
        let blobs = MemoryBlobStore::new();
        let text = vec!["odd \u{FFFF} and \u{FFFE} and \u{1} 👋".to_owned()];
        let body = encode(&text, "evt#odd", &blobs, Utc::now()).await.unwrap();
        assert!(crate::ports::limits::sqs_allows(&body), "{body:?}");
        assert!(body.contains(r"\uffff"));
        assert_eq!(
            decode::<Vec<String>>(&body, &blobs, Utc::now())
                .await
                .unwrap(),
            text
        );
    }

    #[tokio::test]
    async fn a_claim_check_to_a_missing_blob_is_reported_not_retried() {
        let blobs = MemoryBlobStore::new();
        let err = decode::<Vec<String>>(r#"{"claim_check":"evt#gone"}"#, &blobs, Utc::now())
            .await
            .unwrap_err();
        assert!(matches!(err, DecodeError::MissingBlob(_)));
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn a_claim_checked_item_that_is_not_utf8_is_malformed() {
        let blobs = MemoryBlobStore::new();
        let now = Utc::now();
        // Invalid UTF-8 inside a string the reader would skip unread.
        blobs
            .put("evt#bad", b"[\"a\xff\"]", now + chrono::Duration::days(1))
            .await
            .unwrap();
        let err = decode::<serde::de::IgnoredAny>(r#"{"claim_check":"evt#bad"}"#, &blobs, now)
            .await
            .unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn send_all_puts_every_message_on_the_queue() {
        let queue = MemoryQueue::new("q");
        let bodies: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        assert_eq!(send_all(&queue, pack(bodies)).await.unwrap(), 25);
        assert_eq!(queue.len(), 25);
    }
}
