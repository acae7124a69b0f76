//! The one axum router, served by `payout-bridge serve` (hyper on a TCP port) and by the
//! Lambda function (lambda_http), so both share every line of request handling.

use crate::app::{Bridge, Delivery, Headers, Reply};
use crate::error::{BridgeError, ErrorKind};
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// Renders a [`Reply`] as an HTTP response.
pub fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(reply.body)).into_response();
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
    resp
}

fn error_response(e: BridgeError) -> Response {
    into_response(Reply::error(&e))
}

/// The router: `POST /hooks/{name}`, `GET /health`, JSON errors for everything else.
pub fn router(bridge: Arc<Bridge>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/hooks/{name}", post(hook))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .with_state(bridge)
}

async fn health(State(bridge): State<Arc<Bridge>>) -> Response {
    into_response(Reply::json(
        200,
        serde_json::json!({ "status": "ok", "routes": bridge.route_names() }),
    ))
}

async fn hook(
    State(bridge): State<Arc<Bridge>>,
    name: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    // A route name that does not decode (e.g. `%FF`) names no route.
    let Ok(Path(name)) = name else {
        return not_found().await;
    };
    let (parts, body) = request.into_parts();
    let limit = bridge.limits().max_body_bytes;
    // Refuse early on a declared length over the limit, then read at most limit + 1 bytes.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return error_response(too_large(limit));
    }
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return error_response(too_large(limit)),
    };
    // Every header, decoded lossily: a value that is not visible ASCII must reach the checks
    // (an Idempotency-Key `café` is refused there), not vanish.
    let mut headers = Headers::new();
    for (k, v) in &parts.headers {
        headers.insert(k.as_str(), &String::from_utf8_lossy(v.as_bytes()));
    }
    let uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let reply = bridge
        .handle(Delivery {
            route: &name,
            method: parts.method.as_str(),
            uri: &uri,
            headers: &headers,
            body: &bytes,
            // Under Lambda, lambda_http puts the invocation's context in the extensions.
            deadline: parts
                .extensions
                .get::<lambda_http::Context>()
                .and_then(crate::lambda::invocation_deadline),
        })
        .await;
    into_response(reply)
}

fn too_large(limit: usize) -> BridgeError {
    BridgeError::new(
        ErrorKind::PayloadTooLarge,
        format!("body is larger than {limit} bytes"),
    )
}

async fn not_found() -> Response {
    error_response(BridgeError::new(
        ErrorKind::NotFound,
        "not found; webhooks are POST /hooks/{name}, health is GET /health",
    ))
}

async fn method_not_allowed() -> Response {
    error_response(BridgeError::new(
        ErrorKind::MethodNotAllowed,
        "method not allowed; webhooks are POST /hooks/{name}",
    ))
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("a request handler panicked");
    error_response(BridgeError::internal())
}
