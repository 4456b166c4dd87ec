//! Semantics of the WAHA parser beyond the fixture expectations (see `fixtures_test.rs`).

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::model::{EventType, MessageStatus, Provider};
use crate::providers::meta::tests::{arbitrary_json, replace_somewhere};
use crate::providers::test_support::{fixture, normalize};

fn event_of(body: &Value) -> crate::model::InboundEvent {
    let mut events = normalize(Provider::Waha, body.to_string().as_bytes());
    assert_eq!(events.len(), 1, "every WAHA webhook is one event");
    events.remove(0)
}

#[test]
fn message_and_message_any_of_the_same_message_share_a_dedup_key() {
    let mut doc: Value = serde_json::from_slice(&fixture("waha-message.json")).unwrap();
    let a = event_of(&doc);
    doc["event"] = json!("message.any");
    doc["id"] = json!("evt_01jbcq3zx0v9k8n7m6p5q4r399");
    let b = event_of(&doc);
    assert_eq!(a.dedup_key, b.dedup_key);
    assert_eq!(a.event_type, EventType::MessageReceived);
    assert_eq!(b.event_type, EventType::MessageReceived);
}

#[test]
fn one_message_under_a_lid_and_a_phone_jid_is_one_event() {
    // WhatsApp may report the same message with the chat as `…@lid` (the phone hidden) and as
    // `…@c.us`: WhatsApp's message key (direction and bare id) is the same, and so is the event.
    let mut doc: Value = serde_json::from_slice(&fixture("waha-message.json")).unwrap();
    let id = doc["payload"]["id"].as_str().unwrap().to_owned();
    let bare = id.rsplit('_').next().unwrap().to_owned();
    let by_phone = event_of(&doc);
    doc["payload"]["id"] = json!(format!("false_123456789012345@lid_{bare}"));
    doc["payload"]["from"] = json!("123456789012345@lid");
    doc["id"] = json!("evt_01jbcq3zx0v9k8n7m6p5q4r398");
    let by_lid = event_of(&doc);
    assert_eq!(by_phone.dedup_key, by_lid.dedup_key);
    // The same bare id in the other direction is another message.
    doc["payload"]["id"] = json!(format!("true_123456789012345@lid_{bare}"));
    doc["payload"]["fromMe"] = json!(true);
    assert_ne!(event_of(&doc).dedup_key, by_phone.dedup_key);
    // So do group messages whose participant is spelled either way.
    let group = "false_120363025246125486@g.us_3EB0C767D26A1D2F5A2F";
    let mut keys = Vec::new();
    for participant in ["123456789012345@lid", "15550001111@c.us"] {
        let mut doc: Value =
            serde_json::from_slice(&fixture("waha-message-group-lid.json")).unwrap();
        doc["payload"]["id"] = json!(format!("{group}_{participant}"));
        doc["payload"]["participant"] = json!(participant);
        keys.push(event_of(&doc).dedup_key);
    }
    assert_eq!(keys[0], keys[1]);
}

#[test]
fn every_ack_value_maps_to_its_status_and_event_type() {
    let mut doc: Value = serde_json::from_slice(&fixture("waha-message-ack.json")).unwrap();
    let cases = [
        (-1, EventType::MessageFailed, MessageStatus::Failed),
        (0, EventType::MessagePending, MessageStatus::Pending),
        (1, EventType::MessageSent, MessageStatus::Sent),
        (2, EventType::MessageDelivered, MessageStatus::Delivered),
        (3, EventType::MessageRead, MessageStatus::Read),
        (4, EventType::MessageRead, MessageStatus::Played),
    ];
    let mut keys = std::collections::HashSet::new();
    for (ack, event_type, status) in cases {
        doc["payload"]["ack"] = json!(ack);
        let e = event_of(&doc);
        assert_eq!(e.event_type, event_type, "ack {ack}");
        assert_eq!(e.data.message().unwrap().status, Some(status), "ack {ack}");
        assert!(keys.insert(e.dedup_key), "ack {ack} reuses a dedup key");
    }
}

#[test]
fn an_unknown_ack_value_is_passed_through() {
    let mut doc: Value = serde_json::from_slice(&fixture("waha-message-ack.json")).unwrap();
    doc["payload"]["ack"] = json!(9);
    doc["payload"]["ackName"] = json!("FUTURE");
    assert_eq!(event_of(&doc).event_type, EventType::ProviderEvent);
}

#[test]
fn the_chat_comes_from_the_message_id_whatever_from_and_to_say() {
    // NOWEB/GOWS put the chat in `from` even for outgoing messages; WEBJS puts `me` there.
    let e = event_of(
        &serde_json::from_slice(&fixture("waha-message-any-noweb-outgoing.json")).unwrap(),
    );
    let m = e.data.message().unwrap();
    assert_eq!(m.chat_id.as_deref(), Some("15550001111@c.us"));
    assert_eq!(
        (m.from.as_deref(), m.to.as_deref()),
        (Some("15550009999"), Some("15550001111"))
    );
}

#[test]
fn group_acks_are_about_the_member_in_the_fourth_id_part() {
    let e = event_of(&serde_json::from_slice(&fixture("waha-message-ack-group.json")).unwrap());
    let m = e.data.message().unwrap();
    assert_eq!(m.group_id.as_deref(), Some("120363025246125486@g.us"));
    assert_eq!(m.to_user_id.as_deref(), Some("123456789012345@lid"));
}

#[test]
fn envelopes_without_event_or_payload_are_passed_through_whole() {
    for body in [
        json!({}),
        json!({"event": "message"}),
        json!({"payload": {}}),
        json!([1, 2]),
    ] {
        let e = event_of(&body);
        assert_eq!(e.event_type, EventType::ProviderEvent, "{body}");
        assert_eq!(serde_json::to_value(&e.data).unwrap()["raw"], body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let source = crate::ids::SourceId::parse("s").unwrap();
        let _ = crate::providers::normalize(&source, Provider::Waha, &body, chrono::Utc::now());
    }

    #[test]
    fn never_panics_on_arbitrary_payloads_of_every_event(event in prop::sample::select(EVENTS), payload in arbitrary_json()) {
        let body = json!({"event": event, "session": "default", "payload": payload, "me": {"id": "15550009999@c.us"}});
        normalize(Provider::Waha, body.to_string().as_bytes());
    }

    #[test]
    fn never_panics_on_a_fixture_with_one_value_replaced(
        file in prop::sample::select(&["waha-message-group-lid.json", "waha-message-revoked.json", "waha-group-v2-join.json"][..]),
        seed in any::<u64>(),
        replacement in arbitrary_json(),
    ) {
        let mut doc: Value = serde_json::from_slice(&fixture(file)).unwrap();
        replace_somewhere(&mut doc, seed, replacement);
        normalize(Provider::Waha, doc.to_string().as_bytes());
    }
}

const EVENTS: &[&str] = &[
    "message",
    "message.any",
    "message.ack",
    "message.ack.group",
    "message.reaction",
    "message.edited",
    "message.revoked",
    "message.waiting",
    "session.status",
    "state.change",
    "engine.event",
    "group.v2.join",
    "group.v2.leave",
    "group.v2.update",
    "group.v2.participants",
    "group.v2.participants.join-request",
    "presence.update",
    "poll.vote",
    "poll.vote.failed",
    "chat.archive",
    "call.received",
    "call.accepted",
    "call.rejected",
    "label.upsert",
    "label.deleted",
    "label.chat.added",
    "label.chat.deleted",
    "event.response",
    "event.response.failed",
    "something.new",
];
