//! What each piece of the Lambda function's start-up costs the first time it runs in a process
//! (which is what a cold start pays: code paged in, lazy statics filled, nothing warm), release
//! build. Each measurement set runs in a fresh child process, `--runs` times; the medians are
//! printed. See docs/BENCHMARKS.md ("Cold start: the pieces").
//!
//!     cargo build --release --example init_pieces
//!     target/release/examples/init_pieces --runs 30
//!
//! Sets (one child process each):
//! - `start`: the in-memory start-up in the order `service::environment::bridge` runs it: JSON logs, settings,
//!   routes file (`events/routes.yaml`, YAML), the panel client, the routes (secrets from the
//!   environment, verifiers, filters left to compile on first delivery);
//! - `filters`: compiling the four filters of `events/routes.yaml`, first one alone, then the
//!   other three (what the first delivery to each route now pays), then the payroll one again;
//! - `system-roots`: a reqwest client on the system CA store (`rustls-platform-verifier`, the
//!   panel client before compiled-in roots);
//! - `sdk-default` / `sdk-env-credentials` / `sdk-lambda`: the SDK configuration and the
//!   DynamoDB + Secrets Manager clients, with the environment Lambda gives a function (region
//!   and credentials in variables), then the first request of each client to a closed loopback
//!   port (`AWS_ENDPOINT_URL=http://…`: the request fails at connect, after the SDK built its
//!   connector). `sdk-default`: the SDK's default chains (profile files, web identity,
//!   container, instance metadata) and HTTPS client (system CA store, parsed when each client
//!   is built); `sdk-env-credentials`: region and credentials from the environment, default
//!   HTTPS client; `sdk-lambda`: `aws::sdk_config()` as the function runs it (also the Amazon
//!   Trust Services roots instead of the system store);
//! - `clap`: parsing an empty command line with a copy of the CLI's shape (`src/cli/mod.rs`).

use clap::{Parser, Subcommand};

use payout_bridge::config::routes::RoutesFile;
use payout_bridge::config::Settings;
use payout_bridge::panel::{PanelClient, PanelClientConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Cold cost of each start-up piece, in fresh processes")]
struct Args {
    /// Child processes per set.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Run one set in this process and print its timings (used by the parent).
    #[arg(long)]
    child: Option<String>,
}

const SETS: &[&str] = &[
    "start",
    "filters",
    "system-roots",
    "sdk-default",
    "sdk-env-credentials",
    "sdk-lambda",
    "clap",
];

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Runs `f` and records its time under `name`.
fn time<T>(out: &mut Vec<(String, f64)>, name: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    out.push((name.to_string(), us(t.elapsed())));
    v
}

async fn time_async<T>(
    out: &mut Vec<(String, f64)>,
    name: &str,
    f: impl std::future::Future<Output = T>,
) -> T {
    let t = Instant::now();
    let v = f.await;
    out.push((name.to_string(), us(t.elapsed())));
    v
}

async fn child(set: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    match set {
        "start" => {
            time(&mut out, "logs (JSON subscriber)", || {
                payout_bridge::telemetry::init_logs(true)
            });
            let settings = time(
                &mut out,
                "settings from the environment",
                Settings::from_env,
            )?;
            let routes = time(&mut out, "routes file (read + YAML)", || {
                RoutesFile::load(std::path::Path::new("events/routes.yaml"))
            })?;
            time(&mut out, "embedded routes (YAML)", || {
                RoutesFile::parse(payout_bridge::service::EMBEDDED_ROUTES, "embedded")
            })?;
            time(&mut out, "panel client (compiled-in roots)", || {
                PanelClient::new(&PanelClientConfig {
                    base_url: "https://panel.example.com".into(),
                    connect_timeout: settings.panel_connect_timeout,
                    request_timeout: settings.panel_request_timeout,
                })
            })?;
            let secrets = payout_bridge::service::environment::secret_source(None);
            time_async(
                &mut out,
                "build routes (secrets, verifiers; filters lazy)",
                payout_bridge::service::routes::build_routes(&routes, secrets.as_ref()),
            )
            .await?;
        }
        "filters" => {
            let routes = RoutesFile::load(std::path::Path::new("events/routes.yaml"))?;
            let sources: Vec<&str> = routes
                .routes
                .iter()
                .filter_map(|r| r.map.as_deref())
                .collect();
            let filters: Vec<_> = sources
                .iter()
                .map(|s| payout_bridge::mapping::Filter::lazy(s))
                .collect();
            time(&mut out, "first filter compile (payroll)", || {
                filters[0].compile_now()
            })?;
            time(&mut out, "the other three filters", || {
                filters[1..].iter().try_for_each(|f| f.compile_now())
            })?;
            time(&mut out, "payroll filter again (warm)", || {
                payout_bridge::mapping::Filter::check(sources[0])
            })?;
            let f = &filters[0];
            let body = std::fs::read("events/bodies/payroll-payrun.json")?;
            time(&mut out, "first payroll run (3 payslips)", || {
                f.run_json(&body, &BTreeMap::new())
            })?;
        }
        "system-roots" => {
            time(&mut out, "reqwest client, system CA store", || {
                reqwest::Client::builder().build()
            })?;
        }
        "sdk-default" | "sdk-env-credentials" | "sdk-lambda" => {
            let sdk = if set == "sdk-default" || set == "sdk-env-credentials" {
                // the SDK's defaults with the bridge's timeouts (retries from the environment);
                // `sdk-env-credentials`: region and credentials from the environment, the
                // default HTTPS client (system CA store)
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(payout_bridge::aws::timeout_config());
                if set == "sdk-env-credentials" {
                    loader = loader
                        .region(aws_config::Region::new("us-east-1"))
                        .credentials_provider(
                            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                        );
                }
                time_async(&mut out, "SDK config", loader.load()).await
            } else {
                time_async(
                    &mut out,
                    "aws::sdk_config()",
                    payout_bridge::aws::sdk_config(),
                )
                .await
            };
            let (dynamo, sm) = time(&mut out, "DynamoDB + Secrets Manager clients", || {
                (
                    aws_sdk_dynamodb::Client::new(&sdk),
                    aws_sdk_secretsmanager::Client::new(&sdk),
                )
            });
            // A closed port: the request fails at connect, after the SDK built its connector.
            let r = time_async(
                &mut out,
                "first DynamoDB request (connector + CA store)",
                dynamo
                    .get_item()
                    .table_name("t")
                    .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
                    .send(),
            )
            .await;
            anyhow::ensure!(r.is_err(), "expected a connection error");
            let r = time_async(
                &mut out,
                "first Secrets Manager request",
                sm.get_secret_value().secret_id("s").send(),
            )
            .await;
            anyhow::ensure!(r.is_err(), "expected a connection error");
        }
        "clap" => {
            time(&mut out, "clap: parse an empty command line", || {
                CliShape::try_parse_from(["payout-bridge"])
            })?;
        }
        other => anyhow::bail!("unknown set {other}"),
    }
    Ok(out)
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(set) = args.child {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let out = rt.block_on(child(&set))?;
        for (name, v) in out {
            println!("{name}\t{v:.1}");
        }
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let port = closed_port();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "runs={} per set, load {}",
        args.runs,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for set in SETS {
        let mut samples: Vec<(String, Vec<f64>)> = Vec::new();
        for _ in 0..=args.runs {
            let mut cmd = Command::new(&exe);
            cmd.arg("--child").arg(set);
            // What Lambda gives a function, plus the local secrets of events/routes.yaml.
            cmd.env("AWS_LAMBDA_FUNCTION_NAME", "init-pieces")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
                .env("AWS_SECRET_ACCESS_KEY", "secret")
                .env("AWS_SESSION_TOKEN", "token")
                .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
                .env("AWS_MAX_ATTEMPTS", "1")
                .env("RUST_LOG", "warn");
            for (k, v) in [
                (
                    "PAYROLL_WEBHOOK_SECRET",
                    "whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh",
                ),
                ("CRM_SIGNING_SECRET", "crm-local-secret"),
                ("FORM_API_KEY", "form-local-key"),
                ("PAYOUTS_KEY", "local-payouts-key"),
            ] {
                cmd.env(k, v);
            }
            let o = cmd.output()?;
            anyhow::ensure!(
                o.status.success(),
                "{set}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            // The first child of each set only warms the page cache.
            if samples.is_empty() && !o.stdout.is_empty() {
                samples = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.split_once('\t'))
                    .map(|(n, _)| (n.to_string(), Vec::new()))
                    .collect();
                continue;
            }
            for (line, (_, xs)) in String::from_utf8_lossy(&o.stdout).lines().zip(&mut samples) {
                if let Some((_, v)) = line.split_once('\t') {
                    xs.push(v.parse()?);
                }
            }
        }
        println!("[{set}]");
        for (name, mut xs) in samples {
            xs.sort_by(f64::total_cmp);
            let p50 = xs[xs.len() / 2];
            let p90 = xs[(xs.len() * 9 / 10).min(xs.len() - 1)];
            println!("  {name:<50} p50 {:>8.1} µs   p90 {:>8.1} µs", p50, p90);
        }
    }
    Ok(())
}

// A copy of the shape of the command line of `src/cli/mod.rs` (same subcommands and
// arguments), to time clap's parse of the empty command line the Lambda entry gets.
#[derive(Debug, Parser)]
#[command(name = "payout-bridge", version, about)]
struct CliShape {
    #[command(subcommand)]
    command: Option<CmdShape>,
}

#[derive(Debug, Subcommand)]
enum CmdShape {
    Serve {
        #[arg(long)]
        demo: bool,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    Lambda,
    CheckConfig {
        file: Option<PathBuf>,
    },
    Map {
        #[arg(long)]
        route: String,
        #[arg(long)]
        body: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        form: bool,
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    Pending {
        #[arg(long)]
        json: bool,
    },
    Resolve {
        #[arg(long)]
        route: String,
        #[arg(long)]
        key: String,
        #[arg(
            long,
            conflicts_with = "not_created",
            required_unless_present = "not_created"
        )]
        payout_id: Option<u64>,
        #[arg(long)]
        not_created: bool,
    },
}
