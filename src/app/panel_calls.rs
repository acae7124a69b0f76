//! The panel calls with the token: a refused token is re-issued once and the call retried once.
//! Each call ends as a [`Called`]: done, or not done with the rules' [`CallEnd`] and the error
//! the sender sees.

use super::bridge::{Bridge, Route};
use super::intake::short;
use crate::domain::delivery::CallEnd;
use crate::domain::Action;
use crate::error::{BridgeError, ErrorKind};
use crate::ports::{CreatedPayout, PanelOutcome, Secret};
use crate::telemetry::{self, names};

/// How a panel call ended.
pub(crate) enum Called<T> {
    Done(T),
    NotDone {
        end: CallEnd,
        error: BridgeError,
        /// Why, for the record and the log (never shown to the sender).
        reason: String,
    },
}

impl Bridge {
    /// Calls the panel with a token; on a refused token, re-authenticates once and retries once.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<PanelOutcome<T>, BridgeError>
    where
        F: Fn(Secret) -> Fut,
        Fut: std::future::Future<Output = PanelOutcome<T>>,
    {
        let token = self.tokens.token().await?;
        match call(token.clone()).await {
            PanelOutcome::TokenRefused => {
                tracing::info!("panel refused the token; re-authenticating once");
                telemetry::count(names::TOKEN_REFRESHES, 1, "-", None);
                self.tokens.refused(&token).await;
                let fresh = self.tokens.token().await?;
                Ok(call(fresh).await)
            }
            other => Ok(other),
        }
    }

    pub(crate) async fn call_create(
        &self,
        route: &Route,
        body: &serde_json::Value,
    ) -> Called<CreatedPayout> {
        let outcome = self
            .with_token(|token| async move { self.panel.create(&token, body).await })
            .await;
        self.called(route, Action::Create, outcome)
    }

    pub(crate) async fn call_cancel(&self, route: &Route, ids: &[u64]) -> Called<u64> {
        let outcome = self
            .with_token(|token| async move { self.panel.cancel(&token, ids).await })
            .await;
        self.called(route, Action::Cancel, outcome)
    }

    fn called<T>(
        &self,
        route: &Route,
        action: Action,
        outcome: Result<PanelOutcome<T>, BridgeError>,
    ) -> Called<T> {
        let what = action.as_str();
        let outcome = match outcome {
            Ok(o) => o,
            // No token: nothing was sent (password refused, token store down).
            Err(error) => {
                return Called::NotDone {
                    end: CallEnd::NotSent,
                    reason: error.message.clone(),
                    error,
                }
            }
        };
        match outcome {
            PanelOutcome::Done(t) => Called::Done(t),
            PanelOutcome::Rejected { kind, message } => {
                tracing::info!(panel_error = %kind, "panel rejected the {what}");
                telemetry::count(names::PANEL_REJECTED, 1, &route.name, Some(&kind));
                let text = if message.is_empty() {
                    format!("the panel rejected the {what}")
                } else {
                    format!("the panel rejected the {what}: {}", short(&message, 200))
                };
                Called::NotDone {
                    end: CallEnd::NothingDone,
                    error: BridgeError::new(ErrorKind::from_panel_type(&kind), text),
                    reason: format!("rejected: {kind}"),
                }
            }
            PanelOutcome::TokenRefused => Called::NotDone {
                end: CallEnd::NothingDone,
                error: BridgeError::new(
                    ErrorKind::PanelAuthFailed,
                    "the panel refused a freshly issued token",
                ),
                reason: "token refused twice".into(),
            },
            PanelOutcome::NotSent(reason) => {
                tracing::warn!(%reason, "panel unreachable");
                telemetry::count(names::PANEL_UNAVAILABLE, 1, &route.name, None);
                Called::NotDone {
                    end: CallEnd::NotSent,
                    error: BridgeError::new(
                        ErrorKind::PanelUnavailable,
                        "the panel could not be reached; nothing was sent, retry later",
                    ),
                    reason,
                }
            }
            PanelOutcome::Unknown(reason) => Called::NotDone {
                end: CallEnd::Unknown,
                error: BridgeError::new(
                    ErrorKind::PanelOutcomeUnknown,
                    match action {
                        Action::Create => "the create was sent but no usable answer came back; the payout may exist. It is held for an operator (payout-bridge pending) and will not be sent again",
                        Action::Cancel => "the panel did not answer the cancel; it may or may not be applied, sending it again is safe",
                    },
                ),
                reason,
            },
        }
    }
}
