//! Why a send failed, in the terms the API answers with: an HTTP status, a stable code, a
//! message safe to show, the provider's own code and details, and whether trying again may help.
//!
//! Owns: [`SendError`], [`ProviderFailure`] and the scrubbing of provider text. Must not: decide
//! how a provider's answer maps to a failure (`meta`, `waha` do).

use std::time::Duration;

use serde_json::{Value, json};

use super::api::CallError;
use super::message::InvalidMessage;
use crate::model::Provider;

/// A provider's error answer, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFailure {
    /// The status wagate answers with (422, 429, 502, 503…).
    pub status: u16,
    /// Stable machine-readable code (`outside_customer_service_window`, `rate_limited`…).
    pub code: &'static str,
    /// For humans, safe to show: wagate's words for the class of error.
    pub message: String,
    /// The HTTP status the provider answered.
    pub provider_status: u16,
    /// The provider's error code (Meta `error.code`).
    pub provider_code: Option<i64>,
    /// The provider's explanation (Meta `error.message` and `error_data.details`, WAHA's
    /// message), cut to 512 characters with long digit runs (phone numbers) masked.
    pub provider_details: Option<String>,
    /// Meta's `fbtrace_id`, for a support ticket.
    pub trace_id: Option<String>,
    /// The provider certainly did not act and may accept the same request later.
    pub retryable: bool,
    /// How long the provider asked to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

/// Why a send or mark-as-read failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request breaks the documented shape or a limit.
    #[error(transparent)]
    Invalid(#[from] InvalidMessage),
    /// The source has no `send` settings.
    #[error("source `{source_id}` has no send settings")]
    NotConfigured {
        /// The source.
        source_id: String,
    },
    /// The provider has no such feature.
    #[error("{} cannot send `{field}`: {reason}", provider.as_str())]
    Unsupported {
        /// Whose API lacks it.
        provider: Provider,
        /// The field asking for it.
        field: String,
        /// What is missing.
        reason: String,
    },
    /// The provider answered with an error.
    #[error("{}", .failure.message)]
    Provider {
        /// The classified answer.
        failure: Box<ProviderFailure>,
        /// Calls made.
        attempts: u32,
    },
    /// No connection could be made, after retries: nothing was sent.
    #[error("the provider could not be reached after {attempts} attempt(s): {cause}")]
    Unreachable {
        /// The last failure.
        #[source]
        cause: CallError,
        /// Calls made.
        attempts: u32,
        /// When trying again is sensible.
        retry_after: Option<Duration>,
    },
    /// The call was refused before sending (network policy, an unusable request).
    #[error("the provider call was refused: {cause}")]
    Refused {
        /// Why.
        #[source]
        cause: CallError,
    },
    /// Timed out, or the connection broke after the request was written, or the answer could
    /// not be read: the message may have been sent. Never retried automatically.
    #[error("the provider's answer was lost ({reason}); the message may have been sent")]
    OutcomeUnknown {
        /// What happened, without the answer's content.
        reason: String,
        /// Calls made.
        attempts: u32,
    },
}

impl SendError {
    /// An [`InvalidMessage`] about `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid(InvalidMessage::new(field, reason))
    }

    /// The HTTP status for wagate's API: 422 invalid or unsupported, 409 not configured, the
    /// failure's own for provider errors (422, 429, 403, 502, 503), 503 unreachable, 502 refused
    /// locally, 504 outcome unknown.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) | Self::Unsupported { .. } => 422,
            Self::NotConfigured { .. } => 409,
            Self::Provider { failure, .. } => failure.status,
            Self::Unreachable { .. } => 503,
            Self::Refused { .. } => 502,
            Self::OutcomeUnknown { .. } => 504,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "validation_failed",
            Self::NotConfigured { .. } => "not_configured",
            Self::Unsupported { .. } => "unsupported_by_provider",
            Self::Provider { failure, .. } => failure.code,
            Self::Unreachable { .. } => "provider_unavailable",
            Self::Refused { .. } => "provider_blocked",
            Self::OutcomeUnknown { .. } => "send_outcome_unknown",
        }
    }

    /// For humans: no token, no phone number, no message text.
    pub fn message(&self) -> String {
        match self {
            Self::Unreachable { attempts, .. } => format!(
                "the provider could not be reached after {attempts} attempt(s); nothing was sent"
            ),
            Self::Refused { .. } => {
                "the provider's address is not allowed by the gateway's network policy".to_owned()
            }
            Self::OutcomeUnknown { .. } => "the provider did not answer in time; the message \
                may have been sent: check for its status events before sending again"
                .to_owned(),
            other => other.to_string(),
        }
    }

    /// Structured details: `field` for request errors; the provider's status, code, details
    /// and trace id for provider errors; `attempts` where calls were made.
    pub fn details(&self) -> Option<Value> {
        match self {
            Self::Invalid(e) => Some(json!({"field": e.field})),
            Self::Unsupported { field, .. } => Some(json!({"field": field})),
            Self::NotConfigured { .. } | Self::Refused { .. } => None,
            Self::Provider { failure, attempts } => {
                let mut d = json!({
                    "provider_status": failure.provider_status,
                    "attempts": attempts,
                });
                if let Some(code) = failure.provider_code {
                    d["provider_code"] = json!(code);
                }
                if let Some(details) = &failure.provider_details {
                    d["provider_details"] = json!(details);
                }
                if let Some(trace) = &failure.trace_id {
                    d["trace_id"] = json!(trace);
                }
                Some(d)
            }
            Self::Unreachable { attempts, .. } | Self::OutcomeUnknown { attempts, .. } => {
                Some(json!({"attempts": attempts}))
            }
        }
    }

    /// Whether the same request may succeed later: the provider certainly did not act and asked
    /// for patience (rate limits, transient errors) or could not be reached.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Provider { failure, .. } => failure.retryable,
            Self::Unreachable { .. } => true,
            _ => false,
        }
    }

    /// How long to wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Provider { failure, .. } => failure.retry_after,
            Self::Unreachable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Calls made to the provider.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Provider { attempts, .. }
            | Self::Unreachable { attempts, .. }
            | Self::OutcomeUnknown { attempts, .. } => *attempts,
            _ => 0,
        }
    }
}

/// Provider text made safe to return: at most 512 characters, runs of 6 or more digits (phone
/// numbers, ids derived from them) replaced by `…`.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(600));
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 6 {
            out.push('…');
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut out);
        if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    if out.chars().count() > 512 {
        out = out.chars().take(511).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_masks_phone_numbers_but_keeps_short_numbers() {
        assert_eq!(
            scrub("(#131026) Message undeliverable to 15551234567 after 3 tries"),
            "(#…) Message undeliverable to … after 3 tries"
        );
        assert_eq!(scrub("line\nbreak"), "line break");
        let long = "x".repeat(2000);
        assert_eq!(scrub(&long).chars().count(), 512);
    }

    #[test]
    fn each_error_knows_its_status_code_and_retryability() {
        let provider = |retryable| SendError::Provider {
            failure: Box::new(ProviderFailure {
                status: 429,
                code: "rate_limited",
                message: "rate limited".into(),
                provider_status: 400,
                provider_code: Some(130429),
                provider_details: None,
                trace_id: Some("A1".into()),
                retryable,
                retry_after: Some(Duration::from_secs(2)),
            }),
            attempts: 3,
        };
        let cases: Vec<(SendError, u16, &str, bool)> = vec![
            (
                SendError::invalid("text.body", "is empty"),
                422,
                "validation_failed",
                false,
            ),
            (
                SendError::NotConfigured {
                    source_id: "s".into(),
                },
                409,
                "not_configured",
                false,
            ),
            (provider(true), 429, "rate_limited", true),
            (
                SendError::Unreachable {
                    cause: CallError::Connect("refused".into()),
                    attempts: 3,
                    retry_after: None,
                },
                503,
                "provider_unavailable",
                true,
            ),
            (
                SendError::OutcomeUnknown {
                    reason: "timed out".into(),
                    attempts: 1,
                },
                504,
                "send_outcome_unknown",
                false,
            ),
        ];
        for (e, status, code, retryable) in cases {
            assert_eq!(e.status(), status, "{e:?}");
            assert_eq!(e.code(), code);
            assert_eq!(e.is_retryable(), retryable, "{e:?}");
        }
        let d = provider(true).details().unwrap();
        assert_eq!(d["provider_code"], 130429);
        assert_eq!(d["attempts"], 3);
        assert_eq!(provider(true).retry_after(), Some(Duration::from_secs(2)));
    }
}
