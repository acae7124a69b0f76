//! Builds a [`Bridge`] from the settings, the routes file and the adapters.

use super::deliver::{Bridge, Limits, Route};
use super::password::PasswordProvider;
use super::token::TokenManager;
use crate::config::routes::RoutesFile;
use crate::config::{ConfigError, Settings};
use crate::inbound::auth::Verifier;
use crate::mapping::Filter;
use crate::ports::{Clock, DeliveryStore, PanelApi, Secret, SecretSource, StoreError, TokenStore};
use crate::secrets::{json_key_value, parse_reference, SecretRef};
use std::collections::HashMap;
use std::sync::Arc;

/// The adapters a bridge runs on.
pub struct Adapters {
    pub panel: Arc<dyn PanelApi>,
    pub tokens: Arc<dyn TokenStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub secrets: Arc<dyn SecretSource>,
    pub clock: Arc<dyn Clock>,
}

/// Resolves each route's secrets, builds its verifier and its filter (compiled on first use).
/// Every error names the route and the field.
pub async fn build_routes(
    file: &RoutesFile,
    secrets: &dyn SecretSource,
) -> Result<Vec<Route>, ConfigError> {
    let mut routes = Vec::with_capacity(file.routes.len());
    // Several routes usually name keys of one JSON secret (`secretsmanager:ID#key`): read each
    // secret once per start, not once per reference.
    let mut whole_secrets: HashMap<String, Secret> = HashMap::new();
    for r in &file.routes {
        let mut values = Vec::new();
        for reference in r.auth.secret_refs() {
            let secret = fetch_once(secrets, reference, &mut whole_secrets)
                .await
                .map_err(|e| {
                    ConfigError(format!(
                        "route `{}`, field auth.secrets: cannot read `{reference}`: {e}",
                        r.name
                    ))
                })?;
            values.push(secret.expose().to_string());
        }
        let verifier = Verifier::new(&r.auth, values)
            .map_err(|e| ConfigError(format!("route `{}`: {e}", r.name)))?;
        if verifier.is_none() {
            tracing::warn!(
                route = %r.name,
                "route has auth scheme `none`: anyone who can reach it can post payouts"
            );
        }
        // compiled on the route's first delivery (RoutesFile::check_filters checks ahead)
        let filter = match r.map.as_deref() {
            None => Filter::identity(),
            Some(src) => Filter::lazy(src),
        };
        routes.push(Route {
            name: r.name.clone(),
            action: r.action,
            verifier,
            filter,
        });
    }
    Ok(routes)
}

/// Reads `reference`, fetching a Secrets Manager secret at most once for all its `#key`s.
async fn fetch_once(
    secrets: &dyn SecretSource,
    reference: &str,
    cache: &mut HashMap<String, Secret>,
) -> Result<Secret, StoreError> {
    match parse_reference(reference)? {
        SecretRef::SecretsManager {
            id,
            json_key: Some(key),
        } => {
            let whole = match cache.get(id) {
                Some(s) => s.clone(),
                None => {
                    let s = secrets.fetch(&format!("secretsmanager:{id}")).await?;
                    cache.insert(id.to_string(), s.clone());
                    s
                }
            };
            json_key_value(id, whole.expose(), key)
        }
        _ => secrets.fetch(reference).await,
    }
}

/// The limits from the settings.
pub fn limits(settings: &Settings) -> Limits {
    Limits {
        max_body_bytes: settings.max_body_bytes,
        retention_secs: settings.retention_secs(),
        in_progress_timeout_secs: settings.in_progress_timeout_secs,
        batch_concurrency: settings.batch_concurrency,
    }
}

/// Assembles the bridge. `password_ref` is where the panel password is read.
pub fn bridge(
    settings: &Settings,
    routes: Vec<Route>,
    adapters: Adapters,
    password_ref: &str,
) -> Bridge {
    let password = PasswordProvider::new(adapters.secrets.clone(), password_ref);
    let tokens = Arc::new(TokenManager::new(
        adapters.panel.clone(),
        adapters.tokens,
        password,
        adapters.clock.clone(),
        settings.token.clone(),
    ));
    Bridge::new(
        routes,
        adapters.panel,
        tokens,
        adapters.deliveries,
        adapters.clock,
        limits(settings),
    )
}
