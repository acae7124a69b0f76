//! Round trips per delivery: DynamoDB, Secrets Manager and panel calls for a cold create, a
//! warm create, a replay, a batch and a cancel. Driven by `scripts/bench-roundtrips.sh`
//! (moto + panel-sim).
//!
//! How it counts:
//! - AWS: every HTTP request the SDK transmits (each attempt, so SDK retries would show), by
//!   operation, from an interceptor (`read_before_transmit`, operation from `X-Amz-Target`)
//!   registered on the DynamoDB and Secrets Manager clients the bridge runs on. Cross-checked
//!   with moto's own request log (`--moto-log`: one werkzeug line per request).
//! - Panel: the simulator's own counters (`GET /sim/state`), before and after each step.
//!
//! The bridge is assembled like `payout_bridge::service::environment::bridge` does for the Lambda function
//! (DynamoDB stores, `SecretResolver` with Secrets Manager, the real panel client, the deployed
//! routes `infra/routes.yaml` = `BRIDGE_CONFIG=embedded`), but from clients carrying the
//! counting interceptor (`service::environment` builds its own clients and has no hook for one). Deliveries go
//! to `Bridge::handle` directly: the HTTP layer makes no calls of its own.
//!
//!     AWS_ENDPOINT_URL=http://127.0.0.1:PORT … cargo run --release --example roundtrips -- \
//!         --panel-url http://127.0.0.1:8081 --panel-password bench-password

mod support;

use anyhow::ensure;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use clap::Parser;
use payout_bridge::app::{Bridge, Delivery, Headers, Reply};
use payout_bridge::config::Settings;
use payout_bridge::ports::{DeliveryStore, SecretSource, TokenStore};
use payout_bridge::secrets::SecretResolver;
use payout_bridge::service::{ServiceBuilder, EMBEDDED_ROUTES};
use payout_bridge::store::{DynamoDeliveryStore, DynamoTokenStore};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Counts DynamoDB, Secrets Manager and panel calls per delivery")]
struct Args {
    /// A running panel simulator (its /sim/state counters are read).
    #[arg(long)]
    panel_url: String,
    #[arg(long, default_value = "bench-password")]
    panel_password: String,
    /// Table to create and use (default: a fresh one per run, so the first create finds no
    /// shared token).
    #[arg(long)]
    table: Option<String>,
    /// moto's log file, to cross-check the request counts.
    #[arg(long)]
    moto_log: Option<PathBuf>,
    /// Only create the table and the secrets, then exit (used by scripts/bench-e2e.sh).
    #[arg(long)]
    setup_only: bool,
}

// ---------------------------------------------------------------------------------------------
// Counting AWS requests

#[derive(Debug, Clone, Default)]
struct Counting(Arc<Mutex<BTreeMap<String, u64>>>);

impl Counting {
    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "bench-request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?.?");
        let op = match target.split_once('.') {
            Some((service, op)) if service.starts_with("DynamoDB") => format!("ddb:{op}"),
            Some((_, op)) => format!("sm:{op}"),
            None => target.to_string(),
        };
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op)
            .or_default() += 1;
        Ok(())
    }
}

fn diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The bridge, as the Lambda function assembles it, on counting clients

async fn instance(
    sdk: &aws_config::SdkConfig,
    counting: &Counting,
    table: &str,
    panel_url: &str,
) -> anyhow::Result<Bridge> {
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(counting.clone())
            .build(),
    );
    let sm = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(sdk)
            .interceptor(counting.clone())
            .build(),
    );
    let vars: HashMap<String, String> = [
        ("PANEL_URL", panel_url.to_string()),
        (
            "PANEL_PASSWORD_SECRET_ID",
            support::PASSWORD_SECRET.to_string(),
        ),
        ("BRIDGE_TABLE", table.to_string()),
        ("BRIDGE_CONFIG", "embedded".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let settings = Settings::from_lookup(&move |k| vars.get(k).cloned())?;
    let secrets: Arc<dyn SecretSource> = Arc::new(SecretResolver::new(Some(sm)));
    let tokens: Arc<dyn TokenStore> = Arc::new(DynamoTokenStore::new(ddb.clone(), table));
    let deliveries: Arc<dyn DeliveryStore> = Arc::new(DynamoDeliveryStore::new(ddb, table));
    Ok(ServiceBuilder::new(settings)
        .routes_yaml(EMBEDDED_ROUTES, "embedded")?
        .secrets(secrets)
        .tokens(tokens)
        .deliveries(deliveries)
        .build()
        .await?)
}

// ---------------------------------------------------------------------------------------------
// Deliveries

struct Post {
    route: &'static str,
    headers: Headers,
    body: Vec<u8>,
}

impl Post {
    fn api_key(route: &'static str, body: &Value) -> Post {
        let mut headers = Headers::new();
        headers.insert("content-type", "application/json");
        headers.insert("x-api-key", support::local_secret("PAYOUTS_KEY"));
        Post {
            route,
            headers,
            body: body.to_string().into_bytes(),
        }
    }

    fn payroll(run: &str, slips: usize) -> Post {
        let body = support::payroll_payrun(run, slips, "12.34")
            .to_string()
            .into_bytes();
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
        Post {
            route: "payroll",
            headers,
            body,
        }
    }

    async fn send(&self, bridge: &Bridge) -> Reply {
        let uri = format!("/hooks/{}", self.route);
        bridge
            .handle(Delivery {
                route: self.route,
                method: "POST",
                uri: &uri,
                headers: &self.headers,
                body: &self.body,
                deadline: None,
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Steps

struct Meter {
    http: reqwest::Client,
    panel_url: String,
    counting: Counting,
    moto_log: Option<PathBuf>,
    rows: Vec<Row>,
}

struct Row {
    step: String,
    status: String,
    aws: BTreeMap<String, u64>,
    panel: BTreeMap<String, u64>,
    moto_lines: Option<u64>,
    ms: f64,
}

impl Meter {
    async fn panel_counters(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let state: Value = self
            .http
            .get(format!("{}/sim/state", self.panel_url))
            .send()
            .await?
            .json()
            .await?;
        Ok(["authenticate", "create", "cancel"]
            .iter()
            .map(|k| (k.to_string(), state["counters"][k].as_u64().unwrap_or(0)))
            .collect())
    }

    async fn moto_lines(&self) -> Option<u64> {
        let path = self.moto_log.as_ref()?;
        // werkzeug writes its line after the answer: give it a moment. Error answers (a
        // failed condition is HTTP 400) have ANSI colours around the request line.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let text = std::fs::read_to_string(path).ok()?;
        Some(
            text.lines()
                .filter(|l| l.contains("POST / HTTP/1.1"))
                .count() as u64,
        )
    }

    async fn step<F, T>(&mut self, name: &str, f: F) -> anyhow::Result<T>
    where
        F: std::future::Future<Output = anyhow::Result<(String, T)>>,
    {
        let aws0 = self.counting.snapshot();
        let panel0 = self.panel_counters().await?;
        let moto0 = self.moto_lines().await;
        let t0 = Instant::now();
        let (status, out) = f.await?;
        let ms = support::ms(t0.elapsed());
        let moto1 = self.moto_lines().await;
        self.rows.push(Row {
            step: name.to_string(),
            status,
            aws: diff(&aws0, &self.counting.snapshot()),
            panel: diff(&panel0, &self.panel_counters().await?),
            moto_lines: moto0.zip(moto1).map(|(a, b)| b - a),
            ms,
        });
        Ok(out)
    }
}

fn describe(reply: &Reply) -> String {
    let replayed = reply
        .headers
        .iter()
        .any(|(k, v)| *k == "idempotent-replayed" && v == "true");
    let mut s = reply.status.to_string();
    if let Some(results) = reply.body["results"].as_array() {
        let items: Vec<String> = results
            .iter()
            .map(|r| {
                let mut t = r["status"].to_string();
                if r["replayed"] == json!(true) {
                    t.push('r');
                }
                t
            })
            .collect();
        s.push_str(&format!(" [{}]", items.join(",")));
    }
    if replayed {
        s.push_str(" replayed");
    }
    s
}

fn ops(m: &BTreeMap<String, u64>, prefix: &str) -> String {
    let parts: Vec<String> = m
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|op| format!("{v} {op}")))
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(" + ")
    }
}

fn expect(reply: &Reply, status: u16, what: &str) -> anyhow::Result<()> {
    ensure!(
        reply.status == status,
        "{what}: expected {status}, got {} {}",
        reply.status,
        reply.body
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let run = support::run_id();
    let table = args.table.clone().unwrap_or(format!("bench-rt-{run}"));
    let sdk = support::moto_setup(&table, &args.panel_password).await?;
    if args.setup_only {
        println!("table {table} and secrets ready");
        return Ok(());
    }
    let load_before = support::load_average();
    let mut m = Meter {
        http: reqwest::Client::builder().no_proxy().build()?,
        panel_url: args.panel_url.trim_end_matches('/').to_string(),
        counting: Counting::default(),
        moto_log: args.moto_log.clone(),
        rows: Vec::new(),
    };

    let counting = m.counting.clone();
    let a = m
        .step("A init: build routes (embedded infra/routes.yaml)", async {
            let b = instance(&sdk, &counting, &table, &args.panel_url).await?;
            Ok(("-".to_string(), b))
        })
        .await?;

    let first = Post::api_key(
        "payouts",
        &support::canonical_create(&format!("rt-{run}-1"), "1.00"),
    );
    m.step("A 1st create, fresh table (cold, no shared token)", async {
        let r = first.send(&a).await;
        expect(&r, 201, "first create")?;
        Ok((describe(&r), ()))
    })
    .await?;

    let warm = Post::api_key(
        "payouts",
        &support::canonical_create(&format!("rt-{run}-2"), "1.00"),
    );
    m.step("A warm create", async {
        let r = warm.send(&a).await;
        expect(&r, 201, "warm create")?;
        Ok((describe(&r), ()))
    })
    .await?;

    m.step("A replay of the warm create", async {
        let r = warm.send(&a).await;
        expect(&r, 201, "replay")?;
        Ok((describe(&r), ()))
    })
    .await?;

    let b = m
        .step("B init: build routes (embedded infra/routes.yaml)", async {
            let b = instance(&sdk, &counting, &table, &args.panel_url).await?;
            Ok(("-".to_string(), b))
        })
        .await?;

    let b_first = Post::api_key(
        "payouts",
        &support::canonical_create(&format!("rt-{run}-3"), "1.00"),
    );
    m.step(
        "B 1st create (cold instance, token shared in DynamoDB)",
        async {
            let r = b_first.send(&b).await;
            expect(&r, 201, "B first create")?;
            Ok((describe(&r), ()))
        },
    )
    .await?;

    m.step("B replay of A's warm create", async {
        let r = warm.send(&b).await;
        expect(&r, 201, "B replay")?;
        Ok((describe(&r), ()))
    })
    .await?;

    let batch = Post::payroll(&format!("{run}-b"), 3);
    m.step("A warm payroll batch, 3 payslips", async {
        let r = batch.send(&a).await;
        expect(&r, 200, "batch")?;
        Ok((describe(&r), ()))
    })
    .await?;

    m.step("A replay of the batch", async {
        let r = batch.send(&a).await;
        expect(&r, 200, "batch replay")?;
        Ok((describe(&r), ()))
    })
    .await?;

    let cancel = Post::api_key("cancel", &json!({ "externalIds": [format!("rt-{run}-2")] }));
    m.step("A warm cancel by externalId", async {
        let r = cancel.send(&a).await;
        expect(&r, 200, "cancel")?;
        Ok((describe(&r), ()))
    })
    .await?;

    println!(
        "table {table}; AWS requests counted per transmitted attempt; load {load_before} → {}",
        support::load_average()
    );
    println!();
    println!("| step | answer | DynamoDB requests | Secrets Manager requests | panel calls | AWS total | moto log lines | ms (moto) |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &m.rows {
        let total: u64 = r.aws.values().sum();
        let panel: Vec<String> = r.panel.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            r.step,
            r.status,
            ops(&r.aws, "ddb:"),
            ops(&r.aws, "sm:"),
            if panel.is_empty() {
                "0".to_string()
            } else {
                panel.join(" + ")
            },
            total,
            r.moto_lines
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            r.ms
        );
    }
    let mismatch = m.rows.iter().any(|r| {
        r.moto_lines
            .is_some_and(|n| n != r.aws.values().sum::<u64>())
    });
    if mismatch {
        println!("\nnote: moto's log and the interceptor disagree on some step (see above)");
    }
    Ok(())
}
