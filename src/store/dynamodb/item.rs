//! Item shapes: keys, and conversions between DynamoDB items and the port types.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{OPEN_ATTR, OPEN_AT_ATTR, PK, TTL_ATTR};
use crate::domain::delivery::EXTERNAL_KEY_PREFIX;
use crate::domain::Action;
use crate::ports::{DeliveryRecord, DeliveryState, StoreError};

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const TOKEN_PK: &str = "TOKEN#panel";
pub(crate) const LEASE_PK: &str = "LEASE#token";

/// The value of the sparse `open` attribute.
pub(crate) const OPEN_VALUE: &str = "OPEN";

// Attribute names of delivery items.
pub(crate) const ROUTE: &str = "route";
pub(crate) const KEY: &str = "key";
pub(crate) const STATE: &str = "state";
pub(crate) const FINGERPRINT: &str = "fingerprint";
pub(crate) const ATTEMPT: &str = "attempt";
pub(crate) const ACTION: &str = "action";
pub(crate) const EXTERNAL_ID: &str = "external_id";
pub(crate) const DEADLINE: &str = "deadline";
pub(crate) const STATUS: &str = "status";
pub(crate) const BODY: &str = "body";
pub(crate) const REASON: &str = "reason";
pub(crate) const CREATED_AT: &str = "created_at";
pub(crate) const UPDATED_AT: &str = "updated_at";
// Attribute names of external items.
pub(crate) const PAYOUT_ID: &str = "payout_id";
// Attribute names of token / lease items.
pub(crate) const TOKEN: &str = "token";
pub(crate) const EXPIRES_AT: &str = "expires_at";
pub(crate) const OWNER: &str = "owner";
pub(crate) const LEASE_UNTIL: &str = "lease_until";

/// The item of a record: `EXTERNAL#<externalId>` for keys of externalIds (one payout per
/// externalId, whatever the route), `DELIVERY#<route>#<key>` for every other key.
pub(crate) fn record_pk(route: &str, key: &str) -> String {
    match key.strip_prefix(EXTERNAL_KEY_PREFIX) {
        Some(external_id) => external_pk(external_id),
        None => delivery_pk(route, key),
    }
}

/// `DELIVERY#<route>#<key>`. `%` and `#` in the route are percent-encoded so that the first `#`
/// after the prefix always ends the route (route `a#b` + key `c` ≠ route `a` + key `b#c`); routes
/// without those characters appear verbatim. The key is kept as is (it may contain `#index`).
pub(crate) fn delivery_pk(route: &str, key: &str) -> String {
    let mut pk = String::with_capacity(9 + route.len() + 1 + key.len());
    pk.push_str("DELIVERY#");
    for c in route.chars() {
        match c {
            '%' => pk.push_str("%25"),
            '#' => pk.push_str("%23"),
            c => pk.push(c),
        }
    }
    pk.push('#');
    pk.push_str(key);
    pk
}

/// `EXTERNAL#<externalId>`.
pub(crate) fn external_pk(external_id: &str) -> String {
    format!("EXTERNAL#{external_id}")
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key_of(pk: String) -> Item {
    HashMap::from([(PK.to_string(), s(pk))])
}

fn corrupt(pk: &str, what: String) -> StoreError {
    StoreError::Corrupt(format!("item {pk}: {what}"))
}

pub(crate) fn get_s<'a>(item: &'a Item, pk: &str, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        Some(_) => Err(corrupt(pk, format!("attribute {name} is not a string"))),
        None => Err(corrupt(pk, format!("attribute {name} is missing"))),
    }
}

pub(crate) fn opt_s(item: &Item, pk: &str, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(corrupt(pk, format!("attribute {name} is not a string"))),
    }
}

pub(crate) fn get_n<T: std::str::FromStr>(
    item: &Item,
    pk: &str,
    name: &str,
) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| corrupt(pk, format!("attribute {name} is not a valid number here"))),
        Some(_) => Err(corrupt(pk, format!("attribute {name} is not a number"))),
        None => Err(corrupt(pk, format!("attribute {name} is missing"))),
    }
}

/// The `ttl` of an item, if it has a readable one.
pub(crate) fn ttl_of(item: &Item) -> Option<i64> {
    match item.get(TTL_ATTR) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// True when the item's `ttl` has passed: DynamoDB deletes such items lazily (within days),
/// so readers treat them as absent. Items without a `ttl` never expire: a record gets its `ttl`
/// only once settled, so IN_PROGRESS and OUTCOME_UNKNOWN records stay until resolved.
pub(crate) fn is_expired(item: &Item, now: i64) -> bool {
    ttl_of(item).is_some_and(|ttl| ttl <= now)
}

/// The state-dependent attributes of a delivery item: what to SET (name → value) and which
/// attribute names to REMOVE when an item moves into `state`. The `ttl` (the record's
/// `expires_at`) is set by the writer when the state is settled.
pub(crate) struct StateAttrs {
    pub set: Vec<(&'static str, AttributeValue)>,
    pub remove: Vec<&'static str>,
}

pub(crate) fn state_attrs(state: &DeliveryState) -> StateAttrs {
    let name = s(state.name());
    match state {
        DeliveryState::InProgress { deadline } => StateAttrs {
            set: vec![
                (STATE, name),
                (DEADLINE, n(deadline)),
                (OPEN_ATTR, s(OPEN_VALUE)),
                (OPEN_AT_ATTR, n(deadline)),
            ],
            remove: vec![STATUS, BODY, REASON, TTL_ATTR],
        },
        DeliveryState::OutcomeUnknown { reason } => StateAttrs {
            set: vec![
                (STATE, name),
                (REASON, s(reason.as_str())),
                (OPEN_ATTR, s(OPEN_VALUE)),
                (OPEN_AT_ATTR, n(0)),
            ],
            remove: vec![DEADLINE, STATUS, BODY, TTL_ATTR],
        },
        DeliveryState::Completed { status, body } | DeliveryState::Failed { status, body } => {
            StateAttrs {
                set: vec![(STATE, name), (STATUS, n(status)), (BODY, s(body.as_str()))],
                remove: vec![DEADLINE, REASON, OPEN_ATTR, OPEN_AT_ATTR],
            }
        }
        DeliveryState::Queued { deadline } => StateAttrs {
            set: vec![(STATE, name), (DEADLINE, n(deadline))],
            remove: vec![STATUS, BODY, REASON, TTL_ATTR, OPEN_ATTR, OPEN_AT_ATTR],
        },
        DeliveryState::Cancelled => StateAttrs {
            set: vec![(STATE, name)],
            remove: vec![DEADLINE, STATUS, BODY, REASON, OPEN_ATTR, OPEN_AT_ATTR],
        },
    }
}

/// The whole item of a delivery record.
pub(crate) fn delivery_item(record: &DeliveryRecord) -> Item {
    let mut item = Item::with_capacity(16);
    item.insert(PK.into(), s(record_pk(&record.route, &record.key)));
    item.insert(ROUTE.into(), s(record.route.as_str()));
    item.insert(KEY.into(), s(record.key.as_str()));
    item.insert(FINGERPRINT.into(), s(record.fingerprint.as_str()));
    item.insert(ATTEMPT.into(), s(record.attempt.as_str()));
    item.insert(ACTION.into(), s(record.action.as_str()));
    if let Some(external_id) = &record.external_id {
        item.insert(EXTERNAL_ID.into(), s(external_id.as_str()));
    }
    if let Some(payout_id) = record.payout_id {
        item.insert(PAYOUT_ID.into(), n(payout_id));
    }
    item.insert(CREATED_AT.into(), n(record.created_at));
    item.insert(UPDATED_AT.into(), n(record.updated_at));
    item.insert(EXPIRES_AT.into(), n(record.expires_at));
    if record.state.is_settled() {
        item.insert(TTL_ATTR.into(), n(record.expires_at));
    }
    for (name, value) in state_attrs(&record.state).set {
        item.insert(name.into(), value);
    }
    item
}

pub(crate) fn delivery_from_item(item: &Item) -> Result<DeliveryRecord, StoreError> {
    let pk = get_s(item, "?", PK)?;
    if !item.contains_key(STATE) && item.contains_key(PAYOUT_ID) {
        return legacy_link(item, pk);
    }
    let state_name = get_s(item, pk, STATE)?;
    let state = match state_name {
        "IN_PROGRESS" => DeliveryState::InProgress {
            deadline: get_n(item, pk, DEADLINE)?,
        },
        "COMPLETED" => DeliveryState::Completed {
            status: get_n(item, pk, STATUS)?,
            body: get_s(item, pk, BODY)?.to_string(),
        },
        "FAILED" => DeliveryState::Failed {
            status: get_n(item, pk, STATUS)?,
            body: get_s(item, pk, BODY)?.to_string(),
        },
        "OUTCOME_UNKNOWN" => DeliveryState::OutcomeUnknown {
            reason: get_s(item, pk, REASON)?.to_string(),
        },
        "CANCELLED" => DeliveryState::Cancelled,
        "QUEUED" => DeliveryState::Queued {
            deadline: get_n(item, pk, DEADLINE)?,
        },
        other => return Err(corrupt(pk, format!("unknown state {other:?}"))),
    };
    let action = match get_s(item, pk, ACTION)? {
        "create" => Action::Create,
        "cancel" => Action::Cancel,
        other => return Err(corrupt(pk, format!("unknown action {other:?}"))),
    };
    // Records written before `expires_at` existed carry only their `ttl`.
    let expires_at = match item.get(EXPIRES_AT) {
        Some(_) => get_n(item, pk, EXPIRES_AT)?,
        None => get_n(item, pk, TTL_ATTR)?,
    };
    Ok(DeliveryRecord {
        route: get_s(item, pk, ROUTE)?.to_string(),
        key: get_s(item, pk, KEY)?.to_string(),
        fingerprint: get_s(item, pk, FINGERPRINT)?.to_string(),
        state,
        attempt: get_s(item, pk, ATTEMPT)?.to_string(),
        action,
        external_id: opt_s(item, pk, EXTERNAL_ID)?,
        payout_id: match item.get(PAYOUT_ID) {
            Some(_) => Some(get_n(item, pk, PAYOUT_ID)?),
            None => None,
        },
        created_at: get_n(item, pk, CREATED_AT)?,
        updated_at: get_n(item, pk, UPDATED_AT)?,
        expires_at,
    })
}

/// An `EXTERNAL#…` link item written before the record under an externalId held the whole
/// create (`external_id`, `payout_id`, `route`, `ttl`): read as the completed create it stands
/// for, with no fingerprint (any redelivery of that externalId on its route replays it).
fn legacy_link(item: &Item, pk: &str) -> Result<DeliveryRecord, StoreError> {
    let external_id = get_s(item, pk, EXTERNAL_ID)?.to_string();
    let payout_id: u64 = get_n(item, pk, PAYOUT_ID)?;
    let expires_at = get_n(item, pk, TTL_ATTR)?;
    Ok(DeliveryRecord {
        route: get_s(item, pk, ROUTE)?.to_string(),
        key: format!("{EXTERNAL_KEY_PREFIX}{external_id}"),
        fingerprint: String::new(),
        state: DeliveryState::Completed {
            status: 201,
            body: format!(r#"{{"payments":[{{"id":{payout_id}}}]}}"#),
        },
        attempt: String::new(),
        action: Action::Create,
        external_id: Some(external_id),
        payout_id: Some(payout_id),
        created_at: 0,
        updated_at: 0,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(state: DeliveryState, external_id: Option<&str>) -> DeliveryRecord {
        DeliveryRecord {
            route: "crm".into(),
            key: "ext-1#2".into(),
            fingerprint: "fp".into(),
            state,
            attempt: "a1".into(),
            action: Action::Create,
            external_id: external_id.map(str::to_string),
            payout_id: external_id.map(|_| 42),
            created_at: 10,
            updated_at: 11,
            expires_at: 12,
        }
    }

    #[test]
    fn delivery_keys_are_unambiguous() {
        assert_eq!(delivery_pk("crm", "k#1"), "DELIVERY#crm#k#1");
        assert_ne!(delivery_pk("a#b", "c"), delivery_pk("a", "b#c"));
        assert_eq!(delivery_pk("a#b%", "c"), "DELIVERY#a%23b%25#c");
        assert_ne!(delivery_pk("a%23b", "c"), delivery_pk("a#b", "c"));
    }

    #[test]
    fn delivery_items_round_trip() {
        for state in [
            DeliveryState::InProgress { deadline: 99 },
            DeliveryState::Completed {
                status: 201,
                body: "{\"id\":1}".into(),
            },
            DeliveryState::Failed {
                status: 422,
                body: String::new(),
            },
            DeliveryState::OutcomeUnknown {
                reason: "timeout".into(),
            },
            DeliveryState::Cancelled,
        ] {
            for external_id in [None, Some("e-1")] {
                let rec = record(state.clone(), external_id);
                let item = delivery_item(&rec);
                assert_eq!(delivery_from_item(&item).unwrap(), rec);
                assert_eq!(item.contains_key(TTL_ATTR), state.is_settled());
                let open = item.contains_key(OPEN_ATTR);
                assert_eq!(
                    open,
                    matches!(
                        state,
                        DeliveryState::InProgress { .. } | DeliveryState::OutcomeUnknown { .. }
                    )
                );
            }
        }
    }

    #[test]
    fn malformed_items_are_corrupt() {
        let mut item = delivery_item(&record(DeliveryState::InProgress { deadline: 1 }, None));
        item.insert(STATE.into(), s("WEIRD"));
        assert!(matches!(
            delivery_from_item(&item),
            Err(StoreError::Corrupt(_))
        ));
        item.insert(STATE.into(), s("COMPLETED"));
        assert!(matches!(
            delivery_from_item(&item),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn external_ids_name_one_item_across_routes() {
        assert_eq!(record_pk("crm", "ext:p-1"), "EXTERNAL#p-1");
        assert_eq!(record_pk("payroll", "ext:p-1"), "EXTERNAL#p-1");
        assert_eq!(record_pk("crm", "whid:m1"), "DELIVERY#crm#whid:m1");
    }

    #[test]
    fn legacy_links_read_as_completed_creates() {
        let item = HashMap::from([
            (PK.to_string(), s("EXTERNAL#p-1")),
            (EXTERNAL_ID.to_string(), s("p-1")),
            (PAYOUT_ID.to_string(), n(9)),
            (ROUTE.to_string(), s("crm")),
            (TTL_ATTR.to_string(), n(5)),
        ]);
        let rec = delivery_from_item(&item).unwrap();
        assert_eq!(rec.key, "ext:p-1");
        assert_eq!(rec.payout_id, Some(9));
        assert!(matches!(
            rec.state,
            DeliveryState::Completed { status: 201, .. }
        ));
    }
}
