//! `panel-sim`: the payout panel simulator as a standalone process.
//!
//! Prints exactly one line to stdout once listening:
//! `panel-sim listening on http://127.0.0.1:PORT`; logs go to stderr.
//! Exits cleanly on SIGTERM or Ctrl-C.

use std::io::{IsTerminal as _, Write as _};
use std::net::IpAddr;

use anyhow::Context as _;
use clap::Parser;
use payout_bridge::sim::{self, SimConfig};
use rust_decimal::Decimal;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Payout panel simulator (strict, in-memory, with fault injection under /sim/).
#[derive(Debug, Parser)]
#[command(name = "panel-sim", version)]
struct Cli {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,

    /// Port to bind; 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,

    /// Authentication password accepted as `apiKey`.
    #[arg(long, env = "PANEL_SIM_PASSWORD", default_value = "demo-password")]
    password: String,

    /// Lifetime of issued tokens, in seconds.
    #[arg(long, default_value_t = 86_400)]
    token_ttl_secs: u64,

    /// Available funds, CUR=AMOUNT; repeatable or comma-separated
    /// (e.g. `--funds GBP=1000,EUR=50.5`). When given, replaces the default
    /// funds (1000000 each of GBP, EUR, USD, PLN).
    #[arg(long, value_delimiter = ',', value_parser = parse_funds)]
    funds: Vec<(String, Decimal)>,

    /// Payouts above this amount are created with status UNAUTHORIZED.
    #[arg(long)]
    authorization_threshold: Option<Decimal>,

    /// Send every API error body with HTTP status 200.
    #[arg(long)]
    errors_with_status_200: bool,
}

fn parse_funds(spec: &str) -> Result<(String, Decimal), String> {
    sim::parse_funds_entry(spec).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .finish()
        .with(payout_bridge::telemetry::log_filter(std::env::var("RUST_LOG").ok().as_deref()).0)
        .init();

    let cli = Cli::parse();
    let mut config = SimConfig {
        password: cli.password,
        token_ttl_secs: cli.token_ttl_secs,
        authorization_threshold: cli.authorization_threshold,
        errors_with_status_200: cli.errors_with_status_200,
        ..SimConfig::default()
    };
    if !cli.funds.is_empty() {
        config.funds = cli.funds;
    }

    let listener = tokio::net::TcpListener::bind((cli.host, cli.port))
        .await
        .with_context(|| format!("binding {}:{}", cli.host, cli.port))?;
    let handle = sim::spawn(config, listener)
        .await
        .context("starting the simulator")?;

    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "panel-sim listening on {}", handle.url())?;
        stdout.flush()?;
    }

    wait_for_signal().await?;
    tracing::info!("panel-sim: signal received, stopping");
    handle.shutdown_and_wait().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        res = tokio::signal::ctrl_c() => res.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}
