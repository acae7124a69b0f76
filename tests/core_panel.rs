//! The panel client against the simulator process: every outcome class, driven by faults;
//! token expiry and a refused token through the bridge.

mod common;

use common::*;
use payout_bridge::panel::{PanelClient, PanelClientConfig};
use payout_bridge::ports::{PanelApi, PanelOutcome, Secret};
use serde_json::json;
use std::time::Duration;

fn panel(url: &str) -> PanelClient {
    PanelClient::new(&PanelClientConfig {
        base_url: url.to_string(),
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(800),
    })
    .expect("client")
}

fn panel_body(amount: f64) -> serde_json::Value {
    json!({
        "amount": amount, "currency": "GBP",
        "startDate": "2030-01-01 12:00:00", "endDate": "2030-02-01 12:00:00",
        "name": "P", "description": "D", "userName": "ada", "notification": false
    })
}

async fn token(p: &PanelClient) -> Secret {
    match p.authenticate(&Secret::new("sim-password")).await {
        PanelOutcome::Done(t) => t,
        other => panic!("authenticate: {other:?}"),
    }
}

#[tokio::test]
async fn done_rejected_and_token_refused() {
    let sim = panel_sim(&[]);
    let p = panel(&sim.url);
    let t = token(&p).await;
    assert!(
        matches!(p.create(&t, &panel_body(1.5)).await, PanelOutcome::Done(v) if v.body["payments"][0]["id"].as_u64() == Some(v.id))
    );
    assert!(matches!(
        p.authenticate(&Secret::new("wrong")).await,
        PanelOutcome::Rejected { kind, .. } if kind == "INVALID_PARAMS"
    ));
    assert_eq!(
        p.create(&Secret::new("forged"), &panel_body(1.0)).await,
        PanelOutcome::TokenRefused
    );
    // An error body with HTTP 200 is still a rejection.
    sim_post(&sim, "/sim/faults", json!({"errors_with_status_200": true})).await;
    sim_post(
        &sim,
        "/sim/funds",
        json!({"currency": "GBP", "amount": "0"}),
    )
    .await;
    assert!(matches!(
        p.create(&t, &panel_body(5.0)).await,
        PanelOutcome::Rejected { kind, .. } if kind == "INSUFFICIENT_FUNDS"
    ));
}

#[tokio::test]
async fn nothing_listening_is_not_sent() {
    let port = free_port();
    let p = panel(&format!("http://127.0.0.1:{port}"));
    assert!(matches!(
        p.create(&Secret::new("t"), &panel_body(1.0)).await,
        PanelOutcome::NotSent(_)
    ));
}

#[tokio::test]
async fn faults_after_sending_are_unknown() {
    let sim = panel_sim(&[]);
    let p = panel(&sim.url);
    let t = token(&p).await;
    // (fault, whether the panel processed the request before failing)
    for (fault, processed) in [
        (json!({"fail_next": 1}), false),
        // A 500 in the panel's error shape proves nothing either, before or after processing.
        (json!({"internal_error_before_next": 1}), false),
        (json!({"internal_error_after_next": 1}), true),
        (json!({"drop_before_next": 1}), false),
        (json!({"drop_after_next": 1}), true),
        (json!({"garbage_next": 1}), true),
        (json!({"latency_ms": 1500}), true),
    ] {
        let before = payouts(&sim_state(&sim).await).len();
        sim_post(&sim, "/sim/faults", fault.clone()).await;
        let out = p.create(&t, &panel_body(1.0)).await;
        assert!(matches!(out, PanelOutcome::Unknown(_)), "{fault}: {out:?}");
        if fault.get("latency_ms").is_some() {
            // The slow answer is still being processed when the client gives up.
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        client()
            .delete(format!("{}/sim/faults", sim.url))
            .send()
            .await
            .unwrap();
        let after = payouts(&sim_state(&sim).await).len();
        assert_eq!(after - before, usize::from(processed), "{fault}");
    }
}

#[tokio::test]
async fn expired_token_is_refreshed_and_a_revoked_one_costs_one_authenticate() {
    let sim = panel_sim(&["--token-ttl-secs", "2"]);
    let b = start_bridge(
        &sim.url,
        "sim-password",
        TEST_ROUTES,
        &[("BRIDGE_TOKEN_REFRESH_MARGIN_SECS", "0")],
    )
    .await;
    for i in 0..3 {
        let r = post_hook(&b.url, "payouts", &create_body(&format!("t-{i}"), "1.00")).await;
        assert_eq!(r.status(), 201);
    }
    assert_eq!(
        counter(&sim_state(&sim).await, "authenticate"),
        1,
        "one token for three creates"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = post_hook(&b.url, "payouts", &create_body("t-after-expiry", "1.00")).await;
    assert_eq!(r.status(), 201);
    let state = sim_state(&sim).await;
    assert_eq!(counter(&state, "authenticate"), 2, "{state}");
    assert_eq!(
        counter(&state, "tokenRejected"),
        0,
        "expiry was seen before the panel refused it"
    );

    sim_post(&sim, "/sim/revoke-tokens", json!({})).await;
    let r = post_hook(&b.url, "payouts", &create_body("t-after-revoke", "1.00")).await;
    assert_eq!(r.status(), 201);
    let state = sim_state(&sim).await;
    assert_eq!(
        counter(&state, "authenticate"),
        3,
        "exactly one re-authentication: {state}"
    );
    assert_eq!(counter(&state, "tokenRejected"), 1, "{state}");
    assert_eq!(payouts(&state).len(), 5);
}
