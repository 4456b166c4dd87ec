//! `/v1/campaigns`: create a campaign (a name, optionally the source it sends through and when
//! it completes at the latest), show one with its totals, list them. Sends name a campaign with
//! `campaign_id`; its totals are counted from the statuses of those messages, once per message
//! and status, and `whatsapp.campaign.completed` goes out when every message is final or its
//! time runs out (the sweep).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::routes;

use super::audit::Change;
use super::http::{ApiQuery, Id, JsonBody, Now, Routes};
use super::openapi::{ChangeErrors, IdempotencyKey, ItemErrors};
use super::{Admin, ApiError, Page, Paging, has_visible, whole_number};
use crate::model::{Campaign, CampaignStatus, SourceInfo};
use crate::pipeline::track::state::Campaigns;
use crate::pipeline::track::state::campaigns::is_campaign_id;

/// A page of campaigns.
pub type CampaignPage = Page<Campaign>;

/// The largest `metadata` of a campaign or a send, as JSON text.
pub const METADATA_MAX_BYTES: usize = 4 * 1024;

/// `POST /v1/campaigns`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// A name for people (1–200 characters).
    #[schemars(
        length(min = 1, max = 200),
        regex(pattern = r"[^\s\x00-\x1f\x7f-\x9f]")
    )]
    pub name: String,
    /// The source its messages are sent through; if not given, the first send's.
    #[schemars(regex(pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub source_id: Option<String>,
    /// Hours after which it completes with what is known, if its messages are not all final
    /// by then (1–720; default: the installation's `CAMPAIGN_COMPLETE_AFTER_HOURS`, 24).
    #[serde(default, deserialize_with = "whole_number")]
    #[schemars(range(min = 1, max = 720))]
    pub complete_after_hours: Option<u64>,
    /// Your own data (a JSON object of at most 4 KiB), returned as given.
    pub metadata: Option<serde_json::Map<String, Value>>,
}

/// `GET /v1/campaigns`: filters besides paging.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct CampaignQuery {
    /// open (default) or completed.
    #[param(value_type = Option<CampaignStatus>)]
    status: Option<String>,
}

/// Checks `metadata` of a campaign or a send.
pub(super) fn check_metadata(
    metadata: Option<serde_json::Map<String, Value>>,
) -> Result<Option<Value>, ApiError> {
    let Some(map) = metadata else {
        return Ok(None);
    };
    let value = Value::Object(map);
    if value.to_string().len() > METADATA_MAX_BYTES {
        return Err(ApiError::invalid(
            "metadata",
            "metadata is at most 4 KiB of JSON",
        ));
    }
    Ok(Some(value))
}

impl Admin {
    /// The campaign store (beside the conversations).
    pub(super) fn campaigns(&self) -> Result<Campaigns, ApiError> {
        self.conversations
            .as_ref()
            .map(crate::pipeline::track::sweep::Sweep::campaigns)
            .ok_or_else(|| ApiError::new(404, "not_found", "campaigns are not available here"))
    }

    /// The configured source `id`, as events name it.
    pub(super) fn source_info(&self, field: &str, id: &str) -> Result<SourceInfo, ApiError> {
        let source = self
            .sources
            .as_ref()
            .and_then(|s| s.get(id))
            .ok_or_else(|| ApiError::invalid(field, "no source has this id"))?;
        Ok(SourceInfo::new(source.id.clone(), source.provider))
    }
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(get_campaign))
}

/// Create a campaign; name it in `POST /v1/messages` (`campaign_id`) to count its messages.
#[utoipa::path(
    post,
    path = "/v1/campaigns",
    operation_id = "createCampaign",
    params(IdempotencyKey),
    request_body = CreateCampaign,
    responses((status = 201, description = "Created.", body = Campaign), ChangeErrors)
)]
async fn create_campaign(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    JsonBody(req): JsonBody<CreateCampaign>,
) -> Result<(StatusCode, Change, Json<Campaign>), ApiError> {
    let name = req.name.trim();
    if !has_visible(name) || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "name is 1 to 200 printable characters",
        ));
    }
    let hours = req
        .complete_after_hours
        .map(|h| {
            (1..=720)
                .contains(&h)
                .then_some(std::time::Duration::from_secs(h * 3600))
                .ok_or_else(|| {
                    ApiError::invalid("complete_after_hours", "complete_after_hours is 1 to 720")
                })
        })
        .transpose()?;
    let source = req
        .source_id
        .as_deref()
        .map(|id| admin.source_info("source_id", id))
        .transpose()?;
    let metadata = check_metadata(req.metadata)?;
    let campaign = admin
        .campaigns()?
        .create(
            name,
            source,
            metadata,
            hours.unwrap_or(admin.config.campaign_complete_after),
            now,
        )
        .await?;
    let change = Change::with_body("campaign.created", Some(&campaign.id));
    Ok((StatusCode::CREATED, change, Json(campaign)))
}

/// List campaigns, newest first, with their totals.
#[utoipa::path(
    get,
    path = "/v1/campaigns",
    operation_id = "listCampaigns",
    params(CampaignQuery, Paging),
    responses((status = 200, description = "Done.", body = CampaignPage), ChangeErrors)
)]
async fn list_campaigns(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiQuery(query): ApiQuery<CampaignQuery>,
) -> Result<Json<CampaignPage>, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor()?;
    let completed = match query.status.as_deref() {
        None | Some("open") => false,
        Some("completed") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "status must be open or completed",
            ));
        }
    };
    let page = admin
        .campaigns()?
        .list(completed, cursor.as_deref(), limit, now)
        .await?;
    Ok(Json(Page::new(page.campaigns, page.next.as_deref())))
}

/// Show a campaign with its totals: total (accepted by the provider), sent, delivered, read,
/// failed, each message counted once per status.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}",
    operation_id = "getCampaign",
    params(("id" = String, Path)),
    responses((status = 200, description = "Done.", body = Campaign), ItemErrors)
)]
async fn get_campaign(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<Json<Campaign>, ApiError> {
    if !is_campaign_id(&id) {
        return Err(ApiError::not_found("campaign"));
    }
    let campaign = admin
        .campaigns()?
        .campaign(&id, now)
        .await?
        .ok_or_else(|| ApiError::not_found("campaign"))?;
    Ok(Json(campaign))
}
