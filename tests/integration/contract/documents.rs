//! [`DocumentStore`] contract: versioned writes that fail on a stale version, creation that fails
//! when the document exists, expiry, and the sparse index listing below a bound.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use shared::ports::memory::MemoryDocumentStore;
use shared::ports::{DocBody, DocumentStore, DocumentWrite, IndexEntry, IndexPage, PutDocument};
use tests::moto;

use super::for_each_backend;

type Backend = Arc<dyn DocumentStore>;

async fn memory() -> Backend {
    Arc::new(MemoryDocumentStore::new())
}

async fn on_sqlite() -> Backend {
    Arc::new(wagate_local::sqlite::SqliteDocumentStore::new(
        tests::sqlite_database().0,
    ))
}

async fn on_moto() -> Backend {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    Arc::new(aws_adapters::DynamoDocumentStore::new(
        clients.dynamodb,
        table,
    ))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn write(expected: Option<u64>) -> DocumentWrite<'static> {
    DocumentWrite {
        expected,
        now: now(),
        expires_at: None,
        index: None,
    }
}

async fn writes_are_versioned_and_stale_versions_lose(store: Backend) {
    let key = moto::unique("conv");
    assert!(
        store
            .put(&key, &json!({"n": 1}), write(None))
            .await
            .unwrap()
    );
    assert!(
        !store
            .put(&key, &json!({"n": 2}), write(None))
            .await
            .unwrap(),
        "create fails when it exists"
    );
    let v1 = store.get(&key, now()).await.unwrap().unwrap();
    assert_eq!((v1.version, v1.body.clone()), (1, json!({"n": 1})));
    assert!(
        store
            .put(&key, &json!({"n": 2}), write(Some(1)))
            .await
            .unwrap()
    );
    assert!(
        !store
            .put(&key, &json!({"n": 3}), write(Some(1)))
            .await
            .unwrap(),
        "stale version loses"
    );
    let v2 = store.get(&key, now()).await.unwrap().unwrap();
    assert_eq!((v2.version, v2.body), (2, json!({"n": 2})));
    assert_eq!(store.get(&moto::unique("none"), now()).await.unwrap(), None);
}
for_each_backend!(writes_are_versioned_and_stale_versions_lose, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

async fn concurrent_updates_of_one_version_have_one_winner(store: Backend) {
    let key = moto::unique("contact");
    store
        .put(&key, &json!({"v": 0}), write(None))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                store
                    .put(&key, &json!({"v": i}), write(Some(1)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let wins = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
}
for_each_backend!(concurrent_updates_of_one_version_have_one_winner, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

async fn expired_documents_are_absent_and_can_be_created_again(store: Backend) {
    let key = moto::unique("msg");
    let short = DocumentWrite {
        expires_at: Some(now() + Duration::seconds(60)),
        ..write(None)
    };
    assert!(store.put(&key, &json!("old"), short).await.unwrap());
    assert_eq!(
        store.get_eventually(&key, now()).await.unwrap(),
        store.get(&key, now()).await.unwrap(),
        "a settled write reads the same either way"
    );
    let later = now() + Duration::seconds(61);
    assert_eq!(store.get(&key, later).await.unwrap(), None);
    assert_eq!(store.get_eventually(&key, later).await.unwrap(), None);
    let again = DocumentWrite {
        now: later,
        ..write(None)
    };
    assert!(store.put(&key, &json!("new"), again).await.unwrap());
    assert_eq!(store.get(&key, later).await.unwrap().unwrap().version, 1);
    let stale = DocumentWrite {
        now: later + Duration::days(1),
        ..write(Some(1))
    };
    assert!(
        store.put(&key, &json!("newer"), stale).await.unwrap(),
        "no ttl on the new version"
    );
}
for_each_backend!(expired_documents_are_absent_and_can_be_created_again, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

/// `get_json` (the stored text, which callers decode into their own types) answers what `get`
/// answers: the same document, version and expiry, strong and eventual.
async fn text_reads_answer_what_reads_answer(store: Backend) {
    let key = moto::unique("text");
    assert_eq!(store.get_json(&key, now()).await.unwrap(), None);
    assert_eq!(store.get_json_eventually(&key, now()).await.unwrap(), None);
    let body = json!({
        "text": "olá \"quoted\" \\ line\nbreak 👋",
        "n": [0, -7, 18_446_744_073_709_551_615_u64, 0.1, 1e300],
        "nested": {"empty": {}, "list": [], "null": null, "yes": true}
    });
    let short = DocumentWrite {
        expires_at: Some(now() + Duration::seconds(60)),
        ..write(None)
    };
    assert!(store.put(&key, &body, short).await.unwrap());
    let read = |at| {
        let store = store.clone();
        let key = key.clone();
        async move {
            let doc = store.get(&key, at).await.unwrap();
            let text = store.get_json(&key, at).await.unwrap();
            let eventual = store.get_json_eventually(&key, at).await.unwrap();
            assert_eq!(text, eventual, "a settled write reads the same either way");
            let decoded = text.map(|t| {
                let body: serde_json::Value = serde_json::from_slice(&t.json).unwrap();
                (t.version, body)
            });
            assert_eq!(decoded, doc.map(|d| (d.version, d.body)));
            decoded
        }
    };
    assert_eq!(read(now()).await, Some((1, body.clone())));
    assert_eq!(
        read(now() + Duration::seconds(59)).await,
        Some((1, body.clone()))
    );
    assert_eq!(read(now() + Duration::seconds(60)).await, None, "expired");
    let newer = json!({"text": "second"});
    let update = PutDocument {
        key: &key,
        body: (&newer).into(),
        write: write(Some(1)),
    };
    assert!(store.put_all(&[update]).await.unwrap());
    assert_eq!(read(now()).await, Some((2, newer)));
}
for_each_backend!(text_reads_answer_what_reads_answer, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

/// `put_json` (text a serializer wrote from the caller's type) writes what `put` of the same
/// document writes: the same conditions, version, expiry and index entry; and a `put_all` that
/// mixes text and trees is as atomic as one of trees.
async fn text_writes_answer_what_writes_answer(store: Backend) {
    let (key, twin) = (moto::unique("tw"), moto::unique("tw"));
    let partition = moto::unique("twp");
    // Long enough for DynamoDB's deflated attribute, with text that needs escapes.
    let body = json!({
        "text": "olá \"quoted\" \\ line\nbreak 👋 ".repeat(60),
        "n": [0, -7, 18_446_744_073_709_551_615_u64, 0.1, 1e300],
        "nested": {"empty": {}, "list": [], "null": null, "yes": true}
    });
    let text = serde_json::to_string(&body).unwrap();
    let entry = IndexEntry {
        partition: partition.clone(),
        sort: "0001".into(),
    };
    let first = DocumentWrite {
        expires_at: Some(now() + Duration::seconds(60)),
        ..write(None)
    }
    .indexed(&entry);
    assert!(store.put_json(&key, &text, first).await.unwrap());
    assert!(store.put(&twin, &body, first).await.unwrap());
    assert!(
        !store.put_json(&key, &text, first).await.unwrap(),
        "created once"
    );
    let got = store.get(&key, now()).await.unwrap().unwrap();
    assert_eq!(got, store.get(&twin, now()).await.unwrap().unwrap());
    assert_eq!((got.version, &got.body), (1, &body));
    let page = IndexPage {
        partition: &partition,
        after: None,
        before: None,
        descending: false,
        limit: 10,
    };
    let listed = store.list_page(page, now()).await.unwrap();
    let mut keys: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
    keys.sort_unstable();
    let mut want = vec![key.as_str(), twin.as_str()];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert!(listed.iter().all(|l| l.doc == got && l.sort == "0001"));
    assert_eq!(
        store
            .get(&key, now() + Duration::seconds(60))
            .await
            .unwrap(),
        None,
        "expired"
    );

    assert!(
        !store.put_json(&key, "{}", write(Some(2))).await.unwrap(),
        "stale"
    );
    assert!(
        store
            .put_json(&key, "{\"v\":2}", write(Some(1)))
            .await
            .unwrap()
    );
    let tree = json!({"v": "tree"});
    let (a, b) = (moto::unique("tw"), moto::unique("tw"));
    let mixed = |expected_b| {
        [
            PutDocument {
                key: &key,
                body: DocBody::Json("{\"v\":3}"),
                write: write(Some(2)),
            },
            PutDocument {
                key: &a,
                body: (&tree).into(),
                write: write(None),
            },
            PutDocument {
                key: &b,
                body: DocBody::Json("[1,2]"),
                write: write(expected_b),
            },
        ]
    };
    assert!(
        !store.put_all(&mixed(Some(1))).await.unwrap(),
        "b is absent"
    );
    assert_eq!(
        store.get(&key, now()).await.unwrap().unwrap().body,
        json!({"v": 2})
    );
    assert_eq!(store.get(&a, now()).await.unwrap(), None, "nothing written");
    assert!(store.put_all(&mixed(None)).await.unwrap());
    let read = |k: String| {
        let store = store.clone();
        async move {
            let d = store.get(&k, now()).await.unwrap().unwrap();
            (d.version, d.body)
        }
    };
    assert_eq!(read(key.clone()).await, (3, json!({"v": 3})));
    assert_eq!(read(a).await, (1, tree));
    assert_eq!(read(b).await, (1, json!([1, 2])));
}
for_each_backend!(text_writes_answer_what_writes_answer, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

async fn the_index_lists_documents_below_a_bound_in_order(store: Backend) {
    let partition = moto::unique("active");
    for (key, sort) in [
        ("c", "2026-11-20T10:00:00Z"),
        ("a", "2026-11-20T08:00:00Z"),
        ("b", "2026-11-21T09:00:00Z"),
    ] {
        let entry = IndexEntry {
            partition: partition.clone(),
            sort: sort.into(),
        };
        let w = DocumentWrite {
            index: Some(&entry),
            ..write(None)
        };
        store
            .put(&format!("{partition}-{key}"), &json!({"k": key}), w)
            .await
            .unwrap();
    }
    // Written without an index entry: not listed.
    store
        .put(&format!("{partition}-d"), &json!({"k": "d"}), write(None))
        .await
        .unwrap();
    let found = store
        .list_below(&partition, "2026-11-21T00:00:00Z", 10, now())
        .await
        .unwrap();
    let keys: Vec<String> = found.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        vec![format!("{partition}-a"), format!("{partition}-c")]
    );
    let first = store
        .list_below(&partition, "2026-11-21T00:00:00Z", 1, now())
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Rewriting without the entry takes a document out of the index.
    let (key, doc) = &found[0];
    store
        .put(key, &doc.body, write(Some(doc.version)))
        .await
        .unwrap();
    let after = store
        .list_below(&partition, "2026-11-21T00:00:00Z", 10, now())
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
}
for_each_backend!(the_index_lists_documents_below_a_bound_in_order, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

async fn index_pages_go_both_ways_between_exclusive_bounds(store: Backend) {
    let partition = moto::unique("pages");
    for n in 0..7 {
        let entry = IndexEntry {
            partition: partition.clone(),
            sort: format!("s{n}"),
        };
        let w = DocumentWrite {
            index: Some(&entry),
            ..write(None)
        };
        store
            .put(&format!("{partition}-{n}"), &json!({"n": n}), w)
            .await
            .unwrap();
    }
    let sorts = |page: IndexPage<'static>| {
        let store = store.clone();
        let partition = partition.clone();
        async move {
            let page = IndexPage {
                partition: &partition,
                ..page
            };
            store
                .list_page(page, now())
                .await
                .unwrap()
                .into_iter()
                .map(|l| {
                    assert_eq!(l.doc.body["n"].to_string(), &l.sort[1..]);
                    l.sort
                })
                .collect::<Vec<_>>()
        }
    };
    let all = IndexPage {
        partition: "",
        after: None,
        before: None,
        descending: false,
        limit: 3,
    };
    assert_eq!(sorts(all).await, ["s0", "s1", "s2"]);
    // The next page starts after the last sort key of the previous one.
    assert_eq!(
        sorts(IndexPage {
            after: Some("s2"),
            ..all
        })
        .await,
        ["s3", "s4", "s5"]
    );
    assert_eq!(
        sorts(IndexPage {
            after: Some("s5"),
            ..all
        })
        .await,
        ["s6"]
    );
    // Newest first, and both bounds exclusive.
    assert_eq!(
        sorts(IndexPage {
            descending: true,
            ..all
        })
        .await,
        ["s6", "s5", "s4"]
    );
    assert_eq!(
        sorts(IndexPage {
            after: Some("s1"),
            before: Some("s5"),
            limit: 10,
            ..all
        })
        .await,
        ["s2", "s3", "s4"]
    );
    assert_eq!(
        sorts(IndexPage {
            after: Some("s1"),
            before: Some("s5"),
            descending: true,
            limit: 2,
            ..all
        })
        .await,
        ["s4", "s3"]
    );
}
for_each_backend!(index_pages_go_both_ways_between_exclusive_bounds, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

/// A body like a conversation's: many similar records with varied text (it deflates well, as
/// real ones do).
fn large_body(n: usize) -> serde_json::Value {
    let notes: Vec<_> = (0..n)
        .map(|i| json!({"text": format!("note {i}: pedido #{} — entrega às {}h 👍", 1000 + i * 7, i % 24), "author": "agent-ana", "created_at": "2026-11-21T12:00:00Z"}))
        .collect();
    let applied = vec!["a1b2c3d4e5f6"; 32];
    json!({"conversation": {"id": "conv_01JBCQ3ZX0V9K8N7M6P5Q4R305", "notes": notes}, "applied": applied})
}

async fn large_documents_come_back_exactly_from_reads_and_the_index(store: Backend) {
    let partition = moto::unique("large");
    let entry = IndexEntry {
        partition: partition.clone(),
        sort: "s1".into(),
    };
    let key = format!("{partition}-doc");
    let first = large_body(200);
    let w = DocumentWrite {
        index: Some(&entry),
        ..write(None)
    };
    assert!(store.put(&key, &first, w).await.unwrap());
    let got = store.get(&key, now()).await.unwrap().unwrap();
    assert_eq!((got.version, &got.body), (1, &first));
    // A small rewrite (a body that stays plain) after a large one, and back.
    let small = json!({"k": "v"});
    assert!(store.put(&key, &small, write(Some(1))).await.unwrap());
    assert_eq!(store.get(&key, now()).await.unwrap().unwrap().body, small);
    let second = large_body(150);
    let w = DocumentWrite {
        index: Some(&entry),
        ..write(Some(2))
    };
    assert!(store.put(&key, &second, w).await.unwrap());
    let listed = store
        .list_page(
            IndexPage {
                partition: &partition,
                after: None,
                before: None,
                descending: false,
                limit: 10,
            },
            now(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].doc.version, &listed[0].doc.body), (3, &second));
}
for_each_backend!(large_documents_come_back_exactly_from_reads_and_the_index, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

/// On DynamoDB a large body is stored deflated (what the write is billed by), and items written
/// with a plain `body` (by earlier versions) still read.
#[tokio::test]
async fn dynamo_stores_large_bodies_deflated_and_reads_plain_ones() {
    use aws_adapters::aws_sdk_dynamodb::types::AttributeValue;
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    let store = aws_adapters::DynamoDocumentStore::new(clients.dynamodb.clone(), &table);
    let key = moto::unique("deflated");
    let body = large_body(200);
    store.put(&key, &body, write(None)).await.unwrap();
    let item = clients
        .dynamodb
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("doc#{key}")))
        .key("sk", AttributeValue::S("-".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let json_len = body.to_string().len();
    let packed = item["bodyz"].as_b().unwrap().as_ref().len();
    assert!(!item.contains_key("body"));
    assert!(
        packed * 3 < json_len,
        "deflated to {packed} of {json_len} bytes"
    );
    let old = moto::unique("plain");
    clients
        .dynamodb
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(format!("doc#{old}")))
        .item("sk", AttributeValue::S("-".into()))
        .item("version", AttributeValue::N("4".into()))
        .item("body", AttributeValue::S(body.to_string()))
        .send()
        .await
        .unwrap();
    let got = store.get(&old, now()).await.unwrap().unwrap();
    assert_eq!((got.version, got.body), (4, body));
}

async fn a_page_passes_over_gone_documents_and_fills_up(store: Backend) {
    // The index may still list documents that expired (DynamoDB deletes them late): a page
    // reads on past them rather than come back short, which callers take for the end.
    let partition = moto::unique("gone");
    for n in 0..12 {
        let entry = IndexEntry {
            partition: partition.clone(),
            sort: format!("s{n:02}"),
        };
        let w = DocumentWrite {
            index: Some(&entry),
            // The first eight expire a minute from now; the last four live on.
            expires_at: (n < 8).then(|| now() + Duration::minutes(1)),
            ..write(None)
        };
        store
            .put(&format!("{partition}-{n}"), &json!({"n": n}), w)
            .await
            .unwrap();
    }
    let later = now() + Duration::minutes(2);
    let page = IndexPage {
        partition: &partition,
        after: None,
        before: None,
        descending: false,
        limit: 3,
    };
    let listed = store.list_page(page, later).await.unwrap();
    let sorts: Vec<&str> = listed.iter().map(|l| l.sort.as_str()).collect();
    assert_eq!(sorts, ["s08", "s09", "s10"]);
}
for_each_backend!(a_page_passes_over_gone_documents_and_fills_up, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());

async fn put_all_writes_every_document_or_none(store: Backend) {
    let a = moto::unique("all-a");
    let b = moto::unique("all-b");
    let c = moto::unique("all-c");
    let entry = IndexEntry {
        partition: moto::unique("all-index"),
        sort: "s1".into(),
    };
    assert!(store.put(&a, &json!({"n": 1}), write(None)).await.unwrap());
    let (one, two) = (json!({"n": 2}), json!({"m": 1}));
    // Both conditions hold: both are written, the new one indexed and expiring.
    let expiring = DocumentWrite {
        expires_at: Some(now() + Duration::minutes(1)),
        index: Some(&entry),
        ..write(None)
    };
    let both = [
        PutDocument {
            key: &a,
            body: (&one).into(),
            write: write(Some(1)),
        },
        PutDocument {
            key: &b,
            body: (&two).into(),
            write: expiring,
        },
    ];
    assert!(store.put_all(&both).await.unwrap());
    assert_eq!(store.get(&a, now()).await.unwrap().unwrap().version, 2);
    assert_eq!(store.get(&b, now()).await.unwrap().unwrap().body, two);
    let page = IndexPage {
        partition: &entry.partition,
        after: None,
        before: None,
        descending: false,
        limit: 10,
    };
    assert_eq!(store.list_page(page, now()).await.unwrap().len(), 1);
    assert!(
        store
            .get(&b, now() + Duration::minutes(2))
            .await
            .unwrap()
            .is_none(),
        "the expiry of a document written by put_all holds"
    );
    // One stale condition: nothing is written, not even the document whose condition held.
    let (three, four) = (json!({"n": 3}), json!({"c": 1}));
    let stale = [
        PutDocument {
            key: &c,
            body: (&four).into(),
            write: write(None),
        },
        PutDocument {
            key: &a,
            body: (&three).into(),
            write: write(Some(1)),
        },
    ];
    assert!(!store.put_all(&stale).await.unwrap());
    assert!(store.get(&c, now()).await.unwrap().is_none());
    assert_eq!(store.get(&a, now()).await.unwrap().unwrap().body, one);
    // Requests no backend takes: the same key twice, or none.
    let twice = [
        PutDocument {
            key: &c,
            body: (&four).into(),
            write: write(None),
        },
        PutDocument {
            key: &c,
            body: (&four).into(),
            write: write(None),
        },
    ];
    assert!(!store.put_all(&twice).await.unwrap_err().is_retryable());
    assert!(store.put_all(&[]).await.is_err());
}
for_each_backend!(put_all_writes_every_document_or_none, memory: super::memory(), sqlite: super::on_sqlite(), moto: super::on_moto());
