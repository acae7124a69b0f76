//! The payout panel's HTTP API (adapter for [`crate::ports::PanelApi`]) and the classification
//! of every call's outcome.

pub mod classify;
pub mod client;

pub use client::{PanelClient, PanelClientConfig};
