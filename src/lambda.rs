//! The Lambda entry: the shared router behind lambda_http (API Gateway HTTP API payload v2,
//! Lambda function URLs, and `cargo lambda watch`). lambda_runtime opens a span with the
//! request id (`requestId`) around each invocation, so every log line of it carries the id.

use crate::app::Bridge;
use std::sync::Arc;

/// Runs the function until the runtime stops it.
pub async fn run(bridge: Arc<Bridge>) -> Result<(), lambda_http::Error> {
    lambda_http::run(crate::http::router(bridge)).await
}
