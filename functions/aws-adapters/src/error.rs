//! SDK errors → [`BackendError`]: transient failures (network, timeouts, throttling, 5xx) are
//! retryable; everything else (validation, missing resources) is not.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use shared::ports::BackendError;

/// Error codes that mean "slow down or try again", across DynamoDB, SQS and S3.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "AWS.SimpleQueueService.RequestThrottled",
    "RequestThrottled",
    "KmsThrottled",
    "SlowDown",
    "InternalError",
    "RequestTimeout",
];

/// An SDK failure with the operation it happened in and its whole cause chain on one line.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {detail}")]
struct SdkFailure {
    operation: &'static str,
    detail: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// Classifies an SDK error.
pub(crate) fn backend_error<E>(
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            let detail = describe(&err);
            BackendError::Unavailable(Box::new(SdkFailure {
                operation,
                detail,
                source: Box::new(err),
            }))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            // A 5xx or 429 is transient whatever its code says; S3 answers HEAD requests with
            // no body, so their errors carry only the status.
            if TRANSIENT_CODES.contains(&code) || status >= 500 || status == 429 {
                BackendError::Unavailable(format!("{operation}: {code} (HTTP {status})").into())
            } else {
                BackendError::Rejected(format!(
                    "{operation}: {code} (HTTP {status}) {}",
                    service.err().message().unwrap_or_default()
                ))
            }
        }
        _ => BackendError::Rejected(format!("{operation}: {}", describe(&err))),
    }
}

/// The error and its sources on one line (SDK errors put the useful part in a source).
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
