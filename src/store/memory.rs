//! In-memory adapters (unit tests, local `serve`). One process only: nothing is shared between
//! instances and everything is lost on exit. Every operation takes one lock, so each is atomic,
//! with exactly the answers of the DynamoDB adapters (`tests/store_contract.rs` checks both).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::domain::delivery::{self, ItemKey, EXTERNAL_KEY_PREFIX};
use crate::ports::{
    Begin, CachedToken, DeliveryRecord, DeliveryState, DeliveryStore, RecordId, Secret, StoreError,
    TokenStore, Transition,
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

/// Where a record lives: keys of externalIds are global, every other key is the route's own.
fn slot(route: &str, key: &str) -> (String, String) {
    if key.starts_with(EXTERNAL_KEY_PREFIX) {
        (String::new(), key.to_string())
    } else {
        (route.to_string(), key.to_string())
    }
}

#[derive(Default)]
struct Deliveries {
    records: HashMap<(String, String), DeliveryRecord>,
}

impl Deliveries {
    /// The live record under the key, whichever route wrote it.
    fn live(&mut self, route: &str, key: &str, now: i64) -> Option<&mut DeliveryRecord> {
        self.records
            .get_mut(&slot(route, key))
            .filter(|r| r.is_live(now))
    }

    /// The live record of `id.route` under `id.key`.
    fn own(&mut self, id: RecordId<'_>, now: i64) -> Option<&mut DeliveryRecord> {
        self.live(id.route, id.key, now)
            .filter(|r| r.route == id.route)
    }
}

fn apply(record: &mut DeliveryRecord, to: &Transition, now: i64) {
    record.state = to.state.clone();
    if to.payout_id.is_some() {
        record.payout_id = to.payout_id;
    }
    if let Some(expires_at) = to.expires_at {
        record.expires_at = expires_at;
    }
    record.updated_at = now;
}

/// Delivery records in memory.
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
            .finish()
    }
}

#[async_trait]
impl DeliveryStore for MemoryDeliveryStore {
    async fn begin(&self, record: &DeliveryRecord, now: i64) -> Result<Begin, StoreError> {
        let mut inner = lock(&self.inner);
        let slot = slot(&record.route, &record.key);
        let existing = inner.records.get(&slot);
        if let Some(existing) = existing {
            if *existing == *record {
                // Identical repeat of our own write (what a retried request sees on DynamoDB).
                return Ok(Begin::Started);
            }
        }
        if !delivery::may_begin(existing, record, now) {
            return Ok(Begin::Existing(existing.cloned().ok_or_else(|| {
                StoreError::Corrupt("begin: no record and no start".into())
            })?));
        }
        inner.records.insert(slot, record.clone());
        Ok(Begin::Started)
    }

    async fn finish(
        &self,
        id: RecordId<'_>,
        attempt: &str,
        to: &Transition,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = lock(&self.inner);
        let Some(record) = inner.own(id, now) else {
            return Ok(false);
        };
        if record.attempt != attempt {
            return Ok(false);
        }
        if !matches!(
            record.state,
            DeliveryState::InProgress { .. } | DeliveryState::Queued { .. }
        ) {
            // Our own identical finish, already applied (what a retried request sees on DynamoDB).
            return Ok(record.state == to.state && record.updated_at == now);
        }
        apply(record, to, now);
        Ok(true)
    }

    async fn expire_in_progress(
        &self,
        id: RecordId<'_>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = lock(&self.inner);
        let Some(record) = inner.own(id, now) else {
            return Ok(false);
        };
        match record.state {
            DeliveryState::InProgress { deadline } if now > deadline => {
                let to = Transition::to(DeliveryState::OutcomeUnknown {
                    reason: reason.to_string(),
                });
                apply(record, &to, now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get(&self, id: RecordId<'_>, now: i64) -> Result<Option<DeliveryRecord>, StoreError> {
        let mut inner = lock(&self.inner);
        Ok(inner.own(id, now).map(|r| r.clone()))
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
        id: RecordId<'_>,
        to: &Transition,
        now: i64,
    ) -> Result<bool, StoreError> {
        delivery::check_resolution(&to.state).map_err(StoreError::Refused)?;
        let mut inner = lock(&self.inner);
        let Some(record) = inner.own(id, now) else {
            return Ok(false);
        };
        if !record.needs_person(now) {
            return Ok(false);
        }
        apply(record, to, now);
        Ok(true)
    }

    async fn creates_by_external_id(
        &self,
        external_ids: &[String],
        now: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut inner = lock(&self.inner);
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for ext in external_ids {
            if !seen.insert(ext.as_str()) {
                continue;
            }
            let key = ItemKey::external(ext);
            if let Some(r) = inner.live("", key.as_str(), now) {
                out.push(r.clone());
            }
        }
        Ok(out)
    }

    async fn record_cancellation(
        &self,
        route: &str,
        external_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = lock(&self.inner);
        let key = ItemKey::external(external_id);
        let slot = slot(route, key.as_str());
        let existing = inner.records.get(&slot);
        if existing.is_some_and(|r| r.is_live(now) && r.state == DeliveryState::Cancelled) {
            return Ok(true);
        }
        if !delivery::may_record_cancellation(existing, now) {
            return Ok(false);
        }
        let record = delivery::cancellation_record(route, external_id, expires_at, now);
        inner.records.insert(slot, record);
        Ok(true)
    }
}
