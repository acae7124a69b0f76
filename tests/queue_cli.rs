//! The operator's queue commands as people run them: `payout-bridge dead-letters` and
//! `payout-bridge redrive` against a queue and its dead-letter queue on moto's server, with the
//! command's record in a DynamoDB table for the last error.
//!
//! Needs `AWS_ENDPOINT_URL` (run `scripts/test.sh`).

mod common;

use common::*;
use payout_bridge::domain::delivery::ItemKey;
use payout_bridge::domain::queue::QueuedCommand;
use payout_bridge::domain::{Action, Command};
use payout_bridge::ports::{DeliveryRecord, DeliveryState, DeliveryStore};
use payout_bridge::store::dynamodb::DynamoDeliveryStore;
use serde_json::Value;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payout-bridge"))
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("payout-bridge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_lists_and_redrive_moves_them_back() {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sdk = payout_bridge::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("cli-{}", unique());
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let aws = aws("sim-password").await;
    // A command that failed for good reason: its record says why.
    let cmd = Command::from_json(Action::Create, &create_body("cli-1", "4.00")).unwrap();
    let key = ItemKey::external("cli-1");
    let body = QueuedCommand::new("payrun", 0, &key, &cmd).to_body();
    sqs.send_message()
        .queue_url(&dlq_url)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    let store = DynamoDeliveryStore::new(aws_sdk_dynamodb::Client::new(&sdk), &aws.table);
    let now = chrono::Utc::now().timestamp();
    let record = DeliveryRecord {
        route: "payrun".into(),
        key: key.as_str().into(),
        fingerprint: cmd.fingerprint(),
        state: DeliveryState::InProgress { deadline: now + 60 },
        attempt: "w1".into(),
        action: Action::Create,
        external_id: Some("cli-1".into()),
        payout_id: None,
        created_at: now,
        updated_at: now,
        expires_at: now + 86_400,
    };
    store.begin(&record, now).await.unwrap();
    let failed = payout_bridge::ports::Transition::to(DeliveryState::Failed {
        status: 503,
        body: r#"{"error":{"message":"the panel is unreachable","type":"PANEL_UNAVAILABLE"},"errors":[]}"#.into(),
    });
    store
        .finish(
            payout_bridge::ports::RecordId {
                route: "payrun",
                key: key.as_str(),
            },
            "w1",
            &failed,
            now,
        )
        .await
        .unwrap();

    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let envs = [
        ("BRIDGE_QUEUE_URL", queue_url.as_str()),
        ("BRIDGE_DLQ_URL", dlq_url.as_str()),
        ("BRIDGE_TABLE", aws.table.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
    ];
    let (ok, out, err) = run(&["dead-letters", "--json"], &envs);
    assert!(ok, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["route"], "payrun");
    assert_eq!(lines[0]["key"], "ext:cli-1");
    assert_eq!(lines[0]["externalId"], "cli-1");
    assert!(lines[0]["receiveCount"].as_u64().unwrap() >= 1);
    assert_eq!(
        lines[0]["lastError"],
        "503 PANEL_UNAVAILABLE: the panel is unreachable"
    );
    let (ok, table, _) = run(&["dead-letters"], &envs);
    assert!(
        ok && table.contains("--route payrun --key ext:cli-1"),
        "{table}"
    );

    let (ok, out, err) = run(&["redrive", "--all", "--dry-run"], &envs);
    assert!(ok && out.contains("would move 1"), "{out}{err}");
    // moto answers StartMessageMoveTask with 500: the messages move one by one.
    let (ok, out, err) = run(&["redrive", "--all"], &envs);
    assert!(ok && out.contains("moved 1"), "{out}{err}");
    let depth = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(A::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap()
                .attributes()
                .unwrap()[&A::ApproximateNumberOfMessages]
                .clone()
        }
    };
    assert_eq!(depth(dlq_url.clone()).await, "0");
    assert_eq!(depth(queue_url.clone()).await, "1");
    let moved = sqs
        .receive_message()
        .queue_url(&queue_url)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.messages()[0].body(), Some(body.as_str()));

    // Without the URLs the commands say what is missing.
    let (ok, _, err) = run(&["dead-letters"], &[("BRIDGE_QUEUE_URL", "")]);
    assert!(!ok && err.contains("BRIDGE_DLQ_URL"), "{err}");
}
