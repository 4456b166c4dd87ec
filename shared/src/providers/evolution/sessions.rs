//! The instance's connection: `connection.update` (`open`, `connecting`, `close`, `refused`),
//! `qrcode.updated`, `status.instance`, and the instance's lifecycle (`instance.create`,
//! `instance.delete`, `logout.instance`, `remove.instance`), all as
//! `whatsapp.session.status_updated` about the instance.

use serde_json::Value;
use serde_json::value::RawValue;

use super::fields::text;
use super::{EvoCtx, Topic};
use crate::model::{EventType, InboundEvent, Subject, SubjectKind};
use crate::providers::content_key;

impl EvoCtx<'_> {
    /// One session event; `data` may be absent (`logout.instance` sends `null`).
    pub(super) fn session(&self, topic: Topic, data: Option<&RawValue>) -> InboundEvent {
        let raw = data
            .and_then(|d| serde_json::from_str::<Value>(d.get()).ok())
            .unwrap_or(Value::Null);
        let s = |k: &str| text(&raw, k);
        let mut n = self.notification(&raw);
        n.subject = Some(Subject::new(
            SubjectKind::Session,
            self.source.business_id.clone(),
        ));
        (n.kind, n.status, n.reason) = match topic {
            Topic::ConnectionUpdate => (s("state"), s("state"), s("statusReason")),
            Topic::QrcodeUpdated => match raw.get("qrcode") {
                // A new code to scan: the instance is connecting. The code itself stays in
                // `raw` (its image is dropped: see `scrub`).
                Some(q) if q.is_object() => (
                    Some("qrcode".to_owned()),
                    Some("connecting".to_owned()),
                    None,
                ),
                _ => (Some("qrcode".to_owned()), None, s("message")),
            },
            Topic::StatusInstance => (s("status"), s("status"), s("disconnectionReasonCode")),
            Topic::LogoutInstance => (Some("logout".to_owned()), Some("logout".to_owned()), None),
            Topic::RemoveInstance => (Some("removed".to_owned()), Some("removed".to_owned()), None),
            Topic::InstanceCreate => (Some("created".to_owned()), Some("created".to_owned()), None),
            _ => (Some("deleted".to_owned()), Some("deleted".to_owned()), None),
        };
        n.occurred_at = raw.get("disconnectionAt").and_then(super::fields::time);
        let bytes = data.map_or("null", |d| d.get());
        let key = content_key(
            crate::model::Provider::Evolution,
            &self.provider_event,
            &[
                self.instance.as_bytes(),
                self.date_time.as_bytes(),
                bytes.as_bytes(),
            ],
        );
        self.notify(EventType::SessionStatusUpdated, key, n)
    }
}
