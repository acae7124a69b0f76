//! The response table, row by row, through the real HTTP router against the panel simulator
//! running as its own process.

mod common;

use common::*;
use serde_json::{json, Value};

async fn body(resp: reqwest::Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let v = resp.json().await.unwrap_or(Value::Null);
    (status, v, headers)
}

fn assert_error(status: u16, v: &Value, want_status: u16, want_type: &str) {
    assert_eq!(status, want_status, "body: {v}");
    assert_eq!(v["error"]["type"], want_type, "body: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert_eq!(v["errors"], json!([]), "{v}");
}

#[tokio::test]
async fn payout_created_is_201_with_the_panels_body_and_cancel_is_200() {
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    let (status, v, _) =
        body(post_hook(&b.url, "payouts", &create_body("p-1", "12.50")).await).await;
    assert_eq!(status, 201, "{v}");
    let id = v["payments"][0]["id"].as_u64().expect("payout id");
    assert_eq!(v["payments"][0]["currency"], "GBP");
    let state = sim_state(&sim).await;
    assert_eq!(payouts(&state).len(), 1);

    let (status, v, _) = body(post_hook(&b.url, "cancel", &json!({"ids": [id]})).await).await;
    assert_eq!((status, v.clone()), (200, json!({"success": 1})), "{v}");
}

#[tokio::test]
async fn invalid_body_and_invalid_command_are_400() {
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    let resp = client()
        .post(format!("{}/hooks/payouts", b.url))
        .header("x-api-key", TEST_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (s, v, _) = body(resp).await;
    assert_error(s, &v, 400, "INVALID_PARAMS");

    let mut bad = create_body("p-2", "0");
    bad["amount"] = json!(0);
    let (s, v, _) = body(post_hook(&b.url, "payouts", &bad).await).await;
    assert_error(s, &v, 400, "INVALID_PARAMS");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("amount"),
        "{v}"
    );
    // Nothing reached the panel.
    assert_eq!(counter(&sim_state(&sim).await, "create"), 0);
}

#[tokio::test]
async fn panel_invalid_params_is_400_and_insufficient_funds_is_402() {
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    sim_post(
        &sim,
        "/sim/funds",
        json!({"currency": "GBP", "amount": "10.00"}),
    )
    .await;
    let (s, v, _) = body(post_hook(&b.url, "payouts", &create_body("p-3", "20.00")).await).await;
    assert_error(s, &v, 402, "INSUFFICIENT_FUNDS");

    // The panel's own INVALID_PARAMS (cancelling ids that it refuses: an empty list can't
    // pass our validation, so ask the panel to reject the next call).
    sim_post(
        &sim,
        "/sim/faults",
        json!({"reject_next": 1, "reject_type": "INVALID_PARAMS", "errors_with_status_200": true}),
    )
    .await;
    let (s, v, _) = body(post_hook(&b.url, "payouts", &create_body("p-4", "1.00")).await).await;
    assert_error(s, &v, 400, "INVALID_PARAMS");
}

#[tokio::test]
async fn missing_or_bad_key_is_401_and_reaches_nothing() {
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    for key in [None, Some("wrong")] {
        let mut req = client()
            .post(format!("{}/hooks/payouts", b.url))
            .json(&create_body("p-5", "1.00"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let (s, v, _) = body(req.send().await.unwrap()).await;
        assert_error(s, &v, 401, "UNAUTHORIZED");
    }
    let state = sim_state(&sim).await;
    assert_eq!(
        counter(&state, "authenticate") + counter(&state, "create"),
        0
    );
}

#[tokio::test]
async fn unknown_route_is_404_and_health_answers() {
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    let (s, v, _) = body(post_hook(&b.url, "nope", &json!({})).await).await;
    assert_error(s, &v, 404, "NOT_FOUND");
    let (s, v, _) = body(
        client()
            .get(format!("{}/elsewhere", b.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &v, 404, "NOT_FOUND");
    let (s, v, _) = body(
        client()
            .get(format!("{}/health", b.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let sim = panel_sim(&[]);
    let b = start_bridge(
        &sim.url,
        "sim-password",
        TEST_ROUTES,
        &[("BRIDGE_MAX_BODY_BYTES", "1024")],
    )
    .await;
    let mut big = create_body("p-6", "1.00");
    big["description"] = json!("x".repeat(2000));
    let (s, v, _) = body(post_hook(&b.url, "payouts", &big).await).await;
    assert_error(s, &v, 413, "PAYLOAD_TOO_LARGE");
    // Default limit 256 KiB.
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    big["description"] = json!("x".repeat(300 * 1024));
    let (s, v, _) = body(post_hook(&b.url, "payouts", &big).await).await;
    assert_error(s, &v, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    let resp = client()
        .post(format!("{}/hooks/payouts", b.url))
        .header("x-api-key", TEST_KEY)
        .header("content-type", "text/plain")
        .body(create_body("p-7", "1.00").to_string())
        .send()
        .await
        .unwrap();
    let (s, v, _) = body(resp).await;
    assert_error(s, &v, 415, "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn refused_password_is_502() {
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "not-the-password", TEST_ROUTES, &[]).await;
    let (s, v, _) = body(post_hook(&b.url, "payouts", &create_body("p-8", "1.00")).await).await;
    assert_error(s, &v, 502, "PANEL_AUTH_FAILED");
    assert!(!v.to_string().contains("not-the-password"));
    assert_eq!(counter(&sim_state(&sim).await, "create"), 0);
}

#[tokio::test]
async fn unreachable_panel_is_503_with_retry_after() {
    let port = free_port();
    let b = start_bridge(&format!("http://127.0.0.1:{port}"), "x", TEST_ROUTES, &[]).await;
    let (s, v, h) = body(post_hook(&b.url, "payouts", &create_body("p-9", "1.00")).await).await;
    assert_error(s, &v, 503, "PANEL_UNAVAILABLE");
    assert!(h.get("retry-after").is_some());
}

#[tokio::test]
async fn processed_then_dropped_is_504_and_never_resent() {
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    // Authenticate first so that the fault hits the create.
    let (s, _, _) = body(post_hook(&b.url, "payouts", &create_body("warm-up", "1.00")).await).await;
    assert_eq!(s, 201);
    sim_post(
        &sim,
        "/sim/faults",
        json!({"drop_after_next": 1, "only_path": "/api/payment/create"}),
    )
    .await;
    let (s, v, _) = body(post_hook(&b.url, "payouts", &create_body("p-10", "3.00")).await).await;
    assert_error(s, &v, 504, "PANEL_OUTCOME_UNKNOWN");
    // The sender retries: same answer, and the panel sees no second create.
    let (s, v, _) = body(post_hook(&b.url, "payouts", &create_body("p-10", "3.00")).await).await;
    assert_error(s, &v, 504, "PANEL_OUTCOME_UNKNOWN");
    let state = sim_state(&sim).await;
    assert_eq!(counter(&state, "create"), 2, "{state}");
    assert_eq!(
        payouts(&state).len(),
        2,
        "the dropped create did happen at the panel"
    );
}

/// A panel adapter with a bug, to see the 500 row.
struct PanickingPanel;

#[async_trait::async_trait]
impl payout_bridge::ports::PanelApi for PanickingPanel {
    async fn authenticate(
        &self,
        _: &payout_bridge::ports::Secret,
    ) -> payout_bridge::ports::PanelOutcome<payout_bridge::ports::Secret> {
        panic!("bug in an adapter")
    }
    async fn create(
        &self,
        _: &payout_bridge::ports::Secret,
        _: &Value,
    ) -> payout_bridge::ports::PanelOutcome<payout_bridge::ports::CreatedPayout> {
        panic!("bug in an adapter")
    }
    async fn cancel(
        &self,
        _: &payout_bridge::ports::Secret,
        _: &[u64],
    ) -> payout_bridge::ports::PanelOutcome<u64> {
        panic!("bug in an adapter")
    }
}

#[tokio::test]
async fn a_bug_is_500_without_internals() {
    let b = start_bridge_with(std::sync::Arc::new(PanickingPanel), "x", TEST_ROUTES, &[]).await;
    let (s, v, _) = body(post_hook(&b.url, "payouts", &create_body("p-11", "1.00")).await).await;
    assert_error(s, &v, 500, "INTERNAL");
    assert!(!v.to_string().contains("adapter"), "{v}");
    // The server is still up.
    let (s, _, _) = body(
        client()
            .get(format!("{}/health", b.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_cancel_left_in_progress_by_a_dead_invocation_is_released_not_held() {
    use payout_bridge::domain::{Action, Command};
    use payout_bridge::ports::{DeliveryRecord, DeliveryState};
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", TEST_ROUTES, &[]).await;
    let (s, v, _) = body(post_hook(&b.url, "payouts", &create_body("dead-1", "1.00")).await).await;
    assert_eq!(s, 201);
    let id = v["payments"][0]["id"].as_u64().unwrap();
    // An invocation took the cancel and died: its record is in progress past its deadline.
    let cancel = json!({"ids": [id]});
    let now = chrono::Utc::now().timestamp();
    let record = DeliveryRecord {
        route: "cancel".into(),
        key: "idem:dead-cancel".into(),
        fingerprint: Command::from_json(Action::Cancel, &cancel)
            .unwrap()
            .fingerprint(),
        state: DeliveryState::InProgress { deadline: now - 1 },
        attempt: "dead".into(),
        action: Action::Cancel,
        external_id: None,
        payout_id: None,
        created_at: now - 120,
        updated_at: now - 120,
        expires_at: now + 3600,
    };
    b.deliveries.begin(&record, now).await.unwrap();
    let send = || {
        client()
            .post(format!("{}/hooks/cancel", b.url))
            .header("x-api-key", TEST_KEY)
            .header("idempotency-key", "dead-cancel")
            .json(&cancel)
            .send()
    };
    let (s, v, _) = body(send().await.unwrap()).await;
    assert_error(s, &v, 504, "PANEL_OUTCOME_UNKNOWN");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("safe"),
        "{v}"
    );
    // The sender's retry runs the cancel; nothing is held for an operator.
    let (s, v, _) = body(send().await.unwrap()).await;
    assert_eq!((s, v.clone()), (200, json!({"success": 1})), "{v}");
    assert!(b
        .deliveries
        .pending(chrono::Utc::now().timestamp())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_filter_that_does_not_compile_is_500_on_first_delivery_and_sends_nothing() {
    // Filters are compiled on their route's first delivery: a broken one (which
    // `check-config` refuses) must answer a retryable error, not a 400, not a panic, and
    // record nothing, so that the sender's retry after the fix creates the payout.
    let routes = format!(
        "{TEST_ROUTES}  - name: broken\n    action: create\n    auth:\n      scheme: api-key\n      secrets: [env:PAYOUTS_KEY]\n    map: '{{amount: .net | nosuchfilter}}'\n"
    );
    let sim = panel_sim(&[]);
    let b = start_bridge(&sim.url, "sim-password", &routes, &[]).await;
    for _ in 0..2 {
        let (s, v, _) = body(post_hook(&b.url, "broken", &create_body("p-40", "1.00")).await).await;
        assert_error(s, &v, 500, "INTERNAL");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("map filter does not compile") && message.contains("safe to retry"),
            "{v}"
        );
    }
    let state = sim_state(&sim).await;
    assert!(payouts(&state).is_empty(), "{state}");
    // The other routes are unaffected.
    let (s, v, _) = body(post_hook(&b.url, "payouts", &create_body("p-41", "1.00")).await).await;
    assert_eq!(s, 201, "{v}");
}
