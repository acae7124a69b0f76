//! Never twice, never lost — at the edges. Each case is a story an unlucky operator or an
//! attacker would meet, run end to end: the HTTP router, the delivery records on DynamoDB
//! (moto's server, through the real AWS SDK, a fresh table per test), and the panel simulator as
//! a separate process. Time is a [`ManualClock`], so "ten days later" takes no time.
//!
//! Needs `AWS_ENDPOINT_URL` (run `scripts/test.sh`).

mod common;

use common::*;
use payout_bridge::app::operator::{Operator, Resolution};
use payout_bridge::app::{Delivery, Headers};
use payout_bridge::ports::{
    Begin, Clock, DeliveryRecord, DeliveryState, ManualClock, SecretSource,
};
use payout_bridge::service::ServiceBuilder;
use payout_bridge::store::dynamodb::{DynamoDeliveryStore, DynamoTokenStore};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;
/// `endDate` of `create_body`: 2030-02-01 12:00:00 UTC.
const PAYOUT_END: i64 = 1_896_177_600;

/// Two create routes (as two senders would have) and a cancel route, all on the test key; a
/// pay-run route whose filter makes one create per item.
const ROUTES: &str = r#"
routes:
  - name: payouts
    action: create
    auth: { scheme: api-key, secrets: [env:PAYOUTS_KEY] }
  - name: crm
    action: create
    auth: { scheme: api-key, secrets: [env:PAYOUTS_KEY] }
  - name: cancel
    action: cancel
    auth: { scheme: api-key, secrets: [env:PAYOUTS_KEY] }
  - name: payrun
    action: create
    auth: { scheme: api-key, secrets: [env:PAYOUTS_KEY] }
    map: ".items[]"
"#;

/// A bridge on its own DynamoDB table, the simulator, and a clock the test moves.
struct Rig {
    sim: Proc,
    clock: Arc<ManualClock>,
    table: String,
    b: TestBridge,
}

async fn rig() -> Rig {
    let sim = panel_sim(&[]);
    let aws = aws("sim-password").await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now().timestamp()));
    let b = bridge_on(&aws.table, &sim.url, clock.clone()).await;
    Rig {
        sim,
        clock,
        table: aws.table,
        b,
    }
}

/// Another instance of the bridge on the same table (as Lambda runs many).
async fn bridge_on(table: &str, panel_url: &str, clock: Arc<ManualClock>) -> TestBridge {
    let sdk = payout_bridge::aws::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let secrets: Arc<dyn SecretSource> = Arc::new(MapSecrets(HashMap::from([
        ("env:PAYOUTS_KEY".to_string(), TEST_KEY.to_string()),
        (
            "test:panel-password".to_string(),
            "sim-password".to_string(),
        ),
    ])));
    let bridge = ServiceBuilder::new(settings(&[]))
        .routes_yaml(ROUTES, "money-edge routes")
        .expect("routes")
        .panel(panel_client(panel_url))
        .secrets(secrets)
        .password_ref("test:panel-password")
        .tokens(Arc::new(DynamoTokenStore::new(ddb.clone(), table)))
        .deliveries(Arc::new(DynamoDeliveryStore::new(ddb, table)))
        .clock(clock)
        .build()
        .await
        .expect("bridge");
    serve(Arc::new(bridge)).await
}

impl Rig {
    async fn post(&self, route: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
        post_to(&self.b.url, route, body).await
    }
    async fn state(&self) -> Value {
        sim_state(&self.sim).await
    }
    async fn creates(&self) -> u64 {
        counter(&self.state().await, "create")
    }
    fn operator(&self) -> Operator {
        Operator::new(self.b.deliveries.clone(), self.clock.clone(), 7 * DAY)
    }
    async fn faults(&self, faults: Value) {
        sim_post(&self.sim, "/sim/faults", faults).await;
    }
    async fn pending(&self) -> Vec<DeliveryRecord> {
        self.b.deliveries.pending(self.clock.now()).await.unwrap()
    }
}

async fn post_to(url: &str, route: &str, body: &Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = post_hook(url, route, body).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let v: Value = resp.json().await.expect("json answer");
    (status, v, headers)
}

fn replayed(h: &reqwest::header::HeaderMap) -> bool {
    h.get("idempotent-replayed").is_some_and(|v| v == "true")
}

fn error_type(v: &Value) -> &str {
    v["error"]["type"].as_str().unwrap_or("")
}

/// The status of payout `id` at the simulated panel.
async fn payout_status(r: &Rig, id: u64) -> String {
    payouts(&r.state().await)
        .into_iter()
        .find(|p| p["id"].as_u64() == Some(id))
        .map(|p| p["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no payout {id} at the panel"))
}

// ---------------------------------------------------------------------------------------------
// Day 8: the idempotency window is the externalId's, not the record's 7 days

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_ten_days_later_answers_the_payout_and_pays_nothing() {
    let r = rig().await;
    let (s, first, _) = r.post("payouts", &create_body("day8-1", "10.00")).await;
    assert_eq!(s, 201, "{first}");
    let id = first["payments"][0]["id"].as_u64().unwrap();

    // The payroll admin presses "resend" on a 10-day-old pay run.
    r.clock.advance(10 * DAY);
    let (s, again, h) = r.post("payouts", &create_body("day8-1", "10.00")).await;
    assert_eq!(s, 201, "{again}");
    assert!(replayed(&h));
    assert_eq!(again["payments"][0]["id"].as_u64(), Some(id));
    assert_eq!(r.creates().await, 1, "the panel was called again");
    // ... and a void sent then still finds the payout.
    let (s, v, _) = r.post("cancel", &json!({"externalIds": ["day8-1"]})).await;
    assert_eq!((s, v.clone()), (200, json!({"success": 1})), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_create_stays_pending_past_its_retention_until_resolved() {
    let r = rig().await;
    // The panel makes the payout and the connection drops: outcome unknown.
    r.faults(json!({"drop_after_next": 1, "only_path": "/api/payment/create"}))
        .await;
    let (s, v, _) = r.post("payouts", &create_body("held-1", "11.00")).await;
    assert_eq!((s, error_type(&v)), (504, "PANEL_OUTCOME_UNKNOWN"), "{v}");
    let made = payouts(&r.state().await)[0]["id"].as_u64().unwrap();

    // Nobody resolves it, long past the payout's end date plus the retention (the record's
    // expiry once settled): still pending, still never re-sent.
    r.clock.set(PAYOUT_END + 60 * DAY);
    let pending = r.pending().await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].key, "ext:held-1");
    let (s, v, _) = r.post("payouts", &create_body("held-1", "11.00")).await;
    assert_eq!((s, error_type(&v)), (504, "PANEL_OUTCOME_UNKNOWN"), "{v}");
    assert_eq!(r.creates().await, 1);

    // The operator checks the panel and resolves it by the bare externalId (as DEPLOY.md shows).
    r.operator()
        .resolve("payouts", "held-1", Resolution::Created { payout_id: made })
        .await
        .expect("resolve by bare externalId");
    assert!(r.pending().await.is_empty());
    let (s, v, h) = r.post("payouts", &create_body("held-1", "11.00")).await;
    assert_eq!(s, 201, "{v}");
    assert!(replayed(&h));
    assert_eq!(v["payments"][0]["id"].as_u64(), Some(made));
    // The resolved record is kept the retention from its resolution (here past the payout's end
    // date, so that is what counts): a void six days on still cancels the payout.
    r.clock.advance(6 * DAY);
    let (s, v, _) = r.post("cancel", &json!({"externalIds": ["held-1"]})).await;
    assert_eq!((s, v.clone()), (200, json!({"success": 1})), "{v}");
    assert_eq!(payout_status(&r, made).await, "CANCELLED");
    assert_eq!(r.creates().await, 1);
}

// ---------------------------------------------------------------------------------------------
// Void before create

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_that_arrives_first_refuses_the_create_that_follows() {
    let r = rig().await;
    let (s, v, _) = r.post("cancel", &json!({"externalIds": ["slip-9"]})).await;
    assert_eq!(
        (s, v.clone()),
        (200, json!({"success": 0, "unknownExternalIds": ["slip-9"]}))
    );
    let (s, v, _) = r.post("payouts", &create_body("slip-9", "12.00")).await;
    assert_eq!((s, error_type(&v)), (422, "PAYOUT_CANCELLED"), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cancelled before it was created"));
    // Still refused near the end of the retention, and by another route too.
    r.clock.advance(6 * DAY);
    let (s, v, _) = r.post("crm", &create_body("slip-9", "12.00")).await;
    assert_eq!((s, error_type(&v)), (422, "PAYOUT_CANCELLED"), "{v}");
    assert_eq!(r.creates().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_during_a_held_create_waits_and_then_follows_the_resolution() {
    let r = rig().await;
    r.faults(json!({"drop_after_next": 2, "only_path": "/api/payment/create"}))
        .await;
    for ext in ["held-a", "held-b"] {
        let (s, v, _) = r.post("payouts", &create_body(ext, "13.00")).await;
        assert_eq!((s, error_type(&v)), (504, "PANEL_OUTCOME_UNKNOWN"), "{v}");
    }
    let ids: Vec<u64> = payouts(&r.state().await)
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();

    // The void comes while both are held: 409 with Retry-After, nothing cancelled or stored.
    let void = json!({"externalIds": ["held-a", "held-b"]});
    let (s, v, h) = r.post("cancel", &void).await;
    assert_eq!((s, error_type(&v)), (409, "REQUEST_IN_PROGRESS"), "{v}");
    assert!(h.get("retry-after").is_some());
    assert_eq!(counter(&r.state().await, "cancel"), 0);

    // The operator finds held-a at the panel and held-b not there.
    let op = r.operator();
    op.resolve(
        "payouts",
        "ext:held-a",
        Resolution::Created { payout_id: ids[0] },
    )
    .await
    .unwrap();
    op.resolve("payouts", "held-b", Resolution::NotCreated)
        .await
        .unwrap();
    // The sender's retry is decided afresh: held-a cancelled, held-b recorded as cancelled.
    let (s, v, _) = r.post("cancel", &void).await;
    assert_eq!(
        (s, v.clone()),
        (200, json!({"success": 1, "unknownExternalIds": ["held-b"]})),
        "{v}"
    );
    assert_eq!(payout_status(&r, ids[0]).await, "CANCELLED");
    let (s, v, _) = r.post("payouts", &create_body("held-b", "13.00")).await;
    assert_eq!((s, error_type(&v)), (422, "PAYOUT_CANCELLED"), "{v}");
    assert_eq!(r.creates().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_after_a_refused_create_stops_its_retry() {
    let r = rig().await;
    r.faults(json!({"reject_next": 1, "reject_type": "INSUFFICIENT_FUNDS", "only_path": "/api/payment/create"}))
        .await;
    let (s, v, _) = r.post("payouts", &create_body("poor-1", "14.00")).await;
    assert_eq!((s, error_type(&v)), (402, "INSUFFICIENT_FUNDS"), "{v}");
    let (s, v, _) = r.post("cancel", &json!({"externalIds": ["poor-1"]})).await;
    assert_eq!(
        (s, v.clone()),
        (200, json!({"success": 0, "unknownExternalIds": ["poor-1"]}))
    );
    // The sender retries the create once funds are back: refused, not paid.
    let (s, v, _) = r.post("payouts", &create_body("poor-1", "14.00")).await;
    assert_eq!((s, error_type(&v)), (422, "PAYOUT_CANCELLED"), "{v}");
    assert_eq!(
        r.creates().await,
        1,
        "only the refused call reached the panel"
    );
    assert!(payouts(&r.state().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_void_racing_from_two_instances_end_created_then_cancelled_or_refused() {
    let r = rig().await;
    let other = bridge_on(&r.table, &r.sim.url, r.clock.clone()).await;
    // A little panel latency widens the window in which the two meet.
    r.faults(json!({"latency_ms": 30})).await;
    let exts: Vec<String> = (0..12).map(|i| format!("race-{i}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, ext) in exts.iter().enumerate() {
        let (a, b) = if i % 2 == 0 {
            (r.b.url.clone(), other.url.clone())
        } else {
            (other.url.clone(), r.b.url.clone())
        };
        let ext = ext.clone();
        tasks.spawn(async move {
            let (create_body, void_body) = (
                create_body(&ext, "15.00"),
                json!({"externalIds": [ext.clone()]}),
            );
            let create = post_to(&a, "payouts", &create_body);
            let void = post_to(&b, "cancel", &void_body);
            let ((cs, cv, _), (mut vs, mut vv, _)) = tokio::join!(create, void);
            // The sender retries a void answered 409 (bounded).
            for _ in 0..20 {
                if vs != 409 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                (vs, vv, _) = post_to(&b, "cancel", &json!({"externalIds": [ext.clone()]})).await;
            }
            (ext, cs, cv, vs, vv)
        });
    }
    let mut created = 0;
    while let Some(joined) = tasks.join_next().await {
        let (ext, cs, cv, vs, vv) = joined.unwrap();
        assert_eq!(vs, 200, "{ext}: void {vv}");
        match cs {
            201 => {
                created += 1;
                assert_eq!(
                    vv,
                    json!({"success": 1}),
                    "{ext}: created, then the void must cancel it"
                );
                let id = cv["payments"][0]["id"].as_u64().unwrap();
                assert_eq!(payout_status(&r, id).await, "CANCELLED", "{ext}");
            }
            422 => {
                assert_eq!(error_type(&cv), "PAYOUT_CANCELLED", "{ext}: {cv}");
                assert_eq!(
                    vv,
                    json!({"success": 0, "unknownExternalIds": [ext.clone()]}),
                    "{ext}"
                );
            }
            other => panic!("{ext}: create answered {other} {cv}"),
        }
    }
    // Every payout the panel holds was created by a 201 and is cancelled: none slipped through.
    let state = r.state().await;
    assert_eq!(payouts(&state).len(), created);
    assert!(
        payouts(&state).iter().all(|p| p["status"] == "CANCELLED"),
        "{state}"
    );
}

// ---------------------------------------------------------------------------------------------
// One externalId, one payout, across routes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_route_cannot_repoint_an_external_id() {
    let r = rig().await;
    let (s, v, _) = r.post("payouts", &create_body("shared-1", "16.00")).await;
    assert_eq!(s, 201, "{v}");
    let id = v["payments"][0]["id"].as_u64().unwrap();
    // Another sender, same externalId: same payload or not, refused, and the panel not called.
    for amount in ["16.00", "99.00"] {
        let (s, v, _) = r.post("crm", &create_body("shared-1", amount)).await;
        assert_eq!((s, error_type(&v)), (422, "IDEMPOTENCY_KEY_REUSED"), "{v}");
    }
    // The same route with another payload too.
    let (s, v, _) = r.post("payouts", &create_body("shared-1", "17.00")).await;
    assert_eq!((s, error_type(&v)), (422, "IDEMPOTENCY_KEY_REUSED"), "{v}");
    assert_eq!(r.creates().await, 1);
    // The void cancels the original payout.
    let (s, v, _) = r
        .post("cancel", &json!({"externalIds": ["shared-1"]}))
        .await;
    assert_eq!((s, v.clone()), (200, json!({"success": 1})), "{v}");
    assert_eq!(payout_status(&r, id).await, "CANCELLED");
}

// ---------------------------------------------------------------------------------------------
// Batches answer 200 only when every item is settled

fn payrun(exts: &[&str]) -> Value {
    json!({"items": exts.iter().map(|e| create_body(e, "18.00")).collect::<Vec<_>>()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pay_run_with_an_item_in_progress_answers_409_and_its_retry_pays_only_the_rest() {
    let r = rig().await;
    // Another invocation (the sender's first try, still running) holds run-2 right now.
    use payout_bridge::domain::{Action, Command};
    let now = r.clock.now();
    let busy = DeliveryRecord {
        route: "payrun".into(),
        key: "ext:run-2".into(),
        fingerprint: Command::from_json(Action::Create, &create_body("run-2", "18.00"))
            .unwrap()
            .fingerprint(),
        state: DeliveryState::InProgress { deadline: now + 60 },
        attempt: "other".into(),
        action: Action::Create,
        external_id: Some("run-2".into()),
        payout_id: None,
        created_at: now,
        updated_at: now,
        expires_at: now + 7 * DAY,
    };
    assert_eq!(
        r.b.deliveries.begin(&busy, now).await.unwrap(),
        Begin::Started
    );
    let (s, v, h) = r
        .post("payrun", &payrun(&["run-1", "run-2", "run-3"]))
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(h.get("retry-after").is_some());
    let statuses: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 409, 201]);
    assert_eq!(r.creates().await, 2);
    // That invocation ends without effect at the panel (its record FAILED).
    let fail = payout_bridge::ports::Transition::to(DeliveryState::Failed {
        status: 503,
        body: "{}".into(),
    });
    let id = payout_bridge::ports::RecordId {
        route: "payrun",
        key: "ext:run-2",
    };
    assert!(r
        .b
        .deliveries
        .finish(id, "other", &fail, now)
        .await
        .unwrap());
    let (s, v, _) = r
        .post("payrun", &payrun(&["run-1", "run-2", "run-3"]))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(r.creates().await, 3, "the retry created only run-2");
    assert_eq!(v["results"][0]["replayed"], true);
    assert_eq!(v["results"][1]["status"], 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pay_run_against_a_panel_that_is_down_answers_503() {
    let r = rig().await;
    let dead = bridge_on(
        &r.table,
        &format!("http://127.0.0.1:{}", free_port()),
        r.clock.clone(),
    )
    .await;
    let (s, v, h) = post_to(&dead.url, "payrun", &payrun(&["down-1", "down-2"])).await;
    assert_eq!(s, 503, "{v}");
    assert!(h.get("retry-after").is_some());
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == 503 && i["error"]["type"] == "PANEL_UNAVAILABLE"));
    // The retry on a working instance pays both, once.
    let (s, v, _) = r.post("payrun", &payrun(&["down-1", "down-2"])).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(r.creates().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pay_run_out_of_time_starts_nothing_it_cannot_finish() {
    let r = rig().await;
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert("x-api-key", TEST_KEY);
    let body = payrun(&["late-1", "late-2"]).to_string();
    let deliver = |deadline| {
        r.b.bridge.handle(Delivery {
            route: "payrun",
            method: "POST",
            uri: "/hooks/payrun",
            headers: &headers,
            body: body.as_bytes(),
            deadline,
        })
    };
    // Less time left than a panel call may take (PANEL_REQUEST_TIMEOUT_MS, 10 s by default) + 1 s.
    let reply = deliver(Some(Instant::now() + Duration::from_millis(2000))).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    for item in reply.body["results"].as_array().unwrap() {
        assert_eq!(item["error"]["type"], "PANEL_UNAVAILABLE");
        assert!(item["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not started: time budget"));
    }
    assert_eq!(r.creates().await, 0);
    assert!(
        r.pending().await.is_empty(),
        "nothing is held: nothing was sent"
    );
    // With time enough, the same delivery pays both.
    let reply = deliver(Some(Instant::now() + Duration::from_secs(20))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(r.creates().await, 2);
}
