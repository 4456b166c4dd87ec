//! Track against the real protocols (moto): the dedup race — many parallel deliveries of the same
//! item yield exactly one event on the queues — and ingest → SQS → track → SQS end to end.

use std::sync::Arc;
use std::time::Duration;

use aws_adapters::{DynamoBlobStore, DynamoDocumentStore, SqsQueue};
use chrono::Utc;
use shared::ids::SourceId;
use shared::model::{EventType, InboundEvent, Provider};
use shared::pipeline::track::state::{ConversationSettings, State};
use shared::pipeline::track::{QueueSink, Record, Track, TrackConfig, TrackOutcome};
use tests::moto;
use tests::wait::Patience;

struct Stack {
    track: Arc<Track>,
    buffer: Arc<SqsQueue>,
    outbound: Arc<SqsQueue>,
    blobs: Arc<DynamoBlobStore>,
}

async fn stack() -> Stack {
    let clients = moto::clients().await;
    let table = moto::table(&clients).await;
    let (buffer, _) = moto::queue(&clients, 60, None).await;
    let (outbound, _) = moto::queue(&clients, 60, None).await;
    let (buffer, outbound) = (Arc::new(buffer), Arc::new(outbound));
    let blobs = Arc::new(DynamoBlobStore::new(clients.dynamodb.clone(), &table));
    let docs = Arc::new(DynamoDocumentStore::new(clients.dynamodb.clone(), &table));
    let track = Arc::new(Track {
        blobs: blobs.clone(),
        state: State::new(
            docs,
            ConversationSettings {
                idle: Duration::from_secs(24 * 3600),
                message_ttl: Duration::from_secs(30 * 86400),
                recent_messages: 5,
            },
        ),
        sink: Arc::new(QueueSink {
            buffer: buffer.clone(),
            outbound: outbound.clone(),
            blobs: blobs.clone(),
            blob_ttl: Duration::from_secs(86400),
            media: None,
        }),
        config: TrackConfig::default(),
    });
    Stack {
        track,
        buffer,
        outbound,
        blobs,
    }
}

/// The distinct events on `q` once the producers are done: SQS may hand a message out twice,
/// and a copy is the same event.
async fn read_all(q: &SqsQueue, blobs: &DynamoBlobStore) -> Vec<InboundEvent> {
    let patience = Patience::moto(&moto::clients().await).await;
    let mut out: Vec<InboundEvent> = Vec::new();
    for event in moto::drain::<InboundEvent>(q, blobs, patience.deadline(50)).await {
        if !out.iter().any(|e| e.id == event.id) {
            out.push(event);
        }
    }
    out
}

fn meta_text() -> InboundEvent {
    let body =
        std::fs::read(tests::repo_root().join("shared/fixtures/providers/meta-text.json")).unwrap();
    shared::providers::normalize(
        &SourceId::parse("meta-main").unwrap(),
        Provider::Meta,
        &body,
        Utc::now(),
    )
    .unwrap()
    .remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_deliveries_of_one_item_yield_one_event_on_dynamodb() {
    let s = stack().await;
    let event = meta_text();
    // Twelve copies from twelve provider requests (each its own event id), at once.
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (track, mut event) = (s.track.clone(), event.clone());
            event.id = shared::ids::EventId::new();
            tokio::spawn(async move { track.process(event, Utc::now()).await })
        })
        .collect();
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let emitted = results
        .iter()
        .filter(|r| matches!(r, Ok(TrackOutcome::Emitted(_))))
        .count();
    assert_eq!(emitted, 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(
                e.is_retryable(),
                "losers are told to retry, not dropped: {e}"
            );
        }
    }
    // The losers' retries, and any later copy, are duplicates.
    let mut copy = event;
    copy.id = shared::ids::EventId::new();
    assert_eq!(
        s.track.process(copy, Utc::now()).await.unwrap(),
        TrackOutcome::Duplicate
    );
    let buffered = read_all(&s.buffer, &s.blobs).await;
    assert_eq!(
        buffered.iter().map(|e| e.event_type).collect::<Vec<_>>(),
        vec![EventType::MessageReceived]
    );
    // A standard queue keeps no order: compare as sets of one each.
    let lifecycle = read_all(&s.outbound, &s.blobs).await;
    let mut types: Vec<EventType> = lifecycle.iter().map(|e| e.event_type).collect();
    types.sort();
    let mut want = vec![EventType::ContactCreated, EventType::ConversationCreated];
    want.sort();
    assert_eq!(types, want);
}

#[tokio::test]
async fn a_batch_with_a_duplicate_and_a_poison_record_on_dynamodb() {
    let s = stack().await;
    let event = serde_json::to_string(&meta_text()).unwrap();
    let records = [
        Record {
            message_id: "m1",
            body: &event,
        },
        Record {
            message_id: "m2",
            body: &event,
        },
        Record {
            message_id: "m3",
            body: "{\"not\":\"an event\"}",
        },
    ];
    let failed = s.track.process_batch(&records, Utc::now()).await;
    assert_eq!(failed, vec!["m3".to_owned()]);
    assert_eq!(read_all(&s.buffer, &s.blobs).await.len(), 1);
}
