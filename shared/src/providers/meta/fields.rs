//! Management fields (templates, account, phone number, flows…): values without
//! `messaging_product`/`metadata`, each change one notification.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{EntryCtx, object};
use crate::model::{EventBody, EventType, InboundEvent, NotificationData, Subject, SubjectKind};
use crate::providers::content_key;
use crate::providers::lenient::value_to_string;

impl EntryCtx<'_> {
    /// A management field (templates, account, phone number, flows…): one notification.
    pub(super) fn field_notification(&self, field: &str, value: &RawValue) -> InboundEvent {
        let Some(v) = object(value) else {
            return self
                .ctx
                .passthrough(self.source().clone(), field, value.get().as_bytes());
        };
        let s = |k: &str| v.get(k).cloned().and_then(value_to_string);
        let template = || {
            let mut subject = Subject::new(SubjectKind::Template, s("message_template_id"));
            subject.name = s("message_template_name");
            Some(subject)
        };
        let phone_number = || {
            let mut subject = Subject::new(SubjectKind::PhoneNumber, s("display_phone_number"));
            subject.name = s("requested_verified_name");
            Some(subject)
        };
        let account = Some(Subject::new(
            SubjectKind::Account,
            self.source().business_account_id.clone(),
        ));
        let mut n = NotificationData::new(field, Value::Null);
        let event_type = match field {
            "message_template_status_update" => {
                (n.kind, n.status, n.reason, n.subject) =
                    (s("event"), s("event"), s("reason"), template());
                EventType::TemplateStatusUpdated
            }
            "message_template_quality_update" => {
                n.kind = s("new_quality_score");
                (n.status, n.previous_status, n.subject) = (
                    s("new_quality_score"),
                    s("previous_quality_score"),
                    template(),
                );
                EventType::TemplateQualityUpdated
            }
            "message_template_components_update" => {
                n.subject = template();
                EventType::TemplateComponentsUpdated
            }
            "template_category_update" => {
                let impending = v.contains_key("correct_category");
                n.kind = Some(if impending { "impending" } else { "completed" }.to_owned());
                (n.status, n.previous_status, n.subject) =
                    (s("new_category"), s("previous_category"), template());
                n.reason = s("correct_category").map(|c| format!("correct category: {c}"));
                EventType::TemplateCategoryUpdated
            }
            "template_correct_category_detection" => {
                n.kind = Some("correct_category_detection".to_owned());
                (n.status, n.previous_status, n.subject) =
                    (s("correct_category"), s("category"), template());
                EventType::TemplateCategoryUpdated
            }
            "account_update" => {
                (n.kind, n.subject) = (s("event"), account);
                n.reason = first_restriction(&v);
                EventType::AccountUpdated
            }
            "account_review_update" => {
                (n.kind, n.status, n.subject) = (s("decision"), s("decision"), account);
                EventType::AccountReviewUpdated
            }
            "account_alerts" => {
                let alert = |k: &str| {
                    v.get("alert_info")
                        .and_then(|a| a.get(k))
                        .cloned()
                        .and_then(value_to_string)
                };
                (n.kind, n.status, n.reason) = (
                    alert("alert_type"),
                    alert("alert_status"),
                    alert("alert_description"),
                );
                let kind = match s("entity_type").as_deref() {
                    Some("PHONE_NUMBER") => SubjectKind::PhoneNumber,
                    _ => SubjectKind::Account,
                };
                n.subject = Some(Subject::new(kind, s("entity_id")));
                EventType::AccountAlert
            }
            "business_capability_update" => {
                n.subject = account;
                EventType::AccountCapabilityUpdated
            }
            "security" => {
                (n.kind, n.subject) = (s("event"), phone_number());
                EventType::AccountSecurity
            }
            "payment_configuration_update"
            | "partner_solutions"
            | "business_username_update"
            | "business_username_updates"
            | "account_settings_update" => {
                n.kind = s("event")
                    .or_else(|| s("type"))
                    .or_else(|| Some(field.to_owned()));
                n.status = s("status").or_else(|| s("solution_status"));
                n.subject = account;
                EventType::AccountSettingsUpdated
            }
            "phone_number_quality_update" => {
                n.kind = s("event");
                n.status = s("current_limit").or_else(|| s("max_daily_conversations_per_business"));
                (n.previous_status, n.subject) = (s("old_limit"), phone_number());
                EventType::PhoneNumberQualityUpdated
            }
            "phone_number_name_update" => {
                (n.kind, n.status, n.reason) =
                    (s("decision"), s("decision"), s("rejection_reason"));
                n.subject = phone_number();
                EventType::PhoneNumberNameUpdated
            }
            "flows" => {
                (n.kind, n.status, n.previous_status) =
                    (s("event"), s("new_status"), s("old_status"));
                n.reason = s("message");
                n.subject = Some(Subject::new(SubjectKind::Flow, s("flow_id")));
                EventType::FlowUpdated
            }
            _ => {
                n.kind = s("event").or_else(|| s("type")).or_else(|| s("status"));
                EventType::ProviderEvent
            }
        };
        n.occurred_at = self.time;
        n.raw = Value::Object(v);
        let key = content_key(
            self.source().provider,
            field,
            &[
                self.source()
                    .business_account_id
                    .as_deref()
                    .unwrap_or_default()
                    .as_bytes(),
                self.time_bytes.as_bytes(),
                value.get().as_bytes(),
            ],
        );
        self.ctx.event(
            event_type,
            key,
            self.time,
            self.source().clone(),
            EventBody::notification(n),
        )
    }
}

/// `"RESTRICTED_BIZ_INITIATED_MESSAGING"` from `restriction_info[0].restriction_type`, if any.
fn first_restriction(v: &Map<String, Value>) -> Option<String> {
    v.get("restriction_info")?
        .get(0)?
        .get("restriction_type")
        .cloned()
        .and_then(value_to_string)
}
