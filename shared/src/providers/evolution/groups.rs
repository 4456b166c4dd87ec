//! Groups: `groups.upsert` (the business's account joined or created a group, with its
//! metadata), `groups.update` (subject, description, settings) and `group-participants.update`
//! (members added, removed, promoted, demoted; the business's own removal is leaving).

use serde_json::Value;
use serde_json::value::RawValue;

use super::fields::text;
use super::identity::{Person, canonical_jid};
use super::{EvoCtx, Topic, value};
use crate::model::{EventType, InboundEvent, Participant, Subject, SubjectKind};

impl EvoCtx<'_> {
    /// A `GroupMetadata` (`groups.upsert`) or part of one (`groups.update`).
    pub(super) fn group(&self, topic: Topic, raw: &RawValue) -> Option<InboundEvent> {
        let v = value(raw)?;
        let id = text(&v, "id")?;
        let mut n = self.notification(&v);
        let mut subject = Subject::new(SubjectKind::Group, Some(canonical_jid(&id)));
        subject.name = text(&v, "subject");
        n.chat_id.clone_from(&subject.id);
        n.subject = Some(subject);
        n.participants = v
            .get("participants")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().filter_map(|p| member(p, None)).collect())
            .unwrap_or_default();
        let event_type = if topic == Topic::GroupsUpsert {
            n.kind = Some("join".to_owned());
            EventType::GroupJoined
        } else {
            n.kind = Some("update".to_owned());
            EventType::GroupUpdated
        };
        Some(self.notify(event_type, self.item_key(raw), n))
    }

    /// `group-participants.update`: `participants` are JIDs (or, from Baileys 7, objects), and
    /// Evolution adds `participantsData` with each one's phone number when it could find it.
    pub(super) fn participants(&self, raw: &RawValue) -> Option<InboundEvent> {
        let v = value(raw)?;
        let id = text(&v, "id")?;
        let action = text(&v, "action");
        let data = v.get("participantsData").and_then(Value::as_array);
        let mut n = self.notification(&v);
        n.participants = v
            .get("participants")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().filter_map(|p| member(p, data)).collect())
            .unwrap_or_default();
        let chat_id = canonical_jid(&id);
        n.chat_id = Some(chat_id.clone());
        n.subject = Some(Subject::new(SubjectKind::Group, Some(chat_id)));
        let me = self.business.phone.as_deref();
        let business_left = matches!(action.as_deref(), Some("remove" | "leave"))
            && n.participants
                .iter()
                .any(|p| me.is_some() && p.phone_number.as_deref() == me);
        n.kind = action;
        let event_type = if business_left {
            EventType::GroupLeft
        } else {
            EventType::GroupParticipantsUpdated
        };
        Some(self.notify(event_type, self.item_key(raw), n))
    }
}

/// A member: a JID, or `{id, phoneNumber?, lid?, admin}`. `data` is Evolution's
/// `participantsData` (`{jid, phoneNumber}`), whose `phoneNumber` is only trusted as a phone JID
/// (when Evolution found none it writes the lid's digits there).
fn member(p: &Value, data: Option<&Vec<Value>>) -> Option<Participant> {
    let (jid, role) = match p {
        Value::String(jid) => (jid.clone(), None),
        Value::Object(_) => (
            text(p, "id")?,
            match p.get("admin") {
                Some(Value::Null) => Some("participant".to_owned()),
                _ => text(p, "admin"),
            },
        ),
        _ => return None,
    };
    let resolved = data
        .into_iter()
        .flatten()
        .find(|d| d.get("jid").and_then(Value::as_str) == Some(jid.as_str()));
    let person = Person::from_jids(
        [
            Some(jid.as_str()),
            p.get("phoneNumber").and_then(Value::as_str),
            p.get("lid").and_then(Value::as_str),
            resolved
                .and_then(|d| d.get("phoneNumber"))
                .and_then(Value::as_str),
        ],
        None,
    );
    Some(Participant {
        id: Some(canonical_jid(&jid)),
        phone_number: person.phone,
        role,
        ..Participant::default()
    })
}
