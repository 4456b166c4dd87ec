//! Test harness shared by the integration tests: fixture loading, the local servers (moto,
//! subscriber endpoints) and waiting on conditions with deadlines derived from the work.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: failing loudly here is how a test reports a broken setup"
)]

use std::path::{Path, PathBuf};

/// A fresh durable SQLite database (local mode's `--backend sqlite`) in a directory of its own
/// under the system's temporary directory; returns the database and its directory.
pub fn sqlite_database() -> (std::sync::Arc<wagate_local::sqlite::Database>, PathBuf) {
    let dir = std::env::temp_dir().join(moto::unique("wagate-sqlite"));
    let db = wagate_local::sqlite::Database::open_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    (db, dir)
}

/// The `wagate` binary next to the running test executable (built by `cargo build --workspace`).
pub fn wagate_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("wagate");
    assert!(
        bin.is_file(),
        "{} is missing: run ./scripts/test.sh, or cargo build --workspace --all-targets first",
        bin.display()
    );
    bin
}

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

/// What a function's router answered.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: axum::http::HeaderMap,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// Sends an API Gateway (HTTP API, payload 2.0) event, as the Lambda runtime hands it to the
/// function, through `router`, as `lambda_http::run` does (no socket: `oneshot`).
pub async fn invoke_router(router: &axum::Router, event: &str) -> Answer {
    use tower::ServiceExt as _;
    let request = lambda_http::request::from_str(event).unwrap_or_else(|e| panic!("{e}"));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub mod browser;
pub mod moto;
pub mod policy;
pub mod receiver;
pub mod wait;
