//! The committed JSON Schema (`schema/envelope.schema.json`) accepts every envelope wagate builds
//! from the provider fixtures, single and batched, and rejects envelopes that break the contract.

use chrono::Utc;
use serde_json::{Value, json};
use shared::ids::{EventId, SourceId};
use shared::model::{Envelope, EventType, Provider};
use tests::{provider_fixtures, repo_root};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(repo_root().join("schema/envelope.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn envelopes() -> Vec<Envelope> {
    let mut out = Vec::new();
    for (prefix, provider) in [("meta-", Provider::Meta), ("waha-", Provider::Waha)] {
        let source = SourceId::parse("src").unwrap();
        for (name, body) in provider_fixtures(prefix) {
            let events = shared::providers::normalize(&source, provider, &body, Utc::now())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let received: Vec<_> = events
                .iter()
                .filter(|e| e.event_type == EventType::MessageReceived)
                .cloned()
                .collect();
            if !received.is_empty() {
                out.push(Envelope::batch(
                    EventId::new(),
                    EventType::MessageReceived,
                    Utc::now(),
                    received,
                ));
            }
            out.extend(events.into_iter().map(Envelope::single));
        }
    }
    out
}

#[test]
fn schema_accepts_every_envelope_built_from_the_fixtures() {
    let validator = validator();
    let all = envelopes();
    assert!(all.len() > 100, "only {} envelopes", all.len());
    for envelope in all {
        let value = serde_json::to_value(&envelope).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{}: {errors:#?}\n{value:#}",
            envelope.event_type
        );
    }
}

#[test]
fn schema_rejects_envelopes_that_break_the_contract() {
    let validator = validator();
    let good = serde_json::to_value(envelopes().remove(0)).unwrap();
    let mut cases = Vec::new();
    for (field, bad) in [
        ("type", json!("whatsapp.nope")),
        ("id", json!("123")),
        ("batch", json!("yes")),
        ("created_at", json!("yesterday")),
    ] {
        let mut v = good.clone();
        v[field] = bad;
        cases.push((field, v));
    }
    let mut missing = good;
    missing.as_object_mut().unwrap().remove("data");
    cases.push(("data", missing));
    for (field, value) in cases {
        assert!(
            !validator.is_valid(&value),
            "schema accepted a bad `{field}`"
        );
    }
}
