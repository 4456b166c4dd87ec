//! Semantics of the Evolution API parser beyond the fixture expectations (see `fixtures_test.rs`):
//! the apikey and inline media never leave, one message is one dedup key whatever its JID
//! spelling or event, and no input panics.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::model::{
    EventType, InboundEvent, MessageContent, MessageStatus, NotificationData, Provider,
};
use crate::providers::meta::tests::{arbitrary_json, replace_somewhere};
use crate::providers::test_support::{fixture, normalize};

fn events_of(body: &Value) -> Vec<InboundEvent> {
    normalize(Provider::Evolution, body.to_string().as_bytes())
}

fn event_of(body: &Value) -> InboundEvent {
    let mut events = events_of(body);
    assert_eq!(events.len(), 1, "{body}");
    events.remove(0)
}

fn doc(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn contact_name(e: &InboundEvent) -> Option<String> {
    match &e.data.body {
        crate::model::EventBody::Message(m) => m.contact.as_ref().and_then(|c| c.name.clone()),
        _ => None,
    }
}

fn notification(e: &InboundEvent) -> &NotificationData {
    match &e.data.body {
        crate::model::EventBody::Notification(n) => n,
        other => panic!("not a notification: {other:?}"),
    }
}

fn evolution_fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/providers");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("evolution-"))
        .collect();
    names.sort();
    assert!(names.len() >= 60, "only {} Evolution fixtures", names.len());
    names
}

#[test]
fn the_apikey_appears_in_no_event_of_any_fixture() {
    for name in evolution_fixtures() {
        let body = doc(&name);
        let key = body["apikey"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no apikey"));
        for e in normalize(Provider::Evolution, &fixture(&name)) {
            let text = serde_json::to_string(&e).unwrap();
            assert!(!text.contains(key), "{name}: the apikey leaked into {text}");
            assert!(
                !text.to_ascii_lowercase().contains("\"apikey\""),
                "{name}: an apikey field leaked into {text}"
            );
        }
    }
}

#[test]
fn an_apikey_nested_anywhere_in_a_passed_through_body_is_stripped() {
    let body = json!({
        "event": "typebot.start",
        "instance": "shop-main",
        "data": {"variables": [{"apiKey": "NESTED-SECRET"}], "deeper": {"APIKEY": "NESTED-SECRET"}},
        "apikey": "TOP-SECRET"
    });
    let text = serde_json::to_string(&event_of(&body)).unwrap();
    assert!(!text.contains("SECRET"), "{text}");
    let not_an_object = json!(["apikey", {"apikey": "TOP-SECRET"}]);
    let text = serde_json::to_string(&event_of(&not_an_object)).unwrap();
    assert!(!text.contains("TOP-SECRET"), "{text}");
}

#[test]
fn inline_base64_media_never_reaches_an_event_but_its_size_does() {
    let mut body = doc("evolution-messages-upsert-image.json");
    let base64 = body["data"]["message"]["base64"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = event_of(&body);
    assert!(!serde_json::to_string(&e).unwrap().contains(&base64));
    // Without `fileLength` the size comes from the dropped file's length.
    body["data"]["message"]["imageMessage"]
        .as_object_mut()
        .unwrap()
        .remove("fileLength");
    let e = event_of(&body);
    let Some(MessageContent::Image(media)) = &e.data.message().unwrap().content else {
        panic!("not an image");
    };
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &base64);
    assert_eq!(media.file_size, Some(decoded.unwrap().len() as u64));
    // A history item keeps its raw message, but not the file.
    let history =
        json!({"event": "messages.set", "instance": "shop-main", "data": [body["data"].clone()]});
    let text = serde_json::to_string(&event_of(&history)).unwrap();
    assert!(!text.contains(&base64));
    assert!(text.contains("[base64 omitted: "), "{text}");
}

#[test]
fn one_message_under_its_lid_and_its_phone_jid_is_one_dedup_key() {
    let phone = event_of(&doc("evolution-messages-upsert.json"));
    let lid = event_of(&doc("evolution-messages-upsert-lid.json"));
    assert_eq!(phone.dedup_key, lid.dedup_key);
    let (a, b) = (phone.data.message().unwrap(), lid.data.message().unwrap());
    assert_eq!(a.chat_id, b.chat_id);
    assert_eq!(a.from, b.from);
    // The lid spelling also names the user id, so the contact stage links the two.
    assert_eq!(b.from_user_id.as_deref(), Some("123456789012345@lid"));
    let mut lid_only = doc("evolution-messages-upsert-lid.json");
    lid_only["data"]["key"]
        .as_object_mut()
        .unwrap()
        .remove("remoteJidAlt");
    assert_eq!(event_of(&lid_only).dedup_key, phone.dedup_key);
}

#[test]
fn a_sent_message_is_one_event_whether_upserted_or_reported_by_send_message() {
    let mut sent = doc("evolution-send-message-text.json");
    let upserted = {
        let mut d = sent.clone();
        d["event"] = json!("messages.upsert");
        d
    };
    let a = event_of(&sent);
    let b = event_of(&upserted);
    assert_eq!(a.dedup_key, b.dedup_key);
    assert_eq!(a.event_type, EventType::MessageSent);
    assert_eq!(b.event_type, EventType::MessageSent);
    // `send.message` is the business's even if a version left `fromMe` out.
    sent["data"]["key"]
        .as_object_mut()
        .unwrap()
        .remove("fromMe");
    assert_eq!(event_of(&sent).dedup_key, a.dedup_key);
}

#[test]
fn the_same_message_in_and_out_are_two_keys() {
    let inbound = event_of(&doc("evolution-messages-upsert.json"));
    let mut d = doc("evolution-messages-upsert.json");
    d["data"]["key"]["fromMe"] = json!(true);
    assert_ne!(event_of(&d).dedup_key, inbound.dedup_key);
}

#[test]
fn both_spellings_of_every_event_name_give_the_same_events() {
    for (name, upper) in [
        ("evolution-messages-upsert.json", "MESSAGES_UPSERT"),
        ("evolution-messages-update-read.json", "MESSAGES_UPDATE"),
        (
            "evolution-group-participants-update-add.json",
            "GROUP_PARTICIPANTS_UPDATE",
        ),
        (
            "evolution-send-message-update-edit.json",
            "SEND_MESSAGE_UPDATE",
        ),
        ("evolution-connection-update-open.json", "CONNECTION_UPDATE"),
        ("evolution-groups-update.json", "GROUP_UPDATE"),
    ] {
        let dotted = doc(name);
        let mut shouted = dotted.clone();
        shouted["event"] = json!(upper);
        let (a, b) = (events_of(&dotted), events_of(&shouted));
        assert_eq!(a.len(), b.len(), "{name}");
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.event_type, b.event_type, "{name}");
            assert_eq!(a.dedup_key, b.dedup_key, "{name}");
            assert_eq!(a.data, b.data, "{name}");
        }
    }
}

#[test]
fn every_status_name_and_number_maps_to_its_event_type() {
    let mut d = doc("evolution-messages-update-read.json");
    let cases = [
        ("ERROR", 0, EventType::MessageFailed, MessageStatus::Failed),
        (
            "PENDING",
            1,
            EventType::MessagePending,
            MessageStatus::Pending,
        ),
        ("SERVER_ACK", 2, EventType::MessageSent, MessageStatus::Sent),
        (
            "DELIVERY_ACK",
            3,
            EventType::MessageDelivered,
            MessageStatus::Delivered,
        ),
        ("READ", 4, EventType::MessageRead, MessageStatus::Read),
        ("PLAYED", 5, EventType::MessageRead, MessageStatus::Played),
    ];
    let mut keys = std::collections::HashSet::new();
    for (name, number, event_type, status) in cases {
        d["data"]["status"] = json!(name);
        let by_name = event_of(&d);
        d["data"]["status"] = json!(number);
        let by_number = event_of(&d);
        for e in [&by_name, &by_number] {
            assert_eq!(e.event_type, event_type, "{name}");
            assert_eq!(
                e.data.message().unwrap().status,
                Some(status.clone()),
                "{name}"
            );
        }
        assert_eq!(by_name.dedup_key, by_number.dedup_key, "{name}");
        assert!(keys.insert(by_name.dedup_key), "{name} reuses a dedup key");
    }
}

#[test]
fn deleted_in_messages_update_is_not_taken_for_a_revoke() {
    // Evolution reports `DELETED` for edits too (any update without a status).
    let e = event_of(&doc("evolution-messages-update-deleted-after-edit.json"));
    assert_eq!(e.event_type, EventType::ProviderEvent);
    assert_eq!(notification(&e).kind.as_deref(), Some("DELETED"));
}

#[test]
fn a_revoke_is_one_event_whichever_event_reports_it() {
    let keys: Vec<String> = [
        "evolution-messages-delete-key.json",
        "evolution-messages-edited-revoke.json",
        "evolution-messages-upsert-protocol-revoke.json",
    ]
    .iter()
    .map(|name| {
        let e = event_of(&doc(name));
        assert_eq!(e.event_type, EventType::MessageRevoked, "{name}");
        let Some(MessageContent::Revoke(r)) = &e.data.message().unwrap().content else {
            panic!("{name} is not a revoke");
        };
        assert_eq!(
            r.revoked_message_id.as_deref(),
            Some("3EB0C767D26A1D2F5A1E")
        );
        e.dedup_key
    })
    .collect();
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
}

#[test]
fn an_edit_is_one_event_whichever_event_reports_it_and_each_edit_is_its_own() {
    let edited = event_of(&doc("evolution-messages-edited-edit.json"));
    let upserted = event_of(&doc("evolution-messages-upsert-edited.json"));
    assert_eq!(edited.dedup_key, upserted.dedup_key);
    let mut later = doc("evolution-messages-edited-edit.json");
    later["data"]["timestampMs"] = json!("1730092921000");
    assert_ne!(event_of(&later).dedup_key, edited.dedup_key);
}

#[test]
fn a_customers_edit_names_no_chat_because_evolution_gives_the_business_number() {
    let e = event_of(&doc("evolution-messages-edited-edit.json"));
    let m = e.data.message().unwrap();
    assert_eq!(e.event_type, EventType::MessageEdited);
    assert_eq!(m.direction, crate::model::Direction::Inbound);
    assert_eq!(m.chat_id, None);
    assert_eq!(m.from, None);
    assert_eq!(m.to.as_deref(), Some("15550009999"));
    // The business's own edit names the customer's chat.
    let own = event_of(&doc("evolution-messages-edited-own-edit.json"));
    let m = own.data.message().unwrap();
    assert_eq!(m.direction, crate::model::Direction::Outbound);
    assert_eq!(m.chat_id.as_deref(), Some("15550001111@s.whatsapp.net"));
}

#[test]
fn the_business_own_push_name_and_number_placeholders_are_not_names() {
    let e = event_of(&doc("evolution-messages-upsert-from-me.json"));
    assert_eq!(e.data.message().unwrap().status, Some(MessageStatus::Sent));
    assert_eq!(contact_name(&e), None);
    let mut d = doc("evolution-messages-upsert.json");
    d["data"]["pushName"] = json!("15550001111");
    assert_eq!(contact_name(&event_of(&d)), None);
}

#[test]
fn a_voice_note_is_audio_with_voice_and_its_duration() {
    let e = event_of(&doc("evolution-messages-upsert-audio-voice.json"));
    let Some(MessageContent::Audio(a)) = &e.data.message().unwrap().content else {
        panic!("not audio");
    };
    assert_eq!(a.voice, Some(true));
    assert_eq!(a.duration_seconds, Some(4));
    assert_eq!(a.file_size, Some(7342));
}

#[test]
fn s3_media_urls_win_over_whatsapps_encrypted_ones() {
    let e = event_of(&doc("evolution-messages-upsert-image.json"));
    let m = e.data.message().unwrap();
    let url = m
        .content
        .as_ref()
        .and_then(|c| c.media_ref())
        .and_then(|r| r.url);
    assert!(url.unwrap().starts_with("https://s3.example.com/"));
}

#[test]
fn the_business_removed_from_a_group_has_left_it() {
    let mut d = doc("evolution-group-participants-update-remove-fallback.json");
    d["data"]["participants"] = json!(["15550009999@s.whatsapp.net"]);
    assert_eq!(event_of(&d).event_type, EventType::GroupLeft);
    d["data"]["action"] = json!("add");
    assert_eq!(event_of(&d).event_type, EventType::GroupParticipantsUpdated);
}

#[test]
fn a_phone_number_evolution_made_from_a_lid_is_not_trusted() {
    let e = event_of(&doc(
        "evolution-group-participants-update-remove-fallback.json",
    ));
    assert_eq!(notification(&e).participants[0].phone_number, None);
}

#[test]
fn every_call_status_maps_to_a_call_event_with_its_own_key() {
    let mut d = doc("evolution-call-offer.json");
    let mut keys = std::collections::HashSet::new();
    for (status, event_type) in [
        ("offer", EventType::CallReceived),
        ("ringing", EventType::CallUpdated),
        ("accept", EventType::CallAccepted),
        ("reject", EventType::CallRejected),
        ("timeout", EventType::CallEnded),
        ("terminate", EventType::CallEnded),
    ] {
        d["data"]["status"] = json!(status);
        let e = event_of(&d);
        assert_eq!(e.event_type, event_type, "{status}");
        assert!(keys.insert(e.dedup_key), "{status}");
    }
}

#[test]
fn history_is_never_a_received_message() {
    for e in events_of(&doc("evolution-messages-set-history.json")) {
        assert_eq!(e.event_type, EventType::HistorySynced);
    }
}

#[test]
fn an_item_that_cannot_be_read_is_passed_through_beside_the_others() {
    let mut d = doc("evolution-messages-upsert-array.json");
    d["data"].as_array_mut().unwrap().push(json!({"no": "key"}));
    let events = events_of(&d);
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].event_type, EventType::ProviderEvent);
    assert_eq!(notification(&events[2]).raw, json!({"no": "key"}));
}

#[test]
fn envelopes_without_event_or_data_are_passed_through_whole_without_the_apikey() {
    for body in [
        json!({}),
        json!({"event": "messages.upsert", "apikey": "K"}),
        json!({"data": {}, "apikey": "K"}),
        json!([1, 2]),
        json!("text"),
    ] {
        let e = event_of(&body);
        assert_eq!(e.event_type, EventType::ProviderEvent, "{body}");
        let mut expected = body.clone();
        if let Some(o) = expected.as_object_mut() {
            o.remove("apikey");
        }
        assert_eq!(notification(&e).raw, expected, "{body}");
    }
}

#[test]
fn bodies_that_are_not_json_are_refused() {
    let source = crate::ids::SourceId::parse("s").unwrap();
    let result = crate::providers::normalize(
        &source,
        Provider::Evolution,
        b"apikey=abc",
        chrono::Utc::now(),
    );
    assert!(matches!(
        result,
        Err(crate::providers::ParseError::NotJson(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let source = crate::ids::SourceId::parse("s").unwrap();
        let _ = crate::providers::normalize(&source, Provider::Evolution, &body, chrono::Utc::now());
    }

    #[test]
    fn never_panics_on_a_truncated_fixture(file in prop::sample::select(FIXTURES), cut in any::<prop::sample::Index>()) {
        let bytes = fixture(file);
        let source = crate::ids::SourceId::parse("s").unwrap();
        let _ = crate::providers::normalize(&source, Provider::Evolution, &bytes[..cut.index(bytes.len())], chrono::Utc::now());
    }

    #[test]
    fn never_panics_on_arbitrary_data_of_every_event(event in prop::sample::select(EVENTS), data in arbitrary_json()) {
        let body = json!({"event": event, "instance": "shop-main", "data": data, "sender": "15550009999@s.whatsapp.net", "apikey": "K"});
        for e in normalize(Provider::Evolution, body.to_string().as_bytes()) {
            prop_assert!(!serde_json::to_string(&e).unwrap().contains("\"apikey\""));
        }
    }

    #[test]
    fn never_panics_on_a_fixture_with_one_value_replaced(
        file in prop::sample::select(FIXTURES),
        seed in any::<u64>(),
        replacement in arbitrary_json(),
    ) {
        let mut d = doc(file);
        replace_somewhere(&mut d, seed, replacement);
        normalize(Provider::Evolution, d.to_string().as_bytes());
    }
}

const FIXTURES: &[&str] = &[
    "evolution-messages-upsert-group-lid.json",
    "evolution-messages-upsert-image.json",
    "evolution-messages-upsert-edited.json",
    "evolution-messages-upsert-ad-referral.json",
    "evolution-messages-upsert-contacts-array.json",
    "evolution-messages-update-poll.json",
    "evolution-messages-delete-api.json",
    "evolution-groups-upsert.json",
    "evolution-group-participants-update-add.json",
    "evolution-presence-update-group.json",
    "evolution-qrcode-updated-qr.json",
];

const EVENTS: &[&str] = &[
    "messages.upsert",
    "send.message",
    "messages.set",
    "messages.update",
    "messages.delete",
    "messages.edited",
    "send.message.update",
    "contacts.set",
    "contacts.upsert",
    "contacts.update",
    "chats.set",
    "chats.upsert",
    "chats.update",
    "chats.delete",
    "presence.update",
    "connection.update",
    "qrcode.updated",
    "status.instance",
    "logout.instance",
    "remove.instance",
    "instance.create",
    "instance.delete",
    "groups.upsert",
    "groups.update",
    "group-participants.update",
    "call",
    "labels.edit",
    "labels.association",
    "typebot.start",
    "SOMETHING_NEW",
];
