//! `Idempotency-Key` on POST: the same key with the same body replays the first response; the
//! same key with a different body is refused with 409, and so is a call while the first one still
//! runs. Keys are remembered for a day (per path).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Admin, AdminResponse, ApiError};
use crate::ports::DocumentWrite;

#[derive(Serialize, Deserialize)]
struct Stored {
    request: String,
    /// `None` while the first request with the key is still running.
    #[serde(default)]
    response: Option<AdminResponse>,
}

/// How long a claimed key waits for its first request before another may take over.
const IN_FLIGHT: chrono::Duration = chrono::Duration::seconds(60);

/// Runs `work` once per (`key`, `path`); later calls with the same body get its response, calls
/// while it runs get 409.
pub(super) async fn run<F, Fut>(
    admin: &Admin,
    key: &str,
    path: &str,
    query: &str,
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
    let request = hex::encode(
        Sha256::new()
            .chain_update(query)
            .chain_update([0])
            .chain_update(body)
            .finalize(),
    );
    let encode = |stored: &Stored| {
        serde_json::to_value(stored)
            .map_err(|_| ApiError::new(500, "internal", "could not store the response"))
    };
    // Claim the key (a conditional create), or answer from what the first request left.
    let claim = Stored {
        request: request.clone(),
        response: None,
    };
    let claimed = admin
        .docs
        .put(
            &doc_key,
            &encode(&claim)?,
            DocumentWrite::new(None, now).expiring(now + IN_FLIGHT),
        )
        .await?;
    if !claimed {
        let Some(doc) = admin.docs.get(&doc_key, now).await? else {
            return Err(ApiError::conflict(
                "a request with this Idempotency-Key is in progress; retry",
            ));
        };
        let stored: Stored = serde_json::from_value(doc.body).map_err(|e| {
            ApiError::from(crate::ports::BackendError::Corrupt(crate::json_error(&e)))
        })?;
        return match (stored.request == request, stored.response) {
            (false, _) => Err(ApiError::conflict(
                "this Idempotency-Key was used with a different body",
            )),
            (true, None) => Err(ApiError::conflict(
                "a request with this Idempotency-Key is in progress; retry",
            )),
            (true, Some(response)) => Ok(response),
        };
    }
    let response = match work().await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    // Server errors are not remembered: the key is given back so a retry runs again.
    let ttl = chrono::Duration::from_std(admin.config.idempotency_ttl)
        .unwrap_or(chrono::Duration::days(1));
    let (value, expires) = if response.status < 500 {
        let done = Stored {
            request,
            response: Some(response.clone()),
        };
        (encode(&done)?, now + ttl)
    } else {
        (encode(&claim)?, now)
    };
    let _ = admin
        .docs
        .put(
            &doc_key,
            &value,
            DocumentWrite::new(Some(1), now).expiring(expires),
        )
        .await?;
    Ok(response)
}
