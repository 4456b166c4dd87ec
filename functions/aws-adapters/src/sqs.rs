//! [`Queue`] over Amazon SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use shared::ports::limits::{check_batch, sqs_allows};
use shared::ports::{BackendError, FailedEntry, OutgoingMessage, Queue, ReceivedMessage, limits};

use crate::error::backend_error;

/// One SQS queue, addressed by URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

/// Seconds for SQS's integer fields, clamped into the range it accepts.
fn secs(d: Duration, max: u64) -> i32 {
    i32::try_from(d.as_secs().min(max)).unwrap_or(i32::MAX)
}

impl SqsQueue {
    /// The queue at `url`, using `client`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The queue URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Approximate messages in the queue: visible, in flight and delayed together (SQS's
    /// `ApproximateNumberOf*` attributes), for status lines and draining.
    pub async fn depth(&self) -> Result<u64, BackendError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| backend_error("GetQueueAttributes", e))?
            .attributes
            .unwrap_or_default();
        Ok(attributes
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum())
    }

    /// Opens the connection (TLS handshake included) with a cheap call, so the first webhook
    /// after a cold start does not pay for it. Failures are only logged: the real call reports.
    pub async fn warm(&self) {
        let r = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %backend_error("GetQueueAttributes", e), "queue warm-up failed");
        }
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn approximate_depth(&self) -> Result<Option<u64>, BackendError> {
        Ok(Some(self.depth().await?))
    }

    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<FailedEntry>, BackendError> {
        // Check locally first: SQS would reject the whole batch anyway, with a vaguer error.
        check_batch(messages)?;
        // Entries with characters SQS refuses fail on their own, as SQS reports them, without
        // a round trip (and the same way on every SQS implementation).
        let (sendable, refused): (Vec<&OutgoingMessage>, Vec<&OutgoingMessage>) =
            messages.iter().partition(|m| sqs_allows(&m.body));
        let mut failed: Vec<FailedEntry> = refused
            .into_iter()
            .map(|m| FailedEntry {
                id: m.id.clone(),
                retryable: false,
                reason: "InvalidMessageContents".into(),
            })
            .collect();
        if sendable.is_empty() {
            return Ok(failed);
        }
        let entries = sendable
            .into_iter()
            .map(|m| {
                SendMessageBatchRequestEntry::builder()
                    .id(&m.id)
                    .message_body(&m.body)
                    .set_delay_seconds(m.delay.map(|d| secs(d, limits::MAX_DELAY_SECS)))
                    .build()
                    .map_err(|e| BackendError::Rejected(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| backend_error("SendMessageBatch", e))?;
        failed.extend(out.failed.into_iter().map(|f| FailedEntry {
            id: f.id,
            retryable: !f.sender_fault,
            reason: f.code,
        }));
        Ok(failed)
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        let max = i32::try_from(max.clamp(1, limits::MAX_BATCH_ENTRIES)).unwrap_or(10);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(secs(wait, 20))
            .visibility_timeout(secs(visibility, limits::MAX_VISIBILITY_SECS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| backend_error("ReceiveMessage", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Some(ReceivedMessage {
                    receipt: m.receipt_handle?,
                    message_id: m.message_id.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), BackendError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| backend_error("DeleteMessage", e))?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), BackendError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(visibility, limits::MAX_VISIBILITY_SECS))
            .send()
            .await
            .map_err(|e| backend_error("ChangeMessageVisibility", e))?;
        Ok(())
    }
}
