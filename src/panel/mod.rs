//! The payout panel's HTTP API (adapter for [`crate::ports::PanelApi`]), the classification
//! of every call's outcome, and the worker's ceilings on calls ([`limited`]).

pub mod classify;
pub mod client;
pub mod limited;

pub(crate) use client::error_chain;
pub use client::{PanelClient, PanelClientConfig};
pub use limited::LimitedPanel;
