//! reqwest (rustls) client for the panel API.
//!
//! # Trusted roots
//!
//! The panel's certificate is checked against the CA roots compiled into the binary:
//! Mozilla's root program as shipped by the `webpki-roots` crate (the same set browsers and
//! `curl` on most distributions trust). They are already parsed, so building the client costs
//! microseconds; loading the system store (reqwest's default, `rustls-platform-verifier`)
//! read and parsed every PEM file at each cold start (3.2 ms measured, docs/BENCHMARKS.md).
//! The set changes when `webpki-roots` is updated (`cargo update -p webpki-roots`, see
//! docs/DEPLOY.md). A panel behind a private CA is reached with
//! [`PanelClient::with_extra_roots`].

use super::classify::{classify, parse_payments, parse_success, parse_token};
use crate::ports::{CreatedPayout, PanelApi, PanelOutcome, Secret};
use async_trait::async_trait;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the panel client.
#[derive(Debug, Clone)]
pub struct PanelClientConfig {
    /// Base URL, e.g. `https://panel.example.com` (the `/api/...` paths are appended).
    pub base_url: String,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (send + wait + read the answer).
    pub request_timeout: Duration,
}

/// Errors building the client.
#[derive(Debug, thiserror::Error)]
pub enum PanelConfigError {
    #[error("PANEL_URL `{0}` is not an http(s) URL")]
    BadUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("an extra CA root certificate cannot be used: {0}")]
    BadRoot(String),
}

/// The roots a panel certificate must chain to: the compiled-in Mozilla roots, plus `extra`
/// (DER certificates of private CAs).
pub fn root_store(extra: &[CertificateDer<'static>]) -> Result<RootCertStore, PanelConfigError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| PanelConfigError::BadRoot(e.to_string()))?;
    }
    Ok(roots)
}

/// The TLS settings of the panel client: TLS 1.2 and 1.3 with aws-lc-rs (reqwest's own
/// defaults), HTTP/1.1, certificates checked against [`root_store`].
pub fn tls_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, PanelConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PanelConfigError::Client(e.to_string()))?
        .with_root_certificates(root_store(extra_roots)?)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The panel client. Cheap to clone; keeps a pool of connections.
#[derive(Debug, Clone)]
pub struct PanelClient {
    http: reqwest::Client,
    base: String,
}

impl PanelClient {
    /// A client that trusts the compiled-in CA roots.
    pub fn new(config: &PanelClientConfig) -> Result<Self, PanelConfigError> {
        Self::with_extra_roots(config, &[])
    }

    /// A client that also trusts `extra_roots` (DER), e.g. the private CA of a panel that is
    /// not on the public internet.
    pub fn with_extra_roots(
        config: &PanelClientConfig,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<Self, PanelConfigError> {
        let base = config.base_url.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|_| PanelConfigError::BadUrl(config.base_url.clone()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(PanelConfigError::BadUrl(config.base_url.clone()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // Node-style servers close idle keep-alive connections after 5 s; a POST written to
            // a connection the server is closing fails in a way that looks like "maybe sent".
            // Dropping idle connections first keeps those false unknowns away.
            .pool_idle_timeout(Duration::from_secs(4))
            // A redirect would turn a POST into a GET; a 3xx is reported, not followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("payout-bridge/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls_config(extra_roots)?)
            .build()
            .map_err(|e| PanelConfigError::Client(e.to_string()))?;
        Ok(PanelClient { http, base })
    }

    async fn post<T>(
        &self,
        path: &str,
        token: Option<&Secret>,
        body: &Value,
        parse: impl FnOnce(Value) -> Option<T>,
    ) -> PanelOutcome<T> {
        let mut req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("accept", "application/json")
            .json(body);
        if let Some(token) = token {
            req = req.header("x-access-token", token.expose());
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return transport_outcome(&e),
        };
        let status = resp.status().as_u16();
        match resp.bytes().await {
            Ok(bytes) => classify(status, &bytes, parse),
            Err(e) => PanelOutcome::Unknown(format!(
                "panel answered HTTP {status} but the body could not be read: {}",
                error_chain(&e)
            )),
        }
    }
}

/// A transport error: before the request left, or after.
fn transport_outcome<T>(e: &reqwest::Error) -> PanelOutcome<T> {
    if e.is_connect() || e.is_builder() {
        PanelOutcome::NotSent(error_chain(e))
    } else if e.is_timeout() {
        PanelOutcome::Unknown(format!("no answer within the timeout: {}", error_chain(e)))
    } else {
        PanelOutcome::Unknown(error_chain(e))
    }
}

/// The error and its sources on one line (reqwest's Display hides the cause). The URL is
/// left out: it is configuration, not news, and keeps query strings out of logs.
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut s = String::from(if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The payout in a `{"payments":[…]}` answer: the first payment's id, and the whole answer.
fn created_payout(body: Value) -> Option<CreatedPayout> {
    let id = body["payments"][0]["id"].as_u64()?;
    Some(CreatedPayout { id, body })
}

#[async_trait]
impl PanelApi for PanelClient {
    async fn authenticate(&self, password: &Secret) -> PanelOutcome<Secret> {
        let body = json!({ "apiKey": password.expose() });
        self.post("/api/authenticate", None, &body, parse_token)
            .await
            .map(Secret::new)
    }

    async fn create(&self, token: &Secret, body: &Value) -> PanelOutcome<CreatedPayout> {
        self.post("/api/payment/create", Some(token), body, |v| {
            parse_payments(v).and_then(created_payout)
        })
        .await
    }

    async fn cancel(&self, token: &Secret, ids: &[u64]) -> PanelOutcome<u64> {
        self.post(
            "/api/payment/cancel",
            Some(token),
            &json!({ "ids": ids }),
            parse_success,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> PanelClientConfig {
        PanelClientConfig {
            base_url: url.into(),
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn rejects_non_http_urls() {
        assert!(PanelClient::new(&config("ftp://x")).is_err());
        assert!(PanelClient::new(&config("not a url")).is_err());
        assert!(PanelClient::new(&config("https://panel.example.com/")).is_ok());
    }

    #[tokio::test]
    async fn connection_refused_is_not_sent() {
        // Bind then drop a listener: the port is free and refuses connections.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let client =
            PanelClient::new(&config(&format!("http://127.0.0.1:{port}"))).expect("client");
        let out = client.create(&Secret::new("t"), &json!({})).await;
        assert!(matches!(out, PanelOutcome::NotSent(_)), "{out:?}");
    }
}
