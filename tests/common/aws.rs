//! The AWS emulator (moto): the shared server `scripts/test.sh` starts (`AWS_ENDPOINT_URL`)
//! or a private one ([`Moto`]), the SDK configuration and clients of the application pointed
//! at it, and a fresh table and panel-password secret ([`Aws`]).
//!
//! These tests never skip silently and never run against real AWS by accident: without
//! `AWS_ENDPOINT_URL` they fail with a message saying how to run them.

use super::process::{free_port, port_of, Proc};
use super::{client, eventually, now, unique};
use aws_config::SdkConfig;
use payout_bridge::ports::{DeliveryRecord, DeliveryStore, RecordId};
use payout_bridge::store::dynamodb::DynamoDeliveryStore;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The endpoint of the moto server `scripts/test.sh` started.
pub fn shared_endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "AWS_ENDPOINT_URL is not set. These tests need the moto AWS emulator: run them with \
             scripts/test.sh, which installs and starts moto and sets AWS_ENDPOINT_URL, AWS_REGION \
             and test credentials (extra arguments are passed to cargo test)."
        ),
    }
}

/// The SDK configuration of the application (`payout_bridge::aws::sdk_config`), pointed at the
/// shared emulator by `AWS_ENDPOINT_URL`.
pub async fn emulator_config() -> SdkConfig {
    shared_endpoint();
    let conf = payout_bridge::aws::sdk_config().await;
    assert!(
        conf.region().is_some(),
        "AWS_REGION is not set: run the tests with scripts/test.sh"
    );
    conf
}

/// DynamoDB and Secrets Manager clients of the application's SDK configuration, pointed at
/// `endpoint`. (Set on each service's config: the SDK prefers `AWS_ENDPOINT_URL` from the
/// environment over `SdkConfig::endpoint_url`.)
pub async fn clients_for(
    endpoint: &str,
) -> (aws_sdk_dynamodb::Client, aws_sdk_secretsmanager::Client) {
    let sdk = emulator_config().await;
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

/// A fresh table and panel-password secret on a moto server.
pub struct Aws {
    pub endpoint: String,
    pub table: String,
    pub secret_id: String,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sm: aws_sdk_secretsmanager::Client,
    /// The delivery records on `table`.
    pub deliveries: DynamoDeliveryStore,
}

/// A fresh table and secret (holding `password`) on the shared emulator.
pub async fn aws(password: &str) -> Aws {
    Aws::new(&shared_endpoint(), password).await
}

impl Aws {
    /// A fresh table and secret (holding `password`) on the moto server at `endpoint`.
    pub async fn new(endpoint: &str, password: &str) -> Aws {
        let (ddb, sm) = clients_for(endpoint).await;
        let table = format!("bridge-test-{}", unique());
        payout_bridge::store::dynamodb::create_table(&ddb, &table)
            .await
            .expect("create table");
        let secret_id = format!("panel-password-{}", unique());
        sm.create_secret()
            .name(&secret_id)
            .secret_string(json!({ "apiKey": password }).to_string())
            .send()
            .await
            .expect("create secret");
        Aws {
            endpoint: endpoint.to_string(),
            deliveries: DynamoDeliveryStore::new(ddb.clone(), table.clone()),
            table,
            secret_id,
            ddb,
            sm,
        }
    }

    /// Rotates the password secret (a plain-string value).
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
        let id = RecordId {
            route: "payouts",
            key: &key,
        };
        self.deliveries
            .get(id, now())
            .await
            .expect("read the delivery record")
    }
}

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
