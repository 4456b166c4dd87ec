//! Fetching one provider file into the media store: the provider's requests (Meta's lookup then
//! download; WAHA's file URL), the checks (limits, allow-list, what the provider announced) and
//! the stream that counts and hashes the bytes on their way to the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::MediaConfig;
use crate::model::{MediaData, MediaFailure, MediaLocator, Provider};
use crate::ports::Source;
use crate::ports::media::{ByteStream, MediaPut, MediaStore, PutError};
use crate::send::api::{ApiCall, ApiMethod, CallError, Download, DownloadAnswer, ProviderApi};
use crate::send::{MetaSend, SendSettings, WahaSend};

/// Why a fetch failed: the reason subscribers see, a detail for them, and whether trying again
/// may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub reason: MediaFailure,
    /// A human-readable detail (no credentials, no URL queries).
    pub detail: String,
    /// Whether a later attempt may succeed.
    pub transient: bool,
}

impl Failure {
    fn permanent(reason: MediaFailure, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            transient: false,
        }
    }

    fn transient(reason: MediaFailure, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            transient: true,
        }
    }
}

/// A file in the store, as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// `Content-Type` it is stored with.
    pub content_type: String,
    /// Bytes stored.
    pub size: u64,
    /// Lowercase hex SHA-256 of those bytes.
    pub sha256: String,
    /// File name it is served with.
    pub filename: String,
}

/// What kind of media a message carries: decides the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `image`.
    Image,
    /// `video`.
    Video,
    /// `audio`.
    Audio,
    /// `document`.
    Document,
    /// `sticker`.
    Sticker,
}

impl Kind {
    /// The kind of `content`, when it carries a file.
    pub fn of(content: &crate::model::MessageContent) -> Option<Self> {
        use crate::model::MessageContent as C;
        Some(match content {
            C::Image(_) => Self::Image,
            C::Video(_) => Self::Video,
            C::Audio(_) => Self::Audio,
            C::Document(_) => Self::Document,
            C::Sticker(_) => Self::Sticker,
            _ => return None,
        })
    }

    /// WhatsApp's own limits: images 5 MB, video and audio 16 MB, documents 100 MB, stickers
    /// 500 KB (animated; static ones are 100 KB).
    pub fn max_bytes(self) -> u64 {
        const MB: u64 = 1024 * 1024;
        match self {
            Self::Image => 5 * MB,
            Self::Video | Self::Audio => 16 * MB,
            Self::Document => 100 * MB,
            Self::Sticker => 512 * 1024,
        }
    }
}

/// One fetch: which file, of which source, into which key.
#[derive(Debug)]
pub struct Job<'a> {
    /// The source the message came from.
    pub source: &'a Source,
    /// How to reach the file.
    pub locator: &'a MediaLocator,
    /// wagate's media id.
    pub id: &'a str,
    /// What the message said about the file.
    pub media: &'a MediaData,
    /// The message's media kind.
    pub kind: Kind,
    /// The store key.
    pub key: &'a str,
}

/// Meta's answer to `GET /{media-id}`.
#[derive(Debug, Deserialize)]
struct Lookup {
    url: String,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default, deserialize_with = "size_text_or_number")]
    file_size: Option<u64>,
}

fn size_text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// What the provider said the file is, before any byte arrived.
#[derive(Debug, Default)]
struct Announced {
    content_type: Option<String>,
    size: Option<u64>,
    /// Base64 or hex, as the provider wrote it.
    sha256: Vec<String>,
}

/// Fetches `job`'s file and streams it into `store`; the checks run on the stream.
pub async fn fetch(
    job: &Job<'_>,
    config: &MediaConfig,
    api: &dyn ProviderApi,
    store: &dyn MediaStore,
) -> Result<Fetched, Failure> {
    let mut announced = Announced {
        content_type: job.media.mime_type.clone(),
        size: None,
        sha256: job.media.sha256.iter().cloned().collect(),
    };
    let answer = match (job.locator, job.source.send.as_ref()) {
        (MediaLocator::MetaId(media_id), Some(SendSettings::Meta(meta))) => {
            let lookup = lookup(api, meta, media_id, config).await?;
            announced.content_type = announced.content_type.or(lookup.mime_type);
            announced.size = lookup.file_size;
            announced.sha256.extend(lookup.sha256);
            if let Some(size) = announced.size {
                check_size(size, limit(job, config))?;
            }
            let headers = bearer(meta);
            download(api, &lookup.url, &headers, false, config).await?
        }
        (MediaLocator::MetaId(_), _) => {
            return Err(Failure::permanent(
                MediaFailure::NotConfigured,
                "the source has no Meta access token (`send.access_token`) to fetch media with",
            ));
        }
        (MediaLocator::Url(url), settings) => {
            let waha = match settings {
                Some(SendSettings::Waha(w)) => Some(w),
                _ => None,
            };
            let headers = match (job.source.provider, waha) {
                (Provider::Twilio, _) => twilio_headers(job.source, url),
                (_, Some(w)) => waha_headers(w, url),
                _ => Vec::new(),
            };
            let private = waha.is_some_and(|w| w.allow_private_network);
            download(api, url, &headers, private, config).await?
        }
    };
    store_checked(job, config, announced, answer, store).await
}

async fn lookup(
    api: &dyn ProviderApi,
    meta: &MetaSend,
    media_id: &str,
    config: &MediaConfig,
) -> Result<Lookup, Failure> {
    let url = format!(
        "{}/{}/{}",
        meta.graph_url,
        meta.graph_version,
        percent_path(media_id)
    );
    let headers = bearer(meta);
    let answer = api
        .call(ApiCall {
            method: ApiMethod::Get,
            url: &url,
            headers: &headers,
            body: &[],
            timeout: config.header_timeout,
            private_network: false,
        })
        .await
        .map_err(|e| call_failure(&e, "the media lookup"))?;
    if let Some(failure) = status_failure(answer.status, "the media lookup") {
        // Graph answers an unknown or expired media id with 400 and error code 100.
        if answer.status == 400 && graph_error_code(&answer.body) == Some(100) {
            return Err(Failure::permanent(
                MediaFailure::NotFound,
                "Meta does not know this media id (it may have expired)",
            ));
        }
        return Err(failure);
    }
    serde_json::from_slice::<Lookup>(&answer.body).map_err(|_| {
        Failure::transient(
            MediaFailure::ProviderError,
            "the media lookup answered without a download URL",
        )
    })
}

fn graph_error_code(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .pointer("/error/code")?
        .as_u64()
}

fn bearer(meta: &MetaSend) -> Vec<(String, String)> {
    vec![(
        "Authorization".to_owned(),
        format!(
            "Bearer {}",
            String::from_utf8_lossy(meta.access_token.expose())
        ),
    )]
}

/// The WAHA API key goes only to the configured WAHA server's origin: a media URL on another
/// host gets no credential.
fn waha_headers(waha: &WahaSend, url: &str) -> Vec<(String, String)> {
    let same_origin = match (url::Url::parse(url), url::Url::parse(&waha.base_url)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    };
    match (&waha.api_key, same_origin) {
        (Some(key), true) => vec![(
            "X-Api-Key".to_owned(),
            String::from_utf8_lossy(key.expose()).into_owned(),
        )],
        _ => Vec::new(),
    }
}

/// Twilio's media URLs (`https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages/…/
/// Media/…`) answer with the account's HTTP basic auth (required when the account enforces it):
/// the account SID from the URL, the source's auth token. Sent to `api.twilio.com` over HTTPS
/// only; the redirect to Twilio's CDN drops it (another origin).
fn twilio_headers(source: &Source, url: &str) -> Vec<(String, String)> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Vec::new();
    };
    if parsed.scheme() != "https" || parsed.host_str() != Some("api.twilio.com") {
        return Vec::new();
    }
    let account = parsed
        .path_segments()
        .and_then(|mut s| {
            (s.next() == Some("2010-04-01") && s.next() == Some("Accounts"))
                .then(|| s.next())
                .flatten()
        })
        .filter(|a| a.starts_with("AC") && a.bytes().all(|b| b.is_ascii_alphanumeric()));
    match (account, source.secrets.first()) {
        (Some(account), Some(token)) => {
            let mut credentials = format!("{account}:").into_bytes();
            credentials.extend_from_slice(token.expose());
            vec![(
                "Authorization".to_owned(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                ),
            )]
        }
        _ => Vec::new(),
    }
}

fn percent_path(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

async fn download(
    api: &dyn ProviderApi,
    url: &str,
    headers: &[(String, String)],
    private_network: bool,
    config: &MediaConfig,
) -> Result<DownloadAnswer, Failure> {
    let answer = api
        .download(Download {
            url,
            headers,
            timeout: config.header_timeout,
            body_timeout: config.download_timeout,
            private_network,
            max_redirects: 3,
        })
        .await
        .map_err(|e| call_failure(&e, "the download"))?;
    match status_failure(answer.status, "the download") {
        Some(failure) => Err(failure),
        None => Ok(answer),
    }
}

fn call_failure(e: &CallError, what: &str) -> Failure {
    match e {
        CallError::Refused(detail) => Failure::permanent(
            MediaFailure::Refused,
            format!("{what} was refused: {detail}"),
        ),
        CallError::Timeout => {
            Failure::transient(MediaFailure::Timeout, format!("{what} timed out"))
        }
        CallError::Connect(detail) | CallError::Interrupted(detail) => Failure::transient(
            MediaFailure::ProviderError,
            format!("{what} failed: {detail}"),
        ),
    }
}

fn status_failure(status: u16, what: &str) -> Option<Failure> {
    Some(match status {
        200..=299 => return None,
        401 | 403 => Failure::permanent(
            MediaFailure::Unauthorized,
            format!("{what} was refused with {status}: check the source's credentials"),
        ),
        404 | 410 => Failure::permanent(
            MediaFailure::NotFound,
            format!("{what} answered {status}: the provider no longer has the file"),
        ),
        408 | 425 | 429 | 500..=599 => Failure::transient(
            MediaFailure::ProviderError,
            format!("{what} answered {status}"),
        ),
        _ => Failure::permanent(
            MediaFailure::ProviderError,
            format!("{what} answered {status}"),
        ),
    })
}

/// The essence of a MIME type: lowercase, without parameters.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Whether `content_type` (an essence) is on `allowed` (exact types or `type/*`).
pub fn allowed(allowed: &[String], content_type: &str) -> bool {
    allowed.iter().any(|a| match a.strip_suffix("/*") {
        Some(major) => content_type
            .split_once('/')
            .is_some_and(|(m, _)| m == major),
        None => a == content_type || a == "*",
    })
}

async fn store_checked(
    job: &Job<'_>,
    config: &MediaConfig,
    announced: Announced,
    answer: DownloadAnswer,
    store: &dyn MediaStore,
) -> Result<Fetched, Failure> {
    let served = answer.content_type.as_deref().map(essence);
    let stated = announced.content_type.as_deref().map(essence);
    // A generic or missing served type says nothing; a specific one must agree with what the
    // message announced.
    let served_specific = served.clone().filter(|s| {
        !matches!(
            s.as_str(),
            "" | "application/octet-stream" | "binary/octet-stream"
        )
    });
    if let (Some(stated), Some(served)) = (&stated, &served_specific)
        && stated != served
    {
        return Err(Failure::permanent(
            MediaFailure::Mismatch,
            format!("announced as {stated} but served as {served}"),
        ));
    }
    let content_type = stated
        .or(served_specific)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    if !allowed(&config.allowed_types, &content_type) {
        return Err(Failure::permanent(
            MediaFailure::TypeNotAllowed,
            format!("{content_type} is not on the allow-list"),
        ));
    }
    let limit = limit(job, config);
    for size in [announced.size, answer.content_length]
        .into_iter()
        .flatten()
    {
        check_size(size, limit)?;
    }
    if let (Some(a), Some(b)) = (announced.size, answer.content_length)
        && a != b
    {
        return Err(Failure::permanent(
            MediaFailure::Mismatch,
            format!("announced {a} bytes but the download says {b}"),
        ));
    }
    let expected = announced.size.or(answer.content_length);
    let meter = Arc::new(Mutex::new(Meter::default()));
    let body = metered(answer.body, meter.clone(), limit, expected);
    let filename = filename(job, &content_type);
    let put = MediaPut {
        key: job.key,
        content_type: &content_type,
        filename: Some(&filename),
        size: expected,
    };
    let stored = store.put(put, body).await;
    let meter = std::mem::take(
        &mut *meter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    match stored {
        Ok(()) => {}
        Err(PutError::Body(e)) => {
            return Err(meter.refusal.unwrap_or_else(|| body_failure(&e)));
        }
        Err(PutError::Backend(e)) => {
            return Err(Failure::transient(
                MediaFailure::StorageError,
                format!("storing the file failed: {e}"),
            ));
        }
    }
    let digest = meter.hasher.finalize();
    let hex = hex::encode(digest);
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    let sha_ok = announced.sha256.iter().all(|a| {
        let a = a.trim();
        a.eq_ignore_ascii_case(&hex)
            || a == b64
            || a.trim_end_matches('=') == b64.trim_end_matches('=')
    });
    if !sha_ok || expected.is_some_and(|e| e != meter.count) {
        // The bytes are not the announced file: nothing may point at them.
        let _ = store.delete(job.key).await;
        return Err(Failure::permanent(
            MediaFailure::Mismatch,
            if sha_ok {
                "the file's size differs from the announced size".to_owned()
            } else {
                "the file's SHA-256 differs from the announced hash".to_owned()
            },
        ));
    }
    Ok(Fetched {
        content_type,
        size: meter.count,
        sha256: hex,
        filename,
    })
}

/// The size limit of `job`'s file.
fn limit(job: &Job<'_>, config: &MediaConfig) -> u64 {
    config
        .max_bytes
        .map_or(job.kind.max_bytes(), |cap| cap.min(job.kind.max_bytes()))
}

fn check_size(size: u64, limit: u64) -> Result<(), Failure> {
    if size > limit {
        return Err(Failure::permanent(
            MediaFailure::TooLarge,
            format!("{size} bytes, over the {limit}-byte limit"),
        ));
    }
    Ok(())
}

fn body_failure(e: &std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::TimedOut {
        Failure::transient(MediaFailure::Timeout, "the download did not finish in time")
    } else {
        Failure::transient(
            MediaFailure::ProviderError,
            format!("the download broke off: {e}"),
        )
    }
}

/// The document's own name (its path stripped), else `{id}.{extension}`.
fn filename(job: &Job<'_>, content_type: &str) -> String {
    let own = job
        .media
        .filename
        .as_deref()
        .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f).trim())
        .filter(|f| !f.is_empty() && !matches!(*f, "." | ".."))
        .map(|f| {
            f.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        });
    own.unwrap_or_else(|| format!("{}.{}", job.id, extension(content_type)))
}

/// A file extension for a MIME type essence.
pub fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        _ => "bin",
    }
}

/// What passed through a metered stream.
#[derive(Default)]
struct Meter {
    count: u64,
    hasher: Sha256,
    /// Why the stream refused to go on.
    refusal: Option<Failure>,
}

/// `body`, counted and hashed into `meter`; it ends in an error past `limit` bytes or past
/// `expected` bytes (recording why in the meter).
fn metered(
    body: ByteStream,
    meter: Arc<Mutex<Meter>>,
    limit: u64,
    expected: Option<u64>,
) -> ByteStream {
    Box::pin(body.map(move |chunk| {
        let chunk: Bytes = chunk?;
        let mut m = meter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.count += chunk.len() as u64;
        let refusal = if m.count > limit {
            Some(Failure::permanent(
                MediaFailure::TooLarge,
                format!("more than the {limit}-byte limit"),
            ))
        } else if expected.is_some_and(|e| m.count > e) {
            Some(Failure::permanent(
                MediaFailure::Mismatch,
                "the file is longer than announced",
            ))
        } else {
            None
        };
        if let Some(r) = refusal {
            m.refusal = Some(r);
            return Err(std::io::Error::other("refused by the media checks"));
        }
        m.hasher.update(&chunk);
        Ok(chunk)
    }))
}

/// The default allow-list: the media types WhatsApp's Cloud API documents.
pub fn default_allowed_types() -> Vec<String> {
    [
        "image/jpeg",
        "image/png",
        "image/webp",
        "video/mp4",
        "video/3gpp",
        "audio/aac",
        "audio/amr",
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
        "text/plain",
        "application/pdf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// When a URL made at `now` for `ttl` expires (at most [`crate::ports::media::MAX_URL_LIFETIME`]).
pub fn url_expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    let ttl = chrono::Duration::from_std(ttl)
        .unwrap_or(crate::ports::media::MAX_URL_LIFETIME)
        .min(crate::ports::media::MAX_URL_LIFETIME);
    now + ttl
}
