//! The fault suite: `payout-bridge serve` on DynamoDB (moto, through the real AWS SDK) against
//! the panel simulator, both as processes, one panel fault per test, plus the state store
//! going away (a private moto behind a proxy that the test switches off, then killed).
//!
//! For each fault it asserts
//! - the answer's status, `error.type` and shape, and `Retry-After` exactly where the README's
//!   response table promises it;
//! - that nothing is paid twice: the panel's payouts are counted per externalId (written into
//!   the description, the panel never sees the externalId);
//! - that the delivery record agrees with the answer (read back with
//!   `DynamoDeliveryStore::get`): 201 = COMPLETED with the same payout, 504 = OUTCOME_UNKNOWN
//!   listed by `payout-bridge pending --json`, other errors = FAILED replaying the same status;
//! - what a redelivery after the fault gets: a replay for completed, a fresh try for a failed
//!   one (nothing was done at the panel), 504 again for an unknown one, until an operator
//!   resolves it.
//!
//! Needs `AWS_ENDPOINT_URL` pointing at moto (`scripts/test.sh`) and `.venv` with moto for the
//! private moto servers of the store tests. Runtime: about 15–20 s with a warm build (the tests
//! run in parallel; the longest is the store outage, ~12 s).

mod common;

use common::*;
use payout_bridge::ports::DeliveryState;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A panel simulator, a fresh table + secret, and a bridge process on them.
struct Rig {
    /// The simulator the bridge talks to (owned here unless the test restarts it itself).
    sim_url: String,
    _sim: Option<Proc>,
    aws: Aws,
    env: Vec<(&'static str, String)>,
    bridge: Proc,
    http: reqwest::Client,
}

impl Rig {
    async fn new(extra: &[(&'static str, &str)]) -> Rig {
        let sim = panel_sim(&[]);
        let aws = aws(SIM_PASSWORD).await;
        Rig::on(sim.url.clone(), Some(sim), aws, extra)
    }

    fn on(sim_url: String, sim: Option<Proc>, aws: Aws, extra: &[(&'static str, &str)]) -> Rig {
        let routes = temp_file("routes.yaml", TEST_ROUTES);
        let env = bridge_env(&sim_url, &aws, &routes, extra);
        let bridge = bridge(&env);
        Rig {
            sim_url,
            _sim: sim,
            aws,
            env,
            bridge,
            http: client(),
        }
    }

    async fn deliver(&self, body: &Value) -> Answer {
        deliver_to(&self.http, &self.bridge.url, "payouts", body).await
    }

    async fn create(&self, ext: &str, amount: &str) -> Answer {
        self.deliver(&create_body(ext, amount)).await
    }

    /// One successful payout first, so that the token is cached and a fault set next hits
    /// the create rather than the authenticate.
    async fn warm(&self) {
        self.create("warm-up", "1.00").await.assert_created(false);
    }

    async fn state(&self) -> Value {
        sim_state_at(&self.sim_url).await
    }

    async fn sim(&self, path: &str, body: Value) {
        sim_post_at(&self.sim_url, path, body).await;
    }

    async fn faults(&self, faults: Value) {
        self.sim("/sim/faults", faults).await;
    }

    async fn record_matches(&self, ext: &str, answer: &Answer) {
        assert_record_matches(self.aws.record(ext).await.as_ref(), answer);
    }

    fn resolve(&self, ext: &str, how: &[&str]) {
        let key = format!("ext:{ext}");
        let mut args = vec!["resolve", "--route", "payouts", "--key", &key];
        args.extend_from_slice(how);
        let (ok, out, err) = operator(&self.env, &args);
        assert!(ok, "resolve {ext}: {out}{err}");
    }

    /// The end state of every delivery named: at most one payout at the panel, and the record
    /// is COMPLETED (exactly one payout), FAILED (none) or OUTCOME_UNKNOWN and listed by
    /// `pending --json`. Never left IN_PROGRESS, never missing.
    async fn assert_settled(&self, exts: &[&str]) {
        let state = self.state().await;
        let listed = pending(&self.env);
        for ext in exts {
            let n = paid(&state, ext);
            assert!(n <= 1, "{ext} paid {n} times: {state}");
            let record = self
                .aws
                .record(ext)
                .await
                .unwrap_or_else(|| panic!("{ext}: no delivery record"));
            let in_pending = listed
                .iter()
                .any(|l| l["key"] == format!("ext:{ext}").as_str());
            match &record.state {
                DeliveryState::Completed { .. } => {
                    assert_eq!(n, 1, "{ext} completed: {record:?}");
                    assert!(!in_pending, "{ext} is completed but pending lists it");
                }
                DeliveryState::Failed { body, .. } => {
                    assert_eq!(n, 0, "{ext} failed but paid: {record:?}");
                    let b: Value = serde_json::from_str(body).expect("failed body");
                    assert!(b["error"]["message"].as_str().is_some(), "{record:?}");
                    assert!(!in_pending, "{ext} failed but pending lists it");
                }
                DeliveryState::OutcomeUnknown { reason } => {
                    assert!(!reason.is_empty());
                    assert!(in_pending, "{ext} unknown but not in pending: {listed:?}");
                }
                DeliveryState::InProgress { .. } => {
                    panic!("{ext} left in progress: {record:?}")
                }
                DeliveryState::Cancelled => panic!("{ext} cancelled, never sent: {record:?}"),
                DeliveryState::Queued { .. } => panic!("{ext} queued on a sync route: {record:?}"),
            }
        }
    }
}

/// A sent-without-answer create: 504, held (OUTCOME_UNKNOWN, listed by `pending`), never
/// re-sent on redelivery. Returns the answer.
async fn expect_held(r: &Rig, ext: &str, amount: &str) -> Answer {
    let creates_before = counter(&r.state().await, "create");
    let a = r.create(ext, amount).await;
    a.assert_error(504, "PANEL_OUTCOME_UNKNOWN");
    r.record_matches(ext, &a).await;
    let line = pending_line(&r.env, ext).unwrap_or_else(|| panic!("{ext} not in pending"));
    assert_eq!(line["state"], "OUTCOME_UNKNOWN", "{line}");
    assert_eq!(line["externalId"], ext, "{line}");
    assert!(
        line["reason"].as_str().is_some_and(|s| !s.is_empty()),
        "{line}"
    );
    // The sender retries: the same answer, and the panel sees nothing new.
    let again = r.create(ext, amount).await;
    again.assert_error(504, "PANEL_OUTCOME_UNKNOWN");
    assert_eq!(
        counter(&r.state().await, "create"),
        creates_before + 1,
        "a held create was sent again"
    );
    a
}

#[tokio::test]
async fn a_500_with_an_html_body_is_504_held_and_settled_by_the_operator() {
    let r = Rig::new(&[]).await;
    r.warm().await;
    r.faults(json!({"fail_next": 1, "only_path": "/api/payment/create"}))
        .await;
    expect_held(&r, "html-500", "5.00").await;
    let state = r.state().await;
    assert_eq!(counter(&state, "failed"), 1, "{state}");
    assert_eq!(
        paid(&state, "html-500"),
        0,
        "a 500 is not processed by the sim"
    );
    r.assert_settled(&["warm-up", "html-500"]).await;

    // The operator finds nothing at the panel: the next delivery creates it, once.
    r.resolve("html-500", &["--not-created"]);
    let a = r.create("html-500", "5.00").await;
    let id = a.assert_created(false);
    r.record_matches("html-500", &a).await;
    let b = r.create("html-500", "5.00").await;
    assert_eq!(b.assert_created(true), id);
    r.assert_settled(&["warm-up", "html-500"]).await;
}

/// A 500 in the panel's own error shape (`{"error":{…,"type":"INTERNAL_ERROR"},"errors":[]}`)
/// after the payout was made: the error body proves nothing, so it is 504, held, never re-sent,
/// and the panel holds exactly one payout.
#[tokio::test]
async fn a_500_in_the_error_shape_after_processing_is_504_held_and_paid_exactly_once() {
    let r = Rig::new(&[]).await;
    r.warm().await;
    r.faults(json!({"internal_error_after_next": 1, "only_path": "/api/payment/create"}))
        .await;
    expect_held(&r, "error-500-after", "7.50").await;
    let state = r.state().await;
    assert_eq!(counter(&state, "internalErrorsAfter"), 1, "{state}");
    assert_eq!(
        payouts_by_external_id(&state)["error-500-after"].len(),
        1,
        "{state}"
    );
    r.assert_settled(&["warm-up", "error-500-after"]).await;
    // Still held after the fault is gone: the bridge never sends it again by itself.
    r.create("error-500-after", "7.50")
        .await
        .assert_error(504, "PANEL_OUTCOME_UNKNOWN");
    assert_eq!(paid(&r.state().await, "error-500-after"), 1);
}

/// The same answer before anything was made: the bridge cannot tell the two apart, so it is
/// held as well; the operator finds nothing and the next delivery pays once.
#[tokio::test]
async fn a_500_in_the_error_shape_before_processing_is_504_held_and_nothing_is_paid() {
    let r = Rig::new(&[]).await;
    r.warm().await;
    r.faults(json!({"internal_error_before_next": 1, "only_path": "/api/payment/create"}))
        .await;
    expect_held(&r, "error-500-before", "6.50").await;
    let state = r.state().await;
    assert_eq!(counter(&state, "internalErrorsBefore"), 1, "{state}");
    assert_eq!(paid(&state, "error-500-before"), 0, "{state}");
    r.assert_settled(&["warm-up", "error-500-before"]).await;

    r.resolve("error-500-before", &["--not-created"]);
    let id = r
        .create("error-500-before", "6.50")
        .await
        .assert_created(false);
    assert_eq!(
        r.create("error-500-before", "6.50")
            .await
            .assert_created(true),
        id
    );
    r.assert_settled(&["warm-up", "error-500-before"]).await;
}

#[tokio::test]
async fn a_connection_dropped_before_processing_is_504_and_nothing_is_paid() {
    let r = Rig::new(&[]).await;
    r.warm().await;
    r.faults(json!({"drop_before_next": 1, "only_path": "/api/payment/create"}))
        .await;
    expect_held(&r, "drop-before", "6.00").await;
    let state = r.state().await;
    assert_eq!(counter(&state, "droppedBefore"), 1, "{state}");
    assert_eq!(paid(&state, "drop-before"), 0);
    r.assert_settled(&["warm-up", "drop-before"]).await;

    r.resolve("drop-before", &["--not-created"]);
    r.create("drop-before", "6.00").await.assert_created(false);
    r.create("drop-before", "6.00").await.assert_created(true);
    r.assert_settled(&["warm-up", "drop-before"]).await;
}

#[tokio::test]
async fn a_connection_dropped_after_processing_is_504_and_paid_exactly_once() {
    let r = Rig::new(&[]).await;
    r.warm().await;
    r.faults(json!({"drop_after_next": 1, "only_path": "/api/payment/create"}))
        .await;
    expect_held(&r, "drop-after", "7.00").await;
    let state = r.state().await;
    assert_eq!(counter(&state, "droppedAfter"), 1, "{state}");
    let ids = payouts_by_external_id(&state);
    assert_eq!(ids["drop-after"].len(), 1, "{state}");
    let payout_id = ids["drop-after"][0];
    r.assert_settled(&["warm-up", "drop-after"]).await;

    // The operator finds it at the panel: redeliveries get that payout, and it can be
    // cancelled by its externalId.
    r.resolve("drop-after", &["--payout-id", &payout_id.to_string()]);
    let a = r.create("drop-after", "7.00").await;
    assert_eq!(a.assert_created(true), payout_id);
    let c = deliver_to(
        &r.http,
        &r.bridge.url,
        "cancel",
        &json!({"externalIds": ["drop-after"]}),
    )
    .await;
    assert_eq!((c.status, c.body), (200, json!({"success": 1})));
    let state = r.state().await;
    assert_eq!(paid(&state, "drop-after"), 1, "{state}");
    r.assert_settled(&["warm-up", "drop-after"]).await;
}

#[tokio::test]
async fn a_garbage_answer_after_processing_is_504_and_paid_exactly_once() {
    let r = Rig::new(&[]).await;
    r.warm().await;
    r.faults(json!({"garbage_next": 1, "only_path": "/api/payment/create"}))
        .await;
    expect_held(&r, "garbage", "8.00").await;
    let state = r.state().await;
    assert_eq!(counter(&state, "garbage"), 1, "{state}");
    assert_eq!(paid(&state, "garbage"), 1, "{state}");
    r.assert_settled(&["warm-up", "garbage"]).await;
}

#[tokio::test]
async fn a_panel_slower_than_the_request_timeout_is_504_and_paid_at_most_once() {
    let r = Rig::new(&[("PANEL_REQUEST_TIMEOUT_MS", "700")]).await;
    r.warm().await;
    r.faults(json!({"latency_ms": 2000})).await;
    let started = Instant::now();
    let a = r.create("slow", "9.00").await;
    let took = started.elapsed();
    a.assert_error(504, "PANEL_OUTCOME_UNKNOWN");
    assert!(
        took < Duration::from_millis(1900),
        "the bridge waited {took:?}, past its 700 ms panel timeout"
    );
    r.record_matches("slow", &a).await;
    r.faults(json!({"latency_ms": 0})).await;
    // The panel carries on after the bridge gave up, as a real one would.
    let processed = eventually(Duration::from_secs(5), || async {
        paid(&r.state().await, "slow") == 1
    })
    .await;
    let state = r.state().await;
    assert!(processed, "the slow create never landed: {state}");
    assert_eq!(counter(&state, "create"), 2, "{state}");
    // Redelivery: held, not re-sent.
    r.create("slow", "9.00")
        .await
        .assert_error(504, "PANEL_OUTCOME_UNKNOWN");
    assert_eq!(counter(&r.state().await, "create"), 2);
    r.assert_settled(&["warm-up", "slow"]).await;
}

#[tokio::test]
async fn a_revoked_token_costs_one_authenticate_and_the_payout_is_made_once() {
    let r = Rig::new(&[]).await;
    r.warm().await;
    r.sim("/sim/revoke-tokens", json!({})).await;
    let a = r.create("revoked", "10.00").await;
    a.assert_created(false);
    r.record_matches("revoked", &a).await;
    let state = r.state().await;
    assert_eq!(counter(&state, "authenticate"), 2, "{state}");
    assert_eq!(counter(&state, "tokenRejected"), 1, "{state}");
    assert_eq!(paid(&state, "revoked"), 1, "{state}");
    r.create("revoked", "10.00").await.assert_created(true);
    r.assert_settled(&["warm-up", "revoked"]).await;
}

#[tokio::test]
async fn a_rotated_password_is_502_until_the_secret_has_it_then_a_redelivery_pays_once() {
    let r = Rig::new(&[]).await;
    r.warm().await;

    // The panel's password changes (and its tokens die) before the secret is updated.
    r.sim("/sim/password", json!({"password": "rotated-1"}))
        .await;
    r.sim("/sim/revoke-tokens", json!({})).await;
    let a = r.create("rotated", "11.00").await;
    a.assert_error(502, "PANEL_AUTH_FAILED");
    assert!(!a.body.to_string().contains(SIM_PASSWORD));
    r.record_matches("rotated", &a).await;
    assert_eq!(paid(&r.state().await, "rotated"), 0);
    r.assert_settled(&["warm-up", "rotated"]).await;

    // The secret catches up: the failed delivery is tried afresh, without a restart.
    r.aws.set_password("rotated-1").await;
    let a = r.create("rotated", "11.00").await;
    let id = a.assert_created(false);
    r.record_matches("rotated", &a).await;

    // A rotation done in the right order (secret and panel, tokens revoked) is invisible.
    r.sim("/sim/password", json!({"password": "rotated-2"}))
        .await;
    r.aws.set_password("rotated-2").await;
    r.sim("/sim/revoke-tokens", json!({})).await;
    r.create("rotated-2", "12.00").await.assert_created(false);
    assert_eq!(r.create("rotated", "11.00").await.assert_created(true), id);
    r.assert_settled(&["warm-up", "rotated", "rotated-2"]).await;
}

#[tokio::test]
async fn out_of_funds_is_402_failed_and_each_redelivery_tries_again() {
    let r = Rig::new(&[]).await;
    r.warm().await;
    r.sim("/sim/funds", json!({"currency": "GBP", "amount": "10.00"}))
        .await;
    let a = r.create("broke", "20.00").await;
    a.assert_error(402, "INSUFFICIENT_FUNDS");
    r.record_matches("broke", &a).await;
    r.assert_settled(&["warm-up", "broke"]).await;
    // A redelivery is a fresh try (nothing was done at the panel).
    let a = r.create("broke", "20.00").await;
    a.assert_error(402, "INSUFFICIENT_FUNDS");
    assert_eq!(counter(&r.state().await, "insufficientFunds"), 2);
    r.sim(
        "/sim/funds",
        json!({"currency": "GBP", "amount": "1000.00"}),
    )
    .await;
    let a = r.create("broke", "20.00").await;
    let id = a.assert_created(false);
    r.record_matches("broke", &a).await;
    assert_eq!(r.create("broke", "20.00").await.assert_created(true), id);

    // The panel's own INVALID_PARAMS (sent with HTTP 200, as the panel may): 400, failed,
    // and tried again on redelivery.
    r.faults(json!({
        "reject_next": 1, "reject_type": "INVALID_PARAMS",
        "errors_with_status_200": true, "only_path": "/api/payment/create"
    }))
    .await;
    let a = r.create("refused", "1.50").await;
    a.assert_error(400, "INVALID_PARAMS");
    r.record_matches("refused", &a).await;
    r.assert_settled(&["warm-up", "broke", "refused"]).await;
    r.create("refused", "1.50").await.assert_created(false);
    r.assert_settled(&["warm-up", "broke", "refused"]).await;
}

#[tokio::test]
async fn an_unreachable_panel_is_503_with_retry_after_and_a_redelivery_pays_once() {
    // Fixed port, so that the simulator can come back where the bridge expects it.
    let port = free_port().to_string();
    let mut sim = panel_sim(&["--port", &port]);
    let aws = aws(SIM_PASSWORD).await;
    // The authenticate fails (500) on a cold bridge: nothing was sent for the payout.
    sim_post(
        &sim,
        "/sim/faults",
        json!({"fail_next": 1, "only_path": "/api/authenticate"}),
    )
    .await;
    let r = Rig::on(sim.url.clone(), None, aws, &[]);
    let a = r.create("no-auth", "2.00").await;
    a.assert_error(503, "PANEL_UNAVAILABLE");
    r.record_matches("no-auth", &a).await;
    let state = sim_state(&sim).await;
    assert_eq!(counter(&state, "create"), 0, "{state}");
    let a = r.create("no-auth", "2.00").await;
    a.assert_created(false);
    r.record_matches("no-auth", &a).await;

    // The panel goes away altogether: connection refused.
    sim.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = r.create("panel-down", "3.00").await;
    a.assert_error(503, "PANEL_UNAVAILABLE");
    r.record_matches("panel-down", &a).await;
    let a = r.create("panel-down", "3.00").await;
    a.assert_error(503, "PANEL_UNAVAILABLE");

    // It comes back (empty, with new tokens): the failed delivery is tried afresh, the
    // completed one is still replayed from the record.
    let sim = panel_sim(&["--port", &port]);
    let a = r.create("panel-down", "3.00").await;
    a.assert_created(false);
    r.record_matches("panel-down", &a).await;
    r.create("no-auth", "2.00").await.assert_created(true);
    let state = sim_state(&sim).await;
    assert_eq!(paid(&state, "panel-down"), 1, "{state}");
    // The new panel refused the old token once (re-authenticated, sent again), then created.
    assert_eq!(counter(&state, "tokenRejected"), 1, "{state}");
    assert_eq!(counter(&state, "createAccepted"), 1, "{state}");
    drop(sim);
}

/// The state store goes away: first cut off (a proxy between the bridge and a private moto
/// is switched off, so the records survive for inspection), then for real (moto killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store_going_away_is_503_state_unavailable_and_nothing_reaches_the_panel() {
    let mut moto = Moto::start().await;
    let aws = Aws::new(&moto.proc.url, SIM_PASSWORD).await;
    let mut switch = Switch::new(moto.addr()).await;
    let switch_url = switch.url();
    let sim = panel_sim(&[]);
    let r = Rig::on(
        sim.url.clone(),
        Some(sim),
        aws,
        &[
            ("AWS_ENDPOINT_URL", switch_url.as_str()),
            ("BRIDGE_IN_PROGRESS_TIMEOUT_SECS", "4"),
        ],
    );
    // Operator commands reach moto directly.
    let mut operator_env = r.env.clone();
    operator_env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    operator_env.push(("AWS_ENDPOINT_URL", r.aws.endpoint.clone()));

    let a = r.create("s-1", "1.00").await;
    let id1 = a.assert_created(false);
    let creates = counter(&r.state().await, "create");

    // Cut off: new and repeated deliveries alike are 503 STATE_UNAVAILABLE, and nothing
    // reaches the panel (no record could be written first).
    switch.off().await;
    let started = Instant::now();
    let a = r.create("s-2", "2.00").await;
    a.assert_error(503, "STATE_UNAVAILABLE");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    r.create("s-1", "1.00")
        .await
        .assert_error(503, "STATE_UNAVAILABLE");
    assert_eq!(counter(&r.state().await, "create"), creates);

    // Back: nothing was half-written. s-2 has no record and is created now; s-1 replays.
    switch.on().await;
    assert!(r.aws.record("s-2").await.is_none(), "a record for s-2");
    let a = r.create("s-2", "2.00").await;
    a.assert_created(false);
    r.record_matches("s-2", &a).await;
    assert_eq!(r.create("s-1", "1.00").await.assert_created(true), id1);

    // Cut off while a create is at the panel: the record cannot be settled. The answer
    // stands (the payout exists); the record stays IN_PROGRESS, is never re-sent, and turns
    // up in `pending` once its deadline passes.
    r.faults(json!({"latency_ms": 1500})).await;
    let before = counter(&r.state().await, "create");
    let (url, http) = (r.bridge.url.clone(), r.http.clone());
    let inflight = tokio::spawn(async move {
        deliver_to(&http, &url, "payouts", &create_body("s-3", "3.00")).await
    });
    let arrived = eventually(Duration::from_secs(5), || async {
        counter(&r.state().await, "create") > before
    })
    .await;
    assert!(arrived, "the create never reached the panel");
    switch.off().await;
    let a = inflight.await.expect("in-flight delivery");
    let id3 = a.assert_created(false);
    r.faults(json!({"latency_ms": 0})).await;
    switch.on().await;
    let record = r.aws.record("s-3").await.expect("s-3 record");
    assert!(
        matches!(record.state, DeliveryState::InProgress { .. }),
        "{record:?}"
    );
    // Before the deadline a redelivery is "in progress"; after it, held for an operator.
    r.create("s-3", "3.00")
        .await
        .assert_error(409, "REQUEST_IN_PROGRESS");
    let listed = eventually(Duration::from_secs(8), || async {
        pending(&operator_env)
            .iter()
            .any(|l| l["key"] == "ext:s-3" && l["state"] == "IN_PROGRESS")
    })
    .await;
    assert!(listed, "s-3 never showed in pending");
    let a = r.create("s-3", "3.00").await;
    a.assert_error(504, "PANEL_OUTCOME_UNKNOWN");
    r.record_matches("s-3", &a).await;
    let line = pending(&operator_env)
        .into_iter()
        .find(|l| l["key"] == "ext:s-3")
        .expect("s-3 in pending");
    assert_eq!(line["state"], "OUTCOME_UNKNOWN", "{line}");
    let state = r.state().await;
    assert_eq!(paid(&state, "s-3"), 1, "{state}");
    assert_eq!(payouts_by_external_id(&state)["s-3"], vec![id3]);

    // The store dies for real (moto killed, the proxy still up): still 503, still nothing
    // sent.
    moto.kill();
    let creates = counter(&r.state().await, "create");
    r.create("s-4", "4.00")
        .await
        .assert_error(503, "STATE_UNAVAILABLE");
    r.create("s-1", "1.00")
        .await
        .assert_error(503, "STATE_UNAVAILABLE");
    let state = r.state().await;
    assert_eq!(counter(&state, "create"), creates, "{state}");
    for ext in ["s-1", "s-2", "s-3"] {
        assert_eq!(paid(&state, ext), 1, "{ext}: {state}");
    }
    assert_eq!(paid(&state, "s-4"), 0);
    drop(switch);
}

/// A private moto behind a [`Switch`], a simulator, and a bridge whose state store is reached
/// through the switch.
async fn rig_behind_switch(extra: &[(&'static str, &str)]) -> (Moto, Switch, Rig) {
    let moto = Moto::start().await;
    let aws = Aws::new(&moto.proc.url, SIM_PASSWORD).await;
    let switch = Switch::new(moto.addr()).await;
    let switch_url = switch.url();
    let mut env: Vec<(&'static str, &str)> = vec![("AWS_ENDPOINT_URL", switch_url.as_str())];
    env.extend_from_slice(extra);
    let sim = panel_sim(&[]);
    let r = Rig::on(sim.url.clone(), Some(sim), aws, &env);
    (moto, switch, r)
}

/// docs/STATE.md, "Retries of a request whose answer was lost": the SDK retries, the retry
/// meets the write of the first try, and the adapter recognises its own write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_answer_is_retried_and_recognised_as_our_own_write() {
    let (_moto, switch, r) = rig_behind_switch(&[]).await;
    r.warm().await;

    // The answer to `begin` (PutItem) is lost once.
    switch.lose_answers(1);
    let a = r.create("lost-begin", "1.00").await;
    assert_eq!(switch.answers_to_lose(), 0, "no store call lost its answer");
    let id = a.assert_created(false);
    r.record_matches("lost-begin", &a).await;
    assert_eq!(
        r.create("lost-begin", "1.00").await.assert_created(true),
        id
    );

    // The answer to `finish` (the transaction with the externalId item) is lost once, while
    // the create is at the panel.
    r.faults(json!({"latency_ms": 800})).await;
    let before = counter(&r.state().await, "create");
    let (url, http) = (r.bridge.url.clone(), r.http.clone());
    let inflight = tokio::spawn(async move {
        deliver_to(&http, &url, "payouts", &create_body("lost-finish", "2.00")).await
    });
    let arrived = eventually(Duration::from_secs(5), || async {
        counter(&r.state().await, "create") > before
    })
    .await;
    assert!(arrived, "the create never reached the panel");
    switch.lose_answers(1);
    let a = inflight.await.expect("in-flight delivery");
    r.faults(json!({"latency_ms": 0})).await;
    assert_eq!(switch.answers_to_lose(), 0, "no store call lost its answer");
    let id = a.assert_created(false);
    r.record_matches("lost-finish", &a).await;
    assert_eq!(
        r.create("lost-finish", "2.00").await.assert_created(true),
        id
    );
    // The externalId item was written with it: a cancel by externalId finds the payout.
    let c = deliver_to(
        &r.http,
        &r.bridge.url,
        "cancel",
        &json!({"externalIds": ["lost-finish"]}),
    )
    .await;
    assert_eq!((c.status, c.body), (200, json!({"success": 1})));
    r.assert_settled(&["warm-up", "lost-begin", "lost-finish"])
        .await;
}

/// Every attempt of `begin` loses its answer: the bridge answers 503 STATE_UNAVAILABLE ("nothing
/// was sent to the panel, retry later", Retry-After: 30), which is true — but the first attempt
/// did write an IN_PROGRESS record, so the sender's retry gets 409 until the in-progress
/// timeout and then 504 PANEL_OUTCOME_UNKNOWN, held for an operator, for a payout that never
/// reached the panel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_state_unavailable_leaves_no_record_that_blocks_the_retry() {
    let (_moto, switch, r) = rig_behind_switch(&[("BRIDGE_IN_PROGRESS_TIMEOUT_SECS", "2")]).await;
    r.warm().await;
    let creates = counter(&r.state().await, "create");
    switch.lose_answers(payout_bridge::aws::MAX_ATTEMPTS);
    let a = r.create("all-lost", "3.00").await;
    a.assert_error(503, "STATE_UNAVAILABLE");
    assert_eq!(
        switch.answers_to_lose(),
        0,
        "not every attempt reached the store"
    );
    assert_eq!(
        counter(&r.state().await, "create"),
        creates,
        "sent to the panel"
    );

    // The sender retries (after Retry-After, here sooner, and once past the in-progress
    // timeout): nothing reached the panel, so this must be a fresh try.
    let a = r.create("all-lost", "3.00").await;
    let b = if a.status == 409 {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        r.create("all-lost", "3.00").await
    } else {
        a.clone()
    };
    assert_eq!(
        b.status,
        201,
        "retry after a 503 STATE_UNAVAILABLE: first {} {}, then {} {} (record: {:?})",
        a.status,
        a.error_type(),
        b.status,
        b.error_type(),
        r.aws.record("all-lost").await
    );
    r.assert_settled(&["warm-up", "all-lost"]).await;
}

/// docs/STATE.md, error mapping: "timeouts, connection failures, unreadable responses,
/// throttling and 5xx → `Unavailable`". A store endpoint that reads each request and hangs up
/// without an answer (what a crashing or restarting endpoint does) must read as
/// `Unavailable`, not `Refused` ("access denied or misconfiguration").
#[tokio::test]
async fn a_store_that_hangs_up_without_an_answer_is_unavailable_not_refused() {
    use payout_bridge::ports::{DeliveryStore, StoreError};
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // Read (part of) the request, then close without a byte of answer.
                let _ = conn.read(&mut buf).await;
            });
        }
    });
    let (ddb, _) = clients_for(&format!("http://{addr}")).await;
    let store = payout_bridge::store::dynamodb::DynamoDeliveryStore::new(ddb, "no-table");
    let err = store
        .get(
            payout_bridge::ports::RecordId {
                route: "payouts",
                key: "ext:x",
            },
            now(),
        )
        .await
        .expect_err("a store that never answers");
    server.abort();
    assert!(
        matches!(err, StoreError::Unavailable(_)),
        "classified as {err:?}"
    );
}
