//! wagate on one machine: every stage of the pipeline in one process, on the embedded backend or
//! on DynamoDB/SQS, with Lambda-like pollers so local behaviour matches Lambda + SQS.
//!
//! Owns: the local runtime (front, pollers, sweep timer, shutdown), the local configuration file,
//! the bundled receiver, sample payloads and signing helpers, and the fault run. Must not: hold
//! pipeline logic; the stages are the ones in `shared`, configured by the functions' `Config`
//! types from the same variable names as the Lambdas.

pub mod aws_meter;
pub mod backend;
pub mod clock;
pub mod config;
pub mod fault;
pub mod gateway;
pub mod lambda_bench;
pub mod load;
pub mod poller;
pub mod receiver;
pub mod runtime_api;
pub mod sample;
pub mod server;
pub mod stats;
