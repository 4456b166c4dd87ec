//! Sending WhatsApp messages through a source's provider: Meta's Cloud API or a WAHA server.
//!
//! Owns: the send request model ([`SendMessage`], [`MarkRead`]), per-source send settings
//! ([`SendSettings`]), the port for provider API calls ([`ProviderApi`]), each provider's wire
//! format (`meta`, `waha`), and the [`Sender`] that makes the call with a bounded retry policy.
//! Must not: store anything, record the outbound message (the admin route does, from
//! [`Sent`]), or log bodies, phone numbers, message text or credentials.
//!
//! Retries happen only when the provider certainly did not act: no connection was made, or it
//! answered a rate limit or a documented transient error. A timeout or a connection lost after
//! the request was written may mean the message went out: that is [`SendError::OutcomeUnknown`],
//! never retried here (except for calls that are harmless to repeat: reactions, mark-as-read).

pub mod api;
pub mod error;
pub mod message;
pub mod meta;
pub mod settings;
pub mod waha;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use api::{ApiAnswer, ApiCall, ApiMethod, CallError, MAX_ANSWER_BYTES, ProviderApi};
pub use error::{ProviderFailure, SendError};
pub use message::{InvalidMessage, MarkRead, Recipient, SendMessage, SendType};
pub use settings::{MetaSend, SendSettings, WahaSend};

use crate::clock::Clock;
use crate::delivery::retry::parse_retry_after;
use crate::model::MessageContent;
use crate::ports::Source;

/// A message the provider accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Sent {
    /// The provider's message id (Meta `wamid.…`, WAHA `true_…`); statuses name it. Absent only
    /// when the provider accepted without naming one (WAHA's WEBJS engine for reactions).
    pub message_id: Option<String>,
    /// Who sent it: the Meta phone number id or the WAHA session used.
    pub business_id: String,
    /// The recipient as the provider resolved it.
    pub recipient: SentRecipient,
    /// The provider's word on the message (Meta `message_status`: `accepted`,
    /// `held_for_quality_assessment`, `paused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// What was sent, in wagate's event model.
    #[serde(flatten)]
    pub content: MessageContent,
    /// Calls made (1 unless a retry was needed).
    pub attempts: u32,
}

/// The recipient as the provider resolved it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SentRecipient {
    /// The WhatsApp id (phone number digits), when known (Meta `contacts[0].wa_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// The user id, when sent to one (Meta `contacts[0].user_id`, WAHA `…@lid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The chat id (WAHA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
}

/// Retry and timeout settings of a [`Sender`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendConfig {
    /// Per call: connecting, sending and reading the answer (default 10 s).
    pub timeout: Duration,
    /// Calls in all, the first included (default 3).
    pub max_attempts: u32,
    /// The wait after the first failed call, doubled after each (default 500 ms), with jitter.
    pub base_delay: Duration,
    /// The longest computed wait (default 4 s); a `Retry-After` may ask for more.
    pub max_delay: Duration,
    /// No retry starts later than this after the first call (default 8 s): the whole send then
    /// takes at most about `budget + timeout`, inside an API Gateway request's 29 s.
    pub budget: Duration,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
            budget: Duration::from_secs(8),
        }
    }
}

/// Waits between attempts (tokio's sleep by default; tests record the waits instead).
pub type Pause = Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

/// Sends messages and read receipts through a source's provider.
#[derive(Clone)]
pub struct Sender {
    api: Arc<dyn ProviderApi>,
    config: SendConfig,
    clock: Clock,
    pause: Pause,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("api", &self.api)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One call, ready to make (built by `meta` or `waha`).
#[derive(Clone)]
pub(crate) struct PreparedCall {
    pub(crate) method: ApiMethod,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Repeating the call leaves the same state: a lost answer may be retried.
    pub(crate) idempotent: bool,
    pub(crate) private_network: bool,
}

/// What an answer means.
pub(crate) enum Outcome<T> {
    /// Done; here is what the provider said.
    Done(T),
    /// The provider refused.
    Failed(ProviderFailure),
    /// The provider may have acted, but the answer does not say (2xx without an id, a gateway
    /// timeout).
    Lost(String),
}

/// A successful send's answer, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub(crate) message_id: Option<String>,
    pub(crate) provider_status: Option<String>,
    pub(crate) recipient: SentRecipient,
}

/// A jitter value in `[0, 1)` from fresh randomness.
fn jitter() -> f64 {
    f64::from(ulid::Ulid::new().random() as u32) / (f64::from(u32::MAX) + 1.0)
}

impl Sender {
    /// A sender over `api` with the default [`SendConfig`].
    pub fn new(api: Arc<dyn ProviderApi>) -> Self {
        Self::with_config(api, SendConfig::default())
    }

    /// A sender over `api` with `config`.
    pub fn with_config(api: Arc<dyn ProviderApi>, config: SendConfig) -> Self {
        Self {
            api,
            config,
            clock: Clock::system(),
            pause: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// The same sender reading `Retry-After` dates against `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same sender waiting between attempts with `pause`.
    pub fn with_pause(mut self, pause: Pause) -> Self {
        self.pause = pause;
        self
    }

    /// The settings.
    pub fn config(&self) -> &SendConfig {
        &self.config
    }

    /// Sends `msg` through `source`'s provider. `tag` is carried back on the message's statuses
    /// where the provider supports it (Meta `biz_opaque_callback_data`, at most 512 characters;
    /// WAHA has no such field and ignores it).
    pub async fn send(
        &self,
        source: &Source,
        msg: &SendMessage,
        tag: Option<&str>,
    ) -> Result<Sent, SendError> {
        msg.validate()?;
        let settings = source
            .send
            .as_ref()
            .ok_or_else(|| SendError::NotConfigured {
                source_id: source.id.as_str().to_owned(),
            })?;
        let (delivered, business_id, attempts) = match settings {
            SendSettings::Meta(meta) => {
                let (call, from) = meta::send_call(meta, msg, tag)?;
                let (d, attempts) = self.exchange(&call, meta::read_sent).await?;
                (d, from, attempts)
            }
            SendSettings::Waha(waha) => {
                let (call, session, chat) = waha::send_call(waha, msg)?;
                let named = msg.from.is_some();
                let (d, attempts) = self
                    .exchange(&call, |a, r| waha::read_sent(a, r, &chat, named))
                    .await?;
                (d, session, attempts)
            }
        };
        tracing::info!(
            source_id = %source.id,
            message_type = msg.kind.as_str(),
            attempts,
            has_id = delivered.message_id.is_some(),
            "provider accepted a message"
        );
        Ok(Sent {
            message_id: delivered.message_id,
            business_id,
            recipient: delivered.recipient,
            provider_status: delivered.provider_status,
            content: msg.content(),
            attempts,
        })
    }

    /// Marks an inbound message as read through `source`'s provider, with a typing indicator
    /// when asked (WAHA: a second call, `startTyping`).
    pub async fn mark_read(&self, source: &Source, req: &MarkRead) -> Result<(), SendError> {
        req.validate()?;
        let settings = source
            .send
            .as_ref()
            .ok_or_else(|| SendError::NotConfigured {
                source_id: source.id.as_str().to_owned(),
            })?;
        match settings {
            SendSettings::Meta(meta) => {
                let call = meta::mark_read_call(meta, req)?;
                self.exchange(&call, meta::read_marked).await?;
            }
            SendSettings::Waha(waha) => {
                let named = req.from.is_some();
                for call in waha::mark_read_calls(waha, req)? {
                    self.exchange(&call, |a, r| waha::read_marked(a, r, named))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The wait before attempt `attempt + 1` (`attempt` ≥ 1 calls made): exponential from
    /// `base_delay`, with jitter in [50 %, 100 %], capped at `max_delay`.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let base = self.config.base_delay.saturating_mul(factor);
        base.mul_f64(0.5 + 0.5 * jitter())
            .min(self.config.max_delay)
    }

    /// Makes `call`, retrying while the provider certainly did not act and the budget allows,
    /// and reads the answer with `read`.
    async fn exchange<T>(
        &self,
        call: &PreparedCall,
        read: impl Fn(&ApiAnswer, Option<Duration>) -> Outcome<T>,
    ) -> Result<(T, u32), SendError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let answer = self
                .api
                .call(ApiCall {
                    method: call.method,
                    url: &call.url,
                    headers: &call.headers,
                    body: &call.body,
                    timeout: self.config.timeout,
                    private_network: call.private_network,
                })
                .await;
            // What went wrong, if it may be retried: the wait the provider asked for, and the
            // error to give when no retry is left.
            let (asked, error) = match answer {
                Ok(answer) => {
                    let asked = answer
                        .retry_after
                        .as_deref()
                        .and_then(|v| parse_retry_after(v, self.clock.now()));
                    match read(&answer, asked) {
                        Outcome::Done(value) => return Ok((value, attempt)),
                        Outcome::Lost(reason) => {
                            return Err(SendError::OutcomeUnknown {
                                reason,
                                attempts: attempt,
                            });
                        }
                        Outcome::Failed(failure) => {
                            tracing::warn!(
                                provider_status = failure.provider_status,
                                provider_code = failure.provider_code,
                                code = failure.code,
                                attempt,
                                "provider refused a call"
                            );
                            let retryable = failure.retryable;
                            let error = SendError::Provider {
                                failure: Box::new(failure),
                                attempts: attempt,
                            };
                            if !retryable {
                                return Err(error);
                            }
                            (asked, error)
                        }
                    }
                }
                Err(cause) => {
                    tracing::warn!(error = %cause, attempt, "provider call failed");
                    match cause {
                        CallError::Refused(_) => return Err(SendError::Refused { cause }),
                        CallError::Connect(_) => {}
                        CallError::Timeout | CallError::Interrupted(_) if call.idempotent => {}
                        CallError::Timeout | CallError::Interrupted(_) => {
                            return Err(SendError::OutcomeUnknown {
                                reason: cause.to_string(),
                                attempts: attempt,
                            });
                        }
                    }
                    let error = SendError::Unreachable {
                        cause,
                        attempts: attempt,
                        retry_after: None,
                    };
                    (None, error)
                }
            };
            let wait =
                asked.map_or_else(|| self.backoff(attempt), |a| a.max(self.backoff(attempt)));
            let fits = started.elapsed().saturating_add(wait) <= self.config.budget;
            if attempt >= self.config.max_attempts || !fits {
                return Err(with_retry_after(error, wait));
            }
            (self.pause)(wait).await;
        }
    }
}

/// Whole seconds, rounded up (a `Retry-After` header counts seconds), at least one.
fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// The error with `wait` as its retry-after, when the provider asked for none (or less).
fn with_retry_after(error: SendError, wait: Duration) -> SendError {
    match error {
        SendError::Provider {
            mut failure,
            attempts,
        } => {
            let asked = failure.retry_after.unwrap_or_default();
            failure.retry_after = Some(whole_seconds(asked.max(wait)));
            SendError::Provider { failure, attempts }
        }
        SendError::Unreachable {
            cause, attempts, ..
        } => SendError::Unreachable {
            cause,
            attempts,
            retry_after: Some(whole_seconds(wait)),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
