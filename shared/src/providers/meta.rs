//! Meta WhatsApp Cloud API: `{"object":"whatsapp_business_account","entry":[…]}` → events.
//!
//! Owns: every `field` of the envelope. Values carrying `messaging_product`/`metadata` are split by
//! key (`messages`, `message_echoes`, `statuses`, `calls`, `errors`, `user_preferences`, …) into one
//! event per item; management fields (templates, account, phone number, flows…) become one
//! notification per change. Items are decoded one at a time from borrowed raw JSON, so a malformed
//! item costs only itself: it is passed through as `whatsapp.provider.event` with its bytes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::lenient::{
    opt_bool, opt_f64, opt_i64, opt_nonempty_string, opt_string, opt_unix_time, value_to_string,
};
use super::{Ctx, LocationIn, ParseError, content_key};
use crate::model::{
    BillingConversation, ButtonData, ContactPhone, ContactProfile, ContactsData, Direction,
    EditData, EventBody, EventType, InboundEvent, InteractiveData, MediaData, Message,
    MessageContent, MessageContext, MessageError, MessageStatus, NotificationData, OrderData,
    OrderItem, Participant, Pricing, ReactionData, Referral, ReferredProduct, ReplyTo, RevokeData,
    SharedContact, SourceInfo, Subject, SubjectKind, SystemData, TemplateMessageData, TextData,
    UnknownData, UnsupportedData,
};

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

    /// A management field (templates, account, phone number, flows…): one notification.
    fn field_notification(&self, field: &str, value: &RawValue) -> InboundEvent {
        let Some(v) = object(value) else {
            return self
                .ctx
                .passthrough(self.source.clone(), field, value.get().as_bytes());
        };
        let s = |k: &str| v.get(k).cloned().and_then(value_to_string);
        let template = || {
            let mut subject = Subject::new(SubjectKind::Template, s("message_template_id"));
            subject.name = s("message_template_name");
            Some(subject)
        };
        let phone_number = || {
            let mut subject = Subject::new(SubjectKind::PhoneNumber, s("display_phone_number"));
            subject.name = s("requested_verified_name");
            Some(subject)
        };
        let account = Some(Subject::new(
            SubjectKind::Account,
            self.source.business_account_id.clone(),
        ));
        let mut n = NotificationData::new(field, Value::Null);
        let event_type = match field {
            "message_template_status_update" => {
                (n.kind, n.status, n.reason, n.subject) =
                    (s("event"), s("event"), s("reason"), template());
                EventType::TemplateStatusUpdated
            }
            "message_template_quality_update" => {
                n.kind = s("new_quality_score");
                (n.status, n.previous_status, n.subject) = (
                    s("new_quality_score"),
                    s("previous_quality_score"),
                    template(),
                );
                EventType::TemplateQualityUpdated
            }
            "message_template_components_update" => {
                n.subject = template();
                EventType::TemplateComponentsUpdated
            }
            "template_category_update" => {
                let impending = v.contains_key("correct_category");
                n.kind = Some(if impending { "impending" } else { "completed" }.to_owned());
                (n.status, n.previous_status, n.subject) =
                    (s("new_category"), s("previous_category"), template());
                n.reason = s("correct_category").map(|c| format!("correct category: {c}"));
                EventType::TemplateCategoryUpdated
            }
            "template_correct_category_detection" => {
                n.kind = Some("correct_category_detection".to_owned());
                (n.status, n.previous_status, n.subject) =
                    (s("correct_category"), s("category"), template());
                EventType::TemplateCategoryUpdated
            }
            "account_update" => {
                (n.kind, n.subject) = (s("event"), account);
                n.reason = first_restriction(&v);
                EventType::AccountUpdated
            }
            "account_review_update" => {
                (n.kind, n.status, n.subject) = (s("decision"), s("decision"), account);
                EventType::AccountReviewUpdated
            }
            "account_alerts" => {
                let alert = |k: &str| {
                    v.get("alert_info")
                        .and_then(|a| a.get(k))
                        .cloned()
                        .and_then(value_to_string)
                };
                (n.kind, n.status, n.reason) = (
                    alert("alert_type"),
                    alert("alert_status"),
                    alert("alert_description"),
                );
                let kind = match s("entity_type").as_deref() {
                    Some("PHONE_NUMBER") => SubjectKind::PhoneNumber,
                    _ => SubjectKind::Account,
                };
                n.subject = Some(Subject::new(kind, s("entity_id")));
                EventType::AccountAlert
            }
            "business_capability_update" => {
                n.subject = account;
                EventType::AccountCapabilityUpdated
            }
            "security" => {
                (n.kind, n.subject) = (s("event"), phone_number());
                EventType::AccountSecurity
            }
            "payment_configuration_update"
            | "partner_solutions"
            | "business_username_update"
            | "business_username_updates"
            | "account_settings_update" => {
                n.kind = s("event")
                    .or_else(|| s("type"))
                    .or_else(|| Some(field.to_owned()));
                n.status = s("status").or_else(|| s("solution_status"));
                n.subject = account;
                EventType::AccountSettingsUpdated
            }
            "phone_number_quality_update" => {
                n.kind = s("event");
                n.status = s("current_limit").or_else(|| s("max_daily_conversations_per_business"));
                (n.previous_status, n.subject) = (s("old_limit"), phone_number());
                EventType::PhoneNumberQualityUpdated
            }
            "phone_number_name_update" => {
                (n.kind, n.status, n.reason) =
                    (s("decision"), s("decision"), s("rejection_reason"));
                n.subject = phone_number();
                EventType::PhoneNumberNameUpdated
            }
            "flows" => {
                (n.kind, n.status, n.previous_status) =
                    (s("event"), s("new_status"), s("old_status"));
                n.reason = s("message");
                n.subject = Some(Subject::new(SubjectKind::Flow, s("flow_id")));
                EventType::FlowUpdated
            }
            _ => {
                n.kind = s("event").or_else(|| s("type")).or_else(|| s("status"));
                EventType::ProviderEvent
            }
        };
        n.occurred_at = self.time;
        n.raw = Value::Object(v);
        let key = content_key(
            self.source.provider,
            field,
            &[
                self.source
                    .business_account_id
                    .as_deref()
                    .unwrap_or_default()
                    .as_bytes(),
                self.time_bytes.as_bytes(),
                value.get().as_bytes(),
            ],
        );
        self.ctx.event(
            event_type,
            key,
            self.time,
            self.source.clone(),
            EventBody::Notification(n),
        )
    }
}

/// `"RESTRICTED_BIZ_INITIATED_MESSAGING"` from `restriction_info[0].restriction_type`, if any.
fn first_restriction(v: &Map<String, Value>) -> Option<String> {
    v.get("restriction_info")?
        .get(0)?
        .get("restriction_type")
        .cloned()
        .and_then(value_to_string)
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
        parsed.unwrap_or_else(|| self.unknown(key, raw))
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

    fn message(&self, raw: &RawValue, direction: Direction) -> Option<InboundEvent> {
        let m: MetaMessage<'_> = decode(raw)?;
        let id = m.id.clone()?;
        let mut message = Message::new(id.clone(), direction);
        message.timestamp = m.timestamp;
        let business = self.source.business_phone_number.clone();
        let contact = match direction {
            Direction::Inbound => {
                (message.from, message.from_user_id) = (m.from.clone(), m.from_user_id.clone());
                message.to = business;
                self.profile(m.from.as_deref(), m.from_user_id.as_deref())
            }
            Direction::Outbound => {
                message.from = m.from.clone().or(business);
                (message.to, message.to_user_id) = (m.to.clone(), m.to_user_id.clone());
                self.profile(m.to.as_deref(), m.to_user_id.as_deref())
            }
        };
        if let Some(group) = &m.group_id {
            (message.chat_id, message.group_id) = (Some(group.clone()), Some(group.clone()));
        }
        message.context = m
            .context
            .and_then(decode_owned::<ContextIn>)
            .map(ContextIn::into_model);
        message.referral = m.referral.and_then(referral);
        message.set_errors(errors(m.errors));
        let content = m.content(raw);
        let event_type = match (&content, direction) {
            (MessageContent::Edit(_), _) => EventType::MessageEdited,
            (MessageContent::Revoke(_), _) => EventType::MessageRevoked,
            (_, Direction::Inbound) => EventType::MessageReceived,
            (_, Direction::Outbound) => EventType::MessageSent,
        };
        if direction == Direction::Outbound {
            message.status = Some(MessageStatus::Sent);
        }
        message.content = Some(content);
        let business_id = self.source.business_id.as_deref().unwrap_or_default();
        let key = format!("meta:{business_id}:{id}");
        let body = EventBody::message(message, contact);
        Some(
            self.ctx()
                .event(event_type, key, m.timestamp, self.source.clone(), body),
        )
    }

    fn status(&self, raw: &RawValue) -> Option<InboundEvent> {
        let s: MetaStatus<'_> = decode(raw)?;
        if s.kind.as_deref() == Some("call") || self.field == "calls" {
            return self.call_status(&s, raw);
        }
        let id = s.id.clone()?;
        let status = MessageStatus::from_wire(s.status.as_deref()?);
        let event_type = match status {
            MessageStatus::Sent => EventType::MessageSent,
            MessageStatus::Delivered => EventType::MessageDelivered,
            MessageStatus::Read | MessageStatus::Played => EventType::MessageRead,
            MessageStatus::Failed => EventType::MessageFailed,
            MessageStatus::Deleted => EventType::MessageRevoked,
            _ => return None,
        };
        let mut message = Message::new(id.clone(), Direction::Outbound);
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
        message.set_errors(errors(s.errors));
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

    fn call(&self, raw: &RawValue) -> Option<InboundEvent> {
        let c: CallIn = decode_owned(raw)?;
        let id = c.id.clone()?;
        let user_initiated = c.direction.as_deref() == Some("USER_INITIATED");
        let event_type = match c.event.as_deref() {
            Some("connect") if user_initiated => EventType::CallReceived,
            Some("connect") => EventType::CallAccepted,
            Some("terminate") => EventType::CallEnded,
            _ => EventType::CallUpdated,
        };
        let mut n = NotificationData::new(self.field, raw_value(raw));
        (n.kind, n.status, n.occurred_at) = (c.event.clone(), c.status.clone(), c.timestamp);
        n.reason = c.direction.clone();
        n.subject = Some(Subject::new(SubjectKind::Call, Some(id.clone())));
        let p = &c.parties;
        n.contact = if user_initiated {
            self.profile(p.from.as_deref(), p.from_user_id.as_deref())
        } else {
            self.profile(p.to.as_deref(), p.to_user_id.as_deref())
        };
        let event = c.event.as_deref().unwrap_or("call");
        let key = format!("meta:call:{id}:{event}");
        self.emit(event_type, key, c.timestamp, EventBody::Notification(n))
    }

    /// A value-level `errors[]` item: a problem not tied to one message.
    fn value_error(&self, raw: &RawValue) -> Option<InboundEvent> {
        let e: ErrorIn = decode_owned(raw)?;
        let error = e.into_model();
        let mut n = NotificationData::new(self.field, raw_value(raw));
        n.kind = error.error_code.map(|c| c.to_string());
        n.reason = error.details.or(error.error_message);
        n.subject = Some(Subject::new(
            SubjectKind::PhoneNumber,
            self.source.business_id.clone(),
        ));
        let key = self.content_key("errors", raw);
        self.emit(
            EventType::ProviderError,
            key,
            self.entry.time,
            EventBody::Notification(n),
        )
    }

    /// Groups API lifecycle, participant and settings updates.
    fn group(&self, raw: &RawValue) -> Option<InboundEvent> {
        let g: GroupIn = decode_owned(raw)?;
        let kind = g.kind.clone()?;
        let event_type = if kind.contains("participant") || kind.contains("join_request") {
            EventType::GroupParticipantsUpdated
        } else {
            EventType::GroupUpdated
        };
        let mut n = NotificationData::new(self.field, raw_value(raw));
        (n.kind, n.occurred_at) = (Some(kind), g.timestamp);
        let mut subject = Subject::new(SubjectKind::Group, g.group_id.clone());
        subject.name = g.subject.clone();
        n.subject = Some(subject);
        n.chat_id = g.group_id.clone();
        n.participants = g
            .added_participants
            .iter()
            .chain(&g.removed_participants)
            .map(|p| Participant {
                id: p.user_id.clone().or(p.wa_id.clone()).or(p.input.clone()),
                phone_number: p.wa_id.clone(),
                ..Participant::default()
            })
            .collect();
        let key = self.content_key("groups", raw);
        self.emit(event_type, key, g.timestamp, EventBody::Notification(n))
    }

    /// Per-customer notifications: preferences, user id changes, contact-book sync, history,
    /// automatic events, link clicks.
    fn contact_notification(&self, key: &str, raw: &RawValue) -> Option<InboundEvent> {
        let v = object(raw)?;
        let s = |k: &str| v.get(k).cloned().and_then(value_to_string);
        let nested = |outer: &str, k: &str| {
            v.get(outer)
                .and_then(|o| o.get(k))
                .cloned()
                .and_then(value_to_string)
        };
        let time = v
            .get("timestamp")
            .and_then(super::lenient::value_to_f64)
            .and_then(super::lenient::unix_time);
        let mut n = NotificationData::new(self.field, Value::Null);
        n.occurred_at = time.or(self.entry.time);
        let event_type = match key {
            "user_preferences" => {
                (n.kind, n.status, n.reason) = (s("category"), s("value"), s("detail"));
                n.contact = self.profile(s("wa_id").as_deref(), s("user_id").as_deref());
                EventType::ContactPreferencesUpdated
            }
            "user_id_update" => {
                n.kind = Some("user_id_changed".to_owned());
                (n.status, n.previous_status) =
                    (nested("user_id", "current"), nested("user_id", "previous"));
                n.reason = s("detail");
                n.contact = self.profile(s("wa_id").as_deref(), n.status.as_deref());
                EventType::ContactUserIdChanged
            }
            "state_sync" => {
                n.kind = s("action");
                let wa_id = nested("contact", "phone_number");
                let user_id = nested("contact", "user_id");
                let mut contact = self
                    .profile(wa_id.as_deref(), user_id.as_deref())
                    .unwrap_or_default();
                contact.name = nested("contact", "full_name").or(contact.name);
                contact.username = nested("contact", "username").or(contact.username);
                n.contact = Some(contact);
                n.occurred_at = v
                    .get("metadata")
                    .and_then(|m| m.get("timestamp"))
                    .and_then(super::lenient::value_to_f64)
                    .and_then(super::lenient::unix_time)
                    .or(n.occurred_at);
                EventType::ContactSynced
            }
            "history" => {
                n.kind = Some(
                    if v.contains_key("errors") {
                        "declined"
                    } else {
                        "chunk"
                    }
                    .to_owned(),
                );
                n.status = nested("metadata", "progress");
                EventType::HistorySynced
            }
            _ => {
                n.kind = s("event_name")
                    .or_else(|| s("action_type"))
                    .or_else(|| s("type"));
                EventType::ProviderEvent
            }
        };
        n.raw = Value::Object(v);
        let dedup = self.content_key(key, raw);
        self.emit(event_type, dedup, n.occurred_at, EventBody::Notification(n))
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

/// One `messages[]` / `message_echoes[]` item. Type payloads stay raw until the type is known.
#[derive(Deserialize)]
struct MetaMessage<'a> {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    from_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group_id: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(borrow, default)]
    referral: Option<&'a RawValue>,
    #[serde(borrow, default)]
    errors: Option<&'a RawValue>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    image: Option<&'a RawValue>,
    #[serde(borrow, default)]
    video: Option<&'a RawValue>,
    #[serde(borrow, default)]
    audio: Option<&'a RawValue>,
    #[serde(borrow, default)]
    document: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sticker: Option<&'a RawValue>,
    #[serde(borrow, default)]
    location: Option<&'a RawValue>,
    #[serde(borrow, default)]
    contacts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    interactive: Option<&'a RawValue>,
    #[serde(borrow, default)]
    button: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reaction: Option<&'a RawValue>,
    #[serde(borrow, default)]
    order: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    unsupported: Option<&'a RawValue>,
    #[serde(borrow, default)]
    edit: Option<&'a RawValue>,
    #[serde(borrow, default)]
    revoke: Option<&'a RawValue>,
    #[serde(borrow, default)]
    template: Option<&'a RawValue>,
}

impl MetaMessage<'_> {
    /// The content for `type`, or `unknown` with the type's raw object when it cannot be read.
    fn content(&self, whole: &RawValue) -> MessageContent {
        let kind = self.kind.as_deref().unwrap_or("unknown");
        let media = |raw: Option<&RawValue>| {
            raw.and_then(decode_owned::<MediaIn>)
                .map(MediaIn::into_model)
        };
        let parsed = match kind {
            "text" => self
                .text
                .and_then(decode_owned::<TextIn>)
                .and_then(|t| t.body)
                .map(|body| MessageContent::Text(TextData { body })),
            "image" => media(self.image).map(MessageContent::Image),
            "video" => media(self.video).map(MessageContent::Video),
            "audio" => media(self.audio).map(MessageContent::Audio),
            "document" => media(self.document).map(MessageContent::Document),
            "sticker" => media(self.sticker).map(MessageContent::Sticker),
            "location" => self
                .location
                .and_then(decode_owned::<LocationIn>)
                .and_then(LocationIn::into_model)
                .map(MessageContent::Location),
            "contacts" => self
                .contacts
                .and_then(decode_owned::<Vec<ContactIn>>)
                .map(|cards| {
                    MessageContent::Contacts(ContactsData {
                        contacts: cards.into_iter().map(ContactIn::into_model).collect(),
                    })
                }),
            "interactive" => self
                .interactive
                .and_then(interactive)
                .map(MessageContent::Interactive),
            "button" => self
                .button
                .and_then(decode_owned::<ButtonData>)
                .map(MessageContent::Button),
            "reaction" => self.reaction.and_then(decode_owned::<ReactionIn>).map(|r| {
                let removed = r.emoji.is_none();
                MessageContent::Reaction(ReactionData {
                    message_id: r.message_id,
                    emoji: r.emoji,
                    removed,
                })
            }),
            "order" => self
                .order
                .and_then(decode_owned::<OrderIn>)
                .map(|o| MessageContent::Order(o.into_model())),
            "system" => self
                .system
                .and_then(decode_owned::<SystemIn>)
                .map(|s| MessageContent::System(s.into_model())),
            "request_welcome" => Some(MessageContent::RequestWelcome),
            "unsupported" | "unknown" => Some(MessageContent::Unsupported(UnsupportedData {
                provider_type: self
                    .unsupported
                    .and_then(decode_owned::<UnsupportedIn>)
                    .and_then(|u| u.kind),
            })),
            "edit" => self
                .edit
                .and_then(decode_owned::<EditIn>)
                .map(|e| MessageContent::Edit(e.into_model())),
            "revoke" => self.revoke.and_then(decode_owned::<RevokeIn>).map(|r| {
                MessageContent::Revoke(RevokeData {
                    revoked_message_id: r.original_message_id,
                    before: None,
                })
            }),
            "template" => self.template.and_then(decode_owned::<Value>).map(|raw| {
                let s = |p: &str| raw.pointer(p).cloned().and_then(value_to_string);
                MessageContent::Template(TemplateMessageData {
                    name: s("/name"),
                    language: s("/language/code"),
                    raw: Some(raw),
                })
            }),
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            let raw = serde_json::from_str::<Value>(whole.get())
                .ok()
                .and_then(|mut v| v.get_mut(kind).map(Value::take))
                .unwrap_or(Value::Null);
            MessageContent::Unknown(UnknownData {
                provider_type: kind.to_owned(),
                raw,
            })
        })
    }
}

#[derive(Deserialize)]
struct TextIn {
    #[serde(default, deserialize_with = "opt_string")]
    body: Option<String>,
}

#[derive(Deserialize)]
struct MediaIn {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    url: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    mime_type: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    sha256: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    filename: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    caption: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    voice: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    animated: Option<bool>,
}

impl MediaIn {
    fn into_model(self) -> MediaData {
        MediaData {
            id: self.id,
            url: self.url,
            mime_type: self.mime_type,
            sha256: self.sha256,
            filename: self.filename,
            caption: self.caption,
            voice: self.voice,
            animated: self.animated,
            error: None,
        }
    }
}

/// A shared contact card as Meta sends it.
#[derive(Deserialize)]
struct ContactIn {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    phones: Vec<ContactPhone>,
    #[serde(default)]
    emails: Vec<Value>,
    #[serde(default)]
    addresses: Vec<Value>,
    #[serde(default)]
    urls: Vec<Value>,
    #[serde(default)]
    org: Option<Value>,
    #[serde(default, deserialize_with = "opt_string")]
    birthday: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    vcard: Option<String>,
}

impl ContactIn {
    fn into_model(self) -> SharedContact {
        let display = self
            .name
            .as_ref()
            .and_then(|n| n.get("formatted_name"))
            .cloned()
            .and_then(value_to_string);
        SharedContact {
            name: display,
            name_parts: self.name,
            phones: self.phones,
            emails: self.emails,
            addresses: self.addresses,
            urls: self.urls,
            org: self.org,
            birthday: self.birthday,
            vcard: self.vcard,
        }
    }
}

/// `interactive`: a reply to a button, list row, flow or call-permission request.
fn interactive(raw: &RawValue) -> Option<InteractiveData> {
    let mut v = object(raw)?;
    let kind = v.get("type").cloned().and_then(value_to_string)?;
    let reply = v.remove(&kind).unwrap_or(Value::Null);
    let s = |k: &str| reply.get(k).cloned().and_then(value_to_string);
    let mut data = InteractiveData {
        kind: kind.clone(),
        id: s("id"),
        title: s("title"),
        description: s("description"),
        name: s("name"),
        body: s("body"),
        response: None,
        raw: None,
    };
    // A missing or `null` object stays absent: `Some(Null)` would serialize as `null` and read
    // back as `None`, changing the event on its way through the queue.
    match kind.as_str() {
        "button_reply" | "list_reply" => {}
        "nfm_reply" => {
            // `response_json` is JSON inside a string; keep the string if it does not decode.
            data.response = reply
                .get("response_json")
                .map(|r| match r {
                    Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| r.clone()),
                    other => other.clone(),
                })
                .filter(|r| !r.is_null());
        }
        _ => data.raw = Some(reply).filter(|r| !r.is_null()),
    }
    Some(data)
}

#[derive(Deserialize)]
struct ReactionIn {
    #[serde(default, deserialize_with = "opt_string")]
    message_id: Option<String>,
    /// Removal is `"emoji": ""` or no `emoji` at all.
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct OrderIn {
    #[serde(default, deserialize_with = "opt_string")]
    catalog_id: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    text: Option<String>,
    #[serde(default)]
    product_items: Vec<OrderItemIn>,
}

#[derive(Deserialize)]
#[serde(from = "OrderItemRepr")]
struct OrderItemIn(OrderItem);

#[derive(Deserialize)]
struct OrderItemRepr {
    #[serde(default, deserialize_with = "opt_string")]
    product_retailer_id: Option<String>,
    #[serde(default, deserialize_with = "opt_f64")]
    quantity: Option<f64>,
    #[serde(default, deserialize_with = "opt_f64")]
    item_price: Option<f64>,
    #[serde(default, deserialize_with = "opt_string")]
    currency: Option<String>,
}

impl From<OrderItemRepr> for OrderItemIn {
    fn from(r: OrderItemRepr) -> Self {
        Self(OrderItem {
            product_retailer_id: r.product_retailer_id,
            quantity: r.quantity,
            item_price: r.item_price,
            currency: r.currency,
        })
    }
}

impl From<OrderItemIn> for OrderItem {
    fn from(i: OrderItemIn) -> Self {
        i.0
    }
}

impl OrderIn {
    fn into_model(self) -> OrderData {
        OrderData {
            catalog_id: self.catalog_id,
            text: self.text,
            product_items: self
                .product_items
                .into_iter()
                .map(OrderItem::from)
                .collect(),
        }
    }
}

#[derive(Deserialize)]
struct SystemIn {
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    body: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    wa_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    new_wa_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    identity: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    customer: Option<String>,
}

impl SystemIn {
    fn into_model(self) -> SystemData {
        SystemData {
            kind: self.kind,
            body: self.body,
            // v11 and older say `new_wa_id`; later versions put the new number in `wa_id`.
            new_wa_id: self.new_wa_id.or(self.wa_id),
            new_user_id: self.user_id,
            identity: self.identity,
            customer: self.customer,
        }
    }
}

#[derive(Deserialize)]
struct UnsupportedIn {
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct EditIn {
    #[serde(default, deserialize_with = "opt_string")]
    original_message_id: Option<String>,
    #[serde(default)]
    message: Option<Value>,
}

impl EditIn {
    fn into_model(self) -> EditData {
        // The new content is a nested message: text body, or the caption of edited media.
        let body = self.message.as_ref().and_then(|m| {
            let kind = m.get("type")?.as_str()?;
            let inner = m.get(kind)?;
            inner
                .get("body")
                .or_else(|| inner.get("caption"))
                .cloned()
                .and_then(value_to_string)
        });
        EditData {
            edited_message_id: self.original_message_id,
            body,
        }
    }
}

#[derive(Deserialize)]
struct RevokeIn {
    #[serde(default, deserialize_with = "opt_string")]
    original_message_id: Option<String>,
}

#[derive(Deserialize)]
struct ContextIn {
    #[serde(default, deserialize_with = "opt_string")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    forwarded: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    frequently_forwarded: Option<bool>,
    #[serde(default)]
    referred_product: Option<ReferredProduct>,
}

impl ContextIn {
    fn into_model(self) -> MessageContext {
        MessageContext {
            reply_to: self.id.map(|id| ReplyTo {
                message_id: Some(id),
                from: self.from,
                body: None,
            }),
            forwarded: self.forwarded,
            frequently_forwarded: self.frequently_forwarded,
            referred_product: self.referred_product,
        }
    }
}

/// `referral`: the documented fields typed, anything else kept in `extra`.
fn referral(raw: &RawValue) -> Option<Referral> {
    let mut v = object(raw)?;
    let mut take = |k: &str| v.remove(k).and_then(value_to_string);
    let referral = Referral {
        source_url: take("source_url"),
        source_id: take("source_id"),
        source_type: take("source_type"),
        headline: take("headline"),
        body: take("body"),
        media_type: take("media_type"),
        image_url: take("image_url"),
        video_url: take("video_url"),
        thumbnail_url: take("thumbnail_url"),
        ctwa_clid: take("ctwa_clid"),
        extra: None,
    };
    Some(Referral {
        extra: (!v.is_empty()).then_some(Value::Object(v)),
        ..referral
    })
}

#[derive(Deserialize)]
struct ErrorIn {
    #[serde(default, deserialize_with = "opt_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "opt_string")]
    title: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    message: Option<String>,
    #[serde(default)]
    error_data: Option<ErrorDataIn>,
    #[serde(default, deserialize_with = "opt_string")]
    href: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDataIn {
    #[serde(default, deserialize_with = "opt_string")]
    details: Option<String>,
}

impl ErrorIn {
    fn into_model(self) -> MessageError {
        MessageError {
            error_code: self.code,
            error_message: self.message.or_else(|| self.title.clone()),
            title: self.title,
            details: self.error_data.and_then(|d| d.details),
            href: self.href,
        }
    }
}

/// `errors[]` of a message or status; unreadable items are skipped (the raw item stays in the
/// provider's retry, and the status itself still goes out).
fn errors(raw: Option<&RawValue>) -> Vec<MessageError> {
    raw.and_then(decode::<Vec<&RawValue>>)
        .unwrap_or_default()
        .into_iter()
        .filter_map(decode_owned::<ErrorIn>)
        .map(ErrorIn::into_model)
        .collect()
}

/// One `statuses[]` item.
#[derive(Deserialize)]
struct MetaStatus<'a> {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
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

#[derive(Deserialize)]
struct CallIn {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    event: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    direction: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    status: Option<String>,
    /// Caller and callee: phone numbers and business-scoped user ids. (`MetaMessage` spells the
    /// same four fields out because `flatten` would buffer it and break its borrowed raw values.)
    #[serde(flatten)]
    parties: CallParties,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct CallParties {
    #[serde(default, deserialize_with = "opt_string")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    from_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    to_user_id: Option<String>,
}

#[derive(Deserialize)]
struct GroupIn {
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    group_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    subject: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    added_participants: Vec<GroupMemberIn>,
    #[serde(default)]
    removed_participants: Vec<GroupMemberIn>,
}

#[derive(Deserialize)]
struct GroupMemberIn {
    #[serde(default, deserialize_with = "opt_string")]
    input: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    wa_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    user_id: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests;
