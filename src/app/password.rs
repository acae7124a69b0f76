//! The panel password: read once per instance, re-read once when the panel refuses it.

use crate::ports::{Secret, SecretSource, StoreError};
use std::sync::Arc;
use tokio::sync::RwLock;

/// Where the panel password comes from and how its secret string is read.
pub struct PasswordProvider {
    source: Arc<dyn SecretSource>,
    reference: String,
    /// Secrets Manager strings may be JSON (`apiKey` / `password`); environment values are
    /// taken as they are.
    parse: fn(&str) -> Secret,
    cached: RwLock<Option<Secret>>,
}

fn verbatim(raw: &str) -> Secret {
    Secret::new(raw)
}

impl PasswordProvider {
    /// `reference` is `env:NAME` or `secretsmanager:ID`.
    pub fn new(source: Arc<dyn SecretSource>, reference: impl Into<String>) -> Self {
        let reference = reference.into();
        let parse: fn(&str) -> Secret = if crate::secrets::is_secrets_manager(&reference) {
            crate::secrets::panel_password_from_secret_string
        } else {
            verbatim
        };
        PasswordProvider {
            source,
            reference,
            parse,
            cached: RwLock::new(None),
        }
    }

    /// Where the password is read from (a reference, never the value).
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The cached password, reading it on first use.
    pub async fn get(&self) -> Result<Secret, StoreError> {
        if let Some(p) = self.cached.read().await.as_ref() {
            return Ok(p.clone());
        }
        self.refresh().await
    }

    /// Reads the password again (it may have been rotated) and caches it.
    pub async fn refresh(&self) -> Result<Secret, StoreError> {
        let raw = self.source.fetch(&self.reference).await?;
        let password = (self.parse)(raw.expose());
        *self.cached.write().await = Some(password.clone());
        Ok(password)
    }
}
