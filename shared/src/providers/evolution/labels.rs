//! Labels (WhatsApp Business): `labels.edit` (a label created, changed or `deleted`) and
//! `labels.association` (a label put on or taken off a chat).

use serde_json::Value;
use serde_json::value::RawValue;

use super::fields::text;
use super::identity::{Person, canonical_jid};
use super::{EvoCtx, value};
use crate::model::{EventType, InboundEvent, Subject, SubjectKind};

impl EvoCtx<'_> {
    /// `labels.edit`: `{id, name, color, deleted, predefinedId}`.
    pub(super) fn label(&self, raw: &RawValue) -> Option<InboundEvent> {
        let v = value(raw)?;
        let mut n = self.notification(&v);
        let mut subject = Subject::new(SubjectKind::Label, Some(text(&v, "id")?));
        subject.name = text(&v, "name");
        n.subject = Some(subject);
        // WhatsApp's colour index (0-19), as Evolution sends it.
        n.status = text(&v, "color");
        let deleted = v.get("deleted").and_then(Value::as_bool) == Some(true);
        let (kind, event_type) = if deleted {
            ("deleted", EventType::LabelDeleted)
        } else {
            ("upsert", EventType::LabelUpserted)
        };
        n.kind = Some(kind.to_owned());
        Some(self.notify(event_type, self.item_key(raw), n))
    }

    /// `labels.association`: `{type: "add" | "remove", chatId, labelId}`.
    pub(super) fn label_association(&self, raw: &RawValue) -> Option<InboundEvent> {
        let v = value(raw)?;
        let mut n = self.notification(&v);
        n.subject = Some(Subject::new(SubjectKind::Label, Some(text(&v, "labelId")?)));
        let chat = text(&v, "chatId");
        let person = Person::from_jids([chat.as_deref()], None);
        n.chat_id = person.jid().or_else(|| chat.as_deref().map(canonical_jid));
        n.contact = person.profile(None);
        let (kind, event_type) = match text(&v, "type").as_deref() {
            Some("add") => ("added", EventType::LabelChatAdded),
            Some("remove") => ("removed", EventType::LabelChatRemoved),
            _ => return None,
        };
        n.kind = Some(kind.to_owned());
        Some(self.notify(event_type, self.item_key(raw), n))
    }
}
