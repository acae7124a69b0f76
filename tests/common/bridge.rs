//! An in-process bridge on a loopback port (assembled by `ServiceBuilder`, in-memory stores
//! unless a test gives others) talking to a real panel, and the answers of a bridge (in-process
//! or a `payout-bridge serve` process) to a delivery.

use super::client;
use async_trait::async_trait;
use payout_bridge::app::Bridge;
use payout_bridge::config::Settings;
use payout_bridge::panel::{PanelClient, PanelClientConfig};
use payout_bridge::ports::{DeliveryStore, PanelApi, Secret, SecretSource, StoreError};
use payout_bridge::service::ServiceBuilder;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The api key of [`TEST_ROUTES`] (`env:PAYOUTS_KEY`).
pub const TEST_KEY: &str = "test-api-key";

/// A create route `payouts` and a cancel route `cancel`, both on [`TEST_KEY`].
pub const TEST_ROUTES: &str = r#"
routes:
  - name: payouts
    action: create
    auth:
      scheme: api-key
      secrets: [env:PAYOUTS_KEY]
  - name: cancel
    action: cancel
    auth:
      scheme: api-key
      secrets: [env:PAYOUTS_KEY]
"#;

/// Secrets from a map, reference → value.
pub struct MapSecrets(pub HashMap<String, String>);

impl MapSecrets {
    /// From (reference, value) pairs.
    pub fn of(pairs: &[(&str, &str)]) -> Arc<dyn SecretSource> {
        Arc::new(MapSecrets(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }
}

#[async_trait]
impl SecretSource for MapSecrets {
    async fn fetch(&self, reference: &str) -> Result<Secret, StoreError> {
        self.0
            .get(reference)
            .map(|v| Secret::new(v.clone()))
            .ok_or_else(|| StoreError::NotFound(reference.to_string()))
    }
}

/// Settings from pairs, over the defaults.
pub fn settings(vars: &[(&str, &str)]) -> Settings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(&move |k| map.get(k).cloned()).expect("settings")
}

/// The real panel client for `panel_url`, with short test timeouts.
pub fn panel_client(panel_url: &str) -> Arc<dyn PanelApi> {
    Arc::new(
        PanelClient::new(&PanelClientConfig {
            base_url: panel_url.to_string(),
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(1500),
        })
        .expect("panel client"),
    )
}

/// A running in-process bridge.
pub struct TestBridge {
    pub url: String,
    pub bridge: Arc<Bridge>,
    pub deliveries: Arc<dyn DeliveryStore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a bridge on `routes` against `panel_url` with `password`, in-memory stores.
pub async fn start_bridge(
    panel_url: &str,
    password: &str,
    routes: &str,
    vars: &[(&str, &str)],
) -> TestBridge {
    start_bridge_full(panel_client(panel_url), password, routes, vars, &[]).await
}

/// Same, with any panel adapter.
pub async fn start_bridge_with(
    panel: Arc<dyn PanelApi>,
    password: &str,
    routes: &str,
    vars: &[(&str, &str)],
) -> TestBridge {
    start_bridge_full(panel, password, routes, vars, &[]).await
}

/// Same, with more secrets (reference → value) for the routes.
pub async fn start_bridge_full(
    panel: Arc<dyn PanelApi>,
    password: &str,
    routes: &str,
    vars: &[(&str, &str)],
    extra_secrets: &[(&str, &str)],
) -> TestBridge {
    let mut secrets = vec![
        ("env:PAYOUTS_KEY", TEST_KEY),
        ("test:panel-password", password),
    ];
    secrets.extend_from_slice(extra_secrets);
    let bridge = Arc::new(
        ServiceBuilder::new(settings(vars))
            .routes_yaml(routes, "test routes")
            .expect("routes")
            .panel(panel)
            .secrets(MapSecrets::of(&secrets))
            .password_ref("test:panel-password")
            .build()
            .await
            .expect("build the bridge"),
    );
    serve(bridge).await
}

/// Serves an assembled bridge on a loopback port until the handle drops.
pub async fn serve(bridge: Arc<Bridge>) -> TestBridge {
    let deliveries = bridge.deliveries().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = payout_bridge::http::router(bridge.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    TestBridge {
        url: format!("http://{addr}"),
        bridge,
        deliveries,
        task,
    }
}

// ---------------------------------------------------------------------------------------------
// Deliveries and answers

/// POSTs JSON to a route of the bridge at `url` with the test key.
pub async fn post_hook(url: &str, route: &str, body: &Value) -> reqwest::Response {
    post_hook_with(&client(), url, route, body).await
}

/// Same, on a given client (its connection pool).
pub async fn post_hook_with(
    http: &reqwest::Client,
    url: &str,
    route: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(format!("{url}/hooks/{route}"))
        .header("x-api-key", TEST_KEY)
        .json(body)
        .send()
        .await
        .expect("post to the bridge")
}

/// POSTs a JSON body to a route with the test key and reads the answer.
pub async fn deliver_to(http: &reqwest::Client, url: &str, route: &str, body: &Value) -> Answer {
    Answer::read(post_hook_with(http, url, route, body).await).await
}

/// One answer of the bridge.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
    pub retry_after: Option<String>,
}

impl Answer {
    /// Reads a response of the bridge (a body that is not JSON reads as `null`).
    pub async fn read(resp: reqwest::Response) -> Answer {
        let status = resp.status().as_u16();
        let replayed = resp
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            body,
            replayed,
            retry_after,
        }
    }

    pub fn error_type(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or("")
    }

    pub fn payout_id(&self) -> Option<u64> {
        self.body["payments"][0]["id"].as_u64()
    }

    /// Asserts an error answer: status, type, the documented shape, and Retry-After exactly
    /// where the README promises it.
    #[track_caller]
    pub fn assert_error(&self, status: u16, kind: &str) {
        assert_eq!(
            (self.status, self.error_type()),
            (status, kind),
            "answer: {self:?}"
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{self:?}"
        );
        assert_eq!(self.body["errors"], json!([]), "{self:?}");
        let wants_retry_after = matches!(
            kind,
            "PANEL_UNAVAILABLE" | "STATE_UNAVAILABLE" | "REQUEST_IN_PROGRESS"
        );
        assert_eq!(
            self.retry_after.is_some(),
            wants_retry_after,
            "Retry-After on {kind}: {self:?}"
        );
    }

    /// Asserts a 201 (replayed or not) and returns its payout id.
    #[track_caller]
    pub fn assert_created(&self, replayed: bool) -> u64 {
        assert_eq!(
            (self.status, self.replayed),
            (201, replayed),
            "answer: {self:?}"
        );
        self.payout_id().expect("a payout id in a 201")
    }
}
