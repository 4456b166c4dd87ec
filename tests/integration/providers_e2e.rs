//! Every provider end to end through local mode: Twilio (form bodies, `X-Twilio-Signature` over
//! the URL called), 360dialog (Meta's envelope and a token header), Gupshup (its v2 format and a
//! token in the query) and Evolution API (a bearer token; its `apikey` never passed on), each
//! verified at the door, normalized, deduplicated, tracked and delivered signed to a verifying
//! receiver on 127.0.0.1.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::Value;
use tests::receiver::Receiver;
use tests::wait::{self, Patience};
use wagate_local::backend::Stores;
use wagate_local::gateway::Gateway;
use wagate_local::sample::{
    evolution_text, gupshup_text, meta_text, twilio_sid, twilio_status, twilio_text, wamid,
};

use crate::e2e::{CALLS_PER_WEBHOOK, count, delivered, drained, endpoint, post, start, summary};

/// Posts `body` to `source` with only the given headers (no signature or token of its own).
async fn post_raw(
    gateway: &Gateway,
    source: &str,
    query: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut url = format!("http://{}/webhooks/{source}", gateway.addr());
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let mut req = aws_adapters::http::client()
        .post(&url)
        .body(body.to_owned());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The text of a delivered message item.
fn text_of(item: &Value) -> &str {
    item["message"]["message_type_data"]["body"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_is_verified_normalized_tracked_and_delivered() {
    let patience = Patience::embedded();
    let deadline = patience.deadline(12 * CALLS_PER_WEBHOOK);
    let receiver = Receiver::start(vec![]).await;
    let gateway = start(
        Stores::memory(),
        vec![endpoint("ep_providers", &receiver.url("/hook"))],
    )
    .await;
    let now = Utc::now();

    // Twilio: the answer is empty TwiML; the provider's retry is one event.
    let sid = twilio_sid();
    let twilio = twilio_text("15550006666", "Tia Example", &sid, "hello from twilio");
    for _ in 0..2 {
        let (status, text) = post(&gateway, "twilio-demo", &twilio).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("<Response></Response>"), "{text}");
    }
    // Signed with another token, or for another URL: refused.
    let forged = shared::signature::sign_twilio(
        &shared::signature::Secret::from("not-the-auth-token"),
        &format!("http://{}/webhooks/twilio-demo", gateway.addr()),
        twilio.as_bytes(),
    );
    let elsewhere = shared::signature::sign_twilio(
        &shared::signature::Secret::from("demo-twilio-auth-token"),
        &format!("http://{}/webhooks/twilio-other", gateway.addr()),
        twilio.as_bytes(),
    );
    for sig in [forged.as_str(), elsewhere.as_str()] {
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-twilio-signature", sig),
        ];
        let (status, _) = post_raw(&gateway, "twilio-demo", "", &twilio, &headers).await;
        assert_eq!(status, 401);
    }

    // 360dialog: Meta's envelope with the token header; a wrong token is refused.
    let dialog_id = wamid();
    let dialog = meta_text(
        "15550003333",
        "Dee Example",
        &dialog_id,
        "hello from 360dialog",
        now,
    )
    .to_string();
    assert_eq!(post(&gateway, "360dialog-demo", &dialog).await.0, 200);
    let wrong = [("x-wagate-token", "not-the-token")];
    assert_eq!(
        post_raw(&gateway, "360dialog-demo", "", &dialog, &wrong)
            .await
            .0,
        401
    );

    // Gupshup: the token header, then the token in the URL's query (how Gupshup's callback URL
    // carries it), for a second message.
    let gupshup = gupshup_text(
        "15550004444",
        "Gus Example",
        "gs-msg-1",
        "hello from gupshup",
        now,
    )
    .to_string();
    assert_eq!(post(&gateway, "gupshup-demo", &gupshup).await.0, 200);
    let second = gupshup_text(
        "15550004444",
        "Gus Example",
        "gs-msg-2",
        "again via query",
        now,
    )
    .to_string();
    let (status, _) = post_raw(
        &gateway,
        "gupshup-demo",
        "token=demo-gupshup-token",
        &second,
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        post_raw(&gateway, "gupshup-demo", "token=guess", &second, &[])
            .await
            .0,
        401
    );

    // Evolution API: a bearer token; without it, refused.
    let evolution = evolution_text(
        "15550005555",
        "Eve Example",
        "3EB0E2E0001",
        "hello from evolution",
        now,
    )
    .to_string();
    assert_eq!(post(&gateway, "evolution-demo", &evolution).await.0, 200);
    assert_eq!(
        post_raw(&gateway, "evolution-demo", "", &evolution, &[])
            .await
            .0,
        401
    );

    // A Twilio status callback for a message the business sent to Tia.
    let outbound = twilio_sid();
    let read = twilio_status("15550006666", &outbound, "read");
    assert_eq!(post(&gateway, "twilio-demo", &read).await.0, 200);

    let complete = wait::within(deadline, || {
        let d = delivered(&receiver);
        count(&d, "whatsapp.message.received") >= 5 && count(&d, "whatsapp.message.read") >= 1
    })
    .await;
    assert!(complete, "timed out: {:?}", summary(&delivered(&receiver)));
    drained(&gateway, deadline).await;
    let got = delivered(&receiver);
    assert_eq!(
        summary(&got),
        BTreeMap::from([
            ("whatsapp.contact.created".to_owned(), 4),
            ("whatsapp.conversation.created".to_owned(), 4),
            ("whatsapp.message.read".to_owned(), 1),
            ("whatsapp.message.received".to_owned(), 5),
        ]),
        "{got:#?}"
    );

    // Each message once, from its provider, with its text and customer.
    let received: Vec<&Value> = got
        .iter()
        .filter(|(t, _)| t == "whatsapp.message.received")
        .map(|(_, i)| i)
        .collect();
    let find = |provider: &str, text: &str| {
        received
            .iter()
            .filter(|i| i["source"]["provider"] == provider && text_of(i) == text)
            .count()
    };
    assert_eq!(find("twilio", "hello from twilio"), 1);
    assert_eq!(find("360dialog", "hello from 360dialog"), 1);
    assert_eq!(find("gupshup", "hello from gupshup"), 1);
    assert_eq!(find("gupshup", "again via query"), 1);
    assert_eq!(find("evolution", "hello from evolution"), 1);
    let customers: std::collections::BTreeSet<&str> = got
        .iter()
        .filter(|(t, _)| t == "whatsapp.contact.created")
        .map(|(_, i)| i["contact"]["wa_id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        customers,
        ["15550003333", "15550004444", "15550005555", "15550006666"]
            .into_iter()
            .collect()
    );
    // The status reached the conversation of the customer it was sent to.
    let (_, read_item) = got
        .iter()
        .find(|(t, _)| t == "whatsapp.message.read")
        .unwrap();
    assert_eq!(read_item["message"]["id"], outbound.as_str());
    assert_eq!(read_item["source"]["provider"], "twilio");
    let tia_conversation = received
        .iter()
        .find(|i| i["source"]["provider"] == "twilio")
        .map(|i| i["conversation"]["id"].clone())
        .unwrap();
    assert_eq!(read_item["conversation"]["id"], tia_conversation);

    // No token, key or signature travels on: not Evolution's body apikey, not the tokens.
    for r in receiver.received() {
        let body = String::from_utf8_lossy(&r.body);
        for secret in [
            "demo-evolution-instance-key",
            "demo-evolution-token",
            "demo-gupshup-token",
            "demo-360dialog-token",
            "demo-twilio-auth-token",
        ] {
            assert!(!body.contains(secret), "{secret} was delivered");
        }
    }
    let report = gateway.shutdown(deadline).await;
    assert_eq!(report.pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_signs_and_sends_a_sample_of_every_provider() {
    let patience = Patience::embedded();
    let deadline = patience.deadline(12 * CALLS_PER_WEBHOOK);
    let receiver = Receiver::start(vec![]).await;
    let gateway = start(
        Stores::memory(),
        vec![endpoint("ep_cli", &receiver.url("/hook"))],
    )
    .await;
    let base = format!("http://{}", gateway.addr());
    let samples = [
        ("meta-text", "meta"),
        ("waha-message", "waha"),
        ("twilio-text", "twilio"),
        ("360dialog-text", "360dialog"),
        ("gupshup-text", "gupshup"),
        ("evolution-text", "evolution"),
    ];
    for (sample, _) in samples.iter().chain(&[("twilio-status", "twilio")]) {
        let out = tokio::process::Command::new(tests::wagate_binary())
            .args(["send", "--sample", sample, "--url", &base])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.starts_with("200"),
            "{sample}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every provider's sample arrives as a message from that provider.
    let arrived = wait::within(deadline, || {
        let d = delivered(&receiver);
        samples.iter().all(|(_, provider)| {
            d.iter().any(|(t, i)| {
                t == "whatsapp.message.received" && i["source"]["provider"] == *provider
            })
        })
    })
    .await;
    assert!(arrived, "{:?}", summary(&delivered(&receiver)));

    // `sign` prints what Twilio would send for a file posted to a given URL.
    let file = std::env::temp_dir().join(tests::moto::unique("twilio-body"));
    let body = twilio_text(
        "15550006666",
        "Tia Example",
        &twilio_sid(),
        "signed by the CLI",
    );
    std::fs::write(&file, &body).unwrap();
    let url = "https://hooks.example.com/webhooks/twilio-demo";
    let out = tokio::process::Command::new(tests::wagate_binary())
        .args(["sign", "--source", "twilio-demo", "--url", url])
        .arg(&file)
        .output()
        .await
        .unwrap();
    std::fs::remove_file(&file).ok();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let signature = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Twilio-Signature: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(text.contains("Content-Type: application/x-www-form-urlencoded"));
    let token = [shared::signature::Secret::from("demo-twilio-auth-token")];
    assert_eq!(
        shared::signature::verify_twilio(url, body.as_bytes(), Some(signature), &token),
        Ok(())
    );
    let report = gateway.shutdown(deadline).await;
    assert_eq!(report.pending, 0);
}
