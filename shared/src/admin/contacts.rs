//! `/v1/contacts`: list (newest first, by source; search by phone number in any spelling, user
//! id, external id or tag), show (a merged id answers the contact it was merged into), and
//! change tags, stage, custom fields and external id, which emits `whatsapp.contact.updated`
//! with the changes through the conversation routes' event sink.
//!
//! Must not: change what the provider said about a customer (profile fields are track's).
//! A change is recorded with its event before the event is handed on
//! ([`Contacts::patch`]): a request that applied its change and failed to hand the event on is
//! answered 503, and its retry (which changes nothing) hands on that same event.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::routes;

use super::audit::Change;
use super::http::{ApiQuery, Id, JsonBody, Now, Routes};
use super::openapi::{ChangeErrors, ItemChangeErrors, ItemErrors};
use super::{Admin, ApiError, Page, Paging, has_visible};
use crate::ids::{EventId, SourceId};
use crate::model::{
    Contact, ContactBody, ContactProfile, EventBody, EventData, EventType, InboundEvent, SourceInfo,
};
use crate::pipeline::track::state::{
    ContactFilter, ContactPatch, Contacts, PatchError, PendingEvent, Resolved, phone_digits,
};
use crate::pipeline::track::sweep::Sweep;

/// A contact as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContactView {
    /// The source it belongs to (absent for a contact stored before sources were kept and not
    /// seen since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<SourceId>,
    /// The contact, as `whatsapp.contact.*` events carry it.
    #[serde(flatten)]
    pub contact: Contact,
}

impl ContactView {
    fn of(r: Resolved) -> Self {
        Self {
            source_id: r.source.map(|s| s.id),
            contact: r.contact,
        }
    }
}

/// A page of contacts.
pub type ContactPage = Page<ContactView>;

/// `GET /v1/contacts`: filters besides paging.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ContactQuery {
    /// Only this source's (with `phone`, `user_id` or `external_id`: a direct look-up).
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9_-]{1,64}$")]
    source_id: Option<String>,
    /// The contact with this phone number, written any way (`+1 555 000 1111`,
    /// `15550001111@c.us`).
    #[param(value_type = Option<String>, min_length = 1)]
    phone: Option<String>,
    /// The contact with this user id (Meta business-scoped user id, WAHA `…@lid`).
    #[param(value_type = Option<String>, min_length = 1, max_length = 200)]
    user_id: Option<String>,
    /// The contact with this external id.
    #[param(value_type = Option<String>, min_length = 1, max_length = 200)]
    external_id: Option<String>,
    /// Only contacts with this tag.
    #[param(value_type = Option<String>, min_length = 1, max_length = 64)]
    tag: Option<String>,
}

/// `PATCH /v1/contacts/{id}`: only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContact {
    /// The tags (replacing the current ones); 1–64 printable characters each, at most 50.
    #[schemars(
        length(max = 50),
        inner(
            length(min = 1, max = 64),
            regex(
                pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$"
            )
        )
    )]
    pub tags: Option<Vec<String>>,
    /// The lifecycle stage (`lead`, `customer`, … as you name them), 1–64 printable
    /// characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schemars(
        with = "Option<String>",
        length(min = 1, max = 64),
        regex(pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$")
    )]
    pub stage: Option<Option<String>>,
    /// A JSON merge patch (RFC 7396) of the custom fields: a field given replaces its value
    /// (objects merge), a field set to `null` is removed; `null` removes every field. Names are
    /// 1–64 of `A-Z a-z 0-9 _ . -`; values any JSON; all fields together at most 16 KiB of
    /// JSON.
    #[serde(default, deserialize_with = "present")]
    #[schemars(
        with = "Option<BTreeMap<String, Value>>",
        extend("propertyNames" = {"pattern": "^[A-Za-z0-9_.-]{1,64}$"})
    )]
    pub custom_fields: Option<Option<serde_json::Map<String, Value>>>,
    /// Your own id for the customer, 1–200 printable characters, unique per source (409 if
    /// another contact has it); `null` clears it. `GET /v1/contacts?external_id=` finds it.
    #[serde(default, deserialize_with = "present")]
    #[schemars(
        with = "Option<String>",
        length(min = 1, max = 200),
        regex(pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x1f\x7f-\x9f\s][^\x00-\x1f\x7f-\x9f]*$")
    )]
    pub external_id: Option<Option<String>>,
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Whether `text` is 1 to `max` characters, printable, and not all blank (what the document's
/// pattern and length say).
fn printable(text: &str, max: usize) -> bool {
    has_visible(text) && text.chars().count() <= max && !text.chars().any(char::is_control)
}

/// Whether `name` may name a custom field.
fn field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl UpdateContact {
    /// The change, checked: 422 naming the field that is not valid.
    fn patch(self) -> Result<ContactPatch, ApiError> {
        if let Some(tags) = &self.tags {
            if tags.len() > 50 {
                return Err(ApiError::invalid("tags", "at most 50 tags"));
            }
            if !tags.iter().all(|t| printable(t, 64)) {
                return Err(ApiError::invalid(
                    "tags",
                    "tags are 1 to 64 printable characters, not all blank",
                ));
            }
        }
        if let Some(Some(stage)) = &self.stage
            && !printable(stage, 64)
        {
            return Err(ApiError::invalid(
                "stage",
                "stage is 1 to 64 printable characters, not all blank",
            ));
        }
        if let Some(Some(fields)) = &self.custom_fields
            && !fields.keys().all(|k| field_name(k))
        {
            return Err(ApiError::invalid(
                "custom_fields",
                "custom field names are 1 to 64 of A-Z a-z 0-9 _ . -",
            ));
        }
        if let Some(Some(id)) = &self.external_id
            && !printable(id, 200)
        {
            return Err(ApiError::invalid(
                "external_id",
                "external_id is 1 to 200 printable characters, not all blank",
            ));
        }
        let tags = self.tags.map(|tags| {
            let mut unique: Vec<String> = Vec::with_capacity(tags.len());
            for t in tags {
                if !unique.contains(&t) {
                    unique.push(t);
                }
            }
            unique
        });
        Ok(ContactPatch {
            tags,
            stage: self.stage,
            custom_fields: self.custom_fields,
            external_id: self.external_id,
        })
    }
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> Self {
        match e {
            PatchError::NotFound => Self::not_found("contact"),
            PatchError::ExternalIdTaken => Self {
                details: Some(serde_json::json!({"field": "external_id"})),
                ..Self::conflict("another contact of this source has this external_id")
            },
            PatchError::NoSource => Self::conflict(
                "this contact has not been seen since contacts recorded their source; it can be changed once its customer writes again",
            ),
            PatchError::TooLarge { field } => {
                Self::invalid(field, "custom fields together are at most 16 KiB of JSON")
            }
            PatchError::State(e) => e.into(),
        }
    }
}

impl Admin {
    /// The contact store (over the conversations' documents) and where its events go.
    fn contacts(&self) -> Result<(Contacts, &Sweep), ApiError> {
        let sweep = self
            .conversations
            .as_ref()
            .ok_or_else(|| ApiError::new(404, "not_found", "contacts are not available here"))?;
        let contacts = Contacts {
            docs: sweep.conversations.docs.clone(),
        };
        Ok((contacts, sweep))
    }
}

pub(super) fn routes() -> Routes {
    Routes::default()
        .routes(routes!(list_contacts))
        .routes(routes!(get_contact, update_contact))
}

/// The `whatsapp.contact.updated` of an API change.
fn updated_event(
    contact: &Contact,
    source: &SourceInfo,
    change: &PendingEvent,
    now: DateTime<Utc>,
) -> InboundEvent {
    InboundEvent {
        id: change.id,
        event_type: EventType::ContactUpdated,
        dedup_key: format!("contact:{}:updated:{}", contact.id, change.id),
        received_at: now,
        occurred_at: Some(change.at),
        request_id: None,
        data: EventData::new(
            source.clone(),
            EventBody::contact(ContactBody {
                contact: contact.clone(),
                previous: None,
                changes: change.changes.clone(),
            }),
        ),
    }
}

/// A query value that is at most `max` characters.
fn bounded(name: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > max => Err(ApiError::invalid(
            name,
            format!("{name} is 1 to {max} characters"),
        )),
        v => Ok(v),
    }
}

/// List contacts, newest first.
#[utoipa::path(
    get,
    path = "/v1/contacts",
    operation_id = "listContacts",
    params(ContactQuery, Paging),
    responses((status = 200, description = "Done.", body = ContactPage), ChangeErrors)
)]
async fn list_contacts(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    ApiQuery(paging): ApiQuery<Paging>,
    ApiQuery(query): ApiQuery<ContactQuery>,
) -> Result<Json<ContactPage>, ApiError> {
    let limit = paging.limit()?;
    let cursor = paging.cursor()?;
    if let Some(s) = &query.source_id {
        SourceId::parse(s).map_err(|_| ApiError::invalid("source_id", "not a source id"))?;
    }
    let phone = match &query.phone {
        None => None,
        Some(p) => Some(phone_digits(p).ok_or_else(|| {
            ApiError::invalid(
                "phone",
                "phone must be a phone number (digits, + and spaces)",
            )
        })?),
    };
    let filter = ContactFilter {
        source_id: query.source_id,
        phone,
        user_id: bounded("user_id", query.user_id, 200)?,
        external_id: bounded("external_id", query.external_id, 200)?,
        tag: bounded("tag", query.tag, 64)?,
    };
    let (contacts, _) = admin.contacts()?;
    // One source and an id: a look-up, not a scan.
    if let Some(source) = filter.source_id.as_deref()
        && (filter.phone.is_some() || filter.user_id.is_some() || filter.external_id.is_some())
    {
        if cursor.is_some() {
            return Ok(Json(Page::new(Vec::new(), None)));
        }
        let found = match &filter.external_id {
            Some(e) => contacts.by_external_id(source, e, now).await?,
            None => {
                let profile = ContactProfile {
                    wa_id: filter.phone.clone(),
                    user_id: filter.user_id.clone(),
                    ..ContactProfile::default()
                };
                contacts.resolve_in(source, &profile, now).await?
            }
        };
        let data = found
            .filter(|r| filter.keeps(r))
            .map(ContactView::of)
            .into_iter()
            .collect();
        return Ok(Json(Page::new(data, None)));
    }
    let page = contacts
        .list(&filter, cursor.as_deref(), limit, now)
        .await?;
    let data = page.contacts.into_iter().map(ContactView::of).collect();
    Ok(Json(Page::new(data, page.next.as_deref())))
}

/// Show a contact (a merged contact's id shows the contact it was merged into).
#[utoipa::path(
    get,
    path = "/v1/contacts/{id}",
    operation_id = "getContact",
    params(("id" = String, Path)),
    responses((status = 200, description = "Done.", body = ContactView), ItemErrors)
)]
async fn get_contact(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<Json<ContactView>, ApiError> {
    let (contacts, _) = admin.contacts()?;
    let found = contacts
        .contact(&id, now)
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    Ok(Json(ContactView::of(found)))
}

/// Change a contact's tags, stage, custom fields or external id; a change emits
/// whatsapp.contact.updated with each changed field.
#[utoipa::path(
    patch,
    path = "/v1/contacts/{id}",
    operation_id = "updateContact",
    params(("id" = String, Path)),
    request_body = Option<UpdateContact>,
    responses((status = 200, description = "Done.", body = ContactView), ItemChangeErrors)
)]
async fn update_contact(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
    JsonBody(req): JsonBody<UpdateContact>,
) -> Result<(StatusCode, Change, Json<ContactView>), ApiError> {
    let patch = req.patch()?;
    let (contacts, sweep) = admin.contacts()?;
    let done = contacts.patch(&id, &patch, now).await?;
    if let (Some(source), false) = (&done.source, done.pending.is_empty()) {
        let events: Vec<InboundEvent> = done
            .pending
            .iter()
            .map(|p| updated_event(&done.contact, source, p, now))
            .collect();
        sweep.sink.emit(&events, now).await?;
        let handed: Vec<EventId> = done.pending.iter().map(|p| p.id).collect();
        if let Err(e) = contacts.handed_on(&done.contact.id, &handed, now).await {
            // They went out; the next change hands them on again, under the same ids.
            tracing::warn!(error = %e, contact_id = %done.contact.id, "handed-on contact events stay recorded");
        }
    }
    let change = Change::with_body("contact.updated", Some(&done.contact.id));
    let view = ContactView {
        source_id: done.source.map(|s| s.id),
        contact: done.contact,
    };
    Ok((StatusCode::OK, change, Json(view)))
}

#[cfg(test)]
mod tests;
