//! Subscriber endpoints: where events are delivered, which ones, and how they are signed.
//!
//! Stored as documents `endpoint#{id}`, listed in the index partition `endpoints`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ssrf::{NetworkPolicy, UrlError, check_url};
use crate::model::EventType;
use crate::ports::{BackendError, DocumentStore, DocumentWrite, IndexEntry, IndexPage};
use crate::signature::EndpointSecret;

/// Index partition listing every endpoint.
const PARTITION: &str = "endpoints";

/// Headers wagate sets itself; custom headers may not replace them.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "x-webhook-event",
    "x-webhook-batch",
    "x-webhook-signature",
    "x-idempotency-key",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// One signing secret of an endpoint; an old one stays valid until `expires_at` after a rotation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEntry {
    /// `whsec_…`, as shown to the user.
    pub secret: String,
    /// When a rotated-out secret stops being used; `None` for the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(
        serialize_with = "crate::rfc3339::option",
        deserialize_with = "crate::rfc3339::deserialize_option"
    )]
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SecretEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretEntry")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A subscriber endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `ep_` + ULID.
    pub id: String,
    /// Where deliveries are POSTed (https; http to loopback only in local mode).
    pub url: String,
    /// Free text for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Signing secrets, current first.
    pub secrets: Vec<SecretEntry>,
    /// Event type filters: exact (`whatsapp.message.received`), family wildcard
    /// (`whatsapp.message.*`) or `*`. Empty means every event.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Whether inbound message bursts arrive as one batch (else one delivery per message).
    #[serde(default = "yes")]
    pub batching: bool,
    /// Whether a message with a media file is delivered once the file is stored (with a
    /// working URL; at most the media stage's wait), or at once with the file `pending`.
    #[serde(default = "yes")]
    pub media_wait: bool,
    /// Extra headers sent with every delivery (e.g. `X-API-Key`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Disabled endpoints get nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Why it was disabled, when wagate did it (e.g. the endpoint answered 410).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Created.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub created_at: DateTime<Utc>,
    /// Last changed.
    #[serde(
        serialize_with = "crate::rfc3339::serialize",
        deserialize_with = "crate::rfc3339::deserialize"
    )]
    pub updated_at: DateTime<Utc>,
}

fn yes() -> bool {
    true
}

/// Why an endpoint definition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The URL is not allowed.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// A filter names no event type.
    #[error("unknown event type filter `{0}`")]
    Filter(String),
    /// A custom header is invalid or reserved.
    #[error("header `{0}` cannot be set: it is invalid or set by wagate")]
    Header(String),
    /// No usable secret.
    #[error("endpoint has no valid `whsec_` secret")]
    Secret,
}

/// Whether `filter` selects `event_type`.
pub fn filter_matches(filter: &str, event_type: EventType) -> bool {
    let name = event_type.as_str();
    match filter.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => prefix.ends_with('.') && name.starts_with(prefix),
        None => filter == name,
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Endpoint {
    /// An enabled endpoint for every event type, batching on, no custom headers, signed with
    /// `secret`; callers adjust the rest.
    pub fn new(
        id: impl Into<String>,
        url: impl Into<String>,
        secret: &EndpointSecret,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.into(),
            url: url.into(),
            description: None,
            secrets: vec![SecretEntry {
                secret: secret.expose().to_owned(),
                expires_at: None,
            }],
            event_types: Vec::new(),
            batching: true,
            media_wait: true,
            headers: BTreeMap::new(),
            enabled: true,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether this endpoint wants `event_type` now.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.enabled
            && (self.event_types.is_empty()
                || self
                    .event_types
                    .iter()
                    .any(|f| filter_matches(f, event_type)))
    }

    /// The secrets to sign with at `now`: the current one and any rotated-out one still in its
    /// grace period.
    pub fn active_secrets(&self, now: DateTime<Utc>) -> Vec<EndpointSecret> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .filter_map(|s| EndpointSecret::parse(&s.secret).ok())
            .collect()
    }

    /// Checks URL, filters, headers and secrets.
    pub fn validate(&self, policy: NetworkPolicy) -> Result<(), EndpointError> {
        check_url(&self.url, policy)?;
        for f in &self.event_types {
            let known = f == "*" || EventType::ALL.iter().any(|t| filter_matches(f, *t));
            if !known {
                return Err(EndpointError::Filter(f.clone()));
            }
        }
        for (name, value) in &self.headers {
            let reserved = RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str());
            if reserved || !valid_header_name(name) || value.chars().any(|c| c.is_control()) {
                return Err(EndpointError::Header(name.clone()));
            }
        }
        if self
            .secrets
            .iter()
            .all(|s| EndpointSecret::parse(&s.secret).is_err())
        {
            return Err(EndpointError::Secret);
        }
        Ok(())
    }
}

/// Endpoints on the [`DocumentStore`].
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Where they are kept.
    pub docs: Arc<dyn DocumentStore>,
}

impl Endpoints {
    /// Endpoints on `docs`, each read reused for `ttl` by this process ([`ReadCache`]; zero:
    /// every read goes to the store): what fan-out, buffer and deliver read them through.
    pub fn cached(docs: Arc<dyn DocumentStore>, ttl: std::time::Duration) -> Self {
        Self {
            docs: Arc::new(crate::ports::cache::ReadCache::new(docs, ttl)),
        }
    }

    /// Every endpoint (at most `limit`), ordered by id.
    pub async fn list(
        &self,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<Endpoint>, BackendError> {
        let docs = self.docs.list_below(PARTITION, "~", limit, now).await?;
        docs.into_iter()
            .map(|(_, d)| {
                serde_json::from_value(d.body)
                    .map_err(|e| BackendError::Corrupt(crate::json_error(&e)))
            })
            .collect()
    }

    /// A page of endpoints ordered by id, after the id `after`; returns the last id when more
    /// may follow.
    pub async fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Endpoint>, Option<String>), BackendError> {
        let page = IndexPage {
            partition: PARTITION,
            after,
            before: None,
            descending: false,
            limit: limit + 1,
        };
        let mut listed = self.docs.list_page(page, now).await?;
        let more = listed.len() > limit;
        listed.truncate(limit);
        let next = more
            .then(|| listed.last().map(|l| l.sort.clone()))
            .flatten();
        let endpoints = listed
            .into_iter()
            .map(|l| {
                serde_json::from_value(l.doc.body)
                    .map_err(|e| BackendError::Corrupt(crate::json_error(&e)))
            })
            .collect::<Result<Vec<Endpoint>, _>>()?;
        Ok((endpoints, next))
    }

    /// Deletes the endpoint if its stored version is still `expected`: it expires now and
    /// leaves the index. Deliveries already queued for it are dropped when their turn comes.
    pub async fn delete(
        &self,
        id: &str,
        expected: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        self.docs
            .put(
                &format!("endpoint#{id}"),
                &serde_json::json!({"deleted": true}),
                DocumentWrite::new(Some(expected), now).expiring(now),
            )
            .await
    }

    /// The endpoints that want `event_type`.
    pub async fn matching(
        &self,
        event_type: EventType,
        now: DateTime<Utc>,
    ) -> Result<Vec<Endpoint>, BackendError> {
        Ok(self
            .list(10_000, now)
            .await?
            .into_iter()
            .filter(|e| e.wants(event_type))
            .collect())
    }

    /// One endpoint and its version.
    pub async fn get(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Endpoint, u64)>, BackendError> {
        Self::decode(self.docs.get(&format!("endpoint#{id}"), now).await?)
    }

    /// [`Endpoints::get`] that may miss a change made a moment ago (half the read cost): for
    /// a delivery, which uses whatever the endpoint was a moment ago.
    pub async fn get_eventually(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Endpoint, u64)>, BackendError> {
        Self::decode(
            self.docs
                .get_eventually(&format!("endpoint#{id}"), now)
                .await?,
        )
    }

    fn decode(
        doc: Option<crate::ports::Versioned>,
    ) -> Result<Option<(Endpoint, u64)>, BackendError> {
        match doc {
            Some(d) => {
                let e = serde_json::from_value(d.body)
                    .map_err(|e| BackendError::Corrupt(crate::json_error(&e)))?;
                Ok(Some((e, d.version)))
            }
            None => Ok(None),
        }
    }

    /// Saves `endpoint` if its stored version is still `expected` (`None`: creation).
    pub async fn put(
        &self,
        endpoint: &Endpoint,
        expected: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<bool, BackendError> {
        let body =
            serde_json::to_value(endpoint).map_err(|e| BackendError::Rejected(e.to_string()))?;
        let entry = IndexEntry {
            partition: PARTITION.into(),
            sort: endpoint.id.clone(),
        };
        self.docs
            .put(
                &format!("endpoint#{}", endpoint.id),
                &body,
                DocumentWrite::new(expected, now).indexed(&entry),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryDocumentStore;

    fn endpoint(filters: &[&str]) -> Endpoint {
        let now = Utc::now();
        Endpoint {
            id: "ep_1".into(),
            url: "https://hooks.example.com/wa".into(),
            description: None,
            secrets: vec![SecretEntry {
                secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
                expires_at: None,
            }],
            event_types: filters.iter().map(|s| (*s).to_owned()).collect(),
            batching: true,
            media_wait: true,
            headers: BTreeMap::from([("X-API-Key".to_owned(), "k".to_owned())]),
            enabled: true,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn filters_match_exactly_by_family_or_everything() {
        use EventType as T;
        assert!(endpoint(&[]).wants(T::CallReceived));
        assert!(endpoint(&["*"]).wants(T::ProviderEvent));
        let e = endpoint(&["whatsapp.message.*", "whatsapp.conversation.ended"]);
        assert!(e.wants(T::MessageReceived) && e.wants(T::MessageRead));
        assert!(e.wants(T::ConversationEnded));
        assert!(!e.wants(T::ConversationCreated));
        assert!(!e.wants(T::ContactCreated));
        assert!(
            !endpoint(&["whatsapp.mess*"]).wants(T::MessageRead),
            "wildcards cover whole segments"
        );
        let mut off = endpoint(&[]);
        off.enabled = false;
        assert!(!off.wants(T::MessageReceived));
    }

    #[test]
    fn validation_refuses_bad_urls_filters_headers_and_secrets() {
        assert_eq!(
            endpoint(&["whatsapp.message.*"]).validate(NetworkPolicy::PublicOnly),
            Ok(())
        );
        let mut e = endpoint(&["whatsapp.nothing.*"]);
        assert_eq!(
            e.validate(NetworkPolicy::PublicOnly),
            Err(EndpointError::Filter("whatsapp.nothing.*".into()))
        );
        e = endpoint(&[]);
        e.url = "http://10.0.0.1/x".into();
        assert!(matches!(
            e.validate(NetworkPolicy::PublicOnly),
            Err(EndpointError::Url(_))
        ));
        e = endpoint(&[]);
        e.headers
            .insert("X-Webhook-Signature".into(), "forged".into());
        assert!(matches!(
            e.validate(NetworkPolicy::PublicOnly),
            Err(EndpointError::Header(_))
        ));
        e = endpoint(&[]);
        e.headers.insert("Bad Header".into(), "x".into());
        assert!(matches!(
            e.validate(NetworkPolicy::PublicOnly),
            Err(EndpointError::Header(_))
        ));
        e = endpoint(&[]);
        e.secrets[0].secret = "plain".into();
        assert_eq!(
            e.validate(NetworkPolicy::PublicOnly),
            Err(EndpointError::Secret)
        );
    }

    #[test]
    fn rotated_secrets_sign_until_their_grace_period_ends() {
        let now = Utc::now();
        let mut e = endpoint(&[]);
        e.secrets.push(SecretEntry {
            secret: EndpointSecret::from_key(&[9; 32])
                .unwrap()
                .expose()
                .to_owned(),
            expires_at: Some(now + chrono::Duration::hours(24)),
        });
        assert_eq!(e.active_secrets(now).len(), 2);
        assert_eq!(e.active_secrets(now + chrono::Duration::hours(25)).len(), 1);
        assert!(
            !format!("{e:?}").contains("whsec_"),
            "secrets are redacted in Debug"
        );
    }

    #[tokio::test]
    async fn endpoints_are_stored_listed_and_matched() {
        let store = Endpoints {
            docs: Arc::new(MemoryDocumentStore::new()),
        };
        let now = Utc::now();
        let mut a = endpoint(&["whatsapp.message.*"]);
        let mut b = endpoint(&["whatsapp.conversation.*"]);
        a.id = "ep_a".into();
        b.id = "ep_b".into();
        assert!(store.put(&a, None, now).await.unwrap());
        assert!(store.put(&b, None, now).await.unwrap());
        assert!(!store.put(&b, None, now).await.unwrap(), "ids are unique");
        assert_eq!(store.list(10, now).await.unwrap().len(), 2);
        let matching = store
            .matching(EventType::MessageReceived, now)
            .await
            .unwrap();
        assert_eq!(
            matching.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            vec!["ep_a"]
        );
        let (got, version) = store.get("ep_b", now).await.unwrap().unwrap();
        assert_eq!((got, version), (b, 1));
    }
}
