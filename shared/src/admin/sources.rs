//! `/v1/sources`: the configured webhook sources as an operator needs to see them (provider, the
//! path to give the provider, whether secrets are set: never the secrets), and
//! `/v1/sources/{id}/diagnose`, ingest's own verdict on a captured request with its cause
//! ([`crate::pipeline::ingest::diagnose`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::http::{Id, JsonBody, Routes};
use super::openapi::{IdempotencyKey, ItemChangeErrors, ItemErrors, ReadErrors};
use super::{Admin, ApiError};
use crate::model::{Provider, Verification};
use crate::pipeline::ingest::diagnose::{CapturedRequest, Diagnosis, diagnose};
use crate::ports::Source;

pub(super) fn routes() -> Routes {
    Routes::default()
        .routes(routes!(list_sources))
        .routes(routes!(get_source))
        .routes(routes!(diagnose_source))
}

/// How a source's webhooks are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationKind {
    /// The provider signs each request with a shared secret (Meta, WAHA, Twilio).
    Signature,
    /// The provider sends back a token (360dialog, Gupshup, Evolution API).
    Token,
}

/// A configured source, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceView {
    /// `{source_id}` of the webhook URL.
    pub id: String,
    /// Who sends to it.
    pub provider: Provider,
    /// How its requests are verified.
    pub verification: VerificationKind,
    /// The path of the webhook URL to give the provider, after the API's base URL.
    pub webhook_path: String,
    /// How many secrets (app secrets, HMAC keys, auth tokens or tokens) are configured; none
    /// means no request verifies.
    pub secrets: usize,
    /// Meta: how many verify tokens the subscription handshake accepts.
    pub verify_tokens: usize,
    /// Twilio: the URL its signatures are checked against, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Token sources: the header read for the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_header: Option<String>,
    /// Token sources: the query parameter read for the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_query: Option<String>,
    /// Whether `POST /v1/messages` can send through it.
    pub sends: bool,
}

impl From<&Source> for SourceView {
    fn from(source: &Source) -> Self {
        let verification = source.provider.verification();
        let token = verification == Verification::Token;
        Self {
            id: source.id.as_str().to_owned(),
            provider: source.provider,
            verification: match verification {
                Verification::Signature => VerificationKind::Signature,
                Verification::Token => VerificationKind::Token,
            },
            webhook_path: format!("/webhooks/{}", source.id.as_str()),
            secrets: source.secrets.len(),
            verify_tokens: source.verify_tokens.len(),
            public_url: source.inbound.public_url.clone(),
            token_header: token.then(|| source.inbound.token_header.clone()),
            token_query: token.then(|| source.inbound.token_query.clone()),
            sends: source.send.is_some(),
        }
    }
}

/// Every source: `{"data": [...]}`, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SourceList {
    /// The sources.
    pub data: Vec<SourceView>,
}

impl Admin {
    fn known_source(&self, id: &str) -> Result<Arc<Source>, ApiError> {
        self.sources
            .as_ref()
            .and_then(|s| s.get(id))
            .ok_or_else(|| ApiError::not_found("source"))
    }
}

/// List the configured webhook sources: provider, webhook path, how many secrets are set.
#[utoipa::path(
    get,
    path = "/v1/sources",
    operation_id = "listSources",
    responses((status = 200, description = "Done.", body = SourceList), ReadErrors)
)]
async fn list_sources(State(admin): State<Arc<Admin>>) -> Json<SourceList> {
    let data = admin
        .sources
        .as_ref()
        .map(|s| s.all().iter().map(|s| SourceView::from(&**s)).collect())
        .unwrap_or_default();
    Json(SourceList { data })
}

/// Show one source (never its secrets).
#[utoipa::path(
    get,
    path = "/v1/sources/{id}",
    operation_id = "getSource",
    params(("id" = String, Path, description = "The source's id")),
    responses((status = 200, description = "Done.", body = SourceView), ItemErrors)
)]
async fn get_source(
    State(admin): State<Arc<Admin>>,
    Id(id): Id,
) -> Result<Json<SourceView>, ApiError> {
    Ok(Json(SourceView::from(&*admin.known_source(&id)?)))
}

/// Diagnose a captured provider request: whether ingest accepts it, and why not: header missing
/// or malformed, wrong secret (and which configured secret matches, if any), a body changed on
/// the way (Meta's `\uXXXX` escapes decoded, JSON re-serialised, line breaks), wrong algorithm,
/// Twilio signing another URL, a token missing or wrong. Nothing is stored or delivered; the
/// answer never holds a secret or the body.
#[utoipa::path(
    post,
    path = "/v1/sources/{id}/diagnose",
    operation_id = "diagnoseSource",
    params(("id" = String, Path, description = "The source the request was sent to"), IdempotencyKey),
    request_body = CapturedRequest,
    responses((status = 200, description = "The verdict.", body = Diagnosis), ItemChangeErrors)
)]
async fn diagnose_source(
    State(admin): State<Arc<Admin>>,
    Id(id): Id,
    JsonBody(captured): JsonBody<CapturedRequest>,
) -> Result<Json<Diagnosis>, ApiError> {
    let source = admin.known_source(&id)?;
    diagnose(&source, &captured)
        .map(Json)
        .map_err(|e| ApiError::invalid("raw", e.0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;
    use serde_json::{Value, json};

    use super::*;
    use crate::admin::AdminConfig;
    use crate::admin::test_support::request;
    use crate::ids::SourceId;
    use crate::ports::memory::{MemoryBlobStore, MemoryDocumentStore, MemoryQueue};
    use crate::ports::{InboundAuth, StaticSources};
    use crate::signature::{Secret, sign_meta};

    const KEY: &str = "admin-key-sources";

    fn admin(sources: Option<Vec<Source>>) -> Admin {
        let admin = Admin::new(
            Arc::new(MemoryDocumentStore::new()),
            Arc::new(MemoryBlobStore::new()),
            Arc::new(MemoryQueue::new("delivery")),
            Arc::new(MemoryQueue::new("delivery-dlq")),
            Duration::from_secs(86400),
            AdminConfig {
                api_keys: vec![Secret::from(KEY.to_owned())],
                ..AdminConfig::default()
            },
        );
        match sources {
            Some(list) => admin.with_sources(Arc::new(StaticSources::new(list))),
            None => admin,
        }
    }

    fn source(id: &str, provider: Provider, secrets: &[&str]) -> Source {
        Source {
            id: SourceId::parse(id).unwrap(),
            provider,
            secrets: secrets.iter().map(|s| Secret::from(*s)).collect(),
            verify_tokens: vec![Secret::from("verify-token")],
            inbound: InboundAuth::default(),
            send: None,
        }
    }

    async fn call(admin: &Admin, method: &str, target: &str, body: Value) -> (u16, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        request(
            admin,
            Utc::now(),
            method,
            target,
            &[("x-api-key", KEY)],
            body,
        )
        .await
    }

    #[tokio::test]
    async fn sources_are_listed_without_their_secrets() {
        let a = admin(Some(vec![
            source("wa-main", Provider::Waha, &["waha-secret-value"]),
            source(
                "meta-main",
                Provider::Meta,
                &["meta-secret-value", "older-value"],
            ),
            source("gs-main", Provider::Gupshup, &[]),
        ]));
        let (status, list) = call(&a, "GET", "/v1/sources", Value::Null).await;
        assert_eq!(status, 200);
        let text = list.to_string();
        for secret in ["waha-secret-value", "meta-secret-value", "verify-token"] {
            assert!(!text.contains(secret), "{text}");
        }
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["gs-main", "meta-main", "wa-main"]);
        assert_eq!(
            list["data"][1],
            json!({"id": "meta-main", "provider": "meta", "verification": "signature",
                   "webhook_path": "/webhooks/meta-main", "secrets": 2, "verify_tokens": 1,
                   "sends": false})
        );
        assert_eq!(list["data"][0]["token_header"], "X-Wagate-Token");
        assert_eq!(list["data"][0]["secrets"], 0);

        let (status, one) = call(&a, "GET", "/v1/sources/wa-main", Value::Null).await;
        assert_eq!((status, one["provider"].as_str()), (200, Some("waha")));
        let (status, _) = call(&a, "GET", "/v1/sources/nope", Value::Null).await;
        assert_eq!(status, 404);
        // Without a registry there are none.
        let (status, list) = call(&admin(None), "GET", "/v1/sources", Value::Null).await;
        assert_eq!((status, list), (200, json!({"data": []})));
    }

    #[tokio::test]
    async fn a_captured_request_is_diagnosed_over_http() {
        let a = admin(Some(vec![source(
            "meta-main",
            Provider::Meta,
            &["app-secret-one"],
        )]));
        let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
        let signature = sign_meta(&Secret::from("app-secret-one"), body.as_bytes());
        let raw = format!(
            "POST /webhooks/meta-main HTTP/1.1\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {signature}\r\n\r\n{body}"
        );
        let target = "/v1/sources/meta-main/diagnose";
        let (status, d) = call(&a, "POST", target, json!({"raw": raw})).await;
        assert_eq!(status, 200, "{d}");
        assert_eq!(d["verdict"], "verified");
        assert_eq!(d["accepted"], true);
        assert_eq!(d["matched_secret"], json!({"index": 0, "of": 1}));

        let forged = sign_meta(&Secret::from("not-the-secret"), body.as_bytes());
        let (status, d) = call(
            &a,
            "POST",
            target,
            json!({"headers": {"X-Hub-Signature-256": forged}, "body": body}),
        )
        .await;
        assert_eq!((status, d["verdict"].as_str()), (200, Some("wrong_secret")));
        assert_eq!(d["accepted"], false);

        let (status, e) = call(&a, "POST", target, json!({"raw": "not a header\n\n{}"})).await;
        assert_eq!(status, 422, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains("line 1"),
            "{e}"
        );
        let (status, _) = call(&a, "POST", "/v1/sources/other/diagnose", json!({})).await;
        assert_eq!(status, 404);
        let (status, _) = request(&a, Utc::now(), "POST", target, &[], "{}".into()).await;
        assert_eq!(status, 401);
    }
}
