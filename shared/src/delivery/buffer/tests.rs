//! The buffer with an injected clock: timers are driven by calling `flush` at chosen times (the
//! timer messages themselves are checked on the queue), so nothing sleeps.

use chrono::TimeZone;

use super::*;
use crate::delivery::endpoints::{Endpoint, Endpoints};
use crate::delivery::request::{BodyForm, DeliveryTask, TaskBody};
use crate::ids::{ConversationId, SourceId};
use crate::model::{
    ContactProfile, Conversation, ConversationContext, ConversationStatus, Envelope, EnvelopeData,
    EventData, Provider,
};
use crate::ports::codec::receive_all;
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::providers::normalize;
use crate::providers::test_support::fixture;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn at(ms: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::milliseconds(ms)
}

struct World {
    buffer: Buffer,
    timers: Arc<MemoryQueue>,
    deliveries: Arc<MemoryQueue>,
}

async fn world(max_batch: usize, fail_fanout: bool) -> World {
    let docs = Arc::new(MemoryDocumentStore::new());
    let endpoints = Endpoints { docs: docs.clone() };
    let secret =
        crate::signature::EndpointSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let endpoint = Endpoint::new("ep_batch", "https://hooks.example.com", &secret, t0());
    endpoints.put(&endpoint, None, t0()).await.unwrap();
    let timers = Arc::new(MemoryQueue::new("buffer"));
    let deliveries = Arc::new(MemoryQueue::new("delivery"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let delivery_queue: Arc<dyn Queue> = if fail_fanout {
        Arc::new(Broken)
    } else {
        deliveries.clone()
    };
    let fanout = Fanout {
        endpoints,
        queue: delivery_queue,
        blobs: blobs.clone(),
        blob_ttl: Duration::from_secs(3600),
        body_form: BodyForm::Json,
    };
    let config = BufferConfig {
        max_batch,
        ..BufferConfig::default()
    };
    World {
        buffer: Buffer {
            docs,
            queue: timers.clone(),
            blobs,
            fanout,
            config,
        },
        timers,
        deliveries,
    }
}

/// A delivery queue that is down.
#[derive(Debug)]
struct Broken;

#[async_trait::async_trait]
impl Queue for Broken {
    async fn send_batch(
        &self,
        _: &[OutgoingMessage],
    ) -> Result<Vec<crate::ports::FailedEntry>, BackendError> {
        Err(BackendError::unavailable(std::io::Error::other("down")))
    }
    async fn receive(
        &self,
        _: usize,
        _: Duration,
        _: Duration,
    ) -> Result<Vec<crate::ports::ReceivedMessage>, BackendError> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &str) -> Result<(), BackendError> {
        Ok(())
    }
    async fn change_visibility(&self, _: &str, _: Duration) -> Result<(), BackendError> {
        Ok(())
    }
}

fn conversation(id: ConversationId) -> Conversation {
    Conversation {
        id,
        status: ConversationStatus::Active,
        contact: ContactProfile::default(),
        business_id: "b".into(),
        created_at: t0(),
        last_active_at: t0(),
        ended_at: None,
        end_reason: None,
        inbound_count: 1,
        outbound_count: 0,
        labels: vec![],
        notes: vec![],
        automation_notes: Vec::new(),
        assignee: None,
        handoff: None,
        contact_id: None,
        external_id: None,
        context: ConversationContext::default(),
    }
}

/// Received message `n` of conversation `conv`, received at `when`.
fn message(n: usize, conv: ConversationId, when: DateTime<Utc>) -> InboundEvent {
    let body = String::from_utf8(fixture("meta-text.json"))
        .unwrap()
        .replace("QzRUIwQzc2N0QyNkExRDJGNUExRQ01A=", &format!("N{n:04}"));
    let mut e = normalize(
        &SourceId::parse("src").unwrap(),
        Provider::Meta,
        body.as_bytes(),
        when,
    )
    .unwrap()
    .remove(0);
    e.occurred_at = Some(when);
    e.data.conversation = Some(Box::new(conversation(conv)));
    e
}

async fn batches(w: &World) -> Vec<Vec<EventId>> {
    delivered(w)
        .await
        .iter()
        .map(|(ids, _)| ids.clone())
        .collect()
}

/// Each batch delivery on the delivery queue: its event ids and its items.
async fn delivered(w: &World) -> Vec<(Vec<EventId>, Vec<EventData>)> {
    let tasks: Vec<DeliveryTask> = receive_all(
        w.deliveries.as_ref(),
        w.buffer.blobs.as_ref(),
        Duration::from_secs(60),
        Utc::now(),
    )
    .await
    .unwrap();
    tasks
        .iter()
        .map(|t| {
            let envelope: Envelope = serde_json::from_str(t.body.as_str()).unwrap();
            let EnvelopeData::Batch(items) = envelope.data else {
                panic!("a batch delivery");
            };
            assert!(envelope.batch);
            (t.event_ids.clone(), items)
        })
        .collect()
}

#[tokio::test]
async fn a_burst_becomes_one_batch_after_the_quiet_window_in_order() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    let msgs: Vec<InboundEvent> = [0, 1000, 2500]
        .iter()
        .enumerate()
        .map(|(n, ms)| message(n, conv, at(*ms)))
        .collect();
    // Appended out of order: the batch still comes out in message order.
    for m in [msgs[1].clone(), msgs[0].clone(), msgs[2].clone()] {
        let when = m.occurred_at.unwrap();
        w.buffer.append(m, when).await.unwrap();
    }
    assert_eq!(
        w.timers.len(),
        1,
        "the append that opened the batch set its timer"
    );
    w.buffer.flush(&key, at(5000)).await.unwrap(); // 2.5 s after the last message: too early
    assert!(batches(&w).await.is_empty());
    w.buffer.flush(&key, at(7500)).await.unwrap(); // quiet for 5 s
    assert_eq!(
        batches(&w).await,
        vec![msgs.iter().map(|m| m.id).collect::<Vec<_>>()]
    );
    w.buffer.flush(&key, at(8000)).await.unwrap(); // a duplicate timer does nothing
    assert!(batches(&w).await.is_empty());
}

#[tokio::test]
async fn a_quiet_gap_splits_batches() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    let (a, b) = (message(1, conv, at(0)), message(2, conv, at(20_000)));
    w.buffer.append(a.clone(), at(0)).await.unwrap();
    w.buffer.flush(&key, at(5_000)).await.unwrap();
    w.buffer.append(b.clone(), at(20_000)).await.unwrap();
    w.buffer.flush(&key, at(25_000)).await.unwrap();
    assert_eq!(batches(&w).await, vec![vec![a.id], vec![b.id]]);
}

#[tokio::test]
async fn a_full_batch_goes_out_at_once() {
    let w = world(3, false).await;
    let conv = ConversationId::new();
    let msgs: Vec<InboundEvent> = (0..4)
        .map(|n| message(n, conv, at(n as i64 * 100)))
        .collect();
    for m in &msgs[..3] {
        w.buffer
            .append(m.clone(), m.occurred_at.unwrap())
            .await
            .unwrap();
    }
    assert_eq!(
        batches(&w).await,
        vec![msgs[..3].iter().map(|m| m.id).collect::<Vec<_>>()]
    );
    w.buffer.append(msgs[3].clone(), at(300)).await.unwrap();
    w.buffer.flush(&conv.to_string(), at(5_300)).await.unwrap();
    assert_eq!(batches(&w).await, vec![vec![msgs[3].id]]);
}

#[tokio::test]
async fn a_conversation_that_never_goes_quiet_is_flushed_at_the_maximum_wait() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    // A message every 4 s never leaves 5 s of quiet.
    for n in 0..8 {
        let when = at(n * 4000);
        w.buffer
            .append(message(n as usize, conv, when), when)
            .await
            .unwrap();
        w.buffer.flush(&key, when).await.unwrap();
    }
    assert!(batches(&w).await.is_empty());
    w.buffer.flush(&key, at(30_000)).await.unwrap(); // 30 s after the first message
    let got = batches(&w).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), 8);
}

#[tokio::test]
async fn a_crash_in_flush_loses_nothing_and_resends_the_same_batch() {
    let broken = world(50, true).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    let m = message(1, conv, at(0));
    broken.buffer.append(m.clone(), at(0)).await.unwrap();
    assert!(
        broken.buffer.flush(&key, at(6_000)).await.is_err(),
        "fan-out failed: the timer record is retried"
    );
    // The same state, now with a working delivery queue: the retried timer delivers the batch.
    let mut healthy = world(50, false).await;
    healthy.buffer.docs = broken.buffer.docs.clone();
    healthy.buffer.blobs = broken.buffer.blobs.clone();
    healthy.buffer.fanout.endpoints = broken.buffer.fanout.endpoints.clone();
    healthy.buffer.flush(&key, at(7_000)).await.unwrap();
    assert_eq!(batches(&healthy).await, vec![vec![m.id]]);
}

#[tokio::test]
async fn buffer_queue_records_are_appended_or_flushed_and_garbage_is_reported() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let event = serde_json::to_string(&message(1, conv, at(0))).unwrap();
    let timer = serde_json::to_string(&serde_json::json!({"flush": conv.to_string()})).unwrap();
    let records = [
        Record {
            message_id: "e",
            body: &event,
        },
        Record {
            message_id: "t",
            body: &timer,
        },
        Record {
            message_id: "x",
            body: "??",
        },
    ];
    assert_eq!(
        w.buffer.process_batch(&records, at(0)).await,
        vec!["x".to_owned()]
    );
    assert!(batches(&w).await.is_empty(), "the timer came too early");
    let records = [Record {
        message_id: "t2",
        body: &timer,
    }];
    assert!(
        w.buffer
            .process_batch(&records, at(10_000))
            .await
            .is_empty()
    );
    assert_eq!(batches(&w).await.len(), 1);
}

#[tokio::test]
async fn a_record_handed_out_again_after_its_batch_went_out_is_not_sent_again() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    let (a, b, c) = (
        message(1, conv, at(0)),
        message(2, conv, at(10_000)),
        message(3, conv, at(10_500)),
    );
    w.buffer.append(a.clone(), at(0)).await.unwrap();
    w.buffer.flush(&key, at(5_000)).await.unwrap();
    // The next batch has started when the queue hands `a` out again (its first processing
    // outlived the visibility timeout).
    w.buffer.append(b.clone(), at(10_000)).await.unwrap();
    w.buffer.append(a.clone(), at(10_200)).await.unwrap();
    w.buffer.flush(&key, at(15_000)).await.unwrap();
    // And once more, in the batch after that.
    w.buffer.append(c.clone(), at(20_000)).await.unwrap();
    w.buffer.append(b.clone(), at(20_100)).await.unwrap();
    w.buffer.append(a.clone(), at(20_200)).await.unwrap();
    w.buffer.flush(&key, at(26_000)).await.unwrap();
    assert_eq!(batches(&w).await, vec![vec![a.id], vec![b.id], vec![c.id]]);
}

/// However many messages went out since (here 3 full batches of 50), a record handed out again
/// is recognised by the marker its flush left, not by a bounded list in the batch.
#[tokio::test]
async fn a_record_handed_out_again_after_many_later_batches_is_not_sent_again() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    let first = message(0, conv, at(0));
    w.buffer.append(first.clone(), at(0)).await.unwrap();
    w.buffer.flush(&key, at(6_000)).await.unwrap();
    for n in 1..=150 {
        // Full batches go out at their 50th append.
        w.buffer
            .append(message(n, conv, at(10_000)), at(10_000))
            .await
            .unwrap();
    }
    w.buffer.append(first.clone(), at(20_000)).await.unwrap();
    w.buffer.flush(&key, at(30_000)).await.unwrap();
    let sent: Vec<Vec<EventId>> = batches(&w).await;
    assert_eq!(sent.len(), 4, "the first batch and three full ones");
    assert_eq!(
        sent.iter().flatten().filter(|id| **id == first.id).count(),
        1
    );
}

/// A buffer whose documents, timers and deliveries all fail as `faults` says.
fn faulty(w: &World, faults: &Arc<crate::ports::faults::Faults>) -> Buffer {
    use crate::ports::faults::{FaultyDocs, FaultyQueue};
    let mut buffer = w.buffer.clone();
    buffer.docs = Arc::new(FaultyDocs {
        inner: buffer.docs,
        layer: faults.clone(),
    });
    buffer.queue = Arc::new(FaultyQueue {
        inner: buffer.queue,
        layer: faults.clone(),
    });
    buffer.fanout.queue = Arc::new(FaultyQueue {
        inner: buffer.fanout.queue,
        layer: faults.clone(),
    });
    buffer
}

/// Runs `step` until it succeeds (SQS retrying its record), at most a few times.
async fn retried<F, Fut>(mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), BufferError>>,
{
    for _ in 0..5 {
        if step().await.is_ok() {
            return;
        }
    }
    panic!("never succeeded");
}

/// Fires every timer on the queue (each at `when`, retried until it succeeds) until none is
/// left; returns the distinct batches delivered (a repeated flush sends the same delivery).
async fn fire_timers_and_collect(
    w: &World,
    buffer: &Buffer,
    when: DateTime<Utc>,
) -> Vec<Vec<EventId>> {
    loop {
        let timers = w.timers.take_all();
        if timers.is_empty() {
            break;
        }
        for body in timers {
            let BufferMessage::Timer { flush } = serde_json::from_str(&body).unwrap() else {
                panic!("only timers go on the buffer queue here");
            };
            retried(|| buffer.flush(&flush, when)).await;
        }
    }
    let tasks: Vec<DeliveryTask> = receive_all(
        w.deliveries.as_ref(),
        buffer.blobs.as_ref(),
        Duration::from_secs(60),
        when,
    )
    .await
    .unwrap();
    // A repeated flush may queue a delivery again: always with the same body.
    let mut seen: std::collections::HashMap<String, TaskBody> = Default::default();
    tasks
        .into_iter()
        .filter(|t| match seen.get(&t.delivery_id) {
            Some(body) => {
                assert_eq!(body, &t.body, "one delivery id, one body");
                false
            }
            None => {
                seen.insert(t.delivery_id.clone(), t.body.clone());
                true
            }
        })
        .map(|t| t.event_ids)
        .collect()
}

#[tokio::test]
async fn an_append_or_a_flush_replayed_after_any_failed_call_delivers_the_batch_once() {
    use crate::ports::faults::{Fault, Faults};
    for phase in ["append", "flush"] {
        // How many calls the phase makes without faults.
        let calls = {
            let faults = Faults::none();
            let w = world(50, false).await;
            let buffer = faulty(&w, &faults);
            let conv = ConversationId::new();
            let m = message(1, conv, at(0));
            let before = faults.calls();
            buffer.append(m, at(0)).await.unwrap();
            let appended = faults.calls() - before;
            w.timers.take_all();
            let before = faults.calls();
            buffer.flush(&conv.to_string(), at(10_000)).await.unwrap();
            if phase == "append" {
                appended
            } else {
                faults.calls() - before
            }
        };
        assert!(calls >= 2, "{phase}: {calls} calls");
        for k in 1..=calls {
            for fault in [Fault::Clean, Fault::Ambiguous] {
                let faults = Faults::none();
                let w = world(50, false).await;
                let buffer = faulty(&w, &faults);
                let conv = ConversationId::new();
                let m = message(1, conv, at(0));
                if phase == "append" {
                    faults.fail_in(k, fault);
                }
                retried(|| buffer.append(m.clone(), at(0))).await;
                if phase == "flush" {
                    // The timer fires; its flush fails at call k and is retried.
                    let timers = w.timers.take_all();
                    assert_eq!(timers.len(), 1);
                    faults.fail_in(k, fault);
                    let key = conv.to_string();
                    retried(|| buffer.flush(&key, at(10_000))).await;
                }
                let got = fire_timers_and_collect(&w, &buffer, at(10_000)).await;
                assert_eq!(
                    got,
                    vec![vec![m.id]],
                    "{phase}: call {k} of {calls} failed ({fault:?})"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_message_appended_while_a_failed_flush_is_retried_waits_for_the_next_batch() {
    use crate::ports::faults::{Fault, Faults};
    // Calls one flush makes without faults.
    let calls = {
        let faults = Faults::none();
        let w = world(50, false).await;
        let buffer = faulty(&w, &faults);
        let conv = ConversationId::new();
        buffer.append(message(1, conv, at(0)), at(0)).await.unwrap();
        let before = faults.calls();
        buffer.flush(&conv.to_string(), at(10_000)).await.unwrap();
        faults.calls() - before
    };
    for k in 1..=calls {
        for fault in [Fault::Clean, Fault::Ambiguous] {
            let faults = Faults::none();
            let w = world(50, false).await;
            let buffer = faulty(&w, &faults);
            let conv = ConversationId::new();
            let key = conv.to_string();
            let (a, b, c) = (
                message(1, conv, at(0)),
                message(2, conv, at(500)),
                message(3, conv, at(10_500)),
            );
            buffer.append(a.clone(), at(0)).await.unwrap();
            buffer.append(b.clone(), at(500)).await.unwrap();
            faults.fail_in(k, fault);
            let failed = buffer.flush(&key, at(10_000)).await.is_err();
            // A message comes in before the timer's retry.
            buffer.append(c.clone(), at(10_500)).await.unwrap();
            retried(|| buffer.flush(&key, at(11_000))).await;
            // Every timer fired until none is left (the deliveries stay on their queue).
            fire_timers_and_collect(&w, &buffer, at(30_000)).await;
            let context = format!("flush call {k} of {calls} failed ({fault:?}, error: {failed})");
            let all = w.deliveries.take_all();
            let mut bodies: std::collections::HashMap<String, TaskBody> = Default::default();
            let mut delivered: Vec<Vec<EventId>> = Vec::new();
            for body in all {
                let task: DeliveryTask = serde_json::from_str(&body).unwrap();
                match bodies.get(&task.delivery_id) {
                    Some(seen) => assert_eq!(seen, &task.body, "{context}: one id, one body"),
                    None => {
                        bodies.insert(task.delivery_id.clone(), task.body.clone());
                        delivered.push(task.event_ids);
                    }
                }
            }
            // Each message in exactly one delivery; a and b, cut together, in the same one.
            let mut ids: Vec<EventId> = delivered.iter().flatten().copied().collect();
            ids.sort();
            let mut want = vec![a.id, b.id, c.id];
            want.sort();
            assert_eq!(ids, want, "{context}");
            assert!(
                delivered
                    .iter()
                    .any(|d| d.contains(&a.id) && d.contains(&b.id)),
                "{context}: {delivered:?}"
            );
        }
    }
}

/// Stages `events` as track does before handing them on.
async fn stage(w: &World, events: &[InboundEvent]) {
    for e in events {
        let body = serde_json::to_value(vec![e]).unwrap();
        let write = DocumentWrite::new(None, at(0)).expiring(at(0) + chrono::Duration::days(8));
        assert!(
            w.buffer
                .docs
                .put(&format!("outbox#{}", e.dedup_key), &body, write)
                .await
                .unwrap()
        );
    }
}

/// The bytes of a conversation's pending batch document.
async fn pending_bytes(w: &World, key: &str, now: DateTime<Utc>) -> usize {
    let doc = w
        .buffer
        .docs
        .get(&format!("buffer#{key}"), now)
        .await
        .unwrap()
        .unwrap();
    serde_json::to_string(&doc.body).unwrap().len()
}

#[tokio::test]
async fn staged_messages_are_referenced_not_copied_and_delivered_whole() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    let msgs: Vec<InboundEvent> = (0..3).map(|n| message(n, conv, at(0))).collect();
    stage(&w, &msgs).await;
    for m in &msgs {
        w.buffer.append(m.clone(), at(0)).await.unwrap();
        let copy = format!("buffer#evt#{}", m.id);
        assert_eq!(w.buffer.blobs.get(&copy, at(0)).await.unwrap(), None);
    }
    w.buffer.flush(&key, at(6_000)).await.unwrap();
    let mut got = delivered(&w).await;
    assert_eq!(got.len(), 1);
    let (_, sent) = got.remove(0);
    let staged: Vec<EventData> = msgs
        .iter()
        .map(|m| EventData {
            event_id: Some(m.id),
            ..m.data.clone()
        })
        .collect();
    assert_eq!(sent, staged, "each message exactly as track staged it");
}

/// The worst case the configuration allows (the largest batch, each message carrying notes at
/// their limit): the pending batch document stays a few KB, far below DynamoDB's 400 KB.
#[tokio::test]
async fn a_full_batch_of_large_messages_keeps_its_document_small() {
    let max = MAX_BATCH_SIZE;
    let w = world(max, false).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    let notes: Vec<crate::model::Note> = (0..100)
        .map(|_| crate::model::Note {
            text: "é".repeat(160),
            author: Some("agent".into()),
            created_at: t0(),
        })
        .collect();
    let mut largest = 0;
    let mut msgs = Vec::new();
    for n in 0..max {
        let mut m = message(n, conv, at(0));
        if let Some(c) = m.data.conversation.as_mut() {
            c.notes.clone_from(&notes);
        }
        // Half of them staged by track, half not (kept as blobs of their own).
        if n % 2 == 0 {
            stage(&w, std::slice::from_ref(&m)).await;
        }
        w.buffer.append(m.clone(), at(0)).await.unwrap();
        if n + 1 < max {
            largest = largest.max(pending_bytes(&w, &key, at(0)).await);
        }
        msgs.push(m);
    }
    let per_message = serde_json::to_string(&msgs[0]).unwrap().len();
    assert!(per_message > 30_000, "each message is large: {per_message}");
    // About 100 bytes per message (its id and dedup key), whatever the message weighs.
    assert!(
        largest < 160 * max + 1024 && largest < 100_000,
        "the document holds references only: {largest} bytes for {max} messages"
    );
    // Full: it went out at the last append, whole and in order.
    assert_eq!(
        batches(&w).await,
        vec![msgs.iter().map(|m| m.id).collect::<Vec<_>>()]
    );
}

#[tokio::test]
async fn a_batch_written_with_whole_events_by_an_earlier_version_is_still_delivered() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let key = conv.to_string();
    let m = message(1, conv, at(0));
    let legacy = serde_json::json!({
        "batch_id": EventId::new(),
        "first_at": at(0),
        "last_at": at(0),
        "events": [m],
        "flushed": false,
    });
    let write = DocumentWrite::new(None, at(0)).expiring(at(0) + chrono::Duration::days(1));
    assert!(
        w.buffer
            .docs
            .put(&format!("buffer#{key}"), &legacy, write)
            .await
            .unwrap()
    );
    let n = message(2, conv, at(1_000));
    w.buffer.append(n.clone(), at(1_000)).await.unwrap();
    w.buffer.flush(&key, at(7_000)).await.unwrap();
    assert_eq!(batches(&w).await, vec![vec![m.id, n.id]]);
}

/// A record track marks as staged is referred to in the outbox without reading it at the
/// append (the flush reads it), and reads as a plain event for a reader that knows only events.
#[tokio::test]
async fn a_record_marked_staged_is_referred_to_without_a_read_at_the_append() {
    use crate::pipeline::track::StagedEvent;
    use crate::ports::faults::{Faults, FaultyDocs};
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let m = message(1, conv, at(0));
    stage(&w, std::slice::from_ref(&m)).await;
    let body = serde_json::to_string(&StagedEvent {
        staged: m.dedup_key.clone(),
        event: Box::new(m.clone()),
    })
    .unwrap();
    let plain: InboundEvent = serde_json::from_str(&body).unwrap();
    assert_eq!(plain, m);
    // Counting document calls: a get of the batch, a get of the sent marker, the batch write.
    let faults = Faults::none();
    let mut counted = w.buffer.clone();
    counted.docs = Arc::new(FaultyDocs {
        inner: w.buffer.docs.clone(),
        layer: faults.clone(),
    });
    let records = [Record {
        message_id: "m",
        body: &body,
    }];
    assert!(counted.process_batch(&records, at(0)).await.is_empty());
    assert_eq!(faults.calls(), 3, "no read of the outbox");
    let copy = format!("buffer#evt#{}", m.id);
    assert_eq!(w.buffer.blobs.get(&copy, at(0)).await.unwrap(), None);
    w.buffer.flush(&conv.to_string(), at(6_000)).await.unwrap();
    assert_eq!(batches(&w).await, vec![vec![m.id]]);
}

/// A buffer-queue message reads as the untagged enum reads it: timers, staged events, events
/// (with a `staged` of another kind), and what is none of them.
#[test]
fn buffer_messages_read_as_the_untagged_enum_reads_them() {
    let event = message(1, ConversationId::new(), t0());
    let staged = StagedEvent {
        staged: event.dedup_key.clone(),
        event: Box::new(event.clone()),
    };
    let mut odd = serde_json::to_value(&event).unwrap();
    odd["staged"] = serde_json::json!(5);
    let text = serde_json::to_string(&event).unwrap();
    let staged_twice = format!(r#"{{"staged":"a","staged":"b",{}"#, &text[1..]);
    let as_array = serde_json::to_value(&event)
        .unwrap()
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect::<Vec<_>>();
    let mut both = serde_json::to_value(&staged).unwrap();
    both["flush"] = serde_json::json!("conv_1");
    let bodies = [
        serde_json::to_string(&BufferMessage::Timer {
            flush: "conv_1".into(),
        })
        .unwrap(),
        serde_json::to_string(&staged).unwrap(),
        serde_json::to_string(&event).unwrap(),
        odd.to_string(),
        both.to_string(),
        staged_twice,
        serde_json::to_string(&as_array).unwrap(),
        format!(" {} ", serde_json::to_string(&event).unwrap()),
        r#"["conv_1"]"#.into(),
        r#"{"flush": 5}"#.into(),
        // Nesting beyond serde_json's limit, which the untagged enum's buffered copy refused.
        format!(
            r#"{{"flush":"a","x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        ),
        format!(
            r#"{{"flush":"a","x":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        ),
        r#"{"flush": "a"} x"#.into(),
        "{".into(),
        String::new(),
    ];
    let shape = |m: &BufferMessage| serde_json::to_value(m).unwrap();
    for body in &bodies {
        let want = serde_json::from_str::<BufferMessage>(body).ok();
        let got = BufferMessage::read(body).ok();
        assert_eq!(got.as_ref().map(shape), want.as_ref().map(shape), "{body}");
        if let (Some(got), Some(want)) = (got, want) {
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{body}"
            );
        }
    }
}

/// Runs `action` once, right after the `at`-th call made through it (counting from 1).
#[derive(Default)]
struct Interleave {
    calls: std::sync::atomic::AtomicUsize,
    at: usize,
    action: std::sync::Mutex<Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl std::fmt::Debug for Interleave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interleave").field("at", &self.at).finish()
    }
}

impl crate::ports::layer::Layer for Interleave {
    async fn around<T, F, Fut>(&self, _op: &'static str, call: F) -> Result<T, BackendError>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, BackendError>> + Send,
    {
        let answer = call().await;
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == self.at {
            let action = self.action.lock().unwrap().take();
            if let Some(action) = action {
                action.await;
            }
        }
        answer
    }
}

/// `w.buffer` with every call of its documents, timers and deliveries going through `layer`.
fn layered(w: &World, layer: &Arc<Interleave>) -> Buffer {
    use crate::ports::layer::Layered;
    let mut buffer = w.buffer.clone();
    let docs: Arc<dyn DocumentStore> = buffer.docs;
    buffer.docs = Arc::new(Layered {
        inner: docs,
        layer: layer.clone(),
    });
    let queue: Arc<dyn Queue> = buffer.queue;
    buffer.queue = Arc::new(Layered {
        inner: queue,
        layer: layer.clone(),
    });
    let deliveries: Arc<dyn Queue> = buffer.fanout.queue;
    buffer.fanout.queue = Arc::new(Layered {
        inner: deliveries,
        layer: layer.clone(),
    });
    buffer
}

/// The timers of a burst: the first message's append sets one; later messages join its batch
/// without one; a timer that finds the batch not yet due sets the next, and that one flushes.
#[tokio::test]
async fn one_chain_of_timers_serves_a_batch_however_many_messages_join_it() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let msgs: Vec<InboundEvent> = (0..6)
        .map(|n| message(n, conv, at(n as i64 * 800)))
        .collect();
    for m in &msgs {
        let when = m.occurred_at.unwrap();
        w.buffer.append(m.clone(), when).await.unwrap();
    }
    let timers = w.timers.take_all();
    assert_eq!(timers.len(), 1, "only the append that opened the batch");
    // The opener's timer fires 5 s after it: the last message came at 4 s, so not yet due.
    let BufferMessage::Timer { flush } = serde_json::from_str(&timers[0]).unwrap() else {
        panic!("a timer");
    };
    w.buffer.flush(&flush, at(5_000)).await.unwrap();
    assert!(batches(&w).await.is_empty());
    let next = w.timers.take_all();
    assert_eq!(
        next.len(),
        1,
        "the timer that found the batch early set the next"
    );
    // The next one, at 9 s (5 s after the last message), flushes all six in one batch.
    let BufferMessage::Timer { flush } = serde_json::from_str(&next[0]).unwrap() else {
        panic!("a timer");
    };
    w.buffer.flush(&flush, at(9_000)).await.unwrap();
    assert_eq!(
        batches(&w).await,
        vec![msgs.iter().map(|m| m.id).collect::<Vec<_>>()]
    );
    assert!(w.timers.is_empty(), "nothing left waiting, no timer left");
    // A message after the batch went out opens the next batch and sets its timer.
    let late = message(7, conv, at(20_000));
    w.buffer.append(late.clone(), at(20_000)).await.unwrap();
    assert_eq!(
        fire_timers_and_collect(&w, &w.buffer, at(25_000)).await,
        vec![vec![late.id]]
    );
}

/// A message appended at any point of a flush that goes through (between any two of its calls)
/// is delivered, once, driven by nothing but the timers on the queue: one that comes in after
/// the cut, when the flush has read the batch for the last time, sets a timer of its own.
#[tokio::test]
async fn a_message_appended_during_any_step_of_a_flush_is_delivered_by_the_timers_alone() {
    let calls = {
        let w = world(50, false).await;
        let layer = Arc::new(Interleave::default());
        let buffer = layered(&w, &layer);
        let conv = ConversationId::new();
        buffer.append(message(1, conv, at(0)), at(0)).await.unwrap();
        w.timers.take_all();
        let before = layer.calls.load(std::sync::atomic::Ordering::SeqCst);
        buffer.flush(&conv.to_string(), at(10_000)).await.unwrap();
        layer.calls.load(std::sync::atomic::Ordering::SeqCst) - before
    };
    assert!(calls >= 4, "{calls} calls");
    for k in 0..=calls {
        let w = world(50, false).await;
        let conv = ConversationId::new();
        let (a, c) = (message(1, conv, at(0)), message(2, conv, at(10_500)));
        w.buffer.append(a.clone(), at(0)).await.unwrap();
        let timers = w.timers.take_all();
        assert_eq!(timers.len(), 1);
        // The append runs on the same stores, after call k of the flush (0: before it).
        let append = {
            let (plain, c) = (w.buffer.clone(), c.clone());
            async move { plain.append(c, at(10_500)).await.unwrap() }
        };
        let layer = Arc::new(Interleave {
            at: k,
            action: std::sync::Mutex::new(Some(Box::pin(append))),
            ..Interleave::default()
        });
        if k == 0 {
            let action = layer.action.lock().unwrap().take().unwrap();
            action.await;
        }
        let buffer = layered(&w, &layer);
        buffer.flush(&conv.to_string(), at(10_000)).await.unwrap();
        assert!(
            layer.action.lock().unwrap().is_none(),
            "call {k}: the append ran"
        );
        // The timers fire as they come due (a round a window apart), until none is left.
        let mut when = at(10_000);
        for round in 0.. {
            assert!(round < 20, "append after call {k}: the timers never stop");
            if w.timers.is_empty() {
                break;
            }
            when += chrono::Duration::seconds(5);
            for body in w.timers.take_all() {
                let BufferMessage::Timer { flush } = serde_json::from_str(&body).unwrap() else {
                    panic!("only timers go on the buffer queue here");
                };
                w.buffer.flush(&flush, when).await.unwrap();
            }
        }
        let got = fire_timers_and_collect(&w, &w.buffer, when).await;
        let mut ids: Vec<EventId> = got.iter().flatten().copied().collect();
        ids.sort();
        let mut want = vec![a.id, c.id];
        want.sort();
        assert_eq!(ids, want, "append after call {k} of {calls}: {got:?}");
    }
}

/// A batch whose only timer is gone (dead-lettered during an outage) does not wait for ever:
/// the next message to come after the batch was due sets a timer, and that flushes both.
#[tokio::test]
async fn a_message_after_a_batch_was_due_sets_a_timer_in_case_its_chain_died() {
    let w = world(50, false).await;
    let conv = ConversationId::new();
    let (a, b, c) = (
        message(1, conv, at(0)),
        message(2, conv, at(1_000)),
        message(3, conv, at(60_000)),
    );
    w.buffer.append(a.clone(), at(0)).await.unwrap();
    assert_eq!(w.timers.take_all().len(), 1, "lost: the chain is gone");
    w.buffer.append(b.clone(), at(1_000)).await.unwrap();
    assert!(
        w.timers.is_empty(),
        "before the batch is due, no timer of its own"
    );
    w.buffer.append(c.clone(), at(60_000)).await.unwrap();
    assert_eq!(w.timers.len(), 1, "past the batch's due time: a timer");
    let got = fire_timers_and_collect(&w, &w.buffer, at(70_000)).await;
    assert_eq!(got, vec![vec![a.id, b.id, c.id]]);
}
