//! `POST /v1/messages` under storage faults: every document call of a send fails in turn,
//! cleanly or after applying, and the client retries with the same `Idempotency-Key` as the
//! API asks. The provider (a Graph API stand-in that counts its calls) is called once whatever
//! failed; the send ends either recorded (201, the same answer on every later retry, one
//! message document) or, when what failed was the record of the provider's answer, refused
//! as `send_in_doubt` rather than sent twice. Retries come a minute apart, as a client's would:
//! a conversation pointer left by an attempt that died before writing its conversation is
//! waited for until its lease has passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::admin::{Admin, AdminConfig};
use crate::ids::SourceId;
use crate::model::Provider;
use crate::pipeline::track::state::{ConversationSettings, Conversations};
use crate::pipeline::track::sweep::Sweep;
use crate::ports::faults::{Fault, Faults, FaultyDocs};
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::ports::{BlobStore, DocumentStore, Source, StaticSources};
use crate::send::api::{ApiAnswer, ApiCall, CallError, ProviderApi};
use crate::send::{MetaSend, SendSettings, Sender};
use crate::signature::Secret;

const KEY: &str = "admin-key-1";

/// Answers every send as the Cloud API does, with a new message id each time, and counts.
#[derive(Debug, Default)]
struct Graph {
    calls: AtomicUsize,
}

#[async_trait]
impl ProviderApi for Graph {
    async fn call(&self, _call: ApiCall<'_>) -> Result<ApiAnswer, CallError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(ApiAnswer {
            status: 200,
            retry_after: None,
            body: json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "+15550001111", "wa_id": "15550001111"}],
                "messages": [{"id": format!("wamid.SEND{n}"), "message_status": "accepted"}]
            })
            .to_string()
            .into_bytes(),
            truncated: false,
        })
    }
}

struct World {
    admin: Admin,
    graph: Arc<Graph>,
    faults: Arc<Faults>,
    docs: Arc<MemoryDocumentStore>,
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 1).unwrap()
}

fn world() -> World {
    let faults = Faults::none();
    let plain = Arc::new(MemoryDocumentStore::new());
    let docs: Arc<dyn DocumentStore> = Arc::new(FaultyDocs {
        inner: plain.clone(),
        layer: faults.clone(),
    });
    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let graph = Arc::new(Graph::default());
    let source = Source {
        id: SourceId::parse("src").unwrap(),
        provider: Provider::Meta,
        secrets: vec![Secret::new("app-secret")],
        verify_tokens: Vec::new(),
        inbound: Default::default(),
        send: Some(SendSettings::Meta(MetaSend {
            access_token: Secret::new("EAAG-token"),
            phone_number_id: Some("106540352242922".into()),
            graph_url: "https://graph.test".into(),
            graph_version: "v23.0".into(),
        })),
    };
    let conversations = Conversations {
        docs: docs.clone(),
        settings: ConversationSettings {
            idle: Duration::from_secs(24 * 3600),
            message_ttl: Duration::from_secs(30 * 86400),
            recent_messages: 3,
        },
    };
    let admin = Admin::new(
        docs,
        blobs.clone(),
        Arc::new(MemoryQueue::new("delivery")),
        Arc::new(MemoryQueue::new("delivery-dlq")),
        Duration::from_secs(30 * 86400),
        AdminConfig {
            api_keys: vec![Secret::from(KEY.to_owned())],
            ..AdminConfig::default()
        },
    )
    .with_conversations(Sweep::emitting_to(
        conversations,
        Arc::new(MemoryQueue::new("outbound")),
        blobs,
        Duration::from_secs(86400),
        10,
    ))
    .with_sources(Arc::new(StaticSources::new([source])))
    .with_provider(Sender::new(graph.clone()));
    World {
        admin,
        graph,
        faults,
        docs: plain,
    }
}

async fn send_at(w: &World, now: DateTime<Utc>) -> (u16, Value) {
    let body = json!({"source_id": "src", "to": "+15550001111", "type": "text",
                      "text": {"body": "Your order shipped"}});
    let headers = [
        ("x-api-key", KEY),
        ("idempotency-key", "order-1042"),
        ("content-type", "application/json"),
    ];
    let admin = &w.admin;
    crate::admin::test_support::request(
        admin,
        now,
        "POST",
        "/v1/messages",
        &headers,
        body.to_string(),
    )
    .await
}

async fn send(w: &World) -> (u16, Value) {
    send_at(w, at()).await
}

/// Whether the message document of the provider's message `id` is stored.
async fn recorded(w: &World, id: &str) -> bool {
    w.docs
        .get(&format!("msg#src#{id}"), at())
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_send_whose_storage_calls_fail_in_turn_reaches_the_provider_once() {
    // How many document calls a send makes when nothing fails.
    let clean = world();
    let (status, first) = send(&clean).await;
    assert_eq!(status, 201, "{first}");
    let calls = clean.faults.calls();
    assert!(calls >= 4, "{calls}");
    assert_eq!(
        send(&clean).await,
        (201, first.clone()),
        "a retry answers the same"
    );
    assert_eq!(clean.graph.calls.load(Ordering::SeqCst), 1);
    assert!(recorded(&clean, "wamid.SEND1").await);

    let mut in_doubt = 0;
    for fault in [Fault::Clean, Fault::Ambiguous] {
        for k in 1..=calls {
            let w = world();
            w.faults.fail_in(k, fault);
            let mut answers = Vec::new();
            for attempt in 0..4 {
                // A client retries later: past the lease of a conversation pointer left by an
                // attempt that failed before writing its conversation (track's 60 s).
                let answer = send_at(&w, at() + chrono::Duration::seconds(61 * attempt)).await;
                let done = answer.0 == 201 || answer.1["error"]["code"] == "send_in_doubt";
                answers.push(answer);
                if done {
                    break;
                }
            }
            let (status, last) = answers.last().cloned().unwrap();
            assert_eq!(
                w.graph.calls.load(Ordering::SeqCst),
                1,
                "{fault:?} at call {k}: {answers:?}"
            );
            match status {
                201 => {
                    assert_eq!(last["message_id"], "wamid.SEND1", "{fault:?} at call {k}");
                    assert_eq!(send(&w).await, (201, last.clone()), "{fault:?} at call {k}");
                    assert!(recorded(&w, "wamid.SEND1").await, "{fault:?} at call {k}");
                }
                409 => {
                    assert_eq!(last["error"]["code"], "send_in_doubt", "{fault:?} at {k}");
                    in_doubt += 1;
                }
                other => panic!("{fault:?} at call {k}: {other} {answers:?}"),
            }
        }
    }
    // Only a clean failure of the record of the provider's answer leaves a send in doubt.
    assert_eq!(in_doubt, 1, "sends in doubt");
}
