//! `/v1/media/{id}`: a message's stored media file with a fresh download URL, while it is kept
//! (the id is `message_type_data.media.id` of the message's event).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use utoipa_axum::routes;

use super::http::{Id, Now, Routes};
use super::openapi::ItemErrors;
use super::{Admin, ApiError};
use crate::model::StoredMedia;

pub(super) fn routes() -> Routes {
    Routes::default().routes(routes!(get_media))
}

/// Whether `id` looks like a wagate media id (`med_` + 26 base32 characters).
fn is_media_id(id: &str) -> bool {
    id.strip_prefix("med_").is_some_and(|rest| {
        rest.len() == 26
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    })
}

/// Show a media file: `stored` with a URL that works for the configured time from now,
/// `pending` while it is being fetched, `failed` with the reason. 404 once it is no longer kept
/// (`MEDIA_TTL_DAYS`).
#[utoipa::path(
    get,
    path = "/v1/media/{id}",
    operation_id = "getMedia",
    params(("id" = String, Path, description = "`med_…`, from `message_type_data.media.id`")),
    responses((status = 200, description = "Done.", body = StoredMedia), ItemErrors)
)]
async fn get_media(
    State(admin): State<Arc<Admin>>,
    Now(now): Now,
    Id(id): Id,
) -> Result<Json<StoredMedia>, ApiError> {
    let files = admin
        .media
        .as_ref()
        .ok_or_else(|| ApiError::new(404, "not_found", "media is not stored here"))?;
    if !is_media_id(&id) {
        return Err(ApiError::not_found("media"));
    }
    let media = files
        .lookup(&id, now)
        .await?
        .ok_or_else(|| ApiError::not_found("media"))?;
    Ok(Json(media))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_are_recognised() {
        assert!(is_media_id("med_0123456789abcdefghjkmnpqrs"));
        assert!(!is_media_id("med_0123456789ABCDEFGHJKMNPQRS"));
        assert!(!is_media_id("med_short"));
        assert!(!is_media_id("msg_0123456789abcdefghjkmnpqrs"));
    }
}
