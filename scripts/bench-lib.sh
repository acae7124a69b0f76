#!/usr/bin/env bash
# Shared by scripts/bench-*.sh (sourced, not run): the release build, starting the panel
# simulator, payout-bridge and moto on free loopback ports, and stopping exactly the processes
# started here when the script ends (however it ends).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
# BENCH_PROFILE=debug runs the debug build instead (round-trip counts do not depend on the
# profile; timings do, so figures for the record come from release). CARGO_TARGET_DIR is
# honoured; BENCH_REL names a copy of the binaries instead (e.g. when the target directory is
# shared with other builds that may overwrite them).
BENCH_PROFILE="${BENCH_PROFILE:-release}"
REL="${BENCH_REL:-${CARGO_TARGET_DIR:-$ROOT/target}/$BENCH_PROFILE}"
BENCH_TMP="$ROOT/.tmp/bench"
mkdir -p "$BENCH_TMP"
VENV="$ROOT/.venv"
PANEL_PASSWORD_VALUE="bench-password"

# The secrets of scripts/make_events.py LOCAL_SECRETS, as events/routes.yaml reads them.
export PAYROLL_WEBHOOK_SECRET="whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh"
export CRM_SIGNING_SECRET="crm-local-secret"
export FORM_API_KEY="form-local-key"
export PAYOUTS_KEY="local-payouts-key"

BENCH_PIDS=()
bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The machine, for the record next to every figure.
bench_machine() {
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# One release build of the binaries and the benchmark programs (skip with BENCH_NO_BUILD=1).
# Arguments: the files under $REL the script needs (default: all of them).
bench_build() {
    if [ -z "${BENCH_NO_BUILD:-}" ]; then
        local profile_flag=(--release)
        [ "$BENCH_PROFILE" = "debug" ] && profile_flag=()
        echo "==> cargo build ${profile_flag[*]} --examples --bins"
        cargo build "${profile_flag[@]}" --examples --bins
    fi
    local f files=("$@")
    [ ${#files[@]} -gt 0 ] || files=(payout-bridge panel-sim examples/loadgen examples/coldstart examples/roundtrips examples/hello_lambda)
    for f in "${files[@]}"; do
        [ -x "$REL/$f" ] || { echo "missing $REL/$f: run cargo build --release --examples --bins" >&2; exit 1; }
    done
}

# start_listening NAME LOG COMMAND...: starts COMMAND in the background (stdout+stderr to LOG),
# waits (up to 30 s) for its "listening on http://…" line and sets LISTEN_URL and LISTEN_PID.
start_listening() {
    local name="$1" log="$2"
    shift 2
    "$@" >"$log" 2>&1 &
    LISTEN_PID=$!
    BENCH_PIDS+=("$LISTEN_PID")
    LISTEN_URL=""
    local _
    for _ in $(seq 1 300); do
        if ! kill -0 "$LISTEN_PID" 2>/dev/null; then
            echo "$name exited; its log ($log):" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
        LISTEN_URL="$(grep -o -m1 'listening on http://[0-9.:]*' "$log" | sed 's/^listening on //' || true)"
        [ -n "$LISTEN_URL" ] && return 0
        sleep 0.1
    done
    echo "$name did not report its address within 30 s; log: $log" >&2
    exit 1
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The panel simulator (release), quiet (RUST_LOG=warn): sets SIM_URL.
start_sim() {
    start_listening panel-sim "$BENCH_TMP/panel-sim.log" \
        env RUST_LOG=warn "$REL/panel-sim" --password "$PANEL_PASSWORD_VALUE"
    SIM_URL="$LISTEN_URL"
    echo "==> panel-sim on $SIM_URL"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# moto's server, started exactly as scripts/test.sh does (requests handled one at a time), from
# the .venv that scripts/test.sh creates. Sets MOTO_URL, MOTO_LOG and the AWS_* environment.
start_moto() {
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import moto.server, flask_cors' 2>/dev/null; then
        echo "no moto[server] in $VENV: run scripts/test.sh once (it creates it)" >&2
        exit 1
    fi
    local port
    port="$(free_port)"
    MOTO_LOG="$BENCH_TMP/moto.log"
    "$VENV/bin/python" "$ROOT/scripts/moto_serialized.py" -H 127.0.0.1 -p "$port" >"$MOTO_LOG" 2>&1 &
    local pid=$!
    BENCH_PIDS+=("$pid")
    MOTO_URL="http://127.0.0.1:$port"
    local _
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$MOTO_LOG" >&2; exit 1; }
        if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
            "$MOTO_URL/moto-api/" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    export AWS_ENDPOINT_URL="$MOTO_URL"
    export AWS_REGION="us-east-1"
    export AWS_ACCESS_KEY_ID="test"
    export AWS_SECRET_ACCESS_KEY="test"
    export AWS_EC2_METADATA_DISABLED="true"
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL_DYNAMODB \
        AWS_ENDPOINT_URL_SECRETS_MANAGER 2>/dev/null || true
    echo "==> moto on $MOTO_URL (log: $MOTO_LOG)"
}
