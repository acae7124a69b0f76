//! Queued routes end to end: the HTTP router, the delivery records on DynamoDB and the queue on
//! SQS (moto's server, through the real AWS SDK; a fresh table and queue pair per test), the
//! panel simulator as a separate process, the worker in-process, and a loopback receiver for the
//! signed notifications (checked with the Python `standardwebhooks` package). Everything on
//! loopback, every wait bounded.
//!
//! Needs `AWS_ENDPOINT_URL` (run `scripts/test.sh`).

mod common;

use common::*;
use payout_bridge::app::operator::QueueOperator;
use payout_bridge::app::worker::{Worker, WorkerSettings};
use payout_bridge::notify::HttpNotifier;
use payout_bridge::ports::{Clock, DeliveryState, RecordId, SecretSource, SystemClock};
use payout_bridge::queue::{MemoryQueue, SqsQueue};
use payout_bridge::service::ServiceBuilder;
use payout_bridge::store::dynamodb::{DynamoDeliveryStore, DynamoTokenStore};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The notify secret of the tests (a Standard Webhooks `whsec_` secret).
const NOTIFY_SECRET: &str = "whsec_cXVldWVkLXJlc3VsdHMtdGVzdC1zZWNyZXQhIQ==";

/// A queued pay run (one create per payslip, notified), a queued single create, a sync route.
fn routes(notify_url: &str) -> String {
    format!(
        r#"
routes:
  - name: payrun
    action: create
    mode: queued
    auth: {{ scheme: api-key, secrets: [env:PAYOUTS_KEY] }}
    map: '.payslips[] | {{amount: .amount, currency: "GBP", startDate: "2030-01-01", endDate: "2030-02-01", name: "Payroll", description: "Payslip", userName: .user, notification: false, externalId: .id}}'
    notify: {{ url: "{notify_url}", secrets: [env:NOTIFY_SECRET] }}
  - name: qpay
    action: create
    mode: queued
    auth: {{ scheme: api-key, secrets: [env:PAYOUTS_KEY] }}
    notify: {{ url: "{notify_url}", secrets: [env:NOTIFY_SECRET] }}
  - name: payouts
    action: create
    auth: {{ scheme: api-key, secrets: [env:PAYOUTS_KEY] }}
"#
    )
}

fn payrun(ids: &[&str]) -> Value {
    let slips: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "amount": "10.00", "user": format!("u-{id}")}))
        .collect();
    json!({ "payslips": slips })
}

// ---------------------------------------------------------------------------------------------
// The panel simulator, in-process (its gauges are the code under test, whatever binary another
// build left in a shared target directory)

struct Sim {
    _handle: payout_bridge::sim::SimHandle,
    url: String,
}

/// The simulator on `port` (0 = any free one), with `funds` in GBP (default: plenty).
async fn sim_on(port: u16, gbp: Option<u32>) -> Sim {
    let mut config = payout_bridge::sim::SimConfig {
        password: "sim-password".into(),
        ..Default::default()
    };
    if let Some(gbp) = gbp {
        config.funds = vec![("GBP".into(), rust_decimal::Decimal::from(gbp))];
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the simulator");
    let handle = payout_bridge::sim::spawn(config, listener).await.unwrap();
    let url = handle.url();
    Sim {
        _handle: handle,
        url,
    }
}

async fn sim() -> Sim {
    sim_on(0, None).await
}

// ---------------------------------------------------------------------------------------------
// A loopback receiver of notifications

/// One notification as received: its headers and body.
type Event = (HashMap<String, String>, String);

#[derive(Clone, Default)]
struct Received {
    events: Arc<Mutex<Vec<Event>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<AtomicU32>,
}

async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    use axum::routing::post;
    let got = Received::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let h: HashMap<String, String> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                state.events.lock().unwrap().push((h, body));
                let failing = state
                    .fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got, task)
}

impl Received {
    fn all(&self) -> Vec<(HashMap<String, String>, Value)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(h, b)| (h.clone(), serde_json::from_str(b).unwrap()))
            .collect()
    }
    fn raw(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

/// Verifies a notification with the Python `standardwebhooks` package.
fn python_verify(headers: &HashMap<String, String>, body: &str) {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, which installs standardwebhooks",
        python.display()
    );
    let wanted: HashMap<&str, &str> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|k| (*k, headers.get(*k).map(String::as_str).unwrap_or("")))
        .collect();
    let body_file = temp_file("event.json", body);
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, json\n\
             from standardwebhooks.webhooks import Webhook\n\
             Webhook(sys.argv[1]).verify(open(sys.argv[3]).read(), json.loads(sys.argv[2]))\n\
             print('verified')",
            NOTIFY_SECRET,
            &serde_json::to_string(&wanted).unwrap(),
        ])
        .arg(&body_file)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "standardwebhooks refused the notification: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The rig: moto (table + queue + dead-letter queue), the bridge, the worker

struct Rig {
    b: TestBridge,
    worker: Arc<Worker>,
    queue: Arc<SqsQueue>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
    panel_url: String,
    got: Received,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    _receiver: tokio::task::JoinHandle<()>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

/// A queue with a dead-letter queue after `max_receive_count` receives.
async fn queues(sqs: &aws_sdk_sqs::Client, max_receive_count: u32) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let name = format!("bridge-{}", unique());
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create dlq")
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string()})
                .to_string(),
        )
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap();
    (queue_url, dlq_url)
}

async fn rig(panel_url: &str, max_receive_count: u32) -> Rig {
    let (notify_url, got, receiver_task) = receiver().await;
    let sdk = payout_bridge::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dlq_url) = queues(&sqs, max_receive_count).await;
    let aws = aws("sim-password").await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let secrets: Arc<dyn SecretSource> = Arc::new(MapSecrets(HashMap::from([
        ("env:PAYOUTS_KEY".to_string(), TEST_KEY.to_string()),
        ("env:NOTIFY_SECRET".to_string(), NOTIFY_SECRET.to_string()),
        (
            "test:panel-password".to_string(),
            "sim-password".to_string(),
        ),
    ])));
    let queue = Arc::new(SqsQueue::new(&sdk, &queue_url, Some(&dlq_url)));
    let bridge = Arc::new(
        ServiceBuilder::new(settings(&[]))
            .routes_yaml(&routes(&notify_url), "queue test routes")
            .expect("routes")
            .panel(panel_client(panel_url))
            .secrets(secrets)
            .password_ref("test:panel-password")
            .tokens(Arc::new(DynamoTokenStore::new(ddb.clone(), &aws.table)))
            .deliveries(Arc::new(DynamoDeliveryStore::new(ddb, &aws.table)))
            .queue(queue.clone())
            .panel_limits(4, None)
            .build()
            .await
            .expect("bridge"),
    );
    let worker = Arc::new(Worker::new(
        bridge.clone(),
        queue.clone(),
        Arc::new(HttpNotifier::new().unwrap()),
        WorkerSettings {
            concurrency: 4,
            retry_base_secs: 1,
            // Short polls: moto serves one request at a time (scripts/moto_serialized.py), and a
            // long poll would hold every other test's calls.
            poll_wait: Duration::ZERO,
        },
    ));
    Rig {
        b: serve(bridge).await,
        worker,
        queue,
        sqs,
        queue_url,
        dlq_url,
        panel_url: panel_url.to_string(),
        got,
        stop: None,
        _receiver: receiver_task,
    }
}

impl Rig {
    fn start_worker(&mut self) {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let worker = self.worker.clone();
        tokio::spawn(worker.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        self.stop = Some(tx);
    }

    async fn post(&self, route: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
        let resp = post_hook(&self.b.url, route, body).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, resp.json().await.expect("json answer"), headers)
    }

    async fn sim(&self) -> Value {
        sim_state_at(&self.panel_url).await
    }

    /// Messages on a queue: (visible, in flight).
    async fn depth(&self, url: &str) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        let attrs = out.attributes().unwrap();
        let n = |a: A| attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0);
        (
            n(A::ApproximateNumberOfMessages),
            n(A::ApproximateNumberOfMessagesNotVisible),
        )
    }

    fn operator(&self) -> QueueOperator {
        QueueOperator::new(
            self.queue.clone(),
            Some(self.b.deliveries.clone()),
            Arc::new(SystemClock),
        )
        .with_poll_wait(Duration::ZERO)
    }

    async fn record(&self, route: &str, key: &str) -> Option<DeliveryState> {
        let id = RecordId { route, key };
        self.b
            .deliveries
            .get(id, SystemClock.now())
            .await
            .unwrap()
            .map(|r| r.state)
    }
}

/// Polls `check` every 200 ms until it holds, for at most `secs` seconds.
async fn wait_for<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

/// How many payouts the panel holds for each externalId (the sim keeps the user name).
fn paid(state: &Value, id: &str) -> usize {
    payouts(state)
        .iter()
        .filter(|p| p["userName"] == format!("u-{id}").as_str())
        .count()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_pay_run_answers_202_then_pays_each_once_and_notifies_signed() {
    let sim = sim().await;
    let mut r = rig(&sim.url, 5).await;
    let ids = ["q1-a", "q1-b", "q1-c"];

    let (s, v, _) = r.post("payrun", &payrun(&ids)).await;
    assert_eq!(s, 202, "{v}");
    let queued = v["queued"].as_array().unwrap();
    assert_eq!(queued.len(), 3, "{v}");
    assert_eq!(
        queued[1],
        json!({"index": 1, "externalId": "q1-b", "key": "ext:q1-b"})
    );
    // The sender retries before the worker ran: 202 again, nothing queued twice.
    let (s, again, _) = r.post("payrun", &payrun(&ids)).await;
    assert_eq!((s, &again), (202, &v));
    assert_eq!(r.depth(&r.queue_url).await, (3, 0));
    assert_eq!(
        r.record("payrun", "ext:q1-a").await.map(|s| s.name()),
        Some("QUEUED")
    );
    assert_eq!(counter(&r.sim().await, "create"), 0);

    r.start_worker();
    wait_for(30, "three payouts", || async {
        counter(&r.sim().await, "createAccepted") == 3
    })
    .await;
    wait_for(30, "an empty queue", || async {
        r.depth(&r.queue_url).await == (0, 0)
    })
    .await;
    let state = r.sim().await;
    for id in ids {
        assert_eq!(paid(&state, id), 1, "{id}: {state}");
    }
    assert_eq!(counter(&state, "create"), 3);

    // A redelivery after they ran: each item's stored answer, as the synchronous path gives it.
    let (s, v, _) = r.post("payrun", &payrun(&ids)).await;
    assert_eq!(s, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .all(|i| i["status"] == 201 && i["replayed"] == true),
        "{v}"
    );
    assert_eq!(counter(&r.sim().await, "create"), 3);

    // Each result posted once, signed: the Python reference library verifies every one.
    wait_for(10, "three notifications", || async {
        r.got.raw().len() == 3
    })
    .await;
    let mut seen_ids = std::collections::HashSet::new();
    for (headers, body) in r.got.raw() {
        python_verify(&headers, &body);
        assert!(seen_ids.insert(headers["webhook-id"].clone()));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "payout.created", "{v}");
        assert_eq!(v["data"]["route"], "payrun");
        assert_eq!(v["data"]["status"], 201);
        assert!(v["data"]["payments"][0]["id"].is_u64(), "{v}");
        assert!(v["timestamp"].is_string());
    }

    // A single command: 202, then a redelivery replays the payout with Idempotent-Replayed.
    let (s, v, _) = r.post("qpay", &create_body("q1-single", "5.00")).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        v,
        json!({"queued":[{"index":0,"externalId":"q1-single","key":"ext:q1-single"}]})
    );
    wait_for(30, "the single payout", || async {
        counter(&r.sim().await, "createAccepted") == 4
    })
    .await;
    wait_for(10, "its record", || async {
        r.record("qpay", "ext:q1-single").await.map(|s| s.name()) == Some("COMPLETED")
    })
    .await;
    let (s, v, h) = r.post("qpay", &create_body("q1-single", "5.00")).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(h["idempotent-replayed"], "true");
    // Validation happens at once: nothing queued for an invalid command.
    let (s, v, _) = r.post("qpay", &json!({"amount": "x"})).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(r.depth(&r.queue_url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_down_then_back_pays_each_once_after_retries() {
    let port = free_port();
    let panel_url = format!("http://127.0.0.1:{port}");
    let mut r = rig(&panel_url, 20).await;
    let ids = ["q2-a", "q2-b", "q2-c"];
    let (s, v, _) = r.post("payrun", &payrun(&ids)).await;
    assert_eq!(s, 202, "{v}");
    r.start_worker();
    // The panel is down: each try fails before sending (503), the record says so.
    wait_for(20, "a failed try", || async {
        matches!(
            r.record("payrun", "ext:q2-a").await,
            Some(DeliveryState::Failed { status: 503, .. })
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _sim = sim_on(port, None).await;
    wait_for(60, "three payouts after the panel came back", || async {
        counter(&r.sim().await, "createAccepted") == 3
    })
    .await;
    wait_for(30, "an empty queue", || async {
        r.depth(&r.queue_url).await == (0, 0)
    })
    .await;
    let state = r.sim().await;
    for id in ids {
        assert_eq!(paid(&state, id), 1, "{id}: {state}");
    }
    assert_eq!(counter(&state, "create"), 3, "{state}");
    assert_eq!(r.depth(&r.dlq_url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panel_never_back_dead_letters_then_redrive_pays_once() {
    let port = free_port();
    let panel_url = format!("http://127.0.0.1:{port}");
    let mut r = rig(&panel_url, 2).await;
    let (s, v, _) = r.post("payrun", &payrun(&["q3-a", "q3-b"])).await;
    assert_eq!(s, 202, "{v}");
    r.start_worker();
    // Two receives, then SQS moves each message to the dead-letter queue.
    let op = r.operator();
    wait_for(60, "two dead letters", || async {
        r.depth(&r.dlq_url).await.0 == 2
    })
    .await;
    let letters = op.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    for d in &letters {
        assert_eq!(d.route.as_deref(), Some("payrun"));
        assert!(d.receive_count >= 2, "{d:?}");
        let err = d.last_error.as_deref().unwrap_or("");
        assert!(err.contains("503 PANEL_UNAVAILABLE"), "{d:?}");
    }
    let mut keys: Vec<_> = letters.iter().filter_map(|d| d.key.clone()).collect();
    keys.sort();
    assert_eq!(keys, vec!["ext:q3-a", "ext:q3-b"]);

    let _sim = sim_on(port, None).await;
    // A dry run moves nothing.
    let dry = op.redrive(Some("q3-a"), true).await.unwrap();
    assert_eq!(dry.moved.len(), 1);
    assert_eq!(r.depth(&r.dlq_url).await.0, 2);
    // One key, then all the rest (moto has no message-move task: one by one).
    let one = op.redrive(Some("q3-a"), false).await.unwrap();
    assert_eq!(one.moved.len(), 1);
    assert_eq!(one.moved[0].external_id.as_deref(), Some("q3-a"));
    wait_for(30, "q3-a paid", || async {
        paid(&r.sim().await, "q3-a") == 1
    })
    .await;
    assert_eq!(paid(&r.sim().await, "q3-b"), 0);
    let rest = op.redrive(None, false).await.unwrap();
    assert!(!rest.move_task);
    assert_eq!(rest.moved.len(), 1);
    wait_for(30, "q3-b paid", || async {
        paid(&r.sim().await, "q3-b") == 1
    })
    .await;
    wait_for(30, "empty queues", || async {
        r.depth(&r.queue_url).await == (0, 0) && r.depth(&r.dlq_url).await == (0, 0)
    })
    .await;
    let state = r.sim().await;
    assert_eq!(counter(&state, "create"), 2, "{state}");
    assert!(op.dead_letters().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_is_held_for_an_operator_and_never_retried() {
    let sim = sim().await;
    let mut r = rig(&sim.url, 5).await;
    // The panel makes the payout and the connection drops.
    sim_post_at(
        &sim.url,
        "/sim/faults",
        json!({"drop_after_next": 1, "only_path": "/api/payment/create"}),
    )
    .await;
    let (s, v, _) = r.post("qpay", &create_body("q4-held", "7.00")).await;
    assert_eq!(s, 202, "{v}");
    r.start_worker();
    wait_for(30, "the held record", || async {
        matches!(
            r.record("qpay", "ext:q4-held").await,
            Some(DeliveryState::OutcomeUnknown { .. })
        )
    })
    .await;
    wait_for(30, "the message deleted", || async {
        r.depth(&r.queue_url).await == (0, 0)
    })
    .await;
    // Well past any backoff: still one create at the panel, nothing in the dead letters.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(counter(&sim_state_at(&sim.url).await, "create"), 1);
    assert_eq!(r.depth(&r.dlq_url).await, (0, 0));
    let pending = r.b.deliveries.pending(SystemClock.now()).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].key, "ext:q4-held");
    // The sender's redelivery is answered as on the synchronous path: 504, held.
    let (s, v, _) = r.post("qpay", &create_body("q4-held", "7.00")).await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (504, Some("PANEL_OUTCOME_UNKNOWN"))
    );
    let events = r.got.all();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["type"], "payout.outcome_unknown");
    assert_eq!(
        events[0].1["data"]["error"]["type"],
        "PANEL_OUTCOME_UNKNOWN"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_notification_is_retried_with_the_message_and_pays_nothing_more() {
    let sim = sim_on(0, Some(12)).await;
    let mut r = rig(&sim.url, 5).await;
    r.got.fail_first.store(2, Ordering::SeqCst);
    let (s, _, _) = r.post("qpay", &create_body("q5-ok", "10.00")).await;
    assert_eq!(s, 202);
    // Refused for funds (2 left): settled as rejected, its notification retried too.
    let (s, _, _) = r.post("qpay", &create_body("q5-poor", "10.00")).await;
    assert_eq!(s, 202);
    r.start_worker();
    wait_for(40, "both results notified", || async {
        r.got.all().iter().filter(|(h, _)| !h.is_empty()).count() >= 4
    })
    .await;
    wait_for(30, "an empty queue", || async {
        r.depth(&r.queue_url).await == (0, 0)
    })
    .await;
    let events = r.got.raw();
    for (h, b) in &events {
        python_verify(h, b);
    }
    let by_type = |t: &str| -> Vec<String> {
        r.got
            .all()
            .iter()
            .filter(|(_, v)| v["type"] == t)
            .map(|(h, _)| h["webhook-id"].clone())
            .collect()
    };
    let created = by_type("payout.created");
    let rejected = by_type("payout.rejected");
    assert!(!created.is_empty() && !rejected.is_empty(), "{events:?}");
    // The same webhook-id every time an item's result is sent: receivers deduplicate.
    assert!(created.iter().all(|id| id == &created[0]));
    assert!(rejected.iter().all(|id| id == &rejected[0]));
    assert_eq!(created.len() + rejected.len(), events.len());
    assert_eq!(events.len(), 4, "2 failures + 2 deliveries: {events:?}");
    // One create made, one refused: retried notifications ran no payout again.
    let state = sim_state_at(&sim.url).await;
    assert_eq!(counter(&state, "createAccepted"), 1, "{state}");
    assert_eq!(counter(&state, "create"), 2, "{state}");
    let rejected_event = r
        .got
        .all()
        .into_iter()
        .find(|(_, v)| v["type"] == "payout.rejected")
        .unwrap()
        .1;
    assert_eq!(
        rejected_event["data"]["error"]["type"],
        "INSUFFICIENT_FUNDS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_unreachable_answers_503_and_accepts_nothing() {
    let sim = sim().await;
    let r = rig(&sim.url, 5).await;
    // Delete the queue under the bridge.
    r.sqs
        .delete_queue()
        .queue_url(&r.queue_url)
        .send()
        .await
        .unwrap();
    let (s, v, h) = r.post("qpay", &create_body("q6-lost", "1.00")).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["type"], "STATE_UNAVAILABLE");
    assert!(h.contains_key("retry-after"));
    // Its record was released: the sender's retry queues it.
    assert!(matches!(
        r.record("qpay", "ext:q6-lost").await,
        Some(DeliveryState::Failed { status: 503, .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// The ceilings, read from the panel's own gauges (in-process queue and stores: fast)

async fn ceiling_run(concurrency: usize, rate: Option<u32>, n: usize, latency_ms: u64) -> Value {
    let sim = sim().await;
    sim_post_at(&sim.url, "/sim/faults", json!({"latency_ms": latency_ms})).await;
    let queue = Arc::new(MemoryQueue::new(5, Duration::from_secs(30)));
    let secrets: Arc<dyn SecretSource> = Arc::new(MapSecrets(HashMap::from([
        ("env:PAYOUTS_KEY".to_string(), TEST_KEY.to_string()),
        ("env:NOTIFY_SECRET".to_string(), NOTIFY_SECRET.to_string()),
        (
            "test:panel-password".to_string(),
            "sim-password".to_string(),
        ),
    ])));
    let bridge = Arc::new(
        ServiceBuilder::new(settings(&[]))
            .routes_yaml(
                r#"
routes:
  - name: payrun
    action: create
    mode: queued
    auth: { scheme: api-key, secrets: [env:PAYOUTS_KEY] }
    map: '.payslips[] | {amount: .amount, currency: "GBP", startDate: "2030-01-01", endDate: "2030-02-01", name: "Payroll", description: "Payslip", userName: .user, notification: false, externalId: .id}'
"#,
                "ceiling routes",
            )
            .unwrap()
            .panel(panel_client(&sim.url))
            .secrets(secrets)
            .password_ref("test:panel-password")
            .queue(queue.clone())
            .panel_limits(concurrency, rate)
            .build()
            .await
            .unwrap(),
    );
    let worker = Arc::new(Worker::new(
        bridge.clone(),
        queue.clone(),
        Arc::new(HttpNotifier::new().unwrap()),
        WorkerSettings {
            concurrency,
            retry_base_secs: 1,
            poll_wait: Duration::from_millis(200),
        },
    ));
    let b = serve(bridge).await;
    let ids: Vec<String> = (0..n).map(|i| format!("c-{i}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let resp = post_hook(&b.url, "payrun", &payrun(&id_refs)).await;
    assert_eq!(resp.status().as_u16(), 202);
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    wait_for(60, "every payout", || async {
        counter(&sim_state_at(&sim.url).await, "createAccepted") == n as u64
    })
    .await;
    let _ = tx.send(true);
    let _ = task.await;
    let state = sim_state_at(&sim.url).await;
    for id in &ids {
        assert_eq!(paid(&state, id), 1, "{id}");
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_keeps_the_concurrency_ceiling() {
    let state = ceiling_run(3, None, 24, 100).await;
    let peak = state["peakInFlight"].as_u64().unwrap();
    assert!(peak <= 3, "peak {peak} calls in flight, ceiling 3");
    assert!(
        peak >= 2,
        "the worker did not run calls side by side: {peak}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_keeps_the_rate_ceiling_with_no_burst() {
    let started = Instant::now();
    let state = ceiling_run(8, Some(5), 16, 10).await;
    let per_second = state["peakPerSecond"].as_u64().unwrap();
    // Authentication counts as a panel call too: at most 5 in any one second.
    assert!(
        per_second <= 5,
        "{per_second} calls within one second, ceiling 5"
    );
    assert!(per_second >= 4, "{per_second}");
    // 17 calls at 5 per second take at least 3 seconds.
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_pay_run_queues_what_is_new_and_answers_the_rest_at_once() {
    let sim = sim().await;
    let (notify_url, _got, _receiver) = receiver().await;
    let queue = Arc::new(MemoryQueue::new(5, Duration::from_secs(30)));
    let secrets: Arc<dyn SecretSource> = Arc::new(MapSecrets(HashMap::from([
        ("env:PAYOUTS_KEY".to_string(), TEST_KEY.to_string()),
        ("env:NOTIFY_SECRET".to_string(), NOTIFY_SECRET.to_string()),
        (
            "test:panel-password".to_string(),
            "sim-password".to_string(),
        ),
    ])));
    let bridge = Arc::new(
        ServiceBuilder::new(settings(&[]))
            .routes_yaml(&routes(&notify_url), "mixed routes")
            .unwrap()
            .panel(panel_client(&sim.url))
            .secrets(secrets)
            .password_ref("test:panel-password")
            .queue(queue.clone())
            .build()
            .await
            .unwrap(),
    );
    let b = serve(bridge).await;
    // mix-1 was paid through the synchronous route: an externalId names one payout.
    let resp = post_hook(&b.url, "payouts", &create_body("mix-1", "10.00")).await;
    assert_eq!(resp.status().as_u16(), 201);
    let resp = post_hook(&b.url, "payrun", &payrun(&["mix-1", "mix-2"])).await;
    assert_eq!(resp.status().as_u16(), 202);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["queued"],
        json!([{"index": 1, "externalId": "mix-2", "key": "ext:mix-2"}]),
        "{v}"
    );
    assert_eq!(v["results"][0]["index"], 0, "{v}");
    assert_eq!(v["results"][0]["status"], 422, "{v}");
    assert_eq!(
        v["results"][0]["error"]["type"], "IDEMPOTENCY_KEY_REUSED",
        "{v}"
    );
    assert_eq!(queue.depth(), (1, 0), "only mix-2 is on the queue");
}
