//! Provider-shaped sample webhooks and their signatures: for the startup `curl`, the `sign` and
//! `send` commands and the load of the fault run, so nobody computes an HMAC by hand.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::model::Provider;
use shared::ports::Source;
use shared::signature::{sign_meta, sign_twilio, sign_waha};

/// The business number the samples are addressed to.
pub const BUSINESS_NUMBER: &str = "15550009999";
/// Meta's phone number id for it.
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// The WhatsApp Business Account id.
pub const WABA_ID: &str = "102290129340398";

/// The headers that prove `body`, posted to `url`, comes from `source`'s provider (made with its
/// first secret): the provider's signature, or the source's token in its configured header.
pub fn signature_headers(source: &Source, url: &str, body: &[u8]) -> Vec<(String, String)> {
    let Some(secret) = source.secrets.first() else {
        return Vec::new();
    };
    let named = |name: &str, value: String| vec![(name.to_owned(), value)];
    match source.provider {
        Provider::Meta => named("X-Hub-Signature-256", sign_meta(secret, body)),
        Provider::Waha => vec![
            ("X-Webhook-Hmac".to_owned(), sign_waha(secret, body)),
            ("X-Webhook-Hmac-Algorithm".to_owned(), "sha512".to_owned()),
        ],
        Provider::Twilio => named("X-Twilio-Signature", sign_twilio(secret, url, body)),
        Provider::Dialog360 | Provider::Gupshup | Provider::Evolution => {
            let token = String::from_utf8_lossy(secret.expose()).into_owned();
            let header = &source.inbound.token_header;
            let value = if header.eq_ignore_ascii_case("authorization") {
                format!("Bearer {token}")
            } else {
                token
            };
            named(header, value)
        }
    }
}

/// The body's media type as `source`'s provider sends it: Twilio's form encoding (unless the body
/// is a JSON object), JSON for everyone else.
pub fn content_type(source: &Source, body: &[u8]) -> &'static str {
    let json = body.trim_ascii_start().starts_with(b"{");
    if source.provider == Provider::Twilio && !json {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    }
}

/// `Content-Type` and the [`signature_headers`]: everything a provider's request carries that
/// matters to ingest.
pub fn request_headers(source: &Source, url: &str, body: &[u8]) -> Vec<(String, String)> {
    let mut out = vec![(
        "Content-Type".to_owned(),
        content_type(source, body).to_owned(),
    )];
    out.extend(signature_headers(source, url, body));
    out
}

fn meta_envelope(value: &Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{"value": value, "field": "messages"}]
        }]
    })
}

fn metadata() -> Value {
    json!({"display_phone_number": BUSINESS_NUMBER, "phone_number_id": PHONE_NUMBER_ID})
}

/// A Meta inbound text message from `from` (display name `name`).
pub fn meta_text(from: &str, name: &str, wamid: &str, text: &str, at: DateTime<Utc>) -> Value {
    meta_envelope(&json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [{
            "from": from,
            "id": wamid,
            "timestamp": at.timestamp().to_string(),
            "type": "text",
            "text": {"body": text}
        }]
    }))
}

/// A Meta inbound image from `from`: the media id `media_id` with the file's SHA-256 (base64,
/// as Meta's webhooks give it) and a caption.
pub fn meta_image(
    from: &str,
    name: &str,
    wamid: &str,
    (media_id, sha256): (&str, &str),
    caption: &str,
    at: DateTime<Utc>,
) -> Value {
    meta_envelope(&json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [{
            "from": from,
            "id": wamid,
            "timestamp": at.timestamp().to_string(),
            "type": "image",
            "image": {"caption": caption, "mime_type": "image/png", "sha256": sha256, "id": media_id}
        }]
    }))
}

/// A Meta status update (`sent`, `delivered`, `read`, …) of an outbound message to `recipient`.
pub fn meta_status(recipient: &str, wamid: &str, status: &str, at: DateTime<Utc>) -> Value {
    meta_envelope(&json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(),
        "statuses": [{
            "id": wamid,
            "status": status,
            "timestamp": at.timestamp().to_string(),
            "recipient_id": recipient,
            "conversation": {"id": "7270432eae37498234f4444b35ffc5b3", "origin": {"type": "service"}},
            "pricing": {"billable": true, "pricing_model": "CBP", "category": "service"}
        }]
    }))
}

/// A WAHA `message` event from `from` (digits) with `key` as the message key.
pub fn waha_message(from: &str, name: &str, key: &str, text: &str, at: DateTime<Utc>) -> Value {
    json!({
        "id": format!("evt_{}", ulid::Ulid::new().to_string().to_lowercase()),
        "timestamp": at.timestamp_millis(),
        "event": "message",
        "session": "default",
        "me": {"id": format!("{BUSINESS_NUMBER}@c.us"), "pushName": "Example Shop"},
        "payload": {
            "id": format!("false_{from}@c.us_{key}"),
            "timestamp": at.timestamp(),
            "from": format!("{from}@c.us"),
            "fromMe": false,
            "source": "app",
            "to": format!("{BUSINESS_NUMBER}@c.us"),
            "body": text,
            "hasMedia": false,
            "ack": 2,
            "ackName": "DEVICE",
            "_data": {"notifyName": name}
        },
        "engine": "GOWS"
    })
}

/// A fresh Meta message id.
pub fn wamid() -> String {
    format!("wamid.LOCAL{}", ulid::Ulid::new())
}

/// A `curl` command that posts `body` to `url` with the headers `source` needs (the body has no
/// single quote, so it goes inline).
pub fn curl(url: &str, source: &Source, body: &str) -> String {
    let mut out = format!("curl -sS -X POST '{url}'");
    for (name, value) in request_headers(source, url, body.as_bytes()) {
        out.push_str(&format!(" -H '{name}: {value}'"));
    }
    out.push_str(&format!(" --data-raw '{}'", body.replace('\'', "'\\''")));
    out
}

#[cfg(test)]
mod tests {
    use shared::pipeline::ingest::{Ingest, IngestRequest};
    use shared::ports::StaticSources;
    use shared::ports::memory::{MemoryBlobStore, MemoryQueue};
    use std::sync::Arc;

    use super::*;
    use crate::config::LocalConfig;

    /// Every sample verifies and normalizes through the real ingest stage.
    #[tokio::test]
    async fn samples_are_accepted_by_ingest_with_their_signatures() {
        let config = LocalConfig::sample().unwrap();
        let queue = Arc::new(MemoryQueue::new("inbound"));
        let ingest = Ingest {
            sources: Arc::new(StaticSources::new(config.sources.clone())),
            queue: queue.clone(),
            blobs: Arc::new(MemoryBlobStore::new()),
            config: Default::default(),
        };
        let now = Utc::now();
        let cases = [
            (
                "meta-demo",
                meta_text("15550001111", "Alice", &wamid(), "hi", now),
                1,
            ),
            (
                "meta-demo",
                meta_status("15550001111", &wamid(), "read", now),
                1,
            ),
            (
                "waha-demo",
                waha_message("15550002222", "Bob", "3EB0AA", "hello", now),
                1,
            ),
        ];
        for (source_id, body, events) in cases {
            let source = config.source(source_id).unwrap();
            let body = body.to_string();
            let url = format!("http://127.0.0.1:3000/webhooks/{source_id}");
            let owned = request_headers(source, &url, body.as_bytes());
            let mut headers: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            headers.push(("Host", "127.0.0.1:3000"));
            headers.push(("X-Forwarded-Proto", "http"));
            let out = ingest
                .handle(
                    IngestRequest {
                        path: &url[21..],
                        ..IngestRequest::post(source_id, body.as_bytes(), &headers)
                    },
                    now,
                )
                .await;
            assert_eq!(out.status, 200, "{source_id}: {}", out.body);
            assert_eq!(out.received, events);
        }
        assert_eq!(queue.len(), 3);
    }

    #[test]
    fn curl_quotes_the_body_and_carries_the_signature() {
        let config = LocalConfig::sample().unwrap();
        let source = config.source("meta-demo").unwrap();
        let cmd = curl(
            "http://127.0.0.1:3000/webhooks/meta-demo",
            source,
            r#"{"a":"it's"}"#,
        );
        assert!(cmd.contains("X-Hub-Signature-256: sha256="));
        assert!(cmd.ends_with(r#"--data-raw '{"a":"it'\''s"}'"#), "{cmd}");
    }
}
