//! The durable SQLite backend across a restart of its process (the database closed and opened
//! again), and the eviction of expired items in both embedded backends.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore};
use shared::ports::{
    BlobStore, DocumentStore, DocumentWrite, IndexEntry, IndexPage, OutgoingMessage, Queue,
};
use wagate_local::sqlite::{
    Database, Evicted, SqliteBlobStore, SqliteDeadLetter, SqliteDocumentStore, SqliteQueue,
};

fn msg(id: &str, body: &str, delay: Option<Duration>) -> OutgoingMessage {
    OutgoingMessage {
        id: id.into(),
        body: body.into(),
        delay,
    }
}

fn queues(db: &Arc<Database>) -> (SqliteQueue, Arc<SqliteQueue>) {
    let dlq = Arc::new(SqliteQueue::new(db.clone(), "work-dlq"));
    let queue = SqliteQueue::with_dead_letter(
        db.clone(),
        "work",
        SqliteDeadLetter {
            queue: dlq.clone(),
            max_receives: 3,
        },
    );
    (queue, dlq)
}

#[tokio::test]
async fn documents_blobs_and_queued_messages_survive_a_restart() {
    let (db, dir) = tests::sqlite_database();
    let now = Utc::now();
    let docs = SqliteDocumentStore::new(db.clone());
    let entry = IndexEntry {
        partition: "endpoints".into(),
        sort: "ep_1".into(),
    };
    assert!(
        docs.put(
            "endpoint#ep_1",
            &json!({"url": "https://example.com/hook"}),
            DocumentWrite::new(None, now).indexed(&entry),
        )
        .await
        .unwrap()
    );
    SqliteBlobStore::new(db.clone())
        .put("req#1", b"raw bytes", now + chrono::Duration::days(1))
        .await
        .unwrap();
    let (queue, _) = queues(&db);
    queue
        .send_batch(&[
            msg("a", "leased", None),
            msg("b", "retry later", None),
            msg("c", "delayed", Some(Duration::from_secs(600))),
            msg("d", "untouched", None),
        ])
        .await
        .unwrap();
    let got = queue
        .receive(2, Duration::ZERO, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["leased", "retry later"]
    );
    // The consumer of "retry later" put it back for ten minutes: that choice outlives it.
    queue
        .change_visibility(&got[1].receipt, Duration::from_secs(600))
        .await
        .unwrap();
    drop((queue, docs, db));

    let db = Database::open_dir(&dir).unwrap();
    let docs = SqliteDocumentStore::new(db.clone());
    let stored = docs
        .get("endpoint#ep_1", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.version, 1);
    assert_eq!(stored.body["url"], "https://example.com/hook");
    let listed = docs
        .list_page(
            IndexPage {
                partition: "endpoints",
                after: None,
                before: None,
                descending: false,
                limit: 10,
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        SqliteBlobStore::new(db.clone())
            .get("req#1", Utc::now())
            .await
            .unwrap()
            .as_deref(),
        Some(&b"raw bytes"[..])
    );
    let (queue, _) = queues(&db);
    assert_eq!(queue.depth().await.unwrap(), 4);
    // The old process's receipt names nothing now.
    assert!(queue.delete(&got[0].receipt).await.is_err());
    // What the dead process had leased is visible at once, with its receive counted; what it
    // had put back or what was delayed is not.
    let again = queue
        .receive(10, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap();
    let mut bodies: Vec<(&str, u32)> = again
        .iter()
        .map(|m| (m.body.as_str(), m.receive_count))
        .collect();
    bodies.sort_unstable();
    assert_eq!(bodies, [("leased", 2), ("untouched", 1)]);
    let leased = again.iter().find(|m| m.body == "leased").unwrap();
    assert_eq!(leased.message_id, got[0].message_id);
    for m in &again {
        queue.delete(&m.receipt).await.unwrap();
    }
    assert_eq!(queue.depth().await.unwrap(), 2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_second_process_cannot_open_a_data_directory_in_use() {
    let (db, dir) = tests::sqlite_database();
    let err = Database::open_dir(&dir).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(db);
    Database::open_dir(&dir).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_evicts_expired_documents_and_blobs_and_keeps_the_rest() {
    let (db, dir) = tests::sqlite_database();
    let now = Utc::now();
    let docs = SqliteDocumentStore::new(db.clone());
    let blobs = SqliteBlobStore::new(db.clone());
    for n in 0..50 {
        let expires = now + chrono::Duration::seconds(if n < 30 { 10 } else { 3600 });
        let write = DocumentWrite::new(None, now).expiring(expires);
        assert!(
            docs.put(&format!("d{n}"), &json!({"n": n}), write)
                .await
                .unwrap()
        );
        blobs
            .put(&format!("b{n}"), &[7; 4096], expires)
            .await
            .unwrap();
    }
    docs.put("forever", &json!({}), DocumentWrite::new(None, now))
        .await
        .unwrap();
    let later = now + chrono::Duration::seconds(60);
    assert_eq!(
        db.evict_expired(later, 20).await.unwrap(),
        Evicted {
            documents: 20,
            blobs: 20
        }
    );
    assert_eq!(
        db.evict_expired(later, 1000).await.unwrap(),
        Evicted {
            documents: 10,
            blobs: 10
        }
    );
    assert_eq!(
        db.evict_expired(later, 1000).await.unwrap(),
        Evicted::default()
    );
    assert!(docs.get("d40", later).await.unwrap().is_some());
    assert!(docs.get("forever", later).await.unwrap().is_some());
    assert!(blobs.get("b40", later).await.unwrap().is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn memory_stores_evict_expired_items_and_keep_the_rest() {
    let now = Utc::now();
    let docs = MemoryDocumentStore::new();
    let blobs = MemoryBlobStore::new();
    for n in 0..10 {
        let expires = now + chrono::Duration::seconds(if n < 4 { 10 } else { 3600 });
        docs.put(
            &format!("d{n}"),
            &json!({"n": n}),
            DocumentWrite::new(None, now).expiring(expires),
        )
        .await
        .unwrap();
        blobs.put(&format!("b{n}"), b"x", expires).await.unwrap();
    }
    let later = now + chrono::Duration::seconds(60);
    assert_eq!(docs.evict_expired(later), 4);
    assert_eq!(blobs.evict_expired(later), 4);
    assert_eq!(docs.len(), 6);
    assert_eq!(blobs.len(), 6);
    assert!(docs.get("d5", later).await.unwrap().is_some());
}

/// `wagate serve` on the durable backend, as a service runs it.
struct ServeProcess {
    child: tokio::process::Child,
    base: String,
}

impl ServeProcess {
    async fn start(config: &std::path::Path, data_dir: &std::path::Path, port: u16) -> Self {
        let child = tokio::process::Command::new(tests::wagate_binary())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--port", &port.to_string()])
            .args([
                "--no-receiver",
                "--no-fake-provider",
                "--no-media",
                "--quiet",
            ])
            .args(["--sweep-every", "0", "--retry-schedule", "1,1,1,1,1,1"])
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = aws_adapters::http::client();
        let healthy = tests::wait::within_async(Duration::from_secs(60), || async {
            client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(healthy, "wagate serve did not come up at {base}");
        Self { child, base }
    }

    /// SIGKILL: no draining, no shutdown of any kind.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_with_sigkill_keeps_endpoints_conversations_batches_and_deliveries() {
    use tests::receiver::{Answer, Receiver};
    let deadline = tests::wait::Patience::embedded().deadline(400);
    // The first deliveries fail: they wait for their retry when the gateway is killed.
    let receiver = Receiver::start(vec![Answer::status(503); 2]).await;
    let dir = std::env::temp_dir().join(tests::moto::unique("wagate-kill"));
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(wagate_local::config::SAMPLE).unwrap();
    config["endpoints"][0]["url"] = json!(receiver.url("/hook"));
    config["settings"]["BUFFER_WINDOW_SECONDS"] = json!("2");
    let config_path = dir.join("wagate.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let local = wagate_local::config::LocalConfig::load(&config_path).unwrap();
    let source = local.source("meta-demo").unwrap().clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = aws_adapters::http::client();
    let key = ("X-API-Key", "demo-admin-key-local-only");

    let gateway = ServeProcess::start(&config_path, &data_dir, port).await;
    // An endpoint made through the API, which the configuration does not know.
    let created = client
        .post(format!("{}/v1/endpoints", gateway.base))
        .header(key.0, key.1)
        .header("content-type", "application/json")
        .body(json!({"url": "https://127.0.0.1:9/never", "event_types": ["whatsapp.call.*"], "description": "made before the kill"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let created: serde_json::Value =
        serde_json::from_slice(&created.bytes().await.unwrap()).unwrap();
    let wamids: Vec<String> = (0..4)
        .map(|n| format!("wamid.KILL{n}{}", ulid::Ulid::new()))
        .collect();
    for (n, wamid) in wamids.iter().enumerate() {
        let body = wagate_local::sample::meta_text(
            "15550004242",
            "Dana",
            wamid,
            &format!("message {n} before the kill"),
            Utc::now(),
        )
        .to_string();
        let mut req = client
            .post(format!("{}/webhooks/meta-demo", gateway.base))
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in wagate_local::sample::signature_headers(&source, "", body.as_bytes()) {
            req = req.header(name.as_str(), value);
        }
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
    // Killed while the burst waits in its batch window or its first deliveries fail.
    gateway.kill().await;

    let gateway = ServeProcess::start(&config_path, &data_dir, port).await;
    let delivered = |wamid: &str| {
        receiver
            .received()
            .iter()
            .any(|r| r.path == "/hook" && String::from_utf8_lossy(&r.body).contains(wamid))
    };
    let all = tests::wait::within(deadline, || wamids.iter().all(|w| delivered(w))).await;
    assert!(
        all,
        "delivered after the restart: {:?}",
        wamids.iter().map(|w| delivered(w)).collect::<Vec<_>>()
    );
    let endpoint = client
        .get(format!(
            "{}/v1/endpoints/{}",
            gateway.base,
            created["id"].as_str().unwrap()
        ))
        .header(key.0, key.1)
        .send()
        .await
        .unwrap();
    assert_eq!(endpoint.status(), 200);
    let endpoint: serde_json::Value =
        serde_json::from_slice(&endpoint.bytes().await.unwrap()).unwrap();
    assert_eq!(endpoint["description"], "made before the kill");
    let conversations = client
        .get(format!(
            "{}/v1/conversations?phone=15550004242",
            gateway.base
        ))
        .header(key.0, key.1)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let conversations: serde_json::Value = serde_json::from_slice(&conversations).unwrap();
    assert_eq!(
        conversations["data"].as_array().map(Vec::len),
        Some(1),
        "{conversations}"
    );
    gateway.kill().await;
    std::fs::remove_dir_all(dir).unwrap();
}
