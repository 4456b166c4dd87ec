//! [`HttpSender`] over reqwest (rustls), with the SSRF guard in the DNS resolver: every address
//! a hostname resolves to is checked at connect time, so a name that points (or is re-pointed)
//! at a private or metadata address is refused, not just literal IPs at save time.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shared::delivery::deliver::{HttpError, HttpRequest, HttpResponse, HttpSender};
use shared::delivery::ssrf::{NetworkPolicy, address_allowed};

/// Resolves with the system resolver and drops addresses the policy refuses; fails when none
/// is left.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    policy: NetworkPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| address_allowed(a.ip(), policy).is_ok())
                .collect();
            if allowed.is_empty() {
                let blocked = resolved
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                let e: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to a blocked address {blocked}").into();
                return Err(e);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Webhook POSTs with reqwest.
#[derive(Debug, Clone)]
pub struct ReqwestSender {
    client: reqwest::Client,
}

impl ReqwestSender {
    /// A client for `policy`: no redirects (a 3xx is the endpoint's answer, and following it
    /// could leave the allowed network), connection pooling, SSRF-checked resolution.
    pub fn new(policy: NetworkPolicy) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .user_agent(shared::delivery::request::user_agent())
            .build()?;
        Ok(Self { client })
    }
}

#[async_trait]
impl HttpSender for ReqwestSender {
    async fn post(&self, request: HttpRequest<'_>) -> Result<HttpResponse, HttpError> {
        let mut builder = self
            .client
            .post(request.url)
            .timeout(request.timeout)
            .body(request.body.to_vec());
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        match builder.send().await {
            Ok(response) => Ok(HttpResponse {
                status: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            }),
            Err(e) if e.is_timeout() => Err(HttpError::Timeout),
            Err(e) => {
                let text = describe(&e);
                if text.contains("blocked address") {
                    Err(HttpError::Network(format!("refused: {text}")))
                } else {
                    Err(HttpError::Network(text))
                }
            }
        }
    }
}

/// The error and its causes on one line (reqwest keeps the useful part in the sources). URLs
/// are stripped of their query, which may carry tokens.
fn describe(err: &reqwest::Error) -> String {
    let mut text = String::from(if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "bad response"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
