//! [`MediaStore`] contract: multi-megabyte bodies in many chunks round trip byte for byte, with
//! their length known or not (then in parts); a failed, cut or mis-sized body leaves nothing;
//! content type and file name round trip; `exists`, `delete`, invalid keys; and the URL of an
//! object downloads it. Memory and disk are served by local mode's `media_router` on 127.0.0.1;
//! S3 runs against moto, a fresh bucket per test.

use std::path::PathBuf;
use std::sync::Arc;

use aws_adapters::{S3MediaStore, provision};
use bytes::Bytes;
use chrono::{Duration, Utc};
use futures::StreamExt as _;
use shared::ports::BackendError;
use shared::ports::media::{
    ByteStream, MediaPut, MediaStore, MemoryMediaStore, PutError, SignedUrls,
};
use tests::moto;
use wagate_local::clock::Clock;
use wagate_local::media::{DiskMediaStore, media_router};

use super::for_each_backend;

/// A store, and what keeps it reachable.
struct Backend {
    store: Arc<dyn MediaStore>,
    /// Local URLs: the router serving them (and the disk store's directory); `None` on S3.
    local: Option<Local>,
}

/// The gateway's media route on an ephemeral port, and the directory to remove afterwards.
struct Local {
    server: tokio::task::JoinHandle<()>,
    dir: Option<PathBuf>,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A local store built by `make` with URLs on a fresh 127.0.0.1 listener that serves them.
async fn served(
    make: impl FnOnce(SignedUrls) -> Arc<dyn MediaStore>,
    dir: Option<PathBuf>,
) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let urls = SignedUrls::new(
        base,
        ulid::Ulid::new()
            .0
            .to_le_bytes()
            .repeat(2)
            .try_into()
            .unwrap(),
    );
    let store = make(urls.clone());
    let app = media_router(store.clone(), urls, Clock::system());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Backend {
        store,
        local: Some(Local { server, dir }),
    }
}

async fn memory() -> Backend {
    served(|urls| Arc::new(MemoryMediaStore::new(urls)), None).await
}

async fn disk() -> Backend {
    // Integration tests get a scratch directory under the target directory.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(moto::unique("media"));
    let store_dir = dir.clone();
    served(
        move |urls| Arc::new(DiskMediaStore::new(store_dir, urls)),
        Some(dir),
    )
    .await
}

async fn on_moto() -> Backend {
    let clients = moto::clients().await;
    let bucket = moto::unique("media");
    provision::ensure_bucket(&clients.s3, &bucket)
        .await
        .expect("create bucket on moto");
    Backend {
        store: Arc::new(S3MediaStore::new(clients.s3, bucket)),
        local: None,
    }
}

const MIB: usize = 1 << 20;

/// `n` bytes of noise (no two megabytes alike, so a misplaced part shows).
fn noise(n: usize) -> Bytes {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    Bytes::from(out)
}

/// `bytes` in chunks of `chunk` (the last shorter), ending in `error` after `fail_after` bytes
/// when given.
fn chunked(bytes: &Bytes, chunk: usize, fail_after: Option<usize>) -> ByteStream {
    let end = fail_after.unwrap_or(bytes.len()).min(bytes.len());
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..end)
        .step_by(chunk)
        .map(|at| Ok(bytes.slice(at..(at + chunk).min(end))))
        .chain(fail_after.map(|_| Err(std::io::Error::other("the provider broke off"))))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

fn media<'a>(key: &'a str, content_type: &'a str, size: Option<u64>) -> MediaPut<'a> {
    MediaPut {
        key,
        content_type,
        filename: None,
        size,
    }
}

/// The object's content type, file name and bytes, read to the end.
async fn read(store: &dyn MediaStore, key: &str) -> Option<(String, Option<String>, Bytes)> {
    let object = store.get(key).await.unwrap()?;
    let mut bytes = Vec::with_capacity(usize::try_from(object.size).unwrap());
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        bytes.len() as u64,
        object.size,
        "the announced size is the size"
    );
    Some((object.content_type, object.filename, Bytes::from(bytes)))
}

/// Asserts a failed put reported its body and left nothing under `key`.
async fn assert_body_failure(store: &dyn MediaStore, key: &str, result: Result<(), PutError>) {
    match result {
        Err(PutError::Body(_)) => {}
        other => panic!("{key}: expected a body failure, got {other:?}"),
    }
    assert!(!store.exists(key).await.unwrap(), "{key} left an object");
    assert!(read(store, key).await.is_none(), "{key} left an object");
}

async fn large_bodies_round_trip_byte_for_byte(b: Backend) {
    let store = &*b.store;
    let bytes = noise(5 * MIB + 123);
    let put = MediaPut {
        filename: Some("clip ä 1.mp4"),
        ..media("src/large", "video/mp4", Some(bytes.len() as u64))
    };
    // 81 chunks of 64 KiB + 7 bytes.
    store
        .put(put, chunked(&bytes, 64 * 1024 + 7, None))
        .await
        .unwrap();
    let (content_type, filename, got) = read(store, "src/large").await.unwrap();
    assert_eq!(content_type, "video/mp4");
    assert_eq!(filename.as_deref(), Some("clip ä 1.mp4"));
    assert!(got == bytes, "the bytes differ");

    store
        .put(
            media("src/empty", "text/plain", Some(0)),
            chunked(&Bytes::new(), 1, None),
        )
        .await
        .unwrap();
    let (_, filename, got) = read(store, "src/empty").await.unwrap();
    assert_eq!((filename, got.len()), (None, 0));
}
for_each_backend!(large_bodies_round_trip_byte_for_byte, memory: super::memory(), disk: super::disk(), moto: super::on_moto());

async fn a_body_of_unknown_length_goes_up_in_parts(b: Backend) {
    let store = &*b.store;
    // Over one 8 MiB part, in chunks that straddle the part boundary.
    let bytes = noise(9 * MIB + 5);
    store
        .put(
            media("src/parts", "audio/ogg", None),
            chunked(&bytes, MIB - 1, None),
        )
        .await
        .unwrap();
    let (content_type, _, got) = read(store, "src/parts").await.unwrap();
    assert_eq!(content_type, "audio/ogg");
    assert!(got == bytes, "the bytes differ");

    // Exactly one part, then a small body and an empty one (no upload in parts at all).
    for (key, len) in [("src/one-part", 8 * MIB), ("src/small", 3), ("src/none", 0)] {
        let bytes = noise(len);
        store
            .put(
                media(key, "image/webp", None),
                chunked(&bytes, 256 * 1024, None),
            )
            .await
            .unwrap();
        let (_, _, got) = read(store, key).await.unwrap();
        assert!(got == bytes, "{key}: the bytes differ");
    }
}
for_each_backend!(a_body_of_unknown_length_goes_up_in_parts, memory: super::memory(), disk: super::disk(), moto: super::on_moto());

async fn an_overwrite_replaces_the_object(b: Backend) {
    let store = &*b.store;
    let first = noise(MIB);
    let put = MediaPut {
        filename: Some("first.png"),
        ..media("src/over", "image/png", Some(first.len() as u64))
    };
    store
        .put(put, chunked(&first, 100_000, None))
        .await
        .unwrap();
    let second = Bytes::from_static(b"short");
    store
        .put(
            media("src/over", "text/plain", None),
            chunked(&second, 2, None),
        )
        .await
        .unwrap();
    let (content_type, filename, got) = read(store, "src/over").await.unwrap();
    assert_eq!(
        (content_type.as_str(), filename, got),
        ("text/plain", None, second)
    );
}
for_each_backend!(an_overwrite_replaces_the_object, memory: super::memory(), disk: super::disk(), moto: super::on_moto());

async fn a_body_that_fails_midway_leaves_nothing(b: Backend) {
    let store = &*b.store;
    let bytes = noise(10 * MIB);
    for (key, size) in [
        ("src/cut-sized", Some(bytes.len() as u64)),
        ("src/cut-parts", None),
    ] {
        // On a fresh key, and over an object that was there.
        for previous in [false, true] {
            if previous {
                let old = Bytes::from_static(b"old");
                store
                    .put(media(key, "text/plain", None), chunked(&old, 3, None))
                    .await
                    .unwrap();
            }
            // Past the first part of an upload of unknown length.
            let body = chunked(&bytes, 512 * 1024, Some(9 * MIB));
            let result = store.put(media(key, "video/mp4", size), body).await;
            assert_body_failure(store, key, result).await;
        }
    }
}
for_each_backend!(a_body_that_fails_midway_leaves_nothing, memory: super::memory(), disk: super::disk(), moto: super::on_moto());

async fn a_body_of_another_length_than_announced_fails(b: Backend) {
    let store = &*b.store;
    let short = noise(2 * MIB);
    let result = store
        .put(
            media("src/short", "image/jpeg", Some(3 * MIB as u64)),
            chunked(&short, 64 * 1024, None),
        )
        .await;
    assert_body_failure(store, "src/short", result).await;
    let long = noise(MIB + 1);
    let result = store
        .put(
            media("src/long", "image/jpeg", Some(MIB as u64)),
            chunked(&long, 64 * 1024, None),
        )
        .await;
    assert_body_failure(store, "src/long", result).await;
    // The announced length arrives whole, then one more chunk.
    let result = store
        .put(
            media("src/extra", "image/jpeg", Some(4)),
            chunked(&Bytes::from_static(b"abcde"), 4, None),
        )
        .await;
    assert_body_failure(store, "src/extra", result).await;
}
for_each_backend!(a_body_of_another_length_than_announced_fails, memory: super::memory(), disk: super::disk(), moto: super::on_moto());

async fn exists_and_delete(b: Backend) {
    let store = &*b.store;
    assert!(!store.exists("src/x").await.unwrap());
    assert!(read(store, "src/x").await.is_none());
    store
        .put(
            media("src/x", "image/gif", Some(3)),
            chunked(&Bytes::from_static(b"gif"), 1, None),
        )
        .await
        .unwrap();
    assert!(store.exists("src/x").await.unwrap());
    assert!(!store.exists("src").await.unwrap(), "a prefix is no object");
    store.delete("src/x").await.unwrap();
    assert!(!store.exists("src/x").await.unwrap());
    assert!(read(store, "src/x").await.is_none());
    store.delete("src/x").await.unwrap();
    store.delete("src/never").await.unwrap();
}
for_each_backend!(exists_and_delete, memory: super::memory(), disk: super::disk(), moto: super::on_moto());

async fn invalid_keys_are_refused(b: Backend) {
    let store = &*b.store;
    let now = Utc::now();
    let long = "k".repeat(513);
    for key in [
        "", "/abs", "a//b", "a/../b", "a/./b", "a b", "a?b", "ä", "a~meta", &long,
    ] {
        let body = chunked(&Bytes::from_static(b"x"), 1, None);
        assert!(
            matches!(
                store.put(media(key, "text/plain", Some(1)), body).await,
                Err(PutError::Backend(BackendError::Rejected(_)))
            ),
            "put {key:?}"
        );
        assert!(
            matches!(store.get(key).await, Err(BackendError::Rejected(_))),
            "get {key:?}"
        );
        assert!(
            matches!(store.exists(key).await, Err(BackendError::Rejected(_))),
            "exists {key:?}"
        );
        assert!(
            matches!(
                store.url(key, now + Duration::minutes(5), now).await,
                Err(BackendError::Rejected(_))
            ),
            "url {key:?}"
        );
        assert!(
            matches!(store.delete(key).await, Err(BackendError::Rejected(_))),
            "delete {key:?}"
        );
    }
}
for_each_backend!(invalid_keys_are_refused, memory: super::memory(), disk: super::disk(), moto: super::on_moto());

/// `url` with the last character of its signature changed.
fn tampered(url: &str) -> String {
    let at = url
        .find("signature=")
        .or_else(|| url.find("Signature="))
        .expect("a signed URL");
    let end = url[at..].find('&').map_or(url.len(), |e| at + e);
    let last = &url[end - 1..end];
    let other = if last == "0" { "1" } else { "0" };
    format!("{}{other}{}", &url[..end - 1], &url[end..])
}

async fn urls_download_the_object(b: Backend) {
    let store = &*b.store;
    let bytes = noise(2 * MIB + 3);
    let put = MediaPut {
        filename: Some("report Q1;\"x\".pdf"),
        ..media("src/doc", "application/pdf", Some(bytes.len() as u64))
    };
    store
        .put(put, chunked(&bytes, 100_000, None))
        .await
        .unwrap();
    let now = Utc::now();
    let url = store
        .url("src/doc", now + Duration::minutes(10), now)
        .await
        .unwrap();
    let http = aws_adapters::http::client();
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("application/pdf"));
    assert_eq!(
        header("content-disposition").as_deref(),
        Some("attachment; filename*=UTF-8''report%20Q1%3B%22x%22.pdf")
    );
    assert_eq!(header("content-length"), Some(bytes.len().to_string()));
    let got = response.bytes().await.unwrap();
    assert!(got == bytes, "the downloaded bytes differ");

    // moto does not check the signatures of presigned URLs (S3 does); the gateway's own must.
    if b.local.is_some() {
        let response = http.get(tampered(&url)).send().await.unwrap();
        assert_eq!(response.status(), 403);
    }
    assert!(matches!(
        store
            .url(
                "src/doc",
                now + Duration::days(7) + Duration::seconds(1),
                now
            )
            .await,
        Err(BackendError::Rejected(_))
    ));
    assert!(matches!(
        store.url("src/doc", now, now).await,
        Err(BackendError::Rejected(_))
    ));
}
for_each_backend!(urls_download_the_object, memory: super::memory(), disk: super::disk(), moto: super::on_moto());
