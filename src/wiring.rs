//! Chooses the adapters from the environment: DynamoDB and Secrets Manager when configured,
//! in-memory stores otherwise (local runs only), and the panel's HTTP client.

use crate::app::build::{self, Adapters};
use crate::app::Bridge;
use crate::config::routes::RoutesFile;
use crate::config::{ConfigError, Settings};
use crate::panel::{PanelClient, PanelClientConfig};
use crate::ports::{DeliveryStore, SecretSource, SystemClock, TokenStore};
use crate::secrets::SecretResolver;
use crate::store::dynamodb::{DynamoDeliveryStore, DynamoTokenStore};
use crate::store::memory::{MemoryDeliveryStore, MemoryTokenStore};
use std::sync::Arc;

/// Where the bridge runs, which decides what may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The Lambda function: state must be shared (DynamoDB) and the password a managed secret.
    Lambda,
    /// `payout-bridge serve`: in-memory stores when `BRIDGE_TABLE` is unset.
    Serve,
}

/// `BRIDGE_LOCAL_STATE=memory` lets the Lambda entry run on in-memory stores and a plain
/// `PANEL_PASSWORD`, for `cargo lambda watch` on a laptop. Never set it in AWS.
fn lambda_local_state() -> bool {
    std::env::var("BRIDGE_LOCAL_STATE").is_ok_and(|v| v.trim() == "memory")
}

fn uses_secrets_manager(settings: &Settings, routes: &RoutesFile) -> bool {
    settings
        .password_ref
        .as_deref()
        .is_some_and(|r| r.starts_with("secretsmanager:"))
        || routes.routes.iter().any(|r| {
            r.auth
                .secret_refs()
                .iter()
                .any(|s| s.starts_with("secretsmanager:"))
        })
}

/// The routes file compiled into the binary (`BRIDGE_CONFIG=embedded`): `infra/routes.yaml`
/// as it was at build time. The deployed function reads no file and makes no call for it.
pub const EMBEDDED_ROUTES: &str = include_str!("../infra/routes.yaml");

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
    if mode == Mode::Serve {
        routes.check_filters()?;
    }
    let local = mode == Mode::Serve || lambda_local_state();
    if mode == Mode::Lambda && !local {
        if settings.table.is_none() {
            return Err(ConfigError(
                "BRIDGE_TABLE is not set: the Lambda function keeps its delivery records and panel token in DynamoDB".into(),
            ));
        }
        if !settings
            .password_ref
            .as_deref()
            .is_some_and(|r| r.starts_with("secretsmanager:"))
        {
            return Err(ConfigError(
                "PANEL_PASSWORD_SECRET_ID is not set: the Lambda function reads the panel password from Secrets Manager".into(),
            ));
        }
    }
    let password_ref = settings.password_ref.clone().ok_or_else(|| {
        ConfigError(
            "no panel password: set PANEL_PASSWORD_SECRET_ID (Secrets Manager) or, locally, PANEL_PASSWORD".into(),
        )
    })?;
    let panel_url = settings
        .panel_url
        .clone()
        .ok_or_else(|| ConfigError("PANEL_URL is not set: the panel's base URL".into()))?;
    // Compiled-in CA roots: building the client takes microseconds (no system store to parse).
    let panel = PanelClient::new(&PanelClientConfig {
        base_url: panel_url,
        connect_timeout: settings.panel_connect_timeout,
        request_timeout: settings.panel_request_timeout,
    })
    .map_err(|e| ConfigError(e.to_string()))?;

    let sdk = if settings.table.is_some() || uses_secrets_manager(settings, &routes) {
        Some(crate::aws::sdk_config().await)
    } else {
        None
    };
    let (tokens, deliveries): (Arc<dyn TokenStore>, Arc<dyn DeliveryStore>) = match (
        &settings.table,
        &sdk,
    ) {
        (Some(table), Some(sdk)) => dynamo_stores(sdk, table),
        _ => {
            tracing::warn!(
                    "BRIDGE_TABLE is not set: using in-memory stores (records are lost at exit and not shared between instances)"
                );
            (
                Arc::new(MemoryTokenStore::default()),
                Arc::new(MemoryDeliveryStore::default()),
            )
        }
    };
    let secrets = secret_source(sdk.as_ref());
    let built = build::build_routes(&routes, secrets.as_ref()).await?;
    Ok(build::bridge(
        settings,
        built,
        Adapters {
            panel: Arc::new(panel),
            tokens,
            deliveries,
            secrets,
            clock: Arc::new(SystemClock),
        },
        &password_ref,
    ))
}

/// The delivery store for operator commands (`pending`, `resolve`): DynamoDB only, since
/// in-memory records live in the serving process.
pub async fn operator_store(settings: &Settings) -> Result<Arc<dyn DeliveryStore>, ConfigError> {
    let table = settings.table.as_ref().ok_or_else(|| {
        ConfigError(
            "BRIDGE_TABLE is not set: `pending` and `resolve` read the DynamoDB table".into(),
        )
    })?;
    let sdk = crate::aws::sdk_config().await;
    Ok(dynamo_stores(&sdk, table).1)
}
