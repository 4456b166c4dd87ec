//! The SQS event glue every queue-driven function shares: records in, partial batch failures out.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use shared::pipeline::codec::Record;
use shared::ports::ReceivedMessage;

/// The records of an SQS event as the pipeline stages read them.
pub fn records(event: &SqsEvent) -> Vec<Record<'_>> {
    event
        .records
        .iter()
        .map(|r| Record {
            message_id: r.message_id.as_deref().unwrap_or_default(),
            body: r.body.as_deref().unwrap_or_default(),
        })
        .collect()
}

/// The records with their receipt handles and receive counts (for stages that change visibility).
pub fn received(event: &SqsEvent) -> Vec<ReceivedMessage> {
    event
        .records
        .iter()
        .map(|m| ReceivedMessage {
            receipt: m.receipt_handle.clone().unwrap_or_default(),
            message_id: m.message_id.clone().unwrap_or_default(),
            body: m.body.clone().unwrap_or_default(),
            receive_count: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
        })
        .collect()
}

/// The partial batch response naming the failed message ids (Lambda retries only those).
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Runs one invocation, then prints the metrics it recorded ([`emit_metrics`]).
pub async fn with_metrics<T>(invocation: impl Future<Output = T>) -> T {
    let out = invocation.await;
    emit_metrics();
    out
}

/// Prints the metrics this invocation recorded as one CloudWatch Embedded Metric Format line on
/// stdout (CloudWatch Logs extracts them; dimension `Function` is the Lambda function's name).
/// Prints nothing when the binary did not call `shared::metrics::enable` or nothing was recorded.
pub fn emit_metrics() {
    use std::io::Write;
    let function =
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "wagate".to_owned());
    if let Some(line) = shared::metrics::flush(&function, chrono::Utc::now()) {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            tracing::warn!("could not write the metrics line");
        }
    }
}
