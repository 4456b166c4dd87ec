//! The `wagate` management commands against a running local gateway: the arguments as a user
//! types them (clap), the API client over HTTP, and what the gateway then does.

use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use tests::receiver::Receiver;
use tests::wait::until_async;
use wagate_local::gateway::Gateway;
use wagate_local::manage::{ManageCommand, run};

use crate::e2e::{API_KEY, start_with_api};

#[derive(Parser)]
#[command(name = "wagate")]
struct Cli {
    #[command(subcommand)]
    command: ManageCommand,
}

/// `wagate <args>` against `gateway`; the answer it prints.
async fn wagate(gateway: &Gateway, args: &[&str]) -> anyhow::Result<Value> {
    let url = format!("http://{}", gateway.addr());
    let argv = ["wagate"].into_iter().chain(args.iter().copied()).chain([
        "--url",
        url.as_str(),
        "--api-key",
        API_KEY,
    ]);
    let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{e}"))?;
    run(&cli.command).await
}

#[tokio::test]
async fn endpoints_round_trip_through_a_file_with_masked_header_values_kept() {
    let gateway = start_with_api(Vec::new()).await;
    let receiver = Receiver::start(Vec::new()).await;
    let dir = std::env::temp_dir().join(tests::moto::unique("cli"));
    std::fs::create_dir_all(&dir).unwrap();

    // Create from a file: the secret is in the answer once.
    let spec = dir.join("endpoints.json");
    std::fs::write(
        &spec,
        json!([{
            "url": receiver.url("/hook"),
            "event_types": ["whatsapp.message.*"],
            "headers": {"Authorization": "Bearer s3cr3t-token"},
            "description": "crm"
        }])
        .to_string(),
    )
    .unwrap();
    let created = wagate(&gateway, &["endpoints", "apply", spec.to_str().unwrap()])
        .await
        .unwrap();
    let id = created[0]["id"].as_str().unwrap().to_owned();
    assert!(created[0]["secret"].as_str().unwrap().starts_with("whsec_"));

    // `get` masks the header value; that output, edited and applied, keeps the real value.
    let shown = wagate(&gateway, &["endpoints", "get", &id]).await.unwrap();
    assert_eq!(shown["headers"]["Authorization"], "********");
    assert!(!shown.to_string().contains("s3cr3t-token"));
    let mut edited = shown.clone();
    edited["description"] = json!("crm, edited");
    let edited_file = dir.join("edited.json");
    std::fs::write(&edited_file, edited.to_string()).unwrap();
    let updated = wagate(
        &gateway,
        &["endpoints", "apply", edited_file.to_str().unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(updated["description"], "crm, edited");
    assert_eq!(updated["headers"]["Authorization"], "********");

    // A test event reaches the receiver with the header as first given.
    let test = wagate(&gateway, &["endpoints", "test", &id]).await.unwrap();
    assert!(test.to_string().contains("200"), "{test}");
    let got = receiver.received();
    assert_eq!(
        got.last().unwrap().header("authorization"),
        Some("Bearer s3cr3t-token")
    );

    // Listing, rotating, disabling, the audit trail.
    let list = wagate(&gateway, &["endpoints", "list", "--all"])
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let rotated = wagate(
        &gateway,
        &["endpoints", "rotate", &id, "--grace-seconds", "60"],
    )
    .await
    .unwrap();
    assert_ne!(rotated["secret"], created[0]["secret"]);
    let disabled = wagate(&gateway, &["endpoints", "disable", &id])
        .await
        .unwrap();
    assert_eq!(disabled["enabled"], false);
    let audit = wagate(&gateway, &["audit", "--target", &id]).await.unwrap();
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert!(actions.len() >= 4, "{actions:?}");

    // Deliveries of the endpoint, and one of them by id.
    let deliveries = wagate(&gateway, &["deliveries", "list", "--endpoint-id", &id])
        .await
        .unwrap();
    let first = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    let one = wagate(&gateway, &["deliveries", "get", &first])
        .await
        .unwrap();
    assert_eq!(one["id"], first.as_str());

    // Errors come back as the API's, and nothing is sent for an id that would change the path.
    let missing = wagate(
        &gateway,
        &["endpoints", "get", "ep_01JBCQ3ZX0V9K8N7M6P5Q4R399"],
    )
    .await
    .unwrap_err();
    assert!(missing.to_string().starts_with("404 "), "{missing}");
    let refused = wagate(&gateway, &["endpoints", "get", "../deliveries"])
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("not an id"), "{refused}");
    let unauthorized = {
        let url = format!("http://{}", gateway.addr());
        let cli = Cli::try_parse_from([
            "wagate",
            "endpoints",
            "list",
            "--url",
            &url,
            "--api-key",
            "wrong-key-0123456789",
        ])
        .unwrap();
        run(&cli.command).await.unwrap_err()
    };
    assert!(
        unauthorized.to_string().starts_with("401 "),
        "{unauthorized}"
    );

    // Redrive with nothing dead-lettered: nothing moved.
    let redrive = wagate(&gateway, &["dlq", "redrive", "--endpoint-id", &id])
        .await
        .unwrap();
    assert!(redrive.is_object(), "{redrive}");

    // Conversations: empty at first.
    let conversations = wagate(&gateway, &["conversations", "list"]).await.unwrap();
    assert!(conversations["data"].as_array().unwrap().is_empty());

    // Delete; a second delete is the API's 404.
    wagate(&gateway, &["endpoints", "delete", &id])
        .await
        .unwrap();
    until_async("the endpoint is gone", Duration::from_secs(10), || async {
        wagate(&gateway, &["endpoints", "get", &id]).await.is_err()
    })
    .await;
    let _ = std::fs::remove_dir_all(dir);
    gateway.shutdown(Duration::from_secs(5)).await;
}

/// `wagate conversations handoff` and `automation-notes` against a gateway with Alice's
/// conversation open: the request is stored, its event reaches the endpoint, and the
/// automation notes ride with the next event of the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_handed_off_and_annotated_from_the_command_line() {
    use chrono::Utc;
    use tests::wait::Patience;
    use wagate_local::config::{EndpointSpec, LocalConfig};
    use wagate_local::sample::{meta_text, signature_headers, wamid};

    let receiver = Receiver::start(Vec::new()).await;
    let gateway = start_with_api(vec![EndpointSpec {
        id: "ep_cli".into(),
        url: receiver.url("/hook"),
        secret: "whsec_Y2xpLWVuZHBvaW50LXNlY3JldC0wMTIzNDU2Nzg5".into(),
        description: None,
        event_types: vec!["*".into()],
        batching: false,
        headers: Default::default(),
    }])
    .await;
    let body = meta_text(
        "15550007777",
        "Alice",
        &wamid(),
        "I want a human",
        Utc::now(),
    )
    .to_string();
    let config = LocalConfig::sample().unwrap();
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/webhooks/meta-demo", gateway.addr()))
        .header("content-type", "application/json")
        .body(body.clone());
    for (name, value) in signature_headers(config.source("meta-demo").unwrap(), "", body.as_bytes())
    {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status().as_u16(), 200);
    let deadline = Patience::embedded().deadline(400);
    until_async("the conversation is open", deadline, || async {
        let listed = wagate(&gateway, &["conversations", "list"]).await.unwrap();
        listed["data"][0]["id"].is_string()
    })
    .await;
    let listed = wagate(&gateway, &["conversations", "list"]).await.unwrap();
    let id = listed["data"][0]["id"].as_str().unwrap().to_owned();

    let noted = wagate(
        &gateway,
        &[
            "conversations",
            "automation-notes",
            &id,
            "--note",
            "Intent: talk to a person",
            "--note",
            "Language: en",
            "--author",
            "router-bot",
        ],
    )
    .await
    .unwrap();
    assert_eq!(noted["automation_notes"][1]["text"], "Language: en");
    assert_eq!(noted["automation_notes"][0]["author"], "router-bot");
    let asked = wagate(
        &gateway,
        &[
            "conversations",
            "handoff",
            &id,
            "--reason",
            "Asked for a person",
            "--requested-by",
            "router-bot",
            "--team-id",
            "support",
        ],
    )
    .await
    .unwrap();
    assert_eq!(asked["type"], "whatsapp.conversation.handoff_requested");
    assert_eq!(asked["conversation"]["handoff"]["team_id"], "support");
    let event_id = asked["event_id"].as_str().unwrap().to_owned();
    until_async("the hand-off is delivered", deadline, || async {
        receiver.received().iter().any(|r| {
            serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v["id"] == event_id.as_str())
        })
    })
    .await;
    let delivered: Value = receiver
        .received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .find(|v| v["id"] == event_id.as_str())
        .unwrap();
    assert_eq!(delivered["data"]["handoff"]["reason"], "Asked for a person");
    assert_eq!(
        delivered["data"]["conversation"]["automation_notes"][0]["text"],
        "Intent: talk to a person"
    );
    // A reason is required: the API's 422, naming it.
    let refused = wagate(
        &gateway,
        &["conversations", "handoff", &id, "--reason", " "],
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().starts_with("422 "), "{refused}");
    gateway.shutdown(Duration::from_secs(5)).await;
}
