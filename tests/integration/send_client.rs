//! The send client over the wire: the real reqwest adapter and [`Sender`] against axum servers
//! on 127.0.0.1 that behave as Meta's Graph API and WAHA document (paths, auth headers, JSON
//! bodies, success and error answers, engine answer shapes), with scripted failures for the
//! retry policy. Waits between attempts are recorded, not slept.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_adapters::http::ReqwestProviderApi;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use shared::delivery::ssrf::NetworkPolicy;
use shared::model::MessageContent;
use shared::ports::Source;
use shared::send::{MarkRead, SendConfig, SendError, SendMessage, Sender, Sent};

const TOKEN: &str = "EAAG-test-token";
const PHONE_ID: &str = "106540352242922";
const WAHA_KEY: &str = "waha-key";

/// One scripted answer.
#[derive(Debug, Clone)]
enum Reply {
    /// Status and JSON body.
    Json(u16, Value),
    /// Status, JSON body and `Retry-After`.
    RetryAfter(u16, Value, &'static str),
    /// Accept the request and never answer.
    Hang,
}

/// A request as received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// Which WAHA engine the server plays (each answers a send in its own shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Webjs,
    Noweb,
    Gows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Graph,
    Waha(Engine),
}

#[derive(Debug)]
struct Inner {
    kind: Kind,
    seen: Vec<Seen>,
    script: VecDeque<Reply>,
    counter: u32,
}

/// A fake provider server.
#[derive(Debug, Clone)]
struct Fake {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Fake {
    async fn start(kind: Kind, script: Vec<Reply>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            kind,
            seen: Vec::new(),
            script: script.into(),
            counter: 0,
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    fn meta_source(&self) -> Source {
        source(&format!(
            r#"[{{"id":"meta-main","provider":"meta","secrets":"s","send":{{"access_token":"{TOKEN}",
                "phone_number_id":"{PHONE_ID}","graph_url":"{}","graph_version":"v23.0"}}}}]"#,
            self.url()
        ))
    }

    fn waha_source(&self) -> Source {
        source(&format!(
            r#"[{{"id":"waha-main","provider":"waha","secrets":"s","send":{{"base_url":"{}",
                "api_key":"{WAHA_KEY}","session":"default"}}}}]"#,
            self.url()
        ))
    }
}

fn source(json: &str) -> Source {
    shared::config::parse_sources(json).unwrap().remove(0)
}

fn json_response(status: u16, body: &Value, retry_after: Option<&str>) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(r) = retry_after {
        b = b.header("retry-after", r);
    }
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap()
    };
    b.body(Body::from(bytes)).unwrap()
}

fn graph_error(status: u16, code: i64, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"message": message, "type": "OAuthException", "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": "AbCdEf"}}),
        None,
    )
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (kind, scripted, n) = {
        let mut inner = inner.lock().unwrap();
        inner.seen.push(Seen {
            method: method.clone(),
            path: uri.path().to_owned(),
            headers: headers.clone(),
            body: body_json.clone(),
        });
        inner.counter += 1;
        (inner.kind, inner.script.pop_front(), inner.counter)
    };
    match scripted {
        Some(Reply::Hang) => std::future::pending().await,
        Some(Reply::Json(status, v)) => return json_response(status, &v, None),
        Some(Reply::RetryAfter(status, v, after)) => return json_response(status, &v, Some(after)),
        None => {}
    }
    match kind {
        Kind::Graph => graph(&method, uri.path(), &headers, &body_json, n),
        Kind::Waha(engine) => waha(engine, &method, uri.path(), &headers, &body_json, n),
    }
}

/// Graph API behaviour as documented: `POST /{version}/{phone-number-id}/messages` with a
/// bearer token and a JSON body; the answer names the contact and the message.
fn graph(method: &Method, path: &str, headers: &HeaderMap, body: &Value, n: u32) -> Response {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let path_ok = method == Method::POST
        && parts.len() == 3
        && parts[0].starts_with('v')
        && parts[1].bytes().all(|b| b.is_ascii_digit())
        && parts[2] == "messages";
    if !path_ok {
        return graph_error(400, 100, "Unsupported post request.");
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return graph_error(401, 190, "Invalid OAuth access token.");
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return graph_error(400, 100, "Invalid parameter");
    }
    if body["messaging_product"] != "whatsapp" {
        return graph_error(400, 100, "The parameter messaging_product is required.");
    }
    if body["status"] == "read" {
        return if body["message_id"].is_string() {
            json_response(200, &json!({"success": true}), None)
        } else {
            graph_error(400, 100, "The parameter message_id is required.")
        };
    }
    let kind = body["type"].as_str().unwrap_or_default();
    if body["recipient_type"] != "individual" || body.get(kind).is_none() {
        return graph_error(400, 131008, "Required parameter is missing");
    }
    let contact = match (body["to"].as_str(), body["recipient"].as_str()) {
        (Some(to), _) => json!({"input": to, "wa_id": to}),
        (None, Some(user)) => json!({"input": user, "user_id": user}),
        (None, None) => return graph_error(400, 131008, "Required parameter is missing"),
    };
    json_response(
        200,
        &json!({"messaging_product": "whatsapp", "contacts": [contact],
            "messages": [{"id": format!("wamid.TEST{n}"), "message_status": "accepted"}]}),
        None,
    )
}

/// WAHA behaviour as documented: `X-Api-Key`, a `session` and `chatId` in the body, 201 for a
/// POST, and the sent message in the engine's shape.
fn waha(
    engine: Engine,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
    n: u32,
) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(WAHA_KEY) {
        return json_response(
            401,
            &json!({"message": "Unauthorized", "statusCode": 401}),
            None,
        );
    }
    let session = body["session"].as_str().unwrap_or_default();
    if session != "default" {
        return json_response(
            404,
            &json!({"statusCode": 404, "message": format!("We didn't find a session with name '{session}'."), "error": "Not Found"}),
            None,
        );
    }
    let known = [
        "/api/sendText",
        "/api/sendImage",
        "/api/sendFile",
        "/api/sendVoice",
        "/api/sendVideo",
        "/api/sendLocation",
        "/api/sendContactVcard",
        "/api/sendList",
        "/api/sendButtons",
        "/api/sendSeen",
        "/api/startTyping",
    ];
    let is_put = path == "/api/reaction" && method == Method::PUT;
    let known_post = method == Method::POST && known.contains(&path);
    if !(is_put || known_post) {
        return json_response(
            404,
            &json!({"statusCode": 404, "message": format!("Cannot {method} {path}")}),
            None,
        );
    }
    if path == "/api/sendSeen" || path == "/api/startTyping" {
        return json_response(201, &json!({}), None);
    }
    let id = format!("3EB0TEST{n}");
    if is_put {
        // WEBJS reacts without returning a message: an empty 200.
        return match engine {
            Engine::Webjs => json_response(200, &Value::Null, None),
            _ => json_response(200, &json!({"id": format!("true_x@c.us_{id}")}), None),
        };
    }
    let chat = body["chatId"].as_str().unwrap_or_default();
    if !(chat.ends_with("@c.us") || chat.ends_with("@lid")) {
        return json_response(
            400,
            &json!({"statusCode": 400, "message": ["chatId must be a chat id"]}),
            None,
        );
    }
    let answer = match engine {
        Engine::Gows => json!({"id": format!("true_{chat}_{id}"), "_data": {"Info": {}}}),
        Engine::Webjs => json!({"id": {"fromMe": true, "remote": chat, "id": id,
            "_serialized": format!("true_{chat}_{id}")}, "ack": 0, "body": "…"}),
        Engine::Noweb => json!({"key": {"remoteJid": chat.replace("@c.us", "@s.whatsapp.net"),
            "fromMe": true, "id": id}, "message": {}, "messageTimestamp": "1717782429",
            "status": "PENDING"}),
    };
    json_response(201, &answer, None)
}

/// A sender over the real adapter (loopback allowed), with waits recorded instead of slept.
fn make_sender(timeout: Duration) -> (Sender, Arc<Mutex<Vec<Duration>>>) {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let recorded = waits.clone();
    let api = Arc::new(ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap());
    let sender = Sender::with_config(
        api,
        SendConfig {
            timeout,
            ..SendConfig::default()
        },
    )
    .with_pause(Arc::new(move |d| {
        recorded.lock().unwrap().push(d);
        Box::pin(async {})
    }));
    (sender, waits)
}

fn message(v: Value) -> SendMessage {
    let mut base = json!({"source_id": "meta-main", "to": "+1 555 123 4567"});
    let Value::Object(v) = v else {
        panic!("an object")
    };
    for (k, val) in v {
        base[k] = val;
    }
    serde_json::from_value(base).unwrap()
}

fn text(body: &str) -> SendMessage {
    message(json!({"type": "text", "text": {"body": body}}))
}

async fn send_meta(fake: &Fake, msg: &SendMessage, tag: Option<&str>) -> Result<Sent, SendError> {
    let (sender, _) = make_sender(Duration::from_secs(5));
    sender.send(&fake.meta_source(), msg, tag).await
}

#[tokio::test]
async fn every_message_type_reaches_the_graph_api_as_documented() {
    let fake = Fake::start(Kind::Graph, vec![]).await;
    let cases = vec![
        (
            json!({"type": "text", "text": {"body": "Hi", "preview_url": true}}),
            json!({"body": "Hi", "preview_url": true}),
        ),
        (
            json!({"type": "template", "template": {"name": "order_update", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}}),
            json!({"name": "order_update", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}),
        ),
        (
            json!({"type": "image", "image": {"link": "https://cdn.example/a.jpg", "caption": "c"}}),
            json!({"link": "https://cdn.example/a.jpg", "caption": "c"}),
        ),
        (
            json!({"type": "video", "video": {"id": "1166846181421424"}}),
            json!({"id": "1166846181421424"}),
        ),
        (
            json!({"type": "audio", "audio": {"link": "https://cdn.example/a.ogg"}}),
            json!({"link": "https://cdn.example/a.ogg"}),
        ),
        (
            json!({"type": "document", "document": {"link": "https://cdn.example/a.pdf", "filename": "a.pdf"}}),
            json!({"link": "https://cdn.example/a.pdf", "filename": "a.pdf"}),
        ),
        (
            json!({"type": "sticker", "sticker": {"id": "798882015472548"}}),
            json!({"id": "798882015472548"}),
        ),
        (
            json!({"type": "location", "location": {"latitude": 37.48, "longitude": -122.14,
            "name": "Philz", "address": "101 Forest Ave"}}),
            json!({"latitude": 37.48, "longitude": -122.14, "name": "Philz", "address": "101 Forest Ave"}),
        ),
        (
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Jane Doe", "first_name": "Jane"},
            "phones": [{"phone": "+1 555 000 1111", "type": "CELL", "wa_id": "15550001111"}]}]}),
            json!([{"name": {"formatted_name": "Jane Doe", "first_name": "Jane"},
            "phones": [{"phone": "+1 555 000 1111", "type": "CELL", "wa_id": "15550001111"}]}]),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]}}}),
            json!({"type": "button", "body": {"text": "Pick"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]}}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list", "body": {"text": "Menu"},
            "action": {"button": "Open", "sections": [{"title": "S", "rows": [{"id": "r1", "title": "One"}]}]}}}),
            json!({"type": "list", "body": {"text": "Menu"},
            "action": {"button": "Open", "sections": [{"title": "S", "rows": [{"id": "r1", "title": "One"}]}]}}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "See"},
            "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://example.com"}}}}),
            json!({"type": "cta_url", "body": {"text": "See"},
            "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://example.com"}}}),
        ),
        (
            json!({"type": "reaction", "reaction": {"message_id": "wamid.IN1", "emoji": "👍"}}),
            json!({"message_id": "wamid.IN1", "emoji": "👍"}),
        ),
    ];
    for (i, (request, wire)) in cases.into_iter().enumerate() {
        let kind = request["type"].as_str().unwrap().to_owned();
        let sent = send_meta(&fake, &message(request), None)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        let seen = fake.seen();
        let last = seen.last().unwrap();
        assert_eq!(last.method, Method::POST);
        assert_eq!(last.path, format!("/v23.0/{PHONE_ID}/messages"));
        assert_eq!(last.headers["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(last.body["messaging_product"], "whatsapp");
        assert_eq!(last.body["recipient_type"], "individual");
        assert_eq!(last.body["to"], "15551234567");
        assert_eq!(last.body["type"], kind.as_str());
        assert_eq!(last.body[kind.as_str()], wire, "{kind}");
        assert_eq!(sent.message_id, Some(format!("wamid.TEST{}", i + 1)));
        assert_eq!(sent.business_id, PHONE_ID);
        assert_eq!(sent.recipient.wa_id.as_deref(), Some("15551234567"));
        assert_eq!(sent.provider_status.as_deref(), Some("accepted"));
        assert_eq!(sent.content.type_name(), kind.as_str());
        assert_eq!(sent.attempts, 1);
    }
}

#[tokio::test]
async fn a_reply_carries_context_the_callback_tag_and_the_named_sender() {
    let fake = Fake::start(Kind::Graph, vec![]).await;
    let mut msg = text("Thanks!");
    msg.reply_to = Some("wamid.INBOUND".into());
    msg.from = Some("999000111".into());
    let sent = send_meta(&fake, &msg, Some("out_01JTAG")).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen[0].path, "/v23.0/999000111/messages");
    assert_eq!(
        seen[0].body["context"],
        json!({"message_id": "wamid.INBOUND"})
    );
    assert_eq!(seen[0].body["biz_opaque_callback_data"], "out_01JTAG");
    assert_eq!(sent.business_id, "999000111");
    let MessageContent::Text(t) = sent.content else {
        panic!()
    };
    assert_eq!(t.body, "Thanks!");
}

#[tokio::test]
async fn a_business_scoped_user_id_is_sent_as_recipient_and_resolved_as_user_id() {
    let fake = Fake::start(Kind::Graph, vec![]).await;
    let msg: SendMessage = serde_json::from_value(json!({"source_id": "meta-main",
        "user_id": "US.13491208655302741918", "type": "text", "text": {"body": "Hi"}}))
    .unwrap();
    let sent = send_meta(&fake, &msg, None).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen[0].body["recipient"], "US.13491208655302741918");
    assert!(seen[0].body.get("to").is_none());
    assert_eq!(
        sent.recipient.user_id.as_deref(),
        Some("US.13491208655302741918")
    );
}

#[tokio::test]
async fn graph_error_classes_reach_the_caller_without_retrying_final_ones() {
    let cases = [
        (400, 131047, 422, "outside_customer_service_window"),
        (400, 131026, 422, "undeliverable"),
        (400, 100, 422, "provider_rejected"),
        (404, 132001, 422, "template_rejected"),
        (403, 131031, 403, "account_restricted"),
        (400, 131042, 403, "payment_required"),
        (401, 190, 502, "provider_auth_failed"),
    ];
    for (http, code, status, name) in cases {
        let body = json!({"error": {"message": format!("(#{code}) Title"), "type": "OAuthException",
            "code": code, "error_data": {"messaging_product": "whatsapp",
            "details": "Recipient 15551234567 is not reachable"}, "fbtrace_id": "Ax9"}});
        let fake = Fake::start(Kind::Graph, vec![Reply::Json(http, body)]).await;
        let e = send_meta(&fake, &text("Hi"), None).await.unwrap_err();
        assert_eq!(
            (e.status(), e.code(), e.is_retryable()),
            (status, name, false),
            "{code}"
        );
        assert_eq!(e.attempts(), 1);
        assert_eq!(fake.seen().len(), 1, "{code}: final errors are not retried");
        let details = e.details().unwrap();
        assert_eq!(details["provider_code"], code);
        assert_eq!(details["trace_id"], "Ax9");
        assert!(!details.to_string().contains("15551234567"), "{details}");
    }
    // A wrong token is refused by the server itself.
    let fake = Fake::start(Kind::Graph, vec![]).await;
    let bad = source(&format!(
        r#"[{{"id":"meta-main","provider":"meta","secrets":"s","send":{{"access_token":"wrong",
            "phone_number_id":"{PHONE_ID}","graph_url":"{}"}}}}]"#,
        fake.url()
    ));
    let (sender, _) = make_sender(Duration::from_secs(5));
    let e = sender.send(&bad, &text("Hi"), None).await.unwrap_err();
    assert_eq!(e.code(), "provider_auth_failed");
}

fn throughput_error() -> Value {
    json!({"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429,
        "error_data": {"messaging_product": "whatsapp", "details": "Cloud API message throughput has been reached."},
        "fbtrace_id": "T1"}})
}

#[tokio::test]
async fn a_throughput_limit_is_retried_with_backoff_then_succeeds() {
    let fake = Fake::start(Kind::Graph, vec![Reply::Json(400, throughput_error())]).await;
    let (sender, waits) = make_sender(Duration::from_secs(5));
    let sent = sender
        .send(&fake.meta_source(), &text("Hi"), None)
        .await
        .unwrap();
    assert_eq!(sent.attempts, 2);
    assert_eq!(fake.seen().len(), 2);
    assert_eq!(
        fake.seen()[0].body,
        fake.seen()[1].body,
        "the same request again"
    );
    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1);
    let config = SendConfig::default();
    assert!(
        waits[0] >= config.base_delay / 2 && waits[0] <= config.base_delay,
        "{waits:?}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_exhausted_retries_are_retryable() {
    let transient = json!({"error": {"message": "(#131000) Something went wrong", "type": "OAuthException",
        "code": 131000, "error_data": {"details": "Message failed to send"}, "fbtrace_id": "T2"}});
    let fake = Fake::start(Kind::Graph, vec![Reply::RetryAfter(500, transient, "3")]).await;
    let (sender, waits) = make_sender(Duration::from_secs(5));
    let sent = sender
        .send(&fake.meta_source(), &text("Hi"), None)
        .await
        .unwrap();
    assert_eq!(sent.attempts, 2);
    assert_eq!(waits.lock().unwrap().clone(), vec![Duration::from_secs(3)]);

    let always = vec![Reply::Json(400, throughput_error()); 5];
    let fake = Fake::start(Kind::Graph, always).await;
    let (sender, waits) = make_sender(Duration::from_secs(5));
    let e = sender
        .send(&fake.meta_source(), &text("Hi"), None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code(), e.is_retryable()),
        (429, "rate_limited", true)
    );
    assert_eq!(e.attempts(), SendConfig::default().max_attempts);
    assert_eq!(fake.seen().len(), 3);
    assert_eq!(waits.lock().unwrap().len(), 2);
    assert!(e.retry_after().is_some_and(|d| d >= Duration::from_secs(1)));

    // A wait past the budget is not waited: the caller gets it as Retry-After.
    let fake = Fake::start(
        Kind::Graph,
        vec![Reply::RetryAfter(400, throughput_error(), "60")],
    )
    .await;
    let (sender, waits) = make_sender(Duration::from_secs(5));
    let e = sender
        .send(&fake.meta_source(), &text("Hi"), None)
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(e.attempts(), 1);
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_send_that_times_out_is_never_retried_and_says_the_outcome_is_unknown() {
    let fake = Fake::start(Kind::Graph, vec![Reply::Hang, Reply::Hang]).await;
    let (sender, waits) = make_sender(Duration::from_millis(300));
    let e = sender
        .send(&fake.meta_source(), &text("Hi"), None)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code(), e.is_retryable()),
        (504, "send_outcome_unknown", false)
    );
    assert_eq!(fake.seen().len(), 1, "one request, not retried");
    assert!(waits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_reaction_is_harmless_to_repeat_so_its_timeout_is_retried() {
    let fake = Fake::start(Kind::Graph, vec![Reply::Hang]).await;
    let (sender, _) = make_sender(Duration::from_millis(300));
    let reaction =
        message(json!({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "❤️"}}));
    let sent = sender
        .send(&fake.meta_source(), &reaction, None)
        .await
        .unwrap();
    assert_eq!(sent.attempts, 2);
}

#[tokio::test]
async fn a_provider_that_refuses_connections_is_retried_then_reported_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let src = source(&format!(
        r#"[{{"id":"meta-main","provider":"meta","secrets":"s","send":{{"access_token":"{TOKEN}",
            "phone_number_id":"{PHONE_ID}","graph_url":"http://127.0.0.1:{port}"}}}}]"#
    ));
    let (sender, waits) = make_sender(Duration::from_secs(5));
    let e = sender.send(&src, &text("Hi"), None).await.unwrap_err();
    assert_eq!(
        (e.status(), e.code(), e.is_retryable()),
        (503, "provider_unavailable", true)
    );
    assert_eq!(e.attempts(), 3);
    assert_eq!(waits.lock().unwrap().len(), 2);
    assert!(e.retry_after().is_some());
}

#[tokio::test]
async fn mark_read_with_a_typing_indicator_on_meta() {
    let fake = Fake::start(Kind::Graph, vec![]).await;
    let (sender, _) = make_sender(Duration::from_secs(5));
    let req: MarkRead = serde_json::from_value(json!({"source_id": "meta-main",
        "message_id": "wamid.IN", "typing_indicator": true}))
    .unwrap();
    sender.mark_read(&fake.meta_source(), &req).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen[0].path, format!("/v23.0/{PHONE_ID}/messages"));
    assert_eq!(
        seen[0].body,
        json!({"messaging_product": "whatsapp", "status": "read",
        "message_id": "wamid.IN", "typing_indicator": {"type": "text"}})
    );
}

#[tokio::test]
async fn a_source_without_send_settings_is_not_configured() {
    let (sender, _) = make_sender(Duration::from_secs(5));
    let quiet = source(r#"[{"id":"meta-main","provider":"meta","secrets":"s"}]"#);
    let e = sender.send(&quiet, &text("Hi"), None).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (409, "not_configured"));
}

async fn send_waha(fake: &Fake, msg: Value) -> Result<Sent, SendError> {
    let (sender, _) = make_sender(Duration::from_secs(5));
    let mut m = json!({"source_id": "waha-main"});
    for (k, v) in msg.as_object().unwrap() {
        m[k] = v.clone();
    }
    sender
        .send(
            &fake.waha_source(),
            &serde_json::from_value(m).unwrap(),
            Some("ignored"),
        )
        .await
}

#[tokio::test]
async fn every_message_type_waha_can_send_reaches_its_endpoint() {
    let fake = Fake::start(Kind::Waha(Engine::Gows), vec![]).await;
    let to = json!("+1 555 123 4567");
    let cases = vec![
        (
            json!({"type": "text", "text": {"body": "Hi"}, "reply_to": "false_15551234567@c.us_AAA"}),
            "/api/sendText",
            json!({"session": "default", "chatId": "15551234567@c.us", "text": "Hi", "linkPreview": false,
            "reply_to": "false_15551234567@c.us_AAA"}),
        ),
        (
            json!({"type": "image", "image": {"link": "https://cdn.example/a.jpg", "caption": "c"}}),
            "/api/sendImage",
            json!({"session": "default", "chatId": "15551234567@c.us", "caption": "c",
            "file": {"url": "https://cdn.example/a.jpg", "mimetype": "image/jpeg"}}),
        ),
        (
            json!({"type": "document", "document": {"link": "https://cdn.example/r.pdf", "filename": "r.pdf"}}),
            "/api/sendFile",
            json!({"session": "default", "chatId": "15551234567@c.us",
            "file": {"url": "https://cdn.example/r.pdf", "mimetype": "application/pdf", "filename": "r.pdf"}}),
        ),
        (
            json!({"type": "audio", "audio": {"link": "https://cdn.example/v.opus"}}),
            "/api/sendVoice",
            json!({"session": "default", "chatId": "15551234567@c.us", "convert": false,
            "file": {"url": "https://cdn.example/v.opus", "mimetype": "audio/ogg; codecs=opus"}}),
        ),
        (
            json!({"type": "video", "video": {"link": "https://cdn.example/v.mp4"}}),
            "/api/sendVideo",
            json!({"session": "default", "chatId": "15551234567@c.us", "convert": false, "asNote": false,
            "file": {"url": "https://cdn.example/v.mp4", "mimetype": "video/mp4"}}),
        ),
        (
            json!({"type": "location", "location": {"latitude": 1.5, "longitude": 2.5, "name": "Here"}}),
            "/api/sendLocation",
            json!({"session": "default", "chatId": "15551234567@c.us", "latitude": 1.5, "longitude": 2.5,
            "title": "Here"}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list", "header": {"type": "text", "text": "T"},
            "body": {"text": "Menu"}, "footer": {"text": "F"},
            "action": {"button": "Open", "sections": [{"title": "S", "rows": [{"id": "r1", "title": "One",
            "description": "d"}]}]}}}),
            "/api/sendList",
            json!({"session": "default", "chatId": "15551234567@c.us", "message": {"title": "T",
            "description": "Menu", "footer": "F", "button": "Open",
            "sections": [{"title": "S", "rows": [{"title": "One", "rowId": "r1", "description": "d"}]}]}}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button", "header": {"type": "text", "text": "H"},
            "body": {"text": "Pick"}, "action": {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}}}),
            "/api/sendButtons",
            json!({"session": "default", "chatId": "15551234567@c.us", "header": "H", "body": "Pick",
            "buttons": [{"type": "reply", "text": "Yes", "id": "y"}]}),
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "See"},
            "action": {"name": "cta_url", "parameters": {"display_text": "Open", "url": "https://example.com"}}}}),
            "/api/sendButtons",
            json!({"session": "default", "chatId": "15551234567@c.us", "body": "See",
            "buttons": [{"type": "url", "text": "Open", "url": "https://example.com"}]}),
        ),
    ];
    for (request, path, wire) in cases {
        let mut request = request;
        request["to"] = to.clone();
        let sent = send_waha(&fake, request.clone())
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        let seen = fake.seen();
        let last = seen.last().unwrap();
        assert_eq!(
            (last.method.clone(), last.path.as_str()),
            (Method::POST, path)
        );
        assert_eq!(last.headers["x-api-key"], WAHA_KEY);
        assert_eq!(last.body, wire, "{path}");
        assert!(
            sent.message_id
                .as_deref()
                .is_some_and(|id| id.starts_with("true_15551234567@c.us_")),
            "{sent:?}"
        );
        assert_eq!(sent.business_id, "default");
        assert_eq!(sent.recipient.chat_id.as_deref(), Some("15551234567@c.us"));
    }
    // Contact cards go as vCards.
    send_waha(
        &fake,
        json!({"to": to, "type": "contacts", "contacts": [{"name": {"formatted_name": "Jane Doe",
        "first_name": "Jane"}, "phones": [{"phone": "+1 555 000 1111", "wa_id": "15550001111"}]}]}),
    )
    .await
    .unwrap();
    let seen = fake.seen();
    let last = seen.last().unwrap();
    assert_eq!(last.path, "/api/sendContactVcard");
    let vcard = last.body["contacts"][0]["vcard"].as_str().unwrap();
    assert!(
        vcard.contains("FN:Jane Doe") && vcard.contains("waid=15550001111"),
        "{vcard}"
    );
}

#[tokio::test]
async fn waha_chat_ids_come_from_every_recipient_form() {
    let fake = Fake::start(Kind::Waha(Engine::Gows), vec![]).await;
    for (who, chat) in [
        (json!({"to": "+44 20 7946 0958"}), "442079460958@c.us"),
        (
            json!({"to": "442079460958@s.whatsapp.net"}),
            "442079460958@c.us",
        ),
        (json!({"to": "442079460958@c.us"}), "442079460958@c.us"),
        (
            json!({"user_id": "203848583954562@lid"}),
            "203848583954562@lid",
        ),
    ] {
        let mut m = who.clone();
        m["type"] = json!("text");
        m["text"] = json!({"body": "Hi"});
        let sent = send_waha(&fake, m).await.unwrap();
        assert_eq!(fake.seen().last().unwrap().body["chatId"], chat, "{who}");
        assert_eq!(sent.recipient.chat_id.as_deref(), Some(chat));
    }
    let e = send_waha(
        &fake,
        json!({"user_id": "US.1349120865", "type": "text", "text": {"body": "Hi"}}),
    )
    .await
    .unwrap_err();
    assert_eq!((e.status(), e.code()), (422, "unsupported_by_provider"));
}

#[tokio::test]
async fn each_waha_engine_s_answer_yields_the_message_id() {
    for engine in [Engine::Webjs, Engine::Noweb, Engine::Gows] {
        let fake = Fake::start(Kind::Waha(engine), vec![]).await;
        let sent = send_waha(
            &fake,
            json!({"to": "15551234567", "type": "text", "text": {"body": "Hi"}}),
        )
        .await
        .unwrap();
        assert_eq!(
            sent.message_id.as_deref(),
            Some("true_15551234567@c.us_3EB0TEST1"),
            "{engine:?}"
        );
    }
    // WEBJS answers a reaction with an empty body: the reaction is set, without an id.
    let fake = Fake::start(Kind::Waha(Engine::Webjs), vec![]).await;
    let sent = send_waha(
        &fake,
        json!({"to": "15551234567", "type": "reaction",
        "reaction": {"message_id": "false_15551234567@c.us_IN", "emoji": "👍"}}),
    )
    .await
    .unwrap();
    let seen = fake.seen();
    assert_eq!(
        (seen[0].method.clone(), seen[0].path.as_str()),
        (Method::PUT, "/api/reaction")
    );
    assert_eq!(
        seen[0].body,
        json!({"session": "default", "messageId": "false_15551234567@c.us_IN",
        "reaction": "👍"})
    );
    assert_eq!(sent.message_id, None);
}

#[tokio::test]
async fn waha_refusals_and_errors_are_classified() {
    let fake = Fake::start(Kind::Waha(Engine::Gows), vec![]).await;
    for (m, field) in [
        (
            json!({"type": "template", "template": {"name": "hello", "language": {"code": "en"}}}),
            "template",
        ),
        (
            json!({"type": "image", "image": {"id": "123456"}}),
            "image.id",
        ),
        (
            json!({"type": "sticker", "sticker": {"link": "https://cdn.example/s.webp"}}),
            "sticker",
        ),
    ] {
        let mut m = m;
        m["to"] = json!("15551234567");
        let e = send_waha(&fake, m).await.unwrap_err();
        assert_eq!((e.status(), e.code()), (422, "unsupported_by_provider"));
        assert_eq!(e.details().unwrap()["field"], field);
    }
    assert!(fake.seen().is_empty(), "refused before any call");

    let starting = json!({"error": "Session status is not as expected. Try again later or restart the session",
        "session": "default", "status": "STARTING", "expected": ["WORKING"]});
    let fake = Fake::start(Kind::Waha(Engine::Gows), vec![Reply::Json(422, starting)]).await;
    let sent = send_waha(
        &fake,
        json!({"to": "15551234567", "type": "text", "text": {"body": "Hi"}}),
    )
    .await
    .unwrap();
    assert_eq!(sent.attempts, 2, "a starting session is retried");

    let crashed = json!({"statusCode": 500, "timestamp": "2026-01-01T00:00:00Z",
        "exception": {"message": "No LID for user 15551234567", "name": "Error"},
        "request": {"path": "/api/sendText", "method": "POST", "body": {"text": "private words"}},
        "version": "2025.1.1"});
    let fake = Fake::start(Kind::Waha(Engine::Gows), vec![Reply::Json(500, crashed)]).await;
    let e = send_waha(
        &fake,
        json!({"to": "15551234567", "type": "text", "text": {"body": "Hi"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (e.status(), e.code(), e.is_retryable()),
        (502, "provider_error", false)
    );
    let shown = format!("{} {}", e.message(), e.details().unwrap());
    assert!(
        !shown.contains("15551234567") && !shown.contains("private words"),
        "{shown}"
    );

    let fake = Fake::start(Kind::Waha(Engine::Gows), vec![]).await;
    let e = send_waha(
        &fake,
        json!({"to": "15551234567", "from": "other", "type": "text",
        "text": {"body": "Hi"}}),
    )
    .await
    .unwrap_err();
    assert_eq!((e.status(), e.code()), (422, "unknown_sender"));
}

#[tokio::test]
async fn mark_read_on_waha_sends_seen_then_starts_typing() {
    let fake = Fake::start(Kind::Waha(Engine::Noweb), vec![]).await;
    let (sender, _) = make_sender(Duration::from_secs(5));
    let req: MarkRead = serde_json::from_value(json!({"source_id": "waha-main",
        "message_id": "false_15551234567@c.us_3EB0IN", "typing_indicator": true}))
    .unwrap();
    sender.mark_read(&fake.waha_source(), &req).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path, "/api/sendSeen");
    assert_eq!(
        seen[0].body,
        json!({"session": "default", "chatId": "15551234567@c.us",
        "messageIds": ["false_15551234567@c.us_3EB0IN"]})
    );
    assert_eq!(seen[1].path, "/api/startTyping");
    assert_eq!(
        seen[1].body,
        json!({"session": "default", "chatId": "15551234567@c.us"})
    );
}
