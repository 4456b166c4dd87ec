//! Twilio's `X-Twilio-Signature`: base64 of HMAC-SHA1, keyed by the account's auth token, over
//! the full URL Twilio requested followed by every POST parameter (name then value, sorted by
//! name). A JSON-bodied webhook carries `bodySHA256` (hex SHA-256 of the body) in the URL's query
//! instead, and the signature covers the URL alone.
//!
//! The URL is the one configured in Twilio, which a proxy in between may have rewritten (API
//! Gateway's stage path, a custom domain), so callers pass the public URL, not what the
//! function saw. Like Twilio's own validators, the URL is also tried with the scheme's default
//! port added or removed, since Twilio signs the URL as configured and some setups add `:443`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::{Secret, SignatureError};

const HEADER: &str = "X-Twilio-Signature";

/// Verifies `X-Twilio-Signature` for a request to `url` (with its query string) carrying `body`.
///
/// Without `bodySHA256` in the query, `body` is read as `application/x-www-form-urlencoded`
/// parameters; with it, the body's SHA-256 must match and the signature covers the URL alone.
pub fn verify_twilio(
    url: &str,
    body: &[u8],
    header: Option<&str>,
    secrets: &[Secret],
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader(HEADER))?.trim();
    let expected = STANDARD
        .decode(header)
        .ok()
        .filter(|d| d.len() == 20)
        .ok_or(SignatureError::MalformedHeader(HEADER))?;
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let params = match body_sha256(url) {
        Some(claimed) => {
            let actual = hex::encode(Sha256::digest(body));
            if !bool::from(
                actual
                    .as_bytes()
                    .ct_eq(claimed.to_ascii_lowercase().as_bytes()),
            ) {
                return Err(SignatureError::Mismatch);
            }
            String::new()
        }
        None => sorted_params(body),
    };
    let ok = url_variants(url).iter().any(|candidate| {
        let signed = [candidate.as_bytes(), params.as_bytes()];
        secrets.iter().any(|secret| {
            Hmac::<Sha1>::new_from_slice(secret.expose())
                .map(|mac| {
                    signed
                        .iter()
                        .fold(mac, |mac, part| mac.chain_update(part))
                        .verify_slice(&expected)
                        .is_ok()
                })
                .unwrap_or(false)
        })
    });
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The `X-Twilio-Signature` Twilio would send for a form `body` posted to `url` (for tests and
/// the `sign` tool).
pub fn sign_twilio(secret: &Secret, url: &str, body: &[u8]) -> String {
    let params = match body_sha256(url) {
        Some(_) => String::new(),
        None => sorted_params(body),
    };
    let digest = Hmac::<Sha1>::new_from_slice(secret.expose())
        .map(|m| {
            m.chain_update(url.as_bytes())
                .chain_update(params.as_bytes())
                .finalize()
                .into_bytes()
                .to_vec()
        })
        .unwrap_or_default();
    STANDARD.encode(digest)
}

/// The `bodySHA256` query parameter of `url`, if any.
fn body_sha256(url: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "bodySHA256")
        .map(|(_, value)| value.into_owned())
}

/// Every form parameter of `body`, decoded, sorted by name (then value, for repeated names) and
/// concatenated as name then value.
fn sorted_params(body: &[u8]) -> String {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    params.into_iter().fold(String::new(), |mut out, (k, v)| {
        out.push_str(&k);
        out.push_str(&v);
        out
    })
}

/// `url` as given, and with the scheme's default port added (when it has none) or removed (when
/// it names it).
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    // An IPv6 literal's colons are inside brackets; a port comes after the last `]`.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    match authority[host_end..].rfind(':').map(|i| i + host_end) {
        Some(colon) if &authority[colon + 1..] == default_port => {
            out.push(format!("{scheme}://{}{tail}", &authority[..colon]));
        }
        Some(_) => {}
        None => out.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::from(*s)).collect()
    }

    /// Twilio's documented example (its security guide), reproduced in the fixtures' notes.
    #[test]
    fn accepts_twilios_documented_vector() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let body = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
        let sig = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert_eq!(
            verify_twilio(url, body, Some(sig), &secrets(&["12345"])),
            Ok(())
        );
        assert_eq!(sign_twilio(&Secret::from("12345"), url, body), sig);
        // The order of the parameters in the body does not matter; their values do.
        let shuffled = b"To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE&From=%2B12349013030&Caller=%2B12349013030";
        assert_eq!(
            verify_twilio(url, shuffled, Some(sig), &secrets(&["12345"])),
            Ok(())
        );
        let changed = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1235&From=%2B12349013030&To=%2B18005551212";
        assert_eq!(
            verify_twilio(url, changed, Some(sig), &secrets(&["12345"])),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn accepts_the_fixture_vector_from_the_signature_notes() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/providers/twilio-status-read.form.txt"
        ))
        .unwrap();
        let url = "https://gw.example.com/webhooks/twilio/status";
        let sig = "ry8tq/MlEBVpJPUeem0id3hhh4A=";
        let s = secrets(&["old-token", "twilio_auth_token_example"]);
        assert_eq!(verify_twilio(url, &body, Some(sig), &s), Ok(()));
        // The same request replayed to another URL does not verify.
        for other in [
            "https://gw.example.com/webhooks/twilio-other/status",
            "http://gw.example.com/webhooks/twilio/status",
            "https://gw.example.com/webhooks/twilio/status?x=1",
        ] {
            assert_eq!(
                verify_twilio(other, &body, Some(sig), &s),
                Err(SignatureError::Mismatch),
                "{other}"
            );
        }
    }

    #[test]
    fn tries_the_url_with_and_without_the_default_port() {
        let body = b"MessageSid=SM1&Body=hi";
        let token = Secret::from("t");
        let signed_without = sign_twilio(&token, "https://gw.example.com/webhooks/tw", body);
        let signed_with = sign_twilio(&token, "https://gw.example.com:443/webhooks/tw", body);
        let s = std::slice::from_ref(&token);
        for (url, sig) in [
            ("https://gw.example.com:443/webhooks/tw", &signed_without),
            ("https://gw.example.com/webhooks/tw", &signed_with),
        ] {
            assert_eq!(verify_twilio(url, body, Some(sig), s), Ok(()), "{url}");
        }
        // Another port is another URL.
        assert_eq!(
            verify_twilio(
                "https://gw.example.com:8443/webhooks/tw",
                body,
                Some(&signed_without),
                s
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            url_variants("http://[::1]:80/x"),
            vec!["http://[::1]:80/x".to_owned(), "http://[::1]/x".to_owned()]
        );
        assert_eq!(
            url_variants("http://[::1]/x?a=b"),
            vec![
                "http://[::1]/x?a=b".to_owned(),
                "http://[::1]:80/x?a=b".to_owned()
            ]
        );
    }

    #[test]
    fn json_bodies_are_covered_by_body_sha256() {
        let body = br#"{"MessageSid":"SM1","MessageStatus":"read"}"#;
        let hash = hex::encode(Sha256::digest(body));
        let url = format!("https://gw.example.com/webhooks/tw?bodySHA256={hash}");
        let token = Secret::from("t");
        let sig = sign_twilio(&token, &url, body);
        let s = std::slice::from_ref(&token);
        assert_eq!(verify_twilio(&url, body, Some(&sig), s), Ok(()));
        let altered = br#"{"MessageSid":"SM1","MessageStatus":"sent"}"#;
        assert_eq!(
            verify_twilio(&url, altered, Some(&sig), s),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tells_missing_malformed_and_unkeyed_apart() {
        let s = secrets(&["t"]);
        assert_eq!(
            verify_twilio("https://x/", b"", None, &s),
            Err(SignatureError::MissingHeader(HEADER))
        );
        for bad in ["", "not base64!", "AAAA", "c2hvcnQ="] {
            assert_eq!(
                verify_twilio("https://x/", b"", Some(bad), &s),
                Err(SignatureError::MalformedHeader(HEADER)),
                "{bad}"
            );
        }
        assert_eq!(
            verify_twilio("https://x/", b"", Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="), &[]),
            Err(SignatureError::NoSecret)
        );
    }
}
