//! The panel simulator's control API (`/sim/state`, `/sim/faults`, …), its payouts, and the
//! create command the tests send.

use super::client;
use super::process::Proc;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The password of every simulator [`panel_sim`](super::panel_sim) starts.
pub const SIM_PASSWORD: &str = "sim-password";

/// The simulator's state: payouts, counters, faults.
pub async fn sim_state(sim: &Proc) -> Value {
    sim_state_at(&sim.url).await
}

/// Same, for a simulator known by its URL.
pub async fn sim_state_at(sim_url: &str) -> Value {
    client()
        .get(format!("{sim_url}/sim/state"))
        .send()
        .await
        .expect("sim state")
        .json()
        .await
        .expect("sim state json")
}

/// POSTs `body` to a control path of the simulator (`/sim/faults`, `/sim/password`, …).
pub async fn sim_post(sim: &Proc, path: &str, body: Value) {
    sim_post_at(&sim.url, path, body).await;
}

/// Same, for a simulator known by its URL.
pub async fn sim_post_at(sim_url: &str, path: &str, body: Value) {
    let resp = client()
        .post(format!("{sim_url}{path}"))
        .json(&body)
        .send()
        .await
        .expect("sim control");
    assert!(
        resp.status().is_success(),
        "sim control {path}: {}",
        resp.status()
    );
}

/// The payouts at the panel (cancelled ones included).
pub fn payouts(state: &Value) -> Vec<Value> {
    state["payments"].as_array().cloned().unwrap_or_default()
}

/// One of the simulator's counters (`create`, `authenticate`, `tokenRejected`, …).
pub fn counter(state: &Value, name: &str) -> u64 {
    state["counters"][name].as_u64().unwrap_or(0)
}

/// What [`create_body`] writes before the externalId in a payout's description.
pub const DESCRIPTION_PREFIX: &str = "payout for ";

/// A valid canonical create command whose description names its externalId, so the panel's
/// payouts can be counted per externalId (the panel never sees the externalId itself).
pub fn create_body(external_id: &str, amount: &str) -> Value {
    json!({
        "amount": amount,
        "currency": "GBP",
        "startDate": "2030-01-01 12:00:00",
        "endDate": "2030-02-01 12:00:00",
        "name": "Test project",
        "description": format!("{DESCRIPTION_PREFIX}{external_id}"),
        "userName": "ada",
        "notification": false,
        "externalId": external_id,
    })
}

/// The panel's payouts (cancelled ones included) grouped by the externalId written into
/// their description by [`create_body`].
pub fn payouts_by_external_id(state: &Value) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for p in payouts(state) {
        if let (Some(desc), Some(id)) = (p["description"].as_str(), p["id"].as_u64()) {
            if let Some(ext) = desc.strip_prefix(DESCRIPTION_PREFIX) {
                out.entry(ext.to_string()).or_default().push(id);
            }
        }
    }
    out
}

/// How many payouts the panel holds for `external_id`.
pub fn paid(state: &Value, external_id: &str) -> usize {
    payouts_by_external_id(state)
        .get(external_id)
        .map_or(0, Vec::len)
}
