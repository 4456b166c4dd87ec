//! The port for provider API calls: one HTTP request to Meta's Graph API or a WAHA server, and
//! its answer with the body (sends need the message id in it).
//!
//! Owns: the call and answer types and what a failed call means for a send. Must not: retry,
//! interpret bodies or log header values (`Debug` prints header names only).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// The most of an answer's body an adapter reads; the rest is dropped (`truncated`).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The HTTP method of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMethod {
    /// `POST`.
    Post,
    /// `PUT` (WAHA reactions).
    Put,
    /// `GET` (Meta's media lookup; the body is empty).
    Get,
}

/// One request to a provider API.
#[derive(Clone, Copy)]
pub struct ApiCall<'a> {
    /// `POST` or `PUT`.
    pub method: ApiMethod,
    /// The full URL (operator-configured base + path).
    pub url: &'a str,
    /// Headers, in order; values may hold credentials.
    pub headers: &'a [(String, String)],
    /// The JSON body.
    pub body: &'a [u8],
    /// Give up after this long (connecting, sending and reading the answer).
    pub timeout: Duration,
    /// The source's settings let this call reach private addresses (a WAHA server inside the
    /// operator's network).
    pub private_network: bool,
}

impl fmt::Debug for ApiCall<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ApiCall")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .field("timeout", &self.timeout)
            .field("private_network", &self.private_network)
            .finish()
    }
}

/// What the provider answered.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiAnswer {
    /// Status code.
    pub status: u16,
    /// `Retry-After`, if sent.
    pub retry_after: Option<String>,
    /// The body, at most [`MAX_ANSWER_BYTES`].
    pub body: Vec<u8>,
    /// The body was longer and was cut.
    pub truncated: bool,
}

impl fmt::Debug for ApiAnswer {
    // The body holds recipients' numbers and ids: only its size is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiAnswer")
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .field("body_bytes", &self.body.len())
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// Why a call has no answer. The variants say whether the provider can have acted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not sent: the address is refused by the network policy, or the request could not be
    /// built. Trying again will not help.
    #[error("refused before sending: {0}")]
    Refused(String),
    /// Not sent: no connection was made (refused, DNS failure, TLS handshake failure).
    #[error("could not connect: {0}")]
    Connect(String),
    /// No complete answer within the timeout: the request may have been acted on.
    #[error("timed out")]
    Timeout,
    /// The connection broke after the request may have been written, or the answer could not
    /// be read: the request may have been acted on.
    #[error("connection lost: {0}")]
    Interrupted(String),
}

impl CallError {
    /// Whether the provider certainly did not receive the request.
    pub fn certainly_not_sent(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::Connect(_))
    }
}

/// A file download from a provider (a Meta media URL, a WAHA file URL).
#[derive(Clone, Copy)]
pub struct Download<'a> {
    /// The full URL.
    pub url: &'a str,
    /// Headers, in order; values may hold credentials. They are sent to `url`'s origin only:
    /// a redirect to another origin drops them.
    pub headers: &'a [(String, String)],
    /// Give up when the answer's headers have not arrived after this long.
    pub timeout: Duration,
    /// Give up when the body has not arrived in full after this long (from the start).
    pub body_timeout: Duration,
    /// The source's settings let this download reach private addresses.
    pub private_network: bool,
    /// Redirects followed at most; each hop passes the same address checks as `url`.
    pub max_redirects: u8,
}

impl fmt::Debug for Download<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        // A media URL's query may carry a token: only the origin and path are shown.
        let shown = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("Download")
            .field("url", &shown)
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .field("body_timeout", &self.body_timeout)
            .field("private_network", &self.private_network)
            .field("max_redirects", &self.max_redirects)
            .finish()
    }
}

/// The answer to a download: status and headers at once, the body as it arrives.
pub struct DownloadAnswer {
    /// Status code of the last hop.
    pub status: u16,
    /// `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// `Content-Length`, if sent.
    pub content_length: Option<u64>,
    /// `Retry-After`, if sent.
    pub retry_after: Option<String>,
    /// The body; it ends in an error of kind `TimedOut` when the body timeout passes.
    pub body: crate::ports::media::ByteStream,
}

impl fmt::Debug for DownloadAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadAnswer")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

/// Makes provider API calls (reqwest in the functions; the network policy is the adapter's).
#[async_trait]
pub trait ProviderApi: Send + Sync + fmt::Debug {
    /// Makes the call and returns the answer, or why there is none.
    async fn call(&self, call: ApiCall<'_>) -> Result<ApiAnswer, CallError>;

    /// Starts a download (`GET`) and returns once the final hop's headers are in.
    async fn download(&self, download: Download<'_>) -> Result<DownloadAnswer, CallError> {
        let _ = download;
        Err(CallError::Refused(
            "this provider API does not download files".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_headers_but_never_their_values() {
        let headers = vec![(
            "Authorization".to_owned(),
            "Bearer EAAG-secret-token".to_owned(),
        )];
        let call = ApiCall {
            method: ApiMethod::Post,
            url: "https://graph.facebook.com/v23.0/1/messages",
            headers: &headers,
            body: br#"{"to":"15551234567"}"#,
            timeout: Duration::from_secs(1),
            private_network: false,
        };
        let text = format!("{call:?}");
        assert!(text.contains("Authorization"), "{text}");
        assert!(!text.contains("EAAG"), "{text}");
        assert!(!text.contains("15551234567"), "{text}");
        let answer = ApiAnswer {
            status: 200,
            retry_after: None,
            body: br#"{"contacts":[{"wa_id":"15551234567"}]}"#.to_vec(),
            truncated: false,
        };
        assert!(!format!("{answer:?}").contains("15551234567"));
    }
}
