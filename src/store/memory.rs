//! In-memory adapters (unit tests, local `serve`). One process only: nothing is shared between
//! instances and everything is lost on exit. Every operation takes one lock, so each is atomic,
//! with exactly the answers of the DynamoDB adapters (`tests/store_contract.rs` checks both).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::ports::{
    check_resolution, Begin, CachedToken, DeliveryRecord, DeliveryState, DeliveryStore,
    ExternalPayout, Secret, StoreError, TokenStore,
};

/// Locks a mutex. The critical sections below never panic half-way, so a poisoned lock still
/// guards consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Token store

#[derive(Default)]
struct TokenState {
    token: Option<CachedToken>,
    /// (owner, lease_until): held while `now < lease_until`.
    lease: Option<(String, i64)>,
}

/// The panel token and refresh lease in memory.
#[derive(Default)]
pub struct MemoryTokenStore {
    state: Mutex<TokenState>,
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("MemoryTokenStore")
            .field("token", &state.token)
            .field("lease", &state.lease)
            .finish()
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self) -> Result<Option<CachedToken>, StoreError> {
        Ok(lock(&self.state).token.clone())
    }

    async fn save(&self, token: &CachedToken) -> Result<(), StoreError> {
        lock(&self.state).token = Some(token.clone());
        Ok(())
    }

    async fn invalidate(&self, token: &Secret) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state.token.as_ref().is_some_and(|t| t.token == *token) {
            state.token = None;
        }
        Ok(())
    }

    async fn try_lease(&self, owner: &str, now: i64, ttl_secs: i64) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let free = match &state.lease {
            None => true,
            Some((holder, until)) => *until <= now || holder == owner,
        };
        if free {
            state.lease = Some((owner.to_string(), now.saturating_add(ttl_secs)));
        }
        Ok(free)
    }

    async fn release_lease(&self, owner: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if state
            .lease
            .as_ref()
            .is_some_and(|(holder, _)| holder == owner)
        {
            state.lease = None;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery store

#[derive(Default)]
struct Deliveries {
    records: HashMap<(String, String), DeliveryRecord>,
    externals: HashMap<String, ExternalPayout>,
}

impl Deliveries {
    /// The live (not TTL-expired) record.
    fn live_mut(&mut self, route: &str, key: &str, now: i64) -> Option<&mut DeliveryRecord> {
        self.records
            .get_mut(&(route.to_string(), key.to_string()))
            .filter(|r| r.expires_at > now)
    }

    fn store_external(&mut self, external: Option<&ExternalPayout>) {
        if let Some(ext) = external {
            self.externals.insert(ext.external_id.clone(), ext.clone());
        }
    }
}

/// Delivery records and the externalId index in memory.
#[derive(Default)]
pub struct MemoryDeliveryStore {
    inner: Mutex<Deliveries>,
}

impl MemoryDeliveryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every stored record, expired ones included (for tests and diagnostics).
    pub fn snapshot(&self) -> Vec<DeliveryRecord> {
        let inner = lock(&self.inner);
        let mut out: Vec<DeliveryRecord> = inner.records.values().cloned().collect();
        out.sort_by(|a, b| (&a.route, &a.key).cmp(&(&b.route, &b.key)));
        out
    }
}

impl std::fmt::Debug for MemoryDeliveryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = lock(&self.inner);
        f.debug_struct("MemoryDeliveryStore")
            .field("records", &inner.records.len())
            .field("externals", &inner.externals.len())
            .finish()
    }
}

#[async_trait]
impl DeliveryStore for MemoryDeliveryStore {
    async fn begin(&self, record: &DeliveryRecord, now: i64) -> Result<Begin, StoreError> {
        let mut inner = lock(&self.inner);
        if let Some(existing) = inner.live_mut(&record.route, &record.key, now) {
            if *existing == *record {
                // Identical repeat of our own write (what a retried request sees on DynamoDB).
                return Ok(Begin::Started);
            }
            if !matches!(existing.state, DeliveryState::Failed { .. }) {
                return Ok(Begin::Existing(existing.clone()));
            }
        }
        inner
            .records
            .insert((record.route.clone(), record.key.clone()), record.clone());
        Ok(Begin::Started)
    }

    async fn finish(
        &self,
        route: &str,
        key: &str,
        attempt: &str,
        state: &DeliveryState,
        external: Option<&ExternalPayout>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = lock(&self.inner);
        let Some(record) = inner.live_mut(route, key, now) else {
            return Ok(false);
        };
        if record.attempt != attempt {
            return Ok(false);
        }
        if !matches!(record.state, DeliveryState::InProgress { .. }) {
            // Our own identical finish, already applied (what a retried request sees on DynamoDB).
            return Ok(record.state == *state && record.updated_at == now);
        }
        record.state = state.clone();
        record.updated_at = now;
        inner.store_external(external);
        Ok(true)
    }

    async fn expire_in_progress(
        &self,
        route: &str,
        key: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = lock(&self.inner);
        let Some(record) = inner.live_mut(route, key, now) else {
            return Ok(false);
        };
        match record.state {
            DeliveryState::InProgress { deadline } if now > deadline => {
                record.state = DeliveryState::OutcomeUnknown {
                    reason: reason.to_string(),
                };
                record.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get(
        &self,
        route: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let mut inner = lock(&self.inner);
        Ok(inner.live_mut(route, key, now).map(|r| r.clone()))
    }

    async fn pending(&self, now: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        let inner = lock(&self.inner);
        let mut out: Vec<DeliveryRecord> = inner
            .records
            .values()
            .filter(|r| r.needs_person(now))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.route, &a.key).cmp(&(b.created_at, &b.route, &b.key)));
        Ok(out)
    }

    async fn resolve(
        &self,
        route: &str,
        key: &str,
        state: &DeliveryState,
        external: Option<&ExternalPayout>,
        now: i64,
    ) -> Result<bool, StoreError> {
        check_resolution(state)?;
        let mut inner = lock(&self.inner);
        let Some(record) = inner.live_mut(route, key, now) else {
            return Ok(false);
        };
        if !record.needs_person(now) {
            return Ok(false);
        }
        record.state = state.clone();
        record.updated_at = now;
        inner.store_external(external);
        Ok(true)
    }

    async fn external_payouts(
        &self,
        external_ids: &[String],
        now: i64,
    ) -> Result<Vec<ExternalPayout>, StoreError> {
        let inner = lock(&self.inner);
        let mut seen = HashSet::new();
        Ok(external_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| inner.externals.get(id))
            .filter(|ext| ext.expires_at > now)
            .cloned()
            .collect())
    }
}
