//! Signed notifications of a queued route's results: [`HttpNotifier`] posts each event as a
//! Standard Webhooks message (<https://www.standardwebhooks.com>): headers `webhook-id`,
//! `webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256>` of
//! `{id}.{timestamp}.{body}`, one entry per secret while rotating).

use crate::ports::{Notifier, NotifyTarget, Secret};
use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::Duration;

const SECRET_PREFIX: &str = "whsec_";

/// The key bytes of a `whsec_…` secret (base64 after the prefix), or why not.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    match engine.decode(b64) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err("is not a Standard Webhooks secret (whsec_ and base64)".into()),
    }
}

/// The `webhook-signature` header value for `body` under `id` at `timestamp`.
pub fn signature(secrets: &[Secret], id: &str, timestamp: i64, body: &str) -> String {
    let content = format!("{id}.{timestamp}.{body}");
    secrets
        .iter()
        .filter_map(|s| decode_secret(s.expose()).ok())
        .filter_map(|key| Hmac::<Sha256>::new_from_slice(&key).ok())
        .map(|mut mac| {
            mac.update(content.as_bytes());
            let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            format!("v1,{sig}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Posts events over HTTPS (or HTTP on loopback, for local runs), 10 s at most each.
pub struct HttpNotifier {
    client: reqwest::Client,
}

impl HttpNotifier {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("notify client: {e}"))?;
        Ok(HttpNotifier { client })
    }
}

#[async_trait]
impl Notifier for HttpNotifier {
    async fn notify(
        &self,
        target: &NotifyTarget,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> Result<(), String> {
        let resp = self
            .client
            .post(&target.url)
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature(&target.secrets, id, timestamp, body),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("notify: {}", crate::panel::error_chain(&e)))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("notify: the receiver answered {}", resp.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_specification() {
        // The example of the Standard Webhooks reference libraries.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&[secret], id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn one_signature_per_secret() {
        let a = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let b = Secret::new("whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh");
        let sig = signature(&[a, b], "msg_1", 1, "{}");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(decode_secret("whsec_!!").is_err());
    }
}
