//! Exactly-once payouts and the shared panel token on DynamoDB and Secrets Manager (moto's
//! server, through the real AWS SDK), with payout-bridge and the panel simulator as processes.
//!
//! Needs `AWS_ENDPOINT_URL` pointing at moto: run `scripts/test.sh`.

mod common;

use common::*;
use serde_json::{json, Value};

async fn post_keyed(url: &str, route: &str, body: &Value, key: Option<&str>) -> (u16, Value, bool) {
    let mut req = client()
        .post(format!("{url}/hooks/{route}"))
        .header("x-api-key", TEST_KEY)
        .json(body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = req.send().await.expect("post");
    let status = resp.status().as_u16();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (status, resp.json().await.unwrap_or(Value::Null), replayed)
}

#[tokio::test]
async fn fifty_concurrent_deliveries_of_one_event_make_one_payout() {
    let sim = panel_sim(&[]);
    let aws = aws("sim-password").await;
    let routes = temp_file("routes.yaml", TEST_ROUTES);
    let b = bridge(&bridge_env(&sim.url, &aws, &routes, &[]));
    let mut body = create_body("", "42.00");
    body.as_object_mut().unwrap().remove("externalId");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (url, body) = (b.url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            post_keyed(&url, "payouts", &body, Some("evt-50")).await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let (status, v, _) = t.await.unwrap();
        assert!(status == 201 || status == 409, "{status} {v}");
        if status == 201 {
            created += 1;
            ids.insert(v["payments"][0]["id"].as_u64().unwrap());
        } else {
            assert_eq!(v["error"]["type"], "REQUEST_IN_PROGRESS");
        }
    }
    assert!(created >= 1);
    assert_eq!(ids.len(), 1, "every 201 names the same payout");
    let state = sim_state(&sim).await;
    assert_eq!(payouts(&state).len(), 1, "{state}");
    // A late redelivery replays the stored answer.
    let (status, v, replayed) = post_keyed(&b.url, "payouts", &body, Some("evt-50")).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(v["payments"][0]["id"].as_u64(), ids.first().copied());
    // Same key, different payout: refused.
    let mut other = body.clone();
    other["amount"] = json!("43.00");
    let (status, v, _) = post_keyed(&b.url, "payouts", &other, Some("evt-50")).await;
    assert_eq!(
        (status, v["error"]["type"].as_str()),
        (422, Some("IDEMPOTENCY_KEY_REUSED"))
    );
    assert_eq!(payouts(&sim_state(&sim).await).len(), 1);
}

#[tokio::test]
async fn distinct_events_each_sent_three_times_make_one_payout_each() {
    let sim = panel_sim(&[]);
    let aws = aws("sim-password").await;
    let routes = temp_file("routes.yaml", TEST_ROUTES);
    let b = bridge(&bridge_env(&sim.url, &aws, &routes, &[]));
    let mut tasks = Vec::new();
    for _round in 0..3 {
        for i in 0..20 {
            let url = b.url.clone();
            let mut body = create_body(&format!("evt-{i}"), "1.00");
            // The panel never sees externalIds; the description tells its payouts apart.
            body["description"] = json!(format!("event {i}"));
            tasks.push(tokio::spawn(async move {
                post_keyed(&url, "payouts", &body, None).await
            }));
        }
    }
    for t in tasks {
        let (status, v, _) = t.await.unwrap();
        assert!(status == 201 || status == 409, "{status} {v}");
    }
    let state = sim_state(&sim).await;
    let mut per_event = std::collections::BTreeMap::new();
    for p in payouts(&state) {
        *per_event
            .entry(p["description"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(per_event.len(), 20, "every event paid: {state}");
    assert!(
        per_event.values().all(|&n| n == 1),
        "none paid twice: {per_event:?}"
    );
}

#[tokio::test]
async fn a_cold_start_reuses_the_shared_token_and_a_revoked_token_costs_one_authenticate() {
    let sim = panel_sim(&[]);
    let aws = aws("sim-password").await;
    let routes = temp_file("routes.yaml", TEST_ROUTES);
    let first = bridge(&bridge_env(&sim.url, &aws, &routes, &[]));
    let (s, _, _) = post_keyed(&first.url, "payouts", &create_body("c-1", "1.00"), None).await;
    assert_eq!(s, 201);
    assert_eq!(counter(&sim_state(&sim).await, "authenticate"), 1);

    let second = bridge(&bridge_env(&sim.url, &aws, &routes, &[]));
    let (s, _, _) = post_keyed(&second.url, "payouts", &create_body("c-2", "1.00"), None).await;
    assert_eq!(s, 201);
    assert_eq!(
        counter(&sim_state(&sim).await, "authenticate"),
        1,
        "cold start read the token from DynamoDB"
    );

    sim_post(&sim, "/sim/revoke-tokens", json!({})).await;
    let (s, _, _) = post_keyed(&second.url, "payouts", &create_body("c-3", "1.00"), None).await;
    assert_eq!(s, 201);
    assert_eq!(counter(&sim_state(&sim).await, "authenticate"), 2);
    // The first instance still holds the revoked token: its 401 must not throw away the new
    // shared token, and it picks that one up instead of authenticating again.
    let (s, _, _) = post_keyed(&first.url, "payouts", &create_body("c-4", "1.00"), None).await;
    assert_eq!(s, 201);
    let state = sim_state(&sim).await;
    assert_eq!(counter(&state, "authenticate"), 2, "{state}");
    assert_eq!(payouts(&state).len(), 4);
}

#[tokio::test]
async fn a_rotated_password_is_picked_up_without_restart() {
    let sim = panel_sim(&[]);
    let aws = aws("sim-password").await;
    let routes = temp_file("routes.yaml", TEST_ROUTES);
    let b = bridge(&bridge_env(&sim.url, &aws, &routes, &[]));
    let (s, _, _) = post_keyed(&b.url, "payouts", &create_body("r-1", "1.00"), None).await;
    assert_eq!(s, 201);
    // Rotate: the panel takes a new password, the secret gets it, old tokens die.
    sim_post(
        &sim,
        "/sim/password",
        json!({"password": "rotated-password"}),
    )
    .await;
    aws.set_password("rotated-password").await;
    sim_post(&sim, "/sim/revoke-tokens", json!({})).await;
    let (s, v, _) = post_keyed(&b.url, "payouts", &create_body("r-2", "1.00"), None).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(payouts(&sim_state(&sim).await).len(), 2);
}

#[tokio::test]
async fn an_unknown_outcome_is_held_listed_and_resolved() {
    let sim = panel_sim(&[]);
    let aws = aws("sim-password").await;
    let routes = temp_file("routes.yaml", TEST_ROUTES);
    let env = bridge_env(&sim.url, &aws, &routes, &[]);
    let b = bridge(&env);
    let (s, _, _) = post_keyed(&b.url, "payouts", &create_body("warm", "1.00"), None).await;
    assert_eq!(s, 201);

    sim_post(
        &sim,
        "/sim/faults",
        json!({"drop_after_next": 1, "only_path": "/api/payment/create"}),
    )
    .await;
    let body = create_body("u-1", "7.00");
    let (s, v, _) = post_keyed(&b.url, "payouts", &body, None).await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (504, Some("PANEL_OUTCOME_UNKNOWN"))
    );
    let (s, _, _) = post_keyed(&b.url, "payouts", &body, None).await;
    assert_eq!(s, 504, "redelivery is not re-sent");
    let state = sim_state(&sim).await;
    assert_eq!(counter(&state, "create"), 2, "{state}");
    let payout_id = payouts(&state)
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .max()
        .unwrap();

    let (ok, out, err) = operator(&env, &["pending"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("ext:u-1"), "{out}");
    let (ok, out, err) = operator(
        &env,
        &[
            "resolve",
            "--route",
            "payouts",
            "--key",
            "ext:u-1",
            "--payout-id",
            &payout_id.to_string(),
        ],
    );
    assert!(ok, "{out}{err}");
    let (s, v, replayed) = post_keyed(&b.url, "payouts", &body, None).await;
    assert_eq!((s, replayed), (201, true), "{v}");
    assert_eq!(v["payments"][0]["id"].as_u64(), Some(payout_id));
    let (ok, out, err) = operator(&env, &["pending"]);
    assert!(ok && !out.contains("ext:u-1"), "{out}{err}");
    // And the resolved payout can be cancelled by its externalId.
    let (s, v, _) = post_keyed(&b.url, "cancel", &json!({"externalIds": ["u-1"]}), None).await;
    assert_eq!((s, v), (200, json!({"success": 1})));

    // The other way: the operator finds nothing at the panel; the next delivery creates it.
    sim_post(
        &sim,
        "/sim/faults",
        json!({"drop_before_next": 1, "only_path": "/api/payment/create"}),
    )
    .await;
    let body = create_body("u-2", "8.00");
    let (s, _, _) = post_keyed(&b.url, "payouts", &body, None).await;
    assert_eq!(s, 504);
    let (ok, out, err) = operator(
        &env,
        &[
            "resolve",
            "--route",
            "payouts",
            "--key",
            "ext:u-2",
            "--not-created",
        ],
    );
    assert!(ok, "{out}{err}");
    let (s, v, replayed) = post_keyed(&b.url, "payouts", &body, None).await;
    assert_eq!((s, replayed), (201, false), "{v}");
    assert_eq!(counter(&sim_state(&sim).await, "create"), 4);
}

#[tokio::test]
async fn cancel_by_external_ids_cancels_the_right_payouts_and_reports_unknown_ones() {
    let sim = panel_sim(&[]);
    let aws = aws("sim-password").await;
    let routes = temp_file("routes.yaml", TEST_ROUTES);
    let b = bridge(&bridge_env(&sim.url, &aws, &routes, &[]));
    let mut ids = Vec::new();
    for ext in ["x-a", "x-b", "x-c"] {
        let (s, v, _) = post_keyed(&b.url, "payouts", &create_body(ext, "2.00"), None).await;
        assert_eq!(s, 201);
        ids.push(v["payments"][0]["id"].as_u64().unwrap());
    }
    let (s, v, _) = post_keyed(
        &b.url,
        "cancel",
        &json!({"externalIds": ["x-a", "x-c", "nope"]}),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"success": 2, "unknownExternalIds": ["nope"]}));
    let state = sim_state(&sim).await;
    let status_of = |id: u64| {
        payouts(&state)
            .into_iter()
            .find(|p| p["id"].as_u64() == Some(id))
            .map(|p| p["status"].as_str().unwrap_or_default().to_string())
            .unwrap()
    };
    assert_eq!(status_of(ids[0]), "CANCELLED");
    assert_ne!(status_of(ids[1]), "CANCELLED");
    assert_eq!(status_of(ids[2]), "CANCELLED");
}

mod token_lease {
    use super::common::*;
    use payout_bridge::app::password::PasswordProvider;
    use payout_bridge::app::token::{TokenManager, TokenSettings};
    use payout_bridge::ports::{SystemClock, TokenStore};
    use payout_bridge::store::dynamodb::DynamoTokenStore;
    use std::sync::Arc;
    use std::time::Duration;

    async fn instance(
        sim: &Proc,
        store: Arc<dyn TokenStore>,
        settings: TokenSettings,
    ) -> Arc<TokenManager> {
        let secrets = MapSecrets::of(&[("test:pw", SIM_PASSWORD)]);
        Arc::new(TokenManager::new(
            panel_client(&sim.url),
            store,
            PasswordProvider::new(secrets, "test:pw"),
            Arc::new(SystemClock),
            settings,
        ))
    }

    async fn dynamo_tokens() -> Arc<dyn TokenStore> {
        let aws = aws("unused").await;
        Arc::new(DynamoTokenStore::new(aws.ddb, aws.table))
    }

    #[tokio::test]
    async fn a_burst_of_cold_instances_authenticates_once() {
        let sim = panel_sim(&[]);
        let store = dynamo_tokens().await;
        let mut managers = Vec::new();
        for _ in 0..8 {
            managers.push(instance(&sim, store.clone(), TokenSettings::default()).await);
        }
        let tasks: Vec<_> = managers
            .iter()
            .cloned()
            .map(|m| tokio::spawn(async move { m.token().await.map(|t| t.expose().to_string()) }))
            .collect();
        let mut tokens = std::collections::BTreeSet::new();
        for t in tasks {
            tokens.insert(t.await.unwrap().expect("token"));
        }
        assert_eq!(tokens.len(), 1, "every instance uses the one token");
        assert_eq!(counter(&sim_state(&sim).await, "authenticate"), 1);
    }

    #[tokio::test]
    async fn a_dead_lease_holder_delays_but_does_not_block() {
        let sim = panel_sim(&[]);
        let store = dynamo_tokens().await;
        // Somebody took the lease and died.
        let now = chrono::Utc::now().timestamp();
        assert!(store.try_lease("dead-instance", now, 60).await.unwrap());
        let settings = TokenSettings {
            lease_wait: Duration::from_millis(400),
            ..TokenSettings::default()
        };
        let m = instance(&sim, store.clone(), settings).await;
        let started = std::time::Instant::now();
        m.token().await.expect("falls back to authenticating");
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert_eq!(counter(&sim_state(&sim).await, "authenticate"), 1);
        // And the token it got is shared with the next cold instance.
        let next = instance(&sim, store, TokenSettings::default()).await;
        next.token().await.unwrap();
        assert_eq!(counter(&sim_state(&sim).await, "authenticate"), 1);
    }
}

mod deployed_routes {
    use super::common::*;
    use async_trait::async_trait;
    use payout_bridge::config::routes::RoutesFile;
    use payout_bridge::ports::{Secret, SecretSource, StoreError};
    use payout_bridge::secrets::SecretResolver;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(SecretResolver, AtomicUsize);

    #[async_trait]
    impl SecretSource for Counting {
        async fn fetch(&self, reference: &str) -> Result<Secret, StoreError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.fetch(reference).await
        }
    }

    #[tokio::test]
    async fn the_embedded_routes_resolve_from_one_secret_read_once() {
        let sm = aws("unused").await.sm;
        // The secret infra/routes.yaml names; created once per emulator run.
        let value = serde_json::json!({
            "payroll": "whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh",
            "crm": "crm-secret", "form": "form-key", "payouts": "payouts-key",
        });
        let created = sm
            .create_secret()
            .name("payout-bridge/route-secrets")
            .secret_string(value.to_string())
            .send()
            .await;
        if created.is_err() {
            sm.put_secret_value()
                .secret_id("payout-bridge/route-secrets")
                .secret_string(value.to_string())
                .send()
                .await
                .expect("put secret");
        }
        let counting = Counting(SecretResolver::new(Some(sm)), AtomicUsize::new(0));
        let file = RoutesFile::parse(payout_bridge::service::EMBEDDED_ROUTES, "embedded").unwrap();
        let routes = payout_bridge::service::routes::build_routes(&file, &counting)
            .await
            .expect("every route's secret resolves");
        assert_eq!(routes.len(), file.routes.len());
        assert_eq!(
            counting.1.load(Ordering::SeqCst),
            1,
            "one GetSecretValue for six references"
        );
    }
}
