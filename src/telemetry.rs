//! Metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout, and the log set-up.
//!
//! In Lambda, CloudWatch Logs turns each EMF line into metric data points with no API call
//! and no extra latency. Metric emission is switched on by `BRIDGE_METRICS=emf` (the SAM
//! template sets it) and is a no-op otherwise, so local runs and tests stay quiet.

use serde_json::{json, Map, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

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

/// The most each third-party library may log, whatever `RUST_LOG` says (a target prefix and
/// its ceiling). Their finer levels print what must never reach a log; read in their sources
/// (the versions in Cargo.lock):
/// - `lambda_runtime` (and `lambda_runtime_api_client`, `lambda_http`): TRACE prints the raw
///   invocation event, i.e. every header (`x-api-key`, signatures) and the body, and the
///   response's headers. DEBUG is start-up settings only.
/// - `aws_*` (`aws_smithy_runtime`, `aws_smithy_http_client`, `aws_sdk_dynamodb`,
///   `aws_sdk_secretsmanager`, `aws_config`, `aws_sigv4`, `aws_runtime`, …): TRACE prints
///   requests and responses with their bodies (the panel token item, delivery records with the
///   panel's answers) and the SigV4 canonical request; DEBUG prints whole service errors, e.g.
///   a failed condition's old item (a stored answer). INFO names credential providers only.
/// - `hyper*` (hyper, hyper_util, hyper_rustls), `h2`, `reqwest`, `rustls*`: connection and
///   frame events at DEBUG; TRACE adds header values (h2), raw bytes read and written (reqwest's
///   verbose connections) and handshake messages (rustls). (`reqwest` and `rustls` log through
///   the `log` crate, which this subscriber does not read today; the cap holds if it ever does.)
///
/// Targets match by prefix (`aws_` covers every AWS crate). The bridge's own logs, and anything
/// not listed, follow `RUST_LOG` alone.
pub const LIBRARY_LOG_CEILINGS: &[(&str, LevelFilter)] = &[
    ("lambda_runtime", LevelFilter::DEBUG),
    ("lambda_http", LevelFilter::DEBUG),
    ("aws_", LevelFilter::INFO),
    ("hyper", LevelFilter::DEBUG),
    ("h2", LevelFilter::DEBUG),
    ("reqwest", LevelFilter::DEBUG),
    ("rustls", LevelFilter::DEBUG),
];

/// The ceilings of [`LIBRARY_LOG_CEILINGS`] as a filter: everything else passes (up to TRACE),
/// so `RUST_LOG` alone decides for it.
pub fn library_log_ceilings() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(LIBRARY_LOG_CEILINGS.iter().copied())
}

/// The level filter of `RUST_LOG`: comma-separated `level` and `target=level` directives, as
/// in `info`, `warn,payout_bridge=debug` or `off` (tracing-subscriber's [`Targets`] syntax: a
/// target matches by prefix, the most specific directive wins). Unset or empty means `info`;
/// anything else that does not parse (span or field filters, a misspelt level) also means
/// `info`, and the error comes back so that the caller can say so once logging is up.
pub fn log_filter(rust_log: Option<&str>) -> (Targets, Option<String>) {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => (default(), None),
        Some(spec) => match spec.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (default(), Some(e.to_string())),
        },
    }
}

/// Installs the tracing subscriber: JSON lines in Lambda (or with `json = true`), readable
/// text otherwise; the level from `RUST_LOG` ([`log_filter`], default `info`), under the
/// libraries' ceilings ([`LIBRARY_LOG_CEILINGS`]). The ceilings are a second filter that every
/// event must also pass, so no `RUST_LOG` (`trace`, `aws_smithy_runtime=trace`) lifts them.
///
/// (A [`Targets`] filter rather than `EnvFilter`: the same `target=level` directives without
/// span and field matching, and without the regex engine that `EnvFilter` brings into the
/// Lambda binary, about 0.3 MB; docs/BENCHMARKS.md, "Binary size".)
pub fn init_logs(json: bool) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, not_understood) = log_filter(rust_log.as_deref());
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
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
            .finish()
            .with(library_log_ceilings())
            .with(filter)
            .try_init()
    } else {
        builder
            .with_target(false)
            .finish()
            .with(library_log_ceilings())
            .with(filter)
            .try_init()
    };
    // Already installed (tests): keep the first one.
    if result.is_ok() {
        if let Some(error) = not_understood {
            tracing::warn!(%error, "RUST_LOG not understood (expected e.g. `warn,payout_bridge=debug`); logging at info");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn library_ceilings_hold_whatever_the_env_filter_enables() {
        let caps = library_log_ceilings();
        for (target, ceiling) in [
            ("lambda_runtime::layers::api_response", Level::DEBUG),
            ("lambda_runtime_api_client", Level::DEBUG),
            ("lambda_http::request", Level::DEBUG),
            ("aws_smithy_runtime::client::orchestrator", Level::INFO),
            ("aws_smithy_http_client::hyper_legacy", Level::INFO),
            ("aws_sdk_dynamodb::operation::get_item", Level::INFO),
            ("aws_sdk_secretsmanager::config", Level::INFO),
            ("aws_config::profile::credentials", Level::INFO),
            ("aws_sigv4::http_request::sign", Level::INFO),
            ("aws_runtime::env_config", Level::INFO),
            ("hyper::proto::h1::role", Level::DEBUG),
            ("hyper_util::client::legacy::pool", Level::DEBUG),
            ("h2::proto::connection", Level::DEBUG),
            ("reqwest::connect", Level::DEBUG),
            ("rustls::client::hs", Level::DEBUG),
        ] {
            assert!(caps.would_enable(target, &ceiling), "{target} at {ceiling}");
            for finer in [Level::DEBUG, Level::TRACE] {
                if finer > ceiling {
                    assert!(
                        !caps.would_enable(target, &finer),
                        "{target} at {finer} passes"
                    );
                }
            }
        }
        // The bridge's own logs are not capped: RUST_LOG decides.
        for target in ["payout_bridge::app::deliver", "panel_sim", "payout_bridge"] {
            assert!(caps.would_enable(target, &Level::TRACE), "{target}");
        }
    }

    #[test]
    fn rust_log_directives_set_the_level_and_a_bad_one_means_info() {
        let on = |spec: Option<&str>, target: &str, level: Level| {
            let (filter, _) = log_filter(spec);
            filter.would_enable(target, &level)
        };
        // unset, empty: info
        for spec in [None, Some(""), Some("  ")] {
            assert!(on(spec, "payout_bridge::app", Level::INFO));
            assert!(!on(spec, "payout_bridge::app", Level::DEBUG));
        }
        // a level alone
        assert!(on(Some("warn"), "payout_bridge", Level::WARN));
        assert!(!on(Some("warn"), "payout_bridge", Level::INFO));
        assert!(on(Some("trace"), "payout_bridge::store", Level::TRACE));
        assert!(!on(Some("off"), "payout_bridge", Level::ERROR));
        // per target, by prefix; the default for the rest
        let spec = Some("warn,payout_bridge::app=debug");
        assert!(on(spec, "payout_bridge::app::bridge", Level::DEBUG));
        assert!(!on(spec, "payout_bridge::store", Level::INFO));
        assert!(on(spec, "payout_bridge::store", Level::WARN));
        // not understood: info, and the error is returned to be reported
        for bad in [
            "payout_bridge=loud",
            "payout_bridge[span{id=1}]=debug",
            "a=b=c",
        ] {
            let (filter, error) = log_filter(Some(bad));
            assert!(error.is_some(), "{bad}");
            assert!(filter.would_enable("payout_bridge", &Level::INFO), "{bad}");
            assert!(
                !filter.would_enable("payout_bridge", &Level::DEBUG),
                "{bad}"
            );
        }
    }

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
