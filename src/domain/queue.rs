//! The queued path's rules, as pure functions: what a queued route does with a command at
//! accept time, what the worker does with a message after the one delivery decision
//! ([`super::delivery::decide`]) has run, how long a retry waits, and which signed event tells
//! the route's `notify` URL. No queue, no HTTP: `crate::app::enqueue` and `crate::app::worker`
//! carry these out.
//!
//! | the command's answer (same as the synchronous path) | the message          | notified as      |
//! |-----------------------------------------------------|----------------------|------------------|
//! | created / cancelled (2xx), or replayed              | deleted              | payout.created / payout.cancelled |
//! | refused: 400, 402, 422                              | deleted              | payout.rejected  |
//! | a create's outcome unknown (504, held)              | deleted, never re-sent | payout.outcome_unknown |
//! | 503, 409, 502, 500, a cancel's 504 (safe to resend) | back after the backoff; the dead-letter queue after `maxReceiveCount` | — |

use super::command::{Action, Command};
use super::delivery::{Decision, DeliveryRecord, DeliveryState, ItemKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How a route runs its commands (`mode:` in the routes file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    /// The panel is called during the request and the sender gets its answer (the default).
    #[default]
    Sync,
    /// The commands go on the queue (202); the worker calls the panel.
    Queued,
}

/// The longest retry delay: SQS's visibility timeout may be 12 hours, but a payout should not
/// wait that long; 15 minutes.
pub const MAX_RETRY_DELAY_SECS: u32 = 900;

/// How long a QUEUED record stands before a redelivery may queue the command again: the
/// queue's message retention (14 days), after which its message is gone.
pub const QUEUED_TTL_SECS: i64 = 14 * 86_400;

/// The delay before a message received `receive_count` times (1 = the first time) comes back:
/// `base`, doubling with every receive, at most [`MAX_RETRY_DELAY_SECS`].
pub fn retry_delay_secs(base_secs: u32, receive_count: u32) -> u32 {
    let doublings = receive_count.saturating_sub(1).min(31);
    let delay = u64::from(base_secs).saturating_mul(1u64 << doublings);
    delay.min(u64::from(MAX_RETRY_DELAY_SECS)) as u32
}

/// What a queued route does with one command at accept time, from the decision about the record
/// under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accept {
    /// Nothing live there (or a FAILED one): put it on the queue (202).
    Enqueue,
    /// Queued or running already: answer 202 again, queue nothing; it runs once.
    AlreadyQueued,
    /// Answer now, exactly as the synchronous path would (a replay, a key reuse, a held one).
    Answer(Decision),
}

pub fn accept(decision: Decision) -> Accept {
    match decision {
        Decision::Start => Accept::Enqueue,
        Decision::Queued | Decision::InProgress => Accept::AlreadyQueued,
        other => Accept::Answer(other),
    }
}

/// What the worker does with a message once its command has an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Final: delete the message, notify the result.
    Settled,
    /// Nothing happened that counts: let the message come back after the backoff.
    Retry,
    /// A create's outcome is unknown: held for an operator; delete the message (it is never
    /// sent again), notify "outcome unknown".
    Held,
}

/// The verdict for a command's answer status: the batch rule's "final" statuses
/// ([`super::delivery::is_final_status`]) are settled, except that a create's 504 is held and a
/// cancel's 504 (its record released: sending again is safe) is retried.
pub fn verdict(action: Action, status: u16) -> Verdict {
    match (status, action) {
        (200..=299 | 400 | 402 | 422, _) => Verdict::Settled,
        (504, Action::Create) => Verdict::Held,
        _ => Verdict::Retry,
    }
}

/// A message received again whose command was refused on an earlier receive (its record FAILED
/// with a final status, 400 / 402 / 422; the message came back because its notification
/// failed, or the worker stopped before deleting it): the refusal stands and is notified again;
/// the payout is not tried again. The stored answer, or `None` to run the command.
pub fn refusal_stands(
    record: Option<&DeliveryRecord>,
    receive_count: u32,
    now: i64,
) -> Option<(u16, String)> {
    if receive_count <= 1 {
        return None;
    }
    match record.filter(|r| r.is_live(now)).map(|r| &r.state) {
        Some(DeliveryState::Failed { status, body }) if matches!(status, 400 | 402 | 422) => {
            Some((*status, body.clone()))
        }
        _ => None,
    }
}

/// The type of a `notify` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Created,
    Rejected,
    Cancelled,
    OutcomeUnknown,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Created => "payout.created",
            EventType::Rejected => "payout.rejected",
            EventType::Cancelled => "payout.cancelled",
            EventType::OutcomeUnknown => "payout.outcome_unknown",
        }
    }
}

/// The event a settled or held command is notified as; `None` for a retry (nothing to tell).
pub fn event_type(action: Action, status: u16) -> Option<EventType> {
    match verdict(action, status) {
        Verdict::Retry => None,
        Verdict::Held => Some(EventType::OutcomeUnknown),
        Verdict::Settled if (200..300).contains(&status) => Some(match action {
            Action::Create => EventType::Created,
            Action::Cancel => EventType::Cancelled,
        }),
        Verdict::Settled => Some(EventType::Rejected),
    }
}

/// The `webhook-id` of an item's event: fixed per route, key and outcome, so a notification
/// sent again (a retry, a redelivered message) carries the same id and receivers deduplicate it.
pub fn webhook_id(route: &str, key: &str, event: EventType) -> String {
    let digest = Sha256::digest(format!("{route}\n{key}\n{}", event.as_str()).as_bytes());
    format!("msg_{}", &hex::encode(digest)[..32])
}

/// The event body: `{"type","timestamp","data":{"route","key","externalId","status",
/// "payments"|"error"|"success"}}`. `answer` is the command's answer body (the panel's
/// `{"payments":[…]}`, `{"success":N,…}`, or the error shape); `timestamp` is RFC 3339.
pub fn event_body(
    event: EventType,
    timestamp: &str,
    item: &QueuedCommand,
    status: u16,
    answer: &Value,
) -> Value {
    let mut data = serde_json::Map::new();
    data.insert("route".into(), item.route.clone().into());
    data.insert("key".into(), item.key.clone().into());
    data.insert(
        "externalId".into(),
        item.external_id.clone().map_or(Value::Null, Value::String),
    );
    data.insert("status".into(), status.into());
    match event {
        EventType::Created => {
            data.insert("payments".into(), answer["payments"].clone());
        }
        EventType::Cancelled => {
            data.insert("success".into(), answer["success"].clone());
            if let Some(unknown) = answer.get("unknownExternalIds") {
                data.insert("unknownExternalIds".into(), unknown.clone());
            }
        }
        EventType::Rejected | EventType::OutcomeUnknown => {
            data.insert("error".into(), answer["error"].clone());
        }
    }
    serde_json::json!({ "type": event.as_str(), "timestamp": timestamp, "data": data })
}

/// One command on the queue: what the worker needs to run it under its key, and nothing else —
/// the validated command in its canonical JSON, never the raw webhook body, never a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedCommand {
    /// Message format version.
    pub v: u32,
    pub route: String,
    /// The item's index in its delivery.
    pub index: usize,
    /// The item key (`ext:…`, `whid:…#2`, …).
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub action: Action,
    /// The command's fingerprint: the worker checks the command it reads back against it.
    pub fingerprint: String,
    /// The command in canonical JSON ([`command_json`]).
    pub command: Value,
}

pub const MESSAGE_VERSION: u32 = 1;

impl QueuedCommand {
    pub fn new(route: &str, index: usize, key: &ItemKey, cmd: &Command) -> Self {
        QueuedCommand {
            v: MESSAGE_VERSION,
            route: route.to_string(),
            index,
            key: key.as_str().to_string(),
            external_id: cmd.external_id().map(str::to_string),
            action: cmd.action(),
            fingerprint: cmd.fingerprint(),
            command: command_json(cmd),
        }
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A message body read back; any other shape is refused with the reason.
    pub fn parse(body: &str) -> Result<Self, String> {
        let item: QueuedCommand =
            serde_json::from_str(body).map_err(|e| format!("not a queued command: {e}"))?;
        if item.v != MESSAGE_VERSION {
            return Err(format!("unknown message version {}", item.v));
        }
        Ok(item)
    }

    /// The command, validated again, and checked to be the one that was queued.
    pub fn command(&self) -> Result<Command, String> {
        let cmd = Command::from_json(self.action, &self.command).map_err(|e| e.to_string())?;
        if cmd.fingerprint() != self.fingerprint {
            return Err("the command does not match its fingerprint".into());
        }
        Ok(cmd)
    }

    pub fn item_key(&self) -> ItemKey {
        ItemKey::parse(&self.key)
    }
}

/// A command in the canonical JSON it was validated from (a create: the panel's fields plus
/// `externalId`; a cancel: `ids` and `externalIds`); it reads back as the same command.
pub fn command_json(cmd: &Command) -> Value {
    match cmd {
        Command::Create(c) => {
            let mut body = c.panel_body();
            if let Some(ext) = &c.external_id {
                body["externalId"] = Value::String(ext.clone());
            }
            body
        }
        Command::Cancel(c) => serde_json::json!({ "ids": c.ids, "externalIds": c.external_ids }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_backoff_doubles_from_the_base_up_to_fifteen_minutes() {
        assert_eq!(retry_delay_secs(10, 1), 10);
        assert_eq!(retry_delay_secs(10, 2), 20);
        assert_eq!(retry_delay_secs(10, 3), 40);
        assert_eq!(retry_delay_secs(10, 7), 640);
        assert_eq!(retry_delay_secs(10, 8), 900);
        assert_eq!(retry_delay_secs(10, 1000), 900);
        assert_eq!(retry_delay_secs(1, 0), 1);
        assert_eq!(retry_delay_secs(u32::MAX, 40), 900);
    }

    #[test]
    fn settled_retryable_and_held_by_status() {
        for status in [200, 201, 400, 402, 422] {
            assert_eq!(
                verdict(Action::Create, status),
                Verdict::Settled,
                "{status}"
            );
        }
        for status in [409, 500, 502, 503] {
            assert_eq!(verdict(Action::Create, status), Verdict::Retry, "{status}");
        }
        assert_eq!(verdict(Action::Create, 504), Verdict::Held);
        // A cancel's 504 released its record: sending it again is safe.
        assert_eq!(verdict(Action::Cancel, 504), Verdict::Retry);
    }

    #[test]
    fn events_by_outcome() {
        assert_eq!(event_type(Action::Create, 201), Some(EventType::Created));
        assert_eq!(event_type(Action::Cancel, 200), Some(EventType::Cancelled));
        assert_eq!(event_type(Action::Create, 402), Some(EventType::Rejected));
        assert_eq!(
            event_type(Action::Create, 504),
            Some(EventType::OutcomeUnknown)
        );
        assert_eq!(event_type(Action::Create, 503), None);
        assert_eq!(event_type(Action::Cancel, 504), None);
    }

    #[test]
    fn accept_queues_only_what_would_start() {
        assert_eq!(accept(Decision::Start), Accept::Enqueue);
        assert_eq!(accept(Decision::Queued), Accept::AlreadyQueued);
        assert_eq!(accept(Decision::InProgress), Accept::AlreadyQueued);
        assert_eq!(accept(Decision::Held), Accept::Answer(Decision::Held));
        let replay = Decision::Replay {
            status: 201,
            body: "{}".into(),
        };
        assert_eq!(accept(replay.clone()), Accept::Answer(replay));
    }

    #[test]
    fn webhook_ids_are_fixed_per_item_and_outcome() {
        let a = webhook_id("payrun", "ext:p-1", EventType::Created);
        assert_eq!(a, webhook_id("payrun", "ext:p-1", EventType::Created));
        assert_ne!(a, webhook_id("payrun", "ext:p-1", EventType::Rejected));
        assert_ne!(a, webhook_id("payrun", "ext:p-2", EventType::Created));
        assert!(a.starts_with("msg_") && a.len() == 36);
    }

    fn create_cmd() -> Command {
        Command::from_json(
            Action::Create,
            &json!({"amount":"1200.50","currency":"EUR","startDate":"2030-01-01 12:00:00",
                    "endDate":"2030-02-01","name":"n","description":"d","referenceId":42,
                    "notification":true,"externalId":"p-1","email":"a@b.c"}),
        )
        .unwrap()
    }

    #[test]
    fn a_message_reads_back_as_the_same_command() {
        let cmd = create_cmd();
        let item = QueuedCommand::new("payrun", 3, &ItemKey::external("p-1"), &cmd);
        let back = QueuedCommand::parse(&item.to_body()).unwrap();
        assert_eq!(back, item);
        assert_eq!(back.command().unwrap(), cmd);
        assert_eq!(back.item_key().as_str(), "ext:p-1");
        assert_eq!(back.external_id.as_deref(), Some("p-1"));
        let cancel =
            Command::from_json(Action::Cancel, &json!({"ids":[3],"externalIds":["p-1"]})).unwrap();
        let item = QueuedCommand::new("void", 0, &ItemKey::parse("whid:m#0"), &cancel);
        assert_eq!(
            QueuedCommand::parse(&item.to_body())
                .unwrap()
                .command()
                .unwrap(),
            cancel
        );
    }

    #[test]
    fn a_tampered_or_foreign_message_is_refused() {
        let mut item = QueuedCommand::new("payrun", 0, &ItemKey::external("p-1"), &create_cmd());
        item.command["amount"] = json!(99999);
        assert!(item.command().is_err());
        assert!(QueuedCommand::parse("{\"hello\":1}").is_err());
        let mut v: Value = serde_json::from_str(&item.to_body()).unwrap();
        v["v"] = json!(2);
        assert!(QueuedCommand::parse(&v.to_string()).is_err());
    }

    fn failed(status: u16) -> DeliveryRecord {
        DeliveryRecord {
            route: "payrun".into(),
            key: "ext:p-1".into(),
            fingerprint: "fp".into(),
            state: DeliveryState::Failed {
                status,
                body: "{}".into(),
            },
            attempt: "a".into(),
            action: Action::Create,
            external_id: Some("p-1".into()),
            payout_id: None,
            created_at: 0,
            updated_at: 0,
            expires_at: 100,
        }
    }

    #[test]
    fn a_refusal_stands_for_a_message_seen_before() {
        assert_eq!(refusal_stands(Some(&failed(402)), 1, 10), None);
        assert_eq!(
            refusal_stands(Some(&failed(402)), 2, 10),
            Some((402, "{}".into()))
        );
        // Not sent (503): run it again. Expired: run it again.
        assert_eq!(refusal_stands(Some(&failed(503)), 2, 10), None);
        assert_eq!(refusal_stands(Some(&failed(402)), 2, 100), None);
        assert_eq!(refusal_stands(None, 5, 10), None);
    }

    #[test]
    fn event_bodies_carry_the_item_and_its_answer() {
        let item = QueuedCommand::new("payrun", 0, &ItemKey::external("p-1"), &create_cmd());
        let v = event_body(
            EventType::Created,
            "2030-01-01T00:00:00Z",
            &item,
            201,
            &json!({"payments":[{"id":7}]}),
        );
        assert_eq!(
            v,
            json!({"type":"payout.created","timestamp":"2030-01-01T00:00:00Z",
                   "data":{"route":"payrun","key":"ext:p-1","externalId":"p-1","status":201,
                           "payments":[{"id":7}]}})
        );
        let v = event_body(
            EventType::Rejected,
            "t",
            &item,
            402,
            &json!({"error":{"type":"INSUFFICIENT_FUNDS","message":"m"},"errors":[]}),
        );
        assert_eq!(v["data"]["error"]["type"], "INSUFFICIENT_FUNDS");
    }
}
