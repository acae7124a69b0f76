//! Shared AWS SDK set-up: one `SdkConfig` for every client (DynamoDB, Secrets Manager), and the
//! mapping of SDK errors onto [`StoreError`].
//!
//! `sdk_config()` loads the SDK defaults, so the standard environment works unchanged:
//! `AWS_REGION`, credentials (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the Lambda role, …) and
//! `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_SECRETS_MANAGER`), which
//! points both clients at an emulator such as moto. On top of the defaults it sets timeouts and a
//! retry policy sized for a Lambda that must answer a webhook sender within seconds:
//!
//! | setting | value | why |
//! | --- | --- | --- |
//! | connect timeout | 1 s | a healthy regional endpoint connects in milliseconds |
//! | per-attempt timeout | 2 s | DynamoDB/Secrets Manager answer in ~10 ms; 2 s is an outage |
//! | whole operation (all attempts + backoff) | 4 s | the caller still has time to answer |
//! | retries | standard mode, 3 attempts, backoff 50 ms → max 500 ms | few, fast retries |
//!
//! The retry policy from the environment (`AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`) wins when set.

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

/// TCP/TLS connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Timeout of one attempt (request sent → response read).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of a whole operation, all retries and backoff included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
/// Attempts per operation (the first one included).
pub const MAX_ATTEMPTS: u32 = 3;

/// The timeouts described in the module documentation.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The retry policy described in the module documentation.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(500))
}

/// Loads the shared SDK configuration (see the module documentation).
pub async fn sdk_config() -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeout_config());
    let retry_from_env = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if !retry_from_env {
        loader = loader.retry_config(retry_config());
    }
    let conf = loader.load().await;
    tracing::debug!(
        region = conf.region().map(|r| r.as_ref()).unwrap_or("<none>"),
        endpoint_url = conf.endpoint_url().unwrap_or("<default>"),
        "loaded AWS SDK configuration"
    );
    conf
}

/// A DynamoDB client from the shared configuration.
pub fn dynamodb_client(conf: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(conf)
}

/// A Secrets Manager client from the shared configuration.
pub fn secretsmanager_client(conf: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(conf)
}

/// Error codes that mean "try again later" whatever the HTTP status says.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "InternalServiceError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflictException",
];

/// Maps an SDK error of any AWS operation onto [`StoreError`]:
/// timeouts, connection (I/O) failures, unreadable responses, throttling and 5xx →
/// `Unavailable`; `ResourceNotFoundException` (e.g. no such table or secret) → `NotFound`;
/// everything else → `Refused`: access denied, validation, bad or missing credentials, no
/// region (the SDK reports those two as a non-I/O dispatch failure).
///
/// Service-specific expected answers (a failed condition) must be matched by the caller first.
/// The message names the operation and the AWS error code and message; AWS messages do not echo
/// item values or secret values.
pub(crate) fn sdk_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        // No credentials, no region: the request never left; retrying will not help.
        // (A connection closed before the answer is `Other(TransientError)`: a connection
        // failure, not a refusal.)
        SdkError::DispatchFailure(failure)
            if !failure.is_io()
                && !failure.is_timeout()
                && failure.as_other() != Some(aws_config::retry::ErrorKind::TransientError) =>
        {
            StoreError::Refused(format!("{operation}: {}", DisplayErrorContext(&err)))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{operation}: {}", DisplayErrorContext(&err)))
        }
        SdkError::ConstructionFailure(_) => StoreError::Refused(format!(
            "{operation}: request not built: {}",
            DisplayErrorContext(&err)
        )),
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let inner = service.err();
            let code = inner.code().unwrap_or("unknown error");
            let text = format!(
                "{operation}: {code} (HTTP {status}){}",
                inner
                    .message()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            if code == "ResourceNotFoundException" {
                StoreError::NotFound(text)
            } else if status >= 500 || status == 429 || RETRYABLE_CODES.contains(&code) {
                StoreError::Unavailable(text)
            } else {
                StoreError::Refused(text)
            }
        }
        // `SdkError` is non-exhaustive.
        _ => StoreError::Unavailable(format!("{operation}: {}", DisplayErrorContext(&err))),
    }
}
