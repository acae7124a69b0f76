//! `payout-bridge serve --demo`: the simulated panel in-process, in-memory stores, demo routes,
//! and curl commands to try.

use super::run::serve_with_worker;
use anyhow::Context;
use payout_bridge::app::worker::Worker;
use payout_bridge::config::Settings;
use payout_bridge::notify::HttpNotifier;
use payout_bridge::ports::SecretSource;
use payout_bridge::queue::MemoryQueue;
use payout_bridge::secrets::{EnvSecrets, SecretResolver};
use payout_bridge::service::ServiceBuilder;
use payout_bridge::sim::{self, SimConfig};
use std::sync::Arc;

const DEMO_ROUTES: &str = include_str!("demo_routes.yaml");
const DEMO_API_KEY: &str = "demo-key";

pub async fn run(port: Option<u16>, host: &str) -> anyhow::Result<()> {
    payout_bridge::telemetry::init_logs(false);
    let settings = Settings::from_env()?;
    let sim_config = SimConfig::default();
    let password = sim_config.password.clone();
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot start the simulated panel")?;
    let sim = sim::spawn(sim_config, sim_listener)
        .await
        .context("cannot start the simulated panel")?;
    let mut settings = settings;
    settings.panel_url = Some(sim.url());
    // The demo's own values stand in for the environment (`env:` references).
    let secrets: Arc<dyn SecretSource> = Arc::new(SecretResolver::from_parts(
        EnvSecrets::from_vars([
            ("DEMO_API_KEY", DEMO_API_KEY.to_string()),
            ("DEMO_PANEL_PASSWORD", password),
        ]),
        None,
    ));
    // The queued route's queue and worker, in-process (lost on exit).
    let queue = Arc::new(MemoryQueue::new(
        payout_bridge::service::environment::LOCAL_MAX_RECEIVE_COUNT,
        std::time::Duration::from_secs(60),
    ));
    let bridge = Arc::new(
        ServiceBuilder::new(settings.clone())
            .routes_yaml(DEMO_ROUTES, "demo routes")?
            .secrets(secrets)
            .password_ref("env:DEMO_PANEL_PASSWORD")
            .queue(queue.clone())
            .settings_panel_limits()
            .build()
            .await?,
    );
    let worker = Worker::new(
        bridge.clone(),
        queue,
        Arc::new(HttpNotifier::new().map_err(anyhow::Error::msg)?),
        ServiceBuilder::worker_settings(&settings),
    );
    let sim_url = sim.url();
    serve_with_worker(
        bridge,
        Some(worker),
        host,
        port.unwrap_or(settings.port),
        move |addr| print_tryout(addr, &sim_url),
    )
    .await
}

fn print_tryout(addr: std::net::SocketAddr, sim_url: &str) {
    let base = format!("http://{addr}");
    println!(
        r#"
payout-bridge demo: simulated panel at {sim_url}, in-memory stores and queue, routes `payouts`,
`cancel` and `payrun` (queued).

Create a payout (201 with the panel's body; send it again: same answer, Idempotent-Replayed: true):

  curl -i -X POST {base}/hooks/payouts \
    -H 'Content-Type: application/json' -H 'X-Api-Key: {DEMO_API_KEY}' \
    -d '{{"amount":"25.00","currency":"GBP","startDate":"2030-01-01 12:00:00","endDate":"2030-02-01 12:00:00","name":"Demo project","description":"Demo payout","userName":"ada","notification":false,"externalId":"demo-1"}}'

Cancel it by your own id (200 {{"success":1}}):

  curl -i -X POST {base}/hooks/cancel \
    -H 'Content-Type: application/json' -H 'X-Api-Key: {DEMO_API_KEY}' \
    -d '{{"externalIds":["demo-1"]}}'

Queue a pay run (202 {{"queued":[…]}} at once; the in-process worker makes one payout per payslip):

  curl -i -X POST {base}/hooks/payrun \
    -H 'Content-Type: application/json' -H 'X-Api-Key: {DEMO_API_KEY}' \
    -d '{{"payslips":[{{"id":"demo-ps-1","amount":"1200.00","user":"ada"}},{{"id":"demo-ps-2","amount":"950.50","user":"grace"}}]}}'

Its results: send the same pay run again (200, each payslip's stored answer, "replayed": true; 202
again while a payslip is still queued or running), or see the payouts at the panel:

  curl -s {sim_url}/sim/state

See the panel's side:  curl {sim_url}/sim/state
Health:                curl {base}/health
Stop with Ctrl-C.
"#
    );
}
