//! Semantics of the Gupshup parser beyond the fixture expectations (see `fixtures_test.rs`).

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::model::{EventBody, EventType, InboundEvent, MessageContent, MessageStatus, Provider};
use crate::providers::meta::tests::{arbitrary_json, replace_somewhere};
use crate::providers::test_support::{fixture, normalize};

fn doc(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn events_of(body: &Value) -> Vec<InboundEvent> {
    normalize(Provider::Gupshup, body.to_string().as_bytes())
}

fn event_of(body: &Value) -> InboundEvent {
    let mut events = events_of(body);
    assert_eq!(events.len(), 1, "every v2 body is one event");
    events.remove(0)
}

fn content(e: &InboundEvent) -> &MessageContent {
    e.data.message().unwrap().content.as_ref().unwrap()
}

fn notification(e: &InboundEvent) -> &crate::model::NotificationData {
    match &e.data.body {
        EventBody::Notification(n) => n,
        other => panic!("not a notification: {other:?}"),
    }
}

#[test]
fn a_sent_message_its_statuses_and_the_reply_to_it_share_gupshups_message_id() {
    let gupshup_id = "9b71295f-f7af-4c1f-b2b4-31b4a4867bad";
    let wamid = "gBEGkYaYVSEEAgnPFrOLcjkFjL8";
    let statuses = [
        (
            "gupshup-v2-message-event-enqueued.json",
            MessageStatus::Pending,
        ),
        ("gupshup-v2-message-event-sent.json", MessageStatus::Sent),
        (
            "gupshup-v2-message-event-delivered.json",
            MessageStatus::Delivered,
        ),
        ("gupshup-v2-message-event-read.json", MessageStatus::Read),
    ];
    for (name, status) in statuses {
        let e = event_of(&doc(name));
        let m = e.data.message().unwrap();
        assert_eq!(m.id, gupshup_id, "{name}");
        assert_eq!(m.whatsapp_message_id.as_deref(), Some(wamid), "{name}");
        assert_eq!(m.status, Some(status), "{name}");
        assert_eq!(
            e.data.source.business_id.as_deref(),
            Some("ExampleApp"),
            "{name}"
        );
    }
    let reply = event_of(&doc("gupshup-v2-text-reply.json"));
    let reply_to = reply.data.message().unwrap().context.clone().unwrap();
    assert_eq!(
        reply_to.reply_to.unwrap().message_id.as_deref(),
        Some(gupshup_id)
    );
}

#[test]
fn v3_statuses_are_known_by_gs_id_and_put_on_the_gupshup_app() {
    let app = "82ed52f4-30c0-4f12-81b4-e7ad07bd41de";
    let mut seen = Vec::new();
    for name in [
        "gupshup-v3-status-enqueued.json",
        "gupshup-v3-status-sent.json",
    ] {
        let events = events_of(&doc(name));
        assert_eq!(events.len(), 1, "{name}");
        let m = events[0].data.message().unwrap();
        assert_eq!(m.id, "2baff204-c39a-4121-90b5-f53f26d522b3", "{name}");
        assert!(
            m.whatsapp_message_id
                .as_deref()
                .is_some_and(|w| w.starts_with("wamid.")),
            "{name}"
        );
        // The enqueued status has no `metadata`: the app keeps both in one conversation.
        assert_eq!(events[0].data.source.business_id.as_deref(), Some(app));
        seen.push((events[0].event_type, events[0].dedup_key.clone()));
    }
    assert_eq!(seen[0].0, EventType::MessagePending);
    assert_eq!(seen[1].0, EventType::MessageSent);
    assert_ne!(seen[0].1, seen[1].1);
}

#[test]
fn a_v3_body_without_gs_app_id_keeps_metas_business_fields() {
    let mut body = doc("gupshup-v3-text.json");
    body.as_object_mut().unwrap().remove("gs_app_id");
    let e = &events_of(&body)[0];
    assert_eq!(e.event_type, EventType::MessageReceived);
    assert_eq!(
        e.data.source.business_id.as_deref(),
        Some("106540352242922")
    );
    assert_eq!(e.data.source.provider, Provider::Gupshup);
}

#[test]
fn a_status_gupshup_sends_without_gs_id_keeps_whatsapps_id() {
    // Gupshup leaves `gsId` out of events that arrive a week after the message was sent.
    let mut body = doc("gupshup-v2-message-event-read.json");
    body["payload"].as_object_mut().unwrap().remove("gsId");
    let m = event_of(&body).data.message().cloned().unwrap();
    assert_eq!(m.id, "gBEGkYaYVSEEAgnPFrOLcjkFjL8");
    assert_eq!(m.whatsapp_message_id, None);
}

#[test]
fn every_status_of_one_message_has_its_own_dedup_key_and_retries_keep_theirs() {
    let names = [
        "gupshup-v2-message-event-enqueued.json",
        "gupshup-v2-message-event-sent.json",
        "gupshup-v2-message-event-delivered.json",
        "gupshup-v2-message-event-read.json",
        "gupshup-v2-message-event-deleted.json",
    ];
    let mut keys = std::collections::HashSet::new();
    for name in names {
        let body = fixture(name);
        let (a, b) = (
            normalize(Provider::Gupshup, &body),
            normalize(Provider::Gupshup, &body),
        );
        assert_eq!(a[0].dedup_key, b[0].dedup_key, "{name}");
        assert_ne!(a[0].id, b[0].id, "{name}");
        assert!(keys.insert(a[0].dedup_key.clone()), "{name} reuses a key");
    }
}

#[test]
fn a_failure_carries_gupshups_code_and_reason() {
    let mut body = doc("gupshup-v2-message-event-failed.json");
    let e = event_of(&body);
    assert_eq!(e.event_type, EventType::MessageFailed);
    let error = e.data.message().unwrap().error.clone().unwrap();
    assert_eq!(error.error_code, Some(1002));
    assert_eq!(
        error.error_message.as_deref(),
        Some("Number Does Not Exists On WhatsApp")
    );
    // Codes come as strings too; an empty one is no code.
    body["payload"]["payload"]["code"] = json!("1003");
    let e = event_of(&body);
    assert_eq!(
        e.data.message().unwrap().error.as_ref().unwrap().error_code,
        Some(1003)
    );
    body["payload"]["payload"]["code"] = json!("");
    let e = event_of(&body);
    assert_eq!(
        e.data.message().unwrap().error.as_ref().unwrap().error_code,
        None
    );
}

#[test]
fn conversation_and_pricing_are_read_inside_payload_as_well() {
    let mut body = doc("gupshup-v2-message-event-sent.json");
    let outer = body["payload"].as_object_mut().unwrap();
    let conversation = outer.remove("conversation").unwrap();
    let pricing = outer.remove("pricing").unwrap();
    body["payload"]["payload"]["conversation"] = conversation;
    body["payload"]["payload"]["pricing"] = pricing;
    let m = event_of(&body).data.message().cloned().unwrap();
    assert_eq!(m.pricing.unwrap().pricing_model.as_deref(), Some("PMP"));
    assert_eq!(
        m.billing_conversation.unwrap().id.as_deref(),
        Some("532b57b5f6e63595ccd74c6010e5c5c7")
    );
}

#[test]
fn each_media_kind_maps_to_its_message_type_with_url_and_content_type() {
    let mut body = doc("gupshup-v2-image.json");
    for (kind, message_type) in [
        ("image", "image"),
        ("video", "video"),
        ("audio", "audio"),
        ("sticker", "sticker"),
        ("file", "document"),
    ] {
        body["payload"]["type"] = json!(kind);
        let e = event_of(&body);
        let c = content(&e);
        assert_eq!(c.type_name(), message_type);
        let media = c.media_ref().unwrap();
        assert!(
            media
                .url
                .unwrap()
                .starts_with("https://filemanager.gupshup.io/")
        );
        assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
    }
    // The media description names the MIME type `content-type`.
    let payload = body["payload"]["payload"].as_object_mut().unwrap();
    let mime = payload.remove("contentType").unwrap();
    payload.insert("content-type".into(), mime);
    let e = event_of(&body);
    assert_eq!(
        content(&e).media_ref().unwrap().mime_type.as_deref(),
        Some("image/jpeg")
    );
}

#[test]
fn a_file_keeps_its_name_and_caption() {
    let e = event_of(&doc("gupshup-v2-file.json"));
    let MessageContent::Document(d) = content(&e) else {
        panic!("not a document");
    };
    assert_eq!(d.filename.as_deref(), Some("invoice-1042.pdf"));
    assert_eq!(d.caption.as_deref(), Some("Purchase receipt"));
}

#[test]
fn a_template_quick_reply_is_a_button_with_its_postback_text() {
    let e = event_of(&doc("gupshup-v2-quick-reply.json"));
    let MessageContent::Button(b) = content(&e) else {
        panic!("not a button");
    };
    assert_eq!(b.text.as_deref(), Some("View account balance"));
    assert_eq!(b.payload.as_deref(), Some("balance:view"));
}

#[test]
fn an_interactive_quick_reply_is_whatsapps_button_reply() {
    let e = event_of(&doc("gupshup-v2-quick-reply-interactive.json"));
    let MessageContent::Interactive(i) = content(&e) else {
        panic!("not interactive");
    };
    assert_eq!(i.kind, "button_reply");
    assert_eq!(i.id.as_deref(), Some("confirm-yes"));
    assert_eq!(i.title.as_deref(), Some("Yes"));
}

#[test]
fn a_list_reply_keeps_its_postback_text_in_raw() {
    let e = event_of(&doc("gupshup-v2-list-reply.json"));
    let MessageContent::Interactive(i) = content(&e) else {
        panic!("not interactive");
    };
    assert_eq!(i.kind, "list_reply");
    assert_eq!(i.description.as_deref(), Some("Arrives tomorrow"));
    assert_eq!(i.raw.as_ref().unwrap()["postbackText"], "shipping:express");
}

#[test]
fn unreadable_content_is_kept_raw_as_unknown() {
    let mut body = doc("gupshup-v2-location.json");
    body["payload"]["payload"] = json!({"latitude": "north"});
    let e = event_of(&body);
    assert_eq!(e.event_type, EventType::MessageReceived);
    let MessageContent::Unknown(u) = content(&e) else {
        panic!("not unknown");
    };
    assert_eq!(u.provider_type, "location");
    assert_eq!(u.raw, json!({"latitude": "north"}));
}

#[test]
fn the_sender_is_the_customer_and_the_app_the_business() {
    let e = event_of(&doc("gupshup-v2-text-bsuid.json"));
    let m = e.data.message().unwrap();
    assert_eq!(m.from.as_deref(), Some("15550001111"));
    assert_eq!(m.to.as_deref(), Some("15550009999"));
    let contact = match &e.data.body {
        EventBody::Message(b) => b.contact.clone().unwrap(),
        _ => unreachable!(),
    };
    // The user id is the contact's key when Gupshup sends one.
    assert_eq!(contact.key(), Some("US.1648738043044942"));
    assert_eq!(contact.name.as_deref(), Some("Alice Example"));
    assert_eq!(e.data.source.business_id.as_deref(), Some("ExampleApp"));
    assert_eq!(
        e.data.source.business_phone_number.as_deref(),
        Some("15550009999")
    );
}

#[test]
fn opting_out_is_a_preference_change_of_that_customer() {
    let e = event_of(&doc("gupshup-v2-user-event-opted-out.json"));
    assert_eq!(e.event_type, EventType::ContactPreferencesUpdated);
    let n = notification(&e);
    assert_eq!(n.status.as_deref(), Some("opted-out"));
    assert_eq!(
        n.contact.as_ref().unwrap().wa_id.as_deref(),
        Some("15550001111")
    );
}

#[test]
fn the_sandbox_placeholder_phone_is_not_taken_for_a_customer() {
    let mut body = doc("gupshup-v2-user-event-sandbox-start.json");
    let e = event_of(&body);
    assert_eq!(e.event_type, EventType::ProviderEvent);
    assert_eq!(notification(&e).contact, None);
    body["payload"]["phone"] = json!("+15550001111");
    let e = event_of(&body);
    assert_eq!(
        notification(&e).contact.as_ref().unwrap().wa_id.as_deref(),
        Some("15550001111")
    );
}

#[test]
fn a_mismatch_names_the_customers_whatsapp_id() {
    let e = event_of(&doc("gupshup-v2-message-event-mismatch.json"));
    assert_eq!(e.event_type, EventType::ProviderEvent);
    let n = notification(&e);
    assert_eq!(n.kind.as_deref(), Some("mismatch"));
    assert_eq!(
        n.contact.as_ref().unwrap().wa_id.as_deref(),
        Some("15550001112")
    );
}

#[test]
fn a_billing_event_names_the_message_by_gupshups_id() {
    let e = event_of(&doc("gupshup-v2-billing-event.json"));
    let n = notification(&e);
    assert_eq!(n.provider_event, "billing-event");
    assert_eq!(
        n.subject.as_ref().unwrap().id.as_deref(),
        Some("9b71295f-f7af-4c1f-b2b4-31b4a4867bad")
    );
}

#[test]
fn an_announced_template_category_change_names_the_correct_category() {
    let mut body = doc("gupshup-v2-template-event-category.json");
    body["payload"]["category"] = json!({"current": "MARKETING", "correct": "UTILITY"});
    let e = event_of(&body);
    assert_eq!(e.event_type, EventType::TemplateCategoryUpdated);
    let n = notification(&e);
    assert_eq!(n.kind.as_deref(), Some("impending"));
    assert_eq!(n.status.as_deref(), Some("MARKETING"));
    assert_eq!(n.reason.as_deref(), Some("correct category: UTILITY"));
}

#[test]
fn a_template_event_without_type_is_a_status_update() {
    let mut body = doc("gupshup-v2-template-event.json");
    let payload = body["payload"].as_object_mut().unwrap();
    payload.remove("type");
    payload.insert("status".into(), json!("rejected"));
    payload.insert("rejectedReason".into(), json!("INVALID_FORMAT"));
    let e = event_of(&body);
    assert_eq!(e.event_type, EventType::TemplateStatusUpdated);
    assert_eq!(notification(&e).reason.as_deref(), Some("INVALID_FORMAT"));
}

#[test]
fn what_cannot_be_read_is_passed_through_whole() {
    let cases = [
        // A type this parser does not know.
        doc("gupshup-v2-unknown-event.json"),
        // A message event of a type Gupshup has not documented to us.
        json!({"app": "ExampleApp", "timestamp": 1730092801000_i64, "version": 2,
               "type": "message-event",
               "payload": {"type": "referral", "destination": "15550001111", "payload": {}}}),
        // A message without an id.
        json!({"app": "ExampleApp", "type": "message",
               "payload": {"type": "text", "payload": {"text": "hi"}}}),
        // A status without any id.
        json!({"app": "ExampleApp", "type": "message-event",
               "payload": {"type": "read", "destination": "15550001111"}}),
        // No payload at all.
        json!({"app": "ExampleApp", "type": "message"}),
        // Not an object.
        json!([1, 2, 3]),
        json!("message"),
        json!(null),
    ];
    for body in cases {
        let e = event_of(&body);
        assert_eq!(e.event_type, EventType::ProviderEvent, "{body}");
        assert_eq!(notification(&e).raw, body, "{body}");
    }
}

#[test]
fn a_body_that_is_not_json_is_rejected() {
    let source = crate::ids::SourceId::parse("s").unwrap();
    let result = crate::providers::normalize(
        &source,
        Provider::Gupshup,
        b"app=ExampleApp&type=message",
        chrono::Utc::now(),
    );
    assert!(matches!(
        result,
        Err(crate::providers::ParseError::NotJson(_))
    ));
}

#[test]
fn no_truncation_of_any_fixture_panics() {
    let names: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/providers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("gupshup-"))
            .collect();
    assert!(names.len() > 30);
    let source = crate::ids::SourceId::parse("s").unwrap();
    for name in names {
        let body = fixture(&name);
        for end in 0..body.len() {
            let _ = crate::providers::normalize(
                &source,
                Provider::Gupshup,
                &body[..end],
                chrono::Utc::now(),
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let source = crate::ids::SourceId::parse("s").unwrap();
        let _ = crate::providers::normalize(&source, Provider::Gupshup, &body, chrono::Utc::now());
    }

    #[test]
    fn never_panics_and_round_trips_on_arbitrary_json(value in arbitrary_json()) {
        events_of(&value);
        for kind in ["message", "message-event", "user-event", "billing-event", "template-event"] {
            events_of(&json!({"app": "A", "type": kind, "payload": &value}));
            events_of(&json!({"app": "A", "type": kind, "payload": {"type": "text", "payload": &value}}));
        }
        events_of(&json!({"object": "whatsapp_business_account", "gs_app_id": "x", "entry": [&value]}));
    }

    #[test]
    fn never_panics_on_a_fixture_with_one_value_replaced(
        path_seed in any::<u64>(),
        replacement in arbitrary_json(),
        which in 0usize..6,
    ) {
        let name = [
            "gupshup-v2-message-event-sent.json",
            "gupshup-v2-contact.json",
            "gupshup-v2-list-reply.json",
            "gupshup-v2-template-event-category.json",
            "gupshup-v3-status-sent.json",
            "gupshup-v2-billing-event.json",
        ][which];
        let mut body = doc(name);
        replace_somewhere(&mut body, path_seed, replacement);
        events_of(&body);
    }
}
