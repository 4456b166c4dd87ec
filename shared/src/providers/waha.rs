//! WAHA: `{"id","timestamp","event","session","me","payload","engine","environment"}` → events.
//!
//! Owns: every WAHA event name (messages, acks, reactions, edits, revokes, sessions, groups,
//! presence, polls, chats, calls, labels, event responses, engine events). WAHA's engines
//! (WEBJS, NOWEB, GOWS) disagree on `from`/`to`, on `null` versus absent, on seconds versus
//! milliseconds and on strings versus numbers, so the chat comes from the serialized message id,
//! every field is optional and lenient, and anything unreadable is passed through with its bytes.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::chat_id::{ChatId, ChatKind, WahaMessageId};
use super::lenient::{
    opt_bool, opt_i64, opt_nonempty_string, opt_string, opt_unix_time, unix_time, value_to_f64,
    value_to_string,
};
use super::{Ctx, LocationIn, ParseError, content_key};
use crate::model::{
    ContactPhone, ContactProfile, ContactsData, Direction, EditData, EventBody, EventType,
    InboundEvent, InteractiveData, MediaData, Message, MessageContent, MessageContext,
    MessageError, MessageStatus, NotificationData, Participant, PollData, ReactionData, ReplyTo,
    RevokeData, SharedContact, SourceInfo, Subject, SubjectKind, TextData, UnsupportedData,
};

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

    /// Who the business is, as a message party.
    fn me_party(&self) -> Party {
        self.me.as_ref().map(Party::from_chat).unwrap_or_default()
    }

    /// The message's direction, chat, sender and recipient, whichever engine sent it.
    fn frame(&self, m: &WaMessage) -> Option<(Message, Option<ContactProfile>)> {
        let id = m.id.clone()?;
        let parsed = WahaMessageId::parse(&id);
        let from_me = m
            .from_me
            .or(parsed.as_ref().map(|p| p.from_me))
            .unwrap_or(false);
        let direction = if from_me {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        // The chat is the 2nd part of the id on every engine; `from`/`to` are engine-specific.
        let chat = parsed
            .as_ref()
            .and_then(|p| ChatId::parse(&p.chat).ok())
            .or_else(|| m.from.as_deref().and_then(|f| ChatId::parse(f).ok()));
        let mut message = Message::new(id, direction);
        message.timestamp = m.timestamp;
        let is_group = chat.as_ref().is_some_and(ChatId::is_group);
        message.chat_id = chat.as_ref().map(ChatId::to_string);
        if is_group {
            message.group_id = message.chat_id.clone();
        }
        let member = m
            .participant
            .as_deref()
            .or(m.author.as_deref())
            .or(parsed.as_ref().and_then(|p| p.participant.as_deref()))
            .and_then(|p| ChatId::parse(p).ok());
        let chat_party = chat.as_ref().map(Party::from_chat).unwrap_or_default();
        let (sender, recipient) = match (from_me, is_group) {
            (true, false) => (self.me_party(), chat_party),
            (false, false) => (chat_party, self.me_party()),
            (true, true) => (self.me_party(), Party::default()),
            (false, true) => (
                member.as_ref().map(Party::from_chat).unwrap_or_default(),
                Party::default(),
            ),
        };
        let customer = if from_me {
            recipient.clone()
        } else {
            sender.clone()
        };
        (message.from, message.from_user_id) = (sender.phone, sender.user_id);
        (message.to, message.to_user_id) = (recipient.phone, recipient.user_id);
        let name = if from_me { None } else { m.push_name() };
        let contact = ContactProfile {
            wa_id: customer.phone,
            user_id: customer.user_id,
            username: None,
            name,
        };
        Some((
            message,
            (contact != ContactProfile::default()).then_some(contact),
        ))
    }

    fn message_key(&self, id: &str) -> String {
        format!("waha:{}:{id}", self.session())
    }

    fn message(&self, payload: &RawValue) -> Option<InboundEvent> {
        let m: WaMessage = decode(payload)?;
        let (mut message, contact) = self.frame(&m)?;
        message.content = Some(m.content());
        message.context = m.context();
        let event_type = match message.direction {
            Direction::Inbound => EventType::MessageReceived,
            Direction::Outbound => {
                message.status = m.ack.and_then(ack_status).or(Some(MessageStatus::Sent));
                EventType::MessageSent
            }
        };
        let key = self.message_key(&message.id);
        let at = message.timestamp;
        Some(self.emit(event_type, key, at, EventBody::message(message, contact)))
    }

    fn ack(&self, payload: &RawValue) -> Option<InboundEvent> {
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
            message.error = Some(MessageError {
                error_code: e.code,
                error_message: e.reason,
                ..MessageError::default()
            });
        }
        let event_type = match status {
            MessageStatus::Failed => EventType::MessageFailed,
            MessageStatus::Pending => EventType::MessagePending,
            MessageStatus::Sent => EventType::MessageSent,
            MessageStatus::Delivered => EventType::MessageDelivered,
            _ => EventType::MessageRead,
        };
        let ack = a
            .ack
            .map_or_else(|| status.as_str().to_owned(), |n| n.to_string());
        let key = format!("{}:{ack}", self.message_key(&message.id));
        message.status = Some(status);
        Some(self.emit(event_type, key, None, EventBody::message(message, contact)))
    }

    fn reaction(&self, payload: &RawValue) -> Option<InboundEvent> {
        #[derive(Deserialize)]
        struct ReactionIn {
            #[serde(flatten)]
            message: WaMessage,
            #[serde(default)]
            reaction: Option<ReactionInner>,
        }
        #[derive(Deserialize)]
        struct ReactionInner {
            #[serde(default, deserialize_with = "opt_nonempty_string")]
            text: Option<String>,
            #[serde(rename = "messageId", default, deserialize_with = "opt_string")]
            message_id: Option<String>,
        }
        let r: ReactionIn = decode(payload)?;
        let inner = r.reaction?;
        let (mut message, contact) = self.frame(&r.message)?;
        let removed = inner.text.is_none();
        message.content = Some(MessageContent::Reaction(ReactionData {
            message_id: inner.message_id,
            emoji: inner.text,
            removed,
        }));
        let event_type = match message.direction {
            Direction::Inbound => EventType::MessageReceived,
            Direction::Outbound => EventType::MessageSent,
        };
        let key = self.message_key(&message.id);
        let at = message.timestamp;
        Some(self.emit(event_type, key, at, EventBody::message(message, contact)))
    }

    fn edited(&self, payload: &RawValue) -> Option<InboundEvent> {
        #[derive(Deserialize)]
        struct EditedIn {
            #[serde(flatten)]
            message: WaMessage,
            #[serde(rename = "editedMessageId", default, deserialize_with = "opt_string")]
            edited_message_id: Option<String>,
        }
        let e: EditedIn = decode(payload)?;
        let (mut message, contact) = self.frame(&e.message)?;
        message.content = Some(MessageContent::Edit(EditData {
            edited_message_id: e.edited_message_id,
            body: e.message.body,
        }));
        let key = format!("{}:edited", self.message_key(&message.id));
        let at = message.timestamp;
        Some(self.emit(
            EventType::MessageEdited,
            key,
            at,
            EventBody::message(message, contact),
        ))
    }

    fn revoked(&self, payload: &RawValue) -> Option<InboundEvent> {
        #[derive(Deserialize)]
        struct RevokedIn {
            #[serde(default)]
            after: Option<WaMessage>,
            #[serde(default)]
            before: Option<Value>,
            #[serde(rename = "revokedMessageId", default, deserialize_with = "opt_string")]
            revoked_message_id: Option<String>,
        }
        let r: RevokedIn = decode(payload)?;
        let after = r.after.unwrap_or_default();
        // Older payloads have no `revokedMessageId`; then `after.id` is the deleted message.
        let revoked = r.revoked_message_id.or_else(|| {
            after
                .id
                .as_deref()
                .and_then(WahaMessageId::parse)
                .map(|p| p.id)
        })?;
        let frame = WaMessage {
            id: after.id.clone().or_else(|| Some(revoked.clone())),
            ..after
        };
        let (mut message, contact) = self.frame(&frame)?;
        let before = r.before.filter(|b| !b.is_null());
        message.content = Some(MessageContent::Revoke(RevokeData {
            revoked_message_id: Some(revoked.clone()),
            before,
        }));
        let key = format!("waha:{}:{revoked}:revoked", self.session());
        let at = message.timestamp;
        Some(self.emit(
            EventType::MessageRevoked,
            key,
            at,
            EventBody::message(message, contact),
        ))
    }

    /// Everything that is not a message: sessions, groups, presence, polls, chats, calls, labels,
    /// event responses, engine events, and names this version does not know.
    fn notification(&self, payload: &RawValue) -> Option<InboundEvent> {
        let raw: Value = serde_json::from_str(payload.get()).ok()?;
        let s = |p: &str| raw.pointer(p).cloned().and_then(value_to_string);
        let time = |p: &str| raw.pointer(p).and_then(value_to_f64).and_then(unix_time);
        let mut n = NotificationData::new(self.event, Value::Null);
        let suffix = self.event.rsplit('.').next().map(str::to_owned);
        let session = || {
            Some(Subject::new(
                SubjectKind::Session,
                self.source.business_id.clone(),
            ))
        };
        let event_type = match self.event {
            "session.status" => {
                (n.kind, n.status, n.subject) = (s("/status"), s("/status"), session());
                n.previous_status = previous_session_status(&raw);
                EventType::SessionStatusUpdated
            }
            "state.change" => {
                let state = raw
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| s("/state"))
                    .or_else(|| s("/connection"));
                (n.kind, n.status, n.subject) = (state.clone(), state, session());
                EventType::SessionStatusUpdated
            }
            "engine.event" => {
                (n.kind, n.subject) = (s("/event"), session());
                EventType::SessionEngineEvent
            }
            "group.v2.join"
            | "group.join"
            | "group.v2.leave"
            | "group.leave"
            | "group.v2.update"
            | "group.v2.participants"
            | "group.v2.participants.join-request" => {
                let mut subject =
                    Subject::new(SubjectKind::Group, s("/group/id").or_else(|| s("/id")));
                subject.name = s("/group/subject");
                n.chat_id = subject.id.clone();
                n.subject = Some(subject);
                n.occurred_at = time("/timestamp");
                let members = raw
                    .pointer("/participants")
                    .or_else(|| raw.pointer("/group/participants"));
                n.participants = members
                    .and_then(Value::as_array)
                    .map(|ps| ps.iter().map(group_member).collect())
                    .unwrap_or_default();
                match self.event {
                    "group.v2.join" | "group.join" => {
                        n.kind = Some("join".to_owned());
                        EventType::GroupJoined
                    }
                    "group.v2.leave" | "group.leave" => {
                        n.kind = Some("leave".to_owned());
                        EventType::GroupLeft
                    }
                    "group.v2.update" => {
                        n.kind = Some("update".to_owned());
                        EventType::GroupUpdated
                    }
                    "group.v2.participants" => {
                        n.kind = s("/type");
                        EventType::GroupParticipantsUpdated
                    }
                    _ => {
                        n.kind = s("/action").map(|a| format!("join_request_{a}"));
                        n.participants = vec![Participant {
                            id: s("/requesterId"),
                            phone_number: s("/requesterPn").and_then(|p| phone_of(&p)),
                            ..Participant::default()
                        }];
                        EventType::GroupParticipantsUpdated
                    }
                }
            }
            "presence.update" => {
                n.chat_id = s("/id");
                let presences = raw.pointer("/presences").and_then(Value::as_array);
                n.participants = presences
                    .map(|ps| ps.iter().map(presence).collect())
                    .unwrap_or_default();
                n.kind = n.participants.first().and_then(|p| p.status.clone());
                n.status.clone_from(&n.kind);
                n.contact = n.chat_id.as_deref().and_then(customer_profile);
                EventType::PresenceUpdated
            }
            "poll.vote" | "poll.vote.failed" => {
                n.kind = Some(
                    if self.event == "poll.vote" {
                        "vote"
                    } else {
                        "vote_failed"
                    }
                    .to_owned(),
                );
                n.subject = Some(Subject::new(SubjectKind::Poll, s("/poll/id")));
                n.occurred_at = time("/vote/timestamp");
                let voter = s("/vote/participant")
                    .or_else(|| s("/vote/from"))
                    .filter(|v| v != "me");
                n.contact = voter.as_deref().and_then(customer_profile);
                n.chat_id = s("/vote/id")
                    .and_then(|id| WahaMessageId::parse(&id))
                    .map(|p| p.chat);
                if self.event == "poll.vote" {
                    EventType::PollVoted
                } else {
                    EventType::PollVoteFailed
                }
            }
            "chat.archive" => {
                n.chat_id = s("/id");
                let archived = raw.pointer("/archived").and_then(Value::as_bool);
                n.status = archived.map(|a| if a { "archived" } else { "unarchived" }.to_owned());
                n.kind.clone_from(&n.status);
                n.occurred_at = time("/timestamp");
                n.contact = n.chat_id.as_deref().and_then(customer_profile);
                n.subject = Some(Subject::new(SubjectKind::Chat, n.chat_id.clone()));
                EventType::ChatArchiveUpdated
            }
            "call.received" | "call.accepted" | "call.rejected" => {
                n.kind.clone_from(&suffix);
                n.subject = Some(Subject::new(SubjectKind::Call, s("/id")));
                n.occurred_at = time("/timestamp");
                n.status = raw
                    .pointer("/isVideo")
                    .and_then(Value::as_bool)
                    .map(|v| if v { "video" } else { "voice" }.to_owned());
                n.chat_id = s("/from");
                n.contact = n.chat_id.as_deref().and_then(customer_profile);
                match self.event {
                    "call.received" => EventType::CallReceived,
                    "call.accepted" => EventType::CallAccepted,
                    _ => EventType::CallRejected,
                }
            }
            "label.upsert" | "label.deleted" => {
                n.kind.clone_from(&suffix);
                let mut subject = Subject::new(SubjectKind::Label, s("/id"));
                subject.name = s("/name").filter(|name| !name.is_empty());
                n.subject = Some(subject);
                n.status = s("/colorHex").or_else(|| s("/color"));
                if self.event == "label.upsert" {
                    EventType::LabelUpserted
                } else {
                    EventType::LabelDeleted
                }
            }
            "label.chat.added" | "label.chat.deleted" => {
                n.kind = Some(
                    if self.event == "label.chat.added" {
                        "added"
                    } else {
                        "removed"
                    }
                    .to_owned(),
                );
                let mut subject = Subject::new(SubjectKind::Label, s("/labelId"));
                subject.name = s("/label/name").filter(|name| !name.is_empty());
                n.subject = Some(subject);
                n.chat_id = s("/chatId");
                n.contact = n.chat_id.as_deref().and_then(customer_profile);
                if self.event == "label.chat.added" {
                    EventType::LabelChatAdded
                } else {
                    EventType::LabelChatRemoved
                }
            }
            "event.response" | "event.response.failed" => {
                n.kind = s("/eventResponse/response").or_else(|| Some("failed".to_owned()));
                n.status = s("/eventResponse/response");
                n.subject = Some(Subject::new(SubjectKind::Event, s("/eventCreationKey/id")));
                n.occurred_at = time("/eventResponse/timestampMs").or_else(|| time("/timestamp"));
                let responder = s("/participant").or_else(|| s("/from"));
                n.contact = responder.as_deref().and_then(customer_profile);
                n.chat_id = s("/id")
                    .and_then(|id| WahaMessageId::parse(&id))
                    .map(|p| p.chat);
                if self.event == "event.response" {
                    EventType::EventResponded
                } else {
                    EventType::EventResponseFailed
                }
            }
            "message.waiting" => {
                n.kind = Some("waiting".to_owned());
                n.subject = Some(Subject::new(SubjectKind::Message, s("/id")));
                n.chat_id = s("/id")
                    .and_then(|id| WahaMessageId::parse(&id))
                    .map(|p| p.chat);
                EventType::ProviderEvent
            }
            _ => {
                n.kind = s("/type").or_else(|| s("/status")).or_else(|| s("/event"));
                EventType::ProviderEvent
            }
        };
        n.raw = raw;
        let key = match &self.envelope.id {
            Some(id) => format!("waha:{}:{id}", self.session()),
            None => content_key(
                self.source.provider,
                self.event,
                &[self.session().as_bytes(), self.body],
            ),
        };
        let at = n.occurred_at;
        Some(self.emit(event_type, key, at, EventBody::Notification(n)))
    }
}

fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

/// One side of a message, split into phone number and non-phone user id.
#[derive(Debug, Clone, Default)]
struct Party {
    phone: Option<String>,
    user_id: Option<String>,
}

impl Party {
    fn from_chat(id: &ChatId) -> Self {
        match id.phone_number() {
            Some(phone) => Self {
                phone: Some(phone.to_owned()),
                user_id: None,
            },
            None => Self {
                phone: None,
                user_id: Some(id.to_string()),
            },
        }
    }
}

/// The customer behind a user JID (`…@c.us`, `…@lid`); `None` for groups, channels, broadcasts.
fn customer_profile(jid: &str) -> Option<ContactProfile> {
    let id = ChatId::parse(jid).ok()?;
    if !matches!(id.kind(), ChatKind::User | ChatKind::Lid) {
        return None;
    }
    let party = Party::from_chat(&id);
    Some(ContactProfile {
        wa_id: party.phone,
        user_id: party.user_id,
        ..ContactProfile::default()
    })
}

/// Digits of a phone-number JID.
fn phone_of(jid: &str) -> Option<String> {
    ChatId::parse(jid)
        .ok()
        .and_then(|id| id.phone_number().map(str::to_owned))
}

fn group_member(p: &Value) -> Participant {
    let s = |k: &str| p.get(k).cloned().and_then(value_to_string);
    let id = s("id");
    Participant {
        phone_number: s("pn")
            .and_then(|pn| phone_of(&pn))
            .or_else(|| id.as_deref().and_then(phone_of)),
        id,
        role: s("role"),
        ..Participant::default()
    }
}

fn presence(p: &Value) -> Participant {
    let s = |k: &str| p.get(k).cloned().and_then(value_to_string);
    let id = s("participant");
    Participant {
        phone_number: id.as_deref().and_then(phone_of),
        id,
        status: s("lastKnownPresence"),
        last_seen: p.get("lastSeen").and_then(value_to_f64).and_then(unix_time),
        ..Participant::default()
    }
}

/// The status before the current one, from `statuses` (oldest first, current last).
fn previous_session_status(raw: &Value) -> Option<String> {
    let statuses = raw.get("statuses")?.as_array()?;
    let previous = statuses
        .len()
        .checked_sub(2)
        .and_then(|i| statuses.get(i))?;
    previous.get("status").cloned().and_then(value_to_string)
}

/// WAHA ack numbers: -1 ERROR, 0 PENDING, 1 SERVER, 2 DEVICE, 3 READ, 4 PLAYED.
fn ack_status(ack: i64) -> Option<MessageStatus> {
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

/// WAHA's `WAMessage`, every field optional.
#[derive(Deserialize, Default)]
struct WaMessage {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_string")]
    from: Option<String>,
    #[serde(rename = "fromMe", default, deserialize_with = "opt_bool")]
    from_me: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    participant: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    author: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    body: Option<String>,
    #[serde(rename = "hasMedia", default, deserialize_with = "opt_bool")]
    has_media: Option<bool>,
    #[serde(default)]
    media: Option<MediaIn>,
    #[serde(default, deserialize_with = "opt_i64")]
    ack: Option<i64>,
    #[serde(default)]
    location: Option<LocationIn>,
    #[serde(rename = "vCards", default)]
    v_cards: Option<Vec<Value>>,
    #[serde(rename = "replyTo", default)]
    reply_to: Option<ReplyToIn>,
    #[serde(rename = "interactiveResponse", default)]
    interactive_response: Option<InteractiveIn>,
    #[serde(rename = "_data", default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct MediaIn {
    #[serde(default, deserialize_with = "opt_string")]
    url: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    mimetype: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    filename: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ReplyToIn {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    participant: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    body: Option<String>,
}

#[derive(Deserialize)]
struct InteractiveIn {
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    #[serde(rename = "selectedId", default, deserialize_with = "opt_string")]
    selected_id: Option<String>,
    #[serde(rename = "selectedText", default, deserialize_with = "opt_string")]
    selected_text: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    name: Option<String>,
    #[serde(default)]
    params: Option<Value>,
}

/// What the engine's raw `_data` says the message is (WEBJS `type`, NOWEB/GOWS proto keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Voice,
    Sticker,
    Poll,
    Document,
    Unknown,
}

impl WaMessage {
    /// The sender's push name: WEBJS `_data.notifyName`, NOWEB `_data.pushName`, GOWS
    /// `_data.Info.PushName`.
    fn push_name(&self) -> Option<String> {
        let data = self.data.as_ref()?;
        ["/notifyName", "/pushName", "/Info/PushName"]
            .iter()
            .find_map(|p| data.pointer(p).and_then(Value::as_str))
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    }

    /// The proto message inside `_data` (NOWEB `message`, GOWS `Message`).
    fn proto(&self) -> Option<&Value> {
        let data = self.data.as_ref()?;
        data.get("message")
            .or_else(|| data.get("Message"))
            .filter(|m| m.is_object())
    }

    fn raw_kind(&self) -> RawKind {
        let webjs = self
            .data
            .as_ref()
            .and_then(|d| d.get("type"))
            .and_then(Value::as_str);
        match webjs {
            Some("ptt") => return RawKind::Voice,
            Some("sticker") => return RawKind::Sticker,
            Some("poll_creation") => return RawKind::Poll,
            Some("document") => return RawKind::Document,
            _ => {}
        }
        let Some(proto) = self.proto() else {
            return RawKind::Unknown;
        };
        let has = |k: &str| proto.get(k).is_some_and(|v| !v.is_null());
        let audio_ptt = proto
            .get("audioMessage")
            .and_then(|a| a.get("ptt").or_else(|| a.get("PTT")))
            .and_then(Value::as_bool);
        if audio_ptt == Some(true) {
            RawKind::Voice
        } else if has("stickerMessage") {
            RawKind::Sticker
        } else if [
            "pollCreationMessage",
            "pollCreationMessageV2",
            "pollCreationMessageV3",
        ]
        .iter()
        .any(|k| has(k))
        {
            RawKind::Poll
        } else if has("documentMessage") || has("documentWithCaptionMessage") {
            RawKind::Document
        } else {
            RawKind::Unknown
        }
    }

    /// What the message carries. WAHA has no type field, so: location, then contact cards, then
    /// media by MIME type (with `_data` hints for voice notes and stickers), then polls,
    /// interactive replies and text.
    fn content(&self) -> MessageContent {
        let raw_kind = self.raw_kind();
        if let Some(location) = self.location.clone().and_then(LocationIn::into_model) {
            return MessageContent::Location(location);
        }
        let cards: Vec<&str> = self
            .v_cards
            .iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !cards.is_empty() {
            return MessageContent::Contacts(ContactsData {
                contacts: cards.into_iter().map(parse_vcard).collect(),
            });
        }
        if self.has_media == Some(true) || self.media.is_some() {
            if let Some(content) = self.media_content(raw_kind) {
                return content;
            }
        }
        if raw_kind == RawKind::Poll {
            return MessageContent::Poll(self.poll());
        }
        if let Some(i) = &self.interactive_response {
            return MessageContent::Interactive(InteractiveData {
                kind: i.kind.clone().unwrap_or_else(|| "unknown".to_owned()),
                id: i.selected_id.clone(),
                title: i.selected_text.clone(),
                description: None,
                name: i.name.clone(),
                body: self.body.clone(),
                response: i.params.clone(),
                raw: None,
            });
        }
        match &self.body {
            Some(body) => MessageContent::Text(TextData { body: body.clone() }),
            None => MessageContent::Unsupported(UnsupportedData {
                provider_type: self
                    .data
                    .as_ref()
                    .and_then(|d| d.get("type"))
                    .cloned()
                    .and_then(value_to_string),
            }),
        }
    }

    fn media_content(&self, raw_kind: RawKind) -> Option<MessageContent> {
        let media = self.media.as_ref();
        let mime = media.and_then(|m| m.mimetype.clone());
        let mime_lower = mime.as_deref().unwrap_or_default().to_ascii_lowercase();
        let data = MediaData {
            id: None,
            url: media.and_then(|m| m.url.clone()),
            mime_type: mime,
            sha256: None,
            filename: media.and_then(|m| m.filename.clone()),
            caption: self.body.clone(),
            voice: None,
            animated: None,
            error: media.and_then(|m| m.error.clone()).filter(|e| !e.is_null()),
        };
        Some(match raw_kind {
            RawKind::Voice => MessageContent::Audio(MediaData {
                voice: Some(true),
                ..data
            }),
            RawKind::Sticker => MessageContent::Sticker(MediaData {
                caption: None,
                ..data
            }),
            RawKind::Document => MessageContent::Document(data),
            _ if mime_lower.starts_with("image/webp")
                && data.caption.is_none()
                && data.filename.is_none() =>
            {
                MessageContent::Sticker(data)
            }
            _ if mime_lower.starts_with("image/") => MessageContent::Image(data),
            _ if mime_lower.starts_with("video/") => MessageContent::Video(data),
            // WhatsApp records voice notes as Opus in Ogg; audio files shared as attachments
            // keep their own container (mp3, m4a…) and usually a file name.
            _ if mime_lower.starts_with("audio/") => {
                let voice = mime_lower.starts_with("audio/ogg")
                    && mime_lower.contains("opus")
                    && data.filename.is_none();
                MessageContent::Audio(MediaData {
                    voice: voice.then_some(true),
                    ..data
                })
            }
            _ if !mime_lower.is_empty() || data.filename.is_some() => {
                MessageContent::Document(data)
            }
            _ => return None,
        })
    }

    fn poll(&self) -> PollData {
        let creation = self.proto().and_then(|p| {
            [
                "pollCreationMessage",
                "pollCreationMessageV2",
                "pollCreationMessageV3",
            ]
            .iter()
            .find_map(|k| p.get(*k))
        });
        let s = |k: &str| {
            creation
                .and_then(|c| c.get(k))
                .cloned()
                .and_then(value_to_string)
        };
        let options = creation
            .and_then(|c| c.get("options"))
            .and_then(Value::as_array)
            .map(|opts| {
                opts.iter()
                    .filter_map(|o| o.get("optionName").cloned().and_then(value_to_string))
                    .collect()
            })
            .unwrap_or_default();
        let count = creation
            .and_then(|c| c.get("selectableOptionsCount"))
            .and_then(Value::as_u64);
        PollData {
            name: s("name").or_else(|| self.body.clone()),
            options,
            selectable_count: count.and_then(|c| u32::try_from(c).ok()),
        }
    }

    fn context(&self) -> Option<MessageContext> {
        let reply_to = self
            .reply_to
            .as_ref()
            .filter(|r| r.id.is_some())
            .map(|r| ReplyTo {
                message_id: r.id.clone(),
                from: r
                    .participant
                    .as_deref()
                    .map(|p| phone_of(p).unwrap_or_else(|| p.to_owned())),
                body: r.body.clone(),
            });
        let forwarded = self
            .data
            .as_ref()
            .and_then(|d| d.get("isForwarded"))
            .and_then(Value::as_bool);
        (reply_to.is_some() || forwarded.is_some()).then(|| MessageContext {
            reply_to,
            forwarded,
            ..MessageContext::default()
        })
    }
}

/// The display name and phone numbers of a vCard, with the card kept whole.
fn parse_vcard(card: &str) -> SharedContact {
    let mut contact = SharedContact {
        vcard: Some(card.to_owned()),
        ..SharedContact::default()
    };
    for line in card.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let mut params = key.split(';');
        let name = params
            .next()
            .unwrap_or_default()
            .rsplit('.')
            .next()
            .unwrap_or_default();
        match name.to_ascii_uppercase().as_str() {
            "FN" if !value.trim().is_empty() => contact.name = Some(value.trim().to_owned()),
            "TEL" => {
                let wa_id = params
                    .find_map(|p| p.strip_prefix("waid="))
                    .map(str::to_owned);
                contact.phones.push(ContactPhone {
                    phone: Some(value.trim().to_owned()),
                    wa_id,
                    kind: None,
                });
            }
            _ => {}
        }
    }
    contact
}

#[cfg(test)]
mod tests;
