//! Chooses the adapters from the environment: DynamoDB and Secrets Manager when configured,
//! in-memory stores otherwise (local runs only), and the panel's HTTP client.

use super::ServiceBuilder;
use crate::app::operator::{Operator, QueueOperator};
use crate::app::worker::Worker;
use crate::app::Bridge;
use crate::config::routes::RoutesFile;
use crate::config::{ConfigError, Settings};
use crate::notify::HttpNotifier;
use crate::ports::{DeliveryStore, SecretSource, SystemClock, TokenStore};
use crate::queue::{MemoryQueue, SqsQueue};
use crate::secrets::{is_secrets_manager, SecretResolver};
use crate::store::dynamodb::{DynamoDeliveryStore, DynamoTokenStore};
use std::sync::Arc;

/// Where the bridge runs, which decides what may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The Lambda function: state must be shared (DynamoDB) and the password a managed secret;
    /// a queued route needs `BRIDGE_QUEUE_URL`. The same function answers SQS events (the
    /// worker), so the panel is behind the worker's ceilings.
    Lambda,
    /// `payout-bridge serve`: in-memory stores when `BRIDGE_TABLE` is unset; an in-process
    /// queue when a route is queued and `BRIDGE_QUEUE_URL` is unset. `worker`: whether this
    /// process also runs the worker (then the panel is behind its ceilings).
    Serve { worker: bool },
    /// `payout-bridge worker`: long-polls `BRIDGE_QUEUE_URL`.
    Worker,
}

impl Mode {
    fn runs_worker(self) -> bool {
        match self {
            Mode::Lambda | Mode::Worker => true,
            Mode::Serve { worker } => worker,
        }
    }
}

/// How many receives before SQS (or the in-process queue) moves a message to the dead letters
/// when the bridge makes the queue itself (`serve` without `BRIDGE_QUEUE_URL`).
pub const LOCAL_MAX_RECEIVE_COUNT: u32 = 5;

/// `BRIDGE_LOCAL_STATE=memory` lets the Lambda entry run on in-memory stores and a plain
/// `PANEL_PASSWORD`, for `cargo lambda watch` on a laptop. Never set it in AWS.
fn lambda_local_state() -> bool {
    std::env::var("BRIDGE_LOCAL_STATE").is_ok_and(|v| v.trim() == "memory")
}

/// Whether the routes file references any Secrets Manager secret.
pub fn routes_use_secrets_manager(routes: &RoutesFile) -> bool {
    routes
        .routes
        .iter()
        .any(|r| r.auth.secret_refs().iter().any(|s| is_secrets_manager(s)))
}

fn uses_secrets_manager(settings: &Settings, routes: &RoutesFile) -> bool {
    settings
        .password_ref
        .as_deref()
        .is_some_and(is_secrets_manager)
        || routes_use_secrets_manager(routes)
}

/// The routes file compiled into the binary (`BRIDGE_CONFIG=embedded`): `infra/routes.yaml`
/// as it was at build time. The deployed function reads no file and makes no call for it.
pub const EMBEDDED_ROUTES: &str = include_str!("../../infra/routes.yaml");

/// The routes file named by `BRIDGE_CONFIG`: a path, or `embedded`.
pub fn routes_file(settings: &Settings) -> Result<RoutesFile, ConfigError> {
    let path = settings.routes_path.as_ref().ok_or_else(|| {
        ConfigError(
            "BRIDGE_CONFIG is not set: it must name the routes file (YAML), or be `embedded`"
                .into(),
        )
    })?;
    if path.as_os_str() == "embedded" {
        return RoutesFile::parse(EMBEDDED_ROUTES, "embedded infra/routes.yaml");
    }
    RoutesFile::load(path)
}

/// A secret resolver for `env:` references, and `secretsmanager:` ones when `sdk` is given.
pub fn secret_source(sdk: Option<&aws_config::SdkConfig>) -> Arc<dyn SecretSource> {
    Arc::new(SecretResolver::new(
        sdk.map(aws_sdk_secretsmanager::Client::new),
    ))
}

/// The DynamoDB stores on `table`.
pub fn dynamo_stores(
    sdk: &aws_config::SdkConfig,
    table: &str,
) -> (Arc<dyn TokenStore>, Arc<dyn DeliveryStore>) {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    (
        Arc::new(DynamoTokenStore::new(client.clone(), table.to_string())),
        Arc::new(DynamoDeliveryStore::new(client, table.to_string())),
    )
}

/// Builds the bridge for `mode` from the settings and the routes file.
pub async fn bridge(settings: &Settings, mode: Mode) -> Result<Bridge, ConfigError> {
    let routes = routes_file(settings)?;
    // The function compiles each filter on its route's first delivery (the embedded routes are
    // checked by a test and `check-config`); a local server refuses a broken file at once.
    if matches!(mode, Mode::Serve { .. }) {
        routes.check_filters()?;
    }
    let local = matches!(mode, Mode::Serve { .. }) || lambda_local_state();
    if mode == Mode::Lambda && !local {
        if settings.table.is_none() {
            return Err(ConfigError(
                "BRIDGE_TABLE is not set: the Lambda function keeps its delivery records and panel token in DynamoDB".into(),
            ));
        }
        if !settings
            .password_ref
            .as_deref()
            .is_some_and(is_secrets_manager)
        {
            return Err(ConfigError(
                "PANEL_PASSWORD_SECRET_ID is not set: the Lambda function reads the panel password from Secrets Manager".into(),
            ));
        }
    }
    // Building the client loads the CA roots: do it on a blocking thread while the routes and
    // AWS clients are set up.
    // Compiled-in CA roots: building the client takes microseconds (no system store to parse).
    let panel = ServiceBuilder::panel_client(settings)?;

    let queued: Option<String> = routes
        .routes
        .iter()
        .find(|r| r.mode == crate::domain::queue::RouteMode::Queued)
        .map(|r| r.name.clone());
    if let (Some(name), None) = (&queued, &settings.queue_url) {
        match mode {
            Mode::Lambda if !local => {
                return Err(ConfigError(format!(
                    "BRIDGE_QUEUE_URL is not set: route `{name}` is queued, and the function puts its commands on that SQS queue"
                )))
            }
            Mode::Serve { worker: false } => {
                return Err(ConfigError(format!(
                    "route `{name}` is queued: --no-worker needs BRIDGE_QUEUE_URL (another process works that queue)"
                )))
            }
            _ => {}
        }
    }
    if mode == Mode::Worker && settings.queue_url.is_none() {
        return Err(ConfigError(
            "BRIDGE_QUEUE_URL is not set: `payout-bridge worker` long-polls that SQS queue".into(),
        ));
    }
    let sdk = if settings.table.is_some()
        || settings.queue_url.is_some()
        || uses_secrets_manager(settings, &routes)
    {
        Some(crate::aws::sdk_config().await)
    } else {
        None
    };
    let mut builder = ServiceBuilder::new(settings.clone())
        .routes(routes)
        .secrets(secret_source(sdk.as_ref()));
    match (&settings.table, &sdk) {
        (Some(table), Some(sdk)) => {
            let (tokens, deliveries) = dynamo_stores(sdk, table);
            builder = builder.tokens(tokens).deliveries(deliveries);
        }
        _ => tracing::warn!(
            "BRIDGE_TABLE is not set: using in-memory stores (records are lost at exit and not shared between instances)"
        ),
    }
    match (&settings.queue_url, &sdk) {
        (Some(url), Some(sdk)) => {
            builder = builder.queue(Arc::new(SqsQueue::new(
                sdk,
                url,
                settings.dlq_url.as_deref(),
            )));
        }
        _ if queued.is_some() => {
            tracing::warn!(
                "BRIDGE_QUEUE_URL is not set: queued routes use an in-process queue and worker (queued commands are lost at exit)"
            );
            builder = builder.queue(Arc::new(MemoryQueue::new(
                LOCAL_MAX_RECEIVE_COUNT,
                std::time::Duration::from_secs(60),
            )));
        }
        _ => {}
    }
    if mode.runs_worker() {
        builder = builder.settings_panel_limits();
    }
    builder.panel(Arc::new(panel)).build().await
}

/// The worker of a bridge that has a queue: the same bridge, its queue, signed notifications
/// over HTTPS, and the settings' concurrency and backoff.
pub fn worker(bridge: Arc<Bridge>, settings: &Settings) -> Result<Option<Worker>, ConfigError> {
    let Some(queue) = bridge.queue().cloned() else {
        return Ok(None);
    };
    let notifier = HttpNotifier::new().map_err(ConfigError)?;
    Ok(Some(Worker::new(
        bridge,
        queue,
        Arc::new(notifier),
        ServiceBuilder::worker_settings(settings),
    )))
}

/// The queue and its dead-letter queue for `dead-letters` and `redrive`, and the delivery
/// records (for each message's last error) when `BRIDGE_TABLE` is set.
pub async fn queue_operator(settings: &Settings) -> Result<QueueOperator, ConfigError> {
    let (Some(url), Some(dlq)) = (&settings.queue_url, &settings.dlq_url) else {
        return Err(ConfigError(
            "BRIDGE_QUEUE_URL and BRIDGE_DLQ_URL must both be set: `dead-letters` and `redrive` read the dead-letter queue and send to the queue".into(),
        ));
    };
    let sdk = crate::aws::sdk_config().await;
    let deliveries = settings
        .table
        .as_ref()
        .map(|table| dynamo_stores(&sdk, table).1);
    Ok(QueueOperator::new(
        Arc::new(SqsQueue::new(&sdk, url, Some(dlq))),
        deliveries,
        Arc::new(SystemClock),
    ))
}

/// The operator's view for `pending`, `status` and `resolve`: DynamoDB only, since in-memory
/// records live in the serving process.
pub async fn operator(settings: &Settings) -> Result<Operator, ConfigError> {
    let table = settings.table.as_ref().ok_or_else(|| {
        ConfigError(
            "BRIDGE_TABLE is not set: `pending`, `status` and `resolve` read the DynamoDB table"
                .into(),
        )
    })?;
    let sdk = crate::aws::sdk_config().await;
    Ok(Operator::new(
        dynamo_stores(&sdk, table).1,
        Arc::new(SystemClock),
        settings.retention_secs(),
    ))
}
