//! Provider parsers: verified webhook bytes in, normalized [`InboundEvent`]s out.
//!
//! Owns: the mapping from each provider's envelope to the event model, one event per message,
//! status or notification item, with its dedup key. Must not: verify signatures (see
//! [`crate::signature`]), do I/O, or drop anything: an item that cannot be understood becomes a
//! `whatsapp.provider.event` carrying the raw item. Never panics, whatever the bytes.

pub mod chat_id;
pub mod evolution;
pub mod gupshup;
pub(crate) mod lenient;
pub mod meta;
pub mod twilio;
pub(crate) mod vcard;
pub mod waha;

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod fixtures_test;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ids::{EventId, SourceId};
use crate::model::{
    EventBody, EventData, EventType, InboundEvent, NotificationData, Provider, SourceInfo,
};

/// Why a verified body could not be turned into events at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON (or not UTF-8 JSON). Answer 400: the provider sent garbage.
    #[error("body is not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
}

/// Parses a verified webhook body from `provider` into normalized events.
///
/// An empty result is possible (a Meta envelope with no entries); everything present becomes
/// at least one event.
pub fn normalize(
    source_id: &SourceId,
    provider: Provider,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<InboundEvent>, ParseError> {
    let ctx = Ctx {
        source: SourceInfo::new(source_id.clone(), provider),
        received_at,
    };
    match provider {
        Provider::Meta | Provider::Dialog360 => meta::parse(&ctx, body),
        Provider::Waha => waha::parse(&ctx, body),
        Provider::Twilio => twilio::parse(&ctx, body),
        Provider::Gupshup => gupshup::parse(&ctx, body),
        Provider::Evolution => evolution::parse(&ctx, body),
    }
}

/// A dedup key already scoped by the source id: made by [`Ctx::key`] only.
pub(crate) struct ScopedKey(String);

/// What every item of one webhook shares.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// Source id and provider; parsers fill in the business fields per item.
    pub source: SourceInfo,
    /// When wagate received the webhook.
    pub received_at: DateTime<Utc>,
}

impl Ctx {
    /// Wraps one normalized item. Its dedup key is scoped by the source id: two sources may
    /// see the same provider ids (two WAHA servers whose sessions are both `default`).
    pub fn event(
        &self,
        event_type: EventType,
        dedup_key: impl AsRef<str>,
        occurred_at: Option<DateTime<Utc>>,
        source: impl Into<Arc<SourceInfo>>,
        body: EventBody,
    ) -> InboundEvent {
        let dedup_key = dedup_key.as_ref();
        let id = self.source.id.as_str();
        let mut key = String::with_capacity(id.len() + 1 + dedup_key.len());
        key.push_str(id);
        key.push(':');
        key.push_str(dedup_key);
        self.scoped_event(event_type, ScopedKey(key), occurred_at, source, body)
    }

    /// The dedup key `{source id}:{rest}`, written once into a buffer sized for it (the hot
    /// items build their keys here instead of formatting and then prefixing them).
    pub fn key(&self, rest: std::fmt::Arguments<'_>) -> ScopedKey {
        use std::fmt::Write;
        let id = self.source.id.as_str();
        // Room for the longest common key: `meta:{phone number id}:{wamid}:{status}:{participant}`.
        let mut key = String::with_capacity(id.len() + 1 + 160);
        key.push_str(id);
        key.push(':');
        // Writing into a `String` cannot fail.
        let _ = key.write_fmt(rest);
        ScopedKey(key)
    }

    /// [`Ctx::event`] with a key already scoped by [`Ctx::key`].
    pub fn scoped_event(
        &self,
        event_type: EventType,
        ScopedKey(dedup_key): ScopedKey,
        occurred_at: Option<DateTime<Utc>>,
        source: impl Into<Arc<SourceInfo>>,
        body: EventBody,
    ) -> InboundEvent {
        debug_assert_eq!(
            event_type.family(),
            body.family(),
            "{event_type} with wrong body"
        );
        InboundEvent {
            id: EventId::new(),
            event_type,
            dedup_key,
            received_at: self.received_at,
            occurred_at,
            request_id: None,
            data: EventData::new(source, body),
        }
    }

    /// A `whatsapp.provider.event` for something that could not be understood, keyed by a hash
    /// of its bytes so that a provider retry of the same item deduplicates.
    pub fn passthrough(
        &self,
        source: impl Into<Arc<SourceInfo>>,
        provider_event: &str,
        raw_bytes: &[u8],
    ) -> InboundEvent {
        let raw = serde_json::from_slice(raw_bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw_bytes).into_owned()));
        let key = content_key(self.source.provider, provider_event, &[raw_bytes]);
        let data = NotificationData::new(provider_event, raw);
        self.event(
            EventType::ProviderEvent,
            key,
            None,
            source,
            EventBody::notification(data),
        )
    }
}

/// A shared location as Meta and WAHA send it: coordinates as numbers or strings, optional
/// texts (empty ones dropped).
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct LocationIn {
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_f64")]
    longitude: Option<f64>,
    #[serde(default, deserialize_with = "lenient::opt_nonempty_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_nonempty_string")]
    address: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_nonempty_string")]
    url: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_nonempty_string")]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    live: Option<bool>,
}

impl LocationIn {
    /// The location, when both coordinates are present.
    pub(crate) fn into_model(self) -> Option<crate::model::LocationData> {
        Some(crate::model::LocationData {
            latitude: self.latitude?,
            longitude: self.longitude?,
            name: self.name,
            address: self.address,
            url: self.url,
            description: self.description,
            live: self.live,
        })
    }
}

/// A dedup key for items with no id of their own: provider, kind and a SHA-256 over the given
/// parts (the item's exact bytes and whatever scopes it), so a retried webhook maps to the same key.
pub(crate) fn content_key(provider: Provider, kind: &str, parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    // `kind` can come from the payload (an unknown `field` or `event`): keep keys bounded.
    let kind: String = kind.chars().take(64).collect();
    format!(
        "{}:{kind}:{}",
        provider.as_str(),
        hex::encode(&digest[..16])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_keys_separate_parts_unambiguously() {
        let a = content_key(Provider::Meta, "x", &[b"ab", b"c"]);
        let b = content_key(Provider::Meta, "x", &[b"a", b"bc"]);
        assert_ne!(a, b);
        assert_eq!(a, content_key(Provider::Meta, "x", &[b"ab", b"c"]));
        assert!(a.starts_with("meta:x:"));
    }
}
