//! Which key a delivery (or an item of a batch) is deduplicated under.
//!
//! In order of preference: the payout's own `externalId` ([`DeliveryKey::item_key`]); the signed
//! Standard Webhooks `webhook-id` header (standard-webhooks routes only); the sender's
//! `Idempotency-Key` header (api-key and none routes only); the SHA-256 of the raw body. Which
//! headers a route may use is its [`KeySources`], decided by its auth scheme: a header that the
//! request's signature does not cover never makes a request look new, so a captured signed
//! request replayed with a fresh `Idempotency-Key` is still the same delivery. Keys carry a
//! prefix naming their source, so that an `Idempotency-Key` can never collide with an
//! `externalId` of the same text.

use sha2::{Digest, Sha256};

/// Longest accepted `Idempotency-Key` / `webhook-id` header.
pub const MAX_HEADER_KEY_LEN: usize = 255;

/// Which request headers may name a delivery on a route. Every scheme falls back to the body's
/// hash when its headers are absent (or not allowed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeySources {
    /// The `webhook-id` header: only where the signature covers it (standard-webhooks).
    pub webhook_id: bool,
    /// The `Idempotency-Key` header: only where no signature is there to be bypassed
    /// (api-key, none). On a signed route a replayed request with a fresh key would otherwise
    /// look new and be paid again.
    pub idempotency_key: bool,
}

impl KeySources {
    /// Neither header: the body's hash (hmac-sha256, whose signature covers no id header).
    pub const BODY_ONLY: KeySources = KeySources {
        webhook_id: false,
        idempotency_key: false,
    };
    /// The signed `webhook-id`, else the body's hash (standard-webhooks).
    pub const WEBHOOK_ID: KeySources = KeySources {
        webhook_id: true,
        idempotency_key: false,
    };
    /// The sender's `Idempotency-Key`, else the body's hash (api-key, none).
    pub const IDEMPOTENCY_KEY: KeySources = KeySources {
        webhook_id: false,
        idempotency_key: true,
    };
}

/// The key of a whole delivery, from its headers or body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryKey(String);

/// A header key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header {header}: {problem}")]
pub struct KeyError {
    pub header: &'static str,
    pub problem: &'static str,
}

fn check_header_key(header: &'static str, value: &str) -> Result<(), KeyError> {
    if value.is_empty() {
        return Err(KeyError {
            header,
            problem: "is empty",
        });
    }
    if value.len() > MAX_HEADER_KEY_LEN {
        return Err(KeyError {
            header,
            problem: "is longer than 255 characters",
        });
    }
    if !value.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return Err(KeyError {
            header,
            problem: "must be printable ASCII",
        });
    }
    Ok(())
}

impl DeliveryKey {
    /// The delivery's key from the headers `sources` allows (a header it does not allow is
    /// ignored, neither used nor checked), else the body's hash. A header that is used must be
    /// a usable key ([`KeyError`] otherwise).
    pub fn derive(
        sources: KeySources,
        idempotency_key: Option<&str>,
        webhook_id: Option<&str>,
        body: &[u8],
    ) -> Result<Self, KeyError> {
        if let Some(id) = webhook_id.filter(|_| sources.webhook_id) {
            let id = id.trim();
            check_header_key("webhook-id", id)?;
            return Ok(DeliveryKey(format!("whid:{id}")));
        }
        if let Some(k) = idempotency_key.filter(|_| sources.idempotency_key) {
            let k = k.trim();
            check_header_key("Idempotency-Key", k)?;
            return Ok(DeliveryKey(format!("idem:{k}")));
        }
        Ok(DeliveryKey(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(body))
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of one command of the delivery: its externalId when it has one, else the
    /// delivery key (single command) or the delivery key and the item's index (batch).
    pub fn item_key(&self, external_id: Option<&str>, index: usize, batch: bool) -> String {
        match external_id {
            Some(ext) => format!("ext:{ext}"),
            None if batch => format!("{}#{index}", self.0),
            None => self.0.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"a":1}"#;

    fn key(sources: KeySources, idem: Option<&str>, whid: Option<&str>) -> String {
        DeliveryKey::derive(sources, idem, whid, BODY)
            .unwrap()
            .as_str()
            .to_string()
    }

    fn body_hash() -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(BODY)))
    }

    #[test]
    fn standard_webhooks_uses_the_signed_webhook_id_never_the_idempotency_key() {
        let sw = KeySources::WEBHOOK_ID;
        assert_eq!(key(sw, Some("k1"), Some("msg_1")), "whid:msg_1");
        assert_eq!(key(sw, None, Some("msg_1")), "whid:msg_1");
        // A fresh Idempotency-Key on a replayed request changes nothing.
        assert_eq!(key(sw, Some("fresh"), Some("msg_1")), "whid:msg_1");
        // Without the id (not reachable past the signature check), the body decides.
        assert_eq!(key(sw, Some("k1"), None), body_hash());
    }

    #[test]
    fn api_key_and_none_use_the_idempotency_key_never_an_unsigned_webhook_id() {
        let plain = KeySources::IDEMPOTENCY_KEY;
        assert_eq!(key(plain, Some("k1"), Some("msg_1")), "idem:k1");
        assert_eq!(key(plain, Some("k1"), None), "idem:k1");
        assert_eq!(key(plain, None, Some("msg_1")), body_hash());
        assert_eq!(key(plain, None, None), body_hash());
    }

    #[test]
    fn hmac_sha256_always_falls_to_the_body_hash() {
        let hmac = KeySources::BODY_ONLY;
        assert_eq!(key(hmac, Some("fresh"), Some("msg_1")), body_hash());
        assert_eq!(key(hmac, Some("other"), None), body_hash());
        assert_eq!(key(hmac, None, None), body_hash());
        assert_eq!(KeySources::default(), KeySources::BODY_ONLY);
    }

    #[test]
    fn the_body_hash_is_stable_and_tells_bodies_apart() {
        let hashed = DeliveryKey::derive(KeySources::BODY_ONLY, None, None, BODY).unwrap();
        assert!(hashed.as_str().starts_with("sha256:"));
        assert_eq!(
            hashed,
            DeliveryKey::derive(KeySources::BODY_ONLY, None, None, BODY).unwrap()
        );
        assert_ne!(
            hashed,
            DeliveryKey::derive(KeySources::BODY_ONLY, None, None, b"{}").unwrap()
        );
    }

    #[test]
    fn external_id_wins_for_items() {
        let k = DeliveryKey::derive(KeySources::IDEMPOTENCY_KEY, Some("k1"), None, b"").unwrap();
        assert_eq!(k.item_key(Some("pay-7"), 3, true), "ext:pay-7");
        assert_eq!(k.item_key(None, 3, true), "idem:k1#3");
        assert_eq!(k.item_key(None, 0, false), "idem:k1");
        let k =
            DeliveryKey::derive(KeySources::WEBHOOK_ID, Some("k1"), Some("msg_1"), b"").unwrap();
        assert_eq!(k.item_key(Some("pay-7"), 0, false), "ext:pay-7");
        assert_eq!(k.item_key(None, 2, true), "whid:msg_1#2");
    }

    #[test]
    fn bad_header_keys_are_refused_where_they_are_used_and_ignored_elsewhere() {
        let plain = KeySources::IDEMPOTENCY_KEY;
        let sw = KeySources::WEBHOOK_ID;
        assert!(DeliveryKey::derive(plain, Some(""), None, b"").is_err());
        assert!(DeliveryKey::derive(plain, Some(&"x".repeat(256)), None, b"").is_err());
        assert!(DeliveryKey::derive(sw, None, Some("tab\there"), b"").is_err());
        // A header the route does not use is not a reason to refuse the delivery.
        assert!(DeliveryKey::derive(sw, Some(""), Some("msg_1"), b"").is_ok());
        assert!(DeliveryKey::derive(plain, None, Some("tab\there"), b"").is_ok());
        assert!(DeliveryKey::derive(KeySources::BODY_ONLY, Some(""), Some(""), b"").is_ok());
    }
}
