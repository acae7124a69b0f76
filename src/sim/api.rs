//! The panel API (`/api/...`): request parsing and validation, error bodies,
//! and the fault-injection middleware.

use std::str::FromStr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::dates::parse_date;
use super::model::{
    is_currency_code, ApiError, ApiPayment, FaultAction, NewPayment, RejectType, Shared,
    EMPTY_FIELD,
};
use super::server::KillSwitch;

/// Marks a response as an API error body, so that the fault layer can turn
/// its status into 200 when `errors_with_status_200` is on.
#[derive(Debug, Clone, Copy)]
struct ErrorMarker;

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParams(_) => StatusCode::BAD_REQUEST,
            ApiError::InsufficientFunds { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::Token => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Injected(RejectType::InvalidParams) => StatusCode::BAD_REQUEST,
            ApiError::Injected(RejectType::InsufficientFunds) => StatusCode::PAYMENT_REQUIRED,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::InsufficientFunds { .. }
            | ApiError::Injected(RejectType::InsufficientFunds) => "INSUFFICIENT_FUNDS",
            _ => "INVALID_PARAMS",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "message": self.to_string(), "type": self.kind() },
            "errors": [],
        });
        let mut response = (self.status(), Json(body)).into_response();
        response.extensions_mut().insert(ErrorMarker);
        response
    }
}

/// Routes of the panel API plus the given control routes, a JSON 404
/// fallback, and the fault layer (which only acts on `/api/` paths).
pub(super) fn app(shared: Arc<Shared>, control: Router<Arc<Shared>>) -> Router {
    Router::new()
        .route("/api/authenticate", post(authenticate))
        .route("/api/payment/create", post(create))
        .route("/api/payment/cancel", post(cancel))
        .merge(control)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), fault_layer))
        .with_state(shared)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(request.uri().path().to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

const HTML_500: &str = "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\
<body><h1>Internal Server Error</h1><p>The server encountered an internal error.</p></body></html>\n";

/// The panel's error shape for a server failure (`internal_error_*_next` faults).
const INTERNAL_ERROR_BODY: &str =
    r#"{"error":{"message":"Internal server error","type":"INTERNAL_ERROR"},"errors":[]}"#;

/// HTTP 500 with [`INTERNAL_ERROR_BODY`]. Not an [`ErrorMarker`] answer: a server failure stays
/// a 500 even with `errors_with_status_200`.
fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        INTERNAL_ERROR_BODY,
    )
        .into_response()
}

const GARBAGE: &str = "<<<\u{fffd}garbled\u{0} {\"payments\":[{\"id\":";

async fn fault_layer(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if !is_api_path(&path) {
        return next.run(request).await;
    }
    let is_post = request.method() == Method::POST;
    // In flight from here until this future ends, however it ends (a dropped connection too).
    struct InFlight(Arc<Shared>);
    impl Drop for InFlight {
        fn drop(&mut self) {
            self.0.leave();
        }
    }
    shared.enter();
    let _in_flight = InFlight(shared.clone());
    let (latency, action) = shared.take_fault(is_post, &path);
    tracing::debug!(%path, ?action, ?latency, "panel-sim: api request");
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let kill = request.extensions().get::<KillSwitch>().cloned();
    let mut response = match action {
        FaultAction::DropBefore => {
            tracing::info!(%path, "panel-sim fault: dropping connection before processing");
            return close_connection(kill).await;
        }
        FaultAction::Fail => {
            tracing::info!(%path, "panel-sim fault: HTTP 500 HTML");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                HTML_500,
            )
                .into_response();
        }
        FaultAction::InternalErrorBefore => {
            tracing::info!(%path, "panel-sim fault: HTTP 500 API error before processing");
            return internal_error();
        }
        FaultAction::Reject(kind) => {
            tracing::info!(%path, ?kind, "panel-sim fault: injected API error");
            ApiError::Injected(kind).into_response()
        }
        FaultAction::None
        | FaultAction::DropAfter
        | FaultAction::InternalErrorAfter
        | FaultAction::Garbage => next.run(request).await,
    };
    match action {
        FaultAction::DropAfter => {
            tracing::info!(%path, status = %response.status(), "panel-sim fault: dropping connection after processing");
            close_connection(kill).await
        }
        FaultAction::InternalErrorAfter => {
            tracing::info!(%path, status = %response.status(), "panel-sim fault: HTTP 500 API error after processing");
            internal_error()
        }
        FaultAction::Garbage => {
            tracing::info!(%path, status = %response.status(), "panel-sim fault: garbage answer after processing");
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                )],
                Body::from(GARBAGE),
            )
                .into_response()
        }
        _ => {
            if response.extensions().get::<ErrorMarker>().is_some()
                && shared.errors_with_status_200()
            {
                *response.status_mut() = StatusCode::OK;
            }
            response
        }
    }
}

/// Makes the connection task drop the connection (no response at all), then
/// never completes: this future is dropped along with the connection.
async fn close_connection(kill: Option<KillSwitch>) -> Response {
    match kill {
        Some(kill) => {
            kill.trigger();
            std::future::pending::<Response>().await
        }
        None => {
            // Served by something other than `server::accept_loop`.
            tracing::error!("panel-sim: no connection kill switch; answering 500 instead");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "connection drop unavailable",
            )
                .into_response()
        }
    }
}

// ----- body parsing ------------------------------------------------------

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case("+json"))
        })
}

/// The JSON object body. Like the panel's body parser, a body without a JSON
/// content type is ignored (so every required field is "empty").
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if !is_json(headers) {
        if !body.is_empty() {
            tracing::warn!("panel-sim: request body ignored: Content-Type is not application/json");
        }
        return Ok(Map::new());
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidParams(
            "Request body must be a JSON object".to_owned(),
        )),
        Err(err) => Err(ApiError::InvalidParams(format!(
            "Malformed JSON body: {err}"
        ))),
    }
}

fn reject_unknown(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ApiError::InvalidParams(format!(
            "Unknown parameter '{key}'"
        ))),
        None => Ok(()),
    }
}

fn invalid(field: &str, expected: &str) -> ApiError {
    ApiError::InvalidParams(format!("Invalid value of '{field}': expected {expected}"))
}

fn empty(field: &str) -> ApiError {
    ApiError::InvalidParams(format!("{EMPTY_FIELD} ({field})"))
}

/// A required non-empty string.
fn required_str(map: &Map<String, Value>, field: &str) -> Result<String, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Err(empty(field)),
        Some(Value::String(s)) if s.trim().is_empty() => Err(empty(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid(field, "a string")),
    }
}

/// An optional string; `null` and `""` count as absent.
fn optional_str(map: &Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(field, "a string")),
    }
}

/// Exact decimal value of a JSON number, from its textual form (never via
/// float arithmetic).
fn number_to_decimal(n: &serde_json::Number) -> Option<Decimal> {
    let text = n.to_string();
    Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .ok()
}

fn token(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-access-token").and_then(|v| v.to_str().ok())
}

// ----- handlers ----------------------------------------------------------

async fn authenticate(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let parsed = parse_body(&headers, &body).and_then(|map| {
        reject_unknown(&map, &["apiKey"])?;
        match map.get("apiKey") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid("apiKey", "a string")),
        }
    });
    let result = match parsed {
        Ok(key) => shared.authenticate(key.as_deref()),
        Err(err) => {
            shared.count_authenticate_failure();
            Err(err)
        }
    };
    match result {
        Ok(token) => {
            tracing::info!("panel-sim: token issued");
            Ok(Json(json!({ "token": token })))
        }
        Err(err) => {
            tracing::info!(error = %err, "panel-sim: authentication rejected");
            Err(err)
        }
    }
}

const CREATE_FIELDS: &[&str] = &[
    "amount",
    "currency",
    "startDate",
    "endDate",
    "name",
    "description",
    "userName",
    "phoneNumber",
    "referenceId",
    "firstName",
    "lastName",
    "email",
    "notification",
];

/// Validates a create body into a [`NewPayment`].
fn validate_create(map: &Map<String, Value>) -> Result<NewPayment, ApiError> {
    reject_unknown(map, CREATE_FIELDS)?;

    let amount = match map.get("amount") {
        None | Some(Value::Null) => return Err(empty("amount")),
        Some(Value::Number(n)) => {
            number_to_decimal(n).ok_or_else(|| invalid("amount", "a decimal number"))?
        }
        Some(_) => return Err(invalid("amount", "a number")),
    };
    if amount <= Decimal::ZERO {
        return Err(invalid("amount", "a number greater than 0"));
    }

    let currency = required_str(map, "currency")?;
    if !is_currency_code(&currency) {
        return Err(invalid("currency", "a 3-letter upper-case currency code"));
    }

    let start_text = required_str(map, "startDate")?;
    let start = parse_date(&start_text)
        .ok_or_else(|| invalid("startDate", "an ISO 8601 or RFC 2822 date"))?;
    let end_text = required_str(map, "endDate")?;
    let end =
        parse_date(&end_text).ok_or_else(|| invalid("endDate", "an ISO 8601 or RFC 2822 date"))?;
    if end <= start {
        return Err(ApiError::InvalidParams(
            "Invalid value of 'endDate': must be after 'startDate'".to_owned(),
        ));
    }

    let project_name = required_str(map, "name")?;
    let description = required_str(map, "description")?;

    let user_name = optional_str(map, "userName")?;
    let phone_number = optional_str(map, "phoneNumber")?;
    let reference_id = match map.get("referenceId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v @ (Value::String(_) | Value::Number(_))) => Some(v.clone()),
        Some(_) => return Err(invalid("referenceId", "a string or a number")),
    };
    if user_name.is_none() && phone_number.is_none() && reference_id.is_none() {
        return Err(empty("userName, phoneNumber or referenceId"));
    }

    let first_name = optional_str(map, "firstName")?;
    let last_name = optional_str(map, "lastName")?;
    let email = optional_str(map, "email")?;

    let notification = match map.get("notification") {
        None | Some(Value::Null) => return Err(empty("notification")),
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("notification", "a boolean")),
    };

    Ok(NewPayment {
        amount,
        currency,
        start,
        end,
        project_name,
        description,
        user_name,
        phone_number,
        reference_id,
        first_name,
        last_name,
        email,
        notification,
    })
}

/// `{"payments":[...]}` with the payout's fields in the documented order.
#[derive(Debug, Serialize)]
struct CreateResponse {
    payments: [ApiPayment; 1],
}

async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CreateResponse>, ApiError> {
    if let Err(err) = shared.check_token(token(&headers)) {
        tracing::info!("panel-sim: create rejected: bad token");
        return Err(err);
    }
    let new = match parse_body(&headers, &body).and_then(|map| validate_create(&map)) {
        Ok(new) => new,
        Err(err) => {
            shared.count_create_rejected();
            tracing::info!(error = %err, "panel-sim: create rejected");
            return Err(err);
        }
    };
    match shared.create_payment(new) {
        Ok(view) => Ok(Json(CreateResponse { payments: [view] })),
        Err(err) => {
            tracing::info!(error = %err, "panel-sim: create rejected");
            Err(err)
        }
    }
}

/// Validates a cancel body; unknown (negative) ids become `None`.
fn validate_cancel(map: &Map<String, Value>) -> Result<Vec<Option<u64>>, ApiError> {
    reject_unknown(map, &["ids"])?;
    let ids = match map.get("ids") {
        None | Some(Value::Null) => return Err(empty("ids")),
        Some(Value::Array(ids)) if ids.is_empty() => return Err(empty("ids")),
        Some(Value::Array(ids)) => ids,
        Some(_) => return Err(invalid("ids", "an array of payout ids")),
    };
    ids.iter()
        .map(|v| match v {
            Value::Number(n) if n.is_u64() => Ok(n.as_u64()),
            Value::Number(n) if n.is_i64() => Ok(None),
            _ => Err(invalid("ids", "an array of integer payout ids")),
        })
        .collect()
}

async fn cancel(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if let Err(err) = shared.check_token(token(&headers)) {
        tracing::info!("panel-sim: cancel rejected: bad token");
        return Err(err);
    }
    let ids = match parse_body(&headers, &body).and_then(|map| validate_cancel(&map)) {
        Ok(ids) => ids,
        Err(err) => {
            shared.count_cancel_rejected();
            tracing::info!(error = %err, "panel-sim: cancel rejected");
            return Err(err);
        }
    };
    let success = shared.cancel_payments(&ids);
    Ok(Json(json!({ "success": success })))
}
