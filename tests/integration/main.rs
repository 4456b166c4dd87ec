//! The one integration test binary: each module is a suite.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is how a test fails"
)]

mod admin_events;
mod cli;
mod console_browser;
mod contacts_moto;
mod contract;
mod deliver_http;
mod e2e;
mod fake_provider;
mod ingest_events;
mod ingest_moto;
mod lambda_binaries;
mod media_bench;
mod media_e2e;
mod media_memory_moto;
mod metrics_moto;
mod outbound_events;
mod providers_e2e;
mod schema;
mod secrets_moto;
mod send_client;
mod send_e2e;
mod sqlite;
mod template;
mod track_events;
mod track_moto;
mod worst_case_moto;
