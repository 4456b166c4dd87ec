//! The track stage and the sweep over the in-memory backends: every transition, reordered and
//! duplicated input, crashes between staging and hand-off, and the 24 h boundary with an injected
//! clock (no sleeping).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::state::{ConversationSettings, State};
use super::sweep::Sweep;
use super::*;
use crate::ids::SourceId;
use crate::model::{ConversationStatus, EndReason, Provider};
use crate::ports::DocumentStore as _;
use crate::ports::codec::receive_all;
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::providers::normalize;
use crate::providers::test_support::fixture;

struct World {
    track: Track,
    sweep: Sweep,
    buffer: Arc<MemoryQueue>,
    outbound: Arc<MemoryQueue>,
    blobs: Arc<MemoryBlobStore>,
    docs: Arc<MemoryDocumentStore>,
}

fn world() -> World {
    let buffer = Arc::new(MemoryQueue::new("buffer"));
    let outbound = Arc::new(MemoryQueue::new("outbound"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let docs = Arc::new(MemoryDocumentStore::new());
    let state = State::new(
        docs.clone(),
        ConversationSettings {
            idle: Duration::from_secs(24 * 3600),
            message_ttl: Duration::from_secs(30 * 86400),
            recent_messages: 3,
        },
    );
    let sink: Arc<dyn EventSink> = Arc::new(QueueSink {
        buffer: buffer.clone(),
        outbound: outbound.clone(),
        blobs: blobs.clone(),
        blob_ttl: Duration::from_secs(86400),
        media: None,
    });
    let track = Track {
        blobs: blobs.clone(),
        state: state.clone(),
        sink: sink.clone(),
        config: TrackConfig::default(),
    };
    let sweep = Sweep {
        conversations: state.conversations,
        sink,
        page: 2,
    };
    World {
        track,
        sweep,
        buffer,
        outbound,
        blobs,
        docs,
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 1).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// The events of a fixture, as ingest would enqueue them at `received`.
fn events(provider: Provider, body: &[u8], received: DateTime<Utc>) -> Vec<InboundEvent> {
    normalize(&SourceId::parse("src").unwrap(), provider, body, received).unwrap()
}

fn meta(name: &str, received: DateTime<Utc>) -> Vec<InboundEvent> {
    events(Provider::Meta, &fixture(name), received)
}

/// A WAHA webhook built from a fixture with some payload fields replaced.
fn waha(name: &str, payload: &Value, received: DateTime<Utc>) -> InboundEvent {
    let mut doc: Value = serde_json::from_slice(&fixture(name)).unwrap();
    for (k, v) in payload.as_object().unwrap() {
        doc["payload"][k] = v.clone();
    }
    events(Provider::Waha, doc.to_string().as_bytes(), received).remove(0)
}

async fn drain(q: &MemoryQueue, blobs: &MemoryBlobStore) -> Vec<InboundEvent> {
    receive_all(q, blobs, Duration::from_secs(3600), Utc::now())
        .await
        .unwrap()
}

async fn process_all(
    w: &World,
    events: Vec<InboundEvent>,
    now: DateTime<Utc>,
) -> Vec<TrackOutcome> {
    let mut out = Vec::new();
    for e in events {
        out.push(w.track.process(e, now).await.unwrap());
    }
    out
}

fn types(events: &[InboundEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

#[tokio::test]
async fn a_first_message_creates_contact_and_conversation_before_the_message() {
    let w = world();
    let outcome = process_all(&w, meta("meta-text.json", at(0)), at(0)).await;
    assert_eq!(
        outcome,
        vec![TrackOutcome::Emitted(vec![
            EventType::ContactCreated,
            EventType::ConversationCreated,
            EventType::MessageReceived
        ])]
    );
    let lifecycle = drain(&w.outbound, &w.blobs).await;
    assert_eq!(
        types(&lifecycle),
        vec![EventType::ContactCreated, EventType::ConversationCreated]
    );
    let messages = drain(&w.buffer, &w.blobs).await;
    assert_eq!(types(&messages), vec![EventType::MessageReceived]);
    let conversation = messages[0].data.conversation.clone().unwrap();
    assert_eq!(Some(&conversation), lifecycle[1].data.conversation.as_ref());
    assert_eq!(conversation.status, ConversationStatus::Active);
    assert_eq!(conversation.business_id, "106540352242922");
    assert_eq!(conversation.contact.name.as_deref(), Some("Alice Example"));
    assert_eq!(
        (conversation.inbound_count, conversation.outbound_count),
        (1, 0)
    );
    assert_eq!(conversation.created_at, at(0));
    assert_eq!(
        conversation
            .context
            .last_inbound_message
            .as_ref()
            .unwrap()
            .text
            .as_deref(),
        Some("Hi, I need help with order #1042")
    );
    assert_eq!(
        conversation.context.summary.as_deref(),
        Some(
            "1 message from Alice Example, 0 replies; last from Alice Example: \"Hi, I need help with order #1042\""
        )
    );
    let contact = serde_json::to_value(&lifecycle[0].data).unwrap();
    assert_eq!(contact["contact"]["wa_id"], "15550001111");
    assert!(
        contact["contact"]["id"]
            .as_str()
            .unwrap()
            .starts_with("ctc_")
    );
}

#[tokio::test]
async fn duplicates_and_provider_retries_are_dropped() {
    let w = world();
    let first = meta("meta-text.json", at(0));
    let retry = meta("meta-text.json", at(60)); // the provider sent it again: new event id
    assert_ne!(first[0].id, retry[0].id);
    process_all(&w, first.clone(), at(0)).await;
    let once = drain(&w.buffer, &w.blobs).await;
    assert_eq!(once.len(), 1);
    assert_eq!(
        process_all(&w, retry, at(60)).await,
        vec![TrackOutcome::Duplicate]
    );
    // The same queue record handed out again hands on the same event again (same id, same
    // content), which the buffer recognises; it is not a new message.
    assert_eq!(
        process_all(&w, first, at(61)).await,
        vec![emitted(&[
            EventType::ContactCreated,
            EventType::ConversationCreated,
            EventType::MessageReceived
        ])]
    );
    assert_eq!(drain(&w.buffer, &w.blobs).await, once);
}

#[tokio::test]
async fn parallel_copies_of_one_item_yield_one_event() {
    let w = Arc::new(world());
    let event = meta("meta-text.json", at(0)).remove(0);
    // Eight copies from eight provider requests (each its own event id), at once.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (w, mut e) = (w.clone(), event.clone());
            e.id = crate::ids::EventId::new();
            tokio::spawn(async move { w.track.process(e, at(0)).await })
        })
        .collect();
    let results = futures::future::join_all(tasks).await;
    let emitted = results
        .iter()
        .filter(|r| matches!(r.as_ref().unwrap(), Ok(TrackOutcome::Emitted(_))))
        .count();
    assert_eq!(emitted, 1);
    assert!(results.iter().all(|r| match r.as_ref().unwrap() {
        Ok(_) => true,
        Err(e) => e.is_retryable(),
    }));
    assert_eq!(drain(&w.buffer, &w.blobs).await.len(), 1);
    // Eight deliveries of one queue record at once: whichever hands on, it is one event.
    let w = Arc::new(world());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (w, e) = (w.clone(), event.clone());
            tokio::spawn(async move { w.track.process(e, at(0)).await })
        })
        .collect();
    for r in futures::future::join_all(tasks).await {
        assert!(r.unwrap().is_ok());
    }
    let handed = drain(&w.buffer, &w.blobs).await;
    assert!(!handed.is_empty());
    assert!(handed.iter().all(|e| *e == handed[0] && e.id == event.id));
}

/// Statuses of the outbound message of the WAHA fixtures, in the order given.
async fn ack_sequence(w: &World, acks: &[i64]) -> Vec<TrackOutcome> {
    let mut out = Vec::new();
    for (i, ack) in acks.iter().enumerate() {
        let e = waha("waha-message-ack.json", &json!({"ack": ack}), at(i as i64));
        out.push(w.track.process(e, at(i as i64)).await.unwrap());
    }
    out
}

/// The WAHA fixture's first message from Alice, tracked at `t0`.
async fn alice_says_hi(w: &World) {
    process_all(w, vec![waha("waha-message.json", &json!({}), at(0))], at(0)).await;
}

fn emitted(types: &[EventType]) -> TrackOutcome {
    TrackOutcome::Emitted(types.to_vec())
}

#[tokio::test]
async fn statuses_only_move_forward_and_failed_is_terminal() {
    use EventType as T;
    let w = world();
    // sent, read, then a late delivered: delivered is not emitted.
    let outcomes = ack_sequence(&w, &[1, 3, 2]).await;
    assert_eq!(
        outcomes[1..],
        [emitted(&[T::MessageRead]), TrackOutcome::Stale]
    );
    assert_eq!(outcomes[0], emitted(&[T::ContactCreated, T::MessageSent]));
    // played ranks with read: not emitted after read; failed is (terminal) and nothing after it.
    let outcomes = ack_sequence(&w, &[4, -1, 0]).await;
    assert_eq!(
        outcomes,
        vec![
            TrackOutcome::Stale,
            emitted(&[T::MessageFailed]),
            TrackOutcome::Stale
        ]
    );
    // Another message: failed first, then a late read, which is not emitted.
    let other = |ack: i64, t: i64| {
        waha(
            "waha-message-ack.json",
            &json!({"id": "true_15550001111@c.us_OTHER", "ack": ack}),
            at(t),
        )
    };
    assert_eq!(
        w.track.process(other(-1, 10), at(10)).await.unwrap(),
        emitted(&[T::MessageFailed])
    );
    assert_eq!(
        w.track.process(other(3, 11), at(11)).await.unwrap(),
        TrackOutcome::Stale
    );
}

#[tokio::test]
async fn acks_of_one_message_under_a_lid_and_a_phone_jid_share_one_status() {
    use EventType as T;
    let w = world();
    let ack = |id: &str, ack: i64, t: i64| {
        waha(
            "waha-message-ack.json",
            &json!({"id": id, "ack": ack, "from": id.split('_').nth(1)}),
            at(t),
        )
    };
    let by_phone = "true_15550001111@c.us_3EB0LIDTEST";
    let by_lid = "true_123456789012345@lid_3EB0LIDTEST";
    assert_eq!(
        w.track.process(ack(by_phone, 3, 0), at(0)).await.unwrap(),
        emitted(&[T::ContactCreated, T::MessageRead])
    );
    // The late `delivered` under the other spelling is the same message's: stale, not emitted.
    assert_eq!(
        w.track.process(ack(by_lid, 2, 1), at(1)).await.unwrap(),
        TrackOutcome::Stale
    );
}

#[tokio::test]
async fn read_without_delivered_emits_read_only() {
    let w = world();
    let outcomes = ack_sequence(&w, &[3]).await;
    assert_eq!(
        outcomes,
        vec![emitted(&[
            EventType::ContactCreated,
            EventType::MessageRead
        ])]
    );
    assert!(
        drain(&w.outbound, &w.blobs)
            .await
            .iter()
            .all(|e| e.event_type != EventType::MessageDelivered)
    );
}

#[tokio::test]
async fn meta_statuses_arriving_out_of_order_are_reordered_by_rank() {
    use EventType as T;
    let w = world();
    let read = meta("meta-status-read.json", at(0));
    let delivered = meta("meta-status-delivered.json", at(1));
    let sent = meta("meta-status-sent.json", at(2));
    assert_eq!(
        process_all(&w, read, at(0)).await,
        vec![emitted(&[T::ContactCreated, T::MessageRead])]
    );
    assert_eq!(
        process_all(&w, delivered, at(1)).await,
        vec![TrackOutcome::Stale]
    );
    assert_eq!(
        process_all(&w, sent, at(2)).await,
        vec![TrackOutcome::Stale]
    );
}

#[tokio::test]
async fn a_status_carries_the_conversation_of_its_message() {
    let w = world();
    let sent = waha("waha-message-any-outgoing.json", &json!({}), at(0));
    process_all(&w, vec![sent], at(0)).await;
    let conversation_id = drain(&w.outbound, &w.blobs)
        .await
        .iter()
        .find(|e| e.event_type == EventType::MessageSent)
        .unwrap()
        .data
        .conversation
        .clone()
        .unwrap()
        .id;
    let ack = waha("waha-message-ack.json", &json!({"ack": 3}), at(10));
    process_all(&w, vec![ack], at(10)).await;
    let read = drain(&w.outbound, &w.blobs).await;
    assert_eq!(types(&read), vec![EventType::MessageRead]);
    assert_eq!(
        read[0].data.conversation.as_ref().unwrap().id,
        conversation_id
    );
}

#[tokio::test]
async fn later_messages_join_the_open_conversation_and_update_its_context() {
    let w = world();
    process_all(&w, meta("meta-text.json", at(0)), at(0)).await;
    let reply = waha("waha-message.json", &json!({}), at(5)); // another source: its own conversation
    process_all(&w, vec![reply], at(5)).await;
    process_all(&w, meta("meta-multi-entry-batch.json", at(100)), at(100)).await;
    let buffered = drain(&w.buffer, &w.blobs).await;
    let alice: Vec<_> = buffered
        .iter()
        .filter(|e| {
            e.data.source.id.as_str() == "src"
                && e.data
                    .conversation
                    .as_ref()
                    .unwrap()
                    .contact
                    .wa_id
                    .as_deref()
                    == Some("15550001111")
        })
        .collect();
    let ids: std::collections::HashSet<_> = alice
        .iter()
        .map(|e| e.data.conversation.as_ref().unwrap().id)
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "Meta and WAHA sources keep separate conversations with Alice"
    );
    let last = buffered
        .iter()
        .rev()
        .find(|e| {
            e.data.source.business_id.as_deref() == Some("106540352242922")
                && e.data
                    .conversation
                    .as_ref()
                    .unwrap()
                    .contact
                    .wa_id
                    .as_deref()
                    == Some("15550001111")
        })
        .unwrap();
    let c = last.data.conversation.as_ref().unwrap();
    assert_eq!(c.inbound_count, 3);
    let recent: Vec<_> = c
        .context
        .recent_messages
        .iter()
        .map(|m| m.text.clone().unwrap())
        .collect();
    assert_eq!(
        recent,
        vec!["Hi, I need help with order #1042", "first", "second"]
    );
    // The second number of the batch is another business side: its own conversation.
    let other = buffered
        .iter()
        .find(|e| e.data.source.business_id.as_deref() == Some("106540352242923"))
        .unwrap();
    assert_eq!(other.data.conversation.as_ref().unwrap().inbound_count, 1);
}

#[tokio::test]
async fn a_changed_profile_name_updates_the_contact() {
    let w = world();
    alice_says_hi(&w).await;
    let renamed = waha(
        "waha-message.json",
        &json!({"id": "false_15550001111@c.us_RENAMED", "_data": {"notifyName": "Alice B."}}),
        at(10),
    );
    process_all(&w, vec![renamed], at(10)).await;
    let same = waha(
        "waha-message.json",
        &json!({"id": "false_15550001111@c.us_SAME", "_data": {"notifyName": "Alice B."}}),
        at(20),
    );
    process_all(&w, vec![same], at(20)).await;
    let lifecycle = drain(&w.outbound, &w.blobs).await;
    assert_eq!(
        types(&lifecycle),
        vec![
            EventType::ContactCreated,
            EventType::ConversationCreated,
            EventType::ContactUpdated
        ]
    );
    let updated = serde_json::to_value(&lifecycle[2].data).unwrap();
    assert_eq!(updated["contact"]["name"], "Alice B.");
    assert_eq!(updated["previous"]["name"], "Alice Example");
    assert_eq!(
        updated["contact"]["id"],
        serde_json::to_value(&lifecycle[0].data).unwrap()["contact"]["id"],
        "stable contact id"
    );
}

const DAY: i64 = 24 * 3600;

#[tokio::test]
async fn a_message_just_inside_the_window_keeps_the_conversation_and_one_at_24h_opens_a_new_one() {
    use EventType as T;
    let w = world();
    let message = |n: &str, t: i64| {
        waha(
            "waha-message.json",
            &json!({"id": format!("false_15550001111@c.us_{n}"), "timestamp": t0().timestamp() + t}),
            at(t),
        )
    };
    process_all(&w, vec![message("A", 0)], at(0)).await;
    assert_eq!(
        process_all(&w, vec![message("B", DAY - 1)], at(DAY - 1)).await,
        vec![emitted(&[T::MessageReceived])]
    );
    // Exactly 24 h after the last activity: the conversation has ended; the sweep had not run.
    let outcome = process_all(&w, vec![message("C", 2 * DAY - 1)], at(2 * DAY - 1)).await;
    assert_eq!(
        outcome,
        vec![emitted(&[
            T::ConversationEnded,
            T::ConversationCreated,
            T::MessageReceived
        ])]
    );
    let lifecycle = drain(&w.outbound, &w.blobs).await;
    let ended = lifecycle
        .iter()
        .find(|e| e.event_type == T::ConversationEnded)
        .unwrap()
        .data
        .conversation
        .clone()
        .unwrap();
    assert_eq!(ended.end_reason, Some(EndReason::Inactivity));
    assert_eq!(ended.last_active_at, at(DAY - 1));
    let created = lifecycle
        .iter()
        .rev()
        .find(|e| e.event_type == T::ConversationCreated)
        .unwrap()
        .data
        .conversation
        .clone()
        .unwrap();
    assert_ne!(created.id, ended.id);
}

#[tokio::test]
async fn the_sweep_ends_conversations_idle_for_24h_once_and_not_before() {
    let w = world();
    alice_says_hi(&w).await;
    let msg_at = t0(); // the fixture's own timestamp
    drain(&w.outbound, &w.blobs).await;
    assert_eq!(
        w.sweep
            .run(msg_at + chrono::Duration::seconds(DAY - 1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        w.sweep
            .run(msg_at + chrono::Duration::seconds(DAY))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        w.sweep
            .run(msg_at + chrono::Duration::seconds(DAY + 60))
            .await
            .unwrap(),
        0,
        "idempotent"
    );
    let ended = drain(&w.outbound, &w.blobs).await;
    assert_eq!(types(&ended), vec![EventType::ConversationEnded]);
    let data = serde_json::to_value(&ended[0].data).unwrap();
    assert_eq!(data["reason"], "inactivity");
    assert_eq!(data["conversation"]["status"], "ended");
    assert_eq!(
        data["conversation"]["last_active_at"],
        "2024-10-28T05:20:01Z"
    );
    assert_eq!(data["conversation"]["ended_at"], "2024-10-29T05:20:01Z");
    // A message after the end opens a new conversation.
    let later = waha(
        "waha-message.json",
        &json!({"id": "false_15550001111@c.us_LATER", "timestamp": t0().timestamp() + DAY + 120}),
        at(DAY + 120),
    );
    let outcome = process_all(&w, vec![later], at(DAY + 120)).await;
    assert_eq!(
        outcome,
        vec![emitted(&[
            EventType::ConversationCreated,
            EventType::MessageReceived
        ])]
    );
}

#[tokio::test]
async fn the_sweep_pages_through_many_idle_conversations() {
    let w = world();
    for n in 0..5 {
        let e = waha(
            "waha-message.json",
            &json!({"id": format!("false_1555000000{n}@c.us_X{n}"), "from": format!("1555000000{n}@c.us")}),
            at(0),
        );
        process_all(&w, vec![e], at(0)).await;
    }
    assert_eq!(
        w.sweep.run(at(DAY)).await.unwrap(),
        5,
        "page size 2, three pages"
    );
}

#[tokio::test]
async fn conversations_spread_over_index_shards_and_unsharded_entries_are_still_read() {
    use crate::ports::{DocumentWrite, IndexEntry, IndexPage};
    let w = world();
    for n in 0..20 {
        let e = waha(
            "waha-message.json",
            &json!({"id": format!("false_155500000{n:02}@c.us_S{n}"), "from": format!("155500000{n:02}@c.us")}),
            at(n),
        );
        process_all(&w, vec![e], at(n)).await;
    }
    let mut used = 0;
    for partition in crate::ports::sharded_partitions(state::ACTIVE, state::CONVERSATION_SHARDS) {
        let page = IndexPage {
            partition: &partition,
            after: None,
            before: None,
            descending: false,
            limit: 100,
        };
        if !w.docs.list_page(page, at(30)).await.unwrap().is_empty() {
            assert_ne!(partition, state::ACTIVE, "new entries go to the shards");
            used += 1;
        }
    }
    assert!(used >= 8, "20 conversations in {used} partitions");

    // One conversation as a version before sharding wrote it: in the unsharded partition.
    let state = &w.sweep.conversations;
    let page = state
        .list_conversations(false, &Default::default(), None, 100, at(30))
        .await
        .unwrap();
    assert_eq!(page.conversations.len(), 20);
    let old = &page.conversations[5];
    let key = format!("conv#{}", old.conversation.id);
    let doc = w.docs.get(&key, at(30)).await.unwrap().unwrap();
    let legacy = IndexEntry {
        partition: state::ACTIVE.into(),
        sort: format!("1970-01-01T00:00:00.000Z#{}", old.conversation.id),
    };
    assert!(
        w.docs
            .put(
                &key,
                &doc.body,
                DocumentWrite::new(Some(doc.version), at(30)).indexed(&legacy)
            )
            .await
            .unwrap()
    );

    // Listed newest first across every partition, page by page.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = state
            .list_conversations(false, &Default::default(), before.as_deref(), 6, at(30))
            .await
            .unwrap();
        seen.extend(page.conversations.iter().map(|c| c.conversation.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20);
    assert_eq!(
        seen.last(),
        Some(&old.conversation.id),
        "the old entry sorts oldest"
    );
    let distinct: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), 20);
    // And the sweep ends all of them, the unsharded one included.
    assert_eq!(w.sweep.run(at(DAY + 60)).await.unwrap(), 20);
}

#[tokio::test]
async fn closing_through_the_api_ends_now_with_its_reason_and_is_idempotent() {
    let w = world();
    alice_says_hi(&w).await;
    let id = drain(&w.buffer, &w.blobs).await[0]
        .data
        .conversation
        .clone()
        .unwrap()
        .id;
    drain(&w.outbound, &w.blobs).await;
    assert!(w.sweep.close(id, EndReason::Manual, at(60)).await.unwrap());
    assert!(!w.sweep.close(id, EndReason::Agent, at(61)).await.unwrap());
    let ended = drain(&w.outbound, &w.blobs).await;
    assert_eq!(types(&ended), vec![EventType::ConversationEnded]);
    assert_eq!(
        ended[0].data.conversation.as_ref().unwrap().end_reason,
        Some(EndReason::Manual)
    );
    assert_eq!(w.sweep.run(at(2 * DAY)).await.unwrap(), 0, "already ended");
}

/// A sink whose queue is down for the first `failures` calls.
#[derive(Debug)]
struct FlakySink {
    inner: Arc<dyn EventSink>,
    failures: std::sync::Mutex<usize>,
}

#[async_trait]
impl EventSink for FlakySink {
    async fn emit(&self, events: &[InboundEvent], now: DateTime<Utc>) -> Result<(), BackendError> {
        {
            let mut left = self.failures.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(BackendError::unavailable(std::io::Error::other(
                    "queue down",
                )));
            }
        }
        self.inner.emit(events, now).await
    }
}

#[tokio::test]
async fn a_crash_between_staging_and_hand_off_replays_the_same_events() {
    let mut w = world();
    let inner = w.track.sink.clone();
    w.track.sink = Arc::new(FlakySink {
        inner,
        failures: std::sync::Mutex::new(1),
    });
    let event = meta("meta-text.json", at(0)).remove(0);
    let err = w.track.process(event.clone(), at(0)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // The SQS retry of the same record hands on what was staged.
    let outcome = w.track.process(event.clone(), at(30)).await.unwrap();
    let all = [
        EventType::ContactCreated,
        EventType::ConversationCreated,
        EventType::MessageReceived,
    ];
    assert_eq!(outcome, emitted(&all));
    let stored = w
        .docs
        .get(&format!("outbox#{}", event.dedup_key), at(61))
        .await
        .unwrap()
        .unwrap()
        .body;
    assert_eq!(stored["by"], json!(event.id.to_string()));
    let staged: Vec<InboundEvent> = serde_json::from_value(stored["events"].clone()).unwrap();
    // Staged as the events' own JSON, fields in their order (each type ahead of its data, which
    // a flush then reads in one pass), not as a tree's sorted keys.
    let text = w
        .docs
        .get_json(&format!("outbox#{}", event.dedup_key), at(61))
        .await
        .unwrap()
        .unwrap()
        .json;
    let written = format!(
        r#"{{"by":"{}","events":{}}}"#,
        event.id,
        serde_json::to_string(&staged).unwrap()
    );
    assert_eq!(std::str::from_utf8(&text).unwrap(), written);
    let delivered: Vec<InboundEvent> = [
        drain(&w.outbound, &w.blobs).await,
        drain(&w.buffer, &w.blobs).await,
    ]
    .concat();
    assert_eq!(
        delivered, staged,
        "the retry hands on exactly what was staged"
    );
    // The same record once more (its delete was lost): the same events, same ids, which the
    // next stages recognise. A copy from another request is a duplicate.
    assert_eq!(
        w.track.process(event.clone(), at(62)).await.unwrap(),
        emitted(&all)
    );
    let again: Vec<InboundEvent> = [
        drain(&w.outbound, &w.blobs).await,
        drain(&w.buffer, &w.blobs).await,
    ]
    .concat();
    assert_eq!(again, staged);
    let copy = meta("meta-text.json", at(63)).remove(0);
    assert_ne!(copy.id, event.id);
    assert_eq!(
        w.track.process(copy, at(63)).await.unwrap(),
        TrackOutcome::Duplicate
    );
}

#[tokio::test]
async fn a_sweep_that_fails_to_hand_off_retries_the_same_ended_event() {
    let mut w = world();
    alice_says_hi(&w).await;
    drain(&w.outbound, &w.blobs).await;
    let inner = w.sweep.sink.clone();
    w.sweep.sink = Arc::new(FlakySink {
        inner,
        failures: std::sync::Mutex::new(1),
    });
    assert!(w.sweep.run(at(DAY)).await.is_err());
    assert_eq!(w.sweep.run(at(DAY + 60)).await.unwrap(), 1);
    assert_eq!(w.sweep.run(at(DAY + 120)).await.unwrap(), 0);
    let ended = drain(&w.outbound, &w.blobs).await;
    assert_eq!(types(&ended), vec![EventType::ConversationEnded]);
    assert_eq!(
        ended[0].data.conversation.as_ref().unwrap().ended_at,
        Some(at(DAY)),
        "ended when first swept"
    );
}

#[tokio::test]
async fn notifications_pass_through_unchanged() {
    let w = world();
    let template = meta("meta-template-status-update.json", at(0));
    assert_eq!(
        process_all(&w, template.clone(), at(0)).await,
        vec![emitted(&[EventType::TemplateStatusUpdated])]
    );
    assert_eq!(drain(&w.outbound, &w.blobs).await, template);
}

#[test]
fn status_order_is_sent_delivered_read_with_failed_terminal() {
    use super::state::moves_forward;
    use crate::model::MessageStatus as S;
    assert!(moves_forward(None, &S::Read));
    assert!(moves_forward(Some(&S::Sent), &S::Delivered));
    assert!(moves_forward(Some(&S::Delivered), &S::Read));
    assert!(moves_forward(Some(&S::Read), &S::Failed));
    assert!(!moves_forward(Some(&S::Read), &S::Delivered));
    assert!(!moves_forward(Some(&S::Read), &S::Played));
    assert!(!moves_forward(Some(&S::Failed), &S::Read));
    assert!(!moves_forward(Some(&S::Sent), &S::Sent));
    assert!(moves_forward(Some(&S::Pending), &S::Sent));
}

#[tokio::test]
async fn the_same_provider_ids_from_two_sources_are_two_items() {
    let w = world();
    // Two WAHA servers whose sessions are both `default` send the same message id.
    let doc = fixture("waha-message.json");
    let first = normalize(
        &SourceId::parse("waha-shop").unwrap(),
        Provider::Waha,
        &doc,
        at(0),
    )
    .unwrap()
    .remove(0);
    let second = normalize(
        &SourceId::parse("waha-support").unwrap(),
        Provider::Waha,
        &doc,
        at(0),
    )
    .unwrap()
    .remove(0);
    assert_ne!(first.dedup_key, second.dedup_key);
    for e in [first, second] {
        assert!(matches!(
            w.track.process(e, at(1)).await.unwrap(),
            TrackOutcome::Emitted(_)
        ));
    }
    assert_eq!(drain(&w.buffer, &w.blobs).await.len(), 2);
}

#[tokio::test]
async fn an_item_recorded_before_keys_were_scoped_by_source_stays_a_duplicate_until_its_ttl() {
    let mut w = world();
    let since = w
        .track
        .state
        .statuses
        .source_scoped_dedup_since(at(0))
        .await
        .unwrap();
    assert_eq!(since, at(0));
    assert_eq!(
        w.track
            .state
            .statuses
            .source_scoped_dedup_since(at(50))
            .await
            .unwrap(),
        at(0),
        "recorded once"
    );
    w.track.config.legacy_keys_until = Some(w.track.config.legacy_window(since));
    let event = meta("meta-text.json", at(0)).remove(0);
    // What an earlier version left: the outbox under the key without the source id.
    let unscoped = event.dedup_key.strip_prefix("src:").unwrap().to_owned();
    let old = serde_json::json!([]);
    let write = crate::ports::DocumentWrite::new(None, at(0));
    assert!(
        w.docs
            .put(&format!("outbox#{unscoped}"), &old, write)
            .await
            .unwrap()
    );
    assert_eq!(
        w.track.process(event.clone(), at(60)).await.unwrap(),
        TrackOutcome::Duplicate
    );
    // Once every key written before has expired, nothing is looked up under them.
    let later = w.track.config.legacy_window(since) + chrono::Duration::seconds(1);
    let mut copy = event;
    copy.id = crate::ids::EventId::new();
    assert!(matches!(
        w.track.process(copy, later).await.unwrap(),
        TrackOutcome::Emitted(_)
    ));
}

/// With the media stage on, a message naming a provider file goes to the media queue (its
/// conversation context attached as for any message), a `pending` early copy to the outbound
/// queue for endpoints that do not wait; a text goes to the buffer as before.
#[tokio::test]
async fn messages_with_a_file_go_to_the_media_stage_and_an_early_copy_out() {
    let mut w = world();
    let media = Arc::new(MemoryQueue::new("media"));
    w.track.sink = Arc::new(QueueSink {
        buffer: w.buffer.clone(),
        outbound: w.outbound.clone(),
        blobs: w.blobs.clone(),
        blob_ttl: Duration::from_secs(86400),
        media: Some(media.clone()),
    });
    let mut input = meta("meta-text.json", at(0));
    input.extend(meta("meta-image.json", at(1)));
    process_all(&w, input, at(2)).await;
    let to_media = drain(&media, &w.blobs).await;
    assert_eq!(to_media.len(), 1);
    assert_eq!(to_media[0].event_type, EventType::MessageReceived);
    let EventBody::Message(body) = &to_media[0].data.body else {
        panic!("a message")
    };
    assert_eq!(body.message.message_type(), Some("image"));
    assert!(to_media[0].data.conversation.is_some(), "context attached");
    let buffered = drain(&w.buffer, &w.blobs).await;
    assert_eq!(buffered.len(), 1);
    assert_ne!(buffered[0].id, to_media[0].id);
    let outbound: Vec<String> = w.outbound.take_all();
    let early: Vec<MediaEarly> = outbound
        .iter()
        .filter_map(|b| serde_json::from_str::<MediaEarly>(b).ok())
        .filter(|m| m.media_early)
        .collect();
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].event.id, to_media[0].id);
    let json = serde_json::to_value(&early[0].event.data).unwrap();
    assert_eq!(
        json["message"]["message_type_data"]["media"]["status"],
        "pending"
    );
    assert_eq!(
        json["message"]["message_type_data"]["media"]["reason"],
        "in_progress"
    );
}

/// The staged events of the outbox under `dedup_key`, read the general way (a `Value`, then
/// [`Outbox`] or the older shapes): what [`staged_events`] answered before its inline path.
async fn staged_the_general_way(
    docs: &MemoryDocumentStore,
    blobs: &MemoryBlobStore,
    dedup_key: &str,
) -> Result<Option<Vec<InboundEvent>>, TrackError> {
    match read_outbox(docs, dedup_key, false, at(1)).await? {
        Some(
            Stored::Outbox(Outbox {
                events: Some(part), ..
            })
            | Stored::Events(part),
        ) => Ok(Some(unstash_events(part, blobs, at(1)).await?)),
        Some(Stored::Outbox(Outbox { events: None, .. })) | None => Ok(None),
    }
}

#[tokio::test]
async fn staged_events_read_inline_answer_what_the_general_way_answers_for_every_shape() {
    let docs = MemoryDocumentStore::new();
    let blobs = MemoryBlobStore::new();
    let staged = meta("meta-text.json", at(0));
    let by = staged[0].id;
    let inline = serde_json::to_value(&staged).unwrap();
    blobs
        .put("claim", &serde_json::to_vec(&staged).unwrap(), at(3600))
        .await
        .unwrap();
    let shapes = [
        ("inline", json!({ "by": by, "events": inline })),
        ("nothing staged", json!({ "by": by })),
        (
            "claim check",
            json!({ "by": by, "events": { "claim_check": "claim" } }),
        ),
        ("older, events alone", inline.clone()),
        (
            "older, claim check alone",
            json!({ "claim_check": "claim" }),
        ),
        (
            "malformed by",
            json!({ "by": "not an id", "events": inline }),
        ),
        (
            "malformed events",
            json!({ "by": by, "events": [{ "id": 7 }] }),
        ),
        (
            "missing blob",
            json!({ "by": by, "events": { "claim_check": "gone" } }),
        ),
    ];
    for (name, body) in shapes {
        let key = format!("item {name}");
        let write = crate::ports::DocumentWrite::new(None, at(0));
        assert!(docs.put(&outbox_key(&key), &body, write).await.unwrap());
        let fast = staged_events(&docs, &blobs, &key, at(1)).await;
        let general = staged_the_general_way(&docs, &blobs, &key).await;
        match (&fast, &general) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{name}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{name}"),
            _ => panic!("{name}: {fast:?} against {general:?}"),
        }
        if name == "inline" || name.contains("claim check") {
            assert_eq!(fast.unwrap(), Some(staged.clone()), "{name}");
        }
        // Only the usual shapes take the inline path; the rest are read the general way.
        let inline_path = staged_inline(&serde_json::to_vec(&body).unwrap());
        match name {
            "inline" => assert_eq!(inline_path, Some(Some(staged.clone()))),
            "nothing staged" => assert_eq!(inline_path, Some(None)),
            _ => assert_eq!(inline_path, None, "{name}"),
        }
    }
    assert_eq!(
        staged_events(&docs, &blobs, "never staged", at(1))
            .await
            .unwrap(),
        None
    );
}
