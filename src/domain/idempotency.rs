//! Which key a delivery (or an item of a batch) is deduplicated under.
//!
//! In order of preference: the payout's own `externalId`; the sender's `Idempotency-Key`
//! header; the Standard Webhooks `webhook-id` header; the SHA-256 of the raw body. Keys carry
//! a prefix naming their source, so that an `Idempotency-Key` can never collide with an
//! `externalId` of the same text.

use sha2::{Digest, Sha256};

/// Longest accepted `Idempotency-Key` / `webhook-id` header.
pub const MAX_HEADER_KEY_LEN: usize = 255;

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
    pub fn derive(
        idempotency_key: Option<&str>,
        webhook_id: Option<&str>,
        body: &[u8],
    ) -> Result<Self, KeyError> {
        if let Some(k) = idempotency_key {
            let k = k.trim();
            check_header_key("Idempotency-Key", k)?;
            return Ok(DeliveryKey(format!("idem:{k}")));
        }
        if let Some(id) = webhook_id {
            let id = id.trim();
            check_header_key("webhook-id", id)?;
            return Ok(DeliveryKey(format!("whid:{id}")));
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

    #[test]
    fn preference_order() {
        let body = br#"{"a":1}"#;
        assert_eq!(
            DeliveryKey::derive(Some("k1"), Some("msg_1"), body)
                .unwrap()
                .as_str(),
            "idem:k1"
        );
        assert_eq!(
            DeliveryKey::derive(None, Some("msg_1"), body)
                .unwrap()
                .as_str(),
            "whid:msg_1"
        );
        let hashed = DeliveryKey::derive(None, None, body).unwrap();
        assert!(hashed.as_str().starts_with("sha256:"));
        assert_eq!(hashed, DeliveryKey::derive(None, None, body).unwrap());
        assert_ne!(hashed, DeliveryKey::derive(None, None, b"{}").unwrap());
    }

    #[test]
    fn external_id_wins_for_items() {
        let k = DeliveryKey::derive(Some("k1"), None, b"").unwrap();
        assert_eq!(k.item_key(Some("pay-7"), 3, true), "ext:pay-7");
        assert_eq!(k.item_key(None, 3, true), "idem:k1#3");
        assert_eq!(k.item_key(None, 0, false), "idem:k1");
    }

    #[test]
    fn bad_header_keys_are_refused() {
        assert!(DeliveryKey::derive(Some(""), None, b"").is_err());
        assert!(DeliveryKey::derive(Some(&"x".repeat(256)), None, b"").is_err());
        assert!(DeliveryKey::derive(None, Some("tab\there"), b"").is_err());
    }
}
