//! Running the bridge: `serve` (a local HTTP server) and the Lambda entry.

use anyhow::Context;
use payout_bridge::app::Bridge;
use payout_bridge::config::Settings;
use payout_bridge::service::environment::{self, Mode};
use std::sync::Arc;

pub async fn run_lambda() -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(true);
    payout_bridge::telemetry::configure_metrics(std::env::var("BRIDGE_METRICS").ok().as_deref());
    let settings = Settings::from_env()?;
    let bridge = environment::bridge(&settings, Mode::Lambda)
        .await
        .context("cannot start the function")?;
    payout_bridge::lambda::run(Arc::new(bridge))
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}

pub async fn run_serve(port: Option<u16>, host: &str) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(
        std::env::var("BRIDGE_LOG_FORMAT").is_ok_and(|v| v == "json"),
    );
    payout_bridge::telemetry::configure_metrics(std::env::var("BRIDGE_METRICS").ok().as_deref());
    let settings = Settings::from_env()?;
    let bridge = environment::bridge(&settings, Mode::Serve)
        .await
        .context("cannot start")?;
    let port = port.unwrap_or(settings.port);
    serve(Arc::new(bridge), host, port, |addr| {
        tracing::info!("payout-bridge listening on http://{addr}");
    })
    .await
}

/// Serves the router on host:port until Ctrl-C or SIGTERM. `on_ready` gets the bound address.
pub async fn serve(
    bridge: Arc<Bridge>,
    host: &str,
    port: u16,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let addr = listener.local_addr()?;
    on_ready(addr);
    // A line on stdout that scripts and tests wait for.
    println!("payout-bridge listening on http://{addr}");
    axum::serve(listener, payout_bridge::http::router(bridge))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server error")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
