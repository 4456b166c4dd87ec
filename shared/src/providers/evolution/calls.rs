//! `call`: Baileys' `WACallEvent` (`{chatId, from, id, date, status, isVideo, isGroup,
//! groupJid}`), one per change of a call's status.

use serde_json::value::RawValue;

use super::fields::{text, time};
use super::identity::{Person, canonical_jid};
use super::{EvoCtx, value};
use crate::model::{EventType, InboundEvent, Subject, SubjectKind};

impl EvoCtx<'_> {
    /// A call offered (received), accepted, rejected, ended or timed out.
    pub(super) fn call(&self, raw: &RawValue) -> Option<InboundEvent> {
        let v = value(raw)?;
        let id = text(&v, "id")?;
        let status = text(&v, "status")?;
        let mut n = self.notification(&v);
        n.subject = Some(Subject::new(SubjectKind::Call, Some(id.clone())));
        n.kind = Some(status.clone());
        n.status = v
            .get("isVideo")
            .and_then(serde_json::Value::as_bool)
            .map(|video| if video { "video" } else { "voice" }.to_owned());
        n.occurred_at = v.get("date").and_then(time);
        let caller = text(&v, "from");
        let chat = text(&v, "groupJid")
            .or_else(|| text(&v, "chatId"))
            .or(caller.clone());
        n.chat_id = chat.as_deref().map(canonical_jid);
        n.contact = Person::from_jids([caller.as_deref()], None).profile(None);
        let event_type = match status.as_str() {
            "offer" => EventType::CallReceived,
            "accept" => EventType::CallAccepted,
            "reject" => EventType::CallRejected,
            "timeout" | "terminate" => EventType::CallEnded,
            _ => EventType::CallUpdated,
        };
        let key = format!("evolution:{}:call:{id}:{status}", self.instance);
        Some(self.notify(event_type, key, n))
    }
}
