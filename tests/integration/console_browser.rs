//! The operator console in a real headless Chromium against local mode on 127.0.0.1: an
//! operator logs in (a wrong key refused), creates an endpoint at a receiver answering 500,
//! sends a test event and sees the failed attempt, retries it once the receiver answers 200 and
//! sees it delivered, rotates the signing secret (shown once), reads the sources, labels a
//! conversation made by a signed sample webhook, diagnoses a captured request and reads the
//! overview. Every page is checked with axe-core (no serious or critical violation)
//! and photographed at desktop and phone width into `target/console-screenshots/`.
//!
//! Needs Chromium, chromedriver and axe-core (`scripts/test.sh` installs them); fails, never
//! skips, without them.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use shared::admin::{Admin, AdminConfig};
use shared::clock::Clock;
use shared::ids::SourceId;
use shared::model::Provider;
use shared::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use shared::ports::{InboundAuth, Source, StaticSources};
use shared::signature::{Secret, sign_meta};

use chrono::Utc;
use serde_json::{Value, json};
use tests::browser::Browser;
use tests::receiver::{Answer, Receiver};
use wagate_local::config::LocalConfig;
use wagate_local::gateway::Gateway;
use wagate_local::sample::{meta_text, request_headers, wamid};

use crate::e2e::{API_KEY, post, start_with_api};

const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);

/// axe-core's browser build: `$WAGATE_AXE_JS`, else `target/axe` under the repository (where
/// `scripts/test.sh` runs `npm install --prefix target/axe axe-core@4`).
fn axe_source() -> String {
    let path = std::env::var_os("WAGATE_AXE_JS").map_or_else(
        || tests::repo_root().join("target/axe/node_modules/axe-core/axe.min.js"),
        PathBuf::from,
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is needed for the console's accessibility checks ({}: {e}): run \
             `npm install --prefix target/axe axe-core@4` (scripts/test.sh does)",
            path.display()
        )
    })
}

fn screenshots() -> PathBuf {
    tests::repo_root().join("target/console-screenshots")
}

/// The tallest screenshot taken: a whole page up to this height.
const TALLEST: u32 = 2000;

/// The page at phone and at desktop width, whole (up to [`TALLEST`]), saved as
/// `{name}-phone.png` and `{name}-desktop.png`; fails if anything is wider than the phone's
/// screen. The viewport is left at desktop size.
async fn snap(browser: &Browser, name: &str) {
    let dir = screenshots();
    for (form, (width, height), mobile) in [("phone", PHONE, true), ("desktop", DESKTOP, false)] {
        browser.viewport(width, height, mobile).await;
        browser.wait("main h1").await;
        let layout = browser
            .script(
                "window.scrollTo(0, 0);
                 const width = document.documentElement.clientWidth;
                 const wide = [...document.querySelectorAll('body *')]
                   .filter((e) => e.getBoundingClientRect().right > width + 1)
                   .slice(0, 8)
                   .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                     + (typeof e.className === 'string' && e.className ? '.' + e.className.replace(/ /g, '.') : ''));
                 return {width, wide, height: document.documentElement.scrollHeight};",
                json!([]),
            )
            .await;
        assert_eq!(
            layout["wide"],
            json!([]),
            "{name} at {form} width: wider than the screen"
        );
        let full = layout["height"].as_u64().map_or(height, |h| {
            u32::try_from(h).unwrap_or(TALLEST).clamp(height, TALLEST)
        });
        browser.viewport(width, full, mobile).await;
        browser
            .screenshot(&dir.join(format!("{name}-{form}.png")))
            .await;
    }
    browser.viewport(DESKTOP.0, DESKTOP.1, false).await;
}

/// With `WAGATE_UPDATE_CONSOLE_DOCS` set, copies these screenshots to `docs/console/` (the
/// README shows them).
fn publish(names: &[&str]) {
    if std::env::var_os("WAGATE_UPDATE_CONSOLE_DOCS").is_none() {
        return;
    }
    let docs = tests::repo_root().join("docs/console");
    std::fs::create_dir_all(&docs).unwrap();
    for name in names {
        let from = screenshots().join(format!("{name}.png"));
        std::fs::copy(&from, docs.join(format!("{name}.png")))
            .unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// Runs axe-core on the page; fails listing any serious or critical violation.
async fn accessible(browser: &Browser, axe: &str, page: &str) {
    let loaded = browser
        .script(
            &format!("{axe}\n;return typeof window.axe === 'object';"),
            json!([]),
        )
        .await;
    assert_eq!(loaded, true, "axe-core did not load on {page}");
    let found = browser
        .script_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']})
               .then((r) => done(r.violations.map((v) => ({
                 id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' '))}))))
               .catch((e) => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
            json!([]),
        )
        .await;
    let violations = found.as_array().cloned().unwrap_or_default();
    let grave: Vec<&Value> = violations
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .collect();
    for v in &violations {
        eprintln!(
            "axe on {page}: {} ({}): {} at {}",
            v["id"], v["impact"], v["help"], v["nodes"]
        );
    }
    assert!(
        grave.is_empty(),
        "serious or critical accessibility violations on {page}: {grave:#?}"
    );
}

/// Fails if the browser console shows anything the CSP refused or a script error (failed API
/// answers, which the pages report themselves, are expected).
async fn no_script_errors(browser: &Browser) {
    let log = browser
        .console_log()
        .await
        .expect("chromedriver keeps the browser console (POST /se/log)");
    let bad: Vec<&String> = log
        .iter()
        .filter(|l| {
            l.contains("Content Security Policy")
                || l.contains("Refused to")
                || l.contains("Uncaught")
                || (l.starts_with("SEVERE") && !l.contains("the server responded with a status"))
        })
        .collect();
    assert!(bad.is_empty(), "browser console: {bad:#?}");
}

/// Opens a console route (`#/…`) and waits for its heading.
async fn open(browser: &Browser, base: &str, route: &str, heading: &str) {
    browser.goto(&format!("{base}/console/{route}")).await;
    browser.wait_text("main h1", heading).await;
}

/// An authenticated management API call, as a client other than the browser.
async fn api(gateway: &Gateway, method: reqwest::Method, path: &str) -> (u16, Value) {
    let r = aws_adapters::http::client()
        .request(method, format!("http://{}/v1{path}", gateway.addr()))
        .header("x-api-key", API_KEY)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_manages_the_gateway_from_the_console_in_a_real_browser() {
    let axe = axe_source();
    // The first delivery is refused with a 500; every later one is accepted.
    let receiver = Receiver::start(vec![Answer::status(500)]).await;
    let gateway = start_with_api(vec![]).await;
    let base = format!("http://{}", gateway.addr());
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    browser.viewport(DESKTOP.0, DESKTOP.1, false).await;

    // The bare path redirects to the page; a wrong key is refused, the right one lets in.
    browser.goto(&format!("{base}/console")).await;
    browser.wait_text("main h1", "Log in").await;
    assert!(browser.url().await.contains("/console/"));
    snap(&browser, "login").await;
    accessible(&browser, &axe, "login").await;
    browser
        .fill("#login input[name=key]", "not-the-admin-key-000")
        .await;
    browser.click("#login button[type=submit]").await;
    browser.wait_text("#login-error", "refused").await;
    assert!(browser.find("#nav:not([hidden])").await.is_none());
    browser.fill("#login input[name=key]", API_KEY).await;
    browser.click("#login button[type=submit]").await;
    browser.wait_text("main h1", "Overview").await;
    browser.wait("#nav").await;
    let stored = browser
        .script(
            "return [sessionStorage.length, localStorage.length, location.href];",
            json!([]),
        )
        .await;
    assert_eq!(stored[0], 1, "the key is in sessionStorage");
    assert_eq!(stored[1], 0, "nothing in localStorage");
    assert!(!stored[2].as_str().unwrap().contains(API_KEY), "{stored}");
    snap(&browser, "overview").await;
    accessible(&browser, &axe, "overview").await;

    // An endpoint at the receiver, with a write-only header.
    open(&browser, &base, "#/endpoints", "Endpoints").await;
    browser.wait_text("main", "No endpoints yet").await;
    browser.click("a[href='#/endpoints/new']").await;
    browser.wait_text("main h1", "New endpoint").await;
    browser
        .fill("main form input[name=url]", &receiver.url("/hook"))
        .await;
    browser
        .fill(
            "main form input[name=event_types]",
            "whatsapp.message.received",
        )
        .await;
    browser.click("main form fieldset button").await;
    browser
        .fill("main form input[name=header-name]", "X-Receiver-Key")
        .await;
    browser
        .fill(
            "main form input[name=header-value]",
            "receiver-secret-value-1",
        )
        .await;
    accessible(&browser, &axe, "new endpoint").await;
    browser.click("main form button[type=submit]").await;
    let first_secret = browser.wait_text("#secret-value", "whsec_").await;
    let heading = browser.text("main h1").await;
    let id = heading
        .strip_prefix("Endpoint ")
        .unwrap_or_else(|| panic!("{heading}"))
        .to_owned();
    let page = browser.page_text().await;
    assert!(page.contains("1 header set"), "{page}");
    assert!(!page.contains("receiver-secret-value-1"), "{page}");

    // A test event: the receiver answers 500, the console shows the failed attempt.
    browser.click("#test-form button[type=submit]").await;
    let result = browser.wait_text("#test-result", "Test failed").await;
    assert!(result.contains("500"), "{result}");
    assert!(result.contains(" ms"), "{result}");
    snap(&browser, "endpoint").await;
    accessible(&browser, &axe, "endpoint").await;
    let (_, shown) = api(&gateway, reqwest::Method::GET, &format!("/endpoints/{id}")).await;
    assert_eq!(shown["headers"]["X-Receiver-Key"], "********", "{shown}");
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(
        receiver.received()[0].header("x-receiver-key"),
        Some("receiver-secret-value-1")
    );

    // The secret was shown once: not after coming back.
    open(&browser, &base, "#/endpoints", "Endpoints").await;
    browser.wait_text("main table", &id).await;
    browser.click(&format!("a[href='#/endpoints/{id}']")).await;
    browser.wait_text("main h1", &id).await;
    assert!(browser.find("#secret-box").await.is_none());

    // The failed test delivery, retried now that the receiver answers 200.
    open(
        &browser,
        &base,
        &format!("#/deliveries?endpoint_id={id}"),
        "Deliveries",
    )
    .await;
    browser.wait("main table").await;
    browser
        .click("main table tbody tr:first-child td:first-child a")
        .await;
    browser.wait_text("main h1", "Delivery").await;
    browser.wait_text("ol.timeline", "500").await;
    accessible(&browser, &axe, "failed delivery").await;
    browser.click("#retry").await;
    browser.wait_text("#flash", "Retry queued").await;
    browser
        .until("the retried delivery to be delivered", || async {
            browser.click("#refresh").await;
            let timeline = browser.text("ol.timeline").await;
            (timeline.contains("Attempt 2") && timeline.contains("200")).then_some(())
        })
        .await;
    assert_eq!(receiver.received().len(), 2);
    // The request as sent: the exact body, the headers with the write-only one masked.
    let sent_body = browser.wait_text("#sent-body", "\"type\"").await;
    let posted = String::from_utf8_lossy(&receiver.received()[1].body).into_owned();
    assert_eq!(sent_body, posted, "the body shown is the body posted");
    let sent_headers = browser.text("#sent-headers").await;
    assert!(
        sent_headers.contains("X-Receiver-Key: ********"),
        "{sent_headers}"
    );
    assert!(
        !sent_headers.contains("receiver-secret-value"),
        "{sent_headers}"
    );
    assert!(
        sent_headers.contains("X-Idempotency-Key: msg_"),
        "{sent_headers}"
    );
    snap(&browser, "delivery").await;
    accessible(&browser, &axe, "delivery").await;
    open(
        &browser,
        &base,
        &format!("#/deliveries?endpoint_id={id}"),
        "Deliveries",
    )
    .await;
    browser.wait_text("main table", "delivered").await;
    snap(&browser, "deliveries").await;
    accessible(&browser, &axe, "deliveries").await;
    // Filtered by status through the form; the dead-letter queue redriven (it is empty).
    browser
        .choose("#delivery-filters select[name=status]", "dead_lettered")
        .await;
    browser.click("#delivery-filters button[type=submit]").await;
    browser.wait_text("main", "No deliveries match").await;
    assert!(browser.url().await.contains("status=dead_lettered"));
    browser.click("#redrive-form button[type=submit]").await;
    browser.wait_text("#redrive-result", "Moved 0").await;

    // Rotating the secret shows the new one, once, until dismissed.
    open(&browser, &base, &format!("#/endpoints/{id}"), &id).await;
    browser.click("#rotate-form button[type=submit]").await;
    let second_secret = browser.wait_text("#secret-value", "whsec_").await;
    assert_ne!(first_secret, second_secret);
    browser
        .wait_text("main", "Previous secret signs until")
        .await;
    snap(&browser, "secret-rotated").await;
    browser.click("#secret-box button:last-child").await;
    browser.wait_gone("#secret-box").await;

    // Edited (the write-only header kept), disabled, enabled.
    browser
        .fill("#edit-form input[name=description]", "Orders service")
        .await;
    browser.click("#edit-form button[type=submit]").await;
    browser.wait_text("#flash", "Endpoint saved").await;
    browser.wait_text("main dl", "Orders service").await;
    browser.click("#toggle").await;
    browser.wait_text("#flash", "Endpoint disabled").await;
    browser.wait_text("main dl", "disabled").await;
    browser.click("#toggle").await;
    browser.wait_text("#flash", "Endpoint enabled").await;
    let (_, shown) = api(&gateway, reqwest::Method::GET, &format!("/endpoints/{id}")).await;
    assert_eq!(shown["description"], "Orders service", "{shown}");
    assert_eq!(shown["enabled"], true, "{shown}");

    // Sources: the webhook URL to give each provider.
    open(&browser, &base, "#/sources", "Sources").await;
    let table = browser.wait_text("main table", "meta-demo").await;
    assert!(
        table.contains(&format!("{base}/webhooks/meta-demo")),
        "{table}"
    );
    snap(&browser, "sources-live").await;
    accessible(&browser, &axe, "sources").await;

    // A conversation made by a signed sample webhook, labelled from the console.
    let body = meta_text(
        "15550002222",
        "Carla Example",
        &wamid(),
        "hi there",
        Utc::now(),
    );
    assert_eq!(post(&gateway, "meta-demo", &body.to_string()).await.0, 200);
    tests::wait::until_async("the conversation", tests::browser::PATIENCE, || async {
        let (_, page) = api(&gateway, reqwest::Method::GET, "/conversations").await;
        page["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    open(&browser, &base, "#/conversations", "Conversations").await;
    browser.wait_text("main table", "Carla Example").await;
    snap(&browser, "conversations").await;
    accessible(&browser, &axe, "conversations").await;
    browser
        .click("main table a[href^='#/conversations/']")
        .await;
    browser
        .wait_text("main h1", "Conversation with Carla Example")
        .await;
    browser.wait_text("ol.messages", "hi there").await;
    browser
        .fill("#labels-form input[name=labels]", "vip, billing")
        .await;
    browser.click("#labels-form button[type=submit]").await;
    browser.wait_text("#flash", "Labels saved").await;
    browser.wait_text("main", "billing").await;
    let conversation = browser.url().await;
    let conversation = conversation
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (_, shown) = api(
        &gateway,
        reqwest::Method::GET,
        &format!("/conversations/{conversation}"),
    )
    .await;
    assert_eq!(shown["labels"], json!(["vip", "billing"]), "{shown}");
    // Found by the API's search: by label, by the number however it is written, by text.
    let other = meta_text("15550003333", "Dan Other", &wamid(), "hello", Utc::now());
    assert_eq!(post(&gateway, "meta-demo", &other.to_string()).await.0, 200);
    tests::wait::until_async(
        "the second conversation",
        tests::browser::PATIENCE,
        || async {
            let (_, page) = api(&gateway, reqwest::Method::GET, "/conversations").await;
            page["data"].as_array().is_some_and(|d| d.len() == 2)
        },
    )
    .await;
    for (field, value) in [
        ("label", "Billing"),
        ("phone", "+1 555-000-2222"),
        ("q", "carla"),
    ] {
        open(&browser, &base, "#/conversations", "Conversations").await;
        browser.wait_text("main table", "Dan Other").await;
        browser
            .fill(&format!("#conversation-filters input[name={field}]"), value)
            .await;
        browser
            .click("#conversation-filters button[type=submit]")
            .await;
        browser
            .until("the search to apply", || async {
                browser
                    .url()
                    .await
                    .contains(&format!("{field}="))
                    .then_some(())
            })
            .await;
        let found = browser.wait_text("main table", "Carla Example").await;
        assert!(!found.contains("Dan Other"), "{field}={value}: {found}");
    }
    open(
        &browser,
        &base,
        "#/conversations?label=nobody",
        "Conversations",
    )
    .await;
    browser.wait_text("main", "No conversation matches").await;
    open(
        &browser,
        &base,
        &format!("#/conversations/{conversation}"),
        "Conversation with Carla Example",
    )
    .await;
    // A note, a transfer, then closed.
    browser
        .fill("#note-form textarea", "Called back about the invoice")
        .await;
    browser.fill("#note-form input[name=author]", "ops").await;
    browser.click("#note-form button[type=submit]").await;
    browser.wait_text("#flash", "Note added").await;
    browser
        .wait_text("#notes", "Called back about the invoice")
        .await;
    browser
        .fill("#transfer-form input[name=to_team]", "support")
        .await;
    browser.click("#transfer-form button[type=submit]").await;
    browser
        .wait_text("#flash", "Conversation transferred")
        .await;
    browser.wait_text("main dl", "team support").await;
    snap(&browser, "conversation").await;
    accessible(&browser, &axe, "conversation").await;
    browser.click("#close-conversation").await;
    browser.wait_text("#flash", "Conversation closed").await;
    browser.wait_text("main dl", "ended").await;
    let (_, shown) = api(
        &gateway,
        reqwest::Method::GET,
        &format!("/conversations/{conversation}"),
    )
    .await;
    assert_eq!(shown["status"], "ended", "{shown}");
    assert_eq!(shown["notes"][0]["text"], "Called back about the invoice");
    assert_eq!(shown["assignee"]["team_id"], "support", "{shown}");
    // The message reached the endpoint with the header value the edit kept.
    tests::wait::until(
        "the message at the receiver",
        tests::browser::PATIENCE,
        || receiver.received().len() >= 3,
    )
    .await;
    assert_eq!(
        receiver.received()[2].header("x-receiver-key"),
        Some("receiver-secret-value-1")
    );

    // The signature diagnosis of a captured request.
    open(&browser, &base, "#/diagnose", "Diagnose").await;
    {
        let config = LocalConfig::sample().unwrap();
        let url = format!("{base}/webhooks/meta-demo");
        let body = meta_text(
            "15550002222",
            "Carla Example",
            &wamid(),
            "again",
            Utc::now(),
        )
        .to_string();
        let headers = request_headers(config.source("meta-demo").unwrap(), &url, body.as_bytes());
        let mut raw = String::from("POST /webhooks/meta-demo HTTP/1.1\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\n"));
        }
        raw.push('\n');
        raw.push_str(&body);
        browser.choose("#diagnose-form select", "meta-demo").await;
        browser.fill("#diagnose-form textarea", &raw).await;
        browser.click("#diagnose-form button[type=submit]").await;
        let verdict = browser.wait_text("#verdict", "Accepted").await;
        assert!(verdict.contains("verified"), "{verdict}");
    }
    snap(&browser, "diagnose-live").await;
    accessible(&browser, &axe, "diagnose").await;

    no_script_errors(&browser).await;

    // The overview: this process's figures (accepted webhooks, the failed test attempt), the
    // dead-letter queue, charts with their figures as tables, endpoints in trouble.
    open(&browser, &base, "#/overview", "Overview").await;
    browser.wait_text("main", "Endpoints in trouble").await;
    let overview = browser.page_text().await;
    assert!(overview.contains("this process"), "{overview}");
    assert!(overview.contains("Webhooks accepted"), "{overview}");
    let charts = browser
        .script(
            "return document.querySelectorAll('svg.chart').length;",
            json!([]),
        )
        .await;
    assert_eq!(charts, 3);
    browser.click("a[href='#/overview?window=day']").await;
    browser
        .wait("a[href='#/overview?window=day'][aria-current=true]")
        .await;
    snap(&browser, "overview-traffic").await;
    accessible(&browser, &axe, "overview-traffic").await;

    // The endpoint deleted, after asking again.
    open(&browser, &base, &format!("#/endpoints/{id}"), &id).await;
    browser.click("main button.danger").await;
    browser.wait_text("main", "Yes, delete").await;
    browser.click("main button.danger").await;
    browser.wait_text("#flash", "deleted").await;
    browser.wait_text("main", "No endpoints yet").await;

    // Logging out forgets the key.
    browser.click("#logout").await;
    browser.wait_text("main h1", "Log in").await;
    let left = browser
        .script("return sessionStorage.length;", json!([]))
        .await;
    assert_eq!(left, 0);

    drop(browser);
    publish(&[
        "overview-traffic-desktop",
        "endpoint-desktop",
        "delivery-desktop",
        "deliveries-desktop",
        "conversation-desktop",
        "endpoint-phone",
        "conversation-phone",
    ]);
    gateway.shutdown(Duration::from_secs(5)).await;
}

/// What the console asked the API to diagnose.
type Diagnosed = Arc<Mutex<Vec<Value>>>;

const STAGE_KEY: &str = "stage-admin-key-0123456789";

/// API Gateway in front of the real management API under a `prod` stage: it throttles (429 with
/// `Retry-After`) the one route the test makes hot, and the test reads what the console posted
/// to the diagnosis route on the way.
async fn api_gateway(
    State(diagnosed): State<Diagnosed>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if request.method() == Method::POST && path == "/prod/v1/sources/twilio-main/diagnose" {
        let mut throttled = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"message": "Too Many Requests"})),
        )
            .into_response();
        throttled
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("7"));
        return throttled;
    }
    if !path.ends_with("/diagnose") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    diagnosed
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
    next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The sources the staged gateway knows: Meta mid-rotation, Twilio with its public URL, a
/// Gupshup source whose token is not set yet.
fn staged_sources() -> Vec<Source> {
    let source = |id: &str, provider, secrets: &[&str], inbound| Source {
        id: SourceId::parse(id).unwrap(),
        provider,
        secrets: secrets.iter().map(|s| Secret::from(*s)).collect(),
        verify_tokens: if provider == Provider::Meta {
            vec![Secret::from("meta-verify-token")]
        } else {
            vec![]
        },
        inbound,
        send: None,
    };
    vec![
        source(
            "meta-main",
            Provider::Meta,
            &["meta-old-secret", "meta-new-secret"],
            InboundAuth::default(),
        ),
        source(
            "twilio-main",
            Provider::Twilio,
            &["twilio-auth-token"],
            InboundAuth {
                public_url: Some("https://hooks.example.com/webhooks/twilio-main".into()),
                ..InboundAuth::default()
            },
        ),
        source(
            "gupshup-main",
            Provider::Gupshup,
            &[],
            InboundAuth::default(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_and_the_signature_diagnosis_work_behind_a_stage_prefix() {
    let axe = axe_source();
    let diagnosed = Diagnosed::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let admin = Admin::new(
        Arc::new(MemoryDocumentStore::new()),
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryQueue::new("delivery")),
        Arc::new(MemoryQueue::new("delivery-dlq")),
        Duration::from_secs(86400),
        AdminConfig {
            api_keys: vec![Secret::from(STAGE_KEY)],
            ..AdminConfig::default()
        },
    )
    .with_sources(Arc::new(StaticSources::new(staged_sources())));
    let app = admin
        .router(Clock::system())
        .layer(axum::middleware::from_fn_with_state(
            diagnosed.clone(),
            api_gateway,
        ));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let browser = Browser::start(DESKTOP.0, DESKTOP.1).await;
    browser.viewport(DESKTOP.0, DESKTOP.1, false).await;

    browser.goto(&format!("{base}/prod/console")).await;
    browser.wait_text("main h1", "Log in").await;
    assert!(
        browser
            .url()
            .await
            .starts_with(&format!("{base}/prod/console/"))
    );
    browser.fill("#login input[name=key]", API_KEY).await;
    browser.click("#login button[type=submit]").await;
    browser.wait_text("#login-error", "refused").await;
    browser.fill("#login input[name=key]", STAGE_KEY).await;
    browser.click("#login button[type=submit]").await;
    browser.wait_text("main h1", "Overview").await;

    open(&browser, &format!("{base}/prod"), "#/sources", "Sources").await;
    let table = browser.wait_text("main table", "meta-main").await;
    for expected in [
        format!("{base}/prod/webhooks/meta-main"),
        format!("{base}/prod/webhooks/gupshup-main"),
        "2 secrets set".to_owned(),
        "no secret set".to_owned(),
        "1 verify token".to_owned(),
        "token query ?token=".to_owned(),
    ] {
        assert!(table.contains(&expected), "{expected} in {table}");
    }
    snap(&browser, "sources").await;
    accessible(&browser, &axe, "sources").await;

    // A pasted capture signed with the newer secret: accepted, by the second one.
    browser.click("a[href='#/diagnose?source=meta-main']").await;
    browser.wait_text("main h1", "Diagnose").await;
    let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
    let signature = sign_meta(&Secret::from("meta-new-secret"), body.as_bytes());
    let capture = format!(
        "POST /prod/webhooks/meta-main HTTP/1.1\nContent-Type: application/json\nX-Hub-Signature-256: {signature}\n\n{body}"
    );
    let capture = capture.as_str();
    browser.fill("#diagnose-form textarea", capture).await;
    browser
        .fill(
            "#diagnose-form input[name=url]",
            "https://hooks.example.com/webhooks/meta-main",
        )
        .await;
    browser.click("#diagnose-form button[type=submit]").await;
    let verdict = browser.wait_text("#verdict", "Accepted: verified").await;
    assert!(verdict.contains("secret 2 of 2"), "{verdict}");
    assert!(browser.find("#verdict.accepted").await.is_some());
    snap(&browser, "diagnose").await;
    accessible(&browser, &axe, "diagnose").await;

    // An uploaded capture without it: refused, with the hints.
    let file = std::env::temp_dir().join(format!("wagate-capture-{}.txt", std::process::id()));
    std::fs::write(&file, "POST /prod/webhooks/meta-main HTTP/1.1\n\n{}").unwrap();
    let input = browser.wait("#diagnose-form input[type=file]").await;
    browser.type_into(&input, &file.display().to_string()).await;
    browser.click("#diagnose-form button[type=submit]").await;
    let verdict = browser
        .wait_text("#verdict", "Refused: header missing")
        .await;
    assert!(verdict.contains("dropped it"), "{verdict}");
    assert!(browser.find("#verdict.refused").await.is_some());
    snap(&browser, "diagnose-refused").await;
    accessible(&browser, &axe, "refused diagnosis").await;

    // A throttled answer asks the operator to slow down.
    browser.choose("#diagnose-form select", "twilio-main").await;
    browser.click("#diagnose-form button[type=submit]").await;
    browser
        .wait_text("#diagnose-form .error", "slow down and try again in 7 s")
        .await;

    no_script_errors(&browser).await;
    let _ = std::fs::remove_file(&file);
    let asked = diagnosed.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0]["raw"], capture);
    assert_eq!(
        asked[0]["url"],
        "https://hooks.example.com/webhooks/meta-main"
    );
    assert_eq!(
        asked[1]["raw"],
        "POST /prod/webhooks/meta-main HTTP/1.1\n\n{}"
    );
    publish(&[
        "sources-desktop",
        "diagnose-desktop",
        "diagnose-refused-phone",
    ]);
}
