use chrono::TimeZone;

use super::*;
use crate::ports::memory::MemoryDocumentStore;

const KEY: &str = "admin-key-1";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn admin() -> Admin {
    let docs: Arc<dyn DocumentStore> = Arc::new(MemoryDocumentStore::new());
    Admin {
        endpoints: Endpoints { docs: docs.clone() },
        docs,
        config: AdminConfig {
            api_keys: vec![
                Secret::from("old-key".to_owned()),
                Secret::from(KEY.to_owned()),
            ],
            ..AdminConfig::default()
        },
    }
}

async fn call(
    admin: &Admin,
    method: &str,
    path: &str,
    body: &str,
    idempotency_key: Option<&str>,
) -> (u16, Value) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let r = admin
        .handle(
            AdminRequest {
                method,
                path,
                query,
                api_key: Some(KEY),
                idempotency_key,
                body: body.as_bytes(),
            },
            now(),
        )
        .await;
    let value = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&r.body).unwrap()
    };
    (r.status, value)
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
        let r = a
            .handle(
                AdminRequest {
                    method: "GET",
                    path: "/v1/endpoints",
                    query: "",
                    api_key: key,
                    idempotency_key: None,
                    body: b"",
                },
                now(),
            )
            .await;
        assert_eq!(r.status, 401);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    // Either configured key works (rotation), also behind a stage prefix.
    let r = a
        .handle(
            AdminRequest {
                method: "GET",
                path: "/prod/v1/endpoints",
                query: "",
                api_key: Some("old-key"),
                idempotency_key: None,
                body: b"",
            },
            now(),
        )
        .await;
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
    assert_eq!(shown["headers"]["X-API-Key"], "r");

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
    let (s1, first) = call(&a, "POST", "/v1/endpoints", &body, Some("k-1")).await;
    let (s2, second) = call(&a, "POST", "/v1/endpoints", &body, Some("k-1")).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, second, "same id, same secret: nothing created twice");
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
