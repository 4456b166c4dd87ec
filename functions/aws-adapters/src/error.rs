//! SDK errors → [`BackendError`]: transient failures (network, timeouts, throttling, 5xx) are
//! retryable; everything else (validation, missing resources) is not.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use shared::ports::BackendError;

/// Error codes that mean "slow down or try again", across DynamoDB and SQS.
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
pub(crate) fn backend_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
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
            if TRANSIENT_CODES.contains(&code) {
                BackendError::Unavailable(format!("{operation}: {code}").into())
            } else {
                BackendError::Rejected(format!(
                    "{operation}: {code} {}",
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
