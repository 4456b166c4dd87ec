//! `redrive`: moves dead-lettered deliveries back onto the delivery queue.
//!
//! ```text
//! DELIVERY_DLQ_URL=… DELIVERY_QUEUE_URL=… TABLE_NAME=… redrive [--endpoint ep_…|--event evt_…|--all] [--max N]
//! ```
//! Uses the standard AWS environment (region, credentials, `AWS_ENDPOINT_URL`).

use anyhow::{Context, bail};
use aws_adapters::env::Env;
use aws_adapters::{Clients, DynamoBlobStore, SqsQueue};
use shared::delivery::redrive::{Selection, redrive};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut selection = Selection::All;
    let mut max = usize::MAX;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{arg} needs {what}"))
        };
        match arg.as_str() {
            "--all" => selection = Selection::All,
            "--endpoint" => selection = Selection::Endpoint(value("an endpoint id")?),
            "--event" => {
                let id = value("an event id")?.parse().context("not an event id")?;
                selection = Selection::Event(id);
            }
            "--max" => max = value("a number")?.parse().context("--max needs a number")?,
            "-h" | "--help" => {
                println!(
                    "redrive [--endpoint ep_…|--event evt_…|--all] [--max N]  (env: DELIVERY_DLQ_URL, DELIVERY_QUEUE_URL, TABLE_NAME)"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other} (try --help)"),
        }
    }
    let env = Env(|k: &str| std::env::var(k).ok());
    let clients = Clients::new(&aws_adapters::sdk_config().await);
    let dlq = SqsQueue::new(clients.sqs.clone(), env.required("DELIVERY_DLQ_URL")?);
    let queue = SqsQueue::new(clients.sqs.clone(), env.required("DELIVERY_QUEUE_URL")?);
    let blobs = DynamoBlobStore::new(clients.dynamodb.clone(), env.required("TABLE_NAME")?);
    let report = redrive(&dlq, &queue, &blobs, &selection, max, chrono::Utc::now()).await?;
    let remaining = report
        .remaining
        .map_or_else(|| "unknown".to_owned(), |n| format!("about {n}"));
    println!(
        "moved {}, kept {}, unreadable {}, still in the dead-letter queue: {remaining}",
        report.moved, report.kept, report.unreadable
    );
    Ok(())
}
