//! The operator's commands: on the delivery store, `pending` (what needs a person), `status`
//! (one record), `resolve` (settle a held one after checking the panel); on the queue,
//! `dead-letters` (what the dead-letter queue holds, with each command's last error) and
//! `redrive` (back to the queue).

use super::execute::failed_state;
use crate::domain::delivery::{settled_expiry, DeliveryRecord, DeliveryState, ItemKey};
use crate::domain::queue::QueuedCommand;
use crate::error::{BridgeError, ErrorKind};
use crate::ports::{
    Clock, DeliveryStore, Queue, QueueError, QueueMessage, QueueName, RecordId, StoreError,
    Transition,
};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The status a create answers (and a resolved create replays).
pub const CREATED: u16 = 201;

/// What the operator found at the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The payout exists with this id: redeliveries get it as their answer, cancels cancel it.
    Created { payout_id: u64 },
    /// It does not exist: the next delivery creates it (or a cancel records the cancellation).
    NotCreated,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no delivery record for route `{route}` key `{key}`")]
    NoRecord { route: String, key: String },
    #[error("the record is {state} and cannot be resolved (only OUTCOME_UNKNOWN, or IN_PROGRESS past its deadline)")]
    NotResolvable { state: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operator's view of the delivery records.
pub struct Operator {
    deliveries: Arc<dyn DeliveryStore>,
    clock: Arc<dyn Clock>,
    retention_secs: i64,
}

impl Operator {
    /// `retention_secs`: `BRIDGE_RETENTION_DAYS`, as the function has it (a resolved record is
    /// kept at least that long from the resolution).
    pub fn new(
        deliveries: Arc<dyn DeliveryStore>,
        clock: Arc<dyn Clock>,
        retention_secs: i64,
    ) -> Self {
        Operator {
            deliveries,
            clock,
            retention_secs,
        }
    }

    /// Records that need a person, oldest first.
    pub async fn pending(&self) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.deliveries.pending(self.clock.now()).await
    }

    /// The record of `route` under `key` (as `pending` prints it, or a bare externalId).
    pub async fn status(
        &self,
        route: &str,
        key: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let key = ItemKey::parse(key);
        let id = RecordId {
            route,
            key: key.as_str(),
        };
        self.deliveries.get(id, self.clock.now()).await
    }

    /// Settles a held record. Answers the record as it was before.
    pub async fn resolve(
        &self,
        route: &str,
        key: &str,
        resolution: Resolution,
    ) -> Result<DeliveryRecord, OperatorError> {
        let key = ItemKey::parse(key);
        let id = RecordId {
            route,
            key: key.as_str(),
        };
        let now = self.clock.now();
        let record =
            self.deliveries
                .get(id, now)
                .await?
                .ok_or_else(|| OperatorError::NoRecord {
                    route: route.to_string(),
                    key: key.as_str().to_string(),
                })?;
        let keep = settled_expiry(record.expires_at, now, self.retention_secs);
        let to = resolved(resolution).until(keep);
        if !self.deliveries.resolve(id, &to, now).await? {
            return Err(OperatorError::NotResolvable {
                state: record.state.name(),
            });
        }
        Ok(record)
    }
}

/// The record's new state: the payout's answer (the panel has no read API, so only its id), or
/// "not created", which a later delivery takes over like any failure.
pub fn resolved(resolution: Resolution) -> Transition {
    match resolution {
        Resolution::Created { payout_id } => Transition {
            state: DeliveryState::Completed {
                status: CREATED,
                body: json!({ "payments": [{ "id": payout_id }], "resolvedByOperator": true })
                    .to_string(),
            },
            payout_id: Some(payout_id),
            expires_at: None,
        },
        Resolution::NotCreated => Transition::to(failed_state(&BridgeError::new(
            ErrorKind::PanelUnavailable,
            "resolved by an operator: not created at the panel",
        ))),
    }
}

/// Why a record needs a person, in words.
pub fn pending_reason(record: &DeliveryRecord) -> String {
    match &record.state {
        DeliveryState::OutcomeUnknown { reason } => reason.clone(),
        _ => "still in progress past its deadline (the invocation died)".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The dead-letter queue

/// One message of the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    /// The command's route, key and externalId (`None` for a message that is not a command).
    pub route: Option<String>,
    pub key: Option<String>,
    pub external_id: Option<String>,
    /// SQS's ApproximateReceiveCount (the receives on the queue; each listing adds one).
    pub receive_count: u32,
    /// The last error, from the command's record: a FAILED record's answer, why it is held, or
    /// that it is still in progress; `None` when unknown (no record, or no `BRIDGE_TABLE`).
    pub last_error: Option<String>,
}

/// What a redrive moved (or, with `--dry-run`, would move).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redrive {
    pub moved: Vec<DeadLetter>,
    /// SQS's message-move task was started for everything (the messages move in the
    /// background; `moved` is then empty).
    pub move_task: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueOperatorError {
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The operator's view of the queue.
pub struct QueueOperator {
    queue: Arc<dyn Queue>,
    deliveries: Option<Arc<dyn DeliveryStore>>,
    clock: Arc<dyn Clock>,
    poll_wait: Duration,
}

/// How long a listed message stays hidden from other readers while the listing runs.
const LIST_VISIBILITY_SECS: u32 = 30;

impl QueueOperator {
    pub fn new(
        queue: Arc<dyn Queue>,
        deliveries: Option<Arc<dyn DeliveryStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        QueueOperator {
            queue,
            deliveries,
            clock,
            poll_wait: Duration::from_secs(1),
        }
    }

    /// How long each receive of a listing waits for messages (default 1 s: SQS's short polls
    /// sample only some of its servers; zero on an emulator that answers everything at once).
    pub fn with_poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait;
        self
    }

    /// Receives every message of the dead-letter queue once (each hidden while the listing
    /// runs), and hands them to `each`; the messages `each` keeps (answers true for) are
    /// returned, the others made visible again at once.
    async fn sweep(
        &self,
        mut each: impl FnMut(&QueueMessage) -> bool,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let mut seen = HashSet::new();
        let mut kept = Vec::new();
        let mut released = Vec::new();
        loop {
            let batch = self
                .queue
                .receive(
                    QueueName::DeadLetters,
                    10,
                    self.poll_wait,
                    Some(LIST_VISIBILITY_SECS),
                )
                .await?;
            let fresh: Vec<QueueMessage> = batch
                .into_iter()
                .filter(|m| seen.insert(m.id.clone()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for m in fresh {
                if each(&m) {
                    kept.push(m);
                } else {
                    released.push(m);
                }
            }
        }
        for m in &released {
            let _ = self
                .queue
                .change_visibility(QueueName::DeadLetters, &m.receipt, 0)
                .await;
        }
        Ok(kept)
    }

    async fn describe(&self, m: &QueueMessage) -> DeadLetter {
        let item = QueuedCommand::parse(&m.body).ok();
        let last_error = match (&item, &self.deliveries) {
            (Some(item), Some(deliveries)) => {
                let id = RecordId {
                    route: &item.route,
                    key: &item.key,
                };
                match deliveries.get(id, self.clock.now()).await {
                    Ok(Some(record)) => last_error(&record),
                    Ok(None) => None,
                    Err(e) => Some(format!("(record unreadable: {e})")),
                }
            }
            _ => None,
        };
        DeadLetter {
            message_id: m.id.clone(),
            route: item.as_ref().map(|i| i.route.clone()),
            key: item.as_ref().map(|i| i.key.clone()),
            external_id: item.as_ref().and_then(|i| i.external_id.clone()),
            receive_count: m.receive_count,
            last_error,
        }
    }

    /// The messages of the dead-letter queue, each with its command and last error.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueOperatorError> {
        let all = self.sweep(|_| true).await?;
        let mut out = Vec::with_capacity(all.len());
        for m in &all {
            out.push(self.describe(m).await);
            let _ = self
                .queue
                .change_visibility(QueueName::DeadLetters, &m.receipt, 0)
                .await;
        }
        Ok(out)
    }

    /// Moves dead letters back to the queue: those of `key` (as `status` takes it), or all of
    /// them. All of them, for real: SQS's message-move task where it exists, else one by one
    /// (receive, send, delete). With `dry_run`, lists what would move and moves nothing.
    pub async fn redrive(
        &self,
        key: Option<&str>,
        dry_run: bool,
    ) -> Result<Redrive, QueueOperatorError> {
        if key.is_none() && !dry_run {
            match self.queue.start_redrive_all().await {
                Ok(()) => {
                    return Ok(Redrive {
                        moved: Vec::new(),
                        move_task: true,
                    })
                }
                Err(e) => tracing::info!(
                    error = %e,
                    "no message-move task here; moving the messages one by one"
                ),
            }
        }
        let wanted = key.map(|k| ItemKey::parse(k).as_str().to_string());
        let matches = |m: &QueueMessage| match &wanted {
            None => true,
            Some(k) => QueuedCommand::parse(&m.body).is_ok_and(|i| &i.key == k),
        };
        let chosen = self.sweep(matches).await?;
        let mut moved = Vec::with_capacity(chosen.len());
        for m in &chosen {
            let letter = self.describe(m).await;
            if dry_run {
                let _ = self
                    .queue
                    .change_visibility(QueueName::DeadLetters, &m.receipt, 0)
                    .await;
            } else {
                self.queue.send(std::slice::from_ref(&m.body)).await?;
                self.queue
                    .delete(QueueName::DeadLetters, &m.receipt)
                    .await?;
            }
            moved.push(letter);
        }
        Ok(Redrive {
            moved,
            move_task: false,
        })
    }
}

/// A record's last error, in words, for `dead-letters`.
fn last_error(record: &DeliveryRecord) -> Option<String> {
    match &record.state {
        DeliveryState::Failed { status, body } => {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            Some(format!(
                "{status} {}: {}",
                v["error"]["type"].as_str().unwrap_or("?"),
                v["error"]["message"].as_str().unwrap_or("")
            ))
        }
        DeliveryState::InProgress { .. } => {
            Some("in progress (another worker, or one that stopped)".into())
        }
        DeliveryState::OutcomeUnknown { reason } => {
            Some(format!("outcome unknown, held: {reason}"))
        }
        DeliveryState::Completed { status, .. } => {
            Some(format!("settled since ({status}); a redrive replays it"))
        }
        DeliveryState::Queued { .. } | DeliveryState::Cancelled => None,
    }
}
