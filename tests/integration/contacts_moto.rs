//! Contacts over both document backends, the in-memory one and DynamoDB over the wire (moto):
//! a WAHA customer seen by `@lid`, by number, then by a message naming both becomes one
//! contact; the management API, served on 127.0.0.1 and driven by the `wagate contacts`
//! commands, shows the merge, finds the contact by any spelling of its number, and changes its
//! tags and external id, handing on `whatsapp.contact.updated` with the changes.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use serde_json::{Value, json};
use shared::admin::{Admin, AdminConfig};
use shared::clock::Clock;
use shared::ids::SourceId;
use shared::model::{ContactProfile, EventBody, EventType, InboundEvent, Provider};
use shared::pipeline::track::state::{ConversationSettings, Conversations, State};
use shared::pipeline::track::sweep::Sweep;
use shared::pipeline::track::{QueueSink, Track, TrackConfig};
use shared::ports::DocumentStore;
use shared::ports::codec::receive_all;
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use shared::signature::Secret;
use tests::wait::until_async;
use wagate_local::manage::{ManageCommand, run};

const KEY: &str = "contacts-admin-key";
const LID: &str = "123456789012345@lid";
const PHONE: &str = "15550001111";

#[derive(Parser)]
#[command(name = "wagate")]
struct Cli {
    #[command(subcommand)]
    command: ManageCommand,
}

/// `wagate <args>` against the API at `url`; the answer it prints.
async fn wagate(url: &str, args: &[&str]) -> anyhow::Result<Value> {
    let argv =
        ["wagate"]
            .into_iter()
            .chain(args.iter().copied())
            .chain(["--url", url, "--api-key", KEY]);
    let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    run(&cli.command).await
}

fn settings() -> ConversationSettings {
    ConversationSettings {
        idle: Duration::from_secs(24 * 3600),
        message_ttl: Duration::from_secs(30 * 86400),
        recent_messages: 5,
    }
}

/// A WAHA message `id` from `chat`, its customer described as `contact` when given.
fn waha(chat: &str, id: &str, contact: Option<ContactProfile>) -> InboundEvent {
    let path = tests::repo_root().join("shared/fixtures/providers/waha-message.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["payload"]["id"] = json!(format!("false_{chat}_{id}"));
    doc["payload"]["from"] = json!(chat);
    let mut e = shared::providers::normalize(
        &SourceId::parse("src").unwrap(),
        Provider::Waha,
        doc.to_string().as_bytes(),
        Utc::now(),
    )
    .unwrap()
    .remove(0);
    if let (Some(p), EventBody::Message(m)) = (contact, &mut e.data.body) {
        m.contact = Some(p);
    }
    e
}

fn contact_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn scenario(docs: Arc<dyn DocumentStore>) {
    let blobs = Arc::new(MemoryBlobStore::new());
    let outbound = Arc::new(MemoryQueue::new("outbound"));
    let track = Track {
        blobs: blobs.clone(),
        state: State::new(docs.clone(), settings()),
        sink: Arc::new(QueueSink {
            buffer: Arc::new(MemoryQueue::new("buffer")),
            outbound: outbound.clone(),
            blobs: blobs.clone(),
            blob_ttl: Duration::from_secs(86400),
            media: None,
        }),
        config: TrackConfig::default(),
    };
    let both = ContactProfile {
        wa_id: Some(PHONE.into()),
        user_id: Some(LID.into()),
        ..ContactProfile::default()
    };
    for e in [
        waha(LID, "A", None),
        waha(&format!("{PHONE}@c.us"), "B", None),
        waha(LID, "C", Some(both)),
    ] {
        Box::pin(track.process(e, Utc::now())).await.unwrap();
    }
    let created: Vec<InboundEvent> = receive_all(
        outbound.as_ref(),
        blobs.as_ref(),
        Duration::from_secs(3600),
        Utc::now(),
    )
    .await
    .unwrap();
    let contacts: Vec<String> = created
        .iter()
        .filter(|e| e.event_type == EventType::ContactCreated)
        .map(|e| {
            let data = serde_json::to_value(&e.data).unwrap();
            data["contact"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(contacts.len(), 2, "one per id until the item naming both");
    let merged = created
        .iter()
        .find(|e| e.event_type == EventType::ContactUpdated)
        .unwrap();
    let survivor = serde_json::to_value(&merged.data).unwrap()["contact"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The API over the same documents, on a socket.
    let admin = Admin::new(
        docs.clone(),
        blobs.clone(),
        Arc::new(MemoryQueue::new("delivery")),
        Arc::new(MemoryQueue::new("delivery-dlq")),
        Duration::from_secs(86400),
        AdminConfig {
            api_keys: vec![Secret::from(KEY.to_owned())],
            ..AdminConfig::default()
        },
    )
    .with_conversations(Sweep::emitting_to(
        Conversations {
            docs: docs.clone(),
            settings: settings(),
        },
        outbound.clone(),
        blobs.clone(),
        Duration::from_secs(86400),
        10,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, admin.router(Clock::system()))
            .await
            .unwrap();
    });

    // Listed once (the merged contact is not), found by any spelling of its number.
    until_async(
        "the survivor is listed alone",
        Duration::from_secs(10),
        || async {
            let page = wagate(&url, &["contacts", "list", "--source-id", "src"])
                .await
                .unwrap();
            contact_ids(&page) == [survivor.clone()]
        },
    )
    .await;
    for phone in ["+1 555 000 1111", "15550001111@c.us"] {
        let found = wagate(
            &url,
            &["contacts", "list", "--source-id", "src", "--phone", phone],
        )
        .await
        .unwrap();
        assert_eq!(
            contact_ids(&found),
            std::slice::from_ref(&survivor),
            "{phone}"
        );
        assert_eq!(found["data"][0]["user_id"], LID);
    }
    for id in &contacts {
        let got = wagate(&url, &["contacts", "get", id]).await.unwrap();
        assert_eq!(got["id"], survivor.as_str(), "{id} reads as the survivor");
    }

    // A change through the CLI: its event goes out with the changes.
    let changed = wagate(
        &url,
        &[
            "contacts",
            "update",
            &survivor,
            "--tags",
            "vip",
            "--external-id",
            "crm-1",
            "--field",
            "plan=gold",
        ],
    )
    .await
    .unwrap();
    assert_eq!(changed["external_id"], "crm-1");
    let events: Vec<InboundEvent> = receive_all(
        outbound.as_ref(),
        blobs.as_ref(),
        Duration::from_secs(3600),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::ContactUpdated);
    let data = serde_json::to_value(&events[0].data).unwrap();
    let fields: Vec<&str> = data["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["external_id", "tags", "custom_fields.plan"]);
    let by_external = wagate(
        &url,
        &[
            "contacts",
            "list",
            "--source-id",
            "src",
            "--external-id",
            "crm-1",
        ],
    )
    .await
    .unwrap();
    assert_eq!(contact_ids(&by_external), std::slice::from_ref(&survivor));
    until_async("the tag finds it", Duration::from_secs(10), || async {
        let page = wagate(&url, &["contacts", "list", "--tag", "vip"])
            .await
            .unwrap();
        contact_ids(&page) == [survivor.clone()]
    })
    .await;
    // The same change again changes nothing and hands nothing on.
    wagate(&url, &["contacts", "update", &survivor, "--tags", "vip"])
        .await
        .unwrap();
    let none: Vec<InboundEvent> = receive_all(
        outbound.as_ref(),
        blobs.as_ref(),
        Duration::from_secs(3600),
        Utc::now(),
    )
    .await
    .unwrap();
    assert!(none.is_empty());
    server.abort();
}

#[tokio::test]
async fn contacts_merge_and_change_through_the_cli_over_memory() {
    Box::pin(scenario(Arc::new(MemoryDocumentStore::new()))).await;
}

#[tokio::test]
async fn contacts_merge_and_change_through_the_cli_over_dynamodb() {
    let clients = tests::moto::clients().await;
    let table = tests::moto::table(&clients).await;
    let docs = aws_adapters::DynamoDocumentStore::new(clients.dynamodb.clone(), &table);
    Box::pin(scenario(Arc::new(docs))).await;
}
