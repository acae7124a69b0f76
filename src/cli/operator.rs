//! Commands for people: `check-config`, `map`, `pending`, `resolve`.

use anyhow::{bail, Context};
use payout_bridge::app::build;
use payout_bridge::config::routes::RoutesFile;
use payout_bridge::config::Settings;
use payout_bridge::domain::Command;
use payout_bridge::mapping::Filter;
use payout_bridge::ports::{Clock, DeliveryState, ExternalPayout, SystemClock};
use payout_bridge::wiring;
use serde_json::json;
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
    let needs_aws = routes.routes.iter().any(|r| {
        r.auth
            .secret_refs()
            .iter()
            .any(|s| s.starts_with("secretsmanager:"))
    });
    let sdk = if needs_aws {
        Some(payout_bridge::aws::sdk_config().await)
    } else {
        None
    };
    let secrets = wiring::secret_source(sdk.as_ref());
    build::build_routes(&routes, secrets.as_ref()).await?;
    println!("ok: {} route(s)", routes.routes.len());
    for r in &routes.routes {
        println!(
            "  POST /hooks/{:<20} {:<7} auth {:<18} map {}",
            r.name,
            r.action.as_str(),
            r.auth.scheme_name(),
            r.map
                .as_deref()
                .map(|m| if m.trim() == "." { "." } else { "filter" })
                .unwrap_or(".")
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

pub async fn pending(as_json: bool) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let store = wiring::operator_store(&settings).await?;
    let now = SystemClock.now();
    let records = store.pending(now).await?;
    if as_json {
        for r in &records {
            let reason = match &r.state {
                DeliveryState::OutcomeUnknown { reason } => reason.clone(),
                _ => "still in progress past its deadline (the invocation died)".into(),
            };
            println!(
                "{}",
                json!({
                    "route": r.route, "key": r.key, "state": r.state.name(),
                    "externalId": r.external_id, "action": r.action,
                    "createdAt": r.created_at, "updatedAt": r.updated_at, "reason": reason,
                })
            );
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

pub async fn resolve(
    route: &str,
    key: &str,
    payout_id: Option<u64>,
    not_created: bool,
) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let store = wiring::operator_store(&settings).await?;
    let now = SystemClock.now();
    let record = store
        .get(route, key, now)
        .await?
        .with_context(|| format!("no delivery record for route `{route}` key `{key}`"))?;
    let (state, external) = match (payout_id, not_created) {
        (Some(id), false) => (
            DeliveryState::Completed {
                status: 201,
                body: json!({ "payments": [{ "id": id }], "resolvedByOperator": true }).to_string(),
            },
            record.external_id.as_ref().map(|ext| ExternalPayout {
                external_id: ext.clone(),
                payout_id: id,
                route: route.to_string(),
                expires_at: now + settings.retention_secs(),
            }),
        ),
        (None, true) => (
            DeliveryState::Failed {
                status: 503,
                body: json!({"error":{"message":"resolved by an operator: not created at the panel","type":"PANEL_UNAVAILABLE"},"errors":[]}).to_string(),
            },
            None,
        ),
        _ => bail!("give exactly one of --payout-id N or --not-created"),
    };
    if !store
        .resolve(route, key, &state, external.as_ref(), now)
        .await?
    {
        bail!(
            "the record is {} and cannot be resolved (only OUTCOME_UNKNOWN, or IN_PROGRESS past its deadline)",
            record.state.name()
        );
    }
    match payout_id {
        Some(id) => println!("resolved: route `{route}` key `{key}` is payout {id}; redeliveries get it as their answer"),
        None => println!("resolved: route `{route}` key `{key}` was not created; the next delivery creates it"),
    }
    Ok(())
}
