//! Shared helpers of the integration tests that talk to the AWS emulator (moto).
#![allow(dead_code)] // each test crate uses a different subset

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A name no other test (or earlier run against the same emulator) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos:09}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The SDK configuration of the application (`payout_bridge::aws::sdk_config`), pointed at the
/// emulator by `AWS_ENDPOINT_URL`. Fails the test when the variable is unset: these tests never
/// skip silently, and never run against real AWS by accident.
pub async fn emulator_config() -> SdkConfig {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.trim().is_empty() => {}
        _ => panic!(
            "AWS_ENDPOINT_URL is not set. These tests need the moto AWS emulator: run them with \
             scripts/test.sh, which installs and starts moto and sets AWS_ENDPOINT_URL, AWS_REGION \
             and test credentials (extra arguments are passed to cargo test)."
        ),
    }
    let conf = payout_bridge::aws::sdk_config().await;
    assert!(
        conf.region().is_some(),
        "AWS_REGION is not set: run the tests with scripts/test.sh"
    );
    conf
}
