//! [`DocumentStore`] and [`BlobStore`] over one DynamoDB table.
//!
//! Table layout (single table, on-demand): partition key `pk` (S), sort key `sk` (S), TTL
//! attribute `ttl` (N, epoch seconds). DynamoDB deletes expired items lazily (moto never does), so
//! every read also checks `ttl` itself.
//!
//! | item | pk | sk | other attributes |
//! |---|---|---|---|
//! | blob chunk | `blob#{key}` | `00000`, `00001`, … | `data` (B); chunk 0 also `chunks` (N) |
//! | document | `doc#{key}` | `-` | `version` (N), `body` (S), optional `gsi1pk`/`gsi1sk` |
//!
//! Index `gsi1` (`gsi1pk`, `gsi1sk`, keys only) is sparse: only documents written with an index
//! entry (conversations by activity, endpoints, delivery records by time) are in it. Listing
//! reads the documents it names; writing a document again under the same index key costs no
//! index write.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use shared::ports::{
    BackendError, BlobStore, DocBody, DocumentStore, DocumentWrite, IndexPage, Listed, PutDocument,
    Versioned, check_put_all,
};

use crate::error::backend_error;

/// Largest chunk of a blob in one item (DynamoDB items hold at most 400 KB with their keys).
const CHUNK_BYTES: usize = 350 * 1024;

/// The partition key of chunk `i` of blob `key` (see [`DynamoBlobStore`]).
fn chunk_partition(key: &str, i: usize) -> String {
    if i == 0 {
        format!("blob#{key}")
    } else {
        format!("blob#{key}#part{i}")
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The table shared by the DynamoDB adapters.
#[derive(Debug, Clone)]
struct Table {
    client: Client,
    name: String,
}

impl Table {
    fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    /// Opens the connection with a cheap call (see [`crate::SqsQueue::warm`]).
    async fn warm(&self) {
        if let Err(e) = self
            .client
            .describe_table()
            .table_name(&self.name)
            .send()
            .await
        {
            tracing::warn!(error = %backend_error("DescribeTable", e), "table warm-up failed");
        }
    }
}

/// Blobs as chunked items on the wagate table, deflated when that makes them smaller (the first
/// chunk then says `deflated`).
///
/// The first chunk is `pk` = `blob#{key}`, `sk` = `00000`, with the chunk count and `spread`;
/// chunk `i` is `pk` = `blob#{key}#part{i}`: each chunk in a partition of its own, so a 1 MB
/// blob (about 1,030 write units at once) does not exceed one partition's 1,000 a second.
/// Blobs written before kept every chunk under `blob#{key}` (`sk` = `0000i`) and still read.
#[derive(Debug, Clone)]
pub struct DynamoBlobStore {
    table: Table,
}

impl DynamoBlobStore {
    /// The store on table `name`.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, name),
        }
    }

    /// Opens the connection ahead of the first request.
    pub async fn warm(&self) {
        self.table.warm().await;
    }
}

#[async_trait]
impl BlobStore for DynamoBlobStore {
    async fn put(
        &self,
        key: &str,
        bytes: &[u8],
        expires_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        // Deflated when that pays (JSON events and requests do; what is compressed already does
        // not): the write is billed by the started KB.
        let packed = (bytes.len() > COMPRESS_ABOVE)
            .then(|| miniz_oxide::deflate::compress_to_vec(bytes, 6))
            .filter(|z| z.len() < bytes.len());
        let stored = packed.as_deref().unwrap_or(bytes);
        let chunks: Vec<&[u8]> = if stored.is_empty() {
            vec![&[][..]]
        } else {
            stored.chunks(CHUNK_BYTES).collect()
        };
        let count = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
        let puts = chunks.into_iter().enumerate().map(|(i, chunk)| {
            let mut item = HashMap::from([
                ("pk".to_owned(), s(chunk_partition(key, i))),
                ("sk".to_owned(), s(format!("{i:05}"))),
                ("data".to_owned(), AttributeValue::B(Blob::new(chunk))),
                ("ttl".to_owned(), n(expires_at.timestamp())),
            ]);
            if i == 0 {
                item.insert("chunks".into(), n(count));
                item.insert("spread".into(), AttributeValue::Bool(true));
                if packed.is_some() {
                    item.insert("deflated".into(), AttributeValue::Bool(true));
                }
            }
            self.table
                .client
                .put_item()
                .table_name(&self.table.name)
                .set_item(Some(item))
                .send()
        });
        for r in futures::future::join_all(puts).await {
            r.map_err(|e| backend_error("PutItem", e))?;
        }
        Ok(())
    }

    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Vec<u8>>, BackendError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("blob#{key}")))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend_error("Query", e))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let Some(first) = items.first() else {
            return Ok(None);
        };
        if number(first, "ttl").is_some_and(|t| t <= now.timestamp()) {
            return Ok(None);
        }
        let count = usize::try_from(number(first, "chunks").unwrap_or(1)).unwrap_or(1);
        if first.get("spread").and_then(|v| v.as_bool().ok()) == Some(&true) {
            // The other chunks, each in its own partition (whatever else an older layout left
            // under the first chunk's key is not this blob's).
            let first = items.swap_remove(0);
            let reads = (1..count).map(|i| {
                self.table
                    .client
                    .get_item()
                    .table_name(&self.table.name)
                    .key("pk", s(chunk_partition(key, i)))
                    .key("sk", s(format!("{i:05}")))
                    .consistent_read(true)
                    .send()
            });
            let mut parts = vec![first];
            for r in futures::future::join_all(reads).await {
                let out = r.map_err(|e| backend_error("GetItem", e))?;
                match out.item {
                    Some(item) => parts.push(item),
                    None => break,
                }
            }
            items = parts;
        }
        let Some(first) = items.first() else {
            return Ok(None);
        };
        if items.len() < count {
            return Err(BackendError::Corrupt(format!(
                "blob {key}: {} of {count} chunks",
                items.len()
            )));
        }
        let mut out = Vec::new();
        for item in items.iter().take(count) {
            let data = item
                .get("data")
                .and_then(|v| v.as_b().ok())
                .ok_or_else(|| BackendError::Corrupt(format!("blob {key}: chunk without data")))?;
            out.extend_from_slice(data.as_ref());
        }
        if first.get("deflated").and_then(|v| v.as_bool().ok()) == Some(&true) {
            out = miniz_oxide::inflate::decompress_to_vec_with_limit(&out, INFLATED_BLOB_LIMIT)
                .map_err(|e| BackendError::Corrupt(format!("blob {key}: {e}")))?;
        }
        Ok(Some(out))
    }
}

/// Versioned JSON documents on the wagate table, listed in the `gsi1` index when they carry an
/// index entry.
///
/// Item: `pk` = `doc#{key}`, `sk` = `-`, `version` (N), the body as `body` (S, JSON) or, when
/// its JSON is over [`COMPRESS_ABOVE`] bytes and deflate makes it smaller, `bodyz` (B, deflated
/// JSON), optional `ttl` (N), optional `gsi1pk` / `gsi1sk` (the index entry; absent means not
/// indexed, a sparse index).
///
/// DynamoDB bills a write by the started KB of the item (and an index write when its index key
/// changes): a conversation or a delivery record of a few KB of JSON deflates to about a third.
/// Items written with `body` read as before.
#[derive(Debug, Clone)]
pub struct DynamoDocumentStore {
    table: Table,
}

/// Documents of one index page read at once.
const LIST_READS: usize = 16;

/// The sparse secondary index on `gsi1pk` / `gsi1sk` (keys only).
pub const INDEX_NAME: &str = "gsi1";

/// Document bodies whose JSON is longer than this are stored deflated (a shorter one stays in
/// its first started KB anyway).
pub const COMPRESS_ABOVE: usize = 700;

/// Largest inflated body accepted back (DynamoDB items are at most 400 KB; deflate does not
/// reach 10:1 on JSON that varies).
const INFLATED_LIMIT: usize = 8 * 1024 * 1024;

/// Largest inflated blob accepted back (claim-checked events and raw requests are a few MB at
/// most).
const INFLATED_BLOB_LIMIT: usize = 64 * 1024 * 1024;

/// The body attribute for `text`: deflated when that pays.
fn body_attribute(text: String) -> (&'static str, AttributeValue) {
    if text.len() > COMPRESS_ABOVE {
        let packed = miniz_oxide::deflate::compress_to_vec(text.as_bytes(), 6);
        if packed.len() < text.len() {
            return ("bodyz", AttributeValue::B(Blob::new(packed)));
        }
    }
    ("body", s(text))
}

impl DynamoDocumentStore {
    /// A conditional `PutItem` of one document (see [`DocumentStore::put`]).
    async fn put_body(
        &self,
        key: &str,
        body: DocBody<'_>,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        let (item, condition, values) = document_item(key, body, &write)?;
        let req = self
            .table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#ttl", "ttl")
            .set_expression_attribute_values(Some(values));
        match req.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend_error("PutItem", e)),
        }
    }

    /// The store on table `name`.
    pub fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            table: Table::new(client, name),
        }
    }

    /// Opens the connection ahead of the first request.
    pub async fn warm(&self) {
        self.table.warm().await;
    }

    async fn get_item(
        &self,
        key: &str,
        consistent: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned>, BackendError> {
        let out = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .key("pk", s(format!("doc#{key}")))
            .key("sk", s("-"))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| backend_error("GetItem", e))?;
        match out.item {
            Some(item) => Self::read(&item, now),
            None => Ok(None),
        }
    }

    fn read(
        item: &HashMap<String, AttributeValue>,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned>, BackendError> {
        if number(item, "ttl").is_some_and(|t| t <= now.timestamp()) {
            return Ok(None);
        }
        let version = number(item, "version")
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| BackendError::Corrupt("document without version".into()))?;
        let body = match (item.get("bodyz"), item.get("body")) {
            (Some(AttributeValue::B(packed)), _) => {
                let text = miniz_oxide::inflate::decompress_to_vec_with_limit(
                    packed.as_ref(),
                    INFLATED_LIMIT,
                )
                .map_err(|e| BackendError::Corrupt(format!("document body: {e}")))?;
                serde_json::from_slice(&text)
            }
            (_, Some(AttributeValue::S(text))) => serde_json::from_str(text),
            _ => return Err(BackendError::Corrupt("document without body".into())),
        }
        .map_err(|e| BackendError::Corrupt(shared::json_error(&e)))?;
        Ok(Some(Versioned { version, body }))
    }
}

/// The item, condition and condition values of a conditional document write.
type ConditionalItem = (
    HashMap<String, AttributeValue>,
    &'static str,
    HashMap<String, AttributeValue>,
);

/// The item, condition and condition values of a conditional document write: created when no
/// live document is there (`expected` none), else replaced when the stored version matches.
fn document_item(
    key: &str,
    body: DocBody<'_>,
    write: &DocumentWrite<'_>,
) -> Result<ConditionalItem, BackendError> {
    let version = write.expected.unwrap_or(0) + 1;
    let mut item = HashMap::from([
        ("pk".to_owned(), s(format!("doc#{key}"))),
        ("sk".to_owned(), s("-")),
        (
            "version".to_owned(),
            n(i64::try_from(version).unwrap_or(i64::MAX)),
        ),
    ]);
    let (name, value) = body_attribute(body.text()?.into_owned());
    item.insert(name.to_owned(), value);
    if let Some(at) = write.expires_at {
        item.insert("ttl".into(), n(at.timestamp()));
    }
    if let Some(index) = write.index {
        item.insert("gsi1pk".into(), s(index.partition.clone()));
        item.insert("gsi1sk".into(), s(index.sort.clone()));
    }
    let mut values = HashMap::from([(":now".to_owned(), n(write.now.timestamp()))]);
    let condition = match write.expected {
        None => "attribute_not_exists(pk) OR #ttl <= :now",
        Some(v) => {
            values.insert(":v".into(), n(i64::try_from(v).unwrap_or(i64::MAX)));
            "version = :v AND (attribute_not_exists(#ttl) OR #ttl > :now)"
        }
    };
    Ok((item, condition, values))
}

#[async_trait]
impl DocumentStore for DynamoDocumentStore {
    async fn get(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Versioned>, BackendError> {
        self.get_item(key, true, now).await
    }

    async fn get_eventually(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned>, BackendError> {
        self.get_item(key, false, now).await
    }

    async fn put(
        &self,
        key: &str,
        body: &serde_json::Value,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.put_body(key, body.into(), write).await
    }

    async fn put_json(
        &self,
        key: &str,
        json: &str,
        write: DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        self.put_body(key, DocBody::Json(json), write).await
    }

    async fn put_all(&self, puts: &[PutDocument<'_>]) -> Result<bool, BackendError> {
        check_put_all(puts)?;
        let mut items = Vec::with_capacity(puts.len());
        for p in puts {
            let (item, condition, values) = document_item(p.key, p.body, &p.write)?;
            let put = Put::builder()
                .table_name(&self.table.name)
                .set_item(Some(item))
                .condition_expression(condition)
                .expression_attribute_names("#ttl", "ttl")
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(|e| BackendError::Rejected(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let req = self
            .table
            .client
            .transact_write_items()
            .set_transact_items(Some(items));
        match req.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) => match e.err() {
                // Cancelled because a condition failed: nothing was written. Cancelled for
                // another reason (a conflicting transaction, throttling) is worth a retry.
                TransactWriteItemsError::TransactionCanceledException(c)
                    if c.cancellation_reasons()
                        .iter()
                        .any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Ok(false)
                }
                _ => Err(backend_error(
                    "TransactWriteItems",
                    SdkError::ServiceError(e),
                )),
            },
            Err(e) => Err(backend_error("TransactWriteItems", e)),
        }
    }

    async fn list_page(
        &self,
        page: IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Listed>, BackendError> {
        // DynamoDB has no two-sided exclusive condition: BETWEEN is inclusive, so ask for two
        // more and drop the bounds themselves.
        let (condition, extra) = match (page.after, page.before) {
            (Some(_), Some(_)) => ("gsi1pk = :p AND gsi1sk BETWEEN :a AND :b", 2),
            (Some(_), None) => ("gsi1pk = :p AND gsi1sk > :a", 0),
            (None, Some(_)) => ("gsi1pk = :p AND gsi1sk < :b", 0),
            (None, None) => ("gsi1pk = :p", 0),
        };
        // One Query answers at most 1 MB, and listed documents may be gone (expired or deleted
        // while the index lags): query on from `LastEvaluatedKey` until the page is full or the
        // partition ends, so no caller takes a short answer for the end of the list.
        let mut found: Vec<Listed> = Vec::new();
        let mut start = None;
        loop {
            let wanted = page.limit.saturating_sub(found.len()).max(1);
            let mut query = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .index_name(INDEX_NAME)
                .key_condition_expression(condition)
                .expression_attribute_values(":p", s(page.partition))
                .scan_index_forward(!page.descending)
                .limit(i32::try_from(wanted + extra).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take());
            if let Some(a) = page.after {
                query = query.expression_attribute_values(":a", s(a));
            }
            if let Some(b) = page.before {
                query = query.expression_attribute_values(":b", s(b));
            }
            let out = query.send().await.map_err(|e| backend_error("Query", e))?;
            // The index holds keys only (a document rewritten under the same index key costs
            // no index write), so each listed document is read: concurrently, in the index's
            // order, and eventually consistent like the index itself.
            let mut listed = Vec::new();
            for item in out.items.unwrap_or_default() {
                let key = item
                    .get("pk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("doc#"))
                    .map(str::to_owned);
                let sort = item
                    .get("gsi1sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                let outside = page.after.is_some_and(|a| sort.as_str() <= a)
                    || page.before.is_some_and(|b| sort.as_str() >= b);
                if let (Some(key), false) = (key, outside) {
                    listed.push((key, sort));
                }
            }
            listed.truncate(page.limit.saturating_sub(found.len()));
            let reads = listed.into_iter().map(|(key, sort)| async move {
                let doc = self.get_item(&key, false, now).await?;
                Ok::<_, BackendError>(doc.map(|doc| Listed { key, sort, doc }))
            });
            let docs: Vec<Option<Listed>> = futures::stream::iter(reads)
                .buffered(LIST_READS)
                .try_collect()
                .await?;
            found.extend(docs.into_iter().flatten());
            start = out.last_evaluated_key;
            if found.len() >= page.limit || start.is_none() {
                break;
            }
        }
        Ok(found)
    }
}
