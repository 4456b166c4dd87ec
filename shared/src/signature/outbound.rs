//! Signing deliveries to subscribers: `X-Webhook-Signature` (hex HMAC-SHA256 keyed by the secret
//! string as shown to the user) and Standard Webhooks (`webhook-signature: v1,<base64>` over
//! `{id}.{timestamp}.{body}`, keyed by the base64-decoded part of `whsec_…`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// An endpoint secret, `whsec_` + base64 of 24 to 64 random bytes. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointSecret {
    text: String,
    key: Vec<u8>,
}

/// Why a string is not an endpoint secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint secret: expected `whsec_` followed by base64 of 24 to 64 bytes")]
pub struct InvalidEndpointSecret;

impl EndpointSecret {
    const PREFIX: &'static str = "whsec_";

    /// Parses a secret as shown to users.
    pub fn parse(text: &str) -> Result<Self, InvalidEndpointSecret> {
        let encoded = text
            .strip_prefix(Self::PREFIX)
            .ok_or(InvalidEndpointSecret)?;
        let key = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| InvalidEndpointSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(InvalidEndpointSecret);
        }
        Ok(Self {
            text: text.to_owned(),
            key,
        })
    }

    /// The secret for the given random key bytes (24 to 64 of them).
    pub fn from_key(key: &[u8]) -> Result<Self, InvalidEndpointSecret> {
        if !(24..=64).contains(&key.len()) {
            return Err(InvalidEndpointSecret);
        }
        Ok(Self {
            text: format!("{}{}", Self::PREFIX, STANDARD.encode(key)),
            key: key.to_vec(),
        })
    }

    /// A new secret from 32 bytes of operating-system randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Self::from_key(&key).map_err(|_| getrandom::Error::UNSUPPORTED)
    }

    /// The secret as shown to the user (`whsec_…`). Handle with care: it is the secret.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for EndpointSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EndpointSecret([redacted])")
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail; the fallback is unreachable.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `X-Webhook-Signature`: lowercase hex HMAC-SHA256 of the exact body, keyed by the secret string
/// exactly as shown to the user (`whsec_` prefix included) as UTF-8.
pub fn webhook_signature(secret: &EndpointSecret, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret.text.as_bytes(), &[body]))
}

/// One Standard Webhooks signature: `v1,` + base64 HMAC-SHA256 of `{msg_id}.{timestamp}.{body}`.
pub fn sign_standard_webhook(
    secret: &EndpointSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(
        &secret.key,
        &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", STANDARD.encode(mac))
}

/// The `webhook-signature` header: one signature per active secret, space-separated, so a
/// receiver holding either the old or the new secret verifies during a rotation.
pub fn standard_webhook_header(
    secrets: &[EndpointSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| sign_standard_webhook(s, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a Standard Webhooks delivery did not verify (receiver side: the local receiver and tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandardWebhookError {
    /// `webhook-timestamp` is not an integer.
    #[error("invalid webhook-timestamp")]
    BadTimestamp,
    /// The timestamp is further from now than the tolerance.
    #[error("webhook-timestamp outside the tolerance")]
    Stale,
    /// No `v1` signature matches.
    #[error("no matching webhook-signature")]
    Mismatch,
}

/// Verifies `webhook-signature` for `webhook-id` and `webhook-timestamp` against `secret`,
/// accepting the delivery when any `v1` signature in the header matches (constant-time).
pub fn verify_standard_webhook(
    secret: &EndpointSecret,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), StandardWebhookError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| StandardWebhookError::BadTimestamp)?;
    if (now - ts).abs() > tolerance_secs {
        return Err(StandardWebhookError::Stale);
    }
    let ts_text = ts.to_string();
    let matches = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|b64| {
            let Ok(sig) = STANDARD.decode(b64) else {
                return false;
            };
            <Hmac<Sha256> as Mac>::new_from_slice(&secret.key).is_ok_and(|mac| {
                mac.chain_update(msg_id.as_bytes())
                    .chain_update(b".")
                    .chain_update(ts_text.as_bytes())
                    .chain_update(b".")
                    .chain_update(body)
                    .verify_slice(&sig)
                    .is_ok()
            })
        });
    if matches {
        Ok(())
    } else {
        Err(StandardWebhookError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TS: i64 = 1_614_265_330;
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn reproduces_the_standard_webhooks_test_vector() {
        let secret = EndpointSecret::parse(SW_SECRET).unwrap();
        assert_eq!(
            sign_standard_webhook(&secret, SW_ID, SW_TS, SW_BODY),
            SW_SIG
        );
        assert_eq!(
            verify_standard_webhook(&secret, SW_ID, "1614265330", SW_SIG, SW_BODY, SW_TS, 300),
            Ok(())
        );
    }

    #[test]
    fn standard_webhook_verification_rejects_tampering_and_stale_timestamps() {
        let secret = EndpointSecret::parse(SW_SECRET).unwrap();
        let v = |id: &str, ts: &str, body: &[u8], now: i64| {
            verify_standard_webhook(&secret, id, ts, SW_SIG, body, now, 300)
        };
        assert_eq!(
            v("msg_other", "1614265330", SW_BODY, SW_TS),
            Err(StandardWebhookError::Mismatch)
        );
        assert_eq!(
            v(SW_ID, "1614265330", b"{}", SW_TS),
            Err(StandardWebhookError::Mismatch)
        );
        assert_eq!(
            v(SW_ID, "1614265330", SW_BODY, SW_TS + 301),
            Err(StandardWebhookError::Stale)
        );
        assert_eq!(
            v(SW_ID, "soon", SW_BODY, SW_TS),
            Err(StandardWebhookError::BadTimestamp)
        );
    }

    #[test]
    fn header_carries_one_signature_per_active_secret() {
        let old = EndpointSecret::parse(SW_SECRET).unwrap();
        let new = EndpointSecret::from_key(&[7u8; 32]).unwrap();
        let header = standard_webhook_header(&[new.clone(), old.clone()], SW_ID, SW_TS, SW_BODY);
        assert_eq!(header.split(' ').count(), 2);
        for secret in [&old, &new] {
            assert_eq!(
                verify_standard_webhook(secret, SW_ID, "1614265330", &header, SW_BODY, SW_TS, 300),
                Ok(())
            );
        }
    }

    #[test]
    fn webhook_signature_is_hex_hmac_of_the_body_keyed_by_the_full_secret_string() {
        let secret = EndpointSecret::from_key(b"0123456789abcdef01234567").unwrap();
        let body = br#"{"type":"whatsapp.message.received","batch":true,"data":[]}"#;
        let expected = hex::encode(hmac_sha256(secret.expose().as_bytes(), &[body]));
        assert_eq!(webhook_signature(&secret, body), expected);
        assert_eq!(expected.len(), 64);
        assert!(secret.expose().starts_with("whsec_"));
    }

    #[test]
    fn webhook_signature_matches_the_documented_example() {
        // SIGNATURES.md §6 keys the example with a plain string; the HMAC is the same function.
        let body = br#"{"type":"whatsapp.message.received","batch":true,"data":[{"message":{"id":"wamid.TEST1","type":"text","text":{"body":"Hi"}}}]}"#;
        assert_eq!(
            hex::encode(hmac_sha256(b"subscriber_secret_example", &[body])),
            "36f629917f5fdbb83942115e0a44333a7972d19ce034b81b13b3904b1145099c"
        );
    }

    #[test]
    fn generated_secrets_are_valid_and_distinct() {
        let a = EndpointSecret::generate().unwrap();
        let b = EndpointSecret::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(EndpointSecret::parse(a.expose()), Ok(a));
    }

    #[test]
    fn rejects_malformed_endpoint_secrets() {
        for s in ["", "whsec_", "sk_abc", "whsec_!!!!", "whsec_AAAA"] {
            assert_eq!(EndpointSecret::parse(s), Err(InvalidEndpointSecret), "{s}");
        }
        assert_eq!(
            format!("{:?}", EndpointSecret::parse(SW_SECRET).unwrap()),
            "EndpointSecret([redacted])"
        );
    }
}
