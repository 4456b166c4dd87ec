//! Gupshup: its own v2 format (`{app, timestamp, version: 2, type, payload}`) and v3 (Meta's
//! Cloud API envelope with Gupshup's additions) → events.
//!
//! Owns: telling the two formats apart by shape (v3 has Meta's `object`/`entry`), every v2 `type`
//! (`message`, `message-event`, `user-event`, `billing-event`, `template-event`), and what v3 adds
//! on top of Meta's envelope (`gs_app_id` here; `gs_id`, `enqueued` and `code`/`reason` on
//! statuses in [`super::meta`]'s status reader). Must not: fetch media (Gupshup's `url` is
//! carried as received) or drop anything: a v2 body is one item, and one that cannot be read,
//! or of a `type` this parser does not know (`account-event`…), is passed through whole.
//!
//! Who is who, so that conversations key as they do for Meta (source, business id, customer):
//! - **Customer**: v2 `sender.phone` (`source`) on messages, `destination` on message events,
//!   `phone` on user events, with `userId` (the business-scoped user id) when Gupshup sends one;
//!   v3 Meta's `from`/`recipient_id`. The contact's `user_id` is preferred as the key when
//!   present, else the phone number, as for Meta.
//! - **Business**: `source.business_id` is the Gupshup app: v2 `app` (the app's name, as the v2
//!   send API names it), v3 `gs_app_id` (the app's id, as the v3 send API names it), on every
//!   item of the body, so that a v3 `enqueued` status (which has no `metadata`) and the later
//!   `sent` land in one conversation. A source should therefore stay on one format: switching
//!   from v2 to v3 changes the business id and opens new conversations. The business's phone
//!   number is v2's top-level `phone` (newer payloads) or v3's `metadata.display_phone_number`;
//!   v3's `entry.id` (the WABA) is `business_account_id`.
//!
//! Which id a message has: an inbound message keeps WhatsApp's id (`payload.id`, the only one).
//! A message the business sent is known by **Gupshup's message id** (the `messageId` of the v2
//! send API, `messages[0].id` of the v3 one): v2 `gsId` on `sent`/`delivered`/`read`/async
//! `failed`, `id` on `enqueued` and sync `failed` (where `id` is Gupshup's), v3 `gs_id`. It is the
//! only id on every status, so a sent message and all its statuses join on it. WhatsApp's own id,
//! when Gupshup names it too (v2 DLR `id`, `enqueued`'s `whatsappMessageId`, v3 `id`), goes to
//! `whatsapp_message_id`; a status that has only it (Gupshup drops `gsId` a week after sending)
//! keeps it as the id. A v2 reply's `reply_to.message_id` is likewise `context.gsId` when given;
//! a v3 reply names only the `wamid` (Meta's `context.id`), which `whatsapp_message_id` relates.

mod events;
mod messages;
mod notifications;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::lenient::{opt_nonempty_string, opt_string, opt_unix_time, value_to_string};
use super::{Ctx, ParseError, content_key};
use crate::model::{EventBody, EventType, InboundEvent, SourceInfo};

/// Parses one Gupshup webhook body, v2 or v3; `NotJson` for bytes that are not JSON.
pub(crate) fn parse(ctx: &Ctx, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let root: &RawValue = serde_json::from_slice(body).map_err(ParseError::NotJson)?;
    // Only an object's keys tell the formats apart (serde would read a struct from an array).
    let Some(top) = decode::<BTreeMap<String, &RawValue>>(root) else {
        return Ok(vec![ctx.passthrough(ctx.source.clone(), "unknown", body)]);
    };
    if top.contains_key("object") || top.contains_key("entry") {
        let app_id = top
            .get("gs_app_id")
            .and_then(|raw| decode::<Value>(raw))
            .and_then(value_to_string)
            .filter(|id| !id.is_empty());
        return v3(ctx, body, app_id);
    }
    Ok(vec![v2(ctx, root, body)])
}

/// v3: Meta's parser reads the envelope; every item is then put on the Gupshup app.
fn v3(ctx: &Ctx, body: &[u8], app_id: Option<String>) -> Result<Vec<InboundEvent>, ParseError> {
    let mut events = super::meta::parse(ctx, body)?;
    if let Some(app_id) = app_id {
        // The events of one change share their source: rewrite each shared source once.
        let mut rewritten: Vec<(Arc<SourceInfo>, Arc<SourceInfo>)> = Vec::new();
        for event in &mut events {
            let shared = &event.data.source;
            let source = match rewritten.iter().find(|(from, _)| Arc::ptr_eq(from, shared)) {
                Some((_, to)) => to.clone(),
                None => {
                    let mut source = SourceInfo::clone(shared);
                    source.business_id = Some(app_id.clone());
                    let to = Arc::new(source);
                    rewritten.push((shared.clone(), to.clone()));
                    to
                }
            };
            event.data.source = source;
        }
    }
    Ok(events)
}

/// The v2 envelope; `payload` stays raw until `type` is known.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    app: Option<String>,
    /// The app's phone number (newer payloads).
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    phone: Option<String>,
    /// When Gupshup received the item (milliseconds).
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

/// One v2 body: always exactly one event.
fn v2(ctx: &Ctx, root: &RawValue, body: &[u8]) -> InboundEvent {
    let Some(envelope) = decode::<Envelope<'_>>(root) else {
        return ctx.passthrough(ctx.source.clone(), "unknown", body);
    };
    let mut source = ctx.source.clone();
    source.business_id = envelope.app.clone();
    source.business_phone_number = envelope.phone.clone();
    let kind = envelope.kind.as_deref().unwrap_or("unknown");
    let v = V2Ctx {
        ctx,
        source,
        at: envelope.timestamp,
        kind,
        body,
    };
    let parsed = envelope.payload.and_then(|payload| match kind {
        "message" => v.message(payload),
        "message-event" => v.message_event(payload),
        "user-event" => v.user_event(payload),
        "billing-event" => v.billing_event(payload),
        "template-event" => v.template_event(payload),
        _ => None,
    });
    parsed.unwrap_or_else(|| {
        let mut event = ctx.passthrough(v.source.clone(), kind, body);
        event.occurred_at = v.at;
        event
    })
}

/// What the one item of a v2 body shares with its envelope.
struct V2Ctx<'c> {
    ctx: &'c Ctx,
    /// Source with the app as `business_id` and its phone number, if sent.
    source: SourceInfo,
    /// The envelope's `timestamp`.
    at: Option<DateTime<Utc>>,
    /// The envelope's `type`.
    kind: &'c str,
    /// The whole body, for content-hash dedup keys.
    body: &'c [u8],
}

impl V2Ctx<'_> {
    fn emit(
        &self,
        event_type: EventType,
        key: String,
        at: Option<DateTime<Utc>>,
        body: EventBody,
    ) -> InboundEvent {
        self.ctx
            .event(event_type, key, at.or(self.at), self.source.clone(), body)
    }

    /// A dedup key for an item with no id of its own: a provider retry sends the same bytes.
    fn content_key(&self) -> String {
        content_key(self.source.provider, self.kind, &[self.body])
    }

    /// The app name for keys (empty when Gupshup left it out).
    fn app(&self) -> &str {
        self.source.business_id.as_deref().unwrap_or_default()
    }
}

/// Decodes borrowed raw JSON into `T`, or `None` when it does not fit.
fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

/// A phone number as Gupshup writes it (digits, maybe a leading `+`), or `None` for anything
/// else: the sandbox's `sandbox-start` names the literal `callbackSetPhone`.
fn phone_number(text: Option<&str>) -> Option<String> {
    let text = text?.trim();
    let digits = text.strip_prefix('+').unwrap_or(text);
    (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.to_owned())
}

#[cfg(test)]
mod tests;
