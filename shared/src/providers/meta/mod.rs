//! Meta WhatsApp Cloud API: `{"object":"whatsapp_business_account","entry":[…]}` → events.
//!
//! Owns: every `field` of the envelope. Values carrying `messaging_product`/`metadata` are split by
//! key (`messages`, `message_echoes`, `statuses`, `calls`, `errors`, `user_preferences`, …) into one
//! event per item; management fields (templates, account, phone number, flows…) become one
//! notification per change. Items are decoded one at a time from borrowed raw JSON, so a malformed
//! item costs only itself: it is passed through as `whatsapp.provider.event` with its bytes.
//!
//! This file walks the envelope (entries, changes, messages-like values and their context); the
//! items go to `messages` (with `payloads`), `statuses`, `calls`, `errors`, `groups` and
//! `customer_updates`, management fields to `fields`, the hand-over protocol
//! (`messaging_handovers`, and the marking of `standby` copies) to `handovers`.

mod calls;
mod customer_updates;
mod errors;
mod fields;
mod groups;
mod handovers;
mod messages;
mod payloads;
pub(crate) use payloads::ContactIn;
mod statuses;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::lenient::{opt_nonempty_string, opt_string};
use super::{Ctx, ParseError, content_key};
use crate::model::{ContactProfile, Direction, EventBody, EventType, InboundEvent, SourceInfo};

/// The only `object` value this parser understands.
const OBJECT: &str = "whatsapp_business_account";

pub(crate) fn parse(ctx: &Ctx, body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let root: &RawValue = serde_json::from_slice(body).map_err(ParseError::NotJson)?;

    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(default, deserialize_with = "opt_string")]
        object: Option<String>,
        #[serde(borrow, default)]
        entry: Option<Vec<&'a RawValue>>,
    }

    let envelope = match decode::<Envelope<'_>>(root) {
        Some(Envelope {
            object: Some(object),
            entry: Some(entries),
        }) if object == OBJECT => entries,
        Some(Envelope {
            object: Some(object),
            ..
        }) => {
            return Ok(vec![ctx.passthrough(ctx.source.clone(), &object, body)]);
        }
        _ => return Ok(vec![ctx.passthrough(ctx.source.clone(), "unknown", body)]),
    };

    let mut events = Vec::new();
    for entry in envelope {
        parse_entry(ctx, entry, &mut events);
    }
    Ok(events)
}

/// Decodes borrowed raw JSON into `T`, or `None` when it does not fit.
fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

/// Decodes raw JSON into an owned `T`; `None` when it does not fit.
fn decode_owned<T: DeserializeOwned>(raw: &RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

fn parse_entry(ctx: &Ctx, raw: &RawValue, out: &mut Vec<InboundEvent>) {
    #[derive(Deserialize)]
    struct Entry<'a> {
        #[serde(default, deserialize_with = "opt_string")]
        id: Option<String>,
        #[serde(borrow, default)]
        time: Option<&'a RawValue>,
        #[serde(borrow, default)]
        changes: Option<Vec<&'a RawValue>>,
    }
    #[derive(Deserialize)]
    struct Change<'a> {
        #[serde(default, deserialize_with = "opt_string")]
        field: Option<String>,
        #[serde(borrow, default)]
        value: Option<&'a RawValue>,
    }

    let Some(Entry {
        id,
        time,
        changes: Some(changes),
    }) = decode::<Entry<'_>>(raw)
    else {
        out.push(ctx.passthrough(ctx.source.clone(), "entry", raw.get().as_bytes()));
        return;
    };
    let mut source = ctx.source.clone();
    source.business_account_id = id;
    let entry = EntryCtx {
        ctx,
        source,
        time: time
            .and_then(|t| serde_json::from_str::<Value>(t.get()).ok())
            .and_then(|v| super::lenient::value_to_f64(&v).and_then(super::lenient::unix_time)),
        time_bytes: time.map(RawValue::get).unwrap_or_default(),
    };
    for change in changes {
        match decode::<Change<'_>>(change) {
            Some(Change {
                field: Some(field),
                value: Some(value),
            }) => {
                entry.change(&field, value, out);
            }
            _ => out.push(ctx.passthrough(entry.source.clone(), "change", change.get().as_bytes())),
        }
    }
}

/// What every change of one entry shares.
struct EntryCtx<'c> {
    ctx: &'c Ctx,
    /// Source with `business_account_id` set to the entry id.
    source: SourceInfo,
    /// `entry.time`, present on management fields.
    time: Option<DateTime<Utc>>,
    /// `entry.time` as sent, part of content-hash dedup keys.
    time_bytes: &'c str,
}

/// `metadata` of messages-like values.
#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default, deserialize_with = "opt_string")]
    display_phone_number: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    phone_number_id: Option<String>,
}

/// One `contacts[]` item: the customer's profile.
#[derive(Deserialize, Default)]
struct MetaContact {
    #[serde(default, deserialize_with = "opt_string")]
    wa_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    user_id: Option<String>,
    #[serde(default)]
    profile: Option<Profile>,
}

#[derive(Deserialize, Default)]
struct Profile {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    username: Option<String>,
}

/// The keys of a messages-like value, in the order their events are emitted. `metadata`,
/// `contacts` and `messaging_product` are context, not items.
const ITEM_KEYS: &[&str] = &[
    "messages",
    "message_echoes",
    "statuses",
    "calls",
    "errors",
    "user_preferences",
    "user_id_update",
    "state_sync",
    "history",
    "groups",
    "automatic_events",
    "user_actions",
];
const CONTEXT_KEYS: &[&str] = &["messaging_product", "metadata", "contacts"];

/// Context for the items of one messages-like value.
struct ValueCtx<'c> {
    entry: &'c EntryCtx<'c>,
    field: &'c str,
    source: SourceInfo,
    contacts: Vec<MetaContact>,
}

impl EntryCtx<'_> {
    fn change(&self, field: &str, value: &RawValue, out: &mut Vec<InboundEvent>) {
        if field == handovers::HANDOVERS {
            self.handovers(value, out);
            return;
        }
        let keyed: Option<BTreeMap<String, &RawValue>> = decode(value);
        match keyed {
            Some(map) if map.contains_key("metadata") || map.contains_key("messaging_product") => {
                let before = out.len();
                self.keyed_value(field, &map, out);
                if out.len() == before {
                    // Only context keys: still a verified item, so pass it on.
                    out.push(self.ctx.passthrough(
                        self.source.clone(),
                        field,
                        value.get().as_bytes(),
                    ));
                }
            }
            _ => out.push(self.field_notification(field, value)),
        }
    }

    fn keyed_value(
        &self,
        field: &str,
        map: &BTreeMap<String, &RawValue>,
        out: &mut Vec<InboundEvent>,
    ) {
        let metadata: Metadata = map
            .get("metadata")
            .and_then(|m| decode_owned(m))
            .unwrap_or_default();
        let mut source = self.source.clone();
        source.business_id = metadata.phone_number_id;
        source.business_phone_number = metadata.display_phone_number;
        let contacts = map
            .get("contacts")
            .and_then(|c| decode::<Vec<&RawValue>>(c))
            .unwrap_or_default()
            .into_iter()
            .filter_map(decode_owned::<MetaContact>)
            .collect();
        let vctx = ValueCtx {
            entry: self,
            field,
            source,
            contacts,
        };

        for key in ITEM_KEYS {
            let Some(raw) = map.get(*key) else { continue };
            match decode::<Vec<&RawValue>>(raw) {
                Some(items) => {
                    for item in items {
                        out.push(vctx.item(key, item));
                    }
                }
                None => out.push(vctx.unknown(key, raw)),
            }
        }
        for (key, raw) in map {
            if !ITEM_KEYS.contains(&key.as_str()) && !CONTEXT_KEYS.contains(&key.as_str()) {
                out.push(vctx.unknown(key, raw));
            }
        }
    }
}

impl ValueCtx<'_> {
    fn ctx(&self) -> &Ctx {
        self.entry.ctx
    }

    /// Wraps one item of this value as an event.
    fn emit(
        &self,
        event_type: EventType,
        key: String,
        at: Option<DateTime<Utc>>,
        body: EventBody,
    ) -> Option<InboundEvent> {
        Some(
            self.ctx()
                .event(event_type, key, at, self.source.clone(), body),
        )
    }

    fn item(&self, key: &str, raw: &RawValue) -> InboundEvent {
        let parsed = match key {
            "messages" => self.message(raw, Direction::Inbound),
            "message_echoes" => self.message(raw, Direction::Outbound),
            "statuses" => self.status(raw),
            "calls" => self.call(raw),
            "errors" => self.value_error(raw),
            "groups" => self.group(raw),
            _ => self.contact_notification(key, raw),
        };
        let mut event = parsed.unwrap_or_else(|| self.unknown(key, raw));
        if self.field == handovers::STANDBY {
            handovers::mark_standby(&mut event);
        }
        event
    }

    /// An item or key this parser cannot read: passed through with its bytes.
    fn unknown(&self, key: &str, raw: &RawValue) -> InboundEvent {
        self.ctx().passthrough(
            self.source.clone(),
            &format!("{}.{key}", self.field),
            raw.get().as_bytes(),
        )
    }

    /// The profile in `contacts[]` for the customer with this phone number or user id. With a
    /// single contact and no ids to match (username-only users), that contact.
    fn profile(&self, wa_id: Option<&str>, user_id: Option<&str>) -> Option<ContactProfile> {
        let found = self.contacts.iter().find(|c| {
            (wa_id.is_some() && c.wa_id.as_deref() == wa_id)
                || (user_id.is_some() && c.user_id.as_deref() == user_id)
        });
        let found = found.or(match (wa_id, user_id, self.contacts.as_slice()) {
            (None, None, [only]) => Some(only),
            _ => None,
        });
        let profile = found.and_then(|c| c.profile.as_ref());
        let result = ContactProfile {
            wa_id: wa_id
                .map(str::to_owned)
                .or_else(|| found.and_then(|c| c.wa_id.clone())),
            user_id: user_id
                .map(str::to_owned)
                .or_else(|| found.and_then(|c| c.user_id.clone())),
            username: profile.and_then(|p| p.username.clone()),
            name: profile.and_then(|p| p.name.clone()),
        };
        (result != ContactProfile::default()).then_some(result)
    }

    fn content_key(&self, key: &str, raw: &RawValue) -> String {
        content_key(
            self.source.provider,
            &format!("{}.{key}", self.field),
            &[
                self.source
                    .business_account_id
                    .as_deref()
                    .unwrap_or_default()
                    .as_bytes(),
                self.source
                    .business_id
                    .as_deref()
                    .unwrap_or_default()
                    .as_bytes(),
                raw.get().as_bytes(),
            ],
        )
    }
}

/// The raw JSON as an object, or `None` when it is anything else.
fn object(raw: &RawValue) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(raw.get()).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn raw_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

#[cfg(test)]
pub(crate) mod tests;
