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
//!
//! # In a Lambda function
//!
//! Two SDK defaults cost a cold start milliseconds for nothing in a function (measured with
//! `examples/init_pieces.rs`, docs/BENCHMARKS.md), so `sdk_config()` replaces them there:
//!
//! - **Region and credentials.** The runtime puts the region and the function role's
//!   credentials in the environment (`AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). They are taken from there directly instead
//!   of building the SDK's default chains (profile files, web identity, container and instance
//!   metadata providers), which a function never gets to.
//! - **TLS roots.** The SDK's HTTPS client loads and parses the system CA store when each
//!   client is built and again for its first request. AWS service endpoints present
//!   certificates of Amazon Trust Services, so in the standard `aws` partition the clients trust
//!   exactly its five roots (`src/amazon_trust_roots.pem`, the set Amazon recommends for custom
//!   trust stores) and parse five certificates instead of the whole store. China, GovCloud, ISO
//!   and European Sovereign Cloud regions, and an `https://` endpoint override, keep the
//!   system store.
//!
//! Everything else (endpoint URLs, FIPS, proxies, …) still comes from the defaults. Operator
//! commands on a laptop (no `AWS_LAMBDA_FUNCTION_NAME`) keep the SDK's defaults entirely.

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::ConnectorBuilder;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

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

/// The region, when the process runs as a Lambda function that has its region and
/// credentials in the environment (always the case for a function's own role).
fn lambda_region(var: impl Fn(&str) -> Option<String>) -> Option<Region> {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    if !set("AWS_LAMBDA_FUNCTION_NAME")
        || !set("AWS_ACCESS_KEY_ID")
        || !set("AWS_SECRET_ACCESS_KEY")
    {
        return None;
    }
    var("AWS_REGION")
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .map(Region::new)
}

/// The roots of Amazon Trust Services, the CAs of AWS service endpoints (PEM).
pub const AMAZON_TRUST_ROOTS: &str = include_str!("amazon_trust_roots.pem");

/// True when the Amazon Trust Services roots are enough: a region of the standard `aws`
/// partition, and no endpoint override over `https://` (an emulator over `http://` needs no
/// roots at all).
fn amazon_roots_suffice(region: &Region, var: impl Fn(&str) -> Option<String>) -> bool {
    let other_partition = ["cn-", "us-gov-", "us-iso", "eusc-"]
        .iter()
        .any(|p| region.as_ref().starts_with(p));
    let https_override = [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    ]
    .iter()
    .filter_map(|name| var(name))
    .any(|url| !url.trim().to_ascii_lowercase().starts_with("http://"));
    !other_partition && !https_override
}

/// The SDK's default HTTPS client (rustls with aws-lc, proxy from the environment), trusting
/// the Amazon Trust Services roots only.
fn amazon_roots_http_client() -> Option<SharedHttpClient> {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_ROOTS);
    let tls = TlsContext::builder().with_trust_store(trust).build().ok()?;
    Some(
        aws_smithy_http_client::Builder::new().build_with_connector_fn(
            move |settings, components| {
                let mut conn = ConnectorBuilder::default()
                    .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                    .tls_context(tls.clone());
                conn.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    conn.set_sleep_impl(components.sleep_impl());
                }
                conn.set_proxy_config(Some(ProxyConfig::from_env()));
                conn.build()
            },
        ),
    )
}

/// Loads the shared SDK configuration (see the module documentation).
pub async fn sdk_config() -> SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeout_config());
    let var = |name: &str| std::env::var(name).ok();
    if let Some(region) = lambda_region(var) {
        if amazon_roots_suffice(&region, var) {
            if let Some(client) = amazon_roots_http_client() {
                loader = loader.http_client(client);
            }
        }
        loader = loader
            .region(region)
            .credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn lambda_region_only_for_a_function_with_its_credentials_in_the_environment() {
        let lambda = [
            ("AWS_LAMBDA_FUNCTION_NAME", "payout-bridge"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIA…"),
            ("AWS_SECRET_ACCESS_KEY", "…"),
            ("AWS_SESSION_TOKEN", "…"),
        ];
        assert_eq!(
            lambda_region(env(&lambda)).as_ref().map(|r| r.as_ref()),
            Some("eu-west-1")
        );
        // a laptop (operator commands), or a function without environment credentials:
        // the SDK's default chains decide
        for missing in [
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
        ] {
            let vars: Vec<_> = lambda
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert!(lambda_region(env(&vars)).is_none(), "{missing}");
        }
    }

    #[test]
    fn amazon_roots_only_in_the_aws_partition_without_an_https_endpoint_override() {
        let none = env(&[]);
        assert!(amazon_roots_suffice(&Region::new("eu-west-1"), &none));
        for other in [
            "cn-north-1",
            "us-gov-west-1",
            "us-isob-east-1",
            "eusc-de-east-1",
        ] {
            assert!(!amazon_roots_suffice(&Region::new(other), &none), "{other}");
        }
        let moto = [("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")];
        assert!(amazon_roots_suffice(&Region::new("us-east-1"), env(&moto)));
        let https = [(
            "AWS_ENDPOINT_URL_DYNAMODB",
            "https://localhost.localstack.cloud",
        )];
        assert!(!amazon_roots_suffice(
            &Region::new("us-east-1"),
            env(&https)
        ));
    }

    #[test]
    fn the_amazon_roots_are_the_five_of_amazon_trust_services_in_mozillas_set() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(AMAZON_TRUST_ROOTS.as_bytes())
                .collect::<Result<_, _>>()
                .expect("PEM");
        assert_eq!(certs.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        for c in certs {
            store.add(c).expect("a root certificate");
        }
        // each is one of the roots compiled in for the panel (Mozilla's, webpki-roots)
        for anchor in &store.roots {
            assert!(
                webpki_roots::TLS_SERVER_ROOTS
                    .iter()
                    .any(|m| m.subject == anchor.subject
                        && m.subject_public_key_info == anchor.subject_public_key_info),
                "{:?}",
                String::from_utf8_lossy(anchor.subject.as_ref())
            );
        }
        assert!(amazon_roots_http_client().is_some());
    }
}
