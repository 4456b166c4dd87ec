//! The SDK clients and their configuration (`sdk` feature).

pub use crate::dynamo::{DynamoBlobStore, DynamoDocumentStore, INDEX_NAME};
pub use crate::s3::{PART_SIZE, S3MediaStore, s3_config};
pub use crate::sqs::SqsQueue;
pub use aws_config::SdkConfig;
pub use {aws_sdk_cloudwatch, aws_sdk_dynamodb, aws_sdk_s3, aws_sdk_sqs, aws_sdk_ssm};

use aws_config::BehaviorVersion;

/// The SDK clients, built once per process from one [`SdkConfig`].
#[derive(Debug, Clone)]
pub struct Clients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// S3 (path-style addressing when the endpoint is overridden: [`s3_config`]).
    pub s3: aws_sdk_s3::Client,
    /// CloudWatch (the overview reads the functions' metrics).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Clients {
    /// Clients sharing `sdk`'s region, credentials, endpoint and HTTP connection pool settings.
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config(sdk)),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
        }
    }
}

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`), built
/// once at cold start and shared by every client.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// An SDK configuration for a local endpoint (moto) with fixed test credentials.
pub async fn local_sdk_config(endpoint_url: &str, region: &str) -> SdkConfig {
    let credentials =
        aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "wagate-local");
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint_url)
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .load()
        .await
}
