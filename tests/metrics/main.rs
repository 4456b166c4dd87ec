//! The CloudWatch metrics (EMF) of a real pipeline run. A test binary of its own: metrics are
//! recorded process-wide, so no other test may run beside this one.
//!
//! The embedded gateway runs the same stages the Lambdas run; after a scripted run the recorded
//! metrics must match what happened exactly, and the local mode's own counters (counted
//! independently, at the ports).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tests::receiver::{Answer, Receiver};
use tests::wait::{self, Patience};
use tokio::net::TcpListener;
use wagate_local::backend::Stores;
use wagate_local::config::{EndpointSpec, LocalConfig};
use wagate_local::gateway::{Gateway, Options};
use wagate_local::sample::{meta_status, meta_text, signature_headers, wamid};

async fn post(gateway: &Gateway, body: &str, signed: bool) -> u16 {
    let config = LocalConfig::sample().unwrap();
    let mut req = aws_adapters::http::client()
        .post(format!("http://{}/webhooks/meta-demo", gateway.addr()))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if signed {
        let source = config.source("meta-demo").unwrap();
        for (name, value) in signature_headers(source, "", body.as_bytes()) {
            req = req.header(name, value);
        }
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_run_is_reported_as_emf_metrics() {
    shared::metrics::enable();
    // The endpoint fails its first POST (500), then accepts.
    let receiver = Receiver::start(vec![Answer::status(500)]).await;
    let mut config = LocalConfig::sample().unwrap();
    config.endpoints = vec![EndpointSpec {
        id: "ep_metrics".into(),
        url: receiver.url("/hook"),
        secret: "whsec_ZTJlLWVuZHBvaW50LXNlY3JldC0wMTIzNDU2Nzg5".into(),
        description: None,
        event_types: vec![],
        batching: true,
        headers: BTreeMap::new(),
    }];
    config.settings = BTreeMap::from([("BUFFER_WINDOW_SECONDS".to_owned(), "1".to_owned())]);
    let mut options = Options::new(config);
    options.sweep_every = None;
    options.batching_window = Duration::from_millis(100);
    options.retry_schedule = Some(vec![Duration::from_secs(1)]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Gateway::start(Stores::memory(), listener, options)
        .await
        .unwrap();

    let id = wamid();
    let text = meta_text("15550001111", "Ana", &id, "hola", Utc::now()).to_string();
    assert_eq!(post(&gateway, &text, true).await, 200);
    assert_eq!(post(&gateway, &text, true).await, 200, "a provider retry");
    assert_eq!(post(&gateway, &text, false).await, 401);
    assert_eq!(post(&gateway, "{", true).await, 400);
    let status = meta_status("15550001111", &id, "delivered", Utc::now()).to_string();
    assert_eq!(post(&gateway, &status, true).await, 200);
    let stats = gateway.stats().clone();
    // Two deliveries reach the receiver: the message batch (after one 500) and the status;
    // plus the contact and conversation events.
    let deadline = Patience::embedded().deadline(200);
    wait::until("every delivery", deadline, || stats.delivered.get() >= 4).await;
    gateway.shutdown(deadline).await;

    let line = shared::metrics::flush("wagate-test", Utc::now()).unwrap();
    let doc: Value = serde_json::from_str(&line).unwrap();
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "wagate");
    assert_eq!(doc["Function"], "wagate-test");
    let declared: Vec<&str> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    for name in &declared {
        assert!(doc.get(name).is_some(), "{name} declared without a value");
    }
    let n = |name: &str| doc[name].as_f64().unwrap_or(0.0);
    assert_eq!(n("WebhooksReceived"), 3.0, "{doc}");
    assert_eq!(n("WebhooksRejected"), 2.0);
    assert_eq!(n("EventsEnqueued"), 3.0);
    // The provider's retry of the text message.
    assert_eq!(n("Duplicates"), 1.0);
    assert_eq!(n("ConversationsCreated"), 1.0);
    assert_eq!(doc["BatchSize"], serde_json::json!([1.0]));
    // The local counters, counted at the ports, agree.
    #[allow(clippy::cast_precision_loss)]
    let local = |c: u64| c as f64;
    assert_eq!(n("WebhooksReceived"), local(stats.accepted.get()));
    assert_eq!(n("WebhooksRejected"), local(stats.rejected.get()));
    assert_eq!(n("EventsEnqueued"), local(stats.events.get()));
    assert_eq!(n("Delivered"), local(stats.delivered.get()));
    assert_eq!(n("FailedAttempts"), 1.0);
    assert_eq!(n("FailedAttempts"), local(stats.failed_attempts.get()));
    assert_eq!(n("DeadLettered"), 0.0);
    assert_eq!(n("DeliveriesQueued"), n("Delivered"));
    let latencies = doc["DeliveryLatency"].as_array().unwrap();
    assert_eq!(latencies.len() as f64, n("Delivered") + n("FailedAttempts"));
    assert_eq!(
        receiver.received().len() as f64,
        n("Delivered") + n("FailedAttempts")
    );
}
