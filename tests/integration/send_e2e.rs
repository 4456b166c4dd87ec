//! Both sides of the conversation, end to end: `POST /v1/messages` through the whole local
//! gateway to the bundled fake Graph API and fake WAHA (real HTTP servers on 127.0.0.1 that
//! validate sends as the providers document them), whose status webhooks come back signed
//! through ingest, shuffled and repeated; on the embedded backend and on moto. Subscribers see
//! `sent`/`delivered`/`read` carrying what was sent and its campaign, the campaign counts each
//! message once per status, and the conversation shows both sides.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use shared::send::{MetaSend, SendSettings, WahaSend};
use shared::signature::Secret;
use tests::receiver::Receiver;
use tests::wait::{self, Patience};
use tokio::net::TcpListener;
use wagate_local::backend::Stores;
use wagate_local::config::LocalConfig;
use wagate_local::fake::{
    FakeGraph, FakeGraphOptions, FakeWaha, FakeWahaOptions, Status, StatusPlan,
};
use wagate_local::gateway::{Gateway, Options};
use wagate_local::sample::{meta_text, wamid};

use super::e2e::{CALLS_PER_WEBHOOK, delivered, drained, endpoint, moto_stores, post};

const API_KEY: &str = "send-e2e-admin-key-0123456789";

struct World {
    gateway: Gateway,
    graph: FakeGraph,
    waha: FakeWaha,
    receiver: Receiver,
    client: reqwest::Client,
}

impl World {
    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("http://{}{path}", self.gateway.addr());
        let mut req = match method {
            "POST" => self.client.post(url),
            _ => self.client.get(url),
        }
        .header("x-api-key", API_KEY);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// The gateway on `stores` with the sample's sources sending through fakes of their own, whose
/// statuses come back out of order and repeated.
async fn world(stores: Stores) -> World {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = LocalConfig::sample().unwrap();
    // Repeated, and late: a `sent` after `delivered`, a `delivered` after `read`.
    let plan = StatusPlan::immediate(&[
        Status::Sent,
        Status::Delivered,
        Status::Sent,
        Status::Read,
        Status::Delivered,
        Status::Read,
    ]);
    let meta = config.source("meta-demo").unwrap().clone();
    let mut graph_options =
        FakeGraphOptions::for_source(&meta, "127.0.0.1:0".parse().unwrap(), &base).unwrap();
    graph_options.access_token = Secret::from("e2e-graph-token".to_owned());
    graph_options.statuses = plan.clone();
    let graph = FakeGraph::start(graph_options).await.unwrap();
    let waha_source = config.source("waha-demo").unwrap().clone();
    let mut waha_options =
        FakeWahaOptions::for_source(&waha_source, "127.0.0.1:0".parse().unwrap(), &base).unwrap();
    waha_options.api_key = Some(Secret::from("e2e-waha-key".to_owned()));
    waha_options.statuses = StatusPlan::immediate(&[Status::Sent, Status::Delivered, Status::Read]);
    let waha = FakeWaha::start(waha_options).await.unwrap();
    for source in &mut config.sources {
        source.send = match source.id.as_str() {
            "meta-demo" => Some(SendSettings::Meta(MetaSend {
                access_token: Secret::from("e2e-graph-token".to_owned()),
                phone_number_id: Some(wagate_local::sample::PHONE_NUMBER_ID.to_owned()),
                graph_url: graph.url(),
                graph_version: "v23.0".into(),
            })),
            "waha-demo" => Some(SendSettings::Waha(WahaSend {
                base_url: waha.url(),
                api_key: Some(Secret::from("e2e-waha-key".to_owned())),
                session: "default".into(),
                allow_private_network: true,
            })),
            _ => None,
        };
    }
    let receiver = Receiver::start(vec![]).await;
    let mut hook = endpoint("ep_send", &receiver.url("/hook"));
    hook.batching = false;
    config.endpoints = vec![hook];
    config.settings = BTreeMap::from([
        ("ADMIN_API_KEYS".to_owned(), API_KEY.to_owned()),
        ("BUFFER_WINDOW_SECONDS".to_owned(), "1".to_owned()),
        ("DELIVERY_TIMEOUT_SECONDS".to_owned(), "5".to_owned()),
    ]);
    let mut options = Options::new(config);
    options.sweep_every = None;
    options.batching_window = Duration::from_millis(200);
    options.retry_schedule = Some(vec![Duration::from_secs(1)]);
    let gateway = Gateway::start(stores, listener, options).await.unwrap();
    World {
        gateway,
        graph,
        waha,
        receiver,
        client: aws_adapters::http::client(),
    }
}

/// The delivered events of `event_type` about message `id`.
fn about(list: &[(String, Value)], event_type: &str, id: &str) -> Vec<Value> {
    list.iter()
        .filter(|(t, item)| t == event_type && item["message"]["id"] == id)
        .map(|(_, item)| item.clone())
        .collect()
}

async fn both_sides(stores: Stores, patience: Patience) {
    let deadline = patience.deadline(20 * CALLS_PER_WEBHOOK);
    let w = world(stores).await;
    let (status, campaign) = w
        .api(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "spring sale"})),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let campaign_id = campaign["id"].as_str().unwrap().to_owned();

    // A text and a template through Meta, in the campaign; a text through WAHA.
    let (status, text) = w
        .api(
            "POST",
            "/v1/messages",
            Some(json!({
                "source_id": "meta-demo", "to": "+1 555 000 1111", "type": "text",
                "text": {"body": "Your order 1042 shipped"},
                "campaign_id": campaign_id, "metadata": {"order": 1042}
            })),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(text["message_type"], "text");
    assert_eq!(text["to"]["wa_id"], "15550001111");
    let (status, template) = w
        .api(
            "POST",
            "/v1/messages",
            Some(json!({
                "source_id": "meta-demo", "to": "15550002222", "type": "template",
                "template": {"name": "order_update", "language": {"code": "en_US"},
                             "components": [{"type": "body", "parameters": [{"type": "text", "text": "1043"}]}]},
                "campaign_id": campaign_id
            })),
        )
        .await;
    assert_eq!(status, 201, "{template}");
    let (status, waha_text) = w
        .api(
            "POST",
            "/v1/messages",
            Some(json!({
                "source_id": "waha-demo", "to": "15550003333", "type": "text",
                "text": {"body": "Hello from the shop"}
            })),
        )
        .await;
    assert_eq!(status, 201, "{waha_text}");
    // The fakes saw what the providers document: the Graph body with wagate's callback tag.
    let graph_requests = w.graph.requests();
    let first = graph_requests
        .iter()
        .find_map(|r| r.json.clone())
        .expect("the Graph API was called");
    assert_eq!(first["messaging_product"], "whatsapp");
    assert!(
        first["biz_opaque_callback_data"]
            .as_str()
            .is_some_and(|t| t.starts_with("wagate:")),
        "{first}"
    );
    assert!(!w.waha.requests().is_empty());

    let text_id = text["message_id"].as_str().unwrap().to_owned();
    let template_id = template["message_id"].as_str().unwrap().to_owned();
    let waha_id = waha_text["message_id"].as_str().unwrap().to_owned();
    // Every message reaches `read`. The provider posts its statuses in order, but the pipeline
    // (like SQS) does not promise to handle them in order: a `sent` handled after `delivered` is
    // stale and emits nothing, so only `read`, the last, is certain to be delivered.
    let all_read = wait::within(deadline, || {
        let list = delivered(&w.receiver);
        [&text_id, &template_id, &waha_id]
            .iter()
            .all(|id| !about(&list, "whatsapp.message.read", id).is_empty())
    })
    .await;
    if !all_read {
        let seen: Vec<String> = delivered(&w.receiver)
            .iter()
            .map(|(t, item)| format!("{t} {}", item["message"]["id"]))
            .collect();
        let webhooks: Vec<String> = w
            .graph
            .webhooks()
            .iter()
            .chain(w.waha.webhooks().iter())
            .map(|r| {
                format!(
                    "{} {} -> {:?} after {} attempts",
                    r.label, r.message_id, r.status, r.attempts
                )
            })
            .collect();
        panic!(
            "timed out after {deadline:?} waiting for the reads of {text_id}, {template_id} \
             and {waha_id}; delivered: {seen:#?}; the fakes posted: {webhooks:#?}"
        );
    }
    // Then whatever is still on its way, so a second copy of a status would be seen.
    drained(&w.gateway, deadline).await;
    let list = delivered(&w.receiver);
    for t in [
        "whatsapp.message.sent",
        "whatsapp.message.delivered",
        "whatsapp.message.read",
    ] {
        let events = about(&list, t, &text_id);
        // Each status at most once, whatever the provider repeated.
        assert!(events.len() <= 1, "{t} more than once: {events:#?}");
        for item in &events {
            assert_eq!(item["message"]["message_type"], "text", "{item}");
            assert_eq!(
                item["message"]["message_type_data"]["body"],
                "Your order 1042 shipped"
            );
            assert_eq!(item["message"]["campaign_id"], campaign_id.as_str());
            assert_eq!(item["message"]["metadata"], json!({"order": 1042}));
            assert!(item["message"].get("biz_opaque_callback_data").is_none());
            let conversation = &item["conversation"];
            assert_eq!(
                conversation["context"]["last_outbound_message"]["message_type"],
                "text"
            );
            assert_eq!(conversation["outbound_count"], 1);
        }
        let template_events = about(&list, t, &template_id);
        assert!(
            template_events.len() <= 1,
            "{t} more than once: {template_events:#?}"
        );
        for template_event in &template_events {
            assert_eq!(template_event["message"]["message_type"], "template");
            assert_eq!(
                template_event["message"]["message_type_data"]["name"],
                "order_update"
            );
        }
    }
    // WAHA's echo of the send and its first ack are one `sent` at most (none when the queue
    // hands `read` over first: statuses only move forward).
    assert!(about(&list, "whatsapp.message.sent", &waha_id).len() <= 1);
    let waha_read = &about(&list, "whatsapp.message.read", &waha_id)[0];
    assert_eq!(waha_read["message"]["message_type"], "text");
    assert_eq!(
        waha_read["conversation"]["context"]["last_outbound_message"]["text"],
        "Hello from the shop"
    );

    // The campaign counted each message once per status.
    let path = format!("/v1/campaigns/{campaign_id}");
    wait::until_async("campaign totals", deadline, || async {
        let (_, c) = w.api("GET", &path, None).await;
        c["totals"] == json!({"total": 2, "sent": 2, "delivered": 2, "read": 2, "failed": 0})
    })
    .await;

    // The customer answers: the conversation shows both sides.
    let reply_id = wamid();
    let reply = meta_text("15550001111", "Alice", &reply_id, "Thanks!", Utc::now()).to_string();
    assert_eq!(post(&w.gateway, "meta-demo", &reply).await.0, 200);
    let conversation_id = text["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/conversations/{conversation_id}");
    wait::until_async("the reply in the conversation", deadline, || async {
        let (_, c) = w.api("GET", &path, None).await;
        c["inbound_count"] == 1
    })
    .await;
    let (_, c) = w.api("GET", &path, None).await;
    assert_eq!(c["outbound_count"], 1);
    assert_eq!(c["context"]["last_inbound_message"]["text"], "Thanks!");
    assert_eq!(
        c["context"]["last_outbound_message"]["text"],
        "Your order 1042 shipped"
    );
    assert_eq!(
        c["context"]["last_outbound_message"]["campaign_id"],
        campaign_id.as_str()
    );

    // The business reads it, showing "typing…": Meta's mark-as-read call.
    let (status, read) = w
        .api(
            "POST",
            &format!("/v1/messages/{reply_id}/read"),
            Some(json!({"source_id": "meta-demo", "typing_indicator": true})),
        )
        .await;
    assert_eq!(status, 200, "{read}");
    assert!(w.graph.requests().iter().any(|r| {
        r.json.as_ref().is_some_and(|j| {
            j["status"] == "read"
                && j["message_id"] == reply_id.as_str()
                && j["typing_indicator"]["type"] == "text"
        })
    }));

    // Provider errors come back as clear API errors.
    let (status, e) = w
        .api(
            "POST",
            "/v1/messages",
            Some(
                json!({"source_id": "meta-demo", "to": "15550000047", "type": "text",
                        "text": {"body": "hello again"}}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["code"], "outside_customer_service_window");
    assert_eq!(e["error"]["details"]["provider_code"], 131047);
    let (status, e) = w
        .api(
            "POST",
            "/v1/messages",
            Some(
                json!({"source_id": "waha-demo", "to": "15550001111", "type": "template",
                        "template": {"name": "x", "language": {"code": "en"}}}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["code"], "unsupported_by_provider");
}

#[tokio::test]
async fn sends_statuses_campaigns_and_both_sides_on_the_embedded_backend() {
    both_sides(Stores::memory(), Patience::embedded()).await;
}

#[tokio::test]
async fn sends_statuses_campaigns_and_both_sides_on_the_template_resources_in_moto() {
    let (stores, _server, patience) = moto_stores().await;
    both_sides(stores, patience).await;
}
