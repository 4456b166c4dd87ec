//! wagate's verify + normalize timed the way `bench/side-by-side/` times pywa and
//! whatsapp-api-js: in-process, one webhook at a time, mean of a timed loop, best of 5 rounds.
//! Prints one JSON line per payload. Run through `bench/side-by-side/run.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};
use shared::ids::SourceId;
use shared::model::Provider;
use shared::providers::normalize;
use shared::signature::{Secret, verify_meta, verify_waha};

const SECRET: &str = "bench-app-secret-0123456789abcdef";

fn main() {
    let secrets = vec![Secret::from(SECRET.to_owned())];
    for path in std::env::args().skip(1) {
        let body = std::fs::read(&path).unwrap();
        let name = std::path::Path::new(&path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let waha = name.starts_with("waha");
        let (provider, source) = if waha {
            (Provider::Waha, SourceId::parse("waha-main").unwrap())
        } else {
            (Provider::Meta, SourceId::parse("meta-main").unwrap())
        };
        let header = if waha {
            let mut mac = Hmac::<Sha512>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(&body);
            hex::encode(mac.finalize().into_bytes())
        } else {
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(&body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        let handle = || {
            if waha {
                verify_waha(&body, Some(&header), Some("sha512"), &secrets).unwrap();
            } else {
                verify_meta(&body, Some(&header), &secrets).unwrap();
            }
            normalize(&source, provider, &body, Utc::now()).unwrap()
        };
        // A wrong signature must be refused, or the figure means nothing.
        assert!(verify_meta(&body, Some("sha256=00"), &secrets).is_err());
        let events = handle().len();
        // Size the loop to about 0.3 s, then take the best of 5 rounds.
        let started = Instant::now();
        let mut probe = 0u32;
        while started.elapsed().as_millis() < 100 {
            std::hint::black_box(handle());
            probe += 1;
        }
        let n = (probe * 3).max(10);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(handle());
            }
            best = best.min(t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
        }
        println!(
            "{}",
            serde_json::json!({"handler": "wagate", "payload": name, "us_per_webhook": best, "items_parsed": events})
        );
    }
}
