//! The load generator: signed webhooks posted over HTTP on 127.0.0.1 to the whole pipeline on an
//! embedded backend (memory or SQLite), at increasing rates, until it no longer keeps up. Per
//! step it reports the offered and accepted rate, ingest latency (the HTTP answer), end-to-end
//! latency (post → the receiver accepting the delivery), the resident set (now and at its peak)
//! and the database's size. Bounded in count and time: each step lasts `step` and is given
//! `drain` to finish. One rate repeated (`--rates 500,500,…`) draws memory and disk over a long
//! steady run.
//!
//! Half the webhooks are Meta text messages (they go through the buffer, whose window adds to
//! their end-to-end time), half Meta delivery statuses (straight to fan-out): the two are reported
//! apart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};

use wagate_local::backend::{Backend, Stores};
use wagate_local::config::LocalConfig;
use wagate_local::gateway::{Gateway, Options};
use wagate_local::receiver::{Receiver, Rng};
use wagate_local::sample::{meta_status, meta_text, signature_headers, wamid};

use crate::ttl_cap::TtlCap;

/// Load run settings.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Offered rates, webhooks per second, in order.
    pub rates: Vec<u32>,
    /// How long each rate is held.
    pub step: Duration,
    /// How long a step may take to deliver everything after its last post.
    pub drain: Duration,
    /// Posts in flight at most (beyond: counted as not sent, the generator is the limit).
    pub max_in_flight: usize,
    /// `BUFFER_WINDOW_SECONDS` for the run.
    pub buffer_window_secs: u64,
    /// Pollers per stage.
    pub concurrency: usize,
    /// Where state and queues live (`Memory` or `Sqlite`).
    pub backend: Backend,
    /// Every TTL cut to this (see [`crate::ttl_cap`]), so a long steady run reaches the state
    /// where items expire as fast as they arrive; `None`: the pipeline's own TTLs (days).
    pub ttl_cap: Option<Duration>,
    /// How often expired items are freed (the gateway's default is a minute).
    pub evict_every: Duration,
    /// Go on after a step that did not keep up (a long run draws its whole curve).
    pub keep_going: bool,
    /// Distinct customers (conversations) the webhooks come from: with fewer, each conversation
    /// gets more messages a second and its batches grow, as at a higher rate with more of them.
    pub customers: u64,
}

/// One step's figures.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    /// Offered webhooks per second.
    pub offered: u32,
    /// Posts not made because `max_in_flight` were outstanding.
    pub not_sent: usize,
    /// Answered 2xx.
    pub accepted: usize,
    /// Answered otherwise or failed.
    pub errors: usize,
    /// Ingest answer time, p50 and p99, milliseconds.
    pub ingest_ms: (f64, f64),
    /// Post → delivery, statuses (no buffering), p50 and p99, milliseconds.
    pub e2e_status_ms: (f64, f64),
    /// Post → delivery, messages (buffer window included), p50 and p99, milliseconds.
    pub e2e_message_ms: (f64, f64),
    /// Items delivered of those expected.
    pub delivered: usize,
    /// Items expected (one per accepted webhook).
    pub expected: usize,
    /// From the step's last answered post to its last delivery: the backlog left.
    pub tail: Duration,
    /// Whether the pipeline kept up: everything accepted and delivered, the tail no longer than
    /// the batching windows of the way (buffer window + 5 s).
    pub kept_up: bool,
    /// Peak resident set of the process so far, MiB.
    pub peak_rss_mib: f64,
    /// Resident set at the end of the step, MiB.
    pub rss_mib: f64,
    /// The SQLite database's size at the end of the step (pages, WAL not included), MiB.
    pub db_mib: Option<f64>,
    /// Expired documents and blobs freed since the run began.
    pub evicted: u64,
}

impl StepReport {
    /// One table row.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {:.1} / {:.1} | {:.0} / {:.0} | {:.0} / {:.0} | {}/{} | {:.1} | {} | {:.0} | {:.0} | {} | {} |",
            self.offered,
            self.accepted,
            self.errors + self.not_sent,
            self.ingest_ms.0,
            self.ingest_ms.1,
            self.e2e_status_ms.0,
            self.e2e_status_ms.1,
            self.e2e_message_ms.0,
            self.e2e_message_ms.1,
            self.delivered,
            self.expected,
            self.tail.as_secs_f64(),
            if self.kept_up { "yes" } else { "**no**" },
            self.rss_mib,
            self.peak_rss_mib,
            self.db_mib
                .map_or_else(|| "–".to_owned(), |m| format!("{m:.1}")),
            self.evicted,
        )
    }

    /// The table header.
    pub fn header() -> &'static str {
        "| offered/s | accepted | errors | ingest p50 / p99 ms | e2e status p50 / p99 ms | e2e message p50 / p99 ms | delivered | tail s | kept up | RSS MiB | peak RSS MiB | DB MiB | expired freed |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Nearest-rank p50 and p99 of `v` (NaN when empty).
pub fn p50_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

/// Peak resident set of this process (`VmHWM`), MiB; 0 where `/proc` is missing.
pub fn peak_rss_mib() -> f64 {
    proc_status_mib("VmHWM:")
}

/// Resident set of this process now (`VmRSS`), MiB; 0 where `/proc` is missing.
pub fn rss_mib() -> f64 {
    proc_status_mib("VmRSS:")
}

fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A webhook body with holes: the text a sample function writes, cut where the values that
/// change from post to post go, so a post costs a few copies rather than building and writing a
/// JSON tree (the generator shares the 2 cores it measures). Filled, it is byte for byte what
/// the sample function writes for the same values (tested).
struct Template {
    /// The text between the holes: one more piece than there are holes.
    pieces: Vec<String>,
    /// Which value goes in each hole (an index into `fill`'s values).
    holes: Vec<usize>,
}

impl Template {
    /// Writes `sample` with `markers` as the values, then cuts at each marker. Every marker
    /// must come out verbatim (nothing JSON escapes in it) and not occur by chance elsewhere.
    fn new(text: &str, markers: &[&str]) -> Self {
        let mut pieces = Vec::new();
        let mut holes = Vec::new();
        let mut rest = text;
        loop {
            let next = markers
                .iter()
                .enumerate()
                .filter_map(|(i, m)| rest.find(m).map(|at| (at, i, m.len())))
                .min();
            let Some((at, which, len)) = next else {
                pieces.push(rest.to_owned());
                break;
            };
            pieces.push(rest[..at].to_owned());
            holes.push(which);
            rest = &rest[at + len..];
        }
        Self { pieces, holes }
    }

    /// The text with `values[i]` in each hole of marker `i`. The values must need no JSON
    /// escaping (digits, ids of letters, digits and `.`).
    fn fill(&self, values: &[&str]) -> String {
        let len = self.pieces.iter().map(String::len).sum::<usize>()
            + self.holes.iter().map(|&h| values[h].len()).sum::<usize>();
        let mut out = String::with_capacity(len);
        for (piece, hole) in self.pieces.iter().zip(&self.holes) {
            out.push_str(piece);
            out.push_str(values[*hole]);
        }
        out.push_str(self.pieces.last().map_or("", String::as_str));
        out
    }
}

/// A moment whose Unix seconds mark the timestamp's hole in a template (no other number in the
/// samples has these digits).
const MARK_SECONDS: i64 = 4_102_444_799;

/// The text message and the status templates: holes for the customer, the message id and the
/// Unix seconds, in that order.
fn templates() -> anyhow::Result<(Template, Template)> {
    let at = chrono::DateTime::from_timestamp(MARK_SECONDS, 0)
        .ok_or_else(|| anyhow::anyhow!("the marker time is out of range"))?;
    let seconds = MARK_SECONDS.to_string();
    let markers = ["CUSTOMERMARK", "IDMARK", seconds.as_str()];
    let text = meta_text(markers[0], "Load Test", markers[1], "load", at).to_string();
    let status = meta_status(markers[0], markers[1], "delivered", at).to_string();
    Ok((
        Template::new(&text, &markers),
        Template::new(&status, &markers),
    ))
}

struct Posted {
    /// Item key the receiver will report → when its webhook was posted.
    sent: HashMap<String, Instant>,
    ingest_ms: Vec<f64>,
    accepted: usize,
    errors: usize,
}

/// Runs the load steps; stops after the first step that does not keep up (unless
/// `keep_going`).
pub async fn run(options: LoadOptions) -> anyhow::Result<Vec<StepReport>> {
    let (receiver, secret) = Receiver::start_local(0.0, 0.0, Duration::ZERO, 1).await?;
    let mut config = LocalConfig::sample()?;
    config.endpoints = vec![receiver.endpoint(
        "ep_load",
        &secret,
        "load run receiver",
        &["whatsapp.message.*"],
    )];
    config.settings.insert(
        "BUFFER_WINDOW_SECONDS".into(),
        options.buffer_window_secs.to_string(),
    );
    let mut gateway_options = Options::new(config.clone());
    gateway_options.concurrency = options.concurrency;
    gateway_options.sweep_every = None;
    gateway_options.evict_every = Some(options.evict_every);
    let mut stores = Stores::open(&options.backend).await?;
    if let Some(cap) = options.ttl_cap {
        stores.docs = Arc::new(TtlCap::new(stores.docs, cap));
        stores.blobs = Arc::new(TtlCap::new(stores.blobs, cap));
    }
    let gateway = Gateway::start(
        stores,
        TcpListener::bind("127.0.0.1:0").await?,
        gateway_options,
    )
    .await?;
    let url = format!("http://{}/webhooks/meta-demo", gateway.addr());
    let source = config
        .source("meta-demo")
        .ok_or_else(|| anyhow::anyhow!("the sample config has no meta-demo source"))?
        .clone();
    // Parsed once: a `&str` would be parsed again for every post.
    let url = reqwest::Url::parse(&url)?;
    let (text_template, status_template) = templates()?;
    let client = aws_adapters::http::client_builder()
        .pool_max_idle_per_host(options.max_in_flight)
        .build()?;
    let mut rng = Rng::new(7);
    let mut reports = Vec::new();
    for &rate in &options.rates {
        let posted = Arc::new(Mutex::new(Posted {
            sent: HashMap::new(),
            ingest_ms: Vec::new(),
            accepted: 0,
            errors: 0,
        }));
        let slots = Arc::new(Semaphore::new(options.max_in_flight));
        let total = usize::try_from(u64::from(rate) * options.step.as_secs()).unwrap_or(0);
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let started = Instant::now();
        let mut not_sent = 0;
        let mut tasks = Vec::with_capacity(total);
        for i in 0..total {
            let due = started + interval.mul_f64(f64::from(u32::try_from(i).unwrap_or(u32::MAX)));
            tokio::time::sleep_until(due.into()).await;
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                not_sent += 1;
                continue;
            };
            let id = wamid();
            let customer = format!("1555{:07}", rng.next_u64() % options.customers.max(1));
            let seconds = Utc::now().timestamp().to_string();
            let values = [customer.as_str(), id.as_str(), seconds.as_str()];
            let (body, key) = if i % 2 == 0 {
                let body = text_template.fill(&values);
                (body, format!("whatsapp.message.received {id}"))
            } else {
                let body = status_template.fill(&values);
                (body, format!("whatsapp.message.delivered {id}"))
            };
            let headers = signature_headers(&source, "", body.as_bytes());
            let (client, url, posted) = (client.clone(), url.clone(), posted.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = permit;
                let sent = Instant::now();
                let mut req = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body);
                for (name, value) in &headers {
                    req = req.header(name.as_str(), value);
                }
                let ok = matches!(req.send().await, Ok(r) if r.status().is_success());
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                let mut p = posted.lock().await;
                p.ingest_ms.push(ms);
                if ok {
                    p.accepted += 1;
                    p.sent.insert(key, sent);
                } else {
                    p.errors += 1;
                }
            }));
        }
        for t in tasks {
            let _joined = t.await;
        }
        let last_post = Instant::now();
        // Wait for the deliveries of this step.
        let expected: Vec<(String, Instant)> = posted
            .lock()
            .await
            .sent
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let delivered_all = loop {
            let arrived = receiver.with_collected(|collected| {
                expected
                    .iter()
                    .all(|(k, _)| collected.arrived.contains_key(k))
            });
            if arrived {
                break true;
            }
            if last_post.elapsed() > options.drain {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let collected = receiver.take_collected();
        let mut status_ms = Vec::new();
        let mut message_ms = Vec::new();
        let mut last_delivery = started;
        for (key, sent) in &expected {
            if let Some(at) = collected.arrived.get(key) {
                last_delivery = last_delivery.max(*at);
                let ms = at.saturating_duration_since(*sent).as_secs_f64() * 1000.0;
                if key.starts_with("whatsapp.message.received") {
                    message_ms.push(ms);
                } else {
                    status_ms.push(ms);
                }
            }
        }
        let delivered = status_ms.len() + message_ms.len();
        let p = posted.lock().await;
        let tail = last_delivery.saturating_duration_since(last_post);
        // Three Lambda-like hops with a 1 s batching window each, plus the buffer window for
        // messages: a pipeline that keeps up finishes within that after the last post.
        let kept_up = delivered_all
            && p.errors == 0
            && not_sent == 0
            && tail <= Duration::from_secs(options.buffer_window_secs + 5);
        let report = StepReport {
            offered: rate,
            not_sent,
            accepted: p.accepted,
            errors: p.errors,
            ingest_ms: p50_p99(p.ingest_ms.clone()),
            e2e_status_ms: p50_p99(status_ms),
            e2e_message_ms: p50_p99(message_ms),
            delivered,
            expected: expected.len(),
            tail,
            kept_up,
            peak_rss_mib: peak_rss_mib(),
            rss_mib: rss_mib(),
            #[allow(clippy::cast_precision_loss)] // MiB for a table
            db_mib: gateway
                .stores()
                .expiry
                .database_bytes()
                .await
                .map(|b| b as f64 / (1024.0 * 1024.0)),
            evicted: gateway.stats().evicted.get(),
        };
        eprintln!("{}", report.row());
        reports.push(report);
        if !kept_up && !options.keep_going {
            break;
        }
    }
    if let wagate_local::backend::Expiry::Sqlite(data) = &gateway.stores().expiry {
        for (name, db) in data.databases() {
            let (calls, commits) = db.calls_and_commits();
            let (by_kind, groups) = db.calls_by_kind();
            eprintln!(
                "sqlite ({name}): {calls} calls in {groups} transactions, {commits} of them with \
                 writes"
            );
            for (kind, n) in by_kind {
                eprintln!("  {kind}: {n}");
            }
            let (restarts, short, limit) = db.wal_restarts();
            if let Some((at, most)) = db.wal_bound_frames() {
                eprintln!(
                    "sqlite ({name}): the WAL (started over at {at} frames, {most} at most) \
                     started over {restarts} times; the database thread copied its rest {short} \
                     times after a short pass of the checkpointer, {limit} at the limit"
                );
            }
        }
    }
    gateway.shutdown(Duration::from_secs(5)).await;
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_write_what_the_sample_functions_write() {
        let (text, status) = templates().unwrap();
        let mut rng = Rng::new(3);
        for n in 0..200 {
            let customer = format!("1555{:07}", rng.next_u64() % 10_000_000);
            let id = wamid();
            let at = Utc::now() + chrono::Duration::seconds(i64::from(n) * 7919);
            let seconds = at.timestamp().to_string();
            let values = [customer.as_str(), id.as_str(), seconds.as_str()];
            assert_eq!(
                text.fill(&values),
                meta_text(&customer, "Load Test", &id, "load", at).to_string()
            );
            assert_eq!(
                status.fill(&values),
                meta_status(&customer, &id, "delivered", at).to_string()
            );
        }
        // The customer twice in a text message (sender and contact), once in a status; the
        // marker time nowhere else.
        assert_eq!((text.holes.len(), status.holes.len()), (4, 3));
    }

    #[test]
    fn percentiles_are_nearest_rank_over_sorted_values() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(p50_p99(values), (51.0, 99.0));
        assert_eq!(p50_p99(vec![7.0]), (7.0, 7.0));
        assert!(p50_p99(Vec::new()).0.is_nan());
    }

    async fn gentle_step(backend: Backend) -> StepReport {
        let reports = run(LoadOptions {
            rates: vec![20],
            step: Duration::from_secs(1),
            drain: Duration::from_secs(120),
            max_in_flight: 64,
            buffer_window_secs: 1,
            concurrency: 2,
            backend,
            ttl_cap: None,
            evict_every: Duration::from_secs(60),
            keep_going: false,
            customers: 1000,
        })
        .await
        .unwrap();
        let step = reports[0].clone();
        assert_eq!((step.accepted, step.errors, step.not_sent), (20, 0, 0));
        assert_eq!((step.delivered, step.expected), (20, 20));
        assert!(step.e2e_status_ms.0 > 0.0 && step.e2e_message_ms.0 > 0.0);
        assert!(peak_rss_mib() > 0.0 && step.rss_mib > 0.0);
        step
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gentle_step_delivers_everything_and_measures_it() {
        assert_eq!(gentle_step(Backend::Memory).await.db_mib, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gentle_step_on_sqlite_measures_the_database_too() {
        let dir = std::env::temp_dir().join(format!("wagate-load-{}", ulid::Ulid::new()));
        let step = gentle_step(Backend::Sqlite(dir.clone())).await;
        assert!(step.db_mib.is_some_and(|m| m > 0.0), "{:?}", step.db_mib);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
