//! `/v1/deliveries`: list with filters (endpoint, event type, status, time) newest first, show
//! one with its attempts, retry one, resend an endpoint's failed deliveries since a time
//! (`/v1/endpoints/{id}/recover`), and redrive the dead-letter queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Admin, AdminResponse, ApiError, Query, body, page};
use crate::delivery::record::{AttemptRecord, DeliveryFilter, DeliveryRecord, DeliveryStatus};
use crate::delivery::redrive::{Selection, redrive};
use crate::delivery::request::DeliveryTask;
use crate::ids::EventId;
use crate::model::EventType;
use crate::ports::codec::{encode, pack, send_all};

/// A delivery as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeliveryView {
    /// The delivery id (`webhook-id`, `X-Idempotency-Key`).
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event type.
    pub event_type: EventType,
    /// Whether the body is a batch.
    pub batch: bool,
    /// The events inside.
    pub event_ids: Vec<EventId>,
    /// `retrying`, `delivered`, `dead_lettered`, `endpoint_disabled`, `skipped`.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempt_count: u32,
    /// When the next attempt is due, while retrying.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Created (fan-out time).
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The latest attempts, oldest first (only when showing one delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptRecord>>,
}

impl DeliveryView {
    fn of(r: &DeliveryRecord, with_attempts: bool) -> Self {
        Self {
            id: r.id.clone(),
            endpoint_id: r.endpoint_id.clone(),
            event_type: r.event_type,
            batch: r.batch,
            event_ids: r.event_ids.clone(),
            status: r.status,
            attempt_count: r.attempt_count,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            attempts: with_attempts.then(|| r.attempts.clone()),
        }
    }
}

/// `POST /v1/deliveries/redrive`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("not" = {
    "required": ["endpoint_id", "event_id"],
    "properties": {"endpoint_id": {"type": "string"}, "event_id": {"type": "string"}}
}))]
pub struct RedriveRequest {
    /// Only this endpoint's deliveries (not with `event_id`).
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub endpoint_id: Option<String>,
    /// Only deliveries carrying this event.
    pub event_id: Option<EventId>,
    /// At most this many (default 1000).
    #[serde(default, deserialize_with = "super::whole_number")]
    #[schemars(range(min = 1, max = 10_000))]
    pub max: Option<u64>,
}

fn filter(query: &Query) -> Result<DeliveryFilter, ApiError> {
    let status = query
        .get("status")
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status", "status must be retrying, delivered, dead_lettered, endpoint_disabled or skipped")
            })
        })
        .transpose()?;
    let event_type = query
        .get("event_type")
        .map(|t| {
            t.parse::<EventType>()
                .map_err(|_| ApiError::invalid("event_type", "unknown event type"))
        })
        .transpose()?;
    Ok(DeliveryFilter {
        status,
        event_type,
        since: query.time("since")?,
        until: query.time("until")?,
    })
}

impl Admin {
    /// Puts `tasks` back on the delivery queue, marking their records as retrying first so the
    /// deliver stage does not take a delivered one for a duplicate.
    async fn resend(
        &self,
        records: Vec<(DeliveryRecord, u64)>,
        now: DateTime<Utc>,
    ) -> Result<usize, ApiError> {
        let mut bodies = Vec::with_capacity(records.len());
        for (mut record, version) in records {
            let task: DeliveryTask = self.deliveries.task(&record, now).await?;
            record.status = DeliveryStatus::Retrying;
            record.next_attempt_at = Some(now);
            record.updated_at = now;
            if !self.deliveries.put(&record, Some(version), now).await? {
                return Err(ApiError::conflict(format!(
                    "delivery {} changed while being retried; retry",
                    record.id
                )));
            }
            let expires = now + chrono::Duration::days(7);
            bodies.push(
                encode(
                    &task,
                    &format!("task#{}#{}", task.delivery_id, now.timestamp_millis()),
                    self.blobs.as_ref(),
                    expires,
                )
                .await?,
            );
        }
        Ok(send_all(self.delivery_queue.as_ref(), pack(bodies)).await?)
    }

    pub(super) async fn list_deliveries(
        &self,
        query: &Query,
        now: DateTime<Utc>,
    ) -> Result<AdminResponse, ApiError> {
        let limit = query.limit()?;
        let cursor = query.cursor()?;
        let filter = filter(query)?;
        let endpoint_ids: Vec<String> = match query.get("endpoint_id") {
            Some(id) => {
                if !super::is_plain_id(id) {
                    return Err(ApiError::invalid("endpoint_id", "not an endpoint id"));
                }
                vec![id.to_owned()]
            }
            None => self
                .endpoints
                .list(1000, now)
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect(),
        };
        let found = self
            .deliveries
            .list(&endpoint_ids, &filter, cursor.as_deref(), limit, now)
            .await?;
        let data: Vec<DeliveryView> = found
            .records
            .iter()
            .map(|(r, _)| DeliveryView::of(r, false))
            .collect();
        Ok(AdminResponse::json(
            200,
            &page(&data, found.next.as_deref()),
        ))
    }

    pub(super) async fn get_delivery(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<AdminResponse, ApiError> {
        let (record, _) = self
            .deliveries
            .get(id, now)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        Ok(AdminResponse::json(200, &DeliveryView::of(&record, true)))
    }

    pub(super) async fn retry_delivery(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<AdminResponse, ApiError> {
        let (record, version) = self
            .deliveries
            .get(id, now)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        if self
            .endpoints
            .get(&record.endpoint_id, now)
            .await?
            .is_none()
        {
            return Err(ApiError::conflict("the delivery's endpoint was deleted"));
        }
        self.resend(vec![(record, version)], now).await?;
        let (record, _) = self
            .deliveries
            .get(id, now)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        Ok(AdminResponse::json(202, &DeliveryView::of(&record, true)))
    }

    pub(super) async fn recover_endpoint(
        &self,
        id: &str,
        query: &Query,
        now: DateTime<Utc>,
    ) -> Result<AdminResponse, ApiError> {
        let since = query
            .time("since")?
            .ok_or_else(|| ApiError::invalid("since", "since (RFC 3339) is required"))?;
        if self.endpoints.get(id, now).await?.is_none() {
            return Err(ApiError::not_found("endpoint"));
        }
        let mut chosen = Vec::new();
        for status in [
            DeliveryStatus::DeadLettered,
            DeliveryStatus::EndpointDisabled,
        ] {
            let filter = DeliveryFilter {
                status: Some(status),
                since: Some(since),
                ..DeliveryFilter::default()
            };
            let mut cursor: Option<String> = None;
            loop {
                let page = self
                    .deliveries
                    .list(&[id.to_owned()], &filter, cursor.as_deref(), 100, now)
                    .await?;
                chosen.extend(page.records);
                match page.next {
                    Some(n) if chosen.len() < 10_000 => cursor = Some(n),
                    _ => break,
                }
            }
        }
        let resent = self.resend(chosen, now).await?;
        Ok(AdminResponse::json(
            202,
            &serde_json::json!({"recovered": resent}),
        ))
    }

    pub(super) async fn redrive_dead_letters(
        &self,
        bytes: &[u8],
        now: DateTime<Utc>,
    ) -> Result<AdminResponse, ApiError> {
        let req: RedriveRequest = body(bytes)?;
        if req
            .endpoint_id
            .as_deref()
            .is_some_and(|e| !super::is_plain_id(e))
        {
            return Err(ApiError::invalid("endpoint_id", "not an endpoint id"));
        }
        if req.max.is_some_and(|m| !(1..=10_000).contains(&m)) {
            return Err(ApiError::invalid("max", "max is 1 to 10,000"));
        }
        let selection = match (req.endpoint_id, req.event_id) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "event_id",
                    "give endpoint_id or event_id, not both",
                ));
            }
            (Some(e), None) => Selection::Endpoint(e),
            (None, Some(e)) => Selection::Event(e),
            (None, None) => Selection::All,
        };
        let max = usize::try_from(req.max.unwrap_or(1000)).unwrap_or(1000);
        let report = redrive(
            self.dead_letter.as_ref(),
            self.delivery_queue.as_ref(),
            self.blobs.as_ref(),
            &selection,
            max,
            now,
        )
        .await?;
        Ok(AdminResponse::json(
            202,
            &serde_json::json!({"moved": report.moved, "kept": report.kept, "unreadable": report.unreadable, "remaining": report.remaining}),
        ))
    }
}
