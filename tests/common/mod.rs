//! Shared test helpers: the panel simulator and payout-bridge as real processes, on loopback.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub url: String,
}

impl Proc {
    /// Kills the process now (idempotent).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `bin` with `args` and `envs` (stderr inherited), waits (bounded) for a stdout line
/// containing "listening on http://", and returns the URL it printed.
pub fn spawn_listening(bin: &str, args: &[&str], envs: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.args(args).stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    spawn_command(cmd)
}

/// Starts a prepared command (its stderr as the caller set it; stdout is read here) and waits
/// for its "listening on http://" line.
pub fn spawn_command(mut cmd: Command) -> Proc {
    let bin = cmd.get_program().to_string_lossy().to_string();
    cmd.stdout(Stdio::piped())
        .env_remove("AWS_LAMBDA_RUNTIME_API");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent {
                if let Some(pos) = line.find("listening on http://") {
                    let url = line[pos + "listening on ".len()..].trim().to_string();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => Proc { child, url },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} did not report its address within 60 s");
        }
    }
}

/// A loopback port that was free a moment ago (nothing listens on it now).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// The panel simulator as an external process, like a real panel.
pub fn panel_sim(extra: &[&str]) -> Proc {
    let mut args = vec!["--password", "sim-password"];
    args.extend_from_slice(extra);
    spawn_listening(env!("CARGO_BIN_EXE_panel-sim"), &args, &[])
}

/// A blocking-free HTTP client for tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .expect("client")
}

pub async fn sim_state(sim: &Proc) -> Value {
    sim_state_at(&sim.url).await
}

pub async fn sim_state_at(sim_url: &str) -> Value {
    client()
        .get(format!("{sim_url}/sim/state"))
        .send()
        .await
        .expect("sim state")
        .json()
        .await
        .expect("sim state json")
}

pub async fn sim_post(sim: &Proc, path: &str, body: Value) {
    sim_post_at(&sim.url, path, body).await;
}

pub async fn sim_post_at(sim_url: &str, path: &str, body: Value) {
    let resp = client()
        .post(format!("{sim_url}{path}"))
        .json(&body)
        .send()
        .await
        .expect("sim control");
    assert!(
        resp.status().is_success(),
        "sim control {path}: {}",
        resp.status()
    );
}

/// Number of payouts at the panel with the given status (None = any).
pub fn payouts(state: &Value) -> Vec<Value> {
    state["payments"].as_array().cloned().unwrap_or_default()
}

pub fn counter(state: &Value, name: &str) -> u64 {
    state["counters"][name].as_u64().unwrap_or(0)
}

/// A valid canonical create command.
pub fn create_body(external_id: &str, amount: &str) -> Value {
    json!({
        "amount": amount,
        "currency": "GBP",
        "startDate": "2030-01-01 12:00:00",
        "endDate": "2030-02-01 12:00:00",
        "name": "Test project",
        "description": "Test payout",
        "userName": "ada",
        "notification": false,
        "externalId": external_id,
    })
}

/// Writes `text` to a fresh temporary file and returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "payout-bridge-test-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file");
    path
}

pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------------
// An in-process bridge on a loopback port, with in-memory stores, talking to a real panel.

use async_trait::async_trait;
use payout_bridge::app::Bridge;
use payout_bridge::config::Settings;
use payout_bridge::panel::{PanelClient, PanelClientConfig};
use payout_bridge::ports::{DeliveryStore, PanelApi, Secret, SecretSource, StoreError};
use payout_bridge::service::ServiceBuilder;
use std::collections::HashMap;
use std::sync::Arc;

/// Secrets from a map (tests only).
pub struct MapSecrets(pub HashMap<String, String>);

#[async_trait]
impl SecretSource for MapSecrets {
    async fn fetch(&self, reference: &str) -> Result<Secret, StoreError> {
        self.0
            .get(reference)
            .map(|v| Secret::new(v.clone()))
            .ok_or_else(|| StoreError::NotFound(reference.to_string()))
    }
}

pub const TEST_KEY: &str = "test-api-key";

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

/// Settings from pairs, over the defaults.
pub fn settings(vars: &[(&str, &str)]) -> Settings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(&move |k| map.get(k).cloned()).expect("settings")
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
    let settings = settings(vars);
    let mut map = HashMap::from([
        ("env:PAYOUTS_KEY".to_string(), TEST_KEY.to_string()),
        ("test:panel-password".to_string(), password.to_string()),
    ]);
    for (k, v) in extra_secrets {
        map.insert(k.to_string(), v.to_string());
    }
    let secrets: Arc<dyn SecretSource> = Arc::new(MapSecrets(map));
    let bridge = Arc::new(
        ServiceBuilder::new(settings)
            .routes_yaml(routes, "test routes")
            .expect("routes")
            .panel(panel)
            .secrets(secrets)
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

/// POSTs JSON to a route with the test key.
pub async fn post_hook(url: &str, route: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{url}/hooks/{route}"))
        .header("x-api-key", TEST_KEY)
        .json(body)
        .send()
        .await
        .expect("post")
}

// ---------------------------------------------------------------------------------------------
// The AWS emulator (moto), started by scripts/test.sh

/// A fresh table and panel-password secret on the emulator at `AWS_ENDPOINT_URL`.
pub struct Aws {
    pub table: String,
    pub secret_id: String,
    pub sm: aws_sdk_secretsmanager::Client,
}

pub async fn aws(password: &str) -> Aws {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL is not set: these tests run against moto's server; run scripts/test.sh"
    );
    let sdk = payout_bridge::aws::sdk_config().await;
    let table = format!("bridge-test-{}", unique());
    payout_bridge::store::dynamodb::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
        .await
        .expect("create table");
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let secret_id = format!("panel-password-{}", unique());
    sm.create_secret()
        .name(&secret_id)
        .secret_string(json!({ "apiKey": password }).to_string())
        .send()
        .await
        .expect("create secret");
    Aws {
        table,
        secret_id,
        sm,
    }
}
