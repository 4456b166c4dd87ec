//! `Idempotency-Key` on POST: the same key with the same body replays the first response; the
//! same key with a different body is refused with 409, and so is a call while the first one still
//! runs. Keys are remembered for a day (per path).
//!
//! A response that shows a secret once (an endpoint's create or rotate) is not stored with it:
//! the record keeps the secret XORed with a pad derived from the raw `Idempotency-Key`, which is
//! not stored (the record is found by a digest of it), so the table alone never yields the
//! secret, and a replay, which brings the key again, answers the same bytes as the first time.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Admin, AdminResponse, ApiError};
use crate::ports::DocumentWrite;

#[derive(Serialize, Deserialize)]
struct Stored {
    request: String,
    /// `None` while the first request with the key is still running. A `secret` in its body
    /// is stored empty, and sealed in `sealed_secret`.
    #[serde(default)]
    response: Option<AdminResponse>,
    /// Hex of the response's `secret` XOR [`pad`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_secret: Option<String>,
}

/// `len` bytes of HMAC-SHA256 keyed by the raw idempotency key over a label, the record and a
/// block counter: a pseudo-random pad used for one record only.
fn pad(key: &str, record: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block: u32 = 0;
    while out.len() < len {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()) else {
            break;
        };
        mac.update(b"wagate idempotency secret\0");
        mac.update(record.as_bytes());
        mac.update(&block.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        block += 1;
    }
    out.truncate(len);
    out
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// `"secret":` and `value` as JSON text.
fn secret_member(value: &str) -> String {
    format!("\"secret\":{}", serde_json::Value::from(value))
}

/// The response as stored: its `secret`, if it shows one, emptied and sealed. The body's text
/// is otherwise kept byte for byte, so a replay answers exactly the first answer's bytes.
fn seal(response: &AdminResponse, key: &str, record: &str) -> (AdminResponse, Option<String>) {
    let Ok(serde_json::Value::Object(mut body)) = serde_json::from_str(&response.body) else {
        return (response.clone(), None);
    };
    let Some(serde_json::Value::String(secret)) = body.get("secret").cloned() else {
        return (response.clone(), None);
    };
    let sealed = hex::encode(xor(secret.as_bytes(), &pad(key, record, secret.len())));
    let member = secret_member(&secret);
    let text = if response.body.matches(&member).count() == 1 {
        response.body.replacen(&member, &secret_member(""), 1)
    } else {
        body.insert("secret".into(), "".into());
        serde_json::Value::Object(body).to_string()
    };
    let stored = AdminResponse {
        body: text,
        ..response.clone()
    };
    (stored, Some(sealed))
}

/// The first response again, its secret unsealed with the key the replay brings.
fn unseal(
    mut response: AdminResponse,
    sealed: Option<&str>,
    key: &str,
    record: &str,
) -> Result<AdminResponse, ApiError> {
    let Some(sealed) = sealed else {
        return Ok(response);
    };
    let broken = || ApiError::new(500, "internal", "a stored response could not be replayed");
    let bytes = hex::decode(sealed).map_err(|_| broken())?;
    let secret =
        String::from_utf8(xor(&bytes, &pad(key, record, bytes.len()))).map_err(|_| broken())?;
    let empty = secret_member("");
    response.body = if response.body.matches(&empty).count() == 1 {
        response.body.replacen(&empty, &secret_member(&secret), 1)
    } else {
        let mut body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&response.body).map_err(|_| broken())?;
        body.insert("secret".into(), secret.into());
        serde_json::Value::Object(body).to_string()
    };
    Ok(response)
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
        sealed_secret: None,
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
            (true, Some(response)) => {
                unseal(response, stored.sealed_secret.as_deref(), key, &doc_key)
            }
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
        let (stored, sealed_secret) = seal(&response, key, &doc_key);
        let done = Stored {
            request,
            response: Some(stored),
            sealed_secret,
        };
        (encode(&done)?, now + ttl)
    } else {
        (encode(&claim)?, now)
    };
    // The work has run: its answer goes to the client even when it cannot be stored, since a
    // 5xx would tell the client that nothing happened. The write is tried a few times (a write
    // that applied and still failed makes the next try find version 2 and stop); if it never
    // lands, the key stays claimed until `IN_FLIGHT` ends and is logged.
    for attempt in 1..=STORE_ATTEMPTS {
        match admin
            .docs
            .put(
                &doc_key,
                &value,
                DocumentWrite::new(Some(1), now).expiring(expires),
            )
            .await
        {
            Ok(_) => break,
            Err(e) if attempt == STORE_ATTEMPTS => tracing::error!(
                error = %e, path,
                "the answer to an idempotent request could not be stored; a retry after the claim ends runs it again"
            ),
            Err(_) => {}
        }
    }
    Ok(response)
}

/// Tries at storing an answer.
const STORE_ATTEMPTS: u32 = 3;
