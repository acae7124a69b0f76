//! `api-key`: a shared key sent verbatim in a header.
//!
//! Keys are compared as SHA-256 digests in constant time, so neither the
//! content nor the length of a configured key leaks through timing.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::{AuthError, InboundRequest};

/// The `api-key` check, built once.
pub(super) struct ApiKeyVerifier {
    /// Lower-case header name.
    header: String,
    /// SHA-256 of each accepted key.
    key_digests: Vec<[u8; 32]>,
}

impl ApiKeyVerifier {
    pub(super) fn new(header: &str, secrets: &[String]) -> Self {
        ApiKeyVerifier {
            header: header.to_owned(),
            key_digests: secrets.iter().map(|key| digest(key.as_bytes())).collect(),
        }
    }

    pub(super) fn key_count(&self) -> usize {
        self.key_digests.len()
    }

    pub(super) fn verify(&self, req: &InboundRequest<'_>) -> Result<(), AuthError> {
        let provided = digest(req.header(&self.header)?.as_bytes());
        let mut matched = Choice::from(0);
        for expected in &self.key_digests {
            matched |= expected.ct_eq(&provided);
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(AuthError::BadApiKey)
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{headers_fn, verifier};
    use super::super::{AuthError, HeaderLookup, InboundRequest};

    fn req(headers: &dyn HeaderLookup) -> InboundRequest<'_> {
        InboundRequest {
            method: "POST",
            uri: "/hooks/payroll",
            headers,
            body: b"{}",
        }
    }

    #[test]
    fn default_header_and_rotation() {
        let v = verifier(
            "scheme: api-key\nsecrets: [env:A, env:B]",
            &["key-a", "key-b-longer"],
        );
        for key in ["key-a", "key-b-longer", " key-a "] {
            let h = headers_fn(&[("x-api-key", key)]);
            assert_eq!(v.verify(&req(&h), 0), Ok(()), "{key:?}");
        }
        for key in ["key-c", "key-", "KEY-A", "key-akey-b-longer"] {
            let h = headers_fn(&[("x-api-key", key)]);
            let err = v.verify(&req(&h), 0).unwrap_err();
            assert_eq!(err, AuthError::BadApiKey, "{key:?}");
            assert_eq!(err.to_string(), "api key does not match");
        }
        let h = headers_fn(&[]);
        let err = v.verify(&req(&h), 0).unwrap_err();
        assert_eq!(err.to_string(), "missing header x-api-key");
        let h = headers_fn(&[("x-api-key", "  ")]);
        assert_eq!(
            v.verify(&req(&h), 0),
            Err(AuthError::MissingHeader("x-api-key".into()))
        );
    }

    #[test]
    fn custom_header() {
        let v = verifier(
            "scheme: api-key\nheader: X-Partner-Token\nsecrets: [env:A]",
            &["t0ken"],
        );
        let h = headers_fn(&[("x-partner-token", "t0ken")]);
        assert_eq!(v.verify(&req(&h), 0), Ok(()));
        let h = headers_fn(&[("x-api-key", "t0ken")]);
        assert_eq!(
            v.verify(&req(&h), 0),
            Err(AuthError::MissingHeader("x-partner-token".into()))
        );
    }
}
