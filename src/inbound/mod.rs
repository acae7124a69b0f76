//! Inbound webhooks: who may post to a route.

pub mod auth;
