//! payout-bridge: webhooks from CRMs and payroll systems to a payout panel's create and cancel
//! calls, exactly once, on AWS Lambda or as a local server.
//!
//! Folders by concern:
//! - [`domain`]: payout commands, validation, idempotency keys, and the delivery rules as one
//!   pure decision (no AWS, no HTTP);
//! - [`ports`]: the traits the application needs (panel, stores, secrets, clock);
//! - [`app`]: one delivery from verification to the panel and back; the token cache;
//! - [`inbound`]: signature / key verification of inbound webhooks;
//! - [`mapping`]: jq filters from a sender's payload to commands;
//! - [`panel`]: the panel's HTTP client and outcome classification;
//! - [`store`], [`secrets`], [`aws`]: memory and DynamoDB / Secrets Manager adapters;
//! - [`queue`]: the queue of queued routes (SQS, or in memory); [`notify`]: signed result
//!   notifications (Standard Webhooks);
//! - [`http`]: the one axum router; [`lambda`]: the Lambda entry;
//! - [`service`]: the one place that assembles the bridge (a builder with in-memory defaults),
//!   and the adapters chosen from the environment (the command line lives in `src/cli/`);
//! - `sim`: the panel simulator (cargo feature `sim`, on by default, off in the Lambda build);
//!   [`config`]: environment and routes file.

pub mod app;
pub mod aws;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod inbound;
pub mod lambda;
pub mod mapping;
pub mod notify;
pub mod panel;
pub mod ports;
pub mod queue;
pub mod secrets;
pub mod service;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod telemetry;
