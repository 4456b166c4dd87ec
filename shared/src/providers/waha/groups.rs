//! Group events: `group.v2.join`/`group.join`, `group.v2.leave`/`group.leave`,
//! `group.v2.update`, `group.v2.participants` and `group.v2.participants.join-request`.

use serde_json::Value;

use super::WahaCtx;
use super::notifications::{text_at, time_at};
use super::parties::phone_of;
use crate::model::{EventType, NotificationData, Participant, Subject, SubjectKind};
use crate::providers::lenient::value_to_string;

impl WahaCtx<'_> {
    /// A join, leave, update, participant change or join request, with the members involved.
    pub(super) fn group_event(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        let time = |p: &str| time_at(raw, p);
        let mut subject = Subject::new(SubjectKind::Group, s("/group/id").or_else(|| s("/id")));
        subject.name = s("/group/subject");
        n.chat_id = subject.id.clone();
        n.subject = Some(subject);
        n.occurred_at = time("/timestamp");
        let members = raw
            .pointer("/participants")
            .or_else(|| raw.pointer("/group/participants"));
        n.participants = members
            .and_then(Value::as_array)
            .map(|ps| ps.iter().map(group_member).collect())
            .unwrap_or_default();
        match self.event {
            "group.v2.join" | "group.join" => {
                n.kind = Some("join".to_owned());
                EventType::GroupJoined
            }
            "group.v2.leave" | "group.leave" => {
                n.kind = Some("leave".to_owned());
                EventType::GroupLeft
            }
            "group.v2.update" => {
                n.kind = Some("update".to_owned());
                EventType::GroupUpdated
            }
            "group.v2.participants" => {
                n.kind = s("/type");
                EventType::GroupParticipantsUpdated
            }
            _ => {
                n.kind = s("/action").map(|a| format!("join_request_{a}"));
                n.participants = vec![Participant {
                    id: s("/requesterId"),
                    phone_number: s("/requesterPn").and_then(|p| phone_of(&p)),
                    ..Participant::default()
                }];
                EventType::GroupParticipantsUpdated
            }
        }
    }
}

fn group_member(p: &Value) -> Participant {
    let s = |k: &str| p.get(k).cloned().and_then(value_to_string);
    let id = s("id");
    Participant {
        phone_number: s("pn")
            .and_then(|pn| phone_of(&pn))
            .or_else(|| id.as_deref().and_then(phone_of)),
        id,
        role: s("role"),
        ..Participant::default()
    }
}
