use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

use super::*;
use crate::ids::SourceId;
use crate::model::{EventType, InboundEvent};
use crate::ports::codec::receive_all;
use crate::ports::memory::{MemoryBlobStore, MemoryQueue};
use crate::ports::{
    FailedEntry, InboundAuth, OutgoingMessage, ReceivedMessage, Source, StaticSources,
};
use crate::providers::test_support::fixture;
use crate::signature::{Secret, sign_meta, sign_twilio, sign_waha};

const META_SECRET: &str = "meta_app_secret_example";
const WAHA_KEY: &str = "waha_hmac_key_example";

const TWILIO_TOKEN: &str = "twilio_auth_token_example";
const SHARED_TOKEN: &str = "a-long-random-shared-token";

fn source(id: &str, provider: Provider, secret: &str, inbound: InboundAuth) -> Source {
    Source {
        id: SourceId::parse(id).unwrap(),
        provider,
        secrets: vec![Secret::from(secret)],
        verify_tokens: vec![],
        inbound,
        send: None,
    }
}

fn sources() -> Arc<StaticSources> {
    let token_in = |header: &str, query: &str| InboundAuth {
        token_header: header.to_owned(),
        token_query: query.to_owned(),
        ..InboundAuth::default()
    };
    Arc::new(StaticSources::new([
        source(
            "twilio-main",
            Provider::Twilio,
            TWILIO_TOKEN,
            InboundAuth {
                public_url: Some("https://gw.example.com/webhooks/twilio/status".into()),
                ..InboundAuth::default()
            },
        ),
        source(
            "twilio-rebuilt",
            Provider::Twilio,
            TWILIO_TOKEN,
            InboundAuth::default(),
        ),
        source(
            "d360-main",
            Provider::Dialog360,
            SHARED_TOKEN,
            InboundAuth::default(),
        ),
        source(
            "gupshup-main",
            Provider::Gupshup,
            SHARED_TOKEN,
            token_in("X-Wagate-Token", "key"),
        ),
        source(
            "evo-main",
            Provider::Evolution,
            SHARED_TOKEN,
            token_in("Authorization", "token"),
        ),
        Source {
            id: SourceId::parse("meta-main").unwrap(),
            provider: Provider::Meta,
            secrets: vec![Secret::from("rotated_out"), Secret::from(META_SECRET)],
            verify_tokens: vec![Secret::from("verify-me")],
            inbound: InboundAuth::default(),
            send: None,
        },
        Source {
            id: SourceId::parse("waha-main").unwrap(),
            provider: Provider::Waha,
            secrets: vec![Secret::from(WAHA_KEY)],
            verify_tokens: vec![],
            inbound: InboundAuth::default(),
            send: None,
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
    IngestRequest::post(source_id, body, &[])
}

/// POSTs `body` to the Meta source, signed with its app secret.
async fn post_meta_signed(ingest: &Ingest, body: &[u8]) -> IngestResponse {
    let sig = sign_meta(&Secret::from(META_SECRET), body);
    let headers = [("X-Hub-Signature-256", sig.as_str())];
    let request = IngestRequest::post("meta-main", body, &headers);
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
    let headers = [
        ("x-webhook-hmac", sig.as_str()),
        ("X-Webhook-Hmac-Algorithm", "sha512"),
    ];
    let req = IngestRequest::post("waha-main", &body, &headers);
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
        let headers: Vec<(&str, &str)> = sig
            .map(|s| ("x-hub-signature-256", s))
            .into_iter()
            .collect();
        let r = h
            .ingest
            .handle(
                IngestRequest::post("meta-main", &body, &headers),
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

/// A Meta text message whose `extra` field nests `depth` arrays.
fn meta_nested(depth: usize) -> Vec<u8> {
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"messages":[{{"from":"16505551234","id":"wamid.deep{depth}","timestamp":"1749416383","type":"unknown_kind","extra":{nested}}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

/// A WAHA event of an unknown kind whose payload nests `depth` arrays.
fn waha_nested(depth: usize) -> Vec<u8> {
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    format!(
        r#"{{"id":"evt_deep{depth}","timestamp":1749416383000,"event":"some.future.event","session":"default","payload":{{"x":{nested}}}}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn whatever_ingest_accepts_the_queue_decoder_reads() {
    // Nesting up to serde_json's limit: each body is either refused with a clear 400 or
    // enqueued as events that track can decode, never accepted and then undecodable.
    let h = harness();
    let mut accepted = 0;
    for (depth, waha) in (1..=130).step_by(3).flat_map(|d| [(d, false), (d, true)]) {
        let r = if waha {
            let body = waha_nested(depth);
            let sig = sign_waha(&Secret::from(WAHA_KEY), &body);
            let headers = [
                ("x-webhook-hmac", sig.as_str()),
                ("x-webhook-hmac-algorithm", "sha512"),
            ];
            let req = IngestRequest::post("waha-main", &body, &headers);
            h.ingest.handle(req, Utc::now()).await
        } else {
            post_meta_signed(&h.ingest, &meta_nested(depth)).await
        };
        match r.status {
            200 => {
                accepted += 1;
                let events = drain(&h).await;
                assert_eq!(events.len(), 1, "depth {depth}");
                // Every later stage reads it with serde_json's limit of 128 levels, inside
                // wrappers of its own (batches, delivery tasks): 16 levels to spare.
                let event = serde_json::to_string(&events[0]).unwrap();
                let wrapped = format!("{}{event}{}", "[".repeat(16), "]".repeat(16));
                assert!(
                    serde_json::from_str::<Value>(&wrapped).is_ok(),
                    "depth {depth} (waha: {waha}) was accepted but does not decode"
                );
            }
            400 => assert_eq!(error_code(&r), "invalid_body", "depth {depth}: {}", r.body),
            other => panic!("depth {depth}: {other} {}", r.body),
        }
    }
    // Depths 1 to 49, for both providers.
    assert!(accepted >= 34, "ordinary nesting is accepted ({accepted})");
}

#[test]
fn json_depth_counts_brackets_outside_strings() {
    assert_eq!(json_depth(b"{}"), 1);
    assert_eq!(json_depth(br#"{"a":[1,{"b":[]}]}"#), 4);
    assert_eq!(json_depth(br#"{"a":"[[[[{{{{\"[["}"#), 1);
    assert_eq!(json_depth(br#"["\\",[["x"]]]"#), 3);
    assert_eq!(json_depth(b"]]]"), 0);
    assert_eq!(json_depth(b"plain"), 0);
}

/// A signed Meta body of `n` minimal delivery statuses.
fn meta_statuses(n: usize) -> Vec<u8> {
    let statuses: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"wamid.s{i}","status":"delivered","timestamp":"1749416383","recipient_id":"16505551234"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"statuses":[{}]}}}}]}}]}}"#,
        statuses.join(",")
    )
    .into_bytes()
}

/// A queue that takes a while to answer and counts how many sends overlap.
#[derive(Debug)]
struct SlowQueue {
    inner: MemoryQueue,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Queue for SlowQueue {
    async fn send_batch(&self, m: &[OutgoingMessage]) -> Result<Vec<FailedEntry>, BackendError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let out = self.inner.send_batch(m).await;
        self.in_flight.fetch_sub(1, SeqCst);
        out
    }
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        self.inner.receive(max, wait, visibility).await
    }
    async fn delete(&self, receipt: &str) -> Result<(), BackendError> {
        self.inner.delete(receipt).await
    }
    async fn change_visibility(&self, receipt: &str, d: Duration) -> Result<(), BackendError> {
        self.inner.change_visibility(receipt, d).await
    }
}

#[tokio::test]
async fn the_largest_body_of_statuses_is_enqueued_whole_with_overlapping_sends() {
    // 1 MiB of minimal statuses: about 11,000 events here, over 1,000 queue calls. They
    // overlap (ingest's timeout would not see 1,000 calls one after another) and every event
    // is on the queue when the answer is 200.
    let queue = Arc::new(SlowQueue {
        inner: MemoryQueue::new("inbound"),
        in_flight: 0.into(),
        most: 0.into(),
    });
    let mut n = 0;
    let body = loop {
        let body = meta_statuses(n + 500);
        if body.len() > 1024 * 1024 {
            break meta_statuses(n);
        }
        n += 500;
    };
    let ingest = Ingest {
        sources: sources(),
        queue: queue.clone(),
        blobs: Arc::new(MemoryBlobStore::new()),
        config: IngestConfig::default(),
    };
    let r = post_meta_signed(&ingest, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.received, n);
    let most = queue.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most > 1 && most <= SEND_CONCURRENCY, "{most} sends at once");
    let events = receive_all(
        &queue.inner,
        &MemoryBlobStore::new(),
        Duration::from_secs(30),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(events.len(), n);
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .map(|e: &InboundEvent| e.dedup_key.as_str())
        .collect();
    assert_eq!(ids.len(), n);
}

#[tokio::test]
async fn more_events_than_the_cap_get_413_and_enqueue_nothing() {
    let mut h = harness();
    h.ingest.config.max_events = 100;
    let r = post_meta_signed(&h.ingest, &meta_statuses(101)).await;
    assert_eq!(r.status, 413);
    assert_eq!(error_code(&r), "too_many_events");
    assert!(drain(&h).await.is_empty());
    let r = post_meta_signed(&h.ingest, &meta_statuses(100)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(drain(&h).await.len(), 100);
}

mod router {
    //! The ingest router: the same answers as `Ingest::handle`, over HTTP requests.

    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;
    use crate::clock::Clock;
    use crate::pipeline::ingest::Received;

    async fn send(ingest: Ingest, request: Request<Body>) -> (u16, String, String, usize) {
        let response = Arc::new(ingest)
            .router(Clock::system())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let received = response.extensions().get::<Received>().map_or(0, |r| r.0);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
            received,
        )
    }

    fn post(uri: &str, body: Vec<u8>, signature: Option<String>) -> Request<Body> {
        let mut request = Request::post(uri);
        if let Some(s) = signature {
            request = request.header("x-hub-signature-256", s);
        }
        request.body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn a_signed_webhook_is_accepted_over_its_exact_bytes() {
        let setup = harness();
        let body = fixture("meta-text.json").to_vec();
        let signature = sign_meta(&Secret::from(META_SECRET), &body);
        let (status, content_type, text, received) = send(
            setup.ingest,
            post("/webhooks/meta-main/", body, Some(signature)),
        )
        .await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/json"),
            "{text}"
        );
        assert_eq!(received, 1);
    }

    #[tokio::test]
    async fn a_wrong_signature_is_401() {
        let setup = harness();
        let body = fixture("meta-text.json").to_vec();
        let mut tampered = body.clone();
        tampered.push(b' ');
        let signature = sign_meta(&Secret::from(META_SECRET), &tampered);
        let (status, _, text, _) = send(
            setup.ingest,
            post("/webhooks/meta-main", body, Some(signature)),
        )
        .await;
        assert_eq!(status, 401);
        assert!(text.contains("invalid_signature"), "{text}");
    }

    #[tokio::test]
    async fn a_body_over_the_configured_limit_is_413_not_axums_default() {
        let mut setup = harness();
        setup.ingest.config.max_body_bytes = 4096;
        let (status, content_type, text, _) = send(
            setup.ingest.clone(),
            post("/webhooks/meta-main", vec![b' '; 4097], None),
        )
        .await;
        assert_eq!((status, content_type.as_str()), (413, "application/json"));
        assert!(text.contains("payload_too_large"), "{text}");
        // Above axum's own default (2 MB) the configured limit holds too.
        setup.ingest.config.max_body_bytes = 3 << 20;
        let big = vec![b' '; (2 << 20) + 1];
        let (status, _, _, _) =
            send(setup.ingest.clone(), post("/webhooks/meta-main", big, None)).await;
        assert_eq!(
            status, 401,
            "within the limit: read, then refused as unsigned"
        );
        // The checks before the size still come first.
        setup.ingest.config.max_body_bytes = 4096;
        let (status, _, _, _) = send(
            setup.ingest,
            post("/webhooks/nobody", vec![b' '; 5000], None),
        )
        .await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn other_paths_and_methods_get_ingests_answers() {
        let setup = harness();
        let (status, _, text, _) = send(
            setup.ingest.clone(),
            post("/hooks/meta-main", Vec::new(), None),
        )
        .await;
        assert_eq!(status, 404);
        assert!(text.contains("unknown_source"), "{text}");
        let request = Request::put("/webhooks/meta-main")
            .body(Body::empty())
            .unwrap();
        let (status, _, _, _) = send(setup.ingest.clone(), request).await;
        assert_eq!(status, 405);
        let request = Request::get(
            "/webhooks/meta-main?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
        )
        .body(Body::empty())
        .unwrap();
        let (status, _, _, _) = send(setup.ingest, request).await;
        assert_eq!(status, 403);
    }
}

#[tokio::test]
async fn twilio_requests_verify_against_the_public_url_and_get_empty_twiml() {
    let h = harness();
    let body = fixture("twilio-status-read.form.txt");
    // The worked example of the fixtures' signature notes.
    let headers = [("X-Twilio-Signature", "ry8tq/MlEBVpJPUeem0id3hhh4A=")];
    let r = h
        .ingest
        .handle(
            IngestRequest::post("twilio-main", &body, &headers),
            Utc::now(),
        )
        .await;
    assert_eq!((r.status, r.content_type), (200, "text/xml"));
    assert_eq!(r.body, EMPTY_TWIML);
    assert_eq!(r.received, drain(&h).await.len());
    assert!(r.received >= 1);

    // Forged, missing, and signed for another URL (the same request replayed elsewhere).
    let forged = sign_twilio(
        &Secret::from("not-the-token"),
        "https://gw.example.com/webhooks/twilio/status",
        &body,
    );
    let elsewhere = sign_twilio(
        &Secret::from(TWILIO_TOKEN),
        "https://gw.example.com/webhooks/twilio-other",
        &body,
    );
    for sig in [Some(forged.as_str()), None, Some(elsewhere.as_str())] {
        let headers: Vec<(&str, &str)> =
            sig.map(|s| ("x-twilio-signature", s)).into_iter().collect();
        let r = h
            .ingest
            .handle(
                IngestRequest::post("twilio-main", &body, &headers),
                Utc::now(),
            )
            .await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (401, "invalid_signature")
        );
    }
    assert!(drain(&h).await.is_empty());
}

#[tokio::test]
async fn without_a_public_url_twilio_is_verified_against_the_url_the_request_names() {
    let h = harness();
    let body = fixture("twilio-inbound.form.txt");
    let called = "https://abc.execute-api.us-east-1.amazonaws.com/webhooks/twilio-rebuilt?x=1";
    let sig = sign_twilio(&Secret::from(TWILIO_TOKEN), called, &body);
    let request = |proto: &'static str, host: &'static str| {
        let headers = vec![
            ("x-twilio-signature", sig.clone()),
            ("X-Forwarded-Proto", proto.to_owned()),
            ("Host", host.to_owned()),
        ];
        headers
    };
    for (proto, host, status) in [
        ("https", "abc.execute-api.us-east-1.amazonaws.com", 200),
        ("http", "abc.execute-api.us-east-1.amazonaws.com", 401),
        ("https", "evil.example.com", 401),
    ] {
        let owned = request(proto, host);
        let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let req = IngestRequest {
            path: "/webhooks/twilio-rebuilt",
            query: "x=1",
            ..IngestRequest::post("twilio-rebuilt", &body, &headers)
        };
        let r = h.ingest.handle(req, Utc::now()).await;
        assert_eq!(r.status, status, "{proto}://{host}");
    }
    // What the Lambda adapter gives: an absolute URI and no forwarded headers.
    let headers = [("x-twilio-signature", sig.as_str())];
    for (origin, status) in [
        (
            Some(("https", "abc.execute-api.us-east-1.amazonaws.com")),
            200,
        ),
        (None, 401),
    ] {
        let req = IngestRequest {
            path: "/webhooks/twilio-rebuilt",
            origin,
            query: "x=1",
            ..IngestRequest::post("twilio-rebuilt", &body, &headers)
        };
        assert_eq!(h.ingest.handle(req, Utc::now()).await.status, status);
    }
}

#[tokio::test]
async fn token_sources_accept_the_token_in_their_header_query_or_evolution_apikey() {
    let h = harness();
    let meta_body = fixture("meta-text.json");
    let evolution_body = fixture("evolution-messages-upsert.json");
    let apikey_body = String::from_utf8(evolution_body.clone())
        .unwrap()
        .replace("REDACTED-INSTANCE-KEY", SHARED_TOKEN)
        .into_bytes();
    let bearer = format!("Bearer {SHARED_TOKEN}");
    let query = format!("key={SHARED_TOKEN}");
    let token_query = format!("token={SHARED_TOKEN}");
    type Case<'a> = (&'a str, &'a [u8], Vec<(&'a str, &'a str)>, &'a str, u16);
    let cases: Vec<Case<'_>> = vec![
        // 360dialog: the default header, or the default query parameter.
        (
            "d360-main",
            &meta_body,
            vec![("x-wagate-token", SHARED_TOKEN)],
            "",
            200,
        ),
        ("d360-main", &meta_body, vec![], &token_query, 200),
        (
            "d360-main",
            &meta_body,
            vec![("x-wagate-token", "wrong")],
            "",
            401,
        ),
        ("d360-main", &meta_body, vec![], "", 401),
        (
            "d360-main",
            &meta_body,
            vec![("X-Hub-Signature-256", "sha256=00")],
            "",
            401,
        ),
        // Gupshup: a renamed query parameter; the default one no longer counts; an empty
        // request (Gupshup's check of the callback URL) is accepted once verified.
        ("gupshup-main", b"{}", vec![], &query, 200),
        ("gupshup-main", b"", vec![], &query, 200),
        ("gupshup-main", b"", vec![], "", 401),
        ("gupshup-main", b"{}", vec![], &token_query, 401),
        ("gupshup-main", b"{}", vec![], "key=", 401),
        // Evolution: a bearer header, or the body's apikey.
        (
            "evo-main",
            &evolution_body,
            vec![("Authorization", &bearer)],
            "",
            200,
        ),
        ("evo-main", &apikey_body, vec![], "", 200),
        ("evo-main", &evolution_body, vec![], "", 401),
        (
            "evo-main",
            &evolution_body,
            vec![("Authorization", "Bearer wrong")],
            "",
            401,
        ),
    ];
    for (id, body, headers, query, status) in cases {
        let req = IngestRequest {
            query,
            ..IngestRequest::post(id, body, &headers)
        };
        let r = h.ingest.handle(req, Utc::now()).await;
        assert_eq!(r.status, status, "{id} {headers:?} {query}");
        if status == 401 {
            assert_eq!(error_code(&r), "invalid_signature");
        } else if id == "gupshup-main" {
            // Gupshup wants an empty answer.
            assert_eq!((r.body.as_str(), r.content_type), ("", "text/plain"));
        }
    }
}

#[tokio::test]
async fn a_360dialog_body_is_read_as_metas_envelope() {
    let h = harness();
    let body = fixture("meta-text.json");
    let headers = [("X-Wagate-Token", SHARED_TOKEN)];
    let r = h
        .ingest
        .handle(
            IngestRequest::post("d360-main", &body, &headers),
            Utc::now(),
        )
        .await;
    assert_eq!(r.status, 200);
    let events = drain(&h).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::MessageReceived);
    assert_eq!(events[0].data.source.provider, Provider::Dialog360);
    assert!(events[0].dedup_key.starts_with("d360-main:"));
}
