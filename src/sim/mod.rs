//! Payout panel simulator.
//!
//! A faithful, strict, in-memory implementation of the payout panel "direct
//! access" API (`/api/authenticate`, `/api/payment/create`,
//! `/api/payment/cancel`, see `shared/payout-panel-api.txt`) plus test
//! controls under `/sim/` (state inspection, fault injection, token
//! revocation, password and funds changes, reset).
//!
//! It is used in-process (by `payout-bridge serve --demo` and by tests, via
//! [`spawn`]) and as an external process (the `panel-sim` binary).
//!
//! Connections are served by our own accept loop on hyper 1 so that a request
//! can close its connection without any response (the `drop_before_next` and
//! `drop_after_next` faults), which axum alone cannot do.

mod api;
mod control;
mod dates;
mod model;
mod server;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use model::{
    Counters, Faults, FundsSnapshot, PaymentSnapshot, PaymentStatus, ProjectSnapshot,
    RecipientSnapshot, RejectType, StateSnapshot,
};

/// Configuration of a simulator instance.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The "Authentication password" accepted by `/api/authenticate` as `apiKey`.
    pub password: String,
    /// Lifetime of issued tokens, in seconds.
    pub token_ttl_secs: u64,
    /// Available funds per currency at start (and after `/sim/reset`).
    /// A currency not listed has no funds.
    pub funds: Vec<(String, Decimal)>,
    /// Payouts with an amount strictly above this are created with status
    /// `UNAUTHORIZED` instead of `READY`.
    pub authorization_threshold: Option<Decimal>,
    /// Send every error body with HTTP status 200 (initial value of the fault
    /// setting of the same name).
    pub errors_with_status_200: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        let million = Decimal::from(1_000_000u32);
        Self {
            password: "demo-password".to_owned(),
            token_ttl_secs: 86_400,
            funds: ["GBP", "EUR", "USD", "PLN"]
                .iter()
                .map(|c| ((*c).to_owned(), million))
                .collect(),
            authorization_threshold: None,
            errors_with_status_200: false,
        }
    }
}

/// Error parsing a `CUR=AMOUNT` funds specification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FundsSpecError {
    /// No `=` in the entry.
    #[error("expected CURRENCY=AMOUNT, got {0:?}")]
    MissingEquals(String),
    /// Currency is not 3 upper-case ASCII letters.
    #[error("invalid currency {0:?}: expected 3 upper-case letters")]
    Currency(String),
    /// Amount is not a non-negative decimal.
    #[error("invalid amount {0:?}: expected a non-negative decimal number")]
    Amount(String),
}

/// Parses one `GBP=1000.50` funds entry (used by the CLI).
///
/// # Errors
/// [`FundsSpecError`] when the entry is malformed.
pub fn parse_funds_entry(spec: &str) -> Result<(String, Decimal), FundsSpecError> {
    let (cur, amount) = spec
        .split_once('=')
        .ok_or_else(|| FundsSpecError::MissingEquals(spec.to_owned()))?;
    let cur = cur.trim();
    if !model::is_currency_code(cur) {
        return Err(FundsSpecError::Currency(cur.to_owned()));
    }
    let amount = amount.trim();
    let value = Decimal::from_str(amount).map_err(|_| FundsSpecError::Amount(amount.to_owned()))?;
    if value.is_sign_negative() {
        return Err(FundsSpecError::Amount(amount.to_owned()));
    }
    Ok((cur.to_owned(), value))
}

/// A running simulator. Dropping it (or calling [`SimHandle::shutdown`]) stops
/// accepting connections and closes the open ones.
#[derive(Debug)]
pub struct SimHandle {
    /// The address the simulator listens on.
    pub addr: SocketAddr,
    shared: Arc<model::Shared>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// Base URL of the simulator, e.g. `http://127.0.0.1:40123`. An
    /// unspecified bind address (`0.0.0.0`, `::`) is reported as loopback.
    #[must_use]
    pub fn url(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The same data as `GET /sim/state`, read in-process.
    #[must_use]
    pub fn snapshot(&self) -> StateSnapshot {
        self.shared.snapshot()
    }

    /// Signals shutdown without waiting (same as dropping the handle).
    pub fn shutdown(self) {
        // Drop does the work.
    }

    /// Signals shutdown and waits until the accept loop has stopped and open
    /// connections have finished (in-flight requests get up to 1 s).
    pub async fn shutdown_and_wait(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "panel-sim accept loop ended abnormally");
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

/// Grace period given to in-flight requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Starts a simulator serving on `listener` (already bound) and returns at
/// once. Must be called inside a tokio runtime.
///
/// # Errors
/// Only if the listener's local address cannot be read.
pub async fn spawn(config: SimConfig, listener: TcpListener) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let shared = Arc::new(model::Shared::new(config));
    let router = api::app(shared.clone(), control::router());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(server::accept_loop(listener, router, shutdown_rx));
    tracing::info!(%addr, "panel-sim started");
    Ok(SimHandle {
        addr,
        shared,
        shutdown_tx,
        task: Some(task),
    })
}
