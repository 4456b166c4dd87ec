//! The track and sweep handlers over their `events/` files (SQS batch, poison record, schedule),
//! with the configuration of `events/env.json` and the in-memory backends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::model::{EventType, InboundEvent};
use shared::pipeline::track::state::{Conversations, State};
use shared::pipeline::track::sweep::Sweep;
use shared::pipeline::track::{QueueSink, Track};
use shared::ports::codec::receive_all;
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use tests::repo_root;

fn env_of(function: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(repo_root().join("events/env.json")).unwrap();
    let all: HashMap<String, HashMap<String, String>> = serde_json::from_str(&text).unwrap();
    all[function].clone()
}

fn event_file<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&std::fs::read_to_string(repo_root().join("events").join(name)).unwrap())
        .unwrap()
}

struct Setup {
    track: Track,
    sweep: Sweep,
    buffer: Arc<MemoryQueue>,
    outbound: Arc<MemoryQueue>,
    blobs: Arc<MemoryBlobStore>,
}

fn setup() -> Setup {
    let env = env_of("TrackFunction");
    let config = track::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let sweep_env = env_of("SweepFunction");
    let sweep_config = sweep::Config::from_lookup(|k| sweep_env.get(k).cloned()).unwrap();
    let buffer = Arc::new(MemoryQueue::new("buffer"));
    let outbound = Arc::new(MemoryQueue::new("outbound"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let docs = Arc::new(MemoryDocumentStore::new());
    let state = State::new(docs.clone(), config.conversations);
    let sink = Arc::new(QueueSink {
        buffer: buffer.clone(),
        outbound: outbound.clone(),
        blobs: blobs.clone(),
        blob_ttl: config.blob_ttl,
        media: None,
    });
    let track = Track {
        blobs: blobs.clone(),
        state,
        sink: sink.clone(),
        config: config.track,
    };
    let sweep = Sweep {
        conversations: Conversations {
            docs,
            settings: sweep_config.conversations,
        },
        sink,
        page: sweep_config.page,
    };
    Setup {
        track,
        sweep,
        buffer,
        outbound,
        blobs,
    }
}

async fn drain(q: &MemoryQueue, blobs: &MemoryBlobStore) -> Vec<InboundEvent> {
    receive_all(q, blobs, Duration::from_secs(3600), Utc::now())
        .await
        .unwrap()
}

fn types(events: &[InboundEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

#[tokio::test]
async fn the_sqs_batch_fixture_is_tracked_and_routed_with_no_failures() {
    let s = setup();
    let response = track::handle(&s.track, event_file::<SqsEvent>("track-sqs-batch.json")).await;
    assert!(response.batch_item_failures.is_empty());
    use EventType as T;
    let buffered = drain(&s.buffer, &s.blobs).await;
    assert_eq!(types(&buffered), vec![T::MessageReceived]);
    let outbound = drain(&s.outbound, &s.blobs).await;
    assert_eq!(
        types(&outbound),
        vec![
            T::ContactCreated,
            T::ConversationCreated,
            // Same Meta customer: no new contact. The WAHA ack is another source's customer.
            T::MessageDelivered,
            T::ContactCreated,
            T::MessageRead,
            T::TemplateStatusUpdated
        ]
    );
    // The same batch again (SQS redelivery, e.g. after a timeout): the same events again, same
    // ids and contents, which fan-out and the buffer recognise. Nothing new is derived.
    let again = track::handle(&s.track, event_file::<SqsEvent>("track-sqs-batch.json")).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(drain(&s.buffer, &s.blobs).await, buffered);
    assert_eq!(drain(&s.outbound, &s.blobs).await, outbound);
}

#[tokio::test]
async fn a_poison_record_is_reported_failed_and_the_rest_acknowledged() {
    let s = setup();
    let event: SqsEvent = event_file("track-sqs-poison.json");
    let poison_id = event.records[1].message_id.clone().unwrap();
    let response = track::handle(&s.track, event).await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![poison_id]);
    assert_eq!(drain(&s.buffer, &s.blobs).await.len(), 1);
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json["batchItemFailures"][0]["itemIdentifier"], failed[0],
        "the wire name Lambda expects"
    );
}

#[tokio::test]
async fn the_schedule_fixture_runs_a_sweep_that_ends_idle_conversations() {
    let s = setup();
    track::handle(&s.track, event_file::<SqsEvent>("track-sqs-batch.json")).await;
    drain(&s.outbound, &s.blobs).await;
    let schedule: Value = event_file("sweep-schedule.json");
    assert_eq!(schedule["detail-type"], "Scheduled Event");
    // The fixture's message was sent on 2024-10-28 at 05:20:01; the schedule fires two years on.
    let now: DateTime<Utc> = schedule["time"].as_str().unwrap().parse().unwrap();
    let answer = sweep::handle(&s.sweep, now).await.unwrap();
    assert_eq!(answer["ended"], 1);
    let ended = drain(&s.outbound, &s.blobs).await;
    assert_eq!(types(&ended), vec![EventType::ConversationEnded]);
    assert_eq!(sweep::handle(&s.sweep, now).await.unwrap()["ended"], 0);
}
