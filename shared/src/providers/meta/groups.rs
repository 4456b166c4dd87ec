//! `groups[]` items: Groups API lifecycle, participant and settings updates.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ValueCtx, decode_owned, raw_value};
use crate::model::{
    EventBody, EventType, InboundEvent, NotificationData, Participant, Subject, SubjectKind,
};
use crate::providers::lenient::{opt_string, opt_unix_time};

impl ValueCtx<'_> {
    /// Groups API lifecycle, participant and settings updates.
    pub(super) fn group(&self, raw: &RawValue) -> Option<InboundEvent> {
        let g: GroupIn = decode_owned(raw)?;
        let kind = g.kind.clone()?;
        let event_type = if kind.contains("participant") || kind.contains("join_request") {
            EventType::GroupParticipantsUpdated
        } else {
            EventType::GroupUpdated
        };
        let mut n = NotificationData::new(self.field, raw_value(raw));
        (n.kind, n.occurred_at) = (Some(kind), g.timestamp);
        let mut subject = Subject::new(SubjectKind::Group, g.group_id.clone());
        subject.name = g.subject.clone();
        n.subject = Some(subject);
        n.chat_id = g.group_id.clone();
        n.participants = g
            .added_participants
            .iter()
            .chain(&g.removed_participants)
            .map(|p| Participant {
                id: p.user_id.clone().or(p.wa_id.clone()).or(p.input.clone()),
                phone_number: p.wa_id.clone(),
                ..Participant::default()
            })
            .collect();
        let key = self.content_key("groups", raw);
        self.emit(event_type, key, g.timestamp, EventBody::notification(n))
    }
}

#[derive(Deserialize)]
struct GroupIn {
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    subject: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    added_participants: Vec<GroupMemberIn>,
    #[serde(default)]
    removed_participants: Vec<GroupMemberIn>,
}

#[derive(Deserialize)]
struct GroupMemberIn {
    #[serde(default, deserialize_with = "opt_string")]
    input: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    wa_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    user_id: Option<String>,
}
