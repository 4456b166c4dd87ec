//! The ingest function as a library: configuration and the HTTP router, so tests drive exactly
//! what the Lambda runs (`main.rs` only wires it to the runtime).

mod config;
mod handler;

pub use aws_adapters::env::ConfigError;
pub use config::Config;
pub use handler::router;
