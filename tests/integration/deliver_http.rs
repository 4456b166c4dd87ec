//! Delivery against real HTTP receivers on 127.0.0.1: signatures checked by independent code
//! (our HMAC over the captured bytes, and the official `standardwebhooks` Python package), the
//! retry path through the queue, Retry-After, 410, final 4xx, the last attempt, timeouts, and the
//! SSRF guard at resolve time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_adapters::http::ReqwestSender;
use chrono::Utc;
use serde_json::json;
use shared::delivery::deliver::{
    Deliver, DeliverConfig, DeliverOutcome, HttpError, HttpRequest, HttpSender,
};
use shared::delivery::endpoints::{Endpoint, Endpoints};
use shared::delivery::record::DeliveryStatus;
use shared::delivery::request::{BodyForm, DeliveryTask};
use shared::delivery::ssrf::NetworkPolicy;
use shared::ids::{EventId, SourceId};
use shared::model::{
    Envelope, EventBody, EventData, EventType, InboundEvent, NotificationData, Provider, SourceInfo,
};
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use shared::ports::{OutgoingMessage, Queue};
use shared::signature::{EndpointSecret, webhook_signature};
use tests::receiver::{Answer, Receiver};

struct Setup {
    deliver: Deliver,
    queue: Arc<MemoryQueue>,
    dlq: Arc<MemoryQueue>,
    secret: EndpointSecret,
}

async fn setup(url: &str, timeout: Duration) -> Setup {
    let docs = Arc::new(MemoryDocumentStore::new());
    let endpoints = Endpoints { docs: docs.clone() };
    let secret = EndpointSecret::from_key(&[7u8; 32]).unwrap();
    let now = Utc::now();
    let mut endpoint = Endpoint::new("ep_test", url, &secret, now);
    endpoint.headers = BTreeMap::from([("X-API-Key".to_owned(), "key-123".to_owned())]);
    endpoint.validate(NetworkPolicy::AllowLoopback).unwrap();
    endpoints.put(&endpoint, None, now).await.unwrap();
    let queue = Arc::new(MemoryQueue::new("delivery"));
    let dlq = Arc::new(MemoryQueue::new("delivery-dlq"));
    let deliver = Deliver {
        endpoints,
        docs,
        http: Arc::new(ReqwestSender::new(NetworkPolicy::AllowLoopback).unwrap()),
        queue: queue.clone(),
        dead_letter: dlq.clone(),
        blobs: Arc::new(MemoryBlobStore::new()),
        config: DeliverConfig {
            timeout,
            network: NetworkPolicy::AllowLoopback,
            ..DeliverConfig::default()
        },
    };
    Setup {
        deliver,
        queue,
        dlq,
        secret,
    }
}

fn task() -> DeliveryTask {
    task_with(json!({"status": "WORKING", "note": "Olá 👋"}))
}

/// A task carrying a WAHA session notification with `raw` as its payload.
fn task_with(raw: serde_json::Value) -> DeliveryTask {
    let source = SourceInfo::new(SourceId::parse("waha-main").unwrap(), Provider::Waha);
    let data = EventData::new(
        source,
        EventBody::notification(NotificationData::new("session.status", raw)),
    );
    let event = InboundEvent {
        id: EventId::new(),
        event_type: EventType::SessionStatusUpdated,
        dedup_key: "k".into(),
        received_at: Utc::now(),
        occurred_at: None,
        request_id: None,
        data,
    };
    DeliveryTask::new(&Envelope::single(event), "ep_test", BodyForm::Json).unwrap()
}

/// Verifies a captured delivery with the official `standardwebhooks` package (pip).
fn verify_with_python(secret: &EndpointSecret, r: &tests::receiver::Received) {
    let input = json!({
        "secret": secret.expose(),
        "body": String::from_utf8(r.body.clone()).unwrap(),
        "headers": {
            "webhook-id": r.header("webhook-id").unwrap(),
            "webhook-timestamp": r.header("webhook-timestamp").unwrap(),
            "webhook-signature": r.header("webhook-signature").unwrap(),
        }
    });
    let script = "import json, sys\nfrom standardwebhooks.webhooks import Webhook\nd = json.load(sys.stdin)\nWebhook(d['secret']).verify(d['body'], d['headers'])\nprint('verified')\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks rejected the delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "verified");
}

#[tokio::test]
async fn a_delivery_carries_signatures_that_independent_verifiers_accept() {
    let receiver = Receiver::start(vec![]).await;
    let s = setup(&receiver.url("/hooks/wa?tenant=1"), Duration::from_secs(10)).await;
    let task = task();
    assert_eq!(
        s.deliver.deliver(&task, 1, Utc::now()).await.unwrap(),
        DeliverOutcome::Delivered
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/hooks/wa?tenant=1");
    assert_eq!(r.body, task.body.as_bytes(), "the exact body bytes");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("x-webhook-event"),
        Some("whatsapp.session.status_updated")
    );
    assert_eq!(r.header("x-webhook-batch"), Some("false"));
    assert_eq!(
        r.header("x-idempotency-key"),
        Some(task.delivery_id.as_str())
    );
    assert_eq!(r.header("x-api-key"), Some("key-123"));
    assert!(r.header("user-agent").unwrap().starts_with("wagate/"));
    // X-Webhook-Signature: recomputed here over the captured bytes.
    assert_eq!(
        r.header("x-webhook-signature"),
        Some(webhook_signature(&s.secret, &r.body).as_str())
    );
    verify_with_python(&s.secret, r);
}

async fn enqueue(s: &Setup, task: &DeliveryTask) {
    let body = serde_json::to_string(task).unwrap();
    s.queue
        .send_batch(&[OutgoingMessage {
            id: "0".into(),
            body,
            delay: None,
        }])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_receiver_is_retried_through_the_queue_until_it_recovers() {
    let receiver = Receiver::start(vec![Answer::status(503), Answer::status(500)]).await;
    let s = setup(&receiver.url("/hook"), Duration::from_secs(10)).await;
    let task = task();
    enqueue(&s, &task).await;
    for attempt in 1..=3 {
        let messages = s
            .queue
            .receive(10, Duration::ZERO, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(messages.len(), 1, "attempt {attempt}: the message is back");
        assert_eq!(messages[0].receive_count, attempt);
        let failed = s.deliver.process_batch(&messages, Utc::now()).await;
        if attempt < 3 {
            assert_eq!(failed, vec![messages[0].message_id.clone()]);
            // Hidden for the backoff delay; "time passes" by making it visible again.
            assert!(
                s.queue
                    .receive(10, Duration::ZERO, Duration::from_secs(30))
                    .await
                    .unwrap()
                    .is_empty()
            );
            s.queue
                .change_visibility(&messages[0].receipt, Duration::ZERO)
                .await
                .unwrap_or_default();
        } else {
            assert!(failed.is_empty());
            s.queue.delete(&messages[0].receipt).await.unwrap();
        }
    }
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.body == task.body.as_bytes()
        && r.header("x-idempotency-key") == Some(task.delivery_id.as_str())));
    assert!(s.dlq.is_empty());
}

#[tokio::test]
async fn retry_after_410_final_4xx_and_the_last_attempt() {
    let answers = vec![
        Answer {
            status: 429,
            headers: vec![("Retry-After".into(), "120".into())],
            delay: Duration::ZERO,
        },
        Answer::status(400),
        Answer::status(503),
        Answer::status(410),
    ];
    let receiver = Receiver::start(answers).await;
    let s = setup(&receiver.url("/hook"), Duration::from_secs(10)).await;
    let now = Utc::now();
    let d = &s.deliver;
    assert_eq!(
        d.deliver(&task(), 1, now).await.unwrap(),
        DeliverOutcome::RetryAfter(Duration::from_secs(120))
    );
    assert_eq!(
        d.deliver(&task(), 1, now).await.unwrap(),
        DeliverOutcome::DeadLettered,
        "400 is final"
    );
    let last = d.config.retry.max_attempts;
    assert_eq!(
        d.deliver(&task(), last, now).await.unwrap(),
        DeliverOutcome::DeadLettered,
        "no attempts left"
    );
    assert_eq!(
        d.deliver(&task(), 1, now).await.unwrap(),
        DeliverOutcome::EndpointDisabled
    );
    assert_eq!(
        s.dlq.len(),
        3,
        "final failures, the last attempt and the 410 task are kept for redrive"
    );
    let (endpoint, _) = d.endpoints.get("ep_test", now).await.unwrap().unwrap();
    assert!(!endpoint.enabled);
    assert_eq!(
        d.deliver(&task(), 1, now).await.unwrap(),
        DeliverOutcome::Skipped,
        "disabled endpoints get nothing"
    );
    assert_eq!(receiver.received().len(), 4);
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_retried() {
    let slow = Answer {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(5),
    };
    let receiver = Receiver::start(vec![slow]).await;
    let s = setup(&receiver.url("/hook"), Duration::from_millis(300)).await;
    assert!(matches!(
        s.deliver.deliver(&task(), 1, Utc::now()).await.unwrap(),
        DeliverOutcome::RetryAfter(_)
    ));
}

#[tokio::test]
async fn the_ssrf_guard_refuses_loopback_by_url_and_by_resolved_name() {
    let receiver = Receiver::start(vec![]).await;
    let mut s = setup(&receiver.url("/hook"), Duration::from_secs(5)).await;
    // Production policy: the http://127.0.0.1 endpoint is refused before any connection.
    s.deliver.config.network = NetworkPolicy::PublicOnly;
    s.deliver.http = Arc::new(ReqwestSender::new(NetworkPolicy::PublicOnly).unwrap());
    assert_eq!(
        s.deliver.deliver(&task(), 1, Utc::now()).await.unwrap(),
        DeliverOutcome::DeadLettered
    );
    // A DNS name that resolves to 127.0.0.1 is refused by the resolver at send time.
    let port = receiver.url("").rsplit(':').next().unwrap().to_owned();
    let sender = ReqwestSender::new(NetworkPolicy::PublicOnly).unwrap();
    let url = format!("http://localhost:{port}/hook");
    let r = sender
        .post(HttpRequest {
            url: &url,
            headers: &[],
            body: b"{}",
            timeout: Duration::from_secs(5),
        })
        .await;
    assert!(
        matches!(&r, Err(HttpError::Network(text)) if text.contains("blocked address")),
        "{r:?}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn a_dead_lettered_delivery_is_redriven_to_the_recovered_receiver_once() {
    use shared::delivery::redrive::{Selection, redrive};
    let receiver = Receiver::start(vec![Answer::status(503)]).await;
    let s = setup(&receiver.url("/hook"), Duration::from_secs(10)).await;
    let task = task();
    let last = s.deliver.config.retry.max_attempts;
    assert_eq!(
        s.deliver.deliver(&task, last, Utc::now()).await.unwrap(),
        DeliverOutcome::DeadLettered
    );
    let report = redrive(
        s.dlq.as_ref(),
        s.queue.as_ref(),
        s.deliver.blobs.as_ref(),
        &Selection::Endpoint("ep_test".into()),
        10,
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(report.moved, 1);
    let messages = s
        .queue
        .receive(10, Duration::ZERO, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        s.deliver
            .process_batch(&messages, Utc::now())
            .await
            .is_empty()
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(
        |r| r.header("x-idempotency-key") == Some(task.delivery_id.as_str())
            && r.body == task.body.as_bytes()
    ));
    assert!(s.dlq.is_empty());
}

#[tokio::test]
async fn a_redelivered_task_whose_earlier_attempt_succeeded_is_not_posted_again() {
    let receiver = Receiver::start(vec![Answer::status(500)]).await;
    let s = setup(&receiver.url("/hook"), Duration::from_secs(10)).await;
    let task = task();
    let now = Utc::now();
    // Attempt 1 fails, attempt 2 is delivered, then the process stops before acknowledging:
    // SQS hands the message out again as attempt 3 (and, after another crash, 4).
    assert!(matches!(
        s.deliver.deliver(&task, 1, now).await.unwrap(),
        DeliverOutcome::RetryAfter(_)
    ));
    assert_eq!(
        s.deliver.deliver(&task, 2, now).await.unwrap(),
        DeliverOutcome::Delivered
    );
    assert_eq!(
        s.deliver.deliver(&task, 3, now).await.unwrap(),
        DeliverOutcome::AlreadyDelivered
    );
    // A receive that left no record (a crash before the attempt) is skipped over.
    assert_eq!(
        s.deliver.deliver(&task, 5, now).await.unwrap(),
        DeliverOutcome::AlreadyDelivered
    );
    assert_eq!(
        receiver.received().len(),
        2,
        "one failed POST, one delivered POST"
    );
    let (record, _) = s
        .deliver
        .deliveries()
        .get(&task.delivery_id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, DeliveryStatus::Delivered);
    assert_eq!(record.attempt_count, 2);
    let outcomes: Vec<_> = record
        .attempts
        .iter()
        .map(|a| (a.attempt, a.status, a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, Some(500), DeliveryStatus::Retrying),
            (2, Some(200), DeliveryStatus::Delivered)
        ]
    );
    assert_eq!(record.attempts[0].error.as_deref(), Some("HTTP 500"));
    // A different task on its second attempt, with only a failed first attempt, is posted.
    let other = self::task();
    let receiver2 = Receiver::start(vec![]).await;
    let s2 = setup(&receiver2.url("/hook"), Duration::from_secs(10)).await;
    assert_eq!(
        s2.deliver.deliver(&other, 2, now).await.unwrap(),
        DeliverOutcome::Delivered
    );
    assert_eq!(receiver2.received().len(), 1);
}

#[tokio::test]
async fn a_second_copy_of_a_delivered_task_is_not_posted_again() {
    let receiver = Receiver::start(vec![]).await;
    let s = setup(&receiver.url("/hook"), Duration::from_secs(10)).await;
    let task = task();
    let now = Utc::now();
    assert_eq!(
        s.deliver.deliver(&task, 1, now).await.unwrap(),
        DeliverOutcome::Delivered
    );
    // The fan-out crashed after sending the task and sent it again: a new message, attempt 1.
    assert_eq!(
        s.deliver.deliver(&task, 1, now).await.unwrap(),
        DeliverOutcome::AlreadyDelivered
    );
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_claim_checked_task_is_dead_lettered_as_it_came_and_redriven_whole() {
    use shared::delivery::redrive::{Selection, redrive};
    use shared::ports::codec::{INLINE_LIMIT, decode, encode};
    let receiver = Receiver::start(vec![Answer::status(400)]).await;
    let s = setup(&receiver.url("/hook"), Duration::from_secs(10)).await;
    // Too large for one SQS message: it travels as a claim-check, as fan-out sends it.
    let task = task_with(json!({"status": "WORKING", "note": "x".repeat(INLINE_LIMIT)}));
    let now = Utc::now();
    let body = encode(
        &task,
        &format!("dlv#{}", task.delivery_id),
        s.deliver.blobs.as_ref(),
        // Kept one day only: parking must extend it to what the dead-letter queue needs.
        now + chrono::Duration::days(1),
    )
    .await
    .unwrap();
    assert!(body.len() < 1024, "a claim-check, not the task");
    s.queue
        .send_batch(&[OutgoingMessage {
            id: "0".into(),
            body: body.clone(),
            delay: None,
        }])
        .await
        .unwrap();
    let messages = s
        .queue
        .receive(10, Duration::ZERO, Duration::from_secs(30))
        .await
        .unwrap();
    // A final 4xx: dead-lettered on the first attempt.
    assert!(s.deliver.process_batch(&messages, now).await.is_empty());
    let parked = s
        .dlq
        .receive(10, Duration::ZERO, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body, body, "the body that came in, unchanged");
    // Still readable for as long as the DLQ keeps it (14 days) and a redrive after that.
    let late = now + chrono::Duration::days(18);
    let back: DeliveryTask = decode(&parked[0].body, s.deliver.blobs.as_ref(), late)
        .await
        .unwrap();
    assert_eq!(back, task);
    let report = redrive(
        s.dlq.as_ref(),
        s.queue.as_ref(),
        s.deliver.blobs.as_ref(),
        &Selection::Event(task.event_ids[0]),
        10,
        late,
    )
    .await
    .unwrap();
    assert_eq!(report.moved, 1);
    let again = s
        .queue
        .receive(10, Duration::ZERO, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body, body);
    assert!(s.deliver.process_batch(&again, late).await.is_empty());
    let got = receiver.received();
    assert_eq!(got.len(), 2, "the first attempt and the redriven one");
    assert!(got.iter().all(|r| r.body == task.body.as_bytes()));
}
