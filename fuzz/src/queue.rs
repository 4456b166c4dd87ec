//! The `queue_record` target: queue message bodies through `ports::codec::decode`, as the
//! track and fan-out stages (`InboundEvent`), the buffer stage (`StagedEvent`, the event with
//! the key of the outbox holding it) and the deliver stage and redrive (`DeliveryTask`) read
//! them.
//!
//! The input is split on the first `0xFF` into the message body and, optionally, the bytes of
//! the blob its claim-check (`{"claim_check": "<key>"}`) points to; without that part the blob
//! is missing.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use shared::delivery::request::DeliveryTask;
use shared::model::InboundEvent;
use shared::pipeline::track::StagedEvent;
use shared::ports::BlobStore;
use shared::ports::codec::{Carried, DecodeError, decode, encode};
use shared::ports::limits::sqs_allows;
use shared::ports::memory::MemoryBlobStore;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Nesting that would overflow the stack if it were followed rather than refused at serde_json's
/// recursion limit (128). Checked once per process, for every type, as a record and behind a
/// claim-check: building it for every input would cost far more than the decoding, and nesting
/// around an input is refused before the input is read anyway. The fuzzer's own inputs nest as
/// deep as their length allows.
const VERY_DEEP: usize = 1_000_000;

/// Decodes one record as each type a stage reads and checks the codec's promises.
pub fn check_queue_record(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == 0xFF);
    let body = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let blob = parts.next();
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::block_on(async {
            check_nesting::<InboundEvent>(VERY_DEEP).await;
            check_nesting::<DeliveryTask>(VERY_DEEP).await;
            check_nesting::<StagedEvent>(VERY_DEEP).await;
        });
    });
    crate::block_on(async {
        let blobs = MemoryBlobStore::new();
        // What the body claim-checks, by the codec's own reading of it.
        let claim = match serde_json::from_str::<Carried<IgnoredAny>>(&body) {
            Ok(Carried::ClaimCheck { claim_check }) => Some(claim_check),
            _ => None,
        };
        if let (Some(key), Some(bytes)) = (&claim, blob) {
            blobs
                .put(key, bytes, now() + chrono::Duration::days(1))
                .await
                .expect("memory store");
        }
        let input = Input {
            body: &body,
            claim: claim.as_deref(),
            blob,
            blobs: &blobs,
        };
        check_as::<InboundEvent>(&input, |a, b| a == b).await;
        check_as::<DeliveryTask>(&input, |a, b| a == b).await;
        check_as::<StagedEvent>(&input, |a, b| a.staged == b.staged && a.event == b.event).await;
    });
}

struct Input<'a> {
    body: &'a str,
    claim: Option<&'a str>,
    blob: Option<&'a [u8]>,
    blobs: &'a MemoryBlobStore,
}

/// For one item type `T`:
///
/// - an inline body decodes exactly when serde_json reads it as `T`, to the same item;
/// - a claim-check decodes to what its blob holds (read as text: a blob that is not UTF-8 is
///   malformed, even where the bad bytes sit in a field `T` skips), and a missing blob is
///   `MissingBlob`, not a retryable error;
/// - whatever decodes, encodes to an SQS-safe body that decodes back to the same item.
async fn check_as<T>(input: &Input<'_>, same: fn(&T, &T) -> bool)
where
    T: Serialize + DeserializeOwned + Sync + std::fmt::Debug,
{
    let now = now();
    let decoded = decode::<T>(input.body, input.blobs, now).await;
    match (input.claim, &decoded) {
        (None, _) => {
            let direct = serde_json::from_str::<T>(input.body);
            match (&decoded, &direct) {
                (Ok(a), Ok(b)) => assert!(same(a, b), "decode and serde_json disagree"),
                (Err(DecodeError::Malformed(_)), Err(_)) => {}
                (a, b) => panic!("inline body: decode {a:?}, serde_json {b:?}"),
            }
        }
        (Some(key), _) => match input.blob {
            None => assert!(
                matches!(&decoded, Err(DecodeError::MissingBlob(k)) if k == key)
                    && decoded.as_ref().is_err_and(|e| !e.is_retryable()),
                "claim-check to a missing blob: {decoded:?}"
            ),
            Some(bytes) => match (&decoded, blob_as::<T>(bytes)) {
                (Ok(a), Ok(b)) => assert!(same(a, &b), "claim-checked item changed"),
                (Err(DecodeError::Malformed(_)), Err(_)) => {}
                (a, b) => panic!("claim-check: decode {a:?}, serde_json {b:?}"),
            },
        },
    }

    if let Ok(item) = &decoded {
        let store = MemoryBlobStore::new();
        let expires = now + chrono::Duration::days(1);
        let body = encode(item, "fuzz#round-trip", &store, expires)
            .await
            .expect("an item that decoded encodes");
        assert!(sqs_allows(&body), "encoded body has characters SQS refuses");
        let back = decode::<T>(&body, &store, now)
            .await
            .unwrap_or_else(|e| panic!("encoded item does not decode: {e}\n{body}"));
        assert!(same(item, &back), "round trip changed the item\n{body}");
    }
}

/// What a claim-checked blob holds as a `T`: the blob is UTF-8 text, then JSON.
fn blob_as<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Arrays and objects nested `depth` levels deep, as a record and behind a claim-check, are
/// refused as malformed (without exhausting the stack).
async fn check_nesting<T>(depth: usize)
where
    T: DeserializeOwned + std::fmt::Debug,
{
    let now = now();
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let store = MemoryBlobStore::new();
    for (key, deep) in [("arrays", &arrays), ("objects", &objects)] {
        let result = decode::<T>(deep, &store, now).await;
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "{depth} nested {key}: {result:?}"
        );
        store
            .put(key, deep.as_bytes(), now + chrono::Duration::days(1))
            .await
            .expect("memory store");
        let result = decode::<T>(&format!(r#"{{"claim_check":"{key}"}}"#), &store, now).await;
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "{depth} nested {key} behind a claim-check: {result:?}"
        );
    }
}
