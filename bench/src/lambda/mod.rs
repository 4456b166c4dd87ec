//! `wagate-bench lambda-bench`: the real Lambda binaries (`target/release/{ingest,track,…}`),
//! each started as Lambda starts it (its environment, `AWS_LAMBDA_RUNTIME_API` pointing at a
//! [`RuntimeApi`] emulator) against DynamoDB/SQS on moto. Three phases:
//!
//! 1. **Cold start**: spawn → first `GET …/invocation/next`, with the SDK clients built and
//!    the connections opened (each main does that before its first poll), and the peak RSS then.
//! 2. **Pipeline**: signed webhooks invoked on ingest one after another; track, buffer, fanout
//!    and deliver fed by Lambda-like pollers ([`wagate_local::poller`]) with the template's batch sizes,
//!    deliveries to a real receiver on 127.0.0.1. Per function: invocations, duration, CPU time,
//!    peak RSS and every DynamoDB/SQS call it made ([`MeterProxy`]), per webhook: the inputs of
//!    the cost model (`bench/cost-model.py`).
//! 3. **Big batch**: one SQS event of `big_batch` records (10,000: the most an SQS event source
//!    mapping hands over) to a fresh track process, then one to a fresh deliver process: peak

pub mod meter;
pub mod report;
pub mod runtime_api;
pub mod stack;

use std::collections::{BTreeMap, HashSet};
use std::sync::PoisonError;
use std::time::Duration;

use anyhow::bail;
use chrono::Utc;
use shared::ports::ReceivedMessage;
use wagate_local::sample::{meta_status, meta_text, wamid};

pub use report::{BenchReport, ColdStart, FunctionReport, Phase};
use report::{Mark, stats_ms};
pub use stack::{FUNCTIONS, StackOptions};
use stack::{
    Pipeline, Process, Stack, arn, drained, memory_mib, queue, queue_url, sqs_event, take, wait_for,
};

/// Benchmark settings.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The binaries, moto, and how the processes run.
    pub stack: StackOptions,
    /// Cold starts per function (0: skip the phase).
    pub runs: usize,
    /// Webhooks through the pipeline (0: skip the phase).
    pub webhooks: usize,
    /// Records of the big track and deliver batches (0: skip the phase).
    pub big_batch: usize,
}

/// Runs the phases `options` asks for; the report so far is saved into `log_dir` after each.
pub async fn run(options: &BenchOptions) -> anyhow::Result<BenchReport> {
    for name in FUNCTIONS {
        let binary = options.stack.bin_dir.join(name);
        if !binary.is_file() {
            bail!(
                "{} is missing: build the functions first (cargo build --release --bin {name} …)",
                binary.display()
            );
        }
    }
    let stack = Stack::create(options.stack.clone()).await?;
    let mut report = BenchReport {
        memory_mb: options.stack.memory_mb,
        ..BenchReport::default()
    };
    if options.runs > 0 {
        for name in FUNCTIONS {
            let mut samples = Vec::with_capacity(options.runs);
            let mut waiting = Vec::with_capacity(options.runs);
            let mut peak = 0.0_f64;
            for _ in 0..options.runs {
                let process = Process::spawn(&stack, name).await?;
                let ready = process.ready().await;
                let rss = memory_mib(process.pid).0;
                waiting.push(process.usage().values().map(|u| u.upstream_ms).sum());
                process.stop().await;
                samples.push(ready?.as_secs_f64() * 1000.0);
                peak = peak.max(rss);
            }
            eprintln!("cold start {name}: {:?}", stats_ms(&samples));
            report.save(&options.stack.log_dir)?;
            report.cold_starts.push(ColdStart {
                name: name.to_owned(),
                samples_ms: samples,
                peak_rss_mib: peak,
                waiting_ms: waiting,
            });
        }
    }
    if options.webhooks > 0 || options.big_batch > 0 {
        let pipeline = Pipeline::start(&stack).await?;
        if options.webhooks > 0 {
            for statuses in [false, true] {
                report
                    .pipeline
                    .push(phase(&pipeline, &stack, options.webhooks, statuses).await?);
                report.save(&options.stack.log_dir)?;
            }
        }
        if options.big_batch > 0 {
            report.big_batch = Some(big_batch(&pipeline, &stack, options.big_batch).await?);
            report.save(&options.stack.log_dir)?;
        }
        pipeline.stop().await;
    }
    Ok(report)
}

fn reset(pipeline: &Pipeline) -> Vec<Mark> {
    let mut marks = vec![Mark::of(&pipeline.ingest)];
    for (s, _) in &pipeline.stages {
        s.durations_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        marks.push(Mark::of(&s.process));
    }
    marks
}

fn reports(pipeline: &Pipeline, ingest_ms: &[f64], marks: &[Mark]) -> Vec<FunctionReport> {
    let mut reports = vec![FunctionReport::of(
        &pipeline.ingest,
        ingest_ms,
        marks.first().copied().unwrap_or_default(),
    )];
    for (i, (s, _)) in pipeline.stages.iter().enumerate() {
        let durations = s
            .durations_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        reports.push(FunctionReport::of(
            &s.process,
            &durations,
            marks.get(i + 1).copied().unwrap_or_default(),
        ));
    }
    reports
}

/// Meta text messages, each of `webhooks / 5` customers sending 5 (buffered per
/// conversation), or as many delivery statuses; until everything is delivered and every
/// queue is empty.
async fn phase(
    pipeline: &Pipeline,
    stack: &Stack,
    webhooks: usize,
    statuses: bool,
) -> anyhow::Result<Phase> {
    let marks = reset(pipeline);
    let before = stack.receiver.collected();
    let stop = pipeline.poll(10, &[]);
    let mut expected = HashSet::new();
    let mut ingest_ms = Vec::with_capacity(webhooks);
    let customers = (webhooks / 5).max(1);
    for i in 0..webhooks {
        let id = wamid();
        let customer = format!("1555{:07}", i % customers);
        let body = if statuses {
            expected.insert(format!("whatsapp.message.delivered {id}"));
            meta_status(&customer, &id, "delivered", Utc::now())
        } else {
            expected.insert(format!("whatsapp.message.received {id}"));
            meta_text(&customer, "Bench", &id, "hello from the bench", Utc::now())
        };
        ingest_ms.push(pipeline.post(stack, &body, i).await?);
    }
    let delivered = wait_for(&stack.receiver, &expected, Duration::from_secs(600)).await;
    drained(stack, Duration::from_secs(120)).await?;
    stop.stop().await;
    let after = stack.receiver.collected();
    Ok(Phase {
        event_bytes: BTreeMap::new(),
        name: if statuses {
            "delivery statuses"
        } else {
            "inbound text messages"
        }
        .into(),
        items: webhooks,
        deliveries: after.deliveries - before.deliveries,
        delivery_bytes: after.bytes - before.bytes,
        delivered,
        functions: reports(pipeline, &ingest_ms, &marks),
    })
}

async fn big_batch(pipeline: &Pipeline, stack: &Stack, records: usize) -> anyhow::Result<Phase> {
    // Text messages from as many customers: each becomes its own buffered delivery. They
    // are taken off the queue as ingest puts them there: moto's SQS slows down with the
    // length of a queue (its receive and delete scan every message).
    let (inbound, _) = queue(&stack.stores, "inbound")?;
    let (inbound_url, _) = queue_url(&stack.stores, "inbound")?;
    let mut expected = HashSet::new();
    let mut inbound_records = Vec::with_capacity(records);
    let mut posted = 0;
    while posted < records {
        let chunk = (records - posted).min(500);
        for i in posted..posted + chunk {
            let id = wamid();
            expected.insert(format!("whatsapp.message.received {id}"));
            let customer = format!("1666{i:07}");
            let body = meta_text(&customer, "Bench", &id, "hello from the bench", Utc::now());
            pipeline.post(stack, &body, i).await?;
        }
        posted += chunk;
        inbound_records.extend(take(&*inbound, chunk, Duration::from_secs(10)).await?);
    }
    let before = stack.receiver.collected();
    // Buffer and fan-out (not measured here) turn what track emits into delivery tasks as
    // it goes, and the tasks are taken off the delivery queue as they come.
    let stop = pipeline.poll(100, &["track", "deliver"]);
    let (delivery, _) = queue(&stack.stores, "delivery")?;
    let collector = {
        let delivery = delivery.clone();
        tokio::spawn(async move { take(&*delivery, records, Duration::from_secs(600)).await })
    };
    let (track_report, track_bytes) =
        one_batch(stack, "track", &inbound_url, &inbound_records).await?;
    let tasks = collector.await??;
    stop.stop().await;
    let (delivery_url, _) = queue_url(&stack.stores, "delivery")?;
    let (deliver_report, deliver_bytes) =
        one_batch(stack, "deliver", &delivery_url, &tasks).await?;
    let delivered = wait_for(&stack.receiver, &expected, Duration::from_secs(60)).await;
    eprintln!("big batch: {delivered} of {records} messages delivered");
    let after = stack.receiver.collected();
    Ok(Phase {
        name: "one event".into(),
        event_bytes: BTreeMap::from([
            ("track".to_owned(), track_bytes),
            ("deliver".to_owned(), deliver_bytes),
        ]),
        deliveries: after.deliveries - before.deliveries,
        delivery_bytes: after.bytes - before.bytes,
        items: records,
        delivered,
        functions: vec![track_report, deliver_report],
    })
}

/// Hands `batch` to a fresh `name` process as one event (the records were taken off the queue
/// already, as the event source mapping would delete them after a success).
async fn one_batch(
    stack: &Stack,
    name: &'static str,
    url: &str,
    batch: &[ReceivedMessage],
) -> anyhow::Result<(FunctionReport, usize)> {
    let process = Process::spawn(stack, name).await?;
    process.ready().await?;
    let mark = Mark::of(&process);
    let event = sqs_event(&arn(url), batch);
    let event_bytes = serde_json::to_vec(&event)?.len();
    let (answer, took) = process.invoke(&event).await?;
    let failed = stack::failed_ids(&answer);
    let report = FunctionReport::of(&process, &[took.as_secs_f64() * 1000.0], mark);
    eprintln!(
        "{name}: {} records ({event_bytes} bytes) in {took:?}, {} failed, peak RSS {:.1} MiB",
        batch.len(),
        failed.len(),
        report.peak_rss_mib
    );
    process.stop().await;
    Ok((report, event_bytes))
}
