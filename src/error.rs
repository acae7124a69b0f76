//! The one error type of a delivery and its place in the response table.
//!
//! Every answer that is not a success is a [`BridgeError`]; its [`ErrorKind`] alone decides the
//! HTTP status and the `error.type`, so the table in the README lives here and nowhere else.
//! No HTTP type is named: the HTTP layer turns `status()` and `body()` into a response.

use serde_json::{json, Value};

/// The error types of the response table. The panel's own two types are kept as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Invalid body or command, or the panel said INVALID_PARAMS. 400.
    InvalidParams,
    /// Missing or bad signature / key. 401.
    Unauthorized,
    /// The panel said INSUFFICIENT_FUNDS. 402.
    InsufficientFunds,
    /// Unknown route. 404.
    NotFound,
    /// Wrong method on a known path. 405.
    MethodNotAllowed,
    /// A delivery with this idempotency key is being processed right now. 409.
    RequestInProgress,
    /// Body over the limit. 413.
    PayloadTooLarge,
    /// Content type neither JSON nor a form. 415.
    UnsupportedMediaType,
    /// Same idempotency key, different command. 422.
    IdempotencyKeyReused,
    /// A cancel named this externalId before it was created: the create is refused. 422.
    PayoutCancelled,
    /// The panel rejected the call with an error type this version does not know (kept
    /// verbatim). 422.
    PanelRejected(String),
    /// Internal bug. 500, no internals in the body.
    Internal,
    /// The panel refused the password. 502.
    PanelAuthFailed,
    /// The panel could not be reached and nothing was sent. 503 + Retry-After.
    PanelUnavailable,
    /// The state store (DynamoDB) could not be reached, so nothing was sent. 503 + Retry-After.
    StateUnavailable,
    /// Sent, no usable answer: the payout may exist. 504.
    PanelOutcomeUnknown,
}

impl ErrorKind {
    pub fn status(&self) -> u16 {
        match self {
            ErrorKind::InvalidParams => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::InsufficientFunds => 402,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RequestInProgress => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::IdempotencyKeyReused
            | ErrorKind::PayoutCancelled
            | ErrorKind::PanelRejected(_) => 422,
            ErrorKind::Internal => 500,
            ErrorKind::PanelAuthFailed => 502,
            ErrorKind::PanelUnavailable | ErrorKind::StateUnavailable => 503,
            ErrorKind::PanelOutcomeUnknown => 504,
        }
    }

    pub fn type_name(&self) -> &str {
        match self {
            ErrorKind::InvalidParams => "INVALID_PARAMS",
            ErrorKind::Unauthorized => "UNAUTHORIZED",
            ErrorKind::InsufficientFunds => "INSUFFICIENT_FUNDS",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorKind::RequestInProgress => "REQUEST_IN_PROGRESS",
            ErrorKind::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorKind::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorKind::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorKind::PayoutCancelled => "PAYOUT_CANCELLED",
            ErrorKind::PanelRejected(kind) => kind,
            ErrorKind::Internal => "INTERNAL",
            ErrorKind::PanelAuthFailed => "PANEL_AUTH_FAILED",
            ErrorKind::PanelUnavailable => "PANEL_UNAVAILABLE",
            ErrorKind::StateUnavailable => "STATE_UNAVAILABLE",
            ErrorKind::PanelOutcomeUnknown => "PANEL_OUTCOME_UNKNOWN",
        }
    }

    /// Seconds for a `Retry-After` header, for the answers that invite a retry.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ErrorKind::PanelUnavailable | ErrorKind::StateUnavailable => Some(30),
            ErrorKind::RequestInProgress => Some(5),
            _ => None,
        }
    }

    /// The kind for a panel error type.
    pub fn from_panel_type(kind: &str) -> ErrorKind {
        match kind {
            "INVALID_PARAMS" => ErrorKind::InvalidParams,
            "INSUFFICIENT_FUNDS" => ErrorKind::InsufficientFunds,
            other => ErrorKind::PanelRejected(other.to_string()),
        }
    }
}

/// An answer that is not a success: a kind and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {message}", kind.type_name(), kind.status())]
pub struct BridgeError {
    pub kind: ErrorKind,
    pub message: String,
}

impl BridgeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        BridgeError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParams, message)
    }

    /// A bug: the message goes to the log, the sender sees a fixed text.
    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "internal error; the delivery was not processed, it is safe to retry",
        )
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// `{"error":{"message","type"},"errors":[]}`, the panel's own error shape.
    pub fn body(&self) -> Value {
        json!({
            "error": { "message": self.message, "type": self.kind.type_name() },
            "errors": [],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_panel_error_shape() {
        let e = BridgeError::new(ErrorKind::InsufficientFunds, "not enough GBP");
        assert_eq!(e.status(), 402);
        assert_eq!(
            e.body(),
            json!({"error":{"message":"not enough GBP","type":"INSUFFICIENT_FUNDS"},"errors":[]})
        );
    }

    #[test]
    fn unknown_panel_types_are_kept_verbatim() {
        let k = ErrorKind::from_panel_type("ACCOUNT_LOCKED");
        assert_eq!(k.type_name(), "ACCOUNT_LOCKED");
        assert_eq!(k.status(), 422);
        assert_eq!(ErrorKind::from_panel_type("INVALID_PARAMS").status(), 400);
    }

    #[test]
    fn retry_after_only_where_a_retry_helps() {
        assert_eq!(ErrorKind::PanelUnavailable.retry_after(), Some(30));
        assert_eq!(ErrorKind::PanelOutcomeUnknown.retry_after(), None);
    }
}
