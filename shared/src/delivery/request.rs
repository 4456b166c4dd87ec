//! One delivery: the payload built once per (endpoint, event or batch), and the headers of each
//! attempt. The body bytes and the idempotency key never change across retries, so a receiver
//! can deduplicate and the `X-Webhook-Signature` of every attempt is the same.

use chrono::{DateTime, Utc};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::endpoints::Endpoint;
use crate::ids::EventId;
use crate::model::{Envelope, EnvelopeData, EventType};
use crate::signature::{standard_webhook_header, webhook_signature};

/// What goes on the delivery queue: everything needed to POST, fixed once.
///
/// On the queue it is a JSON object whose body is written in one of two forms
/// ([`TaskBody`]): `"body"`, the body as a JSON string (every version reads it), or
/// `"body_json"`, the body document itself (read by every deliver since this form was added;
/// see [`BodyForm`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TaskWire")]
pub struct DeliveryTask {
    /// `msg_` + the envelope id: the Standard Webhooks `webhook-id` and `X-Idempotency-Key`.
    pub delivery_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// `X-Webhook-Event`.
    pub event_type: EventType,
    /// `X-Webhook-Batch`.
    pub batch: bool,
    /// The event ids inside (one, or each batch item's).
    pub event_ids: Vec<EventId>,
    /// The exact body to POST.
    pub body: TaskBody,
    /// When the delivery was created.
    pub created_at: DateTime<Utc>,
    /// The conversation of the event (or batch) inside, if it has one: deliveries of one
    /// conversation to one endpoint in a received batch go out in the batch's order, the others
    /// at the same time. Absent in tasks queued before it was added.
    pub conversation_id: Option<String>,
}

/// How fan-out writes a task's body on the delivery queue (`DELIVERY_BODY_FORM`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyForm {
    /// `"body": "<the document, escaped>"`: every deliver reads it. Each quote of the body is
    /// escaped on the way in and unescaped on the way out, and the message is larger for it.
    #[default]
    Text,
    /// `"body_json": <the document>`: the body as it is, copied in and out. Delivers older
    /// than this form cannot read it, so a deployment switches to it only once every deliver
    /// reading its queue is of this version or later (the local gateway, one process, always
    /// can).
    Json,
}

impl BodyForm {
    /// The form named `text` or `json`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "text" => Some(Self::Text),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// A task's body: the exact bytes to POST, held in the form the task was written in (and is
/// written again in, so a task read and queued again keeps its form).
#[derive(Debug, Clone)]
pub enum TaskBody {
    /// Carried as a JSON string.
    Text(String),
    /// Carried as the JSON document itself, which holds no character SQS refuses (U+FFFE and
    /// U+FFFF are written as `\u` escapes, which read as the same document).
    Json(Box<RawValue>),
}

impl TaskBody {
    /// The body in `form`.
    ///
    /// # Errors
    /// If `value` cannot be written as JSON.
    pub fn of<T: Serialize + ?Sized>(value: &T, form: BodyForm) -> Result<Self, serde_json::Error> {
        Ok(match form {
            BodyForm::Text => Self::Text(serde_json::to_string(value)?),
            BodyForm::Json => Self::json(serde_json::value::to_raw_value(value)?)?,
        })
    }

    /// `raw` as a body, with the characters SQS refuses escaped.
    fn json(raw: Box<RawValue>) -> Result<Self, serde_json::Error> {
        if crate::ports::limits::sqs_allows(raw.get()) {
            return Ok(Self::Json(raw));
        }
        let text = crate::ports::codec::sqs_safe(raw.get().to_owned());
        Ok(Self::Json(RawValue::from_string(text)?))
    }

    /// The bytes to POST.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Text(text) => text,
            Self::Json(raw) => raw.get(),
        }
    }

    /// The bytes to POST.
    pub fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// The bytes to POST, owned.
    pub fn into_string(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Json(raw) => Box::<str>::from(raw).into_string(),
        }
    }

    /// The form it is carried in.
    pub fn form(&self) -> BodyForm {
        match self {
            Self::Text(_) => BodyForm::Text,
            Self::Json(_) => BodyForm::Json,
        }
    }
}

impl From<String> for TaskBody {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<&str> for TaskBody {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

/// Bodies are the same when they POST the same bytes, whichever form carries them.
impl PartialEq for TaskBody {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for TaskBody {}

/// A task as it is read: one of the two body fields.
#[derive(Deserialize)]
struct TaskWire {
    delivery_id: String,
    endpoint_id: String,
    event_type: EventType,
    batch: bool,
    event_ids: Vec<EventId>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_json: Option<Box<RawValue>>,
    #[serde(deserialize_with = "crate::rfc3339::deserialize")]
    created_at: DateTime<Utc>,
    #[serde(default)]
    conversation_id: Option<String>,
}

impl TryFrom<TaskWire> for DeliveryTask {
    type Error = String;

    fn try_from(w: TaskWire) -> Result<Self, String> {
        let body = match (w.body, w.body_json) {
            (Some(text), None) => TaskBody::Text(text),
            (None, Some(raw)) => TaskBody::json(raw).map_err(|e| e.to_string())?,
            (None, None) => return Err("missing field `body`".into()),
            (Some(_), Some(_)) => return Err("a task has `body` or `body_json`, not both".into()),
        };
        Ok(Self {
            delivery_id: w.delivery_id,
            endpoint_id: w.endpoint_id,
            event_type: w.event_type,
            batch: w.batch,
            event_ids: w.event_ids,
            body,
            created_at: w.created_at,
            conversation_id: w.conversation_id,
        })
    }
}

/// Written in the order of the fields, the body under the name of its form.
impl Serialize for DeliveryTask {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        write_task(self, self.body.form(), serializer)
    }
}

/// A task written with its body in the string form, whatever form it came in: how a delivery
/// record keeps it ([`super::record::TaskJson`]). A record can be read back through a
/// `serde_json::Value` (listings are), which keeps a string's content but not the order of an
/// object's keys, and the body must POST the same bytes at every attempt.
pub(crate) struct AsText<'a>(pub &'a DeliveryTask);

impl Serialize for AsText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        write_task(self.0, BodyForm::Text, serializer)
    }
}

fn write_task<S: Serializer>(
    t: &DeliveryTask,
    form: BodyForm,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let fields = 7 + usize::from(t.conversation_id.is_some());
    let mut task = serializer.serialize_struct("DeliveryTask", fields)?;
    task.serialize_field("delivery_id", &t.delivery_id)?;
    task.serialize_field("endpoint_id", &t.endpoint_id)?;
    task.serialize_field("event_type", &t.event_type)?;
    task.serialize_field("batch", &t.batch)?;
    task.serialize_field("event_ids", &t.event_ids)?;
    match (form, &t.body) {
        (BodyForm::Json, TaskBody::Json(raw)) => task.serialize_field("body_json", raw)?,
        (_, body) => task.serialize_field("body", body.as_str())?,
    }
    task.serialize_field("created_at", &crate::rfc3339::Timestamp(t.created_at))?;
    if let Some(id) = &t.conversation_id {
        task.serialize_field("conversation_id", id)?;
    }
    task.end()
}

impl DeliveryTask {
    /// The delivery of `envelope` to `endpoint_id`, its body written in `form`. The id is
    /// derived from the envelope id and the endpoint, so fanning out the same envelope twice
    /// yields the same delivery.
    ///
    /// # Errors
    /// If the envelope cannot be written as JSON.
    pub fn new(
        envelope: &Envelope,
        endpoint_id: &str,
        form: BodyForm,
    ) -> Result<Self, serde_json::Error> {
        let event_ids = match &envelope.data {
            EnvelopeData::Single(_) => vec![envelope.id],
            EnvelopeData::Batch(items) => items.iter().filter_map(|i| i.event_id).collect(),
        };
        Ok(Self {
            delivery_id: format!("msg_{}_{endpoint_id}", envelope.id.ulid()),
            endpoint_id: endpoint_id.to_owned(),
            event_type: envelope.event_type,
            batch: envelope.batch,
            event_ids,
            body: TaskBody::of(envelope, form)?,
            created_at: envelope.created_at,
            conversation_id: envelope.conversation_id().map(|id| id.to_string()),
        })
    }
}

/// The user agent of every delivery.
pub fn user_agent() -> String {
    format!("wagate/{}", env!("CARGO_PKG_VERSION"))
}

/// The headers of one attempt at `now`: content type, event and batch markers, our signature
/// (current secret), idempotency key, Standard Webhooks headers (one signature per active
/// secret), user agent, then the endpoint's custom headers.
pub fn headers(
    task: &DeliveryTask,
    endpoint: &Endpoint,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let secrets = endpoint.active_secrets(now);
    let timestamp = now.timestamp();
    let mut h = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("User-Agent".to_owned(), user_agent()),
        (
            "X-Webhook-Event".to_owned(),
            task.event_type.as_str().to_owned(),
        ),
        ("X-Webhook-Batch".to_owned(), task.batch.to_string()),
        ("X-Idempotency-Key".to_owned(), task.delivery_id.clone()),
        ("webhook-id".to_owned(), task.delivery_id.clone()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
    ];
    if let Some(current) = secrets.first() {
        h.push((
            "X-Webhook-Signature".to_owned(),
            webhook_signature(current, task.body.as_bytes()),
        ));
        h.push((
            "webhook-signature".to_owned(),
            standard_webhook_header(&secrets, &task.delivery_id, timestamp, task.body.as_bytes()),
        ));
    }
    h.extend(endpoint.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    h
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::delivery::endpoints::SecretEntry;
    use crate::ids::SourceId;
    use crate::model::{
        EventBody, EventData, InboundEvent, NotificationData, Provider, SourceInfo,
    };
    use crate::signature::{EndpointSecret, verify_standard_webhook};

    fn envelope() -> Envelope {
        envelope_of(serde_json::json!({"s": "é \"quoted\" \\ \n"}))
    }

    fn envelope_of(payload: serde_json::Value) -> Envelope {
        let source = SourceInfo::new(SourceId::parse("src").unwrap(), Provider::Waha);
        let data = EventData::new(
            source,
            EventBody::notification(NotificationData::new("session.status", payload)),
        );
        Envelope::single(InboundEvent {
            id: EventId::new(),
            event_type: EventType::SessionStatusUpdated,
            dedup_key: "k".into(),
            received_at: Utc::now(),
            occurred_at: None,
            request_id: None,
            data,
        })
    }

    fn endpoint(secrets: Vec<SecretEntry>) -> Endpoint {
        Endpoint {
            id: "ep_1".into(),
            url: "https://hooks.example.com".into(),
            description: None,
            secrets,
            event_types: vec![],
            batching: true,
            media_wait: true,
            headers: BTreeMap::from([("X-API-Key".to_owned(), "key-123".to_owned())]),
            enabled: true,
            disabled_reason: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    const FORMS: [BodyForm; 2] = [BodyForm::Text, BodyForm::Json];

    #[test]
    fn a_task_is_fixed_once_and_the_same_for_the_same_envelope_and_endpoint() {
        let env = envelope();
        for form in FORMS {
            let a = DeliveryTask::new(&env, "ep_1", form).unwrap();
            assert_eq!(a, DeliveryTask::new(&env, "ep_1", form).unwrap());
            assert_ne!(
                a.delivery_id,
                DeliveryTask::new(&env, "ep_2", form).unwrap().delivery_id
            );
            assert_eq!(a.event_ids, vec![env.id]);
            assert_eq!(a.body.form(), form);
            assert_eq!(
                serde_json::from_str::<Envelope>(a.body.as_str()).unwrap(),
                env
            );
        }
    }

    #[test]
    fn both_forms_carry_the_same_body_bytes_and_read_back_as_written() {
        let env = envelope();
        let text = DeliveryTask::new(&env, "ep_1", BodyForm::Text).unwrap();
        let json = DeliveryTask::new(&env, "ep_1", BodyForm::Json).unwrap();
        assert_eq!(text.body.as_str(), json.body.as_str());
        assert_eq!(text.body.as_str(), serde_json::to_string(&env).unwrap());
        assert_eq!(text, json, "the same task, whichever form carries its body");

        let text_message = serde_json::to_string(&text).unwrap();
        let json_message = serde_json::to_string(&json).unwrap();
        // The string form is what every version wrote: the fields in order, the body escaped.
        assert!(
            text_message.starts_with(r#"{"delivery_id":"msg_"#),
            "{text_message}"
        );
        assert!(text_message.contains(r#","body":"{\"#), "{text_message}");
        assert!(!text_message.contains("body_json"));
        // The document form carries the body as it is: nothing escaped a second time.
        let inline = format!(r#","body_json":{},"#, json.body.as_str());
        assert!(json_message.contains(&inline), "{json_message}");
        assert!(!json_message.contains(r#""body":"#));
        assert!(json_message.len() < text_message.len());
        for (task, message) in [(&text, &text_message), (&json, &json_message)] {
            let back: DeliveryTask = serde_json::from_str(message).unwrap();
            assert_eq!(&back, task);
            assert_eq!(back.body.form(), task.body.form());
            assert_eq!(serde_json::to_string(&back).unwrap(), *message);
            // Written for a record, the body is a string in both.
            assert_eq!(serde_json::to_string(&AsText(task)).unwrap(), text_message);
        }
    }

    #[test]
    fn a_task_written_before_the_document_form_reads_as_it_did() {
        let message = r#"{"delivery_id":"msg_01JBCQ3ZX0V9K8N7M6P5Q4R300_ep_1","endpoint_id":"ep_1","event_type":"whatsapp.message.read","batch":false,"event_ids":["evt_01JBCQ3ZX0V9K8N7M6P5Q4R300"],"body":"{\"id\":\"evt_01JBCQ3ZX0V9K8N7M6P5Q4R300\",\"s\":\"\u00e9\\n\"}","created_at":"2024-10-28T05:20:02Z"}"#;
        let task: DeliveryTask = serde_json::from_str(message).unwrap();
        assert_eq!(task.body.form(), BodyForm::Text);
        assert_eq!(
            task.body.as_str(),
            r#"{"id":"evt_01JBCQ3ZX0V9K8N7M6P5Q4R300","s":"é\n"}"#
        );
        assert_eq!(task.conversation_id, None);
        assert_eq!(task.created_at.to_rfc3339(), "2024-10-28T05:20:02+00:00");
    }

    #[test]
    fn a_task_has_exactly_one_body() {
        let head = r#"{"delivery_id":"d","endpoint_id":"e","event_type":"whatsapp.message.read","batch":false,"event_ids":[],"created_at":"2024-10-28T05:20:02Z""#;
        for (rest, expected) in [
            ("}", Some("missing field `body`")),
            (r#","body":"{}","body_json":{}}"#, Some("not both")),
            (r#","body_json":null}"#, Some("missing field `body`")),
            (r#","body_json":{"a":[1,{"b":null}]}}"#, None),
            (r#","body_json":[1,2]}"#, None),
            (r#","body_json":{"a":}"#, Some("expected value")),
        ] {
            let message = format!("{head}{rest}");
            let read = serde_json::from_str::<DeliveryTask>(&message);
            match expected {
                None => assert_eq!(
                    read.unwrap().body.as_str(),
                    rest.trim_start_matches(r#","body_json":"#)
                        .strip_suffix('}')
                        .unwrap()
                ),
                Some(error) => {
                    let e = read.unwrap_err().to_string();
                    assert!(e.contains(error), "{message}: {e}");
                }
            }
        }
    }

    /// SQS refuses U+FFFE and U+FFFF. The string form escapes them inside the string, which
    /// reads back as the same body; in the document form the body itself holds them escaped
    /// (the same document), from the start, so queueing it again changes nothing.
    #[tokio::test]
    async fn characters_sqs_refuses_are_escaped_in_the_body_document_once() {
        use crate::ports::codec::{decode, encode};
        use crate::ports::limits::sqs_allows;
        use crate::ports::memory::MemoryBlobStore;
        let env = envelope_of(serde_json::json!({"odd": "a\u{fffe}b\u{ffff}c"}));
        let blobs = MemoryBlobStore::new();
        let now = Utc::now();
        let later = now + chrono::Duration::days(1);
        let text = DeliveryTask::new(&env, "ep_1", BodyForm::Text).unwrap();
        let json = DeliveryTask::new(&env, "ep_1", BodyForm::Json).unwrap();
        assert!(text.body.as_str().contains('\u{fffe}'));
        assert!(sqs_allows(json.body.as_str()), "{}", json.body.as_str());
        assert!(
            json.body.as_str().contains(r"a\ufffeb\uffffc"),
            "{}",
            json.body.as_str()
        );
        assert_eq!(
            serde_json::from_str::<Envelope>(json.body.as_str()).unwrap(),
            env
        );
        for task in [&text, &json] {
            let message = encode(task, "k", &blobs, later).await.unwrap();
            assert!(sqs_allows(&message));
            let back: DeliveryTask = decode(&message, &blobs, now).await.unwrap();
            assert_eq!(&back, task);
        }
        // A message holding them unescaped (not written by wagate) reads as the escaped body.
        let raw = serde_json::to_string(&json)
            .unwrap()
            .replace(r"\ufffe", "\u{fffe}");
        assert!(raw.contains('\u{fffe}'));
        let read: DeliveryTask = serde_json::from_str(&raw).unwrap();
        assert_eq!(read, json);
    }

    #[test]
    fn attempt_headers_carry_both_signatures_over_the_exact_body() {
        let current = EndpointSecret::from_key(&[1; 32]).unwrap();
        let old = EndpointSecret::from_key(&[2; 32]).unwrap();
        let now = Utc::now();
        let e = endpoint(vec![
            SecretEntry {
                secret: current.expose().to_owned(),
                expires_at: None,
            },
            SecretEntry {
                secret: old.expose().to_owned(),
                expires_at: Some(now + chrono::Duration::hours(1)),
            },
        ]);
        for form in FORMS {
            let task = DeliveryTask::new(&envelope(), &e.id, form).unwrap();
            let h: BTreeMap<String, String> = headers(&task, &e, now).into_iter().collect();
            assert_eq!(
                h["X-Webhook-Signature"],
                webhook_signature(&current, task.body.as_bytes())
            );
            assert_eq!(h["X-Webhook-Event"], "whatsapp.session.status_updated");
            assert_eq!(h["X-Webhook-Batch"], "false");
            assert_eq!(h["X-Idempotency-Key"], task.delivery_id);
            assert_eq!(h["X-API-Key"], "key-123");
            assert!(h["User-Agent"].starts_with("wagate/"));
            for secret in [&current, &old] {
                let ok = verify_standard_webhook(
                    secret,
                    &h["webhook-id"],
                    &h["webhook-timestamp"],
                    &h["webhook-signature"],
                    task.body.as_bytes(),
                    now.timestamp(),
                    300,
                );
                assert_eq!(ok, Ok(()));
            }
        }
    }
}
