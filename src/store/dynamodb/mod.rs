//! DynamoDB adapters: [`DynamoTokenStore`] and [`DynamoDeliveryStore`] share ONE table.
//!
//! Key design, item shapes, condition expressions and round trips: `docs/STATE.md`.
//! In short: partition key `pk` (S) only; items `TOKEN#panel`, `LEASE#token`,
//! `DELIVERY#<route>#<key>`, `EXTERNAL#<externalId>`; TTL attribute `ttl`; a sparse GSI
//! `open-index` (`open` S, `open_at` N) holding only records that may need a person.

mod delivery;
mod item;
mod table;
mod token;

pub use delivery::DynamoDeliveryStore;
pub use table::create_table;
pub use token::DynamoTokenStore;

use crate::ports::StoreError;

/// Environment variable naming the table.
pub const TABLE_ENV: &str = "BRIDGE_TABLE";
/// The partition key attribute.
pub const PK: &str = "pk";
/// The TTL attribute (Number, unix seconds).
pub const TTL_ATTR: &str = "ttl";
/// The sparse GSI listing records that may need a person.
pub const OPEN_INDEX: &str = "open-index";
/// The GSI's partition key (present only while IN_PROGRESS or OUTCOME_UNKNOWN).
pub const OPEN_ATTR: &str = "open";
/// The GSI's sort key: from when on the record needs a person (the deadline while
/// IN_PROGRESS, 0 for OUTCOME_UNKNOWN).
pub const OPEN_AT_ATTR: &str = "open_at";

/// The table name from `BRIDGE_TABLE`.
pub fn table_name_from_env() -> Result<String, StoreError> {
    match std::env::var(TABLE_ENV) {
        Ok(name) if !name.trim().is_empty() => Ok(name),
        _ => Err(StoreError::Refused(format!(
            "{TABLE_ENV} is not set: name the DynamoDB table of payout-bridge"
        ))),
    }
}
