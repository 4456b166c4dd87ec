//! The SQS event glue every queue-driven function shares: records in, partial batch failures out.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use shared::ports::ReceivedMessage;
use shared::ports::codec::Record;

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

/// Sets up logging as `lambda_runtime`'s default subscriber does (level from
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`, INFO by default; JSON lines when `AWS_LAMBDA_LOG_FORMAT`
/// is `json`; no timestamps, CloudWatch adds them), but never with ANSI colour codes. The
/// workspace enables tracing-subscriber's `ansi` feature for `wagate` (local mode), and with it the
/// default subscriber would write escape codes into CloudWatch Logs (about a fifth of the bytes
/// `wagate-bench lambda-bench` measured, billed as log ingestion).
pub fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Only fails when a subscriber is already set, which is then kept.
    let _kept = tracing::subscriber::set_global_default(logging_subscriber(
        std::io::stdout,
        level.as_deref(),
        json,
    ));
}

/// The subscriber of [`init_logging`], writing to `writer`.
pub fn logging_subscriber<W>(
    writer: W,
    level: Option<&str>,
    json: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};
    let level = level
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        )
        .with_writer(writer);
    // Each line says which invocation it belongs to (the runtime's span, with the request id)
    // once: not the list of spans as well, and not the X-Ray trace id (Lambda logs it with
    // every invocation's REPORT line already).
    if json {
        Box::new(
            builder
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(LambdaJson)
                .finish(),
        )
    } else {
        use tracing_subscriber::field::MakeExt as _;
        use tracing_subscriber::fmt::format::{FmtSpan, debug_fn};
        let fields = debug_fn(|w, field, value| match field.name() {
            "xrayTraceId" => Ok(()),
            "message" => write!(w, "{value:?}"),
            name => write!(w, "{name}={value:?}"),
        })
        .delimited(" ");
        Box::new(
            builder
                .fmt_fields(fields)
                .with_span_events(FmtSpan::NONE)
                .finish(),
        )
    }
}

/// One JSON object per line: `level`, `message`, the event's fields, and the `requestId` of the
/// invocation it belongs to (from the runtime's span), as Lambda's own JSON log lines name it.
struct LambdaJson;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LambdaJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = serde_json::Map::new();
        line.insert("level".into(), event.metadata().level().as_str().into());
        event.record(&mut JsonVisitor(&mut line));
        // The innermost span that carries a request id (the runtime's invocation span).
        let request_id = ctx.event_scope().and_then(|scope| {
            scope.into_iter().find_map(|span| {
                let extensions = span.extensions();
                let fields = extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()?;
                let parsed: serde_json::Value = serde_json::from_str(fields.as_str()).ok()?;
                parsed
                    .get("requestId")
                    .or_else(|| parsed.get("request_id"))
                    .cloned()
            })
        });
        if let Some(id) = request_id {
            line.insert("requestId".into(), id);
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// Collects an event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(level: Option<&str>, json: bool) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = logging_subscriber(move || writer.clone(), level, json);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("invoke", request_id = "r-1").in_scope(|| {
                tracing::info!(events = 2, "accepted");
                tracing::debug!("details");
            });
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lambda_logs_carry_no_colour_codes_and_follow_the_lambda_settings() {
        let text = logged(None, false);
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("accepted events=2"), "{text}");
        assert!(!text.contains("details"), "INFO by default: {text}");
        assert!(logged(Some("debug"), false).contains("details"));
        let json = logged(None, true);
        let line: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(line["message"], "accepted");
        assert_eq!(line["events"], 2);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["requestId"], "r-1", "{json}");
        assert!(
            line.get("spans").is_none() && line.get("span").is_none(),
            "{json}"
        );
    }

    #[test]
    fn the_trace_id_of_the_runtime_span_is_left_to_lambda() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = logging_subscriber(move || writer.clone(), None, false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("invoke", requestId = "r-1", xrayTraceId = "Root=1-abc")
                .in_scope(|| tracing::info!(events = 2, "accepted"));
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("requestId=\"r-1\""), "{text}");
        assert!(text.contains("accepted events=2"), "{text}");
        assert!(!text.contains("Root=1-abc"), "{text}");
    }
}
