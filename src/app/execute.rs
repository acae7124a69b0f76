//! One command under its key: write the record (or meet the one stored), carry out what
//! `domain::delivery::decide` says, call the panel, settle the record. The rules are the
//! domain's; this file only does what they say.

use super::answer::{log_outcome, Success};
use super::bridge::{Bridge, Route};
use super::intake::short;
use super::panel_calls::Called;
use crate::domain::delivery::{
    self, decide, plan_cancel, settle, Decision, Incoming, ItemKey, Settlement,
};
use crate::domain::{CancelPayouts, Command, CreatePayout};
use crate::error::{BridgeError, ErrorKind};
use crate::ports::{Begin, DeliveryRecord, DeliveryState, RecordId, StoreError, Transition};
use crate::telemetry::{self, names};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::Instrument;

static ATTEMPTS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn new_attempt_id() -> String {
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        ATTEMPTS.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn state_unavailable(e: StoreError) -> BridgeError {
    tracing::error!(error = %e, "delivery store unavailable");
    BridgeError::new(
        ErrorKind::StateUnavailable,
        "the delivery record store is unavailable; nothing was sent to the panel, retry later",
    )
}

/// The stored form of an answer that is not a success.
pub(crate) fn failed_state(e: &BridgeError) -> DeliveryState {
    DeliveryState::Failed {
        status: e.status(),
        body: e.body().to_string(),
    }
}

fn held_for_operator() -> BridgeError {
    BridgeError::new(
        ErrorKind::PanelOutcomeUnknown,
        "an earlier delivery with this key reached the panel without an answer; it is held for an operator (payout-bridge pending) and will not be sent again",
    )
}

fn in_progress() -> BridgeError {
    BridgeError::new(
        ErrorKind::RequestInProgress,
        "a delivery with this idempotency key is being processed; retry in a few seconds",
    )
}

/// How a command's panel work ended: what to record, and the answer.
struct Outcome {
    to: Transition,
    answer: Result<Success, BridgeError>,
}

impl Outcome {
    fn done(status: u16, body: serde_json::Value, payout_id: Option<u64>) -> Self {
        Outcome {
            to: Transition {
                state: DeliveryState::Completed {
                    status,
                    body: body.to_string(),
                },
                payout_id,
                expires_at: None,
            },
            answer: Ok(Success {
                status,
                body,
                replayed: false,
            }),
        }
    }

    /// Nothing happened at the panel (or, for a cancel, sending again is safe).
    fn failed(e: BridgeError) -> Self {
        Outcome {
            to: Transition::to(failed_state(&e)),
            answer: Err(e),
        }
    }

    fn from_settlement(settlement: Settlement, error: BridgeError, reason: String) -> Self {
        match settlement {
            Settlement::Hold => Outcome {
                to: Transition::to(DeliveryState::OutcomeUnknown { reason }),
                answer: Err(error),
            },
            Settlement::Fail | Settlement::Complete => Outcome::failed(error),
        }
    }
}

impl Bridge {
    /// One command under its key: record, call the panel, settle the record.
    pub(crate) async fn execute(
        &self,
        route: &Route,
        key: &ItemKey,
        cmd: Command,
    ) -> Result<Success, BridgeError> {
        let span = tracing::info_span!("command", key = %short(key.as_str(), 120), action = cmd.action().as_str());
        self.execute_in_span(route, key, cmd).instrument(span).await
    }

    async fn execute_in_span(
        &self,
        route: &Route,
        key: &ItemKey,
        cmd: Command,
    ) -> Result<Success, BridgeError> {
        let now = self.clock.now();
        let attempt = new_attempt_id();
        let id = RecordId {
            route: &route.name,
            key: key.as_str(),
        };
        let record = DeliveryRecord::new(
            &route.name,
            key,
            &cmd,
            DeliveryState::InProgress {
                deadline: now + self.limits.in_progress_timeout_secs,
            },
            attempt.clone(),
            now,
            self.limits.retention_secs,
        );
        let begun = match self.deliveries.begin(&record, now).await {
            Ok(begun) => begun,
            Err(e) => {
                // The write may have landed with only its answer lost (every SDK attempt).
                // Nothing was sent to the panel: if our record is there, mark it failed, so that
                // the sender's retry is a fresh try rather than 409 and then 504 held for an
                // operator. Conditional on our attempt; harmless when the store is really down.
                let e = state_unavailable(e);
                let failed = Transition::to(failed_state(&e));
                let cleanup = self
                    .deliveries
                    .finish(id, &attempt, &failed, self.clock.now());
                let _ = tokio::time::timeout(Duration::from_secs(1), cleanup).await;
                return Err(e);
            }
        };
        if let Begin::Existing(existing) = begun {
            let incoming = Incoming {
                route: &route.name,
                fingerprint: &record.fingerprint,
                action: cmd.action(),
            };
            let decision = decide(Some(&existing), &incoming, now);
            let answer = self.carry_out(route, &existing, decision).await;
            let outcome = if answer.is_ok() {
                "REPLAYED"
            } else {
                existing.state.name()
            };
            log_outcome(&answer, outcome);
            return answer;
        }

        let outcome = match &cmd {
            Command::Create(c) => self.create(route, c).await,
            Command::Cancel(c) => self.cancel(route, c, now).await,
        };
        if let DeliveryState::OutcomeUnknown { reason } = &outcome.to.state {
            telemetry::count(names::OUTCOME_UNKNOWN, 1, &route.name, None);
            tracing::error!(key = %key, %reason, "panel outcome unknown; held for an operator");
        }
        let keep = delivery::settled_expiry(
            record.expires_at,
            self.clock.now(),
            self.limits.retention_secs,
        );
        self.settle_record(route, id, &attempt, &outcome.to.clone().until(keep))
            .await;
        log_outcome(&outcome.answer, outcome.to.state.name());
        outcome.answer
    }

    /// Carries out the decision about a record that was already there.
    pub(super) async fn carry_out(
        &self,
        route: &Route,
        existing: &DeliveryRecord,
        decision: Decision,
    ) -> Result<Success, BridgeError> {
        let id = RecordId {
            route: &route.name,
            key: &existing.key,
        };
        let now = self.clock.now();
        match decision {
            Decision::Replay { status, body } => {
                telemetry::count(names::REPLAYS, 1, &route.name, None);
                let body = serde_json::from_str(&body).map_err(|e| {
                    tracing::error!(error = %e, "stored answer is not JSON");
                    BridgeError::internal()
                })?;
                Ok(Success {
                    status,
                    body,
                    replayed: true,
                })
            }
            Decision::KeyReused { other_route } => Err(BridgeError::new(
                ErrorKind::IdempotencyKeyReused,
                if other_route {
                    format!(
                        "`{}` already names a payout made through another route; an externalId names one payout",
                        short(&existing.key, 80)
                    )
                } else {
                    format!(
                        "idempotency key `{}` was already used for a different payload; send the original payload again or use a new key",
                        short(&existing.key, 80)
                    )
                },
            )),
            Decision::CancelledBeforeCreated => Err(BridgeError::new(
                ErrorKind::PayoutCancelled,
                format!(
                    "cancelled before it was created: a cancel named `{}` before any payout was made for it, so it will not be created",
                    short(existing.external_id.as_deref().unwrap_or(&existing.key), 80)
                ),
            )),
            // A queued route's command waiting for the worker (a route that was queued before).
            Decision::InProgress | Decision::Queued => Err(in_progress()),
            Decision::Held => Err(held_for_operator()),
            Decision::HoldDeadCreate => {
                let reason = "the invocation handling it stopped before recording an answer";
                match self.deliveries.expire_in_progress(id, reason, now).await {
                    Ok(true) => {
                        telemetry::count(names::OUTCOME_UNKNOWN, 1, &route.name, None);
                        tracing::error!(key = %existing.key, "stale in-progress record marked outcome unknown");
                    }
                    Ok(false) => {}
                    Err(e) => return Err(state_unavailable(e)),
                }
                Err(held_for_operator())
            }
            Decision::ReleaseDeadCancel => {
                // A cancel is safe to send again: release the record (FAILED) so that the
                // sender's next retry runs it, rather than holding it for an operator.
                let e = BridgeError::new(
                    ErrorKind::PanelOutcomeUnknown,
                    "a cancel with this key stopped before recording an answer; sending it again is safe",
                );
                let keep =
                    delivery::settled_expiry(existing.expires_at, now, self.limits.retention_secs);
                self.deliveries
                    .resolve(id, &Transition::to(failed_state(&e)).until(keep), now)
                    .await
                    .map_err(state_unavailable)?;
                Err(e)
            }
            // The record became startable between the write and the read (it expired or
            // failed meanwhile): the sender's retry starts it.
            Decision::Start => Err(in_progress()),
        }
    }

    /// Records how a command ended. A store failure here must not change the answer: the
    /// panel has acted (or not) already. The record then stays in progress and shows up in
    /// `pending` once its deadline passes, so it is never re-sent.
    async fn settle_record(&self, route: &Route, id: RecordId<'_>, attempt: &str, to: &Transition) {
        for attempt_no in 0..3u32 {
            let now = self.clock.now();
            match self.deliveries.finish(id, attempt, to, now).await {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(
                        key = id.key,
                        state = to.state.name(),
                        "delivery record changed under us (deadline passed?); answer stands, record left as is"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(key = id.key, error = %e, attempt_no, "could not settle the delivery record");
                    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt_no))).await;
                }
            }
        }
        telemetry::count(names::STATE_UNAVAILABLE, 1, &route.name, None);
        tracing::error!(
            key = id.key,
            state = to.state.name(),
            "delivery record could not be settled; it will show in `pending` after the in-progress timeout"
        );
    }

    async fn create(&self, route: &Route, c: &CreatePayout) -> Outcome {
        let body = c.panel_body();
        match self.call_create(route, &body).await {
            Called::Done(payout) => {
                tracing::info!(payout_id = payout.id, "payout created");
                telemetry::count(names::PAYOUTS_CREATED, 1, &route.name, None);
                Outcome::done(super::operator::CREATED, payout.body, Some(payout.id))
            }
            Called::NotDone { end, error, reason } => {
                Outcome::from_settlement(settle(crate::domain::Action::Create, end), error, reason)
            }
        }
    }

    async fn cancel(&self, route: &Route, c: &CancelPayouts, now: i64) -> Outcome {
        let mut ids = c.ids.clone();
        let mut unknown = Vec::new();
        if !c.external_ids.is_empty() {
            let found = match self
                .deliveries
                .creates_by_external_id(&c.external_ids, now)
                .await
            {
                Ok(found) => found,
                Err(e) => return Outcome::failed(state_unavailable(e)),
            };
            let plan = plan_cancel(&c.external_ids, &found, now);
            if let Some(first) = plan.blocked.first() {
                return Outcome::failed(create_in_flight(first));
            }
            let keep_until = now.saturating_add(self.limits.retention_secs);
            for ext in &plan.to_record {
                match self
                    .deliveries
                    .record_cancellation(&route.name, ext, keep_until, now)
                    .await
                {
                    Ok(true) => {
                        tracing::info!(
                            "cancel recorded before any create: a later create is refused"
                        )
                    }
                    // A create started meanwhile: decide again on the sender's retry.
                    Ok(false) => return Outcome::failed(create_in_flight(ext)),
                    Err(e) => return Outcome::failed(state_unavailable(e)),
                }
            }
            for id in plan.payout_ids {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            unknown = plan.unknown;
        }
        let answer = |success: u64| {
            let mut body = json!({ "success": success });
            if !unknown.is_empty() {
                body["unknownExternalIds"] = json!(unknown);
            }
            body
        };
        if ids.is_empty() {
            return Outcome::done(200, answer(0), None);
        }
        let mut called = self.call_cancel(route, &ids).await;
        if let Called::NotDone { end, .. } = &called {
            if delivery::retry_at_once(crate::domain::Action::Cancel, *end) {
                tracing::warn!("cancel got no answer; retrying once");
                called = self.call_cancel(route, &ids).await;
            }
        }
        match called {
            Called::Done(n) => {
                tracing::info!(cancelled = n, "payouts cancelled");
                telemetry::count(names::PAYOUTS_CANCELLED, n, &route.name, None);
                Outcome::done(200, answer(n), None)
            }
            Called::NotDone { end, error, reason } => {
                if end == delivery::CallEnd::Unknown {
                    tracing::warn!(%reason, "cancel outcome unknown");
                }
                Outcome::from_settlement(settle(crate::domain::Action::Cancel, end), error, reason)
            }
        }
    }
}

/// The answer to a cancel that names an externalId whose create is running or held.
fn create_in_flight(external_id: &str) -> BridgeError {
    BridgeError::new(
        ErrorKind::RequestInProgress,
        format!(
            "a create for externalId `{}` is in progress or its outcome is unknown (held for an operator); nothing was cancelled, retry later",
            short(external_id, 80)
        ),
    )
}
