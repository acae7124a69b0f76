//! Answers: a command's success, a batch item, and the one log line per command.

use crate::error::BridgeError;
use serde_json::{json, Map, Value};

/// A successful answer for one command.
#[derive(Debug, Clone)]
pub struct Success {
    pub status: u16,
    pub body: Value,
    /// A stored answer given again (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

/// One line per command: its outcome, status, error type and the panel's payout id.
pub(crate) fn log_outcome(answer: &Result<Success, BridgeError>, outcome: &str) {
    match answer {
        Ok(s) => tracing::info!(
            outcome,
            status = s.status,
            payout_id = s.body["payments"][0]["id"].as_u64(),
            "command settled"
        ),
        Err(e) => tracing::info!(
            outcome,
            status = e.status(),
            error_type = e.kind.type_name(),
            "command settled"
        ),
    }
}

/// One entry of a batch answer, with its status.
pub(crate) fn batch_item(
    index: usize,
    external_id: Option<String>,
    outcome: Result<Success, BridgeError>,
) -> (u16, Value) {
    let mut item = Map::new();
    item.insert("index".into(), json!(index));
    if let Some(ext) = external_id {
        item.insert("externalId".into(), json!(ext));
    }
    let status = match outcome {
        Ok(s) => {
            item.insert("status".into(), json!(s.status));
            if s.replayed {
                item.insert("replayed".into(), json!(true));
            }
            if let Value::Object(fields) = s.body {
                item.extend(fields);
            }
            s.status
        }
        Err(e) => {
            item.insert("status".into(), json!(e.status()));
            item.insert("error".into(), e.body()["error"].clone());
            e.status()
        }
    };
    (status, Value::Object(item))
}
