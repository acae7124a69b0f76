#!/usr/bin/env bash
# Proves the deployment build: runs a real `sam build` of template.yaml, the command of
# docs/DEPLOY.md, offline (no AWS account, region, credentials or docker):
#   sam build --config-file infra/samconfig.toml
# SAM's Rust builder (`BuildMethod: rust-cargolambda`) runs
# `cargo lambda build --release --arm64 --bin payout-bridge` in this crate's target/ (the binary
# named under the function's `Metadata: BuildProperties: Binary`). Then, for every
# AWS::Serverless::Function in the template, checks that `.aws-sam/build/<Function>/bootstrap`
# exists and is an arm64 executable, prints its size in bytes, and checks that it holds no panel
# simulator (cargo feature `sim`, which Cargo.toml's [package.metadata.lambda.build] turns off):
# a log message that only src/sim/ has must not be in it. Exits non-zero if anything fails.
#
# `sam validate --lint`, cfn-lint and checkov (scripts/check-template.sh) all pass on templates
# that do not build; only this catches them.
#
# Tools: sam and cargo-lambda (with zig, its arm64 linker) from scripts/install-tools.sh, in
# .venv/tools. On its first arm64 build cargo-lambda adds the aarch64-unknown-linux-gnu rust-std
# through rustup. Time measured on 2 cores shared with other builds: 12-16 min cold (a release
# build of every crate, thin LTO; about 8 min of CPU); 4-5 s when nothing changed; 3-5 min when
# src/ or Cargo.toml did (the crate itself is rebuilt, with LTO).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
TOOLS="$ROOT/.venv/tools"
TEMPLATE="template.yaml"
BUILD_DIR=".aws-sam/build"
# A string literal only the simulator has (src/sim/api.rs, its fault-injection log lines).
SIM_MARKER="panel-sim fault:"

export SAM_CLI_TELEMETRY=0 # no network call from sam

scripts/install-tools.sh
export PATH="$TOOLS/bin:$PATH"

if ! grep -rqF -- "$SIM_MARKER" src/sim; then
    echo "check-sam-build: the marker '$SIM_MARKER' is no longer in src/sim: pick another string" \
        "that only the simulator has" >&2
    exit 1
fi
if grep -rqF --exclude-dir=sim -- "$SIM_MARKER" src; then
    echo "check-sam-build: the marker '$SIM_MARKER' is also outside src/sim: pick another" >&2
    exit 1
fi

# The functions of the template (SAM's own YAML loader understands !Ref, !Sub, ...).
mapfile -t FUNCTIONS < <("$TOOLS/bin/python" - "$TEMPLATE" <<'PY'
import sys
from samcli.yamlhelper import yaml_parse
with open(sys.argv[1]) as f:
    template = yaml_parse(f.read())
for name, res in template.get("Resources", {}).items():
    if res.get("Type") == "AWS::Serverless::Function":
        print(name)
PY
)
if [ "${#FUNCTIONS[@]}" -eq 0 ]; then
    echo "check-sam-build: no AWS::Serverless::Function in $TEMPLATE" >&2
    exit 1
fi

# No bootstrap of an earlier run may pass for this one.
rm -rf "$BUILD_DIR"

echo "==> sam build --config-file infra/samconfig.toml   (functions: ${FUNCTIONS[*]})"
start=$(date +%s)
status=0
sam build --config-file infra/samconfig.toml || status=$?
elapsed=$(($(date +%s) - start))
echo "sam build: exit $status after $((elapsed / 60)) min $((elapsed % 60)) s"
if [ "$status" -ne 0 ]; then
    echo "check-sam-build: FAILED: sam build exited with $status" >&2
    exit 1
fi

failed=()
for fn in "${FUNCTIONS[@]}"; do
    bin="$BUILD_DIR/$fn/bootstrap"
    if [ ! -f "$bin" ]; then
        echo "check-sam-build: $bin is missing" >&2
        failed+=("$fn: no bootstrap")
        continue
    fi
    size=$(stat -c %s "$bin")
    echo "$bin: $size bytes"
    # ELF header: e_machine (bytes 18-19, little-endian) is 0xb7 for aarch64.
    machine=$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' \n')
    if [ ! -x "$bin" ] || [ "$machine" != "b700" ]; then
        echo "check-sam-build: $bin is not an arm64 executable (e_machine $machine)" >&2
        failed+=("$fn: not arm64")
    fi
    if grep -qaF -- "$SIM_MARKER" "$bin"; then
        echo "check-sam-build: $bin contains the panel simulator ('$SIM_MARKER')" >&2
        failed+=("$fn: simulator inside")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "check-sam-build: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "check-sam-build: ${#FUNCTIONS[@]} function(s) built, no simulator inside"
