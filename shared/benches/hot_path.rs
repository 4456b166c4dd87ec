//! The ingest hot path, next to its floor, in one run: signature verification and parse +
//! normalize of a 2 KiB Meta text message, a 65 KiB Meta status batch and a WAHA message
//! (`bench/payloads/`, written by `scripts/make-bench-payloads.py`), against a bare HMAC over the
//! same bytes and a bare typed `serde_json` parse of the same bytes.
//!
//! `cargo bench -p shared --bench hot_path`; BENCHMARKS.md has the figures.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Sha256, Sha512};
use shared::ids::SourceId;
use shared::model::Provider;
use shared::providers::normalize;
use shared::signature::{Secret, verify_meta, verify_waha};

const META_TEXT: &[u8] = include_bytes!("../../bench/payloads/meta-text-2k.json");
const META_STATUSES: &[u8] = include_bytes!("../../bench/payloads/meta-status-65k.json");
const WAHA_MESSAGE: &[u8] = include_bytes!("../../bench/payloads/waha-message.json");
const SECRET: &str = "bench-app-secret-0123456789abcdef";

// The floor for parsing: the same bytes into plain typed structs, borrowing strings, no
// normalization.
#[derive(Deserialize)]
struct MetaEnvelope<'a> {
    #[serde(borrow)]
    object: &'a str,
    #[serde(borrow)]
    entry: Vec<MetaEntry<'a>>,
}

#[derive(Deserialize)]
struct MetaEntry<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    changes: Vec<MetaChange<'a>>,
}

#[derive(Deserialize)]
struct MetaChange<'a> {
    #[serde(borrow)]
    field: &'a str,
    #[serde(borrow)]
    value: MetaValue<'a>,
}

#[derive(Deserialize)]
struct MetaValue<'a> {
    #[serde(borrow)]
    metadata: MetaMetadata<'a>,
    #[serde(borrow, default)]
    contacts: Vec<MetaContact<'a>>,
    #[serde(borrow, default)]
    messages: Vec<MetaMessage<'a>>,
    #[serde(borrow, default)]
    statuses: Vec<MetaStatus<'a>>,
}

#[derive(Deserialize)]
struct MetaMetadata<'a> {
    #[serde(borrow)]
    phone_number_id: &'a str,
}

#[derive(Deserialize)]
struct MetaContact<'a> {
    #[serde(borrow)]
    wa_id: &'a str,
    #[serde(borrow)]
    profile: MetaProfile<'a>,
}

#[derive(Deserialize)]
struct MetaProfile<'a> {
    #[serde(borrow)]
    name: &'a str,
}

#[derive(Deserialize)]
struct MetaMessage<'a> {
    #[serde(borrow)]
    from: &'a str,
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    timestamp: &'a str,
    #[serde(borrow, rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    text: Option<MetaText<'a>>,
}

#[derive(Deserialize)]
struct MetaText<'a> {
    #[serde(borrow)]
    body: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct MetaStatus<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    status: &'a str,
    #[serde(borrow)]
    timestamp: &'a str,
    #[serde(borrow)]
    recipient_id: &'a str,
}

#[derive(Deserialize)]
struct WahaEnvelope<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(borrow)]
    session: &'a str,
    #[serde(borrow)]
    payload: WahaPayload<'a>,
}

#[derive(Deserialize)]
struct WahaPayload<'a> {
    #[serde(borrow)]
    id: &'a str,
    timestamp: i64,
    #[serde(borrow)]
    from: &'a str,
    #[serde(borrow)]
    body: Option<std::borrow::Cow<'a, str>>,
}

fn meta_floor(bytes: &[u8]) -> usize {
    let e: MetaEnvelope<'_> = serde_json::from_slice(bytes).unwrap();
    let mut n = e.object.len();
    for entry in &e.entry {
        n += entry.id.len();
        for c in &entry.changes {
            n += c.field.len() + c.value.metadata.phone_number_id.len();
            n += c
                .value
                .contacts
                .iter()
                .map(|c| c.wa_id.len() + c.profile.name.len())
                .sum::<usize>();
            n += c
                .value
                .messages
                .iter()
                .map(|m| {
                    m.from.len()
                        + m.id.len()
                        + m.timestamp.len()
                        + m.kind.len()
                        + m.text.as_ref().map_or(0, |t| t.body.len())
                })
                .sum::<usize>();
            n += c
                .value
                .statuses
                .iter()
                .map(|s| s.id.len() + s.status.len() + s.timestamp.len() + s.recipient_id.len())
                .sum::<usize>();
        }
    }
    n
}

fn waha_floor(bytes: &[u8]) -> usize {
    let e: WahaEnvelope<'_> = serde_json::from_slice(bytes).unwrap();
    e.event.len()
        + e.session.len()
        + e.payload.id.len()
        + e.payload.from.len()
        + e.payload.body.map_or(0, |b| b.len())
        + usize::try_from(e.payload.timestamp).unwrap_or(0) % 2
}

fn hmac_sha256(body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha512(body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha512>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// One payload and how its provider signs and is parsed.
struct Case {
    group: &'static str,
    body: &'static [u8],
    provider: Provider,
    source: &'static str,
    hmac_name: &'static str,
    hmac_floor: fn(&[u8]) -> Vec<u8>,
    parse_floor: fn(&[u8]) -> usize,
}

fn bench(c: &mut Criterion) {
    let secrets = vec![Secret::from(SECRET.to_owned())];
    let now = Utc::now();
    let meta = |group, body| Case {
        group,
        body,
        provider: Provider::Meta,
        source: "meta-main",
        hmac_name: "floor_hmac_sha256",
        hmac_floor: hmac_sha256,
        parse_floor: meta_floor,
    };
    let cases = [
        meta("meta_text_2k", META_TEXT),
        meta("meta_status_65k", META_STATUSES),
        Case {
            group: "waha_message",
            body: WAHA_MESSAGE,
            provider: Provider::Waha,
            source: "waha-main",
            hmac_name: "floor_hmac_sha512",
            hmac_floor: hmac_sha512,
            parse_floor: waha_floor,
        },
    ];
    for case in cases {
        let body = case.body;
        let source = SourceId::parse(case.source).unwrap();
        let digest = hex::encode((case.hmac_floor)(body));
        let header = match case.provider {
            Provider::Meta => format!("sha256={digest}"),
            _ => digest,
        };
        let verify = |body: &[u8]| match case.provider {
            Provider::Meta => verify_meta(body, Some(&header), &secrets).unwrap(),
            _ => verify_waha(body, Some(&header), Some("sha512"), &secrets).unwrap(),
        };
        let mut g = c.benchmark_group(case.group);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(case.hmac_name, |b| {
            b.iter(|| (case.hmac_floor)(black_box(body)));
        });
        g.bench_function("verify", |b| b.iter(|| verify(black_box(body))));
        g.bench_function("floor_typed_parse", |b| {
            b.iter(|| (case.parse_floor)(black_box(body)));
        });
        g.bench_function("normalize", |b| {
            b.iter(|| normalize(&source, case.provider, black_box(body), now).unwrap());
        });
        g.bench_function("verify_and_normalize", |b| {
            b.iter(|| {
                verify(black_box(body));
                normalize(&source, case.provider, black_box(body), now).unwrap()
            });
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
