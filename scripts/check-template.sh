#!/usr/bin/env bash
# Checks the deployment files offline (no AWS account, region or credentials needed):
#   cfn-lint template.yaml
#   sam validate --lint --template template.yaml
#   checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet
#   infra/deployer-policy.json is valid JSON, infra/samconfig.toml is valid TOML.
# Every checkov check the template skips is named, with its reason, in the resource's
# `Metadata: checkov: skip:`. Exits non-zero if any check fails (all of them run).
#
# The tools live in their own virtualenv, .venv/tools, installed by scripts/install-tools.sh
# (pinned versions; see there why a venv of their own). First run: ~2 min to install (PyPI);
# afterwards 16 s on 2 idle cores (36 s beside a cargo build). These checks do not build
# anything: scripts/check-sam-build.sh runs the real `sam build`.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

TOOLS="$ROOT/.venv/tools"
TEMPLATE="template.yaml"

export SAM_CLI_TELEMETRY=0          # no network call from sam
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
export BC_SKIP_MAPPING=TRUE         # checkov: do not fetch guideline mappings

# --- tools (scripts/install-tools.sh: pinned, into .venv/tools) -------------------------------
scripts/install-tools.sh || exit 1

# --- checks --------------------------------------------------------------------------------------
failed=()
run() {
    local name="$1"
    shift
    echo "==> $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

run "cfn-lint" "$TOOLS/bin/cfn-lint" "$TEMPLATE"
run "sam validate --lint" "$TOOLS/bin/sam" validate --lint --template "$TEMPLATE"
run "checkov" "$TOOLS/bin/checkov" -f "$TEMPLATE" --framework cloudformation \
    --skip-download --compact --quiet
run "infra/deployer-policy.json is JSON" "$TOOLS/bin/python" -m json.tool \
    infra/deployer-policy.json /dev/null
run "infra/samconfig.toml is TOML" "$TOOLS/bin/python" -c \
    'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' infra/samconfig.toml

if [ "${#failed[@]}" -gt 0 ]; then
    echo "check-template: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "check-template: all checks passed"
