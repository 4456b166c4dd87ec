//! The media stage over the in-memory stores and a provider API that answers like Meta's Graph
//! API (lookup, then a download that needs the token), with scripted failures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};

use super::*;
use crate::ids::SourceId;
use crate::model::{MediaData, Provider, media_mut};
use crate::ports::faults::{Fault, Faults};
use crate::ports::layer::Layered;
use crate::ports::media::{MemoryMediaStore, SignedUrls};
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::ports::{Source, StaticSources};
use crate::providers::test_support::{fixture, normalize};
use crate::send::api::{ApiAnswer, ApiCall, CallError, Download, DownloadAnswer};
use crate::send::{MetaSend, SendSettings};
use crate::signature::Secret;

const TOKEN: &str = "EAAG-test-token";

/// Meta's Graph API for media: `GET /v23.0/{id}` then `GET https://media.test/{id}`.
#[derive(Debug, Default)]
struct GraphMedia {
    files: Mutex<HashMap<String, (Vec<u8>, String)>>,
    /// Announced size instead of the real one.
    announced_size: Mutex<Option<u64>>,
    lookups: AtomicUsize,
    downloads: AtomicUsize,
    /// The next this many downloads answer 500.
    failing: AtomicUsize,
    /// Downloads take this long to answer.
    slow: Mutex<Option<Duration>>,
    /// Neither the lookup nor the download states the size.
    no_size: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl ProviderApi for GraphMedia {
    async fn call(&self, call: ApiCall<'_>) -> Result<ApiAnswer, CallError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = |status: u16, body: serde_json::Value| ApiAnswer {
            status,
            retry_after: None,
            body: body.to_string().into_bytes(),
            truncated: false,
        };
        if !call
            .headers
            .iter()
            .any(|(n, v)| n == "Authorization" && v == &format!("Bearer {TOKEN}"))
        {
            return Ok(answer(401, serde_json::json!({"error": {"code": 190}})));
        }
        let id = call.url.rsplit('/').next().unwrap_or_default().to_owned();
        let files = self.files.lock().unwrap();
        let Some((bytes, mime)) = files.get(&id) else {
            return Ok(answer(400, serde_json::json!({"error": {"code": 100}})));
        };
        let size = self
            .announced_size
            .lock()
            .unwrap()
            .unwrap_or(bytes.len() as u64);
        let mut lookup = serde_json::json!({
            "messaging_product": "whatsapp",
            "url": format!("https://media.test/{id}"),
            "mime_type": mime,
            "sha256": hex::encode(Sha256::digest(bytes)),
            "file_size": size.to_string(),
            "id": id,
        });
        if self.no_size.load(Ordering::SeqCst) {
            lookup.as_object_mut().unwrap().remove("file_size");
        }
        Ok(answer(200, lookup))
    }

    async fn download(&self, download: Download<'_>) -> Result<DownloadAnswer, CallError> {
        self.downloads.fetch_add(1, Ordering::SeqCst);
        let slow = *self.slow.lock().unwrap();
        if let Some(delay) = slow {
            tokio::time::sleep(delay).await;
        }
        let fail = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let empty = |status| DownloadAnswer {
            status,
            content_type: None,
            content_length: None,
            retry_after: None,
            body: crate::ports::media::stream_of(Vec::new()),
        };
        if fail {
            return Ok(empty(500));
        }
        assert!(
            download
                .headers
                .iter()
                .any(|(n, v)| n == "Authorization" && v == &format!("Bearer {TOKEN}"))
        );
        let id = download.url.rsplit('/').next().unwrap_or_default();
        let Some((bytes, mime)) = self.files.lock().unwrap().get(id).cloned() else {
            return Ok(empty(404));
        };
        let chunks: Vec<Bytes> = bytes.chunks(1000).map(Bytes::copy_from_slice).collect();
        Ok(DownloadAnswer {
            status: 200,
            content_type: Some(mime),
            content_length: (!self.no_size.load(Ordering::SeqCst)).then_some(bytes.len() as u64),
            retry_after: None,
            body: crate::ports::media::stream_of(chunks),
        })
    }
}

struct World {
    media: Media,
    api: Arc<GraphMedia>,
    next: Arc<MemoryQueue>,
    store: Arc<MemoryMediaStore>,
    faults: Arc<Faults>,
}

fn source(with_token: bool) -> Source {
    Source {
        id: SourceId::parse("src-meta").unwrap(),
        provider: Provider::Meta,
        secrets: vec![Secret::new("app-secret")],
        verify_tokens: Vec::new(),
        inbound: Default::default(),
        send: with_token.then(|| {
            SendSettings::Meta(MetaSend {
                access_token: Secret::new(TOKEN),
                phone_number_id: None,
                graph_url: "https://graph.test".into(),
                graph_version: "v23.0".into(),
            })
        }),
    }
}

fn world(config: MediaConfig, with_token: bool) -> World {
    let api = Arc::new(GraphMedia::default());
    let next = Arc::new(MemoryQueue::new("buffer"));
    let store = Arc::new(MemoryMediaStore::new(SignedUrls::new(
        "http://127.0.0.1:3000",
        [9; 32],
    )));
    let faults = Faults::none();
    let docs: Arc<dyn DocumentStore> = Arc::new(Layered {
        inner: Arc::new(MemoryDocumentStore::new()) as Arc<dyn DocumentStore>,
        layer: faults.clone(),
    });
    let media = Media {
        config,
        docs,
        store: store.clone(),
        api: api.clone(),
        sources: Arc::new(StaticSources::new([source(with_token)])),
        next: next.clone(),
        blobs: Arc::new(MemoryBlobStore::new()),
        blob_ttl: Duration::from_secs(3600),
        clock: Clock::system(),
        conversations: None,
    };
    World {
        media,
        api,
        next,
        store,
        faults,
    }
}

fn quick() -> MediaConfig {
    MediaConfig {
        wait: Duration::from_millis(600),
        ..MediaConfig::default()
    }
}

/// Meta's image fixture, received now, announcing `bytes`' hash (base64, as Meta's webhooks do).
fn image_event(bytes: &[u8]) -> InboundEvent {
    let mut event = normalize(Provider::Meta, &fixture("meta-image.json")).remove(0);
    event.received_at = Utc::now();
    let EventBody::Message(body) = &mut event.data.body else {
        panic!("a message");
    };
    let media = media_mut(body.message.content.as_mut().unwrap()).unwrap();
    media.sha256 = Some(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes)));
    event
}

fn media_id_of(event: &InboundEvent) -> String {
    MediaKey::of("src-meta", Provider::Meta, event_media(event).unwrap())
        .unwrap()
        .id
}

fn jpeg(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

impl World {
    fn add(&self, event: &InboundEvent, bytes: &[u8], mime: &str) {
        let id = event_media(event).unwrap().id.clone().unwrap();
        self.api
            .files
            .lock()
            .unwrap()
            .insert(id, (bytes.to_vec(), mime.to_owned()));
    }

    /// The events handed on, as the buffer will read them.
    fn forwarded(&self) -> Vec<InboundEvent> {
        self.next
            .take_all()
            .iter()
            .map(|body| serde_json::from_str(body).unwrap())
            .collect()
    }
}

fn stored(event: &InboundEvent) -> StoredMedia {
    event_media(event)
        .unwrap()
        .media
        .as_deref()
        .cloned()
        .expect("media set")
}

async fn read_object(store: &MemoryMediaStore, key: &str) -> Vec<u8> {
    let object = store.get(key).await.unwrap().expect("stored");
    let mut bytes = Vec::new();
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes
}

#[tokio::test]
async fn an_image_is_stored_and_the_message_carries_its_url() {
    let w = world(quick(), true);
    let bytes = jpeg(250_000);
    let event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    let outcome = w.media.handle(event.clone()).await.unwrap();
    assert_eq!(outcome, Outcome::Forwarded(MediaStatus::Stored));
    let out = w.forwarded();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, event.id);
    let media = stored(&out[0]);
    assert_eq!(media.status, MediaStatus::Stored);
    assert_eq!(media.id, media_id_of(&event));
    assert_eq!(media.size, Some(250_000));
    assert_eq!(media.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(media.sha256, Some(hex::encode(Sha256::digest(&bytes))));
    assert_eq!(media.filename, Some(format!("{}.jpg", media.id)));
    let url = media.url.clone().unwrap();
    let key = format!("src-meta/{}", media.id);
    assert!(
        url.starts_with(&format!("http://127.0.0.1:3000/media/{key}?expires=")),
        "{url}"
    );
    assert_eq!(read_object(&w.store, &key).await, bytes);
    // The caption and the provider's own fields stay as they were.
    let data = event_media(&out[0]).unwrap();
    assert_eq!(data.caption.as_deref(), Some("Photo of the damaged box"));
    assert_eq!(data.id.as_deref(), Some("1479537139650973"));
    // The API gives the same file with a fresh URL.
    let looked = w.media.lookup(&media.id).await.unwrap().unwrap();
    assert_eq!(looked.status, MediaStatus::Stored);
    assert_eq!(looked.sha256, media.sha256);
    assert!(looked.url.is_some());
    assert_eq!(w.media.lookup("med_unknown").await.unwrap(), None);
}

#[tokio::test]
async fn the_same_file_in_two_messages_and_a_redelivery_is_fetched_once() {
    let w = world(quick(), true);
    let bytes = jpeg(10_000);
    let first = image_event(&bytes);
    w.add(&first, &bytes, "image/jpeg");
    let mut second = image_event(&bytes);
    second.id = crate::ids::EventId::new();
    let (a, b) = tokio::join!(
        w.media.handle(first.clone()),
        w.media.handle(second.clone())
    );
    assert_eq!(a.unwrap(), Outcome::Forwarded(MediaStatus::Stored));
    assert_eq!(b.unwrap(), Outcome::Forwarded(MediaStatus::Stored));
    w.media.handle(first.clone()).await.unwrap();
    assert_eq!(w.api.downloads.load(Ordering::SeqCst), 1);
    let out = w.forwarded();
    assert_eq!(out.len(), 3);
    let urls: Vec<_> = out.iter().map(|e| stored(e).url).collect();
    assert!(urls.iter().all(|u| u == &urls[0]), "one URL for one file");
}

#[tokio::test]
async fn a_source_without_a_token_gets_a_failed_status_at_once() {
    let w = world(quick(), false);
    let bytes = jpeg(100);
    let event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    w.media.handle(event).await.unwrap();
    let media = stored(&w.forwarded()[0]);
    assert_eq!(media.status, MediaStatus::Failed);
    assert_eq!(media.reason, Some(MediaFailure::NotConfigured));
    assert_eq!(w.api.lookups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn limits_types_and_hashes_are_checked() {
    // Announced over the image limit: refused before any byte is read.
    let w = world(quick(), true);
    let bytes = jpeg(1000);
    let event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    *w.api.announced_size.lock().unwrap() = Some(6 * 1024 * 1024);
    w.media.handle(event).await.unwrap();
    let media = stored(&w.forwarded()[0]);
    assert_eq!(
        (media.status, media.reason),
        (MediaStatus::Failed, Some(MediaFailure::TooLarge))
    );
    assert_eq!(w.api.downloads.load(Ordering::SeqCst), 0);

    // Streamed past a lower ceiling without announcing it.
    let w = world(
        MediaConfig {
            max_bytes: Some(5000),
            ..quick()
        },
        true,
    );
    let bytes = jpeg(8000);
    let mut event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    w.api.no_size.store(true, Ordering::SeqCst);
    event.id = crate::ids::EventId::new();
    w.media.handle(event.clone()).await.unwrap();
    let media = stored(&w.forwarded()[0]);
    assert_eq!(media.status, MediaStatus::Failed);
    assert_eq!(media.reason, Some(MediaFailure::TooLarge), "{media:?}");
    assert!(
        !w.store
            .exists(&format!("src-meta/{}", media.id))
            .await
            .unwrap()
    );

    // Longer than the lookup announced: refused on the way.
    let w = world(quick(), true);
    let event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    *w.api.announced_size.lock().unwrap() = Some(4000);
    w.media.handle(event).await.unwrap();
    let media = stored(&w.forwarded()[0]);
    assert_eq!(media.reason, Some(MediaFailure::Mismatch), "{media:?}");

    // A type off the allow-list.
    let w = world(
        MediaConfig {
            allowed_types: vec!["image/png".into()],
            ..quick()
        },
        true,
    );
    let event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    w.media.handle(event).await.unwrap();
    assert_eq!(
        stored(&w.forwarded()[0]).reason,
        Some(MediaFailure::TypeNotAllowed)
    );

    // Bytes that are not the announced file: refused and removed.
    let w = world(quick(), true);
    let event = image_event(b"what the webhook announced");
    w.add(&event, &bytes, "image/jpeg");
    w.media.handle(event).await.unwrap();
    let media = stored(&w.forwarded()[0]);
    assert_eq!(
        (media.status, media.reason),
        (MediaStatus::Failed, Some(MediaFailure::Mismatch))
    );
    assert!(
        !w.store
            .exists(&format!("src-meta/{}", media.id))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn provider_failures_are_retried_within_the_wait() {
    let w = world(
        MediaConfig {
            wait: Duration::from_secs(20),
            ..quick()
        },
        true,
    );
    let bytes = jpeg(5000);
    let event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    w.api.failing.store(2, Ordering::SeqCst);
    assert_eq!(
        w.media.handle(event).await.unwrap(),
        Outcome::Forwarded(MediaStatus::Stored)
    );
    assert_eq!(w.api.downloads.load(Ordering::SeqCst), 3);
    assert_eq!(w.forwarded().len(), 1);
}

#[tokio::test]
async fn a_message_goes_out_pending_when_the_wait_runs_out_and_failed_after_the_last_attempt() {
    let w = world(
        MediaConfig {
            max_attempts: 8,
            ..quick()
        },
        true,
    );
    let bytes = jpeg(5000);
    let event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    w.api.failing.store(100, Ordering::SeqCst);
    let first = w.media.handle(event.clone()).await;
    assert!(matches!(first, Err(MediaError::Retry(_))), "{first:?}");
    let out = w.forwarded();
    assert_eq!(out.len(), 1, "handed on once, pending");
    let media = stored(&out[0]);
    assert_eq!(
        (media.status, media.reason),
        (MediaStatus::Pending, Some(MediaFailure::ProviderError))
    );
    // The queue hands the record out again until the attempts are used up.
    let mut last = None;
    for _ in 0..8 {
        last = Some(w.media.handle(event.clone()).await);
        if matches!(last, Some(Ok(_))) {
            break;
        }
    }
    assert_eq!(
        last.unwrap().unwrap(),
        Outcome::Forwarded(MediaStatus::Failed)
    );
    assert_eq!(
        w.api.downloads.load(Ordering::SeqCst),
        8,
        "every attempt, no more"
    );
    let looked = w.media.lookup(&media.id).await.unwrap().unwrap();
    assert_eq!(
        (looked.status, looked.reason),
        (MediaStatus::Failed, Some(MediaFailure::ProviderError))
    );
}

#[tokio::test]
async fn a_slow_download_lets_the_message_go_pending_and_the_file_follows() {
    let w = world(quick(), true);
    let bytes = jpeg(5000);
    let event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    *w.api.slow.lock().unwrap() = Some(Duration::from_millis(1500));
    assert_eq!(
        w.media.handle(event.clone()).await.unwrap(),
        Outcome::Forwarded(MediaStatus::Stored)
    );
    let out = w.forwarded();
    assert_eq!(out.len(), 1);
    let media = stored(&out[0]);
    assert_eq!(
        (media.status, media.reason),
        (MediaStatus::Pending, Some(MediaFailure::InProgress))
    );
    let looked = w.media.lookup(&media.id).await.unwrap().unwrap();
    assert_eq!(looked.status, MediaStatus::Stored);
    // A redelivery of the record hands the stored file on (the buffer keeps the first copy).
    w.media.handle(event).await.unwrap();
    assert_eq!(w.api.downloads.load(Ordering::SeqCst), 1);
}

/// Handles `event` as SQS would: again after each error, up to five times in all.
async fn handle_with_retries(w: &World, event: &InboundEvent) -> Outcome {
    let mut outcome = w.media.handle(event.clone()).await;
    for _ in 1..5 {
        if outcome.is_ok() {
            break;
        }
        outcome = w.media.handle(event.clone()).await;
    }
    outcome.expect("handled within five deliveries")
}

#[tokio::test]
async fn every_document_call_failing_cleanly_or_ambiguously_still_fetches_once() {
    for fault in [Fault::Clean, Fault::Ambiguous] {
        for k in 1..=6 {
            let w = world(quick(), true);
            let bytes = jpeg(3000);
            let event = image_event(&bytes);
            w.add(&event, &bytes, "image/jpeg");
            w.faults.fail_in(k, fault);
            assert_eq!(
                handle_with_retries(&w, &event).await,
                Outcome::Forwarded(MediaStatus::Stored),
                "{fault:?} at call {k}"
            );
            assert_eq!(
                w.api.downloads.load(Ordering::SeqCst),
                1,
                "{fault:?} at call {k}"
            );
            let out = w.forwarded();
            assert!(!out.is_empty());
            let last = stored(out.last().unwrap());
            assert_eq!(last.status, MediaStatus::Stored, "{fault:?} at call {k}");
        }
    }
}

#[tokio::test]
async fn messages_without_a_file_pass_unchanged() {
    let w = world(quick(), true);
    let mut event = normalize(Provider::Meta, &fixture("meta-text.json")).remove(0);
    event.received_at = Utc::now();
    assert_eq!(
        w.media.handle(event.clone()).await.unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(w.forwarded(), vec![event]);
    let data = MediaData::default();
    assert!(MediaKey::of("src-meta", Provider::Meta, &data).is_none());
}

/// An open conversation whose context (last inbound message, recent messages) summarises
/// `event`'s image message, as track leaves it: the file named, without wagate's copy.
fn conversation_naming(event: &InboundEvent) -> crate::model::Conversation {
    let EventBody::Message(body) = &event.data.body else {
        unreachable!()
    };
    let summary = crate::model::MessageSummary {
        id: body.message.id.clone(),
        direction: body.message.direction,
        message_type: Some("image".into()),
        text: None,
        media: body.message.content.as_ref().and_then(|c| c.media_ref()),
        campaign_id: None,
        timestamp: None,
    };
    let mut conversation = crate::model::Conversation::opened(
        crate::ids::ConversationId::new(),
        crate::model::ContactProfile::default(),
        "106540352242922".into(),
        Utc::now(),
    );
    conversation.context.last_inbound_message = Some(summary.clone());
    conversation.context.recent_messages = vec![summary];
    conversation
}

#[tokio::test]
async fn the_context_summary_of_the_message_carries_the_same_media() {
    let w = world(quick(), true);
    let bytes = jpeg(100);
    let mut event = image_event(&bytes);
    w.add(&event, &bytes, "image/jpeg");
    event.data.conversation = Some(Box::new(conversation_naming(&event)));
    w.media.handle(event).await.unwrap();
    let out = w.forwarded().remove(0);
    let media = stored(&out);
    let context = &out.data.conversation.as_ref().unwrap().context;
    let last = context.last_inbound_message.as_ref().unwrap();
    assert_eq!(last.media.as_ref().unwrap().stored.as_deref(), Some(&media));
    assert_eq!(
        context.recent_messages[0]
            .media
            .as_ref()
            .unwrap()
            .stored
            .as_deref(),
        Some(&media)
    );
}

#[tokio::test]
async fn the_stored_conversation_gets_the_media_once_under_every_failing_call() {
    // The conversation as track stored it: its summaries name the image, without wagate's copy.
    for fault in [Fault::Clean, Fault::Ambiguous] {
        for k in 1..=8 {
            let mut w = world(quick(), true);
            let inner: Arc<dyn DocumentStore> = Arc::new(MemoryDocumentStore::new());
            w.media.docs = Arc::new(Layered {
                inner: inner.clone(),
                layer: w.faults.clone(),
            });
            w.media.conversations = Some(crate::pipeline::track::state::Conversations {
                docs: w.media.docs.clone(),
                settings: crate::pipeline::track::state::ConversationSettings {
                    idle: Duration::from_secs(24 * 3600),
                    message_ttl: Duration::from_secs(30 * 24 * 3600),
                    recent_messages: 5,
                },
            });
            let bytes = jpeg(500);
            let mut event = image_event(&bytes);
            w.add(&event, &bytes, "image/jpeg");
            let conversation = conversation_naming(&event);
            let doc = serde_json::json!({
                "key": "conversation-key",
                "source": event.data.source,
                "conversation": conversation,
            });
            let conv_key = format!("conv#{}", conversation.id);
            assert!(
                inner
                    .put(&conv_key, &doc, DocumentWrite::new(None, Utc::now()))
                    .await
                    .unwrap()
            );
            event.data.conversation = Some(Box::new(conversation.clone()));

            w.faults.fail_in(k, fault);
            assert_eq!(
                handle_with_retries(&w, &event).await,
                Outcome::Forwarded(MediaStatus::Stored),
                "{fault:?} at call {k}"
            );
            assert_eq!(
                w.api.downloads.load(Ordering::SeqCst),
                1,
                "{fault:?} at {k}"
            );
            let media = stored(w.forwarded().last().unwrap());
            let saved = inner.get(&conv_key, Utc::now()).await.unwrap().unwrap();
            let saved: crate::model::Conversation =
                serde_json::from_value(saved.body["conversation"].clone()).unwrap();
            let context = &saved.context;
            for summary in context
                .recent_messages
                .iter()
                .chain(context.last_inbound_message.iter())
            {
                assert_eq!(
                    summary.media.as_ref().unwrap().stored.as_deref(),
                    Some(&media),
                    "{fault:?} at call {k}"
                );
            }
        }
    }
}

/// A download's URL and headers.
type Seen = (String, Vec<(String, String)>);

/// A file server that records the headers of every download and answers with one JPEG.
#[derive(Debug, Default)]
struct FileServer {
    seen: Mutex<Vec<Seen>>,
}

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 a small jpeg";

#[async_trait]
impl ProviderApi for FileServer {
    async fn call(&self, _call: ApiCall<'_>) -> Result<ApiAnswer, CallError> {
        panic!("no lookup for URL media")
    }

    async fn download(&self, download: Download<'_>) -> Result<DownloadAnswer, CallError> {
        self.seen
            .lock()
            .unwrap()
            .push((download.url.to_owned(), download.headers.to_vec()));
        Ok(DownloadAnswer {
            status: 200,
            content_type: Some("image/jpeg".into()),
            content_length: Some(JPEG.len() as u64),
            retry_after: None,
            body: crate::ports::media::stream_of(vec![Bytes::from_static(JPEG)]),
        })
    }
}

/// Fetches `url` as an image of a `provider` source whose secret is `secret`; returns what the
/// server saw.
async fn fetch_url(provider: Provider, secret: &str, url: &str) -> Vec<(String, String)> {
    let source = Source {
        id: SourceId::parse("src").unwrap(),
        provider,
        secrets: vec![Secret::from(secret)],
        verify_tokens: Vec::new(),
        inbound: Default::default(),
        send: None,
    };
    let media = MediaData {
        url: Some(url.to_owned()),
        mime_type: Some("image/jpeg".into()),
        ..MediaData::default()
    };
    let key = MediaKey::of("src", provider, &media).expect("a fetchable URL");
    let server = FileServer::default();
    let store = MemoryMediaStore::new(SignedUrls::new("http://x", [0; 32]));
    let job = fetch::Job {
        source: &source,
        locator: &key.locator,
        id: &key.id,
        media: &media,
        kind: fetch::Kind::Image,
        key: "src/med_test",
    };
    let fetched = fetch::fetch(&job, &MediaConfig::default(), &server, &store)
        .await
        .unwrap();
    assert_eq!(fetched.size, JPEG.len() as u64);
    assert_eq!(fetched.sha256, hex::encode(Sha256::digest(JPEG)));
    let mut seen = server.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, url);
    seen.remove(0).1
}

#[tokio::test]
async fn twilio_media_is_fetched_with_the_accounts_basic_auth_on_twilios_api_only() {
    let url = "https://api.twilio.com/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/MM1/Media/ME1";
    let headers = fetch_url(Provider::Twilio, "auth-token", url).await;
    let expected = base64::engine::general_purpose::STANDARD
        .encode("ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:auth-token");
    assert_eq!(
        headers,
        vec![("Authorization".to_owned(), format!("Basic {expected}"))]
    );
    // Anywhere else (another host, plain http, no account in the path): no credential.
    for url in [
        "https://media.example.com/2010-04-01/Accounts/ACaaaa/Messages/MM1/Media/ME1",
        "http://api.twilio.com/2010-04-01/Accounts/ACaaaa/Messages/MM1/Media/ME1",
        "https://api.twilio.com/other/ME1",
    ] {
        assert!(
            fetch_url(Provider::Twilio, "auth-token", url)
                .await
                .is_empty(),
            "{url}"
        );
    }
}

#[tokio::test]
async fn gupshup_and_evolution_files_are_fetched_without_credentials() {
    let gupshup = "https://filemanager.gupshup.io/wa/11111111-2222-3333-4444-555555555555/wa/1730092801/photo.jpg";
    assert!(
        fetch_url(Provider::Gupshup, "token", gupshup)
            .await
            .is_empty()
    );
    let evolution = "https://s3.example.com/evolution/demo/imageMessage/3EB0.jpeg";
    assert!(
        fetch_url(Provider::Evolution, "token", evolution)
            .await
            .is_empty()
    );
    // WhatsApp's CDN URL that Evolution gives without its own storage serves the file
    // encrypted: not fetched, the message keeps it.
    let cdn = MediaData {
        url: Some("https://mmg.whatsapp.net/o1/v/t62.7118-24/f1/m231/abc.enc?ccb=11-4".into()),
        ..MediaData::default()
    };
    assert_eq!(MediaKey::of("src", Provider::Evolution, &cdn), None);
    // 360dialog's media ids need 360dialog's key: not fetched either.
    let id = MediaData {
        id: Some("1479537139650973".into()),
        ..MediaData::default()
    };
    assert_eq!(MediaKey::of("src", Provider::Dialog360, &id), None);
}
