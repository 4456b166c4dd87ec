//! The admin handler over every `events/admin-*.json` (the files `sam local invoke` uses),
//! loaded as the Lambda runtime would, with the configuration of `events/env.json` and the
//! in-memory backends: exact status codes and bodies, and the state they leave.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use shared::admin::Admin;
use shared::delivery::endpoints::Endpoint;
use shared::delivery::record::{AttemptRecord, DeliveryStatus};
use shared::delivery::request::DeliveryTask;
use shared::model::EventType;
use shared::pipeline::track::QueueSink;
use shared::pipeline::track::state::State;
use shared::pipeline::track::sweep::Sweep;
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use shared::signature::EndpointSecret;
use tests::repo_root;

const ENDPOINT: &str = "ep_01JBCQ3ZX0V9K8N7M6P5Q4R301";

async fn setup() -> Admin {
    let text = std::fs::read_to_string(repo_root().join("events/env.json")).unwrap();
    let all: HashMap<String, HashMap<String, String>> = serde_json::from_str(&text).unwrap();
    let env = all["AdminFunction"].clone();
    let config = admin::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
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
    let admin = admin.clone().with_conversations(Sweep {
        state: State {
            docs: admin.docs.clone(),
            message_ttl: Duration::from_secs(86400),
            recent_messages: 5,
        },
        sink: Arc::new(QueueSink {
            buffer: outbound.clone(),
            outbound,
            blobs: admin.blobs.clone(),
            blob_ttl: Duration::from_secs(86400),
        }),
        idle: Duration::from_secs(86400),
        page: 100,
    });
    // A dead-lettered delivery the delivery events name.
    let task = DeliveryTask {
        delivery_id: format!("msg_01JBCQ3ZX0V9K8N7M6P5Q4R302_{ENDPOINT}"),
        endpoint_id: ENDPOINT.into(),
        event_type: EventType::MessageRead,
        batch: false,
        event_ids: vec![],
        body: "{}".into(),
        created_at: Utc::now(),
    };
    let mut record = admin
        .deliveries
        .new_record(&task, Utc::now())
        .await
        .unwrap();
    record.push(
        AttemptRecord {
            attempt: 1,
            at: Utc::now(),
            status: Some(400),
            latency_ms: 20,
            error: Some("HTTP 400".into()),
            outcome: DeliveryStatus::DeadLettered,
        },
        None,
    );
    assert!(
        admin
            .deliveries
            .put(&record, None, Utc::now())
            .await
            .unwrap()
    );
    // The endpoint the per-endpoint events name.
    let secret = EndpointSecret::generate().unwrap();
    let endpoint = Endpoint::new(
        ENDPOINT,
        "https://hooks.example.com/wa",
        &secret,
        Utc::now(),
    );
    assert!(
        admin
            .endpoints
            .put(&endpoint, None, Utc::now())
            .await
            .unwrap()
    );
    admin
}

async fn invoke(admin: &Admin, file: &str) -> (u16, Value) {
    let text = std::fs::read_to_string(repo_root().join("events").join(file)).unwrap();
    let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let response = admin::handle(admin, request).await;
    let status = response.status().as_u16();
    let body = response.body().to_vec();
    let value = if body.is_empty() {
        Value::Null
    } else {
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
        serde_json::from_slice(&body).unwrap()
    };
    (status, value)
}

#[tokio::test]
async fn every_admin_event_gets_its_documented_answer() {
    let admin = setup().await;
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
        ("admin-unauthorized.json", 401),
        ("admin-get-delivery.json", 200),
        ("admin-retry-delivery.json", 202),
        ("admin-list-conversations.json", 200),
        ("admin-close-unknown-conversation.json", 404),
    ];
    let mut seen = Vec::new();
    for (file, status) in cases {
        let (got, body) = invoke(&admin, file).await;
        assert_eq!(got, status, "{file}: {body}");
        seen.push(file);
        match file {
            "admin-create-endpoint.json" => {
                assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));
                assert_eq!(body["description"], "CRM");
                // The same Idempotency-Key and body: the same endpoint, not a second one.
                let (again, replay) = invoke(&admin, file).await;
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
            "admin-unauthorized.json" => assert_eq!(body["error"]["code"], "unauthorized"),
            "admin-get-delivery.json" => {
                assert_eq!(body["attempts"][0]["status"], 400);
                assert_eq!(body["event_type"], "whatsapp.message.read");
            }
            "admin-retry-delivery.json" => assert_eq!(body["status"], "retrying"),
            "admin-list-conversations.json" => assert_eq!(body["data"], serde_json::json!([])),
            _ => {}
        }
    }
    let (_, list) = invoke(&admin, "admin-list-endpoints.json").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
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
