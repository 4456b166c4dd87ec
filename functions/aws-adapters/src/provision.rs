//! Creating wagate's table, queues and media bucket where they do not exist yet: for tests against moto and
//! for the local process with `--backend aws --create`. Deployed stacks get them from
//! `template.yaml`.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use shared::ports::BackendError;

use crate::error::backend_error;

/// Creates the wagate table (`pk`/`sk`, on-demand, TTL on `ttl`) unless it exists.
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), BackendError> {
    if client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .is_ok()
    {
        return Ok(());
    }
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| BackendError::Rejected(e.to_string()))
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .map_err(|e| BackendError::Rejected(e.to_string()))
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("gsi1pk")?)
        .attribute_definitions(attr("gsi1sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(crate::INDEX_NAME)
                .key_schema(key("gsi1pk", KeyType::Hash)?)
                .key_schema(key("gsi1sk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(|e| BackendError::Rejected(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| backend_error("CreateTable", e))?;
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name("ttl")
        .enabled(true)
        .build()
        .map_err(|e| BackendError::Rejected(e.to_string()))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| backend_error("UpdateTimeToLive", e))?;
    Ok(())
}

/// Creates a standard queue (with a dead-letter queue after `max_receives`, when given) unless
/// it exists; returns its URL.
pub async fn ensure_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_secs: u32,
    dead_letter: Option<(&str, u32)>,
) -> Result<String, BackendError> {
    let mut req = client.create_queue().queue_name(name).attributes(
        QueueAttributeName::VisibilityTimeout,
        visibility_secs.to_string(),
    );
    if let Some((dlq_url, max_receives)) = dead_letter {
        let arn = client
            .get_queue_attributes()
            .queue_url(dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| backend_error("GetQueueAttributes", e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| BackendError::Rejected(format!("no ARN for {dlq_url}")))?;
        let policy =
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receives}"}}"#);
        req = req.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    let out = req
        .send()
        .await
        .map_err(|e| backend_error("CreateQueue", e))?;
    out.queue_url
        .ok_or_else(|| BackendError::Rejected(format!("CreateQueue {name}: no URL")))
}

/// Creates the media bucket `name` in the client's region unless it exists.
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, name: &str) -> Result<(), BackendError> {
    if client.head_bucket().bucket(name).send().await.is_ok() {
        return Ok(());
    }
    let mut create = client.create_bucket().bucket(name);
    // us-east-1 is the one region S3 wants no location constraint for.
    if let Some(region) = client
        .config()
        .region()
        .map(|r| r.as_ref())
        .filter(|&r| r != "us-east-1")
    {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(()),
        Err(aws_sdk_s3::error::SdkError::ServiceError(e))
            if e.err().is_bucket_already_owned_by_you() =>
        {
            Ok(())
        }
        Err(e) => Err(backend_error("CreateBucket", e)),
    }
}
