//! Helpers for the parser tests: load a fixture, normalize it, look at the events as JSON.

use chrono::{TimeZone, Utc};

use crate::ids::SourceId;
use crate::model::{InboundEvent, Provider};

/// Reads `shared/fixtures/providers/<name>` exactly as stored.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/providers/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Normalizes `body` as the source `src-<provider>`.
pub fn normalize(provider: Provider, body: &[u8]) -> Vec<InboundEvent> {
    let source = SourceId::parse(&format!("src-{}", provider.as_str())).unwrap();
    let received = Utc.with_ymd_and_hms(2024, 10, 28, 6, 0, 0).unwrap();
    let events = super::normalize(&source, provider, body, received).unwrap();
    for e in &events {
        // Every event must survive the queue: serialize and read back unchanged.
        let text = serde_json::to_string(e).unwrap();
        let back: InboundEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, e, "round trip of {}", e.event_type);
    }
    events
}
