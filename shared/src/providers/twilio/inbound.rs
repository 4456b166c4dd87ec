//! Incoming messages: `whatsapp.message.received`, the content read by `MessageType`.
//!
//! | `MessageType` | content |
//! |---|---|
//! | `text` | `text` from `Body` |
//! | `image`, `video`, `audio`, `document`, `sticker` | that kind, from `MediaUrl0`/`MediaContentType0`, caption `Body` |
//! | `contacts` | `document`: Twilio hands the shared card over as a `text/vcard` file |
//! | `location` | `location` from `Latitude`/`Longitude`, `Label` as name, `Address` |
//! | `button` | `button` (template quick reply): `ButtonPayload`, `ButtonText` (else `Body`) |
//! | `interactive` | `interactive`: `list_reply` from `ListId`/`ListTitle`, else `button_reply` from `ButtonPayload`/`ButtonText` |
//! | absent | guessed from the fields: media, coordinates, button, list, else `Body` as text |
//! | anything else, or a kind whose fields are missing | `unknown`, every parameter in `raw` |
//!
//! WhatsApp puts one medium in a message; Twilio's parameters allow several (`NumMedia`,
//! `MediaUrl{n}`). Each further medium becomes a message of its own, with id `{MessageSid}-{n}`,
//! its kind from its content type (`image/webp` is a sticker on WhatsApp) and no caption, so every
//! file reaches the media stage and the conversation. Context and referral go on the first only:
//! `OriginalRepliedMessageSid` (with its sender), `Forwarded` and `FrequentlyForwarded` fill
//! `context`; the `Referral…` parameters of a click-to-WhatsApp ad fill `referral`, those the
//! model has no field for kept in `referral.extra`.

use serde_json::{Map, Value};

use super::{Address, TwilioCtx};
use crate::model::{
    ButtonData, ContactProfile, Direction, EventBody, EventType, InboundEvent, InteractiveData,
    LocationData, MediaData, Message, MessageContent, MessageContext, Referral, ReplyTo,
    SourceInfo, TextData, UnknownData,
};

impl TwilioCtx<'_> {
    /// The message, and one more for each further medium.
    pub(super) fn inbound(&self, source: SourceInfo) -> Vec<InboundEvent> {
        let source = self.with_business(source, "To");
        let contact = self.customer("From");
        let p = self.params;
        let mut media = self.media();
        let kind = p.get("MessageType").map(str::to_ascii_lowercase);
        // The first medium is the content when the type is a media one (or not given).
        let takes_medium = kind.as_deref().is_none_or(|k| MEDIA_TYPES.contains(&k));
        let first = (takes_medium && !media.is_empty()).then(|| media.remove(0));
        let content = self.content(kind.as_deref(), first);

        let mut message = self.message(self.sid.to_owned(), &source, &contact);
        message.context = self.context();
        message.referral = self.referral().map(Box::new);
        message.content = Some(content);
        let key = format!("twilio:{}", self.sid);
        let mut events = vec![self.received(key, source.clone(), message, &contact)];
        for medium in media {
            let index = medium.index;
            let mut message = self.message(format!("{}-{index}", self.sid), &source, &contact);
            message.content = Some(medium.into_content(None, None));
            let key = format!("twilio:{}:{index}", self.sid);
            events.push(self.received(key, source.clone(), message, &contact));
        }
        events
    }

    /// An inbound message with sender and recipient set.
    fn message(&self, id: String, source: &SourceInfo, contact: &ContactProfile) -> Message {
        let mut message = Message::new(id, Direction::Inbound);
        (message.from, message.from_user_id) = (contact.wa_id.clone(), contact.user_id.clone());
        message.to.clone_from(&source.business_phone_number);
        message
    }

    fn received(
        &self,
        key: String,
        source: SourceInfo,
        message: Message,
        contact: &ContactProfile,
    ) -> InboundEvent {
        let contact = (contact != &ContactProfile::default()).then(|| contact.clone());
        self.ctx.event(
            EventType::MessageReceived,
            key,
            None,
            source,
            EventBody::message(message, contact),
        )
    }

    /// The content for `kind`; `first` is the first medium when the kind (or its absence) takes
    /// one.
    fn content(&self, kind: Option<&str>, first: Option<Medium>) -> MessageContent {
        let p = self.params;
        let body = p.get("Body").map(str::to_owned);
        let parsed = match (kind, first) {
            (kind, Some(medium)) => Some(medium.into_content(kind, body)),
            (Some("text"), None) => Some(MessageContent::Text(TextData {
                body: body.unwrap_or_default(),
            })),
            (Some("location"), None) => self.location(),
            (Some("button"), None) => self.button(),
            (Some("interactive"), None) => self.interactive(),
            (Some(_), None) => None,
            (None, None) => self
                .location()
                .or_else(|| self.interactive_list())
                .or_else(|| self.button())
                .or_else(|| body.map(|body| MessageContent::Text(TextData { body }))),
        };
        parsed.unwrap_or_else(|| {
            MessageContent::Unknown(UnknownData {
                provider_type: kind.unwrap_or("unknown").to_owned(),
                raw: p.raw(),
            })
        })
    }

    fn location(&self) -> Option<MessageContent> {
        let p = self.params;
        let coordinate = |name: &str| {
            p.get(name)?
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|c| c.is_finite())
        };
        Some(MessageContent::Location(LocationData {
            latitude: coordinate("Latitude")?,
            longitude: coordinate("Longitude")?,
            name: p.get("Label").map(str::to_owned),
            address: p.get("Address").map(str::to_owned),
            url: None,
            description: None,
            live: None,
        }))
    }

    /// A template quick-reply button, when the webhook names one.
    fn button(&self) -> Option<MessageContent> {
        let p = self.params;
        let payload = p.get("ButtonPayload").map(str::to_owned);
        let text = p.get("ButtonText").map(str::to_owned);
        if payload.is_none() && text.is_none() {
            return None;
        }
        Some(MessageContent::Button(ButtonData {
            payload,
            text: text.or_else(|| p.get("Body").map(str::to_owned)),
        }))
    }

    /// A reply to an interactive message: a list row, else a reply button.
    fn interactive(&self) -> Option<MessageContent> {
        let p = self.params;
        self.interactive_list().or_else(|| {
            let id = p.get("ButtonPayload").map(str::to_owned);
            let title = p.get("ButtonText").map(str::to_owned);
            if id.is_none() && title.is_none() {
                return None;
            }
            Some(interactive_reply(
                "button_reply",
                id,
                title.or_else(|| p.get("Body").map(str::to_owned)),
            ))
        })
    }

    fn interactive_list(&self) -> Option<MessageContent> {
        let p = self.params;
        let id = p.get("ListId").map(str::to_owned);
        let title = p.get("ListTitle").map(str::to_owned);
        if id.is_none() && title.is_none() {
            return None;
        }
        Some(interactive_reply(
            "list_reply",
            id,
            title.or_else(|| p.get("Body").map(str::to_owned)),
        ))
    }

    /// Every `MediaUrl{n}`, by `n`, whatever `NumMedia` says.
    fn media(&self) -> Vec<Medium> {
        let mut media: Vec<Medium> = self
            .params
            .0
            .iter()
            .filter_map(|(name, url)| {
                let index: u32 = name.strip_prefix("MediaUrl")?.parse().ok()?;
                let url = Some(url.as_str()).filter(|u| !u.is_empty())?;
                Some(Medium {
                    index,
                    url: url.to_owned(),
                    mime_type: self
                        .params
                        .get(&format!("MediaContentType{index}"))
                        .map(str::to_owned),
                })
            })
            .collect();
        media.sort_by_key(|m| m.index);
        media
    }

    fn context(&self) -> Option<MessageContext> {
        let p = self.params;
        let flag = |name: &str| {
            p.get(name)
                .filter(|v| v.eq_ignore_ascii_case("true"))
                .map(|_| true)
        };
        let context = MessageContext {
            reply_to: p.get("OriginalRepliedMessageSid").map(|id| ReplyTo {
                message_id: Some(id.to_owned()),
                from: p
                    .get("OriginalRepliedMessageSender")
                    .and_then(Address::parse)
                    .map(Address::into_text),
                body: None,
            }),
            forwarded: flag("Forwarded"),
            frequently_forwarded: flag("FrequentlyForwarded"),
            referred_product: None,
        };
        (context != MessageContext::default()).then_some(context)
    }

    /// The click-to-WhatsApp ad, when any `Referral…` parameter but the count of its media is
    /// set.
    fn referral(&self) -> Option<Referral> {
        let mut rest: Map<String, Value> = self
            .params
            .0
            .iter()
            .filter(|(name, value)| name.starts_with("Referral") && !value.is_empty())
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        if rest.keys().all(|k| k == "ReferralNumMedia") {
            return None;
        }
        let mut take = |name: &str| match rest.remove(name) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let mut referral = Referral {
            source_url: take("ReferralSourceUrl"),
            source_id: take("ReferralSourceId"),
            source_type: take("ReferralSourceType"),
            headline: take("ReferralHeadline"),
            body: take("ReferralBody"),
            ctwa_clid: take("ReferralCtwaClid"),
            ..Referral::default()
        };
        let mime = self
            .params
            .get("ReferralMediaContentType")
            .unwrap_or_default();
        let media_type = ["image", "video"]
            .into_iter()
            .find(|t| mime.split('/').next() == Some(*t));
        if let Some(media_type) = media_type {
            let url = take("ReferralMediaUrl");
            match media_type {
                "image" => referral.image_url = url,
                _ => referral.video_url = url,
            }
            referral.media_type = Some(media_type.to_owned());
        }
        referral.extra = (!rest.is_empty()).then_some(Value::Object(rest));
        Some(referral)
    }
}

/// The `message_type` values that carry a file in `MediaUrl0`.
const MEDIA_TYPES: &[&str] = &["image", "video", "audio", "document", "sticker", "contacts"];

/// One `MediaUrl{n}` with its content type.
#[derive(Debug)]
struct Medium {
    index: u32,
    url: String,
    mime_type: Option<String>,
}

impl Medium {
    /// The content of the kind `kind` (a media `MessageType`), else of the kind its content type
    /// says.
    fn into_content(self, kind: Option<&str>, caption: Option<String>) -> MessageContent {
        let kind = kind.unwrap_or_else(|| self.kind());
        let data = MediaData {
            // The `ME…` sid that ends Twilio's media URLs.
            id: self
                .url
                .split('?')
                .next()
                .and_then(|u| u.rsplit('/').next())
                .filter(|last| last.starts_with("ME"))
                .map(str::to_owned),
            url: Some(self.url),
            mime_type: self.mime_type,
            caption,
            ..MediaData::default()
        };
        match kind {
            "image" => MessageContent::Image(data),
            "video" => MessageContent::Video(data),
            "audio" => MessageContent::Audio(data),
            "sticker" => MessageContent::Sticker(data),
            _ => MessageContent::Document(data),
        }
    }

    /// The kind its content type says.
    fn kind(&self) -> &'static str {
        let mime = self
            .mime_type
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if mime == "image/webp" {
            return "sticker";
        }
        match mime.split('/').next().unwrap_or_default() {
            "image" => "image",
            "video" => "video",
            "audio" => "audio",
            _ => "document",
        }
    }
}

fn interactive_reply(kind: &str, id: Option<String>, title: Option<String>) -> MessageContent {
    MessageContent::Interactive(InteractiveData {
        kind: kind.to_owned(),
        id,
        title,
        description: None,
        name: None,
        body: None,
        response: None,
        raw: None,
    })
}
