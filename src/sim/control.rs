//! Test controls under `/sim/` (no authentication).

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use super::model::{is_currency_code, Faults, RejectType, Shared, StateSnapshot};

/// Error of a control request: HTTP 400 `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
enum ControlError {
    #[error("invalid JSON body: {0}")]
    Body(#[from] serde_json::Error),
    #[error("invalid currency {0:?}: expected 3 upper-case letters")]
    Currency(String),
    #[error("invalid amount {0}: expected a non-negative decimal number")]
    Amount(String),
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ControlError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    Ok(serde_json::from_slice(text)?)
}

pub(super) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/sim/health", get(health))
        .route("/sim/state", get(state))
        .route(
            "/sim/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/sim/revoke-tokens", post(revoke_tokens))
        .route("/sim/password", post(set_password))
        .route("/sim/funds", post(set_funds))
        .route("/sim/reset", post(reset))
}

async fn health() -> Json<Value> {
    Json(json!({ "ok": true }))
}

async fn state(State(shared): State<Arc<Shared>>) -> Json<StateSnapshot> {
    Json(shared.snapshot())
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.faults())
}

/// Some(None) when the field is `null`, None when it is absent.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Body of `POST /sim/faults`: every field optional, merged into the current
/// faults (`only_path: null` clears the path filter).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    latency_ms: Option<u64>,
    fail_next: Option<u32>,
    internal_error_before_next: Option<u32>,
    reject_next: Option<u32>,
    reject_type: Option<RejectType>,
    drop_before_next: Option<u32>,
    drop_after_next: Option<u32>,
    internal_error_after_next: Option<u32>,
    garbage_next: Option<u32>,
    errors_with_status_200: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    only_path: Option<Option<String>>,
}

async fn set_faults(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Json<Faults>, ControlError> {
    let patch: FaultsPatch = parse(&body)?;
    let faults = shared.update_faults(|f| {
        if let Some(v) = patch.latency_ms {
            f.latency_ms = v;
        }
        if let Some(v) = patch.fail_next {
            f.fail_next = v;
        }
        if let Some(v) = patch.internal_error_before_next {
            f.internal_error_before_next = v;
        }
        if let Some(v) = patch.internal_error_after_next {
            f.internal_error_after_next = v;
        }
        if let Some(v) = patch.reject_next {
            f.reject_next = v;
        }
        if let Some(v) = patch.reject_type {
            f.reject_type = v;
        }
        if let Some(v) = patch.drop_before_next {
            f.drop_before_next = v;
        }
        if let Some(v) = patch.drop_after_next {
            f.drop_after_next = v;
        }
        if let Some(v) = patch.garbage_next {
            f.garbage_next = v;
        }
        if let Some(v) = patch.errors_with_status_200 {
            f.errors_with_status_200 = v;
        }
        if let Some(v) = patch.only_path {
            f.only_path = v;
        }
    });
    tracing::info!(?faults, "panel-sim: faults set");
    Ok(Json(faults))
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    tracing::info!("panel-sim: faults cleared");
    Json(shared.clear_faults())
}

async fn revoke_tokens(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let revoked = shared.revoke_tokens();
    tracing::info!(revoked, "panel-sim: tokens revoked");
    Json(json!({ "revoked": revoked }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

async fn set_password(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let PasswordBody { password } = parse(&body)?;
    shared.set_password(password);
    tracing::info!("panel-sim: password changed");
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FundsBody {
    currency: String,
    /// A decimal string (`"1000.00"`) or a JSON number.
    amount: Value,
}

async fn set_funds(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Json<Value>, ControlError> {
    let FundsBody { currency, amount } = parse(&body)?;
    if !is_currency_code(&currency) {
        return Err(ControlError::Currency(currency));
    }
    let text = match &amount {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        other => return Err(ControlError::Amount(other.to_string())),
    };
    let value = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
        .filter(|d| !d.is_sign_negative())
        .ok_or_else(|| ControlError::Amount(amount.to_string()))?;
    shared.set_funds(currency.clone(), value);
    tracing::info!(%currency, amount = %value, "panel-sim: funds set");
    Ok(Json(
        json!({ "currency": currency, "available": value.to_string() }),
    ))
}

async fn reset(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.reset();
    tracing::info!("panel-sim: reset");
    Json(json!({ "ok": true }))
}
