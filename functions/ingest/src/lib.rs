//! The ingest function as a library: configuration and the HTTP handler, so tests drive exactly
//! what the Lambda runs (`main.rs` only wires it to the runtime).

mod config;
mod handler;

pub use config::{Config, ConfigError};
pub use handler::handle;
