//! The media port: files fetched from a provider, stored whole under a key, and handed to
//! subscribers as a URL that works for a limited time.
//!
//! Owns: the store contract ([`MediaStore`]: a streamed put that never needs the whole file in
//! memory, a streamed get, a time-limited URL, delete), its in-memory backend
//! ([`MemoryMediaStore`]) and the signed URLs of stores the local gateway serves itself
//! ([`SignedUrls`]). Must not: check sizes, types or hashes (the media stage does, on the stream
//! it passes in), or name a vendor (S3 is `aws_adapters::s3`, the disk store is local mode's).

use std::collections::HashMap;
use std::fmt::{self, Debug, Write as _};
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
    /// File name stored with it ([`MediaPut::filename`]), when one was given.
    pub filename: Option<String>,
    /// Length in bytes.
    pub size: u64,
    /// The bytes.
    pub body: ByteStream,
}

impl Debug for MediaObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaObject")
            .field("content_type", &self.content_type)
            .field("filename", &self.filename)
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
    /// exactly the bytes the stream yielded; when the stream ends in an error, or yields another
    /// number of bytes than `put.size` says, the put fails with [`PutError::Body`] and nothing
    /// is left under the key (not even what was there before; an upload in parts is aborted).
    /// Readers never see a partial object. An invalid key ([`valid_key`]) is
    /// [`BackendError::Rejected`], as it is for every other method.
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

/// [`BackendError::Rejected`] unless [`valid_key`]`(key)`.
pub fn check_key(key: &str) -> Result<(), BackendError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(BackendError::Rejected(format!("invalid media key `{key}`")))
    }
}

/// How long a URL asked for at `now` to work until `expires_at` lives: refused
/// ([`BackendError::Rejected`]) unless it is positive and at most [`MAX_URL_LIFETIME`].
pub fn url_lifetime(
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<std::time::Duration, BackendError> {
    let lifetime = expires_at - now;
    if lifetime > MAX_URL_LIFETIME {
        return Err(BackendError::Rejected(format!(
            "a media URL lives at most {} days, not {}s",
            MAX_URL_LIFETIME.num_days(),
            lifetime.num_seconds()
        )));
    }
    match lifetime.to_std() {
        Ok(lifetime) if !lifetime.is_zero() => Ok(lifetime),
        _ => Err(BackendError::Rejected(
            "a media URL must expire after it is made".into(),
        )),
    }
}

/// The error of a body that yields another number of bytes than [`MediaPut::size`] announced
/// (`got` so far, which may stop counting once it passes `expected`).
pub fn size_mismatch(expected: u64, got: u64) -> std::io::Error {
    let relation = if got > expected { "more than" } else { "only" };
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("media body announced {expected} bytes but yielded {relation} {got}"),
    )
}

/// The `Content-Disposition` an object is served with: always `attachment` (a browser must not
/// render a subscriber's file inline under the store's origin), with the file name as an
/// RFC 8187 `filename*` parameter when there is one.
pub fn content_disposition(filename: Option<&str>) -> String {
    let Some(name) = filename.filter(|n| !n.is_empty()) else {
        return "attachment".to_owned();
    };
    let mut out = String::from("attachment; filename*=UTF-8''");
    for &b in name.as_bytes() {
        // RFC 8187 attr-char; everything else (quotes, `;`, `%`, controls, UTF-8) is escaped.
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            )
        {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The file name in a `Content-Disposition` made by [`content_disposition`] (its
/// `filename*=UTF-8''…` parameter, percent-decoded), if it has one.
pub fn disposition_filename(header: &str) -> Option<String> {
    let encoded = header
        .split(';')
        .map(str::trim)
        .find_map(|param| param.strip_prefix("filename*=UTF-8''"))?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail
                .get(..2)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes)
        .ok()
        .filter(|name| !name.is_empty())
}

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

/// One object of a [`MemoryMediaStore`].
#[derive(Debug)]
struct Stored {
    content_type: String,
    filename: Option<String>,
    bytes: Bytes,
}

/// Media kept in memory (tests, `--backend memory`), served by the process at [`SignedUrls`].
#[derive(Debug)]
pub struct MemoryMediaStore {
    urls: SignedUrls,
    objects: Mutex<HashMap<String, Stored>>,
}

impl MemoryMediaStore {
    /// An empty store whose URLs are `urls`.
    pub fn new(urls: SignedUrls) -> Self {
        Self {
            urls,
            objects: Mutex::new(HashMap::new()),
        }
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stored>> {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reads all of `body`, failing as soon as it yields more than `size` bytes.
async fn collect(size: Option<u64>, mut body: ByteStream) -> Result<Vec<u8>, std::io::Error> {
    let mut bytes = Vec::with_capacity(
        size.and_then(|s| usize::try_from(s).ok())
            .unwrap_or(0)
            .min(1 << 20),
    );
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk?);
        if let Some(size) = size.filter(|&s| bytes.len() as u64 > s) {
            return Err(size_mismatch(size, bytes.len() as u64));
        }
    }
    match size {
        Some(size) if bytes.len() as u64 != size => Err(size_mismatch(size, bytes.len() as u64)),
        _ => Ok(bytes),
    }
}

#[async_trait]
impl MediaStore for MemoryMediaStore {
    async fn put(&self, put: MediaPut<'_>, body: ByteStream) -> Result<(), PutError> {
        check_key(put.key)?;
        match collect(put.size, body).await {
            Ok(bytes) => {
                self.objects().insert(
                    put.key.to_owned(),
                    Stored {
                        content_type: put.content_type.to_owned(),
                        filename: put.filename.map(str::to_owned),
                        bytes: Bytes::from(bytes),
                    },
                );
                Ok(())
            }
            Err(e) => {
                self.objects().remove(put.key);
                Err(PutError::Body(e))
            }
        }
    }

    async fn get(&self, key: &str) -> Result<Option<MediaObject>, BackendError> {
        check_key(key)?;
        Ok(self.objects().get(key).map(|stored| MediaObject {
            content_type: stored.content_type.clone(),
            filename: stored.filename.clone(),
            size: stored.bytes.len() as u64,
            body: stream_of(vec![stored.bytes.clone()]),
        }))
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        check_key(key)?;
        Ok(self.objects().contains_key(key))
    }

    async fn url(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String, BackendError> {
        check_key(key)?;
        url_lifetime(expires_at, now)?;
        Ok(self.urls.url(key, expires_at))
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        check_key(key)?;
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

    #[test]
    fn content_disposition_is_an_attachment_with_an_escaped_name() {
        assert_eq!(content_disposition(None), "attachment");
        assert_eq!(content_disposition(Some("")), "attachment");
        assert_eq!(
            content_disposition(Some("report-2024_v1.pdf")),
            "attachment; filename*=UTF-8''report-2024_v1.pdf"
        );
        assert_eq!(
            content_disposition(Some("a \"b\";\r\nc%.txt")),
            "attachment; filename*=UTF-8''a%20%22b%22%3B%0D%0Ac%25.txt"
        );
        assert_eq!(
            content_disposition(Some("ä€.jpg")),
            "attachment; filename*=UTF-8''%C3%A4%E2%82%AC.jpg"
        );
        for name in ["report.pdf", "a \"b\";\r\nc%.txt", "ä€.jpg", "100%"] {
            assert_eq!(
                disposition_filename(&content_disposition(Some(name))).as_deref(),
                Some(name)
            );
        }
        for header in [
            "attachment",
            "attachment; filename*=UTF-8''%4",
            "attachment; filename*=UTF-8''%+1",
            "inline; x=y",
        ] {
            assert_eq!(disposition_filename(header), None, "{header}");
        }
    }

    #[test]
    fn url_lifetimes_are_positive_and_at_most_seven_days() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            url_lifetime(now + chrono::Duration::seconds(90), now).unwrap(),
            std::time::Duration::from_secs(90)
        );
        assert!(url_lifetime(now + MAX_URL_LIFETIME, now).is_ok());
        for bad in [
            now,
            now - chrono::Duration::seconds(1),
            now + MAX_URL_LIFETIME + chrono::Duration::seconds(1),
        ] {
            assert!(matches!(
                url_lifetime(bad, now),
                Err(BackendError::Rejected(_))
            ));
        }
    }

    #[tokio::test]
    async fn a_body_of_another_length_than_announced_fails_and_leaves_nothing() {
        let store = MemoryMediaStore::new(SignedUrls::new("http://x", [0; 32]));
        for size in [2, 4] {
            let put = MediaPut {
                key: "s/k",
                content_type: "image/jpeg",
                filename: None,
                size: Some(size),
            };
            store
                .put(
                    MediaPut { size: None, ..put },
                    stream_of(vec![Bytes::from_static(b"old")]),
                )
                .await
                .unwrap();
            let body = stream_of(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")]);
            let Err(PutError::Body(e)) = store.put(put, body).await else {
                panic!("a put of 3 bytes announced as {size} must fail");
            };
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            assert!(!store.exists("s/k").await.unwrap());
        }
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
        let body: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(std::io::Error::other("cut")),
        ]));
        assert!(matches!(store.put(put, body).await, Err(PutError::Body(_))));
        assert!(
            !store.exists("s/k").await.unwrap(),
            "a failed overwrite leaves nothing either"
        );
    }
}
