//! [`LimitedPanel`]: the panel behind two ceilings per instance, for the queue worker:
//! at most `concurrency` calls in flight (`BRIDGE_WORKER_CONCURRENCY`) and at most `rate`
//! calls started per second with no burst above it (`BRIDGE_PANEL_RATE`; governor's GCRA with
//! a burst of one, i.e. one call per 1/rate seconds).

use crate::ports::{CreatedPayout, PanelApi, PanelOutcome, Secret};
use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The spacing between calls is 1/rate stretched by this much, so that network jitter between
/// the bridge and the panel never shows the panel rate + 1 calls inside one second.
const JITTER_MARGIN: f64 = 1.01;

pub struct LimitedPanel {
    inner: Arc<dyn PanelApi>,
    slots: Semaphore,
    rate: Option<DefaultDirectRateLimiter>,
}

impl LimitedPanel {
    /// `concurrency` calls in flight at most; `rate` calls per second at most (None = no limit).
    pub fn new(inner: Arc<dyn PanelApi>, concurrency: usize, rate: Option<NonZeroU32>) -> Self {
        let rate = rate.and_then(|r| {
            let period = Duration::from_secs_f64(JITTER_MARGIN / f64::from(r.get()));
            Quota::with_period(period).map(DefaultDirectRateLimiter::direct)
        });
        LimitedPanel {
            inner,
            slots: Semaphore::new(concurrency.max(1)),
            rate,
        }
    }

    /// Waits for a slot, then for the rate; the slot is held until the call ends.
    async fn admit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let permit = self.slots.acquire().await.ok();
        if let Some(rate) = &self.rate {
            rate.until_ready().await;
        }
        permit
    }
}

#[async_trait]
impl PanelApi for LimitedPanel {
    async fn authenticate(&self, password: &Secret) -> PanelOutcome<Secret> {
        let _slot = self.admit().await;
        self.inner.authenticate(password).await
    }

    async fn create(
        &self,
        token: &Secret,
        body: &serde_json::Value,
    ) -> PanelOutcome<CreatedPayout> {
        let _slot = self.admit().await;
        self.inner.create(token, body).await
    }

    async fn cancel(&self, token: &Secret, ids: &[u64]) -> PanelOutcome<u64> {
        let _slot = self.admit().await;
        self.inner.cancel(token, ids).await
    }
}
