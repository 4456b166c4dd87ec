//! The seven Lambda binaries run as Lambda runs them: each process gets its template environment
//! and `AWS_LAMBDA_RUNTIME_API` pointing at `wagate-local`'s runtime API emulator, with DynamoDB
//! and SQS on moto behind the metering proxy (`wagate_local::lambda_bench`, the benchmark of
//! `bench/lambda/run.sh`, here with a few webhooks). This is what exercises the `main.rs` of each
//! function: configuration from the environment, SDK clients, the runtime loop, event parsing
//! and the partial batch responses.
//!
//! The binaries are the workspace's debug builds next to this test executable;
//! `scripts/test.sh` builds them (`cargo build --workspace --all-targets`) before the tests.

use std::path::PathBuf;

use serde_json::Value;
use tests::policy::{Request, denied, statements};
use tests::{moto, repo_root};
use wagate_local::lambda_bench::{BenchOptions, FUNCTIONS, run};

/// The bench's admin key (its stack's `ADMIN_API_KEYS`) and endpoint.
const ADMIN_KEY: &str = "lambda-bench-admin-key";
const BENCH_ENDPOINT: &str = "ep_bench";

/// Every `events/admin-*.json` request, made to the bench's stack: its key, its endpoint in place
/// of the events' (the delete last, so the others find it).
fn admin_requests() -> Vec<(&'static str, Value)> {
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
            ("admin", event)
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
    let report = run(&BenchOptions {
        bin_dir: bin_dir(),
        endpoint_url: moto.url().to_owned(),
        dynamodb_url: None,
        runs: 1,
        webhooks: 10,
        big_batch: 12,
        memory_mb: 256,
        log_dir: logs.clone(),
        json_logs: true,
        invocations: admin_requests()
            .into_iter()
            .chain([(
                "sweep",
                serde_json::from_slice(
                    &std::fs::read(repo_root().join("events/sweep-schedule.json")).unwrap(),
                )
                .unwrap(),
            )])
            .collect(),
    })
    .await
    .unwrap();

    // Every function started from its environment and asked for work.
    let started: Vec<&str> = report.cold_starts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(started, FUNCTIONS);
    for c in &report.cold_starts {
        assert!(c.samples_ms[0] > 0.0 && c.peak_rss_mib > 1.0, "{c:?}");
    }

    // Messages, then statuses: everything delivered, each stage invoked, calls metered.
    assert_eq!(report.pipeline.len(), 2);
    for phase in &report.pipeline {
        assert_eq!((phase.items, phase.delivered), (10, 10), "{}", phase.name);
        assert!(phase.deliveries > 0 && phase.delivery_bytes > 0);
        let f = |name: &str| phase.functions.iter().find(|f| f.name == name).unwrap();
        assert_eq!(f("ingest").invocations, 10);
        assert_eq!(f("ingest").usage["SQS SendMessageBatch"].calls, 10);
        assert_eq!(f("ingest").usage["DynamoDB PutItem"].calls, 10);
        for stage in ["track", "deliver"] {
            assert!(f(stage).invocations > 0, "{stage} in {}", phase.name);
            assert!(f(stage).usage["DynamoDB PutItem"].calls > 0);
        }
        // Delivery records are indexed per endpoint (the GSI).
        assert!(f("deliver").usage["DynamoDB PutItem (GSI)"].calls > 0);
        for function in phase.functions.iter().filter(|f| f.invocations > 0) {
            assert!(function.log_bytes > 0, "{}", function.name);
            assert!(function.cpu_s >= 0.0 && function.peak_rss_mib > 1.0);
        }
    }
    let messages = &report.pipeline[0];
    let buffer = messages
        .functions
        .iter()
        .find(|f| f.name == "buffer")
        .unwrap();
    assert!(
        buffer.invocations > 0,
        "inbound messages go through the buffer"
    );

    // One event of 12 records to track and then to deliver: all delivered.
    let big = report.big_batch.as_ref().unwrap();
    assert_eq!((big.items, big.delivered), (12, 12));
    let names: Vec<&str> = big.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["track", "deliver"]);
    assert!(big.functions.iter().all(|f| f.invocations == 1));
    assert!(big.event_bytes["track"] > 12 * 100);

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

    // Least privilege: every DynamoDB and SQS call each function made, through the pipeline, the
    // admin API's requests and a sweep, is one its policy in template.yaml allows, partition
    // keys included (`dynamodb:LeadingKeys`).
    let answered: Vec<u64> = report
        .answers
        .iter()
        .map(|a| a["statusCode"].as_u64().unwrap_or(0))
        .collect();
    assert!(answered.iter().all(|s| *s < 500), "{answered:?}");
    assert!(
        answered.iter().filter(|s| (200..300).contains(*s)).count() >= 10,
        "{answered:?}"
    );
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    for function in FUNCTIONS {
        let calls = &report.calls[function];
        assert!(!calls.is_empty(), "{function} made no calls");
        let requests: Vec<Request> = calls
            .iter()
            .map(|c| Request {
                action: c.action.clone(),
                resource: logical(&report.run, &c.resource),
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
