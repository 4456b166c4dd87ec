//! Call events: `call.received`, `call.accepted` and `call.rejected`.

use serde_json::Value;

use super::WahaCtx;
use super::notifications::{text_at, time_at};
use super::parties::customer_profile;
use crate::model::{EventType, NotificationData, Subject, SubjectKind};

impl WahaCtx<'_> {
    /// An incoming call, or one accepted or rejected.
    pub(super) fn call_event(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        let time = |p: &str| time_at(raw, p);
        let suffix = self.event_suffix();
        n.kind.clone_from(&suffix);
        n.subject = Some(Subject::new(SubjectKind::Call, s("/id")));
        n.occurred_at = time("/timestamp");
        n.status = raw
            .pointer("/isVideo")
            .and_then(Value::as_bool)
            .map(|v| if v { "video" } else { "voice" }.to_owned());
        n.chat_id = s("/from");
        n.contact = n.chat_id.as_deref().and_then(customer_profile);
        match self.event {
            "call.received" => EventType::CallReceived,
            "call.accepted" => EventType::CallAccepted,
            _ => EventType::CallRejected,
        }
    }
}
