//! Secret adapters for the port [`SecretSource`]: environment variables ([`EnvSecrets`],
//! `env:NAME`), AWS Secrets Manager ([`SecretsManagerSecrets`], `secretsmanager:ID` or
//! `secretsmanager:ID#jsonKey`), and [`SecretResolver`], which dispatches on the prefix.
//!
//! Nothing here caches (callers do) and no error message contains a secret value.

pub mod env;
pub mod secretsmanager;

pub use env::EnvSecrets;
pub use secretsmanager::SecretsManagerSecrets;

use async_trait::async_trait;
use aws_config::SdkConfig;

use crate::ports::{Secret, SecretSource, StoreError};

/// A parsed secret reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretRef<'a> {
    /// `env:NAME`
    Env { name: &'a str },
    /// `secretsmanager:ID` or `secretsmanager:ID#jsonKey` (ID: a secret name or ARN).
    SecretsManager {
        id: &'a str,
        json_key: Option<&'a str>,
    },
}

/// Parses `env:NAME`, `secretsmanager:ID` and `secretsmanager:ID#jsonKey`.
/// Anything else is `Refused` (a configuration error). References are not secret themselves.
pub fn parse_reference(reference: &str) -> Result<SecretRef<'_>, StoreError> {
    if let Some(name) = reference.strip_prefix("env:") {
        if name.is_empty() {
            return Err(StoreError::Refused(format!(
                "secret reference {reference:?} names no environment variable"
            )));
        }
        return Ok(SecretRef::Env { name });
    }
    if let Some(rest) = reference.strip_prefix("secretsmanager:") {
        // Secret names and ARNs cannot contain '#', so the first one starts the JSON key.
        let (id, json_key) = match rest.split_once('#') {
            Some((id, key)) => (id, Some(key)),
            None => (rest, None),
        };
        if id.is_empty() || json_key == Some("") {
            return Err(StoreError::Refused(format!(
                "secret reference {reference:?} must look like secretsmanager:ID or secretsmanager:ID#jsonKey"
            )));
        }
        return Ok(SecretRef::SecretsManager { id, json_key });
    }
    Err(StoreError::Refused(format!(
        "unknown secret reference {reference:?}: use env:NAME, secretsmanager:ID or secretsmanager:ID#jsonKey"
    )))
}

/// Whether a reference names a Secrets Manager secret (the one place that asks).
pub fn is_secrets_manager(reference: &str) -> bool {
    matches!(
        parse_reference(reference),
        Ok(SecretRef::SecretsManager { .. })
    )
}

/// The panel password from a Secrets Manager secret string: the string itself, or, when it is
/// a JSON object, the string under `apiKey` (preferred) or `password`. Trailing line breaks of
/// a plain value are dropped (secrets stored from a file often end with one). A JSON object
/// without either key is used whole, with a warning in the log (the value is never logged).
pub fn panel_password_from_secret_string(raw: &str) -> Secret {
    let trimmed = raw.trim();
    if trimmed.starts_with('{') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(trimmed) {
            for key in ["apiKey", "password"] {
                if let Some(serde_json::Value::String(value)) = map.get(key) {
                    return Secret::new(value.as_str());
                }
            }
            tracing::warn!(
                "panel secret is a JSON object without a string \"apiKey\" or \"password\"; using the whole string"
            );
        }
    }
    Secret::new(raw.trim_end_matches(['\r', '\n']))
}

/// The string under `key` of the JSON object `raw` (secret `id`, named in errors).
pub fn json_key_value(id: &str, raw: &str, key: &str) -> Result<Secret, StoreError> {
    // serde_json's messages can quote input; only its position is reported.
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
        StoreError::Corrupt(format!(
            "secret {id} is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(StoreError::Corrupt(format!(
            "secret {id} is not a JSON object"
        )));
    };
    match map.get(key) {
        Some(serde_json::Value::String(v)) => Ok(Secret::new(v.as_str())),
        Some(_) => Err(StoreError::Corrupt(format!(
            "secret {id}: JSON key {key:?} is not a string"
        ))),
        None => Err(StoreError::NotFound(format!(
            "secret {id} has no JSON key {key:?}"
        ))),
    }
}

/// Answers every reference scheme: `env:` from [`EnvSecrets`], `secretsmanager:` from
/// [`SecretsManagerSecrets`] when built with AWS configuration.
#[derive(Debug)]
pub struct SecretResolver {
    env: EnvSecrets,
    secrets_manager: Option<SecretsManagerSecrets>,
}

impl SecretResolver {
    /// Environment variables from the process, and Secrets Manager through `secrets_manager`
    /// when given (without it, `secretsmanager:` references are refused).
    pub fn new(secrets_manager: Option<aws_sdk_secretsmanager::Client>) -> Self {
        Self::from_parts(
            EnvSecrets::new(),
            secrets_manager.map(SecretsManagerSecrets::new),
        )
    }

    /// Any environment source (e.g. [`EnvSecrets::from_vars`] in tests) and Secrets Manager.
    pub fn from_parts(env: EnvSecrets, secrets_manager: Option<SecretsManagerSecrets>) -> Self {
        SecretResolver {
            env,
            secrets_manager,
        }
    }

    /// Environment variables only; `secretsmanager:` references are refused.
    pub fn without_aws() -> Self {
        Self::new(None)
    }

    /// Environment variables and Secrets Manager through `conf`
    /// (see [`crate::aws::sdk_config`]).
    pub fn with_aws(conf: &SdkConfig) -> Self {
        Self::new(Some(aws_sdk_secretsmanager::Client::new(conf)))
    }
}

#[async_trait]
impl SecretSource for SecretResolver {
    async fn fetch(&self, reference: &str) -> Result<Secret, StoreError> {
        match parse_reference(reference)? {
            SecretRef::Env { .. } => self.env.fetch(reference).await,
            SecretRef::SecretsManager { .. } => match &self.secrets_manager {
                Some(sm) => sm.fetch(reference).await,
                None => Err(StoreError::Refused(format!(
                    "secret reference {reference:?} needs AWS configuration (Secrets Manager), \
                     but this resolver was built without it"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(
            parse_reference("env:PANEL_PW").unwrap(),
            SecretRef::Env { name: "PANEL_PW" }
        );
        assert_eq!(
            parse_reference("secretsmanager:prod/panel").unwrap(),
            SecretRef::SecretsManager {
                id: "prod/panel",
                json_key: None
            }
        );
        let arn = "secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:panel-AbCdEf#apiKey";
        assert_eq!(
            parse_reference(arn).unwrap(),
            SecretRef::SecretsManager {
                id: "arn:aws:secretsmanager:us-east-1:123456789012:secret:panel-AbCdEf",
                json_key: Some("apiKey")
            }
        );
        for bad in [
            "env:",
            "secretsmanager:",
            "secretsmanager:#k",
            "secretsmanager:id#",
            "vault:x",
            "PANEL_PW",
            "",
        ] {
            assert!(
                matches!(parse_reference(bad), Err(StoreError::Refused(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn panel_password_shapes() {
        assert_eq!(
            panel_password_from_secret_string("s3cr3t").expose(),
            "s3cr3t"
        );
        assert_eq!(
            panel_password_from_secret_string("s3cr3t\n").expose(),
            "s3cr3t"
        );
        assert_eq!(
            panel_password_from_secret_string(" with spaces ").expose(),
            " with spaces "
        );
        assert_eq!(
            panel_password_from_secret_string(r#"{"apiKey":"k1"}"#).expose(),
            "k1"
        );
        assert_eq!(
            panel_password_from_secret_string(r#" {"password":"p1"} "#).expose(),
            "p1"
        );
        assert_eq!(
            panel_password_from_secret_string(r#"{"password":"p1","apiKey":"k1"}"#).expose(),
            "k1"
        );
        // Not a string under the key, or neither key: the whole string.
        assert_eq!(
            panel_password_from_secret_string(r#"{"apiKey":5}"#).expose(),
            r#"{"apiKey":5}"#
        );
        assert_eq!(
            panel_password_from_secret_string("{not json").expose(),
            "{not json"
        );
    }

    #[test]
    fn json_key_errors_hide_the_value() {
        let raw = r#"{"apiKey": "TOPSECRET", "n": 1"#; // truncated JSON
        let err = json_key_value("id", raw, "apiKey").unwrap_err().to_string();
        assert!(!err.contains("TOPSECRET"), "{err}");
        let raw = r#"{"apiKey": "TOPSECRET", "n": 1}"#;
        let err = json_key_value("id", raw, "n").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)) && !err.to_string().contains("TOPSECRET"));
        assert!(matches!(
            json_key_value("id", raw, "x"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            json_key_value("id", "\"TOPSECRET\"", "x"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            json_key_value("id", raw, "apiKey").unwrap().expose(),
            "TOPSECRET"
        );
    }

    #[tokio::test]
    async fn resolver_without_aws_refuses_secretsmanager() {
        let resolver = SecretResolver::from_parts(EnvSecrets::from_vars([("A", "1")]), None);
        assert_eq!(resolver.fetch("env:A").await.unwrap().expose(), "1");
        match resolver.fetch("secretsmanager:x").await {
            Err(StoreError::Refused(msg)) => {
                assert!(msg.contains("needs AWS configuration"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolver.fetch("file:/x").await,
            Err(StoreError::Refused(_))
        ));
        for resolver in [SecretResolver::without_aws(), SecretResolver::new(None)] {
            assert!(matches!(
                resolver.fetch("secretsmanager:x").await,
                Err(StoreError::Refused(_))
            ));
        }
    }
}
