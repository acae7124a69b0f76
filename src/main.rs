use clap::Parser;
mod cli;

use cli::{run, Cli};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("payout-bridge: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
