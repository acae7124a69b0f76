//! Routes from the routes file: each route's secrets resolved, its verifier built and its
//! filter compiled. Every error names the route and the field.

use crate::app::Route;
use crate::config::routes::RoutesFile;
use crate::config::ConfigError;
use crate::inbound::auth::Verifier;
use crate::mapping::Filter;
use crate::ports::{NotifyTarget, Secret, SecretSource, StoreError};
use crate::secrets::{json_key_value, parse_reference, SecretRef};
use std::collections::HashMap;

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
        let notify = match &r.notify {
            None => None,
            Some(n) => {
                let mut keys = Vec::new();
                for reference in &n.secrets {
                    let secret = fetch_once(secrets, reference, &mut whole_secrets)
                        .await
                        .map_err(|e| {
                            ConfigError(format!(
                                "route `{}`, field notify.secrets: cannot read `{reference}`: {e}",
                                r.name
                            ))
                        })?;
                    crate::notify::decode_secret(secret.expose()).map_err(|e| {
                        ConfigError(format!(
                            "route `{}`, field notify.secrets: `{reference}` {e}",
                            r.name
                        ))
                    })?;
                    keys.push(secret);
                }
                Some(NotifyTarget {
                    url: n.url.clone(),
                    secrets: keys,
                })
            }
        };
        routes.push(Route {
            name: r.name.clone(),
            action: r.action,
            verifier,
            filter,
            key_sources: r.auth.key_sources(),
            mode: r.mode,
            notify,
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
