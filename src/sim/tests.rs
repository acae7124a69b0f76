//! End-to-end tests of the simulator over HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{parse_funds_entry, spawn, PaymentStatus, SimConfig, SimHandle, StateSnapshot};

struct Sim {
    handle: SimHandle,
    client: reqwest::Client,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

async fn start(config: SimConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let handle = spawn(config, listener).await.expect("spawn sim");
    Sim {
        handle,
        client: client(),
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal literal")
}

fn payment() -> Value {
    json!({
        "amount": 1,
        "currency": "GBP",
        "startDate": "2018-01-01 12:00:00",
        "endDate": "2018-01-02 00:00:00",
        "name": "Project name",
        "description": "Payment description",
        "userName": "tester",
        "phoneNumber": "123456789",
        "referenceId": 1,
        "firstName": "test",
        "lastName": "tester",
        "email": "test@test.test",
        "notification": true
    })
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

fn without(mut body: Value, field: &str) -> Value {
    if let Some(map) = body.as_object_mut() {
        map.remove(field);
    }
    body
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.handle.url(), path)
    }

    async fn send(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> reqwest::Result<(StatusCode, String)> {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.header("x-access-token", token);
        }
        let response = request.send().await?;
        let status = response.status();
        Ok((status, response.text().await?))
    }

    async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (StatusCode, Value) {
        let (status, text) = self.send(path, body, token).await.expect("request");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON body {text:?}: {e}"));
        (status, value)
    }

    async fn token(&self) -> String {
        self.token_with("demo-password").await
    }

    async fn token_with(&self, password: &str) -> String {
        let (status, body) = self
            .post("/api/authenticate", &json!({ "apiKey": password }), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().expect("token string").to_owned()
    }

    async fn create(&self, token: &str, body: &Value) -> (StatusCode, Value) {
        self.post("/api/payment/create", body, Some(token)).await
    }

    async fn cancel(&self, token: &str, ids: Value) -> (StatusCode, Value) {
        self.post("/api/payment/cancel", &json!({ "ids": ids }), Some(token))
            .await
    }

    async fn state(&self) -> StateSnapshot {
        self.client
            .get(self.url("/sim/state"))
            .send()
            .await
            .expect("GET /sim/state")
            .json()
            .await
            .expect("state JSON")
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("control request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.json().await.expect("control JSON")
    }

    async fn faults(&self, body: Value) -> Value {
        self.control("/sim/faults", body).await
    }
}

fn assert_error(status: StatusCode, body: &Value, expected_status: StatusCode, kind: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body["errors"], json!([]), "{body}");
}

fn assert_invalid(status: StatusCode, body: &Value) {
    assert_error(status, body, StatusCode::BAD_REQUEST, "INVALID_PARAMS");
}

const TOKEN_ERROR: &str =
    r#"{"error":{"message":"Failed to authenticate token.","type":"INVALID_PARAMS"},"errors":[]}"#;

// ----- authenticate --------------------------------------------------------

#[tokio::test]
async fn authenticate_issues_jwt_shaped_token() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    assert_eq!(header["alg"], "HS256");
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    let iat = payload["iat"].as_u64().expect("iat");
    let exp = payload["exp"].as_u64().expect("exp");
    assert_eq!(exp - iat, 86_400);
    assert!(payload["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert!(URL_SAFE_NO_PAD
        .decode(parts[2])
        .is_ok_and(|s| s.len() == 32));
    assert_ne!(sim.token().await, token, "tokens are unique");

    let state = sim.state().await;
    assert_eq!(state.active_tokens, 2);
    assert_eq!(state.counters.authenticate, 2);
    assert_eq!(state.counters.authenticate_failed, 0);
    assert_eq!(state.counters.tokens_issued, 2);
}

#[tokio::test]
async fn authenticate_rejects_bad_requests() {
    let sim = start(SimConfig::default()).await;
    for body in [
        json!({ "apiKey": "wrong" }),
        json!({}),
        json!({ "apiKey": "" }),
        json!({ "apiKey": null }),
        json!({ "apiKey": 1234 }),
        json!({ "apiKey": "demo-password", "extra": 1 }),
        json!(["demo-password"]),
    ] {
        let (status, response) = sim.post("/api/authenticate", &body, None).await;
        assert_invalid(status, &response);
    }
    // No JSON content type: the body is ignored, so apiKey is "empty".
    let response = sim
        .client
        .post(sim.url("/api/authenticate"))
        .body(r#"{"apiKey":"demo-password"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Malformed JSON.
    let response = sim
        .client
        .post(sim.url("/api/authenticate"))
        .header("content-type", "application/json")
        .body(r#"{"apiKey":"#)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["type"], "INVALID_PARAMS");

    let state = sim.state().await;
    assert_eq!(state.counters.authenticate, 9);
    assert_eq!(state.counters.authenticate_failed, 9);
    assert_eq!(state.active_tokens, 0);
}

// ----- create --------------------------------------------------------------

#[tokio::test]
async fn create_returns_documented_shape() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    let (status, body) = sim.create(&token, &payment()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let payments = body["payments"].as_array().expect("payments array");
    assert_eq!(payments.len(), 1);
    let p = payments[0].as_object().expect("payment object");
    let mut keys: Vec<&str> = p.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amount",
            "createdAt",
            "currency",
            "description",
            "endDate",
            "id",
            "notification",
            "projectId",
            "recipientId",
            "startDate",
            "status",
            "updatedAt"
        ]
    );
    assert_eq!(p["amount"], json!(1));
    assert_eq!(p["id"], json!(1));
    assert_eq!(p["currency"], "GBP");
    assert_eq!(p["startDate"], "2018-01-01T12:00:00.000Z");
    assert_eq!(p["endDate"], "2018-01-02T00:00:00.000Z");
    assert_eq!(p["description"], "Payment description");
    assert_eq!(p["notification"], json!(true));
    assert_eq!(p["status"], "READY");
    assert_eq!(p["recipientId"], json!(1));
    assert_eq!(p["projectId"], json!(1));
    let created = p["createdAt"].as_str().expect("createdAt");
    assert!(super::dates::parse_date(created).is_some());
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    assert_eq!(p["updatedAt"], p["createdAt"]);

    // Same project and recipient (by referenceId as a string) are reused;
    // a fractional amount comes back as a number.
    let second = json!({
        "amount": 12.34, "currency": "GBP",
        "startDate": "2018-01-01T12:00:00Z", "endDate": "Tue, 02 Jan 2018 00:00:00 +0000",
        "name": "Project name", "description": "d", "referenceId": "1", "notification": false
    });
    let (status, body) = sim.create(&token, &second).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = &body["payments"][0];
    assert_eq!(p["id"], json!(2));
    assert_eq!(p["amount"], json!(12.34));
    assert_eq!(p["recipientId"], json!(1));
    assert_eq!(p["projectId"], json!(1));
    assert_eq!(p["endDate"], "2018-01-02T00:00:00.000Z");

    // New project and new recipient get the next ids.
    let third = with(
        with(
            without(without(payment(), "userName"), "referenceId"),
            "name",
            json!("Other"),
        ),
        "phoneNumber",
        json!("555"),
    );
    let (_, body) = sim.create(&token, &third).await;
    assert_eq!(body["payments"][0]["projectId"], json!(2));
    assert_eq!(body["payments"][0]["recipientId"], json!(2));

    let state = sim.state().await;
    assert_eq!(state.payments.len(), 3);
    let first = &state.payments[0];
    assert_eq!(first.project_name, "Project name");
    assert_eq!(first.user_name.as_deref(), Some("tester"));
    assert_eq!(first.reference_id, Some(json!(1)));
    assert_eq!(first.email.as_deref(), Some("test@test.test"));
    assert_eq!(first.status, PaymentStatus::Ready);
    assert_eq!(state.payments[1].amount, dec("12.34"));
    assert_eq!(state.payments[1].reference_id, Some(json!("1")));
    assert_eq!(state.projects.len(), 2);
    assert_eq!(state.recipients.len(), 2);
    assert_eq!(state.funds["GBP"], "999985.66");
    assert_eq!(state.counters.create, 3);
    assert_eq!(state.counters.create_accepted, 3);

    // Field order as in the document's example.
    let (_, text) = sim
        .send("/api/payment/create", &payment(), Some(&token))
        .await
        .expect("request");
    let order = [
        "{\"payments\":[{\"amount\":1,",
        "\"id\":4,",
        "\"currency\":",
        "\"startDate\":",
        "\"endDate\":",
        "\"description\":",
        "\"notification\":",
        "\"status\":",
        "\"recipientId\":",
        "\"projectId\":",
        "\"updatedAt\":",
        "\"createdAt\":",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|key| {
            text.find(key)
                .unwrap_or_else(|| panic!("{key} missing in {text}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[tokio::test]
async fn create_validation_rules() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    let cases: Vec<(&str, Value)> = vec![
        ("unknown field", with(payment(), "externalId", json!("x"))),
        (
            "unknown field null",
            with(payment(), "idempotencyKey", Value::Null),
        ),
        ("amount missing", without(payment(), "amount")),
        ("amount null", with(payment(), "amount", Value::Null)),
        ("amount string", with(payment(), "amount", json!("1.00"))),
        ("amount zero", with(payment(), "amount", json!(0))),
        ("amount negative", with(payment(), "amount", json!(-5.5))),
        ("amount huge", with(payment(), "amount", json!(1e40))),
        ("currency missing", without(payment(), "currency")),
        ("currency empty", with(payment(), "currency", json!(""))),
        ("currency long", with(payment(), "currency", json!("GBPX"))),
        ("currency lower", with(payment(), "currency", json!("gbp"))),
        ("currency digits", with(payment(), "currency", json!("826"))),
        ("currency number", with(payment(), "currency", json!(826))),
        ("startDate missing", without(payment(), "startDate")),
        (
            "startDate garbage",
            with(payment(), "startDate", json!("yesterday")),
        ),
        (
            "startDate number",
            with(payment(), "startDate", json!(1_514_808_000)),
        ),
        ("endDate missing", without(payment(), "endDate")),
        (
            "endDate invalid",
            with(payment(), "endDate", json!("2018-02-30 00:00:00")),
        ),
        (
            "end before start",
            with(payment(), "endDate", json!("2018-01-01 11:59:59")),
        ),
        (
            "end equals start",
            with(payment(), "endDate", json!("2018-01-01T12:00:00Z")),
        ),
        ("name missing", without(payment(), "name")),
        ("name empty", with(payment(), "name", json!(""))),
        ("name blank", with(payment(), "name", json!("   "))),
        ("name number", with(payment(), "name", json!(5))),
        ("description missing", without(payment(), "description")),
        (
            "description empty",
            with(payment(), "description", json!("")),
        ),
        (
            "no recipient identifier",
            without(
                without(without(payment(), "userName"), "phoneNumber"),
                "referenceId",
            ),
        ),
        (
            "empty recipient identifiers",
            with(
                with(
                    with(payment(), "userName", json!("")),
                    "phoneNumber",
                    Value::Null,
                ),
                "referenceId",
                json!(""),
            ),
        ),
        ("userName number", with(payment(), "userName", json!(7))),
        (
            "phoneNumber number",
            with(payment(), "phoneNumber", json!(123_456_789)),
        ),
        (
            "referenceId bool",
            with(payment(), "referenceId", json!(true)),
        ),
        (
            "referenceId object",
            with(payment(), "referenceId", json!({ "id": 1 })),
        ),
        ("firstName number", with(payment(), "firstName", json!(1))),
        ("lastName array", with(payment(), "lastName", json!(["a"]))),
        ("email number", with(payment(), "email", json!(1))),
        ("notification missing", without(payment(), "notification")),
        (
            "notification string",
            with(payment(), "notification", json!("true")),
        ),
        (
            "notification number",
            with(payment(), "notification", json!(1)),
        ),
        ("body not an object", json!([payment()])),
    ];
    let count = cases.len() as u64;
    for (name, body) in cases {
        let (status, response) = sim.create(&token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {response}");
        assert_eq!(
            response["error"]["type"], "INVALID_PARAMS",
            "{name}: {response}"
        );
        assert_eq!(response["errors"], json!([]), "{name}");
    }
    // Accepted variants: optional fields absent or null, one identifier only.
    let minimal = without(
        without(
            without(
                without(without(payment(), "firstName"), "lastName"),
                "email",
            ),
            "userName",
        ),
        "phoneNumber",
    );
    let (status, body) = sim.create(&token, &minimal).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let nulls = with(
        with(payment(), "email", Value::Null),
        "firstName",
        Value::Null,
    );
    let (status, body) = sim.create(&token, &nulls).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let state = sim.state().await;
    assert_eq!(state.payments.len(), 2);
    assert_eq!(state.funds["GBP"], "999998");
    assert_eq!(state.counters.create, count + 2);
    assert_eq!(state.counters.create_rejected, count);
    assert_eq!(state.counters.create_accepted, 2);
}

#[tokio::test]
async fn unknown_field_message_names_the_field() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    let (status, body) = sim
        .create(&token, &with(payment(), "sourceEventId", json!("evt_1")))
        .await;
    assert_invalid(status, &body);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("sourceEventId"), "{message}");
    assert!(sim.state().await.payments.is_empty());
}

// ----- funds ---------------------------------------------------------------

#[tokio::test]
async fn funds_blocked_and_released_exactly() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    // 0.1 + 0.2 would not be 0.3 in f64.
    for amount in [json!(0.1), json!(0.2)] {
        let (status, body) = sim.create(&token, &with(payment(), "amount", amount)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let state = sim.state().await;
    assert_eq!(dec(&state.funds["GBP"]), dec("999999.7"));
    assert_eq!(state.funds["EUR"], "1000000");

    let (status, body) = sim.cancel(&token, json!([1])).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "success": 1 })));
    assert_eq!(dec(&sim.state().await.funds["GBP"]), dec("999999.8"));
    sim.cancel(&token, json!([2])).await;
    assert_eq!(dec(&sim.state().await.funds["GBP"]), dec("1000000"));
}

#[tokio::test]
async fn insufficient_funds() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    let set = sim
        .control(
            "/sim/funds",
            json!({ "currency": "GBP", "amount": "50.00" }),
        )
        .await;
    assert_eq!(set["available"], "50.00");

    let (status, body) = sim
        .create(&token, &with(payment(), "amount", json!(50.01)))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "INSUFFICIENT_FUNDS",
    );
    // A currency without funds.
    let (status, body) = sim
        .create(&token, &with(payment(), "currency", json!("JPY")))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "INSUFFICIENT_FUNDS",
    );

    let (status, body) = sim
        .create(&token, &with(payment(), "amount", json!(50)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sim
        .create(&token, &with(payment(), "amount", json!(0.01)))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "INSUFFICIENT_FUNDS",
    );

    let state = sim.state().await;
    assert_eq!(dec(&state.funds["GBP"]), Decimal::ZERO);
    assert_eq!(state.payments.len(), 1);
    assert_eq!(state.counters.insufficient_funds, 3);
    assert_eq!(state.counters.create_rejected, 3);

    // Cancelling releases the funds again.
    sim.cancel(&token, json!([1])).await;
    let (status, _) = sim
        .create(&token, &with(payment(), "amount", json!(20)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dec(&sim.state().await.funds["GBP"]), dec("30"));
}

#[tokio::test]
async fn authorization_threshold_gives_unauthorized_status() {
    let sim = start(SimConfig {
        authorization_threshold: Some(dec("100")),
        ..SimConfig::default()
    })
    .await;
    let token = sim.token().await;
    let (_, body) = sim
        .create(&token, &with(payment(), "amount", json!(100)))
        .await;
    assert_eq!(body["payments"][0]["status"], "READY");
    let (_, body) = sim
        .create(&token, &with(payment(), "amount", json!(100.01)))
        .await;
    assert_eq!(body["payments"][0]["status"], "UNAUTHORIZED");
    let state = sim.state().await;
    assert_eq!(state.payments[1].status, PaymentStatus::Unauthorized);
    assert_eq!(dec(&state.funds["GBP"]), dec("999799.99"));
}

// ----- cancel --------------------------------------------------------------

#[tokio::test]
async fn cancel_counts_only_payouts_cancelled_now() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    for _ in 0..3 {
        sim.create(&token, &payment()).await;
    }
    assert_eq!(
        sim.cancel(&token, json!([1, 2, 99])).await.1,
        json!({ "success": 2 })
    );
    assert_eq!(
        sim.cancel(&token, json!([1, 2])).await.1,
        json!({ "success": 0 })
    );
    assert_eq!(
        sim.cancel(&token, json!([3, 3, -1])).await.1,
        json!({ "success": 1 })
    );

    for ids in [
        json!([]),
        json!(["1"]),
        json!([1.5]),
        json!(1),
        json!(null),
        json!([null]),
    ] {
        let (status, body) = sim.cancel(&token, ids.clone()).await;
        assert_invalid(status, &body);
    }
    let (status, body) = sim
        .post("/api/payment/cancel", &json!({}), Some(&token))
        .await;
    assert_invalid(status, &body);
    let (status, body) = sim
        .post(
            "/api/payment/cancel",
            &json!({ "ids": [1], "reason": "x" }),
            Some(&token),
        )
        .await;
    assert_invalid(status, &body);

    let state = sim.state().await;
    assert!(state
        .payments
        .iter()
        .all(|p| p.status == PaymentStatus::Cancelled));
    assert!(state.payments.iter().all(|p| p.updated_at >= p.created_at));
    assert_eq!(state.funds["GBP"], "1000000");
    assert_eq!(state.counters.cancel, 11);
    assert_eq!(state.counters.cancel_rejected, 8);
    assert_eq!(state.counters.cancelled_payments, 3);
}

// ----- tokens --------------------------------------------------------------

#[tokio::test]
async fn missing_or_unknown_token_is_401() {
    let sim = start(SimConfig::default()).await;
    for token in [None, Some(""), Some("abc.def.ghi")] {
        let (status, text) = sim
            .send("/api/payment/create", &payment(), token)
            .await
            .expect("request");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(text, TOKEN_ERROR);
        let (status, text) = sim
            .send("/api/payment/cancel", &json!({ "ids": [1] }), token)
            .await
            .expect("request");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(text, TOKEN_ERROR);
    }
    // A token from another simulator instance is unknown here.
    let other = start(SimConfig::default()).await;
    let foreign = other.token().await;
    let (status, _) = sim
        .send("/api/payment/create", &payment(), Some(&foreign))
        .await
        .expect("request");
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let state = sim.state().await;
    assert_eq!(state.counters.token_rejected, 7);
    assert!(state.payments.is_empty());
}

#[tokio::test]
async fn token_expires_after_ttl() {
    let sim = start(SimConfig {
        token_ttl_secs: 1,
        ..SimConfig::default()
    })
    .await;
    let token = sim.token().await;
    let (status, _) = sim.create(&token, &payment()).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, text) = sim
        .send("/api/payment/create", &payment(), Some(&token))
        .await
        .expect("request");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(text, TOKEN_ERROR);
    assert_eq!(sim.state().await.active_tokens, 0);
    let fresh = sim.token().await;
    assert_eq!(sim.create(&fresh, &payment()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn revoked_tokens_are_rejected() {
    let sim = start(SimConfig::default()).await;
    let first = sim.token().await;
    let second = sim.token().await;
    let revoked = sim.control("/sim/revoke-tokens", json!({})).await;
    assert_eq!(revoked, json!({ "revoked": 2 }));
    for token in [&first, &second] {
        let (status, text) = sim
            .send("/api/payment/cancel", &json!({ "ids": [1] }), Some(token))
            .await
            .expect("request");
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::UNAUTHORIZED, TOKEN_ERROR)
        );
    }
    assert_eq!(sim.state().await.active_tokens, 0);
    let fresh = sim.token().await;
    assert_eq!(sim.create(&fresh, &payment()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn password_change() {
    let sim = start(SimConfig {
        password: "initial".to_owned(),
        ..SimConfig::default()
    })
    .await;
    let old_token = sim.token_with("initial").await;
    sim.control("/sim/password", json!({ "password": "rotated" }))
        .await;
    let (status, body) = sim
        .post("/api/authenticate", &json!({ "apiKey": "initial" }), None)
        .await;
    assert_invalid(status, &body);
    sim.token_with("rotated").await;
    // Tokens issued before the change stay valid until revoked or expired.
    assert_eq!(sim.create(&old_token, &payment()).await.0, StatusCode::OK);
}

// ----- faults --------------------------------------------------------------

#[tokio::test]
async fn fault_fail_next_answers_500_html_without_processing() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    let faults = sim.faults(json!({ "fail_next": 2 })).await;
    assert_eq!(faults["fail_next"], 2);
    for _ in 0..2 {
        let response = sim
            .client
            .post(sim.url("/api/payment/create"))
            .header("x-access-token", &token)
            .json(&payment())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert!(content_type.starts_with("text/html"), "{content_type}");
        let text = response.text().await.expect("body");
        assert!(text.contains("<html>"));
        assert!(serde_json::from_str::<Value>(&text).is_err());
    }
    assert_eq!(sim.create(&token, &payment()).await.0, StatusCode::OK);
    let state = sim.state().await;
    assert_eq!(state.payments.len(), 1);
    assert_eq!(state.counters.failed, 2);
    assert_eq!(state.counters.create, 3, "received, faulted ones included");
    assert_eq!(state.counters.create_accepted, 1);
    assert_eq!(state.faults.fail_next, 0);
}

#[tokio::test]
async fn fault_drop_before_closes_connection_without_processing() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    sim.faults(json!({ "drop_before_next": 1 })).await;
    let started = Instant::now();
    let result = sim
        .send("/api/payment/create", &payment(), Some(&token))
        .await;
    let err = result.expect_err("connection must be dropped");
    assert!(err.is_request(), "{err:?}");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let state = sim.state().await;
    assert!(state.payments.is_empty());
    assert_eq!(state.funds["GBP"], "1000000");
    assert_eq!(state.counters.dropped, 1);
    assert_eq!(state.counters.dropped_before, 1);
    assert_eq!(state.counters.create, 1, "received, though not processed");
    assert_eq!(state.counters.create_accepted, 0);
    // The next request (new connection) works.
    assert_eq!(sim.create(&token, &payment()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn fault_drop_after_processes_then_closes_connection() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    sim.faults(json!({ "drop_after_next": 1 })).await;
    let err = sim
        .send(
            "/api/payment/create",
            &with(payment(), "amount", json!(10)),
            Some(&token),
        )
        .await
        .expect_err("connection must be dropped");
    assert!(!err.is_timeout(), "{err:?}");
    let state = sim.state().await;
    assert_eq!(state.payments.len(), 1);
    assert_eq!(state.payments[0].status, PaymentStatus::Ready);
    assert_eq!(state.funds["GBP"], "999990");
    assert_eq!(state.counters.dropped_after, 1);
    assert_eq!(state.counters.create_accepted, 1);
    // Works on authenticate too: a token is issued but never delivered.
    sim.faults(json!({ "drop_after_next": 1 })).await;
    assert!(sim
        .send(
            "/api/authenticate",
            &json!({ "apiKey": "demo-password" }),
            None
        )
        .await
        .is_err());
    assert_eq!(sim.state().await.active_tokens, 2);
}

#[tokio::test]
async fn fault_garbage_answers_non_json_after_processing() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    sim.faults(json!({ "garbage_next": 1 })).await;
    let (status, text) = sim
        .send("/api/payment/create", &payment(), Some(&token))
        .await
        .expect("request");
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    let state = sim.state().await;
    assert_eq!(state.payments.len(), 1);
    assert_eq!(state.counters.garbage, 1);
    assert_eq!(
        sim.create(&token, &payment()).await.1["payments"][0]["id"],
        2
    );
}

const INTERNAL_ERROR: &str =
    r#"{"error":{"message":"Internal server error","type":"INTERNAL_ERROR"},"errors":[]}"#;

#[tokio::test]
async fn fault_internal_error_before_answers_500_in_the_error_shape_without_processing() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    // errors_with_status_200 does not turn a server failure into a 200.
    let faults = sim
        .faults(json!({ "internal_error_before_next": 2, "errors_with_status_200": true }))
        .await;
    assert_eq!(faults["internal_error_before_next"], 2);
    for _ in 0..2 {
        let response = sim
            .client
            .post(sim.url("/api/payment/create"))
            .header("x-access-token", &token)
            .json(&payment())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        assert_eq!(response.text().await.expect("body"), INTERNAL_ERROR);
    }
    let state = sim.state().await;
    assert!(state.payments.is_empty(), "not processed");
    assert_eq!(state.funds["GBP"], "1000000");
    assert_eq!(state.counters.internal_errors, 2);
    assert_eq!(state.counters.internal_errors_before, 2);
    assert_eq!(state.counters.internal_errors_after, 0);
    assert_eq!(state.counters.create, 2, "received, though not processed");
    assert_eq!(state.counters.create_accepted, 0);
    assert_eq!(state.faults.internal_error_before_next, 0);
    // The next request is served normally.
    assert_eq!(sim.create(&token, &payment()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn fault_internal_error_after_processes_then_answers_500_in_the_error_shape() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    sim.faults(json!({ "internal_error_after_next": 1 })).await;
    let (status, text) = sim
        .send(
            "/api/payment/create",
            &with(payment(), "amount", json!(10)),
            Some(&token),
        )
        .await
        .expect("request");
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
    );
    let state = sim.state().await;
    assert_eq!(state.payments.len(), 1, "the payout was made");
    assert_eq!(state.payments[0].status, PaymentStatus::Ready);
    assert_eq!(state.funds["GBP"], "999990");
    assert_eq!(state.counters.create_accepted, 1);
    assert_eq!(state.counters.internal_errors, 1);
    assert_eq!(state.counters.internal_errors_after, 1);
    assert_eq!(state.counters.internal_errors_before, 0);
    assert_eq!(state.faults.internal_error_after_next, 0);
    // The next one is answered normally: the first payout kept id 1.
    assert_eq!(
        sim.create(&token, &payment()).await.1["payments"][0]["id"],
        2
    );
    // A drop_after set as well applies first (the documented order), the 500 next.
    sim.faults(json!({ "drop_after_next": 1, "internal_error_after_next": 1 }))
        .await;
    assert!(sim
        .send("/api/payment/create", &payment(), Some(&token))
        .await
        .is_err());
    assert_eq!(
        sim.send("/api/payment/create", &payment(), Some(&token))
            .await
            .expect("request")
            .0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(sim.state().await.payments.len(), 4);
}

#[tokio::test]
async fn fault_latency_delays_every_api_call() {
    let sim = start(SimConfig::default()).await;
    sim.faults(json!({ "latency_ms": 300, "only_path": "/api/payment/cancel" }))
        .await;
    let started = Instant::now();
    let token = sim.token().await; // latency ignores only_path
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Control endpoints are not delayed.
    let started = Instant::now();
    sim.state().await;
    assert!(started.elapsed() < Duration::from_millis(300));
    // A client timeout shorter than the latency fires.
    let response = sim
        .client
        .post(sim.url("/api/payment/create"))
        .header("x-access-token", &token)
        .json(&payment())
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(response.is_err_and(|e| e.is_timeout()));
    // The panel still processes the request the client gave up on.
    assert!(sim.state().await.payments.is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sim.state().await.payments.len(), 1);
}

#[tokio::test]
async fn fault_reject_next_injects_api_errors_without_processing() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    let faults = sim
        .faults(json!({ "reject_next": 1, "reject_type": "INSUFFICIENT_FUNDS" }))
        .await;
    assert_eq!(faults["reject_type"], "INSUFFICIENT_FUNDS");
    let (status, body) = sim.create(&token, &payment()).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "INSUFFICIENT_FUNDS",
    );

    sim.faults(json!({ "reject_next": 1, "reject_type": "INVALID_PARAMS", "errors_with_status_200": true }))
        .await;
    let (status, body) = sim.cancel(&token, json!([1])).await;
    assert_error(status, &body, StatusCode::OK, "INVALID_PARAMS");
    assert_eq!(sim.create(&token, &payment()).await.0, StatusCode::OK);

    let state = sim.state().await;
    assert_eq!(state.payments.len(), 1);
    assert_eq!(state.funds["GBP"], "999999");
    assert_eq!(state.counters.rejected, 2);
    assert_eq!(state.counters.create_rejected, 0);

    let response = sim
        .client
        .post(sim.url("/sim/faults"))
        .json(&json!({ "reject_type": "TEAPOT" }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn fault_errors_with_status_200() {
    let sim = start(SimConfig::default()).await;
    sim.faults(json!({ "errors_with_status_200": true })).await;
    let (status, body) = sim
        .post("/api/authenticate", &json!({ "apiKey": "nope" }), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"]["type"], "INVALID_PARAMS");
    let (status, text) = sim
        .send("/api/payment/create", &payment(), Some("nope"))
        .await
        .expect("request");
    assert_eq!((status, text.as_str()), (StatusCode::OK, TOKEN_ERROR));
    sim.control("/sim/funds", json!({ "currency": "GBP", "amount": 0 }))
        .await;
    let token = sim.token().await;
    let (status, body) = sim.create(&token, &payment()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"]["type"], "INSUFFICIENT_FUNDS");

    // DELETE /sim/faults restores the configured default (false).
    let cleared: Value = sim
        .client
        .delete(sim.url("/sim/faults"))
        .send()
        .await
        .expect("DELETE")
        .json()
        .await
        .expect("json");
    assert_eq!(cleared["errors_with_status_200"], false);
    assert_eq!(
        sim.create(&token, &payment()).await.0,
        StatusCode::PAYMENT_REQUIRED
    );

    // As a configuration option.
    let sim = start(SimConfig {
        errors_with_status_200: true,
        ..SimConfig::default()
    })
    .await;
    let (status, body) = sim.post("/api/authenticate", &json!({}), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"]["type"], "INVALID_PARAMS");
}

#[tokio::test]
async fn fault_only_path_limits_counted_faults() {
    let sim = start(SimConfig::default()).await;
    sim.faults(
        json!({ "fail_next": 1, "drop_before_next": 1, "only_path": "/api/payment/create" }),
    )
    .await;
    // authenticate and cancel are unaffected and do not consume the faults.
    let token = sim.token().await;
    assert_eq!(sim.cancel(&token, json!([1])).await.0, StatusCode::OK);
    // First create: drop_before (higher priority), then fail, then OK.
    assert!(sim
        .send("/api/payment/create", &payment(), Some(&token))
        .await
        .is_err());
    let (status, _) = sim
        .send("/api/payment/create", &payment(), Some(&token))
        .await
        .expect("request");
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(sim.create(&token, &payment()).await.0, StatusCode::OK);
    let state = sim.state().await;
    assert_eq!(state.payments.len(), 1);
    assert_eq!(
        state.faults.only_path.as_deref(),
        Some("/api/payment/create")
    );
    // only_path: null clears the filter.
    let faults = sim
        .faults(json!({ "only_path": null, "fail_next": 1 }))
        .await;
    assert_eq!(faults["only_path"], Value::Null);
    let (status, _) = sim
        .send(
            "/api/authenticate",
            &json!({ "apiKey": "demo-password" }),
            None,
        )
        .await
        .expect("request");
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn sim_controls_validate_and_reset() {
    let sim = start(SimConfig::default()).await;
    for (path, body) in [
        ("/sim/faults", json!({ "fail_nxt": 1 })),
        ("/sim/faults", json!({ "fail_next": -1 })),
        ("/sim/funds", json!({ "currency": "gbp", "amount": "1" })),
        ("/sim/funds", json!({ "currency": "GBP", "amount": "-1" })),
        ("/sim/funds", json!({ "currency": "GBP", "amount": "abc" })),
        ("/sim/password", json!({})),
    ] {
        let response = sim
            .client
            .post(sim.url(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {body}");
    }
    let token = sim.token().await;
    sim.create(&token, &payment()).await;
    sim.control("/sim/password", json!({ "password": "x" }))
        .await;
    sim.control("/sim/funds", json!({ "currency": "CHF", "amount": "5" }))
        .await;
    sim.faults(json!({ "fail_next": 3, "latency_ms": 1 })).await;
    let health: Value = sim
        .client
        .get(sim.url("/sim/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health, json!({ "ok": true }));

    sim.control("/sim/reset", json!({})).await;
    let state = sim.state().await;
    assert!(state.payments.is_empty() && state.projects.is_empty() && state.recipients.is_empty());
    assert_eq!(state.counters, super::Counters::default());
    assert_eq!(state.faults, super::Faults::default());
    assert_eq!(state.funds.len(), 4);
    assert_eq!(state.funds["GBP"], "1000000");
    assert_eq!(state.active_tokens, 1, "tokens survive a reset");
    // Password is back to the configured one; ids start again at 1.
    sim.token().await;
    assert_eq!(
        sim.create(&token, &payment()).await.1["payments"][0]["id"],
        1
    );
    // In-process snapshot matches /sim/state.
    assert_eq!(sim.handle.snapshot(), sim.state().await);
}

#[tokio::test]
async fn unknown_api_route_and_method() {
    let sim = start(SimConfig::default()).await;
    let (status, body) = sim.post("/api/payment/list", &json!({}), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "INVALID_PARAMS");
    let response = sim
        .client
        .get(sim.url("/api/authenticate"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn keep_alive_and_shutdown() {
    let sim = start(SimConfig::default()).await;
    let token = sim.token().await;
    for _ in 0..5 {
        assert_eq!(sim.create(&token, &payment()).await.0, StatusCode::OK);
    }
    let url = sim.handle.url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    sim.handle.shutdown_and_wait().await;
    let result = client().get(format!("{url}/sim/health")).send().await;
    assert!(result.is_err(), "server still answering after shutdown");
}

// ----- config helpers ------------------------------------------------------

#[test]
fn default_config() {
    let config = SimConfig::default();
    assert_eq!(config.password, "demo-password");
    assert_eq!(config.token_ttl_secs, 86_400);
    let currencies: Vec<&str> = config.funds.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(currencies, ["GBP", "EUR", "USD", "PLN"]);
    assert!(config
        .funds
        .iter()
        .all(|(_, a)| *a == Decimal::from(1_000_000)));
    assert_eq!(config.authorization_threshold, None);
    assert!(!config.errors_with_status_200);
}

#[test]
fn funds_entries() {
    assert_eq!(
        parse_funds_entry("GBP=1000"),
        Ok(("GBP".to_owned(), dec("1000")))
    );
    assert_eq!(
        parse_funds_entry(" EUR = 50.5 "),
        Ok(("EUR".to_owned(), dec("50.5")))
    );
    assert!(parse_funds_entry("GBP").is_err());
    assert!(parse_funds_entry("gbp=1").is_err());
    assert!(parse_funds_entry("GBP=-1").is_err());
    assert!(parse_funds_entry("GBP=x").is_err());
}
