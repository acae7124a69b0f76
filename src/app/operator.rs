//! The operator's commands, on the delivery store alone: `pending` (what needs a person),
//! `status` (one record), `resolve` (settle a held one after checking the panel).

use super::execute::failed_state;
use crate::domain::delivery::{settled_expiry, DeliveryRecord, DeliveryState, ItemKey};
use crate::error::{BridgeError, ErrorKind};
use crate::ports::{Clock, DeliveryStore, RecordId, StoreError, Transition};
use serde_json::json;
use std::sync::Arc;

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
