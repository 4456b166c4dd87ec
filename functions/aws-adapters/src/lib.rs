//! The adapters for the ports in `shared`: [`SqsQueue`], [`DynamoDocumentStore`],
//! [`DynamoBlobStore`], [`S3MediaStore`], the HTTP sender of deliveries ([`http::ReqwestSender`]), the provider API
//! client of sends ([`http::ReqwestProviderApi`]), plus client construction and resource
//! provisioning.
//!
//! Owns: every AWS SDK call and every outbound HTTP request wagate makes, and the mapping of SDK
//! errors to [`shared::ports::BackendError`] (retryable or not). Must not: hold pipeline logic.
//! Clients honour `AWS_ENDPOINT_URL`, so pointing them at moto needs no special code path.
//!
//! Without the `sdk` feature (on by default) only what needs no AWS SDK is built: the
//! [`infra::Infrastructure`] a stage is built on, the typed environment ([`env`]), the Lambda
//! glue ([`lambda`]) and the HTTP clients ([`http`]). The local gateway builds that way unless
//! its `aws` backend is asked for, so a first `cargo run` does not compile the SDK.

pub mod env;
pub mod http;
pub mod infra;
pub mod lambda;

#[cfg(feature = "sdk")]
mod aws;
#[cfg(feature = "sdk")]
pub mod cloudwatch;
#[cfg(feature = "sdk")]
mod dynamo;
#[cfg(feature = "sdk")]
mod error;
#[cfg(feature = "sdk")]
pub mod provision;
#[cfg(feature = "sdk")]
mod s3;
#[cfg(feature = "sdk")]
mod sdk;
#[cfg(feature = "sdk")]
pub mod secrets;
#[cfg(feature = "sdk")]
mod sqs;

#[cfg(feature = "sdk")]
pub use sdk::*;
