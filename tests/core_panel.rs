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

// ---- TLS: which panel certificates the client trusts ------------------------------------------
//
// The client trusts the CA roots compiled into the binary (webpki-roots), not the system store.
// There is no internet here, so "a panel with a certificate from a public CA verifies" is shown
// with real chains of public sites (tests/fixtures/tls/README.md), verified against the
// compiled-in roots exactly as the TLS handshake does, and end to end with a loopback TLS
// server: refused while its CA is unknown, accepted once that CA is added as an extra root.

mod tls {
    use super::*;
    use payout_bridge::panel::client::root_store;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::io::{Read, Write};
    use std::sync::Arc;

    fn fixture(name: &str) -> CertificateDer<'static> {
        let path = format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"));
        CertificateDer::from(std::fs::read(&path).expect(&path))
    }

    /// 2026-08-12 10:23 UTC: inside the validity of both fixture chains.
    fn fixture_time() -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(1_786_530_173))
    }

    fn verify(
        roots: rustls::RootCertStore,
        chain: &[CertificateDer<'static>],
        name: &str,
    ) -> Result<(), rustls::Error> {
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .expect("verifier");
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(name.to_string()).expect("name"),
                &[],
                fixture_time(),
            )
            .map(|_| ())
    }

    #[test]
    fn compiled_in_roots_verify_real_public_chains() {
        let le: Vec<_> = (1..=4)
            .map(|i| fixture(&format!("letsencrypt_org_valid_{i}.crt")))
            .collect();
        let aws: Vec<_> = (1..=3)
            .map(|i| fixture(&format!("aws_amazon_com_valid_{i}.crt")))
            .collect();
        verify(root_store(&[]).unwrap(), &le, "letsencrypt.org").expect("letsencrypt.org");
        verify(root_store(&[]).unwrap(), &aws, "aws.amazon.com").expect("aws.amazon.com");
        // the chain is checked against the name...
        assert!(verify(root_store(&[]).unwrap(), &aws, "panel.example.com").is_err());
        // ...and against the roots: trusting only a private CA, the same chain is refused
        let mut private_only = rustls::RootCertStore::empty();
        private_only.add(private_ca().0).unwrap();
        let err = verify(private_only, &le, "letsencrypt.org").unwrap_err();
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn compiled_in_roots_include_the_common_public_roots() {
        let roots = root_store(&[]).unwrap();
        assert!(roots.len() > 100, "{} roots", roots.len());
        for cn in [
            "ISRG Root X1",
            "ISRG Root X2",
            "Amazon Root CA 1",
            "DigiCert Global Root G2",
            "GTS Root R1",
        ] {
            assert!(
                roots.roots.iter().any(|a| a
                    .subject
                    .as_ref()
                    .windows(cn.len())
                    .any(|w| w == cn.as_bytes())),
                "{cn} is not among the compiled-in roots"
            );
        }
    }

    /// A CA of our own (unknown to everyone) and a certificate it signed for 127.0.0.1.
    fn private_ca() -> (CertificateDer<'static>, CertificateDer<'static>, Vec<u8>) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "payout-bridge test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "panel.test");
        let cert = params.signed_by(&key, &issuer).unwrap();
        (
            ca_cert.der().clone(),
            cert.der().clone(),
            key.serialize_der(),
        )
    }

    /// A loopback HTTPS server presenting `cert` that answers each request with a panel token;
    /// its URL. The thread ends with the test process.
    fn tls_panel(cert: CertificateDer<'static>, key: Vec<u8>) -> String {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key).into(),
        )
        .unwrap();
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let config = config.clone();
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    // read the request head and body (small), then answer
                    let mut buf = vec![0u8; 8192];
                    let mut got = Vec::new();
                    while let Ok(n) = tls.read(&mut buf) {
                        if n == 0 {
                            return; // handshake refused by the client, or closed
                        }
                        got.extend_from_slice(&buf[..n]);
                        if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                            break;
                        }
                    }
                    let body = r#"{"token":"tls-token"}"#;
                    let _ = write!(
                        tls,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.flush();
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        url
    }

    fn config(url: &str) -> PanelClientConfig {
        PanelClientConfig {
            base_url: url.to_string(),
            connect_timeout: Duration::from_millis(2000),
            request_timeout: Duration::from_millis(4000),
        }
    }

    #[tokio::test]
    async fn a_panel_whose_ca_is_unknown_is_refused_and_nothing_is_sent() {
        let (_ca, cert, key) = private_ca();
        let url = tls_panel(cert, key);
        let p = PanelClient::new(&config(&url)).unwrap();
        match p.authenticate(&Secret::new("pw")).await {
            PanelOutcome::NotSent(reason) => {
                assert!(reason.contains("UnknownIssuer"), "{reason}")
            }
            other => panic!("expected NotSent, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_panel_whose_ca_is_added_as_an_extra_root_is_trusted() {
        let (ca, cert, key) = private_ca();
        let url = tls_panel(cert, key);
        let p = PanelClient::with_extra_roots(&config(&url), &[ca]).unwrap();
        match p.authenticate(&Secret::new("pw")).await {
            PanelOutcome::Done(token) => assert_eq!(token.expose(), "tls-token"),
            other => panic!("expected the token, got {other:?}"),
        }
    }
}
