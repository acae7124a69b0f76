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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let failed = worker.handle_batch(sqs_messages(event), deadline).await;
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    response
}

/// The invocation's deadline as an `Instant`, from the Runtime API's `Lambda-Runtime-Deadline-Ms`
/// (Unix epoch milliseconds); used by the HTTP router (a batch's time budget) and the worker.
/// `None` when the runtime gave no usable deadline, as under `serve`: `cargo lambda watch` sends
/// a fixed `600000`, which read as a time is 1970, long past, and would start no batch item.
pub fn invocation_deadline(context: &lambda_http::Context) -> Option<Instant> {
    let left = time_left(context.deadline(), SystemTime::now())?;
    Some(Instant::now() + left)
}

/// Deadlines before this (2001-09-09) are not one Lambda would send.
const EARLIEST_DEADLINE: Duration = Duration::from_secs(1_000_000_000);

/// The time from `now` to `deadline` (zero once it has passed); `None` when `deadline` is not
/// a real time.
fn time_left(deadline: SystemTime, now: SystemTime) -> Option<Duration> {
    if deadline < UNIX_EPOCH + EARLIEST_DEADLINE {
        return None;
    }
    Some(deadline.duration_since(now).unwrap_or(Duration::ZERO))
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
                let response = handle_sqs(&worker, sqs, invocation_deadline(&context)).await;
                return Ok(serde_json::to_value(response)?);
            }
            let request: LambdaRequest = serde_json::from_str(payload.get())?;
            let response = http.call(LambdaEvent::new(request, context)).await?;
            Ok::<_, lambda_http::Error>(serde_json::to_value(response)?)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01.
    fn now() -> SystemTime {
        at(1_796_000_000_000)
    }

    /// `ms` milliseconds after the epoch, as the Runtime API's header says it.
    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn a_deadline_ahead_leaves_the_time_until_it() {
        assert_eq!(
            time_left(now() + Duration::from_secs(30), now()),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn a_deadline_already_passed_leaves_nothing() {
        assert_eq!(
            time_left(now() - Duration::from_millis(1), now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn cargo_lambda_watchs_fixed_deadline_is_no_deadline() {
        // cargo-lambda's runtime sends `lambda-runtime-deadline-ms: 600000`.
        assert_eq!(time_left(at(600_000), now()), None);
        assert_eq!(time_left(at(0), now()), None);
    }
}
