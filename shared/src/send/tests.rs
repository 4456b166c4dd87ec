//! The request model's checks against Meta's documented limits, the normalized content of what
//! is sent, and a property test that validation never panics. (The sender's calls and retries
//! are tested over the wire in `tests/integration/send_client.rs`.)

use proptest::prelude::*;
use serde_json::{Value, json};

use super::message::limits;
use super::*;
use crate::model::MessageContent;

fn parse(v: Value) -> SendMessage {
    serde_json::from_value(v).unwrap()
}

fn with(extra: Value) -> Value {
    let mut base = json!({"source_id": "meta-main", "to": "+15551234567"});
    let Value::Object(extra) = extra else {
        panic!("an object")
    };
    for (k, v) in extra {
        base[k] = v;
    }
    base
}

/// The field a message is refused for.
fn refused(v: Value) -> String {
    parse(v).validate().unwrap_err().field
}

fn text_of(n: usize) -> String {
    "é".repeat(n)
}

#[test]
fn a_valid_message_of_every_type_passes() {
    let samples = [
        json!({"type": "text", "text": {"body": "Hi"}}),
        json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x/a.jpg"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "42"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "STOP"}]},
                {"type": "carousel", "cards": [{"card_index": 0, "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "x"}]}]}]}]}}),
        json!({"type": "image", "image": {"link": "https://x/a.jpg", "caption": "c"}}),
        json!({"type": "video", "video": {"id": "1234567"}}),
        json!({"type": "audio", "audio": {"link": "https://x/a.ogg"}}),
        json!({"type": "document", "document": {"link": "https://x/a.pdf", "filename": "a.pdf", "caption": "c"}}),
        json!({"type": "sticker", "sticker": {"id": "99"}}),
        json!({"type": "location", "location": {"latitude": 52.5, "longitude": 13.4, "name": "Berlin"}}),
        json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Jane Doe", "first_name": "Jane"},
            "phones": [{"phone": "+1 555 123 4567", "type": "CELL", "wa_id": "15551234567"}],
            "emails": [{"email": "jane@example.com"}], "urls": [{"url": "https://example.com"}],
            "birthday": "1990-01-31"}]}),
        json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick"},
            "header": {"type": "image", "image": {"link": "https://x/h.jpg"}},
            "footer": {"text": "f"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}},
                                   {"type": "reply", "reply": {"id": "b", "title": "B"}}]}}}),
        json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "Menu"},
            "header": {"type": "text", "text": "Our menu"},
            "action": {"button": "Open", "sections": [
                {"title": "S1", "rows": [{"id": "r1", "title": "One", "description": "d"}]},
                {"title": "S2", "rows": [{"id": "r2", "title": "Two"}]}]}}}),
        json!({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "See"},
            "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://x"}}}}),
        json!({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍🏽"}}),
        json!({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": ""}}),
    ];
    for s in samples {
        let m = parse(with(s.clone()));
        m.validate().unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

#[test]
fn recipients_need_exactly_one_valid_form() {
    assert_eq!(
        refused(json!({"source_id": "s", "type": "text", "text": {"body": "x"}})),
        "to"
    );
    assert_eq!(
        refused(
            json!({"source_id": "s", "to": "1555123456", "user_id": "US.1", "type": "text",
            "text": {"body": "x"}})
        ),
        "to"
    );
    for bad in [
        "12345",
        "+1 555 CALL NOW",
        "1234567890123456",
        "120363@g.us",
        "x@example.com",
    ] {
        assert_eq!(
            refused(json!({"source_id": "s", "to": bad, "type": "text", "text": {"body": "x"}})),
            "to",
            "{bad}"
        );
    }
    for bad in ["", "has space", "x@lid", "a/b"] {
        assert_eq!(
            refused(
                json!({"source_id": "s", "user_id": bad, "type": "text", "text": {"body": "x"}})
            ),
            "user_id",
            "{bad}"
        );
    }
    let m = parse(
        json!({"source_id": "s", "to": "+49 (30) 1234-5678", "type": "text",
        "text": {"body": "x"}}),
    );
    assert_eq!(
        m.recipient().unwrap(),
        Recipient::Phone("493012345678".into())
    );
}

#[test]
fn the_type_names_the_one_content_object() {
    assert_eq!(refused(with(json!({"type": "text"}))), "text");
    assert_eq!(
        refused(with(
            json!({"type": "text", "text": {"body": "x"}, "image": {"link": "https://x"}})
        )),
        "image"
    );
    let unknown = serde_json::from_value::<SendMessage>(with(json!({"type": "text",
        "text": {"body": "x"}, "surprise": 1})));
    assert!(unknown.is_err(), "unknown fields are refused");
    let unknown_type = serde_json::from_value::<SendMessage>(with(json!({"type": "poll"})));
    assert!(unknown_type.is_err());
}

#[test]
fn text_and_caption_limits_follow_meta() {
    let ok = with(json!({"type": "text", "text": {"body": text_of(limits::TEXT_BODY)}}));
    parse(ok).validate().unwrap();
    assert_eq!(
        refused(with(
            json!({"type": "text", "text": {"body": text_of(limits::TEXT_BODY + 1)}})
        )),
        "text.body"
    );
    assert_eq!(
        refused(with(json!({"type": "text", "text": {"body": "  "}}))),
        "text.body"
    );
    assert_eq!(
        refused(with(
            json!({"type": "image", "image": {"link": "https://x/a.jpg",
            "caption": text_of(limits::CAPTION + 1)}})
        )),
        "image.caption"
    );
    assert_eq!(
        refused(with(
            json!({"type": "audio", "audio": {"link": "https://x/a.ogg", "caption": "no"}})
        )),
        "audio.caption"
    );
    assert_eq!(
        refused(with(
            json!({"type": "sticker", "sticker": {"id": "1", "caption": "no"}})
        )),
        "sticker.caption"
    );
    assert_eq!(
        refused(with(
            json!({"type": "image", "image": {"link": "https://x/a.jpg", "filename": "a.jpg"}})
        )),
        "image.filename"
    );
    assert_eq!(
        refused(with(
            json!({"type": "image", "image": {"id": "1", "link": "https://x/a.jpg"}})
        )),
        "image.id"
    );
    assert_eq!(
        refused(with(json!({"type": "image", "image": {}}))),
        "image.link"
    );
    assert_eq!(
        refused(with(
            json!({"type": "image", "image": {"link": "ftp://x/a.jpg"}})
        )),
        "image.link"
    );
}

#[test]
fn interactive_limits_follow_meta() {
    let button =
        |id: &str, title: &str| json!({"type": "reply", "reply": {"id": id, "title": title}});
    let buttons = |list: Vec<Value>| {
        with(
            json!({"type": "interactive", "interactive": {"type": "button",
            "body": {"text": "Pick"}, "action": {"buttons": list}}}),
        )
    };
    assert_eq!(refused(buttons(vec![])), "interactive.action.buttons");
    assert_eq!(
        refused(buttons(vec![
            button("a", "A"),
            button("b", "B"),
            button("c", "C"),
            button("d", "D")
        ])),
        "interactive.action.buttons"
    );
    assert_eq!(
        refused(buttons(vec![button(
            "a",
            &"t".repeat(limits::BUTTON_TITLE + 1)
        )])),
        "interactive.action.buttons[0].reply.title"
    );
    assert_eq!(
        refused(buttons(vec![button(
            &"i".repeat(limits::BUTTON_ID + 1),
            "A"
        )])),
        "interactive.action.buttons[0].reply.id"
    );
    assert_eq!(
        refused(buttons(vec![button("a", "A"), button("a", "B")])),
        "interactive.action.buttons[1].reply.id"
    );
    parse(buttons(vec![button(
        &"i".repeat(limits::BUTTON_ID),
        &"t".repeat(limits::BUTTON_TITLE),
    )]))
    .validate()
    .unwrap();

    let row = |i: usize| json!({"id": format!("r{i}"), "title": "Row"});
    let list = |sections: Value| {
        with(
            json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "Menu"},
            "action": {"button": "Open", "sections": sections}}}),
        )
    };
    let eleven: Vec<Value> = (0..11).map(row).collect();
    assert_eq!(
        refused(list(json!([{"title": "S", "rows": eleven}]))),
        "interactive.action.sections"
    );
    assert_eq!(
        refused(list(json!([{"rows": [row(1)]}, {"rows": [row(2)]}]))),
        "interactive.action.sections[0].title"
    );
    assert_eq!(
        refused(list(
            json!([{"title": "S", "rows": [{"id": "r", "title": "t",
            "description": "d".repeat(limits::ROW_DESCRIPTION + 1)}]}])
        )),
        "interactive.action.sections[0].rows[0].description"
    );
    let ten: Vec<Value> = (0..10).map(row).collect();
    parse(list(json!([{"title": "S", "rows": ten}])))
        .validate()
        .unwrap();
    assert_eq!(
        refused(with(
            json!({"type": "interactive", "interactive": {"type": "list",
            "body": {"text": "Menu"}, "header": {"type": "image", "image": {"link": "https://x"}},
            "action": {"button": "Open", "sections": [{"rows": [row(1)]}]}}})
        )),
        "interactive.header.type"
    );
    assert_eq!(
        refused(with(
            json!({"type": "interactive", "interactive": {"type": "button",
            "body": {"text": "x"}, "header": {"type": "text", "text": "h".repeat(61)},
            "action": {"buttons": [button("a", "A")]}}})
        )),
        "interactive.header.text"
    );
    assert_eq!(
        refused(with(
            json!({"type": "interactive", "interactive": {"type": "cta_url",
            "body": {"text": "x"}, "action": {"name": "cta_url",
            "parameters": {"display_text": "Open", "url": "javascript:alert(1)"}}}})
        )),
        "interactive.action.parameters.url"
    );
    assert_eq!(
        refused(with(
            json!({"type": "interactive", "interactive": {"type": "button",
            "body": {"text": "x"}, "action": {"buttons": [button("a", "A")], "button": "Open"}}})
        )),
        "interactive.action.button"
    );
}

#[test]
fn templates_are_checked_for_shape() {
    let template = |t: Value| with(json!({"type": "template", "template": t}));
    assert_eq!(
        refused(template(
            json!({"name": "Hello World", "language": {"code": "en"}})
        )),
        "template.name"
    );
    assert_eq!(
        refused(template(
            json!({"name": "hello", "language": {"code": "english"}})
        )),
        "template.language.code"
    );
    assert_eq!(
        refused(template(
            json!({"name": "hello", "language": {"code": "en"},
            "components": [{"parameters": []}]})
        )),
        "template.components[0].type"
    );
    assert_eq!(
        refused(template(
            json!({"name": "hello", "language": {"code": "en"},
            "components": [{"type": "button", "index": 0, "parameters": []}]})
        )),
        "template.components[0].sub_type"
    );
    assert_eq!(
        refused(template(
            json!({"name": "hello", "language": {"code": "en"},
            "components": [{"type": "button", "sub_type": "url", "index": 12}]})
        )),
        "template.components[0].index"
    );
    assert_eq!(
        refused(template(
            json!({"name": "hello", "language": {"code": "en"},
            "components": [{"type": "body", "parameters": [{"type": "text"}]}]})
        )),
        "template.components[0].parameters[0].text"
    );
    assert_eq!(
        refused(template(
            json!({"name": "hello", "language": {"code": "en"},
            "components": [{"type": "body", "parameters": "x"}]})
        )),
        "template.components[0].parameters"
    );
}

#[test]
fn contacts_location_reaction_and_extras_are_checked() {
    assert_eq!(
        refused(with(json!({"type": "contacts", "contacts": []}))),
        "contacts"
    );
    assert_eq!(
        refused(with(
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Jane"}}]})
        )),
        "contacts[0].name"
    );
    assert_eq!(
        refused(with(
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "J",
            "first_name": "J"}, "birthday": "31/01/1990"}]})
        )),
        "contacts[0].birthday"
    );
    assert_eq!(
        refused(with(
            json!({"type": "location", "location": {"latitude": 91.0, "longitude": 0.0}})
        )),
        "location.latitude"
    );
    assert_eq!(
        refused(with(
            json!({"type": "reaction", "reaction": {"message_id": "m", "emoji": "ok"}})
        )),
        "reaction.emoji"
    );
    assert_eq!(
        refused(with(
            json!({"type": "reaction", "reaction": {"message_id": "m", "emoji": "👍"},
            "reply_to": "m"})
        )),
        "reply_to"
    );
    assert_eq!(
        refused(with(
            json!({"type": "text", "text": {"body": "x"}, "campaign_id": "spring"})
        )),
        "campaign_id"
    );
    let big = json!({"blob": "x".repeat(limits::METADATA_BYTES)});
    assert_eq!(
        refused(with(
            json!({"type": "text", "text": {"body": "x"}, "metadata": big})
        )),
        "metadata"
    );
    let not_object = serde_json::from_value::<SendMessage>(with(json!({"type": "text",
        "text": {"body": "x"}, "metadata": [1]})));
    assert!(not_object.is_err());
}

#[test]
fn errors_name_the_field_but_never_quote_the_value() {
    let secret = "call me at 15551234567";
    let e = parse(with(
        json!({"type": "text", "text": {"body": format!("{secret}{}", text_of(5000))}}),
    ))
    .validate()
    .unwrap_err();
    assert!(!e.to_string().contains("15551234567"), "{e}");
}

#[test]
fn content_is_what_wagate_s_events_show() {
    let m = parse(with(
        json!({"type": "template", "template": {"name": "hello",
        "language": {"code": "en_US"}, "components": [{"type": "body"}]}}),
    ));
    assert_eq!(
        serde_json::to_value(m.content()).unwrap(),
        json!({"message_type": "template", "message_type_data": {"name": "hello",
            "language": "en_US", "raw": [{"type": "body"}]}})
    );
    let m = parse(with(
        json!({"type": "document", "document": {"link": "https://x/a.pdf",
        "filename": "a.pdf", "caption": "c"}}),
    ));
    let MessageContent::Document(d) = m.content() else {
        panic!()
    };
    assert_eq!(
        (
            d.url.as_deref(),
            d.filename.as_deref(),
            d.caption.as_deref()
        ),
        (Some("https://x/a.pdf"), Some("a.pdf"), Some("c"))
    );
    let m = parse(with(
        json!({"type": "interactive", "interactive": {"type": "button",
        "header": {"type": "text", "text": "Head"}, "body": {"text": "Pick"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}}),
    ));
    let MessageContent::Interactive(i) = m.content() else {
        panic!()
    };
    assert_eq!(
        (i.kind.as_str(), i.title.as_deref(), i.body.as_deref()),
        ("button", Some("Head"), Some("Pick"))
    );
    assert!(i.raw.is_some());
    let m = parse(with(
        json!({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": ""}}),
    ));
    let MessageContent::Reaction(r) = m.content() else {
        panic!()
    };
    assert!(r.removed && r.emoji.is_none());
    let m = parse(with(
        json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Jane D",
        "first_name": "Jane"}, "phones": [{"phone": "+1 555", "wa_id": "15551234567"}]}]}),
    ));
    let MessageContent::Contacts(c) = m.content() else {
        panic!()
    };
    assert_eq!(c.contacts[0].name.as_deref(), Some("Jane D"));
    assert_eq!(
        c.contacts[0].phones[0].wa_id.as_deref(),
        Some("15551234567")
    );
}

#[test]
fn the_request_schema_documents_every_field() {
    let schema = serde_json::to_value(schemars::schema_for!(SendMessage)).unwrap();
    let props = schema["properties"].as_object().unwrap();
    for (name, prop) in props {
        assert!(
            prop.get("description").is_some(),
            "`{name}` has no description: {prop}"
        );
    }
    assert_eq!(schema["additionalProperties"], false);
}

/// Arbitrary JSON, and JSON shaped like a send request with arbitrary parts.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z_ .@+0-9👍é]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("text"),
            Just("interactive"),
            Just("template"),
            Just("button"),
            Just("list"),
            Just("cta_url"),
            Just("reply"),
            Just("image"),
            Just("+15551234567")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("text".to_owned()),
                    Just("body".to_owned()),
                    Just("action".to_owned()),
                    Just("buttons".to_owned()),
                    Just("reply".to_owned()),
                    Just("id".to_owned()),
                    Just("title".to_owned()),
                    Just("sections".to_owned()),
                    Just("rows".to_owned()),
                    Just("components".to_owned()),
                    Just("parameters".to_owned()),
                    Just("link".to_owned()),
                    Just("header".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn validation_never_panics_on_arbitrary_json(body in any_json(), kind in prop_oneof![
        Just("text"), Just("template"), Just("image"), Just("contacts"), Just("interactive"),
        Just("location"), Just("reaction")]) {
        let mut request = json!({"source_id": "s", "to": "+15551234567", "type": kind});
        request[kind] = body.clone();
        for candidate in [request, body] {
            if let Ok(m) = serde_json::from_value::<SendMessage>(candidate) {
                let _ = m.validate();
                let _ = m.content();
                let _ = meta::send_body(&m, Some("tag"));
                let _ = waha::send_body(&m, "default", "15551234567@c.us");
            }
        }
    }
}
