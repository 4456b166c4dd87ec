//! [`HttpSender`] over reqwest (rustls), with the SSRF guard in the DNS resolver: every address
//! a hostname resolves to is checked at connect time, so a name that points (or is re-pointed)
//! at a private or metadata address is refused, not just literal IPs at save time.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shared::delivery::deliver::{HttpError, HttpRequest, HttpResponse, HttpSender};
use shared::delivery::ssrf::{NetworkPolicy, address_allowed, literal_address};

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
    policy: NetworkPolicy,
}

impl ReqwestSender {
    /// A client for `policy`: no redirects (a 3xx is the endpoint's answer, and following it
    /// could leave the allowed network), no proxy from the environment (it would connect on
    /// the endpoint's behalf, past the checks), connection pooling, SSRF-checked resolution.
    pub fn new(policy: NetworkPolicy) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .user_agent(shared::delivery::request::user_agent())
            .build()?;
        Ok(Self { client, policy })
    }
}

#[async_trait]
impl HttpSender for ReqwestSender {
    async fn post(&self, request: HttpRequest<'_>) -> Result<HttpResponse, HttpError> {
        // An IP literal is connected to without the resolver: check it here, read as reqwest
        // reads it.
        if let Some(ip) = literal_address(request.url)
            && let Err(e) = address_allowed(ip, self.policy)
        {
            return Err(HttpError::Network(format!("refused: {e}")));
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A listener that counts the connections made to it.
    async fn listener() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((_socket, _)) = l.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        (port.to_string(), hits)
    }

    #[tokio::test]
    async fn numeric_spellings_of_loopback_are_refused_before_connecting() {
        let (port, hits) = listener().await;
        let sender = ReqwestSender::new(NetworkPolicy::PublicOnly).unwrap();
        for host in [
            "127.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.0.0.1",
        ] {
            let url = format!("http://{host}:{port}/hook");
            let answer = sender
                .post(HttpRequest {
                    url: &url,
                    headers: &[],
                    body: b"{}",
                    timeout: Duration::from_secs(2),
                })
                .await;
            match answer {
                Err(HttpError::Network(text)) => assert!(text.starts_with("refused"), "{text}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Local mode allows loopback, however it is spelled.
        let local = ReqwestSender::new(NetworkPolicy::AllowLoopback).unwrap();
        let url = format!("http://127.1:{port}/hook");
        let _ = local
            .post(HttpRequest {
                url: &url,
                headers: &[],
                body: b"{}",
                timeout: Duration::from_millis(300),
            })
            .await;
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
