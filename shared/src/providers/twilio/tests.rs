//! Semantics of the Twilio parser beyond the fixture expectations (see `fixtures_test.rs`).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::Address;
use crate::model::{
    ContactProfile, EventType, InboundEvent, MessageContent, MessageStatus, Provider,
};
use crate::providers::test_support::{fixture, normalize};

fn events(body: &[u8]) -> Vec<InboundEvent> {
    normalize(Provider::Twilio, body)
}

fn one(body: &[u8]) -> InboundEvent {
    let mut events = events(body);
    assert_eq!(events.len(), 1, "one event expected");
    events.remove(0)
}

/// A fixture's parameters, in order, with `name` set to `value` (added when absent; removed
/// when `value` is `None`).
fn with(file: &str, changes: &[(&str, Option<&str>)]) -> Vec<u8> {
    let body = fixture(file);
    let mut params: Vec<(String, String)> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (name, value) in changes {
        let at = params.iter().position(|(k, _)| k == name);
        match (at, value) {
            (Some(i), Some(v)) => params[i].1 = (*v).to_owned(),
            (Some(i), None) => {
                params.remove(i);
            }
            (None, Some(v)) => params.push(((*name).to_owned(), (*v).to_owned())),
            (None, None) => {}
        }
    }
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
        .into_bytes()
}

fn contact(e: &InboundEvent) -> ContactProfile {
    match &e.data.body {
        crate::model::EventBody::Message(m) => m.contact.clone().unwrap_or_default(),
        other => panic!("not a message: {other:?}"),
    }
}

fn content(e: &InboundEvent) -> &MessageContent {
    e.data.message().unwrap().content.as_ref().unwrap()
}

const SID: &str = "SM1b2c3d4e5f60718293a4b5c6d7e8f901";

#[test]
fn a_status_and_a_message_with_the_same_sid_name_the_same_message() {
    let status = one(&fixture("twilio-status-read.form.txt"));
    let inbound = one(&with(
        "twilio-inbound.form.txt",
        &[("MessageSid", Some(SID))],
    ));
    assert_eq!(status.data.message().unwrap().id, SID);
    assert_eq!(inbound.data.message().unwrap().id, SID);
    assert_ne!(status.dedup_key, inbound.dedup_key);
    assert_eq!(inbound.dedup_key, format!("src-twilio:twilio:{SID}"));
    assert_eq!(status.dedup_key, format!("src-twilio:twilio:{SID}:read"));
}

#[test]
fn a_reply_names_the_sid_that_the_statuses_of_the_replied_message_carry() {
    let reply = one(&with(
        "twilio-reply-context.form.txt",
        &[("OriginalRepliedMessageSid", Some(SID))],
    ));
    let context = reply.data.message().unwrap().context.clone().unwrap();
    let replied = context.reply_to.unwrap();
    assert_eq!(replied.message_id.as_deref(), Some(SID));
    assert_eq!(replied.from.as_deref(), Some("15550009999"));
    let status = one(&fixture("twilio-status-read.form.txt"));
    assert_eq!(status.data.message().unwrap().id, SID);
}

#[test]
fn a_message_and_the_statuses_of_replies_to_it_share_business_and_customer_keys() {
    let inbound = one(&fixture("twilio-inbound.form.txt"));
    let status = one(&fixture("twilio-status-read.form.txt"));
    assert_eq!(
        inbound.data.source.business_id.as_deref(),
        Some("15550009999")
    );
    assert_eq!(
        inbound.data.source.business_id,
        status.data.source.business_id
    );
    assert_eq!(contact(&inbound).key(), Some("15550001111"));
    assert_eq!(contact(&inbound).key(), contact(&status).key());
    assert_eq!(
        inbound.data.source.business_account_id.as_deref(),
        Some("ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    );
}

#[test]
fn the_business_scoped_user_id_keys_the_customer_with_or_without_a_phone_number() {
    let with_phone = contact(&one(&fixture("twilio-user-id.form.txt")));
    assert_eq!(with_phone.wa_id.as_deref(), Some("15550001111"));
    assert_eq!(
        with_phone.user_id.as_deref(),
        Some("US.13491208655302741918")
    );
    let username_only = one(&fixture("twilio-user-id-only.form.txt"));
    let m = username_only.data.message().unwrap();
    assert_eq!(
        (m.from.as_deref(), m.from_user_id.as_deref()),
        (None, Some("US.13491208655302741918"))
    );
    let status = contact(&one(&fixture("twilio-status-read-user-id.form.txt")));
    for c in [&with_phone, &contact(&username_only), &status] {
        assert_eq!(c.key(), Some("US.13491208655302741918"), "{c:?}");
    }
}

#[test]
fn every_twilio_status_maps_to_its_event_type_and_status() {
    let cases = [
        (
            "accepted",
            EventType::MessagePending,
            MessageStatus::Pending,
        ),
        (
            "scheduled",
            EventType::MessagePending,
            MessageStatus::Pending,
        ),
        ("queued", EventType::MessagePending, MessageStatus::Pending),
        ("sending", EventType::MessagePending, MessageStatus::Pending),
        ("sent", EventType::MessageSent, MessageStatus::Sent),
        (
            "delivered",
            EventType::MessageDelivered,
            MessageStatus::Delivered,
        ),
        ("read", EventType::MessageRead, MessageStatus::Read),
        ("failed", EventType::MessageFailed, MessageStatus::Failed),
        (
            "undelivered",
            EventType::MessageFailed,
            MessageStatus::Failed,
        ),
        ("canceled", EventType::MessageFailed, MessageStatus::Failed),
        ("READ", EventType::MessageRead, MessageStatus::Read),
    ];
    for (status, event_type, model) in cases {
        let e = one(&with(
            "twilio-status-read.form.txt",
            &[("MessageStatus", Some(status)), ("SmsStatus", Some(status))],
        ));
        assert_eq!(e.event_type, event_type, "{status}");
        let m = e.data.message().unwrap();
        assert_eq!(m.status.as_ref(), Some(&model), "{status}");
        assert_eq!(m.content, None, "{status}");
        assert_eq!(e.occurred_at, None);
        assert_eq!(
            e.dedup_key,
            format!("src-twilio:twilio:{SID}:{}", model.as_str())
        );
        let failed = model == MessageStatus::Failed;
        let title = m.error.as_ref().and_then(|e| e.title.clone());
        assert_eq!(
            title,
            failed.then(|| status.to_ascii_lowercase()),
            "{status}"
        );
    }
}

#[test]
fn statuses_outside_the_delivery_order_are_passed_through_with_their_parameters() {
    for status in ["receiving", "partially_delivered", "something_new"] {
        let e = one(&with(
            "twilio-status-read.form.txt",
            &[("MessageStatus", Some(status))],
        ));
        assert_eq!(e.event_type, EventType::ProviderEvent, "{status}");
        let data = serde_json::to_value(&e.data).unwrap();
        assert_eq!(data["provider_event"], format!("status.{status}"));
        assert_eq!(data["raw"]["MessageStatus"], status);
        assert_eq!(data["source"]["business_id"], "15550009999");
    }
}

#[test]
fn undelivered_is_a_failure_with_twilios_error_code() {
    let e = one(&fixture("twilio-status-undelivered.form.txt"));
    assert_eq!(e.event_type, EventType::MessageFailed);
    let error = e.data.message().unwrap().error.clone().unwrap();
    assert_eq!(error.error_code, Some(63016));
    assert_eq!(error.title.as_deref(), Some("undelivered"));
}

#[test]
fn an_error_message_and_the_channels_message_are_both_kept() {
    let e = one(&with(
        "twilio-status-failed.form.txt",
        &[("ErrorMessage", Some("Failed to send"))],
    ));
    let error = e.data.message().unwrap().error.clone().unwrap();
    assert_eq!(error.error_message.as_deref(), Some("Failed to send"));
    assert_eq!(
        error.details.as_deref(),
        Some("Channel could not find the To address")
    );
}

#[test]
fn each_further_medium_is_a_message_of_its_own_kind() {
    let events = events(&fixture("twilio-media-several.form.txt"));
    let sid = "MM2b3c4d5e2b3c4d5e2b3c4d5e2b3c4d5e";
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e.data.message().unwrap().id.as_str())
        .collect();
    assert_eq!(
        ids,
        [sid.to_owned(), format!("{sid}-1"), format!("{sid}-2")]
    );
    let kinds: Vec<&str> = events.iter().map(|e| content(e).type_name()).collect();
    assert_eq!(kinds, ["image", "image", "video"]);
    let captions: Vec<Option<&str>> = events.iter().map(|e| content(e).preview()).collect();
    assert_eq!(captions, [Some("Three angles"), None, None]);
    let keys: std::collections::HashSet<_> = events.iter().map(|e| &e.dedup_key).collect();
    assert_eq!(keys.len(), 3);
}

#[test]
fn media_urls_are_read_whatever_num_media_says() {
    let body = with("twilio-image.form.txt", &[("NumMedia", Some("0"))]);
    let e = one(&body);
    let media = content(&e).media_ref().unwrap();
    assert_eq!(
        media.id.as_deref(),
        Some("ME5e6f7a8b5e6f7a8b5e6f7a8b5e6f7a8b")
    );
    assert!(
        media
            .url
            .unwrap()
            .starts_with("https://api.twilio.com/2010-04-01/Accounts/")
    );
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
}

#[test]
fn without_message_type_the_kind_comes_from_the_content_type() {
    for (mime, kind) in [
        ("image/jpeg", "image"),
        ("image/webp", "sticker"),
        ("video/mp4", "video"),
        ("audio/ogg", "audio"),
        ("application/pdf", "document"),
        ("text/vcard", "document"),
    ] {
        let body = with(
            "twilio-image.form.txt",
            &[("MessageType", None), ("MediaContentType0", Some(mime))],
        );
        assert_eq!(content(&one(&body)).type_name(), kind, "{mime}");
    }
    let location = with("twilio-location.form.txt", &[("MessageType", None)]);
    assert_eq!(content(&one(&location)).type_name(), "location");
    let button = with("twilio-button.form.txt", &[("MessageType", None)]);
    assert_eq!(content(&one(&button)).type_name(), "button");
    let list = with("twilio-interactive-list.form.txt", &[("MessageType", None)]);
    assert_eq!(content(&one(&list)).type_name(), "interactive");
}

#[test]
fn a_kind_whose_fields_are_missing_is_unknown_with_every_parameter() {
    for (file, removed) in [
        ("twilio-image.form.txt", "MediaUrl0"),
        ("twilio-location.form.txt", "Latitude"),
        ("twilio-button.form.txt", "ButtonPayload"),
    ] {
        let mut changes = vec![(removed, None)];
        if file == "twilio-button.form.txt" {
            changes.push(("ButtonText", None));
        }
        let e = one(&with(file, &changes));
        let MessageContent::Unknown(unknown) = content(&e) else {
            panic!("{file}: {:?}", content(&e));
        };
        assert_eq!(
            unknown.raw["MessageSid"],
            Value::String(e.data.message().unwrap().id.clone())
        );
        assert!(unknown.raw.get(removed).is_none());
    }
    let bad = with("twilio-location.form.txt", &[("Latitude", Some("north"))]);
    assert_eq!(content(&one(&bad)).type_name(), "unknown");
}

#[test]
fn the_location_label_is_its_name() {
    let e = one(&fixture("twilio-location.form.txt"));
    let MessageContent::Location(l) = content(&e) else {
        panic!("{:?}", content(&e));
    };
    assert!((l.latitude - 37.483_307).abs() < 1e-9 && (l.longitude + 122.148_981).abs() < 1e-9);
    assert_eq!(l.name.as_deref(), Some("Meta HQ"));
    assert_eq!(
        l.address.as_deref(),
        Some("1 Hacker Way, Menlo Park, CA 94025")
    );
}

#[test]
fn buttons_and_list_rows_keep_payload_and_title() {
    let e = one(&fixture("twilio-button.form.txt"));
    let MessageContent::Button(b) = content(&e) else {
        panic!("{:?}", content(&e));
    };
    assert_eq!(b.payload.as_deref(), Some("confirm_order_1042"));
    assert_eq!(b.text.as_deref(), Some("Yes, confirm"));
    let e = one(&fixture("twilio-interactive-button.form.txt"));
    let MessageContent::Interactive(i) = content(&e) else {
        panic!("{:?}", content(&e));
    };
    assert_eq!(
        (i.kind.as_str(), i.id.as_deref()),
        ("button_reply", Some("track_order"))
    );
    let e = one(&fixture("twilio-interactive-list.form.txt"));
    let MessageContent::Interactive(i) = content(&e) else {
        panic!("{:?}", content(&e));
    };
    assert_eq!(
        (i.kind.as_str(), i.id.as_deref()),
        ("list_reply", Some("ship_express"))
    );
    assert_eq!(i.title.as_deref(), Some("Express shipping"));
}

#[test]
fn forwarding_flags_are_set_only_when_true() {
    let forwarded = one(&fixture("twilio-forwarded.form.txt"));
    let context = forwarded.data.message().unwrap().context.clone().unwrap();
    assert_eq!(
        (context.forwarded, context.frequently_forwarded),
        (Some(true), Some(true))
    );
    let plain = one(&with(
        "twilio-reply-context.form.txt",
        &[("OriginalRepliedMessageSid", None)],
    ));
    assert_eq!(plain.data.message().unwrap().context, None);
}

#[test]
fn a_referral_needs_more_than_an_empty_media_count() {
    let plain = one(&fixture("twilio-inbound.form.txt"));
    assert_eq!(plain.data.message().unwrap().referral, None);
    let blank = one(&with(
        "twilio-inbound.form.txt",
        &[
            ("ReferralCtwaClid", Some("")),
            ("ReferralSourceId", Some("")),
        ],
    ));
    assert_eq!(blank.data.message().unwrap().referral, None);
    let ad = one(&fixture("twilio-referral-ctwa.form.txt"));
    let referral = ad.data.message().unwrap().referral.clone().unwrap();
    assert_eq!(referral.source_type.as_deref(), Some("ad"));
    assert_eq!(referral.media_type.as_deref(), Some("image"));
    assert!(referral.ctwa_clid.unwrap().starts_with("Aff-"));
    assert_eq!(
        referral.extra.unwrap()["ReferralMediaId"],
        "1234567890123456"
    );
}

#[test]
fn a_json_body_reads_like_the_same_form_body() {
    let form = fixture("twilio-inbound.form.txt");
    let object: serde_json::Map<String, Value> = form_urlencoded::parse(&form)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let mut object = object;
    object.insert("NumMedia".into(), json!(0));
    object.insert("Unrelated".into(), Value::Null);
    let json = format!("  \n{}", Value::Object(object));
    let (a, b) = (one(&form), one(json.as_bytes()));
    assert_eq!(a.dedup_key, b.dedup_key);
    assert_eq!(a.data, b.data);
    assert_eq!(
        content(&one(&fixture("twilio-text.json"))).preview(),
        Some("Hi over JSON")
    );
}

#[test]
fn bodies_that_are_not_messages_are_passed_through_whole() {
    for body in [
        &b""[..],
        b"{\"MessageSid\": ",
        b"[1, 2]",
        b"{}",
        b"\xff\xfe\x00garbage",
        b"Body=hello&From=whatsapp%3A%2B15550001111",
    ] {
        let e = one(body);
        assert_eq!(e.event_type, EventType::ProviderEvent, "{body:?}");
        assert!(
            e.dedup_key.starts_with("src-twilio:twilio:unknown:"),
            "{}",
            e.dedup_key
        );
    }
    let e = one(&fixture("twilio-not-a-message.form.txt"));
    assert_eq!(
        serde_json::to_value(&e.data).unwrap()["raw"]["Level"],
        "ERROR"
    );
}

#[test]
fn a_retried_webhook_yields_the_same_dedup_keys() {
    for file in [
        "twilio-media-several.form.txt",
        "twilio-status-failed.form.txt",
        "twilio-not-a-message.form.txt",
    ] {
        let (a, b) = (events(&fixture(file)), events(&fixture(file)));
        let keys = |e: &[InboundEvent]| e.iter().map(|e| e.dedup_key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b), "{file}");
    }
}

#[test]
fn addresses_lose_their_channel_prefix_and_plus() {
    assert_eq!(
        Address::parse("whatsapp:+15550001111"),
        Some(Address::Phone("15550001111".into()))
    );
    assert_eq!(
        Address::parse("+15550001111"),
        Some(Address::Phone("15550001111".into()))
    );
    assert_eq!(
        Address::parse("whatsapp:US.13491208655302741918"),
        Some(Address::User("US.13491208655302741918".into()))
    );
    assert_eq!(Address::parse("whatsapp:"), None);
    assert_eq!(Address::parse("  "), None);
}

#[test]
fn every_truncation_of_every_fixture_parses_without_panicking() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/providers");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.starts_with("twilio-") {
            continue;
        }
        let body = fixture(&name);
        for end in 0..=body.len() {
            let got = events(&body[..end]);
            assert!(!got.is_empty(), "{name} cut at {end} produced nothing");
        }
    }
}

/// Names the parser reads, for generating bodies that reach every branch.
const NAMES: &[&str] = &[
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
    "MessageType",
    "From",
    "To",
    "WaId",
    "ExternalUserId",
    "ProfileName",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "MediaUrl1",
    "MediaUrl99999999999",
    "Latitude",
    "Longitude",
    "ButtonPayload",
    "ButtonText",
    "ListId",
    "OriginalRepliedMessageSid",
    "OriginalRepliedMessageSender",
    "ReferralNumMedia",
    "ReferralMediaContentType",
    "ReferralMediaUrl",
    "ErrorCode",
    "ChannelStatusMessage",
];

const VALUES: &[&str] = &[
    "",
    "SM1b2c3d4e5f60718293a4b5c6d7e8f901",
    "whatsapp:+15550001111",
    "whatsapp:US.1349",
    "whatsapp:",
    ":",
    "read",
    "received",
    "image",
    "video/mp4",
    "interactive",
    "location",
    "1e309",
    "-0",
    "99999999999999999999999",
    "true",
    "\u{0}",
    "%ZZ",
];

/// A parameter value: one the parser reacts to, or any text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(VALUES).prop_map(str::to_owned),
        any::<String>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let source = crate::ids::SourceId::parse("s").unwrap();
        let got = crate::providers::normalize(&source, Provider::Twilio, &body, chrono::Utc::now());
        prop_assert!(got.is_ok_and(|e| !e.is_empty()));
    }

    #[test]
    fn never_panics_on_any_mix_of_known_parameters(
        pairs in prop::collection::vec((prop::sample::select(NAMES), value()), 0..24),
        as_json in any::<bool>(),
    ) {
        let body = if as_json {
            let object = pairs.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v)));
            Value::Object(object.collect()).to_string()
        } else {
            form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
        };
        prop_assert!(!events(body.as_bytes()).is_empty());
    }
}
