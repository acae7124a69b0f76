//! [`SecretsManagerSecrets`]: secrets from AWS Secrets Manager
//! (`secretsmanager:ID`, `secretsmanager:ID#jsonKey`; ID a secret name or ARN).

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use super::{json_key_value, parse_reference, SecretRef};
use crate::aws::sdk_error;
use crate::ports::{Secret, SecretSource, StoreError};

/// Reads the current version (`AWSCURRENT`) of a secret with one GetSecretValue per fetch; no
/// cache. With `#jsonKey` the secret string must be a JSON object and the answer is the string
/// under that key. Binary secrets are not supported (`Corrupt`).
#[derive(Clone, Debug)]
pub struct SecretsManagerSecrets {
    client: Client,
}

impl SecretsManagerSecrets {
    pub fn new(client: Client) -> Self {
        SecretsManagerSecrets { client }
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSecrets {
    async fn fetch(&self, reference: &str) -> Result<Secret, StoreError> {
        let (id, json_key) = match parse_reference(reference)? {
            SecretRef::SecretsManager { id, json_key } => (id, json_key),
            SecretRef::Env { .. } => {
                return Err(StoreError::Refused(format!(
                    "Secrets Manager cannot answer {reference:?}"
                )))
            }
        };
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| match sdk_error("GetSecretValue", e) {
                StoreError::NotFound(msg) => StoreError::NotFound(format!("secret {id}: {msg}")),
                other => other,
            })?;
        tracing::debug!(
            secret = id,
            version = out.version_id().unwrap_or("?"),
            "read secret"
        );
        let Some(raw) = out.secret_string() else {
            return Err(StoreError::Corrupt(format!(
                "secret {id} has no string value (binary secrets are not supported)"
            )));
        };
        match json_key {
            Some(key) => json_key_value(id, raw, key),
            None => Ok(Secret::new(raw)),
        }
    }
}
