//! The queue worker: one message = one command, run through the same [`Bridge::execute`] as
//! the synchronous path (the same record, the same decision, the same panel call), then, by
//! `domain::queue::verdict`:
//!
//! - settled (created, cancelled, replayed, refused 400 / 402 / 422): the message is deleted
//!   and the result notified;
//! - retryable (panel unreachable, store unavailable, in progress elsewhere, password refused):
//!   the message comes back after the backoff (its visibility timeout), and after the queue's
//!   `maxReceiveCount` SQS moves it to the dead-letter queue;
//! - a create's outcome unknown: held for an operator (`pending` / `resolve`) exactly as on the
//!   synchronous path; the message is deleted (never re-sent), notified as unknown.
//!
//! A notification that fails leaves the message for a retry; on that retry the record answers
//! (a replay, the held answer, or the standing refusal: `domain::queue::refusal_stands`), so the
//! payout never runs again for it.
//!
//! Under Lambda ([`Worker::handle_batch`]) Lambda deletes the messages not reported as failed;
//! `payout-bridge worker` and `serve` run [`Worker::run`], which long-polls and deletes itself.

use super::bridge::{Bridge, Route};
use super::intake::short;
use crate::domain::queue::{
    event_body, event_type, refusal_stands, retry_delay_secs, verdict, webhook_id, QueuedCommand,
    Verdict,
};
use crate::ports::{Notifier, Queue, QueueMessage, QueueName, RecordId};
use futures_util::StreamExt;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Messages handled at once (`BRIDGE_WORKER_CONCURRENCY`; the panel behind the worker has
    /// the same ceiling on calls in flight).
    pub concurrency: usize,
    /// The first retry's delay (`BRIDGE_RETRY_BASE_SECS`), doubling, at most 15 minutes.
    pub retry_base_secs: u32,
    /// The long poll of `run` (SQS waits at most 20 s; zero = short polls, 200 ms apart when
    /// the queue is empty).
    pub poll_wait: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 4,
            retry_base_secs: 10,
            poll_wait: Duration::from_secs(20),
        }
    }
}

/// What to do with a message once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Settled or held: delete it.
    Delete,
    /// Let it come back after this many seconds.
    RetryIn(u32),
}

pub struct Worker {
    bridge: Arc<Bridge>,
    queue: Arc<dyn Queue>,
    notifier: Arc<dyn Notifier>,
    settings: WorkerSettings,
}

impl Worker {
    pub fn new(
        bridge: Arc<Bridge>,
        queue: Arc<dyn Queue>,
        notifier: Arc<dyn Notifier>,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            bridge,
            queue,
            notifier,
            settings,
        }
    }

    pub fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    /// Handles one message (see the module documentation). Never panics on any body.
    pub async fn handle(&self, msg: &QueueMessage) -> Handled {
        let span = tracing::info_span!(
            "message",
            message_id = %short(&msg.id, 80),
            receive_count = msg.receive_count
        );
        self.handle_in_span(msg).instrument(span).await
    }

    async fn handle_in_span(&self, msg: &QueueMessage) -> Handled {
        let retry = Handled::RetryIn(retry_delay_secs(
            self.settings.retry_base_secs,
            msg.receive_count,
        ));
        let item = match QueuedCommand::parse(&msg.body) {
            Ok(item) => item,
            Err(e) => {
                tracing::error!(error = %e, "unreadable message; left for the dead-letter queue");
                return retry;
            }
        };
        let Some(route) = self.bridge.route(&item.route) else {
            tracing::error!(route = %short(&item.route, 64), "message for a route that is not configured; left for the dead-letter queue");
            return retry;
        };
        let cmd = match item.command() {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::error!(error = %e, "message with an invalid command; left for the dead-letter queue");
                return retry;
            }
        };
        let key = item.item_key();
        let span = tracing::info_span!("delivery", route = %route.name);
        let answer = async {
            let now = self.bridge.clock().now();
            if msg.receive_count > 1 {
                let id = RecordId {
                    route: &route.name,
                    key: key.as_str(),
                };
                match self.bridge.deliveries().get(id, now).await {
                    Ok(record) => {
                        if let Some((status, body)) =
                            refusal_stands(record.as_ref(), msg.receive_count, now)
                        {
                            tracing::info!(status, "refused on an earlier receive; the refusal stands");
                            return Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "delivery store unavailable; message left for a retry");
                        return None;
                    }
                }
            }
            Some(match self.bridge.execute(route, &key, cmd).await {
                Ok(s) => (s.status, s.body),
                Err(e) => (e.status(), e.body()),
            })
        }
        .instrument(span)
        .await;
        let Some((status, body)) = answer else {
            return retry;
        };
        match verdict(item.action, status) {
            Verdict::Retry => {
                tracing::info!(
                    status,
                    "not settled; the message comes back after the backoff"
                );
                retry
            }
            Verdict::Settled | Verdict::Held => {
                match self.notify(route, &item, status, &body).await {
                    Ok(()) => Handled::Delete,
                    Err(e) => {
                        tracing::warn!(error = %e, "notification failed; the message comes back after the backoff");
                        retry
                    }
                }
            }
        }
    }

    /// Posts the item's result to the route's `notify` URL, if it has one.
    async fn notify(
        &self,
        route: &Route,
        item: &QueuedCommand,
        status: u16,
        answer: &Value,
    ) -> Result<(), String> {
        let (Some(target), Some(event)) = (&route.notify, event_type(item.action, status)) else {
            return Ok(());
        };
        // Wall-clock time: receivers check it against their own clock.
        let now = chrono::Utc::now();
        let body = event_body(
            event,
            &now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            item,
            status,
            answer,
        )
        .to_string();
        let id = webhook_id(&route.name, &item.key, event);
        self.notifier
            .notify(target, &id, now.timestamp(), &body)
            .await?;
        tracing::info!(event = event.as_str(), webhook_id = %id, "result notified");
        Ok(())
    }

    /// Lambda's SQS batch: handles every message (up to `concurrency` at once), brings each
    /// retryable one back after its backoff, and answers the ids of those, for
    /// `ReportBatchItemFailures` (Lambda deletes the others).
    ///
    /// A message starts only while the invocation has time for a panel call (the synchronous
    /// batch rule, `domain::delivery::may_start_item`); the others go straight back.
    pub async fn handle_batch(
        &self,
        messages: Vec<QueueMessage>,
        deadline: Option<std::time::Instant>,
    ) -> Vec<String> {
        let panel_timeout_ms = self.bridge.limits().panel_request_timeout_ms;
        let handled: Vec<Option<String>> =
            futures_util::stream::iter(messages.into_iter().map(|msg| async move {
                let remaining_ms = deadline.map(|at| {
                    at.saturating_duration_since(std::time::Instant::now())
                        .as_millis() as i64
                });
                if !crate::domain::delivery::may_start_item(remaining_ms, panel_timeout_ms) {
                    tracing::info!(message_id = %short(&msg.id, 80), "not started: the invocation's time is nearly up");
                    self.retry_later(&msg, 0).await;
                    return Some(msg.id);
                }
                match self.handle(&msg).await {
                    Handled::Delete => None,
                    Handled::RetryIn(secs) => {
                        self.retry_later(&msg, secs).await;
                        Some(msg.id)
                    }
                }
            }))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        handled.into_iter().flatten().collect()
    }

    async fn retry_later(&self, msg: &QueueMessage, secs: u32) {
        if let Err(e) = self
            .queue
            .change_visibility(QueueName::Work, &msg.receipt, secs)
            .await
        {
            // It comes back after the queue's own visibility timeout instead.
            tracing::warn!(error = %e, "could not set the message's backoff");
        }
    }

    async fn settle(&self, msg: &QueueMessage, handled: Handled) {
        match handled {
            Handled::Delete => {
                if let Err(e) = self.queue.delete(QueueName::Work, &msg.receipt).await {
                    // It comes back, and its record answers: nothing runs twice.
                    tracing::warn!(error = %e, "could not delete a settled message");
                }
            }
            Handled::RetryIn(secs) => self.retry_later(msg, secs).await,
        }
    }

    /// Long-polls the queue and handles messages, `concurrency` at a time, until `stop`
    /// resolves; then waits (at most 30 s) for the messages in hand.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.settings.concurrency.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(stop);
        loop {
            while tasks.try_join_next().is_some() {}
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = &mut stop => break,
            };
            let free = slots.available_permits() + 1;
            let received = tokio::select! {
                r = self.queue.receive(QueueName::Work, free.min(10), self.settings.poll_wait, None) => r,
                _ = &mut stop => break,
            };
            let messages = match received {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot receive from the queue; trying again in 5 s");
                    drop(first);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {},
                        _ = &mut stop => break,
                    }
                    continue;
                }
            };
            if messages.is_empty() && self.settings.poll_wait.is_zero() {
                // Short polls (tests on a serialized emulator): do not spin.
                drop(first);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {},
                    _ = &mut stop => break,
                }
                continue;
            }
            let mut first = Some(first);
            for msg in messages {
                let permit = match first.take() {
                    Some(p) => p,
                    None => match slots.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let worker = self.clone();
                tasks.spawn(async move {
                    let handled = worker.handle(&msg).await;
                    worker.settle(&msg, handled).await;
                    drop(permit);
                });
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .is_err()
        {
            tracing::warn!("worker stopped with messages in hand; they come back after their visibility timeout");
        }
    }
}
