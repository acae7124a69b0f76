//! The examples users copy: every event under `events/` (re-signed now by
//! `scripts/make_events.py`, an implementation independent of ours) goes through the Lambda
//! request conversion, verification, mapping and the panel simulator; pay runs become batches;
//! signatures from the Python `standardwebhooks` package verify; bad ones reach nothing.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use tower::ServiceExt;

const LOCAL_SECRETS: &[(&str, &str)] = &[
    (
        "env:PAYROLL_WEBHOOK_SECRET",
        "whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh",
    ),
    ("env:CRM_SIGNING_SECRET", "crm-local-secret"),
    ("env:FORM_API_KEY", "form-local-key"),
    ("env:PAYOUTS_KEY", "local-payouts-key"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn routes_yaml() -> String {
    std::fs::read_to_string(root().join("events/routes.yaml")).expect("events/routes.yaml")
}

async fn example_bridge(sim: &Proc) -> TestBridge {
    start_bridge_full(
        panel_client(&sim.url),
        "sim-password",
        &routes_yaml(),
        &[],
        LOCAL_SECRETS,
    )
    .await
}

/// Fresh copies of the example events, signed now.
fn fresh_events() -> HashMap<String, String> {
    let dir = std::env::temp_dir().join(format!("payout-bridge-events-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new("python3")
        .arg(root().join("scripts/make_events.py"))
        .env("EVENTS_OUT", &dir)
        .output()
        .expect("python3 scripts/make_events.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// Runs one API Gateway v2 event through lambda_http's conversion and the shared router.
async fn invoke(bridge: &TestBridge, event: &str) -> (u16, Value) {
    let request = lambda_http::request::from_str(event).expect("a Lambda HTTP event");
    let request = request.map(|b| axum::body::Body::from(b.to_vec()));
    let response = payout_bridge::http::router(bridge.bridge.clone())
        .oneshot(request)
        .await
        .expect("router");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_example_event_reaches_the_panel_as_expected() {
    let sim = panel_sim(&["--funds", "GBP=100000,EUR=100000,PLN=100000"]);
    let b = example_bridge(&sim).await;
    let events = fresh_events();
    let mut names: Vec<&String> = events.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "canonical-cancel",
            "canonical-create",
            "crm-deal-won",
            "form-payout",
            "payroll-payrun",
            "payroll-void"
        ]
    );
    // The committed events are the same requests, signed at an older time.
    for name in &names {
        let committed = std::fs::read_to_string(root().join(format!("events/{name}.json")))
            .expect("committed event");
        let (a, b2): (Value, Value) = (
            serde_json::from_str(&committed).unwrap(),
            serde_json::from_str(&events[*name]).unwrap(),
        );
        assert_eq!(
            a["body"], b2["body"],
            "{name}: regenerate with scripts/make_events.py"
        );
        assert_eq!(a["rawPath"], b2["rawPath"], "{name}");
    }

    let (s, v) = invoke(&b, &events["payroll-payrun"]).await;
    assert_eq!(s, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["status"], 201, "{r}");
        assert!(r["payments"][0]["id"].is_u64());
    }
    assert_eq!(results[0]["externalId"], "payslip-1001");

    let (s, v) = invoke(&b, &events["crm-deal-won"]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["payments"][0]["currency"], "EUR");
    assert_eq!(v["payments"][0]["amount"], json!(1200.5));

    let (s, v) = invoke(&b, &events["form-payout"]).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["payments"][0]["currency"], "PLN");

    let (s, v) = invoke(&b, &events["canonical-create"]).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = invoke(&b, &events["canonical-cancel"]).await;
    assert_eq!((s, v.clone()), (200, json!({"success": 1})), "{v}");

    let (s, v) = invoke(&b, &events["payroll-void"]).await;
    assert_eq!((s, v.clone()), (200, json!({"success": 2})), "{v}");

    let state = sim_state(&sim).await;
    let all = payouts(&state);
    assert_eq!(all.len(), 6, "{state}");
    let cancelled: Vec<&Value> = all.iter().filter(|p| p["status"] == "CANCELLED").collect();
    assert_eq!(cancelled.len(), 3, "demo-1 and payslips 1002, 1003");
    let by_ref = |r: &str| all.iter().find(|p| p["referenceId"] == r).unwrap()["status"].clone();
    assert_eq!(by_ref("E-17"), "READY");
    assert_eq!(by_ref("E-18"), "CANCELLED");
    assert_eq!(by_ref("E-19"), "CANCELLED");
    let form = all.iter().find(|p| p["currency"] == "PLN").unwrap();
    assert_eq!(form["phoneNumber"], "+48600100200");
    assert_eq!(form["notification"], true);
}

fn pay_run(n: usize, run_id: &str) -> Value {
    let payslips: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("{run_id}-{i}"), "net": format!("{}.{:02}", 100 + i, i),
                   "employee": {"id": format!("E-{i}"), "firstName": "F", "lastName": "L",
                                "email": format!("e{i}@example.com")}})
        })
        .collect();
    json!({"type": "payrun.approved", "data": {"payRunId": run_id, "employer": "Acme", "currency": "GBP",
           "payDate": "2030-01-31", "payslips": payslips}})
}

/// Signs like the Python `standardwebhooks` package does, by asking it.
fn python_sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, which installs standardwebhooks",
        python.display()
    );
    let body_file = temp_file("body.json", std::str::from_utf8(body).unwrap());
    let out = Command::new(python)
        .arg(root().join("scripts/sign_standardwebhooks.py"))
        .args([
            "--id",
            id,
            "--timestamp",
            &timestamp.to_string(),
            "--body-file",
        ])
        .arg(&body_file)
        .env("WEBHOOK_SECRET", secret)
        .output()
        .expect("python signer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn post_signed(
    b: &TestBridge,
    route: &str,
    body: &[u8],
    id: Option<&str>,
    ts: Option<i64>,
    sig: Option<&str>,
) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}/hooks/{route}", b.url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(id) = id {
        req = req.header("webhook-id", id);
    }
    if let Some(ts) = ts {
        req = req.header("webhook-timestamp", ts.to_string());
    }
    if let Some(sig) = sig {
        req = req.header("webhook-signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// (what, body, webhook-id, webhook-timestamp, webhook-signature)
type BadCase<'a> = (
    &'a str,
    Vec<u8>,
    Option<&'a str>,
    Option<i64>,
    Option<&'a str>,
);

const PAYROLL_SECRET: &str = "whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh";

/// A payroll delivery signed now by the Python package, resendable as it was.
struct Signed {
    body: Vec<u8>,
    id: &'static str,
    timestamp: i64,
    signature: String,
}

impl Signed {
    fn now(body: &Value, id: &'static str) -> Signed {
        let body = serde_json::to_vec(body).unwrap();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = python_sign(PAYROLL_SECRET, id, timestamp, &body);
        Signed {
            body,
            id,
            timestamp,
            signature,
        }
    }

    async fn send(&self, b: &TestBridge) -> (u16, Value) {
        post_signed(
            b,
            "payroll",
            &self.body,
            Some(self.id),
            Some(self.timestamp),
            Some(&self.signature),
        )
        .await
    }
}

#[tokio::test]
async fn a_pay_run_of_25_signed_by_python_makes_25_payouts_once() {
    let sim = panel_sim(&[]);
    let b = example_bridge(&sim).await;
    let delivery = Signed::now(&pay_run(25, "PR-25"), "msg_pr25");
    let (s, v) = delivery.send(&b).await;
    assert_eq!(s, 200, "{v}");
    let results = v["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 25);
    assert!(results.iter().all(|r| r["status"] == 201), "{v}");
    assert_eq!(payouts(&sim_state(&sim).await).len(), 25);

    // Resent (a retry of the same message): no new payout, the same results.
    let (s, v2) = delivery.send(&b).await;
    assert_eq!(s, 200);
    let again = v2["results"].as_array().unwrap();
    assert_eq!(payouts(&sim_state(&sim).await).len(), 25);
    for (a, b) in results.iter().zip(again) {
        assert_eq!(a["payments"], b["payments"]);
        assert_eq!(b["replayed"], true);
    }
}

#[tokio::test]
async fn out_of_funds_half_way_the_answer_says_which_items_were_created() {
    // 10 payslips of 100.00..109.09 GBP; funds for about 5 of them.
    let sim = panel_sim(&["--funds", "GBP=520.00"]);
    let b = example_bridge(&sim).await;
    let delivery = Signed::now(&pay_run(10, "PR-funds"), "msg_funds");
    let (s, v) = delivery.send(&b).await;
    assert_eq!(s, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    let created: Vec<&Value> = results.iter().filter(|r| r["status"] == 201).collect();
    let refused: Vec<&Value> = results.iter().filter(|r| r["status"] == 402).collect();
    assert_eq!(created.len() + refused.len(), 10, "{v}");
    assert!(!created.is_empty() && !refused.is_empty(), "{v}");
    for r in &refused {
        assert_eq!(r["error"]["type"], "INSUFFICIENT_FUNDS");
        assert!(r["externalId"]
            .as_str()
            .unwrap()
            .starts_with("payslip-PR-funds-"));
    }
    assert_eq!(payouts(&sim_state(&sim).await).len(), created.len());

    // Funds arrive; the sender retries: the refused ones are created, the others replayed.
    sim_post(
        &sim,
        "/sim/funds",
        json!({"currency": "GBP", "amount": "10000"}),
    )
    .await;
    let (s, v) = delivery.send(&b).await;
    assert_eq!(s, 200);
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == 201),
        "{v}"
    );
    assert_eq!(payouts(&sim_state(&sim).await).len(), 10);
}

#[tokio::test]
async fn bad_signatures_are_401_and_reach_nothing() {
    let sim = panel_sim(&[]);
    let b = example_bridge(&sim).await;
    let body = serde_json::to_vec(&pay_run(2, "PR-bad")).unwrap();
    let now = chrono::Utc::now().timestamp();
    let good = python_sign(PAYROLL_SECRET, "msg_bad", now, &body);
    let wrong_secret = python_sign(
        "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==",
        "msg_bad",
        now,
        &body,
    );
    let old = now - 6 * 60;
    let future = now + 6 * 60;
    let sig_old = python_sign(PAYROLL_SECRET, "msg_bad", old, &body);
    let sig_future = python_sign(PAYROLL_SECRET, "msg_bad", future, &body);
    let mut tampered = body.clone();
    let pos = tampered.iter().position(|&c| c == b'1').unwrap();
    tampered[pos] = b'9';

    let cases: Vec<BadCase> = vec![
        (
            "tampered body",
            tampered,
            Some("msg_bad"),
            Some(now),
            Some(&good),
        ),
        (
            "wrong secret",
            body.clone(),
            Some("msg_bad"),
            Some(now),
            Some(&wrong_secret),
        ),
        ("missing id", body.clone(), None, Some(now), Some(&good)),
        (
            "missing timestamp",
            body.clone(),
            Some("msg_bad"),
            None,
            Some(&good),
        ),
        (
            "missing signature",
            body.clone(),
            Some("msg_bad"),
            Some(now),
            None,
        ),
        (
            "6 minutes old",
            body.clone(),
            Some("msg_bad"),
            Some(old),
            Some(&sig_old),
        ),
        (
            "6 minutes ahead",
            body.clone(),
            Some("msg_bad"),
            Some(future),
            Some(&sig_future),
        ),
        (
            "empty v1",
            body.clone(),
            Some("msg_bad"),
            Some(now),
            Some("v1,"),
        ),
        (
            "truncated v1",
            body.clone(),
            Some("msg_bad"),
            Some(now),
            Some("v1,abc"),
        ),
    ];
    for (what, body, id, ts, sig) in cases {
        let (s, v) = post_signed(&b, "payroll", &body, id, ts, sig).await;
        assert_eq!(s, 401, "{what}: {v}");
        assert_eq!(v["error"]["type"], "UNAUTHORIZED", "{what}");
    }
    let state = sim_state(&sim).await;
    assert_eq!(
        counter(&state, "authenticate") + counter(&state, "create"),
        0,
        "{state}"
    );
    // And the good one passes.
    let (s, v) = post_signed(
        &b,
        "payroll",
        &body,
        Some("msg_bad"),
        Some(now),
        Some(&good),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn a_filter_output_that_is_not_a_command_names_the_item_and_field() {
    let sim = panel_sim(&[]);
    let b = example_bridge(&sim).await;
    let mut run = pay_run(3, "PR-invalid");
    run["data"]["payslips"][1]["net"] = json!("-5.00");
    let (s, v) = Signed::now(&run, "msg_inv").send(&b).await;
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("item 1") && msg.contains("amount"), "{msg}");
    assert_eq!(
        payouts(&sim_state(&sim).await).len(),
        0,
        "a bad batch is rejected whole"
    );
}

#[test]
fn check_config_names_the_route_and_field_of_a_broken_file() {
    let run = |text: &str| {
        let file = temp_file("routes.yaml", text);
        Command::new(env!("CARGO_BIN_EXE_payout-bridge"))
            .arg("check-config")
            .arg(&file)
            .envs(
                LOCAL_SECRETS
                    .iter()
                    .map(|(k, v)| (k.trim_start_matches("env:"), *v)),
            )
            .output()
            .expect("check-config")
    };
    let good = routes_yaml();
    let out = run(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (broken, route, field) in [
        (
            good.replace("scheme: hmac-sha256", "scheme: hmac-md5"),
            "crm-deals",
            "scheme",
        ),
        (
            good.replace("select(.event == \"deal.won\")", "select(.event == "),
            "crm-deals",
            "map",
        ),
        (
            good.replace("encoding: hex", "encoding: hex\n      colour: blue"),
            "crm-deals",
            "colour",
        ),
        (
            good.replace("env:FORM_API_KEY", "env:NOT_SET_ANYWHERE"),
            "form-payouts",
            "secrets",
        ),
    ] {
        let out = run(&broken);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{route}/{field} should fail");
        assert!(
            err.contains(route) && err.contains(field),
            "{route}/{field}: {err}"
        );
    }
}

#[test]
fn every_filter_of_the_embedded_and_local_routes_compiles() {
    // The bridge compiles a route's filter on its first delivery, so nothing at start-up would
    // refuse a broken one: this test (and `check-config`) is what keeps one from shipping in
    // the binary (`BRIDGE_CONFIG=embedded`).
    use payout_bridge::config::routes::RoutesFile;
    let embedded =
        RoutesFile::parse(payout_bridge::service::EMBEDDED_ROUTES, "infra/routes.yaml").unwrap();
    let local = RoutesFile::parse(&routes_yaml(), "events/routes.yaml").unwrap();
    for file in [&embedded, &local] {
        file.check_filters().unwrap();
        assert!(file.routes.iter().filter(|r| r.map.is_some()).count() >= 4);
    }
}

#[test]
fn the_deployed_routes_file_matches_the_local_one_but_for_secrets() {
    use payout_bridge::config::routes::RoutesFile;
    let local = RoutesFile::parse(&routes_yaml(), "events/routes.yaml").unwrap();
    let deployed =
        RoutesFile::parse(payout_bridge::service::EMBEDDED_ROUTES, "infra/routes.yaml").unwrap();
    assert_eq!(local.routes.len(), deployed.routes.len());
    for (l, d) in local.routes.iter().zip(&deployed.routes) {
        assert_eq!((&l.name, l.action, &l.map), (&d.name, d.action, &d.map));
        assert_eq!(l.auth.scheme_name(), d.auth.scheme_name());
        assert!(
            d.auth
                .secret_refs()
                .iter()
                .all(|s| s.starts_with("secretsmanager:")),
            "{}",
            d.name
        );
    }
}

#[test]
fn map_prints_the_commands_of_a_payload() {
    let out = Command::new(env!("CARGO_BIN_EXE_payout-bridge"))
        .args([
            "map",
            "--config",
            "events/routes.yaml",
            "--route",
            "payroll",
            "--body",
            "events/bodies/payroll-payrun.json",
        ])
        .current_dir(root())
        .output()
        .expect("map");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["create"]["externalId"], "payslip-1001");
    assert_eq!(lines[0]["create"]["amount"], json!(2150.35));
    assert_eq!(lines[2]["create"]["endDate"], "2026-12-30T00:00:00Z");
}

// ---------------------------------------------------------------------------------------------
// Which header keys a delivery: a header the signature does not cover never makes a captured
// request look new.

/// Canonical create routes (no `map`) on the example secrets, one per signed scheme, and the
/// api-key one for contrast.
const KEY_ROUTES: &str = r#"
routes:
  - name: sw-canonical
    action: create
    auth: {scheme: standard-webhooks, secrets: [env:PAYROLL_WEBHOOK_SECRET]}
  - name: crm-canonical
    action: create
    auth:
      scheme: hmac-sha256
      header: X-CRM-Signature
      encoding: hex
      prefix: "sha256="
      timestamp_header: X-CRM-Timestamp
      signed_content: "{timestamp}.{body}"
      secrets: [env:CRM_SIGNING_SECRET]
  - name: payouts
    action: create
    auth: {scheme: api-key, secrets: [env:PAYOUTS_KEY]}
"#;

/// A canonical create without an externalId, so that a header or the body's hash is the key.
fn create_without_external_id(amount: &str) -> Vec<u8> {
    let mut body = create_body("", amount);
    body.as_object_mut().unwrap().remove("externalId");
    serde_json::to_vec(&body).unwrap()
}

/// Posts `body` to `route` with `headers`; (status, body, Idempotent-Replayed: true).
async fn post_with(
    b: &TestBridge,
    route: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> (u16, Value, bool) {
    let mut req = client()
        .post(format!("{}/hooks/{route}", b.url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, resp.json().await.unwrap_or(Value::Null), replayed)
}

fn payout_id(v: &Value) -> u64 {
    v["payments"][0]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no payout id: {v}"))
}

#[tokio::test]
async fn a_captured_standard_webhooks_request_with_a_fresh_idempotency_key_is_not_paid_again() {
    let sim = panel_sim(&[]);
    let b = start_bridge_full(
        panel_client(&sim.url),
        "sim-password",
        KEY_ROUTES,
        &[],
        LOCAL_SECRETS,
    )
    .await;
    let body = create_without_external_id("15.00");
    let timestamp = chrono::Utc::now().timestamp();
    let signature = python_sign(PAYROLL_SECRET, "msg_captured", timestamp, &body);
    let signed = |id: &str, signature: &str| {
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature.to_string()),
        ]
    };
    let (s, v, replayed) = post_with(
        &b,
        "sw-canonical",
        &body,
        &signed("msg_captured", &signature),
    )
    .await;
    assert_eq!((s, replayed), (201, false), "{v}");
    let id = payout_id(&v);

    // Someone who captured it sends it again within its 5 minutes, each time with a new
    // Idempotency-Key (which the signature does not cover): the stored answer, no payout.
    for fresh in ["replay-1", "replay-2"] {
        let mut headers = signed("msg_captured", &signature);
        headers.push(("idempotency-key", fresh.to_string()));
        let (s, v, replayed) = post_with(&b, "sw-canonical", &body, &headers).await;
        assert_eq!((s, replayed), (201, true), "{fresh}: {v}");
        assert_eq!(payout_id(&v), id, "{fresh}");
    }
    let state = sim_state(&sim).await;
    assert_eq!(payouts(&state).len(), 1, "{state}");
    assert_eq!(counter(&state, "create"), 1, "{state}");

    // A new message (its own signed webhook-id) with the same body is a new payout.
    let other = python_sign(PAYROLL_SECRET, "msg_next", timestamp, &body);
    let (s, v, replayed) = post_with(&b, "sw-canonical", &body, &signed("msg_next", &other)).await;
    assert_eq!((s, replayed), (201, false), "{v}");
    assert_ne!(payout_id(&v), id);
    assert_eq!(payouts(&sim_state(&sim).await).len(), 2);
}

#[tokio::test]
async fn a_captured_hmac_request_with_a_fresh_idempotency_key_is_not_paid_again() {
    use hmac::{Hmac, KeyInit, Mac};
    let sim = panel_sim(&[]);
    let b = start_bridge_full(
        panel_client(&sim.url),
        "sim-password",
        KEY_ROUTES,
        &[],
        LOCAL_SECRETS,
    )
    .await;
    let body = create_without_external_id("16.00");
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"crm-local-secret").unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&body);
    let signed = vec![
        ("x-crm-timestamp", timestamp.clone()),
        (
            "x-crm-signature",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        ),
    ];
    let (s, v, replayed) = post_with(&b, "crm-canonical", &body, &signed).await;
    assert_eq!((s, replayed), (201, false), "{v}");
    let id = payout_id(&v);

    for fresh in ["replay-1", "replay-2"] {
        let mut headers = signed.clone();
        headers.push(("idempotency-key", fresh.to_string()));
        let (s, v, replayed) = post_with(&b, "crm-canonical", &body, &headers).await;
        assert_eq!((s, replayed), (201, true), "{fresh}: {v}");
        assert_eq!(payout_id(&v), id, "{fresh}");
    }
    let state = sim_state(&sim).await;
    assert_eq!(payouts(&state).len(), 1, "{state}");
    assert_eq!(counter(&state, "create"), 1, "{state}");
}

/// For contrast: on an api-key route nothing is signed, so the sender's Idempotency-Key is
/// what tells two deliveries with the same body apart (and a webhook-id header, unsigned, is not).
#[tokio::test]
async fn on_an_api_key_route_the_idempotency_key_names_the_delivery() {
    let sim = panel_sim(&[]);
    let b = start_bridge_full(
        panel_client(&sim.url),
        "sim-password",
        KEY_ROUTES,
        &[],
        LOCAL_SECRETS,
    )
    .await;
    let body = create_without_external_id("17.00");
    let keyed = |k: &str| {
        vec![
            ("x-api-key", "local-payouts-key".to_string()),
            ("idempotency-key", k.to_string()),
        ]
    };
    let (s, v, replayed) = post_with(&b, "payouts", &body, &keyed("evt-1")).await;
    assert_eq!((s, replayed), (201, false), "{v}");
    let first = payout_id(&v);
    let mut again = keyed("evt-1");
    again.push(("webhook-id", "msg_unsigned".to_string()));
    let (s, v, replayed) = post_with(&b, "payouts", &body, &again).await;
    assert_eq!((s, replayed, payout_id(&v)), (201, true, first), "{v}");
    let (s, v, replayed) = post_with(&b, "payouts", &body, &keyed("evt-2")).await;
    assert_eq!((s, replayed), (201, false), "{v}");
    assert_ne!(payout_id(&v), first);
    assert_eq!(payouts(&sim_state(&sim).await).len(), 2);
}

/// Svix-branded senders sign the same message with `svix-id` / `svix-timestamp` /
/// `svix-signature`. Its signed id names the delivery too: a second message with the same body
/// is a new payout, and the capture replayed with its headers renamed to `webhook-*` (which
/// verifies just as well) is the same delivery, not a new one.
#[tokio::test]
async fn a_svix_signed_request_is_keyed_by_its_signed_id_whatever_the_header_names() {
    let sim = panel_sim(&[]);
    let b = start_bridge_full(
        panel_client(&sim.url),
        "sim-password",
        KEY_ROUTES,
        &[],
        LOCAL_SECRETS,
    )
    .await;
    let body = create_without_external_id("18.00");
    let timestamp = chrono::Utc::now().timestamp();
    let headers = |family: &str, id: &str| {
        let signature = python_sign(PAYROLL_SECRET, id, timestamp, &body);
        vec![
            (format!("{family}-id"), id.to_string()),
            (format!("{family}-timestamp"), timestamp.to_string()),
            (format!("{family}-signature"), signature),
        ]
    };
    let send = |headers: Vec<(String, String)>| {
        let b = &b;
        let body = &body;
        async move {
            let headers: Vec<(&str, String)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            post_with(b, "sw-canonical", body, &headers).await
        }
    };
    let (s, v, replayed) = send(headers("svix", "msg_svix_1")).await;
    assert_eq!((s, replayed), (201, false), "{v}");
    let id = payout_id(&v);
    // The same capture under the other header names: the same delivery.
    let (s, v, replayed) = send(headers("webhook", "msg_svix_1")).await;
    assert_eq!((s, replayed, payout_id(&v)), (201, true, id), "{v}");
    assert_eq!(payouts(&sim_state(&sim).await).len(), 1);
    // Another message with the same body: a payout of its own.
    let (s, v, replayed) = send(headers("svix", "msg_svix_2")).await;
    assert_eq!((s, replayed), (201, false), "{v}");
    assert_ne!(payout_id(&v), id);
    assert_eq!(payouts(&sim_state(&sim).await).len(), 2);
}
