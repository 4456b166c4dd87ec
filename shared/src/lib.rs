//! wagate's model crate: the event contract, provider parsers, signatures, pipeline logic and
//! the ports (traits) the Lambda functions wire adapters into.
//!
//! Invariant: this crate does no I/O and knows no AWS SDK or Lambda runtime. Everything here is a
//! pure function over bytes and values, or a trait that an adapter implements elsewhere.

pub mod admin;
pub mod clock;
pub mod config;
pub mod console;
pub mod delivery;
pub mod ids;
pub mod media;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod ports;
pub mod providers;
pub mod rfc3339;
pub mod send;
pub mod signature;
#[cfg(feature = "testing")]
pub mod testing;

/// A JSON decoding error without the input it quotes: serde_json messages can repeat values from
/// the document (`invalid type: string "15550001111"`), which may be phone numbers, message text
/// or secrets. Only the category and position are kept, safe to log and to return.
pub fn json_error(e: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
}
