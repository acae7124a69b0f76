//! Helpers of `tests/faults.rs` and `tests/duplicate_storm.rs`: the panel simulator and
//! `payout-bridge serve` as processes, a private moto server, a TCP proxy that can cut the
//! bridge off its state store, and readers of the delivery records and of the panel's payouts.
//!
//! Builds on `tests/common` (processes, the simulator's control API, temp files); a test crate
//! using it declares `mod common;` too.
#![allow(dead_code)] // each test crate uses a different subset

#[allow(unused_imports)] // each test crate uses a different subset
pub use crate::common::{
    client, counter, free_port, port_of, sim_post, sim_post_at, sim_state, sim_state_at,
    spawn_listening, temp_file, unique, Proc, TEST_KEY,
};

use payout_bridge::ports::{DeliveryRecord, DeliveryState, DeliveryStore};
use payout_bridge::store::dynamodb::DynamoDeliveryStore;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Processes

pub const SIM_PASSWORD: &str = "sim-password";

/// The panel simulator as an external process (quiet logs), on `port` (0 = any free one).
pub fn panel_sim_on(port: u16) -> Proc {
    let port = port.to_string();
    spawn_listening(
        env!("CARGO_BIN_EXE_panel-sim"),
        &["--password", SIM_PASSWORD, "--port", &port],
        &[("RUST_LOG", "warn".to_string())],
    )
}

pub fn panel_sim() -> Proc {
    panel_sim_on(0)
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// The panel's payouts (cancelled ones included) grouped by the externalId written into
/// their description by [`create_body`].
pub fn payouts_by_external_id(state: &Value) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in state["payments"].as_array().into_iter().flatten() {
        if let (Some(desc), Some(id)) = (p["description"].as_str(), p["id"].as_u64()) {
            if let Some(ext) = desc.strip_prefix(DESCRIPTION_PREFIX) {
                out.entry(ext.to_string()).or_default().push(id);
            }
        }
    }
    out
}

/// How many payouts the panel holds for `external_id`.
pub fn paid(state: &Value, external_id: &str) -> usize {
    payouts_by_external_id(state)
        .get(external_id)
        .map_or(0, Vec::len)
}

pub const DESCRIPTION_PREFIX: &str = "payout for ";

/// A valid canonical create command whose description names its externalId, so the panel's
/// payouts can be counted per externalId (the panel never sees the externalId itself).
pub fn create_body(external_id: &str, amount: &str) -> Value {
    json!({
        "amount": amount,
        "currency": "GBP",
        "startDate": "2030-01-01 12:00:00",
        "endDate": "2030-02-01 12:00:00",
        "name": "Fault suite",
        "description": format!("{DESCRIPTION_PREFIX}{external_id}"),
        "userName": "ada",
        "notification": false,
        "externalId": external_id,
    })
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

/// POSTs a JSON body to a route with the test key.
pub async fn deliver_to(http: &reqwest::Client, url: &str, route: &str, body: &Value) -> Answer {
    let resp = http
        .post(format!("{url}/hooks/{route}"))
        .header("x-api-key", TEST_KEY)
        .json(body)
        .send()
        .await
        .expect("post to the bridge");
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

pub async fn deliver(url: &str, route: &str, body: &Value) -> Answer {
    deliver_to(&client(), url, route, body).await
}

/// Polls `f` every 50 ms until it is true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Files and names

pub const ROUTES: &str = r#"
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

// ---------------------------------------------------------------------------------------------
// AWS (moto)

/// The endpoint of the moto server `scripts/test.sh` started.
pub fn shared_endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "AWS_ENDPOINT_URL is not set: these tests run against moto's server; run scripts/test.sh \
             (or start moto and export AWS_ENDPOINT_URL, AWS_REGION and test credentials)"
        ),
    }
}

/// DynamoDB and Secrets Manager clients of the application's SDK configuration, pointed at
/// `endpoint`. (Set on each service's config: the SDK prefers `AWS_ENDPOINT_URL` from the
/// environment over `SdkConfig::endpoint_url`.)
pub async fn clients_for(
    endpoint: &str,
) -> (aws_sdk_dynamodb::Client, aws_sdk_secretsmanager::Client) {
    let sdk = payout_bridge::aws::sdk_config().await;
    let ddb = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .build();
    let sm = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .build();
    (
        aws_sdk_dynamodb::Client::from_conf(ddb),
        aws_sdk_secretsmanager::Client::from_conf(sm),
    )
}

/// A fresh table and password secret on the moto server at `endpoint`.
pub struct Aws {
    pub endpoint: String,
    pub table: String,
    pub secret_id: String,
    pub sm: aws_sdk_secretsmanager::Client,
    pub deliveries: DynamoDeliveryStore,
}

impl Aws {
    pub async fn new(endpoint: &str) -> Aws {
        let (ddb, sm) = clients_for(endpoint).await;
        let table = format!("faults-{}", unique());
        payout_bridge::store::dynamodb::create_table(&ddb, &table)
            .await
            .expect("create table");
        let secret_id = format!("faults-password-{}", unique());
        sm.create_secret()
            .name(&secret_id)
            .secret_string(json!({ "apiKey": SIM_PASSWORD }).to_string())
            .send()
            .await
            .expect("create secret");
        Aws {
            endpoint: endpoint.to_string(),
            deliveries: DynamoDeliveryStore::new(ddb, table.clone()),
            table,
            secret_id,
            sm,
        }
    }

    pub async fn shared() -> Aws {
        Aws::new(&shared_endpoint()).await
    }

    pub async fn set_password(&self, password: &str) {
        self.sm
            .put_secret_value()
            .secret_id(&self.secret_id)
            .secret_string(password)
            .send()
            .await
            .expect("rotate secret");
    }

    /// The delivery record of a create on route `payouts` with this externalId.
    pub async fn record(&self, external_id: &str) -> Option<DeliveryRecord> {
        let key = format!("ext:{external_id}");
        let id = payout_bridge::ports::RecordId {
            route: "payouts",
            key: &key,
        };
        self.deliveries
            .get(id, now())
            .await
            .expect("read the delivery record")
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The environment of `payout-bridge` (serve and the operator commands).
pub fn bridge_env(
    panel_url: &str,
    aws: &Aws,
    routes: &Path,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PANEL_URL", panel_url.to_string()),
        ("PANEL_PASSWORD_SECRET_ID", aws.secret_id.clone()),
        ("BRIDGE_TABLE", aws.table.clone()),
        ("BRIDGE_CONFIG", routes.display().to_string()),
        ("PAYOUTS_KEY", TEST_KEY.to_string()),
        ("AWS_ENDPOINT_URL", aws.endpoint.clone()),
        ("PANEL_REQUEST_TIMEOUT_MS", "3000".to_string()),
        ("PANEL_CONNECT_TIMEOUT_MS", "500".to_string()),
        ("RUST_LOG", "error".to_string()),
    ];
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k, v.to_string()));
    }
    env
}

/// `payout-bridge serve` on a free port.
pub fn bridge(env: &[(&'static str, String)]) -> Proc {
    spawn_listening(
        env!("CARGO_BIN_EXE_payout-bridge"),
        &["serve", "--port", "0"],
        env,
    )
}

/// Runs a `payout-bridge` operator command; (success, stdout, stderr).
pub fn operator(env: &[(&'static str, String)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payout-bridge"));
    cmd.args(args).env_remove("AWS_LAMBDA_RUNTIME_API");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run payout-bridge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `payout-bridge pending --json`, parsed: one object per line.
pub fn pending(env: &[(&'static str, String)]) -> Vec<Value> {
    let (ok, out, err) = operator(env, &["pending", "--json"]);
    assert!(ok, "pending failed: {out}{err}");
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("pending line {l:?}: {e}")))
        .collect()
}

/// The `pending --json` line of a create with this externalId, if listed.
pub fn pending_line(env: &[(&'static str, String)], external_id: &str) -> Option<Value> {
    let key = format!("ext:{external_id}");
    pending(env)
        .into_iter()
        .find(|l| l["route"] == "payouts" && l["key"] == key.as_str())
}

/// Checks that the stored record agrees with the answer the sender got (nothing
/// half-written): a 201 is COMPLETED with that body, a 504 is OUTCOME_UNKNOWN, a 409 is
/// IN_PROGRESS, any other error a FAILED record replaying the same status and error type.
#[track_caller]
pub fn assert_record_matches(record: Option<&DeliveryRecord>, answer: &Answer) {
    let record = record.unwrap_or_else(|| panic!("no delivery record for answer {answer:?}"));
    match (answer.status, &record.state) {
        (201, DeliveryState::Completed { status, body }) => {
            assert_eq!(*status, 201, "{record:?}");
            let stored: Value = serde_json::from_str(body).expect("stored body is JSON");
            assert_eq!(
                stored["payments"][0]["id"].as_u64(),
                answer.payout_id(),
                "stored payout id vs answer: {record:?} {answer:?}"
            );
        }
        (504, DeliveryState::OutcomeUnknown { reason }) => {
            assert!(!reason.is_empty(), "{record:?}");
        }
        (409, DeliveryState::InProgress { .. }) => {}
        (s, DeliveryState::Failed { status, body }) if s != 201 && s != 504 && s != 409 => {
            assert_eq!(*status, s, "{record:?} vs {answer:?}");
            let stored: Value = serde_json::from_str(body).expect("stored body is JSON");
            assert_eq!(
                stored["error"]["type"].as_str(),
                Some(answer.error_type()),
                "{record:?} vs {answer:?}"
            );
        }
        _ => panic!("record {record:?} does not match the answer {answer:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A private moto server and a proxy in front of it

/// A moto server of our own (as `scripts/test.sh` starts it), killed on drop.
pub struct Moto {
    pub proc: Proc,
}

impl Moto {
    pub async fn start() -> Moto {
        let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
        assert!(
            Path::new(python).exists(),
            "{python} is missing: run scripts/test.sh once to install moto"
        );
        let port = free_port();
        let child = Command::new(python)
            .args([
                concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/moto_serialized.py"),
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let url = format!("http://127.0.0.1:{port}");
        let proc = Proc { child, url };
        let ready = eventually(Duration::from_secs(30), || async {
            client()
                .get(format!("{}/moto-api/", proc.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(ready, "moto did not come up on {}", proc.url);
        Moto { proc }
    }

    pub fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", port_of(&self.proc.url))
            .parse()
            .expect("addr")
    }

    pub fn kill(&mut self) {
        self.proc.kill();
    }
}

/// A TCP proxy on a fixed loopback port that can be switched off (its port then refuses
/// connections and every proxied connection is closed) and on again, and can lose answers:
/// with `lose_answers(n)`, the next `n` responses are dropped and their connections closed
/// after the request was delivered (the store applied it, the client never hears).
pub struct Switch {
    pub port: u16,
    target: SocketAddr,
    lose: std::sync::Arc<std::sync::atomic::AtomicU32>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Switch {
    pub async fn new(target: SocketAddr) -> Switch {
        let mut s = Switch {
            port: 0,
            target,
            lose: Default::default(),
            task: None,
        };
        s.on().await;
        s
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drop the next `n` answers (in addition to any still pending).
    pub fn lose_answers(&self, n: u32) {
        self.lose.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answers still to be lost.
    pub fn answers_to_lose(&self) -> u32 {
        self.lose.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn on(&mut self) {
        if self.task.is_some() {
            return;
        }
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("rebind the proxy port");
        self.port = listener.local_addr().expect("addr").port();
        let (target, lose) = (self.target, self.lose.clone());
        self.task = Some(tokio::spawn(async move {
            // Owned here: aborting this task drops the listener and every connection.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { continue };
                        conns.spawn(pipe(inbound, target, lose.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        }));
    }

    pub async fn off(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// One proxied connection. Returning drops (closes) both sockets.
async fn pipe(
    inbound: tokio::net::TcpStream,
    target: SocketAddr,
    lose: std::sync::Arc<std::sync::atomic::AtomicU32>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();
    let requests = async {
        let _ = tokio::io::copy(&mut in_r, &mut out_w).await;
    };
    let answers = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match out_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let lost = lose
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1))
                .is_ok();
            if lost || in_w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}
impl Drop for Switch {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
