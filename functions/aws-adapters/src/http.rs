//! [`HttpSender`] (webhook deliveries) and [`ProviderApi`] (calls to Meta's Graph API and WAHA)
//! over reqwest (rustls), with the SSRF guard in the DNS resolver: every address a hostname
//! resolves to is checked at connect time, so a name that points (or is re-pointed) at a private
//! or metadata address is refused, not just literal IPs at save time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shared::delivery::deliver::{HttpError, HttpRequest, HttpResponse, HttpSender};
use shared::delivery::ssrf::{
    NetworkPolicy, address_allowed, check_url, is_public, literal_address,
};
use shared::send::api::{ApiAnswer, ApiCall, ApiMethod, CallError, MAX_ANSWER_BYTES, ProviderApi};

/// Which resolved addresses a client may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddressRule {
    /// The network policy's (public only, or public and loopback in local mode).
    Policy(NetworkPolicy),
    /// A server inside the operator's network: public, private (RFC 1918, CGNAT, unique local)
    /// and loopback addresses; never link-local (cloud metadata), multicast or unspecified.
    PrivateNetwork,
}

/// Whether `ip` is a private-network address a [`AddressRule::PrivateNetwork`] client may reach.
fn private_network_address(ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    match (v4, ip) {
        (Some(v4), _) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || v4.is_loopback() || (a == 100 && (64..=127).contains(&b))
        }
        (None, IpAddr::V6(v6)) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        (None, IpAddr::V4(_)) => false,
    }
}

impl AddressRule {
    fn allows(self, ip: IpAddr) -> bool {
        match self {
            Self::Policy(policy) => address_allowed(ip, policy).is_ok(),
            Self::PrivateNetwork => is_public(ip) || private_network_address(ip),
        }
    }
}

/// Resolves with the system resolver and drops addresses the rule refuses; fails when none is
/// left.
#[derive(Debug, Clone, Copy)]
struct GuardedResolver {
    rule: AddressRule,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rule = self.rule;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| rule.allows(a.ip()))
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

/// The client builder every outbound call starts from: no redirects (a 3xx is the server's
/// answer, and following it could leave the allowed network), no proxy from the environment (it
/// would connect on the server's behalf, past the checks), connection pooling, SSRF-checked
/// resolution under `rule`.
fn guarded_client(rule: AddressRule) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { rule }))
        .user_agent(shared::delivery::request::user_agent())
}

impl ReqwestSender {
    /// A client for `policy` (see [`guarded_client`]).
    pub fn new(policy: NetworkPolicy) -> Result<Self, reqwest::Error> {
        let client = guarded_client(AddressRule::Policy(policy)).build()?;
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

/// Calls to providers' APIs (Meta's Graph API, WAHA) with reqwest.
///
/// Provider URLs are operator configuration (`WAGATE_SOURCES`), not input from API callers, but
/// they get the same guard as webhook endpoints: the deployment's [`NetworkPolicy`] (public
/// https addresses only on AWS; loopback too in local mode), so a mistyped or re-pointed host
/// cannot reach the cloud metadata service or the VPC. A WAHA server inside the operator's
/// network is reachable only when its source says so (`allow_private_network`): those calls use
/// a second client that also allows private and loopback addresses and plain http, and still
/// refuses link-local ones.
#[derive(Debug, Clone)]
pub struct ReqwestProviderApi {
    public: reqwest::Client,
    private: reqwest::Client,
    policy: NetworkPolicy,
}

/// How long establishing a connection may take: an attempt that never connected is certainly
/// not sent, so it is retried; one that times out later may have been.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

impl ReqwestProviderApi {
    /// Clients for `policy` and for sources that allow their private network.
    pub fn new(policy: NetworkPolicy) -> Result<Self, reqwest::Error> {
        let build = |rule| {
            guarded_client(rule)
                .connect_timeout(CONNECT_TIMEOUT)
                .build()
        };
        Ok(Self {
            public: build(AddressRule::Policy(policy))?,
            private: build(AddressRule::PrivateNetwork)?,
            policy,
        })
    }

    /// The client for `call`, once its URL passed the matching checks.
    fn client_for(&self, call: &ApiCall<'_>) -> Result<&reqwest::Client, CallError> {
        if call.private_network {
            let url = reqwest::Url::parse(call.url)
                .map_err(|_| CallError::Refused("not a valid URL".into()))?;
            if !matches!(url.scheme(), "http" | "https")
                || !url.username().is_empty()
                || url.password().is_some()
            {
                return Err(CallError::Refused(
                    "provider URLs must be http(s) without credentials".into(),
                ));
            }
            if let Some(ip) = literal_address(call.url)
                && !AddressRule::PrivateNetwork.allows(ip)
            {
                return Err(CallError::Refused(format!(
                    "address {ip} is link-local or reserved"
                )));
            }
            Ok(&self.private)
        } else {
            check_url(call.url, self.policy).map_err(|e| CallError::Refused(e.to_string()))?;
            Ok(&self.public)
        }
    }
}

#[async_trait]
impl ProviderApi for ReqwestProviderApi {
    async fn call(&self, call: ApiCall<'_>) -> Result<ApiAnswer, CallError> {
        let client = self.client_for(&call)?;
        let method = match call.method {
            ApiMethod::Post => reqwest::Method::POST,
            ApiMethod::Put => reqwest::Method::PUT,
            ApiMethod::Get => reqwest::Method::GET,
        };
        let mut builder = client
            .request(method, call.url)
            .timeout(call.timeout)
            .body(call.body.to_vec());
        for (name, value) in call.headers {
            builder = builder.header(name, value);
        }
        let mut response = builder.send().await.map_err(|e| call_error(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        let mut truncated = false;
        // The status is in, but the answer is not complete: a failure now may follow an
        // accepted send, so it counts as lost (never as not sent).
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(CallError::Timeout),
                Err(e) => return Err(CallError::Interrupted(describe(&e))),
            }
        }
        Ok(ApiAnswer {
            status,
            retry_after,
            body,
            truncated,
        })
    }
}

/// What a failed request means for a send: refused or never connected (not sent), else timed
/// out or interrupted (maybe sent).
fn call_error(err: &reqwest::Error) -> CallError {
    let text = describe(err);
    if err.is_builder() || text.contains("blocked address") {
        CallError::Refused(text)
    } else if err.is_connect() {
        CallError::Connect(text)
    } else if err.is_timeout() {
        CallError::Timeout
    } else {
        CallError::Interrupted(text)
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

    /// A server that answers every request with `response` (raw HTTP) after reading it whole,
    /// or never answers when `response` is `None`; counts requests.
    async fn http_server(response: Option<Vec<u8>>) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = l.accept().await {
                let response = response.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match response {
                        Some(bytes) => {
                            let _ = socket.write_all(&bytes).await;
                        }
                        // Keep the connection open, answer nothing.
                        None => std::future::pending::<()>().await,
                    }
                });
            }
        });
        (port, hits)
    }

    fn answer(status: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn api_call<'a>(url: &'a str, private_network: bool, timeout: Duration) -> ApiCall<'a> {
        ApiCall {
            method: ApiMethod::Post,
            url,
            headers: &[],
            body: b"{}",
            timeout,
            private_network,
        }
    }

    #[tokio::test]
    async fn private_addresses_need_the_source_s_permission_and_metadata_is_never_reached() {
        let (port, hits) = http_server(Some(answer("200 OK", b"{}"))).await;
        let api = ReqwestProviderApi::new(NetworkPolicy::PublicOnly).unwrap();
        let url = format!("http://127.0.0.1:{port}/api/sendText");
        let refused = api
            .call(api_call(&url, false, Duration::from_secs(2)))
            .await;
        assert!(matches!(refused, Err(CallError::Refused(_))), "{refused:?}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        let allowed = api
            .call(api_call(&url, true, Duration::from_secs(2)))
            .await
            .unwrap();
        assert_eq!(allowed.status, 200);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        for metadata in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]:80/x",
            "http://0.0.0.0:1/",
        ] {
            let r = api
                .call(api_call(metadata, true, Duration::from_secs(2)))
                .await;
            assert!(matches!(r, Err(CallError::Refused(_))), "{metadata}: {r:?}");
        }
        assert!(private_network_address("10.1.2.3".parse().unwrap()));
        assert!(private_network_address(
            "::ffff:192.168.1.1".parse().unwrap()
        ));
        assert!(private_network_address("fd00::1".parse().unwrap()));
        assert!(!private_network_address("169.254.169.254".parse().unwrap()));
    }

    #[tokio::test]
    async fn answers_are_read_up_to_the_bound() {
        let big = vec![b'x'; MAX_ANSWER_BYTES + 10];
        let (port, _) = http_server(Some(answer("200 OK", &big))).await;
        let api = ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap();
        let url = format!("http://127.0.0.1:{port}/x");
        let a = api
            .call(api_call(&url, false, Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(a.body.len(), MAX_ANSWER_BYTES);
        assert!(a.truncated);
    }

    #[tokio::test]
    async fn no_connection_is_not_sent_and_no_answer_is_a_timeout() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = l.local_addr().unwrap().port();
        drop(l);
        let api = ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap();
        let url = format!("http://127.0.0.1:{closed}/x");
        let r = api
            .call(api_call(&url, false, Duration::from_secs(2)))
            .await;
        assert!(matches!(&r, Err(e) if e.certainly_not_sent()), "{r:?}");
        let (port, hits) = http_server(None).await;
        let url = format!("http://127.0.0.1:{port}/x");
        let r = api
            .call(api_call(&url, false, Duration::from_millis(300)))
            .await;
        assert_eq!(r, Err(CallError::Timeout));
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the request was written"
        );
    }

    /// Collects formatted log lines.
    #[derive(Clone, Default)]
    struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_access_token_and_recipient_never_reach_the_logs() {
        use shared::send::{SendMessage, Sender};
        let token = "EAAG-very-secret-token";
        let graph_error = br#"{"error":{"message":"(#190) Invalid OAuth access token","type":"OAuthException","code":190,"fbtrace_id":"Ax1"}}"#;
        let (port, _) = http_server(Some(answer("401 Unauthorized", graph_error))).await;
        let (silent, _) = http_server(None).await;
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let api = Arc::new(ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap());
        let sender = Sender::with_config(
            api,
            shared::send::SendConfig {
                timeout: Duration::from_millis(300),
                ..shared::send::SendConfig::default()
            },
        );
        let msg: SendMessage = serde_json::from_value(serde_json::json!({
            "source_id": "meta-main", "to": "+15551234567", "type": "text",
            "text": {"body": "private words"}}))
        .unwrap();
        let mut errors = Vec::new();
        for p in [port, silent] {
            let sources = shared::config::parse_sources(&format!(
                r#"[{{"id":"meta-main","provider":"meta","secrets":"s","send":{{"access_token":"{token}","phone_number_id":"1","graph_url":"http://127.0.0.1:{p}"}}}}]"#
            ))
            .unwrap();
            errors.push(sender.send(&sources[0], &msg, None).await.unwrap_err());
        }
        assert_eq!(errors[0].code(), "provider_auth_failed");
        assert_eq!(errors[1].code(), "send_outcome_unknown");
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("provider refused a call"), "{text}");
        for e in &errors {
            let shown = format!("{e} {e:?} {}", e.message());
            assert!(
                !shown.contains(token) && !shown.contains("15551234567"),
                "{shown}"
            );
        }
        for leak in [token, "15551234567", "private words"] {
            assert!(!text.contains(leak), "{leak} logged: {text}");
        }
    }
}
