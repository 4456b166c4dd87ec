//! The worst case the configuration allows, on the real protocols (moto): a conversation whose
//! labels and notes are at their limits, the largest text message WhatsApp sends, and a full
//! batch of `MAX_BATCH_SIZE` of them through track, the buffer and fan-out. No document comes
//! near DynamoDB's 400 KB item limit and blob chunks stay below it (each item is measured), and
//! the batch goes out whole.

use std::sync::Arc;
use std::time::Duration;

use aws_adapters::aws_sdk_dynamodb::types::AttributeValue;
use aws_adapters::{DynamoBlobStore, DynamoDocumentStore};
use chrono::Utc;
use serde_json::json;
use shared::delivery::buffer::{Buffer, BufferConfig, MAX_BATCH_SIZE};
use shared::delivery::endpoints::{Endpoint, Endpoints};
use shared::delivery::fanout::Fanout;
use shared::delivery::request::{BodyForm, DeliveryTask};
use shared::ids::SourceId;
use shared::model::{Envelope, EnvelopeData, Note, Provider};
use shared::pipeline::track::state::{ConversationSettings, State};
use shared::pipeline::track::{QueueSink, Record, Track, TrackConfig, TrackOutcome};
use shared::ports::Queue;
use shared::ports::codec::decode;
use shared::providers::normalize;
use shared::signature::EndpointSecret;
use tests::moto;
use tests::wait::Patience;

/// DynamoDB's item size: attribute names and values (binary as bytes), nested ones included.
fn item_bytes(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + value(v)).sum::<usize>(),
            AttributeValue::L(l) => 3 + l.iter().map(value).sum::<usize>(),
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// A Meta text message from one customer with the longest body WhatsApp allows (4,096
/// characters, each four bytes in UTF-8) and a long profile name.
fn largest_text(n: usize) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550009999", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "🙂".repeat(256)}, "wa_id": "15550001111"}],
            "messages": [{
                "from": "15550001111",
                "id": format!("wamid.WORSTCASE{n:05}"),
                "timestamp": (1_730_092_801 + n).to_string(),
                "type": "text",
                "text": {"body": "😀".repeat(4096)}
            }]
        }}]}]
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_full_batch_of_the_largest_messages_in_a_conversation_at_its_limits_fits_every_item() {
    let server = moto::Server::start();
    let clients = server.clients().await;
    let table = moto::table(&clients).await;
    let (buffer_queue, _) = moto::queue(&clients, 60, None).await;
    let (outbound, _) = moto::queue(&clients, 60, None).await;
    let (delivery, _) = moto::queue(&clients, 60, None).await;
    let buffer_queue = Arc::new(buffer_queue);
    let delivery = Arc::new(delivery);
    let blobs = Arc::new(DynamoBlobStore::new(clients.dynamodb.clone(), &table));
    let docs = Arc::new(DynamoDocumentStore::new(clients.dynamodb.clone(), &table));
    let state = State::new(
        docs.clone(),
        ConversationSettings {
            idle: Duration::from_secs(24 * 3600),
            message_ttl: Duration::from_secs(30 * 86400),
            recent_messages: 5,
        },
    );
    let track = Track {
        blobs: blobs.clone(),
        state: state.clone(),
        sink: Arc::new(QueueSink {
            buffer: buffer_queue.clone(),
            outbound: Arc::new(outbound),
            blobs: blobs.clone(),
            blob_ttl: Duration::from_secs(86400),
            media: None,
        }),
        config: TrackConfig::default(),
    };
    let endpoints = Endpoints { docs: docs.clone() };
    let secret = EndpointSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let now = Utc::now();
    endpoints
        .put(
            &Endpoint::new("ep_batch", "https://hooks.example.com/in", &secret, now),
            None,
            now,
        )
        .await
        .unwrap();
    let buffer = Buffer {
        docs: docs.clone(),
        queue: buffer_queue.clone(),
        blobs: blobs.clone(),
        fanout: Fanout {
            endpoints,
            queue: delivery.clone(),
            blobs: blobs.clone(),
            blob_ttl: Duration::from_secs(86400),
            body_form: BodyForm::Text,
        },
        // Timers far off: the batch goes out because it is full, however slow moto is.
        config: BufferConfig {
            max_batch: MAX_BATCH_SIZE,
            window: Duration::from_secs(900),
            max_wait: Duration::from_secs(3 * 3600),
        },
    };
    let source = SourceId::parse("meta-main").unwrap();
    let track_one = async |n: usize| {
        let event = normalize(&source, Provider::Meta, &largest_text(n), Utc::now())
            .unwrap()
            .remove(0);
        track.process(event, Utc::now()).await.unwrap()
    };

    // The first message opens the conversation; then its labels and notes go to their limits.
    assert!(matches!(track_one(0).await, TrackOutcome::Emitted(_)));
    let first: Vec<shared::model::InboundEvent> = moto::drain(
        buffer_queue.as_ref(),
        blobs.as_ref(),
        Duration::from_secs(30),
    )
    .await;
    let conversation = first[0].data.conversation.as_ref().unwrap().id;
    let note_text = "📝".repeat(2000); // 8,000 bytes
    let notes: Vec<Note> = (0..shared::admin::NOTES_MAX_BYTES / 8_192)
        .map(|i| Note {
            text: note_text.clone(),
            author: Some(format!("agent-{i}")),
            created_at: now,
        })
        .collect();
    assert!(
        notes.iter().map(|n| n.text.len() + 8).sum::<usize>() <= shared::admin::NOTES_MAX_BYTES
    );
    let labels: Vec<String> = (0..50)
        .map(|i| format!("{i:02}{}", "🏷".repeat(62)))
        .collect();
    state
        .conversations
        .update_conversation(conversation, now, |d| {
            d.conversation.notes.clone_from(&notes);
            d.conversation.labels.clone_from(&labels);
        })
        .await
        .unwrap()
        .unwrap();
    buffer
        .append(first.into_iter().next().unwrap(), Utc::now())
        .await
        .unwrap();

    // The rest of a full batch, each tracked, then buffered as its queue records say (timers
    // are delayed past the end of the test; the batch goes out at its 500th message).
    for n in 1..MAX_BATCH_SIZE {
        assert!(
            matches!(track_one(n).await, TrackOutcome::Emitted(_)),
            "{n}"
        );
    }
    let patience = Patience::moto(&clients).await;
    let deadline =
        std::time::Instant::now() + patience.deadline(20 * u32::try_from(MAX_BATCH_SIZE).unwrap());
    let mut appended = std::collections::HashSet::new();
    let mut failures = 0;
    while appended.len() < MAX_BATCH_SIZE - 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of the buffer records came back",
            appended.len()
        );
        let got = buffer_queue
            .receive(10, Duration::from_secs(1), Duration::from_secs(120))
            .await
            .unwrap();
        for m in &got {
            let record = Record {
                message_id: &m.message_id,
                body: &m.body,
            };
            if !buffer.process_batch(&[record], Utc::now()).await.is_empty() {
                // A call moto did not answer in time (the flush writes a 20 MB claim-check):
                // the record comes back, as SQS would bring it back, only sooner.
                failures += 1;
                assert!(failures <= 20, "buffer records keep failing");
                buffer_queue
                    .change_visibility(&m.receipt, Duration::ZERO)
                    .await
                    .unwrap();
                continue;
            }
            buffer_queue.delete(&m.receipt).await.unwrap();
            if m.body.contains("\"dedup_key\"") || m.body.contains("claim_check") {
                appended.insert(m.message_id.clone());
            }
        }
    }

    // The batch went out at its 500th message: one delivery, claim-checked, every message in it
    // with the conversation at its limits.
    let mut tasks: Vec<DeliveryTask> =
        moto::drain(delivery.as_ref(), blobs.as_ref(), Duration::from_secs(60)).await;
    // A flush retried after a failure sends the same delivery again: one id, one body.
    assert!(!tasks.is_empty(), "the batch went out");
    assert!(tasks.iter().all(|t| t == &tasks[0]));
    tasks.truncate(1);
    let envelope: Envelope = serde_json::from_str(tasks[0].body.as_str()).unwrap();
    let EnvelopeData::Batch(items) = envelope.data else {
        panic!("a batch");
    };
    assert_eq!(items.len(), MAX_BATCH_SIZE);
    // Oldest first: the first message went out before the notes and labels were set.
    assert!(items[1..].iter().all(|i| {
        let c = i.conversation.as_ref().unwrap();
        c.notes.len() == notes.len() && c.labels.len() == 50
    }));
    let body = tasks[0].body.as_str();
    assert!(body.len() > 20_000_000, "{}", body.len());

    // Every item in the table, measured as DynamoDB counts it.
    let mut largest: Vec<(usize, String)> = Vec::new();
    let mut start = None;
    loop {
        let page = clients
            .dynamodb
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let pk = item["pk"].as_s().unwrap().clone();
            largest.push((item_bytes(&item), pk));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    largest.sort();
    // Blob chunks are cut below the limit on purpose; no document comes near it.
    let (blob, blob_pk) = largest
        .iter()
        .rfind(|(_, pk)| pk.starts_with("blob#"))
        .unwrap();
    assert!(
        *blob < 390 * 1024,
        "the largest blob chunk, {blob_pk}, is {blob} bytes"
    );
    let (doc, doc_pk) = largest
        .iter()
        .rfind(|(_, pk)| !pk.starts_with("blob#"))
        .unwrap();
    assert!(
        *doc < 100 * 1024,
        "the largest item besides blob chunks, {doc_pk}, is {doc} bytes"
    );
    eprintln!(
        "largest blob chunk {blob} bytes ({blob_pk}); largest other item {doc} bytes ({doc_pk})"
    );
    // Decoding the delivery back went through the claim-check: the body lives in blob chunks.
    let _: DeliveryTask = decode(
        &serde_json::to_string(&json!({"claim_check": format!("dlv#{}", tasks[0].delivery_id)}))
            .unwrap(),
        blobs.as_ref(),
        Utc::now(),
    )
    .await
    .unwrap();
}
