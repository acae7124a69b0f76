//! `hmac-sha256`: a configurable HMAC-SHA256 check for senders with a scheme
//! of their own (GitHub, HubSpot v3, ...).
//!
//! One signature per request: the signature header's value, trimmed, minus the
//! configured prefix, decoded as hex or base64, must be the 32-byte
//! HMAC-SHA256, keyed with the secret's UTF-8 bytes, of `signed_content`
//! filled in from the request.

use ::hmac::{Hmac, KeyInit, Mac};
use base64::Engine as _;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use super::config::{AuthConfigError, HmacSha256Config, SignatureEncoding};
use super::{check_timestamp, parse_unix_timestamp, AuthError, InboundRequest};

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;

/// Standard base64 alphabet, padding optional.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// One piece of a `signed_content` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Method,
    Uri,
    Body,
    Timestamp,
}

/// A parsed `signed_content` template: literal text and the placeholders
/// `{method}`, `{uri}`, `{body}`, `{timestamp}`; `{{` and `}}` stand for
/// literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `signed_content` (`None` = the default, `{body}`). The template
    /// must include `{body}`: a signature that does not cover the body
    /// authenticates nothing a payout depends on.
    pub(super) fn parse(template: Option<&str>) -> Result<Template, AuthConfigError> {
        let invalid = |reason: String| AuthConfigError::invalid("signed_content", reason);
        let template = template.unwrap_or("{body}");
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => {
                                return Err(invalid(
                                    "unclosed '{' (write {{ for a literal brace)".into(),
                                ))
                            }
                        }
                    }
                    let part = match name.as_str() {
                        "method" => Part::Method,
                        "uri" => Part::Uri,
                        "body" => Part::Body,
                        "timestamp" => Part::Timestamp,
                        _ => {
                            return Err(invalid(format!(
                                "unknown placeholder {{{name}}} (known: {{method}} {{uri}} \
                                 {{body}} {{timestamp}}; write {{{{ for a literal brace)"
                            )))
                        }
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                }
                '}' => {
                    return Err(invalid(
                        "unmatched '}' (write }} for a literal brace)".into(),
                    ))
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if !parts.contains(&Part::Body) {
            return Err(invalid("must include {body}".into()));
        }
        Ok(Template { parts })
    }

    pub(super) fn has_timestamp(&self) -> bool {
        self.parts.contains(&Part::Timestamp)
    }

    /// Feeds the filled-in template to `mac` without building it in memory.
    fn feed(&self, mac: &mut HmacSha256, req: &InboundRequest<'_>, timestamp: &str) {
        for part in &self.parts {
            match part {
                Part::Literal(text) => mac.update(text.as_bytes()),
                Part::Method => mac.update(req.method.as_bytes()),
                Part::Uri => mac.update(req.uri.as_bytes()),
                Part::Body => mac.update(req.body),
                Part::Timestamp => mac.update(timestamp.as_bytes()),
            }
        }
    }
}

/// The `hmac-sha256` check, built once.
pub(super) struct HmacSha256Verifier {
    config: HmacSha256Config,
    /// One keyed HMAC per secret, cloned for each request.
    keys: Vec<HmacSha256>,
}

impl HmacSha256Verifier {
    pub(super) fn new(
        config: &HmacSha256Config,
        secrets: &[String],
        refs: &[String],
    ) -> Result<Self, AuthConfigError> {
        let keys = secrets
            .iter()
            .zip(refs)
            .enumerate()
            .map(|(index, (secret, reference))| {
                HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| {
                    AuthConfigError::invalid(
                        format!("secrets[{index}]"),
                        format!("the value of {reference} cannot be used as an HMAC key"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HmacSha256Verifier {
            config: config.clone(),
            keys,
        })
    }

    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn verify(&self, req: &InboundRequest<'_>, now_unix: i64) -> Result<(), AuthError> {
        let config = &self.config;
        let signature_value = req.header(&config.header)?;

        // The timestamp, as received, is what goes into {timestamp}.
        let timestamp = match &config.timestamp_header {
            None => "",
            Some(name) => {
                let value = req.header(name)?;
                let parsed =
                    parse_unix_timestamp(value).ok_or_else(|| AuthError::MalformedHeader {
                        header: name.clone(),
                        expected: "unix time in seconds or milliseconds".into(),
                    })?;
                // Milliseconds if it is too large to be seconds (> year 33658).
                let seconds = if parsed > 1_000_000_000_000 {
                    parsed / 1000
                } else {
                    parsed
                };
                check_timestamp(seconds, now_unix, config.tolerance_seconds)?;
                value
            }
        };

        let malformed = || AuthError::MalformedHeader {
            header: config.header.clone(),
            expected: format!(
                "{}<{} HMAC-SHA256>",
                config.prefix.as_deref().unwrap_or(""),
                config.encoding
            ),
        };
        let encoded = match &config.prefix {
            None => signature_value,
            Some(prefix) => signature_value
                .strip_prefix(prefix.as_str())
                .ok_or_else(malformed)?,
        };
        let provided = match config.encoding {
            SignatureEncoding::Hex => hex::decode(encoded).ok(),
            SignatureEncoding::Base64 => BASE64.decode(encoded).ok(),
        }
        .filter(|bytes| bytes.len() == DIGEST_LEN)
        .ok_or_else(malformed)?;

        let mut matched = Choice::from(0);
        for key in &self.keys {
            let mut mac = key.clone();
            config.signed_content.feed(&mut mac, req, timestamp);
            let expected = mac.finalize().into_bytes();
            matched |= expected.as_slice().ct_eq(&provided);
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{headers_fn, verifier};
    use super::super::{AuthError, HeaderLookup, InboundRequest, Verifier};
    use super::*;

    /// HMAC-SHA256 by hand, independent of the verifier.
    fn hmac(key: &str, content: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(key.as_bytes()).unwrap();
        mac.update(content);
        mac.finalize().into_bytes().to_vec()
    }

    fn request<'a>(headers: &'a dyn HeaderLookup, body: &'a [u8]) -> InboundRequest<'a> {
        InboundRequest {
            method: "POST",
            uri: "/hooks/crm?x=1",
            headers,
            body,
        }
    }

    fn github() -> Verifier {
        verifier(
            "scheme: hmac-sha256\nheader: X-Hub-Signature-256\nprefix: 'sha256='\nsecrets: [env:GH]",
            &["It's a Secret to Everybody"],
        )
    }

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn github_documented_vector() {
        // From GitHub's "Validating webhook deliveries" documentation.
        let v = github();
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = headers_fn(&[("x-hub-signature-256", sig)]);
        assert_eq!(v.verify(&request(&h, b"Hello, World!"), NOW), Ok(()));

        // Hex is compared case-insensitively.
        let upper = format!("sha256={}", sig["sha256=".len()..].to_ascii_uppercase());
        let h = headers_fn(&[("x-hub-signature-256", &upper)]);
        assert_eq!(v.verify(&request(&h, b"Hello, World!"), NOW), Ok(()));

        // Tampered body.
        let h = headers_fn(&[("x-hub-signature-256", sig)]);
        assert_eq!(
            v.verify(&request(&h, b"Hello, World?"), NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn github_failures() {
        let v = github();
        let body = b"{\"action\":\"opened\"}";
        let good = format!(
            "sha256={}",
            hex::encode(hmac("It's a Secret to Everybody", body))
        );
        let wrong = format!("sha256={}", hex::encode(hmac("another secret", body)));

        let h = headers_fn(&[("x-hub-signature-256", &good)]);
        assert_eq!(v.verify(&request(&h, body), NOW), Ok(()));

        let h = headers_fn(&[("x-hub-signature-256", &wrong)]);
        assert_eq!(
            v.verify(&request(&h, body), NOW),
            Err(AuthError::BadSignature)
        );

        let h = headers_fn(&[]);
        let err = v.verify(&request(&h, body), NOW).unwrap_err();
        assert_eq!(err, AuthError::MissingHeader("x-hub-signature-256".into()));
        assert_eq!(err.to_string(), "missing header x-hub-signature-256");

        // Without the prefix, truncated, not hex, empty digest.
        let bare = good.trim_start_matches("sha256=").to_owned();
        for bad in [
            bare.as_str(),
            &good[..good.len() - 2],
            "sha256=zz",
            "sha256=",
        ] {
            let h = headers_fn(&[("x-hub-signature-256", bad)]);
            let err = v.verify(&request(&h, body), NOW).unwrap_err();
            assert!(
                matches!(err, AuthError::MalformedHeader { ref header, .. } if header == "x-hub-signature-256"),
                "{bad:?}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                "malformed header x-hub-signature-256: expected sha256=<hex HMAC-SHA256>"
            );
        }
    }

    /// HubSpot v3: base64 HMAC-SHA256 of method + full URL + body + timestamp
    /// (milliseconds), with the client secret; 5 minutes.
    fn hubspot() -> Verifier {
        verifier(
            r#"
scheme: hmac-sha256
header: X-HubSpot-Signature-v3
encoding: base64
timestamp_header: X-HubSpot-Request-Timestamp
signed_content: "{method}https://bridge.example.com{uri}{body}{timestamp}"
secrets: [env:HUBSPOT_CLIENT_SECRET]
"#,
            &["hubspot-app-secret"],
        )
    }

    #[test]
    fn hubspot_v3() {
        let v = hubspot();
        let body = br#"[{"eventId":1,"subscriptionType":"contact.creation","objectId":123}]"#;
        let ts_ms = "1700000000123";
        let now = 1_700_000_000 + 60;
        // Computed independently with Python's hmac module:
        // base64(hmac(b"hubspot-app-secret", b"POST" + b"https://bridge.example.com/hooks/crm?x=1" + body + b"1700000000123", sha256))
        let expected = "Nn3o/apHFAa1dQgrNdsAvrVFvDWPvmYRJ7asgB6lVhU=";
        let mut content = b"POSThttps://bridge.example.com/hooks/crm?x=1".to_vec();
        content.extend_from_slice(body);
        content.extend_from_slice(ts_ms.as_bytes());
        assert_eq!(
            BASE64.encode(hmac("hubspot-app-secret", &content)),
            expected
        );

        let ok = |ts: &str, sig: &str, body: &[u8], now: i64| {
            let h = headers_fn(&[
                ("x-hubspot-signature-v3", sig),
                ("x-hubspot-request-timestamp", ts),
            ]);
            v.verify(&request(&h, body), now)
        };
        assert_eq!(ok(ts_ms, expected, body, now), Ok(()));
        // Tampered body, other timestamp (the timestamp is signed).
        assert_eq!(
            ok(ts_ms, expected, b"[]", now),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            ok("1700000000124", expected, body, now),
            Err(AuthError::BadSignature)
        );
        // 6 minutes old / 6 minutes in the future.
        assert_eq!(
            ok(ts_ms, expected, body, 1_700_000_000 + 360),
            Err(AuthError::TooOld)
        );
        assert_eq!(
            ok(ts_ms, expected, body, 1_700_000_000 - 360),
            Err(AuthError::InFuture)
        );
        // Within 5 minutes on either side.
        assert_eq!(ok(ts_ms, expected, body, 1_700_000_000 + 299), Ok(()));
        assert_eq!(ok(ts_ms, expected, body, 1_700_000_000 - 299), Ok(()));
        // Malformed timestamp.
        let err = ok("yesterday", expected, body, now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed header x-hubspot-request-timestamp: expected unix time in seconds or milliseconds"
        );
        // Missing timestamp header.
        let h = headers_fn(&[("x-hubspot-signature-v3", expected)]);
        assert_eq!(
            v.verify(&request(&h, body), now),
            Err(AuthError::MissingHeader(
                "x-hubspot-request-timestamp".into()
            ))
        );
        // Missing signature header.
        let h = headers_fn(&[("x-hubspot-request-timestamp", ts_ms)]);
        assert_eq!(
            v.verify(&request(&h, body), now),
            Err(AuthError::MissingHeader("x-hubspot-signature-v3".into()))
        );
        // Unpadded base64 is accepted too.
        assert_eq!(ok(ts_ms, expected.trim_end_matches('='), body, now), Ok(()));
    }

    #[test]
    fn timestamp_in_seconds_and_template_pieces() {
        let v = verifier(
            "scheme: hmac-sha256\nheader: X-Signature\ntimestamp_header: X-Timestamp\n\
             signed_content: 'v0:{timestamp}:{method} {uri}:{{{body}}}'\nsecrets: [env:K]",
            &["k"],
        );
        let body = b"payload";
        let sig = hex::encode(hmac("k", b"v0:1700000000:POST /hooks/crm?x=1:{payload}"));
        let ok = |ts: &str, now: i64| {
            let h = headers_fn(&[("x-signature", &sig), ("x-timestamp", ts)]);
            v.verify(&request(&h, body), now)
        };
        assert_eq!(ok("1700000000", NOW), Ok(()));
        assert_eq!(ok("1700000000", NOW + 360), Err(AuthError::TooOld));
        assert_eq!(ok("1700000000", NOW - 360), Err(AuthError::InFuture));
        assert!(matches!(
            ok("-1700000000", NOW),
            Err(AuthError::MalformedHeader { .. })
        ));
        assert!(matches!(
            ok("1700000000.5", NOW),
            Err(AuthError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn rotation_and_wrong_secret() {
        let yaml = "scheme: hmac-sha256\nheader: X-Signature\nencoding: base64\nsecrets: [env:NEW, env:OLD]";
        let v = verifier(yaml, &["new-secret", "old-secret"]);
        let body = b"{}";
        for secret in ["new-secret", "old-secret"] {
            let sig = BASE64.encode(hmac(secret, body));
            let h = headers_fn(&[("x-signature", &sig)]);
            assert_eq!(v.verify(&request(&h, body), NOW), Ok(()), "{secret}");
        }
        let sig = BASE64.encode(hmac("retired-secret", body));
        let h = headers_fn(&[("x-signature", &sig)]);
        assert_eq!(
            v.verify(&request(&h, body), NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn template_parsing() {
        assert!(Template::parse(None).is_ok());
        assert!(!Template::parse(None).unwrap().has_timestamp());
        assert!(Template::parse(Some("{timestamp}.{body}"))
            .unwrap()
            .has_timestamp());
        for (bad, reason) in [
            ("{body", "unclosed"),
            ("{body}}", "unmatched"),
            ("{Body}", "unknown placeholder {Body}"),
            ("", "must include {body}"),
            ("{{body}}", "must include {body}"),
        ] {
            let err = Template::parse(Some(bad)).unwrap_err();
            assert_eq!(err.field(), "signed_content");
            assert!(err.to_string().contains(reason), "{bad:?}: {err}");
        }
    }
}
