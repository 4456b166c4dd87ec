//! One delivery: the payload built once per (endpoint, event or batch), and the headers of each
//! attempt. The body bytes and the idempotency key never change across retries, so a receiver
//! can deduplicate and the `X-Webhook-Signature` of every attempt is the same.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::endpoints::Endpoint;
use crate::ids::EventId;
use crate::model::{Envelope, EnvelopeData, EventType};
use crate::signature::{standard_webhook_header, webhook_signature};

/// What goes on the delivery queue: everything needed to POST, fixed once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub body: String,
    /// When the delivery was created.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub created_at: DateTime<Utc>,
    /// The conversation of the event (or batch) inside, if it has one: deliveries of one
    /// conversation to one endpoint in a received batch go out in the batch's order, the others
    /// at the same time. Absent in tasks queued before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

impl DeliveryTask {
    /// The delivery of `envelope` to `endpoint_id`. The id is derived from the envelope id and
    /// the endpoint, so fanning out the same envelope twice yields the same delivery.
    pub fn new(envelope: &Envelope, endpoint_id: &str) -> Result<Self, serde_json::Error> {
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
            body: serde_json::to_string(envelope)?,
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
        let source = SourceInfo::new(SourceId::parse("src").unwrap(), Provider::Waha);
        let data = EventData::new(
            source,
            EventBody::notification(NotificationData::new(
                "session.status",
                serde_json::json!({"s": "é"}),
            )),
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

    #[test]
    fn a_task_is_fixed_once_and_the_same_for_the_same_envelope_and_endpoint() {
        let env = envelope();
        let a = DeliveryTask::new(&env, "ep_1").unwrap();
        assert_eq!(a, DeliveryTask::new(&env, "ep_1").unwrap());
        assert_ne!(
            a.delivery_id,
            DeliveryTask::new(&env, "ep_2").unwrap().delivery_id
        );
        assert_eq!(a.event_ids, vec![env.id]);
        assert_eq!(serde_json::from_str::<Envelope>(&a.body).unwrap(), env);
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
        let task = DeliveryTask::new(&envelope(), &e.id).unwrap();
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
