//! Per-customer notification items: `user_preferences`, `user_id_update`, `state_sync`,
//! `history`, and anything else keyed by customer (`automatic_events`, `user_actions`…).

use serde_json::Value;
use serde_json::value::RawValue;

use super::{ValueCtx, object};
use crate::model::{EventBody, EventType, InboundEvent, NotificationData};
use crate::providers::lenient::{self, value_to_string};

impl ValueCtx<'_> {
    /// Per-customer notifications: preferences, user id changes, contact-book sync, history,
    /// automatic events, link clicks.
    pub(super) fn contact_notification(&self, key: &str, raw: &RawValue) -> Option<InboundEvent> {
        let v = object(raw)?;
        let s = |k: &str| v.get(k).cloned().and_then(value_to_string);
        let nested = |outer: &str, k: &str| {
            v.get(outer)
                .and_then(|o| o.get(k))
                .cloned()
                .and_then(value_to_string)
        };
        let time = v
            .get("timestamp")
            .and_then(lenient::value_to_f64)
            .and_then(lenient::unix_time);
        let mut n = NotificationData::new(self.field, Value::Null);
        n.occurred_at = time.or(self.entry.time);
        let event_type = match key {
            "user_preferences" => {
                (n.kind, n.status, n.reason) = (s("category"), s("value"), s("detail"));
                n.contact = self.profile(s("wa_id").as_deref(), s("user_id").as_deref());
                EventType::ContactPreferencesUpdated
            }
            "user_id_update" => {
                n.kind = Some("user_id_changed".to_owned());
                (n.status, n.previous_status) =
                    (nested("user_id", "current"), nested("user_id", "previous"));
                n.reason = s("detail");
                n.contact = self.profile(s("wa_id").as_deref(), n.status.as_deref());
                EventType::ContactUserIdChanged
            }
            "state_sync" => {
                n.kind = s("action");
                let wa_id = nested("contact", "phone_number");
                let user_id = nested("contact", "user_id");
                let mut contact = self
                    .profile(wa_id.as_deref(), user_id.as_deref())
                    .unwrap_or_default();
                contact.name = nested("contact", "full_name").or(contact.name);
                contact.username = nested("contact", "username").or(contact.username);
                n.contact = Some(contact);
                n.occurred_at = v
                    .get("metadata")
                    .and_then(|m| m.get("timestamp"))
                    .and_then(lenient::value_to_f64)
                    .and_then(lenient::unix_time)
                    .or(n.occurred_at);
                EventType::ContactSynced
            }
            "history" => {
                n.kind = Some(
                    if v.contains_key("errors") {
                        "declined"
                    } else {
                        "chunk"
                    }
                    .to_owned(),
                );
                n.status = nested("metadata", "progress");
                EventType::HistorySynced
            }
            _ => {
                n.kind = s("event_name")
                    .or_else(|| s("action_type"))
                    .or_else(|| s("type"));
                EventType::ProviderEvent
            }
        };
        n.raw = Value::Object(v);
        let dedup = self.content_key(key, raw);
        self.emit(event_type, dedup, n.occurred_at, EventBody::notification(n))
    }
}
