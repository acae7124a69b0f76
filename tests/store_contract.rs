//! One contract suite for the state store ports, written once over `&dyn DeliveryStore` /
//! `&dyn TokenStore` and run against the in-memory adapters and against DynamoDB on the moto
//! emulator (through the real AWS SDK, a fresh table per test).
//!
//! Test names: `<case>::memory` and `<case>::dynamodb`. The DynamoDB tests need
//! `AWS_ENDPOINT_URL` (run `scripts/test.sh`); without it they fail, never skip.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use payout_bridge::domain::Action;
use payout_bridge::ports::{
    Begin, CachedToken, DeliveryRecord, DeliveryState, DeliveryStore, RecordId, Secret, StoreError,
    TokenStore, Transition,
};
use payout_bridge::store::{
    create_table, DynamoDeliveryStore, DynamoTokenStore, MemoryDeliveryStore, MemoryTokenStore,
};

const DAY: i64 = 86_400;

// ---------------------------------------------------------------------------------------------
// Fixtures

struct Stores {
    delivery: Arc<dyn DeliveryStore>,
    token: Arc<dyn TokenStore>,
    dynamo: Option<(aws_sdk_dynamodb::Client, String)>,
}

impl Stores {
    fn memory() -> Self {
        Stores {
            delivery: Arc::new(MemoryDeliveryStore::new()),
            token: Arc::new(MemoryTokenStore::new()),
            dynamo: None,
        }
    }

    async fn dynamodb() -> Self {
        let conf = common::emulator_config().await;
        let client = aws_sdk_dynamodb::Client::new(&conf);
        let table = format!("bridge-test-{}", common::unique());
        create_table(&client, &table).await.expect("create table");
        Stores {
            delivery: Arc::new(DynamoDeliveryStore::new(client.clone(), &table)),
            token: Arc::new(DynamoTokenStore::new(client.clone(), &table)),
            dynamo: Some((client, table)),
        }
    }

    async fn cleanup(self) {
        if let Some((client, table)) = self.dynamo {
            let _ = client.delete_table().table_name(table).send().await;
        }
    }
}

/// Runs one contract case on both adapters: `<case>::memory` and `<case>::dynamodb`.
macro_rules! on_both {
    ($case:ident) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let stores = super::Stores::memory();
                super::$case(&stores).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dynamodb() {
                let stores = super::Stores::dynamodb().await;
                super::$case(&stores).await;
                stores.cleanup().await;
            }
        }
    };
}

fn record(route: &str, key: &str, attempt: &str, now: i64, deadline: i64) -> DeliveryRecord {
    DeliveryRecord {
        route: route.into(),
        key: key.into(),
        fingerprint: format!("fp-{key}"),
        state: DeliveryState::InProgress { deadline },
        attempt: attempt.into(),
        action: Action::Create,
        external_id: Some(format!("ext-{key}")),
        payout_id: None,
        created_at: now,
        updated_at: now,
        expires_at: now + DAY,
    }
}

fn completed(status: u16, body: &str) -> DeliveryState {
    DeliveryState::Completed {
        status,
        body: body.into(),
    }
}

fn failed(status: u16, body: &str) -> DeliveryState {
    DeliveryState::Failed {
        status,
        body: body.into(),
    }
}

/// The port's calls in positional form, to keep the cases below readable.
#[derive(Clone, Copy)]
struct St<'a>(&'a dyn DeliveryStore);

fn id<'a>(route: &'a str, key: &'a str) -> RecordId<'a> {
    RecordId { route, key }
}

fn to(state: &DeliveryState, payout_id: Option<u64>) -> Transition {
    Transition {
        state: state.clone(),
        payout_id,
        expires_at: None,
    }
}

impl St<'_> {
    async fn begin(&self, r: &DeliveryRecord, now: i64) -> Result<Begin, StoreError> {
        self.0.begin(r, now).await
    }
    async fn get(
        &self,
        route: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.0.get(id(route, key), now).await
    }
    async fn finish(
        &self,
        route: &str,
        key: &str,
        attempt: &str,
        state: &DeliveryState,
        payout_id: Option<u64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.0
            .finish(id(route, key), attempt, &to(state, payout_id), now)
            .await
    }
    async fn expire_in_progress(
        &self,
        route: &str,
        key: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.0.expire_in_progress(id(route, key), reason, now).await
    }
    async fn resolve(
        &self,
        route: &str,
        key: &str,
        state: &DeliveryState,
        payout_id: Option<u64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.0
            .resolve(id(route, key), &to(state, payout_id), now)
            .await
    }
    async fn pending(&self, now: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.0.pending(now).await
    }
    /// (externalId, state name, payout id) of the creates found, in the order found.
    async fn creates(&self, ids: &[&str], now: i64) -> Vec<(String, &'static str, Option<u64>)> {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let mut got: Vec<_> = self
            .0
            .creates_by_external_id(&ids, now)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.external_id.unwrap_or_default(),
                    r.state.name(),
                    r.payout_id,
                )
            })
            .collect();
        got.sort();
        got
    }
}

/// A create under an externalId's key (`ext:…`): one record per externalId across routes.
fn ext_record(route: &str, external_id: &str, attempt: &str, now: i64) -> DeliveryRecord {
    DeliveryRecord {
        key: format!("ext:{external_id}"),
        external_id: Some(external_id.into()),
        fingerprint: format!("fp-{external_id}"),
        ..record(route, external_id, attempt, now, now + 30)
    }
}

fn existing(answer: Begin) -> DeliveryRecord {
    match answer {
        Begin::Existing(rec) => rec,
        Begin::Started => panic!("expected Existing, got Started"),
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery store contract

on_both!(begin_then_existing);
async fn begin_then_existing(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    let first = record("crm", "k1", "a1", t, t + 30);
    assert_eq!(store.get("crm", "k1", t).await.unwrap(), None);
    assert_eq!(store.begin(&first, t).await.unwrap(), Begin::Started);
    assert_eq!(
        store.get("crm", "k1", t).await.unwrap(),
        Some(first.clone())
    );

    // Another attempt (even with another fingerprint) sees the record and changes nothing.
    let mut second = record("crm", "k1", "a2", t + 1, t + 31);
    second.fingerprint = "other".into();
    assert_eq!(existing(store.begin(&second, t + 1).await.unwrap()), first);
    assert_eq!(
        store.get("crm", "k1", t + 1).await.unwrap(),
        Some(first.clone())
    );

    // An identical repeat of one's own begin (a retried request) is recognised.
    assert_eq!(store.begin(&first, t).await.unwrap(), Begin::Started);

    // Completed and OutcomeUnknown records are never taken over.
    assert!(store
        .finish(
            "crm",
            "k1",
            "a1",
            &completed(201, "{\"id\":7}"),
            None,
            t + 2
        )
        .await
        .unwrap());
    let rec = existing(store.begin(&second, t + 3).await.unwrap());
    assert_eq!(rec.state, completed(201, "{\"id\":7}"));
    assert_eq!(rec.attempt, "a1");
    assert_eq!(rec.updated_at, t + 2);

    let third = record("crm", "k2", "a1", t, t + 30);
    assert_eq!(store.begin(&third, t).await.unwrap(), Begin::Started);
    assert!(store
        .expire_in_progress("crm", "k2", "timeout", t + 31)
        .await
        .unwrap());
    let rec = existing(
        store
            .begin(&record("crm", "k2", "a2", t + 40, t + 70), t + 40)
            .await
            .unwrap(),
    );
    assert_eq!(
        rec.state,
        DeliveryState::OutcomeUnknown {
            reason: "timeout".into()
        }
    );

    // Routes and keys are separate name spaces, also with '#' in them.
    let a = record("a#b", "c", "x", t, t + 30);
    let b = record("a", "b#c", "x", t, t + 30);
    assert_eq!(store.begin(&a, t).await.unwrap(), Begin::Started);
    assert_eq!(store.begin(&b, t).await.unwrap(), Begin::Started);
    assert_eq!(store.get("a#b", "c", t).await.unwrap(), Some(a));
    assert_eq!(store.get("a", "b#c", t).await.unwrap(), Some(b));
    let other_route = record("payroll", "k1", "a9", t, t + 30);
    assert_eq!(store.begin(&other_route, t).await.unwrap(), Begin::Started);
}

on_both!(queued_marker_claimed_only_by_its_worker);
async fn queued_marker_claimed_only_by_its_worker(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    let queued = |attempt: &str, deadline: i64| DeliveryRecord {
        state: DeliveryState::Queued { deadline },
        ..record("payrun", "ext:q-1", attempt, t, t + 30)
    };
    // A queued route writes the marker; a redelivery meets it and changes nothing.
    let marker = queued("q1", t + 100);
    assert_eq!(store.begin(&marker, t).await.unwrap(), Begin::Started);
    assert_eq!(
        existing(store.begin(&queued("q2", t + 101), t).await.unwrap()),
        marker
    );
    assert!(
        store.pending(t + 200).await.unwrap().is_empty(),
        "QUEUED needs no person"
    );

    // Another payload, or another route, cannot claim it.
    let mut other = record("payrun", "ext:q-1", "w0", t + 1, t + 31);
    other.fingerprint = "other".into();
    assert_eq!(existing(store.begin(&other, t + 1).await.unwrap()), marker);
    // The worker (IN_PROGRESS, same route and payload) claims it, then settles it.
    let running = record("payrun", "ext:q-1", "w1", t + 1, t + 31);
    assert_eq!(store.begin(&running, t + 1).await.unwrap(), Begin::Started);
    assert_eq!(
        store.get("payrun", "ext:q-1", t + 1).await.unwrap(),
        Some(running.clone())
    );
    let again = record("payrun", "ext:q-1", "w2", t + 2, t + 32);
    assert_eq!(
        existing(store.begin(&again, t + 2).await.unwrap()).attempt,
        "w1",
        "a second worker meets the running one"
    );
    assert!(store
        .finish(
            "payrun",
            "ext:q-1",
            "w1",
            &completed(201, "{}"),
            Some(7),
            t + 3
        )
        .await
        .unwrap());
    assert_eq!(
        existing(store.begin(&queued("q3", t + 104), t + 4).await.unwrap()).state,
        completed(201, "{}")
    );

    // A marker whose message could not be sent is released by its own attempt (FAILED).
    let lost = DeliveryRecord {
        key: "ext:q-2".into(),
        fingerprint: "fp-ext:q-2".into(),
        ..queued("q4", t + 100)
    };
    assert_eq!(store.begin(&lost, t).await.unwrap(), Begin::Started);
    assert!(!store
        .finish(
            "payrun",
            "ext:q-2",
            "nobody",
            &failed(503, "{}"),
            None,
            t + 1
        )
        .await
        .unwrap());
    assert!(store
        .finish("payrun", "ext:q-2", "q4", &failed(503, "{}"), None, t + 1)
        .await
        .unwrap());
    let requeued = DeliveryRecord {
        key: "ext:q-2".into(),
        fingerprint: "fp-ext:q-2".into(),
        ..queued("q5", t + 102)
    };
    assert_eq!(store.begin(&requeued, t + 2).await.unwrap(), Begin::Started);

    // Past its deadline (the queue's retention) a marker is startable again.
    let stale = DeliveryRecord {
        key: "ext:q-3".into(),
        fingerprint: "fp-ext:q-3".into(),
        ..queued("q6", t + 10)
    };
    assert_eq!(store.begin(&stale, t).await.unwrap(), Begin::Started);
    let fresh = DeliveryRecord {
        key: "ext:q-3".into(),
        fingerprint: "fp-ext:q-3".into(),
        ..queued("q7", t + 200)
    };
    assert_eq!(
        existing(store.begin(&fresh, t + 10).await.unwrap()).attempt,
        "q6"
    );
    assert_eq!(store.begin(&fresh, t + 11).await.unwrap(), Begin::Started);
    assert_eq!(
        store
            .get("payrun", "ext:q-3", t + 11)
            .await
            .unwrap()
            .unwrap()
            .attempt,
        "q7"
    );
}

on_both!(takeover_of_failed);
async fn takeover_of_failed(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    let first = record("crm", "k", "a1", t, t + 30);
    assert_eq!(store.begin(&first, t).await.unwrap(), Begin::Started);
    assert!(store
        .finish("crm", "k", "a1", &failed(422, "rejected"), None, t + 1)
        .await
        .unwrap());
    let failed_rec = store.get("crm", "k", t + 1).await.unwrap().unwrap();
    assert_eq!(failed_rec.state, failed(422, "rejected"));

    let second = record("crm", "k", "a2", t + 5, t + 35);
    assert_eq!(store.begin(&second, t + 5).await.unwrap(), Begin::Started);
    assert_eq!(
        store.get("crm", "k", t + 5).await.unwrap(),
        Some(second.clone())
    );
    // The first attempt has lost the record.
    assert!(!store
        .finish("crm", "k", "a1", &completed(201, "late"), None, t + 6)
        .await
        .unwrap());
    assert!(store
        .finish("crm", "k", "a2", &completed(201, "ok"), None, t + 6)
        .await
        .unwrap());
}

on_both!(finish_conditional_on_attempt);
async fn finish_conditional_on_attempt(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    let rec = record("crm", "k", "a1", t, t + 30);
    assert_eq!(store.begin(&rec, t).await.unwrap(), Begin::Started);

    // Wrong attempt: nothing written.
    assert!(!store
        .finish("crm", "k", "a2", &completed(201, "x"), None, t + 1)
        .await
        .unwrap());
    assert_eq!(
        store.get("crm", "k", t + 1).await.unwrap(),
        Some(rec.clone())
    );

    // Finish after the deadline but before anyone expired it is still the owner's.
    let done = completed(201, "");
    assert!(store
        .finish("crm", "k", "a1", &done, None, t + 40)
        .await
        .unwrap());
    let got = store.get("crm", "k", t + 40).await.unwrap().unwrap();
    assert_eq!(
        got,
        DeliveryRecord {
            state: done.clone(),
            updated_at: t + 40,
            ..rec.clone()
        }
    );
    // An identical repeat (a retried request) is recognised; anything else is refused.
    assert!(store
        .finish("crm", "k", "a1", &done, None, t + 40)
        .await
        .unwrap());
    assert!(!store
        .finish("crm", "k", "a1", &failed(500, "x"), None, t + 41)
        .await
        .unwrap());
    assert!(!store
        .finish("crm", "k", "a1", &done, None, t + 41)
        .await
        .unwrap());
    assert_eq!(store.get("crm", "k", t + 41).await.unwrap(), Some(got));

    // Missing record.
    assert!(!store
        .finish("crm", "missing", "a1", &done, None, t)
        .await
        .unwrap());

    // After expiry to OutcomeUnknown the owner can no longer finish.
    let rec2 = record("crm", "k2", "a1", t, t + 30);
    assert_eq!(store.begin(&rec2, t).await.unwrap(), Begin::Started);
    assert!(store
        .expire_in_progress("crm", "k2", "stale", t + 31)
        .await
        .unwrap());
    assert!(!store
        .finish("crm", "k2", "a1", &done, None, t + 32)
        .await
        .unwrap());

    // Finishing into OutcomeUnknown (the panel did not answer) is allowed and shows as pending.
    let rec3 = record("crm", "k3", "a1", t, t + 30);
    assert_eq!(store.begin(&rec3, t).await.unwrap(), Begin::Started);
    let unknown = DeliveryState::OutcomeUnknown {
        reason: "panel timeout".into(),
    };
    assert!(store
        .finish("crm", "k3", "a1", &unknown, None, t + 2)
        .await
        .unwrap());
    let pending = store.pending(t + 3).await.unwrap();
    assert!(
        pending.iter().any(|r| r.key == "k3" && r.state == unknown),
        "{pending:?}"
    );
}

on_both!(expire_in_progress_only_past_deadline);
async fn expire_in_progress_only_past_deadline(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    let rec = record("crm", "k", "a1", t, t + 30);
    assert_eq!(store.begin(&rec, t).await.unwrap(), Begin::Started);
    assert!(!store
        .expire_in_progress("crm", "k", "stale", t + 29)
        .await
        .unwrap());
    assert!(!store
        .expire_in_progress("crm", "k", "stale", t + 30)
        .await
        .unwrap());
    assert_eq!(
        store.get("crm", "k", t + 30).await.unwrap(),
        Some(rec.clone())
    );
    assert!(store
        .expire_in_progress("crm", "k", "stale", t + 31)
        .await
        .unwrap());
    let got = store.get("crm", "k", t + 31).await.unwrap().unwrap();
    assert_eq!(
        got,
        DeliveryRecord {
            state: DeliveryState::OutcomeUnknown {
                reason: "stale".into()
            },
            updated_at: t + 31,
            ..rec
        }
    );
    assert!(!store
        .expire_in_progress("crm", "k", "again", t + 32)
        .await
        .unwrap());
    assert!(!store
        .expire_in_progress("crm", "missing", "x", t + 32)
        .await
        .unwrap());

    let rec2 = record("crm", "k2", "a1", t, t + 30);
    assert_eq!(store.begin(&rec2, t).await.unwrap(), Begin::Started);
    assert!(store
        .finish("crm", "k2", "a1", &completed(200, "ok"), None, t + 1)
        .await
        .unwrap());
    assert!(!store
        .expire_in_progress("crm", "k2", "x", t + 100)
        .await
        .unwrap());
}

on_both!(resolve_only_unknown_or_stale);
async fn resolve_only_unknown_or_stale(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    let ok = completed(201, "{\"id\":9}");

    // Live IN_PROGRESS: not yet.
    let live = record("crm", "live", "a1", t, t + 30);
    assert_eq!(store.begin(&live, t).await.unwrap(), Begin::Started);
    assert!(!store
        .resolve("crm", "live", &ok, None, t + 30)
        .await
        .unwrap());
    // Stale IN_PROGRESS: yes, with the payout id the operator found.
    assert!(store
        .resolve("crm", "live", &ok, Some(9), t + 31)
        .await
        .unwrap());
    let got = store.get("crm", "live", t + 31).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.updated_at, got.payout_id),
        (ok.clone(), t + 31, Some(9))
    );
    // Completed: no more.
    assert!(!store
        .resolve("crm", "live", &failed(400, "x"), None, t + 32)
        .await
        .unwrap());

    // OutcomeUnknown: yes, to Failed as well.
    let unk = record("crm", "unk", "a1", t, t + 30);
    assert_eq!(store.begin(&unk, t).await.unwrap(), Begin::Started);
    assert!(store
        .expire_in_progress("crm", "unk", "stale", t + 31)
        .await
        .unwrap());
    assert!(store
        .resolve("crm", "unk", &failed(0, "never sent"), None, t + 32)
        .await
        .unwrap());
    assert_eq!(
        store
            .get("crm", "unk", t + 32)
            .await
            .unwrap()
            .unwrap()
            .state,
        failed(0, "never sent")
    );
    // Failed: no.
    assert!(!store
        .resolve("crm", "unk", &ok, None, t + 33)
        .await
        .unwrap());
    // Missing: no.
    assert!(!store
        .resolve("crm", "missing", &ok, None, t + 33)
        .await
        .unwrap());
    // A refused resolve writes nothing.
    assert!(!store
        .resolve("crm", "unk", &ok, Some(10), t + 33)
        .await
        .unwrap());
    assert_eq!(
        store
            .get("crm", "unk", t + 33)
            .await
            .unwrap()
            .unwrap()
            .payout_id,
        None
    );
    // Another route's record is not this route's to resolve.
    let held = ext_record("payroll", "E-11", "a1", t);
    assert_eq!(store.begin(&held, t).await.unwrap(), Begin::Started);
    assert!(!store
        .resolve("crm", "ext:E-11", &ok, Some(11), t + 31)
        .await
        .unwrap());
    assert!(store
        .resolve("payroll", "ext:E-11", &ok, Some(11), t + 31)
        .await
        .unwrap());
    // Only to Completed or Failed.
    let bad = DeliveryState::OutcomeUnknown { reason: "x".into() };
    assert!(matches!(
        store.resolve("crm", "unk", &bad, None, t + 33).await,
        Err(StoreError::Refused(_))
    ));
}

on_both!(pending_lists_what_needs_a_person);
async fn pending_lists_what_needs_a_person(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    assert_eq!(store.pending(t).await.unwrap(), vec![]);
    // created_at orders the answer.
    let live = record("crm", "live", "a", t, t + 100);
    let stale = record("crm", "stale", "a", t + 1, t + 10);
    let unknown = record("crm", "unknown", "a", t + 2, t + 10);
    let done = record("crm", "done", "a", t + 3, t + 10);
    let fail = record("crm", "fail", "a", t + 4, t + 10);
    let mut gone = record("crm", "gone", "a", t + 5, t + 10);
    gone.expires_at = t + 20;
    for r in [&live, &stale, &unknown, &done, &fail, &gone] {
        assert_eq!(store.begin(r, r.created_at).await.unwrap(), Begin::Started);
    }
    assert!(store
        .expire_in_progress("crm", "unknown", "stale", t + 11)
        .await
        .unwrap());
    assert!(store
        .expire_in_progress("crm", "gone", "stale", t + 11)
        .await
        .unwrap());
    assert!(store
        .finish("crm", "done", "a", &completed(200, "ok"), None, t + 5)
        .await
        .unwrap());
    assert!(store
        .finish("crm", "fail", "a", &failed(400, "no"), None, t + 5)
        .await
        .unwrap());

    let keys = |v: Vec<DeliveryRecord>| v.into_iter().map(|r| r.key).collect::<Vec<_>>();
    // At t+10 `stale` is exactly at its deadline: not yet pending.
    assert_eq!(
        keys(store.pending(t + 12).await.unwrap()),
        ["stale", "unknown", "gone"]
    );
    assert_eq!(
        keys(store.pending(t + 10).await.unwrap()),
        ["unknown", "gone"]
    );
    // `gone`'s expiry (t+20) does not take it off the list: an unresolved record never expires.
    let at = t + 20;
    let pending = store.pending(at).await.unwrap();
    assert_eq!(keys(pending.clone()), ["stale", "unknown", "gone"]);
    assert_eq!(
        keys(store.pending(at + 30 * DAY).await.unwrap()),
        ["live", "stale", "unknown", "gone"]
    );
    assert_eq!(
        pending[1].state,
        DeliveryState::OutcomeUnknown {
            reason: "stale".into()
        }
    );
    assert!(store
        .resolve("crm", "unknown", &completed(201, "x"), None, at)
        .await
        .unwrap());
    assert_eq!(keys(store.pending(at).await.unwrap()), ["stale", "gone"]);
    // The live record becomes pending once its deadline has passed.
    assert_eq!(
        keys(store.pending(t + 101).await.unwrap()),
        ["live", "stale", "gone"]
    );
}

on_both!(concurrent_begins_one_started);
async fn concurrent_begins_one_started(s: &Stores) {
    let t = common::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = Arc::clone(&s.delivery);
        tasks.spawn(async move {
            let rec = record("crm", "hot", &format!("attempt-{i}"), t, t + 30);
            store.begin(&rec, t).await
        });
    }
    let mut started = 0;
    let mut existing_attempts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap().unwrap() {
            Begin::Started => started += 1,
            Begin::Existing(rec) => existing_attempts.push(rec.attempt),
        }
    }
    assert_eq!(started, 1);
    assert_eq!(existing_attempts.len(), 49);
    let winner = s
        .delivery
        .get(id("crm", "hot"), t)
        .await
        .unwrap()
        .unwrap()
        .attempt;
    assert!(
        existing_attempts.iter().all(|a| *a == winner),
        "{existing_attempts:?}"
    );
}

on_both!(expiry_applies_only_to_settled_records);
async fn expiry_applies_only_to_settled_records(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    // Day 8 (and later): an IN_PROGRESS record past its expiry is still there, untouchable by a
    // new begin, and still the owner's to finish.
    let mut rec = record("crm", "k", "a1", t, t + 30);
    rec.expires_at = t + 10;
    assert_eq!(store.begin(&rec, t).await.unwrap(), Begin::Started);
    let day8 = t + 8 * DAY;
    assert_eq!(
        store.get("crm", "k", day8).await.unwrap(),
        Some(rec.clone())
    );
    let again = record("crm", "k", "a2", day8, day8 + 30);
    assert_eq!(existing(store.begin(&again, day8).await.unwrap()), rec);
    // OUTCOME_UNKNOWN past its expiry: still held, still resolvable.
    assert!(store
        .expire_in_progress("crm", "k", "stale", day8)
        .await
        .unwrap());
    assert!(matches!(
        store.begin(&again, day8 + DAY).await.unwrap(),
        Begin::Existing(_)
    ));
    assert!(store
        .resolve("crm", "k", &completed(201, "x"), Some(5), day8 + DAY)
        .await
        .unwrap());
    // Once settled, the expiry counts: gone at `expires_at`, and a new begin starts afresh.
    assert_eq!(store.get("crm", "k", day8 + DAY).await.unwrap(), None);
    assert_eq!(
        store.begin(&again, day8 + DAY).await.unwrap(),
        Begin::Started
    );

    // A settled record is live until its expiry and not after.
    let mut done = record("crm", "done", "a1", t, t + 30);
    done.expires_at = t + 10;
    assert_eq!(store.begin(&done, t).await.unwrap(), Begin::Started);
    assert!(store
        .finish("crm", "done", "a1", &completed(200, "x"), None, t + 1)
        .await
        .unwrap());
    assert!(store.get("crm", "done", t + 9).await.unwrap().is_some());
    assert_eq!(store.get("crm", "done", t + 10).await.unwrap(), None);
    assert!(matches!(
        store
            .begin(&record("crm", "done", "a2", t + 9, t + 40), t + 9)
            .await
            .unwrap(),
        Begin::Existing(_)
    ));
    assert_eq!(
        store
            .begin(&record("crm", "done", "a3", t + 10, t + 40), t + 10)
            .await
            .unwrap(),
        Begin::Started
    );
}

on_both!(external_ids_name_one_record_across_routes);
async fn external_ids_name_one_record_across_routes(s: &Stores) {
    let store = St(&*s.delivery);
    let t = common::now();
    assert_eq!(store.creates(&[], t).await, vec![]);
    let mine = ext_record("payroll", "E-1", "a1", t);
    assert_eq!(store.begin(&mine, t).await.unwrap(), Begin::Started);
    // Another route's create with the same externalId meets the same record.
    let theirs = ext_record("crm", "E-1", "b1", t);
    assert_eq!(existing(store.begin(&theirs, t).await.unwrap()), mine);
    // ... but reads by id answer only the route's own record.
    assert_eq!(store.get("crm", "ext:E-1", t).await.unwrap(), None);
    assert!(store.get("payroll", "ext:E-1", t).await.unwrap().is_some());
    // Settled with its payout id, which cancels find.
    assert!(store
        .finish(
            "payroll",
            "ext:E-1",
            "a1",
            &completed(201, "{}"),
            Some(4711),
            t + 1
        )
        .await
        .unwrap());
    assert_eq!(
        store.creates(&["E-1", "missing", "E-1"], t + 1).await,
        vec![("E-1".to_string(), "COMPLETED", Some(4711))]
    );
    // A running or held create is found too (a cancel must wait for it).
    let running = ext_record("payroll", "E-2", "a1", t);
    assert_eq!(store.begin(&running, t).await.unwrap(), Begin::Started);
    assert_eq!(
        store.creates(&["E-2"], t).await,
        vec![("E-2".to_string(), "IN_PROGRESS", None)]
    );
    // Route-scoped keys are not externalIds.
    let plain = record("payroll", "E-3", "a1", t, t + 30);
    assert_eq!(store.begin(&plain, t).await.unwrap(), Begin::Started);
    assert_eq!(store.creates(&["E-3"], t).await, vec![]);
}

on_both!(cancellation_before_create);
async fn cancellation_before_create(s: &Stores) {
    let d = &*s.delivery;
    let store = St(d);
    let t = common::now();
    let keep = t + 7 * DAY;
    // Nothing known: recorded; a create that comes later meets the CANCELLED record.
    assert!(d.record_cancellation("void", "V-1", keep, t).await.unwrap());
    assert_eq!(
        store.creates(&["V-1"], t).await,
        vec![("V-1".to_string(), "CANCELLED", None)]
    );
    let create = ext_record("payroll", "V-1", "a1", t + 1);
    let rec = existing(store.begin(&create, t + 1).await.unwrap());
    assert_eq!(rec.state, DeliveryState::Cancelled);
    // Recording it again is a no-op that answers true.
    assert!(d
        .record_cancellation("void", "V-1", keep, t + 2)
        .await
        .unwrap());
    // A FAILED create (nothing made at the panel) becomes CANCELLED.
    let failing = ext_record("payroll", "V-2", "a1", t);
    assert_eq!(store.begin(&failing, t).await.unwrap(), Begin::Started);
    assert!(store
        .finish(
            "payroll",
            "ext:V-2",
            "a1",
            &failed(503, "down"),
            None,
            t + 1
        )
        .await
        .unwrap());
    assert!(d
        .record_cancellation("void", "V-2", keep, t + 2)
        .await
        .unwrap());
    assert_eq!(
        store.creates(&["V-2"], t + 2).await,
        vec![("V-2".to_string(), "CANCELLED", None)]
    );
    // A running, held or completed create is never overwritten.
    let running = ext_record("payroll", "V-3", "a1", t);
    assert_eq!(store.begin(&running, t).await.unwrap(), Begin::Started);
    assert!(!d
        .record_cancellation("void", "V-3", keep, t + 1)
        .await
        .unwrap());
    assert!(store
        .finish(
            "payroll",
            "ext:V-3",
            "a1",
            &completed(201, "{}"),
            Some(9),
            t + 1
        )
        .await
        .unwrap());
    assert!(!d
        .record_cancellation("void", "V-3", keep, t + 2)
        .await
        .unwrap());
    assert_eq!(
        store.creates(&["V-3"], t + 2).await,
        vec![("V-3".to_string(), "COMPLETED", Some(9))]
    );
    // After its retention the cancellation is gone like any settled record.
    assert_eq!(store.creates(&["V-1"], keep).await, vec![]);
    assert_eq!(
        store
            .begin(&ext_record("payroll", "V-1", "a2", keep), keep)
            .await
            .unwrap(),
        Begin::Started
    );
}

on_both!(concurrent_create_and_cancel_one_wins);
async fn concurrent_create_and_cancel_one_wins(s: &Stores) {
    let t = common::now();
    for i in 0..10 {
        let ext = format!("race-{i}");
        let (a, b) = (Arc::clone(&s.delivery), Arc::clone(&s.delivery));
        let rec = ext_record("payroll", &ext, "a1", t);
        let e2 = ext.clone();
        let create = tokio::spawn(async move { a.begin(&rec, t).await });
        let cancel =
            tokio::spawn(async move { b.record_cancellation("void", &e2, t + DAY, t).await });
        let started = matches!(create.await.unwrap().unwrap(), Begin::Started);
        let cancelled = cancel.await.unwrap().unwrap();
        assert!(
            started ^ cancelled,
            "started={started} cancelled={cancelled}"
        );
        let state = St(&*s.delivery).creates(&[&ext], t).await[0].1;
        assert_eq!(state, if started { "IN_PROGRESS" } else { "CANCELLED" });
    }
}

on_both!(concurrent_finish_and_expire_one_wins);
async fn concurrent_finish_and_expire_one_wins(s: &Stores) {
    let t = common::now();
    for i in 0..10u64 {
        let ext = format!("R{i}");
        let rec = ext_record("crm", &ext, "a1", t);
        assert_eq!(s.delivery.begin(&rec, t).await.unwrap(), Begin::Started);
        let (a, b) = (Arc::clone(&s.delivery), Arc::clone(&s.delivery));
        let (k1, k2) = (format!("ext:{ext}"), format!("ext:{ext}"));
        let finish = tokio::spawn(async move {
            St(&*a)
                .finish("crm", &k1, "a1", &completed(201, "x"), Some(i), t + 31)
                .await
        });
        let expire = tokio::spawn(async move {
            St(&*b)
                .expire_in_progress("crm", &k2, "stale", t + 31)
                .await
        });
        let (finished, expired) = (
            finish.await.unwrap().unwrap(),
            expire.await.unwrap().unwrap(),
        );
        assert!(finished ^ expired, "finish={finished} expire={expired}");
        let found = St(&*s.delivery).creates(&[&ext], t + 31).await;
        assert_eq!(finished, found[0].1 == "COMPLETED");
        assert_eq!(finished, found[0].2 == Some(i));
    }
}

// ---------------------------------------------------------------------------------------------
// Token store contract

on_both!(token_save_load_invalidate);
async fn token_save_load_invalidate(s: &Stores) {
    let store = &*s.token;
    let t = common::now();
    assert_eq!(store.load().await.unwrap(), None);
    store.invalidate(&Secret::new("none")).await.unwrap();
    let old = CachedToken {
        token: Secret::new("tok-1"),
        expires_at: t + 60,
    };
    let new = CachedToken {
        token: Secret::new("tok-2"),
        expires_at: t + 3600,
    };
    store.save(&old).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(old.clone()));
    store.save(&new).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(new.clone()));
    // A 401 on the old token must not throw away the new one.
    store.invalidate(&old.token).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(new.clone()));
    store.invalidate(&new.token).await.unwrap();
    assert_eq!(store.load().await.unwrap(), None);
    // Expired tokens are returned; the caller checks expires_at.
    let expired = CachedToken {
        token: Secret::new("tok-3"),
        expires_at: t - 10,
    };
    store.save(&expired).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(expired));
}

on_both!(lease_exclusive_and_retakeable);
async fn lease_exclusive_and_retakeable(s: &Stores) {
    let store = &*s.token;
    let t = common::now();
    assert!(store.try_lease("a", t, 30).await.unwrap());
    assert!(!store.try_lease("b", t + 1, 30).await.unwrap());
    // The holder may take it again; that extends it (to t+32).
    assert!(store.try_lease("a", t + 2, 30).await.unwrap());
    assert!(!store.try_lease("b", t + 31, 30).await.unwrap());
    // Run out: anybody may take it.
    assert!(store.try_lease("b", t + 32, 30).await.unwrap());
    // Only the holder's release counts.
    store.release_lease("a").await.unwrap();
    assert!(!store.try_lease("c", t + 33, 30).await.unwrap());
    store.release_lease("b").await.unwrap();
    assert!(store.try_lease("c", t + 33, 30).await.unwrap());
    store.release_lease("c").await.unwrap();
    store.release_lease("c").await.unwrap();
    // The token is a separate item.
    assert_eq!(store.load().await.unwrap(), None);
}

on_both!(concurrent_leases_one_holder);
async fn concurrent_leases_one_holder(s: &Stores) {
    let t = common::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&s.token);
        tasks.spawn(async move { store.try_lease(&format!("owner-{i}"), t, 30).await });
    }
    let mut held = 0;
    while let Some(joined) = tasks.join_next().await {
        held += usize::from(joined.unwrap().unwrap());
    }
    assert_eq!(held, 1);
}

// ---------------------------------------------------------------------------------------------
// DynamoDB only: table set-up and error mapping

#[tokio::test]
async fn dynamodb_create_table_is_idempotent() {
    let s = Stores::dynamodb().await;
    let (client, table) = s.dynamo.clone().unwrap();
    create_table(&client, &table).await.unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("ttl"));
    let desc = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let gsis = desc.table().unwrap().global_secondary_indexes();
    assert_eq!(gsis.len(), 1);
    assert_eq!(gsis[0].index_name(), Some("open-index"));
    s.cleanup().await;
}

#[tokio::test]
async fn dynamodb_missing_table_is_not_found() {
    let conf = common::emulator_config().await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let store = DynamoDeliveryStore::new(client.clone(), "no-such-table-here");
    let t = common::now();
    match store.get(id("crm", "k"), t).await {
        Err(StoreError::NotFound(msg)) => {
            assert!(msg.contains("ResourceNotFoundException"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    let tokens = DynamoTokenStore::new(client, "no-such-table-here");
    assert!(matches!(tokens.load().await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn dynamodb_unreachable_is_unavailable_and_bounded() {
    // A loopback port nobody listens on: connection refused on every attempt.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = common::emulator_config().await;
    // Service-level endpoint: beats AWS_ENDPOINT_URL from the environment.
    let conf = aws_sdk_dynamodb::config::Builder::from(&base)
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let store = DynamoDeliveryStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "t");
    let started = Instant::now();
    let result = store.get(id("crm", "k"), common::now()).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dynamodb_malformed_item_is_corrupt() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let s = Stores::dynamodb().await;
    let (client, table) = s.dynamo.clone().unwrap();
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("DELIVERY#crm#bad".into()))
        .item("state", AttributeValue::S("SOMETHING_NEW".into()))
        .send()
        .await
        .unwrap();
    let t = common::now();
    assert!(matches!(
        s.delivery.get(id("crm", "bad"), t).await,
        Err(StoreError::Corrupt(_))
    ));
    s.cleanup().await;
}

#[tokio::test]
async fn dynamodb_creates_by_external_id_beyond_one_batch_and_legacy_links() {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    let s = Stores::dynamodb().await;
    let (client, table) = s.dynamo.clone().unwrap();
    let t = common::now();
    // 230 `EXTERNAL#` link items as versions before this one wrote them (BatchWriteItem, 25 a
    // call): more than two BatchGetItem calls' worth (100 keys each), read as completed creates.
    let mut expected = Vec::new();
    for chunk in (0..230u64).collect::<Vec<_>>().chunks(25) {
        let mut writes = Vec::new();
        for &i in chunk {
            let item = [
                ("pk", AttributeValue::S(format!("EXTERNAL#B{i}"))),
                ("external_id", AttributeValue::S(format!("B{i}"))),
                ("payout_id", AttributeValue::N((10_000 + i).to_string())),
                ("route", AttributeValue::S("crm".into())),
                ("ttl", AttributeValue::N((t + DAY).to_string())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let put = PutRequest::builder().set_item(Some(item)).build().unwrap();
            writes.push(WriteRequest::builder().put_request(put).build());
            expected.push((format!("B{i}"), "COMPLETED", Some(10_000 + i)));
        }
        let out = client
            .batch_write_item()
            .request_items(&table, writes)
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));
    }
    let mut ids: Vec<String> = (0..230u64).rev().map(|i| format!("B{i}")).collect();
    ids.insert(150, "missing".into());
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let got = St(&*s.delivery).creates(&refs, t).await;
    expected.sort();
    assert_eq!(got, expected);
    // A legacy link replays its payout to a redelivery on its route.
    let again = ext_record("crm", "B7", "a1", t);
    let rec = existing(s.delivery.begin(&again, t).await.unwrap());
    assert_eq!(rec.payout_id, Some(10_007));
    s.cleanup().await;
}
