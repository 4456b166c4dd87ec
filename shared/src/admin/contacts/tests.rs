//! `/v1/contacts` through the router (no socket): lists and look-ups, merged ids, validation
//! (422 naming the field), and the events a change hands on, checked at the sink.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::admin::AdminConfig;
use crate::model::Provider;
use crate::pipeline::track::EventSink;
use crate::pipeline::track::state::{
    CUSTOM_FIELDS_MAX_BYTES, ConversationSettings, Conversations, Upserted,
};
use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
use crate::ports::{BackendError, DocumentStore};
use crate::signature::Secret;

const KEY: &str = "admin-key-1";
const LID: &str = "123456789012345@lid";
const PHONE: &str = "15550001111";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

/// Keeps what it is handed; fails the next `failing` calls.
#[derive(Debug, Default)]
struct Sink {
    events: Mutex<Vec<InboundEvent>>,
    failing: Mutex<u32>,
}

#[async_trait]
impl EventSink for Sink {
    async fn emit(&self, events: &[InboundEvent], _: DateTime<Utc>) -> Result<(), BackendError> {
        let mut failing = self.failing.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            return Err(BackendError::unavailable(std::io::Error::other(
                "queue down",
            )));
        }
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

impl Sink {
    fn taken(&self) -> Vec<InboundEvent> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

struct World {
    admin: Admin,
    contacts: Contacts,
    sink: Arc<Sink>,
}

fn world() -> World {
    let docs: Arc<dyn DocumentStore> = Arc::new(MemoryDocumentStore::new());
    let sink = Arc::new(Sink::default());
    let admin = Admin::new(
        docs.clone(),
        Arc::new(MemoryBlobStore::new()),
        Arc::new(MemoryQueue::new("delivery")),
        Arc::new(MemoryQueue::new("delivery-dlq")),
        Duration::from_secs(86400),
        AdminConfig {
            api_keys: vec![Secret::from(KEY.to_owned())],
            ..AdminConfig::default()
        },
    )
    .with_conversations(Sweep {
        conversations: Conversations {
            docs: docs.clone(),
            settings: ConversationSettings {
                idle: Duration::from_secs(86400),
                message_ttl: Duration::from_secs(86400),
                recent_messages: 5,
            },
        },
        sink: sink.clone(),
        page: 10,
    });
    World {
        admin,
        contacts: Contacts { docs },
        sink,
    }
}

fn source() -> SourceInfo {
    SourceInfo::new(SourceId::parse("src").unwrap(), Provider::Waha)
}

/// A customer seen by track: `wa_id` and/or `user_id`, `secs` after [`now`].
async fn seen(
    w: &World,
    wa_id: Option<&str>,
    user_id: Option<&str>,
    by: &str,
    secs: i64,
) -> Upserted {
    let profile = ContactProfile {
        wa_id: wa_id.map(str::to_owned),
        user_id: user_id.map(str::to_owned),
        ..ContactProfile::default()
    };
    let customer = profile.key().unwrap().to_owned();
    w.contacts
        .upsert(
            &source(),
            &customer,
            &profile,
            by,
            now() + chrono::Duration::seconds(secs),
        )
        .await
        .unwrap()
}

async fn call(w: &World, method: &str, target: &str, body: &str) -> (u16, Value) {
    let headers = [("x-api-key", KEY)];
    crate::admin::test_support::request(&w.admin, now(), method, target, &headers, body.into())
        .await
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id_of(u: &Upserted) -> String {
    u.change.contact().id.clone()
}

#[tokio::test]
async fn contacts_list_newest_first_in_pages_and_are_found_by_any_spelling_of_their_number() {
    let w = world();
    let a = id_of(&seen(&w, Some(PHONE), None, "i1", 0).await);
    let b = id_of(&seen(&w, None, Some(LID), "i2", 10).await);
    let c = id_of(&seen(&w, Some("15550002222"), None, "i3", 20).await);
    let (status, first) = call(&w, "GET", "/v1/contacts?source_id=src&limit=2", "").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(ids(&first), [c.clone(), b.clone()]);
    assert_eq!(first["data"][0]["source_id"], "src");
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = call(
        &w,
        "GET",
        &format!("/v1/contacts?limit=2&cursor={cursor}"),
        "",
    )
    .await;
    assert_eq!(ids(&second), std::slice::from_ref(&a));
    assert_eq!(second["next_cursor"], Value::Null);
    // A look-up within a source, and a search across sources, in any spelling.
    for target in [
        "/v1/contacts?source_id=src&phone=%2B1%20555%20000%201111",
        "/v1/contacts?phone=15550001111%40c.us",
        "/v1/contacts?source_id=src&phone=15550001111%40s.whatsapp.net",
    ] {
        let (status, page) = call(&w, "GET", target, "").await;
        assert_eq!((status, ids(&page)), (200, vec![a.clone()]), "{target}");
    }
    let (_, page) = call(
        &w,
        "GET",
        "/v1/contacts?source_id=src&user_id=123456789012345%40lid",
        "",
    )
    .await;
    assert_eq!(ids(&page), std::slice::from_ref(&b));
    let (_, page) = call(
        &w,
        "GET",
        "/v1/contacts?source_id=other&phone=15550001111",
        "",
    )
    .await;
    assert!(ids(&page).is_empty());
    // Tags and external ids set through the API find them too.
    let (status, _) = call(
        &w,
        "PATCH",
        &format!("/v1/contacts/{c}"),
        r#"{"tags": ["vip"], "external_id": "crm-7"}"#,
    )
    .await;
    assert_eq!(status, 200);
    for target in [
        "/v1/contacts?tag=vip",
        "/v1/contacts?external_id=crm-7",
        "/v1/contacts?source_id=src&external_id=crm-7",
    ] {
        let (_, page) = call(&w, "GET", target, "").await;
        assert_eq!(ids(&page), std::slice::from_ref(&c), "{target}");
    }
}

#[tokio::test]
async fn a_merged_contacts_id_answers_the_contact_it_was_merged_into() {
    let w = world();
    let survivor = id_of(&seen(&w, None, Some(LID), "i1", 0).await);
    let merged = id_of(&seen(&w, Some(PHONE), None, "i2", 10).await);
    seen(&w, Some(PHONE), Some(LID), "i3", 20).await;
    let (status, got) = call(&w, "GET", &format!("/v1/contacts/{merged}"), "").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["id"], survivor.as_str());
    assert_eq!(
        (got["wa_id"].as_str(), got["user_id"].as_str()),
        (Some(PHONE), Some(LID))
    );
    // A change through the merged id changes the survivor.
    let (status, changed) = call(
        &w,
        "PATCH",
        &format!("/v1/contacts/{merged}"),
        r#"{"stage": "lead"}"#,
    )
    .await;
    assert_eq!((status, &changed["id"]), (200, &json!(survivor)));
    let (_, list) = call(&w, "GET", "/v1/contacts", "").await;
    assert_eq!(ids(&list), [survivor]);
    for unknown in ["ctc_000000000000000000000000", "nope", "ctc_XYZ"] {
        let (status, body) = call(&w, "GET", &format!("/v1/contacts/{unknown}"), "").await;
        assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
        let (status, _) = call(&w, "PATCH", &format!("/v1/contacts/{unknown}"), "{}").await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn invalid_changes_and_searches_are_refused_naming_the_field() {
    let w = world();
    let id = id_of(&seen(&w, Some(PHONE), None, "i1", 0).await);
    let path = format!("/v1/contacts/{id}");
    let many: Vec<String> = (0..51).map(|n| format!("t{n}")).collect();
    let big = "x".repeat(CUSTOM_FIELDS_MAX_BYTES);
    let long_name = "n".repeat(65);
    let cases = [
        (json!({"tags": many}), "tags"),
        (json!({"tags": [""]}), "tags"),
        (json!({"tags": ["  "]}), "tags"),
        (json!({"tags": ["ok", "a".repeat(65)]}), "tags"),
        (json!({"tags": ["bell\u{7}"]}), "tags"),
        (json!({"tags": "vip"}), "body"),
        (json!({"stage": ""}), "stage"),
        (json!({"stage": "s".repeat(65)}), "stage"),
        (json!({"stage": "\u{feff}"}), "stage"),
        (json!({"custom_fields": {"bad name": 1}}), "custom_fields"),
        (json!({"custom_fields": {"": 1}}), "custom_fields"),
        (json!({"custom_fields": {long_name: 1}}), "custom_fields"),
        (json!({"custom_fields": {"blob": big}}), "custom_fields"),
        (json!({"custom_fields": [1]}), "body"),
        (json!({"external_id": ""}), "external_id"),
        (json!({"external_id": "e".repeat(201)}), "external_id"),
        (json!({"name": "Mallory"}), "name"),
    ];
    for (body, field) in cases {
        let (status, error) = call(&w, "PATCH", &path, &body.to_string()).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{body}");
    }
    for (query, field) in [
        ("phone=abc", "phone"),
        ("phone=", "phone"),
        ("source_id=a%20b", "source_id"),
        ("user_id=", "user_id"),
        ("tag=", "tag"),
        ("limit=0", "limit"),
    ] {
        let (status, error) = call(&w, "GET", &format!("/v1/contacts?{query}"), "").await;
        assert_eq!(status, 422, "{query}: {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{query}");
    }
    assert!(
        w.sink.taken().is_empty(),
        "nothing changed, nothing emitted"
    );
    // Well-formed and within bounds: accepted, the unchanged fields as they were.
    let (status, ok) = call(
        &w,
        "PATCH",
        &path,
        &json!({"tags": ["a", "a", "b"], "stage": "s".repeat(64), "custom_fields": {"a.b-c_D": {"x": [1]}}, "external_id": " e "}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["tags"], json!(["a", "b"]));
    assert_eq!(ok["wa_id"], PHONE);
}

#[tokio::test]
async fn an_external_id_another_contact_of_the_source_has_is_a_conflict() {
    let w = world();
    let a = id_of(&seen(&w, Some(PHONE), None, "i1", 0).await);
    let b = id_of(&seen(&w, Some("15550002222"), None, "i2", 0).await);
    let body = r#"{"external_id": "crm-1"}"#;
    assert_eq!(
        call(&w, "PATCH", &format!("/v1/contacts/{a}"), body)
            .await
            .0,
        200
    );
    let (status, error) = call(&w, "PATCH", &format!("/v1/contacts/{b}"), body).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["details"]["field"], "external_id");
    // Setting it again on its holder changes nothing.
    assert_eq!(
        call(&w, "PATCH", &format!("/v1/contacts/{a}"), body)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_change_emits_one_contact_updated_with_its_changes_and_no_change_emits_nothing() {
    let w = world();
    let id = id_of(&seen(&w, Some(PHONE), None, "i1", 0).await);
    let path = format!("/v1/contacts/{id}");
    let body = r#"{"tags": ["vip"], "custom_fields": {"plan": "gold", "seats": 3}}"#;
    let (status, view) = call(&w, "PATCH", &path, body).await;
    assert_eq!(status, 200, "{view}");
    let events = w.sink.taken();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.event_type, EventType::ContactUpdated);
    assert_eq!(e.data.source.id.as_str(), "src");
    assert_eq!(e.dedup_key, format!("contact:{id}:updated:{}", e.id));
    let EventBody::Contact(b) = &e.data.body else {
        panic!("{e:?}")
    };
    let mut shown = view.clone();
    shown.as_object_mut().unwrap().remove("source_id");
    assert_eq!(json!(b.contact), shown);
    let changes: Vec<(String, Value, Value)> = b
        .changes
        .iter()
        .map(|c| (c.field.clone(), c.before.clone(), c.after.clone()))
        .collect();
    assert_eq!(
        changes,
        vec![
            ("tags".into(), json!([]), json!(["vip"])),
            ("custom_fields.plan".into(), Value::Null, json!("gold")),
            ("custom_fields.seats".into(), Value::Null, json!(3)),
        ]
    );
    // The same change again, and an empty one: 200, nothing emitted.
    for again in [body, "{}", ""] {
        let (status, same) = call(&w, "PATCH", &path, again).await;
        assert_eq!((status, &same), (200, &view), "{again}");
        assert!(w.sink.taken().is_empty(), "{again}");
    }
    // Null removes a custom field; null clears the stage.
    let (_, v) = call(
        &w,
        "PATCH",
        &path,
        r#"{"custom_fields": {"seats": null}, "stage": null}"#,
    )
    .await;
    assert_eq!(v["custom_fields"], json!({"plan": "gold"}));
    let events = w.sink.taken();
    assert_eq!(events.len(), 1);
    let EventBody::Contact(b) = &events[0].data.body else {
        panic!()
    };
    assert_eq!(b.changes.len(), 1);
    assert_eq!(b.changes[0].field, "custom_fields.seats");
    // Every change is in the audit trail, with the fields named.
    let (_, audit) = call(&w, "GET", "/v1/audit", "").await;
    let entry = &audit["data"][0];
    assert_eq!(
        (&entry["action"], &entry["target"]),
        (&json!("contact.updated"), &json!(id))
    );
    assert_eq!(entry["fields"], json!(["custom_fields", "stage"]));
}

#[tokio::test]
async fn a_change_whose_event_could_not_be_handed_on_hands_it_on_when_retried() {
    let w = world();
    let id = id_of(&seen(&w, Some(PHONE), None, "i1", 0).await);
    let path = format!("/v1/contacts/{id}");
    *w.sink.failing.lock().unwrap() = 1;
    let (status, _) = call(&w, "PATCH", &path, r#"{"stage": "lead"}"#).await;
    assert_eq!(status, 503);
    assert!(w.sink.taken().is_empty());
    // The retry changes nothing (the change was made) and hands on the recorded event.
    let (status, view) = call(&w, "PATCH", &path, r#"{"stage": "lead"}"#).await;
    assert_eq!((status, &view["stage"]), (200, &json!("lead")));
    let events = w.sink.taken();
    assert_eq!(events.len(), 1);
    let EventBody::Contact(b) = &events[0].data.body else {
        panic!()
    };
    assert_eq!(b.changes[0].field, "stage");
    let (status, _) = call(&w, "PATCH", &path, r#"{"stage": "lead"}"#).await;
    assert_eq!(status, 200);
    assert!(w.sink.taken().is_empty(), "handed on once");
}

#[tokio::test]
async fn without_conversations_the_contact_routes_answer_404() {
    let w = world();
    let admin = Admin {
        conversations: None,
        ..w.admin.clone()
    };
    let w = World { admin, ..w };
    for (method, target) in [
        ("GET", "/v1/contacts"),
        ("GET", "/v1/contacts/ctc_x"),
        ("PATCH", "/v1/contacts/ctc_x"),
    ] {
        let (status, _) = call(&w, method, target, "{}").await;
        assert_eq!(status, 404, "{method} {target}");
    }
}
