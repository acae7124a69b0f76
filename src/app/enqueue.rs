//! A queued route's commands onto the queue. Verification, mapping and validation have run
//! (401 / 400 / 413 / 415 as on the synchronous path, nothing queued). Then, per command, the
//! same decision as the synchronous path, on a QUEUED record written with the same conditional
//! write (`DeliveryStore::begin`):
//!
//! - written (nothing live there, or a FAILED one): the command goes on the queue; 202;
//! - already QUEUED or IN_PROGRESS: 202 again, nothing queued (it runs once);
//! - anything else (a replay, a key reuse, a held one): answered now, exactly as the synchronous
//!   path answers it (`Idempotent-Replayed: true` on a replay).
//!
//! The queue unreachable (or the store): 503 `STATE_UNAVAILABLE` with `Retry-After`, the QUEUED
//! records just written released (FAILED), nothing accepted.

use super::answer::{batch_item, Success};
use super::bridge::{Bridge, Route};
use super::execute::{failed_state, state_unavailable};
use super::intake::short;
use super::Reply;
use crate::domain::delivery::{decide, DeliveryRecord, Incoming, ItemKey};
use crate::domain::queue::{accept, Accept, QueuedCommand, QUEUED_TTL_SECS};
use crate::domain::Command;
use crate::error::{BridgeError, ErrorKind};
use crate::ports::{Begin, DeliveryState, RecordId, Transition};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// What became of one command at accept time.
enum Accepted {
    /// Ours to put on the queue (our QUEUED record, with its attempt id).
    ToQueue {
        record: DeliveryRecord,
        body: String,
    },
    /// Queued or running already.
    AlreadyQueued,
    /// Answered now.
    Answered(Result<Success, BridgeError>),
}

fn queue_unavailable() -> BridgeError {
    BridgeError::new(
        ErrorKind::StateUnavailable,
        "the queue is unavailable; nothing was accepted, retry later",
    )
}

impl Bridge {
    /// Accepts a queued route's commands (see the module documentation).
    pub(super) async fn enqueue(
        &self,
        route: &Route,
        items: Vec<(ItemKey, Command)>,
        batch: bool,
    ) -> Reply {
        let Some(queue) = self.queue.clone() else {
            tracing::error!("a queued route without a queue (the service builder prevents it)");
            return Reply::error(&BridgeError::internal());
        };
        let described: Vec<(usize, ItemKey, Option<String>)> = items
            .iter()
            .enumerate()
            .map(|(i, (key, cmd))| (i, key.clone(), cmd.external_id().map(str::to_string)))
            .collect();
        let outcomes: Vec<Result<Accepted, BridgeError>> = futures_util::stream::iter(
            items
                .into_iter()
                .enumerate()
                .map(|(i, (key, cmd))| self.accept_one(route, i, key, cmd)),
        )
        .buffered(self.limits.batch_concurrency.max(1))
        .collect()
        .await;

        let mut to_queue = Vec::new();
        let mut failure = None;
        for outcome in &outcomes {
            match outcome {
                Ok(Accepted::ToQueue { record, body }) => to_queue.push((record, body.clone())),
                Ok(_) => {}
                Err(e) => failure = Some(e.clone()),
            }
        }
        if failure.is_none() && !to_queue.is_empty() {
            let bodies: Vec<String> = to_queue.iter().map(|(_, b)| b.clone()).collect();
            if let Err(e) = queue.send(&bodies).await {
                tracing::error!(error = %e, "queue unavailable");
                failure = Some(queue_unavailable());
            }
        }
        if let Some(e) = failure {
            let records: Vec<&DeliveryRecord> = to_queue.iter().map(|(r, _)| *r).collect();
            self.release(&records, &e).await;
            return Reply::error(&e);
        }
        for (record, _) in &to_queue {
            tracing::info!(key = %short(&record.key, 120), "command queued");
        }

        let mut queued = Vec::new();
        let mut answered = Vec::new();
        for ((index, key, external_id), outcome) in described.into_iter().zip(outcomes) {
            match outcome {
                Ok(Accepted::ToQueue { .. } | Accepted::AlreadyQueued) => queued.push(json!({
                    "index": index, "externalId": external_id, "key": key.as_str(),
                })),
                Ok(Accepted::Answered(answer)) => answered.push((index, external_id, answer)),
                Err(_) => {}
            }
        }
        if !batch && queued.is_empty() {
            if let Some((_, _, answer)) = answered.pop() {
                return match answer {
                    Ok(s) => s.into_reply(),
                    Err(e) => Reply::error(&e),
                };
            }
        }
        let results: Vec<(u16, Value)> = answered
            .into_iter()
            .map(|(i, ext, answer)| batch_item(i, ext, answer))
            .collect();
        if queued.is_empty() {
            let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
            let status = crate::domain::delivery::batch_status(&statuses);
            let body: Vec<Value> = results.into_iter().map(|(_, v)| v).collect();
            return Reply::json(status, json!({ "results": body }));
        }
        // 202 only when every item is queued or final (the synchronous batch rule): an item that
        // asks for a retry (409, 503) makes the answer that retry, and sending the whole
        // delivery again is safe (the queued items answer 202 again).
        let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
        let status = match crate::domain::delivery::batch_status(&statuses) {
            200 => 202,
            retry => retry,
        };
        let mut body = json!({ "queued": queued });
        if !results.is_empty() {
            body["results"] = Value::Array(results.into_iter().map(|(_, v)| v).collect());
        }
        let mut reply = Reply::json(status, body);
        let retry_after = match status {
            503 => ErrorKind::StateUnavailable.retry_after(),
            409 => ErrorKind::RequestInProgress.retry_after(),
            _ => None,
        };
        if let Some(secs) = retry_after {
            reply.headers.push(("retry-after", secs.to_string()));
        }
        reply
    }

    /// One command: its QUEUED record written (ours to queue), or the record that was there
    /// decided on.
    async fn accept_one(
        &self,
        route: &Route,
        index: usize,
        key: ItemKey,
        cmd: Command,
    ) -> Result<Accepted, BridgeError> {
        let now = self.clock.now();
        let record = DeliveryRecord::new(
            &route.name,
            &key,
            &cmd,
            DeliveryState::Queued {
                deadline: now + QUEUED_TTL_SECS,
            },
            format!("queued-{}", super::execute::new_attempt_id()),
            now,
            self.limits.retention_secs,
        );
        let begun = match self.deliveries.begin(&record, now).await {
            Ok(begun) => begun,
            Err(e) => {
                let e = state_unavailable(e);
                self.release(&[&record], &e).await;
                return Err(e);
            }
        };
        let existing = match begun {
            Begin::Started => {
                let body = QueuedCommand::new(&route.name, index, &key, &cmd).to_body();
                return Ok(Accepted::ToQueue { record, body });
            }
            Begin::Existing(existing) => existing,
        };
        let incoming = Incoming {
            route: &route.name,
            fingerprint: &record.fingerprint,
            action: cmd.action(),
        };
        Ok(match accept(decide(Some(&existing), &incoming, now)) {
            Accept::AlreadyQueued => Accepted::AlreadyQueued,
            // Became startable between the write and the read (409): the sender's retry
            // queues it.
            Accept::Enqueue => Accepted::Answered(
                self.carry_out(route, &existing, crate::domain::delivery::Decision::Start)
                    .await,
            ),
            Accept::Answer(decision) => {
                Accepted::Answered(self.carry_out(route, &existing, decision).await)
            }
        })
    }

    /// Releases QUEUED records whose commands were not put on the queue (FAILED with `why`), so
    /// that the sender's retry queues them. Conditional on our attempt; bounded in time.
    async fn release(&self, records: &[&DeliveryRecord], why: &BridgeError) {
        let to = Transition::to(failed_state(why));
        for record in records {
            let id = RecordId {
                route: &record.route,
                key: &record.key,
            };
            let finish = self
                .deliveries
                .finish(id, &record.attempt, &to, self.clock.now());
            match tokio::time::timeout(std::time::Duration::from_secs(1), finish).await {
                Ok(Ok(_)) => {}
                _ => tracing::error!(
                    key = %short(&record.key, 120),
                    "a QUEUED record could not be released; redeliveries answer 202 until its deadline"
                ),
            }
        }
    }
}
