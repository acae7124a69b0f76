//! Commands for people: `check-config`, `map`, `pending`, `resolve`.

use anyhow::{bail, Context};
use payout_bridge::app::operator::{pending_reason, Resolution};
use payout_bridge::config::routes::RoutesFile;
use payout_bridge::config::Settings;
use payout_bridge::domain::delivery::DeliveryRecord;
use payout_bridge::domain::Command;
use payout_bridge::mapping::Filter;
use payout_bridge::service::{environment, routes::build_routes};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn routes_from(file: Option<PathBuf>, settings: &Settings) -> anyhow::Result<RoutesFile> {
    match file.or_else(|| settings.routes_path.clone()) {
        Some(path) => Ok(RoutesFile::load(&path)?),
        None => bail!("no routes file: give one or set BRIDGE_CONFIG"),
    }
}

pub async fn check_config(file: Option<PathBuf>) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let routes = routes_from(file, &settings)?;
    // The bridge compiles a route's filter on its first delivery: compile them all here.
    routes.check_filters()?;
    let needs_aws = environment::routes_use_secrets_manager(&routes);
    let sdk = if needs_aws {
        Some(payout_bridge::aws::sdk_config().await)
    } else {
        None
    };
    let secrets = environment::secret_source(sdk.as_ref());
    build_routes(&routes, secrets.as_ref()).await?;
    println!("ok: {} route(s)", routes.routes.len());
    for r in &routes.routes {
        println!(
            "  POST /hooks/{:<20} {:<7} auth {:<18} map {:<6} {}",
            r.name,
            r.action.as_str(),
            r.auth.scheme_name(),
            r.map
                .as_deref()
                .map(|m| if m.trim() == "." { "." } else { "filter" })
                .unwrap_or("."),
            match (r.mode, &r.notify) {
                (payout_bridge::domain::queue::RouteMode::Sync, _) => "sync".to_string(),
                (_, None) => "queued".to_string(),
                (_, Some(n)) => format!("queued, notify {}", n.url),
            }
        );
    }
    Ok(())
}

pub async fn map(
    route: &str,
    body: &PathBuf,
    config: Option<PathBuf>,
    form: bool,
    headers: &[String],
) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let routes = routes_from(config, &settings)?;
    let r = routes
        .routes
        .iter()
        .find(|r| r.name == route)
        .with_context(|| format!("no route `{route}` in the routes file"))?;
    let filter = match r.map.as_deref() {
        Some(src) => Filter::compile(src).with_context(|| format!("route `{route}`, field map"))?,
        None => Filter::identity(),
    };
    let raw = std::fs::read(body).with_context(|| format!("cannot read {}", body.display()))?;
    let payload = if form {
        payout_bridge::mapping::form::form_to_json(&raw)
    } else {
        serde_json::from_slice(&raw)
            .context("the body is not valid JSON (use --form for form bodies)")?
    };
    let mut header_map = BTreeMap::new();
    for h in headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("--header `{h}` is not `Name: value`"))?;
        header_map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let outputs = filter.run(payload, &header_map)?;
    let action = r.action;
    let mut invalid = 0;
    for (i, out) in outputs.iter().enumerate() {
        match Command::from_json(action, out) {
            Ok(Command::Create(c)) => {
                let mut body = c.panel_body();
                if let Some(ext) = &c.external_id {
                    body["externalId"] = json!(ext);
                }
                println!("{}", json!({"index": i, "create": body}));
            }
            Ok(Command::Cancel(c)) => println!(
                "{}",
                json!({"index": i, "cancel": {"ids": c.ids, "externalIds": c.external_ids}})
            ),
            Err(e) => {
                invalid += 1;
                println!(
                    "{}",
                    json!({"index": i, "invalid": {"output": out, "error": e.to_string()}})
                );
            }
        }
    }
    eprintln!("{} command(s), {invalid} invalid", outputs.len());
    if invalid > 0 {
        bail!("{invalid} output(s) are not valid commands");
    }
    Ok(())
}

/// A record as JSON: what `pending --json` and `status` print.
fn record_json(r: &DeliveryRecord) -> Value {
    let mut out = json!({
        "route": r.route, "key": r.key, "state": r.state.name(),
        "externalId": r.external_id, "action": r.action.as_str(), "payoutId": r.payout_id,
        "createdAt": r.created_at, "updatedAt": r.updated_at,
    });
    if r.needs_person(r.updated_at.max(0)) || !r.state.is_settled() {
        out["reason"] = json!(pending_reason(r));
    }
    out
}

pub async fn pending(as_json: bool) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let operator = environment::operator(&settings).await?;
    let records = operator.pending().await?;
    if as_json {
        for r in &records {
            println!("{}", record_json(r));
        }
        return Ok(());
    }
    if records.is_empty() {
        println!("no deliveries need a person");
        return Ok(());
    }
    println!(
        "{} deliveries with an unknown outcome at the panel:",
        records.len()
    );
    for r in &records {
        let when = chrono::DateTime::from_timestamp(r.updated_at, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        println!(
            "  --route {} --key {}   state {}  externalId {}  since {}",
            r.route,
            r.key,
            r.state.name(),
            r.external_id.as_deref().unwrap_or("-"),
            when
        );
    }
    println!("Check each at the panel, then: payout-bridge resolve --route R --key K (--payout-id N | --not-created)");
    Ok(())
}

pub async fn status(route: &str, key: &str) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let operator = environment::operator(&settings).await?;
    let record = operator
        .status(route, key)
        .await?
        .with_context(|| format!("no delivery record for route `{route}` key `{key}`"))?;
    let mut out = record_json(&record);
    if let payout_bridge::domain::delivery::DeliveryState::Completed { status, body }
    | payout_bridge::domain::delivery::DeliveryState::Failed { status, body } = &record.state
    {
        out["answer"] = json!({
            "status": status,
            "body": serde_json::from_str::<Value>(body).unwrap_or(Value::Null),
        });
    }
    println!("{out}");
    Ok(())
}

pub async fn resolve(
    route: &str,
    key: &str,
    payout_id: Option<u64>,
    not_created: bool,
) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let operator = environment::operator(&settings).await?;
    let resolution = match (payout_id, not_created) {
        (Some(payout_id), false) => Resolution::Created { payout_id },
        (None, true) => Resolution::NotCreated,
        _ => bail!("give exactly one of --payout-id N or --not-created"),
    };
    let record = operator.resolve(route, key, resolution).await?;
    let key = &record.key;
    match payout_id {
        Some(id) => println!("resolved: route `{route}` key `{key}` is payout {id}; redeliveries get it as their answer"),
        None => println!("resolved: route `{route}` key `{key}` was not created; the next delivery creates it"),
    }
    Ok(())
}

fn dead_letter_json(d: &payout_bridge::app::operator::DeadLetter) -> Value {
    json!({
        "messageId": d.message_id, "route": d.route, "key": d.key, "externalId": d.external_id,
        "receiveCount": d.receive_count, "lastError": d.last_error,
    })
}

pub async fn dead_letters(as_json: bool) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let operator = environment::queue_operator(&settings).await?;
    let letters = operator.dead_letters().await?;
    if as_json {
        for d in &letters {
            println!("{}", dead_letter_json(d));
        }
        return Ok(());
    }
    if letters.is_empty() {
        println!("the dead-letter queue is empty");
        return Ok(());
    }
    println!("{} message(s) in the dead-letter queue:", letters.len());
    for d in &letters {
        println!(
            "  --route {} --key {}   externalId {}  received {}  last error: {}",
            d.route.as_deref().unwrap_or("?"),
            d.key.as_deref().unwrap_or("?"),
            d.external_id.as_deref().unwrap_or("-"),
            d.receive_count,
            d.last_error.as_deref().unwrap_or("-"),
        );
    }
    println!("Fix the cause, then: payout-bridge redrive (--key K | --all) [--dry-run]");
    Ok(())
}

pub async fn redrive(key: Option<&str>, dry_run: bool) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let operator = environment::queue_operator(&settings).await?;
    let done = operator.redrive(key, dry_run).await?;
    if done.move_task {
        println!(
            "redrive: SQS message-move task started: every dead letter goes back to the queue"
        );
        return Ok(());
    }
    let verb = if dry_run { "would move" } else { "moved" };
    println!(
        "redrive: {verb} {} message(s) back to the queue",
        done.moved.len()
    );
    for d in &done.moved {
        println!("  {}", dead_letter_json(d));
    }
    Ok(())
}
