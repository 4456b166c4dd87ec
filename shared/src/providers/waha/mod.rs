//! WAHA: `{"id","timestamp","event","session","me","payload","engine","environment"}` → events.
//!
//! Owns: every WAHA event name (messages, acks, reactions, edits, revokes, sessions, groups,
//! presence, polls, chats, calls, labels, event responses, engine events). WAHA's engines
//! (WEBJS, NOWEB, GOWS) disagree on `from`/`to`, on `null` versus absent, on seconds versus
//! milliseconds and on strings versus numbers, so the chat comes from the serialized message id,
//! every field is optional and lenient, and anything unreadable is passed through with its bytes.
//!
//! This file reads the envelope and dispatches on the event name: messages to `messages` (their
//! content in `content`), acks to `acks`, everything else to `notifications`, which hands each
//! topic (`sessions`, `groups`, `chats`, `responses`, `calls`, `labels`) its event names.

mod acks;
mod calls;
mod chats;
mod content;
mod groups;
mod labels;
mod messages;
mod notifications;
mod parties;
mod responses;
mod sessions;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::chat_id::ChatId;
use super::lenient::{opt_string, opt_unix_time};
use super::{Ctx, ParseError};
use crate::model::{EventBody, EventType, InboundEvent, SourceInfo};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_string")]
    event: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    session: Option<String>,
    #[serde(default)]
    me: Option<Me>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "opt_string")]
    engine: Option<String>,
}

#[derive(Deserialize, Default)]
struct Me {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
}

pub(crate) fn parse(ctx: &Ctx, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let root: &RawValue = serde_json::from_slice(body).map_err(ParseError::NotJson)?;
    let Some(envelope) = serde_json::from_str::<Envelope<'_>>(root.get()).ok() else {
        return Ok(vec![ctx.passthrough(ctx.source.clone(), "unknown", body)]);
    };
    let mut source = ctx.source.clone();
    source.business_id = envelope.session.clone();
    source.engine = envelope.engine.clone();
    let me = envelope
        .me
        .as_ref()
        .and_then(|m| m.id.as_deref())
        .and_then(|id| ChatId::parse(id).ok());
    source.business_phone_number = me
        .as_ref()
        .and_then(|m| m.phone_number().map(str::to_owned));
    let (Some(event), Some(payload)) = (envelope.event.clone(), envelope.payload) else {
        return Ok(vec![ctx.passthrough(source, "unknown", body)]);
    };
    let w = WahaCtx {
        ctx,
        source,
        envelope: &envelope,
        me,
        event: &event,
        body,
    };
    Ok(vec![w.event(payload).unwrap_or_else(|| {
        ctx.passthrough(w.source.clone(), &event, body)
    })])
}

/// Everything one WAHA webhook's items share.
struct WahaCtx<'c> {
    ctx: &'c Ctx,
    source: SourceInfo,
    envelope: &'c Envelope<'c>,
    /// The business's own account.
    me: Option<ChatId>,
    event: &'c str,
    body: &'c [u8],
}

impl WahaCtx<'_> {
    fn session(&self) -> &str {
        self.source.business_id.as_deref().unwrap_or_default()
    }

    fn event(&self, payload: &RawValue) -> Option<InboundEvent> {
        match self.event {
            "message" | "message.any" => self.message(payload),
            "message.ack" | "message.ack.group" => self.ack(payload),
            "message.reaction" => self.reaction(payload),
            "message.edited" => self.edited(payload),
            "message.revoked" => self.revoked(payload),
            _ => self.notification(payload),
        }
    }

    fn emit(
        &self,
        event_type: EventType,
        key: String,
        at: Option<DateTime<Utc>>,
        body: EventBody,
    ) -> InboundEvent {
        self.ctx.event(
            event_type,
            key,
            at.or(self.envelope.timestamp),
            self.source.clone(),
            body,
        )
    }
}

fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

#[cfg(test)]
mod tests;
