//! Load generator for the end-to-end benchmark (`scripts/bench-e2e.sh`).
//!
//! Sends N payout creates, C at a time, on loopback, each with its own externalId (so every one
//! is a real create, never a replay), and reports p50 / p90 / p99 / max latency and throughput.
//!
//! - `--target bridge`: `POST {url}/hooks/{route}` with the canonical create body and the
//!   route's api key, expecting 201 (payout-bridge `serve`).
//! - `--target sim`: the same payouts sent straight to the panel (simulator): one
//!   `POST /api/authenticate`, then `POST /api/payment/create` with the body the bridge would
//!   send (built by the library: `Command::from_json(..).panel_body()`), expecting 200.
//!
//! `--warmup W` requests go first and are not measured (connections, the bridge's token).
//! Bounded: at most N + W requests, each with a 30 s timeout; then it exits.
//!
//!     cargo run --release --example loadgen -- --target bridge --url http://127.0.0.1:3000 -n 2000 -c 1

mod support;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use payout_bridge::domain::{Action, Command};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Bridge,
    Sim,
}

#[derive(Debug, Parser)]
#[command(about = "N payout creates at concurrency C; p50/p99/throughput")]
struct Args {
    /// What `--url` is: the bridge or the panel (simulator).
    #[arg(long, value_enum)]
    target: Target,
    /// Base URL, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    url: String,
    /// Measured requests.
    #[arg(short = 'n', long, default_value_t = 2000)]
    requests: usize,
    /// Requests in flight.
    #[arg(short = 'c', long, default_value_t = 1)]
    concurrency: usize,
    /// Unmeasured requests first.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Bridge route (api-key route with the canonical body).
    #[arg(long, default_value = "payouts")]
    route: String,
    /// The route's key, sent as X-Api-Key.
    #[arg(long, default_value = "local-payouts-key")]
    key: String,
    /// Panel password (target sim).
    #[arg(long, default_value = "bench-password")]
    password: String,
    /// Label in the report.
    #[arg(long, default_value = "run")]
    label: String,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

struct Plan {
    client: reqwest::Client,
    target: Target,
    url: String,
    key: String,
    token: Option<String>,
    prefix: String,
}

impl Plan {
    /// The request for payout `i` (built before the clock starts).
    fn request(&self, i: usize) -> anyhow::Result<reqwest::RequestBuilder> {
        let body = support::canonical_create(&format!("{}-{i}", self.prefix), "1.00");
        Ok(match self.target {
            Target::Bridge => self
                .client
                .post(&self.url)
                .header("x-api-key", &self.key)
                .json(&body),
            Target::Sim => {
                let Command::Create(c) = Command::from_json(Action::Create, &body)? else {
                    bail!("not a create");
                };
                self.client
                    .post(&self.url)
                    .header("x-access-token", self.token.as_deref().unwrap_or_default())
                    .header("accept", "application/json")
                    .json(&c.panel_body())
            }
        })
    }

    fn expected(&self) -> u16 {
        match self.target {
            Target::Bridge => 201,
            Target::Sim => 200,
        }
    }
}

/// Sends requests `offset..offset+n` with `c` workers; latencies in ms, and failures.
async fn run(
    plan: Arc<Plan>,
    offset: usize,
    n: usize,
    c: usize,
) -> anyhow::Result<(Vec<(usize, f64)>, usize, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c.max(1) {
        let plan = plan.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat: Vec<(usize, f64)> = Vec::new();
            let mut failed = 0usize;
            let mut first_error: Option<String> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let req = plan.request(offset + i)?;
                let t0 = Instant::now();
                let outcome = match req.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let body = resp.bytes().await;
                        match body {
                            Ok(b) if status == plan.expected() => Ok(b.len()),
                            Ok(b) => Err(format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(&b[..b.len().min(200)])
                            )),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                let elapsed = support::ms(t0.elapsed());
                match outcome {
                    Ok(_) => lat.push((i, elapsed)),
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                eprintln!("loadgen: {failed} failed, first: {e}");
            }
            anyhow::Ok((lat, failed))
        }));
    }
    let mut all = Vec::with_capacity(n);
    let mut failed = 0;
    for w in workers {
        let (lat, f) = w.await??;
        all.extend(lat);
        failed += f;
    }
    Ok((all, failed, started.elapsed()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency.max(1) * 2)
        .build()?;
    let base = args.url.trim_end_matches('/').to_string();
    let (url, token) = match args.target {
        Target::Bridge => (format!("{base}/hooks/{}", args.route), None),
        Target::Sim => {
            let resp: Value = client
                .post(format!("{base}/api/authenticate"))
                .json(&json!({ "apiKey": args.password }))
                .send()
                .await
                .context("authenticate at the panel")?
                .json()
                .await?;
            let token = resp["token"]
                .as_str()
                .context("panel gave no token (wrong --password?)")?
                .to_string();
            (format!("{base}/api/payment/create"), Some(token))
        }
    };
    let plan = Arc::new(Plan {
        client,
        target: args.target,
        url,
        key: args.key.clone(),
        token,
        prefix: format!("lg-{}-{}", args.label, support::run_id()),
    });

    let (_, warm_failed, _) = run(
        plan.clone(),
        0,
        args.warmup,
        args.concurrency.min(args.warmup.max(1)),
    )
    .await?;
    if warm_failed > 0 {
        bail!("{warm_failed} of {} warm-up requests failed", args.warmup);
    }
    let load_before = support::load_average();
    let (mut by_index, failed, wall) =
        run(plan, args.warmup, args.requests, args.concurrency).await?;
    // Drift over the run (e.g. a store that slows down as it fills): p50 of the first and of
    // the last quarter of the requests, in the order they were sent.
    by_index.sort_by_key(|(i, _)| *i);
    let quarter = (by_index.len() / 4).max(1);
    let p50_of = |part: &[(usize, f64)]| {
        let mut xs: Vec<f64> = part.iter().map(|(_, l)| *l).collect();
        xs.sort_by(f64::total_cmp);
        support::percentile(&xs, 50.0)
    };
    let first_quarter = p50_of(&by_index[..quarter.min(by_index.len())]);
    let last_quarter = p50_of(&by_index[by_index.len().saturating_sub(quarter)..]);
    let mut lat: Vec<f64> = by_index.iter().map(|(_, l)| *l).collect();
    lat.sort_by(f64::total_cmp);
    let p = |q| support::percentile(&lat, q);
    let rps = lat.len() as f64 / wall.as_secs_f64();
    let mean = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
    let report = json!({
        "label": args.label,
        "target": format!("{:?}", args.target).to_lowercase(),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "ok": lat.len(),
        "failed": failed,
        "p50_ms": round3(p(50.0)),
        "p90_ms": round3(p(90.0)),
        "p99_ms": round3(p(99.0)),
        "max_ms": round3(p(100.0)),
        "mean_ms": round3(mean),
        "p50_first_quarter_ms": round3(first_quarter),
        "p50_last_quarter_ms": round3(last_quarter),
        "rps": (rps * 10.0).round() / 10.0,
        "wall_s": round3(wall.as_secs_f64()),
        "load1_before": load_before,
        "load1_after": support::load_average(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{:<24} n={} c={} ok={} failed={}  p50={:.3} ms  p90={:.3} ms  p99={:.3} ms  max={:.3} ms  {:.0} req/s  (load {} → {})",
            args.label,
            args.requests,
            args.concurrency,
            lat.len(),
            failed,
            p(50.0),
            p(90.0),
            p(99.0),
            p(100.0),
            rps,
            report["load1_before"].as_str().unwrap_or("?"),
            report["load1_after"].as_str().unwrap_or("?"),
        );
    }
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
