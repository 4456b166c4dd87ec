//! What the three stores share: the error they report, the optimistic-update bounds, the marks
//! by which a replayed item recognises its own changes, and encoding documents.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ports::{BackendError, DocumentStore, DocumentWrite, Versioned};

/// Optimistic-concurrency rounds before giving up (the caller retries the whole item later).
pub(super) const ROUNDS: usize = 8;

/// Marks of the latest items kept per message status and per contact: more than a message has
/// statuses, more than a contact changes while one item is retried.
pub(super) const MARKS: usize = 8;

/// A change made on behalf of item `by`, with what was there before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Mark<T> {
    pub(super) by: String,
    pub(super) before: T,
}

/// Appends `mark`, keeping the latest `keep`.
pub(super) fn remember<T>(marks: &mut Vec<T>, mark: T, keep: usize) {
    marks.push(mark);
    let excess = marks.len().saturating_sub(keep);
    marks.drain(..excess);
}

/// A state operation lost every round to concurrent writers, or the backend failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Other writers kept changing the same document.
    #[error("document {0} kept changing under concurrent writers")]
    Contention(String),
    /// The store failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A stored document did not decode.
    #[error("stored document {key} is not valid: {reason}")]
    Corrupt {
        /// The document key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl StateError {
    /// Whether retrying the item later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Contention(_) => true,
            Self::Backend(e) => e.is_retryable(),
            Self::Corrupt { .. } => false,
        }
    }
}

/// A document as read: a `Value` tree (listings, other backends) or its stored text
/// ([`DocumentStore::get_json`](crate::ports::DocumentStore::get_json)).
pub(super) trait Body {
    /// The document decoded as a `T`.
    fn decode_as<T: for<'de> Deserialize<'de>>(&self) -> serde_json::Result<T>;
}

impl Body for Versioned {
    fn decode_as<T: for<'de> Deserialize<'de>>(&self) -> serde_json::Result<T> {
        serde_json::from_value(self.body.clone())
    }
}

impl Body for crate::ports::VersionedJson {
    fn decode_as<T: for<'de> Deserialize<'de>>(&self) -> serde_json::Result<T> {
        crate::from_json_bytes(&self.json)
    }
}

pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    key: &str,
    doc: &impl Body,
) -> Result<T, StateError> {
    doc.decode_as().map_err(|e| StateError::Corrupt {
        key: key.to_owned(),
        reason: crate::json_error(&e),
    })
}

pub(super) fn encode<T: Serialize>(key: &str, value: &T) -> Result<Value, StateError> {
    serde_json::to_value(value).map_err(|e| StateError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// `value` as the JSON text a store keeps, written straight from its type (no `Value` tree).
pub(super) fn encode_json<T: Serialize>(key: &str, value: &T) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(|e| StateError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

pub(super) fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Writes `value` under `key` in `docs` if its version is still `expected` (see
/// [`DocumentStore::put`]).
pub(super) async fn save<T: Serialize>(
    docs: &dyn DocumentStore,
    key: &str,
    value: &T,
    w: DocumentWrite<'_>,
) -> Result<bool, StateError> {
    Ok(docs.put_json(key, &encode_json(key, value)?, w).await?)
}
