//! wagate on one machine: every stage of the pipeline in one process, on the embedded backend or
//! on DynamoDB/SQS, with Lambda-like pollers so local behaviour matches Lambda + SQS.
//!
//! Owns: the local runtime (front, pollers, sweep timer, shutdown), the local configuration file,
//! the media store on disk and the route serving signed media URLs, the bundled receiver and fake
//! providers, and sample payloads and signing helpers. The measuring tools (load, fault run, Lambda bench) are in `bench/` (`wagate-bench`). Must not: hold
//! pipeline logic; the stages are the ones in `shared`, configured by the functions' `Config`
//! types from the same variable names as the Lambdas.

pub mod api;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fake;
pub mod gateway;
pub mod manage;
pub mod media;
pub mod pages;
pub mod poller;
pub mod receiver;
pub mod sample;
pub mod server;
pub mod sqlite;
pub mod stats;
