//! The fan-out and deliver handlers over their `events/` files, with the configuration of
//! `events/env.json`, in-memory stores and a real receiver on 127.0.0.1.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_adapters::http::ReqwestSender;
use aws_lambda_events::sqs::SqsEvent;
use chrono::Utc;
use shared::delivery::deliver::Deliver;
use shared::delivery::endpoints::{Endpoint, Endpoints};
use shared::delivery::fanout::Fanout;
use shared::delivery::request::{BodyForm, DeliveryTask};
use shared::delivery::ssrf::NetworkPolicy;
use shared::ports::codec::receive_all;
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
    let mut endpoint = Endpoint::new("ep_events", url, secret, now);
    endpoint.description = Some("events/ fixtures".into());
    endpoint.event_types = vec!["whatsapp.template.*".into(), "whatsapp.session.*".into()];
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
        body_form: config.body_form,
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
async fn the_campaign_completed_fixture_reaches_endpoints_that_want_campaigns() {
    let queue = Arc::new(MemoryQueue::new("delivery"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let secret = EndpointSecret::from_key(&[7; 32]).unwrap();
    let endpoints = endpoints_with("https://hooks.example.com/wa", &secret).await;
    let now = Utc::now();
    let (mut wants, version) = endpoints.get("ep_events", now).await.unwrap().unwrap();
    wants.event_types = vec!["whatsapp.campaign.*".into()];
    assert!(endpoints.put(&wants, Some(version), now).await.unwrap());
    let f = Fanout {
        endpoints,
        queue: queue.clone(),
        blobs: blobs.clone(),
        blob_ttl: Duration::from_secs(86400),
        body_form: BodyForm::Json,
    };
    let response = fanout::handle(&f, sqs("fanout-sqs-campaign-completed.json")).await;
    assert!(response.batch_item_failures.is_empty());
    let tasks: Vec<DeliveryTask> =
        receive_all(queue.as_ref(), blobs.as_ref(), Duration::from_secs(60), now)
            .await
            .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].event_type.as_str(), "whatsapp.campaign.completed");
    let envelope: serde_json::Value = serde_json::from_str(tasks[0].body.as_str()).unwrap();
    assert_eq!(envelope["data"]["campaign"]["totals"]["read"], 96);
    assert_eq!(envelope["data"]["campaign"]["completion"], "all_final");
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
    // The fixture's two tasks carry their bodies in the two forms (a JSON string, the document).
    let event = sqs("deliver-sqs-batch.json");
    let tasks: Vec<DeliveryTask> = event
        .records
        .iter()
        .map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap())
        .collect();
    let forms: Vec<BodyForm> = tasks.iter().map(|t| t.body.form()).collect();
    assert_eq!(forms, [BodyForm::Text, BodyForm::Json]);
    let response = deliver::handle(&d, event).await;
    assert!(response.batch_item_failures.is_empty());
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    for task in &tasks {
        let post = got
            .iter()
            .find(|p| p.header("x-idempotency-key") == Some(task.delivery_id.as_str()))
            .unwrap();
        assert_eq!(post.body, task.body.as_bytes());
        assert_eq!(
            post.header("x-webhook-signature"),
            Some(webhook_signature(&secret, &post.body).as_str())
        );
    }
}

#[tokio::test]
async fn the_buffer_fixture_appends_the_message_and_its_timer_waits_for_the_window() {
    use shared::delivery::buffer::Buffer;
    let env = env_of("BufferFunction");
    let config = buffer::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let secret = EndpointSecret::from_key(&[4; 32]).unwrap();
    let endpoints = endpoints_with("https://hooks.example.com/wa", &secret).await;
    let mut all = endpoints
        .get("ep_events", Utc::now())
        .await
        .unwrap()
        .unwrap()
        .0;
    all.event_types = vec!["whatsapp.message.*".into()];
    endpoints.put(&all, Some(1), Utc::now()).await.unwrap();
    let deliveries = Arc::new(MemoryQueue::new("delivery"));
    let timers = Arc::new(MemoryQueue::new("buffer"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let b = Buffer {
        docs: endpoints.docs.clone(),
        queue: timers.clone(),
        blobs: blobs.clone(),
        fanout: Fanout {
            endpoints,
            queue: deliveries.clone(),
            blobs: blobs.clone(),
            blob_ttl: config.blob_ttl,
            body_form: config.body_form,
        },
        config: config.buffer,
    };
    let event = sqs("buffer-sqs-batch.json");
    let response = buffer::handle(&b, event).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(
        deliveries.is_empty(),
        "the fixture's timer fires with the message: too early to flush"
    );
    assert_eq!(
        timers.len(),
        2,
        "the append's timer and the early timer's follow-up"
    );
    // When the window has passed, a timer flushes one batch with the message.
    let key = {
        let text =
            std::fs::read_to_string(repo_root().join("events/buffer-sqs-batch.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let timer: serde_json::Value =
            serde_json::from_str(v["Records"][1]["body"].as_str().unwrap()).unwrap();
        timer["flush"].as_str().unwrap().to_owned()
    };
    b.flush(&key, Utc::now() + chrono::Duration::seconds(6))
        .await
        .unwrap();
    let tasks: Vec<DeliveryTask> = receive_all(
        deliveries.as_ref(),
        blobs.as_ref(),
        Duration::from_secs(60),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].batch);
}
