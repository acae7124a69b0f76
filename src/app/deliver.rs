//! A delivery from verification to the panel and back, exactly once per idempotency key.

use super::token::TokenManager;
use super::{Delivery, Headers, Reply};
use crate::domain::idempotency::DeliveryKey;
use crate::domain::{Action, CancelPayouts, Command, CreatePayout};
use crate::error::{BridgeError, ErrorKind};
use crate::inbound::auth::{InboundRequest, Verifier};
use crate::mapping::{Filter, MapError};
use crate::ports::{
    Begin, Clock, DeliveryRecord, DeliveryState, DeliveryStore, ExternalPayout, PanelApi,
    PanelOutcome, Secret, StoreError,
};
use crate::telemetry::{self, names};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// One configured route, ready to serve.
pub struct Route {
    pub name: String,
    pub action: Action,
    pub verifier: Verifier,
    pub filter: Filter,
}

/// Limits and timings of delivery handling.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub retention_secs: i64,
    pub in_progress_timeout_secs: i64,
    pub batch_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 256 * 1024,
            retention_secs: 7 * 24 * 3600,
            in_progress_timeout_secs: 60,
            batch_concurrency: 4,
        }
    }
}

/// The bridge: routes, the panel, the token cache and the delivery records.
pub struct Bridge {
    routes: HashMap<String, Route>,
    panel: Arc<dyn PanelApi>,
    tokens: Arc<TokenManager>,
    deliveries: Arc<dyn DeliveryStore>,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

/// A successful answer for one command.
#[derive(Debug, Clone)]
struct Success {
    status: u16,
    body: Value,
    replayed: bool,
}

/// How the panel call for one command settled, and what to record.
enum Settled {
    /// Done at the panel: record as completed (replayed from now on).
    Done {
        status: u16,
        body: Value,
        external: Option<ExternalPayout>,
    },
    /// Nothing happened at the panel: record as failed (a retry may take it over).
    Failed(BridgeError),
    /// The panel may have acted: record as outcome unknown (held for an operator).
    Unknown(BridgeError, String),
}

static ATTEMPTS: AtomicU64 = AtomicU64::new(0);

fn new_attempt_id() -> String {
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        ATTEMPTS.fetch_add(1, Ordering::Relaxed)
    )
}

fn state_unavailable(e: StoreError) -> BridgeError {
    tracing::error!(error = %e, "delivery store unavailable");
    BridgeError::new(
        ErrorKind::StateUnavailable,
        "the delivery record store is unavailable; nothing was sent to the panel, retry later",
    )
}

fn short(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn media_type(content_type: Option<&str>) -> Option<String> {
    content_type.map(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

enum BodyKind {
    Json,
    Form,
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
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
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
        let now = self.clock.now();
        route
            .verifier
            .verify(
                &InboundRequest {
                    method: d.method,
                    uri: d.uri,
                    headers: d.headers.as_map(),
                    body: d.body,
                },
                now,
            )
            .map_err(|e| BridgeError::new(ErrorKind::Unauthorized, e.to_string()))?;

        let outputs = map_body(&route.filter, d.headers, d.body)?;
        let batch = outputs.len() != 1;
        let mut commands = Vec::with_capacity(outputs.len());
        for (i, out) in outputs.iter().enumerate() {
            let cmd = Command::from_json(route.action, out).map_err(|e| {
                if batch {
                    BridgeError::invalid(format!("item {i}: {e}"))
                } else {
                    BridgeError::invalid(e.to_string())
                }
            })?;
            commands.push(cmd);
        }
        let key = DeliveryKey::derive(
            d.headers.get("idempotency-key"),
            d.headers.get("webhook-id"),
            d.body,
        )
        .map_err(|e| BridgeError::invalid(e.to_string()))?;

        if !batch {
            let Some(cmd) = commands.pop() else {
                return Err(BridgeError::internal());
            };
            let item_key = key.item_key(cmd.external_id(), 0, false);
            let outcome = self.execute(route, &item_key, cmd).await;
            return Ok(match outcome {
                Ok(s) => {
                    let mut reply = Reply::json(s.status, s.body);
                    if s.replayed {
                        reply
                            .headers
                            .push(("idempotent-replayed", "true".to_string()));
                    }
                    reply
                }
                Err(e) => Reply::error(&e),
            });
        }

        let items = commands.into_iter().enumerate().map(|(i, cmd)| {
            let item_key = key.item_key(cmd.external_id(), i, true);
            let external_id = cmd.external_id().map(str::to_string);
            async move {
                let outcome = self.execute(route, &item_key, cmd).await;
                batch_item(i, external_id, outcome)
            }
        });
        let results: Vec<Value> = futures_util::stream::iter(items)
            .buffered(self.limits.batch_concurrency.max(1))
            .collect()
            .await;
        Ok(Reply::json(200, json!({ "results": results })))
    }

    /// One command under its idempotency key: record, call the panel, settle the record.
    async fn execute(
        &self,
        route: &Route,
        key: &str,
        cmd: Command,
    ) -> Result<Success, BridgeError> {
        let span =
            tracing::info_span!("command", key = %short(key, 120), action = cmd.action().as_str());
        self.execute_in_span(route, key, cmd).instrument(span).await
    }

    async fn execute_in_span(
        &self,
        route: &Route,
        key: &str,
        cmd: Command,
    ) -> Result<Success, BridgeError> {
        let now = self.clock.now();
        let fingerprint = cmd.fingerprint();
        let attempt = new_attempt_id();
        let record = DeliveryRecord {
            route: route.name.clone(),
            key: key.to_string(),
            fingerprint: fingerprint.clone(),
            state: DeliveryState::InProgress {
                deadline: now + self.limits.in_progress_timeout_secs,
            },
            attempt: attempt.clone(),
            action: route.action.as_str().to_string(),
            external_id: cmd.external_id().map(str::to_string),
            created_at: now,
            updated_at: now,
            expires_at: now + self.limits.retention_secs,
        };
        let begun = match self.deliveries.begin(&record, now).await {
            Ok(begun) => begun,
            Err(e) => {
                // The write may have landed with only its answer lost (every SDK attempt).
                // Nothing was sent to the panel: if our record is there, mark it failed, so that
                // the sender's retry is a fresh try rather than 409 and then 504 held for an
                // operator. Conditional on our attempt; harmless when the store is really down.
                let e = state_unavailable(e);
                let failed = DeliveryState::Failed {
                    status: e.status(),
                    body: e.body().to_string(),
                };
                let cleanup = self.deliveries.finish(
                    &route.name,
                    key,
                    &attempt,
                    &failed,
                    None,
                    self.clock.now(),
                );
                let _ = tokio::time::timeout(Duration::from_secs(1), cleanup).await;
                return Err(e);
            }
        };
        match begun {
            Begin::Existing(existing) => {
                let previous = existing.state.name();
                let answer = self.answer_existing(route, existing, &fingerprint).await;
                log_outcome(&answer, if answer.is_ok() { "REPLAYED" } else { previous });
                return answer;
            }
            Begin::Started => {}
        }

        let settled = match &cmd {
            Command::Create(c) => self.create(route, c).await,
            Command::Cancel(c) => self.cancel(route, c).await,
        };
        let (state, external, answer) = match settled {
            Settled::Done {
                status,
                body,
                external,
            } => (
                DeliveryState::Completed {
                    status,
                    body: body.to_string(),
                },
                external,
                Ok(Success {
                    status,
                    body,
                    replayed: false,
                }),
            ),
            Settled::Failed(e) => (
                DeliveryState::Failed {
                    status: e.status(),
                    body: e.body().to_string(),
                },
                None,
                Err(e),
            ),
            Settled::Unknown(e, reason) => {
                telemetry::count(names::OUTCOME_UNKNOWN, 1, &route.name, None);
                tracing::error!(key, %reason, "panel outcome unknown; held for an operator");
                (DeliveryState::OutcomeUnknown { reason }, None, Err(e))
            }
        };
        self.settle(route, key, &attempt, &state, external.as_ref())
            .await;
        log_outcome(&answer, state.name());
        answer
    }

    /// Records how a command ended. A store failure here must not change the answer: the
    /// panel has acted (or not) already. The record then stays in progress and shows up in
    /// `pending` once its deadline passes, so it is never re-sent.
    async fn settle(
        &self,
        route: &Route,
        key: &str,
        attempt: &str,
        state: &DeliveryState,
        external: Option<&ExternalPayout>,
    ) {
        for attempt_no in 0..3u32 {
            let now = self.clock.now();
            match self
                .deliveries
                .finish(&route.name, key, attempt, state, external, now)
                .await
            {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(
                        key,
                        state = state.name(),
                        "delivery record changed under us (deadline passed?); answer stands, record left as is"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, attempt_no, "could not settle the delivery record");
                    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt_no))).await;
                }
            }
        }
        telemetry::count(names::STATE_UNAVAILABLE, 1, &route.name, None);
        tracing::error!(
            key,
            state = state.name(),
            "delivery record could not be settled; it will show in `pending` after the in-progress timeout"
        );
    }

    async fn answer_existing(
        &self,
        route: &Route,
        existing: DeliveryRecord,
        fingerprint: &str,
    ) -> Result<Success, BridgeError> {
        if existing.fingerprint != fingerprint {
            return Err(BridgeError::new(
                ErrorKind::IdempotencyKeyReused,
                format!(
                    "idempotency key `{}` was already used for a different payload; send the original payload again or use a new key",
                    short(&existing.key, 80)
                ),
            ));
        }
        match existing.state {
            DeliveryState::Completed { status, body } => {
                telemetry::count(names::REPLAYS, 1, &route.name, None);
                let body = serde_json::from_str(&body).map_err(|e| {
                    tracing::error!(error = %e, "stored answer is not JSON");
                    BridgeError::internal()
                })?;
                Ok(Success {
                    status,
                    body,
                    replayed: true,
                })
            }
            DeliveryState::InProgress { deadline } => {
                let now = self.clock.now();
                if now > deadline && existing.action == "cancel" {
                    // A cancel is safe to send again: release the record (FAILED) so that the
                    // sender's next retry runs it, rather than holding it for an operator.
                    let e = BridgeError::new(
                        ErrorKind::PanelOutcomeUnknown,
                        "a cancel with this key stopped before recording an answer; sending it again is safe",
                    );
                    let failed = DeliveryState::Failed {
                        status: e.status(),
                        body: e.body().to_string(),
                    };
                    self.deliveries
                        .resolve(&route.name, &existing.key, &failed, None, now)
                        .await
                        .map_err(state_unavailable)?;
                    Err(e)
                } else if now > deadline {
                    let reason = "the invocation handling it stopped before recording an answer";
                    match self
                        .deliveries
                        .expire_in_progress(&route.name, &existing.key, reason, now)
                        .await
                    {
                        Ok(true) => {
                            telemetry::count(names::OUTCOME_UNKNOWN, 1, &route.name, None);
                            tracing::error!(key = %existing.key, "stale in-progress record marked outcome unknown");
                        }
                        Ok(false) => {}
                        Err(e) => return Err(state_unavailable(e)),
                    }
                    Err(held_for_operator())
                } else {
                    Err(BridgeError::new(
                        ErrorKind::RequestInProgress,
                        "a delivery with this idempotency key is being processed; retry in a few seconds",
                    ))
                }
            }
            DeliveryState::OutcomeUnknown { .. } => Err(held_for_operator()),
            DeliveryState::Failed { .. } => {
                // `begin` takes failed records over; seeing one here is a store bug.
                tracing::error!(key = %existing.key, "store returned a failed record as existing");
                Err(BridgeError::internal())
            }
        }
    }

    /// Calls the panel with a token; on a refused token, re-authenticates once and retries once.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<PanelOutcome<T>, BridgeError>
    where
        F: Fn(Secret) -> Fut,
        Fut: std::future::Future<Output = PanelOutcome<T>>,
    {
        let token = self.tokens.token().await?;
        match call(token.clone()).await {
            PanelOutcome::TokenRefused => {
                tracing::info!("panel refused the token; re-authenticating once");
                telemetry::count(names::TOKEN_REFRESHES, 1, "-", None);
                self.tokens.refused(&token).await;
                let fresh = self.tokens.token().await?;
                Ok(call(fresh).await)
            }
            other => Ok(other),
        }
    }

    async fn create(&self, route: &Route, c: &CreatePayout) -> Settled {
        let body = c.panel_body();
        let outcome = match self
            .with_token(|token| {
                let body = &body;
                async move { self.panel.create(&token, body).await }
            })
            .await
        {
            Ok(o) => o,
            Err(e) => return Settled::Failed(e),
        };
        match outcome {
            PanelOutcome::Done(payments) => {
                let payout_id = payments["payments"][0]["id"].as_u64();
                tracing::info!(payout_id, "payout created");
                telemetry::count(names::PAYOUTS_CREATED, 1, &route.name, None);
                let external = match (&c.external_id, payout_id) {
                    (Some(ext), Some(payout_id)) => {
                        let now = self.clock.now();
                        let keep = self.limits.retention_secs;
                        Some(ExternalPayout {
                            external_id: ext.clone(),
                            payout_id,
                            route: route.name.clone(),
                            // Cancels may come until the payout's end date; keep the id
                            // at least the retention past it.
                            expires_at: (now + keep).max(c.end_date.instant().timestamp() + keep),
                        })
                    }
                    _ => None,
                };
                Settled::Done {
                    status: 201,
                    body: payments,
                    external,
                }
            }
            other => self.not_done(route, other, "create"),
        }
    }

    async fn cancel(&self, route: &Route, c: &CancelPayouts) -> Settled {
        let mut ids = c.ids.clone();
        let mut unknown = Vec::new();
        if !c.external_ids.is_empty() {
            let found = match self
                .deliveries
                .external_payouts(&c.external_ids, self.clock.now())
                .await
            {
                Ok(found) => found,
                Err(e) => return Settled::Failed(state_unavailable(e)),
            };
            for ext in &c.external_ids {
                match found.iter().find(|f| &f.external_id == ext) {
                    Some(f) if !ids.contains(&f.payout_id) => ids.push(f.payout_id),
                    Some(_) => {}
                    None => unknown.push(ext.clone()),
                }
            }
        }
        let answer = |success: u64| {
            let mut body = json!({ "success": success });
            if !unknown.is_empty() {
                body["unknownExternalIds"] = json!(unknown);
            }
            body
        };
        if ids.is_empty() {
            return Settled::Done {
                status: 200,
                body: answer(0),
                external: None,
            };
        }
        let call = || {
            self.with_token(|token| {
                let ids = &ids;
                async move { self.panel.cancel(&token, ids).await }
            })
        };
        let mut outcome = match call().await {
            Ok(o) => o,
            Err(e) => return Settled::Failed(e),
        };
        if matches!(outcome, PanelOutcome::Unknown(_) | PanelOutcome::NotSent(_)) {
            // Cancelling twice cancels nothing more: one retry is safe.
            tracing::warn!("cancel got no answer; retrying once");
            outcome = match call().await {
                Ok(o) => o,
                Err(e) => return Settled::Failed(e),
            };
        }
        match outcome {
            PanelOutcome::Done(n) => {
                tracing::info!(cancelled = n, "payouts cancelled");
                telemetry::count(names::PAYOUTS_CANCELLED, n, &route.name, None);
                Settled::Done {
                    status: 200,
                    body: answer(n),
                    external: None,
                }
            }
            PanelOutcome::Unknown(reason) => {
                tracing::warn!(%reason, "cancel outcome unknown");
                // A cancel is safe to repeat, so it is not held for an operator: failed, and
                // the sender's retry will try again.
                Settled::Failed(BridgeError::new(
                    ErrorKind::PanelOutcomeUnknown,
                    "the panel did not answer the cancel; it may or may not be applied, sending it again is safe",
                ))
            }
            other => self.not_done(route, other, "cancel"),
        }
    }

    /// The outcomes that are neither done nor (for a create) unknown.
    fn not_done<T>(&self, route: &Route, outcome: PanelOutcome<T>, what: &str) -> Settled {
        match outcome {
            PanelOutcome::Done(_) => Settled::Failed(BridgeError::internal()),
            PanelOutcome::Rejected { kind, message } => {
                tracing::info!(panel_error = %kind, "panel rejected the {what}");
                telemetry::count(names::PANEL_REJECTED, 1, &route.name, Some(&kind));
                let message = if message.is_empty() {
                    format!("the panel rejected the {what}")
                } else {
                    format!("the panel rejected the {what}: {}", short(&message, 200))
                };
                Settled::Failed(BridgeError::new(ErrorKind::from_panel_type(&kind), message))
            }
            PanelOutcome::TokenRefused => Settled::Failed(BridgeError::new(
                ErrorKind::PanelAuthFailed,
                "the panel refused a freshly issued token",
            )),
            PanelOutcome::NotSent(reason) => {
                tracing::warn!(%reason, "panel unreachable");
                telemetry::count(names::PANEL_UNAVAILABLE, 1, &route.name, None);
                Settled::Failed(BridgeError::new(
                    ErrorKind::PanelUnavailable,
                    "the panel could not be reached; nothing was sent, retry later",
                ))
            }
            PanelOutcome::Unknown(reason) => Settled::Unknown(
                BridgeError::new(
                    ErrorKind::PanelOutcomeUnknown,
                    format!(
                        "the {what} was sent but no usable answer came back; the payout may exist. It is held for an operator (payout-bridge pending) and will not be sent again"
                    ),
                ),
                reason,
            ),
        }
    }
}

/// One line per command: its outcome, status, error type and the panel's payout id.
fn log_outcome(answer: &Result<Success, BridgeError>, outcome: &str) {
    match answer {
        Ok(s) => tracing::info!(
            outcome,
            status = s.status,
            payout_id = s.body["payments"][0]["id"].as_u64(),
            "command settled"
        ),
        Err(e) => tracing::info!(
            outcome,
            status = e.status(),
            error_type = e.kind.type_name(),
            "command settled"
        ),
    }
}

fn held_for_operator() -> BridgeError {
    BridgeError::new(
        ErrorKind::PanelOutcomeUnknown,
        "an earlier delivery with this key reached the panel without an answer; it is held for an operator (payout-bridge pending) and will not be sent again",
    )
}

/// One entry of a batch answer.
fn batch_item(
    index: usize,
    external_id: Option<String>,
    outcome: Result<Success, BridgeError>,
) -> Value {
    let mut item = Map::new();
    item.insert("index".into(), json!(index));
    if let Some(ext) = external_id {
        item.insert("externalId".into(), json!(ext));
    }
    match outcome {
        Ok(s) => {
            item.insert("status".into(), json!(s.status));
            if s.replayed {
                item.insert("replayed".into(), json!(true));
            }
            if let Value::Object(fields) = s.body {
                item.extend(fields);
            }
        }
        Err(e) => {
            item.insert("status".into(), json!(e.status()));
            item.insert("error".into(), e.body()["error"].clone());
        }
    }
    Value::Object(item)
}

/// The body's commands: a JSON body parsed (through the filter straight from the raw bytes,
/// so decimal literals keep their text), a form body turned into an object of strings.
fn map_body(filter: &Filter, headers: &Headers, body: &[u8]) -> Result<Vec<Value>, BridgeError> {
    let kind = match media_type(headers.get("content-type")).as_deref() {
        Some("application/json") => BodyKind::Json,
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => BodyKind::Json,
        Some("application/x-www-form-urlencoded") => BodyKind::Form,
        Some(other) => {
            return Err(BridgeError::new(
                ErrorKind::UnsupportedMediaType,
                format!(
                    "content type `{}` is not supported; send application/json (or a form with a mapping)",
                    short(other, 60)
                ),
            ))
        }
        None => {
            return Err(BridgeError::new(
                ErrorKind::UnsupportedMediaType,
                "missing Content-Type; send application/json",
            ))
        }
    };
    let map_err = |e: MapError| match e {
        MapError::InvalidInput { message } => {
            BridgeError::invalid(format!("body is not valid JSON: {message}"))
        }
        // A filter is compiled on its route's first delivery: a broken one is the bridge's
        // configuration, not the sender's fault. Nothing was recorded yet; a retry is safe.
        MapError::Compile { message } => {
            tracing::error!(error = %message, "the route's map filter does not compile: fix the routes file (payout-bridge check-config)");
            BridgeError::new(
                ErrorKind::Internal,
                "the route's map filter does not compile (a configuration error at the bridge); the delivery was not processed, it is safe to retry",
            )
        }
        other => BridgeError::invalid(format!("the route's map filter failed: {other}")),
    };
    match kind {
        BodyKind::Json if filter.is_identity() => serde_json::from_slice(body)
            .map(|v| vec![v])
            .map_err(|e| BridgeError::invalid(format!("body is not valid JSON: {e}"))),
        BodyKind::Json => filter.run_json(body, headers.as_map()).map_err(map_err),
        BodyKind::Form => {
            let form = crate::mapping::form_to_json(body);
            if filter.is_identity() {
                Ok(vec![form])
            } else {
                filter.run(form, headers.as_map()).map_err(map_err)
            }
        }
    }
}
