//! Twilio (WhatsApp over Programmable Messaging): one webhook's flat parameters → events.
//!
//! Owns: both kinds of Twilio messaging webhook, the incoming-message request and the status
//! callback, sent as `application/x-www-form-urlencoded` (or, for JSON-bodied webhooks, a JSON
//! object of the same parameters). Must not: verify `X-Twilio-Signature` (see
//! [`crate::signature`]) or drop a verified body: one that is not a message (no `MessageSid`), a
//! status this parser does not know, or a JSON body that does not decode becomes a
//! `whatsapp.provider.event` carrying the parameters.
//!
//! ## What a body is
//! A body with a `MessageSid` (or the deprecated `SmsMessageSid`/`SmsSid`) and no status other
//! than `received` (`MessageStatus`, else `SmsStatus`) is an incoming message, read in `inbound`.
//! Any other status is a status callback about an outbound message, read in `statuses`. Twilio adds
//! parameters without notice; unknown ones are ignored by the mapping (an unknown `MessageType`
//! keeps them all in `message_type_data.raw`). Empty parameters count as absent.
//!
//! ## Who the customer is
//! Addresses are `whatsapp:+15550001111`; the prefix and `+` are dropped, so phone numbers are
//! digits as in Meta's `wa_id`. The customer is `From` on a message and `To` on a status; the
//! business is the other side, and its number is both `source.business_id` and
//! `source.business_phone_number`: the conversation key includes `business_id`, so the customer's
//! messages and the statuses of the business's messages to them meet in one conversation. The
//! customer's profile:
//! - `wa_id`: `WaId`, else the customer's phone number;
//! - `user_id`: the business-scoped user id (Meta's BSUID), Twilio's `ExternalUserId`
//!   (`whatsapp:US.1349…`). A user who hides their number behind a username has the BSUID in
//!   `From`/`To` as well, and no phone number at all; such an address becomes the `user_id`;
//! - `name`: `ProfileName`.
//!
//! Track keys the customer by `user_id` when given, else `wa_id`, and links the two as aliases of
//! one contact, as for Meta; a status carries the same ids when Twilio sends them.
//!
//! ## Ids and dedup keys
//! The message id is the `MessageSid` (`SM…`, `MM…` with media), the id a send through Twilio's
//! API returns, so a status and the reply-to context of a later message name the same message.
//! Dedup keys: `twilio:{MessageSid}` for a message (`twilio:{MessageSid}:{n}` for its further
//! media, see `inbound`), `twilio:{MessageSid}:{status}` for a status (one per message and status,
//! like Meta's), all scoped by the source id in `Ctx::event`.
//! Twilio's messaging webhooks carry no event time, so `occurred_at` stays empty.

mod inbound;
mod statuses;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Ctx, ParseError};
use crate::model::{ContactProfile, InboundEvent, SourceInfo};

pub(crate) fn parse(ctx: &Ctx, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let Some(params) = Params::read(body) else {
        return Ok(vec![ctx.passthrough(ctx.source.clone(), "unknown", body)]);
    };
    let mut source = ctx.source.clone();
    source.business_account_id = params.get("AccountSid").map(str::to_owned);
    let Some(sid) = params.sid() else {
        return Ok(vec![params.passthrough(ctx, source, "unknown")]);
    };
    let status = params
        .get("MessageStatus")
        .or_else(|| params.get("SmsStatus"))
        .map(str::to_ascii_lowercase);
    let tw = TwilioCtx {
        ctx,
        params: &params,
        sid,
    };
    Ok(match status.as_deref() {
        None | Some("received") => tw.inbound(source),
        Some(status) => vec![tw.status(source, status)],
    })
}

/// What the items of one webhook share.
struct TwilioCtx<'c> {
    ctx: &'c Ctx,
    params: &'c Params,
    /// The `MessageSid`.
    sid: &'c str,
}

impl TwilioCtx<'_> {
    /// Sets the business side of `source` from its address (`To` of a message, `From` of a
    /// status).
    fn with_business(&self, mut source: SourceInfo, name: &str) -> SourceInfo {
        let business = self
            .params
            .get(name)
            .and_then(Address::parse)
            .map(Address::into_text);
        source.business_id.clone_from(&business);
        source.business_phone_number = business;
        source
    }

    /// The customer at `name` (`From` of a message, `To` of a status): phone number and user id
    /// from the address, `WaId` and `ExternalUserId`, and the profile name.
    fn customer(&self, name: &str) -> ContactProfile {
        let p = self.params;
        let address = p.get(name).and_then(Address::parse);
        let wa_id = p.get("WaId").and_then(Address::parse);
        let user_id = p.get("ExternalUserId").and_then(Address::parse);
        let phone = [&wa_id, &address]
            .into_iter()
            .find_map(|a| a.as_ref().and_then(Address::phone));
        let user = user_id.map(Address::into_text).or_else(|| {
            [&address, &wa_id]
                .into_iter()
                .find_map(|a| a.as_ref().and_then(Address::user))
                .map(str::to_owned)
        });
        ContactProfile {
            wa_id: phone.map(str::to_owned),
            user_id: user,
            username: None,
            name: p.get("ProfileName").map(str::to_owned),
        }
    }
}

/// The parameters of one webhook by name, each with its first value.
#[derive(Debug, Default)]
pub(super) struct Params(BTreeMap<String, String>);

impl Params {
    /// Reads a form body, or a JSON object when the body starts with `{`. `None` for a JSON body
    /// that is not an object of parameters.
    fn read(body: &[u8]) -> Option<Self> {
        let mut params = BTreeMap::new();
        if body.trim_ascii_start().starts_with(b"{") {
            let object: Map<String, Value> = serde_json::from_slice(body).ok()?;
            for (name, value) in object {
                let text = match value {
                    Value::Null => continue,
                    Value::String(s) => s,
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    nested @ (Value::Array(_) | Value::Object(_)) => nested.to_string(),
                };
                params.insert(name, text);
            }
        } else {
            for (name, value) in form_urlencoded::parse(body) {
                params
                    .entry(name.into_owned())
                    .or_insert_with(|| value.into_owned());
            }
        }
        Some(Self(params))
    }

    /// The value of `name`, unless absent or empty.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The message id: `MessageSid`, else the deprecated names of the same value.
    fn sid(&self) -> Option<&str> {
        self.get("MessageSid")
            .or_else(|| self.get("SmsMessageSid"))
            .or_else(|| self.get("SmsSid"))
    }

    /// Every parameter, as a JSON object of strings.
    pub(super) fn raw(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }

    /// The whole webhook as a `whatsapp.provider.event` named `kind`, its parameters as `raw`.
    fn passthrough(&self, ctx: &Ctx, source: SourceInfo, kind: &str) -> InboundEvent {
        let bytes = serde_json::to_vec(&self.raw()).unwrap_or_default();
        ctx.passthrough(source, kind, &bytes)
    }
}

/// A Twilio channel address (`whatsapp:+15550001111`, `whatsapp:US.1349…`) without its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Address {
    /// A phone number, as digits without `+`.
    Phone(String),
    /// Anything else: on WhatsApp, a business-scoped user id.
    User(String),
}

impl Address {
    /// The address in `text`; `None` when nothing is left once the prefix is taken off.
    pub(super) fn parse(text: &str) -> Option<Self> {
        // `whatsapp:`, `messenger:`…: a channel prefix is letters followed by a colon.
        let bare = match text.split_once(':') {
            Some((scheme, rest))
                if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                rest
            }
            _ => text,
        };
        let bare = bare.trim();
        let digits = bare.strip_prefix('+').unwrap_or(bare);
        if !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Some(Self::Phone(digits.to_owned()))
        } else if bare.is_empty() {
            None
        } else {
            Some(Self::User(bare.to_owned()))
        }
    }

    /// The phone number, if this is one.
    pub(super) fn phone(&self) -> Option<&str> {
        match self {
            Self::Phone(p) => Some(p),
            Self::User(_) => None,
        }
    }

    /// The user id, if this is one.
    pub(super) fn user(&self) -> Option<&str> {
        match self {
            Self::User(u) => Some(u),
            Self::Phone(_) => None,
        }
    }

    /// The digits or the user id.
    pub(super) fn into_text(self) -> String {
        match self {
            Self::Phone(s) | Self::User(s) => s,
        }
    }
}

#[cfg(test)]
mod tests;
