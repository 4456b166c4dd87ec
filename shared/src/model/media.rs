//! What wagate did with a message's media file: `message_type_data.media` (and the conversation
//! context's `last_message.media.stored`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{EventBody, InboundEvent, MediaData, MessageContent, Provider};

/// The stored copy of a message's media file, or why there is none yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StoredMedia {
    /// wagate's media id (`med_…`): `GET /v1/media/{id}` returns a fresh URL while the file is
    /// kept. The same provider file has the same id in every message that carries it.
    pub id: String,
    /// `stored`: `url` downloads the file; `pending`: still being fetched when the event went
    /// out (ask `GET /v1/media/{id}` later); `failed`: it will not be stored (`reason`).
    pub status: MediaStatus,
    /// Download URL (a presigned S3 URL; the local gateway's signed URL in local mode), no
    /// credentials needed, until `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When `url` stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub expires_at: Option<DateTime<Utc>>,
    /// MIME type the file is served with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Lowercase hex SHA-256 of the stored bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// File name (the document's own, else `{media id}.{extension}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// When the file was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub stored_at: Option<DateTime<Utc>>,
    /// Why the file is pending or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<MediaFailure>,
    /// A human-readable detail of `reason` (never a credential or a URL's query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl StoredMedia {
    /// Status `pending` with no details yet.
    pub fn pending(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            status: MediaStatus::Pending,
            url: None,
            expires_at: None,
            content_type: None,
            size: None,
            sha256: None,
            filename: None,
            stored_at: None,
            reason: None,
            detail: None,
        }
    }
}

/// Where a media file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// Stored; `url` downloads it.
    Stored,
    /// Not stored yet (the wait for it ran out, or the endpoint does not wait).
    Pending,
    /// Will not be stored.
    Failed,
}

/// Why a media file is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaFailure {
    /// Still being fetched when the event went out.
    InProgress,
    /// The source has no credentials to fetch media with (Meta: a `send` access token).
    NotConfigured,
    /// Larger than the limit for its type (or than the provider announced).
    TooLarge,
    /// Its MIME type is not on the allow-list.
    TypeNotAllowed,
    /// The provider served another type, size or hash than it announced.
    Mismatch,
    /// The provider refused the credentials (401/403).
    Unauthorized,
    /// The provider no longer has it (404/410: Meta media URLs expire).
    NotFound,
    /// The provider's address is not allowed (private network, link-local, bad URL).
    Refused,
    /// The provider failed or could not be reached, through every retry.
    ProviderError,
    /// The download did not finish in time.
    Timeout,
    /// Storing the file failed, through every retry.
    StorageError,
}

impl MediaFailure {
    /// Whether fetching again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::InProgress
                | Self::ProviderError
                | Self::Timeout
                | Self::StorageError
                | Self::NotFound
        )
    }
}

/// The provider file a message's media refers to: what to fetch, and the id wagate gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaKey {
    /// `med_` + 26 base32 characters of a SHA-256 over the source and the provider's reference.
    pub id: String,
    /// How to fetch it.
    pub locator: MediaLocator,
}

/// How a provider file is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaLocator {
    /// Meta: look the id up in the Graph API, then download the URL it gives with the token.
    MetaId(String),
    /// A URL on the provider's server (WAHA's file URL), fetched with the source's API key.
    Url(String),
}

impl MediaKey {
    /// The file `event`'s message names, if it carries one wagate can fetch ([`Self::of`]).
    pub fn of_event(event: &InboundEvent) -> Option<Self> {
        Self::of(
            event.data.source.id.as_str(),
            event.data.source.provider,
            event_media(event)?,
        )
    }

    /// The file `media` (carried by a message of `source`, a `provider` source) refers to, if
    /// it names one wagate can fetch: Meta's media id, or a provider URL.
    pub fn of(source: &str, provider: Provider, media: &MediaData) -> Option<Self> {
        let locator = match provider {
            Provider::Meta => MediaLocator::MetaId(media.id.clone().filter(|i| !i.is_empty())?),
            Provider::Waha => {
                if media.error.is_some() {
                    return None;
                }
                let url = media.url.as_deref().filter(|u| !u.is_empty())?;
                MediaLocator::Url(url.to_owned())
            }
            // Twilio's media URL (fetched with the account's basic auth), Gupshup's file
            // manager URL (public).
            Provider::Twilio | Provider::Gupshup => {
                MediaLocator::Url(media.url.clone().filter(|u| !u.is_empty())?)
            }
            // Evolution API's own copy (`mediaUrl`, when its S3 storage is on); WhatsApp's CDN
            // URL it gives otherwise serves the file encrypted, which is of no use to anyone.
            Provider::Evolution => {
                let url = media.url.as_deref().filter(|u| !u.is_empty())?;
                let host = url::Url::parse(url).ok()?.host_str()?.to_ascii_lowercase();
                if host == "whatsapp.net" || host.ends_with(".whatsapp.net") {
                    return None;
                }
                MediaLocator::Url(url.to_owned())
            }
            // 360dialog serves Meta's media ids through its own API with its own key, which a
            // source cannot hold yet: the message keeps the id.
            Provider::Dialog360 => return None,
        };
        let reference = match &locator {
            MediaLocator::MetaId(id) => format!("meta-id\n{id}"),
            // The query may hold a short-lived token: the file is the same without it.
            MediaLocator::Url(url) => format!("url\n{}", url.split('?').next().unwrap_or(url)),
        };
        let digest = Sha256::new()
            .chain_update(source.as_bytes())
            .chain_update(b"\n")
            .chain_update(reference.as_bytes())
            .finalize();
        Some(Self {
            id: format!("med_{}", base32(&digest[..16])),
            locator,
        })
    }

    /// The key of this media in a media store: `{source}/{id}`.
    pub fn object_key(source: &str, id: &str) -> String {
        format!("{source}/{id}")
    }
}

/// The file of `content` when it is an image, video, audio, document or sticker.
pub fn media_ref(content: &MessageContent) -> Option<&MediaData> {
    match content {
        MessageContent::Image(m)
        | MessageContent::Video(m)
        | MessageContent::Audio(m)
        | MessageContent::Document(m)
        | MessageContent::Sticker(m) => Some(m),
        _ => None,
    }
}

/// The file `event`'s message carries, if it is a message with one.
pub fn event_media(event: &InboundEvent) -> Option<&MediaData> {
    let EventBody::Message(body) = &event.data.body else {
        return None;
    };
    body.message.content.as_ref().and_then(media_ref)
}

/// [`media_ref`], to change the file's data.
pub fn media_mut(content: &mut MessageContent) -> Option<&mut MediaData> {
    match content {
        MessageContent::Image(m)
        | MessageContent::Video(m)
        | MessageContent::Audio(m)
        | MessageContent::Document(m)
        | MessageContent::Sticker(m) => Some(m),
        _ => None,
    }
}

/// Sets `media` on the event's message and on the conversation context's summaries of it.
pub fn attach_media(event: &mut InboundEvent, media: &StoredMedia) {
    let EventBody::Message(body) = &mut event.data.body else {
        return;
    };
    let message_id = body.message.id.clone();
    if let Some(data) = body.message.content.as_mut().and_then(media_mut) {
        data.media = Some(Box::new(media.clone()));
    }
    if let Some(conversation) = event.data.conversation.as_mut() {
        let context = &mut conversation.context;
        for summary in context
            .recent_messages
            .iter_mut()
            .chain(context.last_inbound_message.iter_mut())
            .filter(|s| s.id == message_id)
        {
            if let Some(r) = summary.media.as_mut() {
                r.stored = Some(Box::new(media.clone()));
            }
        }
    }
}

/// Crockford base32, lowercase, of `bytes` (16 bytes → 26 characters).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> MediaData {
        MediaData {
            id: Some(id.into()),
            ..MediaData::default()
        }
    }

    #[test]
    fn ids_are_stable_per_source_and_file() {
        let a = MediaKey::of("meta-main", Provider::Meta, &meta("1234")).unwrap();
        assert_eq!(
            a,
            MediaKey::of("meta-main", Provider::Meta, &meta("1234")).unwrap()
        );
        assert!(a.id.starts_with("med_") && a.id.len() == 30, "{}", a.id);
        assert!(crate::ports::media::valid_key(&MediaKey::object_key(
            "meta-main",
            &a.id
        )));
        assert_ne!(
            a.id,
            MediaKey::of("meta-other", Provider::Meta, &meta("1234"))
                .unwrap()
                .id
        );
        assert_ne!(
            a.id,
            MediaKey::of("meta-main", Provider::Meta, &meta("1235"))
                .unwrap()
                .id
        );
        assert_eq!(a.locator, MediaLocator::MetaId("1234".into()));
    }

    #[test]
    fn waha_files_are_keyed_by_url_without_the_query() {
        let media = |url: &str| MediaData {
            url: Some(url.into()),
            ..MediaData::default()
        };
        let a = MediaKey::of(
            "w",
            Provider::Waha,
            &media("http://waha/api/files/a.jpg?t=1"),
        )
        .unwrap();
        let b = MediaKey::of(
            "w",
            Provider::Waha,
            &media("http://waha/api/files/a.jpg?t=2"),
        )
        .unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(
            a.locator,
            MediaLocator::Url("http://waha/api/files/a.jpg?t=1".into())
        );
        let failed = MediaData {
            error: Some(serde_json::json!({"message": "too big"})),
            ..media("http://waha/x")
        };
        assert_eq!(MediaKey::of("w", Provider::Waha, &failed), None);
        assert_eq!(MediaKey::of("w", Provider::Meta, &media("http://x")), None);
    }
}
