//! Track with customers the provider names by different ids: one contact and one conversation
//! key per customer once an item names both ids, contact events that list their changes,
//! conversations that carry the contact's ids, and a merge replayed after a failure at every
//! call.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::state::{ContactPatch, ConversationSettings, State};
use super::*;
use crate::ids::SourceId;
use crate::model::{ContactProfile, Provider};
use crate::ports::codec::receive_all;
use crate::ports::faults::{Fault, Faults, FaultyBlobs, FaultyDocs, FaultyQueue};
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::providers::normalize;
use crate::providers::test_support::fixture;

const LID: &str = "123456789012345@lid";
const PHONE: &str = "15550001111";

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

fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 1).unwrap() + chrono::Duration::seconds(secs)
}

/// A WAHA message `id` from chat `chat` at `t`, its customer described as `contact` when given
/// (a WAHA payload names one id; an item naming both is made by hand).
fn waha(chat: &str, id: &str, t: i64, contact: Option<ContactProfile>) -> InboundEvent {
    let mut doc: Value = serde_json::from_slice(&fixture("waha-message.json")).unwrap();
    doc["payload"]["id"] = json!(format!("false_{chat}_{id}"));
    doc["payload"]["from"] = json!(chat);
    doc["payload"]["timestamp"] = json!(at(t).timestamp());
    let mut e = normalize(
        &SourceId::parse("src").unwrap(),
        Provider::Waha,
        doc.to_string().as_bytes(),
        at(t),
    )
    .unwrap()
    .remove(0);
    if let (Some(p), EventBody::Message(m)) = (contact, &mut e.data.body) {
        m.contact = Some(p);
    }
    e
}

/// A Meta text message `id` from a customer described as `contact`.
fn meta(id: &str, t: i64, contact: ContactProfile) -> InboundEvent {
    let mut doc: Value = serde_json::from_slice(&fixture("meta-text.json")).unwrap();
    doc["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = json!(id);
    let mut e = normalize(
        &SourceId::parse("meta-main").unwrap(),
        Provider::Meta,
        doc.to_string().as_bytes(),
        at(t),
    )
    .unwrap()
    .remove(0);
    if let EventBody::Message(m) = &mut e.data.body {
        m.contact = Some(contact);
    }
    e
}

fn both() -> ContactProfile {
    ContactProfile {
        wa_id: Some(PHONE.into()),
        user_id: Some(LID.into()),
        ..ContactProfile::default()
    }
}

/// Processes `e` and returns what it handed on (lifecycle events first).
async fn step(w: &World, e: InboundEvent, t: i64) -> Vec<InboundEvent> {
    Box::pin(w.track.process(e, at(t))).await.unwrap();
    let mut out: Vec<InboundEvent> = Vec::new();
    for q in [&w.outbound, &w.buffer] {
        let events: Vec<InboundEvent> = receive_all(
            q.as_ref(),
            w.blobs.as_ref(),
            Duration::from_secs(3600),
            at(0),
        )
        .await
        .unwrap();
        out.extend(events);
    }
    out
}

fn types(events: &[InboundEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

fn conversation_of(events: &[InboundEvent]) -> crate::model::Conversation {
    events
        .iter()
        .find(|e| e.event_type == EventType::MessageReceived)
        .and_then(|e| e.data.conversation.clone())
        .map(|c| *c)
        .unwrap()
}

fn contact_body(e: &InboundEvent) -> &ContactBody {
    match &e.data.body {
        EventBody::Contact(c) => c,
        other => panic!("not a contact event: {other:?}"),
    }
}

#[tokio::test]
async fn a_customer_seen_by_lid_then_by_both_ids_then_by_number_stays_in_one_conversation() {
    use EventType as T;
    let w = world();
    let first = step(&w, waha(LID, "A", 0, None), 0).await;
    assert_eq!(
        types(&first),
        [
            T::ContactCreated,
            T::ConversationCreated,
            T::MessageReceived
        ]
    );
    let conversation = conversation_of(&first);
    let contact = contact_body(&first[0]).contact.clone();
    assert_eq!(
        conversation.contact_id.as_deref(),
        Some(contact.id.as_str())
    );

    let linked = step(&w, waha(LID, "B", 10, Some(both())), 10).await;
    assert_eq!(types(&linked), [T::ContactUpdated, T::MessageReceived]);
    let body = contact_body(&linked[0]);
    assert_eq!(body.contact.id, contact.id);
    assert_eq!(body.changes.len(), 1);
    assert_eq!(
        (
            &body.changes[0].field,
            &body.changes[0].before,
            &body.changes[0].after
        ),
        (&"wa_id".to_owned(), &Value::Null, &json!(PHONE))
    );
    assert_eq!(conversation_of(&linked).id, conversation.id);

    let by_number = step(&w, waha(&format!("{PHONE}@c.us"), "C", 20, None), 20).await;
    assert_eq!(
        types(&by_number),
        [T::MessageReceived],
        "nothing new about the contact"
    );
    let joined = conversation_of(&by_number);
    assert_eq!(
        joined.id, conversation.id,
        "the key did not flip to the number"
    );
    assert_eq!(joined.inbound_count, 3);
}

#[tokio::test]
async fn two_contacts_merge_when_an_item_names_both_and_later_items_join_the_survivors_conversation()
 {
    use EventType as T;
    let w = world();
    let by_lid = step(&w, waha(LID, "A", 0, None), 0).await;
    let by_number = step(&w, waha(&format!("{PHONE}@c.us"), "B", 10, None), 10).await;
    let (lid_contact, number_contact) = (
        contact_body(&by_lid[0]).contact.id.clone(),
        contact_body(&by_number[0]).contact.id.clone(),
    );
    assert_ne!(lid_contact, number_contact);
    assert_ne!(
        conversation_of(&by_lid).id,
        conversation_of(&by_number).id,
        "unknown to be one customer yet"
    );
    let merged = step(&w, waha(LID, "C", 20, Some(both())), 20).await;
    assert_eq!(types(&merged), [T::ContactUpdated, T::MessageReceived]);
    assert_eq!(
        contact_body(&merged[0]).contact.id,
        lid_contact,
        "the older survives"
    );
    assert_eq!(conversation_of(&merged).id, conversation_of(&by_lid).id);
    let later = step(&w, waha(&format!("{PHONE}@c.us"), "D", 30, None), 30).await;
    let c = conversation_of(&later);
    assert_eq!(c.id, conversation_of(&by_lid).id);
    assert_eq!(c.contact_id.as_deref(), Some(lid_contact.as_str()));
}

#[tokio::test]
async fn a_meta_customer_with_and_without_a_user_id_keeps_one_contact_and_conversation() {
    use EventType as T;
    let w = world();
    let number = ContactProfile {
        wa_id: Some(PHONE.into()),
        name: Some("Alice".into()),
        ..ContactProfile::default()
    };
    let user = ContactProfile {
        user_id: Some("US.13491208655302741918".into()),
        ..ContactProfile::default()
    };
    let with_user = ContactProfile {
        user_id: user.user_id.clone(),
        ..number.clone()
    };
    let first = step(&w, meta("wamid.1", 0, number), 0).await;
    let linked = step(&w, meta("wamid.2", 10, with_user), 10).await;
    let user_only = step(&w, meta("wamid.3", 20, user), 20).await;
    assert_eq!(types(&linked), [T::ContactUpdated, T::MessageReceived]);
    assert_eq!(contact_body(&linked[0]).changes[0].field, "user_id");
    assert_eq!(types(&user_only), [T::MessageReceived]);
    let id = conversation_of(&first).id;
    assert_eq!(conversation_of(&linked).id, id);
    assert_eq!(conversation_of(&user_only).id, id);
}

#[tokio::test]
async fn a_conversation_carries_its_contacts_id_and_external_id() {
    let w = world();
    let first = step(&w, waha(LID, "A", 0, None), 0).await;
    let contact = contact_body(&first[0]).contact.id.clone();
    let patch = ContactPatch {
        external_id: Some(Some("crm-42".into())),
        ..ContactPatch::default()
    };
    w.track
        .state
        .contacts
        .patch(&contact, &patch, at(5))
        .await
        .unwrap();
    let next = step(&w, waha(LID, "B", 10, None), 10).await;
    let c = conversation_of(&next);
    assert_eq!(c.contact_id.as_deref(), Some(contact.as_str()));
    assert_eq!(c.external_id.as_deref(), Some("crm-42"));
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

/// The merge item after a lid and a number message, with `fault` at its `k`-th call, retried
/// until done: what it handed on (once per event id) and how many calls it made.
async fn merge_run(fault: Option<(u64, Fault)>) -> (Vec<(EventType, String, Value)>, u64) {
    let w = world();
    step(&w, waha(LID, "A", 0, None), 0).await;
    step(&w, waha(&format!("{PHONE}@c.us"), "B", 10, None), 10).await;
    let before = w.faults.calls();
    if let Some((k, f)) = fault {
        w.faults.fail_in(k, f);
    }
    let item = waha(LID, "C", 20, Some(both()));
    let mut tries = 0;
    while w
        .track
        .process(item.clone(), at(20 + 100 * tries))
        .await
        .is_err()
    {
        tries += 1;
        assert!(tries < 5, "the item never succeeded");
    }
    let calls = w.faults.calls() - before;
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
                let data = normalized(&serde_json::to_value(&e.data).unwrap());
                out.push((e.event_type, e.dedup_key.clone(), data));
            }
        }
    }
    (out, calls)
}

#[tokio::test]
async fn a_merge_hands_on_the_same_events_whichever_call_fails_cleanly_or_ambiguously() {
    let (expected, calls) = Box::pin(merge_run(None)).await;
    assert_eq!(
        expected.iter().map(|e| e.0).collect::<Vec<_>>(),
        [EventType::ContactUpdated, EventType::MessageReceived]
    );
    assert!(calls > 5, "{calls}");
    for k in 1..=calls {
        for fault in [Fault::Clean, Fault::Ambiguous] {
            let (got, _) = Box::pin(merge_run(Some((k, fault)))).await;
            assert_eq!(got, expected, "call {k} of {calls} failing {fault:?}");
        }
    }
}
