//! From a body to commands: the content type, the route's filter (jq), validation.

use super::Headers;
use crate::domain::{Action, Command};
use crate::error::{BridgeError, ErrorKind};
use crate::mapping::{Filter, MapError};
use serde_json::Value;

/// At most `max` characters of `s`, with `…` when cut (for messages and log fields).
pub(crate) fn short(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type.map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

enum BodyKind {
    Json,
    Form,
}

/// The body's commands, validated. The whole delivery is refused (400, naming the item in a
/// batch) before anything is stored or sent if one output is not a valid command.
pub fn commands(
    action: Action,
    filter: &Filter,
    headers: &Headers,
    body: &[u8],
) -> Result<Vec<Command>, BridgeError> {
    let outputs = map_body(filter, headers, body)?;
    let batch = outputs.len() != 1;
    outputs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            Command::from_json(action, out).map_err(|e| {
                if batch {
                    BridgeError::invalid(format!("item {i}: {e}"))
                } else {
                    BridgeError::invalid(e.to_string())
                }
            })
        })
        .collect()
}

/// The body's outputs: a JSON body parsed (through the filter straight from the raw bytes,
/// so decimal literals keep their text), a form body turned into an object of strings.
fn map_body(filter: &Filter, headers: &Headers, body: &[u8]) -> Result<Vec<Value>, BridgeError> {
    let kind = match media_type(headers.get("content-type")).as_deref() {
        Some("application/json") => BodyKind::Json,
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => BodyKind::Json,
        Some("application/x-www-form-urlencoded") => BodyKind::Form,
        Some(other) => {
            return Err(BridgeError::new(
                ErrorKind::UnsupportedMediaType,
                format!(
                    "content type `{}` is not supported; send application/json (or a form with a mapping)",
                    short(other, 60)
                ),
            ))
        }
        None => {
            return Err(BridgeError::new(
                ErrorKind::UnsupportedMediaType,
                "missing Content-Type; send application/json",
            ))
        }
    };
    let map_err = |e: MapError| match e {
        MapError::InvalidInput { message } => {
            BridgeError::invalid(format!("body is not valid JSON: {message}"))
        }
        // A filter is compiled on its route's first delivery: a broken one is the bridge's
        // configuration, not the sender's fault. Nothing was recorded yet; a retry is safe.
        MapError::Compile { message } => {
            tracing::error!(error = %message, "the route's map filter does not compile: fix the routes file (payout-bridge check-config)");
            BridgeError::new(
                ErrorKind::Internal,
                "the route's map filter does not compile (a configuration error at the bridge); the delivery was not processed, it is safe to retry",
            )
        }
        other => BridgeError::invalid(format!("the route's map filter failed: {other}")),
    };
    match kind {
        BodyKind::Json if filter.is_identity() => serde_json::from_slice(body)
            .map(|v| vec![v])
            .map_err(|e| BridgeError::invalid(format!("body is not valid JSON: {e}"))),
        BodyKind::Json => filter.run_json(body, headers.as_map()).map_err(map_err),
        BodyKind::Form => {
            let form = crate::mapping::form_to_json(body);
            if filter.is_identity() {
                Ok(vec![form])
            } else {
                filter.run(form, headers.as_map()).map_err(map_err)
            }
        }
    }
}
