//! Media in local mode: [`DiskMediaStore`] keeps files under a directory, and [`media_router`]
//! serves any [`MediaStore`] at the signed URLs ([`SignedUrls`]) it hands out.
//!
//! Owns: the on-disk layout (`{dir}/{key}` for the bytes, `{dir}/{key}~meta` beside it for the
//! content type and file name; `~` never occurs in a key, so the two cannot collide), writing a
//! file so that readers never see part of it, and the `GET /media/{key}` route. Must not: read a
//! whole file into memory, or answer a request whose signature it has not checked.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use shared::ports::BackendError;
use shared::ports::media::{
    ByteStream, MediaObject, MediaPut, MediaStore, PutError, SignedUrls, check_key,
    content_disposition, size_mismatch, url_lifetime,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::clock::Clock;

/// Bytes read from a file at a time when it is streamed out.
const READ_CHUNK: usize = 64 * 1024;

/// What the sidecar of an object holds.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
}

/// Media files in a directory, served by the local gateway at [`SignedUrls`].
///
/// A put writes to a temporary file beside the object and renames it into place once the body
/// has ended well (the sidecar first, then the bytes), so a reader sees the old file or the new
/// one, never a part. During an overwrite a reader may, for an instant, see the new sidecar with
/// the old bytes; media keys name one provider file, so both carry the same type in practice.
#[derive(Debug, Clone)]
pub struct DiskMediaStore {
    dir: PathBuf,
    urls: SignedUrls,
}

impl DiskMediaStore {
    /// A store under `dir` (created on the first put) whose URLs are `urls`.
    pub fn new(dir: impl Into<PathBuf>, urls: SignedUrls) -> Self {
        Self {
            dir: dir.into(),
            urls,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The object's file and its sidecar.
    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let data = self.dir.join(key);
        let mut meta = data.clone().into_os_string();
        meta.push("~meta");
        (data, PathBuf::from(meta))
    }

    /// Removes the object and its sidecar (the bytes first: without them there is no object).
    async fn remove(&self, key: &str) -> Result<(), BackendError> {
        let (data, meta) = self.paths(key);
        for path in [data, meta] {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if absent(&e) => {}
                Err(e) => return Err(io_error("removing a media file", e)),
            }
        }
        Ok(())
    }

    /// Writes the body and sidecar to temporary files and renames them into place.
    async fn write(&self, put: MediaPut<'_>, body: ByteStream) -> Result<(), PutError> {
        let (data, meta) = self.paths(put.key);
        if let Some(parent) = data.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                // A file where a directory of the path should be: another object's key.
                if e.kind() == io::ErrorKind::AlreadyExists {
                    io_error(
                        "creating a media directory",
                        io::ErrorKind::NotADirectory.into(),
                    )
                } else {
                    io_error("creating a media directory", e)
                }
            })?;
        }
        let data_tmp = Temporary::beside(&data);
        write_body(&data_tmp.path, put.size, body).await?;
        let meta_tmp = Temporary::beside(&meta);
        let sidecar = serde_json::to_vec(&Meta {
            content_type: put.content_type.to_owned(),
            filename: put.filename.map(str::to_owned),
        })
        .map_err(|e| BackendError::Rejected(format!("media sidecar: {e}")))?;
        tokio::fs::write(&meta_tmp.path, sidecar)
            .await
            .map_err(|e| io_error("writing a media sidecar", e))?;
        meta_tmp.rename_to(&meta).await?;
        if let Err(e) = data_tmp.rename_to(&data).await {
            // Without its bytes the sidecar is no object; leave no orphan.
            let _ = tokio::fs::remove_file(&meta).await;
            return Err(e.into());
        }
        Ok(())
    }
}

/// Streams `body` into a new file at `path`, checking its length against `size`.
async fn write_body(path: &Path, size: Option<u64>, mut body: ByteStream) -> Result<(), PutError> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| io_error("creating a media file", e))?;
    let mut written: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(PutError::Body)?;
        written = written.saturating_add(chunk.len() as u64);
        if let Some(size) = size.filter(|&s| written > s) {
            return Err(PutError::Body(size_mismatch(size, written)));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| io_error("writing a media file", e))?;
    }
    if let Some(size) = size.filter(|&s| written != s) {
        return Err(PutError::Body(size_mismatch(size, written)));
    }
    // On disk before it is renamed into place, so a crash cannot leave a short file under the key.
    file.sync_data()
        .await
        .map_err(|e| io_error("writing a media file", e))?;
    Ok(())
}

/// A temporary file beside `target`, removed when dropped unless renamed into place (also when
/// the put is cancelled midway).
struct Temporary {
    path: PathBuf,
    renamed: bool,
}

impl Temporary {
    fn beside(target: &Path) -> Self {
        let mut path = target.to_path_buf().into_os_string();
        path.push(format!("~tmp-{}", ulid::Ulid::new()));
        Self {
            path: PathBuf::from(path),
            renamed: false,
        }
    }

    async fn rename_to(mut self, target: &Path) -> Result<(), BackendError> {
        tokio::fs::rename(&self.path, target)
            .await
            .map_err(|e| io_error("renaming a media file into place", e))?;
        self.renamed = true;
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.renamed {
            // Best effort: a leftover `~tmp-` file is never read as an object.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `e` says there is no such file (or a parent of the path is a file, so there cannot be
/// one).
fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// An I/O failure as the port reports it: a key whose path collides with another object's (one
/// key a prefix of the other) is refused; anything else may pass.
fn io_error(doing: &'static str, e: io::Error) -> BackendError {
    match e.kind() {
        io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory => BackendError::Rejected(
            format!("{doing}: the key collides with another object: {e}"),
        ),
        _ => BackendError::Unavailable(Box::new(DiskFailure { doing, source: e })),
    }
}

/// An I/O error and the step it failed.
#[derive(Debug)]
struct DiskFailure {
    doing: &'static str,
    source: io::Error,
}

impl std::fmt::Display for DiskFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.doing, self.source)
    }
}

impl std::error::Error for DiskFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[async_trait]
impl MediaStore for DiskMediaStore {
    async fn put(&self, put: MediaPut<'_>, body: ByteStream) -> Result<(), PutError> {
        check_key(put.key)?;
        match self.write(put, body).await {
            Ok(()) => Ok(()),
            Err(PutError::Body(e)) => {
                self.remove(put.key).await?;
                Err(PutError::Body(e))
            }
            Err(e) => Err(e),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<MediaObject>, BackendError> {
        check_key(key)?;
        let (data, meta) = self.paths(key);
        let file = match tokio::fs::File::open(&data).await {
            Ok(file) => file,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("opening a media file", e)),
        };
        let metadata = file
            .metadata()
            .await
            .map_err(|e| io_error("reading a media file", e))?;
        if !metadata.is_file() {
            return Ok(None);
        }
        let meta: Meta = match tokio::fs::read(&meta).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| BackendError::Corrupt(format!("media sidecar of {key}: {e}")))?,
            // Deleted between the two reads (the bytes go first).
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("reading a media sidecar", e)),
        };
        Ok(Some(MediaObject {
            content_type: meta.content_type,
            filename: meta.filename,
            size: metadata.len(),
            body: read_chunks(file),
        }))
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        check_key(key)?;
        match tokio::fs::metadata(self.paths(key).0).await {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(e) if absent(&e) => Ok(false),
            Err(e) => Err(io_error("looking for a media file", e)),
        }
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
        self.remove(key).await
    }
}

/// The file's bytes, [`READ_CHUNK`] at a time.
fn read_chunks(file: tokio::fs::File) -> ByteStream {
    Box::pin(futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut chunk = BytesMut::with_capacity(READ_CHUNK);
        match file.read_buf(&mut chunk).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(chunk.freeze()), Some(file))),
            // The stream ends after its error.
            Err(e) => Some((Err(e), None)),
        }
    }))
}

/// What [`media_router`] serves from.
#[derive(Debug, Clone)]
struct MediaState {
    store: Arc<dyn MediaStore>,
    urls: SignedUrls,
    clock: Clock,
}

/// `GET /media/{*key}?expires=…&signature=…`: the object under `key` from `store`, when the
/// query carries a signature of `urls` for it that has not expired by `clock`. Answers 400 for a
/// malformed query, 403 for a wrong or expired signature, 404 when there is no object.
pub fn media_router(store: Arc<dyn MediaStore>, urls: SignedUrls, clock: Clock) -> Router {
    Router::new()
        .route("/media/{*key}", get(serve))
        .with_state(MediaState { store, urls, clock })
}

/// Why a media request is refused; the one place these map to HTTP.
#[derive(Debug)]
enum MediaError {
    /// No single `expires` and `signature` in the query.
    BadQuery,
    /// A wrong or expired signature.
    Forbidden,
    /// No object under the key.
    NotFound,
    /// The store failed.
    Unavailable,
}

impl IntoResponse for MediaError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::BadQuery => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the query must hold one `expires` (seconds since 1970) and one `signature`",
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "the signature is wrong or has expired",
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such media"),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the media store failed",
            ),
        };
        let body = serde_json::json!({"error": {"code": code, "message": message}});
        (
            status,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(body),
        )
            .into_response()
    }
}

/// `expires` and `signature` from the query, each exactly once (other parameters are ignored).
fn signed_query(query: &str) -> Option<(i64, String)> {
    let mut expires = None;
    let mut signature = None;
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "expires" => &mut expires,
            "signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return None;
        }
    }
    Some((expires?.parse().ok()?, signature?))
}

async fn serve(
    State(state): State<MediaState>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, MediaError> {
    let (expires, signature) =
        signed_query(query.as_deref().unwrap_or_default()).ok_or(MediaError::BadQuery)?;
    let now = state.clock.now();
    if !state.urls.verify(&key, expires, &signature, now) {
        return Err(MediaError::Forbidden);
    }
    let object = match state.store.get(&key).await {
        Ok(Some(object)) => object,
        Ok(None) | Err(BackendError::Rejected(_)) => return Err(MediaError::NotFound),
        Err(e) => {
            tracing::warn!(error = %e, "serving media failed");
            return Err(MediaError::Unavailable);
        }
    };
    let content_type = HeaderValue::from_str(&object.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    // The URL's signature stops working at `expires`; no cache should keep it longer.
    let max_age = expires.saturating_sub(now.timestamp()).max(0);
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_LENGTH, HeaderValue::from(object.size)),
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&content_disposition(object.filename.as_deref()))
                .unwrap_or(HeaderValue::from_static("attachment")),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("private, max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("private, no-cache")),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    Ok((headers, Body::from_stream(object.body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::Request;
    use bytes::Bytes;
    use shared::ports::media::{MemoryMediaStore, stream_of};
    use tower::ServiceExt as _;

    fn urls() -> SignedUrls {
        SignedUrls::new("http://127.0.0.1:1", [9; 32])
    }

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir()
            .join("wagate-test-media")
            .join(ulid::Ulid::new().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn put<'a>(key: &'a str, size: Option<u64>) -> MediaPut<'a> {
        MediaPut {
            key,
            content_type: "image/jpeg",
            filename: Some("photo 1.jpg"),
            size,
        }
    }

    async fn read_all(object: MediaObject) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = object.body;
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    /// Every file under `dir`, relative to it.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn a_put_lands_as_the_file_and_its_sidecar_and_streams_back_in_chunks() {
        let dir = scratch();
        let store = DiskMediaStore::new(&dir, urls());
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let chunks = bytes.chunks(7_000).map(Bytes::copy_from_slice).collect();
        store
            .put(put("src/m1", Some(200_000)), stream_of(chunks))
            .await
            .unwrap();
        assert_eq!(files(&dir), ["src/m1", "src/m1~meta"]);
        let object = store.get("src/m1").await.unwrap().unwrap();
        assert_eq!(
            (object.content_type.as_str(), object.filename.as_deref()),
            ("image/jpeg", Some("photo 1.jpg"))
        );
        assert_eq!(object.size, 200_000);
        let mut body = object.body;
        let first = body.next().await.unwrap().unwrap();
        assert!(first.len() <= READ_CHUNK);
        let mut all = first.to_vec();
        while let Some(chunk) = body.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(all, bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_failed_put_leaves_no_file_behind() {
        let dir = scratch();
        let store = DiskMediaStore::new(&dir, urls());
        store
            .put(
                put("src/m1", None),
                stream_of(vec![Bytes::from_static(b"old")]),
            )
            .await
            .unwrap();
        let failing: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("cut")),
        ]));
        let failed = store.put(put("src/m1", None), failing).await;
        assert!(matches!(failed, Err(PutError::Body(_))));
        let long = stream_of(vec![Bytes::from_static(b"abcd")]);
        let failed = store.put(put("src/m2", Some(3)), long).await;
        assert!(matches!(failed, Err(PutError::Body(_))));
        assert_eq!(files(&dir), Vec::<String>::new());
        assert!(store.get("src/m1").await.unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_put_leaves_no_file_behind() {
        let dir = scratch();
        let store = DiskMediaStore::new(&dir, urls());
        // A body that never ends: the put is dropped while it waits.
        let endless: ByteStream = Box::pin(
            futures::stream::iter(vec![Ok(Bytes::from_static(b"abc"))])
                .chain(futures::stream::pending()),
        );
        let mut putting = Box::pin(store.put(put("src/m1", None), endless));
        assert!(futures::poll!(putting.as_mut()).is_pending());
        // Wait until the temporary file is there, then cancel.
        while files(&dir).is_empty() {
            assert!(futures::poll!(putting.as_mut()).is_pending());
            tokio::task::yield_now().await;
        }
        drop(putting);
        assert_eq!(files(&dir), Vec::<String>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn keys_that_collide_on_disk_are_refused() {
        let dir = scratch();
        let store = DiskMediaStore::new(&dir, urls());
        let body = || stream_of(vec![Bytes::from_static(b"x")]);
        store.put(put("a/b", None), body()).await.unwrap();
        assert!(matches!(
            store.put(put("a/b/c", None), body()).await,
            Err(PutError::Backend(BackendError::Rejected(_)))
        ));
        assert!(matches!(
            store.put(put("a", None), body()).await,
            Err(PutError::Backend(BackendError::Rejected(_)))
        ));
        assert!(!store.exists("a/b/c").await.unwrap());
        assert!(store.get("a/b/c").await.unwrap().is_none());
        assert!(!store.exists("a").await.unwrap());
        assert!(store.get("a").await.unwrap().is_none());
        assert_eq!(files(&dir), ["a/b", "a/b~meta"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    async fn request(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let response = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body)
    }

    #[tokio::test]
    async fn the_router_serves_signed_urls_only() {
        let urls = SignedUrls::new("", [3; 32]);
        let store = Arc::new(MemoryMediaStore::new(urls.clone()));
        store
            .put(
                put("src/m1", Some(5)),
                stream_of(vec![Bytes::from_static(b"he"), Bytes::from_static(b"llo")]),
            )
            .await
            .unwrap();
        let clock = Clock::system();
        let app = media_router(store.clone(), urls.clone(), clock.clone());
        let now = clock.now();
        let url = store
            .url("src/m1", now + chrono::Duration::seconds(600), now)
            .await
            .unwrap();
        let (status, headers, body) = request(&app, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"hello");
        assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
        assert_eq!(headers[header::CONTENT_LENGTH], "5");
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "attachment; filename*=UTF-8''photo%201.jpg"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let cache = headers[header::CACHE_CONTROL].to_str().unwrap();
        let max_age: i64 = cache
            .strip_prefix("private, max-age=")
            .unwrap()
            .parse()
            .unwrap();
        assert!((0..=600).contains(&max_age), "{cache}");

        // Another key with the same signature, a changed signature or expiry: forbidden.
        let (path, query) = url.split_once('?').unwrap();
        let (rest, signature) = query.split_once("&signature=").unwrap();
        let mut flipped = signature.to_owned();
        let last = if flipped.ends_with('0') { "1" } else { "0" };
        flipped.replace_range(flipped.len() - 1.., last);
        for uri in [
            url.replace("src/m1", "src/m2"),
            format!("{path}?{rest}&signature={flipped}"),
            format!(
                "{path}?expires={}&signature={signature}",
                now.timestamp() + 601
            ),
        ] {
            assert_eq!(request(&app, &uri).await.0, StatusCode::FORBIDDEN, "{uri}");
        }
        // Malformed queries.
        for uri in [
            path.to_owned(),
            format!("{path}?expires=soon&signature={signature}"),
            format!("{path}?{rest}"),
            format!("{url}&signature={signature}"),
        ] {
            assert_eq!(
                request(&app, &uri).await.0,
                StatusCode::BAD_REQUEST,
                "{uri}"
            );
        }
        // A good signature for an absent object.
        let absent = urls.url("src/none", now + chrono::Duration::seconds(60));
        assert_eq!(request(&app, &absent).await.0, StatusCode::NOT_FOUND);
        // Past its time.
        clock.advance(std::time::Duration::from_secs(601));
        assert_eq!(request(&app, &url).await.0, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn the_router_streams_a_disk_file() {
        let dir = scratch();
        let urls = SignedUrls::new("", [4; 32]);
        let store = Arc::new(DiskMediaStore::new(&dir, urls.clone()));
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        store
            .put(
                MediaPut {
                    key: "src/doc",
                    content_type: "application/pdf",
                    filename: None,
                    size: None,
                },
                stream_of(vec![Bytes::from(bytes.clone())]),
            )
            .await
            .unwrap();
        let clock = Clock::system();
        let app = media_router(store.clone(), urls, clock.clone());
        let url = store
            .url(
                "src/doc",
                clock.now() + chrono::Duration::seconds(60),
                clock.now(),
            )
            .await
            .unwrap();
        let (status, headers, body) = request(&app, &url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_DISPOSITION], "attachment");
        assert_eq!(headers[header::CONTENT_LENGTH], "300000");
        assert_eq!(body, bytes);
        assert_eq!(
            read_all(store.get("src/doc").await.unwrap().unwrap()).await,
            bytes
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
