//! The Lambda entry: the shared router behind lambda_http (API Gateway HTTP API payload v2,
//! Lambda function URLs, and `cargo lambda watch`).

use crate::app::Bridge;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::RequestExt;
use std::sync::Arc;
use tracing::Instrument;

/// Puts the Lambda request id on every log line of the invocation.
async fn with_request_id(request: Request, next: Next) -> Response {
    let request_id = request
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let span = tracing::info_span!("invocation", request_id = %request_id);
    next.run(request).instrument(span).await
}

/// Runs the function until the runtime stops it.
pub async fn run(bridge: Arc<Bridge>) -> Result<(), lambda_http::Error> {
    let app = crate::http::router(bridge).layer(axum::middleware::from_fn(with_request_id));
    lambda_http::run(app).await
}
