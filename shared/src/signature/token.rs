//! Shared-token verification for providers that do not sign webhooks (360dialog, Gupshup,
//! Evolution API): the provider sends back a secret token it was configured with, in a header, the
//! webhook URL's query or (Evolution API) the body's `apikey`.
//!
//! Weaker than a signature: the token proves the sender was told it, but does not cover the
//! body, so whoever sees one request (a proxy's logs, a leaked URL) can send others. Tokens are
//! compared as SHA-256 digests with a constant-time equality, over every configured token, so
//! the time taken tells nothing about the token's length, where it differs, or which matched.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::{Secret, SignatureError};

/// Accepts when any `presented` value equals any of `tokens`. Empty presented values do not
/// count (an empty header or `?token=` is no token).
pub fn verify_token(presented: &[&str], tokens: &[Secret]) -> Result<(), SignatureError> {
    let presented: Vec<&str> = presented
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    if presented.is_empty() {
        return Err(SignatureError::MissingToken);
    }
    if tokens.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let wanted: Vec<_> = tokens.iter().map(|t| Sha256::digest(t.expose())).collect();
    let matched = presented.iter().fold(false, |ok, p| {
        let asked = Sha256::digest(p.as_bytes());
        wanted
            .iter()
            .fold(ok, |ok, w| ok | bool::from(w.ct_eq(&asked)))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A header value with an `Authorization`-style `Bearer ` scheme removed (any case), so a token
/// configured as the header `Authorization: Bearer <token>` compares as `<token>`.
pub fn bearer_value(value: &str) -> &str {
    let value = value.trim();
    match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => value[7..].trim_start(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::from(*s)).collect()
    }

    #[test]
    fn accepts_any_configured_token_from_any_presented_place() {
        let t = tokens(&["old-token-value", "new-token-value"]);
        assert_eq!(verify_token(&["new-token-value"], &t), Ok(()));
        assert_eq!(verify_token(&["wrong", "old-token-value"], &t), Ok(()));
        assert_eq!(verify_token(&[" new-token-value "], &t), Ok(()));
    }

    #[test]
    fn refuses_wrong_missing_empty_and_unconfigured() {
        let t = tokens(&["token-value"]);
        assert_eq!(
            verify_token(&["token-valuE"], &t),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_token(&["token-value-and-more"], &t),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_token(&[], &t), Err(SignatureError::MissingToken));
        assert_eq!(
            verify_token(&["", "  "], &t),
            Err(SignatureError::MissingToken)
        );
        assert_eq!(
            verify_token(&["token-value"], &[]),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn strips_a_bearer_scheme_only() {
        assert_eq!(bearer_value("Bearer abc"), "abc");
        assert_eq!(bearer_value("bearer   abc "), "abc");
        assert_eq!(bearer_value("abc"), "abc");
        assert_eq!(bearer_value("Bearerabc"), "Bearerabc");
        assert_eq!(bearer_value("Basic abc"), "Basic abc");
    }
}
