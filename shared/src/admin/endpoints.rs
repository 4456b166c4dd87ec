//! `/v1/endpoints`: create (the secret is shown once), list, show, update, delete, rotate the
//! secret with a grace period for the old one, enable and disable.

use std::collections::BTreeMap;
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
use super::{Admin, ApiError, Page, Paging};
use crate::delivery::endpoints::{Endpoint, EndpointError, SecretEntry};
use crate::signature::EndpointSecret;

/// What the API shows for every custom header value: they are write-only (often the receiver's
/// own API key). Sent back in a `PATCH`, it keeps that header's current value.
pub const MASKED: &str = "********";

/// An endpoint as the API shows it: everything but the secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EndpointView {
    /// `ep_` + ULID.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// Event type filters (empty: every event).
    pub event_types: Vec<String>,
    /// Inbound message bursts as one batch.
    pub batching: bool,
    /// Messages with media wait for the stored file (else they come at once, media `pending`).
    pub media_wait: bool,
    /// Extra headers sent with every delivery: their names, each value shown as `********`
    /// (values are write-only).
    pub headers: BTreeMap<String, String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why wagate disabled it, if it did.
    pub disabled_reason: Option<String>,
    /// Until when a rotated-out secret still signs deliveries, if one does.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl EndpointView {
    fn of(e: &Endpoint, now: DateTime<Utc>) -> Self {
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: e.event_types.clone(),
            batching: e.batching,
            media_wait: e.media_wait,
            headers: e
                .headers
                .keys()
                .map(|name| (name.clone(), MASKED.to_owned()))
                .collect(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            previous_secret_expires_at: e
                .secrets
                .iter()
                .filter_map(|s| s.expires_at)
                .filter(|t| *t > now)
                .max(),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its signing secret: the answer of a create or a rotation, the only time the
/// secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedEndpoint {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret; shown only in this answer.
    #[schemars(regex(pattern = "^whsec_"))]
    pub secret: String,
}

/// A page of endpoints.
pub type EndpointPage = Page<EndpointView>;

/// `POST /v1/endpoints`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where deliveries go (https).
    #[schemars(
        url,
        regex(pattern = r"^https://[A-Za-z0-9.-]+(:[0-9]+)?([/?#][\x21-\x7e]*)?$")
    )]
    pub url: String,
    /// Filters: exact types, family wildcards (`whatsapp.message.*`) or `*`.
    #[serde(default)]
    #[schemars(transform = filter_items)]
    pub event_types: Vec<String>,
    /// Batch inbound bursts (default true).
    #[serde(default)]
    pub batching: Option<bool>,
    /// Deliver a message with media once its file is stored, with a working URL (default
    /// true); `false`: at once, the file `pending`.
    #[serde(default)]
    pub media_wait: Option<bool>,
    /// Extra headers (e.g. `X-API-Key` of the receiver). Their values are never shown again.
    #[serde(default)]
    #[schemars(transform = header_entries)]
    pub headers: BTreeMap<String, String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /v1/endpoints/{id}`: only the fields given change.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// New URL.
    #[schemars(
        url,
        regex(pattern = r"^https://[A-Za-z0-9.-]+(:[0-9]+)?([/?#][\x21-\x7e]*)?$")
    )]
    pub url: Option<String>,
    /// New filters.
    #[schemars(transform = filter_items)]
    pub event_types: Option<Vec<String>>,
    /// Batching on or off.
    pub batching: Option<bool>,
    /// Wait for media files or not.
    pub media_wait: Option<bool>,
    /// New custom headers (replacing all of them). A value of `********` keeps that header's
    /// current value, so the headers read from `GET` can be sent back with one changed.
    #[schemars(transform = header_entries)]
    pub headers: Option<BTreeMap<String, String>>,
    /// New description (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<String>")]
    pub description: Option<Option<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Filters are checked in code against a list the derive cannot see: the document spells it
/// out ([`super::openapi::endpoint_filters`]).
fn filter_items(schema: &mut schemars::Schema) {
    schema.insert(
        "items".into(),
        serde_json::json!({"enum": super::openapi::endpoint_filters()}),
    );
}

/// Header names and values as the code checks them (RFC 9110 tokens; no control characters).
fn header_entries(schema: &mut schemars::Schema) {
    schema.insert(
        "propertyNames".into(),
        serde_json::json!({"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"}),
    );
    schema.insert(
        "additionalProperties".into(),
        serde_json::json!({"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"}),
    );
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `POST /v1/endpoints/{id}/rotate-secret`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Seconds the old secret keeps signing (default 24 h, at most 7 days; 0: stop now).
    #[serde(default, deserialize_with = "super::whole_number")]
    #[schemars(range(min = 0, max = 604_800))]
    pub grace_seconds: Option<u64>,
}

fn validation(e: &EndpointError) -> ApiError {
    let field = match e {
        EndpointError::Url(_) => "url",
        EndpointError::Filter(_) => "event_types",
        EndpointError::Header(_) => "headers",
        EndpointError::Secret => "secret",
    };
    ApiError::invalid(field, e.to_string())
}

/// `headers` with each masked value replaced by the current value of that header (names compared
/// without case, as HTTP does); a masked value for a header the endpoint does not have is refused.
fn unmask(
    headers: BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    headers
        .into_iter()
        .map(|(name, value)| {
            if value != MASKED {
                return Ok((name, value));
            }
            current
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| (name.clone(), v.clone()))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "headers",
                        "a masked value (********) keeps a header the endpoint already has; give the value of a new header",
                    )
                })
        })
        .collect()
}

fn new_secret() -> Result<EndpointSecret, ApiError> {
    EndpointSecret::generate()
        .map_err(|_| ApiError::new(500, "internal", "no randomness available for a new secret"))
}

impl Admin {
    async fn load(&self, id: &str, now: DateTime<Utc>) -> Result<(Endpoint, u64), ApiError> {
        self.endpoints
            .get(id, now)
            .await?
            .ok_or_else(|| ApiError::not_found("endpoint"))
    }

    async fn save(
        &self,
        endpoint: &Endpoint,
        version: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        if self.endpoints.put(endpoint, version, now).await? {
            Ok(())
        } else {
            Err(ApiError::conflict(
                "the endpoint changed while this request ran; retry",
            ))
        }
    }
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .routes(routes!(create_endpoint, list_endpoints))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(enable_endpoint))
        .routes(routes!(disable_endpoint))
}

/// Create an endpoint; the answer holds its whsec_ secret, shown only here.
#[utoipa::path(
    post,
    path = "/v1/endpoints",
    operation_id = "createEndpoint",
    params(IdempotencyKey),
    request_body = CreateEndpoint,
    responses((status = 201, description = "Done.", body = CreatedEndpoint), ChangeErrors)
)]
async fn create_endpoint(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    JsonBody(req): JsonBody<CreateEndpoint>,
) -> Result<(StatusCode, Change, Json<CreatedEndpoint>), ApiError> {
    let secret = new_secret()?;
    let id = format!("ep_{}", ulid::Ulid::new());
    let mut endpoint = Endpoint::new(id, req.url, &secret, now);
    endpoint.event_types = req.event_types;
    endpoint.batching = req.batching.unwrap_or(true);
    endpoint.media_wait = req.media_wait.unwrap_or(true);
    endpoint.headers = unmask(req.headers, &BTreeMap::new())?;
    endpoint.description = req.description;
    endpoint
        .validate(admin.config.network)
        .map_err(|e| validation(&e))?;
    admin.save(&endpoint, None, now).await?;
    let change = Change::with_body("endpoint.created", Some(&endpoint.id));
    let created = CreatedEndpoint {
        endpoint: EndpointView::of(&endpoint, now),
        secret: secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, change, Json(created)))
}

/// List endpoints by id.
#[utoipa::path(
    get,
    path = "/v1/endpoints",
    operation_id = "listEndpoints",
    params(Paging),
    responses((status = 200, description = "Done.", body = EndpointPage), ChangeErrors)
)]
async fn list_endpoints(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Json<EndpointPage>, ApiError> {
    let limit = paging.limit()?;
    let after = paging.cursor()?;
    let (list, next) = admin.endpoints.page(after.as_deref(), limit, now).await?;
    let views: Vec<EndpointView> = list.iter().map(|e| EndpointView::of(e, now)).collect();
    Ok(Json(Page::new(views, next.as_deref())))
}

/// Show an endpoint.
#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}",
    operation_id = "getEndpoint",
    params(("id" = String, Path)),
    responses((status = 200, description = "Done.", body = EndpointView), ItemErrors)
)]
async fn get_endpoint(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<Json<EndpointView>, ApiError> {
    let (endpoint, _) = admin.load(&id, now).await?;
    Ok(Json(EndpointView::of(&endpoint, now)))
}

/// Change some fields of an endpoint.
#[utoipa::path(
    patch,
    path = "/v1/endpoints/{id}",
    operation_id = "updateEndpoint",
    params(("id" = String, Path)),
    request_body = Option<UpdateEndpoint>,
    responses((status = 200, description = "Done.", body = EndpointView), ItemChangeErrors)
)]
async fn update_endpoint(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<UpdateEndpoint>,
) -> Result<(StatusCode, Change, Json<EndpointView>), ApiError> {
    let (mut endpoint, version) = admin.load(&id, now).await?;
    if let Some(url) = req.url {
        endpoint.url = url;
    }
    if let Some(types) = req.event_types {
        endpoint.event_types = types;
    }
    if let Some(b) = req.batching {
        endpoint.batching = b;
    }
    if let Some(w) = req.media_wait {
        endpoint.media_wait = w;
    }
    if let Some(h) = req.headers {
        endpoint.headers = unmask(h, &endpoint.headers)?;
    }
    if let Some(d) = req.description {
        endpoint.description = d;
    }
    if let Some(enabled) = req.enabled {
        endpoint.enabled = enabled;
        if enabled {
            endpoint.disabled_reason = None;
        }
    }
    endpoint.updated_at = now;
    endpoint
        .validate(admin.config.network)
        .map_err(|e| validation(&e))?;
    admin.save(&endpoint, Some(version), now).await?;
    let change = Change::with_body("endpoint.updated", Some(&id));
    Ok((
        StatusCode::OK,
        change,
        Json(EndpointView::of(&endpoint, now)),
    ))
}

/// Delete an endpoint.
#[utoipa::path(
    delete,
    path = "/v1/endpoints/{id}",
    operation_id = "deleteEndpoint",
    params(("id" = String, Path)),
    responses((status = 204, description = "Done."), ItemChangeErrors)
)]
async fn delete_endpoint(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<(StatusCode, Change, ()), ApiError> {
    let (_, version) = admin.load(&id, now).await?;
    if !admin.endpoints.delete(&id, version, now).await? {
        return Err(ApiError::conflict(
            "the endpoint changed while this request ran; retry",
        ));
    }
    Ok((
        StatusCode::NO_CONTENT,
        Change::of("endpoint.deleted", &id),
        (),
    ))
}

/// New signing secret; the old one signs too for the grace period.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/rotate-secret",
    operation_id = "rotateEndpointSecret",
    params(("id" = String, Path), IdempotencyKey),
    request_body = Option<RotateSecret>,
    responses((status = 200, description = "Done.", body = CreatedEndpoint), ItemChangeErrors)
)]
async fn rotate_secret(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<RotateSecret>,
) -> Result<(StatusCode, Change, Json<CreatedEndpoint>), ApiError> {
    let grace = match req.grace_seconds {
        None => admin.config.rotation_grace,
        Some(s) if s <= 7 * 24 * 3600 => std::time::Duration::from_secs(s),
        Some(_) => {
            return Err(ApiError::invalid(
                "grace_seconds",
                "grace_seconds must be at most 604800 (7 days)",
            ));
        }
    };
    let (mut endpoint, version) = admin.load(&id, now).await?;
    let secret = new_secret()?;
    let until = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::days(1));
    // The current secret keeps signing until `until`; expired ones are dropped.
    let mut secrets = vec![SecretEntry {
        secret: secret.expose().to_owned(),
        expires_at: None,
    }];
    secrets.extend(
        endpoint
            .secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| SecretEntry {
                secret: s.secret.clone(),
                expires_at: Some(s.expires_at.map_or(until, |t| t.min(until))),
            })
            .filter(|s| s.expires_at.is_some_and(|t| t > now)),
    );
    endpoint.secrets = secrets;
    endpoint.updated_at = now;
    admin.save(&endpoint, Some(version), now).await?;
    let change = Change::with_body("endpoint.secret_rotated", Some(&id));
    let rotated = CreatedEndpoint {
        endpoint: EndpointView::of(&endpoint, now),
        secret: secret.expose().to_owned(),
    };
    Ok((StatusCode::OK, change, Json(rotated)))
}

/// Turn deliveries on.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/enable",
    operation_id = "enableEndpoint",
    params(("id" = String, Path), IdempotencyKey),
    responses((status = 200, description = "Done.", body = EndpointView), ItemChangeErrors)
)]
async fn enable_endpoint(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<(StatusCode, Change, Json<EndpointView>), ApiError> {
    let view = set_enabled(&admin, &id, true, now).await?;
    Ok((StatusCode::OK, Change::of("endpoint.enabled", &id), view))
}

/// Turn deliveries off.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/disable",
    operation_id = "disableEndpoint",
    params(("id" = String, Path), IdempotencyKey),
    responses((status = 200, description = "Done.", body = EndpointView), ItemChangeErrors)
)]
async fn disable_endpoint(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<(StatusCode, Change, Json<EndpointView>), ApiError> {
    let view = set_enabled(&admin, &id, false, now).await?;
    Ok((StatusCode::OK, Change::of("endpoint.disabled", &id), view))
}

async fn set_enabled(
    admin: &Admin,
    id: &str,
    enabled: bool,
    now: DateTime<Utc>,
) -> Result<Json<EndpointView>, ApiError> {
    let (mut endpoint, version) = admin.load(id, now).await?;
    if endpoint.enabled != enabled {
        endpoint.enabled = enabled;
        endpoint.disabled_reason = None;
        endpoint.updated_at = now;
        admin.save(&endpoint, Some(version), now).await?;
    }
    Ok(Json(EndpointView::of(&endpoint, now)))
}
