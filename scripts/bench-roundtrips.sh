#!/usr/bin/env bash
# Round trips per delivery (DynamoDB, Secrets Manager, panel) for cold and warm creates,
# replays, a batch and a cancel, against moto and the panel simulator (examples/roundtrips.rs).
# See docs/BENCHMARKS.md.
#
#   scripts/bench-roundtrips.sh
#   BENCH_NO_BUILD=1 scripts/bench-roundtrips.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

bench_build
bench_machine
start_sim
start_moto
"$REL/examples/roundtrips" --panel-url "$SIM_URL" --panel-password "$PANEL_PASSWORD_VALUE" \
    --moto-log "$MOTO_LOG"
