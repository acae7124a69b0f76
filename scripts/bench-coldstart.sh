#!/usr/bin/env bash
# Cold start: process start → first answered event for payout-bridge in Lambda mode (in-memory
# state; DynamoDB + Secrets Manager on moto; the deployed routes with their secrets in Secrets
# Manager) next to a bare lambda_http / lambda_runtime hello-world, under one stub Runtime API
# (examples/coldstart.rs). See docs/BENCHMARKS.md.
#
#   scripts/bench-coldstart.sh              # RUNS=20 per target
#   RUNS=10 BENCH_NO_BUILD=1 scripts/bench-coldstart.sh
#   BENCH_BEFORE="DIR …" scripts/bench-coldstart.sh  # DIR/payout-bridge (and DIR/hello_lambda):
#                                  # other builds, measured in the same run as "target (DIR name)"
#   BENCH_REL=DIR                  # binaries from DIR instead of the target directory
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

RUNS="${RUNS:-20}"

bench_build payout-bridge panel-sim examples/coldstart examples/hello_lambda
bench_machine
echo "binary sizes (release profile, stripped):"
BEFORE_ARGS=()
SIZES=("$REL/payout-bridge" "$REL/examples/hello_lambda")
for dir in ${BENCH_BEFORE:-}; do
    BEFORE_ARGS+=(--before "$dir")
    SIZES+=("$dir/payout-bridge")
    [ -e "$dir/hello_lambda" ] && SIZES+=("$dir/hello_lambda")
done
ls -lL "${SIZES[@]}" | awk '{printf "  %-50s %10d bytes (%.2f MiB)\n", $9, $5, $5/1048576}'
start_sim
start_moto
"$REL/examples/coldstart" --hello "$REL/examples/hello_lambda" --bridge "$REL/payout-bridge" \
    --panel-url "$SIM_URL" --panel-password "$PANEL_PASSWORD_VALUE" \
    --config events/routes.yaml --event events/canonical-create.json \
    --table "bench-cold-$(date +%s)" --embedded --runs "$RUNS" --log-dir "$BENCH_TMP" \
    "${BEFORE_ARGS[@]}"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
