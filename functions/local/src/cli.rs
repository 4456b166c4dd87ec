//! Command-line pieces both binaries share (`wagate`, and `wagate-bench`, whose fault run
//! and load generator start the same gateway).

use clap::{Args, ValueEnum};

use crate::backend::{AwsBackend, Backend};

/// Which backend holds state and queues.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendKind {
    /// In-process stores and queues.
    Memory,
    /// DynamoDB and SQS (moto, or AWS).
    Aws,
}

/// Where state and queues live, and how to reach them.
#[derive(Debug, Args, Clone)]
pub struct BackendArgs {
    /// Where state and queues live.
    #[arg(long, value_enum, default_value = "memory")]
    pub backend: BackendKind,
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
    /// The backend these arguments name.
    pub fn backend(&self) -> Backend {
        match self.backend {
            BackendKind::Memory => Backend::Memory,
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
