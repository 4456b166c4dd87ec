use super::*;
use crate::ids::SourceId;
use crate::ports::InboundAuth;
use crate::signature::{sign_meta, sign_twilio, sign_waha};

const OLD: &str = "old_app_secret_value";
const NEW: &str = "new_app_secret_value";

fn source(provider: Provider, secrets: &[&str], inbound: InboundAuth) -> Source {
    Source {
        id: SourceId::parse("src-main").unwrap(),
        provider,
        secrets: secrets.iter().map(|s| Secret::from(*s)).collect(),
        verify_tokens: vec![],
        inbound,
        send: None,
    }
}

fn meta_source() -> Source {
    source(Provider::Meta, &[NEW, OLD], InboundAuth::default())
}

fn parts(headers: &[(&str, &str)], body: &str) -> CapturedRequest {
    CapturedRequest {
        headers: Some(CapturedHeaders::Pairs(
            headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        )),
        body: Some(body.to_owned()),
        ..CapturedRequest::default()
    }
}

/// Diagnoses, and checks what every diagnosis must hold: the verdicts that mean "accepted" are
/// exactly those ingest accepted, and no secret or body text is in the answer.
fn run(source: &Source, captured: &CapturedRequest) -> Diagnosis {
    let d = diagnose(source, captured).unwrap();
    assert_eq!(
        d.accepted,
        matches!(d.verdict, Verdict::Verified | Verdict::BodyReEncoded),
        "{d:?}"
    );
    let text = serde_json::to_string(&d).unwrap();
    for secret in &source.secrets {
        let secret = std::str::from_utf8(secret.expose()).unwrap();
        assert!(!text.contains(secret), "{text}");
    }
    assert!(!text.contains("body-marker"), "{text}");
    assert_eq!(d.secrets_configured, source.secrets.len());
    d
}

const BODY: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"body-marker"}]}"#;

#[test]
fn meta_verifies_and_names_the_rotation_secret_that_matched() {
    let s = meta_source();
    let d = run(
        &s,
        &parts(
            &[(
                "X-Hub-Signature-256",
                &sign_meta(&Secret::from(NEW), BODY.as_bytes()),
            )],
            BODY,
        ),
    );
    assert_eq!(d.verdict, Verdict::Verified);
    assert_eq!(d.matched_secret, Some(SecretMatch { index: 0, of: 2 }));
    assert!(d.hints.is_empty(), "{d:?}");

    let d = run(
        &s,
        &parts(
            &[(
                "x-hub-signature-256",
                &sign_meta(&Secret::from(OLD), BODY.as_bytes()),
            )],
            BODY,
        ),
    );
    assert_eq!(d.verdict, Verdict::Verified);
    assert_eq!(d.matched_secret, Some(SecretMatch { index: 1, of: 2 }));
    assert!(d.summary.contains("app secret 2 of 2"), "{}", d.summary);
    assert!(d.hints[0].contains("rotation"), "{:?}", d.hints);
}

#[test]
fn meta_tells_decoded_escapes_from_a_re_serialised_body() {
    let s = meta_source();
    // Meta writes `\/` and `\uXXXX`, compactly; that is what it signs.
    let as_sent = r#"{"entry":[{"id":"body-marker","text":"Ol\u00e1 \ud83d\udc4b","link":"https:\/\/x.example\/a"}]}"#;
    let signature = sign_meta(&Secret::from(NEW), as_sent.as_bytes());

    // A hop decoded only the non-ASCII escapes: ingest still accepts it.
    let decoded =
        r#"{"entry":[{"id":"body-marker","text":"Olá 👋","link":"https:\/\/x.example\/a"}]}"#;
    let d = run(&s, &parts(&[("X-Hub-Signature-256", &signature)], decoded));
    assert_eq!(d.verdict, Verdict::BodyReEncoded);
    assert!(d.accepted);

    // A proxy parsed and re-wrote the JSON (pretty, UTF-8, `/` plain): refused, and said so.
    let rewritten = "{\n  \"entry\": [\n    {\n      \"id\": \"body-marker\",\n      \"text\": \"Olá 👋\",\n      \"link\": \"https://x.example/a\"\n    }\n  ]\n}";
    let d = run(
        &s,
        &parts(&[("X-Hub-Signature-256", &signature)], rewritten),
    );
    assert_eq!(d.verdict, Verdict::BodyReSerialized);
    assert!(!d.accepted);
    assert_eq!(d.matched_secret, Some(SecretMatch { index: 0, of: 2 }));
    assert!(
        d.body_form
            .as_deref()
            .unwrap()
            .contains("as Meta writes JSON"),
        "{d:?}"
    );

    // A capture that gained a line break at the end.
    let signature = sign_meta(&Secret::from(NEW), BODY.as_bytes());
    let d = run(
        &s,
        &parts(&[("X-Hub-Signature-256", &signature)], &format!("{BODY}\n")),
    );
    assert_eq!(d.verdict, Verdict::BodyReSerialized);
    assert_eq!(
        d.body_form.as_deref(),
        Some("without the trailing line break")
    );
}

#[test]
fn meta_header_problems_are_told_apart() {
    let s = meta_source();
    let sha256 = sign_meta(&Secret::from(NEW), BODY.as_bytes());

    // Only the legacy SHA-1 header survived.
    let sha1 = {
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(OLD.as_bytes()).unwrap();
        mac.update(BODY.as_bytes());
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    };
    let d = run(&s, &parts(&[("X-Hub-Signature", &sha1)], BODY));
    assert_eq!(d.verdict, Verdict::WrongAlgorithm);
    assert_eq!(d.matched_secret, Some(SecretMatch { index: 1, of: 2 }));
    // …or was put in the SHA-256 header.
    let d = run(&s, &parts(&[("X-Hub-Signature-256", &sha1)], BODY));
    assert_eq!(d.verdict, Verdict::WrongAlgorithm);
    assert_eq!(d.matched_secret, Some(SecretMatch { index: 1, of: 2 }));

    // No header; a WAHA header instead.
    let d = run(&s, &parts(&[("X-Webhook-Hmac", "00")], BODY));
    assert_eq!(d.verdict, Verdict::HeaderMissing);
    assert!(d.hints.iter().any(|h| h.contains("WAHA")), "{:?}", d.hints);

    // The bare digest without `sha256=`.
    let bare = sha256.trim_start_matches("sha256=");
    let d = run(&s, &parts(&[("X-Hub-Signature-256", bare)], BODY));
    assert_eq!(d.verdict, Verdict::HeaderMalformed);
    assert_eq!(d.matched_secret, Some(SecretMatch { index: 0, of: 2 }));
    // Truncated, and not hex.
    let d = run(&s, &parts(&[("X-Hub-Signature-256", &sha256[..40])], BODY));
    assert_eq!(d.verdict, Verdict::HeaderMalformed);
    assert!(d.summary.contains("33 hex digits, not 64"), "{}", d.summary);
    let d = run(
        &s,
        &parts(
            &[(
                "X-Hub-Signature-256",
                &format!("sha256={}", "zz".repeat(32)),
            )],
            BODY,
        ),
    );
    assert!(d.summary.contains("not hexadecimal"), "{}", d.summary);

    // Well-formed, wrong secret.
    let forged = sign_meta(&Secret::from("another_apps_secret"), BODY.as_bytes());
    let d = run(&s, &parts(&[("X-Hub-Signature-256", &forged)], BODY));
    assert_eq!(d.verdict, Verdict::WrongSecret);
    assert_eq!(d.matched_secret, None);
    assert!(
        d.summary.contains("none of the 2 configured app secrets"),
        "{}",
        d.summary
    );

    // Nothing configured.
    let bare_source = source(Provider::Meta, &[], InboundAuth::default());
    let d = run(
        &bare_source,
        &parts(&[("X-Hub-Signature-256", &sha256)], BODY),
    );
    assert_eq!(d.verdict, Verdict::NoSecret);
}

#[test]
fn waha_algorithms_and_keys() {
    let s = source(Provider::Waha, &["waha-key-one"], InboundAuth::default());
    let key = Secret::from("waha-key-one");
    let sha512 = sign_waha(&key, BODY.as_bytes());
    let d = run(
        &s,
        &parts(
            &[
                ("X-Webhook-Hmac", &sha512),
                ("X-Webhook-Hmac-Algorithm", "sha512"),
            ],
            BODY,
        ),
    );
    assert_eq!(d.verdict, Verdict::Verified);

    // A SHA-256 digest announced as sha512.
    let sha256 = {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"waha-key-one").unwrap();
        mac.update(BODY.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let d = run(
        &s,
        &parts(
            &[
                ("X-Webhook-Hmac", &sha256),
                ("X-Webhook-Hmac-Algorithm", "sha512"),
            ],
            BODY,
        ),
    );
    assert_eq!(d.verdict, Verdict::WrongAlgorithm);
    assert_eq!(d.matched_secret, Some(SecretMatch { index: 0, of: 1 }));
    // Unannounced, its length says sha256: accepted.
    let d = run(&s, &parts(&[("X-Webhook-Hmac", &sha256)], BODY));
    assert_eq!(d.verdict, Verdict::Verified);

    let d = run(
        &s,
        &parts(
            &[
                ("X-Webhook-Hmac", &sha512),
                ("X-Webhook-Hmac-Algorithm", "md5"),
            ],
            BODY,
        ),
    );
    assert_eq!(d.verdict, Verdict::WrongAlgorithm);
    let d = run(&s, &parts(&[("X-Webhook-Hmac", &sha512[..100])], BODY));
    assert_eq!(d.verdict, Verdict::HeaderMalformed);
    let other = sign_waha(&Secret::from("another-key"), BODY.as_bytes());
    let d = run(&s, &parts(&[("X-Webhook-Hmac", &other)], BODY));
    assert_eq!(d.verdict, Verdict::WrongSecret);
}

#[test]
fn twilio_names_the_url_that_was_signed() {
    let form = "Body=body-marker&From=whatsapp%3A%2B15550001111&MessageSid=SM1";
    let token = Secret::from("twilio-auth-token");
    let signed_for = |url: &str| sign_twilio(&token, url, form.as_bytes());

    // Behind a proxy: Twilio called the public URL, wagate saw its own host.
    let rebuilt = source(
        Provider::Twilio,
        &["twilio-auth-token"],
        InboundAuth::default(),
    );
    let raw = format!(
        "POST /webhooks/src-main HTTP/1.1\r\nHost: internal.local:3000\r\nX-Twilio-Signature: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n{form}",
        signed_for("https://gw.example.com/prod/webhooks/src-main")
    );
    let captured = CapturedRequest {
        raw: Some(raw),
        ..CapturedRequest::default()
    };
    let d = run(&rebuilt, &captured);
    assert_eq!(d.verdict, Verdict::WrongSecret, "{d:?}");
    assert!(
        d.summary
            .contains("http://internal.local:3000/webhooks/src-main"),
        "{}",
        d.summary
    );

    // Told the URL Twilio called, it finds it and says what to configure.
    let d = run(
        &rebuilt,
        &CapturedRequest {
            url: Some("https://gw.example.com/prod/webhooks/src-main".into()),
            ..captured
        },
    );
    assert_eq!(d.verdict, Verdict::UrlMismatch, "{d:?}");
    assert_eq!(
        d.signed_url.as_deref(),
        Some("https://gw.example.com/prod/webhooks/src-main")
    );
    assert!(d.hints[0].contains("public_url to https://gw.example.com/prod/webhooks/src-main"));

    // Signed for the host it reached, but over https (a TLS-terminating proxy).
    let raw = format!(
        "POST /webhooks/src-main HTTP/1.1\nHost: gw.example.com\nX-Twilio-Signature: {}\n\n{form}",
        signed_for("https://gw.example.com/webhooks/src-main")
    );
    let d = run(
        &rebuilt,
        &CapturedRequest {
            raw: Some(raw.clone()),
            ..CapturedRequest::default()
        },
    );
    assert_eq!(d.verdict, Verdict::UrlMismatch, "{d:?}");

    // With public_url configured, the same request verifies.
    let public = source(
        Provider::Twilio,
        &["twilio-auth-token"],
        InboundAuth {
            public_url: Some("https://gw.example.com/webhooks/src-main".into()),
            ..InboundAuth::default()
        },
    );
    let d = run(
        &public,
        &CapturedRequest {
            raw: Some(raw),
            ..CapturedRequest::default()
        },
    );
    assert_eq!(d.verdict, Verdict::Verified, "{d:?}");

    let d = run(
        &public,
        &parts(&[("X-Twilio-Signature", "not base64!")], form),
    );
    assert_eq!(d.verdict, Verdict::HeaderMalformed);
}

#[test]
fn tokens_are_found_where_they_are_read_or_their_absence_explained() {
    let s = source(
        Provider::Gupshup,
        &["first-token", "second-token"],
        InboundAuth::default(),
    );
    let d = run(&s, &parts(&[], BODY));
    assert_eq!(d.verdict, Verdict::TokenMissing);
    assert_eq!(d.checked, "header X-Wagate-Token or query parameter token");
    let d = run(
        &s,
        &parts(&[("Authorization", "Bearer second-token")], BODY),
    );
    assert_eq!(d.verdict, Verdict::TokenMissing);
    assert!(
        d.hints
            .iter()
            .any(|h| h.contains("token_header to Authorization")),
        "{:?}",
        d.hints
    );

    let d = run(&s, &parts(&[("X-Wagate-Token", "second-token")], BODY));
    assert_eq!(d.verdict, Verdict::Verified);
    assert_eq!(d.checked, "header X-Wagate-Token");
    assert_eq!(d.matched_secret, Some(SecretMatch { index: 1, of: 2 }));

    let query = CapturedRequest {
        raw: Some(format!(
            "POST /webhooks/src-main?token=first-token HTTP/1.1\n\n{BODY}"
        )),
        ..CapturedRequest::default()
    };
    let d = run(&s, &query);
    assert_eq!(d.verdict, Verdict::Verified);
    assert_eq!(d.checked, "query parameter token");

    let d = run(&s, &parts(&[("X-Wagate-Token", "stale-token")], BODY));
    assert_eq!(d.verdict, Verdict::WrongSecret);
    assert!(
        d.summary.contains("none of the 2 configured tokens"),
        "{}",
        d.summary
    );

    let evolution = source(
        Provider::Evolution,
        &["instance-api-key"],
        InboundAuth::default(),
    );
    let body = r#"{"event":"messages.upsert","apikey":"instance-api-key","data":{}}"#;
    let d = run(&evolution, &parts(&[], body));
    assert_eq!(d.verdict, Verdict::Verified);
    assert_eq!(d.checked, "body apikey");
}

#[test]
fn captures_are_read_exactly_or_refused_with_the_reason() {
    let capture = read_raw("POST https://gw.example.com/webhooks/a?x=1 HTTP/1.1\r\nHost: h\r\nX-A:  v \r\n\r\n{\"a\":1}\r\n").unwrap();
    assert_eq!(
        capture.origin,
        Some(("https".into(), "gw.example.com".into()))
    );
    assert_eq!(capture.path, "/webhooks/a");
    assert_eq!(capture.query, "x=1");
    assert_eq!(
        capture.headers,
        vec![("Host".into(), "h".into()), ("X-A".into(), "v".into())]
    );
    assert_eq!(capture.body, b"{\"a\":1}\r\n");

    // Headers only (no request line), LF line ends, no body.
    let capture = read_raw("Content-Type: application/json\nX-B: 2").unwrap();
    assert_eq!(capture.headers.len(), 2);
    assert!(capture.body.is_empty());

    let err = read_raw("Host: h\nthis is not a header\n\n{}").unwrap_err();
    assert_eq!(
        err.0,
        "line 2 is neither a request line nor a `Name: value` header"
    );
    let both = CapturedRequest {
        raw: Some("Host: h\n\n{}".into()),
        body: Some("{}".into()),
        ..CapturedRequest::default()
    };
    assert!(diagnose(&meta_source(), &both).is_err());
    let bad = CapturedRequest {
        body_base64: Some("%%%".into()),
        ..CapturedRequest::default()
    };
    assert!(diagnose(&meta_source(), &bad).is_err());
    let url = CapturedRequest {
        url: Some("ftp://x/".into()),
        ..CapturedRequest::default()
    };
    assert!(diagnose(&meta_source(), &url).is_err());
    let json: CapturedRequest =
        serde_json::from_str(r#"{"headers": {"X-A": "1"}, "body_base64": "e30="}"#).unwrap();
    assert_eq!(json.read().unwrap().body, b"{}");
    assert!(serde_json::from_str::<CapturedRequest>(r#"{"bogus": 1}"#).is_err());
}

#[test]
fn compact_json_keeps_key_order_and_rewrites_only_the_escaping() {
    let style = JsonStyle {
        escape_slash: true,
        escape_non_ascii: true,
    };
    assert_eq!(
        compact_json(
            "{ \"b\": [1, 2.5e3, true, null],\n \"a\": \"é/\\\"\\u0001\" }",
            style
        )
        .unwrap(),
        r#"{"b":[1,2.5e3,true,null],"a":"\u00e9\/\"\u0001"}"#
    );
    assert_eq!(compact_json("not json", style), None);
    assert_eq!(compact_json("\"\\ud800x\"", style), None);
}
