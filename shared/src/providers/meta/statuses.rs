//! `statuses[]` items: delivery, read and failure updates of sent messages, with pricing and
//! billing conversation, and the status updates of business-initiated calls.
//!
//! Gupshup's v3 webhooks are this envelope with three additions, read here because Meta never
//! sends them: `gs_id` (Gupshup's message id, which its send API returns, so it becomes the
//! message id and the `wamid` moves to `whatsapp_message_id`), the `enqueued` status (accepted by
//! Gupshup, not yet on WhatsApp: `pending`), and a failure's `code`/`reason` in place of `errors`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::errors::errors;
use super::{ValueCtx, decode, raw_value};
use crate::model::{
    BillingConversation, Direction, EventBody, EventType, InboundEvent, Message, MessageError,
    MessageStatus, NotificationData, Pricing, Subject, SubjectKind,
};
use serde::de::MapAccess;

use crate::providers::lenient::{
    Entries, next_bool, next_object, next_string, next_unix_time, opt_i64, opt_nonempty_string,
    opt_object, opt_str, opt_string, opt_unix_time, skip,
};

impl ValueCtx<'_> {
    pub(super) fn status(&self, raw: &RawValue) -> Option<InboundEvent> {
        let s: MetaStatus<'_> = decode(raw)?;
        if self.is_call(&s) {
            return self.call_status(&s, raw);
        }
        self.read_status(s)
    }

    /// A `statuses[]` item read in the one pass ([`super::parse_strict`]), without its raw
    /// JSON: `None` when it needs that (a call's status keeps it, an item that is not a
    /// status is passed through with it), and the caller then goes level by level.
    pub(super) fn typed_status(&self, s: MetaStatus<'_>) -> Option<InboundEvent> {
        if self.is_call(&s) {
            return None;
        }
        let event = self.read_status(s)?;
        Some(self.channel_marked(event))
    }

    /// Whether the item is the status of a business-initiated call (read by [`Self::call_status`]).
    fn is_call(&self, s: &MetaStatus<'_>) -> bool {
        s.kind.as_deref() == Some("call") || self.field == "calls"
    }

    fn read_status(&self, s: MetaStatus<'_>) -> Option<InboundEvent> {
        let MetaStatus {
            id: wamid,
            gs_id,
            status,
            timestamp,
            code,
            reason,
            recipient_id,
            recipient_user_id,
            recipient_type,
            recipient_participant_id,
            participant_recipient_id,
            recipient_participant_user_id,
            biz_opaque_callback_data,
            conversation,
            pricing,
            errors: raw_errors,
            kind: _,
        } = s;
        // Gupshup's id when it sent one (the wamid moves aside), else the wamid.
        let (id, whatsapp_message_id) = match (gs_id, wamid) {
            (Some(gs_id), wamid) => {
                let wamid = wamid.filter(|w| *w != gs_id);
                (gs_id, wamid)
            }
            (None, Some(wamid)) => (wamid, None),
            (None, None) => return None,
        };
        let status = match status.as_deref()? {
            "enqueued" => MessageStatus::Pending,
            other => MessageStatus::from_wire(other),
        };
        let event_type = EventType::of_status(&status)?;
        let participant = recipient_participant_id.or(participant_recipient_id);
        let key = match &participant {
            Some(p) => self
                .ctx()
                .key(format_args!("meta:{id}:{}:{p}", status.as_str())),
            None => self
                .ctx()
                .key(format_args!("meta:{id}:{}", status.as_str())),
        };
        let mut message = Message::new(id, Direction::Outbound);
        message.whatsapp_message_id = whatsapp_message_id;
        message.timestamp = timestamp;
        message.from = self.source.business_phone_number.clone();
        message.biz_opaque_callback_data = biz_opaque_callback_data;
        let is_group = recipient_type.as_deref() == Some("group");
        let (customer, customer_user_id) = if is_group {
            (message.chat_id, message.group_id) = (recipient_id.clone(), recipient_id);
            (participant, recipient_participant_user_id)
        } else {
            (recipient_id, recipient_user_id)
        };
        let contact = self.profile(customer.as_deref(), customer_user_id.as_deref());
        (message.to, message.to_user_id) = (customer, customer_user_id);
        let (billing, nested_pricing) = conversation.map(ConversationIn::into_model).unzip();
        message.pricing = pricing.map(|p| p.0).or(nested_pricing.flatten());
        message.billing_conversation = billing;
        let mut errors = errors(raw_errors);
        if errors.is_empty() && (code.is_some() || reason.is_some()) {
            errors.push(MessageError {
                error_code: code,
                error_message: reason,
                ..MessageError::default()
            });
        }
        message.set_errors(errors);
        message.status = Some(status);
        let body = EventBody::message(message, contact);
        Some(
            self.ctx()
                .scoped_event(event_type, key, timestamp, self.source.clone(), body),
        )
    }

    fn call_status(&self, s: &MetaStatus<'_>, raw: &RawValue) -> Option<InboundEvent> {
        let id = s.id.clone()?;
        let status = s.status.as_deref()?.to_owned();
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
        self.emit(event_type, key, s.timestamp, EventBody::notification(n))
    }
}

/// One `statuses[]` item.
#[derive(Deserialize)]
pub(super) struct MetaStatus<'a> {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    /// Gupshup v3 only: Gupshup's message id.
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    gs_id: Option<String>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    status: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(borrow, rename = "type", default, deserialize_with = "opt_str")]
    kind: Option<Cow<'a, str>>,
    /// Gupshup v3 only: a failure's code and reason, sent instead of `errors`.
    #[serde(default, deserialize_with = "opt_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    reason: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_user_id: Option<String>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    recipient_type: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_participant_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    participant_recipient_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    recipient_participant_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    biz_opaque_callback_data: Option<String>,
    /// Read in place, not captured and decoded again: an odd value loses only itself.
    #[serde(default, deserialize_with = "opt_object")]
    conversation: Option<ConversationIn>,
    #[serde(default, deserialize_with = "opt_object")]
    pricing: Option<PricingIn>,
    #[serde(borrow, default)]
    errors: Option<&'a RawValue>,
}

/// A status's `conversation`: Meta's billing conversation (before per-message pricing).
#[derive(Default)]
struct ConversationIn {
    id: Option<String>,
    expiration_timestamp: Option<DateTime<Utc>>,
    origin: Option<OriginIn>,
    /// Group examples nest pricing here.
    pricing: Option<PricingIn>,
}

impl<'de> Entries<'de> for ConversationIn {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "id" => self.id = next_string(map)?,
            "expiration_timestamp" => self.expiration_timestamp = next_unix_time(map)?,
            "origin" => self.origin = next_object(map)?,
            "pricing" => self.pricing = next_object(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// A conversation's `origin`.
#[derive(Default)]
struct OriginIn {
    kind: Option<String>,
}

impl<'de> Entries<'de> for OriginIn {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = next_string(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl ConversationIn {
    /// The billing conversation, and the pricing nested in it.
    fn into_model(self) -> (BillingConversation, Option<Pricing>) {
        let conversation = BillingConversation {
            id: self.id,
            origin_type: self.origin.and_then(|o| o.kind),
            expires_at: self.expiration_timestamp,
        };
        (conversation, self.pricing.map(|p| p.0))
    }
}

/// A status's `pricing`, each field read on its own.
#[derive(Default)]
struct PricingIn(Pricing);

impl<'de> Entries<'de> for PricingIn {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let p = &mut self.0;
        match key {
            "billable" => p.billable = next_bool(map)?,
            "pricing_model" => p.pricing_model = next_string(map)?,
            "category" => p.category = next_string(map)?,
            "type" => p.kind = next_string(map)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}
