//! The queued path's benchmark (docs/BENCHMARKS.md, "Queued pay runs"): a 1,000-payslip pay run
//! against the panel simulator with 50 ms latency per call, sent to a queued route (time to the
//! 202, time to drain, the panel's peak calls in flight and per second) for several settings of
//! the worker's ceilings, next to the same run sent to a synchronous route. In-process queue and
//! stores (no emulator in the measurement), the simulator in-process on loopback.
//!
//! Ignored by default (about a minute):
//! `cargo test --release --test queue_bench -- --ignored --nocapture`

mod common;

use common::*;
use payout_bridge::app::worker::{Worker, WorkerSettings};
use payout_bridge::notify::HttpNotifier;
use payout_bridge::ports::SecretSource;
use payout_bridge::queue::MemoryQueue;
use payout_bridge::service::ServiceBuilder;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAYSLIPS: usize = 1000;
const LATENCY_MS: u64 = 50;

fn routes(mode: &str) -> String {
    format!(
        r#"
routes:
  - name: payrun
    action: create
    mode: {mode}
    auth: {{ scheme: api-key, secrets: [env:PAYOUTS_KEY] }}
    map: '.payslips[] | {{amount: .amount, currency: "GBP", startDate: "2030-01-01", endDate: "2030-02-01", name: "Payroll", description: "Payslip", userName: .user, notification: false, externalId: .id}}'
"#
    )
}

fn payrun(tag: &str) -> Value {
    let slips: Vec<Value> = (0..PAYSLIPS)
        .map(|i| json!({"id": format!("{tag}-{i}"), "amount": "10.00", "user": format!("u{i}")}))
        .collect();
    json!({ "payslips": slips })
}

struct Run {
    answer_ms: u128,
    drain_ms: u128,
    peak_in_flight: u64,
    peak_per_second: u64,
}

async fn sim() -> (payout_bridge::sim::SimHandle, String) {
    let config = payout_bridge::sim::SimConfig {
        password: "sim-password".into(),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = payout_bridge::sim::spawn(config, listener).await.unwrap();
    let url = handle.url();
    sim_post_at(&url, "/sim/faults", json!({"latency_ms": LATENCY_MS})).await;
    (handle, url)
}

fn secrets() -> Arc<dyn SecretSource> {
    Arc::new(MapSecrets(HashMap::from([
        ("env:PAYOUTS_KEY".to_string(), TEST_KEY.to_string()),
        (
            "test:panel-password".to_string(),
            "sim-password".to_string(),
        ),
    ])))
}

async fn queued(concurrency: usize, rate: Option<u32>) -> Run {
    let (_sim, url) = sim().await;
    let queue = Arc::new(MemoryQueue::new(5, Duration::from_secs(60)));
    let bridge = Arc::new(
        ServiceBuilder::new(settings(&[]))
            .routes_yaml(&routes("queued"), "bench")
            .unwrap()
            .panel(panel_client(&url))
            .secrets(secrets())
            .password_ref("test:panel-password")
            .queue(queue.clone())
            .panel_limits(concurrency, rate)
            .build()
            .await
            .unwrap(),
    );
    let worker = Arc::new(Worker::new(
        bridge.clone(),
        queue,
        Arc::new(HttpNotifier::new().unwrap()),
        WorkerSettings {
            concurrency,
            retry_base_secs: 1,
            poll_wait: Duration::from_millis(200),
        },
    ));
    let b = serve(bridge).await;
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    let started = Instant::now();
    let resp = post_hook(&b.url, "payrun", &payrun("q")).await;
    assert_eq!(resp.status().as_u16(), 202);
    let answer_ms = started.elapsed().as_millis();
    loop {
        let state = sim_state_at(&url).await;
        if counter(&state, "createAccepted") == PAYSLIPS as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "did not drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_ms = started.elapsed().as_millis();
    let _ = tx.send(true);
    let _ = task.await;
    let state = sim_state_at(&url).await;
    assert_eq!(counter(&state, "create"), PAYSLIPS as u64);
    Run {
        answer_ms,
        drain_ms,
        peak_in_flight: state["peakInFlight"].as_u64().unwrap(),
        peak_per_second: state["peakPerSecond"].as_u64().unwrap(),
    }
}

async fn sync(batch_concurrency: &str) -> Run {
    let (_sim, url) = sim().await;
    let bridge = Arc::new(
        ServiceBuilder::new(settings(&[("BRIDGE_BATCH_CONCURRENCY", batch_concurrency)]))
            .routes_yaml(&routes("sync"), "bench")
            .unwrap()
            .panel(panel_client(&url))
            .secrets(secrets())
            .password_ref("test:panel-password")
            .build()
            .await
            .unwrap(),
    );
    let b = serve(bridge).await;
    let started = Instant::now();
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/hooks/payrun", b.url))
        .header("x-api-key", TEST_KEY)
        .json(&payrun("s"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let answer_ms = started.elapsed().as_millis();
    let state = sim_state_at(&url).await;
    assert_eq!(counter(&state, "createAccepted"), PAYSLIPS as u64);
    Run {
        answer_ms,
        drain_ms: answer_ms,
        peak_in_flight: state["peakInFlight"].as_u64().unwrap(),
        peak_per_second: state["peakPerSecond"].as_u64().unwrap(),
    }
}

fn row(what: &str, r: &Run) {
    println!(
        "| {what} | {} ms | {:.1} s | {} | {} |",
        r.answer_ms,
        r.drain_ms as f64 / 1000.0,
        r.peak_in_flight,
        r.peak_per_second
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn bench_a_thousand_payslip_pay_run_queued_and_sync() {
    println!("| run ({PAYSLIPS} payslips, panel latency {LATENCY_MS} ms) | sender's answer | all paid | peak calls in flight | peak calls in one second |");
    println!("|---|---|---|---|---|");
    row(
        "queued, BRIDGE_WORKER_CONCURRENCY=4",
        &queued(4, None).await,
    );
    row(
        "queued, BRIDGE_WORKER_CONCURRENCY=16",
        &queued(16, None).await,
    );
    row(
        "queued, BRIDGE_WORKER_CONCURRENCY=16, BRIDGE_PANEL_RATE=100",
        &queued(16, Some(100)).await,
    );
    row("sync, BRIDGE_BATCH_CONCURRENCY=4", &sync("4").await);
    row("sync, BRIDGE_BATCH_CONCURRENCY=16", &sync("16").await);
}
