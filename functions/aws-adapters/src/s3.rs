//! [`MediaStore`] over Amazon S3: one bucket, objects under the media keys, encrypted at rest
//! (SSE-S3), served to subscribers through presigned GetObject URLs.
//!
//! Owns: the S3 calls of the media port, and how a body of known or unknown length goes up
//! without being held in memory whole. Must not: decide what is stored or for how long (the media
//! stage and the bucket's lifecycle rules do), or log anything of an object but its key.
//!
//! Checksums and payload signing. The client computes request checksums "when supported" (the
//! SDK's default, set explicitly in [`s3_config`] so a profile or `AWS_REQUEST_CHECKSUM_CALCULATION`
//! cannot turn it off). For the streamed PutObject that means: the SDK wraps the body in
//! `aws-chunked` encoding with a CRC32 trailer and signs it as `STREAMING-UNSIGNED-PAYLOAD-TRAILER`,
//! computing the CRC on the fly as chunks pass, so nothing is buffered and S3 checks the bytes
//! before it commits the object. The SigV4 signer only hashes bodies that are already in memory
//! (a streamed one would otherwise be `UNSIGNED-PAYLOAD`), and it does so the same way over
//! https and plain http, so moto sees exactly what S3 sees. The parts of an upload of unknown
//! length are in memory (one part at a time): they are signed with their SHA-256 and carry their
//! CRC32 in a header, and the upload is created with CRC32 so S3 checks each part and the whole.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use http_body::{Frame, SizeHint};
use shared::ports::BackendError;
use shared::ports::media::{
    ByteStream, MediaObject, MediaPut, MediaStore, PutError, check_key, content_disposition,
    disposition_filename, size_mismatch, url_lifetime,
};

use crate::error::backend_error;

/// Size of each part of an upload of unknown length (S3 wants at least 5 MiB for all but the
/// last); also the most a put of unknown length holds in memory.
pub const PART_SIZE: usize = 8 << 20;

/// S3 takes at most this many parts in one upload (with [`PART_SIZE`]: 80 GiB).
const MAX_PARTS: i32 = 10_000;

/// The S3 client configuration for `sdk`: path-style addressing when the endpoint is overridden
/// (moto and other S3-compatible servers on one host name), and request checksums whenever S3
/// supports them (see the module documentation).
pub fn s3_config(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Config {
    aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenSupported)
        .build()
}

/// The media objects in one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3MediaStore {
    client: Client,
    bucket: String,
}

impl S3MediaStore {
    /// The store in `bucket`, using `client` (built with [`s3_config`]).
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// One PutObject streaming `body`, which must yield exactly `size` bytes.
    async fn put_whole(
        &self,
        put: MediaPut<'_>,
        size: u64,
        body: ByteStream,
    ) -> Result<(), PutError> {
        let content_length = i64::try_from(size)
            .map_err(|_| BackendError::Rejected(format!("media body of {size} bytes")))?;
        let failure = Arc::new(Mutex::new(None));
        let body = SizedBody::new(body, size, failure.clone());
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(put.key)
            .content_length(content_length)
            .content_type(put.content_type)
            .content_disposition(content_disposition(put.filename))
            .server_side_encryption(ServerSideEncryption::Aes256)
            // The SDK's http-body 1 adapter (enabled by its own HTTP client).
            .body(SdkByteStream::from_body_1_x(body))
            .send()
            .await;
        let failure = failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (failure, sent) {
            // The request was cut short, so S3 cannot have committed it; the delete makes sure of
            // it on any store, and removes what the key held before, as the port promises.
            (Some(e), _) => {
                self.discard(put.key).await?;
                Err(PutError::Body(e))
            }
            (None, Ok(_)) => Ok(()),
            (None, Err(e)) => Err(backend_error("PutObject", e).into()),
        }
    }

    /// A body of unknown length: one PutObject when it fits in one part, else a multipart upload
    /// of [`PART_SIZE`] parts, aborted on any failure.
    async fn put_in_parts(&self, put: MediaPut<'_>, body: ByteStream) -> Result<(), PutError> {
        let mut parts = Parts::new(body);
        let first = match parts.next().await {
            Ok(first) => first,
            Err(e) => {
                self.discard(put.key).await?;
                return Err(PutError::Body(e));
            }
        };
        if parts.ended {
            return self.put_bytes(put, first).await;
        }
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(put.key)
            .content_type(put.content_type)
            .content_disposition(content_disposition(put.filename))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| backend_error("CreateMultipartUpload", e))?
            .upload_id
            .ok_or_else(|| BackendError::Corrupt("CreateMultipartUpload without an id".into()))?;
        let uploaded = self
            .upload_parts(put.key, &upload_id, first, &mut parts)
            .await;
        if let Err(e) = uploaded {
            self.abort(put.key, &upload_id).await;
            if matches!(e, PutError::Body(_)) {
                self.discard(put.key).await?;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Uploads `first` and the rest of `parts` under `upload_id`, then completes the upload.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        parts: &mut Parts,
    ) -> Result<(), PutError> {
        let mut completed = Vec::new();
        let mut part = first;
        loop {
            let number = i32::try_from(completed.len())
                .ok()
                .and_then(|n| n.checked_add(1))
                .filter(|&n| n <= MAX_PARTS)
                .ok_or_else(|| {
                    BackendError::Rejected(format!("media body over {MAX_PARTS} parts"))
                })?;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(SdkByteStream::from(part))
                .send()
                .await
                .map_err(|e| backend_error("UploadPart", e))?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag)
                    .set_checksum_crc32(out.checksum_crc32)
                    .build(),
            );
            if parts.ended {
                break;
            }
            part = parts.next().await.map_err(PutError::Body)?;
            // A body that ends on a part boundary leaves an empty last read: not a part.
            if part.is_empty() && parts.ended {
                break;
            }
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| backend_error("CompleteMultipartUpload", e))?;
        Ok(())
    }

    /// One PutObject of a body already in memory (shorter than a part).
    async fn put_bytes(&self, put: MediaPut<'_>, bytes: Bytes) -> Result<(), PutError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(put.key)
            .content_type(put.content_type)
            .content_disposition(content_disposition(put.filename))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(SdkByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| backend_error("PutObject", e))?;
        Ok(())
    }

    /// Aborts a multipart upload; a failure is only logged (the bucket's lifecycle rule for
    /// incomplete uploads is the backstop).
    async fn abort(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(
                key,
                error = %backend_error("AbortMultipartUpload", e),
                "media upload left incomplete"
            );
        }
    }

    /// Removes what is under `key` after a failed body; when that fails too, the outcome of the
    /// put is unknown, so it is reported as the store's failure.
    async fn discard(&self, key: &str) -> Result<(), PutError> {
        self.delete(key).await.map_err(PutError::Backend)
    }
}

#[async_trait]
impl MediaStore for S3MediaStore {
    async fn put(&self, put: MediaPut<'_>, body: ByteStream) -> Result<(), PutError> {
        check_key(put.key)?;
        match put.size {
            Some(size) => self.put_whole(put, size, body).await,
            None => self.put_in_parts(put, body).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<MediaObject>, BackendError> {
        check_key(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetObjectError::NoSuchKey(_)) => {
                return Ok(None);
            }
            Err(e) => return Err(backend_error("GetObject", e)),
        };
        let size = out
            .content_length
            .and_then(|l| u64::try_from(l).ok())
            .ok_or_else(|| BackendError::Corrupt(format!("object {key} without a length")))?;
        Ok(Some(MediaObject {
            content_type: out
                .content_type
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            filename: out
                .content_disposition
                .as_deref()
                .and_then(disposition_filename),
            size,
            body: Box::pin(futures::stream::unfold(out.body, |mut body| async move {
                let chunk = body.next().await?;
                Some((chunk.map_err(io::Error::other), body))
            })),
        }))
    }

    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        check_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), HeadObjectError::NotFound(_)) => {
                Ok(false)
            }
            Err(e) => Err(backend_error("HeadObject", e)),
        }
    }

    async fn url(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String, BackendError> {
        check_key(key)?;
        let lifetime = url_lifetime(expires_at, now)?;
        // Signed as of `now`, so the URL stops working at `expires_at` (to the second, rounded
        // down) whatever the clock of this process says.
        let presigning = PresigningConfig::builder()
            .start_time(now.into())
            .expires_in(lifetime)
            .build()
            .map_err(|e| BackendError::Rejected(format!("presigning media URL: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presigning)
            .await
            .map_err(|e| backend_error("GetObject (presign)", e))?;
        Ok(request.uri().to_owned())
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        check_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| backend_error("DeleteObject", e))?;
        Ok(())
    }
}

/// A media body as the http-body PutObject streams, checked against its announced `size`: a
/// source error, or a byte count other than `size`, ends it with an error (so the request is
/// cut short and S3 stores nothing), and the cause is kept in `failure` for the caller.
///
/// The chunk that completes `size` is held back until the source has ended, so S3 never
/// receives the whole announced length from a source that then fails or yields more.
struct SizedBody {
    /// Behind a mutex only to be `Sync`, as the SDK requires; `poll_frame` has `&mut` and never
    /// locks it.
    stream: Mutex<ByteStream>,
    size: u64,
    seen: u64,
    held: Option<Bytes>,
    ended: bool,
    failure: Arc<Mutex<Option<io::Error>>>,
}

impl SizedBody {
    fn new(stream: ByteStream, size: u64, failure: Arc<Mutex<Option<io::Error>>>) -> Self {
        Self {
            stream: Mutex::new(stream),
            size,
            seen: 0,
            held: None,
            ended: false,
            failure,
        }
    }

    fn fail(&mut self, cause: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.ended = true;
        self.held = None;
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(cause);
        Poll::Ready(Some(Err(io::Error::other("media body failed"))))
    }
}

impl http_body::Body for SizedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(this.held.take().map(|chunk| Ok(Frame::data(chunk))));
            }
            let next = ready!(
                this.stream
                    .get_mut()
                    .unwrap_or_else(PoisonError::into_inner)
                    .poll_next_unpin(cx)
            );
            match next {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    let seen = this.seen.saturating_add(chunk.len() as u64);
                    if this.held.is_some() || seen > this.size {
                        return this.fail(size_mismatch(this.size, seen));
                    }
                    this.seen = seen;
                    if seen < this.size {
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    this.held = Some(chunk);
                }
                Some(Err(e)) => return this.fail(e),
                None if this.seen != this.size => {
                    return this.fail(size_mismatch(this.size, this.seen));
                }
                None => this.ended = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // What is still to come if the source keeps its word; the SDK sizes the aws-chunked
        // encoding from this before the first poll.
        let held = self.held.as_ref().map_or(0, |h| h.len() as u64);
        SizeHint::with_exact(self.size.saturating_sub(self.seen).saturating_add(held))
    }
}

/// A body of unknown length cut into [`PART_SIZE`] parts, one in memory at a time.
struct Parts {
    body: ByteStream,
    /// What the last chunk held beyond the previous part.
    carry: Option<Bytes>,
    /// The body has ended (the last part was returned).
    ended: bool,
}

impl Parts {
    fn new(body: ByteStream) -> Self {
        Self {
            body,
            carry: None,
            ended: false,
        }
    }

    /// The next part: [`PART_SIZE`] bytes, or fewer when the body ends (then `ended` is set).
    async fn next(&mut self) -> Result<Bytes, io::Error> {
        let mut part = BytesMut::with_capacity(PART_SIZE);
        if let Some(carry) = self.carry.take() {
            self.take(&mut part, carry);
        }
        while part.len() < PART_SIZE {
            match self.body.next().await {
                Some(chunk) => self.take(&mut part, chunk?),
                None => {
                    self.ended = true;
                    break;
                }
            }
        }
        Ok(part.freeze())
    }

    /// Appends what fits of `chunk` to `part` and carries the rest over.
    fn take(&mut self, part: &mut BytesMut, mut chunk: Bytes) {
        let room = PART_SIZE - part.len();
        if chunk.len() > room {
            self.carry = Some(chunk.split_off(room));
        }
        part.extend_from_slice(&chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body::Body as _;
    use http_body_util::BodyExt as _;

    fn body(chunks: Vec<Result<&'static [u8], &'static str>>) -> ByteStream {
        Box::pin(futures::stream::iter(chunks.into_iter().map(|c| {
            c.map(Bytes::from_static)
                .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))
        })))
    }

    /// The frames a [`SizedBody`] yields and the failure it recorded.
    async fn drain(
        chunks: Vec<Result<&'static [u8], &'static str>>,
        size: u64,
    ) -> (Vec<u8>, bool, Option<io::Error>) {
        let failure = Arc::new(Mutex::new(None));
        let mut sized = SizedBody::new(body(chunks), size, failure.clone());
        assert_eq!(sized.size_hint().exact(), Some(size));
        let mut out = Vec::new();
        let mut errored = false;
        while let Some(frame) = sized.frame().await {
            match frame {
                Ok(frame) => out.extend_from_slice(&frame.into_data().unwrap()),
                Err(_) => {
                    errored = true;
                    break;
                }
            }
        }
        let failure = failure.lock().unwrap().take();
        (out, errored, failure)
    }

    #[tokio::test]
    async fn a_sized_body_passes_exactly_its_bytes() {
        let (out, errored, failure) = drain(vec![Ok(b"ab"), Ok(b""), Ok(b"cd")], 4).await;
        assert_eq!((out.as_slice(), errored), (&b"abcd"[..], false));
        assert!(failure.is_none());
        let (out, errored, _) = drain(vec![], 0).await;
        assert_eq!((out.len(), errored), (0, false));
    }

    #[tokio::test]
    async fn a_sized_body_never_releases_its_last_byte_before_the_source_ends_well() {
        for (chunks, size, kind) in [
            (
                vec![Ok(&b"ab"[..]), Ok(b"cd"), Ok(b"e")],
                4,
                io::ErrorKind::InvalidData,
            ),
            (
                vec![Ok(b"ab"), Ok(b"cd"), Err("cut")],
                4,
                io::ErrorKind::BrokenPipe,
            ),
            (vec![Ok(b"ab")], 4, io::ErrorKind::InvalidData),
            (vec![Ok(b"abcdef")], 4, io::ErrorKind::InvalidData),
            (vec![Ok(b"a")], 0, io::ErrorKind::InvalidData),
        ] {
            let (out, errored, failure) = drain(chunks, size).await;
            assert!(errored);
            assert!((out.len() as u64) < size.max(1), "{out:?} of {size}");
            assert_eq!(failure.map(|e| e.kind()), Some(kind));
        }
    }

    #[tokio::test]
    async fn parts_are_full_but_the_last() {
        let chunk = Bytes::from(vec![7u8; 3 << 20]);
        // 7 chunks of 3 MiB: 21 MiB = 8 + 8 + 5.
        let mut parts = Parts::new(repeat(chunk, 7));
        let mut sizes = Vec::new();
        while !parts.ended {
            sizes.push(parts.next().await.unwrap().len());
        }
        assert_eq!(sizes, [PART_SIZE, PART_SIZE, 5 << 20]);
        // Ending on a boundary leaves an empty last read.
        let mut parts = Parts::new(repeat(Bytes::from(vec![1u8; 4 << 20]), 4));
        let mut sizes = Vec::new();
        while !parts.ended {
            sizes.push(parts.next().await.unwrap().len());
        }
        assert_eq!(sizes, [PART_SIZE, PART_SIZE, 0]);
    }

    fn repeat(chunk: Bytes, n: usize) -> ByteStream {
        Box::pin(futures::stream::iter(std::iter::repeat_n(chunk, n).map(Ok)))
    }
}
