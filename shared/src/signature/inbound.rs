//! Verifying provider signatures: Meta `X-Hub-Signature-256`, WAHA `X-Webhook-Hmac`, and the Meta
//! subscription handshake.

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::Secret;

/// Why a request's signature was not accepted. Every variant means "answer 401".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header is absent.
    #[error("missing signature header {0}")]
    MissingHeader(&'static str),
    /// The header is present but not in the documented form.
    #[error("malformed signature header {0}")]
    MalformedHeader(&'static str),
    /// WAHA announced an algorithm other than sha512/sha256.
    #[error("unsupported signature algorithm")]
    UnsupportedAlgorithm,
    /// Well-formed, but no configured secret produces it.
    #[error("signature does not match")]
    Mismatch,
    /// A token source's request carries no token in any of the places it is read from.
    #[error("no token in the request")]
    MissingToken,
    /// The source has no secret configured, so nothing can verify.
    #[error("no secret configured for this source")]
    NoSecret,
}

/// Header names, as the providers document them (HTTP header names are case-insensitive).
const META_HEADER: &str = "X-Hub-Signature-256";
const WAHA_HEADER: &str = "X-Webhook-Hmac";

/// Verifies Meta's `X-Hub-Signature-256: sha256=<hex>` over the exact body bytes against any of
/// the app secrets (several during a rotation).
///
/// Meta escapes every non-ASCII character as `\uXXXX`, so the bytes as received verify. If a hop
/// on the way decoded those escapes into UTF-8, the body is re-escaped the way Meta writes it and
/// checked again; that second try only runs for bodies with non-ASCII bytes.
pub fn verify_meta(
    body: &[u8],
    header: Option<&str>,
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader(META_HEADER))?;
    let hex_part = strip_prefix_ignore_case(header.trim(), "sha256=")
        .ok_or(SignatureError::MalformedHeader(META_HEADER))?;
    let mut digest = [0u8; 32];
    let expected =
        decode_hex(hex_part, &mut digest).ok_or(SignatureError::MalformedHeader(META_HEADER))?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    if any_matches::<Hmac<Sha256>>(body, expected, secrets) {
        return Ok(());
    }
    if !body.is_ascii()
        && let Ok(text) = std::str::from_utf8(body)
        && any_matches::<Hmac<Sha256>>(escape_non_ascii(text).as_bytes(), expected, secrets)
    {
        return Ok(());
    }
    Err(SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value Meta would send for `body` (for tests and the `sign` tool).
pub fn sign_meta(secret: &Secret, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac::<Hmac<Sha256>>(secret, body)))
}

/// The `X-Webhook-Hmac` value WAHA would send for `body` with `sha512`.
pub fn sign_waha(secret: &Secret, body: &[u8]) -> String {
    hex::encode(mac::<Hmac<Sha512>>(secret, body))
}

fn mac<M: Mac + hmac::digest::KeyInit>(secret: &Secret, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail here.
    <M as Mac>::new_from_slice(secret.expose())
        .map(|m| m.chain_update(body).finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

/// The HMAC algorithms WAHA can announce in `X-Webhook-Hmac-Algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WahaAlgorithm {
    /// `sha512`, WAHA's default and the only one it sends today.
    Sha512,
    /// `sha256`, accepted for proxies and older setups that re-sign.
    Sha256,
}

/// Verifies WAHA's `X-Webhook-Hmac` (lowercase hex, no prefix) over the exact body bytes.
///
/// `algorithm` is the `X-Webhook-Hmac-Algorithm` value. When it is absent the digest length
/// decides (128 hex digits: sha512, 64: sha256); any other announced algorithm is refused.
pub fn verify_waha(
    body: &[u8],
    header: Option<&str>,
    algorithm: Option<&str>,
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let header = header
        .ok_or(SignatureError::MissingHeader(WAHA_HEADER))?
        .trim();
    let algorithm = match algorithm.map(|a| a.trim().to_ascii_lowercase()).as_deref() {
        Some("sha512") => WahaAlgorithm::Sha512,
        Some("sha256") => WahaAlgorithm::Sha256,
        Some(_) => return Err(SignatureError::UnsupportedAlgorithm),
        None if header.len() == 64 => WahaAlgorithm::Sha256,
        None => WahaAlgorithm::Sha512,
    };
    let len = match algorithm {
        WahaAlgorithm::Sha512 => 64,
        WahaAlgorithm::Sha256 => 32,
    };
    let mut digest = [0u8; 64];
    let expected = decode_hex(header, &mut digest[..len])
        .ok_or(SignatureError::MalformedHeader(WAHA_HEADER))?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let ok = match algorithm {
        WahaAlgorithm::Sha512 => any_matches::<Hmac<Sha512>>(body, expected, secrets),
        WahaAlgorithm::Sha256 => any_matches::<Hmac<Sha256>>(body, expected, secrets),
    };
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// What to answer to `GET /webhooks/{source}?hub.mode=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// Mode is `subscribe` and the token matches: answer 200 with this text (the challenge).
    Challenge(String),
    /// A handshake with the wrong token or mode: answer 403.
    Forbidden,
    /// Not a handshake at all (no `hub.*` parameters): answer 400.
    NotHandshake,
}

/// Meta's subscription handshake over the raw query string (`hub.mode=subscribe&
/// hub.verify_token=…&hub.challenge=…`, percent-encoded). The token comparison is constant-time.
pub fn meta_handshake(query: &str, verify_tokens: &[Secret]) -> HandshakeOutcome {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
        match key.as_ref() {
            "hub.mode" => mode = Some(value.into_owned()),
            "hub.verify_token" => token = Some(value.into_owned()),
            "hub.challenge" => challenge = Some(value.into_owned()),
            _ => {}
        }
    }
    if mode.is_none() && token.is_none() && challenge.is_none() {
        return HandshakeOutcome::NotHandshake;
    }
    let (Some(mode), Some(token), Some(challenge)) = (mode, token, challenge) else {
        return HandshakeOutcome::Forbidden;
    };
    // Compare SHA-256 digests, so the time taken depends neither on where the bytes differ nor
    // on the lengths (a constant-time compare of unequal lengths returns at once, which would
    // tell an attacker the token's length); check every token, so neither does which matched.
    let asked = Sha256::digest(token.as_bytes());
    let token_ok = verify_tokens.iter().fold(false, |ok, t| {
        ok | bool::from(Sha256::digest(t.expose()).ct_eq(&asked))
    });
    if mode == "subscribe" && token_ok && !verify_tokens.is_empty() {
        HandshakeOutcome::Challenge(challenge)
    } else {
        HandshakeOutcome::Forbidden
    }
}

/// True when any secret's HMAC of `body` equals `expected` (each comparison constant-time).
fn any_matches<M: Mac + hmac::digest::KeyInit>(
    body: &[u8],
    expected: &[u8],
    secrets: &[Secret],
) -> bool {
    secrets.iter().any(|secret| {
        <M as Mac>::new_from_slice(secret.expose())
            .map(|mac| mac.chain_update(body).verify_slice(expected).is_ok())
            .unwrap_or(false)
    })
}

/// Lowercase or uppercase hex of exactly `out.len()` bytes, decoded into `out` (no allocation
/// on the hot path); the filled `out`, or `None` for a wrong length or a non-hex digit.
fn decode_hex<'o>(s: &str, out: &'o mut [u8]) -> Option<&'o [u8]> {
    if s.len() != out.len() * 2 {
        return None;
    }
    hex::decode_to_slice(s, out).ok()?;
    Some(out)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Rewrites every character above `~` (0x7E) as `\uXXXX` (lowercase hex, UTF-16 code units, so
/// astral characters become surrogate pairs): the form Meta signs.
pub(crate) fn escape_non_ascii(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        if (ch as u32) <= 0x7E {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const META_SECRET: &str = "meta_app_secret_example";
    /// The worked example from the fixtures' SIGNATURES.md: escapes for `é`, `á` and 👋.
    const META_ESCAPED_BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550009999","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Jos\u00e9"},"wa_id":"15550001111"}],"messages":[{"from":"15550001111","id":"wamid.TEST1","timestamp":"1730092801","text":{"body":"Ol\u00e1 \ud83d\udc4b"},"type":"text"}]},"field":"messages"}]}]}"#;
    const META_ESCAPED_SIG: &str =
        "sha256=c6ae46c5acc7520ed1395c95d17c19d6b98c5b1c117d9b394ae6ba5f50313883";

    fn secrets(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::from(*s)).collect()
    }

    #[test]
    fn accepts_meta_body_with_unicode_escapes_and_surrogate_pairs_over_raw_bytes() {
        let r = verify_meta(
            META_ESCAPED_BODY.as_bytes(),
            Some(META_ESCAPED_SIG),
            &secrets(&[META_SECRET]),
        );
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn accepts_meta_body_whose_escapes_a_proxy_decoded_to_utf8() {
        let decoded = META_ESCAPED_BODY
            .replace(r"Jos\u00e9", "José")
            .replace(r"Ol\u00e1 \ud83d\udc4b", "Olá 👋");
        assert!(!decoded.is_ascii());
        let r = verify_meta(
            decoded.as_bytes(),
            Some(META_ESCAPED_SIG),
            &secrets(&[META_SECRET]),
        );
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn accepts_any_of_several_meta_secrets_during_rotation() {
        let r = verify_meta(
            META_ESCAPED_BODY.as_bytes(),
            Some(META_ESCAPED_SIG),
            &secrets(&["old_secret", META_SECRET]),
        );
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn rejects_meta_signature_made_with_another_secret() {
        let r = verify_meta(
            META_ESCAPED_BODY.as_bytes(),
            Some(META_ESCAPED_SIG),
            &secrets(&["nope"]),
        );
        assert_eq!(r, Err(SignatureError::Mismatch));
    }

    #[test]
    fn rejects_meta_body_changed_by_one_byte() {
        let body = META_ESCAPED_BODY.replace("TEST1", "TEST2");
        let r = verify_meta(
            body.as_bytes(),
            Some(META_ESCAPED_SIG),
            &secrets(&[META_SECRET]),
        );
        assert_eq!(r, Err(SignatureError::Mismatch));
    }

    #[test]
    fn tells_missing_from_malformed_meta_headers() {
        let s = secrets(&[META_SECRET]);
        let body = META_ESCAPED_BODY.as_bytes();
        assert_eq!(
            verify_meta(body, None, &s),
            Err(SignatureError::MissingHeader("X-Hub-Signature-256"))
        );
        for bad in [
            "",
            "sha1=abc",
            "c6ae46c5",
            "sha256=zz",
            "sha256=c6ae46c5acc7520ed1395c95d17c19d6",
        ] {
            assert_eq!(
                verify_meta(body, Some(bad), &s),
                Err(SignatureError::MalformedHeader("X-Hub-Signature-256")),
                "{bad}"
            );
        }
    }

    #[test]
    fn accepts_uppercase_meta_hex_and_prefix() {
        let upper = format!("SHA256={}", &META_ESCAPED_SIG[7..].to_ascii_uppercase());
        let r = verify_meta(
            META_ESCAPED_BODY.as_bytes(),
            Some(&upper),
            &secrets(&[META_SECRET]),
        );
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn refuses_to_verify_without_any_secret() {
        let r = verify_meta(META_ESCAPED_BODY.as_bytes(), Some(META_ESCAPED_SIG), &[]);
        assert_eq!(r, Err(SignatureError::NoSecret));
    }

    #[test]
    fn accepts_the_waha_documented_sha512_vector() {
        let body = br#"{"event":"message","session":"default","engine":"WEBJS"}"#;
        let sig = "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89";
        let s = secrets(&["my-secret-key"]);
        assert_eq!(verify_waha(body, Some(sig), Some("sha512"), &s), Ok(()));
        assert_eq!(verify_waha(body, Some(sig), None, &s), Ok(()));
        assert_eq!(
            verify_waha(body, Some(sig), Some("sha512"), &secrets(&["other"])),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn accepts_waha_sha256_when_announced() {
        let body = br#"{"event":"message"}"#;
        let mac = Hmac::<Sha256>::new_from_slice(b"k")
            .unwrap()
            .chain_update(body)
            .finalize();
        let sig = hex::encode(mac.into_bytes());
        assert_eq!(
            verify_waha(body, Some(&sig), Some("sha256"), &secrets(&["k"])),
            Ok(())
        );
        assert_eq!(
            verify_waha(body, Some(&sig), None, &secrets(&["k"])),
            Ok(())
        );
        // A sha256 digest announced as sha512 has the wrong length.
        assert_eq!(
            verify_waha(body, Some(&sig), Some("sha512"), &secrets(&["k"])),
            Err(SignatureError::MalformedHeader("X-Webhook-Hmac"))
        );
    }

    #[test]
    fn rejects_unknown_waha_algorithms_and_missing_headers() {
        let body = b"{}";
        assert_eq!(
            verify_waha(body, Some("00"), Some("md5"), &secrets(&["k"])),
            Err(SignatureError::UnsupportedAlgorithm)
        );
        assert_eq!(
            verify_waha(body, None, Some("sha512"), &secrets(&["k"])),
            Err(SignatureError::MissingHeader("X-Webhook-Hmac"))
        );
        assert_eq!(
            verify_waha(body, Some("sha512=00"), Some("sha512"), &secrets(&["k"])),
            Err(SignatureError::MalformedHeader("X-Webhook-Hmac"))
        );
    }

    #[test]
    fn signing_helpers_produce_what_the_verifiers_accept() {
        let secret = Secret::from("k");
        let body = br#"{"a":1}"#;
        assert_eq!(
            verify_meta(
                body,
                Some(&sign_meta(&secret, body)),
                std::slice::from_ref(&secret)
            ),
            Ok(())
        );
        assert_eq!(
            verify_waha(
                body,
                Some(&sign_waha(&secret, body)),
                Some("sha512"),
                &[secret]
            ),
            Ok(())
        );
        assert_eq!(
            sign_meta(&Secret::from(META_SECRET), META_ESCAPED_BODY.as_bytes()),
            META_ESCAPED_SIG
        );
    }

    #[test]
    fn handshake_echoes_the_challenge_for_the_right_token() {
        let tokens = secrets(&["verify-me"]);
        let q = "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444";
        assert_eq!(
            meta_handshake(q, &tokens),
            HandshakeOutcome::Challenge("1158201444".into())
        );
    }

    #[test]
    fn handshake_decodes_percent_encoded_parameters() {
        let tokens = secrets(&["a b&c"]);
        let q = "hub.challenge=abc%20123&hub.mode=subscribe&hub.verify_token=a+b%26c";
        assert_eq!(
            meta_handshake(q, &tokens),
            HandshakeOutcome::Challenge("abc 123".into())
        );
    }

    #[test]
    fn handshake_forbids_wrong_token_wrong_mode_or_missing_parts() {
        let tokens = secrets(&["verify-me"]);
        for q in [
            "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
            "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
            "hub.mode=subscribe&hub.verify_token=verify-me",
            "hub.verify_token=verify-me&hub.challenge=1",
        ] {
            assert_eq!(
                meta_handshake(q, &tokens),
                HandshakeOutcome::Forbidden,
                "{q}"
            );
        }
        let q = "hub.mode=subscribe&hub.verify_token=&hub.challenge=1";
        assert_eq!(meta_handshake(q, &[]), HandshakeOutcome::Forbidden);
        assert_eq!(meta_handshake("", &tokens), HandshakeOutcome::NotHandshake);
        assert_eq!(
            meta_handshake("foo=bar", &tokens),
            HandshakeOutcome::NotHandshake
        );
    }

    #[test]
    fn escaping_matches_metas_form_for_bmp_and_astral_characters() {
        assert_eq!(
            escape_non_ascii("Olá 👋~\u{7f}"),
            r"Ol\u00e1 \ud83d\udc4b~\u007f"
        );
    }
}
