//! `/v1/deliveries`: list with filters (endpoint, event type, status, time) newest first, show
//! one with its attempts, retry one, resend an endpoint's failed deliveries since a time
//! (`/v1/endpoints/{id}/recover`), and redrive the dead-letter queue.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::audit::Change;
use super::http::{ApiQuery, Id, JsonBody, Now, Routes};
use super::openapi::{ChangeErrors, IdempotencyKey, ItemChangeErrors, ItemErrors};
use super::{Admin, ApiError, Page, Paging, query_time};
use crate::delivery::record::{AttemptRecord, DeliveryFilter, DeliveryRecord, DeliveryStatus};
use crate::delivery::redrive::{Selection, redrive};
use crate::delivery::request::{DeliveryTask, headers};
use crate::ids::EventId;
use crate::model::EventType;
use crate::ports::BackendError;
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
    /// The exact body POSTed (only when showing one delivery; every attempt sends the same
    /// bytes). Absent when the task is no longer kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The headers of the latest attempt, in the order sent, rebuilt from the task and the
    /// endpoint as they stand (only when showing a delivery that had an attempt). The values of
    /// the endpoint's custom headers are write-only and shown as `********`; the signatures are
    /// HMACs, not secrets, and are shown so a receiver's check can be compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<SentHeader>>,
}

/// One header of a delivery attempt, as `[name, value]`.
pub type SentHeader = (String, String);

/// What a masked header value reads.
pub const MASKED: &str = "********";

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
            body: None,
            headers: None,
        }
    }

    /// [`Self::of`] with attempts, plus the body and the latest attempt's headers. A task that
    /// has expired or an endpoint that was deleted leaves them out (the record is still worth
    /// showing); a storage failure is an error, not a view missing parts.
    async fn with_request(
        admin: &Admin,
        r: &DeliveryRecord,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let mut view = Self::of(r, true);
        let task = match admin.deliveries.task(r, now).await {
            Ok(task) => task,
            Err(BackendError::Corrupt(_)) => return Ok(view),
            Err(e) => return Err(e.into()),
        };
        if let Some(last) = r.attempts.last()
            && let Some((endpoint, _)) = admin.endpoints.get(&r.endpoint_id, now).await?
        {
            let sent = headers(&task, &endpoint, last.at);
            // The endpoint's custom headers come last (`headers` appends them).
            let ours = sent.len().saturating_sub(endpoint.headers.len());
            view.headers = Some(
                sent.into_iter()
                    .enumerate()
                    .map(|(i, (name, value))| {
                        if i < ours {
                            (name, value)
                        } else {
                            (name, MASKED.to_owned())
                        }
                    })
                    .collect(),
            );
        }
        view.body = Some(task.body.into_string());
        Ok(view)
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

/// A page of deliveries.
pub type DeliveryPage = Page<DeliveryView>;

/// The answer of `POST /v1/endpoints/{id}/recover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Recovered {
    /// Deliveries put back on the delivery queue.
    pub recovered: usize,
}

/// The answer of `POST /v1/deliveries/redrive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RedriveReport {
    /// Tasks moved back to the delivery queue.
    pub moved: usize,
    /// Tasks looked at and left in the dead-letter queue.
    pub kept: usize,
    /// Messages that are not delivery tasks, left in place.
    pub unreadable: usize,
    /// About how many messages the dead-letter queue still holds (SQS's estimate, lagging up
    /// to a minute).
    pub remaining: Option<u64>,
}

/// `GET /v1/deliveries`: filters besides paging.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveryQuery {
    /// Only this endpoint's.
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    endpoint_id: Option<String>,
    /// retrying, delivered, dead_lettered, endpoint_disabled or skipped.
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Only this event type.
    #[param(value_type = Option<EventType>)]
    event_type: Option<String>,
    /// Created at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// Created before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
}

impl DeliveryQuery {
    fn filter(&self) -> Result<DeliveryFilter, ApiError> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                DeliveryStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid("status", "status must be retrying, delivered, dead_lettered, endpoint_disabled or skipped")
                })
            })
            .transpose()?;
        let event_type = self
            .event_type
            .as_deref()
            .map(|t| {
                t.parse::<EventType>()
                    .map_err(|_| ApiError::invalid("event_type", "unknown event type"))
            })
            .transpose()?;
        Ok(DeliveryFilter {
            status,
            event_type,
            since: query_time("since", self.since.as_deref())?,
            until: query_time("until", self.until.as_deref())?,
        })
    }
}

/// `POST /v1/endpoints/{id}/recover`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RecoverQuery {
    /// RFC 3339 time.
    #[param(value_type = String, format = DateTime, required = true)]
    since: Option<String>,
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
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .routes(routes!(recover_endpoint))
        .routes(routes!(list_deliveries))
        .routes(routes!(redrive_dead_letters))
        .routes(routes!(get_delivery))
        .routes(routes!(retry_delivery))
}

/// List deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/deliveries",
    operation_id = "listDeliveries",
    params(DeliveryQuery, Paging),
    responses((status = 200, description = "Done.", body = DeliveryPage), ChangeErrors)
)]
async fn list_deliveries(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor()?;
    let filter = query.filter()?;
    let endpoint_ids: Vec<String> = match query.endpoint_id {
        Some(id) => {
            if !super::is_plain_id(&id) {
                return Err(ApiError::invalid("endpoint_id", "not an endpoint id"));
            }
            vec![id]
        }
        None => admin
            .endpoints
            .list(1000, now)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect(),
    };
    let found = admin
        .deliveries
        .list(&endpoint_ids, &filter, cursor.as_deref(), limit, now)
        .await?;
    let data: Vec<DeliveryView> = found
        .records
        .iter()
        .map(|(r, _)| DeliveryView::of(r, false))
        .collect();
    Ok(Json(Page::new(data, found.next.as_deref())))
}

/// Show a delivery with its attempts.
#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    operation_id = "getDelivery",
    params(("id" = String, Path)),
    responses((status = 200, description = "Done.", body = DeliveryView), ItemErrors)
)]
async fn get_delivery(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<Json<DeliveryView>, ApiError> {
    let (record, _) = admin
        .deliveries
        .get(&id, now)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(Json(
        DeliveryView::with_request(&admin, &record, now).await?,
    ))
}

/// Send a delivery again (same id and body).
#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/retry",
    operation_id = "retryDelivery",
    params(("id" = String, Path), IdempotencyKey),
    responses((status = 202, description = "Done.", body = DeliveryView), ItemChangeErrors)
)]
async fn retry_delivery(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<(StatusCode, Change, Json<DeliveryView>), ApiError> {
    let (record, version) = admin
        .deliveries
        .get(&id, now)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    if admin
        .endpoints
        .get(&record.endpoint_id, now)
        .await?
        .is_none()
    {
        return Err(ApiError::conflict("the delivery's endpoint was deleted"));
    }
    admin.resend(vec![(record, version)], now).await?;
    let (record, _) = admin
        .deliveries
        .get(&id, now)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok((
        StatusCode::ACCEPTED,
        Change::of("delivery.retried", &id),
        Json(DeliveryView::of(&record, true)),
    ))
}

/// Send again the endpoint's failed deliveries created since a time.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/recover",
    operation_id = "recoverEndpoint",
    params(("id" = String, Path), RecoverQuery, IdempotencyKey),
    responses((status = 202, description = "Done.", body = Recovered), ItemChangeErrors)
)]
async fn recover_endpoint(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    ApiQuery(query): ApiQuery<RecoverQuery>,
) -> Result<(StatusCode, Change, Json<Recovered>), ApiError> {
    let since = query_time("since", query.since.as_deref())?
        .ok_or_else(|| ApiError::invalid("since", "since (RFC 3339) is required"))?;
    if admin.endpoints.get(&id, now).await?.is_none() {
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
            let page = admin
                .deliveries
                .list(
                    std::slice::from_ref(&id),
                    &filter,
                    cursor.as_deref(),
                    100,
                    now,
                )
                .await?;
            chosen.extend(page.records);
            match page.next {
                Some(n) if chosen.len() < 10_000 => cursor = Some(n),
                _ => break,
            }
        }
    }
    let recovered = admin.resend(chosen, now).await?;
    Ok((
        StatusCode::ACCEPTED,
        Change::of("endpoint.recovered", &id),
        Json(Recovered { recovered }),
    ))
}

/// Move dead-lettered deliveries back to the delivery queue.
#[utoipa::path(
    post,
    path = "/v1/deliveries/redrive",
    operation_id = "redriveDeliveries",
    params(IdempotencyKey),
    request_body = Option<RedriveRequest>,
    responses((status = 202, description = "Done.", body = RedriveReport), ChangeErrors)
)]
async fn redrive_dead_letters(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    JsonBody(req): JsonBody<RedriveRequest>,
) -> Result<(StatusCode, Change, Json<RedriveReport>), ApiError> {
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
        admin.dead_letter.as_ref(),
        admin.delivery_queue.as_ref(),
        admin.blobs.as_ref(),
        &selection,
        max,
        now,
    )
    .await?;
    let report = RedriveReport {
        moved: report.moved,
        kept: report.kept,
        unreadable: report.unreadable,
        remaining: report.remaining,
    };
    Ok((
        StatusCode::ACCEPTED,
        Change::with_body("deliveries.redriven", None),
        Json(report),
    ))
}
