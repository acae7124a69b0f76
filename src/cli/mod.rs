//! The `payout-bridge` command line: `serve`, the Lambda entry, operator commands, and the
//! tools for building routes (`check-config`, `map`).

#[cfg(feature = "sim")]
pub mod demo;
pub mod operator;
pub mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// payout-bridge: webhooks from CRMs and payroll systems to payout-panel payouts, exactly once.
#[derive(Debug, Parser)]
#[command(name = "payout-bridge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Serve the webhook routes over HTTP on PORT (default 3000).
    Serve {
        /// Run with a built-in simulated panel, in-memory stores and demo routes (needs the `sim`
        /// feature, on by default; the Lambda build has no simulator).
        #[arg(long)]
        demo: bool,
        /// Port to listen on (overrides PORT).
        #[arg(long)]
        port: Option<u16>,
        /// Address to bind (default 127.0.0.1; use 0.0.0.0 in a container).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// With BRIDGE_QUEUE_URL set: accept queued routes' commands but run no worker here
        /// (another process, `payout-bridge worker`, works the queue).
        #[arg(long)]
        no_worker: bool,
    },
    /// Run as the Lambda function (the default when AWS_LAMBDA_RUNTIME_API is set); it answers
    /// HTTP events and SQS events (the queue worker) alike.
    Lambda,
    /// Work the queue of queued routes: long-poll BRIDGE_QUEUE_URL and run each command (for
    /// containers and local runs; under Lambda the SQS event source does this).
    Worker,
    /// List the dead-letter queue (BRIDGE_DLQ_URL): route, key, externalId, receive count and
    /// last error of each message.
    DeadLetters {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move dead letters back to the queue (BRIDGE_QUEUE_URL): one key's, or all of them.
    Redrive {
        /// The key of the command to move (as `dead-letters` or `pending` print it, or a bare
        /// externalId).
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        key: Option<String>,
        /// Every message of the dead-letter queue.
        #[arg(long)]
        all: bool,
        /// Show what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check a routes file: syntax, schemes, filters and that every secret resolves.
    CheckConfig {
        /// The routes file (default: BRIDGE_CONFIG).
        file: Option<PathBuf>,
    },
    /// Print the commands a payload maps to on a route, without verifying it or calling the panel.
    Map {
        /// Route name.
        #[arg(long)]
        route: String,
        /// File with the payload (JSON, or a form body with --form).
        #[arg(long)]
        body: PathBuf,
        /// The routes file (default: BRIDGE_CONFIG).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Treat the body as application/x-www-form-urlencoded.
        #[arg(long)]
        form: bool,
        /// A header visible to the filter as $headers, as `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// List deliveries whose outcome at the panel is unknown and need a person.
    Pending {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one delivery record and its stored answer, as JSON.
    Status {
        /// Route name.
        #[arg(long)]
        route: String,
        /// Idempotency key, as `pending` prints it, or a bare externalId.
        #[arg(long)]
        key: String,
    },
    /// Settle a delivery whose outcome is unknown, after checking the panel by hand.
    Resolve {
        /// Route name.
        #[arg(long)]
        route: String,
        /// Idempotency key, as `pending` prints it, or a bare externalId.
        #[arg(long)]
        key: String,
        /// The payout exists at the panel with this id: later deliveries get it as their answer.
        #[arg(
            long,
            conflicts_with = "not_created",
            required_unless_present = "not_created"
        )]
        payout_id: Option<u64>,
        /// The payout does not exist at the panel: the next delivery creates it.
        #[arg(long)]
        not_created: bool,
    },
}

/// Runs the command line; errors are printed by `main`.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    match cli.command {
        None if in_lambda => run::run_lambda().await,
        Some(Cmd::Lambda) => run::run_lambda().await,
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            anyhow::bail!("no command given (try `payout-bridge serve --demo`)")
        }
        Some(Cmd::Serve {
            demo: true,
            port,
            host,
            ..
        }) => serve_demo(port, &host).await,
        Some(Cmd::Serve {
            demo: false,
            port,
            host,
            no_worker,
        }) => run::run_serve(port, &host, no_worker).await,
        Some(Cmd::Worker) => run::run_worker().await,
        Some(Cmd::DeadLetters { json }) => operator::dead_letters(json).await,
        Some(Cmd::Redrive {
            key,
            all: _,
            dry_run,
        }) => operator::redrive(key.as_deref(), dry_run).await,
        Some(Cmd::CheckConfig { file }) => operator::check_config(file).await,
        Some(Cmd::Map {
            route,
            body,
            config,
            form,
            headers,
        }) => operator::map(&route, &body, config, form, &headers).await,
        Some(Cmd::Pending { json }) => operator::pending(json).await,
        Some(Cmd::Status { route, key }) => operator::status(&route, &key).await,
        Some(Cmd::Resolve {
            route,
            key,
            payout_id,
            not_created,
        }) => operator::resolve(&route, &key, payout_id, not_created).await,
    }
}

/// `serve --demo`: the simulated panel in-process (`demo`).
#[cfg(feature = "sim")]
async fn serve_demo(port: Option<u16>, host: &str) -> anyhow::Result<()> {
    demo::run(port, host).await
}

/// `serve --demo` in a build without the simulator (the Lambda build): a clear refusal.
#[cfg(not(feature = "sim"))]
async fn serve_demo(_port: Option<u16>, _host: &str) -> anyhow::Result<()> {
    anyhow::bail!(
        "this build has no panel simulator, so `serve --demo` is not available: it was built \
         without the `sim` feature (as the Lambda build is). Build with default features, \
         e.g. `cargo run -- serve --demo`, or run `serve` against a panel (PANEL_URL)"
    )
}
