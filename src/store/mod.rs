//! State store adapters for the ports [`TokenStore`](crate::ports::TokenStore) and
//! [`DeliveryStore`](crate::ports::DeliveryStore): in memory (tests, local `serve`) and
//! DynamoDB (one table; see `docs/STATE.md`). Both answer alike; `tests/store_contract.rs` runs
//! one contract suite against each.

pub mod dynamodb;
pub mod memory;

pub use dynamodb::{create_table, DynamoDeliveryStore, DynamoTokenStore};
pub use memory::{MemoryDeliveryStore, MemoryTokenStore};
