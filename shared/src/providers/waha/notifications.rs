//! Everything that is not a message becomes one notification: the event name picks the topic
//! function that fills it in; the dedup key is the webhook id.

use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

use super::WahaCtx;
use crate::model::{EventBody, EventType, InboundEvent, NotificationData, Subject, SubjectKind};
use crate::providers::chat_id::WahaMessageId;
use crate::providers::content_key;
use crate::providers::lenient::{unix_time, value_to_f64, value_to_string};

impl WahaCtx<'_> {
    /// Everything that is not a message: sessions, groups, presence, polls, chats, calls, labels,
    /// event responses, engine events, and names this version does not know.
    pub(super) fn notification(&self, payload: &RawValue) -> Option<InboundEvent> {
        let raw: Value = serde_json::from_str(payload.get()).ok()?;
        let mut n = NotificationData::new(self.event, Value::Null);
        let event_type = match self.event {
            "session.status" => self.session_status(&raw, &mut n),
            "state.change" => self.state_change(&raw, &mut n),
            "engine.event" => self.engine_event(&raw, &mut n),
            "group.v2.join"
            | "group.join"
            | "group.v2.leave"
            | "group.leave"
            | "group.v2.update"
            | "group.v2.participants"
            | "group.v2.participants.join-request" => self.group_event(&raw, &mut n),
            "presence.update" => self.presence_update(&raw, &mut n),
            "poll.vote" | "poll.vote.failed" => self.poll_vote(&raw, &mut n),
            "chat.archive" => self.chat_archive(&raw, &mut n),
            "call.received" | "call.accepted" | "call.rejected" => self.call_event(&raw, &mut n),
            "label.upsert" | "label.deleted" => self.label_event(&raw, &mut n),
            "label.chat.added" | "label.chat.deleted" => self.label_chat_event(&raw, &mut n),
            "event.response" | "event.response.failed" => self.event_response(&raw, &mut n),
            "message.waiting" => self.message_waiting(&raw, &mut n),
            _ => self.other_event(&raw, &mut n),
        };
        n.raw = raw;
        let key = match &self.envelope.id {
            Some(id) => format!("waha:{}:{id}", self.session()),
            None => content_key(
                self.source.provider,
                self.event,
                &[self.session().as_bytes(), self.body],
            ),
        };
        let at = n.occurred_at;
        Some(self.emit(event_type, key, at, EventBody::notification(n)))
    }

    /// The last part of the event name: `received` of `call.received`.
    pub(super) fn event_suffix(&self) -> Option<String> {
        self.event.rsplit('.').next().map(str::to_owned)
    }

    /// `message.waiting`: a message whose content has not arrived yet (still ciphertext).
    fn message_waiting(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        n.kind = Some("waiting".to_owned());
        n.subject = Some(Subject::new(SubjectKind::Message, s("/id")));
        n.chat_id = s("/id")
            .and_then(|id| WahaMessageId::parse(&id))
            .map(|p| p.chat);
        EventType::ProviderEvent
    }

    /// Any other event name, kind from the payload's `type`, `status` or `event`.
    fn other_event(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        n.kind = s("/type").or_else(|| s("/status")).or_else(|| s("/event"));
        EventType::ProviderEvent
    }
}

/// The payload value at JSON pointer `p`, as a string.
pub(super) fn text_at(raw: &Value, p: &str) -> Option<String> {
    raw.pointer(p).cloned().and_then(value_to_string)
}

/// The payload value at JSON pointer `p`, as a time (seconds or milliseconds).
pub(super) fn time_at(raw: &Value, p: &str) -> Option<DateTime<Utc>> {
    raw.pointer(p).and_then(value_to_f64).and_then(unix_time)
}
