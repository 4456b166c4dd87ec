//! The signature diagnosis over a fuzzed capture: a provider, secrets, the captured request and
//! the URL the provider called.

use shared::ids::SourceId;
use shared::model::Provider;
use shared::pipeline::ingest::diagnose::{CapturedRequest, Verdict, diagnose};
use shared::ports::{InboundAuth, Source};
use shared::signature::Secret;

/// The input split on 0xFF: `provider byte, secrets (comma-separated), raw capture, url,
/// public_url`. Checks:
///
/// - no panic, whatever the capture;
/// - a capture is refused (with a reason) or diagnosed, and the diagnosis's `accepted` is
///   exactly the verdicts that mean accepted (`verified`, `body_re_encoded`): ingest's own check
///   and the explanation never disagree;
/// - a matched secret is one of the configured ones, and only named for verdicts that matched;
/// - the answer never contains a configured secret (one with a control character, which no
///   fixed text has, that the capture itself does not contain).
pub fn check_diagnose(data: &[u8]) {
    let mut parts = data.splitn(5, |b| *b == 0xFF);
    let provider = parts
        .next()
        .and_then(|p| p.first())
        .map_or(Provider::Meta, |b| {
            Provider::ALL[usize::from(*b) % Provider::ALL.len()]
        });
    let text = |part: Option<&[u8]>| part.map(|p| String::from_utf8_lossy(p).into_owned());
    let secrets: Vec<String> = text(parts.next())
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let raw = text(parts.next()).unwrap_or_default();
    let url = text(parts.next()).filter(|u| !u.is_empty());
    let public_url = text(parts.next()).filter(|u| !u.is_empty());
    let Ok(id) = SourceId::parse("fuzz-source") else {
        return;
    };
    let source = Source {
        id,
        provider,
        secrets: secrets.iter().map(|s| Secret::from(s.as_str())).collect(),
        verify_tokens: Vec::new(),
        inbound: InboundAuth {
            public_url,
            ..InboundAuth::default()
        },
        send: None,
    };
    let captured = CapturedRequest {
        raw: Some(raw.clone()),
        url,
        ..CapturedRequest::default()
    };
    let Ok(d) = diagnose(&source, &captured) else {
        return;
    };
    assert_eq!(
        d.accepted,
        matches!(d.verdict, Verdict::Verified | Verdict::BodyReEncoded),
        "{d:?}"
    );
    assert_eq!(d.provider, provider);
    assert_eq!(d.secrets_configured, secrets.len());
    if let Some(m) = d.matched_secret {
        assert!(m.index < m.of && m.of == secrets.len(), "{d:?}");
        assert!(
            !matches!(
                d.verdict,
                Verdict::WrongSecret
                    | Verdict::NoSecret
                    | Verdict::TokenMissing
                    | Verdict::HeaderMissing
            ),
            "{d:?}"
        );
    }
    if d.accepted {
        assert!(d.matched_secret.is_some(), "{d:?}");
    }
    // A secret can spell fixed text ("X-Hub-Signature"), and the fuzzer learns the answer's
    // words from the check itself; a control character in a secret is never in fixed text.
    let mut said = vec![d.summary.as_str(), d.checked.as_str()];
    said.extend(d.hints.iter().map(String::as_str));
    said.extend(d.body_form.as_deref());
    said.extend(d.signed_url.as_deref());
    let given = [
        raw.as_str(),
        captured.url.as_deref().unwrap_or_default(),
        source.inbound.public_url.as_deref().unwrap_or_default(),
    ];
    for secret in &secrets {
        let marked = secret.chars().any(|c| ('\u{1}'..='\u{8}').contains(&c));
        if marked && !given.iter().any(|g| g.contains(secret.as_str())) {
            for text in &said {
                assert!(!text.contains(secret.as_str()), "a secret in {text:?}");
            }
        }
    }
}
