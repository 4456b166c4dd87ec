//! Status callbacks: the delivery of a message the business sent, like Meta's `statuses[]`.
//!
//! | `MessageStatus` | event | `status` |
//! |---|---|---|
//! | `accepted`, `scheduled`, `queued`, `sending` | `whatsapp.message.pending` | `pending` |
//! | `sent` | `whatsapp.message.sent` | `sent` |
//! | `delivered` | `whatsapp.message.delivered` | `delivered` |
//! | `read` | `whatsapp.message.read` | `read` |
//! | `failed`, `undelivered`, `canceled` | `whatsapp.message.failed` | `failed` |
//! | anything else (`receiving`, `partially_delivered`, newer ones) | `whatsapp.provider.event` | — |
//!
//! Twilio's steps before WhatsApp has the message are all `pending` (as WAHA's ack 0), so they
//! rank below `sent` and track keeps the order monotonic whatever order the callbacks arrive in.
//! A failure keeps Twilio's own word (`failed`: never sent; `undelivered`: WhatsApp did not
//! deliver it; `canceled`: a scheduled message called off) in `error.title`, with `ErrorCode` and
//! the message (`ErrorMessage`, else `ChannelStatusMessage`).

use super::TwilioCtx;
use crate::model::{
    ContactProfile, Direction, EventBody, EventType, InboundEvent, Message, MessageError,
    MessageStatus, SourceInfo,
};

impl TwilioCtx<'_> {
    /// The status callback saying `status` (lowercase).
    pub(super) fn status(&self, source: SourceInfo, status: &str) -> InboundEvent {
        let source = self.with_business(source, "From");
        let Some((event_type, model_status)) = status_of(status) else {
            return self
                .params
                .passthrough(self.ctx, source, &format!("status.{status}"));
        };
        let contact = self.customer("To");
        let mut message = Message::new(self.sid, Direction::Outbound);
        message.from.clone_from(&source.business_phone_number);
        (message.to, message.to_user_id) = (contact.wa_id.clone(), contact.user_id.clone());
        message.error = self.error(status, &model_status).map(Box::new);
        let key = format!("twilio:{}:{}", self.sid, model_status.as_str());
        message.status = Some(model_status);
        let contact = (contact != ContactProfile::default()).then_some(contact);
        self.ctx.event(
            event_type,
            key,
            None,
            source,
            EventBody::message(message, contact),
        )
    }

    /// The error the callback reports, if any; on a failure, at least Twilio's status.
    fn error(&self, status: &str, model_status: &MessageStatus) -> Option<MessageError> {
        let p = self.params;
        let failed = *model_status == MessageStatus::Failed;
        let channel_message = p.get("ChannelStatusMessage").map(str::to_owned);
        let error = MessageError {
            error_code: p.get("ErrorCode").and_then(|c| c.trim().parse().ok()),
            error_message: p
                .get("ErrorMessage")
                .map(str::to_owned)
                .or_else(|| channel_message.clone()),
            title: failed.then(|| status.to_owned()),
            details: p.get("ErrorMessage").and(channel_message),
            href: None,
        };
        (error != MessageError::default()).then_some(error)
    }
}

/// The event type and status of a Twilio `MessageStatus`; `None` for one with no place in the
/// delivery order.
fn status_of(status: &str) -> Option<(EventType, MessageStatus)> {
    let status = match status {
        "accepted" | "scheduled" | "queued" | "sending" => MessageStatus::Pending,
        "sent" => MessageStatus::Sent,
        "delivered" => MessageStatus::Delivered,
        "read" => MessageStatus::Read,
        "failed" | "undelivered" | "canceled" => MessageStatus::Failed,
        _ => return None,
    };
    Some((EventType::of_status(&status)?, status))
}
