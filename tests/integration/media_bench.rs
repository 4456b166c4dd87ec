//! What the media stage (issue 20) costs through the whole local gateway, measured with the
//! fake Graph API serving the files and a receiver on 127.0.0.1 that stamps each delivery as it
//! arrives:
//!
//! - **time**: a Meta text message and a Meta image (a distinct 100 KB file each) posted in
//!   turn, one at a time, each awaited at the receiver before the next; the time from the POST
//!   to the delivery of `whatsapp.message.received`, text against image. The difference is what
//!   a media message adds (lookup, download, store, the media queue's hop).
//! - **memory**: one 16 MiB `video/mp4` through the gateway into S3 on moto and into
//!   `media_dir` on disk; how far the process's peak resident set (`VmHWM`, reset through
//!   `/proc/self/clear_refs`) rose, against the file's size and against collecting the same
//!   file into a `Vec` in the same run.
//!
//! Measurements, not tests: ignored, they print figures instead of asserting them (only that
//! the files arrive intact). Run them alone, one test at a time, as `BENCHMARKS.md` says:
//!
//! ```text
//! . scripts/moto.sh && start_moto /tmp/moto-bench.log
//! cargo test -p tests --test integration -- --ignored --nocapture --test-threads=1 media_bench
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use shared::ports::Source;
use shared::send::{MetaSend, SendSettings};
use shared::signature::Secret;
use tests::wait::Patience;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wagate_local::backend::Stores;
use wagate_local::config::LocalConfig;
use wagate_local::fake::{FakeGraph, FakeGraphOptions};
use wagate_local::gateway::{Gateway, Options};
use wagate_local::sample::{meta_image, meta_text, signature_headers, wamid};

use super::e2e::{CALLS_PER_WEBHOOK, endpoint, moto_stores};

const TOKEN: &str = "media-bench-graph-token";

/// Messages of each kind in the time measurement.
const ROUNDS: usize = 30;

/// Size of each image in the time measurement.
const IMAGE_BYTES: usize = 100_000;

/// The video of the memory measurement: WhatsApp's limit for video, exactly.
const VIDEO_BYTES: usize = 16 * 1024 * 1024;

/// A delivery as the receiver got it, stamped on arrival.
#[derive(Debug)]
struct Arrival {
    at: Instant,
    event_type: String,
    body: Bytes,
}

impl Arrival {
    /// The delivered items (one, or a batch's).
    fn items(&self) -> Vec<Value> {
        let envelope: Value = serde_json::from_slice(&self.body).unwrap();
        match &envelope["data"] {
            Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        }
    }

    /// The `whatsapp.message.received` item of message `wamid`, if this delivery holds it.
    fn message(&self, wamid: &str) -> Option<Value> {
        if self.event_type != "whatsapp.message.received" {
            return None;
        }
        self.items()
            .into_iter()
            .find(|i| i["message"]["id"] == wamid)
    }
}

/// A subscriber endpoint that stamps each request when its body has arrived and hands it over
/// at once: no polling between the delivery and the clock.
async fn clocked_receiver() -> (String, mpsc::UnboundedReceiver<Arrival>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .fallback(
            |State(tx): State<mpsc::UnboundedSender<Arrival>>, req: Request| async move {
                let event_type = req
                    .headers()
                    .get("x-webhook-event")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                    .await
                    .unwrap_or_default();
                let _ = tx.send(Arrival {
                    at: Instant::now(),
                    event_type,
                    body,
                });
                "ok"
            },
        )
        .with_state(tx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

/// One local gateway with the media stage, the fake Graph API behind the `meta-demo` source,
/// and one endpoint without batching (so the buffer treats text and media alike: the 1 s
/// window, then one delivery per message).
struct World {
    gateway: Gateway,
    graph: FakeGraph,
    source: Source,
    client: reqwest::Client,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    /// Every delivery taken off `arrivals` so far.
    seen: Vec<Arrival>,
    deadline: Duration,
}

impl World {
    async fn start(stores: Stores, media_dir: Option<PathBuf>, patience: Patience) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = LocalConfig::sample().unwrap();
        let source = config.source("meta-demo").unwrap().clone();
        let mut graph_options =
            FakeGraphOptions::for_source(&source, "127.0.0.1:0".parse().unwrap(), &base).unwrap();
        graph_options.access_token = Secret::from(TOKEN.to_owned());
        let graph = FakeGraph::start(graph_options).await.unwrap();
        for s in &mut config.sources {
            if s.id.as_str() == "meta-demo" {
                s.send = Some(SendSettings::Meta(MetaSend {
                    access_token: Secret::from(TOKEN.to_owned()),
                    phone_number_id: Some(wagate_local::sample::PHONE_NUMBER_ID.to_owned()),
                    graph_url: graph.url(),
                    graph_version: "v23.0".into(),
                }));
            }
        }
        let (url, arrivals) = clocked_receiver().await;
        let mut one_by_one = endpoint("ep_bench", &url);
        one_by_one.batching = false;
        config.endpoints = vec![one_by_one];
        config.settings = BTreeMap::from([("BUFFER_WINDOW_SECONDS".to_owned(), "1".to_owned())]);
        let mut options = Options::new(config);
        options.sweep_every = None;
        options.batching_window = Duration::from_millis(200);
        options.media_dir = media_dir;
        let gateway = Gateway::start(stores, listener, options).await.unwrap();
        Self {
            gateway,
            graph,
            source,
            client: aws_adapters::http::client(),
            arrivals,
            seen: Vec::new(),
            deadline: patience.deadline(12 * CALLS_PER_WEBHOOK),
        }
    }

    /// Posts `body` signed, waits for its message `wamid` at the receiver; returns the time to
    /// the POST's answer and to the delivery, both from just before the POST.
    async fn round_trip(&mut self, body: &Value, wamid: &str) -> (Duration, Duration) {
        let body = body.to_string();
        let mut req = self
            .client
            .post(format!("http://{}/webhooks/meta-demo", self.gateway.addr()))
            .header("content-type", "application/json");
        for (name, value) in signature_headers(&self.source, "", body.as_bytes()) {
            req = req.header(name, value);
        }
        let req = req.body(body);
        let started = Instant::now();
        let r = req.send().await.unwrap();
        let answered = started.elapsed();
        assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
        let at = self.arrival_of(wamid).await;
        (answered, at - started)
    }

    /// When message `wamid` reached the receiver (waiting for it).
    async fn arrival_of(&mut self, wamid: &str) -> Instant {
        if let Some(a) = self.seen.iter().find(|a| a.message(wamid).is_some()) {
            return a.at;
        }
        let until = tokio::time::Instant::now() + self.deadline;
        loop {
            let next = tokio::time::timeout_at(until, self.arrivals.recv())
                .await
                .unwrap_or_else(|_| panic!("message {wamid} not delivered in {:?}", self.deadline))
                .unwrap();
            let at = next.at;
            let hit = next.message(wamid).is_some();
            self.seen.push(next);
            if hit {
                return at;
            }
        }
    }

    /// The delivered item of message `wamid`.
    fn delivered(&self, wamid: &str) -> Value {
        self.seen
            .iter()
            .find_map(|a| a.message(wamid))
            .unwrap_or_else(|| panic!("message {wamid} was not delivered"))
    }

    async fn stop(self) {
        self.gateway.shutdown(Duration::from_secs(5)).await;
        self.graph.stop().await;
    }
}

/// `len` bytes that differ with `seed` (xorshift).
fn file_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// The file's SHA-256 as Meta's webhooks give it (base64).
fn meta_sha(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// A Meta inbound video: the sample image webhook with the `video` type.
fn meta_video(from: &str, wamid: &str, media_id: &str, sha256: &str) -> Value {
    let mut body = meta_image(
        from,
        "Video Bench",
        wamid,
        (media_id, sha256),
        "",
        Utc::now(),
    );
    let message = &mut body["entry"][0]["changes"][0]["value"]["messages"][0];
    let object = message.as_object_mut().unwrap();
    object.remove("image");
    object.insert("type".into(), "video".into());
    object.insert(
        "video".into(),
        serde_json::json!({"mime_type": "video/mp4", "sha256": sha256, "id": media_id}),
    );
    body
}

/// Downloads `url` chunk by chunk into `sink`; returns the byte count.
async fn download(url: &str, mut sink: impl FnMut(&[u8])) -> u64 {
    let mut r = aws_adapters::http::client().get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{url}");
    let mut read = 0u64;
    while let Some(chunk) = r.chunk().await.unwrap() {
        read += chunk.len() as u64;
        sink(&chunk);
    }
    read
}

/// The stored file of a delivered media message: status, size, hash, and its URL.
fn stored(item: &Value, size: usize, bytes_sha_hex: &str) -> String {
    let media = &item["message"]["message_type_data"]["media"];
    assert_eq!(media["status"], "stored", "{item}");
    assert_eq!(media["size"], size);
    assert_eq!(media["sha256"], bytes_sha_hex);
    media["url"].as_str().unwrap().to_owned()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `pct`th percentile by nearest rank.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Median and p90 of `samples`, printed as one row; returns them.
fn summarize(label: &str, answered: &[Duration], delivered: &[Duration]) -> (Duration, Duration) {
    let mut a = answered.to_vec();
    a.sort();
    let mut d = delivered.to_vec();
    d.sort();
    let (median, p90) = (percentile(&d, 50), percentile(&d, 90));
    println!(
        "  {label}: n {}, POST answered median {:.1} ms; delivered median {:.1} ms, p90 {:.1} ms, \
         min {:.1} ms, max {:.1} ms",
        d.len(),
        ms(percentile(&a, 50)),
        ms(median),
        ms(p90),
        ms(d[0]),
        ms(d[d.len() - 1]),
    );
    (median, p90)
}

async fn added_time_per_media_message(backend: &str, stores: Stores, patience: Patience) {
    let mut w = World::start(stores, None, patience).await;
    let mut text = (Vec::new(), Vec::new());
    let mut image = (Vec::new(), Vec::new());
    let mut files = Vec::new();
    // Round 0 warms up (connections, the store's client, lazily built state): not counted.
    // Text and image take turns, so a busier moment of the machine falls on both alike.
    for round in 0..=ROUNDS {
        let id = wamid();
        let body = meta_text(
            &format!("1555200{round:04}"),
            "Text Bench",
            &id,
            "where is my order?",
            Utc::now(),
        );
        let (answered, delivered) = w.round_trip(&body, &id).await;
        if round > 0 {
            text.0.push(answered);
            text.1.push(delivered);
        }

        let bytes = file_bytes(IMAGE_BYTES, round as u64 + 1);
        let media_id = w.graph.add_media(bytes.clone(), "image/png");
        let id = wamid();
        let body = meta_image(
            &format!("1555300{round:04}"),
            "Image Bench",
            &id,
            (&media_id, &meta_sha(&bytes)),
            "the damaged box",
            Utc::now(),
        );
        let (answered, delivered) = w.round_trip(&body, &id).await;
        if round > 0 {
            image.0.push(answered);
            image.1.push(delivered);
        }
        files.push((id, bytes));
    }
    // Every image went out stored, and its URL downloads its bytes.
    for (id, bytes) in &files {
        let url = stored(
            &w.delivered(id),
            bytes.len(),
            &hex::encode(Sha256::digest(bytes)),
        );
        let mut got = Vec::new();
        download(&url, |c| got.extend_from_slice(c)).await;
        assert!(got == *bytes, "the URL of {id} downloads its bytes");
    }
    println!(
        "added time per media message, {backend}: {ROUNDS} text and {ROUNDS} image messages \
         ({IMAGE_BYTES}-byte files), one at a time, BUFFER_WINDOW_SECONDS 1, no batching"
    );
    let (text_median, text_p90) = summarize("text ", &text.0, &text.1);
    let (image_median, image_p90) = summarize("image", &image.0, &image.1);
    println!(
        "  added per media message: median {:+.1} ms, p90 {:+.1} ms",
        ms(image_median) - ms(text_median),
        ms(image_p90) - ms(text_p90),
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run alone, with --ignored --nocapture --test-threads=1"]
async fn added_time_per_media_message_on_the_embedded_backend_with_the_memory_store() {
    added_time_per_media_message(
        "embedded backend, memory store",
        Stores::memory(),
        Patience::embedded(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run alone, with --ignored --nocapture --test-threads=1"]
async fn added_time_per_media_message_on_moto_with_s3() {
    let (stores, server, patience) = moto_stores().await;
    let bucket = stores.media_bucket.as_ref().unwrap().bucket().to_owned();
    aws_adapters::provision::ensure_bucket(&server.clients().await.s3, &bucket)
        .await
        .unwrap();
    added_time_per_media_message("AWS backend on moto (DynamoDB, SQS, S3)", stores, patience).await;
}

/// The process's peak resident set since the last reset, in KiB (Linux only).
fn peak_kib() -> u64 {
    status_kib("VmHWM:")
}

/// The current resident set, in KiB.
fn resident_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sets the peak back to the current resident set.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM (Linux 4.0+)");
}

/// Runs `step` and prints how far the peak rose above the resident set before it, also as a
/// share of the file.
async fn measure<T>(label: &str, step: impl Future<Output = T>) -> T {
    reset_peak();
    let before = resident_kib();
    let out = step.await;
    let rise = peak_kib().saturating_sub(before);
    println!(
        "  {label}: resident before {before} KiB, peak rise {rise} KiB ({:.1}% of the file)",
        rise as f64 * 1024.0 * 100.0 / VIDEO_BYTES as f64
    );
    out
}

async fn peak_memory_of_a_16_mib_video(
    store: &str,
    stores: Stores,
    media_dir: Option<PathBuf>,
    patience: Patience,
) {
    let mut w = World::start(stores, media_dir, patience).await;
    // Warm up the whole path (connections, the store's client) with a small video.
    let small = file_bytes(IMAGE_BYTES, 7);
    let media_id = w.graph.add_media(small.clone(), "video/mp4");
    let id = wamid();
    w.round_trip(
        &meta_video("15554000001", &id, &media_id, &meta_sha(&small)),
        &id,
    )
    .await;

    // The fake Graph API holds the file before the peak is reset: it is the provider's, not the
    // gateway's.
    let bytes = file_bytes(VIDEO_BYTES, 16);
    let (sha_hex, sha_b64) = (hex::encode(Sha256::digest(&bytes)), meta_sha(&bytes));
    let media_id = w.graph.add_media(bytes, "video/mp4");
    let id = wamid();
    let body = meta_video("15554000002", &id, &media_id, &sha_b64);
    println!(
        "peak memory of a {VIDEO_BYTES}-byte video/mp4 ({} KiB), {store}",
        VIDEO_BYTES / 1024
    );
    let (_, took) = measure(
        "through the gateway: POST, lookup, download, store, delivery",
        w.round_trip(&body, &id),
    )
    .await;
    println!("    (delivered {:.0} ms after the POST)", ms(took));
    let url = stored(&w.delivered(&id), VIDEO_BYTES, &sha_hex);

    let hash = measure("its URL downloaded, read to the end and hashed", async {
        let mut hasher = Sha256::new();
        let read = download(&url, |c| hasher.update(c)).await;
        assert_eq!(read, VIDEO_BYTES as u64);
        hex::encode(hasher.finalize())
    })
    .await;
    assert_eq!(hash, sha_hex, "the URL downloads the file");
    // Sized up front: the file held once, without a growing Vec's copies.
    let all = measure("for scale: the same download collected into a Vec", async {
        let mut all = Vec::with_capacity(VIDEO_BYTES);
        download(&url, |c| all.extend_from_slice(c)).await;
        all
    })
    .await;
    assert_eq!(hex::encode(Sha256::digest(&all)), sha_hex);
    drop(all);
    w.stop().await;
}

#[tokio::test]
#[ignore = "a measurement: run alone, with --ignored --nocapture --test-threads=1"]
async fn peak_memory_of_a_16_mib_video_on_disk() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "media-bench-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    peak_memory_of_a_16_mib_video(
        "embedded backend, media_dir on disk",
        Stores::memory(),
        Some(dir.clone()),
        Patience::embedded(),
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The memory store keeps every file in the process by design (`wagate serve` without
/// `--media-dir`, for trying things out): its rise is the file, which also shows that the
/// measurement sees a file held whole.
#[tokio::test]
#[ignore = "a measurement: run alone, with --ignored --nocapture --test-threads=1"]
async fn peak_memory_of_a_16_mib_video_in_the_memory_store() {
    peak_memory_of_a_16_mib_video(
        "embedded backend, memory store (holds files by design)",
        Stores::memory(),
        None,
        Patience::embedded(),
    )
    .await;
}

#[tokio::test]
#[ignore = "a measurement: run alone, with --ignored --nocapture --test-threads=1"]
async fn peak_memory_of_a_16_mib_video_on_s3_in_moto() {
    let (stores, server, patience) = moto_stores().await;
    let bucket = stores.media_bucket.as_ref().unwrap().bucket().to_owned();
    aws_adapters::provision::ensure_bucket(&server.clients().await.s3, &bucket)
        .await
        .unwrap();
    peak_memory_of_a_16_mib_video("AWS backend on moto, S3", stores, None, patience).await;
}
