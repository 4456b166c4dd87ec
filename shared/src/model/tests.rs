use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::ids::{ConversationId, SourceId};

fn received_message(text: &str) -> InboundEvent {
    let mut message = Message::new(format!("wamid.{text}"), Direction::Inbound);
    message.from = Some("15550001111".into());
    message.content = Some(MessageContent::Text(TextData { body: text.into() }));
    let source = SourceInfo::new(SourceId::parse("src").unwrap(), Provider::Meta);
    InboundEvent {
        id: EventId::new(),
        event_type: EventType::MessageReceived,
        dedup_key: format!("meta:1:wamid.{text}"),
        received_at: Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 1).unwrap(),
        occurred_at: None,
        request_id: None,
        data: EventData::new(source, EventBody::message(message, None)),
    }
}

fn conversation() -> Conversation {
    let at = Utc.with_ymd_and_hms(2024, 10, 28, 5, 0, 0).unwrap();
    Conversation {
        id: ConversationId::new(),
        status: ConversationStatus::Active,
        contact: ContactProfile {
            wa_id: Some("15550001111".into()),
            name: Some("Alice".into()),
            ..Default::default()
        },
        business_id: "106540352242922".into(),
        created_at: at,
        last_active_at: at,
        ended_at: None,
        end_reason: None,
        inbound_count: 1,
        outbound_count: 0,
        labels: vec!["vip".into()],
        notes: vec![Note {
            text: "called back".into(),
            author: None,
            created_at: at,
        }],
        automation_notes: Vec::new(),
        assignee: None,
        handoff: None,
        contact_id: None,
        external_id: None,
        context: ConversationContext {
            summary: Some("1 message from Alice".into()),
            ..Default::default()
        },
    }
}

#[test]
fn a_single_envelope_has_the_documented_top_level_shape_and_round_trips() {
    let mut event = received_message("hi");
    event.data.conversation = Some(Box::new(conversation()));
    let envelope = Envelope::single(event);
    let value = serde_json::to_value(&envelope).unwrap();
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["batch", "created_at", "data", "id", "type"]);
    assert_eq!(value["type"], "whatsapp.message.received");
    assert_eq!(value["batch"], false);
    assert_eq!(value["created_at"], "2024-10-28T05:20:01Z");
    assert_eq!(value["data"]["message"]["message_type"], "text");
    assert_eq!(
        value["data"]["message"]["message_type_data"],
        json!({"body": "hi"})
    );
    assert_eq!(value["data"]["conversation"]["status"], "active");
    let back: Envelope = serde_json::from_value(value).unwrap();
    assert_eq!(back, envelope);
}

#[test]
fn a_batch_envelope_carries_an_array_whose_items_keep_their_own_ids() {
    let events = vec![received_message("one"), received_message("two")];
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    let batch_id = EventId::new();
    let envelope = Envelope::batch(batch_id, EventType::MessageReceived, Utc::now(), events);
    let value = serde_json::to_value(&envelope).unwrap();
    assert_eq!(value["batch"], true);
    assert_eq!(value["id"], batch_id.to_string());
    let items = value["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["event_id"], ids[0].to_string());
    assert_eq!(items[1]["message"]["message_type_data"]["body"], "two");
    let back: Envelope = serde_json::from_value(value).unwrap();
    assert_eq!(back, envelope);
}

#[test]
fn envelopes_whose_data_does_not_match_batch_are_rejected() {
    let mut value = serde_json::to_value(Envelope::single(received_message("x"))).unwrap();
    value["batch"] = json!(true);
    assert!(serde_json::from_value::<Envelope>(value).is_err());
}

#[test]
fn every_family_round_trips_through_its_event_type() {
    let source = SourceInfo::new(SourceId::parse("src").unwrap(), Provider::Waha);
    let at = Utc::now();
    let contact = Contact::new("ctc_1", ContactProfile::default(), at);
    let bodies = [
        (
            EventType::ConversationEnded,
            EventBody::conversation(ConversationBody {
                reason: Some(EndReason::Inactivity),
                ..Default::default()
            }),
        ),
        (
            EventType::ContactUpdated,
            EventBody::contact(ContactBody {
                contact,
                previous: Some(ContactProfile::default()),
                changes: Vec::new(),
            }),
        ),
        (
            EventType::SessionStatusUpdated,
            EventBody::notification(NotificationData::new(
                "session.status",
                json!({"status": "WORKING"}),
            )),
        ),
    ];
    for (event_type, body) in bodies {
        let mut data = EventData::new(source.clone(), body);
        data.conversation = Some(Box::new(conversation()));
        let event = InboundEvent {
            id: EventId::new(),
            event_type,
            dedup_key: "k".into(),
            received_at: at,
            occurred_at: Some(at),
            request_id: None,
            data,
        };
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<InboundEvent>(&text).unwrap(),
            event,
            "{event_type}"
        );
    }
}

#[test]
fn absent_provider_fields_are_left_out_not_nulled() {
    let value = serde_json::to_value(Envelope::single(received_message("x"))).unwrap();
    let message = value["data"]["message"].as_object().unwrap();
    for absent in [
        "to",
        "context",
        "referral",
        "status",
        "error",
        "pricing",
        "timestamp",
    ] {
        assert!(!message.contains_key(absent), "{absent} should be absent");
    }
    assert_eq!(value["data"]["conversation"], Value::Null);
}

#[test]
fn message_status_ranks_are_monotonic_with_failed_terminal() {
    use MessageStatus as S;
    let order = [S::Pending, S::Sent, S::Delivered, S::Read, S::Failed];
    for pair in order.windows(2) {
        assert!(pair[0].rank() < pair[1].rank(), "{pair:?}");
    }
    assert_eq!(S::Played.rank(), S::Read.rank());
    assert_eq!(S::from_wire("future").rank(), None);
    assert_eq!(S::from_wire("future").as_str(), "future");
}

#[test]
fn committed_json_schema_is_current() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/envelope.schema.json");
    let generated = envelope_schema_json();
    if std::env::var_os("WAGATE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema/envelope.schema.json is stale: run `WAGATE_BLESS=1 cargo test -p shared committed_json_schema_is_current`"
    );
}

#[test]
fn the_schema_names_every_event_type_and_message_type() {
    let schema = envelope_schema_json();
    for t in EventType::ALL {
        assert!(schema.contains(t.as_str()), "{t} missing from schema");
    }
    for m in [
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "order",
        "template",
        "system",
        "unsupported",
        "request_welcome",
        "edit",
        "revoke",
        "poll",
    ] {
        assert!(
            schema.contains(&format!("\"{m}\"")),
            "{m} missing from schema"
        );
    }
}

/// An event reads the same from text, from a `Value` and from serde's buffered form (inside an
/// untagged enum, as the buffer queue's messages are read); a `staged` field of any kind is
/// ignored by the event, and read by a staged event only when it is a string.
#[test]
fn events_read_alike_from_text_values_and_buffered_forms_with_or_without_staged() {
    use crate::pipeline::track::StagedEvent;

    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    enum Buffered {
        Staged(StagedEvent),
        Event(Box<InboundEvent>),
    }

    let mut event = received_message("hello");
    event.occurred_at = Some(Utc.with_ymd_and_hms(2024, 10, 28, 5, 20, 0).unwrap());
    event.request_id = Some("req_1".into());
    let text = serde_json::to_string(&event).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::from_str::<InboundEvent>(&text).unwrap(), event);
    assert_eq!(
        serde_json::from_value::<InboundEvent>(value.clone()).unwrap(),
        event
    );
    assert!(
        serde_json::from_str::<StagedEvent>(&text).is_err(),
        "no `staged`"
    );
    match serde_json::from_str::<Buffered>(&text).unwrap() {
        Buffered::Event(e) => assert_eq!(*e, event),
        Buffered::Staged(_) => panic!("read as staged without `staged`"),
    }

    let staged = StagedEvent {
        staged: "meta:1:wamid.hello".into(),
        event: Box::new(event.clone()),
    };
    let text = serde_json::to_string(&staged).unwrap();
    let read = serde_json::from_str::<StagedEvent>(&text).unwrap();
    assert_eq!(
        (read.staged.as_str(), &*read.event),
        ("meta:1:wamid.hello", &event)
    );
    assert_eq!(serde_json::from_str::<InboundEvent>(&text).unwrap(), event);
    match serde_json::from_str::<Buffered>(&text).unwrap() {
        Buffered::Staged(s) => assert_eq!(
            (s.staged.as_str(), &*s.event),
            (read.staged.as_str(), &event)
        ),
        Buffered::Event(_) => panic!("a staged event read as a plain one"),
    }

    // Only objects, as the flattened form read them: not the same fields as an array.
    let array = json!([
        value["id"],
        value["type"],
        value["data"],
        value["dedup_key"],
        value["received_at"],
        null,
        null,
        "k"
    ]);
    assert!(serde_json::from_value::<InboundEvent>(array.clone()).is_err());
    assert!(serde_json::from_str::<StagedEvent>(&array.to_string()).is_err());
    assert!(serde_json::from_value::<Buffered>(array).is_err());
    // A repeated `staged` is another field to an event, and an error to a staged one; a
    // repeated field of the event's own is an error.
    let text = serde_json::to_string(&event).unwrap();
    let twice = format!(r#"{{"staged":"a","staged":"b",{}"#, &text[1..]);
    assert_eq!(serde_json::from_str::<InboundEvent>(&twice).unwrap(), event);
    assert!(serde_json::from_str::<StagedEvent>(&twice).is_err());
    match serde_json::from_str::<Buffered>(&twice).unwrap() {
        Buffered::Event(e) => assert_eq!(*e, event),
        Buffered::Staged(_) => panic!("a repeated `staged` read as a staged event"),
    }
    let id_twice = format!(r#"{{"id":{},{}"#, value["id"], &text[1..]);
    assert!(serde_json::from_str::<InboundEvent>(&id_twice).is_err());

    let mut odd = value;
    odd["staged"] = json!(5);
    assert_eq!(
        serde_json::from_value::<InboundEvent>(odd.clone()).unwrap(),
        event
    );
    assert!(serde_json::from_value::<StagedEvent>(odd.clone()).is_err());
    match serde_json::from_value::<Buffered>(odd).unwrap() {
        Buffered::Event(e) => assert_eq!(*e, event),
        Buffered::Staged(_) => panic!("a number read as `staged`"),
    }
}

/// A message's `data` read straight into its types (its `type` came first, as we write events)
/// reads as the tree did ([`EventData::from_value`]): every provider fixture's events, with a
/// conversation attached, unknown fields among them, from text, from a `Value`, and with `data`
/// ahead of `type`; a `data` that is not an object is refused either way.
#[test]
fn message_data_read_in_one_pass_reads_as_the_tree_did() {
    use crate::providers::test_support::{fixture, normalize};

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/providers");
    let mut events = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(provider) = name
            .split_once('-')
            .and_then(|(p, _)| Provider::ALL.into_iter().find(|x| x.as_str() == p))
        else {
            continue;
        };
        events.extend(normalize(provider, &fixture(&name)));
    }
    let mut message = received_message("with a conversation");
    message.data.conversation = Some(Box::new(conversation()));
    message.data.event_id = Some(EventId::new());
    events.push(message);
    let messages = events
        .iter()
        .filter(|e| e.event_type.family() == Family::Message)
        .count();
    assert!(messages >= 40, "{messages} message events");
    for event in &events {
        let text = serde_json::to_string(event).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let tree = EventData::from_value(event.event_type, value["data"].clone()).unwrap();
        assert_eq!(tree, event.data, "{}", event.event_type);
        let read: InboundEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(read.data, tree, "{} from text", event.event_type);
        let read: InboundEvent = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(read.data, tree, "{} from a value", event.event_type);
        // `data` before `type`: kept as a tree until the type is known.
        let mut rest = value.as_object().unwrap().clone();
        let data = rest.remove("data").unwrap();
        let data_first = format!(
            r#"{{"data":{data},{}"#,
            &Value::Object(rest).to_string()[1..]
        );
        let read: InboundEvent = serde_json::from_str(&data_first).unwrap();
        assert_eq!(read.data, tree, "{} with data first", event.event_type);
        // Fields it does not know are skipped, as the tree's reading skipped them.
        let mut extra = value.clone();
        extra["data"]["unknown"] = json!({"deep": [1, {"x": null}]});
        let read: InboundEvent = serde_json::from_str(&extra.to_string()).unwrap();
        assert_eq!(
            read.data, tree,
            "{} with an unknown field",
            event.event_type
        );
        // Not an object: refused both ways.
        let mut array = value;
        array["data"] = json!([array["data"]["source"], array["data"]["message"]]);
        assert!(EventData::from_value(event.event_type, array["data"].clone()).is_err());
        assert!(serde_json::from_str::<InboundEvent>(&array.to_string()).is_err());
    }
}
