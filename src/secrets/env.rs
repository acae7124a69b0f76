//! [`EnvSecrets`]: secrets from environment variables (`env:NAME`).

use std::collections::HashMap;

use async_trait::async_trait;

use super::{parse_reference, SecretRef};
use crate::ports::{Secret, SecretSource, StoreError};

/// Reads `env:NAME` references from the process environment (read on every fetch), or from a
/// fixed map given to [`EnvSecrets::from_vars`] (tests).
#[derive(Default)]
pub struct EnvSecrets {
    fixed: Option<HashMap<String, Secret>>,
}

impl EnvSecrets {
    /// Reads the process environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads only the given variables.
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        EnvSecrets {
            fixed: Some(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), Secret::new(v)))
                    .collect(),
            ),
        }
    }

    fn lookup(&self, name: &str) -> Result<Secret, StoreError> {
        let value = match &self.fixed {
            Some(vars) => vars.get(name).cloned(),
            None => match std::env::var(name) {
                Ok(v) => Some(Secret::new(v)),
                Err(std::env::VarError::NotPresent) => None,
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(StoreError::Corrupt(format!(
                        "environment variable {name} is not valid UTF-8"
                    )))
                }
            },
        };
        match value {
            Some(v) if !v.expose().is_empty() => Ok(v),
            Some(_) => Err(StoreError::NotFound(format!(
                "environment variable {name} is empty"
            ))),
            None => Err(StoreError::NotFound(format!(
                "environment variable {name} is not set"
            ))),
        }
    }
}

impl std::fmt::Debug for EnvSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.fixed {
            None => f.write_str("EnvSecrets(process environment)"),
            Some(vars) => {
                let mut names: Vec<&String> = vars.keys().collect();
                names.sort();
                f.debug_tuple("EnvSecrets").field(&names).finish()
            }
        }
    }
}

#[async_trait]
impl SecretSource for EnvSecrets {
    async fn fetch(&self, reference: &str) -> Result<Secret, StoreError> {
        match parse_reference(reference)? {
            SecretRef::Env { name } => self.lookup(name),
            SecretRef::SecretsManager { .. } => Err(StoreError::Refused(format!(
                "environment secrets cannot answer {reference:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fixed_vars() {
        let env = EnvSecrets::from_vars([("A", "x"), ("EMPTY", "")]);
        assert_eq!(env.fetch("env:A").await.unwrap().expose(), "x");
        assert!(matches!(
            env.fetch("env:B").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            env.fetch("env:EMPTY").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            env.fetch("secretsmanager:A").await,
            Err(StoreError::Refused(_))
        ));
        assert!(!format!("{env:?}").contains('x'));
    }

    #[tokio::test]
    async fn process_environment() {
        // PATH is set in every test environment; reading it proves the process lookup.
        let env = EnvSecrets::new();
        assert!(env.fetch("env:PATH").await.is_ok());
        assert!(matches!(
            env.fetch("env:PAYOUT_BRIDGE_SURELY_UNSET_VARIABLE").await,
            Err(StoreError::NotFound(_))
        ));
    }
}
