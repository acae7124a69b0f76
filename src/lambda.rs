//! The Lambda entry: one binary for both functions. Each event is recognised by its shape, with
//! no setting: an SQS event (`Records[0].eventSource == "aws:sqs"`) goes to the queue worker,
//! which answers the partial batch failure response (`{"batchItemFailures":[…]}`,
//! `ReportBatchItemFailures`); anything else is an HTTP event (API Gateway HTTP API payload v2,
//! Lambda function URLs, `cargo lambda watch`) served by the shared router exactly as
//! `lambda_http::run` would (the same request conversion and the same response JSON).
//! lambda_runtime opens a span with the request id (`requestId`) around each invocation, so every
//! log line of it carries the id.

use crate::app::worker::Worker;
use crate::app::Bridge;
use crate::ports::QueueMessage;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_http::request::LambdaRequest;
use lambda_http::{lambda_runtime, service_fn, LambdaEvent, Service};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Only what tells the two shapes apart.
#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "Records", default)]
    records: Vec<RecordShape>,
}

#[derive(Deserialize)]
struct RecordShape {
    #[serde(rename = "eventSource", default)]
    event_source: Option<String>,
}

/// Whether an event is an SQS batch.
pub fn is_sqs_event(raw: &str) -> bool {
    serde_json::from_str::<Shape>(raw).is_ok_and(|s| {
        s.records
            .first()
            .is_some_and(|r| r.event_source.as_deref() == Some("aws:sqs"))
    })
}

/// The messages of an SQS event, as the worker takes them.
pub fn sqs_messages(event: SqsEvent) -> Vec<QueueMessage> {
    event
        .records
        .into_iter()
        .map(|r| QueueMessage {
            id: r.message_id.unwrap_or_default(),
            receipt: r.receipt_handle.unwrap_or_default(),
            body: r.body.unwrap_or_default(),
            receive_count: r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
        })
        .collect()
}

/// The worker's answer to an SQS batch: the ids of the messages to retry. `deadline` is the
/// invocation's (no message starts without time for its panel call).
pub async fn handle_sqs(
    worker: &Worker,
    event: SqsEvent,
    deadline: Option<std::time::Instant>,
) -> SqsBatchResponse {
    let failed = worker.handle_batch(sqs_messages(event), deadline).await;
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    response
}

/// The invocation's deadline as an `Instant`.
fn deadline_of(context: &lambda_http::Context) -> Option<std::time::Instant> {
    let deadline_ms = i64::try_from(context.deadline).ok()?;
    let left = u64::try_from(deadline_ms.saturating_sub(chrono::Utc::now().timestamp_millis()))
        .unwrap_or(0);
    Some(std::time::Instant::now() + std::time::Duration::from_millis(left))
}

/// Runs the function until the runtime stops it. `worker` is the queue worker (present when the
/// function has a queue).
pub async fn run(
    bridge: Arc<Bridge>,
    worker: Option<Arc<Worker>>,
) -> Result<(), lambda_http::Error> {
    let http = lambda_http::Adapter::from(crate::http::router(bridge));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let mut http = http.clone();
        let worker = worker.clone();
        async move {
            let LambdaEvent { payload, context } = event;
            if is_sqs_event(payload.get()) {
                let Some(worker) = worker else {
                    return Err(lambda_http::Error::from(
                        "an SQS event, but this function has no queue (BRIDGE_QUEUE_URL)",
                    ));
                };
                let sqs: SqsEvent = serde_json::from_str(payload.get())?;
                let response = handle_sqs(&worker, sqs, deadline_of(&context)).await;
                return Ok(serde_json::to_value(response)?);
            }
            let request: LambdaRequest = serde_json::from_str(payload.get())?;
            let response = http.call(LambdaEvent::new(request, context)).await?;
            Ok::<_, lambda_http::Error>(serde_json::to_value(response)?)
        }
    }))
    .await
}
