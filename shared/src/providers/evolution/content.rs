//! What a Baileys `message` object carries: its one content entry (`conversation`,
//! `imageMessage`, `reactionMessage`…) found through the `ephemeralMessage`/`viewOnceMessage`/
//! `documentWithCaptionMessage`/`editedMessage` wrappers, as [`MessageContent`]; protocol
//! messages (revoke, edit) and poll votes, which are not content of their own; and the
//! `contextInfo` (reply, forward, ad referral).
//!
//! Must not: put `base64` media or key material in an event. Media comes out as its URL
//! (Evolution's S3 `mediaUrl` when it stored the file, else WhatsApp's encrypted CDN `url`),
//! MIME type, SHA-256, size and duration; unknown kinds keep their object in `raw`, scrubbed.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::fields::{base64_decoded_len, bytes_base64, enum_name, long, text, time};
use super::identity::{KeyIn, canonical_jid};
use super::scrub;
use crate::model::{
    ButtonData, ContactsData, InteractiveData, LocationData, MediaData, MessageContent,
    MessageContext, PollData, ReactionData, Referral, ReplyTo, SharedContact, TextData,
    UnknownData, UnsupportedData,
};
use crate::providers::chat_id::ChatId;
use crate::providers::lenient::value_to_f64;
use crate::providers::vcard;

/// How deep wrappers may nest before the content is taken as unknown.
const MAX_WRAPPERS: usize = 4;

/// Entries that wrap another message: `{message: {…}}`.
const WRAPPERS: &[&str] = &[
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
    "groupMentionedMessage",
    "botInvokeMessage",
    "lottieStickerMessage",
    "associatedChildMessage",
    "groupStatusMessage",
    "groupStatusMessageV2",
    "deviceSentMessage",
];

/// `proto.Message.ProtocolMessage.Type`, by number.
const PROTOCOL_TYPES: &[(i64, &str)] = &[
    (0, "REVOKE"),
    (3, "EPHEMERAL_SETTING"),
    (4, "EPHEMERAL_SYNC_RESPONSE"),
    (5, "HISTORY_SYNC_NOTIFICATION"),
    (6, "APP_STATE_SYNC_KEY_SHARE"),
    (7, "APP_STATE_SYNC_KEY_REQUEST"),
    (8, "MSG_FANOUT_BACKFILL_REQUEST"),
    (9, "INITIAL_SECURITY_NOTIFICATION_SETTING_SYNC"),
    (10, "APP_STATE_FATAL_EXCEPTION_NOTIFICATION"),
    (11, "SHARE_PHONE_NUMBER"),
    (14, "MESSAGE_EDIT"),
    (16, "PEER_DATA_OPERATION_REQUEST_MESSAGE"),
    (17, "PEER_DATA_OPERATION_REQUEST_RESPONSE_MESSAGE"),
    (18, "REQUEST_WELCOME_MESSAGE"),
    (19, "BOT_FEEDBACK_MESSAGE"),
    (20, "MEDIA_NOTIFY_MESSAGE"),
    (22, "LID_MIGRATION_MAPPING_SYNC"),
];

/// What a message object turned out to be.
pub(super) enum Body {
    /// Content of its own.
    Content(MessageContent),
    /// A protocol message about another message (revoke, edit) or the session.
    Protocol(Protocol),
    /// A vote on a poll (`pollUpdateMessage`): encrypted, so only the poll it is about.
    PollVote(Option<KeyIn>),
}

/// A message object read: its body and the `contextInfo` of its content entry.
pub(super) struct Read {
    pub(super) body: Body,
    pub(super) context_info: Option<Value>,
}

/// A `protocolMessage`: what it does and the message it is about.
pub(super) struct Protocol {
    /// The message it is about, in the key's sender's perspective (see `updates`).
    pub(super) key: Option<KeyIn>,
    /// The type's name (`REVOKE`, `MESSAGE_EDIT`, …; digits for numbers not known here).
    pub(super) kind: String,
    /// The new text of an edit.
    pub(super) edited_text: Option<String>,
    /// When an edit was made (`timestampMs`).
    pub(super) at: Option<DateTime<Utc>>,
    /// `timestampMs` as sent, which tells one edit of a message from the next.
    pub(super) stamp: Option<i64>,
}

impl Protocol {
    /// Reads a protocol message. A missing `type` is protobuf's default, `REVOKE`, when the
    /// message names a key (Baileys leaves default values out).
    pub(super) fn from_value(v: &Value) -> Self {
        let key = v
            .get("key")
            .and_then(|k| serde_json::from_value::<KeyIn>(k.clone()).ok())
            .filter(|k| k.id.is_some());
        let kind = v
            .get("type")
            .and_then(|t| enum_name(t, PROTOCOL_TYPES))
            .unwrap_or_else(|| if key.is_some() { "REVOKE" } else { "UNKNOWN" }.to_owned());
        let stamp = v.get("timestampMs").and_then(long);
        Self {
            key,
            edited_text: v.get("editedMessage").and_then(text_of),
            at: v.get("timestampMs").and_then(time),
            stamp,
            kind,
        }
    }
}

/// Media facts that sit beside the content entry on Evolution's `message` object.
#[derive(Default)]
struct Extras {
    /// Evolution's S3 copy (`mediaUrl`).
    media_url: Option<String>,
    /// Size of the inline `base64` file, which itself is dropped.
    base64_size: Option<u64>,
}

/// Reads a message object; `hint` is Evolution's `messageType`, which names the entry.
pub(super) fn read(message: Option<&Value>, hint: Option<&str>) -> Read {
    let Some(root) = message.and_then(Value::as_object) else {
        return unsupported(hint);
    };
    let extras = Extras {
        media_url: root.get("mediaUrl").cloned().and_then(string),
        base64_size: root
            .get("base64")
            .and_then(Value::as_str)
            .map(base64_decoded_len),
    };
    let Some((mut kind, mut value)) = entry(root, hint) else {
        return unsupported(hint);
    };
    for _ in 0..MAX_WRAPPERS {
        let inner = value
            .get("message")
            .and_then(Value::as_object)
            .filter(|_| WRAPPERS.contains(&kind) || is_bare_wrapper(value));
        match inner.and_then(|m| entry(m, None)) {
            Some((k, v)) => (kind, value) = (k, v),
            None => break,
        }
    }
    let context_info = value.get("contextInfo").filter(|c| c.is_object()).cloned();
    let body = match kind_body(kind, value, &extras) {
        Some(body) => body,
        None => Body::Content(unknown(kind, value)),
    };
    Read { body, context_info }
}

fn unsupported(hint: Option<&str>) -> Read {
    Read {
        body: Body::Content(MessageContent::Unsupported(UnsupportedData {
            provider_type: hint.filter(|h| !h.is_empty()).map(str::to_owned),
        })),
        context_info: None,
    }
}

fn unknown(kind: &str, value: &Value) -> MessageContent {
    let mut raw = value.clone();
    scrub(&mut raw);
    MessageContent::Unknown(UnknownData {
        provider_type: kind.to_owned(),
        raw,
    })
}

/// A `FutureProofMessage`: an object whose only entry is `message`.
fn is_bare_wrapper(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.get("message").is_some_and(Value::is_object))
}

/// Whether `(key, value)` is a content entry: `conversation` text, or a `…Message` object
/// (`…MessageV2`, `…MessageV2Extension` too) other than the sender-key distribution Baileys
/// sends beside group messages.
fn is_content(key: &str, value: &Value) -> bool {
    match key {
        "conversation" => value.as_str().is_some_and(|s| !s.is_empty()),
        "senderKeyDistributionMessage" => false,
        _ => key.contains("Message") && value.is_object(),
    }
}

/// The content entry of a message object: the one `hint` names, else the first there is.
fn entry<'m>(message: &'m Map<String, Value>, hint: Option<&str>) -> Option<(&'m str, &'m Value)> {
    hint.and_then(|h| message.get_key_value(h))
        .filter(|(k, v)| is_content(k, v))
        .or_else(|| message.iter().find(|(k, v)| is_content(k, v)))
        .map(|(k, v)| (k.as_str(), v))
}

/// The body of one content entry; `None` for kinds this version does not know, or known
/// kinds missing what makes them that kind (a location without coordinates).
fn kind_body(kind: &str, v: &Value, extras: &Extras) -> Option<Body> {
    let content = match kind {
        "conversation" => MessageContent::Text(TextData {
            body: v.as_str()?.to_owned(),
        }),
        "extendedTextMessage" => MessageContent::Text(TextData {
            body: text(v, "text")?,
        }),
        "imageMessage" => MessageContent::Image(media(v, extras)),
        "videoMessage" | "ptvMessage" => MessageContent::Video(media(v, extras)),
        "audioMessage" => MessageContent::Audio(MediaData {
            voice: v.get("ptt").and_then(Value::as_bool),
            ..media(v, extras)
        }),
        "documentMessage" => MessageContent::Document(MediaData {
            filename: text(v, "fileName").or_else(|| text(v, "title")),
            ..media(v, extras)
        }),
        "stickerMessage" => MessageContent::Sticker(MediaData {
            caption: None,
            animated: v.get("isAnimated").and_then(Value::as_bool),
            ..media(v, extras)
        }),
        "locationMessage" | "liveLocationMessage" => MessageContent::Location(location(kind, v)?),
        "contactMessage" => MessageContent::Contacts(ContactsData {
            contacts: vec![contact_card(v)],
        }),
        "contactsArrayMessage" => MessageContent::Contacts(ContactsData {
            contacts: v
                .get("contacts")
                .and_then(Value::as_array)
                .map(|cards| cards.iter().map(contact_card).collect())
                .unwrap_or_default(),
        }),
        "reactionMessage" => {
            let emoji = text(v, "text");
            MessageContent::Reaction(ReactionData {
                message_id: v.pointer("/key/id").cloned().and_then(string),
                removed: emoji.is_none(),
                emoji,
            })
        }
        "pollCreationMessage"
        | "pollCreationMessageV2"
        | "pollCreationMessageV3"
        | "pollCreationMessageV4"
        | "pollCreationMessageV5" => MessageContent::Poll(poll(v)),
        "pollUpdateMessage" => {
            let poll_key = v
                .get("pollCreationMessageKey")
                .and_then(|k| serde_json::from_value::<KeyIn>(k.clone()).ok());
            return Some(Body::PollVote(poll_key));
        }
        "buttonsResponseMessage" => MessageContent::Interactive(InteractiveData {
            kind: "button_reply".to_owned(),
            id: text(v, "selectedButtonId"),
            title: text(v, "selectedDisplayText"),
            ..interactive()
        }),
        "listResponseMessage" => MessageContent::Interactive(InteractiveData {
            kind: "list_reply".to_owned(),
            id: v
                .pointer("/singleSelectReply/selectedRowId")
                .cloned()
                .and_then(string),
            title: text(v, "title"),
            description: text(v, "description"),
            ..interactive()
        }),
        "interactiveResponseMessage" => {
            let flow = v.get("nativeFlowResponseMessage");
            MessageContent::Interactive(InteractiveData {
                kind: "nfm_reply".to_owned(),
                name: flow.and_then(|f| text(f, "name")),
                body: v.pointer("/body/text").cloned().and_then(string),
                response: flow
                    .and_then(|f| text(f, "paramsJson"))
                    .map(|p| serde_json::from_str(&p).unwrap_or(Value::String(p))),
                ..interactive()
            })
        }
        "templateButtonReplyMessage" => MessageContent::Button(ButtonData {
            payload: text(v, "selectedId"),
            text: text(v, "selectedDisplayText"),
        }),
        "protocolMessage" => return Some(Body::Protocol(Protocol::from_value(v))),
        _ => return None,
    };
    Some(Body::Content(content))
}

fn string(v: Value) -> Option<String> {
    crate::providers::lenient::value_to_string(v).filter(|s| !s.is_empty())
}

fn interactive() -> InteractiveData {
    InteractiveData {
        kind: String::new(),
        id: None,
        title: None,
        description: None,
        name: None,
        body: None,
        response: None,
        raw: None,
    }
}

/// Any media entry's facts; the file itself is never carried.
fn media(v: &Value, extras: &Extras) -> MediaData {
    MediaData {
        url: extras.media_url.clone().or_else(|| text(v, "url")),
        mime_type: text(v, "mimetype"),
        sha256: v.get("fileSha256").and_then(bytes_base64),
        caption: text(v, "caption"),
        file_size: v
            .get("fileLength")
            .and_then(long)
            .and_then(|n| u64::try_from(n).ok())
            .or(extras.base64_size),
        duration_seconds: v
            .get("seconds")
            .and_then(long)
            .and_then(|n| u32::try_from(n).ok()),
        ..MediaData::default()
    }
}

fn location(kind: &str, v: &Value) -> Option<LocationData> {
    let live = kind == "liveLocationMessage";
    Some(LocationData {
        latitude: v.get("degreesLatitude").and_then(value_to_f64)?,
        longitude: v.get("degreesLongitude").and_then(value_to_f64)?,
        name: text(v, "name"),
        address: text(v, "address"),
        url: text(v, "url"),
        description: text(v, "comment").or_else(|| text(v, "caption")),
        live: live.then_some(true),
    })
}

/// One shared card: the vCard read, its display name when the card has no `FN`.
fn contact_card(v: &Value) -> SharedContact {
    let mut card = text(v, "vcard").map_or_else(SharedContact::default, |c| vcard::parse(&c));
    if card.name.is_none() {
        card.name = text(v, "displayName");
    }
    card
}

fn poll(v: &Value) -> PollData {
    PollData {
        name: text(v, "name"),
        options: v
            .get("options")
            .and_then(Value::as_array)
            .map(|opts| opts.iter().filter_map(|o| text(o, "optionName")).collect())
            .unwrap_or_default(),
        selectable_count: v
            .get("selectableOptionsCount")
            .and_then(long)
            .and_then(|n| u32::try_from(n).ok()),
    }
}

/// The text of a message object (quoted or edited): its text, or its media's caption.
pub(super) fn text_of(message: &Value) -> Option<String> {
    let (mut kind, mut value) = entry(message.as_object()?, None)?;
    for _ in 0..MAX_WRAPPERS {
        match value
            .get("message")
            .and_then(Value::as_object)
            .and_then(|m| entry(m, None))
        {
            Some((k, v)) => (kind, value) = (k, v),
            None => break,
        }
    }
    match kind {
        "conversation" => value.as_str().map(str::to_owned),
        "extendedTextMessage" => text(value, "text"),
        "buttonsMessage" => text(value, "contentText"),
        _ => text(value, "caption"),
    }
}

/// Reply and forward information, and the ad the customer came from, from a `contextInfo`.
pub(super) fn context(info: Option<&Value>) -> (Option<MessageContext>, Option<Box<Referral>>) {
    let Some(info) = info else {
        return (None, None);
    };
    let reply_to = text(info, "stanzaId").map(|id| ReplyTo {
        message_id: Some(id),
        from: text(info, "participant").map(|p| {
            ChatId::parse(&p)
                .ok()
                .and_then(|c| c.phone_number().map(str::to_owned))
                .unwrap_or_else(|| canonical_jid(&p))
        }),
        body: info.get("quotedMessage").and_then(text_of),
    });
    let forwarded = info.get("isForwarded").and_then(Value::as_bool);
    // WhatsApp labels a message "forwarded many times" from a forwarding score of 5.
    let frequently = info
        .get("forwardingScore")
        .and_then(long)
        .map(|score| score >= 5)
        .filter(|f| *f && forwarded == Some(true));
    let context = (reply_to.is_some() || forwarded.is_some()).then_some(MessageContext {
        reply_to,
        forwarded,
        frequently_forwarded: frequently,
        referred_product: None,
    });
    let referral = info.get("externalAdReply").and_then(referral).map(Box::new);
    (context, referral)
}

/// A click-to-WhatsApp ad's `externalAdReply`; the rest of the object kept in `extra`.
fn referral(ad: &Value) -> Option<Referral> {
    let obj = ad.as_object()?;
    let media_type = ad.get("mediaType").and_then(|m| {
        enum_name(m, &[(0, "NONE"), (1, "IMAGE"), (2, "VIDEO")]).map(|s| s.to_ascii_lowercase())
    });
    let media_url = text(ad, "mediaUrl");
    let used = [
        "sourceUrl",
        "sourceId",
        "sourceType",
        "title",
        "body",
        "mediaType",
        "thumbnailUrl",
        "mediaUrl",
        "ctwaClid",
        "thumbnail",
    ];
    let mut extra: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !used.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    extra.retain(|_, v| !v.is_null());
    let mut extra = Value::Object(extra);
    scrub(&mut extra);
    Some(Referral {
        source_url: text(ad, "sourceUrl"),
        source_id: text(ad, "sourceId"),
        source_type: text(ad, "sourceType"),
        headline: text(ad, "title"),
        body: text(ad, "body"),
        image_url: media_url
            .clone()
            .filter(|_| media_type.as_deref() == Some("image")),
        video_url: media_url.filter(|_| media_type.as_deref() == Some("video")),
        media_type: media_type.filter(|m| m != "none"),
        thumbnail_url: text(ad, "thumbnailUrl"),
        ctwa_clid: text(ad, "ctwaClid"),
        extra: extra
            .as_object()
            .is_some_and(|o| !o.is_empty())
            .then_some(extra),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content(message: &Value, hint: Option<&str>) -> MessageContent {
        match read(Some(message), hint).body {
            Body::Content(c) => c,
            _ => panic!("not content"),
        }
    }

    #[test]
    fn the_hint_picks_the_entry_and_others_are_found_without_it() {
        let m = json!({"conversation": "hi", "messageContextInfo": {"x": 1}});
        assert_eq!(content(&m, Some("conversation")).type_name(), "text");
        assert_eq!(content(&m, Some("imageMessage")).type_name(), "text");
        let sk = json!({"senderKeyDistributionMessage": {"groupId": "g"}, "imageMessage": {"mimetype": "image/jpeg"}});
        assert_eq!(content(&sk, None).type_name(), "image");
    }

    #[test]
    fn wrappers_are_unwrapped_to_their_content() {
        let m = json!({"ephemeralMessage": {"message": {"viewOnceMessageV2": {"message": {"imageMessage": {"caption": "x"}}}}}});
        assert_eq!(content(&m, Some("ephemeralMessage")).type_name(), "image");
        let future = json!({"someNewWrapperMessage": {"message": {"conversation": "inner"}}});
        assert_eq!(content(&future, None).type_name(), "text");
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_unknown_not_a_stack_overflow() {
        let mut m = json!({"conversation": "deep"});
        for _ in 0..50 {
            m = json!({"ephemeralMessage": {"message": m}});
        }
        assert_eq!(content(&m, None).type_name(), "unknown");
    }

    #[test]
    fn a_protocol_message_without_a_type_is_a_revoke_when_it_names_a_key() {
        let p = Protocol::from_value(&json!({"key": {"id": "A"}}));
        assert_eq!(p.kind, "REVOKE");
        let p = Protocol::from_value(&json!({"ephemeralExpiration": 86400}));
        assert_eq!(p.kind, "UNKNOWN");
        let p = Protocol::from_value(&json!({"key": {"id": "A"}, "type": 99}));
        assert_eq!(p.kind, "99");
    }

    #[test]
    fn quoted_and_edited_texts_are_read_through_wrappers_and_captions() {
        assert_eq!(text_of(&json!({"conversation": "a"})).as_deref(), Some("a"));
        assert_eq!(
            text_of(&json!({"extendedTextMessage": {"text": "b"}})).as_deref(),
            Some("b")
        );
        assert_eq!(
            text_of(&json!({"documentWithCaptionMessage": {"message": {"documentMessage": {"caption": "c"}}}}))
                .as_deref(),
            Some("c")
        );
        assert_eq!(text_of(&json!({"stickerMessage": {}})), None);
        assert_eq!(text_of(&json!("x")), None);
    }

    #[test]
    fn an_empty_message_is_unsupported_with_evolutions_type() {
        match content(&json!({}), Some("unknown")) {
            MessageContent::Unsupported(u) => {
                assert_eq!(u.provider_type.as_deref(), Some("unknown"));
            }
            other => panic!("{other:?}"),
        }
    }
}
