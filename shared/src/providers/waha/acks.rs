//! `message.ack` and `message.ack.group`: delivery, read and failure updates of a message, and
//! WAHA's ack numbers and names.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::content::WaMessage;
use super::parties::Party;
use super::{WahaCtx, decode};
use crate::model::{
    ContactProfile, EventBody, EventType, InboundEvent, MessageError, MessageStatus,
};
use crate::providers::chat_id::ChatId;
use crate::providers::lenient::{opt_bool, opt_i64, opt_string};

impl WahaCtx<'_> {
    pub(super) fn ack(&self, payload: &RawValue) -> Option<InboundEvent> {
        let a: AckIn = decode(payload)?;
        let status = a
            .ack
            .and_then(ack_status)
            .or_else(|| a.ack_name.as_deref().and_then(ack_name_status))?;
        let frame = WaMessage {
            id: a.id.clone(),
            from_me: a.from_me,
            participant: a.participant.clone(),
            ..WaMessage::default()
        };
        let (mut message, mut contact) = self.frame(&frame)?;
        if message.group_id.is_some() {
            // In groups the ack is about one member: the one who received or read it.
            let member = a.participant.as_deref().and_then(|p| ChatId::parse(p).ok());
            let party = member.as_ref().map(Party::from_chat).unwrap_or_default();
            (message.to, message.to_user_id) = (party.phone.clone(), party.user_id.clone());
            contact = Some(ContactProfile {
                wa_id: party.phone,
                user_id: party.user_id,
                ..ContactProfile::default()
            });
        }
        message.timestamp = self.envelope.timestamp;
        if let Some(e) = a.error.filter(|_| status == MessageStatus::Failed) {
            message.error = Some(Box::new(MessageError {
                error_code: e.code,
                error_message: e.reason,
                ..MessageError::default()
            }));
        }
        let event_type = EventType::of_status(&status).unwrap_or(EventType::MessageRead);
        let ack = a
            .ack
            .map_or_else(|| status.as_str().to_owned(), |n| n.to_string());
        let key = format!("{}:{ack}", self.message_key(&message.id));
        message.status = Some(status);
        Some(self.emit(event_type, key, None, EventBody::message(message, contact)))
    }
}

/// WAHA ack numbers: -1 ERROR, 0 PENDING, 1 SERVER, 2 DEVICE, 3 READ, 4 PLAYED.
pub(super) fn ack_status(ack: i64) -> Option<MessageStatus> {
    Some(match ack {
        -1 => MessageStatus::Failed,
        0 => MessageStatus::Pending,
        1 => MessageStatus::Sent,
        2 => MessageStatus::Delivered,
        3 => MessageStatus::Read,
        4 => MessageStatus::Played,
        _ => return None,
    })
}

fn ack_name_status(name: &str) -> Option<MessageStatus> {
    Some(match name {
        "ERROR" => MessageStatus::Failed,
        "PENDING" => MessageStatus::Pending,
        "SERVER" => MessageStatus::Sent,
        "DEVICE" => MessageStatus::Delivered,
        "READ" => MessageStatus::Read,
        "PLAYED" => MessageStatus::Played,
        _ => return None,
    })
}

#[derive(Deserialize)]
struct AckIn {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(rename = "fromMe", default, deserialize_with = "opt_bool")]
    from_me: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    participant: Option<String>,
    #[serde(default, deserialize_with = "opt_i64")]
    ack: Option<i64>,
    #[serde(rename = "ackName", default, deserialize_with = "opt_string")]
    ack_name: Option<String>,
    #[serde(default)]
    error: Option<AckErrorIn>,
}

#[derive(Deserialize)]
struct AckErrorIn {
    #[serde(default, deserialize_with = "opt_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "opt_string")]
    reason: Option<String>,
}
