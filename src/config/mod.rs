//! Configuration: environment variables ([`Settings`]) and the routes file ([`routes`]).

pub mod routes;

use crate::app::token::TokenSettings;
use std::path::PathBuf;
use std::time::Duration;

/// A configuration problem, naming the variable or file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Everything read from the environment. The README's configuration table lists the same.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PANEL_URL`: the panel's base URL.
    pub panel_url: Option<String>,
    /// `PANEL_PASSWORD_SECRET_ID` (as `secretsmanager:ID`) or, for local runs,
    /// `PANEL_PASSWORD` (as `env:PANEL_PASSWORD`): where the password is read, never its value.
    pub password_ref: Option<String>,
    /// `BRIDGE_CONFIG`: the routes file.
    pub routes_path: Option<PathBuf>,
    /// `PORT` for `serve` (default 3000).
    pub port: u16,
    /// `PANEL_CONNECT_TIMEOUT_MS` (default 2000).
    pub panel_connect_timeout: Duration,
    /// `PANEL_REQUEST_TIMEOUT_MS` (default 10000).
    pub panel_request_timeout: Duration,
    /// `BRIDGE_MAX_BODY_BYTES` (default 262144 = 256 KiB).
    pub max_body_bytes: usize,
    /// `BRIDGE_TABLE`: the DynamoDB table; absent = in-memory stores.
    pub table: Option<String>,
    /// `BRIDGE_RETENTION_DAYS` (default 7): how long delivery records are kept.
    pub retention_days: i64,
    /// `BRIDGE_IN_PROGRESS_TIMEOUT_SECS` (default 60): a record still in progress after this
    /// long belongs to an invocation that died; set it to the function timeout or more.
    pub in_progress_timeout_secs: i64,
    /// `BRIDGE_BATCH_CONCURRENCY` (default 4): panel calls in flight for one batch.
    pub batch_concurrency: usize,
    /// `BRIDGE_TOKEN_REFRESH_MARGIN_SECS` (default 300).
    pub token: TokenSettings,
    /// `BRIDGE_QUEUE_URL`: the SQS queue of queued routes; absent under `serve` = an
    /// in-process queue and worker.
    pub queue_url: Option<String>,
    /// `BRIDGE_DLQ_URL`: the queue's dead-letter queue (operator commands).
    pub dlq_url: Option<String>,
    /// `BRIDGE_WORKER_CONCURRENCY` (default 4): panel calls in flight per instance.
    pub worker_concurrency: usize,
    /// `BRIDGE_PANEL_RATE`: panel calls per second per instance, no burst; absent = no limit.
    pub panel_rate: Option<u32>,
    /// `BRIDGE_RETRY_BASE_SECS` (default 10): the first retry's delay, doubling, at most 900.
    pub retry_base_secs: u32,
}

fn parse_num<T>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: T,
    min: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<T>() {
            Ok(n) if n >= min => Ok(n),
            _ => Err(ConfigError(format!(
                "{name}=`{v}` is not a number (at least {min})"
            ))),
        },
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let password_ref = match (
            non_empty("PANEL_PASSWORD_SECRET_ID"),
            non_empty("PANEL_PASSWORD"),
        ) {
            (Some(id), _) => Some(format!("secretsmanager:{}", id.trim())),
            (None, Some(_)) => Some("env:PANEL_PASSWORD".to_string()),
            (None, None) => None,
        };
        let mut token = TokenSettings::default();
        token.refresh_margin_secs = parse_num(
            lookup,
            "BRIDGE_TOKEN_REFRESH_MARGIN_SECS",
            token.refresh_margin_secs,
            0,
        )?;
        Ok(Settings {
            panel_url: non_empty("PANEL_URL").map(|v| v.trim().to_string()),
            password_ref,
            routes_path: non_empty("BRIDGE_CONFIG").map(PathBuf::from),
            port: parse_num(lookup, "PORT", 3000u16, 0)?,
            panel_connect_timeout: Duration::from_millis(parse_num(
                lookup,
                "PANEL_CONNECT_TIMEOUT_MS",
                2000u64,
                1,
            )?),
            panel_request_timeout: Duration::from_millis(parse_num(
                lookup,
                "PANEL_REQUEST_TIMEOUT_MS",
                10_000u64,
                1,
            )?),
            max_body_bytes: parse_num(lookup, "BRIDGE_MAX_BODY_BYTES", 256 * 1024usize, 1)?,
            table: non_empty("BRIDGE_TABLE").map(|v| v.trim().to_string()),
            retention_days: parse_num(lookup, "BRIDGE_RETENTION_DAYS", 7i64, 1)?,
            in_progress_timeout_secs: parse_num(
                lookup,
                "BRIDGE_IN_PROGRESS_TIMEOUT_SECS",
                60i64,
                1,
            )?,
            batch_concurrency: parse_num(lookup, "BRIDGE_BATCH_CONCURRENCY", 4usize, 1)?,
            token,
            queue_url: non_empty("BRIDGE_QUEUE_URL").map(|v| v.trim().to_string()),
            dlq_url: non_empty("BRIDGE_DLQ_URL").map(|v| v.trim().to_string()),
            worker_concurrency: parse_num(lookup, "BRIDGE_WORKER_CONCURRENCY", 4usize, 1)?,
            panel_rate: match non_empty("BRIDGE_PANEL_RATE") {
                None => None,
                Some(_) => Some(parse_num(lookup, "BRIDGE_PANEL_RATE", 1u32, 1)?),
            },
            retry_base_secs: parse_num(lookup, "BRIDGE_RETRY_BASE_SECS", 10u32, 1)?,
        })
    }

    pub fn retention_secs(&self) -> i64 {
        self.retention_days * 24 * 3600
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.port, 3000);
        assert_eq!(s.max_body_bytes, 262_144);
        assert_eq!(s.retention_days, 7);
        assert!(s.table.is_none() && s.password_ref.is_none());
        assert_eq!(s.worker_concurrency, 4);
        assert_eq!(s.panel_rate, None);
        assert_eq!(s.retry_base_secs, 10);
        assert!(s.queue_url.is_none() && s.dlq_url.is_none());
    }

    #[test]
    fn queue_settings() {
        let s = settings(&[
            ("BRIDGE_QUEUE_URL", "http://q"),
            ("BRIDGE_PANEL_RATE", "5"),
            ("BRIDGE_WORKER_CONCURRENCY", "8"),
            ("BRIDGE_RETRY_BASE_SECS", "2"),
        ])
        .unwrap();
        assert_eq!(s.queue_url.as_deref(), Some("http://q"));
        assert_eq!(
            (s.panel_rate, s.worker_concurrency, s.retry_base_secs),
            (Some(5), 8, 2)
        );
        assert!(settings(&[("BRIDGE_PANEL_RATE", "0")]).is_err());
    }

    #[test]
    fn secret_id_wins_over_plain_password() {
        let s = settings(&[
            ("PANEL_PASSWORD", "x"),
            ("PANEL_PASSWORD_SECRET_ID", "prod/panel"),
        ])
        .unwrap();
        assert_eq!(s.password_ref.as_deref(), Some("secretsmanager:prod/panel"));
        let s = settings(&[("PANEL_PASSWORD", "x")]).unwrap();
        assert_eq!(s.password_ref.as_deref(), Some("env:PANEL_PASSWORD"));
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        let e = settings(&[("PANEL_REQUEST_TIMEOUT_MS", "soon")]).unwrap_err();
        assert!(e.0.contains("PANEL_REQUEST_TIMEOUT_MS"), "{e}");
        assert!(settings(&[("BRIDGE_BATCH_CONCURRENCY", "0")]).is_err());
    }
}
