//! Label events: `label.upsert`, `label.deleted`, `label.chat.added` and `label.chat.deleted`.

use serde_json::Value;

use super::WahaCtx;
use super::notifications::text_at;
use super::parties::customer_profile;
use crate::model::{EventType, NotificationData, Subject, SubjectKind};

impl WahaCtx<'_> {
    /// `label.upsert`, `label.deleted`: a label created, changed or deleted.
    pub(super) fn label_event(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        let suffix = self.event_suffix();
        n.kind.clone_from(&suffix);
        let mut subject = Subject::new(SubjectKind::Label, s("/id"));
        subject.name = s("/name").filter(|name| !name.is_empty());
        n.subject = Some(subject);
        n.status = s("/colorHex").or_else(|| s("/color"));
        if self.event == "label.upsert" {
            EventType::LabelUpserted
        } else {
            EventType::LabelDeleted
        }
    }

    /// `label.chat.added`, `label.chat.deleted`: a label put on or taken off a chat.
    pub(super) fn label_chat_event(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        n.kind = Some(
            if self.event == "label.chat.added" {
                "added"
            } else {
                "removed"
            }
            .to_owned(),
        );
        let mut subject = Subject::new(SubjectKind::Label, s("/labelId"));
        subject.name = s("/label/name").filter(|name| !name.is_empty());
        n.subject = Some(subject);
        n.chat_id = s("/chatId");
        n.contact = n.chat_id.as_deref().and_then(customer_profile);
        if self.event == "label.chat.added" {
            EventType::LabelChatAdded
        } else {
            EventType::LabelChatRemoved
        }
    }
}
