//! Every state transition of track recognises its own replay: for each item kind, every call the
//! processing makes (claims, reads, writes, sends) is failed in turn, cleanly and ambiguously
//! (applied, then reported as an error), and the item is retried as SQS would, after the lease.
//! What is handed on must be exactly what a run without faults hands on: the same events, with
//! the same contents (ids and times aside), nothing missing and no counter applied twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::state::{ConversationSettings, State};
use super::*;
use crate::ids::SourceId;
use crate::model::Provider;
use crate::ports::codec::receive_all;
use crate::ports::faults::{Fault, Faults, FaultyBlobs, FaultyDocs, FaultyQueue};
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::providers::normalize;
use crate::providers::test_support::fixture;

struct World {
    track: Track,
    faults: Arc<Faults>,
    buffer: Arc<MemoryQueue>,
    outbound: Arc<MemoryQueue>,
    blobs: Arc<MemoryBlobStore>,
}

/// Track over in-memory ports behind one fault schedule.
fn world() -> World {
    let faults = Faults::none();
    let buffer = Arc::new(MemoryQueue::new("buffer"));
    let outbound = Arc::new(MemoryQueue::new("outbound"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let faulty_blobs: Arc<dyn BlobStore> = Arc::new(FaultyBlobs {
        inner: blobs.clone(),
        layer: faults.clone(),
    });
    let track = Track {
        blobs: faulty_blobs.clone(),
        state: State::new(
            Arc::new(FaultyDocs {
                inner: Arc::new(MemoryDocumentStore::new()),
                layer: faults.clone(),
            }),
            ConversationSettings {
                idle: Duration::from_secs(24 * 3600),
                message_ttl: Duration::from_secs(30 * 86400),
                recent_messages: 3,
            },
        ),
        sink: Arc::new(QueueSink {
            buffer: Arc::new(FaultyQueue {
                inner: buffer.clone(),
                layer: faults.clone(),
            }),
            outbound: Arc::new(FaultyQueue {
                inner: outbound.clone(),
                layer: faults.clone(),
            }),
            blobs: faulty_blobs,
            blob_ttl: Duration::from_secs(86400),
            media: None,
        }),
        config: TrackConfig::default(),
    };
    World {
        track,
        faults,
        buffer,
        outbound,
        blobs,
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 1).unwrap() + chrono::Duration::seconds(secs)
}

const DAY: i64 = 24 * 3600;

fn meta(name: &str, received: DateTime<Utc>) -> InboundEvent {
    normalize(
        &SourceId::parse("src").unwrap(),
        Provider::Meta,
        &fixture(name),
        received,
    )
    .unwrap()
    .remove(0)
}

/// A WAHA webhook from a fixture with some payload fields replaced.
fn waha(name: &str, payload: &Value, received: DateTime<Utc>) -> InboundEvent {
    let mut doc: Value = serde_json::from_slice(&fixture(name)).unwrap();
    for (k, v) in payload.as_object().unwrap() {
        doc["payload"][k] = v.clone();
    }
    normalize(
        &SourceId::parse("src").unwrap(),
        Provider::Waha,
        doc.to_string().as_bytes(),
        received,
    )
    .unwrap()
    .remove(0)
}

/// Alice's message `id` with her name as `name`, at `t`.
fn alice(id: &str, name: &str, t: i64) -> InboundEvent {
    waha(
        "waha-message.json",
        &json!({
            "id": format!("false_15550001111@c.us_{id}"),
            "timestamp": at(t).timestamp(),
            "_data": {"notifyName": name}
        }),
        at(t),
    )
}

/// A status of the WAHA fixtures' outbound message.
fn ack(ack: i64, t: i64) -> InboundEvent {
    waha("waha-message-ack.json", &json!({"ack": ack}), at(t))
}

/// What an item leads to: what came before it (processed without faults), the item, and when.
struct Scenario {
    name: &'static str,
    before: Vec<(InboundEvent, i64)>,
    item: InboundEvent,
    at: i64,
    /// What a run without faults hands on.
    expect: Vec<EventType>,
}

fn scenarios() -> Vec<Scenario> {
    use EventType as T;
    let hi = || (alice("HI", "Alice Example", 0), 0);
    vec![
        Scenario {
            name: "the first message of a conversation (contact and conversation created)",
            before: vec![],
            item: meta("meta-text.json", at(0)),
            at: 0,
            expect: vec![
                T::ContactCreated,
                T::ConversationCreated,
                T::MessageReceived,
            ],
        },
        Scenario {
            name: "a later message of the open conversation (counters, context)",
            before: vec![hi()],
            item: alice("AGAIN", "Alice Example", 10),
            at: 10,
            expect: vec![T::MessageReceived],
        },
        Scenario {
            name: "a message with a changed profile (contact updated)",
            before: vec![hi()],
            item: alice("RENAMED", "Alice B.", 10),
            at: 10,
            expect: vec![T::ContactUpdated, T::MessageReceived],
        },
        Scenario {
            name: "a message after the idle window (old conversation ended, new one created)",
            before: vec![hi()],
            item: alice("NEXT-DAY", "Alice Example", DAY + 10),
            at: DAY + 10,
            expect: vec![
                T::ConversationEnded,
                T::ConversationCreated,
                T::MessageReceived,
            ],
        },
        Scenario {
            name: "a status that moves forward",
            before: vec![hi(), (ack(1, 1), 1)],
            item: ack(2, 2),
            at: 2,
            expect: vec![T::MessageDelivered],
        },
        Scenario {
            name: "the first status of a message",
            before: vec![hi()],
            item: ack(3, 2),
            at: 2,
            expect: vec![T::MessageRead],
        },
    ]
}

/// Ids and times differ between runs (new ids, later retries): compare the rest.
fn normalized(v: &Value) -> Value {
    match v {
        Value::String(s)
            if s.starts_with("conv_")
                || s.starts_with("evt_")
                || DateTime::parse_from_rfc3339(s).is_ok() =>
        {
            Value::String("<varies>".into())
        }
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        other => other.clone(),
    }
}

/// Everything handed on, once per event id (a replay may hand an event on again, under the
/// same id), lifecycle events first: type, dedup key and normalized data.
async fn handed_on(w: &World) -> Vec<(EventType, String, Value)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for q in [&w.outbound, &w.buffer] {
        let events: Vec<InboundEvent> = receive_all(
            q.as_ref(),
            w.blobs.as_ref(),
            Duration::from_secs(3600),
            at(0),
        )
        .await
        .unwrap();
        for e in events {
            if seen.insert(e.id) {
                out.push((
                    e.event_type,
                    e.dedup_key.clone(),
                    normalized(&serde_json::to_value(&e.data).unwrap()),
                ));
            }
        }
    }
    out
}

/// Runs `scenario` with `fault` at the `k`-th call of the item (none: no fault), retrying the
/// item as SQS would until it is done; returns what was handed on and the item's call count.
async fn run(
    scenario: &Scenario,
    fault: Option<(u64, Fault)>,
) -> (Vec<(EventType, String, Value)>, u64) {
    let w = world();
    for (e, t) in &scenario.before {
        w.track.process(e.clone(), at(*t)).await.unwrap();
    }
    // What came before is not under test.
    receive_all::<InboundEvent>(
        w.outbound.as_ref(),
        w.blobs.as_ref(),
        Duration::from_secs(3600),
        at(0),
    )
    .await
    .unwrap();
    receive_all::<InboundEvent>(
        w.buffer.as_ref(),
        w.blobs.as_ref(),
        Duration::from_secs(3600),
        at(0),
    )
    .await
    .unwrap();
    let start = w.faults.calls();
    if let Some((k, f)) = fault {
        w.faults.fail_in(k, f);
    }
    let lease = i64::try_from(w.track.config.lease.as_secs()).unwrap();
    let mut done = false;
    for attempt in 0..6 {
        // SQS hands the record out again after its visibility, by when the lease has ended.
        let now = at(scenario.at + attempt * (lease + 1));
        if w.track.process(scenario.item.clone(), now).await.is_ok() {
            done = true;
            break;
        }
    }
    assert!(done, "{}: {fault:?} never succeeded", scenario.name);
    let calls = w.faults.calls() - start;
    (handed_on(&w).await, calls)
}

#[tokio::test]
async fn every_item_kind_hands_on_the_same_events_whichever_call_fails() {
    for scenario in scenarios() {
        let (expected, calls) = run(&scenario, None).await;
        let types = |h: &[(EventType, String, Value)]| h.iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(types(&expected), scenario.expect, "{}", scenario.name);
        for k in 1..=calls {
            for fault in [Fault::Clean, Fault::Ambiguous] {
                let (got, _) = run(&scenario, Some((k, fault))).await;
                let context = format!("{}: call {k} of {calls} failed ({fault:?})", scenario.name);
                assert_eq!(types(&got), types(&expected), "{context}");
                for (g, e) in got.iter().zip(&expected) {
                    assert_eq!(g, e, "{context}");
                }
            }
        }
    }
}

/// Documents whose first conversation write waits until released: a worker caught between
/// claiming the conversation pointer and writing the conversation. Tells when someone looked
/// for a conversation meanwhile and did not find it.
#[derive(Debug)]
struct HeldDocs {
    inner: MemoryDocumentStore,
    held: std::sync::atomic::AtomicBool,
    holding: tokio::sync::Notify,
    missed: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl crate::ports::DocumentStore for HeldDocs {
    async fn get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::ports::Versioned>, BackendError> {
        let got = self.inner.get(key, now).await?;
        if key.starts_with("conv#")
            && got.is_none()
            && self.held.load(std::sync::atomic::Ordering::SeqCst)
        {
            self.missed.notify_one();
        }
        Ok(got)
    }

    async fn put(
        &self,
        key: &str,
        body: &Value,
        write: crate::ports::DocumentWrite<'_>,
    ) -> Result<bool, BackendError> {
        if key.starts_with("conv#") && !self.held.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let released = self.release.notified();
            self.holding.notify_one();
            released.await;
        }
        self.inner.put(key, body, write).await
    }

    async fn put_all(&self, puts: &[crate::ports::PutDocument<'_>]) -> Result<bool, BackendError> {
        self.inner.put_all(puts).await
    }

    async fn list_page(
        &self,
        page: crate::ports::IndexPage<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::ports::Listed>, BackendError> {
        self.inner.list_page(page, now).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_arriving_while_another_opens_the_conversation_joins_it() {
    let docs = Arc::new(HeldDocs {
        inner: MemoryDocumentStore::new(),
        held: false.into(),
        holding: tokio::sync::Notify::new(),
        missed: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    });
    let w = world();
    let mut track = w.track.clone();
    track.state = State::new(docs.clone(), track.state.conversations.settings);
    let track = Arc::new(track);
    let first = {
        let track = track.clone();
        tokio::spawn(async move {
            track
                .process(alice("FIRST", "Alice Example", 0), at(0))
                .await
        })
    };
    // The first message has claimed the pointer and not written its conversation yet.
    docs.holding.notified().await;
    let second = {
        let track = track.clone();
        tokio::spawn(async move {
            track
                .process(alice("SECOND", "Alice Example", 1), at(1))
                .await
        })
    };
    // The second one has found the pointer naming a conversation that is not there yet.
    docs.missed.notified().await;
    docs.release.notify_one();
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    assert_eq!(
        first,
        TrackOutcome::Emitted(vec![
            EventType::ContactCreated,
            EventType::ConversationCreated,
            EventType::MessageReceived
        ])
    );
    assert_eq!(
        second,
        TrackOutcome::Emitted(vec![EventType::MessageReceived]),
        "joined, not a second conversation"
    );
    let messages: Vec<InboundEvent> = receive_all(
        w.buffer.as_ref(),
        w.blobs.as_ref(),
        Duration::from_secs(60),
        at(0),
    )
    .await
    .unwrap();
    let ids: std::collections::BTreeSet<_> = messages
        .iter()
        .map(|m| m.data.conversation.as_ref().unwrap().id)
        .collect();
    assert_eq!(ids.len(), 1);
}
