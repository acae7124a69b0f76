//! [`DynamoDeliveryStore`]: delivery records and the externalId index on DynamoDB.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;

use super::item::{
    delivery_from_item, delivery_item, delivery_pk, external_from_item, external_item, external_pk,
    is_expired, key_of, n, s, state_attrs, Item, ATTEMPT, DEADLINE, OPEN_VALUE, STATE, UPDATED_AT,
};
use super::{OPEN_ATTR, OPEN_AT_ATTR, OPEN_INDEX, PK, TTL_ATTR};
use crate::aws::sdk_error;
use crate::ports::{
    check_resolution, Begin, DeliveryRecord, DeliveryState, DeliveryStore, ExternalPayout,
    StoreError,
};

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

    /// The live record, read with ConsistentRead (1 GetItem).
    async fn read(
        &self,
        route: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_of(delivery_pk(route, key))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        match out.item {
            Some(item) if !is_expired(&item, now) => Ok(Some(delivery_from_item(&item)?)),
            _ => Ok(None),
        }
    }

    /// A conditional move into `state` (`UpdateItem`, or `TransactWriteItems` with the external
    /// item). `condition` and its values come from the caller; `own_write` recognises the
    /// caller's own earlier write when a retried request finds the condition already consumed.
    #[allow(clippy::too_many_arguments)]
    async fn transition(
        &self,
        operation: &'static str,
        route: &str,
        key: &str,
        state: &DeliveryState,
        external: Option<&ExternalPayout>,
        condition: Expr,
        now: i64,
        own_write: impl Fn(&DeliveryRecord) -> bool,
    ) -> Result<bool, StoreError> {
        let mut update = Expr::default();
        let attrs = state_attrs(state);
        for (name, value) in attrs.set {
            update.set(name, value);
        }
        update.set(UPDATED_AT, n(now));
        for name in attrs.remove {
            update.remove(name);
        }
        let update_expression = update.update_expression();
        let condition_expression = condition.condition.clone();
        let (names, values) = Expr::merge(update, condition);
        let pk = delivery_pk(route, key);

        let Some(external) = external else {
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
        };

        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_of(pk)))
            .update_expression(update_expression)
            .condition_expression(condition_expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Refused(format!("{operation}: bug: {e}")))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(external_item(external)))
            .build()
            .map_err(|e| StoreError::Refused(format!("{operation}: bug: {e}")))?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(put).build(),
        ];
        for round in 0..=MAX_RACE_RETRIES {
            // Each round is a new transaction (new client request token); the SDK's own retries
            // of one round reuse its token, so DynamoDB applies it at most once.
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(true),
                Err(err) => err,
            };
            let service = match err {
                aws_sdk_dynamodb::error::SdkError::ServiceError(service) => service,
                other => return Err(sdk_error("TransactWriteItems", other)),
            };
            let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err()
            else {
                return Err(sdk_error(
                    "TransactWriteItems",
                    aws_sdk_dynamodb::error::SdkError::ServiceError(service),
                ));
            };
            let reasons = cancelled.cancellation_reasons();
            let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
            if code(0) == "ConditionalCheckFailed" {
                let current = reasons
                    .first()
                    .and_then(|r| r.item())
                    .map(delivery_from_item)
                    .transpose()?;
                return Ok(current.is_some_and(|rec| own_write(&rec)));
            }
            let conflict = (0..items.len()).any(|i| code(i) == "TransactionConflict");
            if conflict && round < MAX_RACE_RETRIES {
                conflict_pause(operation, round).await;
                continue;
            }
            let codes: Vec<&str> = (0..items.len()).map(code).collect();
            return Err(StoreError::Unavailable(format!(
                "{operation}: transaction cancelled ({})",
                codes.join(", ")
            )));
        }
        Err(StoreError::Unavailable(format!(
            "{operation}: transaction kept conflicting"
        )))
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
    /// 1 PutItem (condition: absent, expired or FAILED). On a condition failure DynamoDB returns
    /// the current item with the error (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so the
    /// `Existing` answer costs no extra call; only if it comes without the item is it read with a
    /// consistent GetItem, and the put retried if the record vanished in between.
    async fn begin(&self, record: &DeliveryRecord, now: i64) -> Result<Begin, StoreError> {
        let mut cond =
            Expr::with_condition("attribute_not_exists(#pk) OR #ttl <= :now OR #state = :failed")
                .names_for(&[PK, TTL_ATTR, STATE]);
        cond.value(":now", n(now)).value(":failed", s("FAILED"));
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
                Ok(_) => return Ok(Begin::Started),
                Err(err) => match err.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(e)) => e.item().cloned(),
                    // A finish/resolve transaction on the same record is in flight.
                    Some(PutItemError::TransactionConflictException(_))
                        if round < MAX_RACE_RETRIES =>
                    {
                        conflict_pause("begin", round).await;
                        continue;
                    }
                    _ => return Err(sdk_error("PutItem", err)),
                },
            };
            let current = match returned {
                Some(item) => Some(delivery_from_item(&item)?),
                None => self.read(&record.route, &record.key, now).await?,
            };
            match current {
                // Our own put, applied by an earlier try whose answer was lost (SDK retry).
                Some(existing) if existing == *record => return Ok(Begin::Started),
                Some(existing) if !matches!(existing.state, DeliveryState::Failed { .. }) => {
                    return Ok(Begin::Existing(existing))
                }
                // Gone (or FAILED again) between the put and the read: try the put again.
                _ => continue,
            }
        }
        Err(StoreError::Unavailable(format!(
            "begin: record {} kept changing under concurrent writers",
            delivery_pk(&record.route, &record.key)
        )))
    }

    /// 1 UpdateItem, or 1 TransactWriteItems with `external` (the record update + a Put of the
    /// external item, all or nothing). Condition: IN_PROGRESS, `attempt` matches, not expired.
    async fn finish(
        &self,
        route: &str,
        key: &str,
        attempt: &str,
        state: &DeliveryState,
        external: Option<&ExternalPayout>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut cond =
            Expr::with_condition("#state = :in_progress AND #attempt = :attempt AND #ttl > :now")
                .names_for(&[STATE, ATTEMPT, TTL_ATTR]);
        cond.value(":in_progress", s("IN_PROGRESS"))
            .value(":attempt", s(attempt))
            .value(":now", n(now));
        self.transition(
            "finish",
            route,
            key,
            state,
            external,
            cond,
            now,
            |current| {
                current.attempt == attempt
                    && current.state == *state
                    && current.updated_at == now
                    && current.expires_at > now
            },
        )
        .await
    }

    /// 1 UpdateItem. Condition: IN_PROGRESS, `deadline < now`, not expired.
    async fn expire_in_progress(
        &self,
        route: &str,
        key: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut cond =
            Expr::with_condition("#state = :in_progress AND #deadline < :now AND #ttl > :now")
                .names_for(&[STATE, DEADLINE, TTL_ATTR]);
        cond.value(":in_progress", s("IN_PROGRESS"))
            .value(":now", n(now));
        let state = DeliveryState::OutcomeUnknown {
            reason: reason.to_string(),
        };
        self.transition(
            "expire_in_progress",
            route,
            key,
            &state,
            None,
            cond,
            now,
            |_| false,
        )
        .await
    }

    /// 1 GetItem (ConsistentRead).
    async fn get(
        &self,
        route: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.read(route, key, now).await
    }

    /// 1 Query on the sparse GSI `open-index` per page of up to 1 MB (key condition
    /// `open = "OPEN" AND open_at < now`, filter `ttl > now`). GSI reads are eventually
    /// consistent: a record that changed in the last moment may be listed in its previous state
    /// or missed (see docs/STATE.md). Sorted by (created_at, route, key).
    async fn pending(&self, now: i64) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut expr = Expr::default().names_for(&[OPEN_ATTR, OPEN_AT_ATTR, TTL_ATTR]);
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
                .filter_expression("#ttl > :now")
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

    /// 1 UpdateItem, or 1 TransactWriteItems with `external`. Condition: not expired and
    /// (OUTCOME_UNKNOWN, or IN_PROGRESS with `deadline < now`).
    async fn resolve(
        &self,
        route: &str,
        key: &str,
        state: &DeliveryState,
        external: Option<&ExternalPayout>,
        now: i64,
    ) -> Result<bool, StoreError> {
        check_resolution(state)?;
        let mut cond = Expr::with_condition(
            "#ttl > :now AND (#state = :unknown OR (#state = :in_progress AND #deadline < :now))",
        )
        .names_for(&[STATE, DEADLINE, TTL_ATTR]);
        cond.value(":unknown", s("OUTCOME_UNKNOWN"))
            .value(":in_progress", s("IN_PROGRESS"))
            .value(":now", n(now));
        self.transition("resolve", route, key, state, external, cond, now, |_| false)
            .await
    }

    /// ⌈distinct ids / 100⌉ BatchGetItem calls (ConsistentRead), plus one more per round of
    /// keys DynamoDB leaves unprocessed under throttling; no call for an empty list. Answers in
    /// the order of `external_ids`, duplicates once.
    async fn external_payouts(
        &self,
        external_ids: &[String],
        now: i64,
    ) -> Result<Vec<ExternalPayout>, StoreError> {
        let mut seen = HashSet::new();
        let ids: Vec<&String> = external_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .collect();
        let mut found: HashMap<String, ExternalPayout> = HashMap::new();
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
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                if let Some(items) = out.responses.as_ref().and_then(|r| r.get(&self.table)) {
                    for item in items {
                        if is_expired(item, now) {
                            continue;
                        }
                        let ext = external_from_item(item)?;
                        found.insert(ext.external_id.clone(), ext);
                    }
                }
                request = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(ids
            .into_iter()
            .filter_map(|id| found.remove(id.as_str()))
            .collect())
    }
}
