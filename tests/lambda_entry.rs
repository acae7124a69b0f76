//! The Lambda entry for real: payout-bridge started with `AWS_LAMBDA_RUNTIME_API` pointing at a
//! stub of the Lambda Runtime API, given an API Gateway v2 event from `events/`, answering
//! through lambda_runtime; and a missing table or secret stops the init with a clear message.

mod common;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

const RUNTIME_ENV: &[(&str, &str)] = &[
    ("AWS_LAMBDA_FUNCTION_NAME", "payout-bridge"),
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream"),
    ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/payout-bridge"),
];

#[derive(Clone)]
struct Stub {
    events: Arc<Mutex<Vec<String>>>,
    /// The `lambda-runtime-deadline-ms` header; `None`: 30 s from now, as Lambda would send.
    deadline: Option<String>,
    responses: mpsc::UnboundedSender<(String, Value)>,
}

async fn next(State(stub): State<Stub>) -> (HeaderMap, String) {
    let event = stub.events.lock().unwrap().pop();
    match event {
        Some(event) => {
            let mut h = HeaderMap::new();
            h.insert("lambda-runtime-aws-request-id", "req-1".parse().unwrap());
            let deadline = stub
                .deadline
                .clone()
                .unwrap_or_else(|| (chrono::Utc::now().timestamp_millis() + 30_000).to_string());
            h.insert("lambda-runtime-deadline-ms", deadline.parse().unwrap());
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:payout-bridge"
                    .parse()
                    .unwrap(),
            );
            (h, event)
        }
        // No more work: hold the long poll like the real Runtime API does.
        None => std::future::pending().await,
    }
}

async fn respond(State(stub): State<Stub>, Path(id): Path<String>, body: String) -> &'static str {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = stub.responses.send((id, v));
    "{}"
}

async fn start_stub(
    event: String,
    deadline: Option<String>,
) -> (String, mpsc::UnboundedReceiver<(String, Value)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stub = Stub {
        events: Arc::new(Mutex::new(vec![event])),
        deadline,
        responses: tx,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(respond))
        .with_state(stub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr.to_string(), rx)
}

/// Runs the function binary once under the stub Runtime API on `event`, with `vars`: answers
/// the invocation's (request id, response) and the function's stderr.
async fn invoke_once(event: String, vars: &[(&str, String)]) -> (String, Value, String) {
    invoke_with_deadline(event, vars, None).await
}

/// [`invoke_once`] with the Runtime API's `lambda-runtime-deadline-ms` header set to `deadline`.
async fn invoke_with_deadline(
    event: String,
    vars: &[(&str, String)],
    deadline: Option<String>,
) -> (String, Value, String) {
    let (runtime_api, mut responses) = start_stub(event, deadline).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_payout-bridge"))
        .envs(RUNTIME_ENV.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", &runtime_api)
        .env("BRIDGE_LOCAL_STATE", "memory")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("BRIDGE_TABLE")
        .env_remove("BRIDGE_QUEUE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), responses.recv()).await;
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let (id, response) = answer
        .unwrap_or_else(|_| panic!("no answer; stderr:\n{stderr}"))
        .unwrap();
    (id, response, stderr)
}

#[tokio::test]
async fn an_api_gateway_event_becomes_a_payout_through_the_lambda_runtime() {
    let sim = panel_sim(&[]);
    let root = env!("CARGO_MANIFEST_DIR");
    let event = std::fs::read_to_string(format!("{root}/events/canonical-create.json")).unwrap();
    let (id, response, stderr) = invoke_once(
        event,
        &[
            ("PANEL_URL", sim.url.clone()),
            ("PANEL_PASSWORD", "sim-password".into()),
            ("BRIDGE_CONFIG", format!("{root}/events/routes.yaml")),
            ("PAYOUTS_KEY", "local-payouts-key".into()),
            ("FORM_API_KEY", "form-local-key".into()),
            ("CRM_SIGNING_SECRET", "crm-local-secret".into()),
            (
                "PAYROLL_WEBHOOK_SECRET",
                "whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh".into(),
            ),
        ],
    )
    .await;
    assert_eq!(id, "req-1");
    assert_eq!(response["statusCode"], 201, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert!(body["payments"][0]["id"].is_u64(), "{body}");
    assert_eq!(payouts(&sim_state(&sim).await).len(), 1);
    // Logs are JSON lines carrying the Lambda request id.
    let settled = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "command settled")
        .unwrap_or_else(|| panic!("no JSON 'command settled' line:\n{stderr}"));
    assert!(settled.to_string().contains("req-1"), "{settled}");
}

fn init_error(vars: &[(&str, &str)]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_payout-bridge"))
        .envs(RUNTIME_ENV.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("PANEL_URL", "http://127.0.0.1:9")
        .env("BRIDGE_CONFIG", format!("{root}/events/routes.yaml"))
        .env_remove("BRIDGE_TABLE")
        .env_remove("PANEL_PASSWORD_SECRET_ID")
        .env_remove("BRIDGE_LOCAL_STATE")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_missing_table_or_secret_stops_the_init_with_a_clear_message() {
    let err = init_error(&[("PANEL_PASSWORD_SECRET_ID", "panel-password")]);
    assert!(err.contains("BRIDGE_TABLE is not set"), "{err}");
    let err = init_error(&[("BRIDGE_TABLE", "payout-bridge"), ("PANEL_PASSWORD", "x")]);
    assert!(err.contains("PANEL_PASSWORD_SECRET_ID is not set"), "{err}");
}

/// An SQS event in the shape Lambda's event source mapping delivers it.
fn sqs_event(records: &[(&str, &str)]) -> String {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1767225600000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1767225600001"
                },
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:payout-bridge-queue",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

#[tokio::test]
async fn an_sqs_event_is_worked_and_answers_the_failed_message_ids() {
    use payout_bridge::domain::delivery::ItemKey;
    use payout_bridge::domain::queue::QueuedCommand;
    use payout_bridge::domain::{Action, Command as PayoutCommand};
    let sim = panel_sim(&[]);
    let routes = temp_file(
        "routes.yaml",
        r#"
routes:
  - name: qpay
    action: create
    mode: queued
    auth: { scheme: api-key, secrets: [env:PAYOUTS_KEY] }
"#,
    );
    let cmd = PayoutCommand::from_json(Action::Create, &create_body("sqs-1", "3.00")).unwrap();
    let good = QueuedCommand::new("qpay", 0, &ItemKey::external("sqs-1"), &cmd).to_body();
    let event = sqs_event(&[("msg-good", &good), ("msg-bad", "not a queued command")]);
    let (id, response, stderr) = invoke_once(event, &local_env(&sim, &routes)).await;
    assert_eq!(id, "req-1");
    // Only the message that could not run is reported, for SQS to bring back.
    assert_eq!(
        response,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "msg-bad"}]}),
        "{stderr}"
    );
    let state = sim_state(&sim).await;
    assert_eq!(payouts(&state).len(), 1, "{state}");
}

/// The variables of a function on `sim` with the routes file `routes` and the local payouts key.
fn local_env(sim: &Proc, routes: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("PANEL_URL", sim.url.clone()),
        ("PANEL_PASSWORD", "sim-password".into()),
        ("BRIDGE_CONFIG", routes.display().to_string()),
        ("PAYOUTS_KEY", "local-payouts-key".into()),
    ]
}

/// SQS delivers at least once: the same queued command can arrive twice, even in one batch
/// (two message ids, one body). The panel is called once; a copy that met the running one
/// comes back later and then replays.
#[tokio::test]
async fn one_queued_command_delivered_twice_pays_once() {
    use payout_bridge::domain::delivery::ItemKey;
    use payout_bridge::domain::queue::QueuedCommand;
    use payout_bridge::domain::{Action, Command as PayoutCommand};
    let sim = panel_sim(&[]);
    let routes = temp_file(
        "routes.yaml",
        "routes:\n  - name: qpay\n    action: create\n    mode: queued\n    auth: { scheme: api-key, secrets: [env:PAYOUTS_KEY] }\n",
    );
    let cmd = PayoutCommand::from_json(Action::Create, &create_body("sqs-twice", "3.00")).unwrap();
    let body = QueuedCommand::new("qpay", 0, &ItemKey::external("sqs-twice"), &cmd).to_body();
    let event = sqs_event(&[("msg-a", &body), ("msg-b", &body)]);
    let (_, response, stderr) = invoke_once(event, &local_env(&sim, &routes)).await;
    let failures: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("{response} {stderr}"))
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    // At most one copy is sent back (the one that met the other in progress), never both.
    assert!(failures.len() <= 1, "{response}");
    let state = sim_state(&sim).await;
    assert_eq!(payouts(&state).len(), 1, "{state}");
    assert_eq!(counter(&state, "create"), 1, "{state}");
}

#[test]
fn a_queued_route_without_a_queue_stops_the_init_with_a_clear_message() {
    let routes = temp_file(
        "routes.yaml",
        "routes:\n  - name: qpay\n    action: create\n    mode: queued\n    auth: { scheme: none }\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_payout-bridge"))
        .envs(RUNTIME_ENV.iter().copied())
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("PANEL_URL", "http://127.0.0.1:9")
        .env("BRIDGE_CONFIG", &routes)
        .env("BRIDGE_TABLE", "payout-bridge")
        .env("PANEL_PASSWORD_SECRET_ID", "panel-password")
        .env_remove("BRIDGE_QUEUE_URL")
        .env_remove("BRIDGE_LOCAL_STATE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BRIDGE_QUEUE_URL is not set") && err.contains("qpay"),
        "{err}"
    );
}

/// An API Gateway v2 event (the shape of `events/canonical-create.json`) posting `body` with
/// the local payouts key to `/hooks/{route}`.
fn http_event(route: &str, body: &Value) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/events/canonical-create.json")).unwrap();
    let mut event: Value = serde_json::from_str(&text).unwrap();
    let path = format!("/hooks/{route}");
    event["rawPath"] = path.clone().into();
    event["pathParameters"]["name"] = route.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["body"] = body.to_string().into();
    event.to_string()
}

/// Posts a batch of two fresh creates through the function, with the Runtime API's
/// `lambda-runtime-deadline-ms` set to `deadline`, on a route whose body `{"items":[…]}` is a
/// batch of canonical creates: the function's response and stderr.
async fn invoke_two_item_batch(sim: &Proc, deadline: String) -> (Value, String) {
    let routes = temp_file(
        "routes.yaml",
        "routes:\n  - name: batch\n    action: create\n    map: '.items[]'\n    auth: { scheme: api-key, secrets: [env:PAYOUTS_KEY] }\n",
    );
    let id = unique();
    let body = serde_json::json!({"items": [
        create_body(&format!("{id}-a"), "1.00"),
        create_body(&format!("{id}-b"), "2.00"),
    ]});
    let (_, response, stderr) = invoke_with_deadline(
        http_event("batch", &body),
        &local_env(sim, &routes),
        Some(deadline),
    )
    .await;
    (response, stderr)
}

/// `cargo lambda watch` sends `lambda-runtime-deadline-ms: 600000`, not a time: read as one it is
/// long past, and a local pay run would start none of its payouts. It means "no deadline".
#[tokio::test]
async fn a_batch_under_cargo_lambda_watchs_fixed_deadline_is_sent() {
    let sim = panel_sim(&[]);
    let (response, stderr) = invoke_two_item_batch(&sim, "600000".into()).await;
    assert_eq!(response["statusCode"], 200, "{response} {stderr}");
    let state = sim_state(&sim).await;
    assert_eq!(payouts(&state).len(), 2, "{state}");
}

/// Under Lambda, an invocation with less than the panel timeout plus a second left starts no
/// batch item: nothing is sent, every item answers 503 to be retried.
#[tokio::test]
async fn a_batch_without_time_for_a_panel_call_sends_nothing() {
    let sim = panel_sim(&[]);
    // 5 s left; the panel timeout is 10 s.
    let deadline = chrono::Utc::now().timestamp_millis() + 5_000;
    let (response, stderr) = invoke_two_item_batch(&sim, deadline.to_string()).await;
    assert_eq!(response["statusCode"], 503, "{response} {stderr}");
    assert!(response["headers"]["retry-after"].is_string(), "{response}");
    let answer: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{answer}");
    for item in results {
        assert_eq!(item["status"], 503, "{answer}");
        assert_eq!(item["error"]["type"], "PANEL_UNAVAILABLE", "{answer}");
    }
    let state = sim_state(&sim).await;
    assert_eq!(payouts(&state).len(), 0, "{state}");
}
