//! The bridge's own cost per delivery, without any I/O: verify + map + validate, and the whole
//! `Bridge::handle` on in-memory stores with a panel that answers instantly.
//!
//!     cargo bench --bench bridge            # all
//!     cargo bench --bench bridge -- handle  # only the whole-delivery benches
//!
//! Routes, filters and secrets are the ones of `events/routes.yaml` (the deployed routes with
//! `env:` secrets; values from `scripts/make_events.py` LOCAL_SECRETS), built by
//! `service::routes::build_routes` as the binary does; the bridge is assembled by
//! `service::ServiceBuilder`, the panel client by `ServiceBuilder::panel_client`. Every create
//! has its own externalId (a real create, not a replay), and each criterion sample starts from
//! a fresh bridge so the in-memory store does not grow without bound. Results: see
//! docs/BENCHMARKS.md.

#[path = "../examples/support/mod.rs"]
mod support;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use payout_bridge::app::Route;
use payout_bridge::app::{Bridge, Delivery, Headers, Reply};
use payout_bridge::config::routes::RoutesFile;
use payout_bridge::config::Settings;
use payout_bridge::domain::{Action, Command};
use payout_bridge::inbound::auth::InboundRequest;
use payout_bridge::mapping::Filter;
use payout_bridge::panel::PanelClient;
use payout_bridge::ports::{CreatedPayout, PanelApi, PanelOutcome, Secret, SecretSource};
use payout_bridge::secrets::{EnvSecrets, SecretResolver};
use payout_bridge::service::{routes::build_routes, ServiceBuilder};
use serde_json::{json, Value};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A panel that answers every call at once: what remains is the bridge's own overhead.
struct InstantPanel {
    next_id: AtomicU64,
}

#[async_trait]
impl PanelApi for InstantPanel {
    async fn authenticate(&self, _password: &Secret) -> PanelOutcome<Secret> {
        PanelOutcome::Done(Secret::new("bench-token"))
    }

    async fn create(&self, _token: &Secret, body: &Value) -> PanelOutcome<CreatedPayout> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        // The shape (and about the size) of the simulator's answer.
        let body = json!({ "payments": [{
            "id": id,
            "status": "READY",
            "amount": body["amount"],
            "currency": body["currency"],
            "name": body["name"],
            "description": body["description"],
            "startDate": body["startDate"],
            "endDate": body["endDate"],
            "recipientId": 1,
            "projectId": 1,
            "createdAt": "2026-11-28T08:00:00Z",
            "updatedAt": "2026-11-28T08:00:00Z",
        }]});
        PanelOutcome::Done(CreatedPayout { id, body })
    }

    async fn cancel(&self, _token: &Secret, ids: &[u64]) -> PanelOutcome<u64> {
        PanelOutcome::Done(ids.len() as u64)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The local secrets of the routes, and the panel password.
fn secrets() -> Arc<dyn SecretSource> {
    let vars = support::LOCAL_SECRETS
        .iter()
        .copied()
        .chain([("PANEL_PASSWORD", "bench-password")]);
    Arc::new(SecretResolver::from_parts(
        EnvSecrets::from_vars(vars),
        None,
    ))
}

fn routes(rt: &tokio::runtime::Runtime) -> Vec<Route> {
    let file = RoutesFile::load(std::path::Path::new("events/routes.yaml")).expect("routes file");
    rt.block_on(build_routes(&file, secrets().as_ref()))
        .expect("routes")
}

/// A fresh bridge on in-memory stores and the instant panel, its token already cached.
fn bridge(rt: &tokio::runtime::Runtime) -> Bridge {
    let settings = Settings::from_lookup(&|_| None).expect("default settings");
    let file = RoutesFile::load(std::path::Path::new("events/routes.yaml")).expect("routes file");
    let b = rt
        .block_on(
            ServiceBuilder::new(settings)
                .routes(file)
                .panel(Arc::new(InstantPanel {
                    next_id: AtomicU64::new(0),
                }))
                .secrets(secrets())
                .password_ref("env:PANEL_PASSWORD")
                .build(),
        )
        .expect("bridge");
    rt.block_on(b.tokens().token()).expect("token");
    b
}

/// One inbound request: route, headers, body.
struct Input {
    route: &'static str,
    headers: Headers,
    body: Vec<u8>,
}

impl Input {
    async fn send(&self, bridge: &Bridge) -> Reply {
        bridge
            .handle(Delivery {
                route: self.route,
                method: "POST",
                uri: "/hooks/bench",
                headers: &self.headers,
                body: &self.body,
                deadline: None,
            })
            .await
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// `events/bodies/canonical-create.json` with its own externalId, on the `payouts` route.
fn canonical_value(external_id: &str) -> Value {
    support::canonical_create(external_id, "25.00")
}

fn canonical() -> Input {
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    headers.insert("x-api-key", support::local_secret("PAYOUTS_KEY"));
    headers.insert("user-agent", "bench");
    Input {
        route: "payouts",
        headers,
        body: serde_json::to_vec_pretty(&canonical_value(&format!("bench-{}", unique())))
            .expect("json"),
    }
}

/// `events/bodies/payroll-payrun.json` with `slips` payslips (own ids), signed with Standard
/// Webhooks as the payroll system does.
fn payroll(slips: usize) -> Input {
    let run = unique().to_string();
    let body = serde_json::to_vec(&support::payroll_payrun(&run, slips, "2150.35")).expect("json");
    let mut headers = Headers::new();
    headers.insert("content-type", "application/json");
    for (k, v) in support::standard_webhooks_headers(
        support::local_secret("PAYROLL_WEBHOOK_SECRET"),
        &format!("msg_{run}"),
        chrono::Utc::now().timestamp(),
        &body,
    ) {
        headers.insert(k, &v);
    }
    Input {
        route: "payroll",
        headers,
        body,
    }
}

fn route<'r>(routes: &'r [Route], name: &str) -> &'r Route {
    routes.iter().find(|r| r.name == name).expect("route")
}

fn inbound<'a>(i: &'a Input) -> InboundRequest<'a> {
    InboundRequest::new("POST", "/hooks/bench", i.headers.as_map(), &i.body)
}

// ---------------------------------------------------------------------------------------------

/// The pieces: verification, the jq mapping, validation into commands.
fn pieces(c: &mut Criterion) {
    let rt = runtime();
    let routes = routes(&rt);
    let payouts = route(&routes, "payouts");
    let payroll_route = route(&routes, "payroll");
    let now = chrono::Utc::now().timestamp();

    let mut g = c.benchmark_group("pieces");
    let one = canonical();
    g.bench_function("verify/api-key", |b| {
        b.iter(|| payouts.verifier.verify(black_box(&inbound(&one)), now))
    });
    for slips in [1usize, 100] {
        let input = payroll(slips);
        g.throughput(Throughput::Elements(slips as u64));
        g.bench_with_input(
            BenchmarkId::new("verify/standard-webhooks", slips),
            &input,
            |b, i| b.iter(|| payroll_route.verifier.verify(black_box(&inbound(i)), now)),
        );
        g.bench_with_input(BenchmarkId::new("map/payroll-jq", slips), &input, |b, i| {
            b.iter(|| {
                payroll_route
                    .filter
                    .run_json(black_box(&i.body), i.headers.as_map())
            })
        });
        let outputs = payroll_route
            .filter
            .run_json(&input.body, input.headers.as_map())
            .expect("mapped");
        assert_eq!(outputs.len(), slips);
        g.bench_with_input(
            BenchmarkId::new("validate/payroll", slips),
            &outputs,
            |b, outs| {
                b.iter(|| {
                    outs.iter()
                        .map(|o| Command::from_json(Action::Create, black_box(o)))
                        .collect::<Result<Vec<_>, _>>()
                })
            },
        );
    }
    // What the payroll filter's cost is made of (100 payslips): the same filter without the
    // date arithmetic of `endDate`, and a filter that only parses the body and outputs the
    // payslips (parse + iterate + convert back to serde_json).
    let input = payroll(100);
    let payroll_source = payroll_route.filter.source();
    let end_date =
        r#"($run.payDate + "T00:00:00Z" | fromdateiso8601 + 30 * 86400 | todateiso8601)"#;
    assert!(payroll_source.contains(end_date), "payroll filter changed");
    let variants = [
        (
            "map/payroll-jq-without-date-math",
            payroll_source.replace(end_date, r#"($run.payDate + " 00:00:00")"#),
        ),
        (
            "map/payslips-only",
            r#"select(.type == "payrun.approved") | .data.payslips[]"#.to_string(),
        ),
    ];
    for (name, source) in variants {
        let filter = Filter::compile(&source).expect("variant compiles");
        g.bench_with_input(BenchmarkId::new(name, 100), &input, |b, i| {
            b.iter(|| filter.run_json(black_box(&i.body), i.headers.as_map()))
        });
    }
    g.throughput(Throughput::Elements(1));
    let value = canonical_value("bench-x");
    g.bench_function("validate/canonical", |b| {
        b.iter(|| Command::from_json(Action::Create, black_box(&value)))
    });
    let cmd = Command::from_json(Action::Create, &value).expect("valid");
    g.bench_function("fingerprint/canonical", |b| {
        b.iter(|| black_box(&cmd).fingerprint())
    });
    g.bench_function("parse/canonical-body", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&one.body)))
    });
    g.finish();
}

/// The panel client as `service::environment::bridge` builds it (`ServiceBuilder::panel_client`
/// on the default timeouts; reqwest + rustls: compiled-in CA roots). The settings are read
/// once, outside the timed part.
fn panel_client() -> Result<PanelClient, payout_bridge::config::ConfigError> {
    static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();
    let settings = SETTINGS.get_or_init(|| {
        Settings::from_lookup(&|k| (k == "PANEL_URL").then(|| "https://panel.example.com".into()))
            .expect("settings")
    });
    ServiceBuilder::panel_client(settings)
}

/// Start-up pieces of the bridge, warm (`examples/init_pieces.rs` measures them cold): reading
/// the routes file, building the routes (secrets from the environment, verifiers; the jq
/// filters compile on first use), one jq compile, and the panel's HTTP client.
fn init(c: &mut Criterion) {
    let rt = runtime();
    let path = std::path::Path::new("events/routes.yaml");
    let file = RoutesFile::load(path).expect("routes file");
    let secrets = secrets();
    let payroll_source = file
        .routes
        .iter()
        .find(|r| r.name == "payroll")
        .and_then(|r| r.map.clone())
        .expect("payroll filter");
    let mut g = c.benchmark_group("init");
    g.bench_function("routes-file/load-events-routes", |b| {
        b.iter(|| RoutesFile::load(black_box(path)))
    });
    g.bench_function("build-routes/events-routes", |b| {
        b.iter(|| rt.block_on(build_routes(black_box(&file), secrets.as_ref())))
    });
    g.bench_function("filter-compile/payroll", |b| {
        b.iter(|| Filter::compile(black_box(&payroll_source)))
    });
    g.bench_function("panel-client/new", |b| b.iter(panel_client));
    // The earlier start-up change (docs/BENCHMARKS.md): the panel client on a blocking thread
    // while the routes are built (2 worker threads). With compiled-in roots the client costs
    // microseconds and `wiring` builds it inline; kept to show the difference is gone.
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Both variants must build a working client (timed closures only report is_ok).
    assert!(panel_client().is_ok(), "panel client");
    assert!(
        mt.block_on(async { tokio::task::spawn_blocking(panel_client).await })
            .is_ok_and(|p| p.is_ok()),
        "panel client on a blocking thread"
    );
    g.bench_function("routes+panel-client/sequential", |b| {
        b.iter(|| {
            mt.block_on(async {
                let routes = build_routes(&file, secrets.as_ref()).await;
                (routes.is_ok(), panel_client().is_ok())
            })
        })
    });
    g.bench_function("routes+panel-client/overlapped", |b| {
        b.iter(|| {
            mt.block_on(async {
                let panel = tokio::task::spawn_blocking(panel_client);
                let routes = build_routes(&file, secrets.as_ref()).await;
                (routes.is_ok(), panel.await.is_ok_and(|p| p.is_ok()))
            })
        })
    });
    g.finish();
}

/// Times `iters` deliveries made by `make` on a fresh bridge (inputs built before the clock
/// starts), under the tracing subscriber `logs` if given; checks the last answer's status.
fn timed(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    make: &dyn Fn() -> Input,
    expect: u16,
    replay: bool,
    logs: Option<&dyn Fn() -> tracing::Dispatch>,
) -> Duration {
    let b = bridge(rt);
    let inputs: Vec<Input> = (0..iters).map(|_| make()).collect();
    if replay {
        // First deliveries, untimed: the timed loop then only replays.
        rt.block_on(async {
            for i in &inputs {
                i.send(&b).await;
            }
        });
    }
    let run = || {
        rt.block_on(async {
            let start = Instant::now();
            let mut last = None;
            for i in &inputs {
                last = Some(black_box(i.send(&b).await));
            }
            let elapsed = start.elapsed();
            if let Some(r) = last {
                assert_eq!(r.status, expect, "unexpected answer: {}", r.body);
                if replay {
                    assert!(
                        r.headers.iter().any(|(k, _)| *k == "idempotent-replayed"),
                        "not a replay"
                    );
                }
            }
            elapsed
        })
    };
    match logs {
        Some(dispatch) => tracing::dispatcher::with_default(&dispatch(), run),
        None => run(),
    }
}

fn json_logs() -> tracing::Dispatch {
    // What the Lambda function installs (telemetry::init_logs(true)), writing to a sink.
    tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_ansi(false)
            .finish(),
    )
}

fn text_logs() -> tracing::Dispatch {
    // What `serve` installs by default (text), writing to a sink.
    tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .with_target(false)
            .finish(),
    )
}

/// The whole delivery through `Bridge::handle`: route lookup, verification, mapping,
/// validation, idempotency record (memory), panel call (instant), settle, answer.
fn handle(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("handle");
    g.throughput(Throughput::Elements(1));
    g.bench_function("create/canonical", |b| {
        b.iter_custom(|iters| timed(&rt, iters, &canonical, 201, false, None))
    });
    g.bench_function("create/canonical+json-logs", |b| {
        b.iter_custom(|iters| timed(&rt, iters, &canonical, 201, false, Some(&json_logs)))
    });
    g.bench_function("create/canonical+text-logs", |b| {
        b.iter_custom(|iters| timed(&rt, iters, &canonical, 201, false, Some(&text_logs)))
    });
    g.bench_function("replay/canonical", |b| {
        b.iter_custom(|iters| timed(&rt, iters, &canonical, 201, true, None))
    });
    g.bench_function("create/payroll-1", |b| {
        b.iter_custom(|iters| timed(&rt, iters, &|| payroll(1), 201, false, None))
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("batch/payroll-100", |b| {
        b.iter_custom(|iters| timed(&rt, iters, &|| payroll(100), 200, false, None))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = pieces, handle, init
}
criterion_main!(benches);
