//! The one module of test helpers (`mod common;` in every test crate), by concern:
//!
//! - here: names, times, temporary files, the HTTP client, polling;
//! - [`process`]: child processes: the panel simulator, `payout-bridge serve` and its operator
//!   commands, on loopback;
//! - [`sim`]: the simulator's control API, its payouts, and the create command the tests send;
//! - [`bridge`]: an in-process bridge (assembled by `ServiceBuilder`) on a loopback port, and
//!   the answers of a bridge to a delivery;
//! - [`aws`]: the moto emulator (the shared one of `scripts/test.sh`, or a private one), a
//!   fresh table and password secret on it;
//! - [`faults`]: a TCP proxy that cuts the bridge off its state store, and the check that a
//!   delivery record agrees with the answer the sender got.
//!
//! Each test crate compiles all of it and uses a different subset, hence the `allow`s.
#![allow(dead_code)]

pub mod aws;
pub mod bridge;
pub mod faults;
pub mod process;
pub mod sim;

#[allow(unused_imports)] // a test crate may use none of a submodule's helpers
pub use {aws::*, bridge::*, faults::*, process::*, sim::*};

use std::time::{Duration, Instant};

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A name part no other test, test process or earlier run against the same emulator uses
/// (for tables, secrets, externalIds, temporary directories).
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `text` to a fresh temporary file and returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("payout-bridge-test-{}", unique()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file");
    path
}

/// An HTTP client for tests (no proxy, 30 s timeout).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .expect("client")
}

/// Polls `f` every 50 ms until it is true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
