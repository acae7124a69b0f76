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
// Delivery records (idempotency); the rules they follow are `crate::domain::delivery`

pub use crate::domain::delivery::{DeliveryRecord, DeliveryState};

/// Which record: a route and an item key. Keys of externalIds (`ext:…`) name one record across
/// all routes (one payout per externalId); a lookup by id still answers only the route's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordId<'a> {
    pub route: &'a str,
    pub key: &'a str,
}

/// A move of a record into a new state, with the payout it made (creates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: DeliveryState,
    pub payout_id: Option<u64>,
    /// A new `expires_at` (see `domain::delivery::settled_expiry`); `None` keeps the record's.
    pub expires_at: Option<i64>,
}

impl Transition {
    pub fn to(state: DeliveryState) -> Self {
        Transition {
            state,
            payout_id: None,
            expires_at: None,
        }
    }

    /// The same transition, with the record kept until `expires_at` once settled.
    pub fn until(mut self, expires_at: i64) -> Self {
        self.expires_at = Some(expires_at);
        self
    }
}

/// The answer of [`DeliveryStore::begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The record was written (fresh, or taken over); the caller owns it.
    Started,
    /// A record exists and was not taken over; the caller decides from it.
    Existing(DeliveryRecord),
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Atomically: when [`crate::domain::delivery::may_start`] holds for the record stored under
    /// `record`'s key (none live, or FAILED), write `record` (IN_PROGRESS) and answer `Started`;
    /// otherwise answer `Existing` with the stored record and change nothing.
    async fn begin(&self, record: &DeliveryRecord, now: i64) -> Result<Begin, StoreError>;

    /// Moves the record from IN_PROGRESS (or QUEUED: a queued route releasing a command it
    /// could not queue) owned by `attempt` to `to`. A settled state starts the
    /// record's expiry (`expires_at`, set at `begin`). False (and nothing written) when the
    /// record is no longer in progress under `attempt`.
    async fn finish(
        &self,
        id: RecordId<'_>,
        attempt: &str,
        to: &Transition,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Marks an IN_PROGRESS record whose deadline has passed as OUTCOME_UNKNOWN. False when it
    /// is not (or no longer) such a record.
    async fn expire_in_progress(
        &self,
        id: RecordId<'_>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The live record of the route under the key.
    async fn get(&self, id: RecordId<'_>, now: i64) -> Result<Option<DeliveryRecord>, StoreError>;

    /// Records that need a person: OUTCOME_UNKNOWN, and IN_PROGRESS past its deadline.
    async fn pending(&self, now: i64) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Settles a record that needs a person ([`DeliveryRecord::needs_person`]) as `to`
    /// (COMPLETED or FAILED). False when the record does not need a person.
    async fn resolve(
        &self,
        id: RecordId<'_>,
        to: &Transition,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The live records of creates under these externalIds (absent ones are simply missing).
    async fn creates_by_external_id(
        &self,
        external_ids: &[String],
        now: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Records that a cancel (of `route`) named `external_id` before any payout was made for it:
    /// writes a CANCELLED record, settled until `expires_at`, when
    /// [`crate::domain::delivery::may_record_cancellation`] holds. True when a CANCELLED record
    /// now stands there (written now or before); false when something else does (a create
    /// started meanwhile).
    async fn record_cancellation(
        &self,
        route: &str,
        external_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
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

/// A payout the panel made: its id and the panel's whole `{"payments":[…]}` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedPayout {
    pub id: u64,
    pub body: serde_json::Value,
}

/// The panel's API (see `../shared/payout-panel-api.txt`).
#[async_trait]
pub trait PanelApi: Send + Sync {
    /// `POST /api/authenticate`: exchanges the password for a token.
    async fn authenticate(&self, password: &Secret) -> PanelOutcome<Secret>;
    /// `POST /api/payment/create`: `body` is the panel's create body; answers its
    /// `{"payments":[…]}` body.
    async fn create(&self, token: &Secret, body: &serde_json::Value)
        -> PanelOutcome<CreatedPayout>;
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

/// A clock that stands still until moved: tests (and anything else that must run "on day 8"
/// in milliseconds) set it, or advance it.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(now: i64) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(now))
    }
    pub fn set(&self, now: i64) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// The queue of a queued route (SQS, or in memory under `serve`)

/// What can go wrong with the queue.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused the call; it may be retried.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The call is not supported here (e.g. SQS's message-move task on an emulator).
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// A message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The queue's id of the message (SQS `MessageId`; what Lambda's partial batch answer names).
    pub id: String,
    /// The handle of this receipt, for delete and change-visibility.
    pub receipt: String,
    pub body: String,
    /// How many times the message has been received, this time included (1 = the first).
    pub receive_count: u32,
}

/// Which queue: the work queue, or its dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueName {
    Work,
    DeadLetters,
}

#[async_trait]
pub trait Queue: Send + Sync {
    /// Puts messages on the work queue: all of them, or an error (some may have been sent; the
    /// delivery rules make a second copy harmless).
    async fn send(&self, bodies: &[String]) -> Result<(), QueueError>;
    /// Receives up to `max` messages, waiting up to `wait` for the first. Each is invisible to
    /// other receivers for `visibility` (the queue's own setting when `None`).
    async fn receive(
        &self,
        from: QueueName,
        max: usize,
        wait: std::time::Duration,
        visibility: Option<u32>,
    ) -> Result<Vec<QueueMessage>, QueueError>;
    /// Deletes a received message.
    async fn delete(&self, from: QueueName, receipt: &str) -> Result<(), QueueError>;
    /// Makes a received message visible again after `secs` (the retry's backoff; 0 = now).
    async fn change_visibility(
        &self,
        from: QueueName,
        receipt: &str,
        secs: u32,
    ) -> Result<(), QueueError>;
    /// Moves every dead letter back to the work queue with the queue's own move task, where
    /// there is one; `Unsupported` where not (the caller then moves them one by one).
    async fn start_redrive_all(&self) -> Result<(), QueueError>;
}

// ---------------------------------------------------------------------------------------------
// Notifications of a queued route's results

/// Where a route's results are posted, with the secrets that sign them (`whsec_…`, several
/// while rotating). Its `Debug` never shows the secrets.
#[derive(Clone)]
pub struct NotifyTarget {
    pub url: String,
    pub secrets: Vec<Secret>,
}

impl fmt::Debug for NotifyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyTarget")
            .field("url", &self.url)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// Posts one signed event (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Posts `body` to the target under `id`, signed at `timestamp` (unix seconds). Ok only
    /// when the receiver answered 2xx.
    async fn notify(
        &self,
        target: &NotifyTarget,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> Result<(), String>;
}
