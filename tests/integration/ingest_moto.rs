//! Ingest against real SQS and DynamoDB protocols (moto on 127.0.0.1): 1,000 signed webhooks,
//! Meta and WAHA mixed, sent concurrently through the Lambda handler; every event must come back
//! off the queue (SQS may hand one out twice, the same event both times), one event per dedup
//! key, and every raw request must be retrievable.

use aws_adapters::{DynamoBlobStore, SqsQueue};
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};
use shared::model::InboundEvent;
use shared::pipeline::ingest::{Ingest, IngestConfig};
use shared::ports::{BlobStore, Queue, StaticSources};
use shared::signature::{Secret, sign_meta, sign_waha};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tests::wait::Patience;
use tests::{invoke_router, moto};

const META_SECRET: &str = "meta_app_secret_example";
const WAHA_KEY: &str = "waha_hmac_key_example";

fn sources() -> StaticSources {
    let json = format!(
        r#"[{{"id":"meta-main","provider":"meta","secrets":["{META_SECRET}"]}},{{"id":"waha-main","provider":"waha","secrets":["{WAHA_KEY}"]}}]"#
    );
    StaticSources::new(shared::config::parse_sources(&json).unwrap())
}

/// An API Gateway v2 POST event for `source_id` with `body` and `headers`.
fn api_event(source_id: &str, body: &str, headers: &Value) -> String {
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{source_id}",
        "rawPath": format!("/webhooks/{source_id}"),
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc", "domainName": "abc.example", "domainPrefix": "abc",
            "http": {"method": "POST", "path": format!("/webhooks/{source_id}"), "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "load"},
            "requestId": "r", "routeKey": "POST /webhooks/{source_id}", "stage": "$default",
            "time": "21/Nov/2026:12:00:00 +0000", "timeEpoch": 1795262400000_i64
        },
        "pathParameters": {"source_id": source_id},
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

/// Webhook `i`: its API event and the dedup keys it must yield.
fn webhook(i: usize) -> (String, Vec<String>) {
    match i % 4 {
        // A Meta text message.
        0 | 1 => {
            let wamid = format!("wamid.LOAD{i:05}");
            let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
                "field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550009999", "phone_number_id": "106540352242922"},
                    "contacts": [{"profile": {"name": format!("Load {i}")}, "wa_id": format!("1555{i:07}")}],
                    "messages": [{"from": format!("1555{i:07}"), "id": wamid, "timestamp": "1730092801",
                                  "type": "text", "text": {"body": format!("message {i} é 👋")}}]}}]}]})
            .to_string();
            let headers = json!({"content-type": "application/json", "x-hub-signature-256": sign_meta(&Secret::from(META_SECRET), body.as_bytes())});
            (
                api_event("meta-main", &body, &headers),
                vec![format!("meta-main:meta:106540352242922:{wamid}")],
            )
        }
        // A Meta status batch: three statuses of one message.
        2 => {
            let wamid = format!("wamid.OUT{i:05}");
            let statuses: Vec<Value> = ["sent", "delivered", "read"]
                .iter()
                .map(|s| json!({"id": wamid, "status": s, "timestamp": "1730092900", "recipient_id": "15550001111"}))
                .collect();
            let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
                "field": "messages", "value": {"messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550009999", "phone_number_id": "106540352242922"},
                    "statuses": statuses}}]}]})
            .to_string();
            let headers = json!({"content-type": "application/json", "x-hub-signature-256": sign_meta(&Secret::from(META_SECRET), body.as_bytes())});
            let keys = ["sent", "delivered", "read"]
                .iter()
                .map(|s| format!("meta-main:meta:{wamid}:{s}"))
                .collect();
            (api_event("meta-main", &body, &headers), keys)
        }
        // A WAHA message.
        _ => {
            let id = format!("false_15550001111@c.us_LOAD{i:05}");
            let body = json!({"id": format!("evt_load{i:05}"), "timestamp": 1730092801123_i64, "event": "message",
                "session": "default", "me": {"id": "15550009999@c.us", "pushName": "Shop"},
                "payload": {"id": id, "timestamp": 1730092801, "from": "15550001111@c.us", "fromMe": false,
                            "body": format!("waha {i}"), "hasMedia": false, "_data": {"notifyName": "Alice"}},
                "engine": "GOWS"})
            .to_string();
            let headers = json!({"content-type": "application/json", "x-webhook-hmac": sign_waha(&Secret::from(WAHA_KEY), body.as_bytes()),
                                 "x-webhook-hmac-algorithm": "sha512"});
            (
                api_event("waha-main", &body, &headers),
                // Keyed on WhatsApp's message key (direction and bare id), not the chat's spelling.
                vec![format!("waha-main:waha:default:false_LOAD{i:05}")],
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mixed_webhooks_all_arrive_on_sqs_exactly_once() {
    // A moto of its own: 3,000 calls here would slow every suite sharing the common one.
    let moto = moto::Server::start();
    let clients = moto.clients().await;
    let patience = Patience::moto(&clients).await;
    let table = moto::table(&clients).await;
    let (queue, _) = moto::queue(&clients, 120, None).await;
    let queue = Arc::new(queue);
    let blobs = Arc::new(DynamoBlobStore::new(clients.dynamodb.clone(), &table));
    let router = ingest::router(Ingest {
        sources: Arc::new(sources()),
        queue: queue.clone() as Arc<dyn Queue>,
        blobs: blobs.clone() as Arc<dyn BlobStore>,
        config: IngestConfig::default(),
    });

    let webhooks: Vec<(String, Vec<String>)> = (0..1000).map(webhook).collect();
    let expected: HashSet<String> = webhooks.iter().flat_map(|(_, keys)| keys.clone()).collect();
    assert_eq!(expected.len(), 1500);

    let statuses: Vec<u16> = futures::stream::iter(webhooks.into_iter().map(|(event, _)| {
        let router = router.clone();
        async move { invoke_router(&router, &event).await.status }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );

    // Every call of the read-back: a receive per ten messages and a delete per message.
    let arrived: Vec<InboundEvent> =
        moto::drain(&queue, blobs.as_ref(), patience.deadline(2000)).await;
    // SQS may hand a message out twice (at least once); a copy is the same event. What must
    // hold exactly once is the mapping: one event per dedup key, one key per event.
    let mut by_key: HashMap<String, InboundEvent> = HashMap::new();
    for event in arrived {
        let key = event.dedup_key.clone();
        match by_key.get(&key) {
            Some(first) => assert_eq!(first.id, event.id, "{key} was enqueued as two events"),
            None => {
                by_key.insert(key, event);
            }
        }
    }
    let got: HashSet<String> = by_key.keys().cloned().collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "missing: {:?}",
        expected.difference(&got).take(5).collect::<Vec<_>>()
    );
    assert_eq!(got, expected);

    // Every accepted request is retrievable byte for byte for replay.
    let request_ids: HashSet<String> = by_key
        .values()
        .filter_map(|e| e.request_id.clone())
        .collect();
    assert_eq!(request_ids.len(), 1000);
    for id in request_ids.iter().take(50) {
        let raw = blobs.get(&format!("req#{id}"), Utc::now()).await.unwrap();
        assert!(
            raw.is_some_and(|r| r.starts_with(b"{")),
            "raw request {id} missing"
        );
    }
}

#[tokio::test]
async fn an_unreachable_queue_gets_503_so_the_provider_retries() {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    // A queue URL moto does not know: SQS answers with an error, as when a queue is deleted.
    let queue = SqsQueue::new(
        clients.sqs.clone(),
        format!("{}/123456789012/missing-queue", moto::url()),
    );
    let ingest = Ingest {
        sources: Arc::new(sources()),
        queue: Arc::new(queue),
        blobs: Arc::new(DynamoBlobStore::new(clients.dynamodb.clone(), &table)),
        config: IngestConfig::default(),
    };
    let (event, _) = webhook(0);
    let answer = invoke_router(&ingest::router(ingest), &event).await;
    assert_eq!(answer.status, 503);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
}
