//! `calls[]` items: call connect and terminate events (Calling API).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ValueCtx, decode_owned, raw_value};
use crate::model::{EventBody, EventType, InboundEvent, NotificationData, Subject, SubjectKind};
use crate::providers::lenient::{opt_string, opt_unix_time};

impl ValueCtx<'_> {
    pub(super) fn call(&self, raw: &RawValue) -> Option<InboundEvent> {
        let c: CallIn = decode_owned(raw)?;
        let id = c.id.clone()?;
        let user_initiated = c.direction.as_deref() == Some("USER_INITIATED");
        let event_type = match c.event.as_deref() {
            Some("connect") if user_initiated => EventType::CallReceived,
            Some("connect") => EventType::CallAccepted,
            Some("terminate") => EventType::CallEnded,
            _ => EventType::CallUpdated,
        };
        let mut n = NotificationData::new(self.field, raw_value(raw));
        (n.kind, n.status, n.occurred_at) = (c.event.clone(), c.status.clone(), c.timestamp);
        n.reason = c.direction.clone();
        n.subject = Some(Subject::new(SubjectKind::Call, Some(id.clone())));
        let p = &c.parties;
        n.contact = if user_initiated {
            self.profile(p.from.as_deref(), p.from_user_id.as_deref())
        } else {
            self.profile(p.to.as_deref(), p.to_user_id.as_deref())
        };
        let event = c.event.as_deref().unwrap_or("call");
        let key = format!("meta:call:{id}:{event}");
        self.emit(event_type, key, c.timestamp, EventBody::notification(n))
    }
}

#[derive(Deserialize)]
struct CallIn {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    event: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    direction: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    status: Option<String>,
    /// Caller and callee: phone numbers and business-scoped user ids. (`MetaMessage` spells the
    /// same four fields out because `flatten` would buffer it and break its borrowed raw values.)
    #[serde(flatten)]
    parties: CallParties,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct CallParties {
    #[serde(default, deserialize_with = "opt_string")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    from_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to_user_id: Option<String>,
}
