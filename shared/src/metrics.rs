//! Operational metrics as CloudWatch Embedded Metric Format (EMF) log lines.
//!
//! The stages record what happened ([`record`]) wherever it happens; a Lambda prints what one
//! invocation recorded as a single JSON line at its end ([`flush`]), and CloudWatch turns that
//! line into metrics under the [`NAMESPACE`] namespace, dimension `Function`. Recording is off
//! until [`enable`] is called (the Lambda binaries do; local mode and tests keep their own
//! counters), so nothing accumulates where nobody flushes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

pub mod timeline;

/// The CloudWatch namespace of every wagate metric.
pub const NAMESPACE: &str = "wagate";

/// Values kept per distribution metric and line (EMF accepts at most 100 per metric).
const MAX_VALUES: usize = 100;

/// What wagate measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Verified webhooks accepted (ingest answered 200).
    WebhooksReceived,
    /// Webhooks refused: bad signature, malformed, oversized, unknown source (4xx).
    WebhooksRejected,
    /// Webhooks answered 503 because the queue or table failed (the provider retries).
    WebhooksUnavailable,
    /// Normalized events put on the inbound queue.
    EventsEnqueued,
    /// Events dropped as already processed (provider duplicates, queue redeliveries).
    Duplicates,
    /// Conversations opened.
    ConversationsCreated,
    /// Conversations ended (inactivity, API).
    ConversationsEnded,
    /// Messages per batch the buffer delivered (one value per batch).
    BatchSize,
    /// Delivery tasks fan-out queued for endpoints.
    DeliveriesQueued,
    /// Deliveries answered 2xx.
    Delivered,
    /// Attempts that failed (non-2xx, timeout, connection error).
    FailedAttempts,
    /// Deliveries moved to the dead-letter queue after their last attempt or a final failure.
    DeadLettered,
    /// Milliseconds from request to response of each attempt (one value per attempt).
    DeliveryLatency,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Self; 13] = [
        Self::WebhooksReceived,
        Self::WebhooksRejected,
        Self::WebhooksUnavailable,
        Self::EventsEnqueued,
        Self::Duplicates,
        Self::ConversationsCreated,
        Self::ConversationsEnded,
        Self::BatchSize,
        Self::DeliveriesQueued,
        Self::Delivered,
        Self::FailedAttempts,
        Self::DeadLettered,
        Self::DeliveryLatency,
    ];

    /// The position in [`Metric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric's CloudWatch name.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebhooksReceived => "WebhooksReceived",
            Self::WebhooksRejected => "WebhooksRejected",
            Self::WebhooksUnavailable => "WebhooksUnavailable",
            Self::EventsEnqueued => "EventsEnqueued",
            Self::Duplicates => "Duplicates",
            Self::ConversationsCreated => "ConversationsCreated",
            Self::ConversationsEnded => "ConversationsEnded",
            Self::BatchSize => "BatchSize",
            Self::DeliveriesQueued => "DeliveriesQueued",
            Self::Delivered => "Delivered",
            Self::FailedAttempts => "FailedAttempts",
            Self::DeadLettered => "DeadLettered",
            Self::DeliveryLatency => "DeliveryLatency",
        }
    }

    /// The CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Self::DeliveryLatency => "Milliseconds",
            _ => "Count",
        }
    }

    /// Whether each value is kept (a distribution) rather than summed (a counter).
    fn is_distribution(self) -> bool {
        matches!(self, Self::BatchSize | Self::DeliveryLatency)
    }
}

#[derive(Debug, Default)]
struct Series {
    sum: f64,
    values: Vec<f64>,
}

/// Metrics recorded since the last flush.
#[derive(Debug)]
pub struct Recorder {
    enabled: AtomicBool,
    series: Mutex<BTreeMap<Metric, Series>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder, off until [`Recorder::enable`].
    pub const fn new() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts recording.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Adds `value` to `metric` (a count for counters, one sample for distributions).
    pub fn record(&self, metric: Metric, value: f64) {
        if !self.enabled.load(Ordering::Relaxed) || !value.is_finite() {
            return;
        }
        let Ok(mut series) = self.series.lock() else {
            return;
        };
        let s = series.entry(metric).or_default();
        s.sum += value;
        if metric.is_distribution() && s.values.len() < MAX_VALUES {
            s.values.push(value);
        }
    }

    /// The EMF line for what was recorded since the last flush (`None` when nothing was), with
    /// dimension `Function` = `function`; clears the recorder.
    pub fn flush(&self, function: &str, now: DateTime<Utc>) -> Option<String> {
        let taken = std::mem::take(&mut *self.series.lock().ok()?);
        if taken.is_empty() {
            return None;
        }
        let mut doc = Map::new();
        let mut definitions = Vec::new();
        for (metric, series) in taken {
            definitions.push(json!({"Name": metric.name(), "Unit": metric.unit()}));
            let value = if metric.is_distribution() {
                json!(series.values)
            } else {
                json!(series.sum)
            };
            doc.insert(metric.name().to_owned(), value);
        }
        doc.insert("Function".to_owned(), json!(function));
        doc.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": now.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Function"]],
                    "Metrics": definitions,
                }],
            }),
        );
        Some(Value::Object(doc).to_string())
    }
}

static GLOBAL: Recorder = Recorder::new();
static TIMELINE: timeline::Timeline = timeline::Timeline::new();
static TIMELINE_ON: AtomicBool = AtomicBool::new(false);

/// Starts recording in this process (the Lambda binaries call it once at cold start).
pub fn enable() {
    GLOBAL.enable();
}

/// Starts keeping this process's metrics minute by minute for a day ([`timeline()`]): local
/// mode does, for its overview.
pub fn keep_timeline() {
    TIMELINE_ON.store(true, Ordering::Relaxed);
}

/// This process's timeline (empty unless [`keep_timeline`] was called).
pub fn timeline() -> &'static timeline::Timeline {
    &TIMELINE
}

/// Records `value` for `metric` in this process (ignored unless [`enable`]d or
/// [`keep_timeline`] was called).
pub fn record(metric: Metric, value: f64) {
    GLOBAL.record(metric, value);
    if TIMELINE_ON.load(Ordering::Relaxed) {
        TIMELINE.record(Utc::now(), metric, value);
    }
}

/// Records a count.
pub fn count(metric: Metric, n: usize) {
    if n > 0 {
        // Counts per invocation are far below 2^52: exact as f64.
        #[allow(clippy::cast_precision_loss)]
        record(metric, n as f64);
    }
}

/// The EMF line for this process's metrics since the last flush (see [`Recorder::flush`]).
pub fn flush(function: &str, now: DateTime<Utc>) -> Option<String> {
    GLOBAL.flush(function, now)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_flush_is_one_emf_document_and_clears_the_recorder() {
        let r = Recorder::new();
        r.record(Metric::Delivered, 1.0);
        assert!(r.flush("f", Utc::now()).is_none(), "off until enabled");
        r.enable();
        r.record(Metric::Delivered, 1.0);
        r.record(Metric::Delivered, 2.0);
        r.record(Metric::DeliveryLatency, 12.0);
        r.record(Metric::DeliveryLatency, 340.0);
        r.record(Metric::BatchSize, f64::NAN);
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap();
        let line = r.flush("wagate-deliver", at).unwrap();
        assert!(!line.contains('\n'));
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["Function"], "wagate-deliver");
        assert_eq!(doc["Delivered"], 3.0);
        assert_eq!(doc["DeliveryLatency"], json!([12.0, 340.0]));
        assert!(doc.get("BatchSize").is_none());
        let aws = &doc["_aws"];
        assert_eq!(aws["Timestamp"], at.timestamp_millis());
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "wagate");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "Delivered", "Unit": "Count"},
                {"Name": "DeliveryLatency", "Unit": "Milliseconds"},
            ])
        );
        // Every declared metric has its value in the document, as EMF requires.
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(doc.get(m["Name"].as_str().unwrap()).is_some());
        }
        assert!(r.flush("wagate-deliver", at).is_none());
    }

    #[test]
    fn all_lists_every_metric_at_its_index() {
        for (i, m) in Metric::ALL.into_iter().enumerate() {
            assert_eq!(m.index(), i, "{m:?}");
        }
    }

    #[test]
    fn distributions_keep_at_most_100_values_per_line() {
        let r = Recorder::new();
        r.enable();
        for i in 0..150 {
            r.record(Metric::DeliveryLatency, f64::from(i));
        }
        let doc: Value = serde_json::from_str(&r.flush("f", Utc::now()).unwrap()).unwrap();
        assert_eq!(doc["DeliveryLatency"].as_array().unwrap().len(), 100);
    }
}
