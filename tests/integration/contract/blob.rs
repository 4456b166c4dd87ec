//! [`BlobStore`] contract: round trips byte for byte (large blobs included), overwrites, expiry.

use std::sync::Arc;

use chrono::{Duration, Utc};
use shared::ports::BlobStore;
use shared::ports::memory::MemoryBlobStore;
use tests::moto;

use super::for_each_backend;

type Backend = Arc<dyn BlobStore>;

async fn memory() -> Backend {
    Arc::new(MemoryBlobStore::new())
}

async fn on_sqlite() -> Backend {
    Arc::new(wagate_local::sqlite::SqliteBlobStore::new(
        tests::sqlite_database().0,
    ))
}

async fn on_moto() -> Backend {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    Arc::new(aws_adapters::DynamoBlobStore::new(clients.dynamodb, table))
}

/// `n` bytes that do not deflate (so they stay chunked on DynamoDB).
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

async fn blobs_round_trip_byte_for_byte(store: Backend) {
    let now = Utc::now();
    let later = now + Duration::days(7);
    let small: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..1_100_000u32).map(|i| (i % 251) as u8).collect();
    // Does not deflate: stays over the chunk size.
    let noise = noise(900_000);
    store.put("req#small", &small, later).await.unwrap();
    store.put("req#large", &large, later).await.unwrap();
    store.put("req#noise", &noise, later).await.unwrap();
    assert_eq!(store.get("req#noise", now).await.unwrap(), Some(noise));
    store.put("req#empty", b"", later).await.unwrap();
    assert_eq!(store.get("req#small", now).await.unwrap(), Some(small));
    assert_eq!(
        store.get("req#large", now).await.unwrap(),
        Some(large),
        "chunked and reassembled"
    );
    assert_eq!(store.get("req#empty", now).await.unwrap(), Some(Vec::new()));
    assert_eq!(store.get("req#missing", now).await.unwrap(), None);
}
for_each_backend!(blobs_round_trip_byte_for_byte, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

async fn a_smaller_overwrite_replaces_a_larger_blob(store: Backend) {
    let now = Utc::now();
    let later = now + Duration::days(1);
    store.put("evt#x", &noise(800_000), later).await.unwrap();
    store.put("evt#x", b"short", later).await.unwrap();
    assert_eq!(
        store.get("evt#x", now).await.unwrap(),
        Some(b"short".to_vec())
    );
}
for_each_backend!(a_smaller_overwrite_replaces_a_larger_blob, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

async fn expired_blobs_are_gone(store: Backend) {
    let now = Utc::now();
    store
        .put("req#old", b"bytes", now + Duration::seconds(10))
        .await
        .unwrap();
    assert!(store.get("req#old", now).await.unwrap().is_some());
    assert_eq!(
        store
            .get("req#old", now + Duration::seconds(11))
            .await
            .unwrap(),
        None
    );
}
for_each_backend!(expired_blobs_are_gone, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

/// DynamoDB only: a large blob's chunks each sit in a partition of their own (one partition
/// takes 1,000 write units a second; a 1 MB blob is about 1,030 at once), and a blob chunked
/// into one partition by the version before still reads back.
#[tokio::test]
async fn dynamo_spreads_a_large_blobs_chunks_over_partitions_and_reads_the_old_layout() {
    use aws_adapters::aws_sdk_dynamodb::primitives::Blob;
    use aws_adapters::aws_sdk_dynamodb::types::AttributeValue;
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    let store = aws_adapters::DynamoBlobStore::new(clients.dynamodb.clone(), table.clone());
    let now = Utc::now();
    let later = now + Duration::days(7);
    let noise = noise(1_000_000);
    store.put("req#spread", &noise, later).await.unwrap();
    let in_first = clients
        .dynamodb
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("blob#req#spread".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(in_first.count(), 1, "one chunk per partition");
    assert_eq!(
        store.get("req#spread", now).await.unwrap(),
        Some(noise.clone())
    );

    // The old layout: three chunks under one key, sort keys 00000..00002.
    let chunks: Vec<&[u8]> = noise.chunks(350 * 1024).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut put = clients
            .dynamodb
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S("blob#req#old".into()))
            .item("sk", AttributeValue::S(format!("{i:05}")))
            .item("data", AttributeValue::B(Blob::new(*chunk)))
            .item("ttl", AttributeValue::N(later.timestamp().to_string()));
        if i == 0 {
            put = put.item("chunks", AttributeValue::N(chunks.len().to_string()));
        }
        put.send().await.unwrap();
    }
    assert_eq!(
        store.get("req#old", now).await.unwrap(),
        Some(noise.clone())
    );
    // Written again now, smaller: the old chunks left under the key are not read as its own.
    store.put("req#old", b"short", later).await.unwrap();
    assert_eq!(
        store.get("req#old", now).await.unwrap(),
        Some(b"short".to_vec())
    );
    store.put("req#old", &noise, later).await.unwrap();
    assert_eq!(store.get("req#old", now).await.unwrap(), Some(noise));
}
