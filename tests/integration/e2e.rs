//! End to end: the whole pipeline as `wagate` runs it (HTTP front, Lambda-like pollers over
//! the queues, track, buffer, fan-out, deliver, sweep), on the embedded backend and on moto over
//! the wire, with real HTTP receivers on 127.0.0.1. Provider webhooks in, exact signed
//! deliveries out.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use shared::delivery::redrive::{Selection, redrive};
use shared::signature::{EndpointSecret, verify_standard_webhook, webhook_signature};
use tests::moto;
use tests::receiver::{Answer, Received, Receiver};
use tests::wait::{self, Patience};
use tokio::net::TcpListener;
use wagate_local::backend::{AwsBackend, Stores};
use wagate_local::config::{EndpointSpec, LocalConfig};
use wagate_local::gateway::{Gateway, Options};
use wagate_local::sample::{meta_status, meta_text, request_headers, waha_message, wamid};

const SECRET: &str = "whsec_ZTJlLWVuZHBvaW50LXNlY3JldC0wMTIzNDU2Nzg5";

pub(crate) fn endpoint(id: &str, url: &str) -> EndpointSpec {
    EndpointSpec {
        id: id.into(),
        url: url.into(),
        secret: SECRET.into(),
        description: None,
        event_types: vec![],
        batching: true,
        headers: BTreeMap::from([("X-API-Key".to_owned(), "e2e-key".to_owned())]),
    }
}

/// A gateway on `stores`. On the embedded backend visibility and lease are short, so work a
/// crash interrupted comes back within seconds; on moto (shared with every other suite, and
/// slow under their load) they stay the template's, so slow work is not handed out twice.
pub(crate) async fn start(stores: Stores, endpoints: Vec<EndpointSpec>) -> Gateway {
    let mut config = LocalConfig::sample().unwrap();
    config.endpoints = endpoints;
    config.settings = BTreeMap::from([
        ("BUFFER_WINDOW_SECONDS".to_owned(), "1".to_owned()),
        ("MAX_WAIT_SECONDS".to_owned(), "10".to_owned()),
        ("DELIVERY_TIMEOUT_SECONDS".to_owned(), "5".to_owned()),
        ("MAX_ATTEMPTS".to_owned(), "4".to_owned()),
    ]);
    let embedded = stores.is_embedded();
    if embedded {
        config
            .settings
            .insert("LEASE_SECONDS".to_owned(), "5".to_owned());
    }
    let mut options = Options::new(config);
    options.sweep_every = None;
    options.batching_window = Duration::from_millis(200);
    options.retry_schedule = Some(vec![Duration::from_secs(1)]);
    if embedded {
        options.visibility = Some(Duration::from_secs(10));
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Gateway::start(stores, listener, options).await.unwrap()
}

/// The table and queues exactly as `template.yaml` declares them (keys, index, TTL,
/// visibility, redrive policies), created by `scripts/provision-from-template.py` on a moto of
/// the test's own and opened as `wagate serve --backend aws` opens a deployed stack's; with
/// the server (keep it alive) and deadlines from its measured speed.
pub(crate) async fn moto_stores() -> (Stores, moto::Server, Patience) {
    let server = moto::Server::start();
    let patience = Patience::moto(&server.clients().await).await;
    let prefix = moto::from_template_at(server.url(), "e2e");
    let stores = Stores::aws(&AwsBackend {
        endpoint_url: Some(server.url().to_owned()),
        region: "us-east-1".into(),
        table: prefix.clone(),
        queue_prefix: prefix,
        create: false,
    })
    .await
    .unwrap();
    (stores, server, patience)
}

/// Posts `body` signed for `source` to the gateway; returns the status and body.
pub(crate) async fn post(gateway: &Gateway, source: &str, body: &str) -> (u16, String) {
    let config = LocalConfig::sample().unwrap();
    let url = format!("http://{}/webhooks/{source}", gateway.addr());
    let mut req = aws_adapters::http::client()
        .post(&url)
        .body(body.to_owned());
    for (name, value) in request_headers(config.source(source).unwrap(), &url, body.as_bytes()) {
        req = req.header(name, value);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Backend calls one webhook costs end to end (ingest, track, buffer, fan-out, deliver and
/// their queues), with room for retries: what the deadlines of these tests are derived from.
pub(crate) const CALLS_PER_WEBHOOK: u32 = 40;

/// Waits until every queue of the gateway is empty (visible, in flight and delayed), twice in
/// a row: after that nothing more can be delivered. What a test that checks that something did
/// not arrive waits for, instead of a fixed sleep.
pub(crate) async fn drained(gateway: &Gateway, deadline: Duration) {
    let started = std::time::Instant::now();
    let mut empty_in_a_row = 0;
    while empty_in_a_row < 2 {
        let pending = gateway.stores().pending().await;
        empty_in_a_row = if pending.as_ref().is_ok_and(|n| *n == 0) {
            empty_in_a_row + 1
        } else {
            0
        };
        assert!(
            started.elapsed() < deadline,
            "queues not drained after {deadline:?}: {pending:?} pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Delivered item counts by type.
pub(crate) fn summary(list: &[(String, Value)]) -> BTreeMap<String, usize> {
    let mut types = BTreeMap::new();
    for (t, _) in list {
        *types.entry(t.clone()).or_default() += 1;
    }
    types
}

/// A delivery, verified with both signatures, and its envelope.
fn verified(r: &Received) -> Value {
    let secret = EndpointSecret::parse(SECRET).unwrap();
    assert_eq!(
        r.header("x-webhook-signature"),
        Some(webhook_signature(&secret, &r.body).as_str())
    );
    let ts = r.header("webhook-timestamp").unwrap();
    verify_standard_webhook(
        &secret,
        r.header("webhook-id").unwrap(),
        ts,
        r.header("webhook-signature").unwrap(),
        &r.body,
        ts.parse().unwrap(),
        0,
    )
    .unwrap();
    assert_eq!(r.header("x-api-key"), Some("e2e-key"));
    assert_eq!(
        r.header("x-idempotency-key"),
        r.header("webhook-id"),
        "one id for both conventions"
    );
    let envelope: Value = serde_json::from_slice(&r.body).unwrap();
    let batch = envelope["batch"].as_bool().unwrap();
    assert_eq!(
        r.header("x-webhook-batch"),
        Some(if batch { "true" } else { "false" })
    );
    envelope
}

fn items(envelope: &Value) -> Vec<Value> {
    match &envelope["data"] {
        Value::Array(a) => a.clone(),
        one => vec![one.clone()],
    }
}

/// Every (type, item) delivered, in arrival order, once per idempotency key (delivery is at
/// least once; a receiver deduplicates by the key, and so do these tests).
pub(crate) fn delivered(receiver: &Receiver) -> Vec<(String, Value)> {
    receiver
        .distinct()
        .iter()
        .map(verified)
        .flat_map(|e| {
            let t = e["type"].as_str().unwrap().to_owned();
            items(&e).into_iter().map(move |i| (t.clone(), i))
        })
        .collect()
}

pub(crate) fn count(list: &[(String, Value)], event_type: &str) -> usize {
    list.iter().filter(|(t, _)| t == event_type).count()
}

async fn full_pipeline(stores: Stores, patience: Patience) {
    let deadline = patience.deadline(12 * CALLS_PER_WEBHOOK);
    let receiver = Receiver::start(vec![]).await;
    let gateway = start(stores, vec![endpoint("ep_e2e", &receiver.url("/hook"))]).await;
    let now = Utc::now();
    let alice = "15550001111";
    let bob = "15550002222";

    // Alice (Meta) writes three messages in a burst; the first webhook arrives twice.
    let alice_ids: Vec<String> = (0..3).map(|_| wamid()).collect();
    let alice_bodies: Vec<String> = alice_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let at = now + chrono::Duration::seconds(i64::try_from(i).unwrap());
            meta_text(alice, "Alice Example", id, &format!("message {i}"), at).to_string()
        })
        .collect();
    for body in alice_bodies.iter().chain(std::iter::once(&alice_bodies[0])) {
        let (status, text) = post(&gateway, "meta-demo", body).await;
        assert_eq!((status, text.as_str()), (200, r#"{"received":1}"#));
    }
    // Bob (WAHA) writes twice.
    let bob_keys = ["3EB0B0B1", "3EB0B0B2"];
    for (i, key) in bob_keys.iter().enumerate() {
        let body = waha_message(bob, "Bob Example", key, &format!("hello {i}"), now).to_string();
        assert_eq!(post(&gateway, "waha-demo", &body).await.0, 200);
    }
    // Statuses of one outbound message to Alice arrive out of order: `read` first, and once it
    // has gone through, the stale `delivered` and `sent`: those must be dropped.
    let outbound = wamid();
    let read = meta_status(alice, &outbound, "read", now).to_string();
    assert_eq!(post(&gateway, "meta-demo", &read).await.0, 200);
    wait::until("the read status", deadline, || {
        count(&delivered(&receiver), "whatsapp.message.read") >= 1
    })
    .await;
    for status in ["delivered", "sent"] {
        let body = meta_status(alice, &outbound, status, now).to_string();
        assert_eq!(post(&gateway, "meta-demo", &body).await.0, 200);
    }
    // A webhook with a bad signature is refused and delivers nothing.
    let forged = aws_adapters::http::client()
        .post(format!("http://{}/webhooks/meta-demo", gateway.addr()))
        .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        .body(alice_bodies[1].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);

    let complete = wait::within(deadline, || {
        let d = delivered(&receiver);
        count(&d, "whatsapp.message.received") >= 5
            && count(&d, "whatsapp.conversation.created") >= 2
            && count(&d, "whatsapp.contact.created") >= 2
            && count(&d, "whatsapp.message.read") >= 1
    })
    .await;
    assert!(
        complete,
        "timed out: delivered {:?}; stats {}; created {:#?}",
        summary(&delivered(&receiver)),
        gateway.stats().line(),
        delivered(&receiver)
            .iter()
            .filter(|(t, _)| t == "whatsapp.conversation.created")
            .collect::<Vec<_>>()
    );
    // Anything that should not come (a duplicate, a stale status) would be in a queue until
    // then.
    drained(&gateway, deadline).await;
    let got = delivered(&receiver);
    let envelopes: Vec<Value> = receiver.distinct().iter().map(verified).collect();

    // Exactly once each, no stale status, nothing else.
    assert_eq!(
        summary(&got),
        BTreeMap::from([
            ("whatsapp.contact.created".to_owned(), 2),
            ("whatsapp.conversation.created".to_owned(), 2),
            ("whatsapp.message.read".to_owned(), 1),
            ("whatsapp.message.received".to_owned(), 5),
        ]),
    );
    let received_ids: Vec<&str> = got
        .iter()
        .filter(|(t, _)| t == "whatsapp.message.received")
        .map(|(_, i)| i["message"]["id"].as_str().unwrap())
        .collect();
    for id in &alice_ids {
        assert_eq!(received_ids.iter().filter(|r| *r == id).count(), 1, "{id}");
    }
    for key in bob_keys {
        let id = format!("false_{bob}@c.us_{key}");
        assert_eq!(received_ids.iter().filter(|r| **r == id).count(), 1, "{id}");
    }
    let read = got
        .iter()
        .find(|(t, _)| t == "whatsapp.message.read")
        .unwrap();
    assert_eq!(read.1["message"]["id"], outbound.as_str());

    // Received messages come batched per conversation; that conversation's `created` was
    // emitted first (its id, a ULID, was minted no later than the batch's). Arrival order at the
    // receiver is not promised: the two travel different queues, with retries.
    let minted_ms = |e: &Value| -> u64 {
        let id: shared::ids::EventId = e["id"].as_str().unwrap().parse().unwrap();
        id.ulid().timestamp_ms()
    };
    let mut conversations = std::collections::BTreeSet::new();
    for e in &envelopes {
        if e["type"] != "whatsapp.message.received" {
            continue;
        }
        assert_eq!(e["batch"], true);
        let list = items(e);
        let conversation = list[0]["conversation"]["id"].as_str().unwrap().to_owned();
        assert!(
            list.iter()
                .all(|i| i["conversation"]["id"] == conversation.as_str()),
            "a batch holds one conversation"
        );
        let created = envelopes
            .iter()
            .find(|c| {
                c["type"] == "whatsapp.conversation.created"
                    && c["data"]["conversation"]["id"] == conversation.as_str()
            })
            .unwrap_or_else(|| panic!("no conversation.created for {conversation}"));
        assert!(
            minted_ms(created) <= minted_ms(e),
            "conversation.created was emitted before the batches of {conversation}"
        );
        conversations.insert(conversation);
    }
    assert_eq!(conversations.len(), 2, "Alice's and Bob's");
    // Contacts carry who wrote.
    let names: std::collections::BTreeSet<&str> = got
        .iter()
        .filter(|(t, _)| t == "whatsapp.contact.created")
        .map(|(_, i)| i["contact"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["Alice Example", "Bob Example"].into_iter().collect(),
        "{got:#?}"
    );

    // A day later the sweep ends both conversations.
    gateway.clock().advance(Duration::from_secs(25 * 3600));
    assert_eq!(gateway.sweep_now().await.unwrap(), 2);
    wait::until("two conversation.ended", deadline, || {
        count(&delivered(&receiver), "whatsapp.conversation.ended") >= 2
    })
    .await;
    let ended: std::collections::BTreeSet<String> = delivered(&receiver)
        .iter()
        .filter(|(t, _)| t == "whatsapp.conversation.ended")
        .map(|(_, i)| i["conversation"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ended, conversations);
    // Running the sweep again ends nothing more.
    assert_eq!(gateway.sweep_now().await.unwrap(), 0);
    drained(&gateway, deadline).await;
    assert_eq!(
        count(&delivered(&receiver), "whatsapp.conversation.ended"),
        2
    );

    let report = gateway.shutdown(deadline).await;
    assert_eq!(report.pending, 0, "every queue drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pipeline_on_the_embedded_backend() {
    full_pipeline(Stores::memory(), Patience::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pipeline_on_the_durable_sqlite_backend() {
    let (stores, dir) = sqlite_stores();
    full_pipeline(stores, Patience::embedded()).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pipeline_on_the_template_resources_in_moto() {
    let (stores, _moto, patience) = moto_stores().await;
    full_pipeline(stores, patience).await;
}

/// One endpoint fails twice then recovers; another refuses for good (404) until it is fixed and
/// the dead-letter queue is redriven.
async fn failures_retries_dead_letters_and_redrive(stores: Stores, patience: Patience) {
    let deadline = patience.deadline(6 * CALLS_PER_WEBHOOK);
    let flaky = Receiver::start(vec![Answer::status(500), Answer::status(503)]).await;
    let broken = Receiver::start(vec![Answer::status(404)]).await;
    let only_delivered = |mut e: EndpointSpec| {
        e.event_types = vec!["whatsapp.message.delivered".into()];
        e
    };
    let gateway = start(
        stores,
        vec![
            only_delivered(endpoint("ep_flaky", &flaky.url("/hook"))),
            only_delivered(endpoint("ep_broken", &broken.url("/hook"))),
        ],
    )
    .await;
    let body = meta_status("15550003333", &wamid(), "delivered", Utc::now()).to_string();
    assert_eq!(post(&gateway, "meta-demo", &body).await.0, 200);

    // 500, 503, then 200. A task may be handed out again after its success (at least once),
    // so later requests may come: always the same delivery.
    wait::until("the flaky endpoint's third attempt", deadline, || {
        flaky.received().len() >= 3
    })
    .await;
    let dlq = gateway.stores().delivery().dead_letter.clone();
    wait::until("the broken endpoint's task in the DLQ", deadline, || {
        !broken.received().is_empty() && gateway.stats().dead_lettered.get() >= 1
    })
    .await;
    // The endpoint is fixed (its script has run out: it answers 200 now); redrive.
    let stores = gateway.stores().clone();
    let report = redrive(
        dlq.as_ref(),
        stores.delivery().queue.as_ref(),
        stores.blobs.as_ref(),
        &Selection::Endpoint("ep_broken".into()),
        100,
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(report.moved >= 1, "{report:?}");
    wait::until("the redriven delivery", deadline, || {
        broken.received().len() >= 2
    })
    .await;
    drained(&gateway, deadline).await;

    for (name, receiver) in [("flaky", &flaky), ("broken", &broken)] {
        let attempts = receiver.received();
        let key = attempts[0].header("x-idempotency-key").unwrap().to_owned();
        assert!(
            attempts
                .iter()
                .all(|r| r.header("x-idempotency-key") == Some(key.as_str())),
            "every attempt at {name}, retried or redriven, carries the same idempotency key"
        );
        assert!(
            attempts.iter().all(|r| r.body == attempts[0].body),
            "and the same body ({name})"
        );
        for r in &attempts {
            verified(r);
        }
        assert_eq!(receiver.distinct().len(), 1, "one delivery at {name}");
    }
    let report = gateway.shutdown(deadline).await;
    assert_eq!(report.pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retries_dead_letters_and_redrive_on_the_embedded_backend() {
    failures_retries_dead_letters_and_redrive(Stores::memory(), Patience::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retries_dead_letters_and_redrive_on_the_durable_sqlite_backend() {
    let (stores, dir) = sqlite_stores();
    failures_retries_dead_letters_and_redrive(stores, Patience::embedded()).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retries_dead_letters_and_redrive_on_the_template_resources_in_moto() {
    let (stores, _moto, patience) = moto_stores().await;
    failures_retries_dead_letters_and_redrive(stores, patience).await;
}

/// A fresh durable backend (SQLite, a gateway's data directory with its two databases) in a
/// directory of its own; returns it and the directory.
fn sqlite_stores() -> (Stores, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(moto::unique("wagate-sqlite"));
    let stores = Stores::sqlite(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    (stores, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_nothing_accepted() {
    a_crash_loses_nothing(Stores::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_nothing_accepted_on_the_durable_sqlite_backend() {
    let (stores, dir) = sqlite_stores();
    a_crash_loses_nothing(stores).await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// The same on SQLite with 5% of every storage call failed cleanly and 5% applied and then
/// reported failed (each call tried up to 3 times, as the AWS SDK does): every write the
/// pipeline makes there has to be replay-safe for nothing to be lost or delivered under two keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_under_clean_and_ambiguous_storage_faults_loses_nothing_on_sqlite() {
    let (stores, dir) = sqlite_stores();
    let faults = shared::ports::faults::Faults::random(0.05, 0.05, 23);
    a_crash_loses_nothing(stores.with_faults(&faults)).await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Posts a Meta webhook again while it is answered 5xx (at most 50 times), as a provider
/// retries: with storage faults injected, ingest may answer 503 when it could not enqueue.
async fn post_as_a_provider(gateway: &Gateway, body: &str) -> u16 {
    let mut status = 0;
    for _ in 0..50 {
        status = post(gateway, "meta-demo", body).await.0;
        if status < 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    status
}

/// A crash mid-flight (every stage and the front aborted) loses nothing: a new gateway on the
/// same stores finishes the work, and the duplicates a provider sends afterwards are dropped.
async fn a_crash_loses_nothing(stores: Stores) {
    // Work the crash left in flight comes back after the embedded visibility (10 s).
    let deadline = Duration::from_secs(10) + Patience::embedded().deadline(25 * CALLS_PER_WEBHOOK);
    let receiver = Receiver::start(vec![]).await;
    let endpoints = vec![endpoint("ep_e2e", &receiver.url("/hook"))];
    let gateway = start(stores, endpoints.clone()).await;
    let ids: Vec<String> = (0..20).map(|_| wamid()).collect();
    let bodies: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            meta_status(&format!("1555000{i:04}"), id, "delivered", Utc::now()).to_string()
        })
        .collect();
    for body in &bodies {
        assert_eq!(post_as_a_provider(&gateway, body).await, 200);
    }
    let stores = gateway.crash();
    let gateway = start(stores, endpoints).await;
    for body in &bodies[..5] {
        assert_eq!(post_as_a_provider(&gateway, body).await, 200);
    }
    // (message id, idempotency key) of every delivered status.
    let statuses = |receiver: &Receiver| -> Vec<(String, String)> {
        receiver
            .received()
            .iter()
            .filter_map(|r| {
                let e = verified(r);
                (e["type"] == "whatsapp.message.delivered").then(|| {
                    (
                        e["data"]["message"]["id"].as_str().unwrap().to_owned(),
                        r.header("x-idempotency-key").unwrap().to_owned(),
                    )
                })
            })
            .collect()
    };
    let distinct = |list: &[(String, String)]| {
        list.iter()
            .map(|(id, _)| id.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let complete = wait::within(deadline, || distinct(&statuses(&receiver)).len() == 20).await;
    assert!(
        complete,
        "timed out: delivered {:?}; stats {}; pending {:?}",
        summary(&delivered(&receiver)),
        gateway.stats().line(),
        gateway.stores().pending().await
    );
    drained(&gateway, deadline).await;
    let got = statuses(&receiver);
    assert_eq!(distinct(&got), ids.iter().cloned().collect());
    // A POST answered just before the crash may be made again (at least once), but always
    // under the same idempotency key, so the receiver can drop it.
    for id in &ids {
        let keys: std::collections::BTreeSet<&str> = got
            .iter()
            .filter(|(i, _)| i == id)
            .map(|(_, k)| k.as_str())
            .collect();
        assert_eq!(keys.len(), 1, "{id}: {keys:?}");
    }
    gateway.shutdown(deadline).await;
}

/// The local front answers as the deployed ingest does: handshake, unknown source, oversized and
/// unsigned bodies, health.
#[tokio::test]
async fn the_front_answers_like_the_deployed_ingest() {
    let gateway = start(Stores::memory(), vec![]).await;
    let base = format!("http://{}", gateway.addr());
    let client = aws_adapters::http::client();
    let get = |path: String| client.get(format!("{base}{path}")).send();
    let r = get("/healthz".into()).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = get(
        "/webhooks/meta-demo?hub.mode=subscribe&hub.verify_token=demo-verify-token&hub.challenge=1158201444"
            .into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "1158201444");
    let r =
        get("/webhooks/meta-demo?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1".into())
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body = meta_text("15550001111", "A", &wamid(), "hi", Utc::now()).to_string();
    let unknown = client
        .post(format!("{base}/webhooks/nope"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let unsigned = client
        .post(format!("{base}/webhooks/waha-demo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    assert_eq!(post(&gateway, "meta-demo", &huge).await.0, 413);
    assert_eq!(
        get("/elsewhere".into()).await.unwrap().status().as_u16(),
        404
    );
    let stats = gateway.stats().clone();
    assert_eq!(stats.accepted.get(), 1, "the handshake and nothing else");
    assert_eq!(stats.events.get(), 0);
    gateway.shutdown(Duration::from_secs(1)).await;
}

/// The management API over HTTP in local mode: an endpoint created through it receives
/// deliveries, which are then listed and shown with their attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_made_through_the_management_api_receive_deliveries() {
    let receiver = Receiver::start(vec![]).await;
    let gateway = start_with_api(vec![]).await;
    let base = format!("http://{}/v1", gateway.addr());
    let client = aws_adapters::http::client();
    let api = |method: reqwest::Method, path: &str| api_call(&client, &gateway, method, path);
    let unauthorized = client
        .get(format!("{base}/endpoints"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);

    let create = serde_json::json!({
        "url": receiver.url("/hook"),
        "event_types": ["whatsapp.message.read"],
        "headers": {"X-API-Key": "e2e-key"}
    });
    let r = api(reqwest::Method::POST, "/endpoints")
        .header("idempotency-key", "create-1")
        .body(create.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let again = json_of(
        api(reqwest::Method::POST, "/endpoints")
            .header("idempotency-key", "create-1")
            .body(create.to_string()),
    )
    .await;
    assert_eq!(created, again, "replayed, not created twice");
    let id = created["id"].as_str().unwrap();
    let secret = EndpointSecret::parse(created["secret"].as_str().unwrap()).unwrap();

    let status = meta_status("15550004444", &wamid(), "read", Utc::now()).to_string();
    assert_eq!(post(&gateway, "meta-demo", &status).await.0, 200);
    let deadline = Patience::embedded().deadline(4 * CALLS_PER_WEBHOOK);
    wait::until("the read status at the API-made endpoint", deadline, || {
        !receiver.received().is_empty()
    })
    .await;
    let got = &receiver.received()[0];
    assert_eq!(
        got.header("x-webhook-signature"),
        Some(webhook_signature(&secret, &got.body).as_str())
    );

    // The record is written right after the POST returns: poll it.
    let started = std::time::Instant::now();
    let listed = loop {
        let listed = json_of(api(
            reqwest::Method::GET,
            &format!("/deliveries?endpoint_id={id}"),
        ))
        .await;
        if listed["data"][0]["status"] == "delivered" || started.elapsed() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["data"][0]["status"], "delivered");
    let delivery = listed["data"][0]["id"].as_str().unwrap();
    assert_eq!(got.header("x-idempotency-key"), Some(delivery));
    let shown = json_of(api(
        reqwest::Method::GET,
        &format!("/deliveries/{delivery}"),
    ))
    .await;
    assert_eq!(shown["attempts"][0]["status"], 200);

    // A test delivery of a chosen type goes through the same path and reports the attempt.
    let tested = json_of(
        api(reqwest::Method::POST, &format!("/endpoints/{id}/test"))
            .body(r#"{"event_type": "whatsapp.template.status_updated"}"#),
    )
    .await;
    assert_eq!(tested["result"], "delivered", "{tested}");
    assert_eq!(tested["attempt"]["status"], 200);
    // The last new delivery (a late copy of the status, at least once, is not new).
    let last = receiver.distinct().last().cloned().unwrap();
    assert_eq!(
        last.header("x-webhook-signature"),
        Some(webhook_signature(&secret, &last.body).as_str())
    );
    let envelope: Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(envelope["type"], "whatsapp.template.status_updated");
    assert_eq!(
        last.header("x-idempotency-key"),
        tested["delivery_id"].as_str()
    );
    let bad = api(reqwest::Method::POST, &format!("/endpoints/{id}/test"))
        .body(r#"{"event_type": "whatsapp.nope"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    gateway.shutdown(Duration::from_secs(5)).await;
}

/// Every stage reads endpoints through one cache in local mode (for 300 s on the embedded
/// backends): a change made through the management API still reaches the next delivery, as it
/// clears that cache. Fan-out has listed the endpoint and deliver has read it before the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_changed_through_the_api_is_used_by_the_next_delivery() {
    let before = Receiver::start(vec![]).await;
    let after = Receiver::start(vec![]).await;
    let mut spec = endpoint("ep_moved", &before.url("/hook"));
    spec.event_types = vec!["whatsapp.message.read".into()];
    let gateway = start_with_api(vec![spec]).await;
    let client = aws_adapters::http::client();
    let deadline = Patience::embedded().deadline(4 * CALLS_PER_WEBHOOK);
    let read = |id: &str| meta_status("15550004444", id, "read", Utc::now()).to_string();

    let first = wamid();
    assert_eq!(post(&gateway, "meta-demo", &read(&first)).await.0, 200);
    wait::until("the first status at the first URL", deadline, || {
        !before.received().is_empty()
    })
    .await;

    let moved = api_call(
        &client,
        &gateway,
        reqwest::Method::PATCH,
        "/endpoints/ep_moved",
    )
    .body(serde_json::json!({"url": after.url("/hook")}).to_string())
    .send()
    .await
    .unwrap();
    assert_eq!(moved.status().as_u16(), 200);
    let second = wamid();
    assert_eq!(post(&gateway, "meta-demo", &read(&second)).await.0, 200);
    wait::until("the second status at the new URL", deadline, || {
        !after.received().is_empty()
    })
    .await;
    let got: Value = serde_json::from_slice(&after.received()[0].body).unwrap();
    assert!(got.to_string().contains(&second), "{got}");
    assert!(
        before
            .distinct()
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains(&second)),
        "nothing after the change went to the old URL"
    );
    gateway.shutdown(Duration::from_secs(5)).await;
}

/// Sends `request` and parses the JSON answer.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let text = request.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Conversations through the management API: listed, labelled, annotated (later events carry
/// both), transferred and closed (each emitting its event to the endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_managed_through_the_api_and_their_events_delivered() {
    let receiver = Receiver::start(vec![]).await;
    let gateway = start_with_api(vec![endpoint("ep_e2e", &receiver.url("/hook"))]).await;
    let client = aws_adapters::http::client();
    let api = |method: reqwest::Method, path: &str| api_call(&client, &gateway, method, path);
    let alice = "15550005555";
    let first = meta_text(alice, "Alice", &wamid(), "hello", Utc::now()).to_string();
    assert_eq!(post(&gateway, "meta-demo", &first).await.0, 200);
    let deadline = Patience::embedded().deadline(6 * CALLS_PER_WEBHOOK);
    wait::until("the first batch", deadline, || {
        count(&delivered(&receiver), "whatsapp.message.received") >= 1
    })
    .await;

    let listed = json_of(api(
        reqwest::Method::GET,
        "/conversations?source_id=meta-demo",
    ))
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    let id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["data"][0]["status"], "active");
    assert_eq!(listed["data"][0]["source"]["id"], "meta-demo");
    let none = json_of(api(
        reqwest::Method::GET,
        "/conversations?source_id=waha-demo",
    ))
    .await;
    assert!(none["data"].as_array().unwrap().is_empty());

    let labelled = json_of(
        api(reqwest::Method::PUT, &format!("/conversations/{id}/labels"))
            .body(r#"{"labels": ["vip", "order-1042", "vip"]}"#),
    )
    .await;
    assert_eq!(labelled["labels"], serde_json::json!(["vip", "order-1042"]));
    let noted = json_of(
        api(reqwest::Method::PUT, &format!("/conversations/{id}/notes"))
            .body(r#"{"notes": [{"text": "Prefers English", "author": "ana"}]}"#),
    )
    .await;
    assert_eq!(noted["notes"][0]["text"], "Prefers English");

    // The next message's event carries the labels and notes.
    let second = meta_text(alice, "Alice", &wamid(), "where is my order?", Utc::now()).to_string();
    assert_eq!(post(&gateway, "meta-demo", &second).await.0, 200);
    wait::until("the second batch", deadline, || {
        count(&delivered(&receiver), "whatsapp.message.received") >= 2
    })
    .await;
    let latest = delivered(&receiver)
        .into_iter()
        .rfind(|(t, _)| t == "whatsapp.message.received")
        .unwrap()
        .1;
    assert_eq!(
        latest["conversation"]["labels"],
        serde_json::json!(["vip", "order-1042"])
    );
    assert_eq!(latest["conversation"]["notes"][0]["author"], "ana");

    let r = api(
        reqwest::Method::POST,
        &format!("/conversations/{id}/transfer"),
    )
    .body(r#"{"to_team": "billing", "notes": "refund request"}"#)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let r = api(reqwest::Method::POST, &format!("/conversations/{id}/close"))
        .body(r#"{"reason": "agent"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let again = api(reqwest::Method::POST, &format!("/conversations/{id}/close"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
    wait::until("transferred and ended", deadline, || {
        let d = delivered(&receiver);
        count(&d, "whatsapp.conversation.transferred") >= 1
            && count(&d, "whatsapp.conversation.ended") >= 1
    })
    .await;
    let d = delivered(&receiver);
    let transferred = &d
        .iter()
        .find(|(t, _)| t == "whatsapp.conversation.transferred")
        .unwrap()
        .1;
    assert_eq!(transferred["transfer"]["to_team"], "billing");
    assert_eq!(transferred["conversation"]["id"], id.as_str());
    let ended = &d
        .iter()
        .find(|(t, _)| t == "whatsapp.conversation.ended")
        .unwrap()
        .1;
    assert_eq!(ended["reason"], "agent");
    let ended_list = json_of(api(reqwest::Method::GET, "/conversations?status=ended")).await;
    assert_eq!(ended_list["data"][0]["id"], id.as_str(), "{ended_list}");
    assert_eq!(ended_list["data"][0]["end_reason"], "agent");
    let shown = json_of(api(reqwest::Method::GET, &format!("/conversations/{id}"))).await;
    assert_eq!(shown["status"], "ended");
    let missing = api(
        reqwest::Method::GET,
        "/conversations/conv_01JBCQ3ZX0V9K8N7M6P5Q4R301",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    gateway.shutdown(Duration::from_secs(5)).await;
}

pub(crate) const API_KEY: &str = "e2e-admin-key-0123456789";

/// A gateway on the embedded backend with the management API on.
pub(crate) async fn start_with_api(endpoints: Vec<EndpointSpec>) -> Gateway {
    let mut config = LocalConfig::sample().unwrap();
    config.endpoints = endpoints;
    config.settings = BTreeMap::from([
        ("ADMIN_API_KEYS".to_owned(), API_KEY.to_owned()),
        ("BUFFER_WINDOW_SECONDS".to_owned(), "1".to_owned()),
    ]);
    let mut options = Options::new(config);
    options.sweep_every = None;
    options.batching_window = Duration::from_millis(200);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Gateway::start(Stores::memory(), listener, options)
        .await
        .unwrap()
}

/// An authenticated management API request.
fn api_call(
    client: &reqwest::Client,
    gateway: &Gateway,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, format!("http://{}/v1{path}", gateway.addr()))
        .header("x-api-key", API_KEY)
}
