//! Metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout, and the log set-up.
//!
//! In Lambda, CloudWatch Logs turns each EMF line into metric data points with no API call
//! and no extra latency. Metric emission is switched on by `BRIDGE_METRICS=emf` (the SAM
//! template sets it) and is a no-op otherwise, so local runs and tests stay quiet.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "PayoutBridge";

static EMF: AtomicBool = AtomicBool::new(false);

/// Names of the metrics the bridge writes.
pub mod names {
    pub const PAYOUTS_CREATED: &str = "PayoutsCreated";
    pub const PAYOUTS_CANCELLED: &str = "PayoutsCancelled";
    pub const PANEL_REJECTED: &str = "PanelRejected";
    pub const OUTCOME_UNKNOWN: &str = "OutcomeUnknown";
    pub const REPLAYS: &str = "IdempotentReplays";
    pub const TOKEN_REFRESHES: &str = "TokenRefreshes";
    pub const SIGNATURE_FAILURES: &str = "SignatureFailures";
    pub const PANEL_UNAVAILABLE: &str = "PanelUnavailable";
    pub const STATE_UNAVAILABLE: &str = "StateUnavailable";
}

/// Turns EMF output on or off (from `BRIDGE_METRICS`).
pub fn configure_metrics(setting: Option<&str>) {
    EMF.store(
        matches!(setting.map(str::trim), Some("emf") | Some("EMF")),
        Ordering::Relaxed,
    );
}

/// Builds one EMF document: a count `value` of `metric`, with the given dimensions.
pub fn emf_line(metric: &str, value: f64, dims: &[(&str, &str)], timestamp_ms: i64) -> Value {
    let dim_names: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dim_names],
                "Metrics": [{ "Name": metric, "Unit": "Count" }],
            }],
        }),
    );
    for (k, v) in dims {
        doc.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    doc.insert(metric.to_string(), json!(value));
    Value::Object(doc)
}

/// Counts `value` of `metric` for a route (and an optional error type).
pub fn count(metric: &str, value: u64, route: &str, error_type: Option<&str>) {
    if !EMF.load(Ordering::Relaxed) || value == 0 {
        return;
    }
    let mut dims = vec![("Route", route)];
    if let Some(t) = error_type {
        dims.push(("ErrorType", t));
    }
    let line = emf_line(
        metric,
        value as f64,
        &dims,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut out = std::io::stdout().lock();
    // A lost metric line must never fail a delivery.
    let _ = writeln!(out, "{line}");
}

/// Installs the tracing subscriber: JSON lines in Lambda (or with `json = true`), readable
/// text otherwise; the level from `RUST_LOG` (default `info`).
pub fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            // `span`: the innermost span's fields (route, idempotency key, action);
            // `spans`: all of them, outermost first (the Lambda request id, the route).
            .with_current_span(true)
            .with_span_list(true)
            .with_ansi(false)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
    // Already installed (tests): keep the first one.
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_shape() {
        let v = emf_line(
            "PayoutsCreated",
            1.0,
            &[("Route", "payouts")],
            1_700_000_000_000,
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "PayoutBridge"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Route"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "PayoutsCreated"
        );
        assert_eq!(v["Route"], "payouts");
        assert_eq!(v["PayoutsCreated"], 1.0);
    }
}
