//! wagate's model crate: the event contract, provider parsers, signatures, pipeline logic and
//! the ports (traits) the Lambda functions wire adapters into.
//!
//! Invariant: this crate does no I/O and knows no AWS SDK or Lambda runtime. Everything here is a
//! pure function over bytes and values, or a trait that an adapter implements elsewhere.

pub mod config;
pub mod delivery;
pub mod ids;
pub mod model;
pub mod pipeline;
pub mod ports;
pub mod providers;
pub mod signature;
