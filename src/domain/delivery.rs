//! The delivery rules: what happens to one command given the record stored under its key.
//!
//! Everything that decides whether a payout may be sent, replayed, refused or held lives here as
//! pure functions of data in (the record as stored, the command, `now`) and a decision out; no
//! store, no panel, no clock of its own. The application (`crate::app`) only carries decisions
//! out, and the stores' write conditions are these same rules: the memory store calls
//! [`decide`] and [`may_record_cancellation`] itself, the DynamoDB store states them as
//! condition expressions (`tests/store_contract.rs` runs the same cases on both).
//!
//! The table (docs/DESIGN.md):
//!
//! | record under the key                          | create                    | cancel          |
//! |-----------------------------------------------|---------------------------|-----------------|
//! | none, or settled and past its expiry          | start                     | start           |
//! | FAILED (nothing happened at the panel)        | start (take it over)      | start           |
//! | CANCELLED (a cancel came first)               | refuse 422 PAYOUT_CANCELLED | —             |
//! | another route's, or another payload           | refuse 422 IDEMPOTENCY_KEY_REUSED           ||
//! | COMPLETED                                     | replay the stored answer  | replay          |
//! | IN_PROGRESS before its deadline               | 409 REQUEST_IN_PROGRESS   | 409             |
//! | IN_PROGRESS past its deadline (owner died)    | hold: OUTCOME_UNKNOWN 504 | release: FAILED 504, safe to resend |
//! | OUTCOME_UNKNOWN                               | 504, held for an operator | (never stored)  |
//! | QUEUED before its deadline (a queued route's) | already queued (202); the worker claims it (same route and payload) ||
//! | QUEUED past its deadline (its message is gone)| start                     | start           |
//!
//! IN_PROGRESS, OUTCOME_UNKNOWN and QUEUED records never expire: they stay until settled or
//! resolved (a QUEUED one becomes startable past its deadline, the queue's retention).

use super::command::{Action, Command};

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
    /// A cancel named this externalId before any payout was made for it: a create that comes
    /// later is refused (`PAYOUT_CANCELLED`).
    Cancelled,
    /// A queued route accepted the command and put it on the queue; the worker has not begun
    /// it yet. Redeliveries answer 202 without queueing it again; the worker takes it over
    /// (IN_PROGRESS) when it runs it. Past `deadline` (unix seconds: the queue's retention)
    /// its message is gone and a redelivery queues it again.
    Queued { deadline: i64 },
}

impl DeliveryState {
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryState::InProgress { .. } => "IN_PROGRESS",
            DeliveryState::Completed { .. } => "COMPLETED",
            DeliveryState::Failed { .. } => "FAILED",
            DeliveryState::OutcomeUnknown { .. } => "OUTCOME_UNKNOWN",
            DeliveryState::Cancelled => "CANCELLED",
            DeliveryState::Queued { .. } => "QUEUED",
        }
    }

    /// Settled states end; IN_PROGRESS and OUTCOME_UNKNOWN wait for an answer or a person.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            DeliveryState::Completed { .. }
                | DeliveryState::Failed { .. }
                | DeliveryState::Cancelled
        )
    }
}

/// The key prefix of items deduplicated by the sender's externalId. Such keys name one payout
/// across all routes (see [`ItemKey`]).
pub const EXTERNAL_KEY_PREFIX: &str = "ext:";

/// The key of one command: `ext:<externalId>` (global: one payout per externalId, whatever the
/// route), or a delivery key (`whid:…`, `idem:…`, `sha256:…`, with `#index` in a batch) scoped
/// to its route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemKey(String);

impl ItemKey {
    pub fn external(external_id: &str) -> Self {
        ItemKey(format!("{EXTERNAL_KEY_PREFIX}{external_id}"))
    }
    /// A key as stored or as an operator types it. A bare text without a known prefix is an
    /// externalId (`resolve --key payslip-123`).
    pub fn parse(text: &str) -> Self {
        const PREFIXES: [&str; 4] = [EXTERNAL_KEY_PREFIX, "idem:", "whid:", "sha256:"];
        if PREFIXES.iter().any(|p| text.starts_with(p)) {
            ItemKey(text.to_string())
        } else {
            ItemKey::external(text)
        }
    }
    pub(crate) fn from_delivery_key(key: String) -> Self {
        ItemKey(key)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The externalId, for keys that are one.
    pub fn external_id(&self) -> Option<&str> {
        self.0.strip_prefix(EXTERNAL_KEY_PREFIX)
    }
}

impl std::fmt::Display for ItemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One delivery (or one item of a batch) under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Route name (for a CANCELLED record: the cancel's route).
    pub route: String,
    /// The item key (`ext:…` for creates with an externalId, else the delivery key).
    pub key: String,
    /// Fingerprint of the command; the same key with another fingerprint is a reuse. Empty for
    /// CANCELLED records and links written by versions before the record held the payout.
    pub fingerprint: String,
    pub state: DeliveryState,
    /// Which invocation last took the record; transitions are conditional on it.
    pub attempt: String,
    pub action: Action,
    /// The sender's externalId, when the command has one.
    pub external_id: Option<String>,
    /// The panel's payout id once created (what a cancel by externalId cancels).
    pub payout_id: Option<u64>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// Unix seconds after which a *settled* record is gone (see [`record_expiry`]). Unsettled
    /// records never expire.
    pub expires_at: i64,
}

impl DeliveryRecord {
    /// A new record of `cmd` under `key`, in `state` (IN_PROGRESS or QUEUED), written by
    /// `attempt` at `now`; it expires as [`record_expiry`] says once settled.
    pub fn new(
        route: &str,
        key: &ItemKey,
        cmd: &Command,
        state: DeliveryState,
        attempt: String,
        now: i64,
        retention_secs: i64,
    ) -> Self {
        DeliveryRecord {
            route: route.to_string(),
            key: key.as_str().to_string(),
            fingerprint: cmd.fingerprint(),
            state,
            attempt,
            action: cmd.action(),
            external_id: cmd.external_id().map(str::to_string),
            payout_id: None,
            created_at: now,
            updated_at: now,
            expires_at: record_expiry(cmd, now, retention_secs),
        }
    }

    /// Whether the record still counts: unsettled ones always, settled ones until `expires_at`.
    pub fn is_live(&self, now: i64) -> bool {
        !self.state.is_settled() || self.expires_at > now
    }

    /// Whether the record needs a person (`pending`): OUTCOME_UNKNOWN, or IN_PROGRESS past its
    /// deadline. Never expires by itself.
    pub fn needs_person(&self, now: i64) -> bool {
        match self.state {
            DeliveryState::OutcomeUnknown { .. } => true,
            DeliveryState::InProgress { deadline } => now > deadline,
            _ => false,
        }
    }
}

/// How long a record is kept once settled: the retention, and for a create with an externalId
/// at least the retention past the payout's end date (cancels may name it until then, and a
/// late redelivery must find it).
pub fn record_expiry(cmd: &Command, now: i64, retention_secs: i64) -> i64 {
    let base = match cmd {
        Command::Create(c) if c.external_id.is_some() => now.max(c.end_date.instant().timestamp()),
        _ => now,
    };
    base.saturating_add(retention_secs)
}

/// When a record settled at `now` expires: never before the expiry set when it began, and never
/// less than the retention after it settles (an operator may resolve a held record months later;
/// its redeliveries must still be answered, not paid again).
pub fn settled_expiry(expires_at: i64, now: i64, retention_secs: i64) -> i64 {
    expires_at.max(now.saturating_add(retention_secs))
}

/// The command as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub route: &'a str,
    pub fingerprint: &'a str,
    pub action: Action,
}

/// What to do with a command, given the record under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No live record, or a FAILED one: write ours (IN_PROGRESS) and call the panel.
    Start,
    /// Completed before with the same command: answer the stored answer again.
    Replay { status: u16, body: String },
    /// The key was used for another command (another payload, or another route's payout).
    KeyReused { other_route: bool },
    /// A cancel came before any payout for this externalId: refused for good.
    CancelledBeforeCreated,
    /// Another invocation is at it right now: ask the sender to come back.
    InProgress,
    /// Accepted by a queued route and waiting on the queue for the worker.
    Queued,
    /// A create whose invocation died mid-call: mark OUTCOME_UNKNOWN, answer 504, hold.
    HoldDeadCreate,
    /// A cancel whose invocation died mid-call: release it (FAILED) so a retry runs it again.
    ReleaseDeadCancel,
    /// Sent before without an answer: held for an operator, never re-sent.
    Held,
}

/// The one decision for a command and the record under its key.
pub fn decide(existing: Option<&DeliveryRecord>, incoming: &Incoming<'_>, now: i64) -> Decision {
    let Some(record) = existing.filter(|r| r.is_live(now)) else {
        return Decision::Start;
    };
    match &record.state {
        DeliveryState::Failed { .. } => return Decision::Start,
        DeliveryState::Queued { deadline } if now > *deadline => return Decision::Start,
        DeliveryState::Cancelled => {
            return match incoming.action {
                Action::Create => Decision::CancelledBeforeCreated,
                // Cancels never share a key with a create; a cancel record under a cancel's key
                // does not exist. Treat it as a reuse rather than guess.
                Action::Cancel => Decision::KeyReused { other_route: false },
            };
        }
        _ => {}
    }
    let other_route = record.route != incoming.route;
    // An empty fingerprint is a link written before records held the payout: same payout.
    let same_payload = record.fingerprint.is_empty() || record.fingerprint == incoming.fingerprint;
    if other_route || !same_payload || record.action != incoming.action {
        return Decision::KeyReused { other_route };
    }
    match &record.state {
        DeliveryState::Completed { status, body } => Decision::Replay {
            status: *status,
            body: body.clone(),
        },
        DeliveryState::InProgress { deadline } if now <= *deadline => Decision::InProgress,
        DeliveryState::InProgress { .. } => match record.action {
            Action::Create => Decision::HoldDeadCreate,
            Action::Cancel => Decision::ReleaseDeadCancel,
        },
        DeliveryState::OutcomeUnknown { .. } => Decision::Held,
        DeliveryState::Queued { .. } => Decision::Queued,
        DeliveryState::Failed { .. } | DeliveryState::Cancelled => Decision::Start,
    }
}

/// Whether a store may overwrite `existing` with a fresh IN_PROGRESS record: exactly when
/// [`decide`] says [`Decision::Start`]. The write condition of every store's `begin`.
pub fn may_start(existing: Option<&DeliveryRecord>, now: i64) -> bool {
    match existing {
        None => true,
        Some(r) => match r.state {
            DeliveryState::Failed { .. } => true,
            DeliveryState::Queued { deadline } => now > deadline,
            _ => !r.is_live(now),
        },
    }
}

/// Whether a store may write `new` over `existing` (the write condition of `begin`): when
/// [`may_start`] holds, and also when the worker begins a queued command (`new` IN_PROGRESS over
/// a QUEUED record of the same route, action and payload: it claims it).
pub fn may_begin(existing: Option<&DeliveryRecord>, new: &DeliveryRecord, now: i64) -> bool {
    may_start(existing, now) || existing.is_some_and(|r| is_claim(r, new))
}

/// `new` is the worker taking over the QUEUED record `existing`.
pub fn is_claim(existing: &DeliveryRecord, new: &DeliveryRecord) -> bool {
    matches!(existing.state, DeliveryState::Queued { .. })
        && matches!(new.state, DeliveryState::InProgress { .. })
        && existing.route == new.route
        && existing.fingerprint == new.fingerprint
        && existing.action == new.action
}

/// Whether a cancel may write a CANCELLED record under an externalId's key: nothing live is
/// there, or only a FAILED create (nothing was made at the panel). A CANCELLED record already
/// there counts as written.
pub fn may_record_cancellation(existing: Option<&DeliveryRecord>, now: i64) -> bool {
    may_start(existing, now)
}

/// An operator settles a record that needs a person as COMPLETED (the payout exists) or FAILED
/// (it does not), nothing else.
pub fn check_resolution(to: &DeliveryState) -> Result<(), String> {
    match to {
        DeliveryState::Completed { .. } | DeliveryState::Failed { .. } => Ok(()),
        other => Err(format!(
            "resolve: a record can only be resolved to COMPLETED or FAILED, not {}",
            other.name()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Cancels by externalId

/// The CANCELLED record a cancel of `route` leaves under an externalId that had no payout.
pub fn cancellation_record(
    route: &str,
    external_id: &str,
    expires_at: i64,
    now: i64,
) -> DeliveryRecord {
    DeliveryRecord {
        route: route.to_string(),
        key: ItemKey::external(external_id).0,
        fingerprint: String::new(),
        state: DeliveryState::Cancelled,
        attempt: String::new(),
        action: Action::Cancel,
        external_id: Some(external_id.to_string()),
        payout_id: None,
        created_at: now,
        updated_at: now,
        expires_at,
    }
}

/// What a cancel by externalIds does, from the records stored under those externalIds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CancelPlan {
    /// Panel payout ids to cancel.
    pub payout_ids: Vec<u64>,
    /// externalIds with no payout: answered as `unknownExternalIds`.
    pub unknown: Vec<String>,
    /// Of `unknown`, those to record as CANCELLED (so a create that comes later is refused).
    pub to_record: Vec<String>,
    /// externalIds whose create is running or held: the cancel must wait (409) and do nothing.
    pub blocked: Vec<String>,
}

/// Plans a cancel of `external_ids` from the live records found under them (`found` may list
/// them in any order; missing ones have no record).
pub fn plan_cancel(external_ids: &[String], found: &[DeliveryRecord], now: i64) -> CancelPlan {
    let mut plan = CancelPlan::default();
    let mut seen = std::collections::HashSet::new();
    for ext in external_ids {
        if !seen.insert(ext.as_str()) {
            continue;
        }
        let record = found
            .iter()
            .find(|r| r.external_id.as_deref() == Some(ext.as_str()) && r.is_live(now));
        match record.map(|r| (&r.state, r.payout_id)) {
            None | Some((DeliveryState::Failed { .. }, _)) => {
                plan.unknown.push(ext.clone());
                plan.to_record.push(ext.clone());
            }
            Some((DeliveryState::Cancelled, _)) => plan.unknown.push(ext.clone()),
            Some((DeliveryState::Completed { .. }, Some(id))) => {
                if !plan.payout_ids.contains(&id) {
                    plan.payout_ids.push(id);
                }
            }
            // Completed without a payout id cannot happen for a create; say so rather than
            // guess.
            Some((DeliveryState::Completed { .. }, None)) => plan.unknown.push(ext.clone()),
            Some((
                DeliveryState::InProgress { .. }
                | DeliveryState::OutcomeUnknown { .. }
                | DeliveryState::Queued { .. },
                _,
            )) => plan.blocked.push(ext.clone()),
        }
    }
    plan
}

// ---------------------------------------------------------------------------------------------
// Settling a panel call

/// How a panel call ended, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// The panel did it.
    Done,
    /// The panel proved it did nothing (its error body with a status below 500, or a refused
    /// token / password).
    NothingDone,
    /// The request never left.
    NotSent,
    /// It may have reached the panel and no usable answer came.
    Unknown,
}

/// What to record after a panel call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// COMPLETED: the answer is replayed from now on.
    Complete,
    /// FAILED: a later delivery may try again.
    Fail,
    /// OUTCOME_UNKNOWN: held for an operator, never re-sent.
    Hold,
}

/// A create whose outcome is unknown is held; a cancel is safe to send again, so it is released
/// (FAILED). Everything that proves nothing happened is FAILED.
pub fn settle(action: Action, end: CallEnd) -> Settlement {
    match (end, action) {
        (CallEnd::Done, _) => Settlement::Complete,
        (CallEnd::NothingDone | CallEnd::NotSent, _) => Settlement::Fail,
        (CallEnd::Unknown, Action::Create) => Settlement::Hold,
        (CallEnd::Unknown, Action::Cancel) => Settlement::Fail,
    }
}

/// Whether a cancel that got no answer (or never left) may be sent once more at once:
/// cancelling twice cancels nothing more. A create never is.
pub fn retry_at_once(action: Action, end: CallEnd) -> bool {
    action == Action::Cancel && matches!(end, CallEnd::Unknown | CallEnd::NotSent)
}

// ---------------------------------------------------------------------------------------------
// Batches

/// Whether an item's status is final for the sender: created or replayed (2xx), or refused for
/// good (400, 402, 422) or held for an operator (504). Anything else (409, 503, 502, 500) asks
/// for a retry.
pub fn is_final_status(status: u16) -> bool {
    (200..300).contains(&status) || matches!(status, 400 | 402 | 422 | 504)
}

/// The status of a batch answer: 200 only when every item is final; otherwise the retryable
/// status that tells the sender to come back: 503 if any item is 503, else 409 if any is 409,
/// else the highest other (502, 500).
pub fn batch_status(item_statuses: &[u16]) -> u16 {
    let retryable: Vec<u16> = item_statuses
        .iter()
        .copied()
        .filter(|s| !is_final_status(*s))
        .collect();
    if retryable.is_empty() {
        200
    } else if retryable.contains(&503) {
        503
    } else if retryable.contains(&409) {
        409
    } else {
        retryable.into_iter().max().unwrap_or(500)
    }
}

/// Whether a batch may start another item: only while the invocation has more time left than a
/// panel call can take, plus a second to record it. `None` = no deadline (a local server).
pub fn may_start_item(remaining_ms: Option<i64>, panel_timeout_ms: i64) -> bool {
    remaining_ms.is_none_or(|left| left >= panel_timeout_ms + 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const FP: &str = "fp-a";

    fn record(state: DeliveryState) -> DeliveryRecord {
        DeliveryRecord {
            route: "payroll".into(),
            key: "ext:pay-1".into(),
            fingerprint: FP.into(),
            state,
            attempt: "a1".into(),
            action: Action::Create,
            external_id: Some("pay-1".into()),
            payout_id: None,
            created_at: NOW - 100,
            updated_at: NOW - 50,
            expires_at: NOW + 7 * 86_400,
        }
    }

    fn create<'a>() -> Incoming<'a> {
        Incoming {
            route: "payroll",
            fingerprint: FP,
            action: Action::Create,
        }
    }

    fn completed() -> DeliveryState {
        DeliveryState::Completed {
            status: 201,
            body: r#"{"payments":[{"id":7}]}"#.into(),
        }
    }

    fn failed() -> DeliveryState {
        DeliveryState::Failed {
            status: 503,
            body: "{}".into(),
        }
    }

    #[test]
    fn no_record_starts() {
        assert_eq!(decide(None, &create(), NOW), Decision::Start);
        assert!(may_start(None, NOW));
    }

    #[test]
    fn completed_replays_the_stored_answer() {
        let r = record(completed());
        assert_eq!(
            decide(Some(&r), &create(), NOW),
            Decision::Replay {
                status: 201,
                body: r#"{"payments":[{"id":7}]}"#.into()
            }
        );
        assert!(!may_start(Some(&r), NOW));
    }

    #[test]
    fn completed_is_replayed_until_its_expiry_then_starts_afresh() {
        let r = record(completed());
        assert!(matches!(
            decide(Some(&r), &create(), r.expires_at - 1),
            Decision::Replay { .. }
        ));
        assert_eq!(decide(Some(&r), &create(), r.expires_at), Decision::Start);
        assert!(may_start(Some(&r), r.expires_at));
    }

    #[test]
    fn another_payload_is_a_key_reuse() {
        let r = record(completed());
        let other = Incoming {
            fingerprint: "fp-b",
            ..create()
        };
        assert_eq!(
            decide(Some(&r), &other, NOW),
            Decision::KeyReused { other_route: false }
        );
    }

    #[test]
    fn another_route_is_a_key_reuse_even_with_the_same_payload() {
        let r = record(completed());
        let other = Incoming {
            route: "crm",
            ..create()
        };
        assert_eq!(
            decide(Some(&r), &other, NOW),
            Decision::KeyReused { other_route: true }
        );
        // ... whatever state the other route's record is in.
        let r = record(DeliveryState::InProgress { deadline: NOW + 30 });
        assert_eq!(
            decide(Some(&r), &other, NOW),
            Decision::KeyReused { other_route: true }
        );
    }

    #[test]
    fn in_progress_before_its_deadline_is_409() {
        let r = record(DeliveryState::InProgress { deadline: NOW });
        assert_eq!(decide(Some(&r), &create(), NOW), Decision::InProgress);
        assert!(!may_start(Some(&r), NOW));
    }

    #[test]
    fn dead_create_is_held_and_dead_cancel_released() {
        let r = record(DeliveryState::InProgress { deadline: NOW - 1 });
        assert_eq!(decide(Some(&r), &create(), NOW), Decision::HoldDeadCreate);
        let mut c = record(DeliveryState::InProgress { deadline: NOW - 1 });
        c.action = Action::Cancel;
        c.key = "whid:msg_1".into();
        c.external_id = None;
        let cancel = Incoming {
            action: Action::Cancel,
            ..create()
        };
        assert_eq!(decide(Some(&c), &cancel, NOW), Decision::ReleaseDeadCancel);
    }

    #[test]
    fn outcome_unknown_is_held_and_never_expires() {
        let r = record(DeliveryState::OutcomeUnknown {
            reason: "timeout".into(),
        });
        assert_eq!(decide(Some(&r), &create(), NOW), Decision::Held);
        // Day 8 and day 800: still held, still pending, never overwritten.
        for later in [r.expires_at + 1, r.expires_at + 800 * 86_400] {
            assert_eq!(decide(Some(&r), &create(), later), Decision::Held);
            assert!(r.needs_person(later));
            assert!(!may_start(Some(&r), later));
        }
    }

    #[test]
    fn in_progress_never_expires_either() {
        let r = record(DeliveryState::InProgress { deadline: NOW });
        let later = r.expires_at + 86_400;
        assert_eq!(decide(Some(&r), &create(), later), Decision::HoldDeadCreate);
        assert!(r.needs_person(later));
        assert!(!may_start(Some(&r), later));
    }

    #[test]
    fn failed_is_taken_over_whatever_the_payload() {
        let r = record(failed());
        assert_eq!(decide(Some(&r), &create(), NOW), Decision::Start);
        let other = Incoming {
            route: "crm",
            fingerprint: "fp-b",
            ..create()
        };
        assert_eq!(decide(Some(&r), &other, NOW), Decision::Start);
        assert!(may_start(Some(&r), NOW));
    }

    #[test]
    fn queued_is_already_queued_until_its_deadline_then_starts() {
        let r = record(DeliveryState::Queued { deadline: NOW });
        assert_eq!(decide(Some(&r), &create(), NOW), Decision::Queued);
        assert!(!may_start(Some(&r), NOW));
        assert!(!r.needs_person(NOW) && !r.state.is_settled());
        // Its message is gone (the queue's retention): a redelivery queues it again.
        assert_eq!(decide(Some(&r), &create(), NOW + 1), Decision::Start);
        assert!(may_start(Some(&r), NOW + 1));
        // Another payload under the same key is still a reuse.
        let other = Incoming {
            fingerprint: "fp-b",
            ..create()
        };
        assert_eq!(
            decide(Some(&r), &other, NOW),
            Decision::KeyReused { other_route: false }
        );
    }

    #[test]
    fn only_the_worker_of_the_same_command_claims_a_queued_record() {
        let queued = record(DeliveryState::Queued {
            deadline: NOW + 100,
        });
        let mut running = record(DeliveryState::InProgress { deadline: NOW + 60 });
        running.attempt = "a2".into();
        assert!(may_begin(Some(&queued), &running, NOW));
        // Another queued write (a redelivery) does not overwrite it: it is already queued.
        let mut again = queued.clone();
        again.attempt = "a3".into();
        assert!(!may_begin(Some(&queued), &again, NOW));
        // Another payload, another route: no claim.
        let mut other = running.clone();
        other.fingerprint = "fp-b".into();
        assert!(!may_begin(Some(&queued), &other, NOW));
        let mut other = running.clone();
        other.route = "crm".into();
        assert!(!may_begin(Some(&queued), &other, NOW));
        // An IN_PROGRESS record is never claimed.
        let busy = record(DeliveryState::InProgress { deadline: NOW + 60 });
        assert!(!may_begin(Some(&busy), &running, NOW));
    }

    #[test]
    fn cancelled_before_created_refuses_the_create() {
        let mut r = record(DeliveryState::Cancelled);
        r.route = "void".into();
        r.fingerprint = String::new();
        r.action = Action::Cancel;
        assert_eq!(
            decide(Some(&r), &create(), NOW),
            Decision::CancelledBeforeCreated
        );
        assert!(!may_start(Some(&r), NOW));
        // After its retention it is gone like any settled record.
        assert_eq!(decide(Some(&r), &create(), r.expires_at), Decision::Start);
    }

    #[test]
    fn legacy_links_without_a_fingerprint_replay() {
        let mut r = record(completed());
        r.fingerprint = String::new();
        assert!(matches!(
            decide(Some(&r), &create(), NOW),
            Decision::Replay { .. }
        ));
    }

    #[test]
    fn only_unknown_and_dead_in_progress_need_a_person() {
        assert!(!record(completed()).needs_person(NOW));
        assert!(!record(failed()).needs_person(NOW));
        assert!(!record(DeliveryState::Cancelled).needs_person(NOW));
        assert!(!record(DeliveryState::InProgress { deadline: NOW }).needs_person(NOW));
        assert!(record(DeliveryState::InProgress { deadline: NOW - 1 }).needs_person(NOW));
    }

    #[test]
    fn decide_and_may_start_agree_everywhere() {
        let states = [
            completed(),
            failed(),
            DeliveryState::Cancelled,
            DeliveryState::InProgress { deadline: NOW },
            DeliveryState::InProgress { deadline: NOW - 10 },
            DeliveryState::OutcomeUnknown { reason: "x".into() },
            DeliveryState::Queued { deadline: NOW },
            DeliveryState::Queued { deadline: NOW - 1 },
        ];
        for state in states {
            let r = record(state);
            for now in [NOW, r.expires_at, r.expires_at + 1] {
                assert_eq!(
                    may_start(Some(&r), now),
                    decide(Some(&r), &create(), now) == Decision::Start,
                    "{:?} at {now}",
                    r.state
                );
            }
        }
    }

    #[test]
    fn expiry_of_a_create_with_an_external_id_runs_from_its_end_date() {
        use serde_json::json;
        let cmd = Command::from_json(
            Action::Create,
            &json!({"amount":"1","currency":"GBP","startDate":"2030-01-01","endDate":"2031-01-01",
                    "name":"n","description":"d","userName":"u","notification":false,
                    "externalId":"pay-1"}),
        )
        .unwrap();
        let end = 1_924_992_000; // 2031-01-01T00:00:00Z
        assert_eq!(record_expiry(&cmd, NOW, 100), end + 100);
        // Past the end date: the retention from now.
        assert_eq!(record_expiry(&cmd, end + 5, 100), end + 105);
        let cancel = Command::from_json(Action::Cancel, &json!({"externalIds":["pay-1"]})).unwrap();
        assert_eq!(record_expiry(&cancel, NOW, 100), NOW + 100);
    }

    #[test]
    fn a_record_settled_late_is_kept_the_retention_from_then() {
        // Begun with an expiry of NOW + 10, resolved a year later: kept a retention from then.
        assert_eq!(settled_expiry(NOW + 10, NOW, 100), NOW + 100);
        assert_eq!(
            settled_expiry(NOW + 10, NOW + 365 * 86_400, 100),
            NOW + 365 * 86_400 + 100
        );
        assert_eq!(settled_expiry(NOW + 1000, NOW, 100), NOW + 1000);
    }

    #[test]
    fn cancel_plan_covers_every_state() {
        let ids: Vec<String> = [
            "made", "running", "held", "failed", "voided", "never", "made", "queued",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let with = |ext: &str, state: DeliveryState, payout: Option<u64>| {
            let mut r = record(state);
            r.key = format!("ext:{ext}");
            r.external_id = Some(ext.into());
            r.payout_id = payout;
            r
        };
        let found = vec![
            with("made", completed(), Some(7)),
            with("running", DeliveryState::InProgress { deadline: NOW }, None),
            with(
                "held",
                DeliveryState::OutcomeUnknown { reason: "x".into() },
                None,
            ),
            with("failed", failed(), None),
            with("voided", DeliveryState::Cancelled, None),
            with("queued", DeliveryState::Queued { deadline: NOW }, None),
        ];
        let plan = plan_cancel(&ids, &found, NOW);
        assert_eq!(plan.payout_ids, vec![7]);
        assert_eq!(plan.blocked, vec!["running", "held", "queued"]);
        assert_eq!(plan.unknown, vec!["failed", "voided", "never"]);
        assert_eq!(plan.to_record, vec!["failed", "never"]);
    }

    #[test]
    fn cancel_plan_treats_an_expired_payout_as_unknown() {
        let mut r = record(completed());
        r.payout_id = Some(7);
        let plan = plan_cancel(&["pay-1".to_string()], &[r.clone()], r.expires_at);
        assert_eq!(plan.payout_ids, Vec::<u64>::new());
        assert_eq!(plan.to_record, vec!["pay-1"]);
    }

    #[test]
    fn settlement_holds_only_unknown_creates() {
        use CallEnd::*;
        assert_eq!(settle(Action::Create, Done), Settlement::Complete);
        assert_eq!(settle(Action::Create, NothingDone), Settlement::Fail);
        assert_eq!(settle(Action::Create, NotSent), Settlement::Fail);
        assert_eq!(settle(Action::Create, Unknown), Settlement::Hold);
        assert_eq!(settle(Action::Cancel, Unknown), Settlement::Fail);
        assert!(retry_at_once(Action::Cancel, Unknown));
        assert!(retry_at_once(Action::Cancel, NotSent));
        assert!(!retry_at_once(Action::Create, NotSent));
        assert!(!retry_at_once(Action::Create, Unknown));
    }

    #[test]
    fn a_batch_answers_200_only_when_every_item_is_final() {
        assert_eq!(batch_status(&[]), 200);
        assert_eq!(batch_status(&[201, 200, 400, 402, 422, 504]), 200);
        assert_eq!(batch_status(&[201, 409]), 409);
        assert_eq!(batch_status(&[201, 409, 503]), 503);
        assert_eq!(batch_status(&[201, 502]), 502);
        assert_eq!(batch_status(&[500, 201]), 500);
    }

    #[test]
    fn items_start_only_with_time_for_a_panel_call() {
        assert!(may_start_item(None, 10_000));
        assert!(may_start_item(Some(11_000), 10_000));
        assert!(!may_start_item(Some(10_999), 10_000));
    }

    #[test]
    fn bare_keys_are_external_ids() {
        assert_eq!(ItemKey::parse("payslip-123").as_str(), "ext:payslip-123");
        assert_eq!(ItemKey::parse("ext:p").as_str(), "ext:p");
        assert_eq!(ItemKey::parse("whid:msg_1").as_str(), "whid:msg_1");
        assert_eq!(ItemKey::parse("idem:k#2").as_str(), "idem:k#2");
        assert_eq!(
            ItemKey::parse("payslip-123").external_id(),
            Some("payslip-123")
        );
    }
}
