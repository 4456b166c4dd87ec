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
    let mut request = aws_adapters::http::client()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_webhook_is_diagnosed_and_counted_in_the_overview() {
    use wagate_local::config::LocalConfig;
    use wagate_local::sample::{meta_text, request_headers, wamid};
    let gateway = start_with_api(Vec::new()).await;
    let config = LocalConfig::sample().unwrap();
    let source = config.source("meta-demo").unwrap();
    let url = format!("http://{}/webhooks/meta-demo", gateway.addr());
    let body = meta_text(
        "15550007777",
        "Dia Gnose",
        &wamid(),
        "olá",
        chrono::Utc::now(),
    )
    .to_string();
    let headers = request_headers(source, &url, body.as_bytes());

    // The sources, with no secret in sight.
    let sources = wagate(&gateway, &["sources", "list"]).await.unwrap();
    let meta = sources["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "meta-demo")
        .unwrap();
    assert_eq!(meta["provider"], "meta");
    assert!(meta["secrets"].as_u64().unwrap() >= 1);

    // A proxy pretty-printed the body on the way: the gateway refuses it…
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    let mut req = aws_adapters::http::client().post(&url).body(pretty.clone());
    for (name, value) in &headers {
        req = req.header(name, value);
    }
    assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
    // … and the diagnosis, from the captured request, says why.
    let dir = std::env::temp_dir().join(tests::moto::unique("diagnose"));
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("captured.http");
    let mut raw = "POST /webhooks/meta-demo HTTP/1.1\r\n".to_owned();
    for (name, value) in &headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(&pretty);
    std::fs::write(&capture, &raw).unwrap();
    let d = wagate(
        &gateway,
        &[
            "sources",
            "diagnose",
            "meta-demo",
            "--file",
            capture.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(d["verdict"], "body_re_serialized", "{d}");
    assert_eq!(d["accepted"], false);
    assert!(!d.to_string().contains("Dia Gnose"), "{d}");
    // The body as sent verifies, given as parts.
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, &body).unwrap();
    let header_args: Vec<String> = headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
    let mut args = vec![
        "sources",
        "diagnose",
        "meta-demo",
        "--body-file",
        body_file.to_str().unwrap(),
    ];
    for h in &header_args {
        args.extend(["--header", h.as_str()]);
    }
    let d = wagate(&gateway, &args).await.unwrap();
    assert_eq!(
        (d["verdict"].as_str(), d["accepted"].as_bool()),
        (Some("verified"), Some(true)),
        "{d}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // The overview counts the refusal (other tests in this process may add theirs).
    let client = aws_adapters::http::client();
    let stats = client
        .get(format!("http://{}/v1/stats", gateway.addr()))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert!(
        stats["metrics_from"]
            .as_str()
            .unwrap()
            .contains("this process"),
        "{stats}"
    );
    assert!(
        stats["totals"]["webhooks_refused"].as_f64().unwrap() >= 1.0,
        "{stats}"
    );
    assert_eq!(stats["steps"].as_array().unwrap().len(), 12);
    gateway.shutdown(Duration::from_secs(5)).await;
}
