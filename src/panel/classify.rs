//! Turns what came back from the panel into a [`PanelOutcome`], with no I/O, so that every rule
//! is unit-tested.
//!
//! The API document gives no HTTP statuses, so the body decides first: an error body
//! `{"error":{"type","message"}}` is a rejection whatever the status (200 included), except
//! that 401/403 always means the token was refused. Without an error body: 2xx must parse as
//! the expected success shape, and anything else (5xx, HTML, other 4xx, a body cut short) is
//! an unknown outcome, since the request did reach the panel.

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
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if status == 401 || status == 403 {
        return PanelOutcome::TokenRefused;
    }
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
    if status >= 500 {
        return PanelOutcome::Unknown(format!("panel answered HTTP {status}: {}", quote(body)));
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
    fn error_body_with_any_status_is_a_rejection_and_other_types_are_kept() {
        let out = create(
            402,
            r#"{"error":{"message":"no money","type":"INSUFFICIENT_FUNDS"}}"#,
        );
        assert!(matches!(out, PanelOutcome::Rejected { kind, .. } if kind == "INSUFFICIENT_FUNDS"));
        let out = create(418, r#"{"error":{"message":"x","type":"ACCOUNT_LOCKED"}}"#);
        assert!(matches!(out, PanelOutcome::Rejected { kind, .. } if kind == "ACCOUNT_LOCKED"));
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
