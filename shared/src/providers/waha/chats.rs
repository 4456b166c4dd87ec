//! Chat state: `presence.update` (online, typing…) and `chat.archive`.

use serde_json::Value;

use super::WahaCtx;
use super::notifications::{text_at, time_at};
use super::parties::{customer_profile, phone_of};
use crate::model::{EventType, NotificationData, Participant, Subject, SubjectKind};
use crate::providers::lenient::{unix_time, value_to_f64, value_to_string};

impl WahaCtx<'_> {
    /// `presence.update`: the presences of a chat's members.
    pub(super) fn presence_update(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        n.chat_id = text_at(raw, "/id");
        let presences = raw.pointer("/presences").and_then(Value::as_array);
        n.participants = presences
            .map(|ps| ps.iter().map(presence).collect())
            .unwrap_or_default();
        n.kind = n.participants.first().and_then(|p| p.status.clone());
        n.status.clone_from(&n.kind);
        n.contact = n.chat_id.as_deref().and_then(customer_profile);
        EventType::PresenceUpdated
    }

    /// `chat.archive`: a chat archived or unarchived.
    pub(super) fn chat_archive(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        let time = |p: &str| time_at(raw, p);
        n.chat_id = s("/id");
        let archived = raw.pointer("/archived").and_then(Value::as_bool);
        n.status = archived.map(|a| if a { "archived" } else { "unarchived" }.to_owned());
        n.kind.clone_from(&n.status);
        n.occurred_at = time("/timestamp");
        n.contact = n.chat_id.as_deref().and_then(customer_profile);
        n.subject = Some(Subject::new(SubjectKind::Chat, n.chat_id.clone()));
        EventType::ChatArchiveUpdated
    }
}

fn presence(p: &Value) -> Participant {
    let s = |k: &str| p.get(k).cloned().and_then(value_to_string);
    let id = s("participant");
    Participant {
        phone_number: id.as_deref().and_then(phone_of),
        id,
        status: s("lastKnownPresence"),
        last_seen: p.get("lastSeen").and_then(value_to_f64).and_then(unix_time),
        ..Participant::default()
    }
}
