//! The media stage: an inbound message with a media file reaches subscribers with a URL that
//! downloads the file, without provider credentials.
//!
//! Track hands each `whatsapp.message.received` that names a provider file (Meta's media id,
//! WAHA's file URL) to the media queue instead of the buffer. This stage fetches the file
//! ([`fetch`]), streams it into the [`MediaStore`] under `{source}/{media id}`, records it in a
//! document (`media#{id}`), and hands the message on to the buffer with
//! `message_type_data.media` filled in (and the same on the conversation context's summaries of
//! that message). It waits at most [`MediaConfig::wait`] from the webhook's arrival: a file not
//! stored by then goes out as `pending` (the fetch goes on; `GET /v1/media/{id}` gives the URL
//! later), one that cannot be stored as `failed` with the reason.
//!
//! Owns: the media document and its lease, the fetch's retries, the wait. Must not: deliver
//! (the buffer and fan-out do), or log URLs' queries, credentials or phone numbers.
//!
//! Replay safety: the file is fetched once per media id. The first attempt claims the document
//! with a lease; others wait for it (until the wait runs out) or take it over once the lease has
//! passed. A put that reports an error is read back (`holder` names the attempt) before it counts
//! as failed. Handing the message on twice (a crash before the queue delete) gives the buffer
//! the same event id twice, which it keeps once; the URL is the one recorded in the document,
//! so a repeat carries the same one.

pub mod fetch;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::model::{
    EventBody, InboundEvent, MediaFailure, MediaKey, MediaStatus, StoredMedia, event_media,
};
use crate::ports::codec::{Record, decode, enqueue_events, queued_blob_expiry};
use crate::ports::media::MediaStore;
use crate::ports::{
    BackendError, BlobStore, DocumentStore, DocumentWrite, Queue, SourceRegistry, Versioned,
};
use crate::send::api::ProviderApi;
use fetch::{Fetched, Job, Kind};

/// Media stage settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Longest a message waits for its file after the webhook arrived (default 30 s).
    pub wait: Duration,
    /// How long a download URL works (default 24 h, at most 7 days).
    pub url_ttl: Duration,
    /// How long files and their documents are kept (`MEDIA_TTL_DAYS`, default 30 days).
    pub ttl: Duration,
    /// Longest the provider may take to answer a request's headers (default 10 s).
    pub header_timeout: Duration,
    /// Longest a whole download may take (default 60 s).
    pub download_timeout: Duration,
    /// A ceiling under WhatsApp's per-type limits (`None`: those limits).
    pub max_bytes: Option<u64>,
    /// MIME types stored (exact, or `type/*`).
    pub allowed_types: Vec<String>,
    /// Attempts at a file before it is marked failed.
    pub max_attempts: u32,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(30),
            url_ttl: Duration::from_secs(24 * 3600),
            ttl: Duration::from_secs(30 * 24 * 3600),
            header_timeout: Duration::from_secs(10),
            download_timeout: Duration::from_secs(60),
            max_bytes: None,
            allowed_types: fetch::default_allowed_types(),
            max_attempts: 4,
        }
    }
}

impl MediaConfig {
    /// How long one attempt may hold a file: the longest download and some room to store it.
    fn lease(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.header_timeout * 2 + self.download_timeout * 2)
            .unwrap_or(chrono::Duration::minutes(5))
    }

    fn ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(30))
    }
}

/// The media stage with its ports.
#[derive(Debug, Clone)]
pub struct Media {
    /// Settings.
    pub config: MediaConfig,
    /// Media documents (`media#{id}`).
    pub docs: Arc<dyn DocumentStore>,
    /// Where files go.
    pub store: Arc<dyn MediaStore>,
    /// Provider calls and downloads.
    pub api: Arc<dyn ProviderApi>,
    /// Sources and their credentials.
    pub sources: Arc<dyn SourceRegistry>,
    /// Where messages go next (the buffer queue).
    pub next: Arc<dyn Queue>,
    /// Claim-checks for large events.
    pub blobs: Arc<dyn BlobStore>,
    /// How long claim-checked events are kept.
    pub blob_ttl: Duration,
    /// The time.
    pub clock: Clock,
    /// Conversations, whose context's summaries of a message get its stored media too (so
    /// later events' context carries the URL); `None`: only the message's own event does.
    pub conversations: Option<crate::pipeline::track::state::Conversations>,
}

/// Stored files by wagate media id: what `GET /v1/media/{id}` reads.
#[derive(Debug, Clone)]
pub struct MediaFiles {
    /// Media documents.
    pub docs: Arc<dyn DocumentStore>,
    /// The files.
    pub store: Arc<dyn MediaStore>,
    /// How long a URL handed out works.
    pub url_ttl: Duration,
}

impl MediaFiles {
    /// The media `id` with a URL that works from `now` for a stored file (made afresh), its
    /// status otherwise; `None` when wagate knows no such file or no longer keeps it.
    pub async fn lookup(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredMedia>, BackendError> {
        let Some(Versioned { body, .. }) = self.docs.get(&doc_key(id), now).await? else {
            return Ok(None);
        };
        let doc: MediaDoc = serde_json::from_value(body)
            .map_err(|e| BackendError::Corrupt(format!("media document: {e}")))?;
        let mut media = media_of(id, &doc);
        if let Some(file) = doc.file.as_ref().filter(|_| doc.state == State::Stored) {
            if !self.store.exists(&file.key).await? {
                return Ok(None);
            }
            let expires_at = fetch::url_expiry(now, self.url_ttl);
            media.url = Some(self.store.url(&file.key, expires_at, now).await?);
            media.expires_at = Some(expires_at);
        }
        Ok(Some(media))
    }
}

/// A media document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MediaDoc {
    /// The source the file came from.
    source: String,
    state: State,
    /// The attempt holding the lease (a ULID per attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    lease_until: Option<DateTime<Utc>>,
    /// Attempts made so far.
    #[serde(default)]
    attempts: u32,
    /// The stored file (state `stored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<FileRecord>,
    /// The last failure (state `fetching` between attempts, or `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<FailureRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    Fetching,
    Stored,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileRecord {
    key: String,
    content_type: String,
    size: u64,
    sha256: String,
    filename: String,
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    stored_at: DateTime<Utc>,
    url: String,
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    url_expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FailureRecord {
    reason: MediaFailure,
    detail: String,
}

/// Why a record is to be retried.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A store or queue failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The record could not be read (retried until the queue dead-letters it).
    #[error(transparent)]
    Decode(#[from] crate::ports::codec::DecodeError),
    /// The file is not stored yet; the message went out `pending` and the fetch goes on later.
    #[error("the media fetch will be tried again: {0}")]
    Retry(String),
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handed on with this media status.
    Forwarded(MediaStatus),
    /// Handed on unchanged: no file to fetch.
    Unchanged,
}

impl Media {
    /// Processes queue records (one event each); returns the message ids to retry.
    pub async fn process_batch(&self, records: &[Record<'_>]) -> Vec<String> {
        let work: Vec<futures::future::BoxFuture<'_, (String, Result<Outcome, MediaError>)>> =
            records
                .iter()
                .map(|r| Box::pin(self.record(r.message_id, r.body)) as _)
                .collect();
        let results: Vec<(String, Result<Outcome, MediaError>)> = futures::stream::iter(work)
            .buffer_unordered(16)
            .collect()
            .await;
        let mut failed = Vec::new();
        for (message_id, result) in results {
            match result {
                Ok(outcome) => tracing::info!(message_id, ?outcome, "media handled"),
                Err(e) => {
                    tracing::warn!(message_id, error = %e, "media record will be retried");
                    failed.push(message_id);
                }
            }
        }
        failed
    }

    async fn record(&self, message_id: &str, body: &str) -> (String, Result<Outcome, MediaError>) {
        let now = self.clock.now();
        let result = match decode::<InboundEvent>(body, self.blobs.as_ref(), now).await {
            Ok(event) => self.handle(event).await,
            Err(e) => Err(MediaError::Decode(e)),
        };
        (message_id.to_owned(), result)
    }

    /// Fetches the file of `event`'s message (or waits for another attempt to), and hands the
    /// message on with its media status.
    pub async fn handle(&self, mut event: InboundEvent) -> Result<Outcome, MediaError> {
        let Some((key, kind)) = self.media_key(&event) else {
            self.forward(&event).await?;
            return Ok(Outcome::Unchanged);
        };
        let source = self.sources.get(event.data.source.id.as_str());
        let deadline = event.received_at
            + chrono::Duration::from_std(self.config.wait).unwrap_or(chrono::Duration::zero());
        let Some(source) = source else {
            let failed = failed_media(
                &key.id,
                MediaFailure::NotConfigured,
                "the source is not configured here",
            );
            return self.finish(&mut event, failed).await;
        };
        // A redelivery of this record recognises its own lease and takes it over at once.
        let holder = event.id.to_string();
        let doc_key = doc_key(&key.id);
        let mut forwarded = false;
        loop {
            let now = self.clock.now();
            let current = self.read(&doc_key, now).await?;
            let doc = current.as_ref().map(|(_, d)| d);
            match doc.map(|d| d.state) {
                Some(State::Stored) => {
                    let (version, doc) =
                        current.ok_or_else(|| BackendError::Corrupt("gone".into()))?;
                    let media = self
                        .stored_media(&key.id, &doc_key, version, doc, now)
                        .await?;
                    return self.finish_once(&mut event, media, forwarded).await;
                }
                Some(State::Failed) => {
                    let media =
                        doc.map_or_else(|| StoredMedia::pending(&key.id), |d| media_of(&key.id, d));
                    return self.finish_once(&mut event, media, forwarded).await;
                }
                Some(State::Fetching)
                    if doc.is_some_and(|d| {
                        d.lease_until.is_some_and(|l| l > now)
                            && d.holder.as_deref() != Some(holder.as_str())
                    }) =>
                {
                    // Another attempt holds the file: wait for it, as long as the message may.
                    if now >= deadline {
                        if !forwarded {
                            let mut media = StoredMedia::pending(&key.id);
                            media.reason = Some(MediaFailure::InProgress);
                            self.finish(&mut event, media).await?;
                        }
                        return Ok(Outcome::Forwarded(MediaStatus::Pending));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
                _ => {}
            }
            // Absent, or fetching with no live lease: claim it.
            let (version, mut claimed) = match current {
                Some((v, d)) => (Some(v), d),
                None => (
                    None,
                    MediaDoc {
                        source: source.id.as_str().to_owned(),
                        state: State::Fetching,
                        holder: None,
                        lease_until: None,
                        attempts: 0,
                        file: None,
                        failure: None,
                    },
                ),
            };
            if claimed.attempts >= self.config.max_attempts {
                let failure = claimed.failure.clone().unwrap_or(FailureRecord {
                    reason: MediaFailure::ProviderError,
                    detail: "every attempt failed".into(),
                });
                claimed.state = State::Failed;
                claimed.holder = None;
                claimed.lease_until = None;
                claimed.failure = Some(failure);
                if !self.write(&doc_key, version, &claimed, now).await? {
                    continue;
                }
                let media = media_of(&key.id, &claimed);
                return self.finish_once(&mut event, media, forwarded).await;
            }
            claimed.state = State::Fetching;
            claimed.holder = Some(holder.clone());
            claimed.lease_until = Some(now + self.config.lease());
            claimed.attempts += 1;
            if !self.write(&doc_key, version, &claimed, now).await? {
                continue;
            }
            let version = version.map_or(1, |v| v + 1);
            let object_key = MediaKey::object_key(source.id.as_str(), &key.id);
            let media_data = event_media(&event).cloned().unwrap_or_default();
            let job = Job {
                source: &source,
                locator: &key.locator,
                id: &key.id,
                media: &media_data,
                kind,
                key: &object_key,
            };
            let fetching = fetch::fetch(&job, &self.config, self.api.as_ref(), self.store.as_ref());
            tokio::pin!(fetching);
            let until_deadline = (deadline - self.clock.now()).to_std().unwrap_or_default();
            let result = if forwarded {
                fetching.await
            } else {
                tokio::select! {
                    r = &mut fetching => r,
                    () = tokio::time::sleep(until_deadline) => {
                        // The message goes out now; the file follows through the API.
                        let mut media = StoredMedia::pending(&key.id);
                        media.reason = Some(MediaFailure::InProgress);
                        self.finish(&mut event, media).await?;
                        forwarded = true;
                        fetching.await
                    }
                }
            };
            let now = self.clock.now();
            match result {
                Ok(fetched) => {
                    let url_expires_at = fetch::url_expiry(now, self.config.url_ttl);
                    let url = self.store.url(&object_key, url_expires_at, now).await?;
                    claimed.state = State::Stored;
                    claimed.holder = None;
                    claimed.lease_until = None;
                    claimed.failure = None;
                    claimed.file = Some(file_record(
                        object_key.clone(),
                        fetched,
                        now,
                        url,
                        url_expires_at,
                    ));
                    if !self.write(&doc_key, Some(version), &claimed, now).await? {
                        // Taken over meanwhile (this attempt outlived its lease): read again.
                        continue;
                    }
                    let media = media_of(&key.id, &claimed);
                    return self.finish_once(&mut event, media, forwarded).await;
                }
                Err(failure) => {
                    let transient =
                        failure.transient && claimed.attempts < self.config.max_attempts;
                    claimed.holder = None;
                    claimed.lease_until = None;
                    claimed.state = if transient {
                        State::Fetching
                    } else {
                        State::Failed
                    };
                    claimed.failure = Some(FailureRecord {
                        reason: failure.reason,
                        detail: failure.detail.clone(),
                    });
                    tracing::warn!(media_id = %key.id, reason = ?failure.reason, detail = %failure.detail, transient, "media fetch failed");
                    if !self.write(&doc_key, Some(version), &claimed, now).await? {
                        continue;
                    }
                    if !transient {
                        let media = media_of(&key.id, &claimed);
                        return self.finish_once(&mut event, media, forwarded).await;
                    }
                    let backoff = Duration::from_millis(500 * u64::from(claimed.attempts));
                    if chrono::Duration::from_std(backoff).is_ok_and(|b| now + b < deadline) {
                        // Try again while the message may still wait.
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    if !forwarded {
                        let mut media = StoredMedia::pending(&key.id);
                        media.reason = Some(failure.reason);
                        media.detail = Some(failure.detail.clone());
                        self.finish(&mut event, media).await?;
                    }
                    return Err(MediaError::Retry(failure.detail));
                }
            }
        }
    }

    /// The stored media of `id` with a URL that works now (see [`MediaFiles::lookup`]).
    pub async fn lookup(&self, id: &str) -> Result<Option<StoredMedia>, BackendError> {
        self.files().lookup(id, self.clock.now()).await
    }

    /// The stage's files, for lookups.
    pub fn files(&self) -> MediaFiles {
        MediaFiles {
            docs: self.docs.clone(),
            store: self.store.clone(),
            url_ttl: self.config.url_ttl,
        }
    }

    fn media_key(&self, event: &InboundEvent) -> Option<(MediaKey, Kind)> {
        let EventBody::Message(body) = &event.data.body else {
            return None;
        };
        let kind = Kind::of(body.message.content.as_ref()?)?;
        Some((MediaKey::of_event(event)?, kind))
    }

    /// The stored media of a `stored` document, with its URL renewed (and recorded) when less
    /// than half its lifetime is left.
    async fn stored_media(
        &self,
        id: &str,
        doc_key: &str,
        version: u64,
        mut doc: MediaDoc,
        now: DateTime<Utc>,
    ) -> Result<StoredMedia, MediaError> {
        let half = chrono::Duration::from_std(self.config.url_ttl / 2).unwrap_or_default();
        if let Some(file) = doc.file.as_mut()
            && file.url_expires_at - now < half
        {
            let expires_at = fetch::url_expiry(now, self.config.url_ttl);
            file.url = self.store.url(&file.key, expires_at, now).await?;
            file.url_expires_at = expires_at;
            // Best effort: a lost race leaves another fresh URL recorded.
            let _ = self.write(doc_key, Some(version), &doc, now).await;
        }
        Ok(media_of(id, &doc))
    }

    async fn finish_once(
        &self,
        event: &mut InboundEvent,
        media: StoredMedia,
        forwarded: bool,
    ) -> Result<Outcome, MediaError> {
        if forwarded {
            return Ok(Outcome::Forwarded(media.status));
        }
        self.finish(event, media).await
    }

    /// Puts `media` into the event's message and context and hands the event on.
    async fn finish(
        &self,
        event: &mut InboundEvent,
        media: StoredMedia,
    ) -> Result<Outcome, MediaError> {
        let status = media.status;
        crate::model::attach_media(event, &media);
        self.remember_in_conversation(event, &media).await?;
        self.forward(event).await?;
        Ok(Outcome::Forwarded(status))
    }

    /// Puts `media` on the summaries of the event's message in its stored conversation (a
    /// repeat finds it there and writes nothing).
    async fn remember_in_conversation(
        &self,
        event: &InboundEvent,
        media: &StoredMedia,
    ) -> Result<(), MediaError> {
        let (Some(conversations), Some(conversation), EventBody::Message(body)) = (
            &self.conversations,
            &event.data.conversation,
            &event.data.body,
        ) else {
            return Ok(());
        };
        let message_id = &body.message.id;
        conversations
            .try_update_conversation(conversation.id, self.clock.now(), |doc| {
                let context = &mut doc.conversation.context;
                let mut changed = false;
                for summary in context
                    .recent_messages
                    .iter_mut()
                    .chain(context.last_inbound_message.iter_mut())
                    .filter(|s| &s.id == message_id)
                {
                    if let Some(r) = summary.media.as_mut()
                        && r.stored.as_deref() != Some(media)
                    {
                        r.stored = Some(Box::new(media.clone()));
                        changed = true;
                    }
                }
                changed
            })
            .await
            .map_err(|e| MediaError::Retry(format!("conversation: {e}")))?;
        Ok(())
    }

    async fn forward(&self, event: &InboundEvent) -> Result<(), BackendError> {
        let expires = queued_blob_expiry(self.clock.now(), self.blob_ttl);
        enqueue_events(
            std::slice::from_ref(event),
            self.next.as_ref(),
            self.blobs.as_ref(),
            expires,
        )
        .await?;
        Ok(())
    }

    async fn read(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(u64, MediaDoc)>, BackendError> {
        let Some(Versioned { version, body }) = self.docs.get(key, now).await? else {
            return Ok(None);
        };
        let doc = serde_json::from_value(body)
            .map_err(|e| BackendError::Corrupt(format!("media document: {e}")))?;
        Ok(Some((version, doc)))
    }

    /// A conditional write, tried up to three times: one that reports an error is read back,
    /// and counts as done when the document now is exactly what was written (the outcome of a
    /// download is worth a retry here rather than a second download later).
    async fn write(
        &self,
        key: &str,
        expected: Option<u64>,
        doc: &MediaDoc,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let body = serde_json::to_value(doc)
            .map_err(|e| BackendError::Rejected(format!("media document: {e}")))?;
        let expires_at = now + self.config.ttl();
        let mut tries = 0;
        loop {
            tries += 1;
            let write = DocumentWrite::new(expected, now).expiring(expires_at);
            let error = match self.docs.put(key, &body, write).await {
                Ok(done) => return Ok(done),
                Err(e) => e,
            };
            match self.read(key, now).await {
                Ok(Some((version, stored)))
                    if version == expected.map_or(1, |v| v + 1) && &stored == doc =>
                {
                    return Ok(true);
                }
                // Still as it was: the write did not apply; try it again.
                Ok(found) if found.as_ref().map(|(v, _)| *v) == expected && tries < 3 => {
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                Ok(_) if tries < 3 => return Ok(false),
                _ => return Err(error),
            }
        }
    }
}

fn doc_key(id: &str) -> String {
    format!("media#{id}")
}

fn file_record(
    key: String,
    fetched: Fetched,
    now: DateTime<Utc>,
    url: String,
    url_expires_at: DateTime<Utc>,
) -> FileRecord {
    FileRecord {
        key,
        content_type: fetched.content_type,
        size: fetched.size,
        sha256: fetched.sha256,
        filename: fetched.filename,
        stored_at: now,
        url,
        url_expires_at,
    }
}

fn failed_media(id: &str, reason: MediaFailure, detail: &str) -> StoredMedia {
    StoredMedia {
        status: MediaStatus::Failed,
        reason: Some(reason),
        detail: Some(detail.to_owned()),
        ..StoredMedia::pending(id)
    }
}

/// What a document says about its file.
fn media_of(id: &str, doc: &MediaDoc) -> StoredMedia {
    match (doc.state, &doc.file) {
        (State::Stored, Some(file)) => StoredMedia {
            id: id.to_owned(),
            status: MediaStatus::Stored,
            url: Some(file.url.clone()),
            expires_at: Some(file.url_expires_at),
            content_type: Some(file.content_type.clone()),
            size: Some(file.size),
            sha256: Some(file.sha256.clone()),
            filename: Some(file.filename.clone()),
            stored_at: Some(file.stored_at),
            reason: None,
            detail: None,
        },
        (State::Failed, _) => {
            let failure = doc.failure.clone().unwrap_or(FailureRecord {
                reason: MediaFailure::ProviderError,
                detail: "failed".into(),
            });
            failed_media(id, failure.reason, &failure.detail)
        }
        _ => {
            let mut media = StoredMedia::pending(id);
            media.reason = Some(
                doc.failure
                    .as_ref()
                    .map_or(MediaFailure::InProgress, |f| f.reason),
            );
            media.detail = doc.failure.as_ref().map(|f| f.detail.clone());
            media
        }
    }
}
