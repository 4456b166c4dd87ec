//! v2 `message`: one message from a customer, its content read by `payload.type` into the same
//! content model Meta's messages produce.
//!
//! Gupshup's kinds: `text`, `image`, `file` (a document), `audio`, `video`, `sticker` (media: a
//! download `url` on Gupshup's file manager, `contentType`, `caption`, a file's `name`),
//! `location`, `contact`, `button_reply` and `list_reply` (interactive replies), `quick_reply`
//! (a template's quick-reply button, `{text, type: "button", postbackText}`, or, in older
//! payloads, an interactive button reply `{title, id, reply}`). Anything else keeps its raw
//! payload as `message_type: unknown`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{V2Ctx, decode};
use crate::model::{
    ButtonData, ContactProfile, ContactsData, Direction, EventBody, EventType, InboundEvent,
    InteractiveData, MediaData, Message, MessageContent, MessageContext, ReplyTo, TextData,
    UnknownData,
};
use crate::providers::LocationIn;
use crate::providers::lenient::{opt_bool, opt_nonempty_string, opt_string, value_to_string};
use crate::providers::meta::ContactIn;

impl V2Ctx<'_> {
    pub(super) fn message(&self, payload: &RawValue) -> Option<InboundEvent> {
        let m: MessageIn<'_> = decode(payload)?;
        let id = m.id.clone()?;
        let sender = m.sender.unwrap_or_default();
        let phone = sender.phone.or(m.source);
        let mut message = Message::new(id.clone(), Direction::Inbound);
        message.timestamp = self.at;
        (message.from, message.from_user_id) = (phone.clone(), sender.user_id.clone());
        message.to = self.source.business_phone_number.clone();
        message.context = m.context.and_then(ContextIn::into_model);
        message.content = Some(content(m.kind.as_deref(), m.payload));
        let contact = ContactProfile {
            wa_id: phone,
            user_id: sender.user_id,
            username: None,
            name: sender.name,
        };
        let contact = (contact != ContactProfile::default()).then_some(contact);
        let key = format!("gupshup:{}:{id}", self.app());
        let body = EventBody::message(message, contact);
        Some(self.emit(EventType::MessageReceived, key, None, body))
    }
}

/// The content for `kind`, or `unknown` with the raw payload when it cannot be read.
fn content(kind: Option<&str>, payload: Option<&RawValue>) -> MessageContent {
    let kind = kind.unwrap_or("unknown");
    let object = payload.and_then(decode::<Map<String, Value>>);
    let media = || payload.and_then(decode::<MediaIn>).map(MediaIn::into_model);
    let parsed = match kind {
        "text" => payload
            .and_then(decode::<TextIn>)
            .and_then(|t| t.text)
            .map(|body| MessageContent::Text(TextData { body })),
        "image" => media().map(MessageContent::Image),
        "video" => media().map(MessageContent::Video),
        "audio" => media().map(MessageContent::Audio),
        "file" => media().map(MessageContent::Document),
        "sticker" => media().map(MessageContent::Sticker),
        "location" => payload
            .and_then(decode::<LocationIn>)
            .and_then(LocationIn::into_model)
            .map(MessageContent::Location),
        "contact" | "contacts" => payload.and_then(decode::<ContactsIn>).map(|c| {
            MessageContent::Contacts(ContactsData {
                contacts: c.contacts.into_iter().map(ContactIn::into_model).collect(),
            })
        }),
        "button_reply" | "list_reply" => object.map(|o| interactive(kind, o)),
        "quick_reply" => object.map(quick_reply),
        _ => None,
    };
    parsed.unwrap_or_else(|| {
        MessageContent::Unknown(UnknownData {
            provider_type: kind.to_owned(),
            raw: payload
                .and_then(|p| serde_json::from_str(p.get()).ok())
                .unwrap_or(Value::Null),
        })
    })
}

/// A button or list-row reply. The reply object is kept whole in `raw` when it carries more
/// than id, title and description (Gupshup's `reply` and the developer's `postbackText`).
fn interactive(kind: &str, reply: Map<String, Value>) -> MessageContent {
    let s = |k: &str| reply.get(k).cloned().and_then(value_to_string);
    let data = InteractiveData {
        kind: kind.to_owned(),
        id: s("id"),
        title: s("title"),
        description: s("description"),
        name: None,
        body: None,
        response: None,
        raw: None,
    };
    let extra = reply
        .keys()
        .any(|k| !matches!(k.as_str(), "id" | "title" | "description"));
    MessageContent::Interactive(InteractiveData {
        raw: extra.then_some(Value::Object(reply)),
        ..data
    })
}

/// `quick_reply`: a template's quick-reply button (`text`, `postbackText`), or an interactive
/// button reply in the older shape (`title`, `id`), which is WhatsApp's `button_reply`.
fn quick_reply(reply: Map<String, Value>) -> MessageContent {
    if reply.contains_key("title") || !reply.contains_key("text") {
        return interactive("button_reply", reply);
    }
    let s = |k: &str| reply.get(k).cloned().and_then(value_to_string);
    MessageContent::Button(ButtonData {
        payload: s("postbackText").filter(|p| !p.is_empty()),
        text: s("text"),
    })
}

/// One v2 `message` payload.
#[derive(Deserialize)]
struct MessageIn<'a> {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    id: Option<String>,
    /// The customer's phone number (also in `sender.phone`).
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    source: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "opt_string")]
    kind: Option<String>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(default)]
    sender: Option<SenderIn>,
    #[serde(default)]
    context: Option<ContextIn>,
}

#[derive(Deserialize, Default)]
struct SenderIn {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    phone: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    name: Option<String>,
    /// The business-scoped user id, when the app has them enabled.
    #[serde(rename = "userId", default, deserialize_with = "opt_nonempty_string")]
    user_id: Option<String>,
}

/// `context`: the message replied to, by WhatsApp's id and (for the business's messages)
/// Gupshup's.
#[derive(Deserialize)]
struct ContextIn {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    id: Option<String>,
    #[serde(rename = "gsId", default, deserialize_with = "opt_nonempty_string")]
    gs_id: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    forwarded: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    frequently_forwarded: Option<bool>,
}

impl ContextIn {
    fn into_model(self) -> Option<MessageContext> {
        let context = MessageContext {
            // Gupshup's id is the one the business's sent message is known by.
            reply_to: self.gs_id.or(self.id).map(|id| ReplyTo {
                message_id: Some(id),
                from: None,
                body: None,
            }),
            forwarded: self.forwarded,
            frequently_forwarded: self.frequently_forwarded,
            referred_product: None,
        };
        (context != MessageContext::default()).then_some(context)
    }
}

#[derive(Deserialize)]
struct TextIn {
    #[serde(default, deserialize_with = "opt_string")]
    text: Option<String>,
}

/// Media of any kind: a download URL on Gupshup's file manager.
#[derive(Deserialize)]
struct MediaIn {
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    url: Option<String>,
    #[serde(
        rename = "contentType",
        alias = "content-type",
        default,
        deserialize_with = "opt_nonempty_string"
    )]
    content_type: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    caption: Option<String>,
    /// The file's name (documents).
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    name: Option<String>,
}

impl MediaIn {
    fn into_model(self) -> MediaData {
        MediaData {
            url: self.url,
            mime_type: self.content_type,
            filename: self.name,
            caption: self.caption,
            ..MediaData::default()
        }
    }
}

#[derive(Deserialize)]
struct ContactsIn {
    #[serde(default)]
    contacts: Vec<ContactIn>,
}
