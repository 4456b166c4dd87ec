//! The ingest handler over every `events/ingest-*.json` (the files `sam local invoke` uses),
//! loaded exactly as the Lambda runtime would, with the configuration of `events/env.json` and
//! the in-memory backends: exact status codes and exactly the events enqueued.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use shared::model::{EventType, InboundEvent};
use shared::pipeline::ingest::Ingest;
use shared::ports::codec::decode;
use shared::ports::memory::{MemoryBlobStore, MemoryQueue};
use shared::ports::{BlobStore as _, Queue, StaticSources};
use tests::{invoke_router, repo_root};

fn env_of_function(function: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(repo_root().join("events/env.json")).unwrap();
    let all: HashMap<String, HashMap<String, String>> = serde_json::from_str(&text).unwrap();
    all[function].clone()
}

struct Setup {
    ingest: Ingest,
    queue: Arc<MemoryQueue>,
    blobs: Arc<MemoryBlobStore>,
}

fn setup() -> Setup {
    let env = env_of_function("IngestFunction");
    let config = ingest::Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let queue = Arc::new(MemoryQueue::new("inbound"));
    let blobs = Arc::new(MemoryBlobStore::new());
    let ingest = Ingest {
        sources: Arc::new(StaticSources::new(config.sources)),
        queue: queue.clone(),
        blobs: blobs.clone(),
        config: config.ingest,
    };
    Setup {
        ingest,
        queue,
        blobs,
    }
}

async fn invoke(setup: &Setup, file: &str) -> (u16, String, Vec<InboundEvent>) {
    let text = std::fs::read_to_string(repo_root().join("events").join(file)).unwrap();
    let answer = invoke_router(&ingest::router(setup.ingest.clone()), &text).await;
    let status = answer.status;
    let body = String::from_utf8(answer.body).unwrap();
    let mut events = Vec::new();
    loop {
        let got = setup
            .queue
            .receive(10, Duration::ZERO, Duration::from_secs(60))
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            events.push(
                decode(&m.body, setup.blobs.as_ref(), Utc::now())
                    .await
                    .unwrap(),
            );
        }
    }
    (status, body, events)
}

/// What one event file must produce: the status, and the (type, dedup key) of every event
/// enqueued (an empty key is not checked).
struct Expect {
    file: &'static str,
    status: u16,
    events: Vec<(EventType, String)>,
}

fn expect(file: &'static str, status: u16, events: Vec<(EventType, String)>) -> Expect {
    Expect {
        file,
        status,
        events,
    }
}

fn expectations() -> Vec<Expect> {
    use EventType as T;
    let wamid =
        |n: &str| format!("wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRUIwQzc2N0QyNkExRDJGNUExRQ{n}A=");
    let meta_msg = |n: &str| format!("meta-main:meta:106540352242922:{}", wamid(n));
    vec![
        expect(
            "ingest-meta-text.json",
            200,
            vec![(T::MessageReceived, meta_msg("01"))],
        ),
        expect(
            "ingest-meta-base64.json",
            200,
            vec![(T::MessageReceived, meta_msg("01"))],
        ),
        expect(
            "ingest-meta-image.json",
            200,
            vec![(T::MessageReceived, meta_msg("03"))],
        ),
        expect(
            "ingest-meta-status-delivered.json",
            200,
            vec![(
                T::MessageDelivered,
                (format!("meta-main:meta:{}:delivered", wamid("90"))),
            )],
        ),
        expect(
            "ingest-meta-status-failed.json",
            200,
            vec![(
                T::MessageFailed,
                (format!("meta-main:meta:{}:failed", wamid("96"))),
            )],
        ),
        expect(
            "ingest-meta-multi-entry-batch.json",
            200,
            vec![
                (T::MessageReceived, meta_msg("30")),
                (T::MessageReceived, meta_msg("31")),
                (
                    T::MessageDelivered,
                    (format!("meta-main:meta:{}:delivered", wamid("90"))),
                ),
                (
                    T::MessageRead,
                    (format!("meta-main:meta:{}:read", wamid("91"))),
                ),
                (
                    T::MessageReceived,
                    (format!("meta-main:meta:106540352242923:{}", wamid("32"))),
                ),
            ],
        ),
        expect(
            "ingest-meta-unicode-escapes.json",
            200,
            vec![(
                T::MessageReceived,
                "meta-main:meta:106540352242922:wamid.TEST1".into(),
            )],
        ),
        expect(
            "ingest-meta-template-status-update.json",
            200,
            vec![(T::TemplateStatusUpdated, String::new())],
        ),
        expect(
            "ingest-waha-message.json",
            200,
            vec![(
                T::MessageReceived,
                "waha-main:waha:default:false_3EB0C767D26A1D2F5A1E".to_owned(),
            )],
        ),
        expect(
            "ingest-waha-message-ack.json",
            200,
            vec![(
                T::MessageRead,
                "waha-main:waha:default:true_3EB0B6F646127B8BBC42:3".to_owned(),
            )],
        ),
        expect(
            "ingest-waha-session-status.json",
            200,
            vec![(
                T::SessionStatusUpdated,
                "waha-main:waha:default:evt_01jbcq3zx0v9k8n7m6p5q4r316".to_owned(),
            )],
        ),
        // The same webhook through a Lambda Function URL (no path parameters), and a path the
        // HTTP API has no route for, which the function refuses itself.
        expect(
            "ingest-function-url-meta-text.json",
            200,
            vec![(T::MessageReceived, meta_msg("01"))],
        ),
        expect("ingest-function-url-other-path.json", 404, vec![]),
        expect("ingest-meta-bad-signature.json", 401, vec![]),
        expect("ingest-meta-missing-signature.json", 401, vec![]),
        expect("ingest-waha-bad-signature.json", 401, vec![]),
        expect(
            "ingest-meta-handover-request-thread-control.json",
            200,
            vec![(T::ConversationHandoffRequested, String::new())],
        ),
        expect(
            "ingest-twilio-inbound.json",
            200,
            vec![(
                T::MessageReceived,
                "twilio-main:twilio:SM0f2a6e0d2b1c4e9f8a7b6c5d4e3f2a1b".into(),
            )],
        ),
        expect(
            "ingest-twilio-status-read.json",
            200,
            vec![(
                T::MessageRead,
                "twilio-main:twilio:SM1b2c3d4e5f60718293a4b5c6d7e8f901:read".into(),
            )],
        ),
        expect(
            "ingest-twilio-stage-path.json",
            200,
            vec![(
                T::MessageReceived,
                "twilio-main:twilio:SM0f2a6e0d2b1c4e9f8a7b6c5d4e3f2a1b".into(),
            )],
        ),
        expect("ingest-twilio-other-url.json", 401, vec![]),
        expect(
            "ingest-360dialog-text.json",
            200,
            vec![(
                T::MessageReceived,
                format!("360dialog-main:meta:106540352242922:{}", wamid("01")),
            )],
        ),
        expect("ingest-360dialog-wrong-token.json", 401, vec![]),
        expect("ingest-unknown-source.json", 404, vec![]),
        expect("ingest-meta-not-json.json", 400, vec![]),
        expect("ingest-oversized.json", 413, vec![]),
        expect("ingest-meta-handshake.json", 200, vec![]),
        expect("ingest-meta-handshake-bad-token.json", 403, vec![]),
    ]
}

#[tokio::test]
async fn every_ingest_event_file_gets_its_exact_status_and_events() {
    let table = expectations();
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("ingest-"))
        .collect();
    files.sort();
    let covered: Vec<String> = table.iter().map(|e| e.file.to_owned()).collect();
    let mut sorted = covered.clone();
    sorted.sort();
    assert_eq!(
        files, sorted,
        "every events/ingest-*.json has an expectation and vice versa"
    );

    for Expect {
        file,
        status,
        events: expected,
    } in table
    {
        let setup = setup();
        let (got_status, body, events) = invoke(&setup, file).await;
        assert_eq!(got_status, status, "{file}: {body}");
        let got: Vec<(EventType, String)> = events
            .iter()
            .map(|e| (e.event_type, e.dedup_key.clone()))
            .collect();
        assert_eq!(got.len(), expected.len(), "{file}: {got:?}");
        for ((t, k), (want_t, want_k)) in got.iter().zip(&expected) {
            assert_eq!(t, want_t, "{file}");
            if !want_k.is_empty() {
                assert_eq!(k, want_k, "{file}");
            }
        }
        if file.contains("twilio") && status == 200 {
            // Twilio reads the answer as TwiML: an empty response, no auto-reply.
            assert_eq!(body, shared::pipeline::ingest::EMPTY_TWIML, "{file}");
            continue;
        }
        let answer: Value = if file.contains("handshake") && status == 200 {
            Value::String(body.clone())
        } else {
            serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{file}: answer is not JSON ({e}): {body}"))
        };
        match status {
            200 if file.contains("handshake") => assert_eq!(answer, "1158201444"),
            200 => assert_eq!(answer["received"], expected.len()),
            _ => assert!(answer["error"]["code"].is_string(), "{file}: {answer}"),
        }
    }
}

#[tokio::test]
async fn the_raw_request_of_an_accepted_webhook_is_kept_for_replay() {
    let setup = setup();
    let (status, _, events) = invoke(&setup, "ingest-meta-base64.json").await;
    assert_eq!(status, 200);
    let request_id = events[0].request_id.clone().unwrap();
    let raw = setup
        .blobs
        .get(&format!("req#{request_id}"), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let original =
        std::fs::read(repo_root().join("shared/fixtures/providers/meta-text.json")).unwrap();
    assert_eq!(
        raw, original,
        "base64 bodies are stored decoded, byte for byte"
    );
}
