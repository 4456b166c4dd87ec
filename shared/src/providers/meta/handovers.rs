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
            out.push(
                self.ctx
                    .passthrough(self.source.clone(), HANDOVERS, value.get().as_bytes()),
            );
            return;
        };
        let party = |k: &str| v.get(k).and_then(Value::as_object);
        let text = |o: Option<&Map<String, Value>>, k: &str| {
            o.and_then(|o| o.get(k)).cloned().and_then(value_to_string)
        };
        // The business number: `recipient` on WhatsApp, `metadata` as on message values.
        let (recipient, metadata) = (party("recipient"), party("metadata"));
        let mut source = self.source.clone();
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
            source,
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
                        EventBody::Notification(n),
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
            out.extend(vctx.emit(event_type, key, at, EventBody::Conversation(body)));
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
