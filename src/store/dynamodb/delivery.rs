//! [`DynamoDeliveryStore`]: delivery records and the externalId index on DynamoDB.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Client;

use super::item::{
    delivery_from_item, delivery_item, external_pk, is_expired, key_of, n, record_pk, s,
    state_attrs, Item, ACTION, ATTEMPT, DEADLINE, EXPIRES_AT, FINGERPRINT, OPEN_VALUE, PAYOUT_ID,
    ROUTE, STATE, UPDATED_AT,
};
use super::{OPEN_ATTR, OPEN_AT_ATTR, OPEN_INDEX, PK, TTL_ATTR};
use crate::aws::sdk_error;
use crate::domain::delivery::{self, cancellation_record};
use crate::ports::{
    Begin, DeliveryRecord, DeliveryState, DeliveryStore, RecordId, StoreError, Transition,
};

/// The condition of every write that starts a record (`begin`, `record_cancellation`): the
/// rule `domain::delivery::may_start` in DynamoDB's words. Nothing there; or FAILED; or settled
/// and past its expiry (only settled records carry a `ttl`); or QUEUED past its deadline.
const MAY_START: &str = "attribute_not_exists(#pk) OR #state = :failed OR #ttl <= :now \
    OR (#state = :queued AND #deadline < :now)";
/// Added to [`MAY_START`] when the worker begins a queued command (`domain::delivery::is_claim`):
/// a QUEUED record of the same route, action and payload.
const CLAIM: &str =
    " OR (#state = :queued AND #route = :route AND #fingerprint = :fp AND #action = :action)";

/// How often `begin` re-tries its conditional put when the record it collided with vanished
/// before it could be read, and how often `finish`/`resolve` re-try a transaction cancelled by a
/// concurrent transaction on the same item.
const MAX_RACE_RETRIES: usize = 3;
/// BatchGetItem takes at most 100 keys.
const BATCH_GET_MAX: usize = 100;
/// Rounds of BatchGetItem for keys DynamoDB left unprocessed (throttling) before giving up.
const MAX_UNPROCESSED_ROUNDS: usize = 5;

/// Delivery records (`DELIVERY#…`) and the externalId index (`EXTERNAL#…`) in the bridge table.
/// Cheap to clone (the SDK client is reference-counted).
#[derive(Clone, Debug)]
pub struct DynamoDeliveryStore {
    client: Client,
    table: String,
}

impl DynamoDeliveryStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDeliveryStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The live record of `id.route` under `id.key`, read with ConsistentRead (1 GetItem).
    async fn read(&self, id: RecordId<'_>, now: i64) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(self
            .read_any(&record_pk(id.route, id.key))
            .await?
            .filter(|r| r.is_live(now) && r.route == id.route))
    }

    /// A conditional move into `to` (one UpdateItem). A settled state starts the record's
    /// expiry (`ttl` = its `expires_at`, or the transition's new one). `condition` and its values come from the caller;
    /// `own_write` recognises the caller's own earlier write when a retried request finds the
    /// condition already consumed.
    async fn transition(
        &self,
        operation: &'static str,
        id: RecordId<'_>,
        to: &Transition,
        condition: Expr,
        now: i64,
        own_write: impl Fn(&DeliveryRecord) -> bool,
    ) -> Result<bool, StoreError> {
        let mut update = Expr::default();
        let attrs = state_attrs(&to.state);
        for (name, value) in attrs.set {
            update.set(name, value);
        }
        update.set(UPDATED_AT, n(now));
        if let Some(payout_id) = to.payout_id {
            update.set(PAYOUT_ID, n(payout_id));
        }
        match to.expires_at {
            Some(expires_at) => {
                update.set(EXPIRES_AT, n(expires_at));
                if to.state.is_settled() {
                    update.set(TTL_ATTR, n(expires_at));
                }
            }
            None if to.state.is_settled() => update.copy(TTL_ATTR, EXPIRES_AT),
            None => {}
        }
        for name in attrs.remove {
            update.remove(name);
        }
        let update_expression = update.update_expression();
        let condition_expression = condition.condition.clone();
        let (names, values) = Expr::merge(update, condition);
        let pk = record_pk(id.route, id.key);
        let mut round = 0;
        loop {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_of(pk.clone())))
                .update_expression(update_expression.clone())
                .condition_expression(condition_expression.clone())
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(true),
                Err(err) => err,
            };
            match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => {
                    let current = e.item().map(delivery_from_item).transpose()?;
                    return Ok(current.is_some_and(|rec| own_write(&rec)));
                }
                Some(UpdateItemError::TransactionConflictException(_))
                    if round < MAX_RACE_RETRIES =>
                {
                    conflict_pause(operation, round).await;
                    round += 1;
                }
                _ => return Err(sdk_error("UpdateItem", err)),
            }
        }
    }

    /// A conditional put of a whole record under [`MAY_START`]. `Ok(None)` when written, else
    /// the record that stood there (read with the failure, or by a consistent read).
    async fn put_if_startable(
        &self,
        operation: &'static str,
        record: &DeliveryRecord,
        now: i64,
    ) -> Result<Option<Option<DeliveryRecord>>, StoreError> {
        let claim = matches!(record.state, DeliveryState::InProgress { .. });
        let condition = if claim {
            format!("{MAY_START}{CLAIM}")
        } else {
            MAY_START.to_string()
        };
        let mut cond = Expr::with_condition(&condition).names_for(&[PK, STATE, TTL_ATTR, DEADLINE]);
        cond.value(":now", n(now))
            .value(":failed", s("FAILED"))
            .value(":queued", s("QUEUED"));
        if claim {
            cond = cond.names_for(&[ROUTE, FINGERPRINT, ACTION]);
            cond.value(":route", s(record.route.as_str()))
                .value(":fp", s(record.fingerprint.as_str()))
                .value(":action", s(record.action.as_str()));
        }
        for round in 0..=MAX_RACE_RETRIES {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(delivery_item(record)))
                .condition_expression(cond.condition.clone())
                .set_expression_attribute_names(Some(cond.names.clone()))
                .set_expression_attribute_values(Some(cond.values.clone()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let returned = match result {
                Ok(_) => return Ok(None),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
                    // A transition of the same record is in flight.
                    Some(PutItemError::TransactionConflictException(_))
                        if round < MAX_RACE_RETRIES =>
                    {
                        conflict_pause(operation, round).await;
                        continue;
                    }
                    _ => return Err(sdk_error("PutItem", err)),
                },
            };
            let current = match returned {
                Some(item) => Some(delivery_from_item(&item)?),
                None => {
                    self.read_any(&record_pk(&record.route, &record.key))
                        .await?
                }
            };
            // Gone, expired or FAILED between the put and the read: try the put again.
            if delivery::may_begin(current.as_ref(), record, now)
                && current.as_ref() != Some(record)
            {
                continue;
            }
            return Ok(Some(current));
        }
        Err(StoreError::Unavailable(format!(
            "{operation}: record {} kept changing under concurrent writers",
            record_pk(&record.route, &record.key)
        )))
    }

    /// The item under `pk`, whatever its state or expiry (1 consistent GetItem).
    async fn read_any(&self, pk: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(pk.to_string())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        out.item.as_ref().map(delivery_from_item).transpose()
    }
}

/// A short, growing pause before re-trying a write that met a concurrent transaction.
async fn conflict_pause(operation: &str, round: usize) {
    tracing::debug!(operation, round, "transaction conflict, retrying");
    tokio::time::sleep(Duration::from_millis(20 << round)).await;
}

/// Expression attribute names and values, with one alias per attribute (`#state`, `:v_state`).
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    remove: Vec<String>,
    condition: String,
}

impl Expr {
    fn with_condition(condition: &str) -> Self {
        Expr {
            condition: condition.to_string(),
            ..Expr::default()
        }
    }
    fn name(&mut self, attr: &str) -> String {
        let alias = format!("#{attr}");
        self.names.insert(alias.clone(), attr.to_string());
        alias
    }
    fn value(&mut self, placeholder: &str, value: AttributeValue) -> &mut Self {
        self.values.insert(placeholder.to_string(), value);
        self
    }
    fn set(&mut self, attr: &str, value: AttributeValue) {
        let alias = self.name(attr);
        let placeholder = format!(":v_{attr}");
        self.values.insert(placeholder.clone(), value);
        self.set.push(format!("{alias} = {placeholder}"));
    }
    /// `SET attr = other` (copies another attribute of the same item).
    fn copy(&mut self, attr: &str, other: &str) {
        let alias = self.name(attr);
        let source = self.name(other);
        self.set.push(format!("{alias} = {source}"));
    }
    fn remove(&mut self, attr: &str) {
        let alias = self.name(attr);
        self.remove.push(alias);
    }
    fn names_for(mut self, attrs: &[&str]) -> Self {
        for attr in attrs {
            self.name(attr);
        }
        self
    }
    fn update_expression(&self) -> String {
        let mut out = format!("SET {}", self.set.join(", "));
        if !self.remove.is_empty() {
            out.push_str(" REMOVE ");
            out.push_str(&self.remove.join(", "));
        }
        out
    }
    fn merge(a: Expr, b: Expr) -> (HashMap<String, String>, HashMap<String, AttributeValue>) {
        let mut names = a.names;
        names.extend(b.names);
        let mut values = a.values;
        values.extend(b.values);
        (names, values)
    }
}

#[async_trait]
impl DeliveryStore for DynamoDeliveryStore {
    /// 1 PutItem (condition [`MAY_START`]). On a condition failure DynamoDB returns the current
    /// item with the error (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so the `Existing`
    /// answer costs no extra call; only if it comes without the item is it read with a
    /// consistent GetItem, and the put retried if the record vanished in between.
    async fn begin(&self, record: &DeliveryRecord, now: i64) -> Result<Begin, StoreError> {
        match self.put_if_startable("begin", record, now).await? {
            None => Ok(Begin::Started),
            // Our own put, applied by an earlier try whose answer was lost (SDK retry).
            Some(Some(existing)) if existing == *record => Ok(Begin::Started),
            Some(Some(existing)) => Ok(Begin::Existing(existing)),
            Some(None) => Err(StoreError::Unavailable(format!(
                "begin: record {} could not be written",
                record_pk(&record.route, &record.key)
            ))),
        }
    }

    /// 1 UpdateItem. Condition: IN_PROGRESS (or QUEUED) and `attempt` matches.
    async fn finish(
        &self,
        id: RecordId<'_>,
        attempt: &str,
        to: &Transition,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut cond = Expr::with_condition(
            "(#state = :in_progress OR #state = :queued) AND #attempt = :attempt",
        )
        .names_for(&[STATE, ATTEMPT]);
        cond.value(":in_progress", s("IN_PROGRESS"))
            .value(":queued", s("QUEUED"))
            .value(":attempt", s(attempt));
        self.transition("finish", id, to, cond, now, |current| {
            current.attempt == attempt && current.state == to.state && current.updated_at == now
        })
        .await
    }

    /// 1 UpdateItem. Condition: IN_PROGRESS and `deadline < now`.
    async fn expire_in_progress(
        &self,
        id: RecordId<'_>,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut cond = Expr::with_condition("#state = :in_progress AND #deadline < :now")
            .names_for(&[STATE, DEADLINE]);
        cond.value(":in_progress", s("IN_PROGRESS"))
            .value(":now", n(now));
        let to = Transition::to(DeliveryState::OutcomeUnknown {
            reason: reason.to_string(),
        });
        self.transition("expire_in_progress", id, &to, cond, now, |_| false)
            .await
    }

    /// 1 GetItem (ConsistentRead).
    async fn get(&self, id: RecordId<'_>, now: i64) -> Result<Option<DeliveryRecord>, StoreError> {
        self.read(id, now).await
    }

    /// 1 Query on the sparse GSI `open-index` per page of up to 1 MB (key condition
    /// `open = "OPEN" AND open_at < now`). GSI reads are eventually consistent: a record that
    /// changed in the last moment may be listed in its previous state or missed (see
    /// docs/STATE.md). Sorted by (created_at, route, key).
    async fn pending(&self, now: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut expr = Expr::default().names_for(&[OPEN_ATTR, OPEN_AT_ATTR]);
        expr.value(":open", s(OPEN_VALUE)).value(":now", n(now));
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_INDEX)
                .key_condition_expression("#open = :open AND #open_at < :now")
                .set_expression_attribute_names(Some(expr.names.clone()))
                .set_expression_attribute_values(Some(expr.values.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            for item in page.items() {
                let record = delivery_from_item(item)?;
                if record.needs_person(now) {
                    out.push(record);
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.route, &a.key).cmp(&(b.created_at, &b.route, &b.key)));
        Ok(out)
    }

    /// 1 UpdateItem. Condition: the route's, and OUTCOME_UNKNOWN or IN_PROGRESS with
    /// `deadline < now`.
    async fn resolve(
        &self,
        id: RecordId<'_>,
        to: &Transition,
        now: i64,
    ) -> Result<bool, StoreError> {
        delivery::check_resolution(&to.state).map_err(StoreError::Refused)?;
        let mut cond = Expr::with_condition(
            "#route = :route AND (#state = :unknown OR (#state = :in_progress AND #deadline < :now))",
        )
        .names_for(&[ROUTE, STATE, DEADLINE]);
        cond.value(":route", s(id.route))
            .value(":unknown", s("OUTCOME_UNKNOWN"))
            .value(":in_progress", s("IN_PROGRESS"))
            .value(":now", n(now));
        self.transition("resolve", id, to, cond, now, |_| false)
            .await
    }

    /// ⌈distinct ids / 100⌉ BatchGetItem calls (ConsistentRead) on `EXTERNAL#…`, plus one more
    /// per round of keys DynamoDB leaves unprocessed under throttling; no call for an empty
    /// list.
    async fn creates_by_external_id(
        &self,
        external_ids: &[String],
        now: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut seen = HashSet::new();
        let ids: Vec<&String> = external_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk.iter().map(|id| key_of(external_pk(id))).collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Refused(format!("BatchGetItem: bug: {e}")))?,
            );
            let mut round = 0;
            while let Some(keys) = request.take() {
                if round > 0 {
                    if round > MAX_UNPROCESSED_ROUNDS {
                        return Err(StoreError::Unavailable(
                            "BatchGetItem: keys left unprocessed (throttled)".into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(25 << round)).await;
                }
                round += 1;
                let got = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                if let Some(items) = got.responses.as_ref().and_then(|r| r.get(&self.table)) {
                    for item in items {
                        if is_expired(item, now) {
                            continue;
                        }
                        let record = delivery_from_item(item)?;
                        if record.is_live(now) {
                            out.push(record);
                        }
                    }
                }
                request = got
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(out)
    }

    /// 1 PutItem (condition [`MAY_START`]); on a condition failure the item comes back with it.
    async fn record_cancellation(
        &self,
        route: &str,
        external_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let record = cancellation_record(route, external_id, expires_at, now);
        match self
            .put_if_startable("record_cancellation", &record, now)
            .await?
        {
            None => Ok(true),
            Some(current) => {
                Ok(current.is_some_and(|r| r.is_live(now) && r.state == DeliveryState::Cancelled))
            }
        }
    }
}
