//! The logs of a full run (creates, batches, signature failures, panel errors, an unknown
//! outcome, token refreshes and a password rotation) hold no password, token, signing secret,
//! signature, request body or personal data, and do hold what an operator needs (route, key,
//! outcome, payout id, latency). payout-bridge runs as a process on DynamoDB/Secrets Manager
//! (moto) with JSON logs: once with the usual filter, once with `RUST_LOG=trace`, where the
//! libraries' ceilings (`telemetry::LIBRARY_LOG_CEILINGS`) must hold.

mod common;

use base64::Engine as _;
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use payout_bridge::telemetry::LIBRARY_LOG_CEILINGS;
use serde_json::{json, Value};
use std::process::Command;

const PASSWORD: &str = "Panel-Passw0rd-CANARY";
const ROTATED: &str = "Rotated-Passw0rd-CANARY";
const API_KEY: &str = "apikey-CANARY-7f3a";
const WRONG_KEY: &str = "wrong-key-CANARY-9c1d";
const WHSEC_B64: &str = "Y2FuYXJ5LXNpZ25pbmcta2V5LWZvci1wYXlyb2xs";
const CRM_SECRET: &str = "crm-secret-CANARY";
/// A signature that verifies nothing (sent on purpose).
const BAD_SIGNATURE: &str = "dR4pv3mTevWz3N5UkkdfixDOf4R1bA20OKO1F4x2PH4=";
/// Free text of the request bodies (the panel echoes the description back in its answer,
/// which the delivery records store).
const BODY_TEXT: &[&str] = &["Leak-test-payout-BODYCANARY", "Payrun-BODYCANARY"];
const PII: &[&str] = &[
    "Zelda",
    "Canarysurname",
    "leak.canary@example.com",
    "+44 7700 900123",
    "+447700900123",
    "canary-username",
    "Ygritte",
    "Payslipsurname",
    "payslip.canary@example.com",
];

/// The filter of the first run: the usual operator setting, everything of ours at debug.
const DEBUG_FILTER: &str =
    "debug,hyper=info,h2=info,aws_smithy_runtime=info,aws_sdk_dynamodb=info,aws_config=info";

fn create(ext: &str, amount: &str) -> Value {
    json!({
        "amount": amount, "currency": "GBP",
        "startDate": "2030-01-01 12:00:00", "endDate": "2030-02-01 12:00:00",
        "name": "Leak test", "description": BODY_TEXT[0],
        "userName": "canary-username", "phoneNumber": "+44 7700 900123",
        "firstName": "Zelda", "lastName": "Canarysurname", "email": "leak.canary@example.com",
        "notification": true, "externalId": ext,
    })
}

/// A pay run of two payslips with personal data, for the Standard Webhooks route.
fn pay_run() -> Value {
    let employee = json!({"id": "E-CANARY", "firstName": "Ygritte", "lastName": "Payslipsurname",
                          "email": "payslip.canary@example.com"});
    json!({"type": "payrun.approved", "data": {
        "payRunId": BODY_TEXT[1], "employer": "Leak Ltd", "currency": "GBP", "payDate": "2030-01-31",
        "payslips": [{"id": "leak-p1", "net": "2.00", "employee": employee},
                     {"id": "leak-p2", "net": "3.00", "employee": employee}]}})
}

/// Standard Webhooks `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
fn sign_standard_webhooks(id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC_B64)
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{signature}")
}

/// Every delivery of the scenario through a bridge that logs with `rust_log`; its log, and the
/// valid signature it sent (which must not be logged either).
async fn full_run(rust_log: &str) -> (String, String) {
    let sim = spawn_listening(
        env!("CARGO_BIN_EXE_panel-sim"),
        &["--password", PASSWORD, "--funds", "GBP=100"],
        &[],
    );
    let aws = aws(PASSWORD).await;
    let routes_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/routes.yaml");
    let log_path = temp_file("bridge.log", "");
    // Both instances append to one log, as a log group would collect them.
    let start_bridge = || {
        let log_file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .unwrap();
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
            .env("RUST_LOG", rust_log)
            .stderr(log_file);
        spawn_command(cmd)
    };
    let bridge = start_bridge();
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
        post("payouts", create("leak-2", "10.00"), Some(WRONG_KEY)).await,
        401
    );
    // A signed pay run (a batch with personal data), then its redelivery.
    let body = serde_json::to_vec(&pay_run()).unwrap();
    let timestamp = chrono::Utc::now().timestamp();
    let signature = sign_standard_webhooks("msg_leak", timestamp, &body);
    for _ in 0..2 {
        let resp = client()
            .post(format!("{url}/hooks/payroll"))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_leak")
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", &signature)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
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
        .header("webhook-signature", format!("v1,{BAD_SIGNATURE}"))
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
    // A second instance (a cold start) reads the shared panel token from the table, then pays.
    let authenticated = counter(&sim_state(&sim).await, "authenticate");
    let bridge = start_bridge();
    let status = client()
        .post(format!("{}/hooks/payouts", bridge.url))
        .header("x-api-key", API_KEY)
        .json(&create("leak-9", "1.00"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let state = sim_state(&sim).await;
    assert_eq!(
        counter(&state, "authenticate"),
        authenticated,
        "the second instance used the stored token: {state}"
    );
    drop(bridge);
    (std::fs::read_to_string(&log_path).unwrap(), signature)
}

fn json_lines(log: &str) -> Vec<Value> {
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 20, "too few log lines:\n{log}");
    lines
}

/// Nothing secret, nothing personal, no request body: passwords, the route keys and signing
/// secrets, the key and signatures senders sent, panel tokens (JWTs start `eyJ`), recipients'
/// data, and the bodies' free text.
fn assert_no_leaks(log: &str, signature: &str) {
    let signature = signature.trim_start_matches("v1,");
    let mut canaries: Vec<&str> = vec![
        PASSWORD,
        ROTATED,
        API_KEY,
        WRONG_KEY,
        WHSEC_B64,
        CRM_SECRET,
        BAD_SIGNATURE,
        signature,
        "eyJ",
    ];
    canaries.extend_from_slice(PII);
    canaries.extend_from_slice(BODY_TEXT);
    for canary in canaries {
        if let Some(line) = log.lines().find(|l| l.contains(canary)) {
            panic!("the logs contain `{canary}`:\n{line}");
        }
    }
}

#[tokio::test]
async fn logs_of_a_full_run_leak_nothing_and_say_what_happened() {
    let (log, signature) = full_run(DEBUG_FILTER).await;
    let lines = json_lines(&log);
    assert_no_leaks(&log, &signature);

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

/// `RUST_LOG=trace`: the libraries would print raw events, requests and responses with their
/// bodies and headers, and stored items (the panel token); their ceilings hold, and nothing
/// leaks.
#[tokio::test]
async fn logs_at_trace_level_leak_nothing_either() {
    let (log, signature) = full_run("trace").await;
    let lines = json_lines(&log);
    assert_no_leaks(&log, &signature);
    // It did run at trace: the bridge's own debug lines are there.
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "DEBUG" || l["level"] == "TRACE"),
        "no debug or trace line at RUST_LOG=trace"
    );
    // No library logged above its ceiling.
    let rank = |level: &str| {
        ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
            .iter()
            .position(|l| *l == level)
    };
    for l in &lines {
        let (Some(target), Some(level)) = (l["target"].as_str(), l["level"].as_str()) else {
            continue;
        };
        for (prefix, ceiling) in LIBRARY_LOG_CEILINGS {
            if target.starts_with(prefix) {
                assert!(
                    rank(level) <= rank(&ceiling.to_string().to_ascii_uppercase()),
                    "{target} logged at {level}, above its ceiling {ceiling}: {l}"
                );
            }
        }
    }
}
