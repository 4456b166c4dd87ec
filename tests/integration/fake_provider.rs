//! The bundled fake providers over real HTTP on 127.0.0.1: the documented answers of Meta's
//! Cloud API and WAHA, each validation error, auth failures, scripted failures, and the status
//! webhooks arriving at real receivers (a recording server, and wagate's own ingest router)
//! signed, in the planned order, with the callback data of the send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared::clock::Clock;
use shared::pipeline::ingest::Ingest;
use shared::ports::StaticSources;
use shared::ports::memory::{MemoryBlobStore, MemoryQueue};
use shared::signature::{Secret, verify_meta, verify_waha};
use tests::receiver::{Answer, Receiver};
use tests::wait::{Patience, until};
use wagate_local::config::LocalConfig;
use wagate_local::fake::graph::{SAMPLE_IMAGE_MEDIA_ID, SentMessage};
use wagate_local::fake::waha::SAMPLE_IMAGE_FILE;
use wagate_local::fake::{
    AnnouncedMedia, DownloadFault, FakeGraph, FakeGraphOptions, FakeWaha, FakeWahaOptions,
    GraphError, PricingModel, Status, StatusPlan, WahaError, WebhookRetry,
};

const TOKEN: &str = "test-access-token";
const APP_SECRET: &str = "test-app-secret";
const API_KEY: &str = "test-waha-key";
const HMAC_KEY: &str = "test-waha-hmac";

fn deadline() -> Duration {
    Patience::embedded().deadline(20)
}

fn fast_retry() -> WebhookRetry {
    WebhookRetry {
        attempts: 4,
        first_backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(10),
    }
}

async fn graph(webhook: Option<String>, statuses: StatusPlan) -> FakeGraph {
    FakeGraph::start(FakeGraphOptions {
        access_token: Secret::from(TOKEN),
        app_secret: Secret::from(APP_SECRET),
        webhook_url: webhook,
        statuses,
        retry: fast_retry(),
        ..FakeGraphOptions::default()
    })
    .await
    .unwrap()
}

async fn waha(webhook: Option<String>, statuses: StatusPlan) -> FakeWaha {
    FakeWaha::start(FakeWahaOptions {
        api_key: Some(Secret::from(API_KEY)),
        hmac_key: Some(Secret::from(HMAC_KEY)),
        webhook_url: webhook,
        statuses,
        retry: fast_retry(),
        ..FakeWahaOptions::default()
    })
    .await
    .unwrap()
}

/// POSTs `body` to the fake's messages endpoint with `token`; (status, JSON answer).
async fn send_with(fake: &FakeGraph, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = aws_adapters::http::client()
        .post(fake.messages_url("v23.0"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn send(fake: &FakeGraph, body: &Value) -> (u16, Value) {
    send_with(fake, Some(TOKEN), body).await
}

fn text_to(to: &str) -> Value {
    json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
        "type": "text", "text": {"body": "Your order shipped"}})
}

/// A method/path call to the WAHA fake with the test key; (status, body text).
async fn call_waha(
    fake: &FakeWaha,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, String) {
    let client = aws_adapters::http::client();
    let url = format!("{}{path}", fake.url());
    let mut request = match method {
        "PUT" => client.put(url),
        "GET" => client.get(url),
        _ => client.post(url),
    };
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if method != "GET" {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

async fn waha_post(fake: &FakeWaha, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = call_waha(fake, "POST", path, Some(API_KEY), body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

/// The only `statuses[]` item of a Meta webhook body.
fn status_item(body: &Value) -> &Value {
    let statuses = body["entry"][0]["changes"][0]["value"]["statuses"]
        .as_array()
        .unwrap();
    assert_eq!(statuses.len(), 1);
    &statuses[0]
}

#[tokio::test]
async fn graph_accepts_a_text_with_metas_answer_and_records_the_request() {
    let fake = graph(None, StatusPlan::none()).await;
    let (status, body) = send(&fake, &text_to("+1 555 000 1111")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(
        body["contacts"],
        json!([{"input": "+1 555 000 1111", "wa_id": "15550001111"}])
    );
    let id = body["messages"][0]["id"].as_str().unwrap();
    assert!(id.starts_with("wamid.HBgL"), "{id}");
    assert_eq!(body["messages"][0]["message_status"], "accepted");
    // A second send gets another id.
    let (_, again) = send(&fake, &text_to("15550001111")).await;
    assert_ne!(again["messages"][0]["id"], body["messages"][0]["id"]);

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(
        requests[0].path,
        format!("/v23.0/{}/messages", wagate_local::sample::PHONE_NUMBER_ID)
    );
    assert_eq!(
        requests[0].header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(requests[0].json.as_ref(), Some(&text_to("+1 555 000 1111")));
    let sent: Vec<SentMessage> = fake.sent();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().any(|m| m.id == id && m.kind == "text"));
    fake.stop().await;
}

#[tokio::test]
async fn graph_refuses_a_missing_or_wrong_token_with_code_190() {
    let fake = graph(None, StatusPlan::none()).await;
    for token in [None, Some("not-the-token")] {
        let response = {
            let mut request = aws_adapters::http::client()
                .post(fake.messages_url("v23.0"))
                .header("content-type", "application/json")
                .body(text_to("15550001111").to_string());
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            request.send().await.unwrap()
        };
        assert_eq!(response.status().as_u16(), 401);
        assert!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("invalid_token"))
        );
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], 190, "{body}");
        assert_eq!(body["error"]["type"], "OAuthException");
        assert!(body["error"]["fbtrace_id"].as_str().unwrap().len() > 10);
    }
    assert!(fake.sent().is_empty());
    // The token may also come as a query parameter, as Graph allows.
    let response = aws_adapters::http::client()
        .post(format!(
            "{}?access_token={TOKEN}",
            fake.messages_url("v23.0")
        ))
        .header("content-type", "application/json")
        .body(text_to("15550001111").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn graph_answers_an_unknown_phone_number_id_and_path_as_graph_does() {
    let fake = graph(None, StatusPlan::none()).await;
    let client = aws_adapters::http::client();
    let post = |path: String| {
        client
            .post(format!("{}{path}", fake.url()))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(text_to("15550001111").to_string())
            .send()
    };
    let response = post("/v23.0/999999999/messages".to_owned()).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], 100);
    assert_eq!(body["error"]["error_subcode"], 33);
    assert_eq!(body["error"]["type"], "GraphMethodException");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Object with ID '999999999' does not exist")
    );
    let response = post(format!(
        "/v23.0/{}/nothing",
        wagate_local::sample::PHONE_NUMBER_ID
    ))
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], 2500);
}

#[tokio::test]
async fn graph_accepts_every_documented_message_type() {
    let fake = graph(None, StatusPlan::none()).await;
    let base = |kind: &str, object: Value| {
        let mut body = json!({"messaging_product": "whatsapp", "to": "15550001111", "type": kind});
        body[kind] = object;
        body
    };
    let mut cases = vec![
        base("text", json!({"body": "hi", "preview_url": true})),
        base(
            "template",
            json!({"name": "order_update", "language": {"code": "en_US", "policy": "deterministic"},
                "components": [
                    {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example/p.jpg"}}]},
                    {"type": "body", "parameters": [
                        {"type": "text", "text": "Alice"},
                        {"type": "currency", "currency": {"fallback_value": "$10", "code": "USD", "amount_1000": 10000}},
                        {"type": "date_time", "date_time": {"fallback_value": "May 1"}}]},
                    {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "STOP"}]},
                    {"type": "button", "sub_type": "url", "index": 1, "parameters": [{"type": "text", "text": "track/1042"}]}]}),
        ),
        base(
            "image",
            json!({"id": "1479537139650973", "caption": "receipt"}),
        ),
        base(
            "video",
            json!({"link": "https://cdn.example/v.mp4", "caption": "how-to"}),
        ),
        base("audio", json!({"id": "1479537139650974", "voice": true})),
        base(
            "document",
            json!({"link": "https://cdn.example/i.pdf", "filename": "invoice.pdf", "caption": "invoice"}),
        ),
        base("sticker", json!({"id": "1479537139650975"})),
        base(
            "location",
            json!({"latitude": 37.483307, "longitude": -122.148981, "name": "HQ", "address": "1 Hacker Way"}),
        ),
        base(
            "interactive",
            json!({"type": "button", "header": {"type": "text", "text": "Order 1042"},
                "body": {"text": "Did it arrive?"}, "footer": {"text": "Example Shop"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}},
                    {"type": "reply", "reply": {"id": "help", "title": "Talk to a human"}}]}}),
        ),
        base(
            "interactive",
            json!({"type": "list", "body": {"text": "Pick a slot"},
                "action": {"button": "Slots", "sections": [
                    {"title": "Morning", "rows": [{"id": "m1", "title": "9:00", "description": "Early"}]},
                    {"title": "Afternoon", "rows": [{"id": "a1", "title": "14:00"}, {"id": "a2", "title": "16:00"}]}]}}),
        ),
        base(
            "interactive",
            json!({"type": "cta_url", "body": {"text": "Track it"},
                "action": {"name": "cta_url", "parameters": {"display_text": "Track", "url": "https://shop.example/t/1042"}}}),
        ),
        base(
            "reaction",
            json!({"message_id": "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRUIwQzc2N0QyNkExRDJGNUExRQA=", "emoji": "👍"}),
        ),
        base("reaction", json!({"message_id": "wamid.X", "emoji": ""})),
    ];
    let mut contacts =
        json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "contacts"});
    contacts["contacts"] = json!([{"name": {"formatted_name": "Ana Lima", "first_name": "Ana"},
        "phones": [{"phone": "+1 555 000 2222", "type": "CELL", "wa_id": "15550002222"}]}]);
    cases.push(contacts);
    let mut reply = text_to("15550001111");
    reply["context"] =
        json!({"message_id": "wamid.HBgLMTU1NTAwMDExMTEVAgASGBQzRUIwQzc2N0QyNkExRDJGNUExRQA="});
    reply["biz_opaque_callback_data"] = json!("x".repeat(512));
    cases.push(reply);
    for body in &cases {
        let (status, answer) = send(&fake, body).await;
        assert_eq!(status, 200, "{body}\n{answer}");
        assert_eq!(answer["contacts"][0]["wa_id"], "15550001111");
    }

    // To a business-scoped user id: `recipient`, answered with `user_id` and no `wa_id`.
    let bsuid = json!({"messaging_product": "whatsapp", "recipient": "US.13491208655302741918",
        "type": "text", "text": {"body": "hi"}});
    let (status, answer) = send(&fake, &bsuid).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["contacts"],
        json!([{"input": "US.13491208655302741918", "user_id": "US.13491208655302741918"}])
    );

    // Mark as read, with and without the typing indicator.
    for read in [
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1"}),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN1",
            "typing_indicator": {"type": "text"}}),
    ] {
        let (status, answer) = send(&fake, &read).await;
        assert_eq!((status, answer), (200, json!({"success": true})));
    }
    assert_eq!(fake.sent().len(), cases.len() + 1);
}

#[tokio::test]
async fn graph_refuses_each_documented_violation_with_its_code() {
    let fake = FakeGraph::start(FakeGraphOptions {
        access_token: Secret::from(TOKEN),
        templates: vec!["hello_world:en_US".to_owned(), "order_update".to_owned()],
        statuses: StatusPlan::none(),
        ..FakeGraphOptions::default()
    })
    .await
    .unwrap();
    let with = |changes: Value| {
        let mut body = text_to("15550001111");
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let button =
        |title: &str, id: &str| json!({"type": "reply", "reply": {"id": id, "title": title}});
    let rows = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"id": format!("r{i}"), "title": format!("Row {i}")}))
            .collect()
    };
    // (what, body, HTTP status, code, text the message or details contain)
    let cases: Vec<(&str, Value, u16, u32, &str)> = vec![
        (
            "no messaging_product",
            with(json!({"messaging_product": null})),
            400,
            100,
            "The parameter messaging_product is required",
        ),
        (
            "another product",
            with(json!({"messaging_product": "sms"})),
            400,
            100,
            "messaging_product must be one of",
        ),
        (
            "no recipient",
            with(json!({"to": null})),
            400,
            100,
            "The parameter to is required",
        ),
        (
            "not a number",
            with(json!({"to": "alice"})),
            400,
            100,
            "'to'",
        ),
        (
            "not a BSUID",
            with(json!({"to": null, "recipient": "alice"})),
            400,
            100,
            "'recipient'",
        ),
        (
            "a group recipient type",
            with(json!({"recipient_type": "group"})),
            400,
            100,
            "recipient_type",
        ),
        (
            "unknown type",
            with(json!({"type": "fax"})),
            400,
            100,
            "Param type must be one of",
        ),
        (
            "type without its object",
            with(json!({"type": "image"})),
            400,
            100,
            "The parameter image is required",
        ),
        (
            "text without body",
            with(json!({"text": {}})),
            400,
            100,
            "text['body'] is required",
        ),
        (
            "text too long",
            with(json!({"text": {"body": "x".repeat(4097)}})),
            400,
            100,
            "text['body'] must be at most 4096 characters long",
        ),
        (
            "media with id and link",
            with(json!({"type": "image", "image": {"id": "1", "link": "https://x.example/a.jpg"}})),
            400,
            131_009,
            "exactly one of 'id' or 'link'",
        ),
        (
            "media with neither",
            with(json!({"type": "video", "video": {"caption": "x"}})),
            400,
            131_009,
            "exactly one of 'id' or 'link'",
        ),
        (
            "media link not http",
            with(json!({"type": "image", "image": {"link": "ftp://x.example/a.jpg"}})),
            400,
            131_009,
            "not a valid http(s) URL",
        ),
        (
            "caption on audio",
            with(json!({"type": "audio", "audio": {"id": "1", "caption": "x"}})),
            400,
            100,
            "audio['caption']",
        ),
        (
            "caption on sticker",
            with(json!({"type": "sticker", "sticker": {"id": "1", "caption": "x"}})),
            400,
            100,
            "sticker['caption']",
        ),
        (
            "caption too long",
            with(json!({"type": "image", "image": {"id": "1", "caption": "x".repeat(1025)}})),
            400,
            100,
            "at most 1024",
        ),
        (
            "filename on an image",
            with(json!({"type": "image", "image": {"id": "1", "filename": "a.jpg"}})),
            400,
            100,
            "image['filename']",
        ),
        (
            "location without latitude",
            with(json!({"type": "location", "location": {"longitude": 1.0}})),
            400,
            100,
            "location['latitude'] is required",
        ),
        (
            "latitude out of range",
            with(json!({"type": "location", "location": {"latitude": 91.0, "longitude": 1.0}})),
            400,
            131_009,
            "between -90 and 90",
        ),
        (
            "contacts not a list",
            with(json!({"type": "contacts", "contacts": {"name": {}}})),
            400,
            100,
            "contacts must be an array",
        ),
        (
            "contact without formatted_name",
            with(json!({"type": "contacts", "contacts": [{"name": {"first_name": "Ana"}}]})),
            400,
            100,
            "formatted_name",
        ),
        (
            "four buttons",
            with(
                json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"},
            "action": {"buttons": [button("a", "1"), button("b", "2"), button("c", "3"), button("d", "4")]}}}),
            ),
            400,
            131_009,
            "Number of buttons is invalid",
        ),
        (
            "no buttons",
            with(
                json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"}, "action": {"buttons": []}}}),
            ),
            400,
            131_009,
            "Number of buttons is invalid",
        ),
        (
            "button title over 20",
            with(
                json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"},
            "action": {"buttons": [button("This title is far too long", "1")]}}}),
            ),
            400,
            131_009,
            "Button title length invalid",
        ),
        (
            "duplicate button ids",
            with(
                json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "?"},
            "action": {"buttons": [button("a", "1"), button("b", "1")]}}}),
            ),
            400,
            131_009,
            "unique",
        ),
        (
            "interactive without body",
            with(
                json!({"type": "interactive", "interactive": {"type": "button",
            "action": {"buttons": [button("a", "1")]}}}),
            ),
            400,
            100,
            "interactive['body'] is required",
        ),
        (
            "eleven rows",
            with(
                json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "?"},
            "action": {"button": "Pick", "sections": [{"title": "A", "rows": rows(6)}, {"title": "B", "rows": rows(11)[6..].to_vec()}]}}}),
            ),
            400,
            131_009,
            "Total row count exceeded",
        ),
        (
            "eleven sections",
            with(
                json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "?"},
            "action": {"button": "Pick", "sections": (0..11).map(|i| json!({"title": format!("S{i}"), "rows": [{"id": format!("r{i}"), "title": "x"}]})).collect::<Vec<_>>()}}}),
            ),
            400,
            131_009,
            "Number of sections is invalid",
        ),
        (
            "list button text over 20",
            with(
                json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "?"},
            "action": {"button": "Choose one of these options", "sections": [{"rows": rows(1)}]}}}),
            ),
            400,
            131_009,
            "List button text length invalid",
        ),
        (
            "untitled sections",
            with(
                json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "?"},
            "action": {"button": "Pick", "sections": [{"rows": rows(1)}, {"rows": rows(2)[1..].to_vec()}]}}}),
            ),
            400,
            131_009,
            "needs a title",
        ),
        (
            "row title over 24",
            with(
                json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "?"},
            "action": {"button": "Pick", "sections": [{"rows": [{"id": "1", "title": "x".repeat(25)}]}]}}}),
            ),
            400,
            100,
            "at most 24",
        ),
        (
            "cta_url without url",
            with(
                json!({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "?"},
            "action": {"name": "cta_url", "parameters": {"display_text": "Go"}}}}),
            ),
            400,
            100,
            "['url'] is required",
        ),
        (
            "reaction without message_id",
            with(json!({"type": "reaction", "reaction": {"emoji": "👍"}})),
            400,
            100,
            "reaction['message_id'] is required",
        ),
        (
            "context without message_id",
            with(json!({"context": {}})),
            400,
            100,
            "context['message_id'] is required",
        ),
        (
            "callback data over 512",
            with(json!({"biz_opaque_callback_data": "x".repeat(513)})),
            400,
            100,
            "at most 512",
        ),
        (
            "template without name",
            with(json!({"type": "template", "template": {"language": {"code": "en_US"}}})),
            400,
            100,
            "template['name'] is required",
        ),
        (
            "template without language code",
            with(json!({"type": "template", "template": {"name": "order_update", "language": {}}})),
            400,
            100,
            "['code'] is required",
        ),
        (
            "template button without index",
            with(
                json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"},
            "components": [{"type": "button", "sub_type": "quick_reply"}]}}),
            ),
            400,
            100,
            "['index'] is required",
        ),
        (
            "unknown template",
            with(
                json!({"type": "template", "template": {"name": "nope", "language": {"code": "en_US"}}}),
            ),
            404,
            132_001,
            "template name (nope) does not exist in en_US",
        ),
        (
            "template in another language",
            with(
                json!({"type": "template", "template": {"name": "hello_world", "language": {"code": "pt_BR"}}}),
            ),
            404,
            132_001,
            "pt_BR",
        ),
        (
            "read without message_id",
            json!({"messaging_product": "whatsapp", "status": "read"}),
            400,
            100,
            "message_id is required",
        ),
    ];
    for (what, body, status, code, text) in &cases {
        let (got, answer) = send(&fake, body).await;
        assert_eq!(got, *status, "{what}: {answer}");
        let error = &answer["error"];
        assert_eq!(error["code"], *code, "{what}: {answer}");
        assert_eq!(error["type"], "OAuthException", "{what}");
        assert_eq!(
            error["error_data"]["messaging_product"], "whatsapp",
            "{what}"
        );
        let words = format!("{} {}", error["message"], error["error_data"]["details"]);
        assert!(words.contains(text), "{what}: {words}");
        assert!(error["fbtrace_id"].is_string(), "{what}");
    }
    assert!(fake.sent().is_empty());
    // The template that exists goes through.
    let (status, _) = send(
        &fake,
        &with(json!({"type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}})),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn graph_scripted_numbers_answer_their_documented_errors() {
    let receiver = Receiver::start(Vec::new()).await;
    let fake = graph(
        Some(receiver.url("/webhooks/meta-demo")),
        StatusPlan::immediate(&[Status::Sent, Status::Delivered, Status::Read]),
    )
    .await;
    for (to, status, code) in [
        ("15550000047", 400, 131_047),
        ("15550000429", 400, 130_429),
        ("15550000500", 500, 131_000),
        ("15550000503", 503, 2),
    ] {
        let (got, answer) = send(&fake, &text_to(to)).await;
        assert_eq!(got, status, "{to}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{to}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("(#{code}) ")),
            "{answer}"
        );
    }
    // Accepted, then one `failed` status with the documented error.
    let mut failed = Vec::new();
    for (to, code) in [("15550000131", 131_026), ("15550001047", 131_047)] {
        let (got, answer) = send(&fake, &text_to(to)).await;
        assert_eq!(got, 200, "{answer}");
        failed.push((
            answer["messages"][0]["id"].as_str().unwrap().to_owned(),
            code,
        ));
    }
    until("two failed statuses", deadline(), || {
        receiver.received().len() >= 2
    })
    .await;
    for (id, code) in failed {
        let received: Vec<Value> = receiver
            .received()
            .iter()
            .map(|r| json_of(&r.body))
            .filter(|b| status_item(b)["id"] == id.as_str())
            .collect();
        assert_eq!(received.len(), 1, "only `failed` for {id}");
        let item = status_item(&received[0]);
        assert_eq!(item["status"], "failed");
        assert_eq!(item["errors"][0]["code"], code);
        assert!(item["errors"][0]["error_data"]["details"].is_string());
        assert!(
            item["errors"][0]["href"]
                .as_str()
                .unwrap()
                .contains("error-codes")
        );
        assert!(item.get("conversation").is_none() && item.get("pricing").is_none());
    }
}

#[tokio::test]
async fn graph_fail_next_and_hang_next_script_the_next_answers() {
    let fake = Arc::new(graph(None, StatusPlan::none()).await);
    fake.fail_next(2, GraphError::rate_limit());
    fake.fail_next(1, GraphError::service_unavailable());
    for expected in [(400, 130_429), (400, 130_429), (503, 2)] {
        let (status, answer) = send(&fake, &text_to("15550001111")).await;
        assert_eq!(
            (status, answer["error"]["code"].as_u64().unwrap()),
            (expected.0, expected.1)
        );
    }
    assert_eq!(send(&fake, &text_to("15550001111")).await.0, 200);

    // A hung request: the client times out, the next request is answered, and stopping ends
    // the hung one.
    fake.hang_next(1);
    let timeout = aws_adapters::http::client_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .post(fake.messages_url("v23.0"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(text_to("15550001111").to_string())
        .send()
        .await;
    assert!(timeout.is_err_and(|e| e.is_timeout()));
    assert_eq!(send(&fake, &text_to("15550001111")).await.0, 200);

    fake.hang_next(1);
    let hung = {
        let fake = fake.clone();
        tokio::spawn(async move { send(&fake, &text_to("15550001111")).await.0 })
    };
    until("the hung request to arrive", deadline(), || {
        fake.requests().len() == 7
    })
    .await;
    fake.stop().await;
    assert_eq!(hung.await.unwrap(), 503);
    // Every request was recorded, the hung ones too.
    assert_eq!(fake.requests().len(), 7);
    assert_eq!(fake.sent().len(), 2);
}

#[tokio::test]
async fn graph_status_webhooks_arrive_signed_in_order_with_the_callback_data() {
    let receiver = Receiver::start(Vec::new()).await;
    let fake = graph(
        Some(receiver.url("/webhooks/meta-demo")),
        StatusPlan::immediate(&[Status::Sent, Status::Delivered, Status::Read]),
    )
    .await;
    let mut body = text_to("15550001111");
    // Non-ASCII and a slash: Meta escapes both, and the signature covers the escaped bytes.
    body["biz_opaque_callback_data"] = json!("ticket=8841/ação 👍");
    let (status, answer) = send(&fake, &body).await;
    assert_eq!(status, 200);
    let id = answer["messages"][0]["id"].as_str().unwrap().to_owned();
    until("three statuses", deadline(), || {
        receiver.received().len() >= 3
    })
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let mut conversation = None;
    for (request, expected) in received.iter().zip(["sent", "delivered", "read"]) {
        assert_eq!(request.path, "/webhooks/meta-demo");
        assert_eq!(request.header("content-type"), Some("application/json"));
        verify_meta(
            &request.body,
            request.header("x-hub-signature-256"),
            &[Secret::from(APP_SECRET)],
        )
        .unwrap();
        assert!(request.body.is_ascii());
        assert!(
            String::from_utf8_lossy(&request.body)
                .contains("ticket=8841\\/a\\u00e7\\u00e3o \\ud83d\\udc4d")
        );
        let body = json_of(&request.body);
        assert_eq!(body["object"], "whatsapp_business_account");
        assert_eq!(body["entry"][0]["id"], wagate_local::sample::WABA_ID);
        let change = &body["entry"][0]["changes"][0];
        assert_eq!(change["field"], "messages");
        assert_eq!(
            change["value"]["metadata"],
            json!({"display_phone_number": wagate_local::sample::BUSINESS_NUMBER,
                "phone_number_id": wagate_local::sample::PHONE_NUMBER_ID})
        );
        let item = status_item(&body);
        assert_eq!(item["id"], id.as_str());
        assert_eq!(item["status"], expected);
        assert_eq!(item["recipient_id"], "15550001111");
        assert_eq!(item["biz_opaque_callback_data"], "ticket=8841/ação 👍");
        assert!(item["timestamp"].as_str().unwrap().parse::<i64>().is_ok());
        match expected {
            "read" => assert!(item.get("conversation").is_none() && item.get("pricing").is_none()),
            _ => {
                assert_eq!(
                    item["pricing"],
                    json!({"billable": true, "pricing_model": "CBP", "category": "service"})
                );
                assert_eq!(item["conversation"]["origin"]["type"], "service");
                let this = item["conversation"]["id"].clone();
                assert_eq!(*conversation.get_or_insert(this.clone()), this);
                assert_eq!(
                    item["conversation"].get("expiration_timestamp").is_some(),
                    expected == "sent"
                );
            }
        }
    }
    // A tampered body does not verify with the app secret.
    let mut tampered = received[0].body.clone();
    tampered[10] ^= 1;
    assert!(
        verify_meta(
            &tampered,
            received[0].header("x-hub-signature-256"),
            &[Secret::from(APP_SECRET)]
        )
        .is_err()
    );
    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 3);
    assert!(
        webhooks
            .iter()
            .all(|w| w.delivered && w.attempts == 1 && w.message_id == id)
    );
}

#[tokio::test]
async fn graph_status_plans_can_repeat_and_reorder_and_posts_are_retried_on_5xx() {
    // The receiver is down twice (500, 503), then answers.
    let receiver = Receiver::start(vec![Answer::status(500), Answer::status(503)]).await;
    let fake = FakeGraph::start(FakeGraphOptions {
        access_token: Secret::from(TOKEN),
        app_secret: Secret::from(APP_SECRET),
        webhook_url: Some(receiver.url("/hook")),
        statuses: StatusPlan::immediate(&[Status::Read, Status::Sent, Status::Sent]),
        retry: fast_retry(),
        pricing: PricingModel::Pmp,
        ..FakeGraphOptions::default()
    })
    .await
    .unwrap();
    let mut template = json!({"messaging_product": "whatsapp", "to": "15550001111", "type": "template",
        "template": {"name": "order_update", "language": {"code": "en_US"}}});
    template["biz_opaque_callback_data"] = json!("campaign=spring");
    assert_eq!(send(&fake, &template).await.0, 200);
    until("three statuses delivered", deadline(), || {
        fake.webhooks().iter().filter(|w| w.delivered).count() == 3
    })
    .await;
    let received = receiver.received();
    // Two refused attempts of the first status, then three answered.
    assert_eq!(received.len(), 5);
    assert_eq!(
        received[0].body, received[2].body,
        "a retry sends the same bytes"
    );
    let order: Vec<String> = received[2..]
        .iter()
        .map(|r| {
            status_item(&json_of(&r.body))["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(order, ["read", "sent", "sent"]);
    let sent = status_item(&json_of(&received[3].body)).clone();
    assert_eq!(
        sent["pricing"],
        json!({"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"})
    );
    assert!(sent.get("conversation").is_none());
    assert_eq!(sent["biz_opaque_callback_data"], "campaign=spring");
    let first = &fake.webhooks()[0];
    assert_eq!(
        (first.label.as_str(), first.attempts, first.status),
        ("read", 3, Some(200))
    );
}

#[tokio::test]
async fn graph_post_status_reports_a_status_now_and_business_scoped_sends_carry_the_user_id() {
    let receiver = Receiver::start(Vec::new()).await;
    let fake = graph(Some(receiver.url("/hook")), StatusPlan::none()).await;
    let body = json!({"messaging_product": "whatsapp", "recipient": "US.13491208655302741918",
        "type": "text", "text": {"body": "hi"}});
    let (_, answer) = send(&fake, &body).await;
    let id = answer["messages"][0]["id"].as_str().unwrap();
    let record = fake.post_status(id, Status::Delivered).await.unwrap();
    assert!(record.delivered);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let body = json_of(&received[0].body);
    let item = status_item(&body);
    assert_eq!(item["status"], "delivered");
    assert_eq!(item["recipient_user_id"], "US.13491208655302741918");
    assert!(item.get("recipient_id").is_none());
    assert_eq!(
        body["entry"][0]["changes"][0]["value"]["contacts"],
        json!([{"user_id": "US.13491208655302741918"}])
    );
    assert!(
        fake.post_status("wamid.unknown", Status::Read)
            .await
            .is_err()
    );
}

/// wagate's ingest router on 127.0.0.1 with the sample's sources, and its inbound queue.
async fn ingest() -> (SocketAddr, Arc<MemoryQueue>) {
    let config = LocalConfig::sample().unwrap();
    let queue = Arc::new(MemoryQueue::new("inbound"));
    let ingest = Arc::new(Ingest {
        sources: Arc::new(StaticSources::new(config.sources.clone())),
        queue: queue.clone(),
        blobs: Arc::new(MemoryBlobStore::new()),
        config: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ingest.router(Clock::system());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, queue)
}

fn event_types(queue: &MemoryQueue) -> Vec<(String, Value)> {
    queue
        .take_all()
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            (v["type"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

#[tokio::test]
async fn graph_and_waha_webhooks_are_accepted_by_wagates_ingest() {
    let (addr, queue) = ingest().await;
    // The sample's demo secrets are the fakes' defaults.
    let meta = FakeGraph::start(FakeGraphOptions {
        webhook_url: Some(format!("http://{addr}/webhooks/meta-demo")),
        statuses: StatusPlan::immediate(&[Status::Sent, Status::Delivered, Status::Read]),
        retry: fast_retry(),
        ..FakeGraphOptions::default()
    })
    .await
    .unwrap();
    let mut body = text_to("15550001111");
    body["biz_opaque_callback_data"] = json!("ticket=8841 ✓");
    let (status, answer) =
        send_with(&meta, Some(wagate_local::fake::DEMO_ACCESS_TOKEN), &body).await;
    assert_eq!(status, 200, "{answer}");
    let wamid = answer["messages"][0]["id"].as_str().unwrap().to_owned();
    until("three Meta webhooks accepted", deadline(), || {
        meta.webhooks()
            .iter()
            .filter(|w| w.status == Some(200))
            .count()
            == 3
    })
    .await;
    let events = event_types(&queue);
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| t.starts_with("whatsapp.message."))
            .count(),
        3,
        "{types:?}"
    );
    for expected in [
        "whatsapp.message.sent",
        "whatsapp.message.delivered",
        "whatsapp.message.read",
    ] {
        let (_, event) = events.iter().find(|(t, _)| t == expected).unwrap();
        let text = event.to_string();
        assert!(text.contains(&wamid), "{expected}: {text}");
        assert!(text.contains("ticket=8841 ✓"), "{expected}: {text}");
    }

    let waha = FakeWaha::start(FakeWahaOptions {
        webhook_url: Some(format!("http://{addr}/webhooks/waha-demo")),
        statuses: StatusPlan::immediate(&[Status::Sent, Status::Delivered, Status::Read]),
        retry: fast_retry(),
        ..FakeWahaOptions::default()
    })
    .await
    .unwrap();
    let (status, text) = call_waha(
        &waha,
        "POST",
        "/api/sendText",
        Some(wagate_local::fake::DEMO_WAHA_API_KEY),
        &json!({"session": "default", "chatId": "15550002222@c.us", "text": "Hi Bob"}),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    until("four WAHA webhooks accepted", deadline(), || {
        waha.webhooks()
            .iter()
            .filter(|w| w.status == Some(200))
            .count()
            == 4
    })
    .await;
    let events = event_types(&queue);
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    for expected in [
        "whatsapp.message.sent",
        "whatsapp.message.delivered",
        "whatsapp.message.read",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
}

#[tokio::test]
async fn waha_sends_answer_the_webjs_message_object() {
    let fake = waha(None, StatusPlan::none()).await;
    let (status, message) = waha_post(
        &fake,
        "/api/sendText",
        &json!({"session": "default", "chatId": "15550001111@c.us", "text": "Thanks!", "reply_to": "false_15550001111@c.us_AAAA"}),
    )
    .await;
    assert_eq!(status, 201, "{message}");
    let id = message["id"]["_serialized"].as_str().unwrap();
    assert!(id.starts_with("true_15550001111@c.us_3EB0"), "{id}");
    assert_eq!(message["id"]["fromMe"], true);
    assert_eq!(message["id"]["remote"], "15550001111@c.us");
    assert!(id.ends_with(message["id"]["id"].as_str().unwrap()));
    assert_eq!(message["fromMe"], true);
    assert_eq!(message["ack"], 0);
    assert_eq!(message["type"], "chat");
    assert_eq!(message["body"], "Thanks!");
    assert_eq!(
        message["from"],
        format!("{}@c.us", wagate_local::sample::BUSINESS_NUMBER)
    );
    assert_eq!(message["to"], "15550001111@c.us");
    assert_eq!(message["hasQuotedMsg"], true);
    assert_eq!(message["_data"]["id"]["_serialized"], id);
    assert!(message["timestamp"].is_i64());

    // Every send endpoint, to every chat id form.
    let png = "iVBORw0KGgo=";
    let cases = [
        (
            "/api/sendText",
            json!({"chatId": "15550001111", "text": "bare digits"}),
            "chat",
            "15550001111@c.us",
        ),
        (
            "/api/sendText",
            json!({"chatId": "123456789012345@lid", "text": "to a lid"}),
            "chat",
            "123456789012345@lid",
        ),
        (
            "/api/sendText",
            json!({"chatId": "120363404102837141@g.us", "text": "to a group"}),
            "chat",
            "120363404102837141@g.us",
        ),
        (
            "/api/sendImage",
            json!({"chatId": "15550001111@c.us", "file": {"mimetype": "image/png", "data": png, "filename": "p.png"}, "caption": "pic"}),
            "image",
            "15550001111@c.us",
        ),
        (
            "/api/sendFile",
            json!({"chatId": "15550001111@c.us", "file": {"mimetype": "application/pdf", "url": "https://cdn.example/i.pdf", "filename": "i.pdf"}}),
            "document",
            "15550001111@c.us",
        ),
        (
            "/api/sendVoice",
            json!({"chatId": "15550001111@c.us", "file": {"url": "https://cdn.example/v.opus"}, "convert": false}),
            "ptt",
            "15550001111@c.us",
        ),
        (
            "/api/sendVideo",
            json!({"chatId": "15550001111@c.us", "file": {"url": "https://cdn.example/v.mp4"}, "caption": "watch", "asNote": false}),
            "video",
            "15550001111@c.us",
        ),
        (
            "/api/sendLocation",
            json!({"chatId": "15550001111@c.us", "latitude": 38.89, "longitude": -77.09, "title": "Office"}),
            "location",
            "15550001111@c.us",
        ),
        (
            "/api/sendContactVcard",
            json!({"chatId": "15550001111@c.us", "contacts": [{"fullName": "Ana Lima", "phoneNumber": "+1 555 000 2222"}]}),
            "vcard",
            "15550001111@c.us",
        ),
        (
            "/api/sendContactVcard",
            json!({"chatId": "15550001111@c.us", "contacts": [{"vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:A\nEND:VCARD"}, {"fullName": "B", "phoneNumber": "1"}]}),
            "multi_vcard",
            "15550001111@c.us",
        ),
        (
            "/api/sendList",
            json!({"chatId": "15550001111@c.us", "message": {"title": "Slots", "description": "Pick one", "button": "Slots",
            "sections": [{"title": "Morning", "rows": [{"title": "9:00", "rowId": "m1", "description": "early"}]}]}}),
            "list",
            "15550001111@c.us",
        ),
    ];
    for (path, body, kind, chat) in &cases {
        let (status, message) = waha_post(&fake, path, body).await;
        assert_eq!(status, 201, "{path}: {message}");
        assert_eq!(message["type"], *kind, "{path}");
        assert_eq!(message["to"], *chat, "{path}");
        let id = message["id"]["_serialized"].as_str().unwrap();
        assert!(id.starts_with(&format!("true_{chat}_3EB0")), "{id}");
        if chat.ends_with("@g.us") {
            assert!(
                id.ends_with(&format!("_{}@c.us", wagate_local::sample::BUSINESS_NUMBER)),
                "{id}"
            );
        }
    }
    let (_, location) = waha_post(&fake, "/api/sendLocation", &cases[7].1).await;
    assert_eq!(location["location"]["description"], "Office");
    let (_, vcard) = waha_post(&fake, "/api/sendContactVcard", &cases[8].1).await;
    assert!(vcard["vCards"][0].as_str().unwrap().contains("FN:Ana Lima"));
    assert!(
        vcard["vCards"][0]
            .as_str()
            .unwrap()
            .contains("waid=15550002222")
    );
    let (_, image) = waha_post(&fake, "/api/sendImage", &cases[3].1).await;
    assert_eq!(
        (image["hasMedia"].as_bool(), image["body"].as_str()),
        (Some(true), Some("pic"))
    );
    // The `session` field defaults to `default`.
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.header("x-api-key") == Some(API_KEY))
    );
}

#[tokio::test]
async fn waha_refuses_a_missing_or_wrong_api_key_an_unknown_session_and_route() {
    let fake = waha(None, StatusPlan::none()).await;
    let body = json!({"session": "default", "chatId": "15550001111@c.us", "text": "hi"});
    for key in [None, Some("wrong")] {
        let (status, text) = call_waha(&fake, "POST", "/api/sendText", key, &body).await;
        assert_eq!(status, 401);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"message": "Unauthorized", "statusCode": 401})
        );
    }
    let (status, answer) = waha_post(
        &fake,
        "/api/sendText",
        &json!({"session": "sales", "chatId": "15550001111@c.us", "text": "hi"}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"], "Not Found");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("We didn't find a session with name 'sales'")
    );
    let (status, answer) = waha_post(&fake, "/api/sendSticker", &body).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (404, Some("Cannot POST /api/sendSticker"))
    );
    assert!(fake.sent().is_empty());

    // Without a configured key, no key is needed.
    let open = FakeWaha::start(FakeWahaOptions {
        api_key: None,
        statuses: StatusPlan::none(),
        ..FakeWahaOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(
        call_waha(&open, "POST", "/api/sendText", None, &body)
            .await
            .0,
        201
    );
}

#[tokio::test]
async fn waha_refuses_each_malformed_request_like_wahas_validation() {
    let fake = waha(None, StatusPlan::none()).await;
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "/api/sendText",
            "no chat id",
            json!({"text": "hi"}),
            "chatId should not be empty",
        ),
        (
            "/api/sendText",
            "a phone with a plus",
            json!({"chatId": "+15550001111@c.us", "text": "hi"}),
            "chatId must be",
        ),
        (
            "/api/sendText",
            "another server",
            json!({"chatId": "15550001111@s.whatsapp.net", "text": "hi"}),
            "chatId must be",
        ),
        (
            "/api/sendText",
            "no text",
            json!({"chatId": "15550001111@c.us"}),
            "text should not be empty",
        ),
        (
            "/api/sendText",
            "a number as text",
            json!({"chatId": "15550001111@c.us", "text": 5}),
            "text must be a string",
        ),
        (
            "/api/sendImage",
            "no file",
            json!({"chatId": "15550001111@c.us"}),
            "file should not be empty",
        ),
        (
            "/api/sendImage",
            "no mimetype",
            json!({"chatId": "15550001111@c.us", "file": {"url": "https://x.example/a.jpg"}}),
            "file.mimetype should not be empty",
        ),
        (
            "/api/sendFile",
            "url and data",
            json!({"chatId": "15550001111@c.us", "file": {"mimetype": "application/pdf", "url": "https://x.example/a", "data": "AA=="}}),
            "file.url or data",
        ),
        (
            "/api/sendFile",
            "not base64",
            json!({"chatId": "15550001111@c.us", "file": {"mimetype": "application/pdf", "data": "%%%"}}),
            "file.data must be base64",
        ),
        (
            "/api/sendVideo",
            "not a URL",
            json!({"chatId": "15550001111@c.us", "file": {"url": "video.mp4"}}),
            "file.url must be a URL",
        ),
        (
            "/api/sendLocation",
            "no latitude",
            json!({"chatId": "15550001111@c.us", "longitude": 1.0}),
            "latitude should not be empty",
        ),
        (
            "/api/sendLocation",
            "latitude as text",
            json!({"chatId": "15550001111@c.us", "latitude": "1", "longitude": 1.0}),
            "latitude must be a number",
        ),
        (
            "/api/sendContactVcard",
            "no contacts",
            json!({"chatId": "15550001111@c.us", "contacts": []}),
            "contacts should not be empty",
        ),
        (
            "/api/sendContactVcard",
            "contact without phone",
            json!({"chatId": "15550001111@c.us", "contacts": [{"fullName": "A"}]}),
            "contacts.0.phoneNumber should not be empty",
        ),
        (
            "/api/sendList",
            "no message",
            json!({"chatId": "15550001111@c.us"}),
            "message should not be empty",
        ),
        (
            "/api/sendList",
            "no button",
            json!({"chatId": "15550001111@c.us", "message": {"sections": [{"title": "A", "rows": [{"title": "x", "rowId": "1"}]}]}}),
            "message.button should not be empty",
        ),
        (
            "/api/sendList",
            "row without id",
            json!({"chatId": "15550001111@c.us", "message": {"button": "B", "sections": [{"title": "A", "rows": [{"title": "x"}]}]}}),
            "message.sections.0.rows.0.rowId should not be empty",
        ),
        (
            "/api/sendSeen",
            "seen without chat",
            json!({}),
            "chatId should not be empty",
        ),
        (
            "/api/startTyping",
            "typing without chat",
            json!({}),
            "chatId should not be empty",
        ),
    ];
    for (path, what, body, text) in &cases {
        let (status, answer) = waha_post(&fake, path, body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["error"], "Bad Request", "{what}");
        assert_eq!(answer["statusCode"], 400, "{what}");
        let messages = answer["message"].as_array().unwrap();
        assert!(
            messages.iter().any(|m| m.as_str().unwrap().contains(text)),
            "{what}: {answer}"
        );
    }
    let (status, text) = call_waha(
        &fake,
        "PUT",
        "/api/reaction",
        Some(API_KEY),
        &json!({"reaction": "👍"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("messageId should not be empty"), "{text}");
    assert!(fake.sent().is_empty());
}

#[tokio::test]
async fn waha_reactions_seen_and_typing_answer_as_webjs() {
    let fake = waha(None, StatusPlan::none()).await;
    let (status, text) = call_waha(&fake, "PUT", "/api/reaction", Some(API_KEY),
        &json!({"session": "default", "messageId": "false_15550001111@c.us_3EB0AA", "reaction": "👍"})).await;
    assert_eq!((status, text.as_str()), (200, ""));
    let (status, text) = call_waha(&fake, "POST", "/api/sendSeen", Some(API_KEY),
        &json!({"session": "default", "chatId": "15550001111@c.us", "messageIds": ["false_15550001111@c.us_3EB0AA"]})).await;
    assert_eq!((status, text.as_str()), (201, ""));
    for path in ["/api/startTyping", "/api/stopTyping"] {
        let (status, answer) = waha_post(
            &fake,
            path,
            &json!({"session": "default", "chatId": "15550001111@c.us"}),
        )
        .await;
        assert_eq!((status, answer), (201, json!({"result": true})));
    }
    assert!(fake.sent().is_empty(), "no message was sent");
}

#[tokio::test]
async fn waha_posts_message_any_then_acks_signed_with_hmac_sha512() {
    let receiver = Receiver::start(Vec::new()).await;
    let fake = waha(
        Some(receiver.url("/webhooks/waha-demo")),
        StatusPlan::immediate(&[Status::Sent, Status::Delivered, Status::Read]),
    )
    .await;
    let (status, message) = waha_post(
        &fake,
        "/api/sendText",
        &json!({"session": "default", "chatId": "15550001111@c.us", "text": "Your ticket is #8841 ✓"}),
    )
    .await;
    assert_eq!(status, 201);
    let id = message["id"]["_serialized"].as_str().unwrap().to_owned();
    until("four webhooks", deadline(), || {
        receiver.received().len() >= 4
    })
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    let me = format!("{}@c.us", wagate_local::sample::BUSINESS_NUMBER);
    for (i, request) in received.iter().enumerate() {
        assert_eq!(request.header("x-webhook-hmac-algorithm"), Some("sha512"));
        assert_eq!(request.header("x-webhook-hmac").unwrap().len(), 128);
        assert!(request.header("x-webhook-request-id").is_some());
        assert!(
            request
                .header("x-webhook-timestamp")
                .unwrap()
                .parse::<i64>()
                .is_ok()
        );
        verify_waha(
            &request.body,
            request.header("x-webhook-hmac"),
            request.header("x-webhook-hmac-algorithm"),
            &[Secret::from(HMAC_KEY)],
        )
        .unwrap();
        let body = json_of(&request.body);
        assert!(body["id"].as_str().unwrap().starts_with("evt_"));
        assert!(body["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        assert_eq!(body["session"], "default");
        assert_eq!(body["engine"], "WEBJS");
        assert_eq!(body["me"], json!({"id": me, "pushName": "Example Shop"}));
        assert_eq!(body["payload"]["id"], id.as_str());
        assert_eq!(body["payload"]["fromMe"], true);
        if i == 0 {
            assert_eq!(body["event"], "message.any");
            let p = &body["payload"];
            assert_eq!(
                (p["from"].as_str(), p["to"].as_str()),
                (Some(me.as_str()), Some("15550001111@c.us"))
            );
            assert_eq!(p["body"], "Your ticket is #8841 ✓");
            assert_eq!(
                (p["source"].as_str(), p["ack"].as_i64()),
                (Some("api"), Some(1))
            );
            assert_eq!(p["hasMedia"], false);
        } else {
            assert_eq!(body["event"], "message.ack");
            let p = &body["payload"];
            let expected = [(1, "SERVER"), (2, "DEVICE"), (3, "READ")][i - 1];
            assert_eq!(
                (p["ack"].as_i64().unwrap(), p["ackName"].as_str().unwrap()),
                expected
            );
            assert_eq!(
                (p["from"].as_str(), p["to"].as_str()),
                (Some("15550001111@c.us"), Some(me.as_str()))
            );
        }
    }
    assert!(
        verify_waha(
            &received[0].body,
            received[0].header("x-webhook-hmac"),
            Some("sha512"),
            &[Secret::from("other")]
        )
        .is_err()
    );
    let labels: Vec<String> = fake.webhooks().iter().map(|w| w.label.clone()).collect();
    assert_eq!(
        labels,
        [
            "message.any",
            "message.ack 1",
            "message.ack 2",
            "message.ack 3"
        ]
    );
    // A status posted on demand.
    let record = fake.post_status(&id, Status::Played).await.unwrap();
    assert!(record.delivered);
    let last = json_of(&receiver.received()[4].body);
    assert_eq!(
        (
            last["payload"]["ack"].as_i64(),
            last["payload"]["ackName"].as_str()
        ),
        (Some(4), Some("PLAYED"))
    );
}

#[tokio::test]
async fn waha_scripted_chats_fail_as_documented_and_fail_next_and_hang_next_script_answers() {
    let receiver = Receiver::start(Vec::new()).await;
    let fake = Arc::new(
        waha(
            Some(receiver.url("/hook")),
            StatusPlan::immediate(&[Status::Sent, Status::Delivered]),
        )
        .await,
    );
    let text = |chat: &str| json!({"chatId": chat, "text": "hi"});
    let (status, answer) = waha_post(&fake, "/api/sendText", &text("15550000404@c.us")).await;
    assert_eq!(status, 500);
    assert_eq!(answer["statusCode"], 500);
    assert_eq!(
        answer["exception"]["message"],
        "Evaluation failed: Error: No LID for user"
    );
    assert_eq!(answer["request"]["path"], "/api/sendText");
    assert_eq!(answer["request"]["method"], "POST");
    assert_eq!(answer["version"]["engine"], "WEBJS");
    let (status, answer) = waha_post(&fake, "/api/sendText", &text("15550000503@c.us")).await;
    assert_eq!(status, 422);
    assert_eq!(answer["status"], "STARTING");
    assert_eq!(answer["expected"], json!(["WORKING"]));
    let (status, message) = waha_post(&fake, "/api/sendText", &text("15550000131@c.us")).await;
    assert_eq!(status, 201);
    until("message.any and the error ack", deadline(), || {
        receiver.received().len() >= 2
    })
    .await;
    let acks: Vec<Value> = receiver
        .received()
        .iter()
        .map(|r| json_of(&r.body))
        .collect();
    assert_eq!(acks[1]["event"], "message.ack");
    assert_eq!(acks[1]["payload"]["id"], message["id"]["_serialized"]);
    assert_eq!(
        (
            acks[1]["payload"]["ack"].as_i64(),
            acks[1]["payload"]["ackName"].as_str()
        ),
        (Some(-1), Some("ERROR"))
    );

    fake.fail_next(1, WahaError::session_not_working("default", "SCAN_QR_CODE"));
    fake.fail_next(
        1,
        WahaError::internal("Evaluation failed: Error: Rate-overlimit"),
    );
    let (status, answer) = waha_post(&fake, "/api/sendText", &text("15550001111@c.us")).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (422, Some("SCAN_QR_CODE"))
    );
    let (status, answer) = waha_post(&fake, "/api/sendText", &text("15550001111@c.us")).await;
    assert_eq!(status, 500);
    assert_eq!(answer["request"]["body"]["chatId"], "15550001111@c.us");
    assert_eq!(
        waha_post(&fake, "/api/sendText", &text("15550001111@c.us"))
            .await
            .0,
        201
    );

    fake.hang_next(1);
    let hung = {
        let fake = fake.clone();
        tokio::spawn(async move {
            waha_post(&fake, "/api/sendText", &text("15550001111@c.us"))
                .await
                .0
        })
    };
    until("the hung request to arrive", deadline(), || {
        fake.requests().len() == 7
    })
    .await;
    fake.stop().await;
    assert_eq!(hung.await.unwrap(), 503);
}

#[tokio::test]
async fn waha_serves_media_sent_as_base64_at_the_url_message_any_gives() {
    let receiver = Receiver::start(Vec::new()).await;
    let fake = waha(Some(receiver.url("/hook")), StatusPlan::none()).await;
    let bytes = b"%PDF-1.4 fake";
    let data = "JVBERi0xLjQgZmFrZQ==";
    let (status, _) = waha_post(
        &fake,
        "/api/sendFile",
        &json!({"chatId": "15550001111@c.us", "file": {"mimetype": "application/pdf", "data": data, "filename": "i.pdf"}, "caption": "invoice"}),
    )
    .await;
    assert_eq!(status, 201);
    until("message.any", deadline(), || {
        !receiver.received().is_empty()
    })
    .await;
    let any = json_of(&receiver.received()[0].body);
    let media = &any["payload"]["media"];
    assert_eq!(any["payload"]["hasMedia"], true);
    assert_eq!(any["payload"]["body"], "invoice");
    assert_eq!(
        (media["mimetype"].as_str(), media["filename"].as_str()),
        (Some("application/pdf"), Some("i.pdf"))
    );
    let url = media["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/api/files/default/", fake.url())),
        "{url}"
    );
    let client = aws_adapters::http::client();
    let unauthorized = client.get(url).send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    let file = client
        .get(url)
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    assert_eq!(file.bytes().await.unwrap().as_ref(), bytes);
}

/// A GET with `headers`; (status, content type, content length, body).
async fn get_file(
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Option<u64>, Vec<u8>) {
    let mut request = aws_adapters::http::client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = text("content-type");
    let length = text("content-length").and_then(|v| v.parse().ok());
    let body = response.bytes().await.unwrap().to_vec();
    (status, content_type, length, body)
}

/// A media lookup with `token`; (status, answer).
async fn lookup(fake: &FakeGraph, id: &str, token: Option<&str>) -> (u16, Value) {
    let url = format!(
        "{}?phone_number_id={}",
        fake.media_lookup_url("v23.0", id),
        wagate_local::sample::PHONE_NUMBER_ID
    );
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    let (status, _, _, body) = get_file(&url, &headers).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Bytes that differ from chunk to chunk, `len` of them.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn graph_media_lookup_then_download_with_the_token_gives_the_bytes() {
    let fake = graph(None, StatusPlan::none()).await;
    let bytes = pattern(300_000);
    let id = fake.add_media(bytes.clone(), "video/mp4");
    assert!(
        id.len() >= 15 && id.chars().all(|c| c.is_ascii_digit()),
        "{id}"
    );
    let (status, answer) = lookup(&fake, &id, Some(TOKEN)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["messaging_product"], "whatsapp");
    assert_eq!(answer["id"], id.as_str());
    assert_eq!(answer["mime_type"], "video/mp4");
    assert_eq!(answer["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(answer["file_size"], "300000");
    let url = answer["url"].as_str().unwrap();
    let prefix = format!(
        "{}/whatsapp_business/attachments/?mid={id}&ext=",
        fake.url()
    );
    assert!(url.starts_with(&prefix) && url.contains("&hash="), "{url}");

    let bearer = format!("Bearer {TOKEN}");
    let (status, content_type, length, body) = get_file(url, &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("video/mp4"));
    assert_eq!(length, Some(300_000));
    assert!(body == bytes, "the bytes differ");

    // Through the gateway's own adapter: streamed in more than one chunk, byte for byte.
    use futures::StreamExt as _;
    use shared::send::api::{Download, ProviderApi};
    let api = aws_adapters::http::ReqwestProviderApi::new(
        shared::delivery::ssrf::NetworkPolicy::AllowLoopback,
    )
    .unwrap();
    let headers = vec![("Authorization".to_owned(), bearer.clone())];
    let download = Download {
        url,
        headers: &headers,
        timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(60),
        private_network: false,
        max_redirects: 3,
    };
    let mut answer = api.download(download).await.unwrap();
    assert_eq!(answer.content_length, Some(300_000));
    let (mut chunks, mut received) = (0, Vec::new());
    while let Some(chunk) = answer.body.next().await {
        chunks += 1;
        received.extend_from_slice(&chunk.unwrap());
    }
    assert!(chunks > 1, "one chunk");
    assert!(received == bytes, "the bytes differ");

    // The sample image is there from the start.
    let (status, answer) = lookup(&fake, SAMPLE_IMAGE_MEDIA_ID, Some(TOKEN)).await;
    assert_eq!(
        (status, answer["mime_type"].as_str()),
        (200, Some("image/png"))
    );
    let png = wagate_local::fake::sample_image_png();
    assert_eq!(answer["sha256"], sha256_hex(&png).as_str());
    let (_, _, _, body) = get_file(
        answer["url"].as_str().unwrap(),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(body, png);
}

#[tokio::test]
async fn graph_media_needs_the_token_for_lookup_and_download_and_refuses_unknown_ids() {
    let fake = graph(None, StatusPlan::none()).await;
    let id = fake.add_media(b"%PDF-1.7 invoice".to_vec(), "application/pdf");
    for token in [None, Some("wrong-token")] {
        let (status, answer) = lookup(&fake, &id, token).await;
        assert_eq!(
            (status, answer["error"]["code"].as_u64()),
            (401, Some(190)),
            "{answer}"
        );
    }
    let (status, answer) = lookup(&fake, "1234567890123456", Some(TOKEN)).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], 100);
    assert_eq!(answer["error"]["error_subcode"], 33);
    assert_eq!(answer["error"]["type"], "GraphMethodException");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported get request. Object with ID '1234567890123456'"),
        "{answer}"
    );

    let (_, answer) = lookup(&fake, &id, Some(TOKEN)).await;
    let url = answer["url"].as_str().unwrap();
    for headers in [vec![], vec![("authorization", "Bearer wrong-token")]] {
        let (status, _, _, body) = get_file(url, &headers).await;
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, error["error"]["code"].as_u64()), (401, Some(190)));
        assert_eq!(error["error"]["type"], "OAuthException");
    }
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, _, body) = get_file(url, &[("authorization", &bearer)]).await;
    assert_eq!(
        (status, body.as_slice()),
        (200, b"%PDF-1.7 invoice".as_slice())
    );

    // Another business number's lookup is refused.
    let other = format!(
        "{}?phone_number_id=999",
        fake.media_lookup_url("v23.0", &id)
    );
    let (status, _, _, _) = get_file(&other, &[("authorization", &bearer)]).await;
    assert_eq!(status, 400);
    // The token never shows in the recorded path of a header-authorized request.
    assert!(fake.requests().iter().all(|r| !r.path.contains(TOKEN)));
}

#[tokio::test]
async fn graph_media_urls_expire_and_a_tampered_hash_or_id_is_not_found() {
    let fake = graph(None, StatusPlan::none()).await;
    let id = fake.add_media(vec![7; 1000], "audio/ogg");
    let other = fake.add_media(vec![8; 1000], "audio/ogg");
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let (_, answer) = lookup(&fake, &id, Some(TOKEN)).await;
    let url = answer["url"].as_str().unwrap().to_owned();
    assert_eq!(get_file(&url, &auth).await.0, 200);
    let (base, hash) = url.split_once("&hash=").unwrap();
    let mut tampered = hash.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        format!("{base}&hash={tampered}"),
        format!("{base}&hash="),
        base.to_owned(),
        url.replace(&format!("mid={id}"), &format!("mid={other}")),
        url.replace("&ext=", "&ext=9"),
    ] {
        let (status, _, _, _) = get_file(&bad, &auth).await;
        assert_eq!(status, 404, "{bad}");
    }

    let expired = FakeGraph::start(FakeGraphOptions {
        access_token: Secret::from(TOKEN),
        media_url_ttl: Duration::ZERO,
        media_file_size_as_number: true,
        ..FakeGraphOptions::default()
    })
    .await
    .unwrap();
    let id = expired.add_media(vec![1; 10], "image/webp");
    let (status, answer) = lookup(&expired, &id, Some(TOKEN)).await;
    assert_eq!((status, answer["file_size"].as_u64()), (200, Some(10)));
    let (status, _, _, body) = get_file(answer["url"].as_str().unwrap(), &auth).await;
    assert_eq!(status, 404);
    assert_eq!(body, b"URL signature expired");
}

#[tokio::test]
async fn graph_media_can_announce_a_hash_size_or_type_the_bytes_do_not_have() {
    let fake = graph(None, StatusPlan::none()).await;
    let id = fake.add_media_announced(
        b"GIF89a".to_vec(),
        "image/gif",
        AnnouncedMedia {
            mime_type: Some("image/jpeg".to_owned()),
            sha256: Some("0".repeat(64)),
            file_size: Some(5_000_000),
        },
    );
    let (_, answer) = lookup(&fake, &id, Some(TOKEN)).await;
    assert_eq!(answer["mime_type"], "image/jpeg");
    assert_eq!(answer["sha256"], "0".repeat(64).as_str());
    assert_eq!(answer["file_size"], "5000000");
    let bearer = format!("Bearer {TOKEN}");
    let (status, content_type, length, body) = get_file(
        answer["url"].as_str().unwrap(),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("image/gif"));
    assert_eq!(length, Some(6));
    assert_eq!(body, b"GIF89a");
}

#[tokio::test]
async fn graph_media_lookups_and_downloads_can_be_scripted_to_fail_hang_stall_or_break_off() {
    let fake = Arc::new(graph(None, StatusPlan::none()).await);
    let bytes = pattern(50_000);
    let id = fake.add_media(bytes.clone(), "image/jpeg");
    fake.fail_next_lookup(1, GraphError::service_unavailable());
    let (status, answer) = lookup(&fake, &id, Some(TOKEN)).await;
    assert_eq!((status, answer["error"]["code"].as_u64()), (503, Some(2)));
    let (status, answer) = lookup(&fake, &id, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let url = answer["url"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];

    // Two 500s, then the file: what a retrying downloader sees.
    fake.fail_next_download(2, GraphError::internal());
    assert_eq!(get_file(&url, &auth).await.0, 500);
    assert_eq!(get_file(&url, &auth).await.0, 500);
    assert_eq!(get_file(&url, &auth).await.3, bytes);

    let client = aws_adapters::http::client();
    let request = || client.get(&url).header("authorization", &bearer);
    // A body that breaks off: headers and some bytes, then an error.
    fake.fault_next_download(1, DownloadFault::Cut);
    let response = request().send().await.unwrap();
    assert_eq!(response.content_length(), Some(50_000));
    assert!(response.bytes().await.is_err());
    // A body that stalls: a client with a deadline gives up.
    fake.fault_next_download(1, DownloadFault::Stall);
    let response = request().send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let stalled = tokio::time::timeout(Duration::from_millis(500), response.bytes()).await;
    assert!(stalled.is_err(), "the stalled body completed");
    // Hung downloads and lookups: the next request is answered again; stopping ends them.
    fake.hang_next_download(1);
    fake.hang_next_lookup(1);
    let hung_download = {
        let (url, bearer) = (url.clone(), bearer.clone());
        tokio::spawn(async move { get_file(&url, &[("authorization", &bearer)]).await.0 })
    };
    let hung_lookup = {
        let fake = fake.clone();
        let id = id.clone();
        tokio::spawn(async move { lookup(&fake, &id, Some(TOKEN)).await.0 })
    };
    let before = fake.requests().len();
    until("both hung requests to arrive", deadline(), || {
        fake.requests().len() == before + 2
    })
    .await;
    assert_eq!(get_file(&url, &auth).await.3, bytes);
    fake.stop().await;
    assert_eq!(hung_download.await.unwrap(), 503);
    assert_eq!(hung_lookup.await.unwrap(), 503);
}

#[tokio::test]
async fn waha_serves_registered_files_with_the_api_key_only() {
    let fake = waha(None, StatusPlan::none()).await;
    let bytes = pattern(200_000);
    let url = fake.add_file(
        "default",
        "false_1111@c.us_AAAA.jpeg",
        bytes.clone(),
        "image/jpeg",
    );
    assert_eq!(
        url,
        format!("{}/api/files/default/false_1111@c.us_AAAA.jpeg", fake.url())
    );
    let (status, _, _, body) = get_file(&url, &[]).await;
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, error["statusCode"].as_u64()), (401, Some(401)));
    assert_eq!(get_file(&url, &[("x-api-key", "wrong")]).await.0, 401);
    let (status, content_type, length, body) = get_file(&url, &[("x-api-key", API_KEY)]).await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(length, Some(200_000));
    assert!(body == bytes, "the bytes differ");
    let missing = format!("{}/api/files/default/nothing.jpeg", fake.url());
    let (status, _, _, body) = get_file(&missing, &[("x-api-key", API_KEY)]).await;
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, error["error"]["key"].as_str()),
        (404, Some("FILE_NOT_FOUND"))
    );
    // The sample image is there from the start.
    let sample = fake.sample_image_url();
    assert!(sample.ends_with(&format!("/api/files/default/{SAMPLE_IMAGE_FILE}")));
    let (status, content_type, _, body) = get_file(&sample, &[("x-api-key", API_KEY)]).await;
    assert_eq!((status, content_type.as_deref()), (200, Some("image/png")));
    assert_eq!(body, wagate_local::fake::sample_image_png());

    // Without a configured key, WAHA serves files to anyone.
    let open = FakeWaha::start(FakeWahaOptions {
        api_key: None,
        ..FakeWahaOptions::default()
    })
    .await
    .unwrap();
    let url = open.add_file("default", "a.ogg", b"OggS".to_vec(), "audio/ogg");
    assert_eq!(get_file(&url, &[]).await.3, b"OggS");
}

#[tokio::test]
async fn waha_file_downloads_can_be_scripted_to_fail_or_break_off() {
    let fake = waha(None, StatusPlan::none()).await;
    let bytes = pattern(10_000);
    let url = fake.add_file("default", "b.pdf", bytes.clone(), "application/pdf");
    let key = [("x-api-key", API_KEY)];
    fake.fail_next_download(1, WahaError::internal("ENOENT: no such file"));
    let (status, _, _, body) = get_file(&url, &key).await;
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, error["statusCode"].as_u64()), (500, Some(500)));
    fake.fault_next_download(1, DownloadFault::Cut);
    let response = aws_adapters::http::client()
        .get(&url)
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert!(response.bytes().await.is_err());
    assert_eq!(get_file(&url, &key).await.3, bytes);
}
