//! Cold-start benchmark: a stub Lambda Runtime API on loopback, and the time from process
//! start to the first answered event, for payout-bridge (Lambda mode) next to a bare
//! hello-world (`examples/hello_lambda.rs`), both release builds. Driven by
//! `scripts/bench-coldstart.sh`.
//!
//! The stub implements what the Rust runtime calls:
//! `GET /2018-06-01/runtime/invocation/next` (serves an API Gateway v2 event with
//! `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//! `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id`),
//! `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error` and
//! `POST /2018-06-01/runtime/init/error`.
//!
//! Each run spawns the binary with `AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT` and the usual
//! `AWS_LAMBDA_*` variables, serves `--invokes` events (the first is the cold one, the second
//! a warm one for comparison), records
//!
//! - `ready`: spawn → the runtime's first `GET …/next` (process start + init),
//! - `cold`: spawn → the first response received (the headline figure),
//! - `invoke1`: first `next` → first response (the cold invocation itself),
//! - `invoke2`: second `next` → second response (a warm invocation),
//! - peak RSS (VmHWM) of the process,
//!
//! then kills it. Targets take turns (A B C A B C …) so that drift hits all alike; one unmeasured
//! round goes first (page cache). Every run has a 30 s limit; everything stops by itself.
//!
//! Targets: `hello` (lambda_http), `hello-raw` (lambda_runtime only), `bridge-memory`
//! (`BRIDGE_LOCAL_STATE=memory`, routes from `--config` with `env:` secrets), and with
//! `--table`: `bridge-dynamodb` (DynamoDB + Secrets Manager for the password, against the moto
//! server named by `AWS_ENDPOINT_URL`), and with `--embedded` also `bridge-dynamodb-smroutes`
//! (`BRIDGE_CONFIG=embedded`: the deployed routes, whose secrets come from Secrets Manager).

mod support;

use anyhow::{bail, Context};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, Parser)]
#[command(
    about = "Cold start of payout-bridge vs a bare Lambda hello-world, under a stub Runtime API"
)]
struct Args {
    /// The hello-world binary (target/release/examples/hello_lambda).
    #[arg(long)]
    hello: PathBuf,
    /// The payout-bridge binary (target/release/payout-bridge).
    #[arg(long)]
    bridge: PathBuf,
    /// A running panel (simulator).
    #[arg(long)]
    panel_url: String,
    #[arg(long, default_value = "bench-password")]
    panel_password: String,
    /// Routes file for the bridge (env: secrets, set from scripts/make_events.py LOCAL_SECRETS).
    #[arg(long, default_value = "events/routes.yaml")]
    config: String,
    /// API Gateway v2 event to serve (its JSON body gets a fresh externalId per invocation).
    #[arg(long, default_value = "events/canonical-create.json")]
    event: PathBuf,
    /// Measured runs per target.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Events served per process (1 = cold only; 2 = cold + one warm).
    #[arg(long, default_value_t = 2)]
    invokes: usize,
    /// DynamoDB table (on moto, via AWS_ENDPOINT_URL): adds the `bridge-dynamodb` target.
    #[arg(long)]
    table: Option<String>,
    /// With --table: also `bridge-dynamodb-smroutes` (BRIDGE_CONFIG=embedded).
    #[arg(long)]
    embedded: bool,
    /// Where each target's last process log goes.
    #[arg(long, default_value = ".tmp")]
    log_dir: PathBuf,
    /// Print one JSON line per target instead of a table.
    #[arg(long)]
    json: bool,
    /// A directory with another build (`payout-bridge`, and `hello_lambda` if present): adds
    /// `… (DIRNAME)` targets (hello and the bridge targets) to the
    /// same run, so that they take turns with the others under the same load. Repeatable.
    #[arg(long)]
    before: Vec<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// The stub Runtime API

#[derive(Debug)]
enum Seen {
    Next(Instant),
    Response(Instant, Bytes),
    Error(String),
}

struct RunCtx {
    queue: VecDeque<(String, Vec<u8>)>,
    seen: mpsc::UnboundedSender<Seen>,
}

#[derive(Default)]
struct Stub {
    ctx: Mutex<Option<RunCtx>>,
}

impl Stub {
    fn report(&self, s: Seen) {
        if let Some(ctx) = self.ctx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = ctx.seen.send(s);
        }
    }
}

async fn next(State(stub): State<Arc<Stub>>) -> Response {
    let at = Instant::now();
    let item = {
        let mut guard = stub.ctx.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().and_then(|ctx| {
            let item = ctx.queue.pop_front();
            if item.is_some() {
                let _ = ctx.seen.send(Seen::Next(at));
            }
            item
        })
    };
    let Some((id, event)) = item else {
        // No more events for this process: hold the long poll until it is killed.
        return std::future::pending::<Response>().await;
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &id)
        .header("lambda-runtime-deadline-ms", deadline.to_string())
        .header(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench",
        )
        .header(
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        )
        .body(Body::from(event))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn response(State(stub): State<Arc<Stub>>, body: Bytes) -> StatusCode {
    stub.report(Seen::Response(Instant::now(), body));
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(stub): State<Arc<Stub>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    stub.report(Seen::Error(format!(
        "invocation {id} error: {}",
        String::from_utf8_lossy(&body)
    )));
    StatusCode::ACCEPTED
}

async fn init_error(State(stub): State<Arc<Stub>>, body: Bytes) -> StatusCode {
    stub.report(Seen::Error(format!(
        "init error: {}",
        String::from_utf8_lossy(&body)
    )));
    StatusCode::ACCEPTED
}

fn stub_router(stub: Arc<Stub>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(stub)
}

// ---------------------------------------------------------------------------------------------
// Targets and runs

struct Target {
    label: String,
    path: PathBuf,
    env: Vec<(String, String)>,
    expect_status: u64,
}

#[derive(Debug, Clone)]
struct Sample {
    ready: f64,
    cold: f64,
    invoke1: f64,
    invoke2: Option<f64>,
    rss_kb: Option<u64>,
}

/// The base event with a fresh request id and, when its body is JSON with an externalId, a
/// fresh externalId (each cold create is a real create, also on a shared DynamoDB table).
fn make_event(base: &Value, tag: &str) -> (String, Vec<u8>) {
    let mut ev = base.clone();
    let id = format!("req-{tag}");
    ev["requestContext"]["requestId"] = json!(id);
    ev["requestContext"]["timeEpoch"] = json!(chrono::Utc::now().timestamp_millis());
    if let Some(body) = ev["body"].as_str() {
        if let Ok(mut b) = serde_json::from_str::<Value>(body) {
            if b.get("externalId").is_some() {
                b["externalId"] = json!(format!("cold-{tag}"));
                ev["body"] = json!(b.to_string());
            }
        }
    }
    (id, serde_json::to_vec(&ev).unwrap_or_default())
}

/// A label as a function or file name: letters, digits, `-` and `_`.
fn file_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn peak_rss_kb(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn measure(
    stub: &Stub,
    api: &str,
    target: &Target,
    base_event: &Value,
    invokes: usize,
    tag: &str,
    log: &std::path::Path,
) -> anyhow::Result<Sample> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let queue = (0..invokes)
        .map(|k| make_event(base_event, &format!("{tag}-{k}")))
        .collect();
    *stub.ctx.lock().unwrap_or_else(|p| p.into_inner()) = Some(RunCtx { queue, seen: tx });

    let log_file = std::fs::File::create(log)?;
    let mut cmd = tokio::process::Command::new(&target.path);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("AWS_LAMBDA_")
            || k.starts_with("BRIDGE_")
            || k.starts_with("PANEL_")
            || k == "HELLO_RAW"
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", file_name(&target.label))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true);

    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawn {}", target.path.display()))?;
    let pid = child.id();
    let mut nexts = Vec::new();
    let mut responses = Vec::new();
    let limit = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(limit);
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            seen = rx.recv() => match seen {
                Some(Seen::Next(at)) => nexts.push(at),
                Some(Seen::Response(at, body)) => {
                    let status = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["statusCode"].as_u64());
                    if status != Some(target.expect_status) {
                        break Err(anyhow::anyhow!(
                            "{}: answered {:?}, expected {}: {}",
                            target.label,
                            status,
                            target.expect_status,
                            String::from_utf8_lossy(&body[..body.len().min(400)])
                        ));
                    }
                    responses.push(at);
                    if responses.len() == invokes {
                        break Ok(());
                    }
                }
                Some(Seen::Error(e)) => break Err(anyhow::anyhow!("{}: {e}", target.label)),
                None => break Err(anyhow::anyhow!("stub channel closed")),
            },
            status = child.wait() => {
                break Err(anyhow::anyhow!("{} exited early ({status:?}); see {}", target.label, log.display()));
            }
            _ = &mut limit => break Err(anyhow::anyhow!("{}: no answer within 30 s; see {}", target.label, log.display())),
        }
    };
    let rss_kb = peak_rss_kb(pid);
    let _ = child.start_kill();
    let _ = child.wait().await;
    *stub.ctx.lock().unwrap_or_else(|p| p.into_inner()) = None;
    outcome?;
    let since = |a: Instant, b: Instant| support::ms(b.duration_since(a));
    Ok(Sample {
        ready: since(t0, nexts[0]),
        cold: since(t0, responses[0]),
        invoke1: since(nexts[0], responses[0]),
        invoke2: (invokes > 1).then(|| since(nexts[1], responses[1])),
        rss_kb,
    })
}

fn median_p90(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    (
        support::percentile(&xs, 50.0),
        support::percentile(&xs, 90.0),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.invokes == 0 {
        bail!("--invokes must be at least 1");
    }
    let base_event: Value = serde_json::from_slice(
        &std::fs::read(&args.event).with_context(|| format!("read {}", args.event.display()))?,
    )?;
    std::fs::create_dir_all(&args.log_dir)?;

    let secrets: Vec<(String, String)> = support::LOCAL_SECRETS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let with = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut env = secrets.clone();
        env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let mut targets = vec![
        Target {
            label: "hello".into(),
            path: args.hello.clone(),
            env: vec![],
            expect_status: 200,
        },
        Target {
            label: "hello-raw".into(),
            path: args.hello.clone(),
            env: vec![("HELLO_RAW".into(), "1".into())],
            expect_status: 200,
        },
        Target {
            label: "bridge-memory".into(),
            path: args.bridge.clone(),
            env: with(&[
                ("BRIDGE_LOCAL_STATE", "memory"),
                ("PANEL_URL", &args.panel_url),
                ("PANEL_PASSWORD", &args.panel_password),
                ("BRIDGE_CONFIG", &args.config),
            ]),
            expect_status: 201,
        },
    ];
    if let Some(table) = &args.table {
        support::moto_setup(table, &args.panel_password).await?;
        let dynamo = |config: &str| {
            with(&[
                ("BRIDGE_TABLE", table),
                ("PANEL_URL", &args.panel_url),
                ("PANEL_PASSWORD_SECRET_ID", support::PASSWORD_SECRET),
                ("BRIDGE_CONFIG", config),
            ])
        };
        targets.push(Target {
            label: "bridge-dynamodb".into(),
            path: args.bridge.clone(),
            env: dynamo(&args.config),
            expect_status: 201,
        });
        if args.embedded {
            targets.push(Target {
                label: "bridge-dynamodb-smroutes".into(),
                path: args.bridge.clone(),
                env: dynamo("embedded"),
                expect_status: 201,
            });
        }
    }

    let mut earlier: Vec<Target> = Vec::new();
    for dir in &args.before {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "before".into());
        for t in &targets {
            let path = match t.label.as_str() {
                "hello" => dir.join("hello_lambda"),
                "bridge-memory" | "bridge-dynamodb" | "bridge-dynamodb-smroutes" => {
                    dir.join("payout-bridge")
                }
                _ => continue,
            };
            if !path.exists() {
                continue;
            }
            earlier.push(Target {
                label: format!("{} ({name})", t.label),
                path,
                env: t.env.clone(),
                expect_status: t.expect_status,
            });
        }
    }
    targets.extend(earlier);

    let stub = Arc::new(Stub::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = listener.local_addr()?.to_string();
    let router = stub_router(stub.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let load_before = support::load_average();
    let run = support::run_id();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
    // Round 0 is the unmeasured warm-up (binaries into the page cache).
    for round in 0..=args.runs {
        for (i, t) in targets.iter().enumerate() {
            let log = args
                .log_dir
                .join(format!("coldstart-{}.log", file_name(&t.label)));
            let tag = format!("{run}-{}-{round}", file_name(&t.label));
            let s = measure(&stub, &api, t, &base_event, args.invokes, &tag, &log).await?;
            if round > 0 {
                samples[i].push(s);
            }
        }
    }
    server.abort();
    let load_after = support::load_average();

    let hello_median = median_p90(samples[0].iter().map(|s| s.cold).collect()).0;
    if !args.json {
        println!(
            "runs={} per target, invokes per process={}, load {load_before} → {load_after}",
            args.runs, args.invokes
        );
        println!(
            "{:<34} {:>10} {:>10} {:>9} {:>10} {:>11} {:>11} {:>9} {:>10}",
            "target",
            "cold p50",
            "cold p90",
            "× hello",
            "ready p50",
            "invoke1 p50",
            "invoke2 p50",
            "RSS MiB",
            "size MiB"
        );
    }
    for (t, s) in targets.iter().zip(&samples) {
        let (cold50, cold90) = median_p90(s.iter().map(|x| x.cold).collect());
        let (ready50, _) = median_p90(s.iter().map(|x| x.ready).collect());
        let (inv1, _) = median_p90(s.iter().map(|x| x.invoke1).collect());
        let inv2 = median_p90(s.iter().filter_map(|x| x.invoke2).collect()).0;
        let rss = median_p90(
            s.iter()
                .filter_map(|x| x.rss_kb)
                .map(|k| k as f64)
                .collect(),
        )
        .0;
        let size = std::fs::metadata(&t.path).map(|m| m.len()).unwrap_or(0);
        let ratio = cold50 / hello_median;
        if args.json {
            println!(
                "{}",
                json!({
                    "target": t.label,
                    "runs": s.len(),
                    "cold_p50_ms": cold50,
                    "cold_p90_ms": cold90,
                    "ratio_to_hello": ratio,
                    "ready_p50_ms": ready50,
                    "invoke1_p50_ms": inv1,
                    "invoke2_p50_ms": inv2,
                    "peak_rss_kib": rss,
                    "binary_bytes": size,
                    "load1_before": load_before,
                    "load1_after": load_after,
                })
            );
        } else {
            println!(
                "{:<34} {:>10.2} {:>10.2} {:>9.2} {:>10.2} {:>11.2} {:>11.2} {:>9.1} {:>10.2}",
                t.label,
                cold50,
                cold90,
                ratio,
                ready50,
                inv1,
                inv2,
                rss / 1024.0,
                size as f64 / (1024.0 * 1024.0)
            );
        }
    }
    Ok(())
}
