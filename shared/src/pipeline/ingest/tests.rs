use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

use super::*;
use crate::ids::SourceId;
use crate::model::{EventType, InboundEvent};
use crate::pipeline::codec::receive_all;
use crate::ports::memory::{MemoryBlobStore, MemoryQueue};
use crate::ports::{FailedEntry, OutgoingMessage, ReceivedMessage, Source, StaticSources};
use crate::providers::test_support::fixture;
use crate::signature::{Secret, sign_meta, sign_waha};

const META_SECRET: &str = "meta_app_secret_example";
const WAHA_KEY: &str = "waha_hmac_key_example";

fn sources() -> Arc<StaticSources> {
    Arc::new(StaticSources::new([
        Source {
            id: SourceId::parse("meta-main").unwrap(),
            provider: Provider::Meta,
            secrets: vec![Secret::from("rotated_out"), Secret::from(META_SECRET)],
            verify_tokens: vec![Secret::from("verify-me")],
        },
        Source {
            id: SourceId::parse("waha-main").unwrap(),
            provider: Provider::Waha,
            secrets: vec![Secret::from(WAHA_KEY)],
            verify_tokens: vec![],
        },
    ]))
}

struct Harness {
    ingest: Ingest,
    queue: Arc<MemoryQueue>,
    blobs: Arc<MemoryBlobStore>,
}

fn harness() -> Harness {
    let queue = Arc::new(MemoryQueue::new("inbound"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let ingest = Ingest {
        sources: sources(),
        queue: queue.clone(),
        blobs: blobs.clone(),
        config: IngestConfig {
            max_body_bytes: 64 * 1024,
            ..IngestConfig::default()
        },
    };
    Harness {
        ingest,
        queue,
        blobs,
    }
}

fn post<'a>(source_id: &'a str, body: &'a [u8]) -> IngestRequest<'a> {
    IngestRequest {
        method: Method::Post,
        source_id,
        query: "",
        body,
        hub_signature_256: None,
        webhook_hmac: None,
        webhook_hmac_algorithm: None,
    }
}

/// POSTs `body` to the Meta source, signed with its app secret.
async fn post_meta_signed(ingest: &Ingest, body: &[u8]) -> IngestResponse {
    let sig = sign_meta(&Secret::from(META_SECRET), body);
    let request = IngestRequest {
        hub_signature_256: Some(&sig),
        ..post("meta-main", body)
    };
    ingest.handle(request, Utc::now()).await
}

async fn drain(h: &Harness) -> Vec<InboundEvent> {
    receive_all(
        h.queue.as_ref(),
        h.blobs.as_ref(),
        Duration::from_secs(30),
        Utc::now(),
    )
    .await
    .unwrap()
}

fn error_code(r: &IngestResponse) -> String {
    let v: Value = serde_json::from_str(&r.body).unwrap();
    v["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_signed_meta_batch_is_answered_200_after_every_event_is_enqueued() {
    let h = harness();
    let body = fixture("meta-multi-entry-batch.json");
    let r = post_meta_signed(&h.ingest, &body).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"received":5}"#));
    let events = drain(&h).await;
    assert_eq!(events.len(), 5);
    let request_id = events[0].request_id.clone().unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.request_id.as_deref() == Some(request_id.as_str()))
    );
    let raw = h
        .blobs
        .get(&format!("req#{request_id}"), Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        raw, body,
        "the raw request is kept byte for byte for replay"
    );
}

#[tokio::test]
async fn with_no_raw_retention_the_events_go_and_no_raw_request_is_kept() {
    let mut h = harness();
    h.ingest.config.raw_ttl = Duration::ZERO;
    let body = fixture("meta-multi-entry-batch.json");
    let r = post_meta_signed(&h.ingest, &body).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"received":5}"#));
    let events = drain(&h).await;
    assert_eq!(events.len(), 5);
    let request_id = events[0].request_id.clone().unwrap();
    assert_eq!(
        h.blobs
            .get(&format!("req#{request_id}"), Utc::now())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_signed_waha_event_is_enqueued() {
    let h = harness();
    let body = fixture("waha-message.json");
    let sig = sign_waha(&Secret::from(WAHA_KEY), &body);
    let req = IngestRequest {
        webhook_hmac: Some(&sig),
        webhook_hmac_algorithm: Some("sha512"),
        ..post("waha-main", &body)
    };
    let r = h.ingest.handle(req, Utc::now()).await;
    assert_eq!(r.status, 200);
    let events = drain(&h).await;
    assert_eq!(
        events.iter().map(|e| e.event_type).collect::<Vec<_>>(),
        vec![EventType::MessageReceived]
    );
}

#[tokio::test]
async fn bad_or_missing_signatures_get_401_and_enqueue_nothing() {
    let h = harness();
    let body = fixture("meta-text.json");
    let wrong = sign_meta(&Secret::from("someone_else"), &body);
    for sig in [None, Some("sha256=nothex"), Some(wrong.as_str())] {
        let r = h
            .ingest
            .handle(
                IngestRequest {
                    hub_signature_256: sig,
                    ..post("meta-main", &body)
                },
                Utc::now(),
            )
            .await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (401, "invalid_signature"),
            "{sig:?}"
        );
        assert!(
            !r.body.contains("X-Hub"),
            "the answer does not say which part failed"
        );
    }
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn unknown_sources_get_404() {
    let h = harness();
    let r = h.ingest.handle(post("nope", b"{}"), Utc::now()).await;
    assert_eq!((r.status, error_code(&r).as_str()), (404, "unknown_source"));
}

#[tokio::test]
async fn oversized_bodies_get_413_before_any_work() {
    let h = harness();
    let body = vec![b' '; 64 * 1024 + 1];
    let r = h.ingest.handle(post("meta-main", &body), Utc::now()).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (413, "payload_too_large")
    );
}

#[tokio::test]
async fn a_verified_body_that_is_not_json_gets_400() {
    let h = harness();
    let body = b"this is not json";
    let r = post_meta_signed(&h.ingest, body).await;
    assert_eq!((r.status, error_code(&r).as_str()), (400, "invalid_body"));
}

#[tokio::test]
async fn the_meta_handshake_echoes_the_challenge_or_refuses() {
    let h = harness();
    let get = |query| IngestRequest {
        method: Method::Get,
        query,
        ..post("meta-main", b"")
    };
    let ok = h
        .ingest
        .handle(
            get("hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444"),
            Utc::now(),
        )
        .await;
    assert_eq!(
        (ok.status, ok.content_type, ok.body.as_str()),
        (200, "text/plain", "1158201444")
    );
    let bad = h
        .ingest
        .handle(
            get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"),
            Utc::now(),
        )
        .await;
    assert_eq!(bad.status, 403);
    let not = h.ingest.handle(get(""), Utc::now()).await;
    assert_eq!(not.status, 400);
    let waha = h
        .ingest
        .handle(
            IngestRequest {
                method: Method::Get,
                ..post("waha-main", b"")
            },
            Utc::now(),
        )
        .await;
    assert_eq!(waha.status, 405);
}

/// A queue whose backend is down: every call fails as SQS does when unreachable.
#[derive(Debug)]
struct DownQueue;

#[async_trait]
impl Queue for DownQueue {
    async fn send_batch(&self, _: &[OutgoingMessage]) -> Result<Vec<FailedEntry>, BackendError> {
        Err(BackendError::unavailable(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "down",
        )))
    }
    async fn receive(
        &self,
        _: usize,
        _: Duration,
        _: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &str) -> Result<(), BackendError> {
        Ok(())
    }
    async fn change_visibility(&self, _: &str, _: Duration) -> Result<(), BackendError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_queue_failure_gets_503_so_the_provider_retries() {
    let mut h = harness();
    h.ingest.queue = Arc::new(DownQueue);
    let body = fixture("meta-text.json");
    let r = post_meta_signed(&h.ingest, &body).await;
    assert_eq!((r.status, error_code(&r).as_str()), (503, "unavailable"));
    assert!(!r.body.contains("down"), "no internal detail in the answer");
}
