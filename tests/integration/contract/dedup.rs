//! [`DedupStore`] contract: one conditional claim per key, leases that expire, completion,
//! release, TTL, and exactly one winner under real concurrency.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use shared::ports::memory::MemoryDedupStore;
use shared::ports::{ClaimOutcome, DedupStore};
use tests::moto;

use super::for_each_backend;

type Backend = Arc<dyn DedupStore>;

fn memory() -> Backend {
    Arc::new(MemoryDedupStore::new())
}

async fn on_moto() -> Backend {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    Arc::new(aws_adapters::DynamoDedupStore::new(clients.dynamodb, table))
}

const LEASE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn after(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// A new attempt's name: every call from these tests is another attempt unless it reuses one.
fn holder() -> String {
    ulid::Ulid::new().to_string()
}

fn key() -> String {
    moto::unique("meta:106540352242922:wamid.X")
}

async fn a_key_is_claimed_once_then_in_progress_then_done(store: Backend) {
    let k = key();
    assert_eq!(
        store.claim(&k, &holder(), t0(), LEASE, TTL).await.unwrap(),
        ClaimOutcome::Claimed { retaken: false }
    );
    assert_eq!(
        store
            .claim(&k, &holder(), after(1), LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::InProgress {
            lease_until: after(30)
        }
    );
    store.complete(&k, after(2), TTL).await.unwrap();
    assert_eq!(
        store
            .claim(&k, &holder(), after(3), LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::AlreadyDone
    );
    assert_eq!(
        store
            .claim(&k, &holder(), after(3600), LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::AlreadyDone,
        "done outlives leases"
    );
}
for_each_backend!(a_key_is_claimed_once_then_in_progress_then_done, memory: super::memory(), moto: super::on_moto());

async fn an_expired_lease_can_be_taken_over(store: Backend) {
    let k = key();
    assert_eq!(
        store.claim(&k, &holder(), t0(), LEASE, TTL).await.unwrap(),
        ClaimOutcome::Claimed { retaken: false }
    );
    // The first holder crashed before completing: once its lease ends, a retry wins the key.
    assert_eq!(
        store
            .claim(&k, &holder(), after(31), LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::Claimed { retaken: true }
    );
    assert_eq!(
        store
            .claim(&k, &holder(), after(32), LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::InProgress {
            lease_until: after(61)
        }
    );
}
for_each_backend!(an_expired_lease_can_be_taken_over, memory: super::memory(), moto: super::on_moto());

async fn a_holder_claiming_again_is_recognised_not_kept_waiting(store: Backend) {
    // The first claim applied but its answer was lost; the retry of the same attempt repeats it.
    let k = key();
    let first = holder();
    store.claim(&k, &first, t0(), LEASE, TTL).await.unwrap();
    assert_eq!(
        store.claim(&k, &first, after(1), LEASE, TTL).await.unwrap(),
        ClaimOutcome::Claimed { retaken: true },
        "its own lease: claimed, and told to look for staged results"
    );
    assert_eq!(
        store
            .claim(&k, &holder(), after(2), LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::InProgress {
            lease_until: after(31)
        },
        "the repeated claim renewed the lease; anyone else still waits"
    );
    store.complete(&k, after(3), TTL).await.unwrap();
    assert_eq!(
        store.claim(&k, &first, after(4), LEASE, TTL).await.unwrap(),
        ClaimOutcome::AlreadyDone,
        "done is done, for the holder too"
    );
}
for_each_backend!(a_holder_claiming_again_is_recognised_not_kept_waiting, memory: super::memory(), moto: super::on_moto());

async fn a_released_key_can_be_claimed_at_once(store: Backend) {
    let k = key();
    store.claim(&k, &holder(), t0(), LEASE, TTL).await.unwrap();
    store.release(&k).await.unwrap();
    assert_eq!(
        store
            .claim(&k, &holder(), after(1), LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::Claimed { retaken: false }
    );
    store.complete(&k, after(2), TTL).await.unwrap();
    store.release(&k).await.unwrap();
    assert_eq!(
        store
            .claim(&k, &holder(), after(3), LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::AlreadyDone,
        "release keeps done keys"
    );
}
for_each_backend!(a_released_key_can_be_claimed_at_once, memory: super::memory(), moto: super::on_moto());

async fn keys_are_forgotten_after_their_ttl(store: Backend) {
    let k = key();
    store.claim(&k, &holder(), t0(), LEASE, TTL).await.unwrap();
    store.complete(&k, after(1), TTL).await.unwrap();
    let past_ttl = after(1 + 7 * 24 * 3600 + 1);
    assert_eq!(
        store
            .claim(&k, &holder(), past_ttl, LEASE, TTL)
            .await
            .unwrap(),
        ClaimOutcome::Claimed { retaken: false }
    );
}
for_each_backend!(keys_are_forgotten_after_their_ttl, memory: super::memory(), moto: super::on_moto());

async fn concurrent_claims_of_one_key_have_exactly_one_winner(store: Backend) {
    let k = key();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move { store.claim(&k, &holder(), t0(), LEASE, TTL).await.unwrap() })
        })
        .collect();
    let outcomes: Vec<ClaimOutcome> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners = outcomes
        .iter()
        .filter(|o| matches!(o, ClaimOutcome::Claimed { .. }))
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
}
for_each_backend!(concurrent_claims_of_one_key_have_exactly_one_winner, memory: super::memory(), moto: super::on_moto());

#[tokio::test]
async fn dynamo_claims_carry_the_ttl_attribute_dynamodb_expires_them_by() {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    let store = aws_adapters::DynamoDedupStore::new(clients.dynamodb.clone(), &table);
    let k = key();
    store.claim(&k, &holder(), t0(), LEASE, TTL).await.unwrap();
    let item = clients
        .dynamodb
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_adapters::aws_sdk_dynamodb::types::AttributeValue::S(format!("dedup#{k}")),
        )
        .key(
            "sk",
            aws_adapters::aws_sdk_dynamodb::types::AttributeValue::S("-".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let ttl: i64 = item["ttl"].as_n().unwrap().parse().unwrap();
    assert_eq!(ttl, t0().timestamp() + 7 * 24 * 3600);
    let described = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let spec = described.time_to_live_description.unwrap();
    assert_eq!(spec.attribute_name.as_deref(), Some("ttl"));
}
