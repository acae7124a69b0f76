//! Ports: the small traits the application needs from the outside world.
//!
//! Adapters live in `crate::store` (memory, DynamoDB), `crate::secrets` (environment,
//! Secrets Manager) and `crate::panel` (the panel's HTTP API). Nothing here names an
//! AWS, axum or reqwest type, so the application logic runs the same on every adapter.

use async_trait::async_trait;
use std::fmt;

/// A secret value (password, token, signing key). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value, for the one place that must send it (an HTTP header, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What can go wrong with a state store or secret store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or answered with a server error; the call may be retried.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The referenced item (secret, table) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An item had a shape this version cannot read.
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    /// Access denied or misconfiguration (wrong table name, missing permission).
    #[error("state store refused the call: {0}")]
    Refused(String),
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// Reads secrets by reference. References look like `env:NAME`, `secretsmanager:ID` or
/// `secretsmanager:ID#jsonKey`; an adapter answers the schemes it knows.
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// Reads the secret named by `reference`, bypassing any cache.
    async fn fetch(&self, reference: &str) -> Result<Secret, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Panel token cache, shared by every instance

/// A panel token with its expiry (unix seconds).
#[derive(Clone, PartialEq, Eq)]
pub struct CachedToken {
    pub token: Secret,
    pub expires_at: i64,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &self.token)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The shared token, if any (expired ones may be returned; the caller checks `expires_at`).
    async fn load(&self) -> Result<Option<CachedToken>, StoreError>;
    /// Stores a fresh token, replacing any other.
    async fn save(&self, token: &CachedToken) -> Result<(), StoreError>;
    /// Deletes the shared token only if it is still `token` (a 401 on an old token must not
    /// throw away a newer one another instance just saved).
    async fn invalidate(&self, token: &Secret) -> Result<(), StoreError>;
    /// Takes the refresh lease if nobody holds it or the holder's lease ran out (`now` is unix
    /// seconds; the lease lasts `ttl_secs`). True when `owner` now holds it.
    async fn try_lease(&self, owner: &str, now: i64, ttl_secs: i64) -> Result<bool, StoreError>;
    /// Gives the lease back if `owner` still holds it.
    async fn release_lease(&self, owner: &str) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------------------------------------
// Delivery records (idempotency) and the external-id → panel-id index

/// Where a delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryState {
    /// An invocation owns it and may be calling the panel until `deadline` (unix seconds);
    /// past the deadline the owner is presumed dead and the outcome unknown.
    InProgress { deadline: i64 },
    /// Finished with an answer that is replayed to every later delivery.
    Completed { status: u16, body: String },
    /// Finished without effect at the panel (rejected, or never sent). Kept for the record;
    /// a later delivery may take it over and try again.
    Failed { status: u16, body: String },
    /// The request may have reached the panel and no answer came. Never re-sent; an operator
    /// settles it with `payout-bridge resolve`.
    OutcomeUnknown { reason: String },
}

impl DeliveryState {
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryState::InProgress { .. } => "IN_PROGRESS",
            DeliveryState::Completed { .. } => "COMPLETED",
            DeliveryState::Failed { .. } => "FAILED",
            DeliveryState::OutcomeUnknown { .. } => "OUTCOME_UNKNOWN",
        }
    }
}

/// One delivery (or one item of a batch) under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Route name.
    pub route: String,
    /// Idempotency key within the route (externalId, Idempotency-Key, webhook-id or body hash,
    /// with `#index` for batch items that have no externalId).
    pub key: String,
    /// Fingerprint of the command; the same key with another fingerprint is a reuse.
    pub fingerprint: String,
    pub state: DeliveryState,
    /// Which invocation last took the record; transitions are conditional on it.
    pub attempt: String,
    /// The command's action (`create` / `cancel`).
    pub action: String,
    /// The sender's externalId, when the command has one.
    pub external_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// Unix seconds after which the record is gone (DynamoDB TTL); stores treat expired
    /// records as absent.
    pub expires_at: i64,
}

impl DeliveryRecord {
    /// Whether the record needs a person (`pending`): OUTCOME_UNKNOWN, or IN_PROGRESS past its
    /// deadline, and not expired.
    pub fn needs_person(&self, now: i64) -> bool {
        let open = match self.state {
            DeliveryState::OutcomeUnknown { .. } => true,
            DeliveryState::InProgress { deadline } => now > deadline,
            _ => false,
        };
        open && self.expires_at > now
    }
}

/// The check [`DeliveryStore::resolve`] makes of the state it is given: an operator settles a
/// record as COMPLETED or FAILED, nothing else.
pub fn check_resolution(state: &DeliveryState) -> Result<(), StoreError> {
    match state {
        DeliveryState::Completed { .. } | DeliveryState::Failed { .. } => Ok(()),
        other => Err(StoreError::Refused(format!(
            "resolve: a record can only be resolved to COMPLETED or FAILED, not {}",
            other.name()
        ))),
    }
}

/// The answer of [`DeliveryStore::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The record was written (fresh, or taken over from `Failed`); the caller owns it.
    Started,
    /// A record exists and was not taken over; the caller decides from its state.
    Existing(DeliveryRecord),
}

/// A created payout remembered under the sender's externalId, so cancels can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalPayout {
    pub external_id: String,
    pub payout_id: u64,
    pub route: String,
    pub expires_at: i64,
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Atomically: if no live record exists for (route, key), or the existing one is `Failed`,
    /// write `record` (whose state is `InProgress`) and answer `Started`; otherwise answer
    /// `Existing` with the current record and change nothing.
    async fn begin(&self, record: &DeliveryRecord, now: i64) -> Result<Begin, StoreError>;

    /// Moves the record from `InProgress` owned by `attempt` to `state` (the expiry set at
    /// `begin` stays), and
    /// in the same atomic write stores `external` when given. False (and nothing written) when
    /// the record is no longer in progress under `attempt`.
    async fn finish(
        &self,
        route: &str,
        key: &str,
        attempt: &str,
        state: &DeliveryState,
        external: Option<&ExternalPayout>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Marks an `InProgress` record whose deadline has passed (`now` > deadline) as
    /// `OutcomeUnknown`. False when it is not (or no longer) such a record.
    async fn expire_in_progress(
        &self,
        route: &str,
        key: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    async fn get(
        &self,
        route: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<DeliveryRecord>, StoreError>;

    /// Records that need a person: `OutcomeUnknown`, and `InProgress` past its deadline.
    async fn pending(&self, now: i64) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Operator settlement of an `OutcomeUnknown` (or stale `InProgress`) record: replaces it
    /// with `state` (`Completed` or `Failed`), storing `external` in the same write when given.
    /// False when the record is not in one of those states.
    async fn resolve(
        &self,
        route: &str,
        key: &str,
        state: &DeliveryState,
        external: Option<&ExternalPayout>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Panel payout ids for the given externalIds (absent ones are simply missing).
    async fn external_payouts(
        &self,
        external_ids: &[String],
        now: i64,
    ) -> Result<Vec<ExternalPayout>, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// The payout panel

/// How one call to the panel ended. Every outcome of a call is exactly one of these.
#[derive(Debug, Clone, PartialEq)]
pub enum PanelOutcome<T> {
    /// A parsed success body.
    Done(T),
    /// The panel answered with its error body: nothing was done. `kind` is the panel's
    /// `error.type` verbatim (`INVALID_PARAMS`, `INSUFFICIENT_FUNDS`, or another).
    Rejected { kind: String, message: String },
    /// The panel refused the token (HTTP 401/403): re-authenticate once and retry once.
    TokenRefused,
    /// The request never left (connection refused, DNS, TLS): safe to retry.
    NotSent(String),
    /// The request may have reached the panel and no usable answer came back (timeout after
    /// sending, connection reset, 5xx, unparseable body). A create is never re-sent blindly.
    Unknown(String),
}

impl<T> PanelOutcome<T> {
    /// The same outcome with the success value turned by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> PanelOutcome<U> {
        match self {
            PanelOutcome::Done(t) => PanelOutcome::Done(f(t)),
            PanelOutcome::Rejected { kind, message } => PanelOutcome::Rejected { kind, message },
            PanelOutcome::TokenRefused => PanelOutcome::TokenRefused,
            PanelOutcome::NotSent(r) => PanelOutcome::NotSent(r),
            PanelOutcome::Unknown(r) => PanelOutcome::Unknown(r),
        }
    }
}

/// The panel's API (see `../shared/payout-panel-api.txt`).
#[async_trait]
pub trait PanelApi: Send + Sync {
    /// `POST /api/authenticate`: exchanges the password for a token.
    async fn authenticate(&self, password: &Secret) -> PanelOutcome<Secret>;
    /// `POST /api/payment/create`: `body` is the panel's create body; answers its
    /// `{"payments":[…]}` body.
    async fn create(
        &self,
        token: &Secret,
        body: &serde_json::Value,
    ) -> PanelOutcome<serde_json::Value>;
    /// `POST /api/payment/cancel`: answers the panel's `success` count.
    async fn cancel(&self, token: &Secret, ids: &[u64]) -> PanelOutcome<u64>;
}

// ---------------------------------------------------------------------------------------------
// Time

/// Wall-clock time in unix seconds, injectable so that tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}
