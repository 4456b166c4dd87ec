//! Test harness shared by the integration tests: fixture loading, the local servers (moto,
//! subscriber endpoints) and waiting on conditions with deadlines derived from the work.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: failing loudly here is how a test reports a broken setup"
)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Names and bytes of every provider fixture for `prefix` (`meta-`, `waha-`), sorted.
pub fn provider_fixtures(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("shared/fixtures/providers");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(prefix) && name.ends_with(".json"))
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, bytes)
        })
        .collect();
    out.sort();
    out
}

pub mod moto;
pub mod policy;
pub mod receiver;
pub mod wait;
