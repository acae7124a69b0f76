//! The bridge: a delivery from route lookup to the answer. Verification, mapping and
//! validation first (nothing stored or sent if any fails), then one command, or a batch of
//! them with bounded concurrency and one result per item.

use super::answer::{batch_item, Success};
use super::intake::{self, short};
use super::token::TokenManager;
use super::{Delivery, Reply};
use crate::domain::delivery::{self, ItemKey};
use crate::domain::idempotency::{DeliveryKey, KeySources};
use crate::domain::queue::RouteMode;
use crate::domain::Action;
use crate::error::{BridgeError, ErrorKind};
use crate::inbound::auth::{InboundRequest, Verifier};
use crate::mapping::Filter;
use crate::ports::{Clock, DeliveryStore, NotifyTarget, PanelApi, Queue};
use crate::telemetry::{self, names};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// One configured route, ready to serve.
pub struct Route {
    pub name: String,
    pub action: Action,
    pub verifier: Verifier,
    pub filter: Filter,
    /// Which headers may name a delivery (from the route's auth scheme).
    pub key_sources: KeySources,
    /// `sync` (the panel during the request) or `queued` (202, then the worker).
    pub mode: RouteMode,
    /// Where a queued route's results are posted, signed.
    pub notify: Option<NotifyTarget>,
}

/// Limits and timings of delivery handling.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub retention_secs: i64,
    pub in_progress_timeout_secs: i64,
    pub batch_concurrency: usize,
    /// The panel client's request timeout: a batch item starts only with this much time (plus
    /// a second) left before the invocation's deadline.
    pub panel_request_timeout_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            retention_secs: 7 * 24 * 3600,
            in_progress_timeout_secs: 60,
            batch_concurrency: 4,
            panel_request_timeout_ms: 10_000,
        }
    }
}

/// The bridge: routes, the panel, the token cache and the delivery records.
pub struct Bridge {
    pub(super) routes: HashMap<String, Route>,
    pub(super) panel: Arc<dyn PanelApi>,
    pub(super) tokens: Arc<TokenManager>,
    pub(super) deliveries: Arc<dyn DeliveryStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) limits: Limits,
    /// The queue of queued routes (none when no route is queued).
    pub(super) queue: Option<Arc<dyn Queue>>,
}

impl Bridge {
    pub fn new(
        routes: Vec<Route>,
        panel: Arc<dyn PanelApi>,
        tokens: Arc<TokenManager>,
        deliveries: Arc<dyn DeliveryStore>,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Bridge {
            routes: routes.into_iter().map(|r| (r.name.clone(), r)).collect(),
            panel,
            tokens,
            deliveries,
            clock,
            limits,
            queue: None,
        }
    }

    /// The same bridge with the queue its queued routes put their commands on.
    pub fn with_queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The queue of queued routes, if any.
    pub fn queue(&self) -> Option<&Arc<dyn Queue>> {
        self.queue.as_ref()
    }

    /// Whether any route is queued.
    pub fn has_queued_routes(&self) -> bool {
        self.routes.values().any(|r| r.mode == RouteMode::Queued)
    }

    /// A route by name.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// The delivery records (operator commands, tests).
    pub fn deliveries(&self) -> &Arc<dyn DeliveryStore> {
        &self.deliveries
    }

    pub fn route_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Handles one delivery. Never panics on any input; every failure is an answer from the
    /// response table.
    pub async fn handle(&self, d: Delivery<'_>) -> Reply {
        let span = tracing::info_span!("delivery", route = %short(d.route, 64));
        self.handle_in_span(d).instrument(span).await
    }

    async fn handle_in_span(&self, d: Delivery<'_>) -> Reply {
        let started = Instant::now();
        let reply = match self.process(&d).await {
            Ok(reply) => reply,
            Err(e) => {
                if e.kind == ErrorKind::Unauthorized {
                    telemetry::count(names::SIGNATURE_FAILURES, 1, d.route, None);
                }
                Reply::error(&e)
            }
        };
        tracing::info!(
            status = reply.status,
            error_type = reply.body["error"]["type"].as_str().unwrap_or(""),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "delivery answered"
        );
        reply
    }

    async fn process(&self, d: &Delivery<'_>) -> Result<Reply, BridgeError> {
        let route = self.routes.get(d.route).ok_or_else(|| {
            BridgeError::new(
                ErrorKind::NotFound,
                format!(
                    "no route named `{}`; routes are POST /hooks/{{name}} as configured in the routes file",
                    short(d.route, 64)
                ),
            )
        })?;
        if d.body.len() > self.limits.max_body_bytes {
            return Err(BridgeError::new(
                ErrorKind::PayloadTooLarge,
                format!("body is larger than {} bytes", self.limits.max_body_bytes),
            ));
        }
        route
            .verifier
            .verify(
                &InboundRequest {
                    method: d.method,
                    uri: d.uri,
                    headers: d.headers.as_map(),
                    body: d.body,
                },
                self.clock.now(),
            )
            .map_err(|e| BridgeError::new(ErrorKind::Unauthorized, e.to_string()))?;

        let mut commands = intake::commands(route.action, &route.filter, d.headers, d.body)?;
        let key = DeliveryKey::derive(
            route.key_sources,
            d.headers.get("idempotency-key"),
            // The id the signature covered: Svix-branded senders send it as `svix-id` (the
            // verifier reads the `svix-*` family only when no `webhook-*` header is present).
            d.headers
                .get("webhook-id")
                .or_else(|| d.headers.get("svix-id")),
            d.body,
        )
        .map_err(|e| BridgeError::invalid(e.to_string()))?;

        if route.mode == RouteMode::Queued {
            let batch = commands.len() != 1;
            let items = commands
                .into_iter()
                .enumerate()
                .map(|(i, cmd)| (item_key(&key, cmd.external_id(), i, batch), cmd))
                .collect();
            return Ok(self.enqueue(route, items, batch).await);
        }

        if commands.len() == 1 {
            let Some(cmd) = commands.pop() else {
                return Err(BridgeError::internal());
            };
            let item_key = item_key(&key, cmd.external_id(), 0, false);
            return Ok(match self.execute(route, &item_key, cmd).await {
                Ok(s) => s.into_reply(),
                Err(e) => Reply::error(&e),
            });
        }

        let deadline = d.deadline;
        let panel_timeout_ms = self.limits.panel_request_timeout_ms;
        let items = commands.into_iter().enumerate().map(|(i, cmd)| {
            let item_key = item_key(&key, cmd.external_id(), i, true);
            let external_id = cmd.external_id().map(str::to_string);
            async move {
                // Runs when the item is first polled, i.e. when it would start.
                let remaining_ms = deadline.map(|at| {
                    at.saturating_duration_since(Instant::now()).as_millis() as i64
                });
                let outcome = if delivery::may_start_item(remaining_ms, panel_timeout_ms) {
                    self.execute(route, &item_key, cmd).await
                } else {
                    Err(BridgeError::new(
                        ErrorKind::PanelUnavailable,
                        "not started: time budget (the invocation's time ran out before this item could be sent; nothing was sent, retry)",
                    ))
                };
                batch_item(i, external_id, outcome)
            }
        });
        let results: Vec<(u16, Value)> = futures_util::stream::iter(items)
            .buffered(self.limits.batch_concurrency.max(1))
            .collect()
            .await;
        let statuses: Vec<u16> = results.iter().map(|(status, _)| *status).collect();
        let status = delivery::batch_status(&statuses);
        let body: Vec<Value> = results.into_iter().map(|(_, item)| item).collect();
        let mut reply = Reply::json(status, json!({ "results": body }));
        let retry_after = match status {
            503 => ErrorKind::PanelUnavailable.retry_after(),
            409 => ErrorKind::RequestInProgress.retry_after(),
            _ => None,
        };
        if let Some(secs) = retry_after {
            reply.headers.push(("retry-after", secs.to_string()));
        }
        Ok(reply)
    }
}

/// The key of one command: its externalId when it has one (one payout per externalId, across
/// routes), else the delivery key (single command) or the delivery key and the item's index.
fn item_key(key: &DeliveryKey, external_id: Option<&str>, index: usize, batch: bool) -> ItemKey {
    match external_id {
        Some(ext) => ItemKey::external(ext),
        None => ItemKey::from_delivery_key(key.item_key(None, index, batch)),
    }
}

impl Success {
    pub(super) fn into_reply(self) -> Reply {
        let mut reply = Reply::json(self.status, self.body);
        if self.replayed {
            reply
                .headers
                .push(("idempotent-replayed", "true".to_string()));
        }
        reply
    }
}
