//! Conversation events a provider causes (Meta's hand-over protocol) through the track stage:
//! the customer's open conversation is attached and changed as the API changes it, an event
//! with no open conversation goes on with `conversation: null`, and every call of the
//! processing failed in turn (cleanly and ambiguously, then retried as SQS would) hands on
//! exactly what a run without faults does and changes the conversation once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::state::{ConversationSettings, State};
use super::*;
use crate::ids::SourceId;
use crate::model::{Conversation, Provider};
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
    let queue = |q: &Arc<MemoryQueue>| -> Arc<dyn Queue> {
        Arc::new(FaultyQueue {
            inner: q.clone(),
            layer: faults.clone(),
        })
    };
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
            buffer: queue(&buffer),
            outbound: queue(&outbound),
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

/// 2024-10-28T05:20:01Z, when Alice's first message (`meta-text.json`) was sent, plus `secs`.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 1).unwrap() + chrono::Duration::seconds(secs)
}

/// The first event of a Meta fixture as ingest enqueues it for source `src` at `received`.
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

/// Takes everything handed on so far, lifecycle events first, once per event id.
async fn handed_on(w: &World) -> Vec<InboundEvent> {
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
        out.extend(events.into_iter().filter(|e| seen.insert(e.id)));
    }
    out
}

/// Alice's conversation as stored now.
async fn alice(w: &World, now: DateTime<Utc>) -> Conversation {
    let key = state::ConversationKey::new(
        &meta("meta-text.json", at(0)).data.source,
        Some("15550001111"),
    )
    .unwrap();
    w.track
        .state
        .conversations
        .active_conversation(&key, now)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_provider_transfer_assigns_the_open_conversation_and_carries_it() {
    let w = world();
    w.track
        .process(meta("meta-text.json", at(0)), at(0))
        .await
        .unwrap();
    handed_on(&w).await;
    let asked = meta("meta-handover-request-thread-control.json", at(300));
    let outcome = w.track.process(asked, at(300)).await.unwrap();
    assert_eq!(
        outcome,
        TrackOutcome::Emitted(vec![EventType::ConversationHandoffRequested])
    );
    let out = handed_on(&w).await;
    let c = out[0].data.conversation.as_ref().expect("attached");
    let handoff = c.handoff.as_ref().expect("the request is recorded");
    assert_eq!(handoff.requested_by.as_deref(), Some("874512307761129"));
    assert_eq!(c.inbound_count, 1, "the conversation of Alice's message");

    let passed = meta("meta-handover-pass-thread-control.json", at(400));
    w.track.process(passed, at(400)).await.unwrap();
    let out = handed_on(&w).await;
    assert_eq!(out.len(), 1);
    let c = out[0].data.conversation.as_ref().expect("attached");
    let assignee = c.assignee.as_ref().expect("assigned");
    assert_eq!(assignee.agent_id.as_deref(), Some("874512307761129"));
    assert!(assignee.assigned_at.is_some());
    assert!(c.handoff.is_none(), "a transfer answers the hand-off");
    match &out[0].data.body {
        EventBody::Conversation(b) => {
            let t = b.transfer.as_ref().unwrap();
            assert_eq!(t.from_agent.as_deref(), Some("1290361958702116"));
            assert!(b.raw.is_some(), "the provider item rides along");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(&alice(&w, at(400)).await, &**c, "stored as carried");
}

#[tokio::test]
async fn a_provider_event_without_an_open_conversation_goes_on_with_none() {
    let w = world();
    let passed = meta("meta-handover-control-passed.json", at(300));
    let outcome = w.track.process(passed.clone(), at(300)).await.unwrap();
    assert_eq!(
        outcome,
        TrackOutcome::Emitted(vec![EventType::ConversationTransferred])
    );
    let out = handed_on(&w).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data.conversation, None);
    assert_eq!(out[0].id, passed.id);
    // The same item again (Meta retries): a duplicate, not a second event.
    let again = meta("meta-handover-control-passed.json", at(600));
    assert_eq!(
        w.track.process(again, at(600)).await.unwrap(),
        TrackOutcome::Duplicate
    );
}

#[tokio::test]
async fn a_conversation_opened_under_the_user_id_is_found_by_it() {
    let w = world();
    // Alice writes with her business-scoped user id; the hand-over names it and her number.
    let mut text: Value = serde_json::from_slice(&fixture("meta-text.json")).unwrap();
    text["entry"][0]["changes"][0]["value"]["messages"][0]["from_user_id"] =
        "US.13491208655302741918".into();
    let first = normalize(
        &SourceId::parse("src").unwrap(),
        Provider::Meta,
        text.to_string().as_bytes(),
        at(0),
    )
    .unwrap()
    .remove(0);
    w.track.process(first, at(0)).await.unwrap();
    handed_on(&w).await;
    let taken = meta("meta-handover-control-taken.json", at(700));
    w.track.process(taken, at(700)).await.unwrap();
    let out = handed_on(&w).await;
    let c = out[0]
        .data
        .conversation
        .as_ref()
        .expect("found by the user id");
    assert_eq!(
        c.assignee.as_ref().and_then(|a| a.agent_id.as_deref()),
        Some("escalation_partner")
    );
}

/// Ids and times differ between runs: compare the rest.
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

/// Alice's message, then `item` at 300 s with `fault` at its `k`-th call, retried as SQS does
/// until done: what the item handed on (type, dedup key, normalized data), Alice's stored
/// conversation after, and the item's call count.
async fn run(
    item: &InboundEvent,
    fault: Option<(u64, Fault)>,
) -> (Vec<(EventType, String, Value)>, Conversation, u64) {
    let w = world();
    w.track
        .process(meta("meta-text.json", at(0)), at(0))
        .await
        .unwrap();
    handed_on(&w).await;
    let start = w.faults.calls();
    if let Some((k, f)) = fault {
        w.faults.fail_in(k, f);
    }
    let lease = i64::try_from(w.track.config.lease.as_secs()).unwrap();
    let mut done = false;
    for attempt in 0..6 {
        let now = at(300 + attempt * (lease + 1));
        if w.track.process(item.clone(), now).await.is_ok() {
            done = true;
            break;
        }
    }
    assert!(done, "{fault:?} never succeeded");
    let calls = w.faults.calls() - start;
    let out = handed_on(&w)
        .await
        .iter()
        .map(|e| {
            (
                e.event_type,
                e.dedup_key.clone(),
                normalized(&serde_json::to_value(&e.data).unwrap()),
            )
        })
        .collect();
    (out, alice(&w, at(10_000)).await, calls)
}

#[tokio::test]
async fn a_provider_conversation_event_hands_on_the_same_whichever_call_fails() {
    for name in [
        "meta-handover-pass-thread-control.json",
        "meta-handover-request-thread-control.json",
    ] {
        let item = meta(name, at(300));
        let (expected, stored, calls) = run(&item, None).await;
        assert_eq!(expected.len(), 1, "{name}");
        assert_ne!(expected[0].2["conversation"], Value::Null, "{name}");
        assert!(calls >= 4, "{name}: only {calls} calls to fail");
        for k in 1..=calls {
            for fault in [Fault::Clean, Fault::Ambiguous] {
                let (got, got_stored, _) = run(&item, Some((k, fault))).await;
                let context = format!("{name}: call {k} of {calls} failed ({fault:?})");
                assert_eq!(got, expected, "{context}");
                assert_eq!(
                    (&got_stored.assignee, &got_stored.handoff),
                    (&stored.assignee, &stored.handoff),
                    "{context}"
                );
            }
        }
    }
}
