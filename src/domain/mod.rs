//! The domain: payout commands, their validation, and the idempotency and delivery rules
//! (`delivery`: one pure decision per command). No AWS, HTTP or
//! storage type appears here.

pub mod amount;
pub mod command;
pub mod currency;
pub mod date;
pub mod delivery;
pub mod idempotency;
pub mod queue;
pub mod validation;

pub use command::{Action, CancelPayouts, Command, CreatePayout, ValidationError};
