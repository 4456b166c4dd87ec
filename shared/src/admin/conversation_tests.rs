//! The conversation routes that change a conversation and emit an event (transfer, hand-off)
//! and the automation notes, through the router as a client calls them, over in-memory ports
//! behind injected faults: what is stored, what reaches the sink, and that a retried request
//! (same `Idempotency-Key`) never makes a second change or a different event, whichever call
//! failed.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use crate::admin::{Admin, AdminConfig};
use crate::ids::SourceId;
use crate::model::{EventBody, EventType, InboundEvent, Provider};
use crate::pipeline::track::state::{ConversationKey, ConversationSettings, Conversations, State};
use crate::pipeline::track::sweep::Sweep;
use crate::pipeline::track::{QueueSink, Track, TrackConfig};
use crate::ports::codec::receive_all;
use crate::ports::faults::{Fault, Faults, FaultyDocs, FaultyQueue};
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::ports::{BlobStore, DocumentStore, Queue};
use crate::providers::test_support::fixture;
use crate::signature::Secret;

const KEY: &str = "admin-key-1";

struct World {
    admin: Admin,
    /// Alice's conversation, opened by her first message.
    id: String,
    /// Where the API's events go.
    outbound: Arc<MemoryQueue>,
    blobs: Arc<MemoryBlobStore>,
    /// Faults of the documents (conversations, idempotency records)…
    doc_faults: Arc<Faults>,
    /// … and of the outbound queue.
    queue_faults: Arc<Faults>,
    conversations: Conversations,
}

/// 2024-10-28T05:20:01Z (Alice's first message) plus `secs`.
fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 1).unwrap() + chrono::Duration::seconds(secs)
}

/// The API over faulty documents and a faulty outbound queue, with Alice's conversation open.
async fn world() -> World {
    // Boxed: seeding runs the whole track stage, a large future.
    Box::pin(open_world()).await
}

async fn open_world() -> World {
    let doc_faults = Faults::none();
    let queue_faults = Faults::none();
    let docs: Arc<dyn DocumentStore> = Arc::new(FaultyDocs {
        inner: Arc::new(MemoryDocumentStore::new()),
        layer: doc_faults.clone(),
    });
    let blobs = Arc::new(MemoryBlobStore::new());
    let outbound = Arc::new(MemoryQueue::new("outbound"));
    let faulty_outbound: Arc<dyn Queue> = Arc::new(FaultyQueue {
        inner: outbound.clone(),
        layer: queue_faults.clone(),
    });
    let settings = ConversationSettings {
        idle: Duration::from_secs(24 * 3600),
        message_ttl: Duration::from_secs(30 * 86400),
        recent_messages: 3,
    };
    let state = State::new(docs.clone(), settings);
    let track = Track {
        blobs: blobs.clone(),
        state: state.clone(),
        sink: Arc::new(QueueSink {
            buffer: Arc::new(MemoryQueue::new("buffer")),
            outbound: outbound.clone(),
            blobs: blobs.clone(),
            blob_ttl: Duration::from_secs(86400),
            media: None,
        }),
        config: TrackConfig::default(),
    };
    let text = crate::providers::normalize(
        &SourceId::parse("src").unwrap(),
        Provider::Meta,
        &fixture("meta-text.json"),
        at(0),
    )
    .unwrap()
    .remove(0);
    let source = text.data.source.clone();
    track.process(text, at(0)).await.unwrap();
    let key = ConversationKey::new(&source, Some("15550001111")).unwrap();
    let id = state
        .conversations
        .active_conversation(&key, at(0))
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    let blob_store: Arc<dyn BlobStore> = blobs.clone();
    let mut admin = Admin::new(
        docs,
        blob_store.clone(),
        Arc::new(MemoryQueue::new("delivery")),
        Arc::new(MemoryQueue::new("delivery-dlq")),
        Duration::from_secs(30 * 86400),
        AdminConfig {
            api_keys: vec![Secret::from(KEY.to_owned())],
            ..AdminConfig::default()
        },
    );
    admin.conversations = Some(Sweep::emitting_to(
        state.conversations.clone(),
        faulty_outbound,
        blob_store,
        Duration::from_secs(86400),
        10,
    ));
    let w = World {
        admin,
        id,
        outbound,
        blobs,
        doc_faults,
        queue_faults,
        conversations: state.conversations,
    };
    // The message's own events are not under test.
    sink(&w).await;
    w
}

/// `method path` with the key at `now`: status and JSON body.
async fn call(
    w: &World,
    method: &str,
    path: &str,
    body: &Value,
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
) -> (u16, Value) {
    let mut headers = vec![("x-api-key", KEY)];
    if let Some(k) = idempotency_key {
        headers.push(("idempotency-key", k));
    }
    crate::admin::test_support::request(&w.admin, now, method, path, &headers, body.to_string())
        .await
}

/// Takes every event the sink got so far, in order (copies of one event included).
async fn sink(w: &World) -> Vec<InboundEvent> {
    receive_all(
        w.outbound.as_ref(),
        w.blobs.as_ref(),
        Duration::from_secs(3600),
        at(0),
    )
    .await
    .unwrap()
}

fn path(w: &World, action: &str) -> String {
    format!("/v1/conversations/{}/{action}", w.id)
}

fn transfer_of(e: &InboundEvent) -> crate::model::Transfer {
    match &e.data.body {
        EventBody::Conversation(b) => b.transfer.clone().expect("a transfer"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_transfer_stores_the_assignee_and_emits_from_the_previous_one_to_the_new_one() {
    let w = world().await;
    let (status, first) = call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &json!({"to_agent": "ana", "to_team": "billing", "notes": "invoice INV-2291"}),
        None,
        at(60),
    )
    .await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(first["type"], "whatsapp.conversation.transferred");
    assert_eq!(first["conversation"]["assignee"]["agent_id"], "ana");
    assert_eq!(first["conversation"]["assignee"]["team_id"], "billing");
    assert_eq!(
        first["conversation"]["assignee"]["assigned_at"],
        "2024-10-28T05:21:01Z"
    );
    let events = sink(&w).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.id.to_string(), first["event_id"]);
    assert_eq!(e.event_type, EventType::ConversationTransferred);
    let t = transfer_of(e);
    assert_eq!((t.from_agent, t.from_team), (None, None), "nobody had it");
    assert_eq!(t.to_agent.as_deref(), Some("ana"));
    assert_eq!(t.notes.as_deref(), Some("invoice INV-2291"));
    let carried = e.data.conversation.as_ref().unwrap();
    assert_eq!(
        carried.assignee.as_ref().unwrap().agent_id.as_deref(),
        Some("ana")
    );

    let (status, second) = call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &json!({"to_agent": "bob"}),
        None,
        at(120),
    )
    .await;
    assert_eq!(status, 202, "{second}");
    let events = sink(&w).await;
    let t = transfer_of(&events[0]);
    assert_eq!(t.from_agent.as_deref(), Some("ana"));
    assert_eq!(t.from_team.as_deref(), Some("billing"));
    assert_eq!(t.to_agent.as_deref(), Some("bob"));
    assert_eq!(t.to_team, None);
    let (_, shown) = call(
        &w,
        "GET",
        &format!("/v1/conversations/{}", w.id),
        &json!({}),
        None,
        at(130),
    )
    .await;
    assert_eq!(
        shown["assignee"],
        json!({"agent_id": "bob", "assigned_at": "2024-10-28T05:22:01Z"})
    );
}

#[tokio::test]
async fn a_handoff_request_is_stored_emitted_and_answered_by_the_next_transfer() {
    let w = world().await;
    let (status, asked) = call(
        &w,
        "POST",
        &path(&w, "handoff"),
        &json!({"reason": "Customer wants a refund", "requested_by": "faq-bot",
                "team_id": "billing", "notes": "Order #1042"}),
        Some("handoff-1"),
        at(60),
    )
    .await;
    assert_eq!(status, 202, "{asked}");
    assert_eq!(asked["type"], "whatsapp.conversation.handoff_requested");
    let expected = json!({"reason": "Customer wants a refund", "requested_by": "faq-bot",
        "team_id": "billing", "notes": "Order #1042", "requested_at": "2024-10-28T05:21:01Z"});
    assert_eq!(asked["conversation"]["handoff"], expected);
    let events = sink(&w).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event_type,
        EventType::ConversationHandoffRequested
    );
    assert_eq!(events[0].id.to_string(), asked["event_id"]);
    let data = serde_json::to_value(&events[0].data).unwrap();
    assert_eq!(data["handoff"], expected);
    assert_eq!(data["conversation"]["handoff"], expected);

    let (status, _) = call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &json!({"to_team": "billing"}),
        None,
        at(90),
    )
    .await;
    assert_eq!(status, 202);
    let events = sink(&w).await;
    let carried = events[0].data.conversation.as_ref().unwrap();
    assert!(carried.handoff.is_none(), "answered by the transfer");
    let stored = w
        .conversations
        .conversation(w.id.parse().unwrap(), at(90))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.conversation.handoff.is_none());
    assert!(
        stored.pending_events().is_empty(),
        "nothing left to hand on"
    );
}

#[tokio::test]
async fn automation_notes_are_kept_apart_and_ride_with_later_events() {
    let w = world().await;
    let (status, view) = call(
        &w,
        "PUT",
        &path(&w, "automation-notes"),
        &json!({"notes": [{"text": "Intent: refund (0.93)", "author": "nlu"}]}),
        None,
        at(60),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["automation_notes"][0]["text"], "Intent: refund (0.93)");
    assert_eq!(view["notes"], json!([]), "people's notes are apart");
    // Given again unchanged: the note keeps its time.
    let (_, again) = call(
        &w,
        "PUT",
        &path(&w, "automation-notes"),
        &json!({"notes": [{"text": "Intent: refund (0.93)", "author": "nlu"}, {"text": "VIP"}]}),
        None,
        at(90),
    )
    .await;
    assert_eq!(
        again["automation_notes"][0]["created_at"],
        "2024-10-28T05:21:01Z"
    );
    assert_eq!(
        again["automation_notes"][1]["created_at"],
        "2024-10-28T05:21:31Z"
    );
    call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &json!({"to_agent": "ana"}),
        None,
        at(120),
    )
    .await;
    let events = sink(&w).await;
    let carried = events[0].data.conversation.as_ref().unwrap();
    assert_eq!(carried.automation_notes.len(), 2);
    assert_eq!(carried.automation_notes[1].text, "VIP");
}

#[tokio::test]
async fn the_new_routes_refuse_bad_fields_naming_them() {
    let w = world().await;
    let long = |n: usize| "a".repeat(n);
    let notes_of = |n: usize| {
        let notes: Vec<_> = (0..n).map(|_| json!({"text": long(2000)})).collect();
        json!({ "notes": notes })
    };
    let cases = [
        ("POST", "handoff", json!({}), "reason"),
        ("POST", "handoff", json!({"reason": " \u{feff} "}), "reason"),
        ("POST", "handoff", json!({"reason": long(501)}), "reason"),
        (
            "POST",
            "handoff",
            json!({"reason": "x", "requested_by": long(201)}),
            "requested_by",
        ),
        (
            "POST",
            "handoff",
            json!({"reason": "x", "team_id": "  "}),
            "team_id",
        ),
        (
            "POST",
            "handoff",
            json!({"reason": "x", "notes": long(2001)}),
            "notes",
        ),
        (
            "POST",
            "handoff",
            json!({"reason": "x", "agent": "ana"}),
            "agent",
        ),
        (
            "POST",
            "transfer",
            json!({"to_agent": long(201)}),
            "to_agent",
        ),
        (
            "POST",
            "transfer",
            json!({"to_agent": "ana", "notes": long(2001)}),
            "notes",
        ),
        (
            "PUT",
            "automation-notes",
            json!({"notes": [{"text": "\u{2028}"}]}),
            "notes",
        ),
        (
            "PUT",
            "automation-notes",
            json!({"notes": [{"text": "x", "author": long(201)}]}),
            "notes",
        ),
        ("PUT", "automation-notes", notes_of(17), "notes"),
        ("PUT", "automation-notes", notes_of(101), "notes"),
        ("PUT", "automation-notes", json!({}), "notes"),
    ];
    for (method, action, body, field) in cases {
        let (status, error) = call(&w, method, &path(&w, action), &body, None, at(60)).await;
        assert_eq!(status, 422, "{action} {body}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{action} {body}");
    }
    // Within the limits: accepted (500 characters of reason, 32 KiB of automation notes).
    let (status, _) = call(
        &w,
        "POST",
        &path(&w, "handoff"),
        &json!({"reason": long(500)}),
        None,
        at(60),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = call(
        &w,
        "PUT",
        &path(&w, "automation-notes"),
        &notes_of(16),
        None,
        at(60),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        sink(&w).await.len(),
        1,
        "only the accepted hand-off went out"
    );
}

#[tokio::test]
async fn unknown_conversations_are_404_and_ended_ones_409_without_an_event() {
    let w = world().await;
    for (method, action, body) in [
        ("POST", "transfer", json!({"to_agent": "ana"})),
        ("POST", "handoff", json!({"reason": "help"})),
        ("PUT", "automation-notes", json!({"notes": []})),
    ] {
        for id in ["conv_01JBCQ3ZX0V9K8N7M6P5Q4R303", "not-an-id"] {
            let target = format!("/v1/conversations/{id}/{action}");
            let (status, error) = call(&w, method, &target, &body, None, at(60)).await;
            assert_eq!(status, 404, "{target}: {error}");
        }
    }
    let (status, _) = call(&w, "POST", &path(&w, "close"), &json!({}), None, at(60)).await;
    assert_eq!(status, 200);
    sink(&w).await;
    for (action, body) in [
        ("transfer", json!({"to_agent": "ana"})),
        ("handoff", json!({"reason": "help"})),
    ] {
        let (status, error) = call(&w, "POST", &path(&w, action), &body, None, at(90)).await;
        assert_eq!(status, 409, "{action}: {error}");
    }
    assert!(sink(&w).await.is_empty());
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_answer_and_emits_nothing_new() {
    let w = world().await;
    let body = json!({"to_agent": "ana"});
    let (status, first) = call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &body,
        Some("t-1"),
        at(60),
    )
    .await;
    assert_eq!(status, 202);
    let (status, replay) = call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &body,
        Some("t-1"),
        at(70),
    )
    .await;
    assert_eq!((status, &replay), (202, &first));
    let events = sink(&w).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id.to_string(), first["event_id"]);
    // The key with another body is refused, and changes nothing.
    let (status, _) = call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &json!({"to_agent": "bob"}),
        Some("t-1"),
        at(80),
    )
    .await;
    assert_eq!(status, 409);
    assert!(sink(&w).await.is_empty());
}

#[tokio::test]
async fn a_hand_on_that_failed_after_the_write_is_retried_with_the_same_event_id() {
    for fault in [Fault::Clean, Fault::Ambiguous] {
        let w = world().await;
        let body = json!({"reason": "angry customer"});
        // The change is written; the queue send fails (as when the function dies between the
        // two, or loses the queue's answer).
        w.queue_faults.fail_in(1, fault);
        let (status, error) =
            call(&w, "POST", &path(&w, "handoff"), &body, Some("h-1"), at(60)).await;
        assert_eq!(status, 503, "{fault:?}: {error}");
        let stored = w
            .conversations
            .conversation(w.id.parse().unwrap(), at(60))
            .await
            .unwrap()
            .unwrap();
        let pending = stored.pending_events();
        assert_eq!(pending.len(), 1, "{fault:?}: kept until handed on");
        assert!(stored.conversation.handoff.is_some());
        // The client retries with the same key: the same event goes out, nothing is changed
        // again.
        let (status, retried) =
            call(&w, "POST", &path(&w, "handoff"), &body, Some("h-1"), at(61)).await;
        assert_eq!(status, 202, "{fault:?}: {retried}");
        assert_eq!(retried["event_id"], pending[0].id.to_string());
        let events = sink(&w).await;
        assert!(!events.is_empty());
        assert!(
            events
                .iter()
                .all(|e| e.id == pending[0].id && e.data == pending[0].data),
            "{fault:?}: only that event, as written"
        );
        let after = w
            .conversations
            .conversation(w.id.parse().unwrap(), at(61))
            .await
            .unwrap()
            .unwrap();
        assert!(after.pending_events().is_empty());
        assert_eq!(
            after.conversation.handoff.unwrap().requested_at,
            Some(at(60)),
            "the first attempt's change, not a second"
        );
    }
}

#[tokio::test]
async fn an_event_whose_request_never_came_back_goes_out_before_the_next_change() {
    let w = world().await;
    w.queue_faults.fail_in(1, Fault::Clean);
    let (status, _) = call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &json!({"to_agent": "ana"}),
        None,
        at(60),
    )
    .await;
    assert_eq!(status, 503);
    assert!(sink(&w).await.is_empty());
    // No retry comes (no key); the next change hands the lost event on first.
    let (status, _) = call(
        &w,
        "POST",
        &path(&w, "handoff"),
        &json!({"reason": "help"}),
        None,
        at(90),
    )
    .await;
    assert_eq!(status, 202);
    let types: Vec<_> = sink(&w).await.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::ConversationTransferred,
            EventType::ConversationHandoffRequested
        ]
    );
    // And before a close ends the conversation.
    w.queue_faults.fail_in(1, Fault::Clean);
    call(
        &w,
        "POST",
        &path(&w, "transfer"),
        &json!({"to_agent": "bob"}),
        None,
        at(100),
    )
    .await;
    let (status, _) = call(&w, "POST", &path(&w, "close"), &json!({}), None, at(110)).await;
    assert_eq!(status, 200);
    let types: Vec<_> = sink(&w).await.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::ConversationTransferred,
            EventType::ConversationEnded
        ]
    );
}

#[tokio::test]
async fn an_event_left_pending_goes_out_before_the_sweep_ends_the_conversation_as_idle() {
    let w = world().await;
    w.queue_faults.fail_in(1, Fault::Clean);
    let (status, _) = call(
        &w,
        "POST",
        &path(&w, "handoff"),
        &json!({"reason": "help"}),
        None,
        at(60),
    )
    .await;
    assert_eq!(status, 503);
    assert!(sink(&w).await.is_empty());
    // Nobody retries and nothing changes it: a day later the sweep ends it, the hand-off first.
    let sweep = w.admin.conversations.clone().unwrap();
    assert_eq!(sweep.run(at(2 * 24 * 3600)).await.unwrap(), 2);
    let types: Vec<_> = sink(&w).await.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::ConversationHandoffRequested,
            EventType::ConversationEnded
        ]
    );
    // Once: the next sweep has nothing.
    assert_eq!(sweep.run(at(2 * 24 * 3600 + 60)).await.unwrap(), 0);
}

/// One transfer with the `k`-th call of `faults` (documents or queue) failing as `fault`,
/// retried with the same key (after the key's in-flight claim ends) until answered 202: the
/// answer, the distinct transferred events at the sink, and the calls a clean run makes.
async fn faulty_transfer(
    on_queue: bool,
    fault: Option<(u64, Fault)>,
) -> (Value, Vec<InboundEvent>, crate::model::Conversation, u64) {
    let w = world().await;
    let faults = if on_queue {
        &w.queue_faults
    } else {
        &w.doc_faults
    };
    let start = faults.calls();
    if let Some((k, f)) = fault {
        faults.fail_in(k, f);
    }
    let body = json!({"to_agent": "ana", "notes": "n"});
    let mut answer = None;
    for attempt in 0..5 {
        let now = at(60 + attempt * 61);
        let (status, v) = call(&w, "POST", &path(&w, "transfer"), &body, Some("k-1"), now).await;
        if status == 202 {
            answer = Some(v);
            break;
        }
        assert!(status == 503 || status == 409, "{fault:?}: {status} {v}");
    }
    let answer = answer.unwrap_or_else(|| panic!("{fault:?} never succeeded"));
    let calls = faults.calls() - start;
    let mut seen = std::collections::HashSet::new();
    let events: Vec<InboundEvent> = sink(&w)
        .await
        .into_iter()
        .filter(|e| seen.insert(e.id))
        .collect();
    let stored = w
        .conversations
        .conversation(w.id.parse().unwrap(), at(1000))
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.pending_events().is_empty(),
        "{fault:?}: all handed on"
    );
    (answer, events, stored.conversation, calls)
}

#[tokio::test]
async fn whichever_call_of_a_transfer_fails_one_event_goes_out_and_one_change_is_made() {
    for on_queue in [false, true] {
        let (_, clean, stored, calls) = faulty_transfer(on_queue, None).await;
        assert_eq!(clean.len(), 1);
        assert!(calls >= 1, "no calls to fail");
        for k in 1..=calls {
            for fault in [Fault::Clean, Fault::Ambiguous] {
                let context = format!("queue {on_queue}: call {k} of {calls} failed ({fault:?})");
                let (answer, events, got, _) = faulty_transfer(on_queue, Some((k, fault))).await;
                assert_eq!(events.len(), 1, "{context}: {events:?}");
                assert_eq!(answer["event_id"], events[0].id.to_string(), "{context}");
                assert_eq!(transfer_of(&events[0]), transfer_of(&clean[0]), "{context}");
                assert_eq!(
                    got.assignee.as_ref().map(|a| &a.agent_id),
                    stored.assignee.as_ref().map(|a| &a.agent_id),
                    "{context}"
                );
            }
        }
    }
}

#[tokio::test]
async fn conversations_are_found_by_phone_user_id_label_and_text() {
    let w = world().await;
    let labels = json!({"labels": ["VIP", "billing"]});
    let (status, _) = call(&w, "PUT", &path(&w, "labels"), &labels, None, at(5)).await;
    assert_eq!(status, 200);
    let found = |query: &'static str| {
        let w = &w;
        async move {
            let (status, page) = call(
                w,
                "GET",
                &format!("/v1/conversations?{query}"),
                &Value::Null,
                None,
                at(10),
            )
            .await;
            assert_eq!(status, 200, "{query}: {page}");
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let alice = vec![w.id.clone()];
    for hit in [
        "phone=15550001111",
        "phone=%2B1%20(555)%20000-1111",
        "label=vip",
        "label=billing&phone=15550001111&source_id=src",
        "q=alice",
        "q=EXAMPLE",
        "q=000111",
        "q=bill",
    ] {
        assert_eq!(found(hit).await, alice, "{hit}");
    }
    for miss in [
        "phone=15550001112",
        "label=vi",
        "user_id=15550001111",
        "q=bob",
        "source_id=other",
        "label=vip&q=bob",
    ] {
        assert!(found(miss).await.is_empty(), "{miss}");
    }
    for (bad, field) in [
        ("phone=abc", "phone"),
        ("source_id=no%20such", "source_id"),
        ("status=open", "status"),
    ] {
        let (status, error) = call(
            &w,
            "GET",
            &format!("/v1/conversations?{bad}"),
            &Value::Null,
            None,
            at(10),
        )
        .await;
        assert_eq!(status, 422, "{bad}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{bad}: {error}");
    }
    let long = "x".repeat(129);
    let (status, error) = call(
        &w,
        "GET",
        &format!("/v1/conversations?q={long}"),
        &Value::Null,
        None,
        at(10),
    )
    .await;
    assert_eq!(status, 422, "{error}");
}
