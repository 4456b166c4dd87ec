//! Session events: `session.status`, `state.change` (older engines) and `engine.event`.

use serde_json::Value;

use super::WahaCtx;
use super::notifications::text_at;
use crate::model::{EventType, NotificationData, Subject, SubjectKind};
use crate::providers::lenient::value_to_string;

impl WahaCtx<'_> {
    /// The session this webhook came from, as the notification's subject.
    fn session_subject(&self) -> Option<Subject> {
        Some(Subject::new(
            SubjectKind::Session,
            self.source.business_id.clone(),
        ))
    }

    /// `session.status`: the new status, and the one before it.
    pub(super) fn session_status(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        (n.kind, n.status, n.subject) = (s("/status"), s("/status"), self.session_subject());
        n.previous_status = previous_session_status(raw);
        EventType::SessionStatusUpdated
    }

    /// `state.change`: the connection state, as a bare string or an object.
    pub(super) fn state_change(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        let state = raw
            .as_str()
            .map(str::to_owned)
            .or_else(|| s("/state"))
            .or_else(|| s("/connection"));
        (n.kind, n.status, n.subject) = (state.clone(), state, self.session_subject());
        EventType::SessionStatusUpdated
    }

    /// `engine.event`: an engine-internal event, named by its `event`.
    pub(super) fn engine_event(&self, raw: &Value, n: &mut NotificationData) -> EventType {
        let s = |p: &str| text_at(raw, p);
        (n.kind, n.subject) = (s("/event"), self.session_subject());
        EventType::SessionEngineEvent
    }
}

/// The status before the current one, from `statuses` (oldest first, current last).
fn previous_session_status(raw: &Value) -> Option<String> {
    let statuses = raw.get("statuses")?.as_array()?;
    let previous = statuses
        .len()
        .checked_sub(2)
        .and_then(|i| statuses.get(i))?;
    previous.get("status").cloned().and_then(value_to_string)
}
