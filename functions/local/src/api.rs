//! A client of the management API (`/v1`) of any gateway, local or deployed: what the `wagate`
//! commands `endpoints`, `deliveries`, `dlq`, `conversations` and `audit` use.
//!
//! Every write carries an `Idempotency-Key` made once per command, so when an answer is lost
//! (a refused connection, a timeout, a 5xx or 429) the request is sent again with the same key and
//! the gateway answers it as it answered the first: a command applies once however often it is
//! tried. Reads and the idempotent writes (`PUT`, `PATCH` with the same fields) are tried again
//! the same way; `DELETE` is not (a second try would answer 404 for a deletion that happened).

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

/// How often a request is tried, and the pause before the second try (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// The fields of an endpoint that `PATCH /v1/endpoints/{id}` takes: what `apply` keeps of an
/// endpoint as `get` printed it (id, secrets state and times are the server's).
pub const ENDPOINT_FIELDS: [&str; 6] = [
    "url",
    "event_types",
    "batching",
    "headers",
    "description",
    "enabled",
];

/// The management API of one gateway.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// An error answer of the API: its status and body (`{"error": {"code", "message", …}}`).
#[derive(Debug)]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: StatusCode,
    /// The answer's body.
    pub body: Value,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let error = &self.body["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => {
                write!(f, "{} {code}: {message}", self.status.as_u16())
            }
            _ => write!(f, "{}: {}", self.status, self.body),
        }
    }
}

impl std::error::Error for ApiFailure {}

impl ApiClient {
    /// A client of the gateway at `base` (e.g. `http://127.0.0.1:3000` or the stack's
    /// `ApiUrl`), authenticating with `key`.
    pub fn new(base: &str, key: &str) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(base).with_context(|| format!("--url {base}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--url must be http:// or https://");
        }
        let http = aws_adapters::http::client_builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            http,
        })
    }

    /// `method path?query` with an optional JSON body; the answer's JSON (`null` for 204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut url = url::Url::parse(&format!("{}{path}", self.base))?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let idempotency = (method == Method::POST).then(|| ulid::Ulid::new().to_string());
        let retried = method != Method::DELETE;
        let body = body.map(serde_json::to_vec).transpose()?;
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1;
        loop {
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header("X-API-Key", &self.key)
                .header("Accept", "application/json");
            if let Some(key) = &idempotency {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(bytes) = &body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(bytes.clone());
            }
            let outcome = request.send().await;
            let again = retried && attempt < ATTEMPTS;
            match outcome {
                Err(e) if again && (e.is_connect() || e.is_timeout() || e.is_request()) => {}
                Err(e) => return Err(e).with_context(|| format!("{method} {path}")),
                Ok(answer) => {
                    let status = answer.status();
                    let transient =
                        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if !(transient && again) {
                        let bytes = answer.bytes().await?;
                        let value: Value = if bytes.is_empty() {
                            Value::Null
                        } else {
                            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                                Value::String(String::from_utf8_lossy(&bytes).into_owned())
                            })
                        };
                        if status.is_success() {
                            return Ok(value);
                        }
                        return Err(ApiFailure {
                            status,
                            body: value,
                        }
                        .into());
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
            attempt += 1;
        }
    }

    /// `GET path` with `query`; with `all`, every page (following `next_cursor`) in one `data`.
    pub async fn list(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
        all: bool,
    ) -> anyhow::Result<Value> {
        let mut page = self.call(Method::GET, path, &query, None).await?;
        if !all {
            return Ok(page);
        }
        let mut data = Vec::new();
        loop {
            if let Some(items) = page["data"].as_array_mut() {
                data.append(items);
            }
            let Some(next) = page["next_cursor"].as_str().map(str::to_owned) else {
                break;
            };
            query.retain(|(k, _)| *k != "cursor");
            query.push(("cursor", next));
            page = self.call(Method::GET, path, &query, None).await?;
        }
        Ok(serde_json::json!({ "data": data, "next_cursor": null }))
    }

    /// Creates or updates each endpoint of `spec` (one object or a list): one with an `id` is
    /// updated with the fields `PATCH` takes (so an endpoint as `get` printed it, custom header
    /// values masked as `********`, goes back unchanged: the gateway keeps a masked value as it
    /// is), one without is created. The answers, in order.
    pub async fn apply_endpoints(&self, spec: &Value) -> anyhow::Result<Vec<Value>> {
        let items: Vec<&Value> = match spec {
            Value::Array(items) => items.iter().collect(),
            one @ Value::Object(_) => vec![one],
            _ => bail!("the file must hold an endpoint object or a list of them"),
        };
        let mut answers = Vec::with_capacity(items.len());
        for item in items {
            let Some(fields) = item.as_object() else {
                bail!("every endpoint must be an object");
            };
            let answer = match fields.get("id").and_then(Value::as_str) {
                Some(id) => {
                    let patch: Map<String, Value> = fields
                        .iter()
                        .filter(|(k, _)| ENDPOINT_FIELDS.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    self.call(
                        Method::PATCH,
                        &format!("/v1/endpoints/{}", segment(id)?),
                        &[],
                        Some(&Value::Object(patch)),
                    )
                    .await?
                }
                None => {
                    let mut create = fields.clone();
                    let enabled = create.remove("enabled");
                    let created = self
                        .call(
                            Method::POST,
                            "/v1/endpoints",
                            &[],
                            Some(&Value::Object(create)),
                        )
                        .await?;
                    if enabled == Some(Value::Bool(false)) {
                        let id = created["id"].as_str().unwrap_or_default();
                        self.call(
                            Method::POST,
                            &format!("/v1/endpoints/{}/disable", segment(id)?),
                            &[],
                            None,
                        )
                        .await?;
                    }
                    created
                }
            };
            answers.push(answer);
        }
        Ok(answers)
    }
}

/// An id as one path segment: refused when it could change the path (`/`, `?`, `#`, `%`, `..`).
pub fn segment(id: &str) -> anyhow::Result<&str> {
    if id.is_empty()
        || id == "."
        || id == ".."
        || id
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '%') || c.is_whitespace() || c.is_control())
    {
        bail!("{id:?} is not an id");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_that_would_change_the_path_is_refused() {
        assert!(segment("ep_01JBCQ3ZX0V9K8N7M6P5Q4R301").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a#b", "%2e%2e", "a b"] {
            assert!(segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_failure_reads_as_the_apis_error() {
        let failure = ApiFailure {
            status: StatusCode::CONFLICT,
            body: serde_json::json!({"error": {"code": "conflict", "message": "busy"}}),
        };
        assert_eq!(failure.to_string(), "409 conflict: busy");
    }
}
