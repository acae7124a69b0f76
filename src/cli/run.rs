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
    let bridge = Arc::new(
        environment::bridge(&settings, Mode::Lambda)
            .await
            .context("cannot start the function")?,
    );
    let worker = environment::worker(bridge.clone(), &settings)?.map(Arc::new);
    payout_bridge::lambda::run(bridge, worker)
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))
}

/// `payout-bridge worker`: long-polls BRIDGE_QUEUE_URL until Ctrl-C or SIGTERM.
pub async fn run_worker() -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(
        std::env::var("BRIDGE_LOG_FORMAT").is_ok_and(|v| v == "json"),
    );
    payout_bridge::telemetry::configure_metrics(std::env::var("BRIDGE_METRICS").ok().as_deref());
    let settings = Settings::from_env()?;
    let bridge = Arc::new(
        environment::bridge(&settings, Mode::Worker)
            .await
            .context("cannot start the worker")?,
    );
    let worker =
        environment::worker(bridge, &settings)?.context("no queue: set BRIDGE_QUEUE_URL")?;
    tracing::info!(
        concurrency = settings.worker_concurrency,
        panel_rate = settings.panel_rate,
        "payout-bridge worker polling the queue"
    );
    Arc::new(worker).run(shutdown_signal()).await;
    Ok(())
}

pub async fn run_serve(port: Option<u16>, host: &str, no_worker: bool) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(
        std::env::var("BRIDGE_LOG_FORMAT").is_ok_and(|v| v == "json"),
    );
    payout_bridge::telemetry::configure_metrics(std::env::var("BRIDGE_METRICS").ok().as_deref());
    let settings = Settings::from_env()?;
    let bridge = Arc::new(
        environment::bridge(&settings, Mode::Serve { worker: !no_worker })
            .await
            .context("cannot start")?,
    );
    let worker = if no_worker {
        None
    } else {
        environment::worker(bridge.clone(), &settings)?
    };
    let port = port.unwrap_or(settings.port);
    serve_with_worker(bridge, worker, host, port, |addr| {
        tracing::info!("payout-bridge listening on http://{addr}");
    })
    .await
}

/// Serves the router and, when given, runs the worker beside it; both stop on Ctrl-C or
/// SIGTERM.
pub async fn serve_with_worker(
    bridge: Arc<Bridge>,
    worker: Option<payout_bridge::app::worker::Worker>,
    host: &str,
    port: u16,
    on_ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let Some(worker) = worker else {
        return serve(bridge, host, port, on_ready).await;
    };
    tracing::info!(
        concurrency = worker.settings().concurrency,
        "queue worker running in this process"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker_task = tokio::spawn(Arc::new(worker).run(async move {
        let mut rx = stop_rx;
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    let served = serve(bridge, host, port, on_ready).await;
    let _ = stop_tx.send(true);
    let _ = worker_task.await;
    served
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

pub(crate) async fn shutdown_signal() {
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
