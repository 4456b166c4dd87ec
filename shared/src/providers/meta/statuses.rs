//! `statuses[]` items: delivery, read and failure updates of sent messages, with pricing and
//! billing conversation, and the status updates of business-initiated calls.
//!
//! Gupshup's v3 webhooks are this envelope with three additions, read here because Meta never
//! sends them: `gs_id` (Gupshup's message id, which its send API returns, so it becomes the
//! message id and the `wamid` moves to `whatsapp_message_id`), the `enqueued` status (accepted by
//! Gupshup, not yet on WhatsApp: `pending`), and a failure's `code`/`reason` in place of `errors`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::errors::errors;
use super::{ValueCtx, decode, decode_owned, raw_value};
use crate::model::{
    BillingConversation, Direction, EventBody, EventType, InboundEvent, Message, MessageError,
    MessageStatus, NotificationData, Pricing, Subject, SubjectKind,
};
use crate::providers::lenient::{opt_i64, opt_nonempty_string, opt_string, opt_unix_time};

impl ValueCtx<'_> {
    pub(super) fn status(&self, raw: &RawValue) -> Option<InboundEvent> {
        let s: MetaStatus<'_> = decode(raw)?;
        if s.kind.as_deref() == Some("call") || self.field == "calls" {
            return self.call_status(&s, raw);
        }
        let wamid = s.id.clone();
        let id = s.gs_id.clone().or_else(|| wamid.clone())?;
        let status = match s.status.as_deref()? {
            "enqueued" => MessageStatus::Pending,
            other => MessageStatus::from_wire(other),
        };
        let event_type = EventType::of_status(&status)?;
        let mut message = Message::new(id.clone(), Direction::Outbound);
        message.whatsapp_message_id = wamid.filter(|w| *w != id);
        message.timestamp = s.timestamp;
        message.from = self.source.business_phone_number.clone();
        message.biz_opaque_callback_data = s.biz_opaque_callback_data.clone();
        let participant = s
            .recipient_participant_id
            .clone()
            .or_else(|| s.participant_recipient_id.clone());
        let is_group = s.recipient_type.as_deref() == Some("group");
        let (customer, customer_user_id) = if is_group {
            (message.chat_id, message.group_id) = (s.recipient_id.clone(), s.recipient_id.clone());
            (participant.clone(), s.recipient_participant_user_id.clone())
        } else {
            (s.recipient_id.clone(), s.recipient_user_id.clone())
        };
        (message.to, message.to_user_id) = (customer.clone(), customer_user_id.clone());
        let conversation = s.conversation.and_then(decode_owned::<ConversationIn>);
        let pricing = s.pricing.and_then(decode_owned::<Pricing>);
        message.pricing = pricing.or_else(|| conversation.as_ref().and_then(|c| c.pricing.clone()));
        message.billing_conversation = conversation.map(ConversationIn::into_model);
        let mut errors = errors(s.errors);
        if errors.is_empty() && (s.code.is_some() || s.reason.is_some()) {
            errors.push(MessageError {
                error_code: s.code,
                error_message: s.reason.clone(),
                ..MessageError::default()
            });
        }
        message.set_errors(errors);
        let key = match &participant {
            Some(p) => format!("meta:{id}:{}:{p}", status.as_str()),
            None => format!("meta:{id}:{}", status.as_str()),
        };
        message.status = Some(status);
        let contact = self.profile(customer.as_deref(), customer_user_id.as_deref());
        let body = EventBody::message(message, contact);
        Some(
            self.ctx()
                .event(event_type, key, s.timestamp, self.source.clone(), body),
        )
    }

    fn call_status(&self, s: &MetaStatus<'_>, raw: &RawValue) -> Option<InboundEvent> {
        let id = s.id.clone()?;
        let status = s.status.clone()?;
        let event_type = match status.to_ascii_uppercase().as_str() {
            "RINGING" => EventType::CallRinging,
            "ACCEPTED" => EventType::CallAccepted,
            "REJECTED" => EventType::CallRejected,
            _ => EventType::CallUpdated,
        };
        let mut n = NotificationData::new(self.field, Value::Null);
        (n.kind, n.status, n.occurred_at) =
            (Some("status".to_owned()), Some(status.clone()), s.timestamp);
        n.subject = Some(Subject::new(SubjectKind::Call, Some(id.clone())));
        n.contact = self.profile(s.recipient_id.as_deref(), s.recipient_user_id.as_deref());
        n.raw = raw_value(raw);
        let key = format!("meta:call:{id}:status:{status}");
        self.emit(event_type, key, s.timestamp, EventBody::Notification(n))
    }
}

/// One `statuses[]` item.
#[derive(Deserialize)]
struct MetaStatus<'a> {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    /// Gupshup v3 only: Gupshup's message id.
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    gs_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    /// Gupshup v3 only: a failure's code and reason, sent instead of `errors`.
    #[serde(default, deserialize_with = "opt_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    reason: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_type: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_participant_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    participant_recipient_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_participant_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    biz_opaque_callback_data: Option<String>,
    #[serde(borrow, default)]
    conversation: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pricing: Option<&'a RawValue>,
    #[serde(borrow, default)]
    errors: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ConversationIn {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    expiration_timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    origin: Option<OriginIn>,
    /// Group examples nest pricing here.
    #[serde(default)]
    pricing: Option<Pricing>,
}

#[derive(Deserialize)]
struct OriginIn {
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
}

impl ConversationIn {
    fn into_model(self) -> BillingConversation {
        BillingConversation {
            id: self.id,
            origin_type: self.origin.and_then(|o| o.kind),
            expires_at: self.expiration_timestamp,
        }
    }
}
