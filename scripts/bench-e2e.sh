#!/usr/bin/env bash
# End-to-end on loopback: throughput and p50/p99 of `payout-bridge serve` (release) with
# in-memory stores and with DynamoDB (moto), next to the same creates sent straight to the panel
# simulator, in one run, so that the bridge's overhead shows as a ratio. See docs/BENCHMARKS.md.
#
#   scripts/bench-e2e.sh              # N=20000 (memory, direct) at C=1 and C=8; N_MOTO=200 at 1 and 4
#   N=5000 C=4 N_MOTO=100 C_MOTO=2 scripts/bench-e2e.sh
#   BENCH_NO_BUILD=1 scripts/bench-e2e.sh     # use the release binaries as they are
#
# Every creation has its own externalId (a real create). Bounded: a fixed number of requests,
# each with a 30 s timeout; all processes started here are stopped at the end.
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

N="${N:-20000}"
C="${C:-8}"
N_MOTO="${N_MOTO:-200}"
C_MOTO="${C_MOTO:-4}"
OUT="$BENCH_TMP/e2e.jsonl"
: >"$OUT"

bench_build
bench_machine
start_sim

# A run with failures is reported (failed > 0 in the table), not fatal.
loadgen() { "$REL/examples/loadgen" --json "$@" | tee -a "$OUT" || echo "(some requests failed: see above)"; }

# --- 1. bridge with in-memory stores vs direct ------------------------------------------------
start_listening "payout-bridge (memory)" "$BENCH_TMP/bridge-memory.log" \
    env -u BRIDGE_TABLE PANEL_URL="$SIM_URL" PANEL_PASSWORD="$PANEL_PASSWORD_VALUE" \
    BRIDGE_CONFIG=events/routes.yaml "$REL/payout-bridge" serve --port 0
BRIDGE_URL="$LISTEN_URL"
BRIDGE_PID="$LISTEN_PID"
echo "==> payout-bridge serve (in-memory stores) on $BRIDGE_URL"

loadgen --label direct-c1 --target sim --url "$SIM_URL" --password "$PANEL_PASSWORD_VALUE" -n "$N" -c 1
loadgen --label memory-c1 --target bridge --url "$BRIDGE_URL" -n "$N" -c 1
loadgen --label direct-c$C --target sim --url "$SIM_URL" --password "$PANEL_PASSWORD_VALUE" -n "$N" -c "$C"
loadgen --label memory-c$C --target bridge --url "$BRIDGE_URL" -n "$N" -c "$C"
stop_pid "$BRIDGE_PID"

# --- 2. bridge with DynamoDB (moto) -----------------------------------------------------------
# A fresh table for each run: moto slows down as its table fills (see docs/BENCHMARKS.md).
start_moto
bridge_on_moto() {
    local table="bench-e2e-$1-$(date +%s)"
    "$REL/examples/roundtrips" --setup-only --table "$table" --panel-url "$SIM_URL" \
        --panel-password "$PANEL_PASSWORD_VALUE"
    start_listening "payout-bridge (moto)" "$BENCH_TMP/bridge-moto-$1.log" \
        env BRIDGE_TABLE="$table" PANEL_URL="$SIM_URL" PANEL_PASSWORD="$PANEL_PASSWORD_VALUE" \
        BRIDGE_CONFIG=events/routes.yaml "$REL/payout-bridge" serve --port 0
    BRIDGE_URL="$LISTEN_URL"
    BRIDGE_PID="$LISTEN_PID"
    echo "==> payout-bridge serve (DynamoDB on moto, table $table) on $BRIDGE_URL"
}
bridge_on_moto c1
loadgen --label moto-c1 --target bridge --url "$BRIDGE_URL" -n "$N_MOTO" -c 1
stop_pid "$BRIDGE_PID"
bridge_on_moto "c$C_MOTO"
loadgen --label "moto-c$C_MOTO" --target bridge --url "$BRIDGE_URL" -n "$N_MOTO" -c "$C_MOTO"
stop_pid "$BRIDGE_PID"

# --- 3. direct again: did the simulator drift over the run? -----------------------------------
loadgen --label direct-c1-again --target sim --url "$SIM_URL" --password "$PANEL_PASSWORD_VALUE" -n "$N" -c 1

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" "$C" <<'PY'
import json, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
c = sys.argv[2]
print("| run | n | c | failed | p50 ms | p90 ms | p99 ms | max ms | req/s | p50 1st/last quarter | p50 vs direct | overhead p50 ms | load 1m |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for label, r in rows.items():
    base = rows.get("direct-c1" if r["concurrency"] == 1 else f"direct-c{c}")
    ratio = f"{r['p50_ms'] / base['p50_ms']:.2f}x" if base else "-"
    over = f"{r['p50_ms'] - base['p50_ms']:+.3f}" if base else "-"
    print(f"| {label} | {r['requests']} | {r['concurrency']} | {r['failed']} | {r['p50_ms']:.3f} | "
          f"{r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {r['max_ms']:.3f} | {r['rps']:.0f} | "
          f"{r['p50_first_quarter_ms']:.3f} / {r['p50_last_quarter_ms']:.3f} | {ratio} | {over} | "
          f"{r['load1_before']}→{r['load1_after']} |")
PY
