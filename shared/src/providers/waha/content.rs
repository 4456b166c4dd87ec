//! WAHA's `WAMessage` and what it carries: text, media, location, contact cards, polls,
//! interactive replies, reply context, read across the engines' differing `_data`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::parties::phone_of;
use crate::model::{
    ContactsData, InteractiveData, MediaData, MessageContent, MessageContext, PollData, ReplyTo,
    TextData, UnsupportedData,
};
use crate::providers::lenient::{
    opt_bool, opt_i64, opt_nonempty_string, opt_string, opt_unix_time, value_to_string,
};
use crate::providers::{LocationIn, vcard};

/// WAHA's `WAMessage`, every field optional.
#[derive(Deserialize, Default)]
pub(super) struct WaMessage {
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) id: Option<String>,
    #[serde(default, deserialize_with = "opt_unix_time")]
    pub(super) timestamp: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) from: Option<String>,
    #[serde(rename = "fromMe", default, deserialize_with = "opt_bool")]
    pub(super) from_me: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) participant: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) author: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    pub(super) body: Option<String>,
    #[serde(rename = "hasMedia", default, deserialize_with = "opt_bool")]
    pub(super) has_media: Option<bool>,
    #[serde(default)]
    pub(super) media: Option<MediaIn>,
    #[serde(default, deserialize_with = "opt_i64")]
    pub(super) ack: Option<i64>,
    #[serde(default)]
    pub(super) location: Option<LocationIn>,
    #[serde(rename = "vCards", default)]
    pub(super) v_cards: Option<Vec<Value>>,
    #[serde(rename = "replyTo", default)]
    pub(super) reply_to: Option<ReplyToIn>,
    #[serde(rename = "interactiveResponse", default)]
    pub(super) interactive_response: Option<InteractiveIn>,
    #[serde(rename = "_data", default)]
    pub(super) data: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct MediaIn {
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
pub(super) struct ReplyToIn {
    #[serde(default, deserialize_with = "opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    participant: Option<String>,
    #[serde(default, deserialize_with = "opt_nonempty_string")]
    body: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct InteractiveIn {
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
    pub(super) fn push_name(&self) -> Option<String> {
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
    pub(super) fn content(&self) -> MessageContent {
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
                contacts: cards.into_iter().map(vcard::parse).collect(),
            });
        }
        if (self.has_media == Some(true) || self.media.is_some())
            && let Some(content) = self.media_content(raw_kind)
        {
            return content;
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
            file_size: None,
            duration_seconds: None,
            voice: None,
            animated: None,
            error: media.and_then(|m| m.error.clone()).filter(|e| !e.is_null()),
            media: None,
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

    pub(super) fn context(&self) -> Option<MessageContext> {
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
