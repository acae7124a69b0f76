//! Inbound webhook verification: a route's `auth:` block and the checks it
//! implies.
//!
//! ```yaml
//! auth:
//!   scheme: hmac-sha256          # none | api-key | standard-webhooks | hmac-sha256
//!   header: X-Hub-Signature-256
//!   prefix: "sha256="
//!   secrets: [env:GITHUB_WEBHOOK_SECRET]
//! ```
//!
//! Load the block with serde ([`AuthConfig`] validates itself while it is
//! deserialized), resolve [`AuthConfig::secret_refs`] elsewhere, build one
//! [`Verifier`] at start with the resolved values, then call
//! [`Verifier::verify`] for each request with the body exactly as received.
//!
//! | scheme | keys besides `scheme` |
//! |---|---|
//! | `none` | none |
//! | `api-key` | `secrets`, `header` (default `X-Api-Key`) |
//! | `standard-webhooks` | `secrets`, `tolerance_seconds` (default 300) |
//! | `hmac-sha256` | `secrets`, `header` (required), `encoding` (`hex` or `base64`, default `hex`), `prefix`, `timestamp_header`, `tolerance_seconds` (default 300, only with `timestamp_header`), `signed_content` (default `{body}`) |
//!
//! Neither a secret nor which secret or which part of the content failed
//! ever appears in an error: [`AuthError`]'s messages are safe to return to
//! the sender.

mod api_key;
mod config;
mod hmac_sha256;
mod standard_webhooks;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;

pub use config::{
    AuthConfig, AuthConfigError, SignatureEncoding, DEFAULT_API_KEY_HEADER,
    DEFAULT_TOLERANCE_SECONDS,
};

use api_key::ApiKeyVerifier;
use config::SchemeConfig;
use hmac_sha256::HmacSha256Verifier;
use standard_webhooks::StandardWebhooksVerifier;

/// Header access for [`InboundRequest`]: the first value of a header, looked
/// up by its **lower-case** name; `None` if absent.
///
/// Implemented for maps keyed by lower-case names (`BTreeMap<String, String>`,
/// `HashMap<String, String>`) and for name/value pair lists, `Vec` or array
/// (compared case-insensitively). Implement it for another header type as needed, e.g.
/// `http::HeaderMap` (`self.get(name).and_then(|v| v.to_str().ok())`).
pub trait HeaderLookup {
    fn lookup(&self, lower_name: &str) -> Option<&str>;
}

impl HeaderLookup for BTreeMap<String, String> {
    fn lookup(&self, lower_name: &str) -> Option<&str> {
        self.get(lower_name).map(String::as_str)
    }
}

impl<S: BuildHasher> HeaderLookup for HashMap<String, String, S> {
    fn lookup(&self, lower_name: &str) -> Option<&str> {
        self.get(lower_name).map(String::as_str)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderLookup for Vec<(K, V)> {
    fn lookup(&self, lower_name: &str) -> Option<&str> {
        lookup_pairs(self, lower_name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> HeaderLookup for [(K, V); N] {
    fn lookup(&self, lower_name: &str) -> Option<&str> {
        lookup_pairs(self, lower_name)
    }
}

fn lookup_pairs<'p, K: AsRef<str>, V: AsRef<str>>(
    pairs: &'p [(K, V)],
    lower_name: &str,
) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(name, _)| name.as_ref().eq_ignore_ascii_case(lower_name))
        .map(|(_, value)| value.as_ref())
}

/// What a verifier needs to see of an inbound request.
#[derive(Clone, Copy)]
pub struct InboundRequest<'a> {
    /// HTTP method as received, e.g. `POST`.
    pub method: &'a str,
    /// Request target as received: path plus `?query` if any, no scheme/host.
    pub uri: &'a str,
    /// The request's headers.
    pub headers: &'a dyn HeaderLookup,
    /// Body bytes exactly as received (after any API Gateway base64 decoding,
    /// before any parsing).
    pub body: &'a [u8],
}

impl<'a> InboundRequest<'a> {
    pub fn new(
        method: &'a str,
        uri: &'a str,
        headers: &'a dyn HeaderLookup,
        body: &'a [u8],
    ) -> Self {
        InboundRequest {
            method,
            uri,
            headers,
            body,
        }
    }

    /// A header's value with surrounding whitespace trimmed; absent or empty
    /// is [`AuthError::MissingHeader`].
    fn header(&self, lower_name: &str) -> Result<&'a str, AuthError> {
        self.headers
            .lookup(lower_name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| AuthError::MissingHeader(lower_name.to_owned()))
    }

    /// Whether a header is present at all.
    fn has_header(&self, lower_name: &str) -> bool {
        self.headers.lookup(lower_name).is_some()
    }
}

impl fmt::Debug for InboundRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundRequest")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why a request was refused. The message tells the sender's developer what
/// to fix and nothing more (no secret, no hint at which secret or which part
/// of the signed content differed). Every variant means HTTP 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A required header is absent or empty (lower-case name).
    #[error("missing header {0}")]
    MissingHeader(String),
    /// A header is present but cannot be parsed.
    #[error("malformed header {header}: expected {expected}")]
    MalformedHeader { header: String, expected: String },
    /// No signature matches any configured secret.
    #[error("signature does not match")]
    BadSignature,
    /// The api key matches none of the configured keys.
    #[error("api key does not match")]
    BadApiKey,
    /// The request's timestamp is older than the tolerance.
    #[error("timestamp outside the tolerance: too old")]
    TooOld,
    /// The request's timestamp is further in the future than the tolerance.
    #[error("timestamp outside the tolerance: in the future")]
    InFuture,
}

/// Checks inbound requests for one route. Built once at start; `Send + Sync`,
/// cheap to share behind an `Arc`. Its `Debug` shows no secret.
pub struct Verifier {
    inner: Inner,
}

enum Inner {
    None,
    ApiKey(ApiKeyVerifier),
    StandardWebhooks(StandardWebhooksVerifier),
    HmacSha256(HmacSha256Verifier),
}

impl Verifier {
    /// Builds the verifier for `config` with the resolved `secrets`, one per
    /// [`AuthConfig::secret_refs`] entry and in the same order (none for
    /// scheme `none`). Errors name the field (`auth.secrets[1]`, ...) and the
    /// secret's reference, never its value.
    pub fn new(config: &AuthConfig, secrets: Vec<String>) -> Result<Verifier, AuthConfigError> {
        let refs = config.secret_refs();
        if secrets.len() != refs.len() {
            return Err(AuthConfigError::invalid(
                "secrets",
                format!(
                    "{} secret reference(s) but {} resolved value(s)",
                    refs.len(),
                    secrets.len()
                ),
            ));
        }
        if let Some(index) = secrets.iter().position(String::is_empty) {
            return Err(AuthConfigError::invalid(
                format!("secrets[{index}]"),
                format!("the value of {} is empty", refs[index]),
            ));
        }
        let inner = match &config.scheme {
            SchemeConfig::None => Inner::None,
            SchemeConfig::ApiKey { header } => Inner::ApiKey(ApiKeyVerifier::new(header, &secrets)),
            SchemeConfig::StandardWebhooks { tolerance_seconds } => Inner::StandardWebhooks(
                StandardWebhooksVerifier::new(*tolerance_seconds, &secrets, refs)?,
            ),
            SchemeConfig::HmacSha256(hmac) => {
                Inner::HmacSha256(HmacSha256Verifier::new(hmac, &secrets, refs)?)
            }
        };
        Ok(Verifier { inner })
    }

    /// True for scheme `none`: every request passes (warn at start).
    pub fn is_none(&self) -> bool {
        matches!(self.inner, Inner::None)
    }

    /// `none`, `api-key`, `standard-webhooks` or `hmac-sha256`.
    pub fn scheme_name(&self) -> &'static str {
        match self.inner {
            Inner::None => "none",
            Inner::ApiKey(_) => "api-key",
            Inner::StandardWebhooks(_) => "standard-webhooks",
            Inner::HmacSha256(_) => "hmac-sha256",
        }
    }

    /// Checks `req`; `now_unix` is the current time in unix seconds.
    pub fn verify(&self, req: &InboundRequest<'_>, now_unix: i64) -> Result<(), AuthError> {
        match &self.inner {
            Inner::None => Ok(()),
            Inner::ApiKey(verifier) => verifier.verify(req),
            Inner::StandardWebhooks(verifier) => verifier.verify(req, now_unix),
            Inner::HmacSha256(verifier) => verifier.verify(req, now_unix),
        }
    }

    fn key_count(&self) -> usize {
        match &self.inner {
            Inner::None => 0,
            Inner::ApiKey(verifier) => verifier.key_count(),
            Inner::StandardWebhooks(verifier) => verifier.key_count(),
            Inner::HmacSha256(verifier) => verifier.key_count(),
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme_name())
            .field("secrets", &self.key_count())
            .finish_non_exhaustive()
    }
}

/// Parses a unix timestamp header: ASCII digits only, fits in an `i64`.
fn parse_unix_timestamp(value: &str) -> Option<i64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `timestamp` (unix seconds) must be within `tolerance_seconds` of `now`,
/// either way; the bounds themselves pass.
fn check_timestamp(timestamp: i64, now: i64, tolerance_seconds: u32) -> Result<(), AuthError> {
    let tolerance = i64::from(tolerance_seconds);
    if timestamp < now.saturating_sub(tolerance) {
        Err(AuthError::TooOld)
    } else if timestamp > now.saturating_add(tolerance) {
        Err(AuthError::InFuture)
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Deserializes an `auth:` block, panicking on error.
    pub(super) fn load(yaml: &str) -> AuthConfig {
        match serde_yaml_ng::from_str(yaml) {
            Ok(config) => config,
            Err(error) => panic!("{yaml:?}: {error}"),
        }
    }

    pub(super) fn verifier_result(
        yaml: &str,
        secrets: &[&str],
    ) -> Result<Verifier, AuthConfigError> {
        Verifier::new(&load(yaml), secrets.iter().map(|s| s.to_string()).collect())
    }

    pub(super) fn verifier(yaml: &str, secrets: &[&str]) -> Verifier {
        match verifier_result(yaml, secrets) {
            Ok(verifier) => verifier,
            Err(error) => panic!("{yaml:?}: {error}"),
        }
    }

    /// Name/value pairs as a header list.
    pub(super) fn headers_fn<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        pairs.to_vec()
    }

    #[test]
    fn verifier_is_send_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Verifier>();
        assert_send_sync::<AuthConfig>();
        assert_send_sync::<AuthError>();
        assert_send_sync::<AuthConfigError>();
    }

    #[test]
    fn none_always_passes() {
        let v = verifier("scheme: none", &[]);
        assert!(v.is_none());
        assert_eq!(v.scheme_name(), "none");
        let h = headers_fn(&[]);
        let req = InboundRequest::new("POST", "/", &h, b"anything");
        assert_eq!(v.verify(&req, 0), Ok(()));
        assert_eq!(v.verify(&req, i64::MIN), Ok(()));
        assert!(!verifier("scheme: api-key\nsecrets: [env:K]", &["k"]).is_none());
    }

    #[test]
    fn secret_count_and_empty_values() {
        let yaml = "scheme: api-key\nsecrets: [env:A, env:B]";
        let err = verifier_result(yaml, &["a"]).unwrap_err();
        assert_eq!(err.field(), "secrets");
        assert_eq!(
            err.to_string(),
            "auth.secrets: 2 secret reference(s) but 1 resolved value(s)"
        );
        let err = verifier_result(yaml, &["a", ""]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "auth.secrets[1]: the value of env:B is empty"
        );
        let err = verifier_result("scheme: none", &["stray"]).unwrap_err();
        assert_eq!(err.field(), "secrets");
        assert!(!err.to_string().contains("stray"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let cases = [
            ("scheme: api-key\nsecrets: [env:K]", "super-secret-api-key"),
            (
                "scheme: hmac-sha256\nheader: X-Sig\nsecrets: [env:K]",
                "super-secret-hmac-key",
            ),
            (
                "scheme: standard-webhooks\nsecrets: [env:K]",
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            ),
        ];
        for (yaml, secret) in cases {
            let v = verifier(yaml, &[secret]);
            let debug = format!("{v:?}");
            assert!(!debug.contains(secret), "{debug}");
            assert!(!debug.contains("C2FVsBQ"), "{debug}");
            assert!(debug.contains("secrets: 1"), "{debug}");
        }
    }

    #[test]
    fn header_lookups() {
        let v = verifier("scheme: api-key\nsecrets: [env:K]", &["k1"]);
        let check = |headers: &dyn HeaderLookup| {
            v.verify(
                &InboundRequest::new("POST", "/hooks/a?b=c", headers, b"{}"),
                0,
            )
        };
        let mut hash: HashMap<String, String> = HashMap::new();
        hash.insert("x-api-key".into(), "k1".into());
        assert_eq!(check(&hash), Ok(()));
        let btree: BTreeMap<String, String> = hash.clone().into_iter().collect();
        assert_eq!(check(&btree), Ok(()));
        let owned = vec![("X-Api-Key".to_string(), "k1".to_string())];
        assert_eq!(check(&owned), Ok(()));
        assert_eq!(check(&[("X-API-KEY", "k1")]), Ok(()));
        // Map keys must already be lower-case.
        let upper: BTreeMap<String, String> = [("X-Api-Key".to_string(), "k1".to_string())].into();
        assert_eq!(
            check(&upper),
            Err(AuthError::MissingHeader("x-api-key".into()))
        );

        let req = InboundRequest::new("POST", "/", &btree, b"{}");
        assert!(format!("{req:?}").contains("body_len: 2"));
    }

    #[test]
    fn timestamp_helpers() {
        assert_eq!(parse_unix_timestamp("0"), Some(0));
        assert_eq!(parse_unix_timestamp("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_unix_timestamp(""), None);
        assert_eq!(parse_unix_timestamp(" 1"), None);
        assert_eq!(parse_unix_timestamp("1e9"), None);
        assert_eq!(parse_unix_timestamp("9223372036854775808"), None);
        assert_eq!(check_timestamp(100, 100, 1), Ok(()));
        assert_eq!(check_timestamp(99, 100, 1), Ok(()));
        assert_eq!(check_timestamp(98, 100, 1), Err(AuthError::TooOld));
        assert_eq!(check_timestamp(102, 100, 1), Err(AuthError::InFuture));
    }

    #[test]
    fn scheme_names() {
        for (yaml, secrets, name) in [
            ("scheme: none", &[][..], "none"),
            ("scheme: api-key\nsecrets: [env:K]", &["k"][..], "api-key"),
            (
                "scheme: standard-webhooks\nsecrets: [env:K]",
                &["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"][..],
                "standard-webhooks",
            ),
            (
                "scheme: hmac-sha256\nheader: X\nsecrets: [env:K]",
                &["k"][..],
                "hmac-sha256",
            ),
        ] {
            assert_eq!(load(yaml).scheme_name(), name);
            assert_eq!(verifier(yaml, secrets).scheme_name(), name);
        }
    }
}
