//! The seven Lambda binaries run as Lambda runs them: each process gets its template environment
//! and `AWS_LAMBDA_RUNTIME_API` pointing at a runtime API emulator, with DynamoDB and SQS on
//! moto behind the metering proxy (`wagate_bench::lambda::stack`, which the benchmark of
//! `bench/lambda/run.sh` drives too). This is what exercises the `main.rs` of each
//! function: configuration from the environment, SDK clients, the runtime loop, event parsing
//! and the partial batch responses.
//!
//! The binaries are the workspace's debug builds next to this test executable;
//! `scripts/test.sh` builds them (`cargo build --workspace --all-targets`) before the tests.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use shared::ports::ReceivedMessage;
use tests::policy::{Request, denied, statements};
use tests::{moto, repo_root};
use wagate_bench::lambda::stack::{
    ADMIN_KEY, FUNCTIONS, Pipeline, Process, Stack, StackOptions, arn, drained, failed_ids,
    memory_mib, queue, queue_url, sqs_event, take, wait_for, webhook_event,
};
use wagate_local::sample::{meta_status, meta_text, wamid};

/// The stack's endpoint.
const BENCH_ENDPOINT: &str = "ep_bench";

/// Every `events/admin-*.json` request, made to the test's stack: its key, its endpoint in place
/// of the events' (the delete last, so the others find it).
fn admin_requests() -> Vec<Value> {
    let dir = repo_root().join("events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("admin-") && n.ends_with(".json"))
        .collect();
    names.sort_by_key(|n| (n == "admin-delete-endpoint.json", n.clone()));
    names
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(name))
                .unwrap()
                .replace("ep_01JBCQ3ZX0V9K8N7M6P5Q4R301", BENCH_ENDPOINT)
                .replace("ep_01JBCQ3ZX0V9K8N7M6P5Q4R304", BENCH_ENDPOINT);
            let mut event: Value = serde_json::from_str(&text).unwrap();
            if event["headers"].get("x-api-key").is_some() {
                event["headers"]["x-api-key"] = ADMIN_KEY.into();
            }
            event
        })
        .collect()
}

/// A call's resource by the template's logical name: the run's table is `Table`, its queues
/// `{run}-inbound` → `InboundQueue`, `{run}-delivery-dlq` → `DeliveryDLQ`.
fn logical(run: &str, resource: &str) -> String {
    if let Some(rest) = resource.strip_prefix(run) {
        if rest.is_empty() || rest.starts_with("/index/") {
            return format!("Table{rest}");
        }
        if let Some(queue) = rest.strip_prefix('-') {
            let (name, dlq) = match queue.strip_suffix("-dlq") {
                Some(name) => (name, true),
                None => (queue, false),
            };
            let mut title: String = name[..1].to_uppercase();
            title.push_str(&name[1..]);
            return format!("{title}{}", if dlq { "DLQ" } else { "Queue" });
        }
    }
    format!("outside the stack: {resource}")
}

fn bin_dir() -> PathBuf {
    // target/debug/deps/integration-… → target/debug
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    for f in FUNCTIONS {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run ./scripts/test.sh, or cargo build --workspace --all-targets first",
            dir.join(f).display()
        );
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lambda_binary_starts_and_the_pipeline_runs_through_them_over_the_runtime_api() {
    let logs = std::env::temp_dir().join(moto::unique("lambda-binaries"));
    // Seven processes and a proxy: a moto of its own, so the other suites neither slow it nor
    // wait behind it.
    let moto = moto::Server::start();
    let stack = Stack::create(StackOptions {
        bin_dir: bin_dir(),
        endpoint_url: moto.url().to_owned(),
        dynamodb_url: None,
        memory_mb: 256,
        log_dir: logs.clone(),
        json_logs: true,
    })
    .await
    .unwrap();

    // Every function starts from its environment and asks for work.
    for name in FUNCTIONS {
        let process = Process::spawn(&stack, name).await.unwrap();
        process
            .ready()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(memory_mib(process.pid).0 > 1.0, "{name}");
        process.stop().await;
    }

    // Messages, then statuses, posted to ingest; track, buffer, fan-out and deliver fed from
    // their queues: everything delivered, each stage invoked, its calls metered.
    let pipeline = Pipeline::start(&stack).await.unwrap();
    for statuses in [false, true] {
        let stop = pipeline.poll(10, &[]);
        let mut expected = HashSet::new();
        for i in 0..10 {
            let id = wamid();
            let customer = format!("1555{:07}", i % 2);
            let body = if statuses {
                expected.insert(format!("whatsapp.message.delivered {id}"));
                meta_status(&customer, &id, "delivered", Utc::now())
            } else {
                expected.insert(format!("whatsapp.message.received {id}"));
                meta_text(&customer, "Bench", &id, "hello", Utc::now())
            };
            pipeline.post(&stack, &body, i).await.unwrap();
        }
        let delivered = wait_for(&stack.receiver, &expected, Duration::from_secs(300)).await;
        assert_eq!(delivered, 10, "statuses: {statuses}");
        drained(&stack, Duration::from_secs(120)).await.unwrap();
        stop.stop().await;
        let ingest = pipeline.ingest.usage();
        assert_eq!(ingest["SQS SendMessageBatch"].calls, 10);
        assert_eq!(ingest["DynamoDB PutItem"].calls, 10);
        pipeline.ingest.reset_usage();
    }
    for (stage, _) in &pipeline.stages {
        let invocations = stage.durations_ms.lock().unwrap().len();
        assert!(invocations > 0, "{} was never invoked", stage.process.name);
        let usage = stage.process.usage();
        if ["track", "deliver"].contains(&stage.process.name) {
            assert!(
                usage["DynamoDB PutItem"].calls > 0,
                "{}",
                stage.process.name
            );
        }
        if stage.process.name == "deliver" {
            // Delivery records are indexed per endpoint (the GSI).
            assert!(usage["DynamoDB PutItem (GSI)"].calls > 0);
        }
        assert!(stage.process.log_bytes() > 0, "{}", stage.process.name);
    }
    pipeline.stop().await;

    // One event of 12 records to track, then the delivery tasks as one event to deliver: all
    // delivered.
    let (inbound, _) = queue(&stack.stores, "inbound").unwrap();
    let (inbound_url, _) = queue_url(&stack.stores, "inbound").unwrap();
    let ingest = Process::spawn(&stack, "ingest").await.unwrap();
    ingest.ready().await.unwrap();
    let mut expected = HashSet::new();
    for i in 0..12 {
        let id = wamid();
        expected.insert(format!("whatsapp.message.received {id}"));
        let body = meta_text(&format!("1666{i:07}"), "Bench", &id, "hello", Utc::now());
        let event = webhook_event(&stack.meta, &body.to_string(), 100 + i);
        let (answer, _) = ingest.invoke(&event).await.unwrap();
        assert_eq!(answer["statusCode"], 200, "{answer}");
    }
    ingest.stop().await;
    let records = take(&*inbound, 12, Duration::from_secs(30)).await.unwrap();
    assert!(
        serde_json::to_vec(&sqs_event(&arn(&inbound_url), &records))
            .unwrap()
            .len()
            > 12 * 100
    );
    // Buffer and fan-out turn what track emits into delivery tasks, taken off the delivery
    // queue as they come.
    let pipeline = Pipeline::start(&stack).await.unwrap();
    let stop = pipeline.poll(100, &["track", "deliver"]);
    let (delivery, _) = queue(&stack.stores, "delivery").unwrap();
    let (delivery_url, _) = queue_url(&stack.stores, "delivery").unwrap();
    let collector =
        tokio::spawn(async move { take(&*delivery, 12, Duration::from_secs(300)).await });
    let process = Process::spawn(&stack, "track").await.unwrap();
    process.ready().await.unwrap();
    invoke_until_done(&process, &arn(&inbound_url), &records).await;
    process.stop().await;
    let tasks = collector.await.unwrap().unwrap();
    stop.stop().await;
    pipeline.stop().await;
    let deliver = Process::spawn(&stack, "deliver").await.unwrap();
    deliver.ready().await.unwrap();
    invoke_until_done(&deliver, &arn(&delivery_url), &tasks).await;
    deliver.stop().await;
    assert_eq!(
        wait_for(&stack.receiver, &expected, Duration::from_secs(60)).await,
        12
    );

    // The logs CloudWatch would get carry no colour codes.
    let track_log = std::fs::read_to_string(logs.join("track.log")).unwrap();
    assert!(track_log.contains("batch done"), "{track_log}");
    assert!(!track_log.contains('\u{1b}'));
    // As the template deploys them (`LogFormat: JSON`): every line is one JSON object, and the
    // invocation's request id comes once per line.
    for line in track_log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v.get("spans").is_none(), "{line}");
    }
    assert!(track_log.contains("\"requestId\""), "{track_log}");

    // The admin API's requests (every `events/admin-*.json`) and a sweep, each to a fresh
    // process of its function.
    let mut answered = Vec::new();
    for (name, events) in [
        ("admin", admin_requests()),
        (
            "sweep",
            vec![
                serde_json::from_slice(
                    &std::fs::read(repo_root().join("events/sweep-schedule.json")).unwrap(),
                )
                .unwrap(),
            ],
        ),
    ] {
        let process = Process::spawn(&stack, name).await.unwrap();
        process.ready().await.unwrap();
        for event in &events {
            answered.push(process.invoke(event).await.unwrap().0);
        }
        process.stop().await;
    }
    let answered: Vec<u64> = answered
        .iter()
        .map(|a| a["statusCode"].as_u64().unwrap_or(0))
        .collect();
    assert!(answered.iter().all(|s| *s < 500), "{answered:?}");
    assert!(
        answered.iter().filter(|s| (200..300).contains(*s)).count() >= 10,
        "{answered:?}"
    );

    // Least privilege: every DynamoDB and SQS call each function made, through the pipeline, the
    // admin API's requests and a sweep, is one its policy in template.yaml allows, partition
    // keys included (`dynamodb:LeadingKeys`).
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let calls = stack.calls();
    for function in FUNCTIONS {
        let calls = &calls[function];
        assert!(!calls.is_empty(), "{function} made no calls");
        let requests: Vec<Request> = calls
            .iter()
            .map(|c| Request {
                action: c.action.clone(),
                resource: logical(&stack.run, &c.resource),
                leading_keys: c.leading_keys.clone(),
            })
            .collect();
        let mut logical_name = function[..1].to_uppercase();
        logical_name.push_str(&function[1..]);
        logical_name.push_str("Function");
        let policy = statements(&template, &logical_name);
        let denied = denied(&policy, &requests);
        assert!(
            denied.is_empty(),
            "{logical_name} would be denied: {denied:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(logs);
}

/// Invokes `process` with `records` as one SQS event, then hands the records it reports failed
/// to it again, as SQS would, for a few rounds; every record must be through by then. moto on a
/// busy machine now and then answers a DynamoDB call with a bare 500 (seen once in CI on a
/// transaction), which the function rightly reports as a retryable failure.
async fn invoke_until_done(process: &Process, queue_arn: &str, records: &[ReceivedMessage]) {
    let (mut answer, _) = process
        .invoke(&sqs_event(queue_arn, records))
        .await
        .unwrap();
    for _ in 0..3 {
        let failed = failed_ids(&answer);
        if failed.is_empty() {
            break;
        }
        let again: Vec<ReceivedMessage> = records
            .iter()
            .filter(|r| failed.contains(r.message_id.as_str()))
            .cloned()
            .collect();
        assert_eq!(again.len(), failed.len(), "{answer}");
        (answer, _) = process.invoke(&sqs_event(queue_arn, &again)).await.unwrap();
    }
    assert_eq!(
        answer["batchItemFailures"],
        serde_json::json!([]),
        "{answer}"
    );
}
