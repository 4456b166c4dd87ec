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
use messages::MetaMessage;
mod payloads;
pub(crate) use payloads::ContactIn;
mod statuses;
use statuses::MetaStatus;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

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
    if fast_paths()
        && let Some(events) = parse_strict(ctx, body)
    {
        return Ok(events);
    }
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

/// The common case in one typed pass: a well-formed envelope whose changes all carry
/// messages-like values (`metadata` or `messaging_product`, at least one item, every item key
/// a list), read down to the items in one scan of the body. `None` when anything is off
/// (management fields, hand-overs, a malformed level), and [`parse`] then goes level by
/// level, so a malformed entry or change still costs only itself. Both ways give the same
/// events (a test compares them).
fn parse_strict(ctx: &Ctx, body: &[u8]) -> Option<Vec<InboundEvent>> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        object: Cow<'a, str>,
        #[serde(borrow)]
        entry: Vec<Entry<'a>>,
    }
    #[derive(Deserialize)]
    struct Entry<'a> {
        #[serde(default, deserialize_with = "opt_string")]
        id: Option<String>,
        #[serde(borrow, default)]
        time: Option<&'a RawValue>,
        #[serde(borrow)]
        changes: Vec<Change<'a>>,
    }
    #[derive(Deserialize)]
    struct Change<'a> {
        #[serde(borrow)]
        field: Cow<'a, str>,
        #[serde(borrow)]
        value: FastKeyed<'a, true>,
    }

    // The body checked as UTF-8 once, then read as text: read as bytes, serde_json checks
    // every string it borrows on its own (a call for each of a batch's few thousand strings).
    // A body that is not UTF-8 as a whole goes level by level.
    let text = std::str::from_utf8(body).ok()?;
    let envelope: Envelope<'_> = serde_json::from_str(text).ok()?;
    if envelope.object != OBJECT {
        return None;
    }
    let mut events = Vec::new();
    for entry in envelope.entry {
        let entry_ctx = EntryCtx::new(ctx, entry.id, entry.time);
        for change in entry.changes {
            let FastKeyed(map) = change.value;
            let messages_like =
                map.contains_key("metadata") || map.contains_key("messaging_product");
            if change.field == handovers::HANDOVERS || !messages_like {
                return None;
            }
            let before = events.len();
            if !entry_ctx.keyed_value(&change.field, map, &mut events) || events.len() == before {
                return None;
            }
        }
    }
    Some(events)
}

#[cfg(test)]
thread_local! {
    /// Tests turn the one-pass readers off to check that the level-by-level ones agree.
    pub(crate) static FAST_PATHS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Whether the one-pass readers ([`parse_strict`], [`FastKeyed`]) are tried first.
#[cfg(test)]
fn fast_paths() -> bool {
    FAST_PATHS.with(std::cell::Cell::get)
}

#[cfg(not(test))]
const fn fast_paths() -> bool {
    true
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
    let entry = EntryCtx::new(ctx, id, time);
    for change in changes {
        match decode::<Change<'_>>(change) {
            Some(Change {
                field: Some(field),
                value: Some(value),
            }) => {
                entry.change(&field, value, out);
            }
            _ => {
                let source = entry.source().clone();
                out.push(ctx.passthrough(source, "change", change.get().as_bytes()));
            }
        }
    }
}

/// What every change of one entry shares.
struct EntryCtx<'c> {
    ctx: &'c Ctx,
    /// `entry.id`: the business account.
    id: Option<String>,
    /// Source with `business_account_id` set to the entry id, made when first asked for
    /// ([`EntryCtx::source`]): messages-like values make their own.
    source: std::cell::OnceCell<Arc<SourceInfo>>,
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

/// A change's value by key: the item lists (`messages`, `statuses`, … when they are lists)
/// split into their items, everything else as sent.
type Keyed<'a> = BTreeMap<Cow<'a, str>, Slot<'a>>;

/// One key of a [`Keyed`] value.
enum Slot<'a> {
    /// An item key whose value is a list: its items.
    Items(Vec<&'a RawValue>),
    /// Any other value (an item key that is not a list included).
    Raw(&'a RawValue),
    /// `messages`/`message_echoes` read typed in the one pass ([`parse_strict`] only), so a
    /// message's text is scanned once.
    Messages(Vec<MetaMessage<'a>>),
    /// `statuses` read typed in the one pass.
    Statuses(Vec<MetaStatus<'a>>),
    /// `metadata`, read typed in the one pass.
    Metadata(Metadata),
    /// `contacts`, read typed in the one pass (level by level a malformed contact is skipped
    /// alone; here it fails the pass).
    Contacts(Vec<MetaContact>),
}

/// Reads an object in one scan, splitting the item keys' lists as it goes; fails when an item
/// key's value is not a list (then [`keyed`] splits key by key). With `TYPED` (the one pass of
/// [`parse_strict`]), messages, statuses, `metadata` and `contacts` are read typed as well,
/// and fail it when they do not fit.
struct FastKeyed<'a, const TYPED: bool>(Keyed<'a>);

impl<'de: 'a, 'a, const TYPED: bool> Deserialize<'de> for FastKeyed<'a, TYPED> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a, const TYPED: bool>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a, const TYPED: bool> serde::de::Visitor<'de> for Visit<'a, TYPED> {
            type Value = FastKeyed<'a, TYPED>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                /// A key, borrowed from the body unless it has escapes.
                #[derive(Deserialize)]
                struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

                let mut map = Keyed::new();
                while let Some(Key(key)) = m.next_key::<Key<'de>>()? {
                    let slot = match (TYPED, key.as_ref()) {
                        (true, "messages" | "message_echoes") => Slot::Messages(m.next_value()?),
                        (true, "statuses") => Slot::Statuses(m.next_value()?),
                        (true, "metadata") => Slot::Metadata(m.next_value()?),
                        (true, "contacts") => Slot::Contacts(m.next_value()?),
                        (_, k) if ITEM_KEYS.contains(&k) => Slot::Items(m.next_value()?),
                        _ => Slot::Raw(m.next_value()?),
                    };
                    map.insert(key, slot);
                }
                Ok(FastKeyed(map))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Decodes a change's value as [`Keyed`]; `None` when it is not an object.
fn keyed(raw: &RawValue) -> Option<Keyed<'_>> {
    if fast_paths()
        && let Some(FastKeyed(map)) = decode::<FastKeyed<'_, false>>(raw)
    {
        return Some(map);
    }
    let map: BTreeMap<String, &RawValue> = decode(raw)?;
    Some(
        map.into_iter()
            .map(|(key, raw)| {
                let items = ITEM_KEYS
                    .contains(&key.as_str())
                    .then(|| decode::<Vec<&RawValue>>(raw))
                    .flatten();
                (Cow::Owned(key), items.map_or(Slot::Raw(raw), Slot::Items))
            })
            .collect(),
    )
}

/// Context for the items of one messages-like value.
struct ValueCtx<'c> {
    entry: &'c EntryCtx<'c>,
    field: &'c str,
    /// One per value, shared by its events.
    source: Arc<SourceInfo>,
    contacts: Vec<MetaContact>,
}

impl<'c> EntryCtx<'c> {
    /// The context of the entry with this `id` and `time`.
    fn new(ctx: &'c Ctx, id: Option<String>, time: Option<&'c RawValue>) -> Self {
        EntryCtx {
            ctx,
            id,
            source: std::cell::OnceCell::new(),
            time: time
                .and_then(|t| serde_json::from_str::<Value>(t.get()).ok())
                .and_then(|v| super::lenient::value_to_f64(&v).and_then(super::lenient::unix_time)),
            time_bytes: time.map(RawValue::get).unwrap_or_default(),
        }
    }

    /// The entry's source, shared by the events that need no more: see
    /// [`EntryCtx::own_source`].
    fn source(&self) -> &Arc<SourceInfo> {
        self.source.get_or_init(|| Arc::new(self.own_source()))
    }

    /// A copy of the gateway's source with `business_account_id` set to the entry id, for a
    /// value that adds its own fields (a messages-like value's `metadata`).
    fn own_source(&self) -> SourceInfo {
        let mut source = self.ctx.source.clone();
        source.business_account_id.clone_from(&self.id);
        source
    }

    fn change(&self, field: &str, value: &RawValue, out: &mut Vec<InboundEvent>) {
        if field == handovers::HANDOVERS {
            self.handovers(value, out);
            return;
        }
        match keyed(value) {
            Some(map) if map.contains_key("metadata") || map.contains_key("messaging_product") => {
                let before = out.len();
                // Read level by level: no typed slots, so every item is read.
                let complete = self.keyed_value(field, map, out);
                debug_assert!(complete, "typed items outside the one pass");
                if out.len() == before {
                    // Only context keys: still a verified item, so pass it on.
                    out.push(self.ctx.passthrough(
                        self.source().clone(),
                        field,
                        value.get().as_bytes(),
                    ));
                }
            }
            _ => out.push(self.field_notification(field, value)),
        }
    }

    /// The events of a messages-like value. `false` when an item read typed in the one pass
    /// needs its raw JSON (see [`ValueCtx::typed_message`], [`ValueCtx::typed_status`]): the
    /// caller then starts over level by level.
    #[must_use]
    fn keyed_value(&self, field: &str, mut map: Keyed<'_>, out: &mut Vec<InboundEvent>) -> bool {
        let metadata: Metadata = match map.remove("metadata") {
            Some(Slot::Metadata(metadata)) => metadata,
            Some(Slot::Raw(raw)) => decode_owned(raw).unwrap_or_default(),
            _ => Metadata::default(),
        };
        let mut source = self.own_source();
        source.business_id = metadata.phone_number_id;
        source.business_phone_number = metadata.display_phone_number;
        let source = Arc::new(source);
        let contacts = match map.remove("contacts") {
            Some(Slot::Contacts(contacts)) => contacts,
            Some(Slot::Raw(raw)) => decode::<Vec<&RawValue>>(raw)
                .unwrap_or_default()
                .into_iter()
                .filter_map(decode_owned::<MetaContact>)
                .collect(),
            _ => Vec::new(),
        };
        let vctx = ValueCtx {
            entry: self,
            field,
            source,
            contacts,
        };

        out.reserve(
            map.values()
                .map(|slot| match slot {
                    Slot::Items(items) => items.len(),
                    Slot::Messages(items) => items.len(),
                    Slot::Statuses(items) => items.len(),
                    Slot::Raw(_) | Slot::Metadata(_) | Slot::Contacts(_) => 1,
                })
                .sum(),
        );
        for key in ITEM_KEYS {
            match map.remove(*key) {
                Some(Slot::Items(items)) => {
                    for item in items {
                        out.push(vctx.item(key, item));
                    }
                }
                Some(Slot::Messages(items)) => {
                    let direction = match *key {
                        "message_echoes" => Direction::Outbound,
                        _ => Direction::Inbound,
                    };
                    for item in items {
                        let Some(event) = vctx.typed_message(item, direction) else {
                            return false;
                        };
                        out.push(event);
                    }
                }
                Some(Slot::Statuses(items)) => {
                    for item in items {
                        let Some(event) = vctx.typed_status(item) else {
                            return false;
                        };
                        out.push(event);
                    }
                }
                Some(Slot::Raw(raw)) => out.push(vctx.unknown(key, raw)),
                // Context keys are never item keys.
                Some(Slot::Metadata(_) | Slot::Contacts(_)) | None => {}
            }
        }
        // The item keys are taken: what is left is context and keys this parser does not know.
        for (key, slot) in &map {
            if let Slot::Raw(raw) = slot
                && !CONTEXT_KEYS.contains(&key.as_ref())
            {
                out.push(vctx.unknown(key, raw));
            }
        }
        true
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
        self.channel_marked(parsed.unwrap_or_else(|| self.unknown(key, raw)))
    }

    /// The item's event, marked when it came on the `standby` channel.
    fn channel_marked(&self, mut event: InboundEvent) -> InboundEvent {
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
