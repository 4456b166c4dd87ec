//! The fan-out and deliver handlers over their `events/` files, with the configuration of
//! `events/env.json`, in-memory stores and a real receiver on 127.0.0.1.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use chrono::Utc;
use deliver::http::ReqwestSender;
use shared::delivery::deliver::Deliver;
use shared::delivery::endpoints::{Endpoint, Endpoints, SecretEntry};
use shared::delivery::fanout::Fanout;
use shared::delivery::request::DeliveryTask;
use shared::delivery::ssrf::NetworkPolicy;
use shared::pipeline::codec::receive_all;
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use shared::signature::{EndpointSecret, webhook_signature};
use tests::receiver::Receiver;
use tests::repo_root;

fn env_of(function: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(repo_root().join("events/env.json")).unwrap();
    let all: HashMap<String, HashMap<String, String>> = serde_json::from_str(&text).unwrap();
    all[function].clone()
}

fn sqs(name: &str) -> SqsEvent {
    serde_json::from_str(&std::fs::read_to_string(repo_root().join("events").join(name)).unwrap())
        .unwrap()
}

async fn endpoints_with(url: &str, secret: &EndpointSecret) -> Endpoints {
    let endpoints = Endpoints {
        docs: Arc::new(MemoryDocumentStore::new()),
    };
    let now = Utc::now();
    let endpoint = Endpoint {
        id: "ep_events".into(),
        url: url.into(),
        description: Some("events/ fixtures".into()),
        secrets: vec![SecretEntry {
            secret: secret.expose().to_owned(),
            expires_at: None,
        }],
        event_types: vec!["whatsapp.template.*".into(), "whatsapp.session.*".into()],
        batching: true,
        headers: BTreeMap::new(),
        enabled: true,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    endpoints.put(&endpoint, None, now).await.unwrap();
    endpoints
}

#[tokio::test]
async fn the_fanout_fixture_queues_one_task_per_matching_endpoint_and_event() {
    let env = env_of("FanoutFunction");
    let config = fanout::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let secret = EndpointSecret::from_key(&[5; 32]).unwrap();
    let queue = Arc::new(MemoryQueue::new("delivery"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let f = Fanout {
        endpoints: endpoints_with("https://hooks.example.com/wa", &secret).await,
        queue: queue.clone(),
        blobs: blobs.clone(),
        blob_ttl: config.blob_ttl,
    };
    let response = fanout::handle(&f, sqs("fanout-sqs-batch.json")).await;
    assert!(response.batch_item_failures.is_empty());
    let tasks: Vec<DeliveryTask> = receive_all(
        queue.as_ref(),
        blobs.as_ref(),
        Duration::from_secs(60),
        Utc::now(),
    )
    .await
    .unwrap();
    let types: Vec<&str> = tasks.iter().map(|t| t.event_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "whatsapp.template.status_updated",
            "whatsapp.session.status_updated"
        ]
    );
}

#[tokio::test]
async fn the_deliver_fixture_posts_the_task_body_signed() {
    let env = env_of("DeliverFunction");
    let mut config = deliver::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    config.deliver.network = NetworkPolicy::AllowLoopback;
    let receiver = Receiver::start(vec![]).await;
    let secret = EndpointSecret::from_key(&[6; 32]).unwrap();
    let endpoints = endpoints_with(&receiver.url("/hook"), &secret).await;
    let d = Deliver {
        docs: endpoints.docs.clone(),
        endpoints,
        http: Arc::new(ReqwestSender::new(NetworkPolicy::AllowLoopback).unwrap()),
        queue: Arc::new(MemoryQueue::new("delivery")),
        dead_letter: Arc::new(MemoryQueue::new("delivery-dlq")),
        blobs: Arc::new(MemoryBlobStore::new()),
        config: config.deliver,
    };
    let event = sqs("deliver-sqs-batch.json");
    let task: DeliveryTask =
        serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
    let response = deliver::handle(&d, event).await;
    assert!(response.batch_item_failures.is_empty());
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, task.body.as_bytes());
    assert_eq!(
        got[0].header("x-webhook-signature"),
        Some(webhook_signature(&secret, &got[0].body).as_str())
    );
    assert_eq!(
        got[0].header("x-idempotency-key"),
        Some(task.delivery_id.as_str())
    );
}
