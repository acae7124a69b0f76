//! In-memory state of the simulator: payouts, projects, recipients, funds,
//! tokens, counters and faults. All business rules live here; the HTTP layer
//! only parses and formats.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::SimConfig;

/// Error type of the panel API (`error.type` in the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ApiError {
    /// `INVALID_PARAMS`, HTTP 400.
    #[error("{0}")]
    InvalidParams(String),
    /// `INSUFFICIENT_FUNDS`, HTTP 402.
    #[error("Insufficient funds to realize payout! (available {available} {currency})")]
    InsufficientFunds {
        currency: String,
        available: Decimal,
    },
    /// Missing, unknown, expired or revoked token: HTTP 401, type `INVALID_PARAMS`.
    #[error("Failed to authenticate token.")]
    Token,
    /// Unknown `/api` route: HTTP 404, type `INVALID_PARAMS`.
    #[error("Not found: {0}")]
    NotFound(String),
    /// Known `/api` route, wrong method: HTTP 405, type `INVALID_PARAMS`.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// Injected by the `reject_next` fault.
    #[error("Rejected by the simulator (reject_next fault)")]
    Injected(RejectType),
}

pub(super) const EMPTY_FIELD: &str = "One of required fields is empty!";

/// Status of a payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// `READY`: ready to be received.
    Ready,
    /// `UNAUTHORIZED`: awaits authorization (amount above the threshold).
    Unauthorized,
    /// `CANCELLED`: cancelled through `/api/payment/cancel` (inspection only).
    Cancelled,
}

/// Fault settings (`/sim/faults`). Counted faults (`*_next`) decrement by one
/// per matching `/api` request; at most one counted fault applies to a
/// request, in the order `drop_before`, `fail`, `internal_error_before`,
/// `reject`, `drop_after`, `internal_error_after`, `garbage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Delay before processing every `/api` request (ignores `only_path`).
    pub latency_ms: u64,
    /// Next N matching requests: HTTP 500 with an HTML body, not processed.
    pub fail_next: u32,
    /// Next N matching requests: HTTP 500 with an API error body
    /// (`{"error":{"message":"Internal server error","type":"INTERNAL_ERROR"},"errors":[]}`),
    /// not processed.
    pub internal_error_before_next: u32,
    /// Next N matching requests: an API error body of type `reject_type`
    /// (status 400 / 402, or 200 with `errors_with_status_200`), not processed.
    pub reject_next: u32,
    /// Error type answered by `reject_next`.
    pub reject_type: RejectType,
    /// Next N matching requests: connection closed without response, not processed.
    pub drop_before_next: u32,
    /// Next N matching requests: processed, then connection closed without response.
    pub drop_after_next: u32,
    /// Next N matching requests: processed (a create makes its payout), then HTTP 500 with
    /// the same API error body as `internal_error_before_next`.
    pub internal_error_after_next: u32,
    /// Next N matching requests: processed, then HTTP 200 with a non-JSON body.
    pub garbage_next: u32,
    /// Send every `/api` error body with HTTP status 200.
    pub errors_with_status_200: bool,
    /// Apply the counted faults only to requests with exactly this path.
    pub only_path: Option<String>,
}

/// Error type injected by the `reject_next` fault.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectType {
    /// `INVALID_PARAMS`, HTTP 400.
    #[default]
    InvalidParams,
    /// `INSUFFICIENT_FUNDS`, HTTP 402.
    InsufficientFunds,
}

/// Request counters (`/sim/state` → `counters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Counters {
    /// Every request under `/api/`, including faulted ones.
    pub requests: u64,
    /// `POST /api/authenticate` requests received, faulted ones included.
    pub authenticate: u64,
    /// Authentications processed and rejected (missing/wrong apiKey, bad body).
    pub authenticate_failed: u64,
    /// `POST /api/payment/create` requests received, faulted ones included
    /// (a request dropped before processing counts here, not below).
    pub create: u64,
    /// Creates processed that created a payout.
    pub create_accepted: u64,
    /// Creates processed and rejected for parameters or funds (token
    /// rejections and injected `reject_next` errors excluded).
    pub create_rejected: u64,
    /// Of those, rejected with `INSUFFICIENT_FUNDS`.
    pub insufficient_funds: u64,
    /// `POST /api/payment/cancel` requests received, faulted ones included.
    pub cancel: u64,
    /// Cancels processed and rejected for parameters (token rejections excluded).
    pub cancel_rejected: u64,
    /// Payouts actually cancelled (sum of `success`).
    pub cancelled_payments: u64,
    /// create/cancel calls rejected for a missing/unknown/expired/revoked token.
    pub token_rejected: u64,
    /// Connections closed without response (`dropped_before + dropped_after`).
    pub dropped: u64,
    /// Connections closed before processing (`drop_before_next`).
    pub dropped_before: u64,
    /// Connections closed after processing (`drop_after_next`).
    pub dropped_after: u64,
    /// HTTP 500 HTML answers from `fail_next`.
    pub failed: u64,
    /// HTTP 500 API error answers (`internal_errors_before + internal_errors_after`).
    pub internal_errors: u64,
    /// HTTP 500 API error answers without processing (`internal_error_before_next`).
    pub internal_errors_before: u64,
    /// HTTP 500 API error answers after processing (`internal_error_after_next`).
    pub internal_errors_after: u64,
    /// Garbage answers from `garbage_next`.
    pub garbage: u64,
    /// Error answers injected by `reject_next`.
    pub rejected: u64,
    /// Tokens issued.
    pub tokens_issued: u64,
}

/// A payout as seen in `/sim/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSnapshot {
    /// Payout id (sequential from 1).
    pub id: u64,
    /// Exact amount, serialized as a decimal string (`"12.34"`).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Currency code.
    pub currency: String,
    /// `2018-01-01T12:00:00.000Z` format, as in the API.
    pub start_date: String,
    /// Same format as `start_date`.
    pub end_date: String,
    /// Payout description.
    pub description: String,
    /// Whether the recipient gets a notification.
    pub notification: bool,
    /// Current status (`CANCELLED` once cancelled).
    pub status: PaymentStatus,
    /// Recipient id.
    pub recipient_id: u64,
    /// Project id.
    pub project_id: u64,
    /// Project name (`name` in the create request).
    pub project_name: String,
    /// Recipient data exactly as sent with this payout (`null` when absent).
    pub user_name: Option<String>,
    /// As sent.
    pub phone_number: Option<String>,
    /// As sent: a JSON string or number.
    pub reference_id: Option<serde_json::Value>,
    /// As sent.
    pub first_name: Option<String>,
    /// As sent.
    pub last_name: Option<String>,
    /// As sent.
    pub email: Option<String>,
    /// Creation time, API date format.
    pub created_at: String,
    /// Last update (creation or cancellation), API date format.
    pub updated_at: String,
}

/// A project (created on first use of its name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSnapshot {
    /// Project id (sequential from 1).
    pub id: u64,
    /// Project name.
    pub name: String,
}

/// A recipient (created on first use of its userName/phoneNumber/referenceId).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecipientSnapshot {
    /// Recipient id (sequential from 1).
    pub id: u64,
    /// From the payout that created the recipient.
    pub user_name: Option<String>,
    /// From the payout that created the recipient.
    pub phone_number: Option<String>,
    /// Normalised to a string (`1` and `"1"` are the same recipient).
    pub reference_id: Option<String>,
    /// From the payout that created the recipient.
    pub first_name: Option<String>,
    /// From the payout that created the recipient.
    pub last_name: Option<String>,
    /// From the payout that created the recipient.
    pub email: Option<String>,
}

/// Available funds per currency, as decimal strings (e.g. `"999987.66"`).
pub type FundsSnapshot = BTreeMap<String, String>;

/// Everything `/sim/state` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateSnapshot {
    /// All payouts, by id.
    pub payments: Vec<PaymentSnapshot>,
    /// All projects, by id.
    pub projects: Vec<ProjectSnapshot>,
    /// All recipients, by id.
    pub recipients: Vec<RecipientSnapshot>,
    /// Available (not blocked) funds per currency.
    pub funds: FundsSnapshot,
    /// Request counters.
    pub counters: Counters,
    /// Issued tokens neither expired nor revoked.
    pub active_tokens: usize,
    /// Current fault settings.
    pub faults: Faults,
    /// `/api` requests being processed right now.
    #[serde(default)]
    pub in_flight: u64,
    /// The most `/api` requests ever processed at once (since start or reset).
    #[serde(default)]
    pub peak_in_flight: u64,
    /// The most `/api` requests that arrived within any one second (a sliding window).
    #[serde(default)]
    pub peak_per_second: u64,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NewPayment {
    pub amount: Decimal,
    pub currency: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub project_name: String,
    pub description: String,
    pub user_name: Option<String>,
    pub phone_number: Option<String>,
    /// Original JSON value (string or number).
    pub reference_id: Option<serde_json::Value>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub notification: bool,
}

/// What the fault layer must do with one `/api` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FaultAction {
    None,
    DropBefore,
    Fail,
    InternalErrorBefore,
    Reject(RejectType),
    DropAfter,
    InternalErrorAfter,
    Garbage,
}

#[derive(Debug)]
struct Payment {
    id: u64,
    new: NewPayment,
    status: PaymentStatus,
    recipient_id: u64,
    project_id: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Inner {
    password: String,
    funds: BTreeMap<String, Decimal>,
    payments: Vec<Payment>,
    projects: Vec<ProjectSnapshot>,
    recipients: Vec<RecipientSnapshot>,
    /// token → expiry instant
    tokens: HashMap<String, SystemTime>,
    counters: Counters,
    faults: Faults,
    token_seq: u64,
    in_flight: u64,
    peak_in_flight: u64,
    /// Arrival times of the `/api` requests of the last second.
    arrivals: std::collections::VecDeque<std::time::Instant>,
    peak_per_second: u64,
}

impl Inner {
    fn new(config: &SimConfig) -> Self {
        Self {
            password: config.password.clone(),
            funds: config.funds.iter().cloned().collect(),
            payments: Vec::new(),
            projects: Vec::new(),
            recipients: Vec::new(),
            tokens: HashMap::new(),
            counters: Counters::default(),
            faults: base_faults(config),
            token_seq: 0,
            in_flight: 0,
            peak_in_flight: 0,
            arrivals: std::collections::VecDeque::new(),
            peak_per_second: 0,
        }
    }
}

fn base_faults(config: &SimConfig) -> Faults {
    Faults {
        errors_with_status_200: config.errors_with_status_200,
        ..Faults::default()
    }
}

/// State shared by all connections of one simulator.
pub(super) struct Shared {
    config: SimConfig,
    secret: [u8; 32],
    hasher: RandomState,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Shared {
    // Keeps the password and the token signing key out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Formats a date the way the panel does: `2018-01-01T12:00:00.000Z`.
pub(super) fn format_date(d: &DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Three upper-case ASCII letters.
pub(super) fn is_currency_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn reference_key(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Shared {
    pub(super) fn new(config: SimConfig) -> Self {
        let hasher = RandomState::new();
        let mut secret = [0u8; 32];
        for (i, chunk) in secret.chunks_mut(8).enumerate() {
            let word = hasher.hash_one((i, SystemTime::now()));
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let inner = Mutex::new(Inner::new(&config));
        Self {
            config,
            secret,
            hasher,
            inner,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the data stays usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ----- tokens -------------------------------------------------------

    /// Checks the password and issues a token.
    pub(super) fn authenticate(&self, api_key: Option<&str>) -> Result<String, ApiError> {
        let mut inner = self.lock();
        let api_key = match api_key {
            Some(k) if !k.is_empty() => k,
            _ => {
                inner.counters.authenticate_failed += 1;
                return Err(ApiError::InvalidParams(format!("{EMPTY_FIELD} (apiKey)")));
            }
        };
        if !constant_time_eq(api_key.as_bytes(), inner.password.as_bytes()) {
            inner.counters.authenticate_failed += 1;
            return Err(ApiError::InvalidParams(
                "Wrong authentication password!".to_owned(),
            ));
        }
        let now = SystemTime::now();
        inner.tokens.retain(|_, exp| *exp > now);
        inner.token_seq += 1;
        let ttl = Duration::from_secs(self.config.token_ttl_secs);
        let token = self.make_token(now, ttl, inner.token_seq);
        inner.tokens.insert(token.clone(), now + ttl);
        inner.counters.tokens_issued += 1;
        Ok(token)
    }

    /// Counts an authentication rejected before the password check (bad body).
    pub(super) fn count_authenticate_failure(&self) {
        self.lock().counters.authenticate_failed += 1;
    }

    fn make_token(&self, now: SystemTime, ttl: Duration, seq: u64) -> String {
        let iat = unix_secs(now);
        let jti = format!(
            "{:016x}{:016x}",
            self.hasher.hash_one((seq, now)),
            self.hasher.hash_one((now, seq, "jti"))
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = serde_json::json!({ "iat": iat, "exp": iat + ttl.as_secs(), "jti": jti });
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signing_input = format!("{header}.{payload}");
        let signature = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(mut mac) => {
                mac.update(signing_input.as_bytes());
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            }
            // HMAC accepts keys of any length; unreachable in practice.
            Err(_) => URL_SAFE_NO_PAD.encode(self.hasher.hash_one(&signing_input).to_le_bytes()),
        };
        format!("{signing_input}.{signature}")
    }

    /// Validates a token for create/cancel; counts the rejection.
    pub(super) fn check_token(&self, token: Option<&str>) -> Result<(), ApiError> {
        let mut inner = self.lock();
        let now = SystemTime::now();
        let valid = token
            .and_then(|t| inner.tokens.get(t))
            .is_some_and(|exp| *exp > now);
        if valid {
            Ok(())
        } else {
            inner.counters.token_rejected += 1;
            Err(ApiError::Token)
        }
    }

    /// Revokes every issued token; returns how many were still active.
    pub(super) fn revoke_tokens(&self) -> usize {
        let mut inner = self.lock();
        let now = SystemTime::now();
        let active = inner.tokens.values().filter(|exp| **exp > now).count();
        inner.tokens.clear();
        active
    }

    pub(super) fn set_password(&self, password: String) {
        self.lock().password = password;
    }

    // ----- payouts ------------------------------------------------------

    pub(super) fn count_create_rejected(&self) {
        self.lock().counters.create_rejected += 1;
    }

    pub(super) fn count_cancel_rejected(&self) {
        self.lock().counters.cancel_rejected += 1;
    }

    /// Blocks funds and records the payout; returns its API view.
    pub(super) fn create_payment(&self, new: NewPayment) -> Result<ApiPayment, ApiError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let available = inner.funds.get(&new.currency).copied().unwrap_or_default();
        if new.amount > available {
            inner.counters.create_rejected += 1;
            inner.counters.insufficient_funds += 1;
            return Err(ApiError::InsufficientFunds {
                currency: new.currency,
                available,
            });
        }
        inner
            .funds
            .insert(new.currency.clone(), available - new.amount);

        let project_id = match inner.projects.iter().find(|p| p.name == new.project_name) {
            Some(p) => p.id,
            None => {
                let id = inner.projects.len() as u64 + 1;
                inner.projects.push(ProjectSnapshot {
                    id,
                    name: new.project_name.clone(),
                });
                id
            }
        };

        let reference = new.reference_id.as_ref().map(reference_key);
        let found = inner.recipients.iter().find(|r| {
            (new.user_name.is_some() && r.user_name == new.user_name)
                || (new.phone_number.is_some() && r.phone_number == new.phone_number)
                || (reference.is_some() && r.reference_id == reference)
        });
        let recipient_id = match found {
            Some(r) => r.id,
            None => {
                let id = inner.recipients.len() as u64 + 1;
                inner.recipients.push(RecipientSnapshot {
                    id,
                    user_name: new.user_name.clone(),
                    phone_number: new.phone_number.clone(),
                    reference_id: reference,
                    first_name: new.first_name.clone(),
                    last_name: new.last_name.clone(),
                    email: new.email.clone(),
                });
                id
            }
        };

        let status = match self.config.authorization_threshold {
            Some(limit) if new.amount > limit => PaymentStatus::Unauthorized,
            _ => PaymentStatus::Ready,
        };
        let now = Utc::now();
        let payment = Payment {
            id: inner.payments.len() as u64 + 1,
            new,
            status,
            recipient_id,
            project_id,
            created_at: now,
            updated_at: now,
        };
        let view = api_view(&payment);
        tracing::info!(
            id = payment.id,
            amount = %payment.new.amount,
            currency = %payment.new.currency,
            status = ?payment.status,
            "panel-sim: payout created"
        );
        inner.payments.push(payment);
        inner.counters.create_accepted += 1;
        Ok(view)
    }

    /// Cancels the listed payouts (unknown ids are `None`); returns how many
    /// were cancelled by this call.
    pub(super) fn cancel_payments(&self, ids: &[Option<u64>]) -> u64 {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let now = Utc::now();
        let mut cancelled = 0;
        for id in ids.iter().flatten() {
            let Some(payment) = inner.payments.iter_mut().find(|p| p.id == *id) else {
                continue;
            };
            if payment.status == PaymentStatus::Cancelled {
                continue;
            }
            payment.status = PaymentStatus::Cancelled;
            payment.updated_at = now;
            *inner.funds.entry(payment.new.currency.clone()).or_default() += payment.new.amount;
            cancelled += 1;
        }
        inner.counters.cancelled_payments += cancelled;
        tracing::info!(requested = ids.len(), cancelled, "panel-sim: cancel");
        cancelled
    }

    pub(super) fn set_funds(&self, currency: String, amount: Decimal) {
        self.lock().funds.insert(currency, amount);
    }

    // ----- load gauges ----------------------------------------------------

    /// An `/api` request starts: counted in flight and in the last second's arrivals.
    pub(super) fn enter(&self) {
        let mut inner = self.lock();
        let now = std::time::Instant::now();
        inner.in_flight += 1;
        inner.peak_in_flight = inner.peak_in_flight.max(inner.in_flight);
        while inner
            .arrivals
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            inner.arrivals.pop_front();
        }
        inner.arrivals.push_back(now);
        inner.peak_per_second = inner.peak_per_second.max(inner.arrivals.len() as u64);
    }

    /// An `/api` request ended (answered, failed or dropped).
    pub(super) fn leave(&self) {
        let mut inner = self.lock();
        inner.in_flight = inner.in_flight.saturating_sub(1);
    }

    // ----- faults -------------------------------------------------------

    /// Counts an `/api` request and picks (and consumes) the fault to apply.
    pub(super) fn take_fault(&self, is_post: bool, path: &str) -> (Duration, FaultAction) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.counters.requests += 1;
        if is_post {
            match path {
                "/api/authenticate" => inner.counters.authenticate += 1,
                "/api/payment/create" => inner.counters.create += 1,
                "/api/payment/cancel" => inner.counters.cancel += 1,
                _ => {}
            }
        }
        let faults = &mut inner.faults;
        let latency = Duration::from_millis(faults.latency_ms);
        let matches = faults.only_path.as_deref().is_none_or(|p| p == path);
        let action = if !matches {
            FaultAction::None
        } else if faults.drop_before_next > 0 {
            faults.drop_before_next -= 1;
            inner.counters.dropped += 1;
            inner.counters.dropped_before += 1;
            FaultAction::DropBefore
        } else if faults.fail_next > 0 {
            faults.fail_next -= 1;
            inner.counters.failed += 1;
            FaultAction::Fail
        } else if faults.internal_error_before_next > 0 {
            faults.internal_error_before_next -= 1;
            inner.counters.internal_errors += 1;
            inner.counters.internal_errors_before += 1;
            FaultAction::InternalErrorBefore
        } else if faults.reject_next > 0 {
            faults.reject_next -= 1;
            inner.counters.rejected += 1;
            FaultAction::Reject(faults.reject_type)
        } else if faults.drop_after_next > 0 {
            faults.drop_after_next -= 1;
            inner.counters.dropped += 1;
            inner.counters.dropped_after += 1;
            FaultAction::DropAfter
        } else if faults.internal_error_after_next > 0 {
            faults.internal_error_after_next -= 1;
            inner.counters.internal_errors += 1;
            inner.counters.internal_errors_after += 1;
            FaultAction::InternalErrorAfter
        } else if faults.garbage_next > 0 {
            faults.garbage_next -= 1;
            inner.counters.garbage += 1;
            FaultAction::Garbage
        } else {
            FaultAction::None
        };
        (latency, action)
    }

    pub(super) fn errors_with_status_200(&self) -> bool {
        self.lock().faults.errors_with_status_200
    }

    pub(super) fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub(super) fn update_faults(&self, f: impl FnOnce(&mut Faults)) -> Faults {
        let mut inner = self.lock();
        f(&mut inner.faults);
        inner.faults.clone()
    }

    /// Back to the configured fault settings (no counted faults, no latency).
    pub(super) fn clear_faults(&self) -> Faults {
        let mut inner = self.lock();
        inner.faults = base_faults(&self.config);
        inner.faults.clone()
    }

    /// Clears payouts, projects, recipients, counters and faults, and restores
    /// the configured funds and password. Issued tokens stay valid.
    pub(super) fn reset(&self) {
        let mut inner = self.lock();
        let tokens = std::mem::take(&mut inner.tokens);
        let seq = inner.token_seq;
        *inner = Inner::new(&self.config);
        inner.tokens = tokens;
        inner.token_seq = seq;
    }

    // ----- inspection ---------------------------------------------------

    pub(super) fn snapshot(&self) -> StateSnapshot {
        let inner = self.lock();
        let now = SystemTime::now();
        StateSnapshot {
            payments: inner
                .payments
                .iter()
                .map(|p| PaymentSnapshot {
                    id: p.id,
                    amount: p.new.amount,
                    currency: p.new.currency.clone(),
                    start_date: format_date(&p.new.start),
                    end_date: format_date(&p.new.end),
                    description: p.new.description.clone(),
                    notification: p.new.notification,
                    status: p.status,
                    recipient_id: p.recipient_id,
                    project_id: p.project_id,
                    project_name: p.new.project_name.clone(),
                    user_name: p.new.user_name.clone(),
                    phone_number: p.new.phone_number.clone(),
                    reference_id: p.new.reference_id.clone(),
                    first_name: p.new.first_name.clone(),
                    last_name: p.new.last_name.clone(),
                    email: p.new.email.clone(),
                    created_at: format_date(&p.created_at),
                    updated_at: format_date(&p.updated_at),
                })
                .collect(),
            projects: inner.projects.clone(),
            recipients: inner.recipients.clone(),
            funds: inner
                .funds
                .iter()
                .map(|(c, a)| (c.clone(), a.to_string()))
                .collect(),
            counters: inner.counters.clone(),
            active_tokens: inner.tokens.values().filter(|exp| **exp > now).count(),
            faults: inner.faults.clone(),
            in_flight: inner.in_flight,
            peak_in_flight: inner.peak_in_flight,
            peak_per_second: inner.peak_per_second,
        }
    }
}

/// The payout as the API returns it (`payments[0]`), fields in the order of
/// the document's example.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiPayment {
    amount: serde_json::Value,
    id: u64,
    currency: String,
    start_date: String,
    end_date: String,
    description: String,
    notification: bool,
    status: PaymentStatus,
    recipient_id: u64,
    project_id: u64,
    updated_at: String,
    created_at: String,
}

fn api_view(p: &Payment) -> ApiPayment {
    ApiPayment {
        amount: decimal_to_json(p.new.amount),
        id: p.id,
        currency: p.new.currency.clone(),
        start_date: format_date(&p.new.start),
        end_date: format_date(&p.new.end),
        description: p.new.description.clone(),
        notification: p.new.notification,
        status: p.status,
        recipient_id: p.recipient_id,
        project_id: p.project_id,
        updated_at: format_date(&p.updated_at),
        created_at: format_date(&p.created_at),
    }
}

/// A JSON number for an amount: an integer when whole (like the panel's `1`),
/// otherwise the nearest double (`serde_json` has no exact decimal numbers;
/// this conversion is for output only, never for arithmetic).
pub(super) fn decimal_to_json(d: Decimal) -> serde_json::Value {
    use rust_decimal::prelude::ToPrimitive;
    if d.fract().is_zero() {
        if let Some(i) = d.to_i64() {
            return serde_json::Value::from(i);
        }
    }
    d.to_f64()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
