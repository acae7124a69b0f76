//! The `auth:` block of a route: what the YAML may say, and the checks made
//! when it is loaded.
//!
//! Deserializing an [`AuthConfig`] validates it: a key that does not belong to
//! the chosen scheme, a missing required key, a bad header name or a bad
//! `signed_content` template fails the load with a message naming the key.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::hmac_sha256::Template;
use crate::domain::idempotency::KeySources;

/// Default tolerance, in seconds, between a request's timestamp and now.
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;

/// Default header of the `api-key` scheme (lower-case, as looked up).
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

/// A route's validated `auth:` block.
///
/// Built only by deserializing (serde), which runs every load-time check. The
/// secrets it holds are *references* (`env:NAME`, `secretsmanager:...`), never
/// secret values: those are handed to [`super::Verifier::new`] once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub(super) secrets: Vec<String>,
    pub(super) scheme: SchemeConfig,
}

/// The scheme-specific part of an [`AuthConfig`], already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SchemeConfig {
    None,
    ApiKey {
        /// Lower-case header name.
        header: String,
    },
    StandardWebhooks {
        tolerance_seconds: u32,
    },
    HmacSha256(HmacSha256Config),
}

/// Settings of the `hmac-sha256` scheme, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HmacSha256Config {
    /// Lower-case name of the signature header.
    pub(super) header: String,
    pub(super) encoding: SignatureEncoding,
    /// Text before the digest in the signature header (`None` if none).
    pub(super) prefix: Option<String>,
    /// Lower-case name of the timestamp header, if the sender sends one.
    pub(super) timestamp_header: Option<String>,
    pub(super) tolerance_seconds: u32,
    pub(super) signed_content: Template,
}

/// How the `hmac-sha256` digest is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Hexadecimal, either case.
    Hex,
    /// Standard base64 alphabet, padding optional.
    Base64,
}

/// The `scheme:` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum SchemeName {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "api-key")]
    ApiKey,
    #[serde(rename = "standard-webhooks")]
    StandardWebhooks,
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl SchemeName {
    fn as_str(self) -> &'static str {
        match self {
            SchemeName::None => "none",
            SchemeName::ApiKey => "api-key",
            SchemeName::StandardWebhooks => "standard-webhooks",
            SchemeName::HmacSha256 => "hmac-sha256",
        }
    }

    /// Keys this scheme accepts, for error messages.
    fn allowed_keys(self) -> &'static str {
        match self {
            SchemeName::None => "scheme",
            SchemeName::ApiKey => "scheme, header, secrets",
            SchemeName::StandardWebhooks => "scheme, secrets, tolerance_seconds",
            SchemeName::HmacSha256 => {
                "scheme, header, secrets, encoding, prefix, timestamp_header, \
                 tolerance_seconds, signed_content"
            }
        }
    }
}

/// The `auth:` block exactly as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthConfig {
    scheme: SchemeName,
    header: Option<String>,
    secrets: Option<Vec<String>>,
    tolerance_seconds: Option<u32>,
    encoding: Option<SignatureEncoding>,
    prefix: Option<String>,
    timestamp_header: Option<String>,
    signed_content: Option<String>,
}

/// A problem with a route's `auth:` block or with its resolved secrets.
///
/// Messages name the key (`auth.<key>`) and never contain a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// A key was given that the chosen scheme does not use.
    #[error("auth.{field} is not allowed with scheme {scheme} (its keys: {allowed})")]
    NotForScheme {
        field: &'static str,
        scheme: &'static str,
        allowed: &'static str,
    },
    /// A key the chosen scheme needs is absent.
    #[error("auth.{field} is required with scheme {scheme}")]
    Missing {
        field: &'static str,
        scheme: &'static str,
    },
    /// A key is present but its value is unusable. `field` may carry an index,
    /// as in `secrets[1]`.
    #[error("auth.{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl AuthConfigError {
    pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AuthConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The key the error is about, e.g. `encoding` or `secrets[1]`.
    pub fn field(&self) -> &str {
        match self {
            AuthConfigError::NotForScheme { field, .. }
            | AuthConfigError::Missing { field, .. } => field,
            AuthConfigError::Invalid { field, .. } => field,
        }
    }
}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Validate inside the map visitor so that format crates that locate
        // errors (serde_yaml_ng: "routes[2].auth: ... at line 14 column 5")
        // locate ours too.
        struct AuthVisitor;
        impl<'de> Visitor<'de> for AuthVisitor {
            type Value = AuthConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an auth block (a map with at least `scheme`)")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AuthConfig, A::Error> {
                let raw = RawAuthConfig::deserialize(MapAccessDeserializer::new(map))?;
                AuthConfig::from_raw(raw).map_err(serde::de::Error::custom)
            }
        }
        deserializer.deserialize_map(AuthVisitor)
    }
}

impl AuthConfig {
    /// The secret references, in order (empty for scheme `none`). Resolve them
    /// and pass the values, in the same order, to [`super::Verifier::new`].
    pub fn secret_refs(&self) -> &[String] {
        &self.secrets
    }

    /// `none`, `api-key`, `standard-webhooks` or `hmac-sha256`.
    pub fn scheme_name(&self) -> &'static str {
        self.scheme.name()
    }

    /// Which headers may name a delivery on this route, by scheme: the signed `webhook-id` on
    /// `standard-webhooks`; the `Idempotency-Key` on `api-key` and `none`, where no signature
    /// is there to be bypassed; neither on `hmac-sha256`, whose signature covers no id header
    /// (the body's hash keys it). A header the signature does not cover must never make a
    /// captured request look new.
    pub fn key_sources(&self) -> KeySources {
        match self.scheme {
            SchemeConfig::None | SchemeConfig::ApiKey { .. } => KeySources::IDEMPOTENCY_KEY,
            SchemeConfig::StandardWebhooks { .. } => KeySources::WEBHOOK_ID,
            SchemeConfig::HmacSha256(_) => KeySources::BODY_ONLY,
        }
    }

    fn from_raw(raw: RawAuthConfig) -> Result<Self, AuthConfigError> {
        let scheme = raw.scheme;
        let not_for = |field: &'static str| AuthConfigError::NotForScheme {
            field,
            scheme: scheme.as_str(),
            allowed: scheme.allowed_keys(),
        };
        let missing = |field: &'static str| AuthConfigError::Missing {
            field,
            scheme: scheme.as_str(),
        };
        // Reject the keys the scheme does not use, in the order they are
        // documented, so the message names the first offending one.
        let present: [(&'static str, bool); 7] = [
            ("header", raw.header.is_some()),
            ("secrets", raw.secrets.is_some()),
            ("tolerance_seconds", raw.tolerance_seconds.is_some()),
            ("encoding", raw.encoding.is_some()),
            ("prefix", raw.prefix.is_some()),
            ("timestamp_header", raw.timestamp_header.is_some()),
            ("signed_content", raw.signed_content.is_some()),
        ];
        let allowed: &[&str] = match scheme {
            SchemeName::None => &[],
            SchemeName::ApiKey => &["header", "secrets"],
            SchemeName::StandardWebhooks => &["secrets", "tolerance_seconds"],
            SchemeName::HmacSha256 => &[
                "header",
                "secrets",
                "tolerance_seconds",
                "encoding",
                "prefix",
                "timestamp_header",
                "signed_content",
            ],
        };
        if let Some((field, _)) = present
            .iter()
            .find(|(field, given)| *given && !allowed.contains(field))
        {
            return Err(not_for(field));
        }

        let secrets = match scheme {
            SchemeName::None => Vec::new(),
            _ => {
                let secrets = raw.secrets.ok_or_else(|| missing("secrets"))?;
                validate_secret_refs(&secrets)?;
                secrets
            }
        };

        let scheme = match scheme {
            SchemeName::None => SchemeConfig::None,
            SchemeName::ApiKey => SchemeConfig::ApiKey {
                header: match raw.header {
                    Some(header) => header_name("header", &header)?,
                    None => DEFAULT_API_KEY_HEADER.to_owned(),
                },
            },
            SchemeName::StandardWebhooks => SchemeConfig::StandardWebhooks {
                tolerance_seconds: tolerance(raw.tolerance_seconds)?,
            },
            SchemeName::HmacSha256 => {
                let header = header_name("header", &raw.header.ok_or_else(|| missing("header"))?)?;
                let timestamp_header = raw
                    .timestamp_header
                    .map(|name| header_name("timestamp_header", &name))
                    .transpose()?;
                if timestamp_header.as_deref() == Some(header.as_str()) {
                    return Err(AuthConfigError::invalid(
                        "timestamp_header",
                        "must differ from auth.header",
                    ));
                }
                let signed_content = Template::parse(raw.signed_content.as_deref())?;
                match (&timestamp_header, signed_content.has_timestamp()) {
                    (None, true) => {
                        return Err(AuthConfigError::invalid(
                            "signed_content",
                            "{timestamp} needs auth.timestamp_header",
                        ))
                    }
                    (Some(_), false) => {
                        return Err(AuthConfigError::invalid(
                            "timestamp_header",
                            "the timestamp must be part of auth.signed_content (add {timestamp}), \
                             otherwise it is not authenticated and checking its age is worthless",
                        ))
                    }
                    _ => {}
                }
                if timestamp_header.is_none() && raw.tolerance_seconds.is_some() {
                    return Err(AuthConfigError::invalid(
                        "tolerance_seconds",
                        "only used together with auth.timestamp_header",
                    ));
                }
                SchemeConfig::HmacSha256(HmacSha256Config {
                    header,
                    encoding: raw.encoding.unwrap_or(SignatureEncoding::Hex),
                    prefix: raw.prefix.filter(|prefix| !prefix.is_empty()),
                    timestamp_header,
                    tolerance_seconds: tolerance(raw.tolerance_seconds)?,
                    signed_content,
                })
            }
        };
        Ok(AuthConfig { secrets, scheme })
    }
}

impl SchemeConfig {
    pub(super) fn name(&self) -> &'static str {
        match self {
            SchemeConfig::None => SchemeName::None.as_str(),
            SchemeConfig::ApiKey { .. } => SchemeName::ApiKey.as_str(),
            SchemeConfig::StandardWebhooks { .. } => SchemeName::StandardWebhooks.as_str(),
            SchemeConfig::HmacSha256(_) => SchemeName::HmacSha256.as_str(),
        }
    }
}

impl fmt::Display for SignatureEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureEncoding::Hex => "hex",
            SignatureEncoding::Base64 => "base64",
        })
    }
}

fn validate_secret_refs(secrets: &[String]) -> Result<(), AuthConfigError> {
    if secrets.is_empty() {
        return Err(AuthConfigError::invalid(
            "secrets",
            "at least one secret reference is required",
        ));
    }
    for (index, reference) in secrets.iter().enumerate() {
        if reference.trim().is_empty() {
            return Err(AuthConfigError::invalid(
                format!("secrets[{index}]"),
                "empty secret reference",
            ));
        }
    }
    Ok(())
}

fn tolerance(value: Option<u32>) -> Result<u32, AuthConfigError> {
    match value {
        None => Ok(DEFAULT_TOLERANCE_SECONDS),
        Some(0) => Err(AuthConfigError::invalid(
            "tolerance_seconds",
            "must be at least 1",
        )),
        Some(seconds) => Ok(seconds),
    }
}

/// Checks an HTTP header name (RFC 9110 token) and returns it lower-cased.
fn header_name(field: &'static str, name: &str) -> Result<String, AuthConfigError> {
    let is_token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(AuthConfigError::invalid(
            field,
            format!("{name:?} is not a valid HTTP header name"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<AuthConfig, String> {
        serde_yaml_ng::from_str::<AuthConfig>(yaml).map_err(|error| error.to_string())
    }

    fn load_err(yaml: &str) -> String {
        match load(yaml) {
            Ok(config) => panic!("expected an error for {yaml:?}, got {config:?}"),
            Err(message) => message,
        }
    }

    #[test]
    fn api_key_defaults() {
        let config = load("scheme: api-key\nsecrets: [env:KEY]").unwrap();
        assert_eq!(config.scheme_name(), "api-key");
        assert_eq!(config.secret_refs(), ["env:KEY"]);
        assert_eq!(
            config.scheme,
            SchemeConfig::ApiKey {
                header: "x-api-key".into()
            }
        );
    }

    #[test]
    fn api_key_custom_header_is_lower_cased() {
        let config =
            load("scheme: api-key\nheader: X-Partner-Key\nsecrets: [env:A, env:B]").unwrap();
        assert_eq!(
            config.scheme,
            SchemeConfig::ApiKey {
                header: "x-partner-key".into()
            }
        );
        assert_eq!(config.secret_refs().len(), 2);
    }

    #[test]
    fn none_takes_nothing_else() {
        let config = load("scheme: none").unwrap();
        assert_eq!(config.scheme_name(), "none");
        assert!(config.secret_refs().is_empty());
        let message = load_err("scheme: none\nsecrets: [env:X]");
        assert!(
            message.contains("auth.secrets is not allowed with scheme none"),
            "{message}"
        );
    }

    #[test]
    fn standard_webhooks_defaults_and_tolerance() {
        let config = load("scheme: standard-webhooks\nsecrets: [env:S]").unwrap();
        assert_eq!(
            config.scheme,
            SchemeConfig::StandardWebhooks {
                tolerance_seconds: 300
            }
        );
        let config =
            load("scheme: standard-webhooks\nsecrets: [env:S]\ntolerance_seconds: 60").unwrap();
        assert_eq!(
            config.scheme,
            SchemeConfig::StandardWebhooks {
                tolerance_seconds: 60
            }
        );
    }

    #[test]
    fn keys_of_other_schemes_are_rejected_by_name() {
        let cases = [
            (
                "scheme: api-key\nsecrets: [env:K]\nencoding: hex",
                "encoding",
                "api-key",
            ),
            (
                "scheme: api-key\nsecrets: [env:K]\nprefix: x",
                "prefix",
                "api-key",
            ),
            (
                "scheme: api-key\nsecrets: [env:K]\ntolerance_seconds: 5",
                "tolerance_seconds",
                "api-key",
            ),
            (
                "scheme: api-key\nsecrets: [env:K]\ntimestamp_header: X-T",
                "timestamp_header",
                "api-key",
            ),
            (
                "scheme: api-key\nsecrets: [env:K]\nsigned_content: '{body}'",
                "signed_content",
                "api-key",
            ),
            (
                "scheme: standard-webhooks\nsecrets: [env:K]\nheader: X-Sig",
                "header",
                "standard-webhooks",
            ),
            (
                "scheme: standard-webhooks\nsecrets: [env:K]\nencoding: base64",
                "encoding",
                "standard-webhooks",
            ),
            (
                "scheme: standard-webhooks\nsecrets: [env:K]\nsigned_content: '{body}'",
                "signed_content",
                "standard-webhooks",
            ),
            ("scheme: none\nheader: X-Api-Key", "header", "none"),
        ];
        for (yaml, field, scheme) in cases {
            let message = load_err(yaml);
            assert!(
                message.contains(&format!("auth.{field} is not allowed with scheme {scheme}")),
                "{yaml:?} gave {message}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_schemes_are_rejected() {
        let message = load_err("scheme: api-key\nsecrets: [env:K]\nheaders: X");
        assert!(message.contains("unknown field `headers`"), "{message}");
        let message = load_err("scheme: hmac-sha1\nsecrets: [env:K]");
        assert!(message.contains("hmac-sha1"), "{message}");
        let message = load_err("secrets: [env:K]");
        assert!(message.contains("missing field `scheme`"), "{message}");
        let message =
            load_err("scheme: hmac-sha256\nheader: X-Sig\nsecrets: [env:K]\nencoding: base32");
        assert!(message.contains("base32"), "{message}");
    }

    #[test]
    fn secrets_are_required_and_non_empty() {
        for scheme in ["api-key", "standard-webhooks"] {
            let message = load_err(&format!("scheme: {scheme}"));
            assert!(
                message.contains(&format!("auth.secrets is required with scheme {scheme}")),
                "{message}"
            );
            let message = load_err(&format!("scheme: {scheme}\nsecrets: []"));
            assert!(message.contains("auth.secrets: at least one"), "{message}");
        }
        let message = load_err("scheme: api-key\nsecrets: [env:A, '']");
        assert!(
            message.contains("auth.secrets[1]: empty secret reference"),
            "{message}"
        );
    }

    #[test]
    fn hmac_needs_a_header() {
        let message = load_err("scheme: hmac-sha256\nsecrets: [env:K]");
        assert!(
            message.contains("auth.header is required with scheme hmac-sha256"),
            "{message}"
        );
    }

    #[test]
    fn hmac_defaults() {
        let config = load("scheme: hmac-sha256\nheader: X-Signature\nsecrets: [env:K]").unwrap();
        let SchemeConfig::HmacSha256(hmac) = config.scheme else {
            panic!("not hmac: {config:?}")
        };
        assert_eq!(hmac.header, "x-signature");
        assert_eq!(hmac.encoding, SignatureEncoding::Hex);
        assert_eq!(hmac.prefix, None);
        assert_eq!(hmac.timestamp_header, None);
        assert_eq!(hmac.tolerance_seconds, 300);
        assert_eq!(
            hmac.signed_content,
            Template::parse(Some("{body}")).unwrap()
        );
    }

    #[test]
    fn hmac_timestamp_rules() {
        let base = "scheme: hmac-sha256\nheader: X-Sig\nsecrets: [env:K]\n";
        let message = load_err(&format!("{base}signed_content: '{{body}}{{timestamp}}'"));
        assert!(
            message.contains("auth.signed_content: {timestamp} needs auth.timestamp_header"),
            "{message}"
        );
        let message = load_err(&format!("{base}timestamp_header: X-Ts"));
        assert!(
            message.contains("auth.timestamp_header: the timestamp must be part"),
            "{message}"
        );
        let message = load_err(&format!("{base}tolerance_seconds: 30"));
        assert!(
            message.contains("auth.tolerance_seconds: only used together"),
            "{message}"
        );
        let message = load_err(&format!(
            "{base}timestamp_header: X-Sig\nsigned_content: '{{timestamp}}.{{body}}'"
        ));
        assert!(
            message.contains("auth.timestamp_header: must differ"),
            "{message}"
        );
        let config = load(&format!(
            "{base}timestamp_header: X-Ts\nsigned_content: '{{timestamp}}.{{body}}'\ntolerance_seconds: 30"
        ))
        .unwrap();
        let SchemeConfig::HmacSha256(hmac) = config.scheme else {
            panic!("not hmac")
        };
        assert_eq!(hmac.timestamp_header.as_deref(), Some("x-ts"));
        assert_eq!(hmac.tolerance_seconds, 30);
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = "scheme: hmac-sha256\nsecrets: [env:K]\n";
        let message = load_err(&format!("{base}header: 'X Sig'"));
        assert!(
            message.contains("auth.header: \"X Sig\" is not a valid HTTP header name"),
            "{message}"
        );
        let message = load_err(&format!(
            "{base}header: X-Sig\ntimestamp_header: ''\nsigned_content: '{{timestamp}}{{body}}'"
        ));
        assert!(message.contains("auth.timestamp_header:"), "{message}");
        let message = load_err(&format!(
            "{base}header: X-Sig\nsigned_content: '{{method}}{{path}}{{body}}'"
        ));
        assert!(
            message.contains("auth.signed_content: unknown placeholder {path}"),
            "{message}"
        );
        let message = load_err(&format!(
            "{base}header: X-Sig\nsigned_content: '{{method}}{{uri}}'"
        ));
        assert!(
            message.contains("auth.signed_content: must include {body}"),
            "{message}"
        );
        let message = load_err("scheme: standard-webhooks\nsecrets: [env:K]\ntolerance_seconds: 0");
        assert!(
            message.contains("auth.tolerance_seconds: must be at least 1"),
            "{message}"
        );
        let message =
            load_err("scheme: standard-webhooks\nsecrets: [env:K]\ntolerance_seconds: -5");
        assert!(message.contains("tolerance_seconds"), "{message}");
        let message = load_err("scheme: api-key\nheader: ''\nsecrets: [env:K]");
        assert!(message.contains("auth.header:"), "{message}");
    }

    #[test]
    fn nested_in_a_route_the_error_still_names_the_key() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Route {
            path: String,
            auth: AuthConfig,
        }
        let message = serde_yaml_ng::from_str::<Route>(
            "path: /hook\nauth:\n  scheme: api-key\n  secrets: [env:K]\n  encoding: hex\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("auth.encoding is not allowed with scheme api-key"),
            "{message}"
        );
        // serde_yaml_ng locates the error at the auth block.
        assert!(message.contains("at line 3"), "{message}");

        // Any serde format works, e.g. JSON.
        let route: Route = serde_json::from_str(
            r#"{"path":"/x","auth":{"scheme":"api-key","secrets":["env:K"]}}"#,
        )
        .unwrap();
        assert_eq!(route.auth.scheme_name(), "api-key");
        let message = serde_json::from_str::<Route>(r#"{"path":"/x","auth":"api-key"}"#)
            .unwrap_err()
            .to_string();
        assert!(message.contains("expected an auth block"), "{message}");
    }

    #[test]
    fn key_sources_by_scheme() {
        let sources = |yaml: &str| load(yaml).unwrap().key_sources();
        let plain = KeySources {
            webhook_id: false,
            idempotency_key: true,
        };
        assert_eq!(sources("scheme: none"), plain);
        assert_eq!(sources("scheme: api-key\nsecrets: [env:K]"), plain);
        assert_eq!(
            sources("scheme: api-key\nheader: X-Partner-Key\nsecrets: [env:K]"),
            plain
        );
        assert_eq!(
            sources("scheme: standard-webhooks\nsecrets: [env:K]"),
            KeySources {
                webhook_id: true,
                idempotency_key: false,
            }
        );
        let body_only = KeySources {
            webhook_id: false,
            idempotency_key: false,
        };
        assert_eq!(
            sources("scheme: hmac-sha256\nheader: X-Sig\nsecrets: [env:K]"),
            body_only
        );
        assert_eq!(
            sources(
                "scheme: hmac-sha256\nheader: X-Sig\nsecrets: [env:K]\ntimestamp_header: X-Ts\nsigned_content: '{timestamp}.{body}'"
            ),
            body_only
        );
    }

    #[test]
    fn error_field_accessor() {
        let error = AuthConfig::from_raw(RawAuthConfig {
            scheme: SchemeName::ApiKey,
            header: None,
            secrets: Some(vec!["env:K".into()]),
            tolerance_seconds: None,
            encoding: Some(SignatureEncoding::Hex),
            prefix: None,
            timestamp_header: None,
            signed_content: None,
        })
        .unwrap_err();
        assert_eq!(error.field(), "encoding");
    }
}
