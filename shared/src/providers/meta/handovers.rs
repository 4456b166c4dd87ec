//! Meta's hand-over protocol: the `messaging_handovers` and `standby` fields, by which WhatsApp
//! Conversation Routing (and, before it, the Messenger Platform) tells the apps sharing a number
//! who owns each customer's thread.
//!
//! `messaging_handovers`: one change value names a thread (`sender`, the customer; `recipient`,
//! the business number) and what happened to its control. WhatsApp writes `control_passed` /
//! `control_taken` (with `type` naming which); the Messenger Platform's names, which the
//! protocol started with, are `pass_thread_control`, `take_thread_control`,
//! `request_thread_control` and `app_roles`. Both spellings are read:
//! - passed or taken → `whatsapp.conversation.transferred`: `from_agent` the previous owner
//!   (its app id, or the role WhatsApp names instead), `to_agent` the new one, `notes` the
//!   `metadata` the app attached;
//! - `request_thread_control` → `whatsapp.conversation.handoff_requested`: `requested_by` the
//!   requesting app, `notes` its `metadata`;
//! - `app_roles` (which app holds which role; about no thread) → `whatsapp.provider.event` of
//!   kind `app_roles`.
//!
//! Each event keeps the whole change value as sent (`raw`) and the customer (`contact`), by which
//! the track stage attaches and updates their conversation. A value with none of these is passed
//! through whole, never dropped. Dedup keys hash the value's exact bytes with the account and
//! number, scoped by source like every Meta item.
//!
//! `standby`: copies of a thread's traffic for an app that does not own it (Meta Business Agent
//! answering, another partner holding it), in the `messages` value shape. They are normalized
//! as messages and statuses like any (the customer's conversation goes on while another app
//! answers), under the same dedup keys as on `messages`, so a copy that also comes there is one
//! event; each message is marked `standby: true`, meaning: context, not to be answered
//! (answering takes the thread over).
//!
//! Must not: decide who owns a thread now (the events say what Meta said), or look up state.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{EntryCtx, MetaContact, ValueCtx, object};
use crate::model::{
    ConversationBody, EventBody, EventType, Handoff, InboundEvent, NotificationData, Transfer,
};
use crate::providers::lenient::{self, value_to_string};

/// The control objects of a `messaging_handovers` value, in the order their events go out.
const CONTROLS: &[&str] = &[
    "control_passed",
    "pass_thread_control",
    "control_taken",
    "take_thread_control",
    "request_thread_control",
    "app_roles",
];

/// The field whose values carry hand-overs.
pub(super) const HANDOVERS: &str = "messaging_handovers";
/// The field whose values carry copies of threads another app owns.
pub(super) const STANDBY: &str = "standby";

impl EntryCtx<'_> {
    /// A `messaging_handovers` value: one event per control object in it.
    pub(super) fn handovers(&self, value: &RawValue, out: &mut Vec<InboundEvent>) {
        let Some(v) = object(value) else {
            out.push(self.ctx.passthrough(
                self.source().clone(),
                HANDOVERS,
                value.get().as_bytes(),
            ));
            return;
        };
        let party = |k: &str| v.get(k).and_then(Value::as_object);
        let text = |o: Option<&Map<String, Value>>, k: &str| {
            o.and_then(|o| o.get(k)).cloned().and_then(value_to_string)
        };
        // The business number: `recipient` on WhatsApp, `metadata` as on message values.
        let (recipient, metadata) = (party("recipient"), party("metadata"));
        let mut source = crate::model::SourceInfo::clone(self.source());
        source.business_id =
            text(recipient, "phone_number_id").or_else(|| text(metadata, "phone_number_id"));
        source.business_phone_number = text(recipient, "display_phone_number")
            .or_else(|| text(metadata, "display_phone_number"));
        let contacts = v
            .get("contacts")
            .and_then(|c| serde_json::from_value::<Vec<Value>>(c.clone()).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| serde_json::from_value::<MetaContact>(c).ok())
            .collect();
        let vctx = ValueCtx {
            entry: self,
            field: HANDOVERS,
            source: std::sync::Arc::new(source),
            contacts,
        };
        // The customer: `sender` (WhatsApp: phone number and user id; Messenger: a
        // page-scoped id, which is a user id too).
        let sender = party("sender");
        let wa_id = text(sender, "phone_number").or_else(|| text(sender, "wa_id"));
        let user_id = text(sender, "user_id").or_else(|| text(sender, "id"));
        let contact = vctx.profile(wa_id.as_deref(), user_id.as_deref());
        let at = v
            .get("timestamp")
            .and_then(lenient::value_to_f64)
            .and_then(lenient::unix_time)
            .or(self.time);
        let raw = Value::Object(v.clone());
        let before = out.len();
        for kind in CONTROLS {
            let Some(control) = v.get(*kind) else {
                continue;
            };
            let key = vctx.content_key(kind, value);
            let c = control.as_object();
            let s = |k: &str| text(c, k);
            let body = match *kind {
                "app_roles" => {
                    let mut n = NotificationData::new(HANDOVERS, raw.clone());
                    (n.kind, n.occurred_at) = (Some((*kind).to_owned()), at);
                    out.extend(vctx.emit(
                        EventType::ProviderEvent,
                        key,
                        at,
                        EventBody::notification(n),
                    ));
                    continue;
                }
                "request_thread_control" => (
                    EventType::ConversationHandoffRequested,
                    ConversationBody {
                        handoff: Some(Handoff {
                            reason: None,
                            requested_by: s("requested_owner_app_id")
                                .or_else(|| owner(c, "requested_owner")),
                            team_id: None,
                            notes: metadata_text(c),
                            requested_at: at,
                        }),
                        ..ConversationBody::default()
                    },
                ),
                _ => (
                    EventType::ConversationTransferred,
                    ConversationBody {
                        transfer: Some(Transfer {
                            from_agent: owner(c, "previous_owner"),
                            from_team: None,
                            to_agent: owner(c, "new_owner"),
                            to_team: None,
                            notes: metadata_text(c),
                        }),
                        ..ConversationBody::default()
                    },
                ),
            };
            let (event_type, mut body) = body;
            body.contact.clone_from(&contact);
            body.raw = Some(raw.clone());
            out.extend(vctx.emit(event_type, key, at, EventBody::conversation(body)));
        }
        if out.len() == before {
            // Nothing this parser knows (a new kind of notification): passed through whole.
            out.push(vctx.ctx().passthrough(
                vctx.source.clone(),
                HANDOVERS,
                value.get().as_bytes(),
            ));
        }
    }
}

/// The owner named `{name}_app_id`, or `{name}` as text or as an object with an app id or a
/// role (WhatsApp names roles, not apps, of other partners), or `{name}_role`.
fn owner(control: Option<&Map<String, Value>>, name: &str) -> Option<String> {
    let c = control?;
    let get = |k: &str| c.get(k).cloned().and_then(value_to_string);
    get(&format!("{name}_app_id"))
        .or_else(|| match c.get(name) {
            Some(Value::Object(o)) => ["app_id", "id", "role"]
                .iter()
                .find_map(|k| o.get(*k).cloned().and_then(value_to_string)),
            Some(v) => value_to_string(v.clone()),
            None => None,
        })
        .or_else(|| get(&format!("{name}_role")))
        .filter(|s| !s.is_empty())
}

/// `metadata` as text: a string as sent, anything else (an object some apps send) as JSON.
fn metadata_text(control: Option<&Map<String, Value>>) -> Option<String> {
    match control?.get("metadata")? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Marks a message normalized from a `standby` value as such.
pub(super) fn mark_standby(event: &mut InboundEvent) {
    if let EventBody::Message(body) = &mut event.data.body {
        body.message.standby = true;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::model::{ConversationBody, EventBody, EventType, InboundEvent, Provider};
    use crate::providers::test_support::{fixture, normalize};

    fn one(name: &str) -> InboundEvent {
        let mut events = normalize(Provider::Meta, &fixture(name));
        assert_eq!(events.len(), 1, "{name}");
        events.remove(0)
    }

    fn conversation(e: &InboundEvent) -> &ConversationBody {
        match &e.data.body {
            EventBody::Conversation(b) => b,
            other => panic!("{}: {other:?}", e.event_type),
        }
    }

    /// A `messaging_handovers` webhook with `value` as its one change.
    fn handovers(value: &Value) -> Vec<InboundEvent> {
        let body = json!({"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398",
            "changes": [{"field": "messaging_handovers", "value": value}]
        }]});
        normalize(Provider::Meta, body.to_string().as_bytes())
    }

    #[test]
    fn a_pass_is_a_transfer_from_the_previous_owner_app_to_the_new_one() {
        let e = one("meta-handover-pass-thread-control.json");
        assert_eq!(e.event_type, EventType::ConversationTransferred);
        let b = conversation(&e);
        let t = b.transfer.as_ref().unwrap();
        assert_eq!(t.from_agent.as_deref(), Some("1290361958702116"));
        assert_eq!(t.to_agent.as_deref(), Some("874512307761129"));
        assert_eq!(
            t.notes.as_deref(),
            Some(r#"{"queue":"billing","order":"1042"}"#)
        );
        assert_eq!(
            b.contact.as_ref().unwrap().wa_id.as_deref(),
            Some("15550001111")
        );
        assert_eq!(
            e.data.source.business_id.as_deref(),
            Some("106540352242922")
        );
        // Milliseconds, as the Messenger Platform writes them.
        assert_eq!(e.occurred_at.unwrap().timestamp(), 1_730_093_101);
        let raw = b.raw.as_ref().unwrap();
        assert_eq!(
            raw["pass_thread_control"]["new_owner_app_id"],
            "874512307761129"
        );
        assert_eq!(raw["sender"]["phone_number"], "15550001111");
        assert!(e.data.conversation.is_none(), "track attaches it");
    }

    #[test]
    fn a_take_names_app_ids_given_as_numbers_and_the_customers_profile() {
        let e = one("meta-handover-take-thread-control.json");
        assert_eq!(e.event_type, EventType::ConversationTransferred);
        let b = conversation(&e);
        let t = b.transfer.as_ref().unwrap();
        assert_eq!(t.from_agent.as_deref(), Some("874512307761129"));
        assert_eq!(t.to_agent.as_deref(), Some("1290361958702116"));
        assert_eq!(
            b.contact.as_ref().unwrap().name.as_deref(),
            Some("Alice Example")
        );
    }

    #[test]
    fn whatsapp_control_passed_and_taken_are_transfers_by_role_or_unnamed() {
        let passed = one("meta-handover-control-passed.json");
        assert_eq!(passed.event_type, EventType::ConversationTransferred);
        let t = conversation(&passed).transfer.clone().unwrap();
        assert_eq!((t.from_agent, t.to_agent), (None, None), "never invented");
        assert!(t.notes.unwrap().starts_with("Customer asked for a refund"));

        let taken = one("meta-handover-control-taken.json");
        let b = conversation(&taken);
        let t = b.transfer.as_ref().unwrap();
        assert_eq!(t.from_agent.as_deref(), Some("ai_agent"));
        assert_eq!(t.to_agent.as_deref(), Some("escalation_partner"));
        let contact = b.contact.as_ref().unwrap();
        assert_eq!(contact.user_id.as_deref(), Some("US.13491208655302741918"));
        assert_eq!(contact.wa_id.as_deref(), Some("15550001111"));
    }

    #[test]
    fn a_request_for_control_is_a_handoff_request_by_the_requesting_app() {
        let e = one("meta-handover-request-thread-control.json");
        assert_eq!(e.event_type, EventType::ConversationHandoffRequested);
        let b = conversation(&e);
        let h = b.handoff.as_ref().unwrap();
        assert_eq!(h.requested_by.as_deref(), Some("874512307761129"));
        assert_eq!(h.notes.as_deref(), Some("Customer typed 'agent' twice"));
        assert_eq!(h.requested_at, e.occurred_at);
        assert_eq!(h.reason, None, "Meta sends none");
        assert!(b.transfer.is_none());
    }

    #[test]
    fn app_roles_are_a_typed_pass_through_with_the_roles() {
        let e = one("meta-handover-app-roles.json");
        assert_eq!(e.event_type, EventType::ProviderEvent);
        match &e.data.body {
            EventBody::Notification(n) => {
                assert_eq!(n.provider_event, "messaging_handovers");
                assert_eq!(n.kind.as_deref(), Some("app_roles"));
                assert_eq!(
                    n.raw["app_roles"]["1290361958702116"][0],
                    "primary_receiver"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hand_over_dedup_keys_are_scoped_by_source_stable_and_distinct_per_item() {
        let names = [
            "meta-handover-control-passed.json",
            "meta-handover-control-taken.json",
            "meta-handover-pass-thread-control.json",
            "meta-handover-take-thread-control.json",
            "meta-handover-request-thread-control.json",
            "meta-handover-app-roles.json",
        ];
        let keys: Vec<String> = names.iter().map(|n| one(n).dedup_key).collect();
        for (name, key) in names.iter().zip(&keys) {
            assert!(
                key.starts_with("src-meta:meta:messaging_handovers."),
                "{key}"
            );
            assert_eq!(&one(name).dedup_key, key, "a retried webhook dedups");
        }
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        // Another source's copy of the same item is its own.
        let other = crate::providers::normalize(
            &crate::ids::SourceId::parse("src-two").unwrap(),
            Provider::Meta,
            &fixture(names[2]),
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(
            other[0].dedup_key.strip_prefix("src-two:"),
            keys[2].strip_prefix("src-meta:")
        );
    }

    #[test]
    fn one_value_with_several_controls_gives_one_event_each_in_order() {
        let events = handovers(&json!({
            "messaging_product": "whatsapp",
            "recipient": {"phone_number_id": "106540352242922"},
            "sender": {"phone_number": "15550001111"},
            "timestamp": "1730093101",
            "request_thread_control": {"requested_owner_app_id": "874512307761129"},
            "pass_thread_control": {"new_owner_app_id": "874512307761129"}
        }));
        let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            [
                EventType::ConversationTransferred,
                EventType::ConversationHandoffRequested
            ]
        );
        assert_ne!(events[0].dedup_key, events[1].dedup_key);
    }

    #[test]
    fn what_is_not_understood_is_passed_through_whole() {
        for value in [
            json!({"messaging_product": "whatsapp", "sender": {"phone_number": "1"},
                   "control_renamed": {"metadata": "x"}}),
            json!("not an object"),
            json!([{"pass_thread_control": {}}]),
        ] {
            let events = handovers(&value);
            assert_eq!(events.len(), 1, "{value}");
            assert_eq!(events[0].event_type, EventType::ProviderEvent, "{value}");
            match &events[0].data.body {
                EventBody::Notification(n) => {
                    assert_eq!(n.provider_event, "messaging_handovers");
                    assert_eq!(n.raw, value);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn odd_owner_shapes_are_read_and_empty_ones_are_none() {
        let events = handovers(&json!({
            "sender": {"id": "PSID-42"},
            "take_thread_control": {
                "previous_owner": "ai_agent",
                "new_owner": {"app_id": 1290361958702116_u64},
                "metadata": {"ticket": 7}
            },
            "pass_thread_control": {"previous_owner_app_id": "", "new_owner_role": "app"}
        }));
        let t: Vec<_> = events
            .iter()
            .map(|e| conversation(e).transfer.clone().unwrap())
            .collect();
        assert_eq!(t[0].from_agent, None);
        assert_eq!(t[0].to_agent.as_deref(), Some("app"));
        assert_eq!(t[1].from_agent.as_deref(), Some("ai_agent"));
        assert_eq!(t[1].to_agent.as_deref(), Some("1290361958702116"));
        assert_eq!(t[1].notes.as_deref(), Some(r#"{"ticket":7}"#));
        let contact = conversation(&events[0]).contact.clone().unwrap();
        assert_eq!(contact.user_id.as_deref(), Some("PSID-42"));
    }

    #[test]
    fn standby_copies_are_messages_marked_standby_under_the_keys_of_messages() {
        let standby = normalize(Provider::Meta, &fixture("meta-standby.json"));
        let types: Vec<_> = standby.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            [
                EventType::MessageReceived,
                EventType::MessageSent,
                EventType::MessageDelivered
            ]
        );
        assert!(standby.iter().all(|e| e.data.message().unwrap().standby));
        // The same value on `messages`: the same events, unmarked, under the same keys, so a
        // copy that comes on both fields is one event.
        let text = String::from_utf8(fixture("meta-standby.json"))
            .unwrap()
            .replace(r#""field": "standby""#, r#""field": "messages""#);
        let owned = normalize(Provider::Meta, text.as_bytes());
        assert!(owned.iter().all(|e| !e.data.message().unwrap().standby));
        let keys = |es: &[InboundEvent]| es.iter().map(|e| e.dedup_key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&standby), keys(&owned));
        let json = serde_json::to_value(&owned[0].data).unwrap();
        assert!(
            json["message"].get("standby").is_none(),
            "absent unless set"
        );
    }
}
