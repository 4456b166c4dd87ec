//! How much memory a put of a 16 MiB media file into S3 (moto) takes through the adapter, with
//! its length known (one streamed PutObject) and unknown (8 MiB parts), and a get read to the end.
//! A measurement, not a test: ignored, and it prints figures instead of asserting them. The peak
//! is the process's (`VmHWM`, reset through `/proc/self/clear_refs` before each step), so run it
//! alone:
//!
//! ```text
//! cargo test -p tests --test integration -- --ignored --nocapture --test-threads=1 media_memory_moto
//! ```

use std::sync::Arc;

use aws_adapters::{S3MediaStore, provision};
use bytes::Bytes;
use futures::StreamExt as _;
use shared::ports::media::{ByteStream, MediaPut, MediaStore, stream_of};
use tests::moto;

const MIB: u64 = 1 << 20;

/// The process's peak resident set since the last reset, in KiB (Linux only).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The current resident set, in KiB.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sets the peak back to the current resident set.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM (Linux 4.0+)");
}

/// `len` bytes made 64 KiB at a time as the stream is read, so the test holds none of them.
fn generated(len: u64) -> ByteStream {
    const CHUNK: u64 = 64 * 1024;
    Box::pin(futures::stream::unfold(0u64, move |at| async move {
        if at >= len {
            return None;
        }
        let n = CHUNK.min(len - at);
        let mut x = at | 1;
        let chunk: Vec<u8> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        Some((Ok(Bytes::from(chunk)), at + n))
    }))
}

/// Runs `step` and prints how far the peak rose above the resident set before it.
async fn measure(label: &str, step: impl Future<Output = ()>) {
    reset_peak();
    let before = resident_kib().unwrap_or_default();
    step.await;
    let peak = peak_kib().unwrap_or_default();
    println!(
        "{label}: resident before {before} KiB, peak {peak} KiB, rise {} KiB",
        peak.saturating_sub(before)
    );
}

#[tokio::test]
#[ignore = "a measurement: run alone, with --ignored --nocapture --test-threads=1"]
async fn peak_memory_of_a_16_mib_put() {
    let clients = moto::clients().await;
    let bucket = moto::unique("media-memory");
    provision::ensure_bucket(&clients.s3, &bucket)
        .await
        .unwrap();
    let store: Arc<dyn MediaStore> = Arc::new(S3MediaStore::new(clients.s3, bucket));
    let put = |size| MediaPut {
        key: "src/big",
        content_type: "video/mp4",
        filename: None,
        size,
    };
    // Warm up: connections, credentials, the SDK's lazily built state.
    store
        .put(put(Some(3)), stream_of(vec![Bytes::from_static(b"abc")]))
        .await
        .unwrap();
    let size = 16 * MIB;
    println!("body: {size} bytes ({} KiB)", size / 1024);
    measure("put, length known (one streamed PutObject)", async {
        store.put(put(Some(size)), generated(size)).await.unwrap();
    })
    .await;
    measure("put, length unknown (8 MiB parts)", async {
        store.put(put(None), generated(size)).await.unwrap();
    })
    .await;
    measure("get, read to the end", async {
        let object = store.get("src/big").await.unwrap().unwrap();
        let mut body = object.body;
        let mut read = 0u64;
        while let Some(chunk) = body.next().await {
            read += chunk.unwrap().len() as u64;
        }
        assert_eq!(read, size);
    })
    .await;
    measure("for scale: the body collected in memory", async {
        let mut body = generated(size);
        let mut all = Vec::new();
        while let Some(chunk) = body.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(all.len() as u64, size);
    })
    .await;
}
