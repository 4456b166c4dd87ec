//! The media port: files fetched from a provider, stored whole under a key, and handed to
//! subscribers as a URL that works for a limited time.
//!
//! Owns: the store contract ([`MediaStore`]: a streamed put that never needs the whole file in
//! memory, a streamed get, a time-limited URL, delete), its in-memory backend
//! ([`MemoryMediaStore`]) and the signed URLs of stores the local gateway serves itself
//! ([`SignedUrls`]). Must not: check sizes, types or hashes (the media stage does, on the stream
//! it passes in), or name a vendor (S3 is `aws_adapters::s3`, the disk store is local mode's).

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::pin::Pin;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt as _};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::BackendError;

/// A body that arrives in chunks; an `Err` item ends it (the source failed or a check refused
/// what came).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A stream of the given chunks (tests, small bodies).
pub fn stream_of(chunks: Vec<Bytes>) -> ByteStream {
    Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))
}

/// What to store.
#[derive(Debug, Clone, Copy)]
pub struct MediaPut<'a> {
    /// Object key: `{source id}/{media id}`; letters, digits, `/`, `.`, `_`, `-` only.
    pub key: &'a str,
    /// `Content-Type` the object is served with.
    pub content_type: &'a str,
    /// File name the object is served with (`Content-Disposition`), when known.
    pub filename: Option<&'a str>,
    /// The exact length, when known in advance (S3 then takes the body in one streamed
    /// request; without it the body goes up in parts).
    pub size: Option<u64>,
}

/// A stored object, as [`MediaStore::get`] finds it.
pub struct MediaObject {
    /// `Content-Type` stored with it.
    pub content_type: String,
    /// Length in bytes.
    pub size: u64,
    /// The bytes.
    pub body: ByteStream,
}

impl Debug for MediaObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaObject")
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Why a put failed.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The body stream failed (the provider broke off, or a check on the stream refused it).
    /// Nothing is stored under the key.
    #[error("body failed: {0}")]
    Body(#[source] std::io::Error),
    /// The store failed; whether anything is stored under the key is unknown.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Where fetched media is kept.
#[async_trait]
pub trait MediaStore: Send + Sync + Debug {
    /// Streams `body` into `put.key`, replacing what was there. On success the object holds
    /// exactly the bytes the stream yielded; when the stream ends in an error nothing is left
    /// under the key (an upload in parts is aborted).
    async fn put(&self, put: MediaPut<'_>, body: ByteStream) -> Result<(), PutError>;

    /// The object under `key`, if there is one.
    async fn get(&self, key: &str) -> Result<Option<MediaObject>, BackendError>;

    /// Whether there is an object under `key` (without reading it).
    async fn exists(&self, key: &str) -> Result<bool, BackendError>;

    /// A URL anyone holding it can download the object from until `expires_at` (at most
    /// [`MAX_URL_LIFETIME`] after `now`).
    async fn url(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String, BackendError>;

    /// Removes the object under `key` (no error when there is none).
    async fn delete(&self, key: &str) -> Result<(), BackendError>;
}

/// The longest a download URL may live: S3's limit for presigned URLs (seven days).
pub const MAX_URL_LIFETIME: chrono::Duration = chrono::Duration::days(7);

/// Whether `key` is a valid object key: 1–512 bytes of letters, digits, `/`, `.`, `_`, `-`,
/// no empty, `.` or `..` segment.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
        && key
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

/// URLs of media a wagate process serves itself (`GET {base}/media/{key}?expires=…&signature=…`):
/// an HMAC-SHA256 over the key and expiry with a key only the process holds.
#[derive(Clone)]
pub struct SignedUrls {
    base: String,
    secret: [u8; 32],
}

impl Debug for SignedUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedUrls")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl SignedUrls {
    /// URLs under `base` (`http://127.0.0.1:3000`, no trailing slash), signed with `secret`.
    pub fn new(base: impl Into<String>, secret: [u8; 32]) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            secret,
        }
    }

    /// The URL of `key` until `expires_at`.
    pub fn url(&self, key: &str, expires_at: DateTime<Utc>) -> String {
        let expires = expires_at.timestamp();
        format!(
            "{}/media/{key}?expires={expires}&signature={}",
            self.base,
            self.signature(key, expires)
        )
    }

    /// Whether `signature` signs `key` until `expires` and `expires` is not past at `now`.
    pub fn verify(&self, key: &str, expires: i64, signature: &str, now: DateTime<Utc>) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mac = self.mac(key, expires);
        // The sign is checked before the time, so a forged URL is told apart from an expired one
        // only by someone who could sign.
        mac.verify_slice(&given).is_ok() && now.timestamp() < expires
    }

    fn signature(&self, key: &str, expires: i64) -> String {
        hex::encode(self.mac(key, expires).finalize().into_bytes())
    }

    fn mac(&self, key: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }
}

/// Media kept in memory (tests, `--backend memory`), served by the process at [`SignedUrls`].
#[derive(Debug)]
pub struct MemoryMediaStore {
    urls: SignedUrls,
    objects: Mutex<HashMap<String, (String, Bytes)>>,
}

impl MemoryMediaStore {
    /// An empty store whose URLs are `urls`.
    pub fn new(urls: SignedUrls) -> Self {
        Self {
            urls,
            objects: Mutex::new(HashMap::new()),
        }
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Bytes)>> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl MediaStore for MemoryMediaStore {
    async fn put(&self, put: MediaPut<'_>, mut body: ByteStream) -> Result<(), PutError> {
        if !valid_key(put.key) {
            return Err(BackendError::Rejected(format!("invalid media key `{}`", put.key)).into());
        }
        let mut bytes = Vec::with_capacity(
            put.size
                .and_then(|s| usize::try_from(s).ok())
                .unwrap_or(0)
                .min(1 << 20),
        );
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.map_err(PutError::Body)?);
        }
        self.objects().insert(
            put.key.to_owned(),
            (put.content_type.to_owned(), Bytes::from(bytes)),
        );
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<MediaObject>, BackendError> {
        Ok(self
            .objects()
            .get(key)
            .map(|(content_type, bytes)| MediaObject {
                content_type: content_type.clone(),
                size: bytes.len() as u64,
                body: stream_of(vec![bytes.clone()]),
            }))
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        Ok(self.objects().contains_key(key))
    }

    async fn url(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        _now: DateTime<Utc>,
    ) -> Result<String, BackendError> {
        Ok(self.urls.url(key, expires_at))
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.objects().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_paths() {
        assert!(valid_key("waha-main/med_01ABC.jpeg"));
        for bad in ["", "/a", "a//b", "a/../b", "a/./b", "a b", "a?b", "ä"] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn signed_urls_verify_only_their_key_and_time() {
        let urls = SignedUrls::new("http://127.0.0.1:3000/", [7; 32]);
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let url = urls.url("s/k.jpg", now + chrono::Duration::seconds(60));
        assert!(
            url.starts_with("http://127.0.0.1:3000/media/s/k.jpg?expires=1700000060&signature=")
        );
        let signature = url.rsplit('=').next().unwrap();
        assert!(urls.verify("s/k.jpg", 1_700_000_060, signature, now));
        assert!(!urls.verify(
            "s/k.jpg",
            1_700_000_060,
            signature,
            now + chrono::Duration::seconds(60)
        ));
        assert!(!urls.verify("s/other.jpg", 1_700_000_060, signature, now));
        assert!(!urls.verify("s/k.jpg", 1_700_000_061, signature, now));
        assert!(!urls.verify("s/k.jpg", 1_700_000_060, "zz", now));
        let other = SignedUrls::new("http://127.0.0.1:3000", [8; 32]);
        assert!(!other.verify("s/k.jpg", 1_700_000_060, signature, now));
    }

    #[tokio::test]
    async fn a_failed_body_leaves_nothing() {
        let store = MemoryMediaStore::new(SignedUrls::new("http://x", [0; 32]));
        let put = MediaPut {
            key: "s/k",
            content_type: "image/jpeg",
            filename: None,
            size: None,
        };
        let body: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("cut")),
        ]));
        assert!(matches!(store.put(put, body).await, Err(PutError::Body(_))));
        assert!(!store.exists("s/k").await.unwrap());
        store
            .put(
                put,
                stream_of(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")]),
            )
            .await
            .unwrap();
        let object = store.get("s/k").await.unwrap().unwrap();
        assert_eq!(
            (object.content_type.as_str(), object.size),
            ("image/jpeg", 3)
        );
    }
}
