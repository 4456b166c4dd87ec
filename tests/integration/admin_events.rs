//! The admin router over every `events/admin-*.json` (the files `sam local invoke` uses),
//! loaded as the Lambda runtime would, with the configuration of `events/env.json` and the
//! in-memory backends: exact status codes and bodies, and the state they leave.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_adapters::http::ReqwestSender;
use axum::Router;
use chrono::Utc;
use serde_json::Value;
use shared::admin::Admin;
use shared::delivery::endpoints::Endpoint;
use shared::delivery::request::DeliveryTask;
use shared::delivery::ssrf::NetworkPolicy;
use shared::model::EventType;
use shared::pipeline::track::state::{ConversationSettings, Conversations};
use shared::pipeline::track::sweep::Sweep;
use shared::ports::Queue;
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use shared::signature::{EndpointSecret, webhook_signature};
use shared::testing;
use tests::receiver::Receiver;
use tests::{invoke_router, repo_root};

const ENDPOINT: &str = "ep_01JBCQ3ZX0V9K8N7M6P5Q4R301";
/// The endpoint `admin-test-endpoint.json` sends to: a real receiver on 127.0.0.1.
const TEST_ENDPOINT: &str = "ep_01JBCQ3ZX0V9K8N7M6P5Q4R304";
const CONVERSATION: &str = "conv_01JBCQ3ZX0V9K8N7M6P5Q4R305";

struct Setup {
    admin: Admin,
    /// Where the conversation events go (everything but received messages).
    outbound: Arc<MemoryQueue>,
    receiver: Receiver,
    test_secret: EndpointSecret,
}

async fn setup() -> Setup {
    let text = std::fs::read_to_string(repo_root().join("events/env.json")).unwrap();
    let all: HashMap<String, HashMap<String, String>> = serde_json::from_str(&text).unwrap();
    let env = all["AdminFunction"].clone();
    let mut config = admin::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    // The test delivery goes to a receiver on 127.0.0.1.
    config.admin.network = NetworkPolicy::AllowLoopback;
    let admin = Admin::new(
        Arc::new(MemoryDocumentStore::new()),
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryQueue::new("delivery")),
        Arc::new(MemoryQueue::new("delivery-dlq")),
        config.record_ttl,
        config.admin,
    );
    // Conversations over the same stores, their events to a memory queue.
    let outbound = Arc::new(MemoryQueue::new("outbound"));
    let admin = admin.clone().with_conversations(Sweep::emitting_to(
        Conversations {
            docs: admin.docs.clone(),
            settings: ConversationSettings {
                idle: Duration::from_secs(86400),
                message_ttl: Duration::from_secs(86400),
                recent_messages: 5,
            },
        },
        outbound.clone(),
        admin.blobs.clone(),
        Duration::from_secs(86400),
        100,
    ));
    let admin = admin
        .with_sender(Arc::new(
            ReqwestSender::new(NetworkPolicy::AllowLoopback).unwrap(),
        ))
        .with_sources(Arc::new(shared::ports::StaticSources::new(
            config.sources.clone(),
        )));
    testing::active_conversation(
        admin.docs.as_ref(),
        CONVERSATION.parse().unwrap(),
        Utc::now(),
    )
    .await
    .unwrap();
    // A dead-lettered delivery the delivery events name.
    let task = DeliveryTask {
        delivery_id: format!("msg_01JBCQ3ZX0V9K8N7M6P5Q4R302_{ENDPOINT}"),
        endpoint_id: ENDPOINT.into(),
        event_type: EventType::MessageRead,
        batch: false,
        event_ids: vec![],
        body: "{}".into(),
        created_at: Utc::now(),
        conversation_id: None,
    };
    // Recorded as deliver leaves it; its dead-letter queue body is not needed here.
    testing::dead_lettered(&admin, &task, Utc::now(), Utc::now())
        .await
        .unwrap();
    // The endpoint the per-endpoint events name, and the one the test delivery goes to.
    add_endpoint(&admin, ENDPOINT, "https://hooks.example.com/wa").await;
    let receiver = Receiver::start(Vec::new()).await;
    let test_secret = add_endpoint(&admin, TEST_ENDPOINT, &receiver.url("/hook")).await;
    Setup {
        admin,
        outbound,
        receiver,
        test_secret,
    }
}

/// Stores endpoint `id` at `url` with a fresh secret, and returns the secret.
async fn add_endpoint(admin: &Admin, id: &str, url: &str) -> EndpointSecret {
    let secret = EndpointSecret::generate().unwrap();
    let endpoint = Endpoint::new(id, url, &secret, Utc::now());
    assert!(
        admin
            .endpoints
            .put(&endpoint, None, Utc::now())
            .await
            .unwrap()
    );
    secret
}

/// The events waiting on `queue`, as JSON.
async fn queued_events(queue: &MemoryQueue) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let batch = queue
            .receive(10, Duration::ZERO, Duration::from_secs(60))
            .await
            .unwrap();
        if batch.is_empty() {
            return events;
        }
        for m in batch {
            let event: Value = serde_json::from_str(&m.body).unwrap();
            events.push(event);
        }
    }
}

async fn invoke(admin: &Router, file: &str) -> (u16, Value) {
    let text = std::fs::read_to_string(repo_root().join("events").join(file)).unwrap();
    let answer = invoke_router(admin, &text).await;
    let value = if answer.body.is_empty() {
        Value::Null
    } else {
        assert_eq!(
            answer.headers.get("content-type").unwrap(),
            "application/json"
        );
        serde_json::from_slice(&answer.body).unwrap()
    };
    (answer.status, value)
}

#[tokio::test]
async fn every_admin_event_gets_its_documented_answer() {
    let setup = setup().await;
    // What the Lambda serves (`admin::router`), over the in-memory stores.
    let admin = &admin::router(setup.admin.clone());
    let cases = [
        ("admin-list-endpoints.json", 200),
        ("admin-create-endpoint.json", 201),
        ("admin-create-endpoint-invalid.json", 422),
        ("admin-get-endpoint.json", 200),
        ("admin-update-endpoint.json", 200),
        ("admin-rotate-secret.json", 200),
        ("admin-list-deliveries.json", 200),
        ("admin-recover-endpoint.json", 202),
        ("admin-redrive.json", 202),
        ("admin-disable-endpoint.json", 200),
        ("admin-enable-endpoint.json", 200),
        ("admin-unauthorized.json", 401),
        ("admin-get-delivery.json", 200),
        ("admin-retry-delivery.json", 202),
        ("admin-test-endpoint.json", 200),
        ("admin-list-conversations.json", 200),
        ("admin-get-conversation.json", 200),
        ("admin-set-labels.json", 200),
        ("admin-set-notes.json", 200),
        ("admin-set-automation-notes.json", 200),
        ("admin-transfer-conversation.json", 202),
        ("admin-handoff-conversation.json", 202),
        ("admin-close-conversation.json", 200),
        ("admin-close-unknown-conversation.json", 404),
        ("admin-delete-endpoint.json", 204),
        ("admin-list-audit.json", 200),
        ("admin-create-campaign.json", 201),
        ("admin-list-campaigns.json", 200),
        ("admin-send-message.json", 409),
        ("admin-list-sources.json", 200),
        ("admin-diagnose-source.json", 200),
        ("admin-diagnose-reserialized.json", 200),
        ("admin-stats.json", 200),
    ];
    let mut seen = Vec::new();
    // The console's page, public, as the Lambda serves it.
    let text = std::fs::read_to_string(repo_root().join("events/admin-console.json")).unwrap();
    let page = invoke_router(admin, &text).await;
    assert_eq!(page.status, 200);
    let header = |name: &str| page.headers[name].to_str().unwrap().to_owned();
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").contains("script-src 'self'"));
    seen.push("admin-console.json");
    for (file, status) in cases {
        let (got, body) = invoke(admin, file).await;
        assert_eq!(got, status, "{file}: {body}");
        seen.push(file);
        match file {
            "admin-create-endpoint.json" => {
                assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));
                assert_eq!(body["description"], "CRM");
                // The same Idempotency-Key and body: the same endpoint, not a second one.
                let (again, replay) = invoke(admin, file).await;
                assert_eq!((again, &replay), (201, &body));
            }
            "admin-create-endpoint-invalid.json" => {
                assert_eq!(body["error"]["details"]["field"], "url");
            }
            "admin-update-endpoint.json" => {
                assert_eq!(body["event_types"], serde_json::json!(["*"]));
            }
            "admin-rotate-secret.json" => {
                assert!(body["previous_secret_expires_at"].is_string());
            }
            "admin-disable-endpoint.json" => assert_eq!(body["enabled"], false),
            "admin-list-audit.json" => {
                // Every change to the endpoint above, newest first, by the key's id.
                let actions: Vec<&str> = body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["action"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    actions,
                    [
                        "endpoint.deleted",
                        "endpoint.enabled",
                        "endpoint.disabled",
                        "endpoint.recovered",
                        "endpoint.secret_rotated",
                        "endpoint.updated"
                    ],
                    "{body}"
                );
                assert!(
                    body["data"][0]["actor"]
                        .as_str()
                        .unwrap()
                        .starts_with("key_")
                );
            }
            "admin-enable-endpoint.json" => assert_eq!(body["enabled"], true),
            "admin-create-campaign.json" => {
                assert_eq!(body["status"], "open");
                assert_eq!(body["source_id"], "meta-main");
                assert_eq!(body["totals"]["total"], 0);
            }
            "admin-list-campaigns.json" => assert_eq!(body["data"][0]["name"], "spring sale"),
            "admin-list-sources.json" => {
                let meta = body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["id"] == "meta-main")
                    .unwrap();
                assert_eq!(meta["webhook_path"], "/webhooks/meta-main");
                assert!(meta["secrets"].as_u64().unwrap() >= 1, "{body}");
            }
            "admin-diagnose-source.json" => {
                assert_eq!(body["verdict"], "verified", "{body}");
                assert_eq!(body["accepted"], true);
            }
            "admin-diagnose-reserialized.json" => {
                assert_eq!(body["verdict"], "body_re_serialized", "{body}");
                assert_eq!(body["accepted"], false);
            }
            "admin-stats.json" => {
                // The admin Lambda reads no metrics yet: figures unknown, queue and endpoints
                // read live.
                assert_eq!(body["window"], "day");
                assert_eq!(body["metrics_from"], Value::Null);
                assert_eq!(body["dead_letter_depth"], 0, "{body}");
                assert!(body["endpoints_in_trouble"].is_array());
            }
            "admin-send-message.json" => assert_eq!(body["error"]["code"], "not_configured"),
            "admin-unauthorized.json" => assert_eq!(body["error"]["code"], "unauthorized"),
            "admin-get-delivery.json" => {
                assert_eq!(body["attempts"][0]["status"], 400);
                assert_eq!(body["event_type"], "whatsapp.message.read");
            }
            "admin-retry-delivery.json" => assert_eq!(body["status"], "retrying"),
            "admin-test-endpoint.json" => {
                assert_eq!(body["result"], "delivered", "{body}");
                assert_eq!(body["event_type"], "whatsapp.message.received");
                assert_eq!(body["attempt"]["status"], 200);
                let received = setup.receiver.received();
                assert_eq!(received.len(), 1);
                let r = &received[0];
                assert_eq!(
                    r.header("x-webhook-signature"),
                    Some(webhook_signature(&setup.test_secret, &r.body).as_str())
                );
                let sent: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(sent["type"], "whatsapp.message.received");
                // Replayed with its Idempotency-Key: the same answer, no second POST.
                let (again, replay) = invoke(admin, file).await;
                assert_eq!((again, &replay), (200, &body));
                assert_eq!(setup.receiver.received().len(), 1);
            }
            "admin-list-conversations.json" => {
                assert_eq!(body["data"].as_array().unwrap().len(), 1);
                assert_eq!(body["data"][0]["id"], CONVERSATION);
            }
            "admin-get-conversation.json" => {
                assert_eq!(body["id"], CONVERSATION);
                assert_eq!(body["status"], "active");
                assert_eq!(body["source"]["id"], "meta-main");
            }
            "admin-set-labels.json" => {
                assert_eq!(body["labels"], serde_json::json!(["vip", "billing"]));
            }
            "admin-set-notes.json" => {
                assert_eq!(body["notes"][0]["text"], "Prefers replies in Spanish");
                assert_eq!(body["notes"][0]["author"], "agent-ana");
            }
            "admin-set-automation-notes.json" => {
                assert_eq!(body["automation_notes"][0]["author"], "nlu-router");
            }
            "admin-transfer-conversation.json" => {
                assert_eq!(body["type"], "whatsapp.conversation.transferred");
                assert!(body["event_id"].as_str().unwrap().starts_with("evt_"));
                assert_eq!(body["conversation"]["assignee"]["agent_id"], "agent-ana");
            }
            "admin-handoff-conversation.json" => {
                assert_eq!(body["type"], "whatsapp.conversation.handoff_requested");
                assert_eq!(body["conversation"]["handoff"]["team_id"], "billing");
                // Replayed with its Idempotency-Key: the same answer, no second event.
                let (again, replay) = invoke(admin, file).await;
                assert_eq!((again, &replay), (202, &body));
            }
            "admin-close-conversation.json" => {
                assert_eq!(body["status"], "ended");
                assert_eq!(body["end_reason"], "manual");
                // Closing again (a new request, no Idempotency-Key) is a conflict.
                let text = std::fs::read_to_string(repo_root().join("events").join(file)).unwrap();
                let mut event: Value = serde_json::from_str(&text).unwrap();
                event["headers"]
                    .as_object_mut()
                    .unwrap()
                    .remove("idempotency-key");
                let answer = invoke_router(admin, &event.to_string()).await;
                assert_eq!(answer.status, 409);
            }
            "admin-delete-endpoint.json" => {
                assert_eq!(body, Value::Null);
                let (status, _) = invoke(admin, "admin-get-endpoint.json").await;
                assert_eq!(status, 404);
            }
            _ => {}
        }
    }
    // The created endpoint and the test endpoint are left.
    let (_, list) = invoke(admin, "admin-list-endpoints.json").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    // The transfer and the close became events carrying the conversation, labels and notes
    // included.
    let events = queued_events(&setup.outbound).await;
    let types: Vec<&Value> = events.iter().map(|e| &e["type"]).collect();
    assert_eq!(
        types,
        [
            "whatsapp.conversation.transferred",
            "whatsapp.conversation.handoff_requested",
            "whatsapp.conversation.ended"
        ]
    );
    for event in &events {
        let conversation = &event["data"]["conversation"];
        assert_eq!(conversation["id"], CONVERSATION);
        assert_eq!(
            conversation["labels"],
            serde_json::json!(["vip", "billing"])
        );
        assert_eq!(conversation["notes"][0]["author"], "agent-ana");
    }
    assert_eq!(events[0]["data"]["transfer"]["to_team"], "billing");
    assert_eq!(
        events[0]["data"]["conversation"]["automation_notes"][0]["author"],
        "nlu-router"
    );
    assert_eq!(
        events[1]["data"]["handoff"]["reason"],
        "Customer asked for a person"
    );
    assert_eq!(events[2]["data"]["reason"], "manual");
    // Every admin event file is covered.
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("admin-"))
        .collect();
    files.sort();
    let mut covered: Vec<String> = seen.iter().map(|s| (*s).to_owned()).collect();
    covered.sort();
    assert_eq!(files, covered);
}
