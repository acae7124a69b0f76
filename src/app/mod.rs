//! The application: one delivery in, one answer out. It knows the domain and the ports, and
//! nothing of HTTP, Lambda or AWS; `crate::http` adapts it to axum (for `serve` and Lambda
//! alike). It makes no rule of its own: `crate::domain::delivery` decides, this carries out.
//!
//! - [`bridge`]: a delivery from route lookup to the answer, batches included;
//! - [`intake`]: content types and the route's filter, from a body to commands;
//! - [`execute`]: one command under its key: begin the record, carry out the decision, settle;
//! - [`enqueue`]: a queued route's commands onto the queue (202), with the same decision first;
//! - [`worker`]: a message from the queue run through [`execute`], then deleted, retried later
//!   or held, and its result notified;
//! - [`panel_calls`]: the panel calls with the token (re-authenticate once on a refused token);
//! - [`answer`]: answers, batch items and the one log line per command;
//! - [`operator`]: `pending`, `status`, `resolve`;
//! - [`token`], [`password`]: the panel token cache and the password.

pub mod answer;
pub mod bridge;
pub mod enqueue;
pub mod execute;
pub mod intake;
pub mod operator;
pub mod panel_calls;
pub mod password;
pub mod token;
pub mod worker;

pub use bridge::{Bridge, Limits, Route};

use serde_json::Value;
use std::collections::BTreeMap;

/// Request headers with lower-case names; repeated headers are joined with ", ".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    pub fn new() -> Self {
        Headers::default()
    }

    pub fn insert(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        match self.0.get_mut(&name) {
            Some(existing) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            None => {
                self.0.insert(name, value.to_string());
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// One inbound webhook delivery, as received.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    /// The `{name}` of `POST /hooks/{name}`.
    pub route: &'a str,
    pub method: &'a str,
    /// Path and query as received (signed by some senders).
    pub uri: &'a str,
    pub headers: &'a Headers,
    pub body: &'a [u8],
    /// When the invocation must have answered (Lambda's deadline); `None` under `serve`.
    pub deadline: Option<std::time::Instant>,
}

/// The answer to a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub fn error(e: &crate::error::BridgeError) -> Self {
        let mut reply = Reply::json(e.status(), e.body());
        if let Some(secs) = e.kind.retry_after() {
            reply.headers.push(("retry-after", secs.to_string()));
        }
        reply
    }
}
