//! [`SqsQueue`]: the queue on Amazon SQS (`BRIDGE_QUEUE_URL`, and `BRIDGE_DLQ_URL` for the
//! operator's dead-letter commands). Calls: SendMessageBatch (accept), ReceiveMessage,
//! DeleteMessage, ChangeMessageVisibility (worker, operator), GetQueueAttributes and
//! StartMessageMoveTask (operator `redrive --all`).

use crate::ports::{Queue, QueueError, QueueMessage, QueueName};
use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use std::time::Duration;

/// SendMessageBatch and ReceiveMessage take at most 10 messages.
const BATCH_MAX: usize = 10;
/// SQS's longest long poll.
const MAX_WAIT_SECS: u64 = 20;

fn unavailable<E, R>(operation: &str, e: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    QueueError::Unavailable(format!("{operation}: {}", DisplayErrorContext(&e)))
}

/// The work queue and, when known, its dead-letter queue.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    /// Short timeouts (the shared SDK config): sends on the request path, deletes.
    client: Client,
    /// Long enough for a 20 s long poll.
    poll_client: Client,
    queue_url: String,
    dlq_url: Option<String>,
}

impl SqsQueue {
    pub fn new(sdk: &aws_config::SdkConfig, queue_url: &str, dlq_url: Option<&str>) -> Self {
        let client = Client::new(sdk);
        let poll_config = aws_sdk_sqs::config::Builder::from(sdk)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(crate::aws::CONNECT_TIMEOUT)
                    .operation_attempt_timeout(Duration::from_secs(MAX_WAIT_SECS + 5))
                    .operation_timeout(Duration::from_secs(2 * MAX_WAIT_SECS + 10))
                    .build(),
            )
            .build();
        SqsQueue {
            client,
            poll_client: Client::from_conf(poll_config),
            queue_url: queue_url.to_string(),
            dlq_url: dlq_url.map(str::to_string),
        }
    }

    fn url(&self, which: QueueName) -> Result<&str, QueueError> {
        match which {
            QueueName::Work => Ok(&self.queue_url),
            QueueName::DeadLetters => self.dlq_url.as_deref().ok_or_else(|| {
                QueueError::Unsupported(
                    "BRIDGE_DLQ_URL is not set: the dead-letter queue's URL is needed".into(),
                )
            }),
        }
    }

    async fn arn(&self, url: &str) -> Result<String, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| unavailable("GetQueueAttributes", e))?;
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| QueueError::Unavailable(format!("no QueueArn for {url}")))
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), QueueError> {
        for chunk in bodies.chunks(BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| QueueError::Unavailable(format!("SendMessageBatch: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| unavailable("SendMessageBatch", e))?;
            if let Some(failed) = out.failed().first() {
                return Err(QueueError::Unavailable(format!(
                    "SendMessageBatch: {} of {} not sent ({}: {})",
                    out.failed().len(),
                    chunk.len(),
                    failed.code(),
                    failed.message().unwrap_or("")
                )));
            }
        }
        Ok(())
    }

    async fn receive(
        &self,
        from: QueueName,
        max: usize,
        wait: Duration,
        visibility: Option<u32>,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let url = self.url(from)?;
        let out = self
            .poll_client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, BATCH_MAX) as i32)
            .wait_time_seconds(wait.as_secs().min(MAX_WAIT_SECS) as i32)
            .set_visibility_timeout(visibility.map(|v| v as i32))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| unavailable("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| QueueMessage {
                id: m.message_id().unwrap_or_default().to_string(),
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn delete(&self, from: QueueName, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(self.url(from)?)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| unavailable("DeleteMessage", e))?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        from: QueueName,
        receipt: &str,
        secs: u32,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(self.url(from)?)
            .receipt_handle(receipt)
            .visibility_timeout(secs.min(43_200) as i32)
            .send()
            .await
            .map_err(|e| unavailable("ChangeMessageVisibility", e))?;
        Ok(())
    }

    async fn start_redrive_all(&self) -> Result<(), QueueError> {
        let dlq = self.url(QueueName::DeadLetters)?.to_string();
        let source = self.arn(&dlq).await?;
        let destination = self.arn(&self.queue_url).await?;
        self.client
            .start_message_move_task()
            .source_arn(source)
            .destination_arn(destination)
            .send()
            .await
            .map_err(|e| {
                QueueError::Unsupported(format!(
                    "StartMessageMoveTask: {}",
                    DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }
}
