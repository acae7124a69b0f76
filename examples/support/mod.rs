//! Helpers shared by the benchmark programs under `examples/` (loadgen, coldstart, roundtrips)
//! and `benches/bridge.rs` (as `#[path]` module): percentiles, the local secrets of
//! `scripts/make_events.py`, the example bodies, Standard Webhooks signing, and the moto set-up
//! (table and secrets). Not an example itself (cargo only builds `examples/*.rs` and
//! `examples/*/main.rs`). The service itself is never assembled here: the programs use
//! `payout_bridge::service::ServiceBuilder`, or run the `payout-bridge` binary.
#![allow(dead_code)]

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;

/// The secrets for local runs (`LOCAL_SECRETS` in `scripts/make_events.py`), named as the
/// `env:` references of `events/routes.yaml`.
pub const LOCAL_SECRETS: &[(&str, &str)] = &[
    (
        "PAYROLL_WEBHOOK_SECRET",
        "whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh",
    ),
    ("CRM_SIGNING_SECRET", "crm-local-secret"),
    ("FORM_API_KEY", "form-local-key"),
    ("PAYOUTS_KEY", "local-payouts-key"),
];

/// The value of one local secret.
pub fn local_secret(name: &str) -> &'static str {
    LOCAL_SECRETS
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no local secret {name}"))
}

/// Secrets Manager names used against moto (the deployed template's names).
pub const PASSWORD_SECRET: &str = "payout-bridge/panel-password";
pub const ROUTE_SECRETS: &str = "payout-bridge/route-secrets";

/// The `payout-bridge/route-secrets` JSON that `infra/routes.yaml` (the embedded routes) reads.
pub fn route_secrets_json() -> String {
    serde_json::json!({
        "payroll": local_secret("PAYROLL_WEBHOOK_SECRET"),
        "crm": local_secret("CRM_SIGNING_SECRET"),
        "form": local_secret("FORM_API_KEY"),
        "payouts": local_secret("PAYOUTS_KEY"),
    })
    .to_string()
}

/// `events/bodies/canonical-create.json` (the canonical create of the `payouts` route) with its
/// own externalId and amount.
pub fn canonical_create(external_id: &str, amount: &str) -> Value {
    let mut body: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/bodies/canonical-create.json"
    )))
    .expect("events/bodies/canonical-create.json is JSON");
    body["externalId"] = json!(external_id);
    body["amount"] = json!(amount);
    body
}

/// An approved pay run of `slips` payslips of `net` each (the shape of
/// `events/bodies/payroll-payrun.json`), payslip ids `{run}-{i}`: one create per payslip on the
/// `payroll` route.
pub fn payroll_payrun(run: &str, slips: usize, net: &str) -> Value {
    let payslips: Vec<Value> = (0..slips)
        .map(|i| {
            json!({"id": format!("{run}-{i}"), "net": net, "employee": {
                "id": format!("E-{i}"), "firstName": "Ada", "lastName": "Lovelace",
                "email": "ada@example.com"}})
        })
        .collect();
    json!({
        "type": "payrun.approved",
        "timestamp": "2026-11-27T16:00:00Z",
        "data": {"payRunId": format!("PR-{run}"), "employer": "Acme Ltd", "currency": "GBP",
                 "payDate": "2030-01-01", "payslips": payslips}
    })
}

/// Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) for
/// `body`, signed with a `whsec_…` secret.
pub fn standard_webhooks_headers(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("whsec_ secret is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    [
        ("webhook-id", msg_id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", format!("v1,{sig}")),
    ]
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds of a duration, as f64.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The 1-minute load average, from /proc/loadavg ("?" elsewhere).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// A reasonably unique run id (for externalIds and table names).
pub fn run_id() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    )
}

/// Against the emulator named by `AWS_ENDPOINT_URL` (moto): creates `table` (idempotent) and
/// the two secrets (created, or given a new current value). Returns the SDK configuration.
pub async fn moto_setup(
    table: &str,
    panel_password: &str,
) -> anyhow::Result<aws_config::SdkConfig> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: point it at a moto server (scripts/bench-*.sh do)"
    );
    let sdk = payout_bridge::aws::sdk_config().await;
    let ddb = payout_bridge::aws::dynamodb_client(&sdk);
    payout_bridge::store::create_table(&ddb, table)
        .await
        .map_err(|e| anyhow::anyhow!("create table {table}: {e}"))?;
    let sm = payout_bridge::aws::secretsmanager_client(&sdk);
    for (name, value) in [
        (PASSWORD_SECRET, panel_password.to_string()),
        (ROUTE_SECRETS, route_secrets_json()),
    ] {
        let created = sm
            .create_secret()
            .name(name)
            .secret_string(&value)
            .send()
            .await;
        if created.is_err() {
            sm.put_secret_value()
                .secret_id(name)
                .secret_string(&value)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("put secret {name}: {e}"))?;
        }
    }
    Ok(sdk)
}
