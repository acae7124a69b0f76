//! The logs of a full run (creates, batches, signature failures, panel errors, an unknown
//! outcome, token refreshes and a password rotation) hold no password, token, signing secret
//! or personal data, and do hold what an operator needs (route, key, outcome, payout id,
//! latency). payout-bridge runs as a process on DynamoDB/Secrets Manager (moto) with JSON logs.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::Command;

const PASSWORD: &str = "Panel-Passw0rd-CANARY";
const ROTATED: &str = "Rotated-Passw0rd-CANARY";
const API_KEY: &str = "apikey-CANARY-7f3a";
const WHSEC_B64: &str = "Y2FuYXJ5LXNpZ25pbmcta2V5LWZvci1wYXlyb2xs";
const CRM_SECRET: &str = "crm-secret-CANARY";
const PII: &[&str] = &[
    "Zelda",
    "Canarysurname",
    "leak.canary@example.com",
    "+44 7700 900123",
    "+447700900123",
    "canary-username",
];

fn create(ext: &str, amount: &str) -> Value {
    json!({
        "amount": amount, "currency": "GBP",
        "startDate": "2030-01-01 12:00:00", "endDate": "2030-02-01 12:00:00",
        "name": "Leak test", "description": "Leak test payout",
        "userName": "canary-username", "phoneNumber": "+44 7700 900123",
        "firstName": "Zelda", "lastName": "Canarysurname", "email": "leak.canary@example.com",
        "notification": true, "externalId": ext,
    })
}

#[tokio::test]
async fn logs_of_a_full_run_leak_nothing_and_say_what_happened() {
    let sim = spawn_listening(
        env!("CARGO_BIN_EXE_panel-sim"),
        &["--password", PASSWORD, "--funds", "GBP=100"],
        &[],
    );
    let aws = aws(PASSWORD).await;
    let routes_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/routes.yaml");
    let log_path = temp_file("bridge.log", "");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payout-bridge"));
    cmd.args(["serve", "--port", "0"])
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("PANEL_URL", &sim.url)
        .env("PANEL_PASSWORD_SECRET_ID", &aws.secret_id)
        .env("BRIDGE_TABLE", &aws.table)
        .env("BRIDGE_CONFIG", &routes_path)
        .env("PAYOUTS_KEY", API_KEY)
        .env("FORM_API_KEY", API_KEY)
        .env("PAYROLL_WEBHOOK_SECRET", format!("whsec_{WHSEC_B64}"))
        .env("CRM_SIGNING_SECRET", CRM_SECRET)
        .env("PANEL_REQUEST_TIMEOUT_MS", "2000")
        .env("BRIDGE_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug,hyper=info,h2=info,aws_smithy_runtime=info,aws_sdk_dynamodb=info,aws_config=info")
        .stderr(log_file);
    let bridge = spawn_command(cmd);
    let url = bridge.url.clone();

    let post = |route: &str, body: Value, key: Option<&str>| {
        let mut req = client().post(format!("{url}/hooks/{route}")).json(&body);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // A create, its replay, a bad key, a missing signature, a bad signature.
    assert_eq!(
        post("payouts", create("leak-1", "10.00"), Some(API_KEY)).await,
        201
    );
    assert_eq!(
        post("payouts", create("leak-1", "10.00"), Some(API_KEY)).await,
        201
    );
    assert_eq!(
        post("payouts", create("leak-2", "10.00"), Some("wrong-key")).await,
        401
    );
    assert_eq!(
        post("payroll", json!({"type": "payrun.approved"}), None).await,
        401
    );
    let resp = client()
        .post(format!("{url}/hooks/payroll"))
        .header("webhook-id", "msg_1")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header(
            "webhook-signature",
            "v1,dR4pv3mTevWz3N5UkkdfixDOf4R1bA20OKO1F4x2PH4=",
        )
        .json(&create("leak-3", "1.00"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Panel errors: out of funds, an HTML 500, a dropped connection after processing.
    assert_eq!(
        post("payouts", create("leak-4", "500.00"), Some(API_KEY)).await,
        402
    );
    sim_post(
        &sim,
        "/sim/faults",
        json!({"fail_next": 1, "only_path": "/api/payment/create"}),
    )
    .await;
    assert_eq!(
        post("payouts", create("leak-5", "1.00"), Some(API_KEY)).await,
        504
    );
    sim_post(
        &sim,
        "/sim/faults",
        json!({"drop_after_next": 1, "only_path": "/api/payment/create"}),
    )
    .await;
    assert_eq!(
        post("payouts", create("leak-6", "1.00"), Some(API_KEY)).await,
        504
    );
    // Token refresh after a revoke, then a password rotation.
    sim_post(&sim, "/sim/revoke-tokens", json!({})).await;
    assert_eq!(
        post("payouts", create("leak-7", "1.00"), Some(API_KEY)).await,
        201
    );
    sim_post(&sim, "/sim/password", json!({"password": ROTATED})).await;
    aws.sm
        .put_secret_value()
        .secret_id(&aws.secret_id)
        .secret_string(json!({ "apiKey": ROTATED }).to_string())
        .send()
        .await
        .unwrap();
    sim_post(&sim, "/sim/revoke-tokens", json!({})).await;
    assert_eq!(
        post("payouts", create("leak-8", "1.00"), Some(API_KEY)).await,
        201
    );
    // A cancel by externalId.
    assert_eq!(
        post(
            "cancel",
            json!({"externalIds": ["leak-1", "nope"]}),
            Some(API_KEY)
        )
        .await,
        200
    );
    drop(bridge);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 20, "too few log lines:\n{log}");

    // Nothing secret, nothing personal.
    let mut canaries: Vec<&str> = vec![PASSWORD, ROTATED, API_KEY, WHSEC_B64, CRM_SECRET, "eyJ"];
    canaries.extend_from_slice(PII);
    for canary in canaries {
        assert!(!log.contains(canary), "the logs contain `{canary}`:\n{log}");
    }

    // What an operator needs.
    let settled: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "command settled")
        .collect();
    assert!(settled.len() >= 8, "{log}");
    for l in &settled {
        assert!(l["outcome"].is_string() && l["status"].is_u64(), "{l}");
        let span = &l["span"];
        assert!(
            span["key"].is_string(),
            "idempotency key on every outcome: {l}"
        );
        assert!(
            l["spans"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["route"].is_string()),
            "{l}"
        );
    }
    let outcomes: Vec<&str> = settled
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    for want in ["COMPLETED", "REPLAYED", "FAILED", "OUTCOME_UNKNOWN"] {
        assert!(outcomes.contains(&want), "no {want} in {outcomes:?}");
    }
    assert!(
        settled.iter().any(|l| l["payout_id"].is_u64()),
        "payout ids are logged"
    );
    let answered: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "delivery answered")
        .collect();
    assert!(
        answered.iter().all(|l| l["latency_ms"].is_f64()),
        "latency on every answer"
    );
    assert!(answered.iter().any(|l| l["status"] == 401));
}
