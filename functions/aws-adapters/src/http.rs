//! [`HttpSender`] (webhook deliveries) and [`ProviderApi`] (calls to Meta's Graph API and WAHA)
//! over reqwest (rustls), with the SSRF guard in the DNS resolver: every address a hostname
//! resolves to is checked at connect time, so a name that points (or is re-pointed) at a private
//! or metadata address is refused, not just literal IPs at save time.
//!
//! Owns: the outbound clients, their address rules, provider file downloads (streamed, with
//! redirects followed by hand so every hop is checked and credentials stay with their origin)
//! and what a failed request means ([`CallError`]). Must not: retry, read more of an answer than
//! [`MAX_ANSWER_BYTES`] (downloads are streamed to the caller, never buffered), or put header
//! values or URL queries in errors and logs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use shared::delivery::deliver::{HttpError, HttpRequest, HttpResponse, HttpSender};
use shared::delivery::ssrf::{
    NetworkPolicy, address_allowed, check_url, host_address, is_public, literal_address,
};
use shared::ports::media::ByteStream;
use shared::send::api::{
    ApiAnswer, ApiCall, ApiMethod, CallError, Download, DownloadAnswer, MAX_ANSWER_BYTES,
    ProviderApi,
};

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

/// A reqwest client builder with TLS ready: every client in the workspace starts here (clippy's
/// `disallowed-methods` refuses `reqwest::Client::new`/`builder` and `reqwest::get` elsewhere).
///
/// reqwest is built without a crypto provider of its own (`rustls-no-provider`), so this
/// installs one as the process default the first time it is called: aws-lc with the `sdk`
/// feature (the Lambdas, `--features aws`: the AWS SDK compiles it anyway, and it is what they
/// used before), ring without it (local mode's default build, where aws-lc's C sources were the
/// longest unit of a cold build). Installing cannot fail in a way that matters: when another
/// provider is already the default, that one is used.
#[allow(clippy::disallowed_methods)]
pub fn client_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        #[cfg(feature = "sdk")]
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        #[cfg(not(feature = "sdk"))]
        let provider = rustls::crypto::ring::default_provider();
        // Err only when a default is already installed, which is as good.
        let _ = provider.install_default();
    });
    reqwest::Client::builder()
}

/// A client with reqwest's defaults (as `reqwest::Client::new`, which this replaces): for the
/// tools and tests that talk to servers they chose, not for calls to subscriber or provider URLs
/// (those go through the SSRF-checked [`ReqwestSender`] and [`ReqwestProviderApi`]).
///
/// # Panics
/// When the TLS backend cannot be set up, as `reqwest::Client::new` does.
pub fn client() -> reqwest::Client {
    #[allow(clippy::expect_used)]
    client_builder()
        .build()
        .expect("the HTTP client's TLS backend could not be set up")
}

/// The client builder every outbound call starts from: no redirects (a 3xx is the server's
/// answer, and following it could leave the allowed network), no proxy from the environment (it
/// would connect on the server's behalf, past the checks), connection pooling, SSRF-checked
/// resolution under `rule`.
fn guarded_client(rule: AddressRule) -> reqwest::ClientBuilder {
    client_builder()
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
        // Parsed once, for the check and for the request (a URL that does not parse goes to
        // reqwest as text, which refuses it with its own error).
        let parsed = reqwest::Url::parse(request.url).ok();
        if let Some(ip) = parsed.as_ref().and_then(host_address)
            && let Err(e) = address_allowed(ip, self.policy)
        {
            return Err(HttpError::Network(format!("refused: {e}")));
        }
        let builder = match parsed {
            Some(url) => self.client.post(url),
            None => self.client.post(request.url),
        };
        let mut builder = builder.timeout(request.timeout).body(request.body.to_vec());
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
///
/// Downloads follow redirects themselves (the clients follow none): each hop's URL passes the
/// same checks as the first, and the caller's headers go only to the first URL's origin.
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
        self.client_for_url(call.url, call.private_network)
    }

    /// The client for a request to `url`, once it passed the checks for a source that may
    /// (`private_network`) or may not reach its private network. Every hop of a download
    /// passes here too.
    fn client_for_url(
        &self,
        url: &str,
        private_network: bool,
    ) -> Result<&reqwest::Client, CallError> {
        if private_network {
            let parsed = reqwest::Url::parse(url)
                .map_err(|_| CallError::Refused("not a valid URL".into()))?;
            if !matches!(parsed.scheme(), "http" | "https")
                || !parsed.username().is_empty()
                || parsed.password().is_some()
            {
                return Err(CallError::Refused(
                    "provider URLs must be http(s) without credentials".into(),
                ));
            }
            if let Some(ip) = literal_address(url)
                && !AddressRule::PrivateNetwork.allows(ip)
            {
                return Err(CallError::Refused(format!(
                    "address {ip} is link-local or reserved"
                )));
            }
            Ok(&self.private)
        } else {
            check_url(url, self.policy).map_err(|e| CallError::Refused(e.to_string()))?;
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

    async fn download(&self, download: Download<'_>) -> Result<DownloadAnswer, CallError> {
        let started = tokio::time::Instant::now();
        // The headers must come within `timeout` and the whole body within `body_timeout`,
        // both from the start, across every hop.
        let body_deadline = started + download.body_timeout;
        let headers_deadline = (started + download.timeout).min(body_deadline);
        let first = reqwest::Url::parse(download.url)
            .map_err(|_| CallError::Refused("not a valid URL".into()))?;
        let mut url = first.clone();
        let mut same_origin = true;
        let mut hops: u8 = 0;
        let response = loop {
            let client = self.client_for_url(url.as_str(), download.private_network)?;
            // Credentials go to the origin they were given for: once a hop leaves it, they stay
            // behind (a later hop back could be steered by the other host).
            same_origin = same_origin && url.origin() == first.origin();
            let mut builder = client.get(url.clone());
            if same_origin {
                for (name, value) in download.headers {
                    builder = builder.header(name, value);
                }
            }
            let response = tokio::time::timeout_at(headers_deadline, builder.send())
                .await
                .map_err(|_| CallError::Timeout)?
                .map_err(|e| call_error(&e))?;
            let Some(next) = redirect_target(&response, &url)? else {
                break response;
            };
            if hops >= download.max_redirects {
                return Err(CallError::Refused(format!(
                    "too many redirects (at most {} allowed)",
                    download.max_redirects
                )));
            }
            hops += 1;
            url = next;
        };
        let headers = response.headers();
        let text = |name: reqwest::header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        let content_type = text(reqwest::header::CONTENT_TYPE);
        let content_length =
            text(reqwest::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
        let retry_after = text(reqwest::header::RETRY_AFTER);
        Ok(DownloadAnswer {
            status,
            content_type,
            content_length,
            retry_after,
            body: body_stream(response, body_deadline),
        })
    }
}

/// Where a redirect answer points, resolved against `current`; `None` when `response` is not
/// a redirect (or is one without a `Location`, which is then the answer).
fn redirect_target(
    response: &reqwest::Response,
    current: &reqwest::Url,
) -> Result<Option<reqwest::Url>, CallError> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = response.headers().get(reqwest::header::LOCATION) else {
        return Ok(None);
    };
    // The location is not shown: its query may carry a token.
    let location = location
        .to_str()
        .map_err(|_| CallError::Refused("a redirect's Location is not valid text".into()))?;
    current
        .join(location)
        .map(Some)
        .map_err(|_| CallError::Refused("a redirect's Location is not a valid URL".into()))
}

/// The body of `response` chunk by chunk, as reqwest reads it; an error of kind `TimedOut`
/// once `deadline` passes, `ConnectionAborted` when the connection breaks off.
fn body_stream(response: reqwest::Response, deadline: tokio::time::Instant) -> ByteStream {
    let chunks = futures::stream::unfold(Some(response), move |state| async move {
        let mut response = state?;
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => Some((Ok(chunk), Some(response))),
            Ok(Ok(None)) => None,
            Ok(Err(e)) if e.is_timeout() => Some((Err(body_timed_out()), None)),
            Ok(Err(e)) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    describe(&e),
                )),
                None,
            )),
            Err(_) => Some((Err(body_timed_out()), None)),
        }
    });
    Box::pin(chunks)
}

fn body_timed_out() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the body did not arrive in full within the body timeout",
    )
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

    /// What a scripted server does with one request.
    enum Reply {
        /// Writes these bytes, then closes.
        Bytes(Vec<u8>),
        /// Writes `head`, then each chunk in its own write; then stalls (keeps the connection
        /// open and writes nothing) or closes.
        Stream {
            head: Vec<u8>,
            chunks: Vec<Vec<u8>>,
            stall: bool,
        },
        /// Never answers.
        Silent,
    }

    /// The request heads a scripted server received, in order.
    type Heads = Arc<std::sync::Mutex<Vec<String>>>;

    /// A server that answers each request with `reply(request head)` and records the heads.
    async fn scripted_server(
        reply: impl Fn(&str) -> Reply + Send + Sync + 'static,
    ) -> (u16, Heads) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let heads: Heads = Arc::default();
        let recorded = heads.clone();
        let reply = Arc::new(reply);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = l.accept().await {
                let reply = reply.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    let head = String::from_utf8_lossy(&request).into_owned();
                    recorded.lock().unwrap().push(head.clone());
                    match reply(&head) {
                        Reply::Bytes(bytes) => {
                            let _ = socket.write_all(&bytes).await;
                        }
                        Reply::Stream {
                            head,
                            chunks,
                            stall,
                        } => {
                            let _ = socket.write_all(&head).await;
                            for chunk in chunks {
                                if socket.write_all(&chunk).await.is_err() {
                                    return;
                                }
                                let _ = socket.flush().await;
                                tokio::task::yield_now().await;
                            }
                            if stall {
                                std::future::pending::<()>().await;
                            }
                        }
                        Reply::Silent => std::future::pending::<()>().await,
                    }
                });
            }
        });
        (port, heads)
    }

    /// The path of a request head.
    fn path_of(head: &str) -> &str {
        head.split(' ').nth(1).unwrap_or_default()
    }

    fn redirect(status: &str, location: &str) -> Reply {
        Reply::Bytes(
            format!(
                "HTTP/1.1 {status}\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .into_bytes(),
        )
    }

    fn file_head(length: usize, content_type: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
        )
        .into_bytes()
    }

    fn get<'a>(
        url: &'a str,
        headers: &'a [(String, String)],
        private_network: bool,
    ) -> Download<'a> {
        Download {
            url,
            headers,
            timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            private_network,
            max_redirects: 5,
        }
    }

    /// The whole body, chunk count and bytes, or the first error.
    async fn read_all(mut body: ByteStream) -> Result<(usize, Vec<u8>), std::io::Error> {
        use futures::StreamExt as _;
        let mut chunks = 0;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            chunks += 1;
            bytes.extend_from_slice(&chunk);
        }
        Ok((chunks, bytes))
    }

    fn credentials() -> Vec<(String, String)> {
        vec![
            (
                "Authorization".to_owned(),
                "Bearer EAAG-download-secret".to_owned(),
            ),
            ("X-Api-Key".to_owned(), "waha-download-secret".to_owned()),
        ]
    }

    #[tokio::test]
    async fn a_download_streams_a_large_body_in_chunks_intact() {
        let file: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let served = file.clone();
        let (port, heads) = scripted_server(move |_| Reply::Stream {
            head: file_head(served.len(), "image/jpeg"),
            chunks: served.chunks(64 * 1024).map(<[u8]>::to_vec).collect(),
            stall: false,
        })
        .await;
        let api = ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap();
        let url = format!("http://127.0.0.1:{port}/whatsapp_business/attachments/?mid=1&hash=h");
        let headers = credentials();
        let answer = api.download(get(&url, &headers, false)).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(answer.content_length, Some(file.len() as u64));
        assert_eq!(answer.retry_after, None);
        let (chunks, bytes) = read_all(answer.body).await.unwrap();
        assert!(chunks > 1, "the body came as {chunks} chunk(s)");
        assert!(bytes == file, "the body differs");
        let heads = heads.lock().unwrap();
        assert!(heads[0].starts_with("GET /whatsapp_business/attachments/?mid=1&hash=h "));
        assert!(heads[0].contains("Bearer EAAG-download-secret"));
    }

    #[tokio::test]
    async fn redirects_keep_headers_on_the_same_origin_and_drop_them_across_origins() {
        let (a_port_tx, a_port_rx) = tokio::sync::watch::channel(0u16);
        // B: another port, so another origin; it sends the client back to A.
        let (b_port, b_heads) = scripted_server(move |head| match path_of(head) {
            "/file?sig=abc" => redirect(
                "302 Found",
                &format!("http://127.0.0.1:{}/final", *a_port_rx.borrow()),
            ),
            _ => Reply::Bytes(answer("404 Not Found", b"{}")),
        })
        .await;
        let (a_port, a_heads) = scripted_server(move |head| match path_of(head) {
            "/start" => redirect("301 Moved Permanently", "same?x=1"),
            "/same?x=1" => redirect(
                "307 Temporary Redirect",
                &format!("http://127.0.0.1:{b_port}/file?sig=abc"),
            ),
            "/final" => Reply::Bytes(
                file_head(5, "text/plain")
                    .into_iter()
                    .chain(*b"hello")
                    .collect(),
            ),
            _ => Reply::Bytes(answer("404 Not Found", b"{}")),
        })
        .await;
        a_port_tx.send(a_port).unwrap();
        let api = ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap();
        let headers = credentials();
        let url = format!("http://127.0.0.1:{a_port}/start");
        let answer = api.download(get(&url, &headers, false)).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(read_all(answer.body).await.unwrap().1, b"hello");
        let a_heads = a_heads.lock().unwrap().clone();
        let b_heads = b_heads.lock().unwrap().clone();
        let paths: Vec<&str> = a_heads.iter().map(|h| path_of(h)).collect();
        assert_eq!(paths, ["/start", "/same?x=1", "/final"]);
        assert_eq!(b_heads.len(), 1);
        for (head, sent) in [
            (&a_heads[0], true),
            (&a_heads[1], true),
            (&b_heads[0], false),
            // Back at the first origin after leaving it: still without credentials.
            (&a_heads[2], false),
        ] {
            let lower = head.to_ascii_lowercase();
            assert_eq!(
                lower.contains("authorization: bearer eaag-download-secret"),
                sent,
                "{head}"
            );
            assert_eq!(
                lower.contains("x-api-key: waha-download-secret"),
                sent,
                "{head}"
            );
        }
    }

    #[tokio::test]
    async fn redirects_to_metadata_private_addresses_or_other_schemes_are_refused() {
        let (port, heads) = scripted_server(|head| match path_of(head) {
            "/metadata" => redirect(
                "302 Found",
                "http://169.254.169.254/latest/meta-data/?token=leak",
            ),
            "/metadata-v6" => redirect("302 Found", "http://[fe80::1]/?token=leak"),
            "/private" => redirect("302 Found", "https://10.1.2.3/x?token=leak"),
            "/file" => redirect("303 See Other", "file:///etc/passwd?token=leak"),
            "/ftp" => redirect("308 Permanent Redirect", "ftp://127.0.0.1/x?token=leak"),
            _ => Reply::Bytes(answer("404 Not Found", b"{}")),
        })
        .await;
        let api = ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap();
        let headers = credentials();
        let mut cases = Vec::new();
        for path in ["/metadata", "/metadata-v6", "/file", "/ftp"] {
            cases.push((path, false));
            cases.push((path, true));
        }
        // A public-only source may not be sent into the private network.
        cases.push(("/private", false));
        for (path, private_network) in cases {
            let url = format!("http://127.0.0.1:{port}{path}");
            let result = api.download(get(&url, &headers, private_network)).await;
            match result {
                Err(CallError::Refused(text)) => {
                    assert!(!text.contains("leak") && !text.contains("secret"), "{text}");
                }
                other => panic!("{path} (private network {private_network}): {other:?}"),
            }
        }
        assert_eq!(
            heads.lock().unwrap().len(),
            9,
            "only the first hops were sent"
        );
    }

    #[tokio::test]
    async fn more_redirects_than_allowed_are_refused() {
        let (port, heads) = scripted_server(|_| redirect("302 Found", "/again")).await;
        let api = ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap();
        let url = format!("http://127.0.0.1:{port}/start");
        for (max_redirects, requests) in [(3u8, 4usize), (0, 1)] {
            heads.lock().unwrap().clear();
            let download = Download {
                max_redirects,
                ..get(&url, &[], false)
            };
            let result = api.download(download).await;
            assert!(
                matches!(&result, Err(CallError::Refused(text)) if text.contains("too many redirects")),
                "{result:?}"
            );
            assert_eq!(heads.lock().unwrap().len(), requests);
        }
    }

    #[tokio::test]
    async fn missing_headers_time_out_and_a_stalled_or_broken_body_ends_in_an_error() {
        let (port, _) = scripted_server(|head| match path_of(head) {
            "/silent" => Reply::Silent,
            "/stall" => Reply::Stream {
                head: file_head(1000, "audio/ogg"),
                chunks: vec![vec![1; 10]],
                stall: true,
            },
            _ => Reply::Stream {
                head: file_head(1000, "audio/ogg"),
                chunks: vec![vec![1; 10]],
                stall: false,
            },
        })
        .await;
        let api = ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap();
        let short = |url| Download {
            timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(600),
            ..get(url, &[], false)
        };
        let url = format!("http://127.0.0.1:{port}/silent");
        let result = api.download(short(&url)).await;
        assert!(matches!(result, Err(CallError::Timeout)), "{result:?}");

        let url = format!("http://127.0.0.1:{port}/stall");
        let answer = api.download(short(&url)).await.unwrap();
        assert_eq!(answer.content_length, Some(1000));
        let e = read_all(answer.body).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");

        let url = format!("http://127.0.0.1:{port}/cut");
        let answer = api.download(get(&url, &[], false)).await.unwrap();
        let e = read_all(answer.body).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted, "{e}");
    }

    #[tokio::test]
    async fn download_answers_errors_and_debug_output_never_show_header_values_or_queries() {
        let (port, _) = scripted_server(|_| {
            Reply::Bytes(
                b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_vec(),
            )
        })
        .await;
        let api = ReqwestProviderApi::new(NetworkPolicy::AllowLoopback).unwrap();
        let headers = credentials();
        let url = format!("http://127.0.0.1:{port}/x?hash=query-secret");
        let download = get(&url, &headers, false);
        let shown = format!("{download:?}");
        assert!(
            shown.contains("Authorization") && shown.contains("/x"),
            "{shown}"
        );
        let answer = api.download(download).await.unwrap();
        assert_eq!(
            (answer.status, answer.retry_after.as_deref()),
            (429, Some("7"))
        );
        let shown = format!("{shown} {answer:?}");
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = l.local_addr().unwrap().port();
        drop(l);
        let url = format!("http://127.0.0.1:{closed}/x?hash=query-secret");
        let e = api.download(get(&url, &headers, false)).await.unwrap_err();
        assert!(e.certainly_not_sent(), "{e:?}");
        let url = "http://169.254.169.254/x?hash=query-secret";
        let refused = api.download(get(url, &headers, true)).await.unwrap_err();
        let shown = format!("{shown} {e} {e:?} {refused} {refused:?}");
        for secret in ["download-secret", "query-secret"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }
}
