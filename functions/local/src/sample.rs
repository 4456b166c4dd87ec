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

/// A Twilio inbound WhatsApp text (form-encoded, as Twilio posts it) from `from` (digits), with
/// message SID `sid`.
pub fn twilio_text(from: &str, name: &str, sid: &str, text: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("SmsMessageSid", sid)
        .append_pair("NumMedia", "0")
        .append_pair("ProfileName", name)
        .append_pair("MessageType", "text")
        .append_pair("SmsSid", sid)
        .append_pair("WaId", from)
        .append_pair("SmsStatus", "received")
        .append_pair("Body", text)
        .append_pair("To", &format!("whatsapp:+{BUSINESS_NUMBER}"))
        .append_pair("NumSegments", "1")
        .append_pair("ReferralNumMedia", "0")
        .append_pair("MessageSid", sid)
        .append_pair("AccountSid", TWILIO_ACCOUNT_SID)
        .append_pair("From", &format!("whatsapp:+{from}"))
        .append_pair("ApiVersion", "2010-04-01")
        .finish()
}

/// A Twilio status callback: message `sid`, sent to `to` (digits), now `status` (`sent`,
/// `delivered`, `read`, `failed`, `undelivered`).
pub fn twilio_status(to: &str, sid: &str, status: &str) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("ChannelPrefix", "whatsapp")
        .append_pair("ApiVersion", "2010-04-01")
        .append_pair("MessageStatus", status)
        .append_pair("SmsSid", sid)
        .append_pair("SmsStatus", status)
        .append_pair("ChannelInstallSid", "XEcc20d939f803ee381f2442185d0d5dc5")
        .append_pair("To", &format!("whatsapp:+{to}"))
        .append_pair("From", &format!("whatsapp:+{BUSINESS_NUMBER}"))
        .append_pair("MessageSid", sid)
        .append_pair("AccountSid", TWILIO_ACCOUNT_SID)
        .append_pair("ChannelToAddress", &format!("+{to}"));
    if matches!(status, "failed" | "undelivered") {
        form.append_pair("ErrorCode", "63016");
    }
    form.finish()
}

/// The Twilio account the samples name.
pub const TWILIO_ACCOUNT_SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// A fresh Twilio message SID (`SM` and 32 hex digits).
pub fn twilio_sid() -> String {
    format!("SM{:032x}", ulid::Ulid::new().0)
}

/// A Gupshup (v2 format) inbound text from `from` (digits) with Gupshup message id `id`.
pub fn gupshup_text(from: &str, name: &str, id: &str, text: &str, at: DateTime<Utc>) -> Value {
    json!({
        "app": "DemoApp",
        "timestamp": at.timestamp_millis(),
        "version": 2,
        "type": "message",
        "payload": {
            "id": id,
            "source": from,
            "type": "text",
            "payload": {"text": text},
            "sender": {
                "phone": from,
                "name": name,
                "country_code": "1",
                "dial_code": from.strip_prefix('1').unwrap_or(from)
            }
        }
    })
}

/// An Evolution API `messages.upsert` of a text from `from` (digits) with message key `key`, as
/// the instance `demo` posts it (with its `apikey`, which wagate never passes on).
pub fn evolution_text(from: &str, name: &str, key: &str, text: &str, at: DateTime<Utc>) -> Value {
    json!({
        "event": "messages.upsert",
        "instance": "demo",
        "data": {
            "key": {"remoteJid": format!("{from}@s.whatsapp.net"), "fromMe": false, "id": key},
            "pushName": name,
            "status": "DELIVERY_ACK",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": at.timestamp(),
            "instanceId": "4b1c2d3e-0000-4000-8000-000000000001",
            "source": "android"
        },
        "destination": "http://127.0.0.1:3000/webhooks/evolution-demo",
        "date_time": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "sender": format!("{BUSINESS_NUMBER}@s.whatsapp.net"),
        "server_url": "http://127.0.0.1:8080",
        "apikey": "demo-evolution-instance-key"
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
        let cases: Vec<(&str, String, usize)> = vec![
            (
                "meta-demo",
                meta_text("15550001111", "Alice", &wamid(), "hi", now).to_string(),
                1,
            ),
            (
                "meta-demo",
                meta_status("15550001111", &wamid(), "read", now).to_string(),
                1,
            ),
            (
                "waha-demo",
                waha_message("15550002222", "Bob", "3EB0AA", "hello", now).to_string(),
                1,
            ),
            (
                "360dialog-demo",
                meta_text("15550003333", "Dee", &wamid(), "hi", now).to_string(),
                1,
            ),
            (
                "gupshup-demo",
                gupshup_text(
                    "15550004444",
                    "Gus",
                    "gBEGkYaYVSEEAgnPFrOLcjkFjL8",
                    "hi",
                    now,
                )
                .to_string(),
                1,
            ),
            (
                "evolution-demo",
                evolution_text("15550005555", "Eve", "3EB0C767D26A1D2F5A1E", "hi", now).to_string(),
                1,
            ),
            (
                "twilio-demo",
                twilio_text("15550006666", "Tia", &twilio_sid(), "hi"),
                1,
            ),
            (
                "twilio-demo",
                twilio_status("15550006666", &twilio_sid(), "read"),
                1,
            ),
        ];
        let total: usize = cases.iter().map(|c| c.2).sum();
        for (source_id, body, events) in cases {
            let source = config.source(source_id).unwrap();
            let url = format!("http://127.0.0.1:3000/webhooks/{source_id}");
            let owned = request_headers(source, &url, body.as_bytes());
            let mut headers: Vec<(&str, &str)> = owned
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            headers.push(("Host", "127.0.0.1:3000"));
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
        assert_eq!(queue.len(), total);
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
