//! Webhook signatures, both ways: verifying what providers send us (HMACs, and the shared tokens
//! of providers that do not sign), and signing what we send subscribers.
//!
//! Owns: pure functions over `(bytes, header values, secrets)`. Comparisons are constant-time
//! (`hmac::Mac::verify_slice`); secrets never appear in `Debug` output. Must not: read headers
//! from a particular HTTP type (callers pass values) or log anything.

mod inbound;
mod outbound;
mod token;
mod twilio;

use std::fmt;

pub(crate) use inbound::escape_non_ascii;
pub use inbound::{
    HandshakeOutcome, SignatureError, WahaAlgorithm, meta_handshake, sign_meta, sign_waha,
    verify_meta, verify_waha,
};
pub use outbound::{
    EndpointSecret, InvalidEndpointSecret, StandardWebhookError, sign_standard_webhook,
    standard_webhook_header, verify_standard_webhook, webhook_signature,
};
pub use token::{bearer_value, verify_token};
pub use twilio::{sign_twilio, verify_twilio};

/// Secret bytes (an app secret, HMAC key or verify token) whose `Debug` prints nothing of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The secret bytes, for keying an HMAC or comparing in constant time.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let s = Secret::from("meta_app_secret_example");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }
}
