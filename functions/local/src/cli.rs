//! Command-line pieces both binaries share (`wagate`, and `wagate-bench`, whose fault run
//! and load generator start the same gateway).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::backend::{AwsBackend, Backend};

/// Which backend holds state and queues.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendKind {
    /// SQLite under --data-dir: state and queued work survive a restart.
    Sqlite,
    /// In-process stores and queues (state ends with the process).
    Memory,
    /// DynamoDB and SQS (moto, or AWS).
    Aws,
}

/// Where state and queues live, and how to reach them.
#[derive(Debug, Args, Clone)]
pub struct BackendArgs {
    /// Where state and queues live (default: sqlite for `serve`, memory for the load
    /// generator and the fault run).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// The sqlite backend's directory (its database, and media files unless --media-dir).
    #[arg(long, env = "WAGATE_DATA_DIR", default_value = "wagate-data")]
    pub data_dir: PathBuf,
    /// DynamoDB/SQS endpoint (e.g. moto: http://127.0.0.1:5000); default: AWS itself.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Region for --backend aws.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Table name for --backend aws.
    #[arg(long, default_value = "wagate-local")]
    pub table: String,
    /// Queue names are PREFIX-inbound, PREFIX-buffer, … and PREFIX-*-dlq.
    #[arg(long, default_value = "wagate-local")]
    pub queue_prefix: String,
    /// Create the table and queues if they do not exist.
    #[arg(long)]
    pub create: bool,
}

impl BackendArgs {
    /// The backend these arguments name, `default` unless `--backend` was given.
    pub fn backend_or(&self, default: BackendKind) -> Backend {
        match self.backend.unwrap_or(default) {
            BackendKind::Memory => Backend::Memory,
            BackendKind::Sqlite => Backend::Sqlite(self.data_dir.clone()),
            BackendKind::Aws => Backend::Aws(AwsBackend {
                endpoint_url: self.endpoint_url.clone(),
                region: self.region.clone(),
                table: self.table.clone(),
                queue_prefix: self.queue_prefix.clone(),
                create: self.create,
            }),
        }
    }
}
