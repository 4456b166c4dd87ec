//! Seeding for tests and fuzz targets outside this crate (feature `testing`, off in every
//! Lambda and local build): the admin API's state as the stages leave it, so the API's suites
//! and its fuzz target start from one world.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::admin::Admin;
use crate::delivery::record::{AttemptRecord, DeliveryStatus};
use crate::delivery::request::DeliveryTask;
use crate::ids::ConversationId;
use crate::pipeline::track::state::{ConversationDoc, index_entry};
use crate::ports::codec::encode;
use crate::ports::{BackendError, DocumentStore, DocumentWrite};

/// The seeded conversation's customer (`wa_id`) and its Meta source's phone number id.
pub const CUSTOMER: &str = "16505551234";

/// Records `task` as deliver leaves a delivery the endpoint refused for good (one attempt
/// answered 400 at `failed_at`, dead-lettered), and returns the dead-letter queue body that
/// waits for it (claim-checked into the API's blobs if large). The caller sends the body.
pub async fn dead_lettered(
    admin: &Admin,
    task: &DeliveryTask,
    failed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<String, BackendError> {
    let mut record = admin.deliveries.new_record(task, now).await?;
    record.push(
        AttemptRecord {
            attempt: 1,
            at: failed_at,
            status: Some(400),
            latency_ms: 20,
            error: Some("HTTP 400".into()),
            outcome: DeliveryStatus::DeadLettered,
        },
        None,
    );
    if !admin.deliveries.put(&record, None, now).await? {
        return Err(BackendError::Rejected(format!(
            "delivery {} exists already",
            task.delivery_id
        )));
    }
    encode(
        task,
        "task#seed",
        admin.blobs.as_ref(),
        now + chrono::Duration::days(7),
    )
    .await
}

/// Stores an open conversation `id` with a Meta customer ([`CUSTOMER`], two messages in, one
/// out, active a minute ago) as track stores it: the document, indexed by activity, and the
/// pointer from its key.
pub async fn active_conversation(
    docs: &dyn DocumentStore,
    id: ConversationId,
    now: DateTime<Utc>,
) -> Result<ConversationDoc, BackendError> {
    let doc: ConversationDoc = serde_json::from_value(json!({
        "key": format!("meta-main|106540352242922|{CUSTOMER}"),
        "source": {"id": "meta-main", "provider": "meta", "business_id": "106540352242922",
                   "business_account_id": "102290129340398", "business_phone_number": "15550783881"},
        "conversation": {
            "id": id, "status": "active",
            "contact": {"wa_id": CUSTOMER, "name": "Kerry Fisher"},
            "business_id": "106540352242922",
            "created_at": now - chrono::Duration::minutes(10),
            "last_active_at": now - chrono::Duration::minutes(1),
            "inbound_count": 2, "outbound_count": 1,
        },
    }))
    .map_err(|e| BackendError::Rejected(e.to_string()))?;
    let pointer = serde_json::to_value(doc.conversation.id)
        .map_err(|e| BackendError::Rejected(e.to_string()))?;
    let value = serde_json::to_value(&doc).map_err(|e| BackendError::Rejected(e.to_string()))?;
    let written = docs
        .put(
            &format!("conv-active#{}", doc.key),
            &pointer,
            DocumentWrite::new(None, now),
        )
        .await?
        && docs
            .put(
                &format!("conv#{}", doc.conversation.id),
                &value,
                DocumentWrite::new(None, now).indexed(&index_entry(&doc)),
            )
            .await?;
    if !written {
        return Err(BackendError::Rejected(format!(
            "conversation {id} exists already"
        )));
    }
    Ok(doc)
}
