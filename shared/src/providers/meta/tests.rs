//! Semantics of the Meta parser beyond the fixture expectations (see `fixtures_test.rs`).

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::model::{EventType, MessageContent, Provider};
use crate::providers::test_support::{fixture, normalize};

fn types(events: &[crate::model::InboundEvent]) -> Vec<EventType> {
    events.iter().map(|e| e.event_type).collect()
}

#[test]
fn one_post_fans_out_to_one_event_per_message_and_status_in_order() {
    let events = normalize(Provider::Meta, &fixture("meta-multi-entry-batch.json"));
    assert_eq!(
        types(&events),
        vec![
            EventType::MessageReceived,
            EventType::MessageReceived,
            EventType::MessageDelivered,
            EventType::MessageRead,
            EventType::MessageReceived,
        ]
    );
    let businesses: Vec<_> = events
        .iter()
        .map(|e| e.data.source.business_id.clone().unwrap())
        .collect();
    assert_eq!(
        businesses[4], "106540352242923",
        "second entry keeps its own phone number id"
    );
    assert!(businesses[..4].iter().all(|b| b == "106540352242922"));
}

#[test]
fn a_retried_webhook_yields_the_same_dedup_keys_and_fresh_event_ids() {
    let body = fixture("meta-multi-entry-batch.json");
    let (first, second) = (
        normalize(Provider::Meta, &body),
        normalize(Provider::Meta, &body),
    );
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.dedup_key, b.dedup_key);
        assert_ne!(a.id, b.id);
    }
    let notification = fixture("meta-template-status-update.json");
    assert_eq!(
        normalize(Provider::Meta, &notification)[0].dedup_key,
        normalize(Provider::Meta, &notification)[0].dedup_key
    );
}

#[test]
fn each_status_of_one_message_has_its_own_dedup_key() {
    let keys: Vec<String> = [
        "meta-status-sent.json",
        "meta-status-delivered.json",
        "meta-status-read.json",
    ]
    .iter()
    .map(|f| normalize(Provider::Meta, &fixture(f))[0].dedup_key.clone())
    .collect();
    let wamid = "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRUIwQzc2N0QyNkExRDJGNUExRQ90A=";
    assert_eq!(
        keys,
        ["sent", "delivered", "read"].map(|s| format!("src-meta:meta:{wamid}:{s}"))
    );
}

#[test]
fn reaction_removal_is_recognised_with_empty_or_missing_emoji() {
    for event in normalize(Provider::Meta, &fixture("meta-reaction-removed.json")) {
        match &event.data.message().unwrap().content {
            Some(MessageContent::Reaction(r)) => assert!(r.removed && r.emoji.is_none(), "{r:?}"),
            other => panic!("not a reaction: {other:?}"),
        }
    }
}

#[test]
fn users_known_only_by_business_scoped_id_keep_it_as_from_user_id() {
    let events = normalize(Provider::Meta, &fixture("meta-user-id-only.json"));
    let message = events[0].data.message().unwrap();
    assert_eq!(message.from, None);
    assert_eq!(
        message.from_user_id.as_deref(),
        Some("US.13491208655302741918")
    );
}

#[test]
fn a_malformed_item_is_passed_through_without_sinking_its_siblings() {
    let events = normalize(Provider::Meta, &fixture("meta-unknown-message-type.json"));
    assert_eq!(
        types(&events),
        vec![
            EventType::MessageReceived,
            EventType::ProviderEvent,
            EventType::ProviderEvent
        ]
    );
}

#[test]
fn bytes_that_are_not_json_are_a_parse_error() {
    let source = crate::ids::SourceId::parse("s").unwrap();
    for body in [&b""[..], b"{", b"not json", b"\xff\xfe"] {
        let r = crate::providers::normalize(&source, Provider::Meta, body, chrono::Utc::now());
        assert!(r.is_err(), "{body:?}");
    }
}

#[test]
fn json_that_is_not_a_meta_envelope_becomes_one_provider_event_with_the_raw_body() {
    for body in [
        json!([]),
        json!("x"),
        json!(42),
        json!({"object": "whatsapp_business_account"}),
        json!({"entry": []}),
    ] {
        let events = normalize(Provider::Meta, body.to_string().as_bytes());
        assert_eq!(types(&events), vec![EventType::ProviderEvent], "{body}");
        let raw = serde_json::to_value(&events[0].data).unwrap()["raw"].clone();
        assert_eq!(raw, body);
    }
}

#[test]
fn an_envelope_with_no_entries_yields_no_events() {
    let events = normalize(
        Provider::Meta,
        br#"{"object":"whatsapp_business_account","entry":[]}"#,
    );
    assert!(events.is_empty());
}

#[test]
fn value_level_errors_and_messages_in_one_value_both_come_out() {
    let events = normalize(
        Provider::Meta,
        &fixture("meta-interactive-missing-with-value-errors.json"),
    );
    assert_eq!(
        types(&events),
        vec![EventType::MessageReceived, EventType::ProviderError]
    );
}

/// One inbound message in a minimal Meta envelope.
fn envelope_with_message(message: &Value) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"phone_number_id": "106540352242922"},
                    "messages": [message]
                }
            }]
        }]
    })
    .to_string()
    .into_bytes()
}

// Found by the `meta_normalize` fuzz target: an interactive reply whose kind-specific object is
// missing (or null) came out as `raw: Some(Null)`, which serializes as `"raw": null` and reads
// back as `None`, so the event changed on its way through the queue.
#[test]
fn interactive_reply_without_its_object_round_trips_with_no_raw() {
    for interactive in [
        json!({"type": "call_permission_reply"}),
        json!({"type": "call_permission_reply", "call_permission_reply": null}),
        json!({"type": "nfm_reply", "nfm_reply": {"response_json": null}}),
        json!({"type": "nfm_reply", "nfm_reply": {"response_json": "null"}}),
    ] {
        let body = envelope_with_message(&json!({
            "from": "15550001111",
            "id": "wamid.X03",
            "timestamp": "1730092801",
            "type": "interactive",
            "interactive": interactive,
        }));
        let events = normalize(Provider::Meta, &body);
        assert_eq!(types(&events), vec![EventType::MessageReceived]);
        let Some(MessageContent::Interactive(data)) = &events[0].data.message().unwrap().content
        else {
            panic!("not interactive: {:?}", events[0]);
        };
        assert_eq!((&data.raw, &data.response), (&None, &None), "{interactive}");
    }
}

/// Arbitrary JSON values, nested a few levels, with keys Meta uses so parsers go deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z0-9_.@ ]{0,12}".prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("object"),
        Just("entry"),
        Just("changes"),
        Just("field"),
        Just("value"),
        Just("messages"),
        Just("statuses"),
        Just("metadata"),
        Just("contacts"),
        Just("type"),
        Just("id"),
        Just("from"),
        Just("timestamp"),
        Just("text"),
        Just("interactive"),
        Just("errors"),
        Just("status"),
        Just("calls"),
        Just("event"),
        Just("payload"),
        Just("session"),
        Just("me"),
        Just("fromMe"),
        Just("ack"),
        Just("location"),
        Just("vCards"),
        Just("media"),
        Just("_data"),
        Just("reaction"),
        Just("after"),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

pub(crate) fn arbitrary_json() -> impl Strategy<Value = Value> {
    arb_json()
}

/// The events of `body` as JSON, event ids left out (they are fresh on every parse), read with
/// the one-pass readers on or off.
fn events_without_ids(provider: Provider, body: &[u8], fast: bool) -> Vec<Value> {
    super::FAST_PATHS.with(|f| f.set(fast));
    let source = crate::ids::SourceId::parse("s").unwrap();
    let at = chrono::DateTime::from_timestamp(1_730_000_000, 0).unwrap();
    let events = crate::providers::normalize(&source, provider, body, at);
    super::FAST_PATHS.with(|f| f.set(true));
    events
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            v.as_object_mut().unwrap().remove("id");
            v
        })
        .collect()
}

/// A context for calling the Meta parser's passes directly.
fn meta_ctx() -> crate::providers::Ctx {
    crate::providers::Ctx {
        source: crate::model::SourceInfo::new(
            crate::ids::SourceId::parse("s").unwrap(),
            Provider::Meta,
        ),
        received_at: chrono::Utc::now(),
    }
}

fn assert_both_ways_agree(provider: Provider, body: &[u8]) {
    assert_eq!(
        events_without_ids(provider, body, true),
        events_without_ids(provider, body, false),
        "{}",
        String::from_utf8_lossy(body)
    );
}

#[test]
fn the_one_pass_reading_gives_the_level_by_level_events_for_every_fixture() {
    let dir = format!("{}/fixtures/providers", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        if !String::from_utf8_lossy(&body).contains("whatsapp_business_account") {
            continue;
        }
        for provider in [Provider::Meta, Provider::Dialog360] {
            assert_both_ways_agree(provider, &body);
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} Meta-shaped fixtures");
    // The comparison above is between two different readings: messages and statuses take the
    // one-pass reader, management fields and hand-overs the level-by-level one.
    let ctx = meta_ctx();
    for name in [
        "meta-multi-entry-batch.json",
        "meta-status-failed.json",
        "meta-text.json",
        "meta-image.json",
    ] {
        assert!(
            super::parse_strict(&ctx, &fixture(name)).is_some(),
            "{name}"
        );
    }
    for name in [
        "meta-template-status-update.json",
        "meta-handover-pass-thread-control.json",
    ] {
        assert!(
            super::parse_strict(&ctx, &fixture(name)).is_none(),
            "{name}"
        );
    }
    // Shapes the strict pass refuses, each handled level by level the same way.
    for body in [
        r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":null}]}]}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":7,"value":{}}]}]}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"id":"1"},{"id":"2","changes":[]}]}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"9"},"statuses":{"id":"x"},"messages":[{"id":"m","from":"1","type":"text","text":{"body":"hi"},"timestamp":"1"}]}}]}]}"#,
        r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","statuses":[{"id":"a","status":"read","timestamp":"2","recipient_id":"5"}],"statuses":[{"id":"b","status":"sent","timestamp":"3","recipient_id":"5"}]}}]}]}"#,
        r#"{"object":"whatsapp_business_account","entry":"none"}"#,
        r#"{"object":"page","entry":[]}"#,
        r#"{"object":5}"#,
        r#"[1,2]"#,
    ] {
        assert_both_ways_agree(Provider::Meta, body.as_bytes());
    }
}

/// Items the one pass reads typed but cannot finish without their raw JSON (an unknown message
/// type keeps its raw object, an item without an id is passed through with its bytes, a call's
/// status keeps its raw JSON, a malformed contact is skipped alone) make it give up; level by
/// level they come out as before.
#[test]
fn items_that_need_their_raw_json_are_read_level_by_level() {
    let ctx = meta_ctx();
    let value = |items: &str| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"phone_number_id":"9"}},{items}}}}}]}}]}}"#
        )
    };
    let text = r#"{"id":"m1","from":"5","type":"text","text":{"body":"hi"},"timestamp":"1"}"#;
    let unknown =
        r#"{"id":"m2","from":"5","type":"hologram","hologram":{"depth":3},"timestamp":"1"}"#;
    let no_id = r#"{"from":"5","type":"text","text":{"body":"hi"},"timestamp":"1"}"#;
    let call = r#"{"id":"c1","type":"call","status":"RINGING","timestamp":"1","recipient_id":"5"}"#;
    let bad_contact = r#""contacts":[{"wa_id":"5","profile":"Alice"}]"#;

    let plain = value(&format!(r#""messages":[{text}]"#));
    assert!(super::parse_strict(&ctx, plain.as_bytes()).is_some());

    let with_unknown = value(&format!(r#""messages":[{text},{unknown}]"#));
    let with_no_id = value(&format!(r#""messages":[{no_id}]"#));
    let with_call = value(&format!(r#""statuses":[{call}]"#));
    let with_bad_contact = value(&format!(r#"{bad_contact},"messages":[{text}]"#));
    for body in [&with_unknown, &with_no_id, &with_call, &with_bad_contact] {
        assert!(
            super::parse_strict(&ctx, body.as_bytes()).is_none(),
            "{body}"
        );
        assert_both_ways_agree(Provider::Meta, body.as_bytes());
    }

    let events = super::parse(&ctx, with_unknown.as_bytes()).unwrap();
    let content = events[1].data.message().unwrap().content.clone();
    let Some(crate::model::MessageContent::Unknown(unknown)) = content else {
        panic!("{content:?}");
    };
    assert_eq!(unknown.provider_type, "hologram");
    assert_eq!(unknown.raw, serde_json::json!({"depth": 3}));
    let events = super::parse(&ctx, with_no_id.as_bytes()).unwrap();
    assert_eq!(events[0].event_type, crate::model::EventType::ProviderEvent);
    let events = super::parse(&ctx, with_call.as_bytes()).unwrap();
    assert_eq!(events[0].event_type, crate::model::EventType::CallRinging);
    // The malformed contact is skipped; the message is still read.
    let events = super::parse(&ctx, with_bad_contact.as_bytes()).unwrap();
    assert_eq!(
        events[0].event_type,
        crate::model::EventType::MessageReceived
    );
}

/// The one pass reads the body as text once it is UTF-8 as a whole; a body with a byte that is
/// not (here in a message's text) goes level by level, as before.
#[test]
fn a_body_that_is_not_utf8_goes_level_by_level() {
    let ctx = meta_ctx();
    let body = |text: &[u8]| {
        let mut body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"9"},"messages":[{"id":"m1","from":"5","type":"text","timestamp":"1","text":{"body":""#.to_vec();
        body.extend_from_slice(text);
        body.extend_from_slice(br#""}}]}}]}]}"#);
        body
    };
    let good = body("h\u{e9}llo".as_bytes());
    assert!(super::parse_strict(&ctx, &good).is_some());
    assert_both_ways_agree(Provider::Meta, &good);
    let bad = body(b"h\xe9llo");
    assert!(super::parse_strict(&ctx, &bad).is_none());
    assert_both_ways_agree(Provider::Meta, &bad);
    // In a field the typed read skips, serde_json reading bytes never checked it: the one pass
    // read the body while level by level refused it.
    let skipped = body(b"hello\",\"x\":\"h\xe9llo");
    assert!(super::parse_strict(&ctx, &skipped).is_none());
    assert_both_ways_agree(Provider::Meta, &skipped);
}

/// A status's `pricing` and `conversation` are read in the one pass field by field: a value
/// of an odd shape (a string for the object, a bool as text, a repeated key, an array) loses
/// only itself, never the status or the one pass.
#[test]
fn odd_pricing_and_conversation_lose_only_themselves() {
    let ctx = meta_ctx();
    let status = |extra: &str| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"phone_number_id":"9"}},"statuses":[{{"id":"w1","status":"delivered","timestamp":"1730092902","recipient_id":"5"{extra}}}]}}}}]}}]}}"#
        )
    };
    let read = |extra: &str| {
        let body = status(extra);
        assert!(
            super::parse_strict(&ctx, body.as_bytes()).is_some(),
            "{body}"
        );
        assert_both_ways_agree(Provider::Meta, body.as_bytes());
        let events = super::parse(&ctx, body.as_bytes()).unwrap();
        assert_eq!(events.len(), 1, "{body}");
        assert_eq!(
            events[0].event_type,
            crate::model::EventType::MessageDelivered
        );
        let message = events[0].data.message().unwrap().clone();
        (message.pricing, message.billing_conversation)
    };
    let pricing = |billable, model: Option<&str>, category: Option<&str>| crate::model::Pricing {
        billable,
        pricing_model: model.map(str::to_owned),
        category: category.map(str::to_owned),
        kind: None,
    };

    let (p, c) = read(
        r#","pricing":{"billable":"true","pricing_model":"PMP","category":["x"],"category":"utility","extra":{"a":[1]}}"#,
    );
    assert_eq!(p, Some(pricing(Some(true), Some("PMP"), Some("utility"))));
    assert_eq!(c, None);

    let (p, c) = read(r#","pricing":"free","conversation":[1,2]"#);
    assert_eq!((p, c), (None, None));

    let (p, c) = read(
        r#","conversation":{"id":7,"origin":"service","expiration_timestamp":"1730179302","pricing":{"billable":false,"category":"service"}},"pricing":null"#,
    );
    assert_eq!(p, Some(pricing(Some(false), None, Some("service"))));
    let c = c.unwrap();
    assert_eq!(c.id.as_deref(), Some("7"));
    assert_eq!(c.origin_type, None);
    assert_eq!(
        c.expires_at,
        chrono::DateTime::from_timestamp(1_730_179_302, 0)
    );

    // Pricing at the top wins over the conversation's.
    let (p, c) = read(
        r#","conversation":{"id":"c","origin":{"type":"marketing"},"pricing":{"category":"marketing"}},"pricing":{"pricing_model":"CBP","type":"regular"}"#,
    );
    let mut top = pricing(None, Some("CBP"), None);
    top.kind = Some("regular".to_owned());
    assert_eq!(p, Some(top));
    assert_eq!(c.unwrap().origin_type.as_deref(), Some("marketing"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn both_ways_agree_on_a_fixture_with_one_value_replaced(path_seed in any::<u64>(), replacement in arb_json()) {
        for name in ["meta-multi-entry-batch.json", "meta-status-failed.json", "meta-template-status-update.json"] {
            let mut doc: Value = serde_json::from_slice(&fixture(name)).unwrap();
            replace_somewhere(&mut doc, path_seed, replacement.clone());
            assert_both_ways_agree(Provider::Meta, doc.to_string().as_bytes());
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let source = crate::ids::SourceId::parse("s").unwrap();
        let _ = crate::providers::normalize(&source, Provider::Meta, &body, chrono::Utc::now());
    }

    #[test]
    fn never_panics_and_round_trips_on_arbitrary_json(value in arb_json()) {
        let wrapped = json!({"object": "whatsapp_business_account", "entry": [&value]});
        normalize(Provider::Meta, value.to_string().as_bytes());
        normalize(Provider::Meta, wrapped.to_string().as_bytes());
    }

    #[test]
    fn never_panics_on_a_fixture_with_one_value_replaced(path_seed in any::<u64>(), replacement in arb_json()) {
        let mut doc: Value = serde_json::from_slice(&fixture("meta-multi-entry-batch.json")).unwrap();
        replace_somewhere(&mut doc, path_seed, replacement);
        normalize(Provider::Meta, doc.to_string().as_bytes());
    }
}

/// Replaces one node of `doc`, chosen by `seed`, with `replacement`.
pub(crate) fn replace_somewhere(doc: &mut Value, mut seed: u64, replacement: Value) {
    let mut node = doc;
    loop {
        let len = match &*node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if len == 0 || seed.is_multiple_of(4) {
            *node = replacement;
            return;
        }
        let index = usize::try_from(seed % len as u64).unwrap();
        seed /= 4;
        node = match node {
            Value::Array(a) => &mut a[index],
            Value::Object(o) => o.values_mut().nth(index).unwrap(),
            _ => unreachable!(),
        };
    }
}
