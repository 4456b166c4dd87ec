//! v2 `message-event`: the statuses of a message the business sent, and `mismatch`.
//!
//! | `type`      | event                         | status      |
//! |-------------|-------------------------------|-------------|
//! | `enqueued`  | `whatsapp.message.pending`    | `pending`   |
//! | `sent`      | `whatsapp.message.sent`       | `sent`      |
//! | `delivered` | `whatsapp.message.delivered`  | `delivered` |
//! | `read`      | `whatsapp.message.read`       | `read`      |
//! | `failed`    | `whatsapp.message.failed`     | `failed`    |
//! | `deleted`   | `whatsapp.message.revoked`    | `deleted`   |
//!
//! `enqueued` means Gupshup accepted the message and handed it to WhatsApp, which has not yet
//! confirmed it: wagate's `pending`. The message id is Gupshup's (see the module above); a
//! failure's `code` and `reason` become `message.error`; `conversation` and `pricing` are read
//! beside `payload` (where Gupshup documents them) or inside it. `mismatch` (the number sent to
//! is not the customer's WhatsApp id) is a notification; other types are passed through.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{V2Ctx, decode};
use crate::model::{
    BillingConversation, ContactProfile, Direction, EventBody, EventType, InboundEvent, Message,
    MessageError, MessageStatus, NotificationData, Pricing,
};
use crate::providers::lenient::{
    opt_bool, opt_i64, opt_nonempty_string, opt_string, opt_unix_time,
};

impl V2Ctx<'_> {
    pub(super) fn message_event(&self, payload: &RawValue) -> Option<InboundEvent> {
        let e: EventIn<'_> = decode(payload)?;
        let inner: EventPayloadIn<'_> = e.payload.and_then(decode).unwrap_or_default();
        let kind = e.kind.as_deref()?;
        let status = match kind {
            "enqueued" => MessageStatus::Pending,
            "sent" | "delivered" | "read" | "failed" | "deleted" => MessageStatus::from_wire(kind),
            "mismatch" => return Some(self.mismatch(&e, &inner, payload)),
            _ => return None,
        };
        let event_type = EventType::of_status(&status)?;
        let id = e.gs_id.clone().or_else(|| e.id.clone())?;
        let mut message = Message::new(id.clone(), Direction::Outbound);
        message.whatsapp_message_id = [e.id.clone(), inner.whatsapp_message_id.clone()]
            .into_iter()
            .flatten()
            .find(|w| *w != id);
        let at = e.ts.or(inner.ts).or(self.at);
        message.timestamp = at;
        message.from = self.source.business_phone_number.clone();
        (message.to, message.to_user_id) = (e.destination.clone(), e.user_id.clone());
        message.pricing = e
            .pricing
            .or(inner.pricing)
            .and_then(decode::<PricingIn>)
            .map(PricingIn::into_model);
        message.billing_conversation = e
            .conversation
            .or(inner.conversation)
            .and_then(decode::<ConversationIn>)
            .map(ConversationIn::into_model);
        if inner.code.is_some() || inner.reason.is_some() {
            message.error = Some(Box::new(MessageError {
                error_code: inner.code,
                error_message: inner.reason,
                ..MessageError::default()
            }));
        }
        let key = format!("gupshup:{id}:{}", status.as_str());
        message.status = Some(status);
        let contact = customer(e.destination, e.user_id);
        Some(self.emit(event_type, key, at, EventBody::message(message, contact)))
    }

    /// `mismatch`: Gupshup found that the number the business wrote (`phone`) is not the
    /// customer's WhatsApp id (`wa_id`), as with Brazil's ninth digit.
    fn mismatch(
        &self,
        e: &EventIn<'_>,
        inner: &EventPayloadIn<'_>,
        raw: &RawValue,
    ) -> InboundEvent {
        let mut n = NotificationData::new(
            self.kind,
            serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        );
        n.kind = Some("mismatch".to_owned());
        n.contact = customer(
            inner.wa_id.clone().or_else(|| e.destination.clone()),
            e.user_id.clone(),
        );
        n.occurred_at = self.at;
        self.emit(
            EventType::ProviderEvent,
            self.content_key(),
            None,
            EventBody::notification(n),
        )
    }
}

/// The customer a status is about, if Gupshup named them.
fn customer(wa_id: Option<String>, user_id: Option<String>) -> Option<ContactProfile> {
    let contact = ContactProfile {
        wa_id,
        user_id,
        ..ContactProfile::default()
    };
    (contact != ContactProfile::default()).then_some(contact)
}

/// One v2 `message-event` payload.
#[derive(Deserialize)]
struct EventIn<'a> {
    /// Gupshup's id on `enqueued` and sync `failed`; WhatsApp's on the others.
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    id: Option<String>,
    /// Gupshup's id on `sent`, `delivered`, `read` and async `failed`.
    #[serde(rename = "gsId", default, deserialize_with = "opt_nonempty_string")]
    gs_id: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    /// The customer's phone number.
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    destination: Option<String>,
    /// The customer's business-scoped user id, when the app has them enabled.
    #[serde(rename = "userId", default, deserialize_with = "opt_nonempty_string")]
    user_id: Option<String>,
    /// WhatsApp's time of the status (seconds), in some payloads beside `payload`.
    #[serde(default, deserialize_with = "opt_unix_time")]
    ts: Option<DateTime<Utc>>,
    #[serde(borrow, default)]
    conversation: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pricing: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

/// The inner `payload`, whose fields depend on the type.
#[derive(Deserialize, Default)]
struct EventPayloadIn<'a> {
    #[serde(default, deserialize_with = "opt_unix_time")]
    ts: Option<DateTime<Utc>>,
    #[serde(
        rename = "whatsappMessageId",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    whatsapp_message_id: Option<String>,
    #[serde(default, deserialize_with = "opt_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    reason: Option<String>,
    #[serde(borrow, default)]
    conversation: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pricing: Option<&'a RawValue>,
    /// `mismatch`: the customer's WhatsApp id (the number the business used is in `phone`).
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    wa_id: Option<String>,
}

/// Gupshup's `pricing`: `policy` is Meta's `pricing_model`.
#[derive(Deserialize)]
struct PricingIn {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    policy: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    category: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "opt_nonempty_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    billable: Option<bool>,
}

impl PricingIn {
    fn into_model(self) -> Pricing {
        Pricing {
            billable: self.billable,
            pricing_model: self.policy,
            category: self.category,
            kind: self.kind,
        }
    }
}

/// Gupshup's `conversation`: Meta's billing conversation, its origin in `type`.
#[derive(Deserialize)]
struct ConversationIn {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    id: Option<String>,
    #[serde(rename = "expiresAt", default, deserialize_with = "opt_unix_time")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(rename = "type", default, deserialize_with = "opt_nonempty_string")]
    kind: Option<String>,
}

impl ConversationIn {
    fn into_model(self) -> BillingConversation {
        BillingConversation {
            id: self.id,
            origin_type: self.kind,
            expires_at: self.expires_at,
        }
    }
}
