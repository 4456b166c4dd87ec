use chrono::TimeZone;

use super::*;
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};

const KEY: &str = "admin-key-1";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn admin() -> Admin {
    admin_with_queues().0
}

fn admin_with_queues() -> (Admin, Arc<MemoryQueue>, Arc<MemoryQueue>) {
    let docs: Arc<dyn DocumentStore> = Arc::new(MemoryDocumentStore::new());
    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let queue = Arc::new(MemoryQueue::new("delivery"));
    let dlq = Arc::new(MemoryQueue::new("delivery-dlq"));
    let admin = Admin {
        endpoints: Endpoints { docs: docs.clone() },
        deliveries: Deliveries {
            docs: docs.clone(),
            blobs: blobs.clone(),
            ttl: std::time::Duration::from_secs(30 * 86400),
        },
        delivery_queue: queue.clone(),
        dead_letter: dlq.clone(),
        blobs,
        docs,
        conversations: None,
        sender: None,
        sources: None,
        provider: None,
        media: None,
        metrics: None,
        config: AdminConfig {
            api_keys: vec![
                Secret::from("old-key".to_owned()),
                Secret::from(KEY.to_owned()),
            ],
            ..AdminConfig::default()
        },
    };
    (admin, queue, dlq)
}

/// What a request was answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// `Allow`.
    allow: Option<String>,
    /// `Content-Type`.
    content_type: Option<String>,
    /// The JSON body (`null` when empty).
    body: Value,
    /// The body's text.
    text: String,
}

/// Sends one request through the router, as an HTTP client would (no socket: `oneshot`), at
/// the fixed time [`now`].
async fn send(
    admin: &Admin,
    method: &str,
    target: &str,
    api_key: Option<&str>,
    idempotency_key: Option<&str>,
    body: impl Into<axum::body::Body>,
) -> Answer {
    use tower::ServiceExt as _;
    let mut request = axum::http::Request::builder().method(method).uri(target);
    if let Some(key) = api_key {
        request = request.header("x-api-key", key);
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let request = request.body(body.into()).unwrap();
    let response = admin
        .clone()
        .router(crate::clock::Clock::fixed(now()))
        .oneshot(request)
        .await
        .unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let (allow, content_type) = (header("allow"), header("content-type"));
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        assert_eq!(content_type.as_deref(), Some("application/json"));
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer {
        status,
        allow,
        content_type,
        body,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// `method target` with the valid key: status and JSON body.
async fn call(
    admin: &Admin,
    method: &str,
    target: &str,
    body: &str,
    idempotency_key: Option<&str>,
) -> (u16, Value) {
    let a = send(
        admin,
        method,
        target,
        Some(KEY),
        idempotency_key,
        body.to_owned(),
    )
    .await;
    (a.status, a.body)
}

async fn create(admin: &Admin, url: &str) -> Value {
    let (status, v) = call(
        admin,
        "POST",
        "/v1/endpoints",
        &json!({"url": url, "event_types": ["whatsapp.message.*"], "headers": {"X-API-Key": "r"}})
            .to_string(),
        None,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v
}

#[tokio::test]
async fn every_request_needs_a_valid_key_and_the_error_says_nothing_more() {
    let a = admin();
    for key in [None, Some("wrong"), Some(""), Some("admin-key-")] {
        let r = send(&a, "GET", "/v1/endpoints", key, None, "").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body["error"]["code"], "unauthorized");
    }
    // Either configured key works (rotation), also behind a stage prefix.
    let r = send(&a, "GET", "/prod/v1/endpoints", Some("old-key"), None, "").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn endpoints_are_created_shown_listed_updated_and_deleted() {
    let a = admin();
    let created = create(&a, "https://hooks.example.com/wa").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ep_"));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["batching"], true);
    let (status, shown) = call(&a, "GET", &format!("/v1/endpoints/{id}"), "", None).await;
    assert_eq!(status, 200);
    assert!(shown.get("secret").is_none(), "the secret is shown once");
    assert_eq!(
        shown["headers"]["X-API-Key"], "********",
        "header values are write-only"
    );

    let (status, updated) = call(
        &a,
        "PATCH",
        &format!("/v1/endpoints/{id}"),
        r#"{"description": "CRM", "batching": false, "event_types": ["*"]}"#,
        None,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["description"], "CRM");
    assert_eq!(updated["batching"], false);
    assert_eq!(updated["url"], "https://hooks.example.com/wa");
    let (_, cleared) = call(
        &a,
        "PATCH",
        &format!("/v1/endpoints/{id}"),
        r#"{"description": null}"#,
        None,
    )
    .await;
    assert_eq!(cleared["description"], Value::Null);

    let (status, disabled) =
        call(&a, "POST", &format!("/v1/endpoints/{id}/disable"), "", None).await;
    assert_eq!((status, &disabled["enabled"]), (200, &json!(false)));
    let (_, enabled) = call(&a, "POST", &format!("/v1/endpoints/{id}/enable"), "", None).await;
    assert_eq!(enabled["enabled"], true);

    let (status, body) = call(&a, "DELETE", &format!("/v1/endpoints/{id}"), "", None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, err) = call(&a, "GET", &format!("/v1/endpoints/{id}"), "", None).await;
    assert_eq!((status, &err["error"]["code"]), (404, &json!("not_found")));
    let (status, _) = call(&a, "DELETE", &format!("/v1/endpoints/{id}"), "", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn lists_are_paginated_by_an_opaque_cursor() {
    let a = admin();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            create(&a, &format!("https://hooks.example.com/{n}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids.sort();
    // Follow the cursor to the end: 2 + 2 + 1.
    let mut seen: Vec<Vec<String>> = Vec::new();
    let mut path = "/v1/endpoints?limit=2".to_owned();
    loop {
        let (status, page) = call(&a, "GET", &path, "", None).await;
        assert_eq!(status, 200);
        seen.push(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect(),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/endpoints?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [ids[..2].to_vec(), ids[2..4].to_vec(), ids[4..].to_vec()]
    );
    let (status, err) = call(&a, "GET", "/v1/endpoints?cursor=%%%", "", None).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("bad_request"))
    );
    let (status, err) = call(&a, "GET", "/v1/endpoints?limit=0", "", None).await;
    assert_eq!(
        (status, &err["error"]["details"]["field"]),
        (422, &json!("limit"))
    );
}

#[tokio::test]
async fn invalid_endpoints_get_422_naming_the_field() {
    let a = admin();
    for (body, field) in [
        (json!({"url": "http://hooks.example.com/"}), "url"),
        (json!({"url": "https://10.0.0.8/hook"}), "url"),
        (json!({"url": "https://169.254.169.254/latest"}), "url"),
        (json!({"url": "https://localhost/hook"}), "url"),
        (
            json!({"url": "https://h.example.com", "event_types": ["whatsapp.nope"]}),
            "event_types",
        ),
        (
            json!({"url": "https://h.example.com", "headers": {"X-Webhook-Signature": "x"}}),
            "headers",
        ),
        (
            json!({"url": "https://h.example.com", "colour": "red"}),
            "colour",
        ),
        (json!({"event_types": []}), "url"),
        (json!({"url": 5}), "body"),
    ] {
        let (status, err) = call(&a, "POST", "/v1/endpoints", &body.to_string(), None).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["code"], "validation_failed");
        assert_eq!(err["error"]["details"]["field"], field, "{body}: {err}");
    }
    let (status, err) = call(&a, "POST", "/v1/endpoints", "{not json", None).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("bad_request"))
    );
    let big = format!(
        r#"{{"url": "https://h.example.com", "description": "{}"}}"#,
        "x".repeat(300_000)
    );
    let (status, _) = call(&a, "POST", "/v1/endpoints", &big, None).await;
    assert_eq!(status, 413);
    let (status, _) = call(&a, "GET", "/v1/nothing", "", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&a, "PUT", "/v1/endpoints", "", None).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_rotation_keeps_the_old_secret_for_the_grace_period() {
    let a = admin();
    let created = create(&a, "https://hooks.example.com/wa").await;
    let id = created["id"].as_str().unwrap();
    let old = created["secret"].as_str().unwrap().to_owned();
    let (status, rotated) = call(
        &a,
        "POST",
        &format!("/v1/endpoints/{id}/rotate-secret"),
        r#"{"grace_seconds": 3600}"#,
        None,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        rotated["previous_secret_expires_at"],
        "2026-11-21T13:00:00Z"
    );
    let (endpoint, _) = a.endpoints.get(id, now()).await.unwrap().unwrap();
    let active: Vec<String> = endpoint
        .active_secrets(now())
        .iter()
        .map(|s| s.expose().to_owned())
        .collect();
    assert_eq!(active, [new.to_owned(), old.clone()]);
    let later = now() + chrono::Duration::hours(2);
    assert_eq!(endpoint.active_secrets(later).len(), 1);
    let (status, err) = call(
        &a,
        "POST",
        &format!("/v1/endpoints/{id}/rotate-secret"),
        r#"{"grace_seconds": 99999999}"#,
        None,
    )
    .await;
    assert_eq!(
        (status, &err["error"]["details"]["field"]),
        (422, &json!("grace_seconds"))
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_refuses_another_body() {
    let a = admin();
    let body = json!({"url": "https://hooks.example.com/once"}).to_string();
    let one = send(
        &a,
        "POST",
        "/v1/endpoints",
        Some(KEY),
        Some("k-1"),
        body.clone(),
    )
    .await;
    let two = send(
        &a,
        "POST",
        "/v1/endpoints",
        Some(KEY),
        Some("k-1"),
        body.clone(),
    )
    .await;
    assert_eq!((one.status, two.status), (201, 201));
    assert_eq!(
        one.text, two.text,
        "same id, same secret, same bytes: nothing created twice"
    );
    let first = one.body;
    // The record of the key does not hold the secret: only a seal the key itself opens.
    let secret = first["secret"].as_str().unwrap();
    let record = format!(
        "idem#{}",
        hex::encode(
            sha2::Sha256::new()
                .chain_update("/v1/endpoints")
                .chain_update([0])
                .chain_update("k-1")
                .finalize()
        )
    );
    let stored = a
        .docs
        .get(&record, now())
        .await
        .unwrap()
        .unwrap()
        .body
        .to_string();
    assert!(stored.contains("sealed_secret"), "{stored}");
    assert!(
        !stored.contains(secret),
        "the idempotency record keeps the secret"
    );
    assert!(!stored.contains(&secret["whsec_".len()..]));
    let (_, list) = call(&a, "GET", "/v1/endpoints", "", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let other = json!({"url": "https://hooks.example.com/other"}).to_string();
    let (status, err) = call(&a, "POST", "/v1/endpoints", &other, Some("k-1")).await;
    assert_eq!((status, &err["error"]["code"]), (409, &json!("conflict")));
    // A validation error is remembered too: the same request gets the same answer.
    let bad = json!({"url": "http://x"}).to_string();
    let (s1, e1) = call(&a, "POST", "/v1/endpoints", &bad, Some("k-2")).await;
    let (s2, e2) = call(&a, "POST", "/v1/endpoints", &bad, Some("k-2")).await;
    assert_eq!((s1, s2), (422, 422));
    assert_eq!(e1, e2);
}

/// Delivery records for endpoint `endpoint`: `n` of them a minute apart from `base_minutes`
/// ago, every third one dead-lettered, the rest delivered.
async fn seed_deliveries(a: &Admin, endpoint: &str, n: i64, base_minutes: i64) -> Vec<String> {
    use crate::delivery::record::{AttemptRecord, DeliveryStatus};
    use crate::delivery::request::DeliveryTask;
    use crate::model::EventType;
    let mut ids = Vec::new();
    for i in 0..n {
        let at = now() - chrono::Duration::minutes(base_minutes - i);
        let task = DeliveryTask {
            delivery_id: format!("msg_{i:03}_{endpoint}"),
            endpoint_id: endpoint.to_owned(),
            event_type: if i % 2 == 0 {
                EventType::MessageReceived
            } else {
                EventType::MessageRead
            },
            batch: false,
            event_ids: vec![crate::ids::EventId::new()],
            body: format!(r#"{{"n":{i}}}"#).into(),
            created_at: at,
            conversation_id: None,
        };
        let mut r = a.deliveries.new_record(&task, at).await.unwrap();
        let outcome = if i % 3 == 0 {
            DeliveryStatus::DeadLettered
        } else {
            DeliveryStatus::Delivered
        };
        r.push(
            AttemptRecord {
                attempt: 1,
                at,
                status: Some(if outcome == DeliveryStatus::Delivered {
                    200
                } else {
                    400
                }),
                latency_ms: 12,
                error: None,
                outcome,
            },
            None,
        );
        assert!(a.deliveries.put(&r, None, at).await.unwrap());
        ids.push(task.delivery_id);
    }
    ids
}

#[tokio::test]
async fn the_overview_reads_the_metrics_the_dead_letter_depth_and_failing_endpoints() {
    use crate::metrics::Metric;
    use crate::metrics::timeline::Timeline;
    let timeline = Arc::new(Timeline::new());
    let ago = |minutes| now() - chrono::Duration::minutes(minutes);
    for (metric, value) in [
        (Metric::WebhooksReceived, 5.0),
        (Metric::WebhooksRejected, 2.0),
        (Metric::EventsEnqueued, 9.0),
        (Metric::Delivered, 3.0),
        (Metric::FailedAttempts, 1.0),
        (Metric::DeliveryLatency, 100.0),
    ] {
        timeline.record(ago(10), metric, value);
    }
    // Two hours ago: in the day, not the hour.
    timeline.record(ago(120), Metric::WebhooksReceived, 7.0);
    let a = admin().with_metrics(timeline);
    let failing = create(&a, "https://one.example.com/h").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let off = create(&a, "https://two.example.com/h").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let _healthy = create(&a, "https://three.example.com/h").await;
    // Six deliveries in the last half hour; the 1st and 4th dead-lettered (400).
    seed_deliveries(&a, &failing, 6, 30).await;
    let (status, _) = call(
        &a,
        "POST",
        &format!("/v1/endpoints/{off}/disable"),
        "",
        None,
    )
    .await;
    assert_eq!(status, 200);

    let (status, hour) = call(&a, "GET", "/v1/stats", "", None).await;
    assert_eq!(status, 200, "{hour}");
    assert_eq!(hour["window"], "hour");
    assert_eq!(hour["step_seconds"], 300);
    assert_eq!(hour["steps"].as_array().unwrap().len(), 12);
    assert_eq!(hour["to"], json!(now()));
    let totals = &hour["totals"];
    assert_eq!(totals["webhooks_accepted"], 5.0);
    assert_eq!(totals["webhooks_refused"], 2.0);
    assert_eq!(totals["events"], 9.0);
    assert_eq!(totals["delivered"], 3.0);
    assert_eq!(totals["failed_attempts"], 1.0);
    let p50 = totals["latency_p50_ms"].as_f64().unwrap();
    assert!((100.0..=110.0).contains(&p50), "{p50}");
    // 10 minutes ago is in the step before the current one's predecessor.
    let with_webhooks: Vec<&Value> = hour["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["webhooks_accepted"] != 0.0)
        .collect();
    assert_eq!(with_webhooks.len(), 1);
    assert_eq!(with_webhooks[0]["start"], json!(ago(10)));
    assert_eq!(hour["dead_letter_depth"], 0);
    let trouble = hour["endpoints_in_trouble"].as_array().unwrap();
    assert_eq!(trouble.len(), 2, "{trouble:?}");
    assert_eq!(trouble[0]["endpoint_id"], failing.as_str());
    assert_eq!(trouble[0]["dead_lettered"], 2);
    assert_eq!(trouble[0]["recent"], 6);
    assert_eq!(trouble[0]["last_error"], "HTTP 400");
    assert_eq!(trouble[1]["endpoint_id"], off.as_str());
    assert_eq!(trouble[1]["enabled"], false);

    let (status, day) = call(&a, "GET", "/v1/stats?window=day", "", None).await;
    assert_eq!(status, 200);
    assert_eq!(day["steps"].as_array().unwrap().len(), 24);
    assert_eq!(day["totals"]["webhooks_accepted"], 12.0);
    let (status, _) = call(&a, "GET", "/v1/stats?window=week", "", None).await;
    assert_eq!(status, 422);

    // Without metrics the figures are absent, not zero.
    let (status, bare) = call(&admin(), "GET", "/v1/stats", "", None).await;
    assert_eq!(status, 200);
    assert_eq!(bare["metrics_from"], Value::Null);
    assert_eq!(bare["totals"], Value::Null);
    assert_eq!(bare["steps"], json!([]));
}

#[tokio::test]
async fn deliveries_are_listed_filtered_shown_and_retried() {
    let (a, queue, _) = admin_with_queues();
    let created1 = create(&a, "https://one.example.com/h").await;
    let ep1 = created1["id"].as_str().unwrap().to_owned();
    let ep2 = create(&a, "https://two.example.com/h").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids1 = seed_deliveries(&a, &ep1, 6, 60).await;
    let ids2 = seed_deliveries(&a, &ep2, 3, 120).await;

    // Across endpoints, newest first, paginated.
    let (status, first) = call(&a, "GET", "/v1/deliveries?limit=4", "", None).await;
    assert_eq!(status, 200, "{first}");
    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&first),
        [
            ids1[5].clone(),
            ids1[4].clone(),
            ids1[3].clone(),
            ids1[2].clone()
        ]
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = call(
        &a,
        "GET",
        &format!("/v1/deliveries?limit=4&cursor={cursor}"),
        "",
        None,
    )
    .await;
    assert_eq!(
        ids(&second),
        [
            ids1[1].clone(),
            ids1[0].clone(),
            ids2[2].clone(),
            ids2[1].clone()
        ]
    );

    // Filters.
    let (_, failed) = call(
        &a,
        "GET",
        &format!("/v1/deliveries?endpoint_id={ep1}&status=dead_lettered"),
        "",
        None,
    )
    .await;
    assert_eq!(ids(&failed), [ids1[3].clone(), ids1[0].clone()]);
    let (_, read) = call(
        &a,
        "GET",
        "/v1/deliveries?event_type=whatsapp.message.read&limit=100",
        "",
        None,
    )
    .await;
    assert_eq!(
        ids(&read),
        [
            ids1[5].clone(),
            ids1[3].clone(),
            ids1[1].clone(),
            ids2[1].clone()
        ]
    );
    let since = (now() - chrono::Duration::minutes(57)).to_rfc3339();
    let (_, recent) = call(
        &a,
        "GET",
        &format!(
            "/v1/deliveries?endpoint_id={ep1}&since={}",
            urlencode(&since)
        ),
        "",
        None,
    )
    .await;
    assert_eq!(
        ids(&recent),
        [ids1[5].clone(), ids1[4].clone(), ids1[3].clone()]
    );
    for bad in ["status=lost", "event_type=nope", "since=yesterday"] {
        let (status, _) = call(&a, "GET", &format!("/v1/deliveries?{bad}"), "", None).await;
        assert_eq!(status, 422, "{bad}");
    }

    // One delivery with its attempts.
    let (status, one) = call(&a, "GET", &format!("/v1/deliveries/{}", ids1[0]), "", None).await;
    assert_eq!(status, 200);
    assert_eq!(one["status"], "dead_lettered");
    assert_eq!(one["attempts"][0]["status"], 400);
    assert_eq!(one["attempts"][0]["latency_ms"], 12);
    let (status, _) = call(&a, "GET", "/v1/deliveries/msg_nope", "", None).await;
    assert_eq!(status, 404);
    // With the exact body and the latest attempt's headers, the write-only one masked; the
    // list leaves them out.
    assert_eq!(one["body"], r#"{"n":0}"#, "{one}");
    let headers: Vec<(String, String)> = serde_json::from_value(one["headers"].clone()).unwrap();
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} in {headers:?}"))
    };
    assert_eq!(value("X-Idempotency-Key"), ids1[0]);
    assert_eq!(value("webhook-id"), ids1[0]);
    let attempted_at = one["attempts"][0]["at"].as_str().unwrap();
    let attempted_at = DateTime::parse_from_rfc3339(attempted_at).unwrap();
    assert_eq!(
        value("webhook-timestamp"),
        attempted_at.timestamp().to_string()
    );
    assert_eq!(value("X-API-Key"), "********");
    assert_eq!(
        headers.last().unwrap().0,
        "X-API-Key",
        "custom headers come last"
    );
    assert!(!one.to_string().contains("whsec_"), "{one}");
    let secret =
        crate::signature::EndpointSecret::parse(created1["secret"].as_str().unwrap()).unwrap();
    assert_eq!(
        value("X-Webhook-Signature"),
        crate::signature::webhook_signature(&secret, br#"{"n":0}"#)
    );
    assert!(first["data"][0].get("body").is_none());
    assert!(first["data"][0].get("headers").is_none());

    // Retry puts the task back on the delivery queue and marks the record retrying.
    let (status, retried) = call(
        &a,
        "POST",
        &format!("/v1/deliveries/{}/retry", ids1[1]),
        "",
        None,
    )
    .await;
    assert_eq!((status, &retried["status"]), (202, &json!("retrying")));
    let tasks: Vec<crate::delivery::request::DeliveryTask> = crate::ports::codec::receive_all(
        queue.as_ref(),
        a.blobs.as_ref(),
        std::time::Duration::from_secs(60),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].delivery_id, ids1[1]);
    assert_eq!(tasks[0].body.as_str(), r#"{"n":1}"#);

    // Recover: the endpoint's failed deliveries since a time go back on the queue.
    let since = (now() - chrono::Duration::minutes(58)).to_rfc3339();
    let (status, rec) = call(
        &a,
        "POST",
        &format!("/v1/endpoints/{ep1}/recover?since={}", urlencode(&since)),
        "",
        None,
    )
    .await;
    assert_eq!(
        (status, &rec["recovered"]),
        (202, &json!(1)),
        "only msg_003 is failed and recent"
    );
    let (status, _) = call(
        &a,
        "POST",
        &format!("/v1/endpoints/{ep1}/recover"),
        "",
        None,
    )
    .await;
    assert_eq!(status, 422);
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn the_dead_letter_queue_is_redriven_by_endpoint() {
    use crate::ports::OutgoingMessage;
    let (a, queue, dlq) = admin_with_queues();
    for endpoint in ["ep_a", "ep_b", "ep_a"] {
        let task = crate::delivery::request::DeliveryTask {
            delivery_id: format!("msg_{}_{endpoint}", ulid::Ulid::new()),
            endpoint_id: endpoint.into(),
            event_type: crate::model::EventType::MessageRead,
            batch: false,
            event_ids: vec![],
            body: "{}".into(),
            created_at: now(),
            conversation_id: None,
        };
        dlq.send_batch(&[OutgoingMessage {
            id: "0".into(),
            body: serde_json::to_string(&task).unwrap(),
            delay: None,
        }])
        .await
        .unwrap();
    }
    let (status, report) = call(
        &a,
        "POST",
        "/v1/deliveries/redrive",
        r#"{"endpoint_id": "ep_a"}"#,
        None,
    )
    .await;
    assert_eq!(status, 202, "{report}");
    assert_eq!(report["moved"], 2);
    assert_eq!(queue.len(), 2);
    let (status, _) = call(
        &a,
        "POST",
        "/v1/deliveries/redrive",
        r#"{"endpoint_id": "ep_a", "event_id": "evt_01JBCQ3ZX0V9K8N7M6P5Q4R301"}"#,
        None,
    )
    .await;
    assert_eq!(status, 422);
    // Out of the documented ranges: refused, not clamped.
    for (body, field) in [
        (r#"{"endpoint_id": "ep a"}"#, "endpoint_id"),
        (r#"{"endpoint_id": ""}"#, "endpoint_id"),
        (r#"{"max": 0}"#, "max"),
        (r#"{"max": 10001}"#, "max"),
    ] {
        let (status, error) = call(&a, "POST", "/v1/deliveries/redrive", body, None).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(error["error"]["details"]["field"], field, "{body}");
    }
    assert_eq!(dlq.len(), 1);
    let (status, report) = call(&a, "POST", "/v1/deliveries/redrive", "", None).await;
    assert_eq!((status, &report["moved"]), (202, &json!(1)));
}

/// A notes body of `n` notes, each 2,000 times `unit`.
fn notes_of(n: usize, unit: &str) -> String {
    let text = unit.repeat(2000);
    let notes: Vec<_> = (0..n).map(|_| json!({"text": text})).collect();
    json!({ "notes": notes }).to_string()
}

#[tokio::test]
async fn conversation_bodies_are_checked_as_the_document_states() {
    let a = admin();
    let id = "conv_01JBCQ3ZX0V9K8N7M6P5Q4R305";
    let long = "a".repeat(201);
    let cases = [
        (
            "transfer",
            r#"{"to_agent": "\u0085"}"#.to_owned(),
            "to_agent",
        ),
        (
            "transfer",
            r#"{"to_agent": "ana", "to_team": "  "}"#.to_owned(),
            "to_team",
        ),
        ("transfer", format!(r#"{{"to_team": "{long}"}}"#), "to_team"),
        (
            "transfer",
            r#"{"notes": "no one named"}"#.to_owned(),
            "to_agent",
        ),
        ("labels", r#"{"labels": ["\ufeff"]}"#.to_owned(), "labels"),
        (
            "labels",
            r#"{"labels": ["vip", "\u0007"]}"#.to_owned(),
            "labels",
        ),
        (
            "notes",
            r#"{"notes": [{"text": "\u2028\ufeff"}]}"#.to_owned(),
            "notes",
        ),
        (
            "notes",
            format!(r#"{{"notes": [{{"text": "x", "author": "{long}"}}]}}"#),
            "notes",
        ),
        // Each within 2,000 characters, together over 32 KiB: 17 × 2,000 × 1 byte, or
        // 5 × 2,000 × 4 bytes.
        ("notes", notes_of(17, "a"), "notes"),
        ("notes", notes_of(5, "\u{1F600}"), "notes"),
    ];
    for (action, body, field) in cases {
        let method = if action == "transfer" { "POST" } else { "PUT" };
        let path = format!("/v1/conversations/{id}/{action}");
        let (status, error) = call(&a, method, &path, &body, None).await;
        assert_eq!(status, 422, "{action} {body}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{body}");
    }
}

#[test]
fn visible_text_agrees_with_the_documents_pattern() {
    for blank in ["", " ", "\u{85}", "\u{feff}", "\u{3000}\t", "\u{7f}\u{9f}"] {
        assert!(!has_visible(blank), "{blank:?}");
    }
    for text in ["a", " vip ", "\u{200b}", "é", "\u{feff}x"] {
        assert!(has_visible(text), "{text:?}");
    }
}

#[test]
fn every_event_type_has_a_sample_and_most_come_from_provider_payloads() {
    use crate::model::{EventBody, EventType};
    let source = crate::ids::SourceId::parse("wagate-test").unwrap();
    let mut from_providers = 0;
    for t in EventType::ALL {
        let e = sample_event(&source, *t, now());
        assert_eq!(e.event_type, *t);
        let envelope = crate::model::Envelope::single(e.clone());
        assert!(serde_json::to_string(&envelope).is_ok());
        let synthetic =
            matches!(&e.data.body, EventBody::Notification(n) if n.provider_event == "wagate.test");
        if !synthetic {
            from_providers += 1;
        }
    }
    let received = sample_event(&source, EventType::MessageReceived, now());
    assert!(matches!(received.data.body, EventBody::Message(_)));
    let ended = sample_event(&source, EventType::ConversationEnded, now());
    assert!(ended.data.conversation.is_some());
    assert!(
        from_providers >= 30,
        "{from_providers} of {}",
        EventType::ALL.len()
    );
}

#[tokio::test]
async fn a_call_while_the_first_with_the_same_key_runs_is_refused_and_failures_are_forgotten() {
    let a = admin();
    let first = idempotency::run(&a, "k", "/v1/x", "", b"{}", now(), || async {
        let second = idempotency::run(&a, "k", "/v1/x", "", b"{}", now(), || async {
            Ok(AdminResponse::empty())
        })
        .await;
        assert_eq!(
            second.unwrap_err().status,
            409,
            "the first is still running"
        );
        Ok(AdminResponse::json(201, &json!({"ok": true})))
    })
    .await
    .unwrap();
    assert_eq!(first.status, 201);
    let replay = idempotency::run(&a, "k", "/v1/x", "", b"{}", now(), || async {
        panic!("a finished key must not run again")
    })
    .await
    .unwrap();
    assert_eq!(replay, first);
    // A server error gives the key back: the retry runs.
    let failed = idempotency::run(&a, "k2", "/v1/x", "", b"{}", now(), || async {
        Err(ApiError::new(503, "unavailable", "down"))
    })
    .await
    .unwrap();
    assert_eq!(failed.status, 503);
    let retried = idempotency::run(&a, "k2", "/v1/x", "", b"{}", now(), || async {
        Ok(AdminResponse::json(200, &json!({"ok": true})))
    })
    .await
    .unwrap();
    assert_eq!(retried.status, 200);
}

#[tokio::test]
async fn the_router_serves_every_documented_route_and_nothing_else() {
    let a = admin();
    let doc = openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            let target = path.replace("{id}", "x_unknown");
            let (status, body) = call(&a, &method.to_uppercase(), &target, "{}", None).await;
            let unrouted = body["error"]["message"] == "no such route" || status == 405;
            assert!(
                !unrouted,
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
    // Every route of the API: endpoints (10), deliveries (4), conversations (8), contacts (3),
    // audit (1), campaigns (3), messages (2), media (1), sources (3), stats (1).
    assert_eq!(documented, 36);
    // Every $ref resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
}

#[test]
fn the_committed_openapi_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/openapi.json");
    let current = openapi::document_json();
    if std::env::var_os("WAGATE_BLESS").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "schema/openapi.json is stale: run WAGATE_BLESS=1 cargo test -p shared openapi"
    );
}

#[test]
fn the_documented_filters_are_exactly_the_accepted_ones() {
    use crate::delivery::endpoints::Endpoint;
    use crate::delivery::ssrf::NetworkPolicy;
    let secret = crate::signature::EndpointSecret::generate().unwrap();
    let filters = openapi::endpoint_filters();
    for f in &filters {
        let mut e = Endpoint::new("ep_x", "https://hooks.example.com/", &secret, now());
        e.event_types = vec![f.clone()];
        assert!(e.validate(NetworkPolicy::PublicOnly).is_ok(), "{f}");
    }
    for f in ["whatsapp", "whatsapp.mess*", "whatsapp.message.nope", ""] {
        assert!(!filters.iter().any(|x| x == f), "{f}");
    }
}

#[tokio::test]
async fn header_values_are_write_only_and_a_masked_value_keeps_the_current_one() {
    let a = admin();
    let created = create(&a, "https://hooks.example.com/h").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["headers"]["X-API-Key"], "********");
    let (_, list) = call(&a, "GET", "/v1/endpoints", "", None).await;
    assert_eq!(list["data"][0]["headers"]["X-API-Key"], "********");
    assert!(!list.to_string().contains("\"r\""));

    // What GET shows, sent back with one header added: the old value stays.
    let (status, updated) = call(
        &a,
        "PATCH",
        &format!("/v1/endpoints/{id}"),
        r#"{"headers": {"x-api-key": "********", "X-Tenant": "t1"}}"#,
        None,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    let (stored, _) = a.endpoints.get(&id, now()).await.unwrap().unwrap();
    assert_eq!(
        stored.headers.get("x-api-key").map(String::as_str),
        Some("r")
    );
    assert_eq!(
        stored.headers.get("X-Tenant").map(String::as_str),
        Some("t1")
    );
    assert_eq!(
        updated["headers"],
        json!({"X-Tenant": "********", "x-api-key": "********"})
    );

    // A new value replaces; a masked value for a header it does not have is refused.
    let body = r#"{"headers": {"X-New": "********"}}"#;
    let (status, err) = call(&a, "PATCH", &format!("/v1/endpoints/{id}"), body, None).await;
    assert_eq!(
        (status, &err["error"]["details"]["field"]),
        (422, &json!("headers")),
        "{err}"
    );
    let (status, err) = call(
        &a,
        "POST",
        "/v1/endpoints",
        r#"{"url": "https://hooks.example.com/m", "headers": {"X-API-Key": "********"}}"#,
        None,
    )
    .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (422, &json!("validation_failed")),
        "{err}"
    );
    let (status, _) = call(
        &a,
        "PATCH",
        &format!("/v1/endpoints/{id}"),
        r#"{"headers": {"x-api-key": "new-value"}}"#,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (stored, _) = a.endpoints.get(&id, now()).await.unwrap().unwrap();
    assert_eq!(stored.headers.len(), 1);
    assert_eq!(
        stored.headers.get("x-api-key").map(String::as_str),
        Some("new-value")
    );
}

#[tokio::test]
async fn changes_are_audited_with_the_key_id_and_field_names_only_once() {
    let a = admin();
    let body = json!({"url": "https://hooks.example.com/a", "headers": {"X-API-Key": "hunter2"}})
        .to_string();
    let (_, created) = call(&a, "POST", "/v1/endpoints", &body, Some("audit-1")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // A replay changes nothing and records nothing.
    let _ = call(&a, "POST", "/v1/endpoints", &body, Some("audit-1")).await;
    let _ = call(
        &a,
        "PATCH",
        &format!("/v1/endpoints/{id}"),
        r#"{"description": "CRM", "url": "https://hooks.example.com/b"}"#,
        None,
    )
    .await;
    let _ = call(
        &a,
        "POST",
        &format!("/v1/endpoints/{id}/rotate-secret"),
        "",
        None,
    )
    .await;
    // Reads and refused requests are not changes.
    let _ = call(&a, "GET", &format!("/v1/endpoints/{id}"), "", None).await;
    let _ = call(
        &a,
        "PATCH",
        &format!("/v1/endpoints/{id}"),
        r#"{"url": "ftp://x"}"#,
        None,
    )
    .await;
    let _ = call(&a, "DELETE", &format!("/v1/endpoints/{id}"), "", None).await;

    let (status, trail) = call(&a, "GET", "/v1/audit", "", None).await;
    assert_eq!(status, 200, "{trail}");
    let entries = trail["data"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "endpoint.deleted",
            "endpoint.secret_rotated",
            "endpoint.updated",
            "endpoint.created"
        ]
    );
    let actor = super::audit::key_id(KEY);
    assert!(actor.starts_with("key_") && actor.len() == 16);
    for e in entries {
        assert_eq!(e["actor"], json!(actor));
        assert_eq!(e["target"], json!(id));
    }
    assert_eq!(entries[2]["fields"], json!(["description", "url"]));
    assert_eq!(entries[3]["fields"], json!(["headers", "url"]));
    assert_eq!(entries[3]["status"], 201);
    let text = trail.to_string();
    for secret in ["hunter2", KEY, "CRM", "hooks.example.com/b"] {
        assert!(!text.contains(secret), "{secret} in the trail");
    }

    // Filters and paging.
    let (_, only) = call(&a, "GET", "/v1/audit?action=endpoint.updated", "", None).await;
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
    let (_, other) = call(&a, "GET", "/v1/audit?target=ep_other", "", None).await;
    assert!(other["data"].as_array().unwrap().is_empty());
    let (_, first) = call(&a, "GET", "/v1/audit?limit=3", "", None).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = call(
        &a,
        "GET",
        &format!("/v1/audit?limit=3&cursor={cursor}"),
        "",
        None,
    )
    .await;
    assert_eq!(rest["data"][0]["action"], "endpoint.created");
    assert_eq!(rest["next_cursor"], Value::Null);
}

#[tokio::test]
async fn routes_that_read_no_body_record_no_fields_and_unknown_subpaths_are_404() {
    let a = admin();
    let created = create(&a, "https://hooks.example.com/f").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &a,
        "POST",
        &format!("/v1/endpoints/{id}/disable"),
        r#"{"sk_live_customer_card_4242": 1}"#,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, trail) = call(&a, "GET", "/v1/audit?action=endpoint.disabled", "", None).await;
    assert_eq!(trail["data"][0]["fields"], json!([]));
    assert!(!trail.to_string().contains("sk_live"));

    // A path under a known collection that no route serves is 404, not a 405 allowing nothing.
    let r = send(&a, "GET", "/v1/endpoints/x/y", Some(KEY), None, "").await;
    assert_eq!((r.status, r.allow.as_deref()), (404, None));
    let r = send(&a, "PUT", "/v1/endpoints", Some(KEY), None, "").await;
    assert_eq!((r.status, r.allow.as_deref()), (405, Some("GET, POST")));
}

#[tokio::test]
async fn the_router_refuses_in_the_api_shape_before_and_instead_of_routes() {
    let a = admin();
    // No route: 404, whatever the collection.
    let r = send(&a, "GET", "/v1/nothing", Some(KEY), None, "").await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (404, &json!("not_found"))
    );
    assert_eq!(r.body["error"]["message"], "no such route");
    let r = send(&a, "GET", "/elsewhere", Some(KEY), None, "").await;
    assert_eq!(r.status, 404);
    // A known path, another method: 405 naming the methods it takes.
    let r = send(&a, "DELETE", "/v1/audit", Some(KEY), None, "").await;
    assert_eq!(
        (r.status, r.allow.as_deref(), &r.body["error"]["code"]),
        (405, Some("GET"), &json!("method_not_allowed"))
    );
    let r = send(&a, "GET", "/v1/deliveries/redrive", Some(KEY), None, "").await;
    assert_eq!((r.status, r.allow.as_deref()), (405, Some("POST")));
    let r = send(&a, "POST", "/v1/endpoints/ep_x", Some(KEY), None, "").await;
    assert_eq!(
        (r.status, r.allow.as_deref()),
        (405, Some("DELETE, GET, PATCH"))
    );
    // Over the body limit: 413 before any route runs, even on an unknown path.
    let big = vec![b' '; AdminConfig::default().max_body_bytes + 1];
    let r = send(&a, "POST", "/v1/nothing", Some(KEY), None, big).await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
    // Not JSON: 400; JSON of another shape: 422.
    let r = send(&a, "POST", "/v1/endpoints", Some(KEY), None, "[1,").await;
    assert_eq!(
        (r.status, &r.body["error"]["code"]),
        (400, &json!("bad_request"))
    );
    let r = send(&a, "POST", "/v1/endpoints", Some(KEY), None, "[]").await;
    assert_eq!(r.status, 422);
    // A missing or wrong key is refused before anything else, a route or the body limit.
    let huge = vec![b'x'; 1 << 20];
    for key in [None, Some("wrong-key")] {
        let r = send(&a, "POST", "/v1/endpoints", key, None, huge.clone()).await;
        assert_eq!(
            (r.status, &r.body["error"]["code"]),
            (401, &json!("unauthorized"))
        );
    }
    // Errors are JSON; a 204 has no body and no content type.
    let created = create(&a, "https://hooks.example.com/ct").await;
    let id = created["id"].as_str().unwrap();
    let r = send(
        &a,
        "DELETE",
        &format!("/v1/endpoints/{id}"),
        Some(KEY),
        None,
        "",
    )
    .await;
    assert_eq!((r.status, r.content_type, r.body), (204, None, Value::Null));
}

#[tokio::test]
async fn a_replayed_405_keeps_its_allow_and_a_trailing_slash_is_the_same_route() {
    let a = admin();
    let r = send(&a, "POST", "/v1/audit", Some(KEY), Some("k405"), "").await;
    let again = send(&a, "POST", "/v1/audit", Some(KEY), Some("k405"), "").await;
    assert_eq!((r.status, r.allow.as_deref()), (405, Some("GET")));
    assert_eq!((again.status, again.allow.as_deref()), (405, Some("GET")));
    let r = send(
        &a,
        "GET",
        "/stage/v1/endpoints/?limit=1",
        Some(KEY),
        None,
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"], json!([]));
}

/// The API over documents behind one fault schedule (the other ports as usual).
fn admin_with_faults() -> (Admin, Arc<crate::ports::faults::Faults>) {
    use crate::ports::faults::{Faults, FaultyDocs};
    let faults = Faults::none();
    let mut a = admin();
    let docs: Arc<dyn DocumentStore> = Arc::new(FaultyDocs {
        inner: a.docs.clone(),
        layer: faults.clone(),
    });
    a.endpoints = Endpoints { docs: docs.clone() };
    a.deliveries.docs = docs.clone();
    a.docs = docs;
    (a, faults)
}

#[tokio::test]
async fn every_storage_call_of_an_audited_change_may_fail_and_a_retry_records_it_at_most_once() {
    use crate::ports::faults::Fault;
    let body = json!({"url": "https://hooks.example.com/a"}).to_string();
    // How many document calls a disable with an idempotency key makes (claim, read, write,
    // the audit entry after the route answered, the stored answer).
    let calls = {
        let (a, faults) = admin_with_faults();
        let (_, created) = call(&a, "POST", "/v1/endpoints", &body, None).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let before = faults.calls();
        let (status, _) = call(
            &a,
            "POST",
            &format!("/v1/endpoints/{id}/disable"),
            "",
            Some("k"),
        )
        .await;
        assert_eq!(status, 200);
        faults.calls() - before
    };
    assert!(calls >= 4, "{calls}");
    let mut audit_lost = 0;
    for k in 1..=calls {
        for fault in [Fault::Clean, Fault::Ambiguous] {
            let (a, faults) = admin_with_faults();
            let (_, created) = call(&a, "POST", "/v1/endpoints", &body, None).await;
            let id = created["id"].as_str().unwrap().to_owned();
            let disable = format!("/v1/endpoints/{id}/disable");
            faults.fail_in(k, fault);
            let (first, answer) = call(&a, "POST", &disable, "", Some("disable-1")).await;
            assert!(
                first == 200 || first == 503,
                "call {k} {fault:?}: {first} {answer}"
            );
            // The client did not see a success, or did: either way it may send it again with
            // the same key, and gets the change's answer.
            let (again, replayed) = call(&a, "POST", &disable, "", Some("disable-1")).await;
            if again == 409 {
                // The key's claim was stored although the call reported failure: the request
                // counts as in progress until its lease ends, and nothing has run yet.
                assert_eq!((k, fault, first), (1, Fault::Ambiguous, 503), "{replayed}");
                assert_eq!(replayed["error"]["code"], "conflict");
                let (stored, _) = a.endpoints.get(&id, now()).await.unwrap().unwrap();
                assert!(stored.enabled);
                continue;
            }
            assert_eq!(again, 200, "call {k} {fault:?}: {replayed}");
            assert_eq!(replayed["enabled"], false);
            if first == 200 {
                assert_eq!(replayed, answer, "call {k} {fault:?}");
            }
            let (stored, _) = a.endpoints.get(&id, now()).await.unwrap().unwrap();
            assert!(!stored.enabled, "call {k} {fault:?}");
            let (_, trail) = call(&a, "GET", &format!("/v1/audit?target={id}"), "", None).await;
            let entries = trail["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["action"] == "endpoint.disabled")
                .count();
            // Never twice; missing only where the fault hit the audit write itself (logged).
            assert!(entries <= 1, "call {k} {fault:?}: {trail}");
            if entries == 0 {
                audit_lost += 1;
                assert_eq!(
                    fault,
                    Fault::Clean,
                    "call {k}: an applied write is in the trail"
                );
                assert_eq!(
                    first, 200,
                    "call {k}: the change answered although its entry failed"
                );
            }
        }
    }
    // Exactly one call is the audit write.
    assert_eq!(audit_lost, 1);

    // The answer cannot be stored at all (every try fails): the client still gets the change's
    // answer, not a 5xx that would say nothing happened; the key stays claimed meanwhile.
    let (a, faults) = admin_with_faults();
    let (_, created) = call(&a, "POST", "/v1/endpoints", &body, None).await;
    let id = created["id"].as_str().unwrap().to_owned();
    for n in 0..3 {
        faults.fail_in(calls + n, Fault::Clean);
    }
    let disable = format!("/v1/endpoints/{id}/disable");
    let (first, answer) = call(&a, "POST", &disable, "", Some("disable-2")).await;
    assert_eq!(
        (first, &answer["enabled"]),
        (200, &json!(false)),
        "{answer}"
    );
    assert_eq!(faults.injected(), (3, 0));
    let (again, _) = call(&a, "POST", &disable, "", Some("disable-2")).await;
    assert_eq!(again, 409);
}

#[tokio::test]
async fn an_idempotency_key_that_is_not_text_is_refused_not_ignored() {
    let a = admin();
    let body = json!({"url": "https://hooks.example.com/a"}).to_string();
    let answer = send(&a, "POST", "/v1/endpoints", Some(KEY), None, body.clone()).await;
    assert_eq!(answer.status, 201);
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/endpoints")
        .header("x-api-key", KEY)
        .header(
            "idempotency-key",
            axum::http::HeaderValue::from_bytes(b"k\x97\xce").unwrap(),
        )
        .body(axum::body::Body::from(body))
        .unwrap();
    use tower::ServiceExt as _;
    let response = a
        .clone()
        .router(crate::clock::Clock::fixed(now()))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let (_, list) = call(&a, "GET", "/v1/endpoints", "", None).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "nothing more was created"
    );
}
