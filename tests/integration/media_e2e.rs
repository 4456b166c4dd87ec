//! Media files end to end: a signed Meta image webhook through the whole local gateway, whose
//! media stage looks the file up in a fake Graph API (a real HTTP server on 127.0.0.1 that
//! wants the token and serves the file at an expiring URL), stores it (in memory, or in S3 on
//! moto), and the receiver's event carries a URL that downloads the same bytes; an endpoint
//! that does not wait gets the message at once with the file pending; `GET /v1/media/{id}`
//! gives a fresh URL; the same file in a second message is not fetched again.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use shared::send::{MetaSend, SendSettings, WahaSend};
use shared::signature::Secret;
use tests::receiver::Receiver;
use tests::wait::{self, Patience};
use tokio::net::TcpListener;
use wagate_local::backend::Stores;
use wagate_local::config::LocalConfig;
use wagate_local::fake::{FakeGraph, FakeGraphOptions, FakeWaha, FakeWahaOptions};
use wagate_local::gateway::{Gateway, Options};
use wagate_local::sample::{meta_image, waha_message, wamid};

use super::e2e::{CALLS_PER_WEBHOOK, delivered, endpoint, moto_stores, post};

const API_KEY: &str = "media-e2e-admin-key-0123456789";
const TOKEN: &str = "media-e2e-graph-token";

struct World {
    gateway: Gateway,
    graph: FakeGraph,
    waiting: Receiver,
    eager: Receiver,
}

async fn world(stores: Stores) -> World {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = LocalConfig::sample().unwrap();
    let meta = config.source("meta-demo").unwrap().clone();
    let mut graph_options =
        FakeGraphOptions::for_source(&meta, "127.0.0.1:0".parse().unwrap(), &base).unwrap();
    graph_options.access_token = Secret::from(TOKEN.to_owned());
    let graph = FakeGraph::start(graph_options).await.unwrap();
    for source in &mut config.sources {
        if source.id.as_str() == "meta-demo" {
            source.send = Some(SendSettings::Meta(MetaSend {
                access_token: Secret::from(TOKEN.to_owned()),
                phone_number_id: Some(wagate_local::sample::PHONE_NUMBER_ID.to_owned()),
                graph_url: graph.url(),
                graph_version: "v23.0".into(),
            }));
        }
    }
    let waiting = Receiver::start(vec![]).await;
    let eager = Receiver::start(vec![]).await;
    let mut eager_endpoint = endpoint("ep_eager", &eager.url("/hook"));
    eager_endpoint.batching = false;
    config.endpoints = vec![endpoint("ep_wait", &waiting.url("/hook")), eager_endpoint];
    config.settings = BTreeMap::from([
        ("ADMIN_API_KEYS".to_owned(), API_KEY.to_owned()),
        ("BUFFER_WINDOW_SECONDS".to_owned(), "1".to_owned()),
    ]);
    let mut options = Options::new(config);
    options.sweep_every = None;
    options.batching_window = Duration::from_millis(200);
    let gateway = Gateway::start(stores, listener, options).await.unwrap();
    // The eager endpoint does not wait for media (set through the API, as an operator would).
    let r = aws_adapters::http::client()
        .patch(format!("http://{}/v1/endpoints/ep_eager", gateway.addr()))
        .header("x-api-key", API_KEY)
        .header("content-type", "application/json")
        .body(r#"{"media_wait": false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    World {
        gateway,
        graph,
        waiting,
        eager,
    }
}

fn images(receiver: &Receiver) -> Vec<Value> {
    delivered(receiver)
        .into_iter()
        .filter(|(t, item)| {
            t == "whatsapp.message.received" && item["message"]["message_type"] == "image"
        })
        .map(|(_, item)| item)
        .collect()
}

async fn an_image_reaches_subscribers_with_a_url_that_downloads_it(
    stores: Stores,
    patience: Patience,
) {
    let deadline = patience.deadline(12 * CALLS_PER_WEBHOOK);
    let w = world(stores).await;
    // A 600 KB "PNG": several chunks on the way from the fake to the store.
    let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let media_id = w.graph.add_media(bytes.clone(), "image/png");
    let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
    let first = wamid();
    let body = meta_image(
        "15550001111",
        "Alice Example",
        &first,
        (&media_id, &sha),
        "the damaged box",
        Utc::now(),
    );
    let (status, text) = post(&w.gateway, "meta-demo", &body.to_string()).await;
    assert_eq!(status, 200, "{text}");

    wait::until("the waiting endpoint gets the image", deadline, || {
        !images(&w.waiting).is_empty()
    })
    .await;
    let got = images(&w.waiting).remove(0);
    let media = &got["message"]["message_type_data"]["media"];
    assert_eq!(media["status"], "stored", "{got}");
    assert_eq!(media["content_type"], "image/png");
    assert_eq!(media["size"], 600_000);
    assert_eq!(media["sha256"], hex::encode(Sha256::digest(&bytes)));
    assert_eq!(got["message"]["message_type_data"]["id"], media_id.as_str());
    assert_eq!(
        got["conversation"]["context"]["last_inbound_message"]["media"]["stored"]["url"],
        media["url"],
        "the context's last message carries the same URL"
    );
    let url = media["url"].as_str().unwrap().to_owned();
    let downloaded = aws_adapters::http::client().get(&url).send().await.unwrap();
    assert_eq!(downloaded.status().as_u16(), 200);
    assert_eq!(
        downloaded.bytes().await.unwrap().to_vec(),
        bytes,
        "byte for byte"
    );

    // The endpoint that does not wait had it once, pending, and not again.
    wait::until("the eager endpoint gets the image", deadline, || {
        !images(&w.eager).is_empty()
    })
    .await;
    let eager = images(&w.eager);
    assert_eq!(eager.len(), 1, "{eager:?}");
    assert_eq!(
        eager[0]["message"]["message_type_data"]["media"]["status"],
        "pending"
    );

    // The API gives a fresh URL for the same file.
    let id = media["id"].as_str().unwrap();
    let r = aws_adapters::http::client()
        .get(format!("http://{}/v1/media/{id}", w.gateway.addr()))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let looked: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(looked["status"], "stored");
    let again = aws_adapters::http::client()
        .get(looked["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(again.bytes().await.unwrap().to_vec(), bytes);

    // The same file in a second message: delivered with the same file, downloaded once.
    let downloads = |g: &FakeGraph| {
        g.requests()
            .iter()
            .filter(|r| r.path.contains("/whatsapp_business/attachments"))
            .count()
    };
    assert_eq!(downloads(&w.graph), 1);
    let second = meta_image(
        "15550001111",
        "Alice Example",
        &wamid(),
        (&media_id, &sha),
        "again",
        Utc::now(),
    );
    let (status, _) = post(&w.gateway, "meta-demo", &second.to_string()).await;
    assert_eq!(status, 200);
    wait::until("the second image arrives", deadline, || {
        images(&w.waiting).len() == 2
    })
    .await;
    let two = images(&w.waiting);
    assert_eq!(
        two[1]["message"]["message_type_data"]["media"]["sha256"],
        media["sha256"]
    );
    assert_eq!(downloads(&w.graph), 1, "fetched once");
    // The conversation remembers the first file: the second event's context shows its URL.
    let recent = two[1]["conversation"]["context"]["recent_messages"]
        .as_array()
        .unwrap();
    let earlier = recent
        .iter()
        .find(|m| m["id"] == first.as_str())
        .expect("the first image in the context");
    assert_eq!(earlier["media"]["stored"]["status"], "stored", "{earlier}");
    assert_eq!(earlier["media"]["stored"]["sha256"], media["sha256"]);
    w.gateway.shutdown(Duration::from_secs(5)).await;
    w.graph.stop().await;
}

#[tokio::test]
async fn an_image_reaches_subscribers_with_a_url_that_downloads_it_on_the_embedded_backend() {
    an_image_reaches_subscribers_with_a_url_that_downloads_it(
        Stores::memory(),
        Patience::embedded(),
    )
    .await;
}

#[tokio::test]
async fn an_image_reaches_subscribers_with_a_url_that_downloads_it_on_s3_in_moto() {
    let (stores, server, patience) = moto_stores().await;
    let bucket = stores.media_bucket.as_ref().unwrap().bucket().to_owned();
    aws_adapters::provision::ensure_bucket(&server.clients().await.s3, &bucket)
        .await
        .unwrap();
    an_image_reaches_subscribers_with_a_url_that_downloads_it(stores, patience).await;
}

/// WAHA: the message's file URL on the WAHA server, fetched with the source's API key (the
/// fake refuses it without), stored, and its URL downloads the same bytes.
#[tokio::test]
async fn a_waha_file_is_fetched_with_the_api_key_and_served() {
    let deadline = Patience::embedded().deadline(12 * CALLS_PER_WEBHOOK);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = LocalConfig::sample().unwrap();
    let source = config.source("waha-demo").unwrap().clone();
    let mut waha_options =
        FakeWahaOptions::for_source(&source, "127.0.0.1:0".parse().unwrap(), &base).unwrap();
    waha_options.api_key = Some(Secret::from("media-e2e-waha-key".to_owned()));
    let waha = FakeWaha::start(waha_options).await.unwrap();
    for s in &mut config.sources {
        if s.id.as_str() == "waha-demo" {
            s.send = Some(SendSettings::Waha(WahaSend {
                base_url: waha.url(),
                api_key: Some(Secret::from("media-e2e-waha-key".to_owned())),
                session: "default".into(),
                allow_private_network: true,
            }));
        }
    }
    let receiver = Receiver::start(vec![]).await;
    config.endpoints = vec![endpoint("ep_wait", &receiver.url("/hook"))];
    config.settings = BTreeMap::from([("BUFFER_WINDOW_SECONDS".to_owned(), "1".to_owned())]);
    let mut options = Options::new(config);
    options.sweep_every = None;
    options.batching_window = Duration::from_millis(200);
    let gateway = Gateway::start(Stores::memory(), listener, options)
        .await
        .unwrap();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let key = format!("3EB0{}", ulid::Ulid::new());
    let file = format!("false_15550002222@c.us_{key}.jpeg");
    let url = waha.add_file("default", &file, bytes.clone(), "image/jpeg");
    // Without the key the file is refused: the stage must send it.
    assert_eq!(
        aws_adapters::http::client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    let mut body = waha_message("15550002222", "Bob Example", &key, "", Utc::now());
    body["payload"]["hasMedia"] = Value::Bool(true);
    body["payload"]["body"] = Value::String("a receipt".into());
    body["payload"]["media"] = serde_json::json!({"url": url, "mimetype": "image/jpeg"});
    let (status, text) = post(&gateway, "waha-demo", &body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    wait::until("the image arrives", deadline, || {
        !images(&receiver).is_empty()
    })
    .await;
    let got = images(&receiver).remove(0);
    let media = &got["message"]["message_type_data"]["media"];
    assert_eq!(media["status"], "stored", "{got}");
    assert_eq!(media["size"], 200_000);
    assert_eq!(media["content_type"], "image/jpeg");
    let downloaded = aws_adapters::http::client()
        .get(media["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(downloaded.bytes().await.unwrap().to_vec(), bytes);
    gateway.shutdown(Duration::from_secs(5)).await;
    waha.stop().await;
}
