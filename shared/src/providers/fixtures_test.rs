//! Every provider fixture in `shared/fixtures/providers/` against its reviewed expectation in
//! `shared/fixtures/expected/`: the exact events (type, dedup key, provider time, data).
//!
//! Set `WAGATE_BLESS=1` to rewrite the expectations from the current output; review the diff
//! before committing, since the files are the contract.

use std::path::Path;

use serde_json::{Value, json};

use super::test_support::{fixture, normalize};
use crate::model::Provider;

fn provider_of(name: &str) -> Option<Provider> {
    let (prefix, _) = name.split_once('-')?;
    Provider::ALL.into_iter().find(|p| p.as_str() == prefix)
}

fn actual(provider: Provider, name: &str) -> Value {
    let events = normalize(provider, &fixture(name));
    Value::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "type": e.event_type,
                    "dedup_key": e.dedup_key,
                    "occurred_at": e.occurred_at,
                    "data": e.data,
                })
            })
            .collect(),
    )
}

#[test]
fn every_provider_fixture_normalizes_to_its_expected_events() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let bless = std::env::var_os("WAGATE_BLESS").is_some();
    let mut checked = 0;
    let mut names: Vec<String> = std::fs::read_dir(root.join("providers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in names {
        let Some(provider) = provider_of(&name) else {
            continue;
        };
        let got = actual(provider, &name);
        // Expectations are JSON whatever the fixture is (Twilio's are form bodies).
        let expected_name = match name.strip_suffix(".form.txt") {
            Some(stem) => format!("{stem}.form.json"),
            None => name.clone(),
        };
        let path = root.join("expected").join(expected_name);
        if bless {
            std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with WAGATE_BLESS=1 to create)",
                path.display()
            )
        });
        let want: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(got, want, "{name} differs from {}", path.display());
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} fixtures checked");
}
