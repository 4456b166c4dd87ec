//! `Idempotency-Key` on POST: the same key with the same body replays the first response; the
//! same key with a different body is refused with 409. Keys are remembered for a day (per path).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Admin, AdminResponse, ApiError};
use crate::ports::DocumentWrite;

#[derive(Serialize, Deserialize)]
struct Stored {
    request: String,
    response: AdminResponse,
}

/// Runs `work` once per (`key`, `path`); later calls with the same body get its response.
pub(super) async fn run<F, Fut>(
    admin: &Admin,
    key: &str,
    path: &str,
    body: &[u8],
    now: DateTime<Utc>,
    work: F,
) -> Result<AdminResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<AdminResponse, ApiError>>,
{
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 characters",
        ));
    }
    let doc_key = format!(
        "idem#{}",
        hex::encode(
            Sha256::new()
                .chain_update(path)
                .chain_update([0])
                .chain_update(key)
                .finalize()
        )
    );
    let request = hex::encode(Sha256::digest(body));
    if let Some(doc) = admin.docs.get(&doc_key, now).await? {
        let stored: Stored = serde_json::from_value(doc.body).map_err(|e| {
            ApiError::from(crate::ports::BackendError::Corrupt(crate::json_error(&e)))
        })?;
        return if stored.request == request {
            Ok(stored.response)
        } else {
            Err(ApiError::conflict(
                "this Idempotency-Key was used with a different body",
            ))
        };
    }
    let response = match work().await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    // Server errors are not remembered: a retry with the same key should try again.
    if response.status < 500 {
        let stored = Stored {
            request,
            response: response.clone(),
        };
        let value = serde_json::to_value(&stored)
            .map_err(|_| ApiError::new(500, "internal", "could not store the response"))?;
        let ttl = chrono::Duration::from_std(admin.config.idempotency_ttl)
            .unwrap_or(chrono::Duration::days(1));
        let write = DocumentWrite::new(None, now).expiring(now + ttl);
        // Losing the race to a parallel request with the same key keeps the first response.
        let _ = admin.docs.put(&doc_key, &value, write).await?;
    }
    Ok(response)
}
