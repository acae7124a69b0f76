//! Child processes on loopback: the panel simulator, `payout-bridge serve` and the operator
//! commands of `payout-bridge`.

use super::aws::Aws;
use super::bridge::TEST_KEY;
use super::sim::SIM_PASSWORD;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub url: String,
}

impl Proc {
    /// Kills the process now (idempotent).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `bin` with `args` and `envs` (stderr inherited), waits (bounded) for a stdout line
/// containing "listening on http://", and returns the URL it printed.
pub fn spawn_listening(bin: &str, args: &[&str], envs: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.args(args).stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    spawn_command(cmd)
}

/// Starts a prepared command (its stderr as the caller set it; stdout is read here) and waits
/// for its "listening on http://" line.
pub fn spawn_command(mut cmd: Command) -> Proc {
    let bin = cmd.get_program().to_string_lossy().to_string();
    cmd.stdout(Stdio::piped())
        .env_remove("AWS_LAMBDA_RUNTIME_API");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent {
                if let Some(pos) = line.find("listening on http://") {
                    let url = line[pos + "listening on ".len()..].trim().to_string();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => Proc { child, url },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} did not report its address within 60 s");
        }
    }
}

/// A loopback port that was free a moment ago (nothing listens on it now).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The port of `http://host:port`.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// The panel simulator as an external process, like a real panel: password
/// [`SIM_PASSWORD`], quiet logs, any free port unless `extra` names one (`--port N`), and any
/// other `panel-sim` arguments in `extra` (`--funds`, `--token-ttl-secs`, …).
pub fn panel_sim(extra: &[&str]) -> Proc {
    let mut args = vec!["--password", SIM_PASSWORD];
    args.extend_from_slice(extra);
    spawn_listening(
        env!("CARGO_BIN_EXE_panel-sim"),
        &args,
        &[("RUST_LOG", "warn".to_string())],
    )
}

// ---------------------------------------------------------------------------------------------
// payout-bridge as a process

/// The environment of `payout-bridge` (serve and the operator commands) on `aws`'s table and
/// secret, with the routes file `routes` on the test key; `extra` adds or overrides variables.
pub fn bridge_env(
    panel_url: &str,
    aws: &Aws,
    routes: &Path,
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PANEL_URL", panel_url.to_string()),
        ("PANEL_PASSWORD_SECRET_ID", aws.secret_id.clone()),
        ("BRIDGE_TABLE", aws.table.clone()),
        ("BRIDGE_CONFIG", routes.display().to_string()),
        ("PAYOUTS_KEY", TEST_KEY.to_string()),
        ("AWS_ENDPOINT_URL", aws.endpoint.clone()),
        ("PANEL_REQUEST_TIMEOUT_MS", "3000".to_string()),
        ("PANEL_CONNECT_TIMEOUT_MS", "500".to_string()),
        ("RUST_LOG", "error".to_string()),
    ];
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k, v.to_string()));
    }
    env
}

/// `payout-bridge serve` on a free port.
pub fn bridge(env: &[(&'static str, String)]) -> Proc {
    spawn_listening(
        env!("CARGO_BIN_EXE_payout-bridge"),
        &["serve", "--port", "0"],
        env,
    )
}

/// Runs a `payout-bridge` operator command; (success, stdout, stderr).
pub fn operator(env: &[(&'static str, String)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payout-bridge"));
    cmd.args(args).env_remove("AWS_LAMBDA_RUNTIME_API");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run payout-bridge");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `payout-bridge pending --json`, parsed: one object per line.
pub fn pending(env: &[(&'static str, String)]) -> Vec<Value> {
    let (ok, out, err) = operator(env, &["pending", "--json"]);
    assert!(ok, "pending failed: {out}{err}");
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("pending line {l:?}: {e}")))
        .collect()
}

/// The `pending --json` line of a create on route `payouts` with this externalId, if listed.
pub fn pending_line(env: &[(&'static str, String)], external_id: &str) -> Option<Value> {
    let key = format!("ext:{external_id}");
    pending(env)
        .into_iter()
        .find(|l| l["route"] == "payouts" && l["key"] == key.as_str())
}
