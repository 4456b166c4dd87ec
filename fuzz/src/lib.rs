//! Checks shared by the wagate fuzz targets.

pub mod admin;
pub mod diagnose;
pub mod queue;
pub mod retry;
pub mod sources;

use std::future::Future;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use shared::ids::SourceId;
use shared::model::{InboundEvent, Provider};

/// A fixed receive time, so runs are reproducible.
fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 28, 6, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Runs `future` to completion on one current-thread runtime shared by every iteration. Its
/// clock is paused: whenever nothing is ready it jumps to the next timer, so a long poll of an
/// in-memory queue (a redrive waits for more dead letters) costs no real time.
pub fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("a current-thread runtime builds")
        })
        .block_on(future)
}

/// Normalizes `body` as `provider` and checks the parser's documented invariants:
///
/// - it never panics (libFuzzer reports a panic as a crash);
/// - it refuses only bytes that are not JSON;
/// - a WAHA POST is exactly one event;
/// - every event has a dedup key and survives the queue: serializes with serde_json and reads
///   back equal.
pub fn check_normalize(provider: Provider, body: &[u8]) {
    let source = SourceId::parse("src-fuzz").expect("valid source id");
    let result = shared::providers::normalize(&source, provider, body, received_at());
    let events = match result {
        Ok(events) => events,
        Err(err) => {
            assert!(
                serde_json::from_slice::<serde_json::Value>(body).is_err(),
                "{provider:?} parser refused valid JSON: {err}"
            );
            return;
        }
    };
    if provider == Provider::Waha {
        assert_eq!(events.len(), 1, "a WAHA POST must be exactly one event");
    }
    for event in &events {
        check_round_trip(event);
    }
}

fn check_round_trip(event: &InboundEvent) {
    assert!(!event.dedup_key.is_empty(), "empty dedup key: {event:?}");
    let text = serde_json::to_string(event).expect("event serializes");
    let back: InboundEvent = match serde_json::from_str(&text) {
        Ok(back) => back,
        Err(err) => panic!("event does not deserialize: {err}\n{text}"),
    };
    assert_eq!(&back, event, "round trip changed the event\n{text}");
}

/// One `signatures` input, split into its parts.
#[derive(Debug)]
pub struct SignatureInput<'a> {
    pub body: &'a [u8],
    pub secret: &'a [u8],
    pub meta_header: Option<String>,
    pub waha_header: Option<String>,
    pub waha_algorithm: Option<String>,
    pub query: String,
    pub chat_id: String,
    pub waha_message_id: String,
}

/// Verifies, handshakes and id parses over fuzzed values: nothing may panic, nothing unsigned may
/// verify, and what we sign ourselves must verify.
pub fn check_signatures(input: &SignatureInput<'_>) {
    use hmac::{Hmac, Mac};
    use sha2::{Sha256, Sha512};
    use shared::signature::{
        HandshakeOutcome, Secret, bearer_value, meta_handshake, sign_twilio, verify_meta,
        verify_token, verify_twilio, verify_waha,
    };

    let body = input.body;
    let secrets = [Secret::new(input.secret)];

    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> Vec<u8> {
        <M as Mac>::new_from_slice(key)
            .expect("HMAC takes keys of any length")
            .chain_update(body)
            .finalize()
            .into_bytes()
            .to_vec()
    }
    let sha256 = mac::<Hmac<Sha256>>(input.secret, body);
    let sha512 = mac::<Hmac<Sha512>>(input.secret, body);
    // The form Meta signs when a proxy decoded its `\uXXXX` escapes.
    let sha256_escaped = std::str::from_utf8(body)
        .ok()
        .filter(|_| !body.is_ascii())
        .map(|text| mac::<Hmac<Sha256>>(input.secret, escape_non_ascii(text).as_bytes()));

    // Fuzzed headers: no panic, and an accepted header carries the right digest.
    let meta_header = input.meta_header.as_deref();
    if verify_meta(body, meta_header, &secrets).is_ok() {
        let digest = meta_header
            .map(str::trim)
            .and_then(|h| h.get(7..))
            .and_then(|h| hex::decode(h).ok())
            .expect("accepted Meta header is sha256=<hex>");
        assert!(
            digest == sha256 || Some(&digest) == sha256_escaped.as_ref(),
            "Meta header {meta_header:?} accepted with the wrong digest"
        );
    }
    assert!(verify_meta(body, meta_header, &[]).is_err());

    let waha_header = input.waha_header.as_deref();
    for algorithm in [input.waha_algorithm.as_deref(), None] {
        if verify_waha(body, waha_header, algorithm, &secrets).is_ok() {
            let digest = waha_header
                .and_then(|h| hex::decode(h.trim()).ok())
                .expect("accepted WAHA header is hex");
            assert!(
                digest == sha256 || digest == sha512,
                "WAHA header {waha_header:?} ({algorithm:?}) accepted with the wrong digest"
            );
        }
        assert!(verify_waha(body, waha_header, algorithm, &[]).is_err());
    }

    // Headers we compute ourselves: must verify, in every documented spelling.
    let hex256 = hex::encode(&sha256);
    let hex512 = hex::encode(&sha512);
    for header in [
        format!("sha256={hex256}"),
        format!(" SHA256={} ", hex256.to_uppercase()),
    ] {
        assert_eq!(verify_meta(body, Some(&header), &secrets), Ok(()));
    }
    for (header, algorithm) in [
        (&hex512, None),
        (&hex512, Some("sha512")),
        (&hex512, Some(" SHA512 ")),
        (&hex256, None),
        (&hex256, Some("sha256")),
    ] {
        assert_eq!(
            verify_waha(body, Some(header), algorithm, &secrets),
            Ok(()),
            "{algorithm:?}"
        );
    }

    // The handshake over a fuzzed query, with the secret as verify token.
    let tokens = [Secret::new(input.secret)];
    let _ = meta_handshake(&input.query, &tokens);
    assert!(
        !matches!(
            meta_handshake(&input.query, &[]),
            HandshakeOutcome::Challenge(_)
        ),
        "handshake accepted with no verify token configured"
    );
    // A well-formed handshake with the right token answers the challenge.
    if let Ok(token) = std::str::from_utf8(input.secret) {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("hub.mode", "subscribe")
            .append_pair("hub.verify_token", token)
            .append_pair("hub.challenge", &input.query)
            .finish();
        assert_eq!(
            meta_handshake(&query, &tokens),
            HandshakeOutcome::Challenge(input.query.clone())
        );
    }

    // Twilio: the fuzzed query as the URL's, the WAHA header part as X-Twilio-Signature. A fuzzed
    // header verifies only if it is what we would sign; what we sign verifies; nothing verifies
    // for another URL or with no token.
    let url = format!("https://gw.example.com/webhooks/tw?{}", input.query);
    let twilio_header = waha_header;
    let signed = sign_twilio(&secrets[0], &url, body);
    if verify_twilio(&url, body, twilio_header, &secrets).is_ok() {
        let given = twilio_header.map(str::trim).unwrap_or_default();
        let with_port = sign_twilio(
            &secrets[0],
            &url.replacen("gw.example.com", "gw.example.com:443", 1),
            body,
        );
        assert!(
            given == signed || given == with_port,
            "Twilio header {given:?} accepted with the wrong signature"
        );
    }
    let hashed_body = form_urlencoded::parse(input.query.as_bytes()).any(|(k, _)| k == "bodySHA256");
    if !hashed_body {
        assert_eq!(verify_twilio(&url, body, Some(&signed), &secrets), Ok(()));
        let elsewhere = url.replacen("/tw?", "/tw2?", 1);
        assert!(verify_twilio(&elsewhere, body, Some(&signed), &secrets).is_err());
    }
    assert!(verify_twilio(&url, body, Some(&signed), &[]).is_err());

    // Tokens: the secret verifies itself (unless blank), a fuzzed value only if it is the token.
    if let Ok(token) = std::str::from_utf8(input.secret) {
        let presented = [input.query.as_str()];
        if verify_token(&presented, &secrets).is_ok() {
            assert_eq!(input.query.trim(), token, "token {:?} accepted", input.query);
        }
        if !token.trim().is_empty() && token.trim() == token {
            assert_eq!(verify_token(&[token], &secrets), Ok(()));
            assert!(verify_token(&[&format!("Bearer {token}")], &secrets).is_err());
            assert_eq!(verify_token(&[bearer_value(&format!("Bearer {token}"))], &secrets), Ok(()));
        }
        assert!(verify_token(&[token], &[]).is_err());
    }

    // Id parsers over every text part.
    let body_text = String::from_utf8_lossy(body);
    for s in [
        input.chat_id.as_str(),
        input.waha_message_id.as_str(),
        input.query.as_str(),
        meta_header.unwrap_or_default(),
        waha_header.unwrap_or_default(),
        &body_text,
    ] {
        check_ids(s);
    }
}

/// `ChatId` and `WahaMessageId` parse without panicking, and what they parse is consistent.
fn check_ids(s: &str) {
    use shared::providers::chat_id::{ChatId, ChatKind, WahaMessageId};

    if let Ok(id) = ChatId::parse(s) {
        assert!(!id.user().is_empty());
        if id.phone_number().is_some() {
            assert_eq!(id.kind(), &ChatKind::User);
        }
        // The canonical form parses back to the same user and kind (device dropped).
        let canonical = id.to_string();
        let back = ChatId::parse(&canonical).expect("canonical JID parses");
        assert_eq!(back.user(), id.user(), "{s:?} -> {canonical:?}");
        assert_eq!(back.kind(), id.kind(), "{s:?} -> {canonical:?}");
        assert_eq!(back.device(), None);
    }
    if let Some(id) = WahaMessageId::parse(s) {
        let mut rebuilt = format!("{}_{}_{}", id.from_me, id.chat, id.id);
        if let Some(participant) = &id.participant {
            rebuilt.push('_');
            rebuilt.push_str(participant);
        }
        assert!(
            s == rebuilt || s.strip_suffix('_') == Some(rebuilt.as_str()),
            "{s:?} parsed as {id:?}"
        );
    }
}

/// Every character above `~` as `\uXXXX` UTF-16 units: how Meta writes bodies it signs. Written
/// here again on purpose: it is the oracle the verifier's own re-escaping is checked against.
fn escape_non_ascii(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
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
