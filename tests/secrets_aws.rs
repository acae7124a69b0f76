//! Secrets through the real AWS SDK against Secrets Manager on the moto emulator.
//! Needs `AWS_ENDPOINT_URL` (run `scripts/test.sh`); without it the tests fail, never skip.

mod common;

use payout_bridge::ports::{SecretSource, StoreError};
use payout_bridge::secrets::{
    panel_password_from_secret_string, EnvSecrets, SecretResolver, SecretsManagerSecrets,
};

struct Fixture {
    client: aws_sdk_secretsmanager::Client,
    resolver: SecretResolver,
}

async fn fixture() -> Fixture {
    let conf = common::emulator_config().await;
    Fixture {
        client: aws_sdk_secretsmanager::Client::new(&conf),
        resolver: SecretResolver::with_aws(&conf),
    }
}

/// Creates a secret with a unique name; answers (name, ARN).
async fn create(f: &Fixture, prefix: &str, value: &str) -> (String, String) {
    let name = format!("payout-bridge/{prefix}-{}", common::unique());
    let out = f
        .client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("CreateSecret");
    let arn = out.arn().expect("ARN").to_string();
    (name, arn)
}

#[tokio::test]
async fn reads_plain_and_json_secrets() {
    let f = fixture().await;
    let (plain, plain_arn) = create(&f, "plain", "pw-plain").await;
    let (api_key, _) = create(&f, "apikey", r#"{"apiKey":"key-123","user":"bridge"}"#).await;
    let (password, _) = create(&f, "password", r#"{"password":"pw-json"}"#).await;

    let raw = f
        .resolver
        .fetch(&format!("secretsmanager:{plain}"))
        .await
        .unwrap();
    assert_eq!(raw.expose(), "pw-plain");
    assert_eq!(
        panel_password_from_secret_string(raw.expose()).expose(),
        "pw-plain"
    );
    // By ARN as well.
    let raw = f
        .resolver
        .fetch(&format!("secretsmanager:{plain_arn}"))
        .await
        .unwrap();
    assert_eq!(raw.expose(), "pw-plain");

    let raw = f
        .resolver
        .fetch(&format!("secretsmanager:{api_key}"))
        .await
        .unwrap();
    assert_eq!(
        panel_password_from_secret_string(raw.expose()).expose(),
        "key-123"
    );
    let raw = f
        .resolver
        .fetch(&format!("secretsmanager:{password}"))
        .await
        .unwrap();
    assert_eq!(
        panel_password_from_secret_string(raw.expose()).expose(),
        "pw-json"
    );

    // `#jsonKey` picks one key's string.
    let user = f
        .resolver
        .fetch(&format!("secretsmanager:{api_key}#user"))
        .await
        .unwrap();
    assert_eq!(user.expose(), "bridge");
    // The adapter alone answers the same.
    let sm = SecretsManagerSecrets::new(f.client.clone());
    assert_eq!(
        sm.fetch(&format!("secretsmanager:{api_key}#apiKey"))
            .await
            .unwrap()
            .expose(),
        "key-123"
    );
}

#[tokio::test]
async fn rotation_is_seen_by_the_next_fetch() {
    let f = fixture().await;
    let (name, _) = create(&f, "rotate", r#"{"apiKey":"old"}"#).await;
    let reference = format!("secretsmanager:{name}#apiKey");
    assert_eq!(f.resolver.fetch(&reference).await.unwrap().expose(), "old");
    f.client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(r#"{"apiKey":"new"}"#)
        .send()
        .await
        .expect("PutSecretValue");
    assert_eq!(f.resolver.fetch(&reference).await.unwrap().expose(), "new");
}

#[tokio::test]
async fn missing_and_malformed_secrets() {
    let f = fixture().await;
    match f
        .resolver
        .fetch("secretsmanager:payout-bridge/does-not-exist")
        .await
    {
        Err(StoreError::NotFound(msg)) => assert!(msg.contains("does-not-exist"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let (plain, _) = create(&f, "notjson", "TOPSECRET-not-json").await;
    let err = f
        .resolver
        .fetch(&format!("secretsmanager:{plain}#apiKey"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("TOPSECRET"), "{err}");

    let (json, _) = create(&f, "json", r#"{"apiKey":"TOPSECRET","n":1}"#).await;
    let err = f
        .resolver
        .fetch(&format!("secretsmanager:{json}#other"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = f
        .resolver
        .fetch(&format!("secretsmanager:{json}#n"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("TOPSECRET"), "{err}");
}

#[tokio::test]
async fn resolver_dispatches_on_the_prefix() {
    let conf = common::emulator_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&conf);
    let resolver = SecretResolver::from_parts(
        EnvSecrets::from_vars([("PANEL_PASSWORD", "from-env")]),
        Some(SecretsManagerSecrets::new(client)),
    );
    assert_eq!(
        resolver.fetch("env:PANEL_PASSWORD").await.unwrap().expose(),
        "from-env"
    );
    assert!(matches!(
        resolver.fetch("env:NOPE").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        resolver.fetch("vault:x").await,
        Err(StoreError::Refused(_))
    ));

    let without = SecretResolver::from_parts(EnvSecrets::from_vars([("A", "1")]), None);
    match without.fetch("secretsmanager:anything").await {
        Err(StoreError::Refused(msg)) => assert!(msg.contains("needs AWS configuration"), "{msg}"),
        other => panic!("{other:?}"),
    }
}
