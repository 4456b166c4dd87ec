//! v2 notifications: `user-event`, `billing-event` and `template-event`.
//!
//! | v2 `type` / `payload.type`          | event                                  |
//! |-------------------------------------|----------------------------------------|
//! | `user-event` `opted-in`/`opted-out` | `whatsapp.contact.preferences_updated` |
//! | `user-event` `sandbox-start`, other | `whatsapp.provider.event`              |
//! | `billing-event`                     | `whatsapp.provider.event`              |
//! | `template-event` `status-update`    | `whatsapp.template.status_updated`     |
//! | `template-event` `category-update`  | `whatsapp.template.category_updated`   |
//! | `template-event` `quality-update`   | `whatsapp.template.quality_updated`    |
//!
//! Each carries the payload unchanged in `raw`, with `provider_event` the v2 `type`. None has an
//! id of its own, so each is keyed by a hash of the body.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{V2Ctx, decode, phone_number};
use crate::model::{
    ContactProfile, EventBody, EventType, InboundEvent, NotificationData, Subject, SubjectKind,
};
use crate::providers::lenient::{opt_nonempty_string, value_to_string};

impl V2Ctx<'_> {
    /// `opted-in`/`opted-out`: the customer's consent to the business's notifications
    /// (template messages); `sandbox-start`: a sandbox app was invoked (its `phone` is the
    /// literal `callbackSetPhone` when the callback URL was set, and is not a customer then).
    pub(super) fn user_event(&self, payload: &RawValue) -> Option<InboundEvent> {
        #[derive(Deserialize)]
        struct UserEventIn {
            #[serde(default, deserialize_with = "opt_nonempty_string")]
            phone: Option<String>,
            #[serde(rename = "type", default, deserialize_with = "opt_nonempty_string")]
            kind: Option<String>,
        }
        let u: UserEventIn = decode(payload)?;
        let mut n = self.notification(payload)?;
        n.contact = phone_number(u.phone.as_deref()).map(|wa_id| ContactProfile {
            wa_id: Some(wa_id),
            ..ContactProfile::default()
        });
        let event_type = match u.kind.as_deref() {
            Some("opted-in" | "opted-out") => {
                n.status.clone_from(&u.kind);
                EventType::ContactPreferencesUpdated
            }
            _ => EventType::ProviderEvent,
        };
        n.kind = u.kind;
        Some(self.notify(event_type, n))
    }

    /// Whether (and how) a message was billed: `deductions` says how, `references` names the
    /// message (Gupshup's `gsId`, else WhatsApp's `id`) and the customer (`destination`).
    pub(super) fn billing_event(&self, payload: &RawValue) -> Option<InboundEvent> {
        let mut n = self.notification(payload)?;
        let field = |outer: &str, k: &str| {
            n.raw
                .get(outer)
                .and_then(|o| o.get(k))
                .cloned()
                .and_then(value_to_string)
                .filter(|v| !v.is_empty())
        };
        let kind = field("deductions", "category").or_else(|| field("deductions", "type"));
        let message = field("references", "gsId").or_else(|| field("references", "id"));
        let customer = field("references", "destination");
        n.kind = kind;
        n.subject = message.map(|id| Subject::new(SubjectKind::Message, Some(id)));
        n.contact = customer.map(|wa_id| ContactProfile {
            wa_id: Some(wa_id),
            ..ContactProfile::default()
        });
        Some(self.notify(EventType::ProviderEvent, n))
    }

    /// A template's status, category or quality changed.
    pub(super) fn template_event(&self, payload: &RawValue) -> Option<InboundEvent> {
        let mut n = self.notification(payload)?;
        let v = n.raw.as_object().cloned().unwrap_or_default();
        let s = |k: &str| text(v.get(k));
        let category = |k: &str| text(v.get("category").and_then(|c| c.get(k)));
        let mut subject = Subject::new(SubjectKind::Template, s("id"));
        subject.name = s("elementName");
        n.subject = Some(subject);
        let event_type = match s("type").as_deref() {
            // The first payloads had no `type`: a status update.
            None | Some("status-update") => {
                (n.kind, n.status) = (s("status"), s("status"));
                n.reason = s("rejectedReason").or_else(|| s("description"));
                EventType::TemplateStatusUpdated
            }
            Some("category-update") => {
                if let Some(correct) = category("correct") {
                    // Announced: the template will move to `correct`.
                    n.kind = Some("impending".to_owned());
                    n.status = category("current");
                    n.reason = Some(format!("correct category: {correct}"));
                } else {
                    n.kind = Some("completed".to_owned());
                    (n.status, n.previous_status) = (category("new"), category("old"));
                }
                EventType::TemplateCategoryUpdated
            }
            Some("quality-update") => {
                (n.kind, n.status) = (s("type"), s("status").or_else(|| s("quality")));
                EventType::TemplateQualityUpdated
            }
            Some(_) => {
                n.kind = s("type");
                EventType::ProviderEvent
            }
        };
        Some(self.notify(event_type, n))
    }

    /// A notification named after the v2 `type`, carrying the payload object as sent.
    fn notification(&self, payload: &RawValue) -> Option<NotificationData> {
        let raw: Map<String, Value> = decode(payload)?;
        let mut n = NotificationData::new(self.kind, Value::Object(raw));
        n.occurred_at = self.at;
        Some(n)
    }

    fn notify(&self, event_type: EventType, n: NotificationData) -> InboundEvent {
        self.emit(
            event_type,
            self.content_key(),
            None,
            EventBody::notification(n),
        )
    }
}

/// Text for a string, number or bool; `None` for anything else and for `""`.
fn text(v: Option<&Value>) -> Option<String> {
    v.cloned()
        .and_then(value_to_string)
        .filter(|t| !t.is_empty())
}
