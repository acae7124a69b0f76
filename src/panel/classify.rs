//! Turns what came back from the panel into a [`PanelOutcome`], with no I/O, so that every rule
//! is unit-tested.
//!
//! The API document gives no HTTP statuses, so the body decides, within what the status allows:
//! - 401/403 always means the token was refused;
//! - any 5xx is an unknown outcome, whatever its body: a server that failed may have failed
//!   after the payout was made, so even an error body `{"error":{…}}` proves nothing;
//! - below 500, an error body `{"error":{"type","message"}}` is a rejection (200 included: the
//!   panel may send its errors with 200), which proves nothing happened;
//! - without an error body, 2xx must parse as the expected success shape, and anything else
//!   (HTML, other 4xx, a body cut short) is an unknown outcome, since the request did reach the
//!   panel.

use crate::ports::PanelOutcome;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// Longest piece of an unexpected body quoted in a reason.
const QUOTE: usize = 120;

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(QUOTE).collect();
    if text.chars().count() > QUOTE {
        s.push('…');
    }
    s.replace(['\n', '\r'], " ")
}

/// Classifies an answer: `parse` turns a 2xx JSON body into the success value.
pub fn classify<T>(
    status: u16,
    body: &[u8],
    parse: impl FnOnce(Value) -> Option<T>,
) -> PanelOutcome<T> {
    if status == 401 || status == 403 {
        return PanelOutcome::TokenRefused;
    }
    // Before the body: an error body only proves nothing happened when the server did not fail.
    if status >= 500 {
        return PanelOutcome::Unknown(format!("panel answered HTTP {status}: {}", quote(body)));
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(v) = &json {
        if v.get("error").is_some_and(|e| e.is_object()) {
            if let Ok(e) = serde_json::from_value::<ErrorBody>(v.clone()) {
                return PanelOutcome::Rejected {
                    kind: e.error.kind.unwrap_or_else(|| "UNKNOWN".to_string()),
                    message: e.error.message.unwrap_or_default(),
                };
            }
        }
    }
    if !(200..300).contains(&status) {
        return PanelOutcome::Unknown(format!(
            "panel answered HTTP {status} without an error body: {}",
            quote(body)
        ));
    }
    match json.and_then(parse) {
        Some(t) => PanelOutcome::Done(t),
        None => PanelOutcome::Unknown(format!(
            "panel answered HTTP {status} with an unexpected body: {}",
            quote(body)
        )),
    }
}

/// `{"token":"…"}`.
pub fn parse_token(v: Value) -> Option<String> {
    v.get("token")?
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// `{"payments":[{…"id":N…}]}`: at least one payment with a numeric id.
pub fn parse_payments(v: Value) -> Option<Value> {
    let payments = v.get("payments")?.as_array()?;
    if payments.is_empty()
        || payments
            .iter()
            .any(|p| p.get("id").and_then(Value::as_u64).is_none())
    {
        return None;
    }
    Some(v)
}

/// `{"success":N}`.
pub fn parse_success(v: Value) -> Option<u64> {
    v.get("success")?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(status: u16, body: &str) -> PanelOutcome<Value> {
        classify(status, body.as_bytes(), parse_payments)
    }

    #[test]
    fn success_body_is_done() {
        let out = create(200, r#"{"payments":[{"id":7,"amount":1}]}"#);
        assert!(matches!(out, PanelOutcome::Done(v) if v["payments"][0]["id"] == 7));
    }

    #[test]
    fn error_body_with_200_is_a_rejection() {
        let out = create(
            200,
            r#"{"error":{"message":"One of required fields is empty!","type":"INVALID_PARAMS"},"errors":[]}"#,
        );
        assert_eq!(
            out,
            PanelOutcome::Rejected {
                kind: "INVALID_PARAMS".into(),
                message: "One of required fields is empty!".into()
            }
        );
    }

    #[test]
    fn error_body_below_500_is_a_rejection_and_other_types_are_kept() {
        let out = create(
            402,
            r#"{"error":{"message":"no money","type":"INSUFFICIENT_FUNDS"}}"#,
        );
        assert!(matches!(out, PanelOutcome::Rejected { kind, .. } if kind == "INSUFFICIENT_FUNDS"));
        let out = create(418, r#"{"error":{"message":"x","type":"ACCOUNT_LOCKED"}}"#);
        assert!(matches!(out, PanelOutcome::Rejected { kind, .. } if kind == "ACCOUNT_LOCKED"));
        let out = create(499, r#"{"error":{"message":"x","type":"INVALID_PARAMS"}}"#);
        assert!(matches!(out, PanelOutcome::Rejected { kind, .. } if kind == "INVALID_PARAMS"));
    }

    /// A server that failed may have failed after making the payout: its error body proves
    /// nothing, whatever the type says (a rejection would let a retry pay twice).
    #[test]
    fn any_5xx_is_unknown_even_with_an_error_body() {
        let internal =
            r#"{"error":{"message":"Internal server error","type":"INTERNAL_ERROR"},"errors":[]}"#;
        let invalid = r#"{"error":{"message":"One of required fields is empty!","type":"INVALID_PARAMS"},"errors":[]}"#;
        let funds = r#"{"error":{"message":"no money","type":"INSUFFICIENT_FUNDS"}}"#;
        for status in [500, 501, 502, 503, 504, 599] {
            for body in [internal, invalid, funds] {
                match create(status, body) {
                    PanelOutcome::Unknown(reason) => {
                        assert!(reason.contains(&format!("HTTP {status}")), "{reason}")
                    }
                    other => panic!("{status} {body}: expected unknown, got {other:?}"),
                }
            }
        }
        // The same for every call: authenticate and cancel too.
        assert!(matches!(
            classify(500, internal.as_bytes(), parse_token),
            PanelOutcome::Unknown(_)
        ));
        assert!(matches!(
            classify(503, invalid.as_bytes(), parse_success),
            PanelOutcome::Unknown(_)
        ));
    }

    #[test]
    fn token_refused_on_401_and_403() {
        assert_eq!(create(401, "{}"), PanelOutcome::TokenRefused);
        assert_eq!(
            create(
                403,
                r#"{"error":{"message":"bad token","type":"INVALID_PARAMS"}}"#
            ),
            PanelOutcome::TokenRefused
        );
    }

    #[test]
    fn server_errors_and_garbage_are_unknown() {
        assert!(matches!(
            create(500, "<html>oops</html>"),
            PanelOutcome::Unknown(_)
        ));
        assert!(matches!(create(502, ""), PanelOutcome::Unknown(_)));
        assert!(matches!(create(200, "not json"), PanelOutcome::Unknown(_)));
        assert!(matches!(
            create(200, r#"{"payments":[]}"#),
            PanelOutcome::Unknown(_)
        ));
        assert!(matches!(
            create(404, "<html>no</html>"),
            PanelOutcome::Unknown(_)
        ));
    }

    #[test]
    fn unknown_reason_quotes_little_of_the_body() {
        let long = "x".repeat(10_000);
        match create(500, &long) {
            PanelOutcome::Unknown(reason) => assert!(reason.len() < 300),
            other => panic!("expected unknown, got {other:?}"),
        }
    }

    #[test]
    fn token_and_success_parsers() {
        assert_eq!(
            classify(200, br#"{"token":"abc"}"#, parse_token),
            PanelOutcome::Done("abc".to_string())
        );
        assert!(matches!(
            classify(200, br#"{"token":""}"#, parse_token),
            PanelOutcome::Unknown(_)
        ));
        assert_eq!(
            classify(200, br#"{"success":3}"#, parse_success),
            PanelOutcome::Done(3)
        );
    }
}
